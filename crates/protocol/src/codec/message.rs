//! RFC 6121 `<message/>` with the payloads of a group chat, decoded without a DOM.

use minidom::Element;

use super::reader::{Ev, Start, XmlReader};
use super::write::Writer;
use super::xep::chat_states::{self, ChatState};
use super::xep::delay::{self, Delay};
use super::xep::hints::{self, Hints};
use super::xep::mam::{self, MamResult};
use super::xep::markers::{self, Marker, MarkerKind};
use super::xep::media::{self, Hash, Media, Thumbnail};
use super::xep::muc_user::{self, Affiliation, Destroy, Invite, Item, MucUser, Role};
use super::xep::retract::{self, Retraction};
use super::xep::sid::{self, StanzaId};
use super::xep::stanza_error::{self, StanzaError};
use super::{DecodeError, jid_attr};
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
    /// Text body (the first one, when several languages are given).
    pub body: Option<String>,
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
        self.stanza_ids
            .iter()
            .find(|s| s.by == by)
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
            w.text_element("body", b);
        }
        if let Some(t) = &self.thread {
            w.text_element("thread", t);
        }
        for s in &self.stanza_ids {
            w.open_ns("stanza-id", sid::NS);
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

fn write_media(w: &mut Writer, m: &Media) {
    w.open_ns("x", media::OOB_NS);
    w.close_start();
    w.text_element("url", &m.url);
    w.end("x");
    w.open_ns("file-sharing", media::SFS_NS);
    w.close_start();
    w.open_ns("file", media::FILE_NS);
    w.close_start();
    if let Some(t) = &m.media_type {
        w.text_element("media-type", t);
    }
    if let Some(n) = &m.name {
        w.text_element("name", n);
    }
    if let Some(s) = m.size {
        w.text_element("size", &s.to_string());
    }
    if let Some(d) = m.duration_ms {
        w.text_element("length", &d.to_string());
    }
    if let Some(x) = m.width {
        w.text_element("width", &x.to_string());
    }
    if let Some(x) = m.height {
        w.text_element("height", &x.to_string());
    }
    if let Some(c) = &m.caption {
        w.text_element("desc", c);
    }
    for h in &m.hashes {
        w.open_ns("hash", media::HASHES_NS);
        w.attr("algo", &h.algo);
        w.close_start();
        w.text(&h.value);
        w.end("hash");
    }
    if let Some(t) = &m.thumbnail {
        w.open_ns("thumbnail", media::THUMBS_NS);
        w.attr("uri", &t.uri);
        w.attr_opt("media-type", t.media_type.as_deref());
        if let Some(x) = t.width {
            w.attr("width", &x.to_string());
        }
        if let Some(x) = t.height {
            w.attr("height", &x.to_string());
        }
        w.close_empty();
    }
    w.end("file");
    w.open("sources");
    w.close_start();
    w.open_ns("url-data", media::URL_DATA_NS);
    w.attr("target", &m.url);
    w.close_empty();
    w.end("sources");
    w.end("file-sharing");
}

pub(crate) fn write_muc_user(w: &mut Writer, u: &MucUser) {
    w.open_ns("x", muc_user::NS);
    w.close_start();
    for i in &u.items {
        write_item(w, i);
    }
    for s in &u.status {
        w.open("status");
        w.attr("code", &s.to_string());
        w.close_empty();
    }
    for (name, inv) in [("invite", &u.invite), ("decline", &u.decline)] {
        if let Some(i) = inv {
            w.open(name);
            w.attr_opt("from", i.from.as_deref());
            w.attr_opt("to", i.to.as_deref());
            w.close_start();
            if let Some(r) = &i.reason {
                w.text_element("reason", r);
            }
            w.end(name);
        }
    }
    if let Some(d) = &u.destroy {
        w.open("destroy");
        w.attr_opt("jid", d.jid.as_deref());
        w.close_start();
        if let Some(r) = &d.reason {
            w.text_element("reason", r);
        }
        w.end("destroy");
    }
    if let Some(p) = u.invite.as_ref().and_then(|i| i.password.as_deref()) {
        w.text_element("password", p);
    }
    w.end("x");
}

fn write_item(w: &mut Writer, i: &Item) {
    w.open("item");
    w.attr_opt("affiliation", i.affiliation.map(Affiliation::as_str));
    w.attr_opt("role", i.role.map(Role::as_str));
    w.attr_opt("jid", i.jid.as_deref());
    w.attr_opt("nick", i.nick.as_deref());
    w.close_start();
    if i.actor.is_some() || i.actor_nick.is_some() {
        w.open("actor");
        w.attr_opt("jid", i.actor.as_deref());
        w.attr_opt("nick", i.actor_nick.as_deref());
        w.close_empty();
    }
    if let Some(r) = &i.reason {
        w.text_element("reason", r);
    }
    w.end("item");
}

fn eof() -> DecodeError {
    DecodeError::xml("unexpected end of input")
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
    loop {
        let s = match r.next()? {
            Ev::Start(s) => s,
            Ev::Text(_) => continue,
            Ev::End => return Ok(m),
            Ev::Eof => return Err(eof()),
        };
        let ns = s.ns.as_ref();
        match (ns, s.name) {
            (ns::CLIENT, "body") => {
                let t = r.text(&s)?;
                if m.body.is_none() {
                    m.body = Some(t.into_owned());
                }
            }
            (ns::CLIENT, "subject") => m.subject = Some(r.text(&s)?.into_owned()),
            (ns::CLIENT, "thread") => m.thread = Some(r.text(&s)?.into_owned()),
            (ns::CLIENT, "error") => m.error = Some(Box::new(stanza_error::decode(r, &s)?)),
            (sid::NS, "stanza-id") => {
                // Usually one or two: exact capacity, not Vec's default of four (held memory).
                m.stanza_ids.reserve_exact(1);
                m.stanza_ids.push(StanzaId {
                    id: s.req("id")?.into_owned(),
                    by: s.req("by")?.into_owned(),
                });
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

fn decode_delay(r: &mut XmlReader<'_>, s: &Start<'_>) -> Result<Delay, DecodeError> {
    let d = Delay {
        stamp: s.req("stamp")?.into_owned(),
        from: s.attr_string("from")?,
    };
    r.skip(s)?;
    Ok(d)
}

fn number<T: std::str::FromStr>(what: &'static str, t: &str) -> Result<T, DecodeError> {
    t.trim().parse().map_err(|_| DecodeError::invalid(what, t))
}

fn decode_oob(r: &mut XmlReader<'_>, _s: &Start<'_>, m: &mut Media) -> Result<(), DecodeError> {
    loop {
        match r.next()? {
            Ev::Start(c) if c.name == "url" && c.ns == media::OOB_NS => {
                m.url = r.text(&c)?.trim().to_owned()
            }
            Ev::Start(c) if c.name == "desc" && c.ns == media::OOB_NS => {
                let d = r.text(&c)?;
                if m.caption.is_none() && !d.is_empty() {
                    m.caption = Some(d.into_owned());
                }
            }
            Ev::Start(c) => r.skip(&c)?,
            Ev::Text(_) => {}
            Ev::End => return Ok(()),
            Ev::Eof => return Err(eof()),
        }
    }
}

fn decode_sfs(r: &mut XmlReader<'_>, m: &mut Media) -> Result<(), DecodeError> {
    loop {
        match r.next()? {
            Ev::Start(c) if c.is("file", media::FILE_NS) => decode_file(r, m)?,
            Ev::Start(c) if c.is("sources", media::SFS_NS) => loop {
                match r.next()? {
                    Ev::Start(u) if u.is("url-data", media::URL_DATA_NS) => {
                        if m.url.is_empty() {
                            m.url = u.req("target")?.into_owned();
                        }
                        r.skip(&u)?;
                    }
                    Ev::Start(u) => r.skip(&u)?,
                    Ev::Text(_) => {}
                    Ev::End => break,
                    Ev::Eof => return Err(eof()),
                }
            },
            Ev::Start(c) => r.skip(&c)?,
            Ev::Text(_) => {}
            Ev::End => return Ok(()),
            Ev::Eof => return Err(eof()),
        }
    }
}

fn decode_file(r: &mut XmlReader<'_>, m: &mut Media) -> Result<(), DecodeError> {
    loop {
        let c = match r.next()? {
            Ev::Start(c) => c,
            Ev::Text(_) => continue,
            Ev::End => return Ok(()),
            Ev::Eof => return Err(eof()),
        };
        match (c.ns.as_ref(), c.name) {
            (media::FILE_NS, "media-type") => m.media_type = Some(r.text(&c)?.into_owned()),
            (media::FILE_NS, "name") => m.name = Some(r.text(&c)?.into_owned()),
            (media::FILE_NS, "size") => m.size = Some(number("file size", &r.text(&c)?)?),
            (media::FILE_NS, "length") => {
                m.duration_ms = Some(number("media length", &r.text(&c)?)?)
            }
            (media::FILE_NS, "width") => m.width = Some(number("width", &r.text(&c)?)?),
            (media::FILE_NS, "height") => m.height = Some(number("height", &r.text(&c)?)?),
            (media::FILE_NS, "desc") => m.caption = Some(r.text(&c)?.into_owned()),
            (media::HASHES_NS, "hash") => {
                let algo = c.req("algo")?.into_owned();
                let value = r.text(&c)?.trim().to_owned();
                m.hashes.push(Hash { algo, value });
            }
            (media::THUMBS_NS, "thumbnail") => {
                let num = |n: &'static str| -> Result<Option<u32>, DecodeError> {
                    c.attr(n)?.map(|v| number("thumbnail size", &v)).transpose()
                };
                m.thumbnail = Some(Thumbnail {
                    uri: c.req("uri")?.into_owned(),
                    media_type: c.attr_string("media-type")?,
                    width: num("width")?,
                    height: num("height")?,
                });
                r.skip(&c)?;
            }
            _ => r.skip(&c)?,
        }
    }
}

fn decode_retract(r: &mut XmlReader<'_>, s: &Start<'_>) -> Result<Retraction, DecodeError> {
    let mut rt = Retraction {
        id: s.req("id")?.into_owned(),
        moderated_by: None,
        reason: None,
    };
    loop {
        match r.next()? {
            Ev::Start(c)
                if c.name == "moderated"
                    && (c.ns == retract::MODERATE_NS || c.ns == retract::MODERATE_NS_0) =>
            {
                rt.moderated_by = c.attr_string("by")?;
                r.skip(&c)?;
            }
            Ev::Start(c) if c.name == "reason" => rt.reason = Some(r.text(&c)?.into_owned()),
            Ev::Start(c) => r.skip(&c)?,
            Ev::Text(_) => {}
            Ev::End => return Ok(rt),
            Ev::Eof => return Err(eof()),
        }
    }
}

/// XEP-0422 `<apply-to/>`: the retraction and moderation forms of XEP-0424 v0.3 / 0425 v0.2.
fn decode_apply_to(
    r: &mut XmlReader<'_>,
    s: &Start<'_>,
) -> Result<Option<Retraction>, DecodeError> {
    let id = s.req("id")?.into_owned();
    let mut found = None;
    loop {
        match r.next()? {
            Ev::Start(c) if c.is("retract", retract::NS_0) => {
                found.get_or_insert(Retraction {
                    id: id.clone(),
                    moderated_by: None,
                    reason: None,
                });
                r.skip(&c)?;
            }
            Ev::Start(c) if c.is("moderated", retract::MODERATE_NS_0) => {
                let mut rt = Retraction {
                    id: id.clone(),
                    moderated_by: c.attr_string("by")?,
                    reason: None,
                };
                let mut is_retract = false;
                loop {
                    match r.next()? {
                        Ev::Start(x) if x.is("retract", retract::NS_0) => {
                            is_retract = true;
                            r.skip(&x)?;
                        }
                        Ev::Start(x) if x.name == "reason" => {
                            rt.reason = Some(r.text(&x)?.into_owned())
                        }
                        Ev::Start(x) => r.skip(&x)?,
                        Ev::Text(_) => {}
                        Ev::End => break,
                        Ev::Eof => return Err(eof()),
                    }
                }
                if is_retract {
                    found = Some(rt);
                }
            }
            Ev::Start(c) => r.skip(&c)?,
            Ev::Text(_) => {}
            Ev::End => return Ok(found),
            Ev::Eof => return Err(eof()),
        }
    }
}

pub(crate) fn decode_muc_user(r: &mut XmlReader<'_>) -> Result<MucUser, DecodeError> {
    let mut u = MucUser::default();
    let mut password = None;
    loop {
        let c = match r.next()? {
            Ev::Start(c) => c,
            Ev::Text(_) => continue,
            Ev::End => break,
            Ev::Eof => return Err(eof()),
        };
        if c.ns != muc_user::NS {
            r.skip(&c)?;
            continue;
        }
        match c.name {
            "status" => {
                u.status.push(number("status code", &c.req("code")?)?);
                r.skip(&c)?;
            }
            "item" => u.items.push(decode_item(r, &c)?),
            "invite" | "decline" => {
                let mut i = Invite {
                    from: c.attr_string("from")?,
                    to: c.attr_string("to")?,
                    ..Invite::default()
                };
                loop {
                    match r.next()? {
                        Ev::Start(x) if x.name == "reason" => {
                            i.reason = Some(r.text(&x)?.into_owned())
                        }
                        Ev::Start(x) => r.skip(&x)?,
                        Ev::Text(_) => {}
                        Ev::End => break,
                        Ev::Eof => return Err(eof()),
                    }
                }
                if c.name == "invite" {
                    u.invite = Some(i);
                } else {
                    u.decline = Some(i);
                }
            }
            "destroy" => {
                let mut d = Destroy {
                    jid: c.attr_string("jid")?,
                    reason: None,
                };
                loop {
                    match r.next()? {
                        Ev::Start(x) if x.name == "reason" => {
                            d.reason = Some(r.text(&x)?.into_owned())
                        }
                        Ev::Start(x) => r.skip(&x)?,
                        Ev::Text(_) => {}
                        Ev::End => break,
                        Ev::Eof => return Err(eof()),
                    }
                }
                u.destroy = Some(d);
            }
            "password" => password = Some(r.text(&c)?.into_owned()),
            _ => r.skip(&c)?,
        }
    }
    if let (Some(p), Some(i)) = (password, u.invite.as_mut()) {
        i.password = Some(p);
    }
    Ok(u)
}

fn decode_item(r: &mut XmlReader<'_>, c: &Start<'_>) -> Result<Item, DecodeError> {
    let mut i = Item {
        affiliation: match c.attr("affiliation")? {
            Some(a) => Some(
                Affiliation::parse(&a).ok_or_else(|| DecodeError::invalid("affiliation", &a))?,
            ),
            None => None,
        },
        role: match c.attr("role")? {
            Some(a) => Some(Role::parse(&a).ok_or_else(|| DecodeError::invalid("role", &a))?),
            None => None,
        },
        jid: c.attr_string("jid")?,
        nick: c.attr_string("nick")?,
        ..Item::default()
    };
    loop {
        match r.next()? {
            Ev::Start(x) if x.name == "actor" => {
                i.actor = x.attr_string("jid")?;
                i.actor_nick = x.attr_string("nick")?;
                r.skip(&x)?;
            }
            Ev::Start(x) if x.name == "reason" => i.reason = Some(r.text(&x)?.into_owned()),
            Ev::Start(x) => r.skip(&x)?,
            Ev::Text(_) => {}
            Ev::End => return Ok(i),
            Ev::Eof => return Err(eof()),
        }
    }
}

fn decode_mam_result(r: &mut XmlReader<'_>, s: &Start<'_>) -> Result<MamResult, DecodeError> {
    let query_id = s.attr_string("queryid")?;
    let id = s.req("id")?.into_owned();
    let mut delay_v = None;
    let mut message = None;
    loop {
        match r.next()? {
            Ev::Start(f) if f.is("forwarded", mam::FORWARD_NS) => loop {
                match r.next()? {
                    Ev::Start(x) if x.is("delay", delay::NS) => {
                        delay_v = Some(decode_delay(r, &x)?)
                    }
                    Ev::Start(x) if x.is("message", ns::CLIENT) => message = Some(decode(r, &x)?),
                    Ev::Start(x) => r.skip(&x)?,
                    Ev::Text(_) => {}
                    Ev::End => break,
                    Ev::Eof => return Err(eof()),
                }
            },
            Ev::Start(x) => r.skip(&x)?,
            Ev::Text(_) => {}
            Ev::End => break,
            Ev::Eof => return Err(eof()),
        }
    }
    let message = message
        .ok_or_else(|| DecodeError::invalid("archive result", "without a forwarded message"))?;
    Ok(MamResult {
        query_id,
        id,
        delay: delay_v,
        message,
    })
}
