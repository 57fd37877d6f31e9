//! Per-message info: who received a group message and who saw it (the seed's message info
//! and `groupMsgInfoListener`), from XEP-0333 markers that every member's client sends to the
//! group and the room archives (XEP-0334 `store`).
//!
//! A marker names the room's stanza-id of a message. Group messages reach every member in
//! the room's order, so a member who received (or saw) a message has received (or seen)
//! every earlier one: the SDK sends one `received` marker per group per read from the
//! server (for the newest message of the batch), and counts a marker for a message as a
//! marker for every earlier message too — also markers sent by other clients, message by
//! message.

use std::collections::{BTreeMap, HashMap, VecDeque};

use groupchat_protocol::codec::xep::markers::MarkerKind;
use groupchat_protocol::codec::{Message, MessageType};
use groupchat_protocol::group::{GroupMessage, Occupant};
use groupchat_protocol::jid::BareJid;
use groupchat_protocol::pagination::{Direction, HistoryQuery};
use serde::Serialize;

use crate::client::{Client, Inner};
use crate::core::Core;
use crate::error::RequestError;
use crate::events::Event;
use crate::to_jid::ToJid;

/// Rows of the archive read after a message to find its markers (markers for a message come
/// soon after it: in a group that wrote 500 rows since, the rest are not looked for).
const MARKER_SCAN_ROWS: usize = 500;
/// Messages per group whose order the client remembers (to apply "a marker covers every
/// earlier message"), and own messages per group whose info it follows live.
const REMEMBERED: usize = 512;
const FOLLOWED: usize = 100;

/// Someone's marker: who, and when the archive stored it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Receipt {
    /// The member (real bare JID: every device of a user counts once).
    pub jid: BareJid,
    /// When (XEP-0203 timestamp of the marker in the archive); `None` for a marker seen live.
    pub at: Option<String>,
}

/// Who received and who saw one group message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MessageInfo {
    /// The group.
    pub group: BareJid,
    /// The message (its row id: the room's stanza-id).
    pub row_id: String,
    /// Who sent it, when the archive says.
    pub sender: Option<BareJid>,
    /// Members whose device got it (a member who saw it got it too).
    pub received: Vec<Receipt>,
    /// Members who saw it.
    pub seen: Vec<Receipt>,
    /// The group's members other than the sender (the counts' denominator).
    pub members: usize,
}

impl MessageInfo {
    /// How many members received it.
    pub fn received_count(&self) -> usize {
        self.received.len()
    }

    /// How many members saw it.
    pub fn seen_count(&self) -> usize {
        self.seen.len()
    }
}

impl Client {
    /// Tells the group that we saw its message `row_id` (and every earlier one): an XEP-0333
    /// `displayed` marker, archived, which other members' [`message_info`](Self::message_info)
    /// counts.
    pub async fn mark_seen(&self, group: impl ToJid, row_id: &str) -> Result<(), RequestError> {
        let group = self.group_jid_of(group)?;
        if row_id.is_empty() {
            return Err(RequestError::BadRequest("an empty message id".into()));
        }
        let m = Message::marker(
            group.into(),
            MessageType::Groupchat,
            MarkerKind::Displayed,
            row_id,
        );
        self.inner.send(m.encode()).await
    }

    /// Who received and who saw group message `row_id` (its room stanza-id, as `send_text`
    /// returned it or [`GroupMessage::stanza_id`] carries it), read from the group's archive:
    /// right from a fresh session long after the markers were sent, and for messages sent by
    /// any client. Counts are out of the group's current members other than the sender; a
    /// user's devices count once. 404 when the archive has no such message.
    pub async fn message_info(
        &self,
        group: impl ToJid,
        row_id: &str,
    ) -> Result<MessageInfo, RequestError> {
        let group = self.group_jid_of(group)?;
        let archive = group.to_string();
        // The rows after the message: the markers, and the later messages they may name.
        let mut after = Vec::new();
        let mut cursor = row_id.to_owned();
        loop {
            let page = self
                .inner
                .history_page(HistoryQuery {
                    group: archive.clone(),
                    with: None,
                    direction: Direction::Down,
                    last_row_id: Some(cursor.clone()),
                    limit: 100,
                })
                .await
                .map_err(|e| match e {
                    RequestError::Stanza(s) if s.condition == "item-not-found" => {
                        RequestError::NotFound(format!("no message {row_id} in {group}"))
                    }
                    other => other,
                })?;
            let next = page.last.clone();
            after.extend(page.messages);
            match next {
                Some(n) if !page.complete && after.len() < MARKER_SCAN_ROWS && n != cursor => {
                    cursor = n;
                }
                _ => break,
            }
        }
        let message = self.inner.find_row(&group, row_id).await?;
        let sender = Occupant::archived_sender(&message.message).jid;
        // Markers for this message or a later one.
        let mut covered: std::collections::HashSet<&str> = after
            .iter()
            .filter(|a| a.message.marker.is_none())
            .map(|a| a.row_id.as_str())
            .collect();
        covered.insert(row_id);
        let mut received: BTreeMap<BareJid, Option<String>> = BTreeMap::new();
        let mut seen: BTreeMap<BareJid, Option<String>> = BTreeMap::new();
        for a in &after {
            let Some(marker) = &a.message.marker else {
                continue;
            };
            if !covered.contains(marker.id.as_str()) {
                continue;
            }
            let Some(by) = Occupant::archived_sender(&a.message).jid else {
                continue;
            };
            if Some(&by) == sender.as_ref() {
                continue;
            }
            let at = a.stamp.clone();
            if matches!(
                marker.kind,
                MarkerKind::Displayed | MarkerKind::Acknowledged
            ) {
                seen.entry(by.clone()).or_insert_with(|| at.clone());
            }
            received.entry(by).or_insert(at);
        }
        // Who saw it got it.
        for (jid, at) in &seen {
            received.entry(jid.clone()).or_insert_with(|| at.clone());
        }
        let members = self
            .participants(&group)
            .await?
            .into_iter()
            .filter(|p| Some(&p.jid) != sender.as_ref())
            .count();
        let list = |m: BTreeMap<BareJid, Option<String>>| {
            m.into_iter().map(|(jid, at)| Receipt { jid, at }).collect()
        };
        Ok(MessageInfo {
            group,
            row_id: row_id.to_owned(),
            sender,
            received: list(received),
            seen: list(seen),
            members,
        })
    }

    /// `group` as one of our groups (400 otherwise).
    pub(crate) fn group_jid_of(&self, group: impl ToJid) -> Result<BareJid, RequestError> {
        let jid = group.to_jid()?;
        if !self.is_group(&jid) {
            return Err(RequestError::BadRequest(format!(
                "{jid} is not a group on this server's group service"
            )));
        }
        Ok(jid.into_bare())
    }
}

/// What the client follows live in one group: the order of recent messages, our own recent
/// messages with who received and saw them, and the newest message to mark received.
#[derive(Debug, Default)]
pub(crate) struct Receipts {
    /// Recent messages' stanza-ids, by their place in the group (increasing).
    order: HashMap<String, u64>,
    ids: VecDeque<String>,
    next: u64,
    /// Our own recent messages: place, stanza-id, who received, who saw.
    own: VecDeque<OwnMessage>,
    /// The newest message of others, not yet marked received.
    to_mark: Option<String>,
}

#[derive(Debug)]
struct OwnMessage {
    place: u64,
    row_id: String,
    received: std::collections::BTreeSet<BareJid>,
    seen: std::collections::BTreeSet<BareJid>,
}

impl Receipts {
    fn place_of(&mut self, id: &str) -> u64 {
        if let Some(p) = self.order.get(id) {
            return *p;
        }
        let p = self.next;
        self.next += 1;
        if self.ids.len() == REMEMBERED
            && let Some(old) = self.ids.pop_front()
        {
            self.order.remove(&old);
        }
        self.ids.push_back(id.to_owned());
        self.order.insert(id.to_owned(), p);
        p
    }
}

impl Core {
    /// A group message was reported: remember its place; ours is followed, others' is to be
    /// marked received.
    pub(crate) fn note_message(&mut self, gm: &GroupMessage) {
        let Some(sid) = &gm.stanza_id else { return };
        let mine = gm.sender.jid.as_ref() == Some(&self.inner.me);
        let r = self.receipts.entry(gm.group.clone()).or_default();
        let place = r.place_of(sid);
        if mine {
            if r.own.len() == FOLLOWED {
                r.own.pop_front();
            }
            r.own.push_back(OwnMessage {
                place,
                row_id: sid.clone(),
                received: Default::default(),
                seen: Default::default(),
            });
        } else if gm.markable && self.inner.send_received_markers {
            r.to_mark = Some(sid.clone());
            self.marks_pending = true;
        }
    }

    /// A member's marker: every followed own message up to the one it names gains that
    /// member; each message whose counts change is reported.
    pub(crate) fn on_marker(
        &mut self,
        group: BareJid,
        by: Option<BareJid>,
        kind: MarkerKind,
        id: &str,
    ) {
        let Some(by) = by else {
            return;
        };
        if by == self.inner.me {
            return;
        }
        let Some(r) = self.receipts.get_mut(&group) else {
            return;
        };
        let Some(&upto) = r.order.get(id) else {
            return;
        };
        let seen = matches!(kind, MarkerKind::Displayed | MarkerKind::Acknowledged);
        let mut changed = Vec::new();
        for m in r.own.iter_mut().filter(|m| m.place <= upto) {
            let mut c = m.received.insert(by.clone());
            if seen {
                c |= m.seen.insert(by.clone());
            }
            if c {
                changed.push((m.row_id.clone(), m.received.len(), m.seen.len()));
            }
        }
        for (row_id, received, seen) in changed {
            self.emit(Event::MessageInfo {
                group: group.clone(),
                row_id,
                received,
                seen,
            });
        }
    }

    /// Sends one `received` marker per group for the newest message of others reported
    /// since the last time (it covers the earlier ones).
    pub(crate) fn send_received_markers(&mut self) {
        // A room we are not in would refuse them; they go with the next message instead.
        if self.rooms_away || !std::mem::take(&mut self.marks_pending) {
            return;
        }
        let out: Vec<Vec<u8>> = self
            .receipts
            .iter_mut()
            .filter_map(|(g, r)| {
                let id = r.to_mark.take()?;
                let m = Message::marker(
                    g.clone().into(),
                    MessageType::Groupchat,
                    MarkerKind::Received,
                    id,
                );
                Some(m.encode())
            })
            .collect();
        if out.is_empty() {
            return;
        }
        self.start(|inner: std::sync::Arc<Inner>| {
            Box::pin(async move {
                for bytes in out {
                    let _ = inner.send(bytes).await;
                }
            })
        });
    }
}
