//! XML framing: cut an XMPP byte stream into stanzas without building a tree.
//!
//! RFC 6120 §11 restricts XMPP to a subset of XML: no comments, processing instructions,
//! DTDs or entity declarations. The [`Scanner`] enforces that subset, the nesting of tags,
//! and the size and depth limits while bytes arrive in arbitrary chunks; each complete
//! top-level element is handed on as one contiguous byte slice. Full well-formedness
//! (attribute syntax, entities, namespaces, UTF-8) is checked when that slice is decoded.

use bytes::{Bytes, BytesMut};

use crate::error::XmlError;

/// Limits on what a peer may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest top-level element (stanza), in bytes, including its markup.
    pub max_stanza_size: usize,
    /// Deepest element nesting inside one stanza (the stanza itself is depth 1).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_stanza_size: 256 * 1024,
            max_depth: 64,
        }
    }
}

impl Limits {
    /// Limits with the given maximum stanza size and the default depth.
    pub fn with_max_stanza_size(max_stanza_size: usize) -> Self {
        Self {
            max_stanza_size,
            ..Self::default()
        }
    }
}

/// One framing unit found by the [`Scanner`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    /// `<stream:stream ...>`: the start tag, as sent (TCP framing only).
    StreamOpen(Bytes),
    /// A complete top-level element, from `<` to the last `>`.
    Element(Bytes),
    /// `</stream:stream>` (TCP framing only).
    StreamClose,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Character data; `start` is where the current run began.
    Text,
    /// Inside `<...>`; `quote` is the open attribute quote, or 0.
    Tag { start: usize, quote: u8 },
    /// Inside `<![CDATA[...]]>`.
    CData { start: usize },
    /// A fatal error was reported; nothing more is scanned.
    Failed,
}

/// Incremental, allocation-light framer for one XML stream (or one WebSocket frame).
///
/// `stanza_depth` is the element depth at which stanzas start: 1 for a TCP stream (children
/// of `<stream:stream>`), 0 for WebSocket, where every frame is one top-level element.
#[derive(Debug)]
pub(crate) struct Scanner {
    buf: BytesMut,
    pos: usize,
    state: State,
    depth: usize,
    stanza_depth: usize,
    stanza_start: usize,
    /// Open element names inside the current stanza, as ranges of `buf`.
    open: Vec<(usize, usize)>,
    limits: Limits,
    seen_decl: bool,
}

const CDATA_OPEN: &[u8] = b"<![CDATA[";

impl Scanner {
    pub(crate) fn new(stream_framing: bool, limits: Limits) -> Self {
        Self {
            buf: BytesMut::new(),
            pos: 0,
            state: State::Text,
            depth: 0,
            stanza_depth: usize::from(stream_framing),
            stanza_start: 0,
            open: Vec::new(),
            limits,
            seen_decl: false,
        }
    }

    /// Appends received bytes.
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// A scanner for a restarted stream (after SASL success) that keeps the bytes already
    /// received after the last token: the server may send its new header in the same read.
    pub(crate) fn restart(&mut self) -> Self {
        let mut next = Self::new(self.stanza_depth == 1, self.limits);
        next.buf = std::mem::take(&mut self.buf);
        next
    }

    /// True when nothing at all is buffered after the last token.
    pub(crate) fn is_drained(&self) -> bool {
        self.buf.is_empty()
    }

    /// True when no partial element is buffered (whitespace aside).
    pub(crate) fn at_boundary(&self) -> bool {
        self.depth == self.stanza_depth
            && matches!(self.state, State::Text)
            && self.buf[self.pos.min(self.buf.len())..]
                .iter()
                .all(u8::is_ascii_whitespace)
    }

    /// Returns the next complete token, `Ok(None)` when more bytes are needed.
    pub(crate) fn next_token(&mut self) -> Result<Option<Token>, XmlError> {
        let r = self.scan();
        if r.is_err() {
            self.state = State::Failed;
            self.buf.clear();
        }
        r
    }

    fn scan(&mut self) -> Result<Option<Token>, XmlError> {
        loop {
            match self.state {
                State::Failed => return Ok(None),
                State::Text => {
                    let rest = &self.buf[self.pos..];
                    let found = memchr::memchr(b'<', rest);
                    let text_end = found.map_or(self.buf.len(), |i| self.pos + i);
                    if self.depth <= self.stanza_depth {
                        // Between stanzas only whitespace (keep-alives) is allowed.
                        if !self.buf[self.pos..text_end]
                            .iter()
                            .all(u8::is_ascii_whitespace)
                        {
                            return Err(XmlError::NotWellFormed("text outside of a stanza"));
                        }
                        // Drop it so that idle keep-alives never grow the buffer.
                        let _ = self.buf.split_to(text_end);
                        self.pos = 0;
                        if found.is_none() {
                            return Ok(None);
                        }
                    } else {
                        self.pos = text_end;
                        self.check_size()?;
                        if found.is_none() {
                            return Ok(None);
                        }
                    }
                    self.state = State::Tag {
                        start: self.pos,
                        quote: 0,
                    };
                    self.pos += 1;
                }
                State::CData { start } => {
                    match memchr::memmem::find(&self.buf[self.pos..], b"]]>") {
                        Some(i) => {
                            self.pos += i + 3;
                            self.state = State::Text;
                        }
                        None => {
                            // Keep the last two bytes: they may begin the terminator.
                            self.pos = self.buf.len().saturating_sub(2).max(start);
                            self.check_size()?;
                            return Ok(None);
                        }
                    }
                }
                State::Tag { start, quote } => {
                    // Decide on `<!` and `<?` before looking for '>'.
                    if self.pos == start + 1 {
                        let Some(&second) = self.buf.get(start + 1) else {
                            return Ok(None);
                        };
                        match second {
                            b'!' => {
                                let avail = &self.buf[start..];
                                let n = avail.len().min(CDATA_OPEN.len());
                                if avail[..n] != CDATA_OPEN[..n] {
                                    return Err(if avail.get(2) == Some(&b'-') {
                                        XmlError::Restricted("comment")
                                    } else {
                                        XmlError::Restricted("DTD or entity declaration")
                                    });
                                }
                                if n < CDATA_OPEN.len() {
                                    return Ok(None);
                                }
                                if self.depth <= self.stanza_depth {
                                    return Err(XmlError::NotWellFormed(
                                        "CDATA outside of a stanza",
                                    ));
                                }
                                self.pos = start + CDATA_OPEN.len();
                                self.state = State::CData { start };
                                continue;
                            }
                            b'?' => {
                                // Only the XML declaration, once, before the stream header.
                                let avail = &self.buf[start..];
                                let n = avail.len().min(6);
                                let decl_ok =
                                    self.depth == 0 && self.stanza_depth == 1 && !self.seen_decl;
                                if !decl_ok || avail[..n] != b"<?xml "[..n] {
                                    return Err(XmlError::Restricted("processing instruction"));
                                }
                                if n < 6 {
                                    return Ok(None);
                                }
                                match memchr::memmem::find(&self.buf[start..], b"?>") {
                                    Some(i) => {
                                        self.seen_decl = true;
                                        let _ = self.buf.split_to(start + i + 2);
                                        self.pos = 0;
                                        self.state = State::Text;
                                        continue;
                                    }
                                    None if self.buf.len() - start > 256 => {
                                        return Err(XmlError::NotWellFormed(
                                            "XML declaration too long",
                                        ));
                                    }
                                    None => return Ok(None),
                                }
                            }
                            _ => {}
                        }
                    }
                    let mut quote = quote;
                    let mut end = None;
                    let mut i = self.pos;
                    while i < self.buf.len() {
                        let found = if quote == 0 {
                            memchr::memchr3(b'>', b'"', b'\'', &self.buf[i..])
                        } else {
                            // XML 1.0 §2.3: no `<` in an attribute value.
                            memchr::memchr2(quote, b'<', &self.buf[i..])
                        };
                        let Some(off) = found else {
                            i = self.buf.len();
                            break;
                        };
                        let at = i + off;
                        let b = self.buf[at];
                        i = at + 1;
                        if quote != 0 {
                            if b == b'<' {
                                return Err(XmlError::NotWellFormed("'<' in an attribute value"));
                            }
                            quote = 0;
                        } else if b == b'>' {
                            end = Some(at);
                            break;
                        } else {
                            quote = b;
                        }
                    }
                    self.pos = i;
                    let Some(end) = end else {
                        self.state = State::Tag { start, quote };
                        if self.depth <= self.stanza_depth && self.pos - start > 8192 {
                            // A stream header or empty stanza tag this long is not honest.
                            self.check_tag_size(start)?;
                        }
                        self.check_size()?;
                        return Ok(None);
                    };
                    self.state = State::Text;
                    if let Some(token) = self.tag(start, end)? {
                        return Ok(Some(token));
                    }
                }
            }
        }
    }

    /// Bytes from `start` up to what has been scanned (not what has been received: a read
    /// may hold several stanzas).
    fn check_tag_size(&self, start: usize) -> Result<(), XmlError> {
        if self.pos.saturating_sub(start) > self.limits.max_stanza_size {
            return Err(XmlError::TooLarge {
                limit: self.limits.max_stanza_size,
            });
        }
        Ok(())
    }

    fn check_size(&self) -> Result<(), XmlError> {
        let start = if self.depth > self.stanza_depth {
            self.stanza_start
        } else {
            match self.state {
                State::Tag { start, .. } | State::CData { start } => start,
                _ => return Ok(()),
            }
        };
        self.check_tag_size(start)
    }

    /// Handles one complete tag `buf[start..=end]`.
    fn tag(&mut self, start: usize, end: usize) -> Result<Option<Token>, XmlError> {
        let tag = &self.buf[start..=end];
        if tag.get(1) == Some(&b'/') {
            let name = trim_ascii_end(&tag[2..tag.len() - 1]);
            if self.depth == 0 || (self.depth == self.stanza_depth && self.stanza_depth == 0) {
                return Err(XmlError::NotWellFormed(
                    "closing tag without an open element",
                ));
            }
            if self.depth == 1 && self.stanza_depth == 1 {
                if !is_stream_name(name) {
                    return Err(XmlError::NotWellFormed(
                        "closing tag does not match the stream",
                    ));
                }
                self.depth = 0;
                let _ = self.buf.split_to(end + 1);
                self.pos = 0;
                return Ok(Some(Token::StreamClose));
            }
            let (s, e) = self
                .open
                .pop()
                .expect("depth > stanza_depth implies an open element");
            if self.buf[s..e] != *name {
                return Err(XmlError::NotWellFormed(
                    "closing tag does not match the open element",
                ));
            }
            self.depth -= 1;
            if self.depth == self.stanza_depth {
                return self.take_stanza(end).map(Some);
            }
            self.check_size()?;
            return Ok(None);
        }
        let empty = tag.len() >= 3 && tag[tag.len() - 2] == b'/';
        let name_len = tag[1..]
            .iter()
            .position(|&b| b.is_ascii_whitespace() || b == b'/' || b == b'>')
            .unwrap_or(tag.len() - 1);
        if name_len == 0 || !is_name_start(tag[1]) {
            return Err(XmlError::NotWellFormed("invalid element name"));
        }
        let name = (start + 1, start + 1 + name_len);
        // Attribute syntax, names and duplicates: here for the stream header; every element
        // inside the stream is decoded by the codec's reader, which checks them as it reads
        // each tag's attributes (one pass instead of two).
        if self.depth == 0 && self.stanza_depth == 1 {
            check_unique_attributes(&tag[1 + name_len..])?;
            if empty || !is_stream_name(&self.buf[name.0..name.1]) {
                return Err(XmlError::NotWellFormed("expected a <stream:stream> header"));
            }
            self.check_tag_size(start)?;
            self.depth = 1;
            let _ = self.buf.split_to(start);
            let header = self.buf.split_to(end + 1 - start).freeze();
            self.pos = 0;
            return Ok(Some(Token::StreamOpen(header)));
        }
        if self.depth == self.stanza_depth {
            self.stanza_start = start;
        }
        let new_depth = self.depth - self.stanza_depth + 1;
        if new_depth > self.limits.max_depth {
            return Err(XmlError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        if empty {
            if self.depth == self.stanza_depth {
                return self.take_stanza(end).map(Some);
            }
        } else {
            self.open.push(name);
            self.depth += 1;
        }
        self.check_size()?;
        Ok(None)
    }

    fn take_stanza(&mut self, end: usize) -> Result<Token, XmlError> {
        debug_assert!(self.open.is_empty());
        if end + 1 - self.stanza_start > self.limits.max_stanza_size {
            return Err(XmlError::TooLarge {
                limit: self.limits.max_stanza_size,
            });
        }
        let _ = self.buf.split_to(self.stanza_start);
        let stanza = self.buf.split_to(end + 1 - self.stanza_start).freeze();
        self.pos = 0;
        self.stanza_start = 0;
        Ok(Token::Element(stanza))
    }
}

/// XML 1.0 §3.1: an attribute name appears at most once per tag. Prefixes are compared
/// as written; the decoder resolves namespaces.
fn check_unique_attributes(mut rest: &[u8]) -> Result<(), XmlError> {
    // Names of the first attributes stay on the stack; most tags have fewer than eight.
    let mut few: [&[u8]; 8] = [&[]; 8];
    let mut many: Vec<&[u8]> = Vec::new();
    let mut n = 0usize;
    while let Some(i) = rest
        .iter()
        .position(|b| !b.is_ascii_whitespace() && *b != b'/' && *b != b'>')
    {
        rest = &rest[i..];
        let Some(eq) = memchr::memchr(b'=', rest) else {
            return Err(XmlError::NotWellFormed("attribute without a value"));
        };
        let name = trim_ascii_end(&rest[..eq]);
        if !is_qname(name) {
            return Err(XmlError::NotWellFormed("invalid attribute name"));
        }
        if n < few.len() {
            if few[..n].contains(&name) {
                return Err(XmlError::NotWellFormed("duplicate attribute"));
            }
            few[n] = name;
        } else {
            if n == few.len() {
                many.extend_from_slice(&few);
            }
            many.push(name);
        }
        n += 1;
        let after = &rest[eq + 1..];
        let Some(q) = after.iter().position(|b| !b.is_ascii_whitespace()) else {
            return Err(XmlError::NotWellFormed("attribute without a value"));
        };
        let quote = after[q];
        if quote != b'"' && quote != b'\'' {
            return Err(XmlError::NotWellFormed("attribute value not quoted"));
        }
        let Some(close) = memchr::memchr(quote, &after[q + 1..]) else {
            return Err(XmlError::NotWellFormed("unterminated attribute value"));
        };
        rest = &after[q + 1 + close + 1..];
        // XML 1.0 §3.1: attributes are separated by white space.
        if rest
            .first()
            .is_some_and(|b| !b.is_ascii_whitespace() && *b != b'/' && *b != b'>')
        {
            return Err(XmlError::NotWellFormed(
                "attributes not separated by white space",
            ));
        }
    }
    if many.len() > 1 {
        many.sort_unstable();
        if many.windows(2).any(|w| w[0] == w[1]) {
            return Err(XmlError::NotWellFormed("duplicate attribute"));
        }
    }
    Ok(())
}

/// A qualified name: one or two name parts separated by a colon, each an XML NCName (ASCII
/// names checked inline, others with rxml's rules, which minidom's writer applies too).
pub(crate) fn is_qname(n: &[u8]) -> bool {
    let ok = |p: &[u8]| {
        if !p.is_ascii() {
            return std::str::from_utf8(p)
                .is_ok_and(|s| rxml_validation::validate_ncname(s).is_ok());
        }
        !p.is_empty()
            && !matches!(p[0], b'0'..=b'9' | b'-' | b'.')
            && p.iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    };
    match memchr::memchr(b':', n) {
        None => ok(n),
        Some(i) => ok(&n[..i]) && ok(&n[i + 1..]) && memchr::memchr(b':', &n[i + 1..]).is_none(),
    }
}

/// Checks that `bytes` are exactly one complete element under the framer's rules (for
/// elements that did not come through a session's framer).
pub(crate) fn check_element(bytes: &[u8]) -> Result<(), XmlError> {
    let mut sc = Scanner::new(
        false,
        Limits {
            max_stanza_size: usize::MAX,
            max_depth: Limits::default().max_depth,
        },
    );
    sc.push(bytes);
    match sc.next_token()? {
        Some(Token::Element(_)) if sc.at_boundary() => Ok(()),
        _ => Err(XmlError::NotWellFormed("not exactly one complete element")),
    }
}

fn trim_ascii_end(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &s[..n]
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}

/// `stream` with any prefix: the namespace is checked when the header is decoded.
fn is_stream_name(name: &[u8]) -> bool {
    name == b"stream" || name.ends_with(b":stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &mut Scanner) -> Result<Vec<Token>, XmlError> {
        let mut v = Vec::new();
        while let Some(t) = s.next_token()? {
            v.push(t);
        }
        Ok(v)
    }

    fn el(s: &str) -> Token {
        Token::Element(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn frames_a_stream() {
        let mut s = Scanner::new(true, Limits::default());
        s.push(b"<?xml version='1.0'?><stream:stream a='>'>  <a x=\"/>\"/>\n<b><c>t&amp;</c><![CDATA[<x>]]></b> </stream:stream>");
        let t = all(&mut s).unwrap();
        assert_eq!(
            t[0],
            Token::StreamOpen(Bytes::from_static(b"<stream:stream a='>'>"))
        );
        assert_eq!(t[1], el("<a x=\"/>\"/>"));
        assert_eq!(t[2], el("<b><c>t&amp;</c><![CDATA[<x>]]></b>"));
        assert_eq!(t[3], Token::StreamClose);
    }

    #[test]
    fn byte_by_byte_is_the_same() {
        let input = b"<stream:stream><a x='1'>hi<![CDATA[ ]]]]></a><b/>";
        let mut whole = Scanner::new(true, Limits::default());
        whole.push(input);
        let expected = all(&mut whole).unwrap();
        let mut s = Scanner::new(true, Limits::default());
        let mut got = Vec::new();
        for b in input {
            s.push(&[*b]);
            got.extend(all(&mut s).unwrap());
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn refuses_restricted_xml() {
        for bad in [
            &b"<stream:stream><!-- c --><a/>"[..],
            b"<stream:stream><!DOCTYPE x>",
            b"<!DOCTYPE stream>",
            b"<stream:stream><a><?pi x?></a>",
            b"<stream:stream><!ENTITY e 'x'>",
        ] {
            let mut s = Scanner::new(true, Limits::default());
            s.push(bad);
            assert!(
                matches!(all(&mut s), Err(XmlError::Restricted(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            &b"<stream:stream>text"[..],
            b"<stream:stream><a></b>",
            b"<x/>",
            b"<stream:stream><1a/>",
            b"<stream:stream></a>",
            b"<stream:stream x='1'y='2'>",
            b"<stream:stream x='1' x='2'>",
            b"<stream:stream q<r='1'>",
        ] {
            let mut s = Scanner::new(true, Limits::default());
            s.push(bad);
            assert!(
                matches!(all(&mut s), Err(XmlError::NotWellFormed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn enforces_limits() {
        let mut s = Scanner::new(
            true,
            Limits {
                max_stanza_size: 32,
                max_depth: 3,
            },
        );
        s.push(b"<stream:stream><a><b><c><d>");
        assert_eq!(all(&mut s), Err(XmlError::TooDeep { limit: 3 }));
        let mut s = Scanner::new(
            true,
            Limits {
                max_stanza_size: 32,
                max_depth: 3,
            },
        );
        s.push(b"<stream:stream><a>");
        s.push(&[b'x'; 40]);
        assert_eq!(all(&mut s), Err(XmlError::TooLarge { limit: 32 }));
        // Keep-alive whitespace never accumulates.
        let mut s = Scanner::new(
            true,
            Limits {
                max_stanza_size: 32,
                max_depth: 3,
            },
        );
        s.push(b"<stream:stream>");
        all(&mut s).unwrap();
        for _ in 0..100 {
            s.push(b"    ");
            all(&mut s).unwrap();
        }
        assert!(s.buf.is_empty());
    }

    #[test]
    fn websocket_frames_are_elements() {
        let mut s = Scanner::new(false, Limits::default());
        s.push(b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
        assert_eq!(all(&mut s).unwrap().len(), 1);
        assert!(s.at_boundary());
        s.push(b"<message><body>x</body>");
        assert!(all(&mut s).unwrap().is_empty());
        assert!(!s.at_boundary());
    }
}
