//! The `ws://` / `wss://` endpoint.

use std::fmt;

use groupchat_transport::TransportError;

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
    /// Parses `ws://host[:port]/path` or `wss://…`.
    pub fn parse(s: &str) -> Result<Self, TransportError> {
        let bad = |why: &str| TransportError::WebSocket(format!("invalid URL {s:?}: {why}"));
        let (secure, rest) = if let Some(r) = s.strip_prefix("wss://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("ws://") {
            (false, r)
        } else {
            return Err(bad("the scheme must be ws:// or wss://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let (host, port) = if let Some(h) = authority.strip_prefix('[') {
            let end = h.find(']').ok_or_else(|| bad("unclosed IPv6 address"))?;
            let port = h[end + 1..].strip_prefix(':');
            (&h[..end], port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("invalid port"))?,
            None if secure => 443,
            None => 80,
        };
        Ok(Self {
            secure,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
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
