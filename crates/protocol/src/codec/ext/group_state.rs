//! XEP-0223: Persistent Storage of Private Data via PubSub — per-group state shared by the
//! user's devices: the "cleared up to" archive id (clear chat) and ids deleted for me.

use minidom::Element;

use crate::codec::write::{private_publish, pubsub_items};
use crate::codec::{DecodeError, Iq};

/// Our node and payload namespace.
pub const NS: &str = "urn:xmpp:groupchat:state:0";
const PUBSUB_NS: &str = "http://jabber.org/protocol/pubsub";

/// What this user hid in one group, on every device.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct GroupState {
    /// The group.
    pub group: String,
    /// Messages up to and including this archive id are cleared.
    pub cleared_up_to: Option<String>,
    /// Archive ids deleted for this user only.
    pub hidden: Vec<String>,
}

impl GroupState {
    /// Empty state for `group`.
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            ..Self::default()
        }
    }
}

/// Publishes the state as the item with id = group JID, private (whitelist access).
pub fn publish(id: &str, s: &GroupState) -> Vec<u8> {
    private_publish(id, NS, &s.group, &[], |w| {
        w.open_ns("state", NS);
        w.attr("group", &s.group);
        w.close_start();
        if let Some(c) = &s.cleared_up_to {
            w.open("cleared-up-to");
            w.attr("id", c);
            w.close_empty();
        }
        for h in &s.hidden {
            w.open("hidden");
            w.attr("id", h);
            w.close_empty();
        }
        w.end("state");
    })
}

/// Requests every group's state.
pub fn get_all(id: &str) -> Vec<u8> {
    pubsub_items(id, NS)
}

/// Reads the states from an items result or an event payload.
pub fn decode(payload: &Element) -> Vec<GroupState> {
    payload
        .children()
        .filter(|c| matches!(c.name(), "items" | "publish") && c.attr("node") == Some(NS))
        .flat_map(|i| i.children().filter(|c| c.name() == "item"))
        .filter_map(|item| item.get_child("state", NS))
        .filter_map(|s| {
            Some(GroupState {
                group: s.attr("group")?.to_owned(),
                cleared_up_to: s
                    .get_child("cleared-up-to", NS)
                    .and_then(|c| c.attr("id"))
                    .map(str::to_owned),
                hidden: s
                    .children()
                    .filter(|c| c.is("hidden", NS))
                    .filter_map(|c| c.attr("id"))
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

/// Reads the states from an IQ result (none when the node does not exist yet).
pub fn decode_result(iq: &Iq) -> Result<Vec<GroupState>, DecodeError> {
    Ok(iq
        .payload
        .as_ref()
        .filter(|p| p.is("pubsub", PUBSUB_NS))
        .map(decode)
        .unwrap_or_default())
}
