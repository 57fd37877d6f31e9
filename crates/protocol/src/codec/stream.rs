//! RFC 6120 stream-level elements the client sends (and RFC 7395's framing for WebSocket):
//! the stream header and close, STARTTLS, SASL, resource binding, the legacy session, and
//! stream errors. Values are escaped like every other encoder's.

use crate::codec::reader::{Ev, NsContext, XmlReader};
use crate::codec::write::{Writer, iq};
use crate::codec::{DecodeError, eof};
use crate::ns;
use crate::session::Framing;

/// What the server's stream header says.
#[derive(Debug)]
pub(crate) struct Header {
    /// Its namespace (`http://etherx.jabber.org/streams` for a stream header).
    pub(crate) ns: String,
    /// Its `version`.
    pub(crate) version: Option<String>,
    /// The namespaces the stanzas of the stream inherit.
    pub(crate) ctx: NsContext,
}

/// Reads the server's stream header: its start tag alone, `<stream:stream …>`.
pub(crate) fn decode_header(tag: &[u8]) -> Result<Header, DecodeError> {
    let none = NsContext::default();
    let mut r = XmlReader::new(tag, &none)?;
    match r.next()? {
        Ev::Start(s) => Ok(Header {
            ns: s.ns.clone().into_owned(),
            version: s.attr_string("version")?,
            ctx: NsContext {
                lang: s.attr_string("xml:lang")?,
                ..r.in_scope()
            },
        }),
        Ev::Eof => Err(eof()),
        _ => Err(DecodeError::xml("a stream header must start with a tag")),
    }
}

/// The stream header (TCP) or `<open/>` (WebSocket) to `domain`.
pub(crate) fn header(framing: Framing, domain: &str) -> Vec<u8> {
    let mut w = Writer::with_capacity(192);
    match framing {
        Framing::Stream => {
            w.buf.extend_from_slice(b"<?xml version='1.0'?>");
            w.open_ns("stream:stream", ns::CLIENT);
            w.attr("xmlns:stream", ns::STREAM);
            w.attr("to", domain);
            w.attr("version", "1.0");
            w.attr("xml:lang", "en");
            w.close_start();
        }
        Framing::WebSocket => {
            w.open_ns("open", ns::FRAMING);
            w.attr("to", domain);
            w.attr("version", "1.0");
            w.attr("xml:lang", "en");
            w.close_empty();
        }
    }
    w.buf
}

/// The end of the stream (TCP) or `<close/>` (WebSocket).
pub(crate) fn close(framing: Framing) -> Vec<u8> {
    match framing {
        Framing::Stream => b"</stream:stream>".to_vec(),
        Framing::WebSocket => {
            let mut w = Writer::with_capacity(48);
            w.empty_ns("close", ns::FRAMING);
            w.buf
        }
    }
}

/// `<stream:error>` with a defined `condition`, and with `extra` written after it (an
/// application condition); declared right for the framing (a WebSocket frame has no stream
/// header to inherit the prefix from).
pub(crate) fn error(framing: Framing, condition: &str, extra: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::with_capacity(160);
    w.open("stream:error");
    if framing == Framing::WebSocket {
        w.attr("xmlns:stream", ns::STREAM);
    }
    w.close_start();
    w.empty_ns(condition, ns::STREAMS);
    extra(&mut w);
    w.end("stream:error");
    w.buf
}

/// `<starttls/>` (RFC 6120 §5).
pub(crate) fn starttls() -> Vec<u8> {
    let mut w = Writer::with_capacity(64);
    w.empty_ns("starttls", ns::TLS);
    w.buf
}

/// `<auth/>` (RFC 6120 §6) with the mechanism's initial response, base64 (`=` for empty).
pub(crate) fn auth(mechanism: &str, initial_base64: &str) -> Vec<u8> {
    let mut w = Writer::with_capacity(96 + initial_base64.len());
    w.open_ns("auth", ns::SASL);
    w.attr("mechanism", mechanism);
    w.close_start();
    w.text(initial_base64);
    w.end("auth");
    w.buf
}

/// `<response/>` to a SASL challenge, base64.
pub(crate) fn response(base64: &str) -> Vec<u8> {
    let mut w = Writer::with_capacity(64 + base64.len());
    w.text_element_ns("response", ns::SASL, base64);
    w.buf
}

/// The resource binding request (RFC 6120 §7), asking for `resource` if given.
pub(crate) fn bind(id: &str, resource: Option<&str>) -> Vec<u8> {
    iq("set", None, id, |w| {
        w.open_ns("bind", ns::BIND);
        match resource {
            Some(r) => {
                w.close_start();
                w.text_element("resource", r);
                w.end("bind");
            }
            None => w.close_empty(),
        }
    })
}

/// The legacy session establishment (RFC 3921 §3), for servers that still require it.
pub(crate) fn session(id: &str) -> Vec<u8> {
    iq("set", None, id, |w| w.empty_ns("session", ns::SESSION))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_header_gives_its_namespaces_and_version() {
        let h = decode_header(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:x='urn:x' id='s1' from='localhost' version='1.0'>").unwrap();
        assert_eq!(h.ns, ns::STREAM);
        assert_eq!(h.version.as_deref(), Some("1.0"));
        assert_eq!(h.ctx.default, ns::CLIENT);
        assert!(
            h.ctx
                .prefixes
                .contains(&("x".to_owned(), "urn:x".to_owned()))
        );
        assert!(
            decode_header(b"<stream:stream xmlns='jabber:client' version='1.0'>").is_err(),
            "unbound prefix"
        );
    }

    #[test]
    fn stream_elements_are_written_as_the_servers_expect() {
        assert_eq!(
            header(Framing::Stream, "example.org"),
            b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0' xml:lang='en'>"
        );
        assert_eq!(
            header(Framing::WebSocket, "a&b"),
            b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='a&amp;b' version='1.0' xml:lang='en'/>"
        );
        assert_eq!(close(Framing::Stream), b"</stream:stream>");
        assert_eq!(
            bind("b1", Some("ph<one")),
            b"<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>ph&lt;one</resource></bind></iq>"
        );
        assert_eq!(
            error(Framing::WebSocket, "not-well-formed", |_| {}),
            b"<stream:error xmlns:stream='http://etherx.jabber.org/streams'><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        );
    }
}
