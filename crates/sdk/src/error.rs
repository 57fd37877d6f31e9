//! Errors: every call returns [`RequestError`] (status code + message) and converts into
//! the seed's [`Response`]; connecting returns [`ConnectError`]. The status codes are the
//! SDK's product contract: the protocol crate reports XMPP conditions, and the one map from
//! a condition to a status is [`status_of`].

use groupchat_protocol::SessionError;
use groupchat_protocol::codec::xep::stanza_error::StanzaError;
use groupchat_transport::{HttpError, TransportError};
use serde::Serialize;

/// The status code of a stanza error condition (RFC 6120 §8.3.3), in the seed API's HTTP
/// terms: the one map the SDK uses. `not-allowed` is 403 like `forbidden` (the action is
/// refused; HTTP's 405 names a method, which XMPP has not).
pub fn status_of(condition: &str) -> u16 {
    match condition {
        "bad-request" | "jid-malformed" | "not-acceptable" | "policy-violation" => 400,
        "not-authorized" | "registration-required" | "subscription-required" => 401,
        "forbidden" | "not-allowed" | "feature-not-implemented" => 403,
        "item-not-found"
        | "recipient-unavailable"
        | "gone"
        | "redirect"
        | "remote-server-not-found" => 404,
        "conflict" => 409,
        "resource-constraint" => 413,
        "service-unavailable" => 503,
        "remote-server-timeout" => 504,
        _ => 500,
    }
}

/// Why a request failed. Every variant has a status code and a clear message.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The server answered with a stanza error; the status comes from its condition
    /// (`forbidden` → 403, `item-not-found` → 404, `conflict` → 409, …).
    #[error("{}{}", .0.condition, .0.text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
    Stanza(Box<StanzaError>),
    /// The group refused an action the user may not take (a non-admin changing members, a
    /// removed member posting): 403, whatever condition the server chose. Both servers
    /// answer these with `not-allowed` (admin changes) or `not-acceptable` (posting).
    #[error("not permitted: {}{}", .0.condition, .0.text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
    Forbidden(Box<StanzaError>),
    /// The server lacks the feature or service (no MAM, no upload service, ...): 403.
    #[error("feature unavailable on this server: {0}")]
    FeatureUnavailable(String),
    /// An argument is invalid (a malformed JID, an empty name, a wrong file type): 400.
    /// Nothing was sent.
    #[error("invalid argument: {0}")]
    BadRequest(String),
    /// The group or item does not exist: 404.
    #[error("not found: {0}")]
    NotFound(String),
    /// A file is larger than the server accepts: 413.
    #[error("too large: {size} bytes, the limit is {limit}")]
    TooLarge {
        /// The size offered.
        size: u64,
        /// The server's limit.
        limit: u64,
    },
    /// No answer in time: 504.
    #[error("no answer from the server in time")]
    Timeout,
    /// A message was handed to the connection but the server did not confirm it in time:
    /// 504. It is not withdrawn: it stays queued and may still be delivered (once, by a
    /// resumed session), so the application must not send it again as a new message.
    #[error(
        "the server did not confirm message {id} in time; it stays queued and may still be delivered"
    )]
    Unconfirmed {
        /// The message's id (its origin-id), as `send_text` would have returned it.
        id: String,
    },
    /// The server's answer arrived but could not be decoded (it was dropped): 502.
    #[error("the server's answer could not be read: {0}")]
    MalformedAnswer(String),
    /// The session is not connected: 503.
    #[error("not connected")]
    NotConnected,
    /// A media file or its description is not acceptable (a type the seed does not list, a
    /// content that does not match its extension, a missing field): 400. Nothing was
    /// uploaded or sent.
    #[error("invalid media: {0}")]
    InvalidMedia(crate::media::MediaProblem),
    /// A download's bytes are not what the message announced (size or hash): 502. No file
    /// was left behind.
    #[error("download rejected: {0}")]
    DownloadRejected(crate::download::DownloadProblem),
    /// A local file could not be read or written: 400 when the path is the caller's mistake
    /// (missing, not permitted, a directory), 500 otherwise (a full disk, ...).
    #[error("{}: {reason}", path.display())]
    File {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What the system said.
        kind: std::io::ErrorKind,
        /// The system's words.
        reason: String,
    },
    /// A web request failed (an image given by URL, an upload): 400 for a URL the SDK
    /// refuses, the web server's own 4xx class (404, 403, 413, else 400), 503 when it cannot
    /// be reached, fails (5xx) or redirects too often.
    #[error("web request failed: {0}")]
    Http(HttpError),
}

impl RequestError {
    /// A local file error on `path`.
    pub(crate) fn file(path: &std::path::Path, e: &std::io::Error) -> Self {
        Self::File {
            path: path.to_owned(),
            kind: e.kind(),
            reason: e.to_string(),
        }
    }

    /// The error for a refused group action. A room answers a member's action it does not
    /// permit with `forbidden`, `not-allowed` (changing members), `not-acceptable` (posting
    /// when not an occupant) or `not-authorized` — all mean "you may not", so all are
    /// [`Forbidden`] (403); unknown groups are [`NotFound`] (404); any other condition keeps
    /// the status [`status_of`] gives it.
    ///
    /// [`Forbidden`]: Self::Forbidden
    /// [`NotFound`]: Self::NotFound
    pub fn refused_group_action(e: StanzaError) -> Self {
        match e.condition.as_str() {
            "forbidden" | "not-allowed" | "not-acceptable" | "not-authorized" => {
                Self::Forbidden(Box::new(e))
            }
            "item-not-found" | "gone" => Self::NotFound(match &e.text {
                Some(t) => format!("no such group ({t})"),
                None if e.condition == "gone" => "the group was deleted".to_owned(),
                None => "no such group".to_owned(),
            }),
            _ => Self::Stanza(Box::new(e)),
        }
    }

    /// The status code.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Stanza(e) => status_of(&e.condition),
            Self::Forbidden(_) => 403,
            Self::FeatureUnavailable(_) => 403,
            Self::BadRequest(_) => 400,
            Self::NotFound(_) => 404,
            Self::TooLarge { .. } => 413,
            Self::Timeout | Self::Unconfirmed { .. } => 504,
            Self::MalformedAnswer(_) | Self::DownloadRejected(_) => 502,
            Self::InvalidMedia(_) => 400,
            Self::File { kind, .. } => match kind {
                std::io::ErrorKind::NotFound
                | std::io::ErrorKind::PermissionDenied
                | std::io::ErrorKind::InvalidInput
                | std::io::ErrorKind::NotADirectory
                | std::io::ErrorKind::IsADirectory => 400,
                _ => 500,
            },
            Self::NotConnected => 503,
            Self::Http(e) => match e {
                HttpError::InvalidUrl { .. }
                | HttpError::PlaintextRefused { .. }
                | HttpError::InvalidHeader { .. } => 400,
                HttpError::Status { status, .. } => match status {
                    404 | 410 => 404,
                    401 | 403 => 403,
                    413 => 413,
                    400..=499 => 400,
                    _ => 503,
                },
                HttpError::TooLarge { .. } => 413,
                HttpError::Timeout { .. } => 504,
                _ => 503,
            },
        }
    }
}

impl From<HttpError> for RequestError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::TooLarge { size, limit } => Self::TooLarge { size, limit },
            other => Self::Http(other),
        }
    }
}

impl From<StanzaError> for RequestError {
    fn from(e: StanzaError) -> Self {
        Self::Stanza(Box::new(e))
    }
}

/// The seed API's response: `{"statusCode": 200, "message": "...", "data": ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response<T> {
    /// 200 on success, else the error's status code.
    pub status_code: u16,
    /// "Success", or the error's message.
    pub message: String,
    /// The result, on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
}

impl<T> Response<T> {
    /// A success.
    pub fn ok(data: T) -> Self {
        Self {
            status_code: 200,
            message: "Success".to_owned(),
            data: Some(data),
        }
    }

    /// A failure.
    pub fn error(e: &RequestError) -> Self {
        Self {
            status_code: e.status_code(),
            message: e.to_string(),
            data: None,
        }
    }
}

impl<T> From<Result<T, RequestError>> for Response<T> {
    fn from(r: Result<T, RequestError>) -> Self {
        match r {
            Ok(d) => Self::ok(d),
            Err(e) => Self::error(&e),
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use groupchat_protocol::codec::xep::stanza_error::ErrorType;

    #[test]
    fn status_codes_for_every_condition_the_seed_names() {
        let code = |c: &str| {
            RequestError::from(StanzaError::new(ErrorType::Cancel, c, None)).status_code()
        };
        assert_eq!(code("bad-request"), 400);
        assert_eq!(code("jid-malformed"), 400);
        assert_eq!(code("not-authorized"), 401);
        assert_eq!(code("registration-required"), 401);
        assert_eq!(code("forbidden"), 403);
        assert_eq!(code("feature-not-implemented"), 403);
        assert_eq!(code("item-not-found"), 404);
        assert_eq!(code("not-allowed"), 403);
        assert_eq!(code("conflict"), 409);
        assert_eq!(code("resource-constraint"), 413);
        assert_eq!(code("internal-server-error"), 500);
        assert_eq!(code("undefined-condition"), 500);
        assert_eq!(code("service-unavailable"), 503);
        assert_eq!(code("remote-server-timeout"), 504);
        assert_eq!(RequestError::Timeout.status_code(), 504);
        assert_eq!(
            RequestError::FeatureUnavailable("MAM".into()).status_code(),
            403
        );
        assert_eq!(RequestError::BadRequest("jid".into()).status_code(), 400);
    }

    #[test]
    fn refused_group_actions_are_403_whatever_condition_the_room_chose() {
        // Both servers refuse a member's admin change with not-allowed and a removed
        // member's post with not-acceptable (recorded in the protocol crate's transcripts).
        for c in [
            "forbidden",
            "not-allowed",
            "not-acceptable",
            "not-authorized",
        ] {
            let e = RequestError::refused_group_action(StanzaError::new(ErrorType::Auth, c, None));
            assert_eq!(e.status_code(), 403, "{c}");
        }
        let gone = RequestError::refused_group_action(StanzaError::new(
            ErrorType::Cancel,
            "item-not-found",
            None,
        ));
        assert_eq!(gone.status_code(), 404);
    }

    #[test]
    fn responses_serialize_to_the_seed_shape() {
        let ok: Response<Vec<&str>> = Ok(vec!["a@b"]).into();
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"statusCode":200,"message":"Success","data":["a@b"]}"#
        );
        let e = RequestError::from(StanzaError::new(
            ErrorType::Auth,
            "forbidden",
            Some("Owner privileges required".into()),
        ));
        let err: Response<()> = Err(e).into();
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"statusCode":403,"message":"forbidden: Owner privileges required"}"#
        );
    }
}
