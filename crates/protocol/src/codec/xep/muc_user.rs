//! XEP-0045: Multi-User Chat — the `muc#user` payload of room presence and messages
//! (status codes, affiliation items, invitations, destruction), and XEP-0249 direct invitations.

use crate::codec::reader::{Ev, Start, XmlReader};
use crate::codec::write::Writer;
use crate::codec::{DecodeError, eof, number};

/// `http://jabber.org/protocol/muc#user`
pub const NS: &str = "http://jabber.org/protocol/muc#user";
/// `http://jabber.org/protocol/muc`
pub const MUC_NS: &str = "http://jabber.org/protocol/muc";
/// XEP-0249 `jabber:x:conference`
pub const DIRECT_INVITE_NS: &str = "jabber:x:conference";

/// A long-lived association with a room (XEP-0045 §5.2). The seed's "admin" is `Owner`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Affiliation {
    /// Owner: every admin call.
    Owner,
    /// Room admin.
    Admin,
    /// Member of a members-only room.
    Member,
    /// Banned.
    Outcast,
    /// No affiliation.
    None,
}

impl Affiliation {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Outcast => "outcast",
            Self::None => "none",
        }
    }

    /// Parses the attribute value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "owner" => Self::Owner,
            "admin" => Self::Admin,
            "member" => Self::Member,
            "outcast" => Self::Outcast,
            "none" => Self::None,
            _ => return None,
        })
    }
}

/// A temporary position in the room while present (XEP-0045 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Role {
    /// Can kick and grant voice.
    Moderator,
    /// Can speak.
    Participant,
    /// Present without voice.
    Visitor,
    /// Not present.
    None,
}

impl Role {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Moderator => "moderator",
            Self::Participant => "participant",
            Self::Visitor => "visitor",
            Self::None => "none",
        }
    }

    /// Parses the attribute value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "moderator" => Self::Moderator,
            "participant" => Self::Participant,
            "visitor" => Self::Visitor,
            "none" => Self::None,
            _ => return None,
        })
    }
}

/// An `<item/>`: someone's affiliation and role, and who changed it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Item {
    /// Affiliation, if given.
    pub affiliation: Option<Affiliation>,
    /// Role, if given.
    pub role: Option<Role>,
    /// The real JID (visible in non-anonymous rooms).
    pub jid: Option<String>,
    /// The nickname.
    pub nick: Option<String>,
    /// Who made the change: their JID, when the room says.
    pub actor: Option<String>,
    /// Who made the change: their nickname, when the room says (often the only name it
    /// gives; it is the occupant's choice, so resolve it through the room's occupants).
    pub actor_nick: Option<String>,
    /// Why.
    pub reason: Option<String>,
}

/// A mediated invitation (XEP-0045 §7.8.2), or a direct one (XEP-0249).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Invite {
    /// The room (for mediated invitations: the message's `from`).
    pub room: Option<String>,
    /// The inviter.
    pub from: Option<String>,
    /// The invitee (when sending).
    pub to: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// Room password, if any.
    pub password: Option<String>,
}

/// The room was destroyed (XEP-0045 §10.9).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Destroy {
    /// An alternative room.
    pub jid: Option<String>,
    /// Why.
    pub reason: Option<String>,
}

/// The `muc#user` payload.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MucUser {
    /// Status codes (XEP-0045 §15.6): 110 self, 201 created, 104 config changed, 307 kicked,
    /// 321 removed by affiliation change, 332 shut down, …
    pub status: Vec<u16>,
    /// Items (usually one).
    pub items: Vec<Item>,
    /// An invitation.
    pub invite: Option<Invite>,
    /// A declined invitation.
    pub decline: Option<Invite>,
    /// Destruction notice.
    pub destroy: Option<Destroy>,
}

impl MucUser {
    /// True if `code` is among the status codes.
    pub fn has_status(&self, code: u16) -> bool {
        self.status.contains(&code)
    }
}

/// Writes the `muc#user` payload.
pub(crate) fn write_muc_user(w: &mut Writer, u: &MucUser) {
    w.open_ns("x", NS);
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

/// Writes one `<item/>` of a `muc#user` payload.
pub(crate) fn write_item(w: &mut Writer, i: &Item) {
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

/// Decodes a `muc#user` payload whose start tag was just read.
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
        if c.ns != NS {
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

/// Decodes an `<item/>` (its start `c` already read).
pub(crate) fn decode_item(r: &mut XmlReader<'_>, c: &Start<'_>) -> Result<Item, DecodeError> {
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
