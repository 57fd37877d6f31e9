//! RFC 6121 `<presence/>`, with the XEP-0045 room payloads, decoded without a DOM.

use minidom::Element;

use super::reader::{Ev, Start, XmlReader};
use super::write::Writer;
use super::xep::caps::{self, Caps};
use super::xep::muc_user::{self, MucUser, decode_muc_user, write_muc_user};
use super::xep::sid;
use super::xep::stanza_error::{self, StanzaError};
use super::xep::vcard_update::{self, VCardUpdate};
use super::{DecodeError, jid_attr};
use crate::ns;

/// RFC 6121 presence types; `Available` is the absence of a type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PresenceType {
    /// Online (no `type`).
    #[default]
    Available,
    /// Offline, or leaving a room.
    Unavailable,
    /// An error reply (e.g. a refused room join).
    Error,
    /// Subscription management and probes.
    Other,
}

/// A presence, with what a room says about an occupant.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Presence {
    /// Sender (in a room: `room@service/nick`).
    pub from: Option<jid::Jid>,
    /// Recipient.
    pub to: Option<jid::Jid>,
    /// Stanza id.
    pub id: Option<String>,
    /// The type.
    pub kind: PresenceType,
    /// The raw `type` attribute for `Other` (e.g. `subscribe`).
    pub raw_type: Option<String>,
    /// `<show/>` (away, chat, dnd, xa).
    pub show: Option<String>,
    /// `<status/>` text.
    pub status: Option<String>,
    /// XEP-0045 `muc#user` payload: affiliation, role, status codes, destroy.
    pub muc_user: Option<Box<MucUser>>,
    /// XEP-0045 `muc` join element was present (a join request).
    pub muc_join: bool,
    /// XEP-0421 occupant-id.
    pub occupant_id: Option<String>,
    /// Error, for `type='error'`.
    pub error: Option<Box<StanzaError>>,
    /// XEP-0115 entity capabilities.
    pub caps: Option<Box<Caps>>,
    /// XEP-0153 avatar hash.
    pub vcard_update: Option<VCardUpdate>,
    /// Payloads this crate does not model.
    #[serde(skip)]
    pub payloads: Vec<Element>,
}

impl Presence {
    /// Encodes the presence (with `xmlns='jabber:client'`).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(256);
        w.open_ns("presence", ns::CLIENT);
        if let Some(f) = &self.from {
            w.attr("from", f.as_str());
        }
        if let Some(t) = &self.to {
            w.attr("to", t.as_str());
        }
        w.attr_opt("id", self.id.as_deref());
        match self.kind {
            PresenceType::Available => {}
            PresenceType::Unavailable => w.attr("type", "unavailable"),
            PresenceType::Error => w.attr("type", "error"),
            PresenceType::Other => w.attr("type", self.raw_type.as_deref().unwrap_or("probe")),
        }
        w.close_start();
        if let Some(s) = &self.show {
            w.text_element("show", s);
        }
        if let Some(s) = &self.status {
            w.text_element("status", s);
        }
        if self.muc_join {
            w.empty_ns("x", muc_user::MUC_NS);
        }
        if let Some(c) = &self.caps {
            w.open_ns("c", caps::NS);
            w.attr("hash", &c.hash);
            w.attr("node", &c.node);
            w.attr("ver", &c.ver);
            w.close_empty();
        }
        if let Some(u) = &self.vcard_update {
            w.open_ns("x", vcard_update::NS);
            match &u.photo {
                Some(p) => {
                    w.close_start();
                    w.text_element("photo", p);
                    w.end("x");
                }
                None => w.close_empty(),
            }
        }
        if let Some(u) = &self.muc_user {
            write_muc_user(&mut w, u);
        }
        if let Some(o) = &self.occupant_id {
            w.open_ns("occupant-id", sid::OCCUPANT_ID_NS);
            w.attr("id", o);
            w.close_empty();
        }
        if let Some(e) = &self.error {
            e.write(&mut w);
        }
        crate::codec::message::write_payloads(&mut w, &self.payloads);
        w.end("presence");
        w.buf
    }
}

/// Decodes a `<presence/>` whose start tag was just read.
pub(crate) fn decode(r: &mut XmlReader<'_>, start: &Start<'_>) -> Result<Presence, DecodeError> {
    let raw_type = start.attr_string("type")?;
    let kind = match raw_type.as_deref() {
        None => PresenceType::Available,
        Some("unavailable") => PresenceType::Unavailable,
        Some("error") => PresenceType::Error,
        Some("subscribe" | "subscribed" | "unsubscribe" | "unsubscribed" | "probe") => {
            PresenceType::Other
        }
        Some(other) => return Err(DecodeError::invalid("presence type", other)),
    };
    let mut p = Presence {
        from: jid_attr(r, start, "from")?,
        to: jid_attr(r, start, "to")?,
        id: start.attr_string("id")?,
        kind,
        raw_type: if kind == PresenceType::Other {
            raw_type
        } else {
            None
        },
        ..Presence::default()
    };
    loop {
        let s = match r.next()? {
            Ev::Start(s) => s,
            Ev::Text(_) => continue,
            Ev::End => return Ok(p),
            Ev::Eof => return Err(DecodeError::xml("unexpected end of input")),
        };
        match (s.ns.as_ref(), s.name) {
            (ns::CLIENT, "show") => p.show = Some(r.text(&s)?.into_owned()),
            (ns::CLIENT, "status") => p.status = Some(r.text(&s)?.into_owned()),
            (ns::CLIENT, "priority") => r.skip(&s)?,
            (ns::CLIENT, "error") => p.error = Some(Box::new(stanza_error::decode(r, &s)?)),
            (muc_user::NS, "x") => p.muc_user = Some(Box::new(decode_muc_user(r)?)),
            (muc_user::MUC_NS, "x") => {
                p.muc_join = true;
                r.skip(&s)?;
            }
            (caps::NS, "c") => match (s.attr("hash")?, s.attr("node")?, s.attr("ver")?) {
                (Some(hash), Some(node), Some(ver)) => {
                    p.caps = Some(Box::new(Caps {
                        hash: hash.into_owned(),
                        node: node.into_owned(),
                        ver: ver.into_owned(),
                    }));
                    r.skip(&s)?;
                }
                // Legacy caps (no hash): kept as a tree.
                _ => p.payloads.push(r.element(&s)?),
            },
            (vcard_update::NS, "x") => p.vcard_update = Some(decode_vcard_update(r)?),
            (sid::OCCUPANT_ID_NS, "occupant-id") => {
                p.occupant_id = Some(s.req("id")?.into_owned());
                r.skip(&s)?;
            }
            _ => p.payloads.push(r.element(&s)?),
        }
    }
}

/// The children of a `vcard-temp:x:update` `<x/>` just started: the `<photo/>` hash.
fn decode_vcard_update(r: &mut XmlReader<'_>) -> Result<VCardUpdate, DecodeError> {
    let mut u = VCardUpdate::default();
    loop {
        match r.next()? {
            Ev::Start(c) if c.is("photo", vcard_update::NS) => {
                u.photo = Some(r.text(&c)?.trim().to_owned());
            }
            Ev::Start(c) => r.skip(&c)?,
            Ev::Text(_) => {}
            Ev::End => return Ok(u),
            Ev::Eof => return Err(DecodeError::xml("unexpected end of input")),
        }
    }
}
