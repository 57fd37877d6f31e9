//! RFC 6120 §8.3: stanza errors, with the status codes the SDK reports.

use crate::codec::DecodeError;
use crate::codec::reader::{Ev, Start, XmlReader};
use crate::codec::write::Writer;
use crate::ns;

/// RFC 6120 §8.3.2 error type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorType {
    /// Retry after providing credentials.
    Auth,
    /// Do not retry.
    Cancel,
    /// Proceed (a warning).
    Continue,
    /// Retry after changing the data sent.
    Modify,
    /// Retry after waiting.
    Wait,
}

impl ErrorType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "auth" => Self::Auth,
            "cancel" => Self::Cancel,
            "continue" => Self::Continue,
            "modify" => Self::Modify,
            "wait" => Self::Wait,
            _ => return None,
        })
    }

    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Cancel => "cancel",
            Self::Continue => "continue",
            Self::Modify => "modify",
            Self::Wait => "wait",
        }
    }
}

/// A stanza error: its type, defined condition (e.g. `forbidden`) and the server's text.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct StanzaError {
    /// What the sender may do about it.
    pub kind: ErrorType,
    /// The defined condition's element name; `undefined-condition` when absent.
    pub condition: String,
    /// The server's human-readable text.
    pub text: Option<String>,
    /// The entity that generated the error.
    pub by: Option<String>,
    /// An application-specific condition (e.g. XEP-0363 `file-too-large`), and its text.
    pub application: Option<(String, String)>,
}

impl StanzaError {
    /// A new error.
    pub fn new(kind: ErrorType, condition: impl Into<String>, text: Option<String>) -> Self {
        Self {
            kind,
            condition: condition.into(),
            text,
            by: None,
            application: None,
        }
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.open("error");
        w.attr("type", self.kind.as_str());
        if let Some(by) = &self.by {
            w.attr("by", by);
        }
        w.close_start();
        w.empty_ns(&self.condition, ns::STANZAS);
        if let Some(t) = &self.text {
            w.text_element_ns("text", ns::STANZAS, t);
        }
        if let Some((name, text)) = &self.application {
            // The namespace of an application condition is not kept; ours is a placeholder.
            w.text_element_ns(name, "urn:groupchat:app-error", text);
        }
        w.end("error");
    }
}

/// Decodes `<error/>` (its start already read).
pub(crate) fn decode(r: &mut XmlReader<'_>, start: &Start<'_>) -> Result<StanzaError, DecodeError> {
    let kind = start.attr("type")?;
    let kind = kind
        .as_deref()
        .and_then(ErrorType::parse)
        .unwrap_or(ErrorType::Cancel);
    let mut e = StanzaError {
        kind,
        condition: String::new(),
        text: None,
        by: start.attr_string("by")?,
        application: None,
    };
    loop {
        match r.next()? {
            Ev::Start(s) if s.ns == ns::STANZAS && s.name == "text" => {
                e.text = Some(r.text(&s)?.into_owned())
            }
            Ev::Start(s) if s.ns == ns::STANZAS && e.condition.is_empty() => {
                e.condition = s.name.to_owned();
                r.skip(&s)?;
            }
            Ev::Start(s) if e.application.is_none() => {
                let name = s.name.to_owned();
                e.application = Some((name, deep_text(r)?));
            }
            Ev::Start(s) => r.skip(&s)?,
            Ev::Text(_) => {}
            Ev::End => break,
            Ev::Eof => return Err(DecodeError::xml("unexpected end of input")),
        }
    }
    if e.condition.is_empty() {
        e.condition = "undefined-condition".to_owned();
    }
    Ok(e)
}

/// All text inside the element just started, children included, up to its end.
fn deep_text(r: &mut XmlReader<'_>) -> Result<String, DecodeError> {
    let mut out = String::new();
    let mut depth = 1usize;
    while depth > 0 {
        match r.next()? {
            Ev::Start(_) => depth += 1,
            Ev::End => depth -= 1,
            Ev::Text(t) => out.push_str(&t),
            Ev::Eof => return Err(DecodeError::xml("unexpected end of input")),
        }
    }
    Ok(out.trim().to_owned())
}
