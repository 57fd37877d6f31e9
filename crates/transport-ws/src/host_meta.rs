//! XEP-0156: Discovering Alternative XMPP Connection Methods — the WebSocket endpoint from
//! the domain's `/.well-known/host-meta` (XRD) or `host-meta.json`.

use groupchat_protocol::minidom::Element;
use groupchat_transport::tls::TlsOptions;
use groupchat_transport::{HttpClient, HttpError, HttpOptions, ResolveProblem, TransportError};
use url::Url;

const REL: &str = "urn:xmpp:alt-connections:websocket";

/// The WebSocket URL advertised in a host-meta document (XRD XML or JSON). Only `wss://`
/// links are returned: an endpoint learned over the network must be encrypted.
pub fn parse_host_meta(body: &str) -> Option<String> {
    let links: Vec<(String, String)> = if body.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        v.get("links")?
            .as_array()?
            .iter()
            .filter_map(|l| {
                Some((
                    l.get("rel")?.as_str()?.to_owned(),
                    l.get("href")?.as_str()?.to_owned(),
                ))
            })
            .collect()
    } else {
        let xrd: Element = body.parse().ok()?;
        xrd.children()
            .filter(|c| c.name() == "Link")
            .filter_map(|l| Some((l.attr("rel")?.to_owned(), l.attr("href")?.to_owned())))
            .collect()
    };
    links
        .into_iter()
        .find(|(rel, href)| rel == REL && href.starts_with("wss://"))
        .map(|(_, h)| h)
}

/// Looks up the WebSocket endpoint of a domain over HTTPS (XEP-0156), trusting `tls`: GETs
/// `https://AUTHORITY/.well-known/host-meta`, then `host-meta.json`, and returns the first
/// `wss://` link.
///
/// `authority` is the XMPP domain (`example.org`, port 443 as the XEP says), or `host:port` /
/// `[v6addr]:port` for a server that serves host-meta on another port (a test server). The
/// host part is what is resolved, sent as SNI and `Host`, and verified in the certificate.
pub async fn discover(authority: &str, tls: &TlsOptions) -> Result<String, TransportError> {
    let not_found = |reason| TransportError::Resolve {
        host: authority.to_owned(),
        reason,
    };
    let base = base_url(authority).ok_or_else(|| not_found(ResolveProblem::InvalidAuthority))?;
    let http = HttpClient::new(tls, &HttpOptions::default())?;
    for path in [".well-known/host-meta", ".well-known/host-meta.json"] {
        let url = base
            .join(path)
            .expect("a relative path joins an https base");
        let body = match http.get(url.as_str(), MAX_RESPONSE).await {
            Ok(fetched) => fetched.body,
            // A certificate that does not verify is not a missing document.
            Err(HttpError::Tls { failure, .. }) => return Err(TransportError::Tls(failure)),
            Err(e) => {
                tracing::debug!(%url, error = %e, "no host-meta document");
                continue;
            }
        };
        if let Some(url) = parse_host_meta(&String::from_utf8_lossy(&body)) {
            return Ok(url);
        }
    }
    Err(not_found(ResolveProblem::NoWebSocketEndpoint))
}

/// The most bytes of a host-meta document read.
const MAX_RESPONSE: u64 = 256 * 1024;

/// `https://AUTHORITY/` for `host`, `host:port`, `[v6]` or `[v6]:port`; `None` for anything
/// else (a path, credentials, an empty host, port 0).
fn base_url(authority: &str) -> Option<Url> {
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', '\\']) {
        return None;
    }
    let url = Url::parse(&format!("https://{authority}/")).ok()?;
    let named = url.host_str().is_some_and(|h| !h.is_empty());
    (named && url.port() != Some(0) && !authority.ends_with(':')).then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_websocket_link_in_xrd_and_json() {
        let xrd = "<?xml version='1.0' encoding='utf-8'?><XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\
            <Link rel='urn:xmpp:alt-connections:xbosh' href='https://example.org/bosh'/>\
            <Link rel='urn:xmpp:alt-connections:websocket' href='wss://example.org/ws'/></XRD>";
        assert_eq!(
            parse_host_meta(xrd).as_deref(),
            Some("wss://example.org/ws")
        );
        let json = r#"{"links":[{"rel":"urn:xmpp:alt-connections:websocket","href":"wss://example.org/xmpp-websocket"}]}"#;
        assert_eq!(
            parse_host_meta(json).as_deref(),
            Some("wss://example.org/xmpp-websocket")
        );
        // A plaintext endpoint is not taken from the network.
        let plain = r#"{"links":[{"rel":"urn:xmpp:alt-connections:websocket","href":"ws://example.org/ws"}]}"#;
        assert_eq!(parse_host_meta(plain), None);
        assert_eq!(parse_host_meta("<not xml"), None);
    }

    #[test]
    fn authorities() {
        let base = |a| base_url(a).map(|u| u.to_string());
        assert_eq!(base("example.org").as_deref(), Some("https://example.org/"));
        assert_eq!(
            base("localhost:5443").as_deref(),
            Some("https://localhost:5443/")
        );
        assert_eq!(base("[::1]:5443").as_deref(), Some("https://[::1]:5443/"));
        assert_eq!(base("[::1]").as_deref(), Some("https://[::1]/"));
        for bad in [
            "", ":443", "h:", "h:0", "h:65536", "h:x", "[::1", "[::1]x", "a:b:c", "h/p", "u@h",
        ] {
            assert_eq!(base(bad), None, "{bad}");
        }
    }
}
