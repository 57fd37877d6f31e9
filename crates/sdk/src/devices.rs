//! What every device of the user shares: the group list (XEP-0402 bookmarks) and the group
//! state (cleared up to, deleted for me; a private PEP node). A change made on one device
//! reaches the others as a PEP notification (XEP-0163), which the server sends to the
//! resources whose capabilities (XEP-0115) say `+notify` for the node: so the client
//! advertises them, and answers the server's disco#info about them.

use groupchat_protocol::codec::Message;
use groupchat_protocol::codec::ext::group_state::{self, GroupState};
use groupchat_protocol::codec::xep::bookmarks;
use groupchat_protocol::codec::xep::caps::OwnCaps;
use groupchat_protocol::jid::{BareJid, Jid};

use crate::core::Core;
use crate::events::Event;

/// `http://jabber.org/protocol/pubsub#event`
const PUBSUB_EVENT_NS: &str = "http://jabber.org/protocol/pubsub#event";

/// This client's capabilities.
pub(crate) fn own_caps() -> OwnCaps {
    OwnCaps {
        node: "https://crates.io/crates/groupchat-sdk",
        name: "groupchat",
        features: vec![
            "http://jabber.org/protocol/disco#info",
            "http://jabber.org/protocol/caps",
            "http://jabber.org/protocol/muc",
            "http://jabber.org/protocol/chatstates",
            "urn:xmpp:ping",
            "urn:xmpp:chat-markers:0",
            "urn:xmpp:message-retract:1",
            "urn:xmpp:sid:0",
            "urn:xmpp:bookmarks:1+notify",
            "urn:xmpp:groupchat:state:0+notify",
        ],
    }
}

impl Core {
    /// A PEP notification from our own account, if `m` is one: handled, and true.
    pub(crate) fn on_own_pep_event(&mut self, m: &Message) -> bool {
        let from_us = m
            .from
            .as_ref()
            .is_none_or(|f| f.resource().is_none() && f.to_bare() == self.inner.me);
        let Some(event) = m
            .payloads
            .iter()
            .find(|p| p.is("event", PUBSUB_EVENT_NS))
            .filter(|_| from_us)
        else {
            return false;
        };
        for items in event.children().filter(|c| c.name() == "items") {
            match items.attr("node") {
                Some(bookmarks::NS) => {
                    // The item id is the group's JID (XEP-0402 §3).
                    for id in items
                        .children()
                        .filter(|i| i.name() == "item")
                        .filter_map(|i| i.attr("id"))
                    {
                        self.bookmark_published(id);
                    }
                }
                Some(group_state::NS) => {
                    for state in group_state::decode(event) {
                        self.group_state_published(state);
                    }
                }
                _ => {}
            }
        }
        true
    }

    /// Another device listed a group (it created it, or accepted an invitation): this one
    /// joins it too, and reports it as added.
    fn bookmark_published(&mut self, jid: &str) {
        let Ok(j) = jid.parse::<Jid>() else {
            return;
        };
        if !self.inner.is_our_group(&j) {
            return;
        }
        let group = j.into_bare();
        if self.is_listed(&group) {
            return;
        }
        tracing::debug!(%group, "listed on another device: joining");
        let t = self.reserve();
        self.start(move |inner| {
            Box::pin(async move {
                let _ = inner.accept(&group, None, Some(t)).await;
            })
        });
    }

    /// Another device (or this one) changed what the user hid in a group: kept, and each
    /// change reported.
    pub(crate) fn group_state_published(&mut self, state: GroupState) {
        let Ok(group) = state.group.parse::<BareJid>() else {
            return;
        };
        let old = self.group_states.get(&group).cloned().unwrap_or_default();
        if state.cleared_up_to.is_some() && state.cleared_up_to != old.cleared_up_to {
            self.emit(Event::ChatCleared {
                group: group.clone(),
                up_to: state.cleared_up_to.clone().unwrap_or_default(),
            });
        }
        for id in state.hidden.iter().filter(|h| !old.hidden.contains(h)) {
            self.emit(Event::MessageDeleted {
                group: group.clone(),
                row_id: id.clone(),
                by: Some(self.inner.me.clone()),
                for_everyone: false,
            });
        }
        self.group_states.insert(group, state);
    }
}
