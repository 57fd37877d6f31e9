//! WebSocket transport for the groupchat session (RFC 7395): subprotocol `xmpp`, one
//! element per text frame, `wss://` with rustls (certificate verification always on) or
//! `ws://` to a loopback address by explicit opt-in; WebSocket pings keep idle links alive.
//! The endpoint is a URL, or is discovered from the domain with XEP-0156 host-meta.
//!
//! ```no_run
//! # async fn f() -> Result<(), groupchat_transport::TransportError> {
//! use std::sync::Arc;
//! use groupchat_transport::{Client, ClientConfig};
//! use groupchat_transport_ws::WsConnector;
//!
//! let connector = WsConnector::builder("wss://chat.example.org/xmpp-websocket").build()?;
//! let client = Client::start(
//!     ClientConfig::new("alice@example.org".parse().unwrap(), "secret"),
//!     Arc::new(connector),
//! );
//! # Ok(()) }
//! ```

mod host_meta;
mod url;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use groupchat_protocol::{Framing, Tls};
use groupchat_transport::tls::{TlsOptions, map_tls_error, server_name};
use groupchat_transport::{
    Cause, Connector, Failover, Link, PlaintextProblem, ResolveProblem, TlsFailure, TransportError,
    WebSocketFailure,
};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error, Message};

pub use host_meta::{discover, parse_host_meta};
pub use url::WsUrl;

/// Builds a [`WsConnector`].
#[derive(Clone, Debug)]
pub struct WsConnectorBuilder {
    urls: Vec<String>,
    tls: TlsOptions,
    allow_insecure_loopback: bool,
    connect_timeout: Duration,
    ping_interval: Duration,
}

impl WsConnectorBuilder {
    /// One more endpoint of the same service (a cluster's other nodes): the endpoints are
    /// tried in order, and after a lost connection the next one that answers takes over
    /// (see [`Failover`]).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.urls.push(url.into());
        self
    }

    /// Which certificates to trust for `wss://`.
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Allows `ws://` (no TLS), only to loopback addresses: for local test servers.
    pub fn allow_insecure_loopback(mut self) -> Self {
        self.allow_insecure_loopback = true;
        self
    }

    /// Time allowed for TCP, TLS and the WebSocket handshake.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Send a WebSocket ping after this long without receiving anything.
    pub fn ping_interval(mut self, d: Duration) -> Self {
        self.ping_interval = d;
        self
    }

    /// Checks the URLs and the TLS configuration.
    pub fn build(self) -> Result<WsConnector, TransportError> {
        let mut endpoints = Vec::with_capacity(self.urls.len());
        for text in self.urls {
            let url = WsUrl::parse(&text)?;
            if !url.secure && !self.allow_insecure_loopback {
                return Err(PlaintextProblem::NotAllowed { endpoint: text }.into());
            }
            let name = self
                .tls
                .server_name
                .clone()
                .unwrap_or_else(|| url.host.clone());
            endpoints.push(Endpoint {
                server_name: server_name(&name)?,
                url,
            });
        }
        Ok(WsConnector {
            tls: TlsConnector::from(self.tls.client_config(&[])?),
            endpoints,
            failover: Arc::new(Failover::default()),
            connect_timeout: self.connect_timeout,
            ping_interval: self.ping_interval,
        })
    }
}

/// One WebSocket URL and the name its certificate must have.
#[derive(Clone)]
struct Endpoint {
    url: WsUrl,
    server_name: ServerName<'static>,
}

/// Opens WebSocket links to one service (one endpoint, or several in failover order).
#[derive(Clone)]
pub struct WsConnector {
    /// Never empty.
    endpoints: Vec<Endpoint>,
    failover: Arc<Failover>,
    tls: TlsConnector,
    connect_timeout: Duration,
    ping_interval: Duration,
}

impl std::fmt::Debug for WsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConnector")
            .field(
                "urls",
                &self
                    .endpoints
                    .iter()
                    .map(|e| e.url.to_string())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl WsConnector {
    /// A connector for this `ws://` or `wss://` URL.
    pub fn builder(url: impl Into<String>) -> WsConnectorBuilder {
        WsConnectorBuilder {
            urls: vec![url.into()],
            tls: TlsOptions::default(),
            allow_insecure_loopback: false,
            connect_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
        }
    }

    async fn open(&self, endpoint: &Endpoint) -> Result<Box<dyn Link>, TransportError> {
        let Endpoint { url, server_name } = endpoint;
        let addrs: Vec<std::net::SocketAddr> =
            tokio::net::lookup_host((url.host.as_str(), url.port))
                .await
                .map_err(|e| TransportError::Resolve {
                    host: url.host.clone(),
                    reason: ResolveProblem::Lookup(Cause::new(e)),
                })?
                .collect();
        let mut last = TransportError::Resolve {
            host: url.host.clone(),
            reason: ResolveProblem::NoAddress,
        };
        let mut tcp = None;
        for addr in addrs {
            if !url.secure && !addr.ip().is_loopback() {
                last = PlaintextProblem::NotLoopback(addr).into();
                continue;
            }
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e.into(),
            }
        }
        let tcp = tcp.ok_or(last)?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if url.secure {
            Box::new(
                self.tls
                    .connect(server_name.clone(), tcp)
                    .await
                    .map_err(map_tls_error)?,
            )
        } else {
            Box::new(tcp)
        };
        let mut request =
            url.to_string()
                .into_client_request()
                .map_err(|e| WebSocketFailure::Handshake {
                    url: url.to_string(),
                    error: Cause::new(e),
                })?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "xmpp".parse().expect("a valid header value"),
        );
        let (ws, response) =
            tokio_tungstenite::client_async(request, io)
                .await
                .map_err(|e| match e {
                    Error::Io(io) => map_tls_error(io),
                    other => WebSocketFailure::Handshake {
                        url: url.to_string(),
                        error: Cause::new(other),
                    }
                    .into(),
                })?;
        // RFC 7395 §3.2: the server must agree to the xmpp subprotocol.
        let agreed = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("xmpp"));
        if !agreed {
            return Err(WebSocketFailure::SubprotocolRefused.into());
        }
        Ok(Box::new(WsLink {
            ws,
            ping_interval: self.ping_interval,
        }))
    }
}

#[async_trait]
impl Connector for WsConnector {
    fn framing(&self) -> Framing {
        Framing::WebSocket
    }

    fn tls(&self) -> Tls {
        // Every endpoint is secured alike (all wss://, or all ws:// to loopback).
        if self.endpoints.iter().all(|e| e.url.secure) {
            Tls::Encrypted
        } else {
            Tls::InsecurePlaintext
        }
    }

    async fn connect(&self) -> Result<Box<dyn Link>, TransportError> {
        let mut last = TransportError::Timeout("WebSocket connect");
        for index in self.failover.order(self.endpoints.len()) {
            self.failover.trying(index);
            let opened =
                tokio::time::timeout(self.connect_timeout, self.open(&self.endpoints[index]))
                    .await
                    .map_err(|_| TransportError::Timeout("WebSocket connect"));
            match opened {
                Ok(Ok(link)) => return Ok(link),
                Ok(Err(e)) | Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn session_ended(&self, logged_in: bool) {
        self.failover.session_ended(logged_in);
    }
}

/// A TCP or TLS stream, boxed: the WebSocket layer only needs bytes.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct WsLink {
    ws: WebSocketStream<Box<dyn Io>>,
    ping_interval: Duration,
}

fn ws_error(e: Error) -> TransportError {
    match e {
        Error::Io(io) => map_tls_error(io),
        other => WebSocketFailure::Protocol(Cause::new(other)).into(),
    }
}

#[async_trait]
impl Link for WsLink {
    async fn send(&mut self, data: Bytes) -> Result<(), TransportError> {
        let text = String::from_utf8(data.to_vec()).map_err(|_| WebSocketFailure::NotUtf8)?;
        self.ws.send(Message::text(text)).await.map_err(ws_error)
    }

    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        loop {
            // `next` is cancel-safe; an idle link gets a ping (its pong is just traffic).
            let next = tokio::time::timeout(self.ping_interval, self.ws.next()).await;
            let msg = match next {
                Err(_) => {
                    self.ws
                        .send(Message::Ping(Bytes::new()))
                        .await
                        .map_err(ws_error)?;
                    continue;
                }
                Ok(None) => return Ok(None),
                Ok(Some(m)) => m.map_err(ws_error)?,
            };
            match msg {
                Message::Text(t) => return Ok(Some(Bytes::copy_from_slice(t.as_bytes()))),
                Message::Binary(b) => return Ok(Some(b)),
                Message::Close(_) => return Ok(None),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    async fn start_tls(&mut self) -> Result<(), TransportError> {
        Err(TransportError::Tls(TlsFailure::StartTlsUnavailable))
    }

    async fn close(&mut self) {
        let _ = self.ws.close(None).await;
    }
}
