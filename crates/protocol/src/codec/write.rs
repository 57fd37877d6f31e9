//! A minimal XML writer for the encoders: appends escaped markup to a byte buffer.

/// Appends XML to a buffer. Names and namespaces are trusted constants; values and text are
/// escaped.
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    /// `<name`
    pub(crate) fn open(&mut self, name: &str) {
        self.buf.push(b'<');
        self.buf.extend_from_slice(name.as_bytes());
    }

    /// `<name xmlns='ns'`
    pub(crate) fn open_ns(&mut self, name: &str, ns: &str) {
        self.open(name);
        self.attr("xmlns", ns);
    }

    /// ` name='value'`
    pub(crate) fn attr(&mut self, name: &str, value: &str) {
        self.buf.push(b' ');
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"='");
        self.escape(value);
        self.buf.push(b'\'');
    }

    pub(crate) fn attr_opt(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.attr(name, v);
        }
    }

    /// `>`
    pub(crate) fn close_start(&mut self) {
        self.buf.push(b'>');
    }

    /// `/>`
    pub(crate) fn close_empty(&mut self) {
        self.buf.extend_from_slice(b"/>");
    }

    /// `</name>`
    pub(crate) fn end(&mut self, name: &str) {
        self.buf.extend_from_slice(b"</");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(b'>');
    }

    /// `<name xmlns='ns'/>`
    pub(crate) fn empty_ns(&mut self, name: &str, ns: &str) {
        self.open_ns(name, ns);
        self.close_empty();
    }

    /// `<name>text</name>` in the inherited namespace.
    pub(crate) fn text_element(&mut self, name: &str, text: &str) {
        self.open(name);
        self.close_start();
        self.text(text);
        self.end(name);
    }

    /// `<name xmlns='ns'>text</name>`
    pub(crate) fn text_element_ns(&mut self, name: &str, ns: &str, text: &str) {
        self.open_ns(name, ns);
        self.close_start();
        self.text(text);
        self.end(name);
    }

    pub(crate) fn text(&mut self, s: &str) {
        self.escape(s);
    }

    fn escape(&mut self, s: &str) {
        escape_into(&mut self.buf, s);
    }
}

/// Appends `s` escaped for character data or an attribute value: `& < > ' "` and CR (which
/// a parser would otherwise normalise away). The one escape of the crate; runs without
/// special characters are copied at once.
pub(crate) fn escape_into(buf: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let mut last = 0;
    for (i, &c) in b.iter().enumerate() {
        let rep: &[u8] = match c {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'\'' => b"&apos;",
            b'"' => b"&quot;",
            b'\r' => b"&#13;",
            _ => continue,
        };
        buf.extend_from_slice(&b[last..i]);
        buf.extend_from_slice(rep);
        last = i + 1;
    }
    buf.extend_from_slice(&b[last..]);
}

/// An `<iq/>` of `kind` to `to` with id `id`, whose payload `body` writes.
pub(crate) fn iq(
    kind: &str,
    to: Option<&str>,
    id: &str,
    body: impl FnOnce(&mut Writer),
) -> Vec<u8> {
    let mut w = Writer::with_capacity(256);
    w.open_ns("iq", crate::ns::CLIENT);
    w.attr("type", kind);
    w.attr_opt("to", to);
    w.attr("id", id);
    w.close_start();
    body(&mut w);
    w.end("iq");
    w.buf
}

/// A data form field with one or more values.
pub(crate) fn field(w: &mut Writer, var: &str, kind: Option<&str>, values: &[&str]) {
    w.open("field");
    w.attr("var", var);
    w.attr_opt("type", kind);
    w.close_start();
    for v in values {
        w.text_element("value", v);
    }
    w.end("field");
}

/// A XEP-0223 private PEP publish: `payload` written as item `item_id` of `node`, with
/// publish-options persist_items + whitelist access and any `extra` options.
pub(crate) fn private_publish(
    id: &str,
    node: &str,
    item_id: &str,
    extra: &[(&str, &str)],
    payload: impl FnOnce(&mut Writer),
) -> Vec<u8> {
    iq("set", None, id, |w| {
        w.open_ns("pubsub", "http://jabber.org/protocol/pubsub");
        w.close_start();
        w.open("publish");
        w.attr("node", node);
        w.close_start();
        w.open("item");
        w.attr("id", item_id);
        w.close_start();
        payload(w);
        w.end("item");
        w.end("publish");
        w.open("publish-options");
        w.close_start();
        w.open_ns("x", "jabber:x:data");
        w.attr("type", "submit");
        w.close_start();
        field(
            w,
            "FORM_TYPE",
            Some("hidden"),
            &["http://jabber.org/protocol/pubsub#publish-options"],
        );
        field(w, "pubsub#persist_items", None, &["true"]);
        for (var, value) in extra {
            field(w, var, None, &[value]);
        }
        field(w, "pubsub#access_model", None, &["whitelist"]);
        w.end("x");
        w.end("publish-options");
        w.end("pubsub");
    })
}

/// Requests every item of a PEP `node` of our own account (XEP-0060 items).
pub(crate) fn pubsub_items(id: &str, node: &str) -> Vec<u8> {
    iq("get", None, id, |w| {
        w.open_ns("pubsub", "http://jabber.org/protocol/pubsub");
        w.close_start();
        w.open("items");
        w.attr("node", node);
        w.close_empty();
        w.end("pubsub");
    })
}
