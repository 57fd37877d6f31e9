//! The error model of requests (status codes in the seed API's HTTP terms) and the seed's
//! response shape `{statusCode, message, data}`.

use serde::Serialize;

use crate::codec::xep::stanza_error::StanzaError;

/// Why a request failed. Every variant has a status code and a clear message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
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
}

impl RequestError {
    /// The error for a refused group action: permission conditions become [`Forbidden`]
    /// (403); others keep their own status.
    ///
    /// [`Forbidden`]: Self::Forbidden
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
            Self::Stanza(e) => e.status_code(),
            Self::Forbidden(_) => 403,
            Self::FeatureUnavailable(_) => 403,
            Self::BadRequest(_) => 400,
            Self::NotFound(_) => 404,
            Self::TooLarge { .. } => 413,
            Self::Timeout | Self::Unconfirmed { .. } => 504,
            Self::MalformedAnswer(_) => 502,
            Self::NotConnected => 503,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::xep::stanza_error::ErrorType;

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
        assert_eq!(code("not-allowed"), 405);
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
