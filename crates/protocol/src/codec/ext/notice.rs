//! groupchat's own group notices (`urn:xmpp:groupchat:notice:0`): who changed the group.
//!
//! MUC tells occupants *that* a member was added or the configuration changed, but not
//! always *who* did it, and tells nothing to members who were offline. The acting client
//! therefore posts a notice to the group: the room stamps it with the actor's real JID (the
//! group is non-anonymous), archives it (it has a fallback body, which other clients show as
//! text), and every member's SDK turns it into an event with the acting user.

use minidom::Element;

use crate::codec::message::{Message, MessageType};
use crate::codec::write::Writer;

/// `urn:xmpp:groupchat:notice:0`
pub const NS: &str = "urn:xmpp:groupchat:notice:0";

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum NoticeKind {
    /// Members were added.
    ParticipantsAdded,
    /// A member was removed.
    ParticipantRemoved,
    /// A member was made admin.
    AdminGranted,
    /// The sender left the group.
    MemberLeft,
    /// The name or image changed.
    ProfileUpdated,
    /// The group is about to be destroyed.
    GroupDeleted,
}

impl NoticeKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ParticipantsAdded => "participants-added",
            Self::ParticipantRemoved => "participant-removed",
            Self::AdminGranted => "admin-granted",
            Self::MemberLeft => "member-left",
            Self::ProfileUpdated => "profile-updated",
            Self::GroupDeleted => "group-deleted",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "participants-added" => Self::ParticipantsAdded,
            "participant-removed" => Self::ParticipantRemoved,
            "admin-granted" => Self::AdminGranted,
            "member-left" => Self::MemberLeft,
            "profile-updated" => Self::ProfileUpdated,
            "group-deleted" => Self::GroupDeleted,
            _ => return None,
        })
    }
}

/// A notice: what changed and about whom.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Notice {
    /// What changed.
    pub kind: NoticeKind,
    /// The members concerned (bare JIDs), if any.
    pub participants: Vec<String>,
}

impl Notice {
    /// A notice of `kind` about `participants`.
    pub fn new(kind: NoticeKind, participants: Vec<String>) -> Self {
        Self { kind, participants }
    }

    /// The element.
    pub fn to_element(&self) -> Element {
        let mut w = Writer::with_capacity(128);
        w.open_ns("notice", NS);
        w.attr("kind", self.kind.as_str());
        w.close_start();
        for p in &self.participants {
            w.open("participant");
            w.attr("jid", p);
            w.close_empty();
        }
        w.end("notice");
        // The writer escapes every value, so the markup always parses.
        std::str::from_utf8(&w.buf)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| Element::bare("notice", NS))
    }

    /// The groupchat message carrying the notice to `group`, with `body` as the text other
    /// clients show, and `id` as its id and origin-id.
    pub fn message(&self, group: jid::Jid, id: &str, body: &str) -> Message {
        let mut m = Message::text(group, MessageType::Groupchat, id, body);
        m.markable = false;
        m.payloads.push(self.to_element());
        m
    }

    /// Reads a notice element.
    pub fn from_element(el: &Element) -> Option<Self> {
        if !el.is("notice", NS) {
            return None;
        }
        let kind = NoticeKind::parse(el.attr("kind")?)?;
        let participants = el
            .children()
            .filter(|c| c.is("participant", NS))
            .filter_map(|c| c.attr("jid"))
            .map(str::to_owned)
            .collect();
        Some(Self { kind, participants })
    }

    /// The notice among a message's unknown payloads, if any.
    pub fn find(payloads: &[Element]) -> Option<Self> {
        payloads.iter().find_map(Self::from_element)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{NsContext, Stanza, decode_stanza};

    #[test]
    fn a_notice_survives_the_codec() {
        let n = Notice::new(
            NoticeKind::ParticipantsAdded,
            vec!["bob@example.org".into(), "carol@example.org".into()],
        );
        let bytes = n
            .message(
                "g@conference.example.org".parse().unwrap(),
                "n1",
                "alice added bob and carol",
            )
            .encode();
        let Stanza::Message(m) = decode_stanza(&bytes, &NsContext::client()).unwrap() else {
            panic!()
        };
        assert_eq!(Notice::find(&m.payloads), Some(n));
        assert_eq!(m.body.as_deref(), Some("alice added bob and carol"));
        assert_eq!(m.origin_id.as_deref(), Some("n1"));
    }

    #[test]
    fn unknown_kinds_and_foreign_elements_are_not_notices() {
        let el: Element = "<notice xmlns='urn:xmpp:groupchat:notice:0' kind='x'/>"
            .parse()
            .unwrap();
        assert_eq!(Notice::from_element(&el), None);
        let el: Element = "<notice xmlns='urn:other' kind='member-left'/>"
            .parse()
            .unwrap();
        assert_eq!(Notice::from_element(&el), None);
    }
}
