//! Incoming stanzas as typed group events, and which JIDs are groups.
//!
//! [`GroupTracker`] is plain state: it remembers each joined room's occupants (to give a
//! message's sender a real JID when the room reveals it) and turns messages and presences
//! into [`GroupEvent`]s. Stanzas that are not about a group yield nothing.

use std::collections::HashMap;

use jid::BareJid;

use serde::Serialize;

use crate::codec::xep::chat_states::ChatState;
use crate::codec::xep::markers::MarkerKind;
use crate::codec::xep::media::Media;
use crate::codec::xep::muc_user::{Affiliation, MucUser, Role};
use crate::codec::xep::stanza_error::StanzaError;
use crate::codec::{Bodies, Message, MessageType, Presence, PresenceType, Stanza};

/// The group services discovered at login (XEP-0030): a JID on one of them is a group,
/// anything else is a 1:1 chat.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupServices {
    domains: Vec<String>,
}

impl GroupServices {
    /// Services with these domains (e.g. `conference.example.org`).
    pub fn new(domains: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            domains: domains
                .into_iter()
                .map(|d| d.into().to_ascii_lowercase())
                .collect(),
        }
    }

    /// Adds a discovered service.
    pub fn add(&mut self, domain: impl Into<String>) {
        let d = domain.into().to_ascii_lowercase();
        if !self.domains.contains(&d) {
            self.domains.push(d);
        }
    }

    /// The discovered domains.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// True if `jid` is a group. Before discovery (no services known), falls back to the
    /// seed's heuristic: a domain that looks like a group service (`mix`, `muc`,
    /// `conference`).
    pub fn is_group(&self, jid: &jid::Jid) -> bool {
        let domain = jid.domain().as_str();
        if self.domains.is_empty() {
            return domain.split('.').next().is_some_and(|label| {
                label.contains("mix") || label.contains("muc") || label == "conference"
            });
        }
        self.domains.iter().any(|d| d == domain)
    }
}

/// Someone in a group, as far as the room tells.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Occupant {
    /// The nickname in the room.
    pub nick: String,
    /// The real bare JID, when the room is non-anonymous (groups are created that way).
    pub jid: Option<BareJid>,
    /// XEP-0421 stable occupant id (Prosody sends it; ejabberd 23.01 does not).
    pub occupant_id: Option<String>,
    /// Affiliation (the seed's admin is `Owner`).
    pub affiliation: Option<Affiliation>,
    /// Role while present.
    pub role: Option<Role>,
}

impl Occupant {
    /// The sender of a group message read from the archive: the nickname from its `from`, the
    /// real JID from the muc#user item the archive keeps (the room is non-anonymous).
    pub fn archived_sender(m: &Message) -> Self {
        let mut sender = Self::default();
        if let Some(nick) = m.from.as_ref().and_then(jid::Jid::resource) {
            sender.nick = nick.as_str().to_owned();
        }
        sender.jid = m
            .muc_user
            .as_ref()
            .and_then(|u| u.items.iter().find_map(|i| i.jid.as_deref()))
            .and_then(|j| j.parse::<jid::Jid>().ok())
            .map(jid::Jid::into_bare);
        sender.occupant_id = m.occupant_id.clone();
        sender
    }
}

/// A message in a group.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct GroupMessage {
    /// The group's bare JID.
    pub group: BareJid,
    /// Who sent it.
    pub sender: Occupant,
    /// The room archive's id (XEP-0359 `stanza-id` by the room): the history row id, and
    /// what markers and retractions refer to.
    pub stanza_id: Option<String>,
    /// The sender's XEP-0359 origin-id (to recognize our own reflections).
    pub origin_id: Option<String>,
    /// The sender's stanza id.
    pub id: Option<String>,
    /// Original send time for delayed/historic messages (XEP-0203), as sent.
    pub timestamp: Option<String>,
    /// Text (in the message's default language; the SDK puts the reader's preferred one
    /// here).
    pub body: Option<String>,
    /// The other languages of a message in several, and `body`'s language.
    pub bodies: Option<Box<Bodies>>,
    /// Attachment.
    pub media: Option<Box<Media>>,
    /// The sender asks for markers (XEP-0333).
    pub markable: bool,
    /// Read from the group's archive (catch-up after a time offline), not received live.
    pub archived: bool,
}

impl GroupMessage {
    /// A message of `group` read from its archive (a MAM result): the sender's nickname from
    /// the archived `from`, the real JID from the muc#user item the archive keeps, the row
    /// id as the stanza-id and the archive's time as the timestamp.
    pub fn from_archived(group: BareJid, a: &crate::pagination::ArchivedMessage) -> Self {
        let m = &a.message;
        let mut gm = Self::from_message(group, Occupant::archived_sender(m), m);
        gm.stanza_id = Some(a.row_id.clone());
        gm.timestamp = a.stamp.clone().or(gm.timestamp);
        gm.archived = true;
        gm
    }

    fn from_message(group: BareJid, sender: Occupant, m: &Message) -> Self {
        Self {
            archived: false,
            stanza_id: m.stanza_id_by(group.as_str()).map(str::to_owned),
            group,
            sender,
            origin_id: m.origin_id.clone(),
            id: m.id.clone(),
            timestamp: m.delay.as_ref().map(|d| d.stamp.clone()),
            body: m.body.clone(),
            bodies: m.bodies.clone(),
            media: m.media.clone(),
            markable: m.markable,
        }
    }
}

/// Something that happened in a group.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
#[non_exhaustive]
pub enum GroupEvent {
    /// A text or media message.
    Message(GroupMessage),
    /// Someone is typing, paused, or gone.
    Typing {
        /// The group.
        group: BareJid,
        /// Who.
        occupant: Occupant,
        /// The chat state.
        state: ChatState,
    },
    /// A member received or saw a message.
    Marker {
        /// The group.
        group: BareJid,
        /// Who.
        occupant: Occupant,
        /// Received, displayed, acknowledged.
        kind: MarkerKind,
        /// The room stanza-id of the marked message.
        id: String,
    },
    /// A message was deleted for everyone.
    Retracted {
        /// The group.
        group: BareJid,
        /// The retracted message (room stanza-id, or origin-id for older clients).
        id: String,
        /// Who retracted it.
        by: Occupant,
        /// A moderator retracted someone else's message.
        moderated: bool,
    },
    /// The room configuration (name, …) changed (status 104): re-read the profile.
    ProfileChanged {
        /// The group.
        group: BareJid,
    },
    /// The subject changed.
    SubjectChanged {
        /// The group.
        group: BareJid,
        /// The new subject.
        subject: String,
        /// Who changed it.
        by: Occupant,
    },
    /// We are in the group (our own presence came back, status 110).
    Joined {
        /// The group.
        group: BareJid,
        /// Our nickname.
        nick: String,
        /// The join created the room (status 201).
        created: bool,
    },
    /// Joining failed (members-only, banned, …).
    JoinFailed {
        /// The group.
        group: BareJid,
        /// The server's error.
        error: StanzaError,
    },
    /// Someone came online in the group.
    ParticipantJoined {
        /// The group.
        group: BareJid,
        /// Who.
        occupant: Occupant,
    },
    /// Someone left the group's room (went offline or exited).
    ParticipantLeft {
        /// The group.
        group: BareJid,
        /// Who.
        occupant: Occupant,
    },
    /// Someone's affiliation changed (added, made admin, removed).
    AffiliationChanged {
        /// The group.
        group: BareJid,
        /// The member, with the new affiliation.
        occupant: Occupant,
        /// Who changed it, when the room says (its real JID; a nickname that is not a JID
        /// is left out).
        by: Option<BareJid>,
    },
    /// Someone was removed from the group (kicked 307, banned 301, affiliation removed 321,
    /// members-only 322). `is_self` when it is us.
    Removed {
        /// The group.
        group: BareJid,
        /// Who.
        occupant: Occupant,
        /// The status code.
        status: u16,
        /// Who did it (its real JID, when the room reveals it).
        by: Option<BareJid>,
        /// Why.
        reason: Option<String>,
        /// It is us.
        is_self: bool,
    },
    /// We are out of the group's room because the server hosting it is shutting down
    /// (status 332, XEP-0045 §15.6.2; in a cluster: the room's node stopped). The group
    /// itself is not gone: joining again restarts its room elsewhere.
    RoomShutDown {
        /// The group.
        group: BareJid,
    },
    /// The group was destroyed.
    Destroyed {
        /// The group.
        group: BareJid,
        /// Why.
        reason: Option<String>,
    },
    /// We were invited to (or added to) a group.
    Invited {
        /// The group.
        group: BareJid,
        /// Who invited us.
        by: Option<BareJid>,
        /// Why.
        reason: Option<String>,
        /// The room password, if any.
        password: Option<String>,
    },
}

/// Per-room occupant tables; turns stanzas into group events.
#[derive(Debug, Default)]
pub struct GroupTracker {
    services: GroupServices,
    rooms: HashMap<BareJid, HashMap<String, Occupant>>,
}

impl GroupTracker {
    /// A tracker for the given group services.
    pub fn new(services: GroupServices) -> Self {
        Self {
            services,
            rooms: HashMap::new(),
        }
    }

    /// The group services.
    pub fn services(&self) -> &GroupServices {
        &self.services
    }

    /// The occupants currently in `group`.
    pub fn occupants(&self, group: &BareJid) -> impl Iterator<Item = &Occupant> {
        self.rooms.get(group).into_iter().flat_map(|r| r.values())
    }

    /// Forgets a group (after leaving it).
    pub fn forget(&mut self, group: &BareJid) {
        self.rooms.remove(group);
    }

    /// The events a stanza carries (none for stanzas unrelated to groups).
    pub fn ingest(&mut self, stanza: &Stanza) -> Vec<GroupEvent> {
        match stanza {
            Stanza::Message(m) => self.message(m),
            Stanza::Presence(p) => self.presence(p),
            Stanza::Iq(_) => Vec::new(),
        }
    }

    fn occupant(&self, group: &BareJid, nick: &str, m: Option<&Message>) -> Occupant {
        let mut o = self
            .rooms
            .get(group)
            .and_then(|r| r.get(nick))
            .cloned()
            .unwrap_or_else(|| Occupant {
                nick: nick.to_owned(),
                ..Occupant::default()
            });
        if let Some(id) = m.and_then(|m| m.occupant_id.clone()) {
            o.occupant_id = Some(id);
        }
        o
    }

    fn message(&self, m: &Message) -> Vec<GroupEvent> {
        let mut out = Vec::new();
        let Some(from) = &m.from else { return out };
        // Invitations come from the room (mediated) or from a user (direct).
        if let Some(ev) = invitation(m, &self.services) {
            out.push(ev);
            return out;
        }
        if !self.services.is_group(from) {
            return out;
        }
        let group = from.to_bare();
        if m.kind == MessageType::Error {
            return out;
        }
        // Status codes and destruction come from the room itself, never from an occupant.
        if let Some(u) = m.muc_user.as_ref().filter(|_| from.resource().is_none()) {
            if u.has_status(104) {
                out.push(GroupEvent::ProfileChanged {
                    group: group.clone(),
                });
            }
            if let Some(d) = &u.destroy {
                out.push(GroupEvent::Destroyed {
                    group,
                    reason: d.reason.clone(),
                });
                return out;
            }
        }
        let Some(nick) = from.resource().map(|r| r.as_str().to_owned()) else {
            // From the room itself: status notices, and affiliation changes of absent users.
            if let Some(u) = &m.muc_user {
                out.extend(Self::affiliation_notice(&group, u));
            }
            return out;
        };
        if m.kind != MessageType::Groupchat {
            return out; // private messages through the room are not group messages
        }
        let sender = self.occupant(&group, &nick, Some(m));
        if let Some(subject) = m.subject.as_ref().filter(|_| m.body.is_none()) {
            out.push(GroupEvent::SubjectChanged {
                group,
                subject: subject.clone(),
                by: sender,
            });
            return out;
        }
        if let Some(r) = &m.retraction {
            out.push(GroupEvent::Retracted {
                group,
                id: r.id.clone(),
                by: sender,
                moderated: r.moderated_by.is_some(),
            });
            return out;
        }
        if let Some(marker) = &m.marker {
            out.push(GroupEvent::Marker {
                group,
                occupant: sender,
                kind: marker.kind,
                id: marker.id.clone(),
            });
            return out;
        }
        if m.body.is_some() || m.media.is_some() {
            out.push(GroupEvent::Message(GroupMessage::from_message(
                group, sender, m,
            )));
        } else if let Some(state) = m.chat_state {
            out.push(GroupEvent::Typing {
                group,
                occupant: sender,
                state,
            });
        }
        out
    }

    fn presence(&mut self, p: &Presence) -> Vec<GroupEvent> {
        let mut out = Vec::new();
        let Some(from) = &p.from else { return out };
        if !self.services.is_group(from) {
            return out;
        }
        let group = from.to_bare();
        if p.kind == PresenceType::Error {
            if let Some(e) = &p.error {
                out.push(GroupEvent::JoinFailed {
                    group,
                    error: (**e).clone(),
                });
            }
            return out;
        }
        let Some(nick) = from.resource().map(|r| r.as_str().to_owned()) else {
            return out;
        };
        let Some(u) = p.muc_user.as_deref() else {
            return out;
        };
        let is_self = u.has_status(110);
        if let Some(d) = &u.destroy {
            self.rooms.remove(&group);
            out.push(GroupEvent::Destroyed {
                group,
                reason: d.reason.clone(),
            });
            return out;
        }
        let item = u.items.first();
        let occupant = Occupant {
            nick: nick.clone(),
            jid: item.and_then(|i| i.jid.as_deref()).and_then(bare_jid),
            occupant_id: p.occupant_id.clone(),
            affiliation: item.and_then(|i| i.affiliation),
            role: item.and_then(|i| i.role),
        };
        let room = self.rooms.entry(group.clone()).or_default();
        let previous = room.get(&nick).cloned();
        // The room names the actor by JID, or only by nickname: then by the real JID of the
        // occupant with that nickname when the room revealed it (else the nickname itself).
        let actor = item.and_then(|i| match (&i.actor, &i.actor_nick) {
            (Some(a), _) => bare_jid(a),
            (None, Some(n)) => room
                .get(n.as_str())
                .and_then(|o| o.jid.clone())
                .or_else(|| bare_jid(n)),
            (None, None) => None,
        });
        if p.kind == PresenceType::Unavailable {
            room.remove(&nick);
            if is_self
                && !u
                    .status
                    .iter()
                    .any(|c| matches!(c, 301 | 307 | 321 | 322 | 332))
            {
                // We left on purpose.
                self.rooms.remove(&group);
            }
            if is_self && u.has_status(332) {
                self.rooms.remove(&group);
                out.push(GroupEvent::RoomShutDown { group });
                return out;
            }
            if let Some(&status) = u.status.iter().find(|c| matches!(c, 301 | 307 | 321 | 322)) {
                if is_self {
                    self.rooms.remove(&group);
                }
                out.push(GroupEvent::Removed {
                    group,
                    occupant,
                    status,
                    by: actor,
                    reason: item.and_then(|i| i.reason.clone()),
                    is_self,
                });
            } else if !is_self {
                out.push(GroupEvent::ParticipantLeft { group, occupant });
            }
            return out;
        }
        room.insert(nick.clone(), occupant.clone());
        if is_self {
            if previous.is_none() {
                out.push(GroupEvent::Joined {
                    group: group.clone(),
                    nick,
                    created: u.has_status(201),
                });
            } else if previous.as_ref().map(|o| o.affiliation) != Some(occupant.affiliation) {
                out.push(GroupEvent::AffiliationChanged {
                    group,
                    occupant,
                    by: actor,
                });
            }
            return out;
        }
        match previous {
            None => out.push(GroupEvent::ParticipantJoined { group, occupant }),
            Some(prev) if prev.affiliation != occupant.affiliation => {
                out.push(GroupEvent::AffiliationChanged {
                    group,
                    occupant,
                    by: actor,
                });
            }
            Some(_) => {}
        }
        out
    }

    /// Affiliation changes the room announces in a message for users who are not present.
    fn affiliation_notice(group: &BareJid, u: &MucUser) -> Vec<GroupEvent> {
        u.items
            .iter()
            .filter(|i| i.affiliation.is_some())
            .map(|i| GroupEvent::AffiliationChanged {
                group: group.clone(),
                occupant: Occupant {
                    nick: i.nick.clone().unwrap_or_default(),
                    jid: i.jid.as_deref().and_then(bare_jid),
                    affiliation: i.affiliation,
                    role: i.role,
                    occupant_id: None,
                },
                by: i
                    .actor
                    .as_deref()
                    .or(i.actor_nick.as_deref())
                    .and_then(bare_jid),
            })
            .collect()
    }
}

/// The bare JID of a JID given as text (a real JID in a muc#user item, an actor, or a
/// nickname that is a bare JID, as in groups made by the SDK); `None` when it is not a JID.
pub fn bare_jid(jid: &str) -> Option<BareJid> {
    jid.parse::<jid::Jid>().ok().map(jid::Jid::into_bare)
}

fn invitation(m: &Message, services: &GroupServices) -> Option<GroupEvent> {
    let from = m.from.as_ref()?;
    let invite = m.muc_user.as_ref().and_then(|u| u.invite.as_ref());
    if let Some(inv) = invite.filter(|_| services.is_group(from)) {
        return Some(GroupEvent::Invited {
            group: from.to_bare(),
            by: inv.from.as_deref().and_then(bare_jid),
            reason: inv.reason.clone(),
            password: inv.password.clone(),
        });
    }
    let d = m.direct_invite.as_ref()?;
    Some(GroupEvent::Invited {
        group: d.room.as_deref().and_then(bare_jid)?,
        by: Some(from.to_bare()),
        reason: d.reason.clone(),
        password: d.password.clone(),
    })
}
