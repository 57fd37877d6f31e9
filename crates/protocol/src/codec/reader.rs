//! A namespace-resolving pull reader over one stanza's bytes, without a DOM.
//!
//! The hot stanzas (group messages, archive results, room presence, chat states) are decoded
//! straight from these events; anything else is handed to minidom as a sub-slice, with the
//! namespace bindings in scope, so unknown payloads stay available without slowing the hot path.

use std::borrow::Cow;

use minidom::Element;
use minidom::rxml::{Namespace, NcName};
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
    /// The stream's `xml:lang`, which its stanzas inherit (RFC 6120 §4.7.4).
    pub lang: Option<String>,
}

impl NsContext {
    /// The context of a client stream: default `jabber:client`, `stream:` bound.
    pub fn client() -> Self {
        Self {
            default: crate::ns::CLIENT.to_owned(),
            prefixes: vec![("stream".to_owned(), crate::ns::STREAM.to_owned())],
            lang: None,
        }
    }
}

/// A start tag with its namespace resolved.
pub(crate) struct Start<'a> {
    pub(crate) ns: Cow<'a, str>,
    pub(crate) name: &'a str,
    /// The tag's attributes (after the name), borrowed from the input.
    attrs: &'a str,
    /// Where each attribute's name and value are in `attrs`, found once when the tag was
    /// read; `None` for a tag with more than `ATTR_SPANS` attributes, looked up by scanning.
    spans: Option<AttrSpans>,
}

/// Attributes whose positions a start tag keeps (more are rare: looked up by scanning).
const ATTR_SPANS: usize = 8;

/// Name and value positions, `[name_start, name_end, value_start, value_end]` in the tag's
/// attribute text (u16: a start tag is moved around by value, so it stays small; a tag with
/// 64 KiB of attributes is looked up by scanning).
#[derive(Clone, Copy)]
struct AttrSpans {
    n: u8,
    /// Some value has a reference (`&`): values must be unescaped.
    refs: bool,
    /// Some name has a prefix other than `xml` and `xmlns`: namespace rules to check.
    prefixed: bool,
    at: [[u16; 4]; ATTR_SPANS],
}

impl AttrSpans {
    /// Reads the positions; `Ok(None)` when there are too many attributes to keep.
    fn read(attrs: &str) -> Result<Option<Self>, DecodeError> {
        let mut spans = Self {
            n: 0,
            refs: false,
            prefixed: false,
            at: [[0; 4]; ATTR_SPANS],
        };
        if attrs.len() > usize::from(u16::MAX) {
            return check_all(attrs).map(|()| None);
        }
        let base = attrs.as_ptr() as usize;
        // In range: every offset is within `attrs`, whose length fits a u16.
        let pos = |s: &str| (s.as_ptr() as usize - base) as u16;
        let mut it = RawAttrs::checked(attrs);
        spans.refs = it.refs;
        for a in &mut it {
            let (name, value) = a?;
            if usize::from(spans.n) == ATTR_SPANS {
                return check_all(attrs).map(|()| None);
            }
            check_name(name)?;
            // `xml:` needs no check: no other prefix may be bound to its namespace.
            spans.prefixed |= name.as_bytes().contains(&b':')
                && !name.starts_with("xml:")
                && !name.starts_with("xmlns:");
            if spans.names(attrs).any(|n| n == name.as_bytes()) {
                return Err(DecodeError::xml("duplicate attribute"));
            }
            let (ns, vs) = (pos(name), pos(value));
            spans.at[usize::from(spans.n)] =
                [ns, ns + name.len() as u16, vs, vs + value.len() as u16];
            spans.n += 1;
        }
        Ok(Some(spans))
    }

    /// The `i`-th attribute's name and raw value.
    fn pair<'s>(&self, attrs: &'s str, i: usize) -> Option<(&'s str, &'s str)> {
        let [ns, ne, vs, ve] = *self.at[..usize::from(self.n)].get(i)?;
        let at = |a: u16, b: u16| attrs.get(usize::from(a)..usize::from(b));
        Some((at(ns, ne)?, at(vs, ve)?))
    }

    /// The attribute names.
    fn names<'s>(&'s self, attrs: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        // Bytes, not `str`: comparisons need no character-boundary checks.
        let b = attrs.as_bytes();
        self.at[..usize::from(self.n)]
            .iter()
            .map(move |&[ns, ne, _, _]| b.get(usize::from(ns)..usize::from(ne)).unwrap_or_default())
    }
}

/// A start tag's attributes as (name, raw value): from the positions found when the tag was
/// read, or by scanning a tag with many.
enum AttrPairs<'a> {
    Spans(AttrSpans, &'a str, usize),
    Scan(RawAttrs<'a>),
}

impl<'a> AttrPairs<'a> {
    fn new(spans: Option<AttrSpans>, attrs: &'a str) -> Self {
        match spans {
            Some(spans) => Self::Spans(spans, attrs, 0),
            None => Self::Scan(RawAttrs::new(attrs)),
        }
    }
}

impl<'a> Iterator for AttrPairs<'a> {
    type Item = Result<(&'a str, &'a str), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Spans(spans, attrs, i) => {
                let pair = spans.pair(attrs, *i)?;
                *i += 1;
                Some(Ok(pair))
            }
            Self::Scan(raw) => raw.next(),
        }
    }
}

impl<'a> Start<'a> {
    pub(crate) fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }

    /// Every attribute, without scanning the tag again when its positions were kept.
    fn pairs(&self) -> AttrPairs<'a> {
        AttrPairs::new(self.spans, self.attrs)
    }

    /// An unprefixed attribute's unescaped value.
    pub(crate) fn attr(&self, name: &str) -> Result<Option<Cow<'a, str>>, DecodeError> {
        if let Some(spans) = &self.spans {
            let at = |a: u16, b: u16| {
                self.attrs
                    .get(usize::from(a)..usize::from(b))
                    .unwrap_or_default()
            };
            for &[ns, ne, vs, ve] in &spans.at[..usize::from(spans.n)] {
                if at(ns, ne) == name {
                    let value = at(vs, ve);
                    // No `&` in the whole tag: the value is the text itself (its characters
                    // were checked with the whole element).
                    if !spans.refs {
                        return Ok(Some(Cow::Borrowed(value)));
                    }
                    return attr_value(value).map(Some);
                }
            }
            return Ok(None);
        }
        // A tag with many attributes: one scan of its text per lookup (it was checked whole
        // when it was read, `check_all`).
        for a in RawAttrs::new(self.attrs) {
            let (key, value) = a?;
            if key == name {
                return attr_value(value).map(Some);
            }
        }
        Ok(None)
    }

    pub(crate) fn attr_string(&self, name: &str) -> Result<Option<String>, DecodeError> {
        Ok(self.attr(name)?.map(Cow::into_owned))
    }

    /// A required attribute.
    pub(crate) fn req(&self, name: &'static str) -> Result<Cow<'a, str>, DecodeError> {
        self.attr(name)?.ok_or(DecodeError::MissingAttribute {
            element: self.name.to_owned(),
            attribute: name,
        })
    }
}

/// XML 1.0 §3.1 / Namespaces §3: an attribute name is a QName.
fn check_name(name: &str) -> Result<(), DecodeError> {
    if crate::xml::is_qname(name.as_bytes()) {
        Ok(())
    } else {
        Err(DecodeError::xml("invalid attribute name"))
    }
}

/// Every attribute of a tag with many: syntax, names, and no name twice (prefixes compared
/// as written, like the framer does for the stream header).
fn check_all(attrs: &str) -> Result<(), DecodeError> {
    let mut names = Vec::new();
    for a in RawAttrs::checked(attrs) {
        let (name, _) = a?;
        check_name(name)?;
        names.push(name);
    }
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(DecodeError::xml("duplicate attribute"));
    }
    Ok(())
}

/// An attribute value: borrowed when it has no references. Raw input was checked for
/// XML characters as a whole (`XmlReader::new`); what references produce is checked here.
fn attr_value(v: &str) -> Result<Cow<'_, str>, DecodeError> {
    if !v.as_bytes().contains(&b'&') {
        return Ok(Cow::Borrowed(v));
    }
    let value = quick_xml::escape::unescape(v).map_err(|e| DecodeError::xml(e.to_string()))?;
    check_chars(value.as_bytes())?;
    Ok(Cow::Owned(value.into_owned()))
}

/// The `name='value'` pairs of a start tag's attributes (quick-xml leaves out the `/` of an
/// empty-element tag). Text that is not such pairs separated by white space, or a value
/// with a malformed reference, ends the iteration with an error, never a panic. (A `<` in a
/// value is refused by the framer, which every element passes first.)
struct RawAttrs<'a> {
    s: &'a str,
    i: usize,
    /// Check the references in values (the tag has an `&`).
    refs: bool,
}

impl<'a> RawAttrs<'a> {
    /// Pairs of a tag already read (and checked).
    fn new(s: &'a str) -> Self {
        Self {
            s,
            i: 0,
            refs: false,
        }
    }

    /// Pairs of a tag being read: values with references are checked too, since a value
    /// may never be looked up.
    fn checked(s: &'a str) -> Self {
        Self {
            s,
            i: 0,
            refs: memchr::memchr(b'&', s.as_bytes()).is_some(),
        }
    }

    fn fail(&mut self) -> Option<Result<(&'a str, &'a str), DecodeError>> {
        self.i = self.s.len();
        Some(Err(DecodeError::xml("malformed attribute")))
    }
}

impl<'a> Iterator for RawAttrs<'a> {
    type Item = Result<(&'a str, &'a str), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.s.as_bytes();
        let ws = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
        let mut i = self.i;
        while i < b.len() && ws(b[i]) {
            i += 1;
        }
        if i >= b.len() {
            self.i = b.len();
            return None;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' {
            i += 1;
        }
        let mut name_end = i;
        while name_end > start && ws(b[name_end - 1]) {
            name_end -= 1;
        }
        i += 1;
        while i < b.len() && ws(b[i]) {
            i += 1;
        }
        let Some(&quote @ (b'\'' | b'"')) = b.get(i) else {
            return self.fail();
        };
        let value_start = i + 1;
        // Values (ids, JIDs, hashes) are most of a tag's bytes: memchr's SIMD search.
        let Some(j) = memchr::memchr(quote, &b[value_start..]).map(|n| value_start + n) else {
            return self.fail();
        };
        let reference = self.refs && memchr::memchr(b'&', &b[value_start..j]).is_some();
        if name_end == start {
            return self.fail();
        }
        let (name_len, value_len) = (name_end - start, j - value_start);
        if name_len.max(value_len) > super::MAX_TOKEN_LEN {
            self.i = b.len();
            let (what, len) = if name_len > super::MAX_TOKEN_LEN {
                ("attribute name", name_len)
            } else {
                ("attribute value", value_len)
            };
            return Some(Err(DecodeError::TooLong {
                what,
                len,
                limit: super::MAX_TOKEN_LEN,
            }));
        }
        self.i = j + 1;
        // XML 1.0 §3.1: attributes are separated by white space.
        if b.get(j + 1).is_some_and(|&c| !ws(c)) {
            return self.fail();
        }
        // Every cut is next to an ASCII delimiter, so on a character boundary.
        match (self.s.get(start..name_end), self.s.get(value_start..j)) {
            // A value with references must unescape to XML characters, looked up or not.
            (Some(_), Some(value)) if reference && attr_value(value).is_err() => self.fail(),
            (Some(name), Some(value)) => Some(Ok((name, value))),
            _ => self.fail(),
        }
    }
}

/// One namespace binding: `prefix` (None = default) → uri, valid from `depth` down.
struct Binding<'a> {
    prefix: Option<&'a [u8]>,
    uri: Cow<'a, str>,
    depth: usize,
}

/// A 64-bit FxHash (rustc's): JIDs are short and the cache is bounded, so a fast hash
/// without per-process keys is enough (and keeps decoding deterministic).
#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// JIDs parsed before, by their text: a session sees the same few again and again (its
/// own, its rooms', their occupants'), and parsing one costs thousands of instructions
/// while a lookup and a clone cost a few hundred. Bounded: emptied when full.
#[derive(Debug, Default)]
pub(crate) struct JidCache {
    map: std::collections::HashMap<Box<str>, jid::Jid, std::hash::BuildHasherDefault<FxHasher>>,
    /// Keeps what it parses (a session's); the default, for a single stanza, keeps nothing.
    keep: bool,
}

impl JidCache {
    /// A cache that keeps what it parses, for a session.
    pub(crate) fn kept() -> Self {
        Self {
            keep: true,
            ..Self::default()
        }
    }

    /// Entries kept at most.
    const CAPACITY: usize = 512;

    /// Longest text kept: a JID is at most 3 × 1023 bytes once normalized, but the text
    /// may be far longer (characters that normalization drops), and the cache must stay
    /// small.
    const MAX_KEY: usize = 256;

    fn get_or_parse(&mut self, s: &str) -> Result<jid::Jid, jid::Error> {
        if let Some(j) = self.map.get(s) {
            return Ok(j.clone());
        }
        let j = jid::Jid::new(s)?;
        if !self.keep || s.len() > Self::MAX_KEY {
            return Ok(j);
        }
        if self.map.len() >= Self::CAPACITY {
            self.map.clear();
        }
        self.map.insert(s.into(), j.clone());
        Ok(j)
    }
}

/// A pull reader over one complete element.
pub(crate) struct XmlReader<'a> {
    /// Parsed JIDs, lent by the session for one stanza.
    pub(crate) jids: JidCache,
    input: &'a [u8],
    /// The same bytes, checked once as UTF-8 made of XML characters.
    text: &'a str,
    r: Reader<&'a [u8]>,
    bindings: Vec<Binding<'a>>,
    depth: usize,
    /// An empty element was returned as `Start`; its `End` comes next.
    pending_end: bool,
    /// The stream's `xml:lang`.
    lang: Option<&'a str>,
}

/// What the reader saw.
pub(crate) enum Ev<'a> {
    Start(Start<'a>),
    End,
    Text(Cow<'a, str>),
    Eof,
}

impl<'a> XmlReader<'a> {
    /// A reader over `input`, which must be UTF-8 made of XML characters (checked here
    /// once for the whole element, so that its pieces need no checks of their own).
    pub(crate) fn new(input: &'a [u8], ctx: &'a NsContext) -> Result<Self, DecodeError> {
        let text = simdutf8::basic::from_utf8(input)
            .map_err(|_| DecodeError::xml("input is not UTF-8"))?;
        check_chars(input)?;
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
        Ok(Self {
            jids: JidCache::default(),
            lang: ctx.lang.as_deref(),
            input,
            text,
            r,
            bindings,
            depth: 0,
            pending_end: false,
        })
    }

    /// The namespace bindings in scope now (after a start tag: the ones it declared, over
    /// the context's), as the context its children inherit.
    pub(crate) fn in_scope(&self) -> NsContext {
        let mut c = NsContext::default();
        for b in &self.bindings {
            match b.prefix {
                None => c.default = b.uri.clone().into_owned(),
                Some(b"xml") => {}
                Some(p) => {
                    let p = String::from_utf8_lossy(p).into_owned();
                    c.prefixes.retain(|(q, _)| *q != p);
                    c.prefixes.push((p, b.uri.clone().into_owned()));
                }
            }
        }
        c
    }

    /// The `xml:lang` the element inherits from its stream, if the stream declared one.
    pub(crate) fn inherited_lang(&self) -> Option<&'a str> {
        self.lang
    }

    /// Parses a JID, from the cache when it was seen before.
    pub(crate) fn jid(&mut self, s: &str) -> Result<jid::Jid, jid::Error> {
        self.jids.get_or_parse(s)
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
        let ev = self
            .r
            .read_event()
            .map_err(|e| DecodeError::xml(e.to_string()))?;
        match ev {
            Event::Start(tag) => self.start(tag).map(Ev::Start),
            Event::Empty(tag) => {
                let s = self.start(tag)?;
                self.pending_end = true;
                Ok(Ev::Start(s))
            }
            Event::End(_) => {
                self.end_element();
                Ok(Ev::End)
            }
            Event::Text(t) => match t.into_inner() {
                // A slice of the checked input: no checks again.
                Cow::Borrowed(b) => self
                    .input_str(b)
                    .map(|s| Ev::Text(Cow::Borrowed(s)))
                    .ok_or_else(|| DecodeError::xml("text outside the input")),
                Cow::Owned(b) => {
                    check_chars(&b)?;
                    String::from_utf8(b)
                        .map(|s| Ev::Text(Cow::Owned(s)))
                        .map_err(|_| DecodeError::xml("text is not UTF-8"))
                }
            },
            Event::CData(t) => std::str::from_utf8(&t.into_inner())
                .map(|s| Ev::Text(Cow::Owned(s.to_owned())))
                .map_err(|_| DecodeError::xml("CDATA is not UTF-8")),
            Event::GeneralRef(r) => {
                // The five predefined entities (what servers write) need no allocation.
                let predefined = match r.as_ref() {
                    b"amp" => Some("&"),
                    b"lt" => Some("<"),
                    b"gt" => Some(">"),
                    b"quot" => Some("\""),
                    b"apos" => Some("'"),
                    _ => None,
                };
                if let Some(s) = predefined {
                    return Ok(Ev::Text(Cow::Borrowed(s)));
                }
                let c = r
                    .resolve_char_ref()
                    .map_err(|e| DecodeError::xml(e.to_string()))?
                    .ok_or_else(|| DecodeError::xml("undefined entity"))?;
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

    fn start(&mut self, tag: BytesStart<'a>) -> Result<Start<'a>, DecodeError> {
        self.depth += 1;
        // The attributes are read (syntax, names, duplicates checked) once, here; namespace
        // declarations first, since they apply to the element's own name (most tags have
        // none).
        let attrs = self
            .input_str(tag.attributes_raw())
            .ok_or_else(|| DecodeError::xml("tag outside the input"))?;
        let spans = AttrSpans::read(attrs)?;
        let declares = match &spans {
            Some(sp) => sp.names(attrs).any(|n| n.starts_with(b"xmlns")),
            None => attrs.contains("xmlns"),
        };
        for a in AttrPairs::new(spans, attrs).filter(|_| declares) {
            let (key, value) = a?;
            let prefix = if key == "xmlns" {
                None
            } else if let Some(p) = key.strip_prefix("xmlns:") {
                Some(p.as_bytes())
            } else {
                continue;
            };
            let uri = attr_value(value)?;
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
            if uri.is_empty() && prefix.is_some() {
                // Namespaces in XML 1.0 §3: a prefix cannot be undeclared.
                return Err(DecodeError::xml("empty namespace name for a prefix"));
            }
            self.bindings.push(Binding {
                prefix,
                uri,
                depth: self.depth,
            });
        }
        let prefixed = match &spans {
            Some(sp) => sp.prefixed,
            None => attrs.contains(':'),
        };
        if prefixed {
            self.check_prefixed_attributes(attrs, spans.as_ref())?;
        }
        let qname = tag.name();
        let full = qname.as_ref();
        if full.len() > super::MAX_TOKEN_LEN {
            return Err(DecodeError::TooLong {
                what: "element name",
                len: full.len(),
                limit: super::MAX_TOKEN_LEN,
            });
        }
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
        // The whole input is known to be UTF-8, and a name ends at an ASCII delimiter.
        let name = self
            .input_str(local)
            .ok_or_else(|| DecodeError::xml("element name is not UTF-8"))?;
        Ok(Start {
            ns,
            name,
            spans,
            attrs,
        })
    }

    /// Namespaces in XML 1.0 §5.3 and §6.2: a prefixed attribute's prefix is bound, and no
    /// two attributes have the same namespace and local name (`p:a` and `q:a` with `p` and
    /// `q` bound to one namespace). Rare enough to check by a plain scan.
    fn check_prefixed_attributes(
        &self,
        attrs: &str,
        spans: Option<&AttrSpans>,
    ) -> Result<(), DecodeError> {
        match spans {
            Some(sp) => self.check_prefixed(sp.names(attrs).map(Ok)),
            None => self.check_prefixed(RawAttrs::new(attrs).map(|a| a.map(|(n, _)| n.as_bytes()))),
        }
    }

    fn check_prefixed<'s>(
        &self,
        names: impl Iterator<Item = Result<&'s [u8], DecodeError>>,
    ) -> Result<(), DecodeError> {
        // (namespace, local name) of the prefixed attributes; most tags have one (xml:lang).
        let mut few: [(&str, &[u8]); ATTR_SPANS] = [("", &[]); ATTR_SPANS];
        let mut many: Vec<(&str, &[u8])> = Vec::new();
        let mut n = 0;
        for name in names {
            let name = name?;
            let Some(colon) = memchr::memchr(b':', name) else {
                continue;
            };
            let (prefix, local) = (&name[..colon], &name[colon + 1..]);
            if prefix == b"xmlns" || prefix == b"xml" {
                continue;
            }
            let ns = match self.resolve(Some(prefix)) {
                Some(ns) => ns.as_ref(),
                None => return Err(DecodeError::xml("unbound attribute prefix")),
            };
            let dup = |&(n2, l2): &(&str, &[u8])| n2 == ns && l2 == local;
            if few[..n.min(ATTR_SPANS)].iter().any(dup) || many.iter().any(dup) {
                return Err(DecodeError::xml("duplicate attribute (same namespace)"));
            }
            if n < ATTR_SPANS {
                few[n] = (ns, local);
            } else {
                many.push((ns, local));
            }
            n += 1;
        }
        Ok(())
    }

    /// Re-borrows a slice of the input as text (same bytes, input lifetime).
    fn input_str(&self, s: &[u8]) -> Option<&'a str> {
        let base = self.input.as_ptr() as usize;
        let p = (s.as_ptr() as usize).checked_sub(base)?;
        self.text.get(p..p.checked_add(s.len())?)
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
                    Some(o) => {
                        if let Cow::Borrowed(first) = o {
                            // Text split by references: one allocation for all of it (the
                            // bytes up to the next tag bound what is left).
                            let left = first.len() + t.len() + self.text_left();
                            let mut all = String::with_capacity(left);
                            all.push_str(first);
                            *o = Cow::Owned(all);
                        }
                        o.to_mut().push_str(&t);
                    }
                },
                Ev::Start(s) => self.skip(&s)?,
                Ev::End => return Ok(out.unwrap_or(Cow::Borrowed(""))),
                Ev::Eof => return Err(DecodeError::xml("unexpected end of input")),
            }
        }
    }

    /// Bytes from the reader's position to the next `<`: an upper bound on the text that
    /// follows (references only shrink it).
    fn text_left(&self) -> usize {
        let pos = usize::try_from(self.r.buffer_position()).unwrap_or(usize::MAX);
        let rest = self.input.get(pos..).unwrap_or_default();
        memchr::memchr(b'<', rest).unwrap_or(rest.len())
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

    /// The element just started, as a minidom tree (the path for payloads the decoder does
    /// not type). Built from the tokens this reader reads anyway — each name, namespace,
    /// attribute and text already checked — instead of parsing the bytes a second time.
    pub(crate) fn element(&mut self, start: &Start<'_>) -> Result<Element, DecodeError> {
        let mut open = vec![self.bare_element(start)?];
        loop {
            match self.next()? {
                Ev::Start(s) => open.push(self.bare_element(&s)?),
                Ev::Text(t) => {
                    if let Some(e) = open.last_mut() {
                        e.append_text(t.into_owned());
                    }
                }
                Ev::End => {
                    let Some(done) = open.pop() else {
                        return Err(DecodeError::xml("unbalanced payload"));
                    };
                    match open.last_mut() {
                        Some(parent) => {
                            parent.append_child(done);
                        }
                        None => return Ok(done),
                    }
                }
                Ev::Eof => return Err(DecodeError::xml("unexpected end of input")),
            }
        }
    }

    /// An element with `start`'s name, namespace and attributes, and no children yet.
    fn bare_element(&self, start: &Start<'_>) -> Result<Element, DecodeError> {
        if start.ns.is_empty() {
            // minidom has no element outside every namespace: it would put an `xmlns=''`
            // element back into the inherited default namespace, changing what the payload
            // means. Refused (the stanza is dropped, the session carries on). Found by
            // fuzzing.
            return Err(DecodeError::invalid(
                "payload",
                "xmlns='' (default namespace undeclared) is not supported in unknown payloads",
            ));
        }
        let mut b = Element::builder(start.name, start.ns.as_ref());
        for a in start.pairs() {
            let (key, value) = a?;
            if key == "xmlns" || key.starts_with("xmlns:") {
                continue;
            }
            let value = attr_value(value)?.into_owned();
            let bad_name = |_| DecodeError::xml("invalid attribute name");
            b = match key.split_once(':') {
                None => b.attr(NcName::try_from(key).map_err(bad_name)?, value),
                Some((prefix, local)) => {
                    let ns = if prefix == "xml" {
                        Namespace::xml().clone()
                    } else {
                        self.resolve(Some(prefix.as_bytes()))
                            .map(|u| Namespace::from(u.clone().into_owned()))
                            .ok_or_else(|| DecodeError::xml("unbound attribute prefix"))?
                    };
                    b.attr_ns(ns, NcName::try_from(local).map_err(bad_name)?, value)
                }
            };
        }
        Ok(b.build())
    }
}

/// XML 1.0 §2.2 Char.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// XML 1.0 §2.2: no control characters (other than tab, newline, carriage return) and no
/// U+FFFE / U+FFFF, in text and attribute values.
fn check_chars(b: &[u8]) -> Result<(), DecodeError> {
    // 16 bytes at a time, without an early exit, so the compiler turns the inner loop into
    // vector compares: a chunk with no byte below 0x20 and no 0xEF (the lead byte of U+FFFE /
    // U+FFFF) is clean; only flagged chunks are looked at byte by byte.
    const CHUNK: usize = 16;
    let mut chunks = b.chunks_exact(CHUNK);
    for (n, chunk) in chunks.by_ref().enumerate() {
        let flagged = chunk
            .iter()
            .fold(0u8, |f, &c| f | u8::from(c < 0x20) | u8::from(c == 0xEF));
        if flagged != 0 {
            check_bytes(b, n * CHUNK, n * CHUNK + CHUNK)?;
        }
    }
    check_bytes(b, b.len() - chunks.remainder().len(), b.len())
}

/// The byte-by-byte check of `b[from..to]` (looking past `to` for a U+FFFE/U+FFFF sequence).
fn check_bytes(b: &[u8], from: usize, to: usize) -> Result<(), DecodeError> {
    for i in from..to {
        let c = b[i];
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

/// The name and the `id`, `type` and `from` attributes of an element's start tag, read
/// leniently (values longer than 3071 bytes, the longest JID, or with references are left
/// out): what a dropped stanza can still tell the application.
pub(crate) fn envelope(bytes: &[u8]) -> Option<super::Envelope> {
    let text = std::str::from_utf8(bytes.get(..bytes.len().min(64 * 1024))?)
        .ok()
        .or_else(|| {
            // Invalid UTF-8 further in: the start tag may still be readable.
            let end = memchr::memchr(b'>', bytes)?;
            std::str::from_utf8(&bytes[..end]).ok()
        })?;
    let rest = text.strip_prefix('<')?;
    let name_end = rest.find([' ', '\t', '\n', '\r', '/', '>'])?;
    let qname = &rest[..name_end];
    let name = qname.rsplit(':').next().unwrap_or(qname);
    let mut env = super::Envelope {
        name: name.to_owned(),
        id: None,
        kind: None,
        from: None,
    };
    // The framer refuses '<' and keeps '>' out of values' ends: the first '>' outside quotes
    // ends the tag.
    let mut quote = None;
    let tag_end = rest.char_indices().find_map(|(i, c)| {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
        None
    })?;
    let attrs = rest[name_end..tag_end].trim_end_matches('/');
    for (key, value) in RawAttrs::new(attrs).map_while(Result::ok) {
        if value.len() > 3071 || value.contains('&') {
            continue;
        }
        match key {
            "id" => env.id = Some(value.to_owned()),
            "type" => env.kind = Some(value.to_owned()),
            "from" => env.from = value.parse().ok(),
            _ => {}
        }
    }
    Some(env)
}
