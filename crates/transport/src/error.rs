//! Transport errors: each has a clear message, and says whether a retry can help.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use groupchat_protocol::{SessionError, UsageError};

use crate::http::HttpError;

/// Why the server's certificate does not verify, in words.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateProblem {
    /// It is not for the name we connected to (or the server has none for that name).
    #[error("it is not valid for this server's name")]
    WrongName,
    /// No trusted authority issued it (a self-signed or private-CA certificate that is not
    /// in the trusted roots: trust its file with `TlsOptions::ca_file`).
    #[error("it was not issued by a trusted authority")]
    UnknownIssuer,
    /// It has expired.
    #[error("it has expired")]
    Expired,
    /// It is not valid yet.
    #[error("it is not valid yet")]
    NotYetValid,
    /// It was revoked.
    #[error("it was revoked")]
    Revoked,
    /// The server presents a CA certificate as its own (a self-signed certificate made as
    /// a CA): make a server certificate signed by that CA, or trust the CA's file.
    #[error("the server presents a certificate authority's certificate as its own")]
    CaUsedAsEndEntity,
    /// It is not meant for a TLS server.
    #[error("it is not meant for a TLS server")]
    WrongPurpose,
    /// Its signature does not verify.
    #[error("its signature does not verify")]
    BadSignature,
    /// It cannot be parsed.
    #[error("it is malformed")]
    Malformed,
    /// Another reason: rustls' own verdict.
    #[error("{0}")]
    Other(rustls::CertificateError),
}

/// Why the TLS configuration could not be built.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigProblem {
    /// `Roots::Native` was asked for and the system store holds no certificate.
    #[error("no certificates in the system store")]
    NoSystemCertificates,
    /// The CA file cannot be read or is not PEM.
    #[error("cannot read the CA file {}: {error}", path.display())]
    CaFileUnreadable {
        /// The file.
        path: PathBuf,
        /// Why (I/O or PEM syntax).
        error: Cause,
    },
    /// A certificate in the CA file was refused as a trust anchor.
    #[error("a certificate in {} cannot be trusted: {error}", path.display())]
    CaCertificateRefused {
        /// The file.
        path: PathBuf,
        /// rustls' reason.
        error: rustls::Error,
    },
    /// The CA file holds no certificate.
    #[error("no certificate in {}", path.display())]
    NoCertificateInFile {
        /// The file.
        path: PathBuf,
    },
    /// The name to verify is not a DNS name or IP address.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    /// rustls refused the protocol versions or the crypto provider.
    #[error("{0}")]
    Rustls(rustls::Error),
}

/// Why TLS failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server's certificate does not verify.
    #[error("the server's certificate is not valid: {0}")]
    InvalidCertificate(CertificateProblem),
    /// The TLS configuration could not be built (a bad CA file, an invalid server name).
    #[error("TLS configuration: {0}")]
    Config(TlsConfigProblem),
    /// The handshake failed for another reason (no common protocol version or cipher suite,
    /// an alert from the server): rustls' error.
    #[error("TLS handshake failed: {0}")]
    Handshake(rustls::Error),
    /// STARTTLS was asked of a link that cannot upgrade: WebSocket has no STARTTLS (RFC
    /// 7395: use `wss://`), and a link already encrypted cannot upgrade again.
    #[error("STARTTLS is not possible on this link (WebSocket has none: use wss://)")]
    StartTlsUnavailable,
}

/// Why a name could not be resolved to an address.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveProblem {
    /// The lookup failed (the system resolver's or the DNS client's error).
    #[error("{0}")]
    Lookup(Cause),
    /// The lookup found no address.
    #[error("no address")]
    NoAddress,
    /// The text is not a host, `host:port` or `[address]:port`.
    #[error("not a host name or address with an optional port")]
    InvalidAuthority,
    /// The domain's host-meta (XEP-0156) names no `wss://` endpoint.
    #[error("no wss:// endpoint in host-meta (XEP-0156)")]
    NoWebSocketEndpoint,
}

/// What went wrong in the WebSocket layer.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WebSocketFailure {
    /// The endpoint is not a usable `ws://` / `wss://` URL.
    #[error("invalid URL {url:?}: {problem}")]
    InvalidUrl {
        /// The text given.
        url: String,
        /// What is wrong with it.
        problem: UrlProblem,
    },
    /// The opening handshake failed (an HTTP error status, a refused upgrade).
    #[error("handshake with {url}: {error}")]
    Handshake {
        /// The endpoint.
        url: String,
        /// The WebSocket library's error.
        error: Cause,
    },
    /// The server did not agree to the `xmpp` subprotocol (RFC 7395 §3.2).
    #[error("the server did not accept the 'xmpp' subprotocol")]
    SubprotocolRefused,
    /// A frame to send is not UTF-8 (RFC 7395 frames are text).
    #[error("a frame that is not UTF-8")]
    NotUtf8,
    /// The WebSocket protocol was broken after the handshake.
    #[error("{0}")]
    Protocol(Cause),
}

/// What is wrong with a URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlProblem {
    /// It does not parse (the `url` crate's reason).
    #[error("{0}")]
    Syntax(url::ParseError),
    /// Its scheme is not one this use accepts.
    #[error("the scheme must be {expected}")]
    Scheme {
        /// What is accepted.
        expected: &'static str,
    },
    /// It has no host.
    #[error("no host")]
    NoHost,
    /// It carries a user name or password.
    #[error("credentials in the URL are not supported")]
    Credentials,
}

/// Why an unencrypted connection was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlaintextProblem {
    /// The endpoint is unencrypted and the application did not allow it.
    #[error(
        "{endpoint} is not encrypted, and plaintext was not allowed (the opt-in permits loopback addresses only)"
    )]
    NotAllowed {
        /// The endpoint (a URL or an address).
        endpoint: String,
    },
    /// Plaintext was allowed, but only to loopback, and this address is not one.
    #[error("{0} is not a loopback address")]
    NotLoopback(SocketAddr),
}

/// A transport-level failure.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A socket error.
    #[error("I/O error: {0}")]
    Io(IoError),
    /// TLS failed.
    #[error(transparent)]
    Tls(TlsFailure),
    /// The server's address could not be resolved.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// What was looked up.
        host: String,
        /// Why it failed.
        reason: ResolveProblem,
    },
    /// Connecting or negotiating took too long.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The WebSocket layer failed (handshake refused, protocol error).
    #[error("WebSocket: {0}")]
    WebSocket(WebSocketFailure),
    /// Plaintext was needed but not explicitly allowed, or allowed for a non-loopback address.
    #[error("refusing an unencrypted connection: {0}")]
    PlaintextRefused(PlaintextProblem),
    /// An HTTP request failed (XEP-0156 host-meta).
    #[error(transparent)]
    Http(HttpError),
    /// The XMPP session failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The connection closed without an error from the session.
    #[error("the connection closed")]
    Closed,
    /// The client has ended; nothing can be sent.
    #[error("the client has ended")]
    Ended,
    /// What the application asked to send was refused before anything was sent (not a
    /// stanza, or bytes the session would not accept from the server either).
    #[error("refused to send: {0}")]
    Usage(UsageError),
}

/// A library's error, shared (errors are cloned into events); two are equal when they say
/// the same (the libraries' errors have no equality of their own).
#[derive(Clone, Debug)]
pub struct Cause(pub Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    /// Wraps `e`.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(e))
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// A shared `std::io::Error` (errors are cloned into events); equal when their kinds are.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct IoError(pub Arc<std::io::Error>);

impl IoError {
    /// The error's kind.
    pub fn kind(&self) -> std::io::ErrorKind {
        self.0.kind()
    }
}

impl PartialEq for IoError {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind()
    }
}

impl From<std::io::Error> for TransportError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(IoError(Arc::new(e)))
    }
}

impl From<TlsConfigProblem> for TransportError {
    fn from(p: TlsConfigProblem) -> Self {
        Self::Tls(TlsFailure::Config(p))
    }
}

impl From<WebSocketFailure> for TransportError {
    fn from(f: WebSocketFailure) -> Self {
        Self::WebSocket(f)
    }
}

impl From<PlaintextProblem> for TransportError {
    fn from(p: PlaintextProblem) -> Self {
        Self::PlaintextRefused(p)
    }
}

impl TransportError {
    /// True when reconnecting cannot help: bad credentials, a certificate that does not
    /// verify, plaintext refused, no common SASL mechanism. The client stops on these instead
    /// of looping.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Tls(
                TlsFailure::InvalidCertificate(_)
                | TlsFailure::Config(_)
                | TlsFailure::StartTlsUnavailable,
            ) => true,
            Self::WebSocket(WebSocketFailure::InvalidUrl { .. }) => true,
            Self::PlaintextRefused(_) | Self::Ended => true,
            Self::Session(e) => e.is_permanent(),
            _ => false,
        }
    }
}
