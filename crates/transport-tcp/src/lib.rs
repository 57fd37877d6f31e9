//! TCP transport for the groupchat session: STARTTLS (default) or direct TLS (XEP-0368),
//! rustls with the ring provider, certificate verification always on.
//!
//! ```no_run
//! # async fn f() -> Result<(), groupchat_transport::TransportError> {
//! use std::sync::Arc;
//! use groupchat_transport::{Client, ClientConfig};
//! use groupchat_transport_tcp::TcpConnector;
//!
//! // DNS SRV for example.org, STARTTLS, verified against the webpki roots.
//! let connector = TcpConnector::builder("example.org").build()?;
//! let client = Client::start(
//!     ClientConfig::new("alice@example.org".parse().unwrap(), "secret"),
//!     Arc::new(connector),
//! );
//! # Ok(()) }
//! ```

mod resolve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use groupchat_protocol::{Framing, Tls};
use groupchat_transport::{
    Cause, Connector, Failover, Link, PlaintextProblem, ResolveProblem, TransportError,
};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub use groupchat_transport::tls::{Roots, TlsOptions, map_tls_error};
pub use resolve::{Target, srv_order};

/// How the connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Security {
    /// Plain TCP upgraded with STARTTLS (RFC 6120), the default.
    StartTls,
    /// TLS from the first byte (XEP-0368), ALPN `xmpp-client`.
    DirectTls,
    /// No TLS at all. Only to a loopback address: anything else is refused.
    InsecurePlaintextLoopback,
}

/// Builds a [`TcpConnector`].
#[derive(Clone, Debug)]
pub struct TcpConnectorBuilder {
    domain: String,
    targets: Vec<Target>,
    security: Security,
    tls: TlsOptions,
    connect_timeout: Duration,
}

impl TcpConnectorBuilder {
    /// Connects to `host:port` instead of resolving the domain's SRV records. Called again,
    /// it adds another address of the same service (a cluster's nodes): they are tried in
    /// order, and after a lost connection the next one that answers takes over (see
    /// [`Failover`]).
    pub fn host_port(mut self, host: impl Into<String>, port: u16) -> Self {
        self.targets.push(Target {
            host: host.into(),
            port,
        });
        self
    }

    /// Connects to this address instead of resolving the domain (again: one more address,
    /// as with [`host_port`](Self::host_port)).
    pub fn address(self, addr: SocketAddr) -> Self {
        self.host_port(addr.ip().to_string(), addr.port())
    }

    /// How to secure the connection.
    pub fn security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// Which certificates to trust, or a caller-built rustls configuration.
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Time allowed for the TCP connection (and the direct-TLS handshake).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Builds the connector (the TLS configuration is checked now: a bad CA file fails here).
    pub fn build(self) -> Result<TcpConnector, TransportError> {
        let server_name = self
            .tls
            .server_name
            .clone()
            .unwrap_or_else(|| self.domain.clone());
        let server_name = groupchat_transport::tls::server_name(&server_name)?;
        let alpn: &[&[u8]] = if self.security == Security::DirectTls {
            &[b"xmpp-client"]
        } else {
            &[]
        };
        // A plaintext loopback connector never encrypts: no TLS configuration (and no
        // root store in memory) for it.
        let tls = match self.security {
            Security::InsecurePlaintextLoopback => None,
            _ => Some(TlsConnector::from(self.tls.client_config(alpn)?)),
        };
        Ok(TcpConnector {
            domain: self.domain,
            targets: self.targets,
            failover: Arc::new(Failover::default()),
            security: self.security,
            tls,
            server_name,
            connect_timeout: self.connect_timeout,
        })
    }
}

/// Opens TCP links to one XMPP server.
#[derive(Clone)]
pub struct TcpConnector {
    domain: String,
    /// Given addresses; none: the domain's SRV targets.
    targets: Vec<Target>,
    failover: Arc<Failover>,
    security: Security,
    /// `None` for plaintext to loopback, which never encrypts.
    tls: Option<TlsConnector>,
    server_name: ServerName<'static>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for TcpConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpConnector")
            .field("domain", &self.domain)
            .field("targets", &self.targets)
            .field("security", &self.security)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TcpConnector {
    /// A connector for the XMPP domain `domain` (also the TLS server name): SRV lookup,
    /// STARTTLS, webpki roots.
    pub fn builder(domain: impl Into<String>) -> TcpConnectorBuilder {
        TcpConnectorBuilder {
            domain: domain.into(),
            targets: Vec::new(),
            security: Security::StartTls,
            tls: TlsOptions::default(),
            connect_timeout: Duration::from_secs(10),
        }
    }

    async fn connect_tcp(&self) -> Result<TcpStream, TransportError> {
        let targets = if self.targets.is_empty() {
            resolve::targets(&self.domain, self.security == Security::DirectTls).await
        } else {
            self.targets.clone()
        };
        let mut last = TransportError::Resolve {
            host: self.domain.clone(),
            reason: ResolveProblem::NoAddress,
        };
        for index in self.failover.order(targets.len()) {
            let t = &targets[index];
            self.failover.trying(index);
            let addrs: Vec<SocketAddr> =
                match tokio::net::lookup_host((t.host.as_str(), t.port)).await {
                    Ok(a) => a.collect(),
                    Err(e) => {
                        last = TransportError::Resolve {
                            host: t.host.clone(),
                            reason: ResolveProblem::Lookup(Cause::new(e)),
                        };
                        continue;
                    }
                };
            for addr in addrs {
                if self.security == Security::InsecurePlaintextLoopback && !addr.ip().is_loopback()
                {
                    last = PlaintextProblem::NotLoopback(addr).into();
                    continue;
                }
                match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                    Ok(Ok(s)) => {
                        let _ = s.set_nodelay(true);
                        return Ok(s);
                    }
                    Ok(Err(e)) => last = e.into(),
                    Err(_) => last = TransportError::Timeout("TCP connect"),
                }
            }
        }
        Err(last)
    }
}

#[async_trait]
impl Connector for TcpConnector {
    fn framing(&self) -> Framing {
        Framing::Stream
    }

    fn tls(&self) -> Tls {
        match self.security {
            Security::StartTls => Tls::StartTls,
            Security::DirectTls => Tls::Encrypted,
            Security::InsecurePlaintextLoopback => Tls::InsecurePlaintext,
        }
    }

    fn session_ended(&self, logged_in: bool) {
        self.failover.session_ended(logged_in);
    }

    async fn connect(&self) -> Result<Box<dyn Link>, TransportError> {
        let tcp = self.connect_tcp().await?;
        let stream = if let (Security::DirectTls, Some(tls)) = (self.security, &self.tls) {
            let tls = tokio::time::timeout(
                self.connect_timeout,
                tls.connect(self.server_name.clone(), tcp),
            )
            .await
            .map_err(|_| TransportError::Timeout("TLS handshake"))?
            .map_err(map_tls_error)?;
            Stream::Tls(Box::new(tls))
        } else {
            Stream::Plain(tcp)
        };
        Ok(Box::new(TcpLink {
            stream,
            buf: BytesMut::with_capacity(READ_SIZE),
            tls: self.tls.clone(),
            server_name: self.server_name.clone(),
        }))
    }
}

/// The most bytes one read takes.
const READ_SIZE: usize = 16 * 1024;

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// During the STARTTLS swap, or after a failed one.
    Gone,
}

struct TcpLink {
    stream: Stream,
    /// Read into, then split off: the driver drops each chunk before the next read, so the
    /// allocation is reclaimed instead of a new one per read.
    buf: BytesMut,
    tls: Option<TlsConnector>,
    server_name: ServerName<'static>,
}

#[async_trait]
impl Link for TcpLink {
    async fn send(&mut self, data: Bytes) -> Result<(), TransportError> {
        match &mut self.stream {
            Stream::Plain(s) => {
                s.write_all(&data).await?;
                s.flush().await?;
            }
            Stream::Tls(s) => {
                s.write_all(&data).await?;
                s.flush().await?;
            }
            Stream::Gone => return Err(TransportError::Closed),
        }
        Ok(())
    }

    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        // `read` is cancel-safe: nothing is lost if the driver picks another branch.
        self.buf.reserve(READ_SIZE);
        let n = match &mut self.stream {
            Stream::Plain(s) => s.read_buf(&mut self.buf).await?,
            Stream::Tls(s) => s.read_buf(&mut self.buf).await.map_err(map_tls_error)?,
            Stream::Gone => return Err(TransportError::Closed),
        };
        Ok((n > 0).then(|| self.buf.split().freeze()))
    }

    async fn start_tls(&mut self) -> Result<(), TransportError> {
        let unavailable =
            || TransportError::Tls(groupchat_transport::TlsFailure::StartTlsUnavailable);
        let connector = self.tls.clone().ok_or_else(unavailable)?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(unavailable());
        };
        let tls = connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(map_tls_error)?;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    async fn close(&mut self) {
        match &mut self.stream {
            Stream::Plain(s) => {
                let _ = s.shutdown().await;
            }
            Stream::Tls(s) => {
                let _ = s.shutdown().await;
            }
            Stream::Gone => {}
        }
        self.stream = Stream::Gone;
    }
}
