//! XEP-0156: Discovering Alternative XMPP Connection Methods — the WebSocket endpoint from
//! the domain's `/.well-known/host-meta` (XRD) or `host-meta.json`.

use groupchat_protocol::minidom::Element;
use groupchat_transport::TransportError;
use groupchat_transport::tls::{TlsOptions, map_tls_error};
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

/// Looks up the WebSocket endpoint of a domain over HTTPS (XEP-0156), trusting `tls`: GETs
/// `https://AUTHORITY/.well-known/host-meta`, then `host-meta.json`, and returns the first
/// `wss://` link.
///
/// `authority` is the XMPP domain (`example.org`, port 443 as the XEP says), or `host:port` /
/// `[v6addr]:port` for a server that serves host-meta on another port (a test server). The
/// host part is what is resolved, sent as SNI and `Host`, and verified in the certificate.
pub async fn discover(authority: &str, tls: &TlsOptions) -> Result<String, TransportError> {
    let not_found = |why: String| TransportError::Resolve {
        host: authority.to_owned(),
        reason: why,
    };
    let (host, port) = split_authority(authority)
        .ok_or_else(|| not_found("expected `host`, `host:port` or `[address]:port`".into()))?;
    for path in ["/.well-known/host-meta", "/.well-known/host-meta.json"] {
        let body = match https_get(host, port, path, tls).await {
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

/// `host`, `host:port`, `[v6]` or `[v6]:port` into host (without brackets) and port (443 by
/// default). `None` if the port is not a number from 1 to 65535 or the host is empty.
fn split_authority(authority: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => 443,
        Some(p) => p.parse().ok().filter(|&p| p != 0)?,
    };
    (!host.is_empty()).then_some((host, port))
}

/// A minimal HTTPS GET (HTTP/1.1, `Connection: close`); the body as text.
async fn https_get(
    host: &str,
    port: u16,
    path: &str,
    tls: &TlsOptions,
) -> Result<String, TransportError> {
    let config = tls.client_config(&[b"http/1.1"])?;
    let name = ServerName::try_from(host.to_owned()).map_err(|_| TransportError::Resolve {
        host: host.to_owned(),
        reason: "not a valid name".into(),
    })?;
    let tcp = TcpStream::connect((host, port)).await?;
    let mut s = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(map_tls_error)?;
    let bracketed = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let host_header = if port == 443 {
        bracketed
    } else {
        format!("{bracketed}:{port}")
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nAccept: application/xrd+xml, application/json\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    // Read until the response is complete by its own framing (Content-Length or the last
    // chunk), not until EOF: ejabberd 23.01 closes the TCP connection after the response
    // without a TLS close_notify, which rustls reports as UnexpectedEof, and a server could
    // also ignore `Connection: close`. An EOF without close_notify is accepted only when the
    // framing shows that nothing was cut off.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let mut clean_eof = false;
    while parse_response(&raw).is_none() {
        // host-meta documents are small: cap what we read.
        if raw.len() > MAX_RESPONSE {
            return Err(TransportError::WebSocket(
                "host-meta: response too large".into(),
            ));
        }
        match s.read(&mut buf).await {
            Ok(0) => {
                clean_eof = true;
                break;
            }
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
    }
    let (head, body) = match parse_response(&raw) {
        Some(complete) => complete,
        // A body delimited only by the end of the connection: complete after a close_notify.
        None if clean_eof && !raw.is_empty() => close_delimited(&raw)
            .ok_or_else(|| TransportError::WebSocket("host-meta: truncated response".into()))?,
        None => {
            return Err(TransportError::WebSocket(
                "host-meta: truncated or malformed HTTP response".into(),
            ));
        }
    };
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(TransportError::WebSocket(format!(
            "host-meta: {}",
            head.lines().next().unwrap_or("")
        )));
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The most bytes of an HTTP response `https_get` reads.
const MAX_RESPONSE: usize = 256 * 1024;

/// The head (status line and headers) and the rest of a response, once the head is complete.
fn split_head(raw: &[u8]) -> Option<(String, &[u8])> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((
        String::from_utf8_lossy(&raw[..end]).into_owned(),
        &raw[end + 4..],
    ))
}

/// The value of header `name` (lowercase) in `head`.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Head and body of `raw` if it is a complete response framed by `Transfer-Encoding:
/// chunked` (the last chunk was received) or `Content-Length` (that many body bytes were
/// received; extra bytes are ignored). `None` while incomplete, and for a body delimited by
/// the end of the connection.
fn parse_response(raw: &[u8]) -> Option<(String, Vec<u8>)> {
    let (head, rest) = split_head(raw)?;
    if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let body = dechunk(rest)?;
        return Some((head, body));
    }
    let length: usize = header(&head, "content-length")?.parse().ok()?;
    let body = rest.get(..length)?.to_vec();
    Some((head, body))
}

/// Head and body of a complete response with neither `Content-Length` nor chunking: the body
/// runs to the end of the connection. `None` if the head is incomplete or the response is
/// framed (then [`parse_response`] decides).
fn close_delimited(raw: &[u8]) -> Option<(String, Vec<u8>)> {
    let (head, rest) = split_head(raw)?;
    let framed = header(&head, "content-length").is_some()
        || header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    (!framed).then(|| (head, rest.to_vec()))
}

/// The payload of a chunked body, or `None` until the last (zero-size) chunk has arrived.
/// Chunk extensions are ignored; trailers are not read.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = size.split(';').next().unwrap_or("").trim();
        let n = usize::from_str_radix(size, 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        let data = body.get(line_end + 2..)?;
        out.extend_from_slice(data.get(..n)?);
        body = data.get(n..)?.strip_prefix(b"\r\n")?;
    }
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
        assert_eq!(split_authority("example.org"), Some(("example.org", 443)));
        assert_eq!(split_authority("localhost:5443"), Some(("localhost", 5443)));
        assert_eq!(split_authority("[::1]:5443"), Some(("::1", 5443)));
        assert_eq!(split_authority("[::1]"), Some(("::1", 443)));
        for bad in [
            "", ":443", "h:", "h:0", "h:65536", "h:x", "[::1", "[::1]x", "a:b:c",
        ] {
            assert_eq!(split_authority(bad), None, "{bad}");
        }
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n").as_deref(),
            Some(&b"hello world"[..])
        );
        // Cut off before the last chunk: incomplete, not a shorter document.
        assert_eq!(dechunk(b"5\r\nhello\r\n6\r\n wor"), None);
        assert_eq!(dechunk(b"5\r\nhello\r\n"), None);
    }

    #[test]
    fn responses_are_complete_by_their_framing() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: x\r\n\r\nhello";
        let (head, body) = parse_response(full).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"));
        assert_eq!(body, b"hello");
        // Not all of the announced body yet, or not all of the head.
        assert_eq!(parse_response(&full[..full.len() - 1]), None);
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Le"), None);
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap().1, b"hi");
        // Delimited by the end of the connection: never complete by itself.
        let open = b"HTTP/1.0 200 OK\r\n\r\nbody";
        assert_eq!(parse_response(open), None);
        assert_eq!(close_delimited(open).unwrap().1, b"body");
        assert_eq!(close_delimited(full), None);
    }
}
