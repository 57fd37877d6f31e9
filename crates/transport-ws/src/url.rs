//! The `ws://` / `wss://` endpoint.

use std::fmt;

use groupchat_transport::{TransportError, UrlProblem, WebSocketFailure};
use url::{Host, Position, Url};

/// A parsed WebSocket URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`.
    pub secure: bool,
    /// Host name or address (without brackets).
    pub host: String,
    /// Port (default 443 or 80).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl WsUrl {
    /// Parses `ws://host[:port]/path` or `wss://…` (with the `url` crate).
    pub fn parse(s: &str) -> Result<Self, TransportError> {
        let bad = |problem| {
            TransportError::WebSocket(WebSocketFailure::InvalidUrl {
                url: s.to_owned(),
                problem,
            })
        };
        let url = Url::parse(s).map_err(|e| bad(UrlProblem::Syntax(e)))?;
        let secure = match url.scheme() {
            "wss" => true,
            "ws" => false,
            _ => {
                return Err(bad(UrlProblem::Scheme {
                    expected: "ws:// or wss://",
                }));
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(UrlProblem::Credentials));
        }
        let host = match url.host() {
            Some(Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(Host::Ipv4(a)) => a.to_string(),
            Some(Host::Ipv6(a)) => a.to_string(),
            _ => return Err(bad(UrlProblem::NoHost)),
        };
        Ok(Self {
            secure,
            host,
            // ws and wss are special schemes: the url crate knows 80 and 443.
            port: url
                .port_or_known_default()
                .unwrap_or(if secure { 443 } else { 80 }),
            path: url[Position::BeforePath..Position::AfterQuery].to_owned(),
        })
    }
}

impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let u = WsUrl::parse("wss://chat.example.org/xmpp-websocket").unwrap();
        assert_eq!(
            (u.secure, u.host.as_str(), u.port, u.path.as_str()),
            (true, "chat.example.org", 443, "/xmpp-websocket")
        );
        let u = WsUrl::parse("ws://127.0.0.1:5280/ws?x=1").unwrap();
        assert_eq!(
            (u.secure, u.port, u.path.as_str()),
            (false, 5280, "/ws?x=1")
        );
        let u = WsUrl::parse("ws://[::1]:80").unwrap();
        assert_eq!((u.host.as_str(), u.path.as_str()), ("::1", "/"));
        assert_eq!(u.to_string(), "ws://[::1]:80/");
        for bad in ["http://x/", "ws://", "wss://h:99999/", "ws://u:p@h/"] {
            assert!(WsUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
