//! A namespace-resolving pull reader over one stanza's bytes, without a DOM.
//!
//! The hot stanzas (group messages, archive results, room presence, chat states) are decoded
//! straight from these events; anything else is handed to minidom as a sub-slice, with the
//! namespace bindings in scope, so unknown payloads stay available without slowing the hot path.

use std::borrow::Cow;
use std::collections::BTreeMap;

use minidom::Element;
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::DecodeError;

/// Namespace bindings inherited from the stream header (default namespace and prefixes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NsContext {
    /// The default namespace (`jabber:client` on a client stream).
    pub default: String,
    /// Prefix bindings, e.g. `stream` → `http://etherx.jabber.org/streams`.
    pub prefixes: Vec<(String, String)>,
}

impl NsContext {
    /// The context of a client stream: default `jabber:client`, `stream:` bound.
    pub fn client() -> Self {
        Self {
            default: crate::ns::CLIENT.to_owned(),
            prefixes: vec![("stream".to_owned(), crate::ns::STREAM.to_owned())],
        }
    }

    pub(crate) fn from_minidom(map: &BTreeMap<Option<String>, String>) -> Self {
        let mut c = Self::default();
        for (k, v) in map {
            match k {
                None => c.default.clone_from(v),
                Some(p) => c.prefixes.push((p.clone(), v.clone())),
            }
        }
        c
    }
}

/// A start tag with its namespace resolved.
pub(crate) struct Start<'a> {
    pub(crate) ns: Cow<'a, str>,
    pub(crate) name: &'a str,
    tag: BytesStart<'a>,
    /// Offset of `<` in the input.
    offset: usize,
}

impl<'a> Start<'a> {
    pub(crate) fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }

    /// An unprefixed attribute's unescaped value.
    pub(crate) fn attr(&self, name: &str) -> Result<Option<Cow<'_, str>>, DecodeError> {
        // Syntax and duplicates were checked when the tag was read (`XmlReader::start` and
        // the framer): lookups skip quick-xml's per-call duplicate check.
        for a in self.tag.attributes().with_checks(false) {
            let a = a.map_err(|e| DecodeError::xml(e.to_string()))?;
            if a.key.as_ref() == name.as_bytes() {
                let value = match a.value {
                    // Attributes without references borrow from the input: no allocation.
                    Cow::Borrowed(v) if !v.contains(&b'&') => std::str::from_utf8(v)
                        .map(Cow::Borrowed)
                        .map_err(|_| DecodeError::xml("attribute is not UTF-8"))?,
                    _ => Cow::Owned(
                        a.unescape_value()
                            .map_err(|e| DecodeError::xml(e.to_string()))?
                            .into_owned(),
                    ),
                };
                check_chars(value.as_bytes())?;
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    pub(crate) fn attr_string(&self, name: &str) -> Result<Option<String>, DecodeError> {
        Ok(self.attr(name)?.map(Cow::into_owned))
    }

    /// A required attribute.
    pub(crate) fn req(&self, name: &'static str) -> Result<Cow<'_, str>, DecodeError> {
        self.attr(name)?.ok_or(DecodeError::MissingAttribute {
            element: self.name.to_owned(),
            attribute: name,
        })
    }
}

/// One namespace binding: `prefix` (None = default) → uri, valid from `depth` down.
struct Binding<'a> {
    prefix: Option<&'a [u8]>,
    uri: Cow<'a, str>,
    depth: usize,
}

/// A pull reader over one complete element.
pub(crate) struct XmlReader<'a> {
    input: &'a [u8],
    r: Reader<&'a [u8]>,
    bindings: Vec<Binding<'a>>,
    depth: usize,
    /// An empty element was returned as `Start`; its `End` comes next.
    pending_end: bool,
    /// An `xmlns=''` was seen (minidom resolves those differently: see `element`).
    saw_undeclaration: bool,
}

/// What the reader saw.
pub(crate) enum Ev<'a> {
    Start(Start<'a>),
    End,
    Text(Cow<'a, str>),
    Eof,
}

impl<'a> XmlReader<'a> {
    pub(crate) fn new(input: &'a [u8], ctx: &'a NsContext) -> Self {
        let mut r = Reader::from_reader(input);
        let c = r.config_mut();
        c.check_end_names = true;
        c.expand_empty_elements = false;
        c.trim_text(false);
        let mut bindings = Vec::with_capacity(4 + ctx.prefixes.len());
        bindings.push(Binding {
            prefix: Some(b"xml"),
            uri: Cow::Borrowed(crate::ns::XML),
            depth: 0,
        });
        bindings.push(Binding {
            prefix: None,
            uri: Cow::Borrowed(&ctx.default),
            depth: 0,
        });
        for (p, u) in &ctx.prefixes {
            bindings.push(Binding {
                prefix: Some(p.as_bytes()),
                uri: Cow::Borrowed(u),
                depth: 0,
            });
        }
        Self {
            input,
            r,
            bindings,
            depth: 0,
            pending_end: false,
            saw_undeclaration: false,
        }
    }

    fn resolve(&self, prefix: Option<&[u8]>) -> Option<&Cow<'a, str>> {
        self.bindings
            .iter()
            .rev()
            .find(|b| b.prefix == prefix)
            .map(|b| &b.uri)
    }

    /// The next event; text pieces (including entity references) come one at a time.
    pub(crate) fn next(&mut self) -> Result<Ev<'a>, DecodeError> {
        if self.pending_end {
            self.pending_end = false;
            self.end_element();
            return Ok(Ev::End);
        }
        let offset = self.r.buffer_position() as usize;
        let ev = self
            .r
            .read_event()
            .map_err(|e| DecodeError::xml(e.to_string()))?;
        match ev {
            Event::Start(tag) => self.start(tag, offset).map(Ev::Start),
            Event::Empty(tag) => {
                let s = self.start(tag, offset)?;
                self.pending_end = true;
                Ok(Ev::Start(s))
            }
            Event::End(_) => {
                self.end_element();
                Ok(Ev::End)
            }
            Event::Text(t) => {
                let raw = t.into_inner();
                check_chars(&raw)?;
                match raw {
                    Cow::Borrowed(b) => std::str::from_utf8(b)
                        .map(|s| Ev::Text(Cow::Borrowed(s)))
                        .map_err(|_| DecodeError::xml("text is not UTF-8")),
                    Cow::Owned(b) => String::from_utf8(b)
                        .map(|s| Ev::Text(Cow::Owned(s)))
                        .map_err(|_| DecodeError::xml("text is not UTF-8")),
                }
            }
            Event::CData(t) => std::str::from_utf8(&t.into_inner())
                .map(|s| Ev::Text(Cow::Owned(s.to_owned())))
                .map_err(|_| DecodeError::xml("CDATA is not UTF-8")),
            Event::GeneralRef(r) => {
                let c = match r
                    .resolve_char_ref()
                    .map_err(|e| DecodeError::xml(e.to_string()))?
                {
                    Some(c) => c,
                    None => match r.as_ref() {
                        b"amp" => '&',
                        b"lt" => '<',
                        b"gt" => '>',
                        b"quot" => '"',
                        b"apos" => '\'',
                        _ => return Err(DecodeError::xml("undefined entity")),
                    },
                };
                if !is_xml_char(c) {
                    return Err(DecodeError::xml(
                        "character reference to a non-XML character",
                    ));
                }
                Ok(Ev::Text(Cow::Owned(c.to_string())))
            }
            Event::Eof => Ok(Ev::Eof),
            Event::Comment(_) | Event::PI(_) | Event::DocType(_) | Event::Decl(_) => {
                Err(DecodeError::xml("restricted XML construct"))
            }
        }
    }

    fn start(&mut self, tag: BytesStart<'a>, offset: usize) -> Result<Start<'a>, DecodeError> {
        self.depth += 1;
        // Declarations first: they apply to the element's own name.
        // Attribute syntax, names and duplicates were checked by the framer; only namespace
        // declarations matter here, and most tags have none.
        let declares = memchr::memmem::find(tag.attributes_raw(), b"xmlns").is_some();
        for a in tag.attributes().with_checks(false).filter(|_| declares) {
            let a = a.map_err(|e| DecodeError::xml(e.to_string()))?;
            let key = a.key.as_ref();
            let prefix = if key == b"xmlns" {
                None
            } else if let Some(p) = key.strip_prefix(b"xmlns:") {
                Some(p)
            } else {
                continue;
            };
            let borrowed = match &a.value {
                Cow::Borrowed(v) if !v.contains(&b'&') => self.input_slice(v),
                _ => None,
            };
            let uri = match borrowed {
                Some(v) => Cow::Borrowed(
                    std::str::from_utf8(v)
                        .map_err(|_| DecodeError::xml("namespace is not UTF-8"))?,
                ),
                None => Cow::Owned(
                    a.unescape_value()
                        .map_err(|e| DecodeError::xml(e.to_string()))?
                        .into_owned(),
                ),
            };
            check_chars(uri.as_bytes())?;
            if let Some(p) = prefix {
                // Namespaces in XML 1.0 §3: a prefix is an NCName; `xmlns` cannot be declared
                // and `xml` only to its own namespace.
                let bad = p.is_empty()
                    || p.contains(&b':')
                    || p == b"xmlns"
                    || (p == b"xml") != (uri == crate::ns::XML);
                if bad {
                    return Err(DecodeError::xml("invalid namespace prefix declaration"));
                }
            } else if uri == crate::ns::XML || uri == "http://www.w3.org/2000/xmlns/" {
                return Err(DecodeError::xml("reserved namespace as the default"));
            }
            if uri.is_empty() {
                if prefix.is_some() {
                    // Namespaces in XML 1.0 §3: a prefix cannot be undeclared.
                    return Err(DecodeError::xml("empty namespace name for a prefix"));
                }
                self.saw_undeclaration = true;
            }
            // Keys borrow from the tag, which borrows from the input for a slice reader.
            let prefix = prefix.map(|p| self.input_slice(p));
            self.bindings.push(Binding {
                prefix: prefix.flatten(),
                uri,
                depth: self.depth,
            });
        }
        let qname = tag.name();
        let full = qname.as_ref();
        if !crate::xml::is_qname(full) {
            return Err(DecodeError::xml("invalid element name"));
        }
        let (prefix, local) = match memchr::memchr(b':', full) {
            Some(i) => (Some(&full[..i]), &full[i + 1..]),
            None => (None, full),
        };
        let ns = self
            .resolve(prefix)
            .cloned()
            .ok_or_else(|| DecodeError::xml("unbound namespace prefix"))?;
        let name = std::str::from_utf8(self.input_slice(local).unwrap_or_default())
            .map_err(|_| DecodeError::xml("element name is not UTF-8"))?;
        Ok(Start {
            ns,
            name,
            tag,
            offset,
        })
    }

    /// Re-borrows a slice of a tag as a slice of the input (same bytes, input lifetime).
    fn input_slice(&self, s: &[u8]) -> Option<&'a [u8]> {
        let base = self.input.as_ptr() as usize;
        let p = s.as_ptr() as usize;
        if p >= base && p + s.len() <= base + self.input.len() {
            Some(&self.input[p - base..p - base + s.len()])
        } else {
            None
        }
    }

    fn end_element(&mut self) {
        while self.bindings.last().is_some_and(|b| b.depth == self.depth) {
            self.bindings.pop();
        }
        self.depth = self.depth.saturating_sub(1);
    }

    /// The text content of the element just started, up to its end; child elements are
    /// skipped.
    pub(crate) fn text(&mut self, start: &Start<'_>) -> Result<Cow<'a, str>, DecodeError> {
        let _ = start;
        let mut out: Option<Cow<'a, str>> = None;
        loop {
            match self.next()? {
                Ev::Text(t) => match &mut out {
                    None => out = Some(t),
                    Some(o) => o.to_mut().push_str(&t),
                },
                Ev::Start(s) => self.skip(&s)?,
                Ev::End => return Ok(out.unwrap_or(Cow::Borrowed(""))),
                Ev::Eof => return Err(DecodeError::xml("unexpected end of input")),
            }
        }
    }

    /// Skips the rest of the element just started.
    pub(crate) fn skip(&mut self, start: &Start<'_>) -> Result<(), DecodeError> {
        let _ = start;
        let mut depth = 1usize;
        while depth > 0 {
            match self.next()? {
                Ev::Start(_) => depth += 1,
                Ev::End => depth -= 1,
                Ev::Text(_) => {}
                Ev::Eof => return Err(DecodeError::xml("unexpected end of input")),
            }
        }
        Ok(())
    }

    /// The element just started, as a minidom tree (the cold path for unknown payloads).
    pub(crate) fn element(&mut self, start: &Start<'_>) -> Result<Element, DecodeError> {
        let begin = start.offset;
        let mut prefixes: BTreeMap<Option<String>, String> = BTreeMap::new();
        // Bindings in scope, outermost first so inner ones win; the element's own
        // declarations are in its bytes.
        for b in self.bindings.iter().filter(|b| b.depth < self.depth) {
            let p = b.prefix.map(|p| String::from_utf8_lossy(p).into_owned());
            if p.as_deref() != Some("xml") {
                prefixes.insert(p, b.uri.clone().into_owned());
            }
        }
        self.saw_undeclaration = false;
        self.skip(start)?;
        let end = self.r.buffer_position() as usize;
        if std::mem::take(&mut self.saw_undeclaration) || start.ns.is_empty() {
            // minidom would put an `xmlns=''` element back into the inherited default
            // namespace, changing what the payload means: refuse it (the stanza is dropped,
            // the session carries on) rather than mis-model it. Found by fuzzing.
            return Err(DecodeError::invalid(
                "payload",
                "xmlns='' (default namespace undeclared) is not supported in unknown payloads",
            ));
        }
        Element::from_reader_with_prefixes(&self.input[begin..end], prefixes)
            .map_err(|e| DecodeError::xml(e.to_string()))
    }
}

/// XML 1.0 §2.2 Char.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// XML 1.0 §2.2: no control characters (other than tab, newline, carriage return) and no
/// U+FFFE / U+FFFF, in text and attribute values.
fn check_chars(b: &[u8]) -> Result<(), DecodeError> {
    // One pass: control characters, and the lead byte of U+FFFE / U+FFFF (EF BF BE/BF).
    for (i, &c) in b.iter().enumerate() {
        if c < 0x20 {
            if !matches!(c, b'\t' | b'\n' | b'\r') {
                return Err(DecodeError::xml("control character in text or attribute"));
            }
        } else if c == 0xEF
            && b.get(i + 1) == Some(&0xBF)
            && matches!(b.get(i + 2), Some(0xBE | 0xBF))
        {
            return Err(DecodeError::xml("non-character U+FFFE/U+FFFF"));
        }
    }
    Ok(())
}
