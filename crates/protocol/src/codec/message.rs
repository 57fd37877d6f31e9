//! RFC 6121 `<message/>` with the payloads of a group chat, decoded without a DOM.

use minidom::Element;

use super::reader::{Ev, Start, XmlReader};
use super::write::Writer;
use super::xep::chat_states::{self, ChatState};
use super::xep::delay::decode_delay;
use super::xep::delay::{self, Delay};
use super::xep::hints::{self, Hints};
use super::xep::mam::{self, MamResult, decode_mam_result};
use super::xep::markers::{self, Marker, MarkerKind};
use super::xep::media::{self, Media, decode_file, decode_oob, decode_sfs, write_media};
use super::xep::muc_user::{self, Invite, MucUser, decode_muc_user, write_muc_user};
use super::xep::retract::{self, Retraction, decode_apply_to, decode_retract};
use super::xep::sid::{self, StanzaId};
use super::xep::stanza_error::{self, StanzaError};
use super::{DecodeError, eof, jid_attr};
use crate::ns;

/// XEP-0184 Message Delivery Receipts `urn:xmpp:receipts`.
pub const RECEIPTS_NS: &str = "urn:xmpp:receipts";

/// RFC 6121 §5.2.2 message types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MessageType {
    /// One-to-one chat.
    Chat,
    /// Group chat (a room).
    Groupchat,
    /// A standalone message (the default).
    #[default]
    Normal,
    /// An alert.
    Headline,
    /// An error reply.
    Error,
}

impl MessageType {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Groupchat => "groupchat",
            Self::Normal => "normal",
            Self::Headline => "headline",
            Self::Error => "error",
        }
    }

    fn parse(s: &str) -> Result<Self, DecodeError> {
        Ok(match s {
            "chat" => Self::Chat,
            "groupchat" => Self::Groupchat,
            "normal" => Self::Normal,
            "headline" => Self::Headline,
            "error" => Self::Error,
            other => return Err(DecodeError::invalid("message type", other)),
        })
    }
}

/// A message with every payload a group chat uses; unknown payloads are kept in `payloads`.
///
/// Rare, large parts are boxed so that a plain text message stays small in memory.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Message {
    /// Sender (for a group message: `room@service/nick`).
    pub from: Option<jid::Jid>,
    /// Recipient.
    pub to: Option<jid::Jid>,
    /// The sender's id for this stanza.
    pub id: Option<String>,
    /// The type.
    pub kind: MessageType,
    /// Text body: the one in the message's default language when it has several (the body
    /// without its own `xml:lang`, else the one in the stanza's or the stream's language,
    /// else the first).
    pub body: Option<String>,
    /// The other bodies and `body`'s language, for a message in several languages (`None`
    /// for one body).
    pub bodies: Option<Box<Bodies>>,
    /// Room subject (for group messages).
    pub subject: Option<String>,
    /// Conversation thread.
    pub thread: Option<String>,
    /// XEP-0359 ids assigned by archives (the room's is the history row id).
    pub stanza_ids: Vec<StanzaId>,
    /// XEP-0359 origin-id, the sender's stable id.
    pub origin_id: Option<String>,
    /// XEP-0421 occupant-id, stable per room occupant.
    pub occupant_id: Option<String>,
    /// XEP-0203 original send time.
    pub delay: Option<Delay>,
    /// XEP-0085 chat state.
    pub chat_state: Option<ChatState>,
    /// XEP-0333 `<markable/>`.
    pub markable: bool,
    /// XEP-0333 marker about an earlier message.
    pub marker: Option<Marker>,
    /// XEP-0334 hints.
    pub hints: Hints,
    /// XEP-0184 `<request/>`: the sender asks for a delivery receipt.
    pub receipt_request: bool,
    /// XEP-0184 `<received id/>`: a delivery receipt for message `id`.
    pub receipt: Option<String>,
    /// XEP-0066 / 0446 / 0447 media attachment.
    pub media: Option<Box<Media>>,
    /// XEP-0424 / 0425 retraction.
    pub retraction: Option<Box<Retraction>>,
    /// XEP-0045 `muc#user` payload (invitations, status codes, destruction).
    pub muc_user: Option<Box<MucUser>>,
    /// XEP-0249 direct invitation.
    pub direct_invite: Option<Box<Invite>>,
    /// XEP-0313 archive result wrapping an archived message.
    pub mam_result: Option<Box<MamResult>>,
    /// Error (for `type='error'`).
    pub error: Option<Box<StanzaError>>,
    /// Payloads this crate does not model, as trees.
    #[serde(skip)]
    pub payloads: Vec<Element>,
}

/// A message's bodies in several languages (RFC 6120 §8.1.2.1: one `<body>` per `xml:lang`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Bodies {
    /// The language of `Message::body`: its own `xml:lang`, else the stanza's, else the
    /// stream's; `None` when nothing says.
    pub lang: Option<String>,
    /// The other bodies, in document order.
    pub others: Vec<LangText>,
}

/// A text in one language.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct LangText {
    /// Its language tag (`de`, `fr-CA`); empty when nothing says.
    pub lang: String,
    /// The text.
    pub text: String,
}

impl LangText {
    /// A text in `lang`.
    pub fn new(lang: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            lang: lang.into(),
            text: text.into(),
        }
    }
}

impl Bodies {
    /// `body`'s language and the other bodies.
    pub fn new(lang: Option<String>, others: Vec<LangText>) -> Self {
        Self { lang, others }
    }

    /// Makes `body` the text a reader of `preferred` languages (most wanted first) should
    /// see, swapping it with one of the others: an exact tag first, then the same primary
    /// language (`de` for `de-CH` and the reverse); `body` stays when none matches.
    pub fn prefer(&mut self, body: &mut String, preferred: &[String]) {
        let primary = |tag: &str| tag.split('-').next().unwrap_or("").to_ascii_lowercase();
        let current = self.lang.clone().unwrap_or_default();
        for want in preferred {
            let exact = |l: &str| l.eq_ignore_ascii_case(want);
            let near = |l: &str| !l.is_empty() && primary(l) == primary(want);
            for matches in [&exact as &dyn Fn(&str) -> bool, &near] {
                if matches(&current) {
                    return;
                }
                if let Some(o) = self.others.iter_mut().find(|o| matches(&o.lang)) {
                    std::mem::swap(body, &mut o.text);
                    let lang = std::mem::replace(&mut o.lang, current);
                    self.lang = Some(lang).filter(|l| !l.is_empty());
                    return;
                }
            }
        }
    }
}

impl Message {
    /// A text message to a group (`groupchat`) or a user (`chat`), with an origin-id that
    /// doubles as its id, so that the server's reflection and the archive can be matched.
    pub fn text(
        to: jid::Jid,
        kind: MessageType,
        origin_id: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        let origin_id = origin_id.into();
        Self {
            to: Some(to),
            kind,
            id: Some(origin_id.clone()),
            origin_id: Some(origin_id),
            body: Some(body.into()),
            markable: true,
            ..Self::default()
        }
    }

    /// A media message: the body is the download URL (what clients without media support
    /// show), with XEP-0066 OOB and XEP-0446/0447 file metadata; the origin-id doubles as
    /// its id, as for [`text`](Self::text).
    pub fn media(
        to: jid::Jid,
        kind: MessageType,
        origin_id: impl Into<String>,
        media: Media,
    ) -> Self {
        let mut m = Self::text(to, kind, origin_id, media.url.clone());
        m.media = Some(Box::new(media));
        m
    }

    /// A typing notification (XEP-0085), not archived (XEP-0334 `no-store`).
    pub fn chat_state(to: jid::Jid, kind: MessageType, state: ChatState) -> Self {
        let hints = Hints {
            no_store: true,
            ..Hints::default()
        };
        Self {
            to: Some(to),
            kind,
            chat_state: Some(state),
            hints,
            ..Self::default()
        }
    }

    /// A marker (XEP-0333) about message `id` (the room's stanza-id in a group), archived
    /// (XEP-0334 `store`) so that later sessions can count who received or saw it.
    pub fn marker(
        to: jid::Jid,
        kind: MessageType,
        marker: MarkerKind,
        id: impl Into<String>,
    ) -> Self {
        let hints = Hints {
            store: true,
            ..Hints::default()
        };
        Self {
            to: Some(to),
            kind,
            marker: Some(Marker {
                kind: marker,
                id: id.into(),
            }),
            hints,
            ..Self::default()
        }
    }

    /// Retracts our own message `id` (XEP-0424), with a fallback body for old clients.
    pub fn retraction(to: jid::Jid, kind: MessageType, id: impl Into<String>) -> Self {
        Self {
            to: Some(to),
            kind,
            body: Some("This person attempted to retract a previous message, but it's unsupported by your client.".to_owned()),
            retraction: Some(Box::new(Retraction { id: id.into(), moderated_by: None, reason: None })),
            hints: Hints {
                store: true,
                ..Hints::default()
            },
            ..Self::default()
        }
    }

    /// The stanza-id assigned by `by` (for a group message, the room's bare JID).
    pub fn stanza_id_by(&self, by: &str) -> Option<&str> {
        let by_it = || self.stanza_ids.iter().filter(|s| s.by == by);
        by_it()
            .find(|s| !s.legacy)
            .or_else(|| by_it().next())
            .map(|s| s.id.as_str())
    }

    /// Encodes the message (with `xmlns='jabber:client'`).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(256 + self.body.as_ref().map_or(0, String::len));
        self.write(&mut w, true);
        w.buf
    }

    pub(crate) fn write(&self, w: &mut Writer, with_ns: bool) {
        w.open("message");
        if with_ns {
            w.attr("xmlns", ns::CLIENT);
        }
        if let Some(f) = &self.from {
            w.attr("from", f.as_str());
        }
        if let Some(t) = &self.to {
            w.attr("to", t.as_str());
        }
        w.attr_opt("id", self.id.as_deref());
        if self.kind != MessageType::Normal {
            w.attr("type", self.kind.as_str());
        }
        w.close_start();
        if let Some(s) = &self.subject {
            w.text_element("subject", s);
        }
        if let Some(b) = &self.body {
            match self.bodies.as_deref() {
                None => w.text_element("body", b),
                Some(bodies) => {
                    write_body(w, bodies.lang.as_deref(), b);
                    for o in &bodies.others {
                        write_body(w, Some(o.lang.as_str()).filter(|l| !l.is_empty()), &o.text);
                    }
                }
            }
        }
        if let Some(t) = &self.thread {
            w.text_element("thread", t);
        }
        for s in &self.stanza_ids {
            match s.legacy {
                true => w.open_ns("archived", sid::ARCHIVED_NS),
                false => w.open_ns("stanza-id", sid::NS),
            }
            w.attr("id", &s.id);
            w.attr("by", &s.by);
            w.close_empty();
        }
        if let Some(o) = &self.origin_id {
            w.open_ns("origin-id", sid::NS);
            w.attr("id", o);
            w.close_empty();
        }
        if let Some(o) = &self.occupant_id {
            w.open_ns("occupant-id", sid::OCCUPANT_ID_NS);
            w.attr("id", o);
            w.close_empty();
        }
        if let Some(d) = &self.delay {
            w.open_ns("delay", delay::NS);
            w.attr_opt("from", d.from.as_deref());
            w.attr("stamp", &d.stamp);
            w.close_empty();
        }
        if let Some(c) = self.chat_state {
            w.empty_ns(c.as_str(), chat_states::NS);
        }
        if self.markable {
            w.empty_ns("markable", markers::NS);
        }
        if let Some(m) = &self.marker {
            w.open_ns(m.kind.as_str(), markers::NS);
            w.attr("id", &m.id);
            w.close_empty();
        }
        for h in self.hints.names() {
            w.empty_ns(h, hints::NS);
        }
        if self.receipt_request {
            w.empty_ns("request", RECEIPTS_NS);
        }
        if let Some(id) = &self.receipt {
            w.open_ns("received", RECEIPTS_NS);
            w.attr("id", id);
            w.close_empty();
        }
        if let Some(m) = &self.media {
            write_media(w, m);
        }
        if let Some(r) = &self.retraction {
            w.open_ns("retract", retract::NS);
            w.attr("id", &r.id);
            if r.moderated_by.is_none() && r.reason.is_none() {
                w.close_empty();
            } else {
                w.close_start();
                if let Some(by) = &r.moderated_by {
                    w.open_ns("moderated", retract::MODERATE_NS);
                    w.attr("by", by);
                    w.close_empty();
                }
                if let Some(reason) = &r.reason {
                    w.text_element("reason", reason);
                }
                w.end("retract");
            }
        }
        if let Some(u) = &self.muc_user {
            write_muc_user(w, u);
        }
        if let Some(i) = &self.direct_invite {
            w.open_ns("x", muc_user::DIRECT_INVITE_NS);
            w.attr_opt("jid", i.room.as_deref());
            w.attr_opt("reason", i.reason.as_deref());
            w.attr_opt("password", i.password.as_deref());
            w.close_empty();
        }
        if let Some(r) = &self.mam_result {
            w.open_ns("result", mam::NS);
            w.attr_opt("queryid", r.query_id.as_deref());
            w.attr("id", &r.id);
            w.close_start();
            w.open_ns("forwarded", mam::FORWARD_NS);
            w.close_start();
            if let Some(d) = &r.delay {
                w.open_ns("delay", delay::NS);
                w.attr_opt("from", d.from.as_deref());
                w.attr("stamp", &d.stamp);
                w.close_empty();
            }
            r.message.write(w, true);
            w.end("forwarded");
            w.end("result");
        }
        if let Some(e) = &self.error {
            e.write(w);
        }
        write_payloads(w, &self.payloads);
        w.end("message");
    }
}

/// Writes unknown payloads. Each is written to a scratch buffer first, so that one minidom
/// cannot serialize never leaves half an element in the stanza.
pub(crate) fn write_payloads(w: &mut Writer, payloads: &[Element]) {
    let mut scratch = Vec::new();
    for p in payloads {
        scratch.clear();
        if p.write_to(&mut scratch).is_ok() {
            w.buf.extend_from_slice(&scratch);
        }
    }
}

/// A `stanza-id` (or legacy `archived`) start tag's id and assigner.
fn stanza_id(s: &Start<'_>, legacy: bool) -> Result<StanzaId, DecodeError> {
    Ok(StanzaId {
        id: s.req("id")?.into_owned(),
        by: s.req("by")?.into_owned(),
        legacy,
    })
}

fn write_body(w: &mut Writer, lang: Option<&str>, text: &str) {
    w.open("body");
    w.attr_opt("xml:lang", lang);
    w.close_start();
    w.text(text);
    w.end("body");
}

/// Decodes a `<message/>` whose start tag was just read.
pub(crate) fn decode(r: &mut XmlReader<'_>, start: &Start<'_>) -> Result<Message, DecodeError> {
    let mut m = Message {
        from: jid_attr(r, start, "from")?,
        to: jid_attr(r, start, "to")?,
        id: start.attr_string("id")?,
        kind: match start.attr("type")? {
            Some(t) => MessageType::parse(&t)?,
            None => MessageType::Normal,
        },
        ..Message::default()
    };
    // Bodies after the first (rare): (own xml:lang, text). The first stays in `m.body`.
    let mut first_lang: Option<String> = None;
    let mut more: Vec<(Option<String>, String)> = Vec::new();
    loop {
        let s = match r.next()? {
            Ev::Start(s) => s,
            Ev::Text(_) => continue,
            Ev::End => {
                if !more.is_empty() {
                    let default = start
                        .attr_string("xml:lang")?
                        .or_else(|| r.inherited_lang().map(str::to_owned));
                    sort_bodies(&mut m, first_lang, more, default);
                }
                return Ok(m);
            }
            Ev::Eof => return Err(eof()),
        };
        let ns = s.ns.as_ref();
        match (ns, s.name) {
            (ns::CLIENT, "body") => {
                let lang = s.attr_string("xml:lang")?;
                let t = r.text(&s)?.into_owned();
                if m.body.is_none() {
                    m.body = Some(t);
                    first_lang = lang;
                } else {
                    more.push((lang, t));
                }
            }
            (ns::CLIENT, "subject") => m.subject = Some(r.text(&s)?.into_owned()),
            (ns::CLIENT, "thread") => m.thread = Some(r.text(&s)?.into_owned()),
            (ns::CLIENT, "error") => m.error = Some(Box::new(stanza_error::decode(r, &s)?)),
            (sid::NS, "stanza-id") => {
                let id = stanza_id(&s, false)?;
                // Usually one or two: exact capacity, not Vec's default of four (held memory).
                m.stanza_ids.reserve_exact(1);
                m.stanza_ids.push(id);
                r.skip(&s)?;
            }
            (sid::ARCHIVED_NS, "archived") => {
                // Typed rather than kept as a tree: ejabberd adds one to every archived
                // message.
                let id = stanza_id(&s, true)?;
                m.stanza_ids.reserve_exact(1);
                m.stanza_ids.push(id);
                r.skip(&s)?;
            }
            (sid::NS, "origin-id") => {
                m.origin_id = Some(s.req("id")?.into_owned());
                r.skip(&s)?;
            }
            (sid::OCCUPANT_ID_NS, "occupant-id") => {
                m.occupant_id = Some(s.req("id")?.into_owned());
                r.skip(&s)?;
            }
            (delay::NS, "delay") => {
                m.delay = Some(decode_delay(r, &s)?);
            }
            (chat_states::NS, name) if ChatState::from_name(name).is_some() => {
                m.chat_state = ChatState::from_name(name);
                r.skip(&s)?;
            }
            (markers::NS, "markable") => {
                m.markable = true;
                r.skip(&s)?;
            }
            (markers::NS, name) if MarkerKind::from_name(name).is_some() => {
                m.marker = Some(Marker {
                    kind: MarkerKind::from_name(name).expect("checked in the guard"),
                    id: s.req("id")?.into_owned(),
                });
                r.skip(&s)?;
            }
            (hints::NS, name) if m.hints.set(name) => r.skip(&s)?,
            (RECEIPTS_NS, "request") => {
                m.receipt_request = true;
                r.skip(&s)?;
            }
            (RECEIPTS_NS, "received") => {
                m.receipt = s.attr_string("id")?;
                r.skip(&s)?;
            }
            (media::OOB_NS, "x") => decode_oob(r, &s, m.media.get_or_insert_with(Box::default))?,
            (media::SFS_NS, "file-sharing") => {
                decode_sfs(r, m.media.get_or_insert_with(Box::default))?
            }
            (media::FILE_NS, "file") => decode_file(r, m.media.get_or_insert_with(Box::default))?,
            (retract::NS, "retract") => m.retraction = Some(Box::new(decode_retract(r, &s)?)),
            (retract::FASTEN_NS, "apply-to") => {
                if let Some(rt) = decode_apply_to(r, &s)? {
                    m.retraction = Some(Box::new(rt));
                }
            }
            (muc_user::NS, "x") => m.muc_user = Some(Box::new(decode_muc_user(r)?)),
            (muc_user::DIRECT_INVITE_NS, "x") => {
                m.direct_invite = Some(Box::new(Invite {
                    room: Some(s.req("jid")?.into_owned()),
                    reason: s.attr_string("reason")?,
                    password: s.attr_string("password")?,
                    ..Invite::default()
                }));
                r.skip(&s)?;
            }
            (mam::NS, "result") => m.mam_result = Some(Box::new(decode_mam_result(r, &s)?)),
            _ => m.payloads.push(r.element(&s)?),
        }
    }
}

/// Chooses `body` among several: the first without its own `xml:lang` (it is in the
/// default language), else the first in the `default` language, else the first; the rest
/// become `bodies.others`, each with its language (its own, else the default).
fn sort_bodies(
    m: &mut Message,
    first_lang: Option<String>,
    more: Vec<(Option<String>, String)>,
    default: Option<String>,
) {
    let Some(first) = m.body.take() else { return };
    let mut all: Vec<(Option<String>, String)> = Vec::with_capacity(more.len() + 1);
    all.push((first_lang, first));
    all.extend(more);
    let chosen = all
        .iter()
        .position(|(l, _)| l.is_none())
        .or_else(|| {
            let d = default.as_deref()?;
            all.iter()
                .position(|(l, _)| l.as_deref().is_some_and(|l| l.eq_ignore_ascii_case(d)))
        })
        .unwrap_or(0);
    let (lang, text) = all.remove(chosen);
    m.body = Some(text);
    m.bodies = Some(Box::new(Bodies {
        lang: lang.or_else(|| default.clone()),
        others: all
            .into_iter()
            .map(|(l, text)| LangText {
                lang: l.or_else(|| default.clone()).unwrap_or_default(),
                text,
            })
            .collect(),
    }));
}
