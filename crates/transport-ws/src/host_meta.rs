//! XEP-0156: Discovering Alternative XMPP Connection Methods — the WebSocket endpoint from
//! the domain's `/.well-known/host-meta` (XRD) or `host-meta.json`.

use groupchat_protocol::minidom::Element;
use groupchat_transport::TransportError;
use groupchat_transport_tcp::{TlsOptions, map_tls_error};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

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

/// Looks up the WebSocket endpoint of `domain` over HTTPS (XEP-0156), trusting `tls`.
pub async fn discover(domain: &str, tls: &TlsOptions) -> Result<String, TransportError> {
    let not_found = |why: String| TransportError::Resolve {
        host: domain.to_owned(),
        reason: why,
    };
    for path in ["/.well-known/host-meta", "/.well-known/host-meta.json"] {
        let body = match https_get(domain, path, tls).await {
            Ok(b) => b,
            Err(TransportError::Tls(t)) => return Err(TransportError::Tls(t)),
            Err(_) => continue,
        };
        if let Some(url) = parse_host_meta(&body) {
            return Ok(url);
        }
    }
    Err(not_found(
        "no wss:// endpoint in host-meta (XEP-0156)".into(),
    ))
}

/// A minimal HTTPS GET (HTTP/1.1, `Connection: close`); the body as text.
async fn https_get(host: &str, path: &str, tls: &TlsOptions) -> Result<String, TransportError> {
    let config = tls.client_config(&[b"http/1.1"])?;
    let name = ServerName::try_from(host.to_owned()).map_err(|_| TransportError::Resolve {
        host: host.to_owned(),
        reason: "not a valid name".into(),
    })?;
    let tcp = TcpStream::connect((host, 443)).await?;
    let mut s = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(map_tls_error)?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/xrd+xml, application/json\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    // host-meta documents are small: cap what we read.
    s.take(256 * 1024).read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| TransportError::WebSocket("bad HTTP response".into()))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(TransportError::WebSocket(format!(
            "host-meta: {}",
            head.lines().next().unwrap_or("")
        )));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(body));
    }
    Ok(body.to_owned())
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
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
    fn chunked_bodies() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
