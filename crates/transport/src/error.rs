//! Transport errors: each has a clear message, and says whether a retry can help.

use std::sync::Arc;

use groupchat_protocol::{SessionError, UsageError};

/// Why TLS failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server's certificate does not verify (wrong name, unknown issuer, expired, …).
    #[error("the server's certificate is not valid: {0}")]
    InvalidCertificate(String),
    /// The TLS configuration could not be built (a bad CA file, an invalid server name).
    #[error("TLS configuration: {0}")]
    Config(String),
    /// The handshake failed for another reason.
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
}

/// A transport-level failure.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A socket error.
    #[error("I/O error: {0}")]
    Io(Arc<std::io::Error>),
    /// TLS failed.
    #[error(transparent)]
    Tls(TlsFailure),
    /// The server's address could not be resolved.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// What was looked up.
        host: String,
        /// Why it failed.
        reason: String,
    },
    /// Connecting or negotiating took too long.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The WebSocket layer failed (handshake refused, protocol error).
    #[error("WebSocket: {0}")]
    WebSocket(String),
    /// Plaintext was needed but not explicitly allowed, or allowed for a non-loopback address.
    #[error("refusing an unencrypted connection: {0}")]
    PlaintextRefused(String),
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

impl PartialEq for TransportError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl From<std::io::Error> for TransportError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(Arc::new(e))
    }
}

impl TransportError {
    /// True when reconnecting cannot help: bad credentials, a certificate that does not
    /// verify, plaintext refused, no common SASL mechanism. The client stops on these instead
    /// of looping.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Tls(TlsFailure::InvalidCertificate(_) | TlsFailure::Config(_)) => true,
            Self::PlaintextRefused(_) | Self::Ended => true,
            Self::Session(e) => e.is_permanent(),
            _ => false,
        }
    }
}
