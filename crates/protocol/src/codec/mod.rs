//! The stanza codec: pure functions from bytes to typed stanzas and back.
//!
//! [`decode_stanza`] reads one complete top-level element (as the session's framer cuts it)
//! in the namespace context of its stream. Hot stanzas — group and chat messages, archive
//! results, room presence, chat states — are built straight from the token stream; payloads
//! this crate does not model are kept as minidom [`Element`]s. The same functions serve the
//! session, the fuzzers and the benchmarks.

pub(crate) mod reader;
pub(crate) mod write;

pub mod ext;
pub mod message;
pub mod presence;
pub(crate) mod stream;
pub mod xep;

use std::fmt;

use minidom::Element;

pub use message::{Bodies, LangText, Message, MessageType};
pub use presence::{Presence, PresenceType};
pub use reader::NsContext;

use reader::{Ev, XmlReader};

/// Why one stanza could not be decoded. Never fatal for a session (the stanza is dropped).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not well-formed (namespaced) XML.
    #[error("not well-formed: {0}")]
    Xml(String),
    /// The element is not a stanza this decoder handles.
    #[error("not a stanza: <{0}/>")]
    NotAStanza(String),
    /// A required attribute is missing.
    #[error("<{element}/> lacks the '{attribute}' attribute")]
    MissingAttribute {
        /// The element.
        element: String,
        /// The attribute.
        attribute: &'static str,
    },
    /// An attribute or text has a value outside its domain (a bad JID, number, enum value).
    #[error("invalid {what}: {value:?}")]
    InvalidValue {
        /// What was being read, e.g. `from JID`.
        what: &'static str,
        /// The offending value (truncated).
        value: String,
    },
    /// A name or attribute value is longer than [`MAX_TOKEN_LEN`]: refused the same way on
    /// the typed path and in unknown payloads (whose DOM library has an 8 KiB token limit).
    #[error("{what} of {len} bytes is longer than the limit of {limit} bytes")]
    TooLong {
        /// What was too long: `attribute value` or `element name`.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

/// What could be read of a stanza that was dropped: its name and the attributes that tie it
/// to a request (an IQ answer's `id` and `from`), so that a caller waiting for it can be
/// told at once.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Envelope {
    /// The element's local name (`message`, `presence`, `iq`, ...).
    pub name: String,
    /// Its `id`.
    pub id: Option<String>,
    /// Its `type`.
    pub kind: Option<String>,
    /// Its `from`, when it is a valid JID.
    pub from: Option<jid::Jid>,
}

/// Reads the [`Envelope`] of an element that could not be decoded (best effort: `None` when
/// not even its start tag is readable).
pub fn envelope(bytes: &[u8]) -> Option<Envelope> {
    reader::envelope(bytes)
}

/// The first character of `s` that XML 1.0 cannot carry (a control character other than
/// tab, newline and carriage return, or U+FFFE / U+FFFF), if any: text with one cannot be
/// sent, escaped or not.
pub fn invalid_xml_char(s: &str) -> Option<char> {
    s.chars().find(|&c| !reader::is_xml_char(c))
}

/// The longest element name or attribute value (raw bytes, as received) that the decoder
/// takes; a stanza with a longer one is dropped. Below minidom's (rxml's) 8 KiB token limit,
/// so that a known and an unknown payload are refused alike; text is not limited (only the
/// stanza's size is).
pub const MAX_TOKEN_LEN: usize = 8000;

impl DecodeError {
    pub(crate) fn xml(msg: impl fmt::Display) -> Self {
        Self::Xml(msg.to_string())
    }

    pub(crate) fn invalid(what: &'static str, value: &str) -> Self {
        let mut value = value.to_owned();
        if value.len() > 64 {
            let mut cut = 64;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
        }
        Self::InvalidValue { what, value }
    }
}

/// The header of an `<iq/>`; the payload stays a tree (IQs are not on the hot path).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Iq {
    /// Sender.
    pub from: Option<jid::Jid>,
    /// Recipient.
    pub to: Option<jid::Jid>,
    /// The request id.
    pub id: String,
    /// `get`, `set`, `result` or `error`.
    pub kind: IqType,
    /// The payload (for `get`/`set`, the query; for `result`, optional).
    #[serde(skip)]
    pub payload: Option<Element>,
    /// The error, for `type='error'`.
    pub error: Option<xep::stanza_error::StanzaError>,
}

impl Iq {
    /// The empty `result` that answers this request.
    pub fn result_reply(&self) -> Vec<u8> {
        let to = self.from.as_ref().map(ToString::to_string);
        write::iq("result", to.as_deref(), &self.id, |_| {})
    }

    /// The `error` (type `cancel`, RFC 6120 §8.3) that answers this request, e.g.
    /// `service-unavailable` for a request this client does not handle.
    pub fn error_reply(&self, condition: &str) -> Vec<u8> {
        let to = self.from.as_ref().map(ToString::to_string);
        write::iq("error", to.as_deref(), &self.id, |w| {
            w.open("error");
            w.attr("type", "cancel");
            w.close_start();
            w.empty_ns(condition, crate::ns::STANZAS);
            w.end("error");
        })
    }
}

/// RFC 6120 §8.2.3 IQ types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum IqType {
    /// A request for information.
    Get,
    /// A request to change something.
    Set,
    /// A successful answer.
    Result,
    /// A failed answer.
    Error,
}

/// A decoded stanza.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Stanza {
    /// `<message/>`.
    Message(Box<Message>),
    /// `<presence/>`.
    Presence(Box<Presence>),
    /// `<iq/>`.
    Iq(Box<Iq>),
}

/// Decodes one complete stanza (`message`, `presence` or `iq` in `jabber:client`) from
/// untrusted bytes: the framer's checks (tag structure, restricted XML, depth) run first,
/// then the typed decoding, which checks characters, attributes (syntax, names, duplicates),
/// references and namespaces as it reads. (A session's framer has already run its checks,
/// so it calls the decoding directly.)
pub fn decode_stanza(bytes: &[u8], ctx: &NsContext) -> Result<Stanza, DecodeError> {
    crate::xml::check_element(bytes).map_err(DecodeError::xml)?;
    match decode_top_level(bytes, ctx)? {
        TopLevel::Stanza(s) => Ok(s),
        TopLevel::Other(el) => Err(DecodeError::NotAStanza(el.name().to_owned())),
    }
}

/// A top-level element of a stream: a stanza (typed) or a stream-level element (a tree).
#[derive(Debug)]
pub(crate) enum TopLevel {
    Stanza(Stanza),
    Other(Element),
}

/// Decodes one top-level element that the framer has already checked: stanzas on the typed
/// path, anything else as a tree.
pub(crate) fn decode_top_level(bytes: &[u8], ctx: &NsContext) -> Result<TopLevel, DecodeError> {
    decode_top_level_cached(bytes, ctx, &mut reader::JidCache::default())
}

/// [`decode_top_level`] with a session's cache of parsed JIDs (a session sees the same few
/// again and again: its own, its rooms', their occupants').
pub(crate) fn decode_top_level_cached(
    bytes: &[u8],
    ctx: &NsContext,
    jids: &mut reader::JidCache,
) -> Result<TopLevel, DecodeError> {
    let mut r = XmlReader::new(bytes, ctx)?;
    r.jids = std::mem::take(jids);
    let result = decode_top_level_with(&mut r);
    *jids = std::mem::take(&mut r.jids);
    result
}

fn decode_top_level_with(r: &mut XmlReader<'_>) -> Result<TopLevel, DecodeError> {
    let start = loop {
        match r.next()? {
            Ev::Start(s) => break s,
            Ev::Text(t) if t.trim().is_empty() => {}
            _ => return Err(DecodeError::xml("no element")),
        }
    };
    let top = match (start.ns.as_ref(), start.name) {
        (crate::ns::CLIENT, "message") => {
            TopLevel::Stanza(Stanza::Message(Box::new(message::decode(r, &start)?)))
        }
        (crate::ns::CLIENT, "presence") => {
            TopLevel::Stanza(Stanza::Presence(Box::new(presence::decode(r, &start)?)))
        }
        (crate::ns::CLIENT, "iq") => TopLevel::Stanza(Stanza::Iq(Box::new(decode_iq(r, &start)?))),
        _ => TopLevel::Other(r.element(&start)?),
    };
    loop {
        match r.next()? {
            Ev::Eof => return Ok(top),
            Ev::Text(t) if t.trim().is_empty() => {}
            _ => return Err(DecodeError::xml("content after the element")),
        }
    }
}

pub(crate) fn jid_attr(
    r: &mut XmlReader<'_>,
    s: &reader::Start<'_>,
    name: &'static str,
) -> Result<Option<jid::Jid>, DecodeError> {
    match s.attr(name)? {
        None => Ok(None),
        Some(v) => r
            .jid(&v)
            .map(Some)
            .map_err(|_| DecodeError::invalid(if name == "from" { "from JID" } else { "JID" }, &v)),
    }
}

fn decode_iq(r: &mut XmlReader<'_>, start: &reader::Start<'_>) -> Result<Iq, DecodeError> {
    let kind = match start.req("type")?.as_ref() {
        "get" => IqType::Get,
        "set" => IqType::Set,
        "result" => IqType::Result,
        "error" => IqType::Error,
        other => return Err(DecodeError::invalid("iq type", other)),
    };
    let mut iq = Iq {
        from: jid_attr(r, start, "from")?,
        to: jid_attr(r, start, "to")?,
        id: start.req("id")?.into_owned(),
        kind,
        payload: None,
        error: None,
    };
    loop {
        match r.next()? {
            Ev::Start(s) if s.is("error", crate::ns::CLIENT) => {
                iq.error = Some(xep::stanza_error::decode(r, &s)?);
            }
            Ev::Start(s) => {
                let el = r.element(&s)?;
                if iq.payload.is_none() {
                    iq.payload = Some(el);
                }
            }
            Ev::Text(_) => {}
            Ev::End => break,
            Ev::Eof => return Err(DecodeError::xml("unexpected end of input")),
        }
    }
    if matches!(kind, IqType::Get | IqType::Set) && iq.payload.is_none() {
        return Err(DecodeError::invalid("iq request", "without a payload"));
    }
    Ok(iq)
}

/// The local name of `bytes` if they are exactly one complete element in `jabber:client`.
pub(crate) fn top_level_name(bytes: &[u8], ctx: &NsContext) -> Result<String, DecodeError> {
    let mut scanner = crate::xml::Scanner::new(
        false,
        crate::xml::Limits {
            max_stanza_size: usize::MAX,
            max_depth: usize::MAX,
        },
    );
    scanner.push(bytes);
    let one = matches!(
        scanner.next_token(),
        Ok(Some(crate::xml::Token::Element(_)))
    ) && scanner.at_boundary();
    if !one {
        return Err(DecodeError::xml("not exactly one complete element"));
    }
    let mut r = XmlReader::new(bytes, ctx)?;
    loop {
        match r.next()? {
            Ev::Start(s) if s.ns == crate::ns::CLIENT => {
                // Read to the end, so that every tag's attributes and references are checked
                // before these bytes go out.
                let name = s.name.to_owned();
                r.skip(&s)?;
                return match r.next()? {
                    Ev::Eof => Ok(name),
                    _ => Err(DecodeError::xml("content after the element")),
                };
            }
            Ev::Start(s) => return Err(DecodeError::NotAStanza(s.name.to_owned())),
            Ev::Text(_) => {}
            _ => return Err(DecodeError::xml("no element")),
        }
    }
}

#[cfg(test)]
mod transcripts;

/// The error for input that ends inside an element.
pub(crate) fn eof() -> DecodeError {
    DecodeError::xml("unexpected end of input")
}

/// A number in text, or an invalid-value error naming `what`.
pub(crate) fn number<T: std::str::FromStr>(what: &'static str, t: &str) -> Result<T, DecodeError> {
    t.trim().parse().map_err(|_| DecodeError::invalid(what, t))
}
