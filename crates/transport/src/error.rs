//! Transport errors: each has a clear message, and says whether a retry can help.

use std::sync::Arc;

use groupchat_protocol::{SessionError, UsageError};

/// Why the server's certificate does not verify, in words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
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
    /// Another reason, as the TLS library words it.
    #[error("{0}")]
    Other(String),
}

/// Why TLS failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server's certificate does not verify.
    #[error("the server's certificate is not valid: {0}")]
    InvalidCertificate(CertificateProblem),
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
    /// Variant by variant; I/O errors compare by kind (`std::io::Error` has no equality).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Io(a), Self::Io(b)) => a.kind() == b.kind(),
            (Self::Tls(a), Self::Tls(b)) => a == b,
            (
                Self::Resolve { host, reason },
                Self::Resolve {
                    host: h2,
                    reason: r2,
                },
            ) => host == h2 && reason == r2,
            (Self::Timeout(a), Self::Timeout(b)) => a == b,
            (Self::WebSocket(a), Self::WebSocket(b)) => a == b,
            (Self::PlaintextRefused(a), Self::PlaintextRefused(b)) => a == b,
            (Self::Session(a), Self::Session(b)) => a == b,
            (Self::Usage(a), Self::Usage(b)) => a == b,
            (Self::Closed, Self::Closed) | (Self::Ended, Self::Ended) => true,
            _ => false,
        }
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
