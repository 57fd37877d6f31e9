//! XEP-0045: Multi-User Chat — the `muc#user` payload of room presence and messages
//! (status codes, affiliation items, invitations, destruction), and XEP-0249 direct invitations.

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
