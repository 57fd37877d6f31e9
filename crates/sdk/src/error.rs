//! Errors: every call returns [`RequestError`] (status code + message); connecting returns
//! [`ConnectError`].

use groupchat_protocol::SessionError;
pub use groupchat_protocol::response::{RequestError, Response};
use groupchat_transport::TransportError;

/// Why [`ClientBuilder::connect`](crate::ClientBuilder::connect) failed.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The JID or another setting is invalid (400); nothing was sent.
    #[error("invalid setting: {0}")]
    Invalid(String),
    /// The connection or login failed for good (wrong password, certificate, refused
    /// plaintext, ...).
    #[error("cannot connect: {0}")]
    Transport(TransportError),
    /// No login within the connect timeout; the client was stopped. `last` is the last
    /// attempt's failure (a refused connection, a TLS error, …), if one ended before the
    /// time ran out: its status is the status of this error (504 when there was none).
    #[error("no login within {waited:?}{}", last.as_ref().map(|e| format!(" (last attempt: {e})")).unwrap_or_default())]
    Timeout {
        /// How long `connect` waited.
        waited: std::time::Duration,
        /// Why the last attempt failed.
        last: Option<TransportError>,
    },
    /// Logged in, but setting up the session (service discovery, group list) failed.
    #[error("session set-up failed: {0}")]
    Setup(RequestError),
}

impl ConnectError {
    /// The status code: 400 invalid setting, 401 authentication, 495 certificate, 504 time
    /// out, 503 otherwise; a set-up failure keeps its request's code.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Invalid(_) => 400,
            Self::Transport(e) | Self::Timeout { last: Some(e), .. } => match e {
                TransportError::Session(SessionError::Auth(_)) => 401,
                TransportError::Tls(_) => 495,
                _ => 503,
            },
            Self::Timeout { last: None, .. } => 504,
            Self::Setup(e) => e.status_code(),
        }
    }
}
