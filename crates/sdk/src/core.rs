//! The one owner of the SDK's state: a task that receives the transport's events and the
//! calls' commands, in order, and keeps a record per group.
//!
//! Calls run on the application's tasks and reach the state only through commands
//! ([`Inner::tell`], [`Inner::with`]): closures the owner runs between two transport events,
//! so a call never sees half of an event's effects. Work an event starts (fetching a
//! profile, leaving a group that removed us, accepting an invitation, the grace window of a
//! change without a notice) runs as a follow-up future owned by this task, never detached:
//! it ends with the client. Events leave through a [`Sequencer`]: an event whose follow-up
//! is still running holds a place, so the application sees events in the order the stanzas
//! that caused them arrived.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use groupchat_protocol::DropReason;
use groupchat_protocol::codec::ext::notice::{Notice, NoticeKind};
use groupchat_protocol::codec::xep::bookmarks::{Bookmark, Dialect};
use groupchat_protocol::codec::xep::muc_admin;
use groupchat_protocol::codec::xep::muc_user::Affiliation;
use groupchat_protocol::codec::xep::stanza_error::{ErrorType, StanzaError};
use groupchat_protocol::codec::{Envelope, Iq, IqType, Message, MessageType, Stanza};
use groupchat_protocol::group::{GroupEvent, GroupMessage, GroupTracker, bare_jid};
use groupchat_protocol::jid::{BareJid, Jid};
use groupchat_transport::{ConnectionState, TransportEvent};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::client::Inner;
use crate::config::InvitationPolicy;
use crate::error::RequestError;
use crate::events::Event;

/// How long a deletion notice names the actor of the room's destruction.
pub(crate) const DELETION_NOTICE_VALIDITY: Duration = Duration::from_secs(30);
/// How long after a configuration change (status 104) without a notice the SDK reports the
/// change as made by an unknown client.
pub(crate) const NOTICE_GRACE: Duration = Duration::from_secs(5);
/// How long our own configuration submissions explain the status 104 that follows them.
pub(crate) const OWN_CHANGE_WINDOW: Duration = Duration::from_secs(10);
/// How often at most the positions are saved while messages flow.
const POSITION_SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// A command: a closure the owner runs on its state.
pub(crate) type Command = Box<dyn FnOnce(&mut Core) + Send>;
type PendingIq = (Option<String>, oneshot::Sender<Result<Iq, RequestError>>);
pub(crate) type Reflection = Result<Option<String>, StanzaError>;
pub(crate) type JoinWaiter = oneshot::Sender<Result<bool, StanzaError>>;

/// What the client knows of one group.
#[derive(Debug, Default)]
pub(crate) struct GroupRecord {
    /// In our group list (bookmarks).
    pub(crate) listed: bool,
    /// Its name, as last read.
    pub(crate) name: Option<String>,
    /// Its bookmark is stored (the read-back after a publish expects it).
    pub(crate) bookmarked: bool,
    /// We are leaving it: our own departure is not a removal.
    pub(crate) exiting: bool,
    /// Who announced its deletion, and when (the notice precedes the destruction).
    pub(crate) deleted_by: Option<(BareJid, Instant)>,
    /// When its last profile notice arrived.
    pub(crate) profile_notice: Option<Instant>,
    /// A "changed without a notice" check is waiting.
    pub(crate) profile_check: bool,
    /// When we last changed its configuration or image ourselves.
    pub(crate) own_change: Option<Instant>,
    /// The archive id of the last message seen live in it.
    pub(crate) last_stanza_id: Option<String>,
    /// The messages seen lately, to report a second copy of one not again.
    pub(crate) seen: SeenMessages,
    /// When a stanza from its room last arrived (what a self-ping waits for).
    pub(crate) heard: Option<Instant>,
    /// Its room is being joined again (login, new session, or a lost room): our messages
    /// to it wait, and the ones the lost room did not take are sent again after it.
    pub(crate) recovering: bool,
    /// A self-ping (XEP-0410) to its room is waiting for the answer.
    pub(crate) pinging: bool,
    /// The recovery under way has joined the room again.
    pub(crate) rejoined: bool,
    /// The room was lost again after that join: the recovery starts over when it ends.
    pub(crate) lost_again: Option<crate::events::JoinReason>,
    /// The latest recovery: an older one's steps no longer act.
    pub(crate) epoch: u64,
}

/// A group message sent and not yet confirmed by the room (its reflection).
pub(crate) struct PendingMessage {
    pub(crate) group: BareJid,
    pub(crate) tx: oneshot::Sender<Reflection>,
    /// The stanza, to send again when the room was lost before taking it.
    pub(crate) bytes: Vec<u8>,
    /// The order of sends: messages sent again keep it.
    pub(crate) seq: u64,
    pub(crate) state: SendState,
    /// The room's refusal, when it refused it: the caller's error if it cannot be sent
    /// again.
    pub(crate) refusal: Option<StanzaError>,
}

/// Where a [`PendingMessage`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SendState {
    /// Not sent: its room is not ours now (disconnected, or being joined again).
    Held,
    /// Sent once (and if the room refused it because we were no longer in it — its
    /// `refusal` — to be sent again after the rejoin).
    Sent,
    /// Sent again after a rejoin: a second refusal goes to the caller.
    Resent,
}

/// How many recent messages per group are remembered to recognise a second copy.
const SEEN_PER_GROUP: usize = 512;

/// The last [`SEEN_PER_GROUP`] messages of a group, by sender and id: a message the
/// server delivers twice (XEP-0198 gives at-least-once: a client that resumes replays what
/// the server had not acknowledged, and ejabberd may route both copies), or that arrives
/// live and again from the archive during a catch-up, is reported once. Keyed by the
/// sender's real JID with its origin-id (the same on every copy) — a member reusing someone
/// else's id cannot hide that one's messages — and by the room's stanza-id, which only the
/// room assigns (what the archive gives when it did not keep the sender's JID).
#[derive(Debug, Default)]
pub(crate) struct SeenMessages {
    order: VecDeque<[Option<SeenKey>; 2]>,
    set: std::collections::HashSet<SeenKey>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum SeenKey {
    Origin(Option<BareJid>, String),
    Room(String),
}

impl SeenMessages {
    /// Remembers `m`; false when it was seen already. Messages without any id are never
    /// taken for copies.
    fn first_time(&mut self, m: &GroupMessage) -> bool {
        let keys = [
            m.origin_id
                .as_ref()
                .map(|id| SeenKey::Origin(m.sender.jid.clone(), id.clone())),
            m.stanza_id.as_ref().map(|id| SeenKey::Room(id.clone())),
        ];
        if keys.iter().flatten().any(|k| self.set.contains(k)) {
            return false;
        }
        if keys.iter().all(Option::is_none) {
            return true;
        }
        if self.order.len() == SEEN_PER_GROUP
            && let Some(old) = self.order.pop_front()
        {
            for k in old.into_iter().flatten() {
                self.set.remove(&k);
            }
        }
        self.set.extend(keys.iter().flatten().cloned());
        self.order.push_back(keys);
        true
    }
}

/// A place in the event order, held by an event whose follow-up is still running.
#[derive(Debug)]
pub(crate) struct Ticket(u64);

/// Hands events to the hub in the order their places were taken.
#[derive(Default)]
pub(crate) struct Sequencer {
    next: u64,
    /// Places taken and not yet handed out, oldest first: `None` while waiting.
    queue: VecDeque<(u64, Option<Option<Event>>)>,
}

impl Sequencer {
    fn reserve(&mut self) -> Ticket {
        let t = self.next;
        self.next += 1;
        self.queue.push_back((t, None));
        Ticket(t)
    }

    /// The events ready to go out, in order.
    fn push(&mut self, e: Event, out: &mut Vec<Event>) {
        if self.queue.is_empty() {
            out.push(e);
        } else {
            let t = self.reserve();
            self.fill(t, Some(e), out);
        }
    }

    fn fill(&mut self, t: Ticket, e: Option<Event>, out: &mut Vec<Event>) {
        if let Some(slot) = self.queue.iter_mut().find(|(n, _)| *n == t.0) {
            slot.1 = Some(e);
        }
        while let Some((_, Some(_))) = self.queue.front() {
            if let Some((_, Some(Some(e)))) = self.queue.pop_front() {
                out.push(e);
            }
        }
    }
}

/// The group state and request bookkeeping; only the owner task touches it.
pub(crate) struct Core {
    pub(crate) inner: Arc<Inner>,
    pub(crate) tracker: GroupTracker,
    /// Every group we know something of, by bare JID.
    pub(crate) records: BTreeMap<BareJid, GroupRecord>,
    pub(crate) dialect: Dialect,
    /// Private-storage bookmarks that are not our groups: kept as they are.
    pub(crate) foreign_bookmarks: Vec<Bookmark>,
    /// Requests waiting for their answer: id → (the entity asked, the waiter).
    pub(crate) pending_iq: HashMap<String, PendingIq>,
    /// Group messages waiting for the room's reflection (its stanza-id) or error.
    pub(crate) pending_msg: HashMap<String, PendingMessage>,
    /// The `seq` of the next group message sent.
    pub(crate) next_seq: u64,
    pub(crate) joins: HashMap<BareJid, Vec<JoinWaiter>>,
    /// History queries waiting for their results and end, by IQ id.
    pub(crate) pending_pages: HashMap<String, crate::history::PendingPage>,
    /// Sends waiting for the server's acknowledgement, by the stanza's place in the session.
    pub(crate) pending_acks: Vec<(groupchat_protocol::SendId, oneshot::Sender<()>)>,
    /// The server acknowledges our stanzas in this session, and has up to this one.
    acks: Option<Option<groupchat_protocol::SendId>>,
    /// Per group: the order of recent messages, our own with who received and saw them.
    pub(crate) receipts: HashMap<BareJid, crate::message_info::Receipts>,
    /// Some group has a message to mark received (checked once per turn).
    pub(crate) marks_pending: bool,
    /// What the user hid in each group (cleared up to, deleted for me), as last read.
    pub(crate) group_states:
        HashMap<BareJid, groupchat_protocol::codec::ext::group_state::GroupState>,
    /// Groups whose archive is being read (catch-up): their live messages, waiting.
    pub(crate) catching_up: HashMap<BareJid, Vec<(GroupMessage, Option<Notice>)>>,
    /// Where each group and 1:1 chat was left (archive id of the last message reported).
    pub(crate) positions: BTreeMap<BareJid, String>,
    positions_dirty: bool,
    positions_saved: Instant,
    /// Who is typing where, since their last "composing".
    pub(crate) typing: HashMap<crate::typing::TypingKey, Instant>,
    /// Stanzas a failed resumption left unacknowledged (other than group messages, which
    /// wait as [`PendingMessage`]s for their group's rejoin): sent again once the groups
    /// are joined again.
    pub(crate) replay: Vec<Vec<u8>>,
    /// True from a lost connection until the rooms are ours again (a resumption, or the
    /// set-up of a fresh session having rejoined them).
    pub(crate) rooms_away: bool,
    /// When the last stanza arrived (milliseconds since the Unix epoch): where a gap after
    /// a lost session begins.
    last_received_ms: u64,
    /// When the last stanza before the latest fresh session arrived.
    pub(crate) gap_since_ms: u64,
    pub(crate) connected_once: bool,
    /// Set-ups begun (one per login without resumption): a set-up acts only while it is
    /// the latest.
    pub(crate) sessions: u64,
    events: Sequencer,
    /// Follow-ups started while handling the last input; the run loop takes them over.
    started: Vec<BoxFuture<'static, ()>>,
    /// Callers waiting until no follow-up runs (`Client::settle`).
    pub(crate) idle_waiters: Vec<oneshot::Sender<()>>,
    /// Events in order, not yet handed to the application (see `flush_events`).
    outgoing: Vec<Event>,
}

impl Core {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        let positions = inner.positions.load();
        Self {
            inner,
            tracker: GroupTracker::default(),
            records: BTreeMap::new(),
            dialect: Dialect::default(),
            foreign_bookmarks: Vec::new(),
            pending_iq: HashMap::new(),
            pending_msg: HashMap::new(),
            next_seq: 0,
            joins: HashMap::new(),
            pending_pages: HashMap::new(),
            typing: HashMap::new(),
            catching_up: HashMap::new(),
            group_states: HashMap::new(),
            receipts: HashMap::new(),
            marks_pending: false,
            positions,
            positions_dirty: false,
            positions_saved: Instant::now(),
            pending_acks: Vec::new(),
            acks: None,
            replay: Vec::new(),
            rooms_away: false,
            last_received_ms: unix_ms(),
            gap_since_ms: 0,
            connected_once: false,
            sessions: 0,
            events: Sequencer::default(),
            started: Vec::new(),
            idle_waiters: Vec::new(),
            outgoing: Vec::new(),
        }
    }

    /// The record of `group`, made if needed.
    pub(crate) fn record(&mut self, group: &BareJid) -> &mut GroupRecord {
        self.records.entry(group.clone()).or_default()
    }

    /// The groups of our list, with their names.
    pub(crate) fn listed(&self) -> impl Iterator<Item = (&BareJid, &GroupRecord)> {
        self.records.iter().filter(|(_, r)| r.listed)
    }

    pub(crate) fn is_listed(&self, group: &BareJid) -> bool {
        self.records.get(group).is_some_and(|r| r.listed)
    }

    /// Puts `group` in the list (or renames it); true when it was not listed.
    pub(crate) fn list(&mut self, group: &BareJid, name: Option<String>) -> bool {
        let r = self.record(group);
        r.name = name;
        !std::mem::replace(&mut r.listed, true)
    }

    /// Takes `group` off the list and forgets its room; true when it was listed.
    pub(crate) fn unlist(&mut self, group: &BareJid) -> bool {
        self.tracker.forget(group);
        let was = self.records.get_mut(group).is_some_and(|r| {
            r.name = None;
            std::mem::replace(&mut r.listed, false)
        });
        if self
            .records
            .get(group)
            .is_some_and(|r| !r.exiting && !r.bookmarked)
        {
            self.records.remove(group);
        }
        was
    }

    /// True when we are in `group`'s room now.
    pub(crate) fn in_room(&self, group: &BareJid) -> bool {
        let nick = &self.inner.nick;
        self.tracker.occupants(group).any(|o| o.nick == *nick)
    }

    /// Our affiliation in `group`, as the room last said.
    pub(crate) fn my_affiliation(&self, group: &BareJid) -> Option<Affiliation> {
        let nick = &self.inner.nick;
        self.tracker
            .occupants(group)
            .find(|o| o.nick == *nick)
            .and_then(|o| o.affiliation)
    }

    /// Reports `e` after every event that came before it.
    pub(crate) fn emit(&mut self, e: Event) {
        let mut out = Vec::new();
        self.events.push(e, &mut out);
        self.publish(out);
    }

    /// Holds a place in the event order for an event a follow-up will produce.
    pub(crate) fn reserve(&mut self) -> Ticket {
        self.events.reserve()
    }

    /// Fills a held place (`None`: nothing to report after all) and lets the events behind
    /// it go.
    pub(crate) fn fill(&mut self, t: Ticket, e: Option<Event>) {
        let mut out = Vec::new();
        self.events.fill(t, e, &mut out);
        self.publish(out);
    }

    fn publish(&mut self, mut out: Vec<Event>) {
        self.outgoing.append(&mut out);
    }

    /// Hands the events of this turn to the application together (one wake-up of its
    /// reader per turn, not one per event).
    pub(crate) fn flush_events(&mut self) {
        self.send_received_markers();
        self.save_positions(false);
        if !self.outgoing.is_empty() {
            self.inner.events.emit(std::mem::take(&mut self.outgoing));
        }
    }

    /// Starts a follow-up owned by this task.
    pub(crate) fn start(&mut self, f: impl FnOnce(Arc<Inner>) -> BoxFuture<'static, ()>) {
        let fut = f(self.inner.clone());
        self.started.push(fut);
    }

    /// Notes that we are about to change `group`'s configuration or image: the status 104
    /// that follows is ours, and our notice reports it.
    pub(crate) fn own_change(&mut self, group: &BareJid) {
        self.record(group).own_change = Some(Instant::now());
    }

    fn on_transport(&mut self, ev: TransportEvent) {
        match ev {
            TransportEvent::State(s) => {
                // A new session after an earlier one: rooms and presence are gone.
                let fresh = matches!(s, ConnectionState::Connected { resumed: false, .. })
                    && self.connected_once;
                if fresh {
                    // Where a gap begins, for a catch-up that fails.
                    self.gap_since_ms = self.last_received_ms;
                    tracing::debug!("not resumed: joining every group again");
                    self.start(|inner| Box::pin(async move { drop(inner.setup(false).await) }));
                }
                match &s {
                    ConnectionState::Connected { resumed, acked, .. } => {
                        if !*resumed {
                            // Places count anew in a fresh session: waits from the old one
                            // end unconfirmed.
                            self.pending_acks.clear();
                            self.acks = None;
                        }
                        if *acked {
                            self.acks.get_or_insert(None);
                        } else {
                            // Nothing will be acknowledged: the link took them.
                            for (_, tx) in self.pending_acks.drain(..) {
                                let _ = tx.send(());
                            }
                        }
                        self.connected_once = true;
                        if *resumed {
                            self.rooms_back();
                        }
                    }
                    ConnectionState::Disconnected { .. } => self.rooms_away = true,
                    ConnectionState::Ended { .. } => {
                        self.save_positions(true);
                        self.fail_pending();
                    }
                    _ => {}
                }
                self.emit(Event::Connection((&s).into()));
            }
            TransportEvent::Stanza(stanza) => {
                self.last_received_ms = unix_ms();
                self.on_stanza(stanza);
            }
            TransportEvent::Dropped { reason, envelope } => {
                self.last_received_ms = unix_ms();
                self.on_dropped(reason, envelope);
            }
            TransportEvent::Acked { up_to } => {
                self.acks = Some(Some(up_to));
                let (done, waiting): (Vec<_>, Vec<_>) = self
                    .pending_acks
                    .drain(..)
                    .partition(|(id, _)| *id <= up_to);
                self.pending_acks = waiting;
                for (_, tx) in done {
                    let _ = tx.send(());
                }
            }
            TransportEvent::Unacknowledged { stanzas } => {
                // At-least-once: requests and messages the old session may have lost are
                // sent again (message ids let receivers drop the duplicates), by the set-up
                // of the new session (started at its `Connected`, which follows) once the
                // groups are joined again. Group messages still waiting for their room are
                // not among them: each group's rejoin sends those the archive does not have.
                let waiting: std::collections::HashSet<&[u8]> =
                    self.pending_msg.values().map(|p| &p.bytes[..]).collect();
                let replay: Vec<Vec<u8>> = stanzas
                    .iter()
                    .filter(|u| !waiting.contains(&u.bytes[..]))
                    .map(|u| u.bytes.to_vec())
                    .collect();
                self.replay.extend(replay);
            }
            _ => {}
        }
    }

    /// A stanza the session could not decode: a request waiting for it as its answer fails
    /// now (502) instead of timing out; the application hears of every drop.
    fn on_dropped(&mut self, reason: DropReason, envelope: Option<Box<Envelope>>) {
        if let Some(env) = &envelope
            && env.name == "iq"
            && matches!(env.kind.as_deref(), Some("result" | "error"))
            && let Some(id) = &env.id
        {
            let answered = self.resolve_iq(id, env.from.as_ref(), || {
                Err(RequestError::MalformedAnswer(reason.to_string()))
            });
            if answered {
                tracing::debug!(id, "request failed: its answer could not be decoded");
            }
        }
        self.emit(Event::StanzaDropped {
            reason,
            from: envelope.and_then(|e| e.from),
        });
    }

    /// Hands the request waiting for answer `id` its outcome, if `from` may answer it; true
    /// when one was waiting.
    fn resolve_iq(
        &mut self,
        id: &str,
        from: Option<&Jid>,
        outcome: impl FnOnce() -> Result<Iq, RequestError>,
    ) -> bool {
        // Only the entity asked may answer: anything else leaves the request waiting.
        if !self
            .pending_iq
            .get(id)
            .is_some_and(|(to, _)| self.inner.answers(to.as_deref(), from))
        {
            return false;
        }
        match self.pending_iq.remove(id) {
            Some((_, tx)) => {
                let _ = tx.send(outcome());
                true
            }
            None => false,
        }
    }

    /// The rooms are ours again (a resumption, or a new session's set-up): what a failed
    /// resumption left unacknowledged goes out, then the group messages held meanwhile for
    /// the groups not being joined again (those go out after their group's rejoin).
    pub(crate) fn rooms_back(&mut self) {
        self.rooms_away = false;
        let replay = std::mem::take(&mut self.replay);
        self.send_in_order(replay);
        let ready: std::collections::BTreeSet<BareJid> = self
            .pending_msg
            .values()
            .filter(|p| p.state == SendState::Held)
            .map(|p| p.group.clone())
            .filter(|g| !self.records.get(g).is_some_and(|r| r.recovering))
            .collect();
        // Each group's held messages go out before any new one to it: the group is held
        // until they are handed to the connection.
        for g in ready {
            let epoch = self.hold(&g, true);
            let out = self.take_for_sending(&g, false);
            self.release(&g, epoch, out);
        }
    }

    /// Sends `stanzas` one after the other, from a follow-up.
    pub(crate) fn send_in_order(&mut self, stanzas: Vec<Vec<u8>>) {
        if stanzas.is_empty() {
            return;
        }
        self.start(|inner| {
            Box::pin(async move {
                for bytes in stanzas {
                    let _ = inner.send(bytes).await;
                }
            })
        });
    }

    /// Resolves `tx` once the server acknowledged stanza `id` (at once when it already did,
    /// or when this session has no acknowledgements).
    pub(crate) fn wait_for_ack(&mut self, id: groupchat_protocol::SendId, tx: oneshot::Sender<()>) {
        match self.acks {
            Some(Some(up_to)) if id <= up_to => {
                let _ = tx.send(());
            }
            Some(_) => self.pending_acks.push((id, tx)),
            None if self.connected_once && !self.rooms_away => {
                let _ = tx.send(());
            }
            // Not connected yet: the next session says.
            None => self.pending_acks.push((id, tx)),
        }
    }

    fn fail_pending(&mut self) {
        self.pending_iq.clear();
        self.pending_msg.clear();
        self.joins.clear();
        self.pending_pages.clear();
    }

    fn on_stanza(&mut self, stanza: Stanza) {
        let stanza = if self.pending_pages.is_empty() {
            stanza
        } else {
            match self.collect_history(stanza) {
                Some(s) => s,
                None => return,
            }
        };
        self.heard_from(&stanza);
        match &stanza {
            Stanza::Iq(iq) => {
                self.on_iq(iq);
                return;
            }
            Stanza::Message(m) => {
                if self.on_own_pep_event(m) {
                    return;
                }
                self.resolve_message(m);
            }
            _ => {}
        }
        let events = self.tracker.ingest(&stanza);
        let Stanza::Message(m) = &stanza else {
            for e in events {
                self.on_group_event(e, None);
            }
            return;
        };
        if events.is_empty() {
            self.on_direct_message(m);
        }
        for e in events {
            self.on_group_event(e, Some(m));
        }
    }

    fn on_iq(&mut self, iq: &Iq) {
        match iq.kind {
            IqType::Result | IqType::Error => {
                self.resolve_iq(&iq.id, iq.from.as_ref(), || Ok(iq.clone()));
            }
            _ => {
                let asks = |name: &str, ns: &str| {
                    iq.kind == IqType::Get && iq.payload.as_ref().is_some_and(|p| p.is(name, ns))
                };
                let reply = if asks("ping", "urn:xmpp:ping") {
                    iq.result_reply()
                } else if asks("query", "http://jabber.org/protocol/disco#info") {
                    // What we can do: the server reads it to send us the PEP
                    // notifications we advertise.
                    crate::devices::own_caps().info_result(iq)
                } else {
                    iq.error_reply("service-unavailable")
                };
                self.start(|inner| {
                    Box::pin(async move {
                        let _ = inner.send(reply).await;
                    })
                });
            }
        }
    }

    /// Resolves a waiting group send: our reflection, or an error about it.
    fn resolve_message(&mut self, m: &Message) {
        if m.kind == MessageType::Error {
            // Only the group we wrote to may refuse a message (ids are visible to members).
            let from = m.from.as_ref().map(Jid::to_bare);
            let Some(id) = &m.id else { return };
            let listed = from.as_ref().is_some_and(|g| self.is_listed(g));
            let Some(p) = self
                .pending_msg
                .get_mut(id)
                .filter(|p| Some(&p.group) == from.as_ref())
            else {
                return;
            };
            let e = m.error.as_deref().cloned().unwrap_or_else(|| {
                StanzaError::new(ErrorType::Cancel, "undefined-condition", None)
            });
            // "Only occupants may send": we are no longer in the room (its node stopped, or
            // it restarted without us), or the room is missing for a moment. Not the
            // caller's error: join again, then send it again, once.
            let first_refusal = p.state == SendState::Sent && p.refusal.is_none();
            if listed && first_refusal && crate::room_watch::rejoin_may_cure(&e.condition) {
                p.refusal = Some(e);
                let group = p.group.clone();
                self.room_lost(&group, crate::events::JoinReason::MessageRefused);
                return;
            }
            if let Some(p) = self.pending_msg.remove(id) {
                let _ = p.tx.send(Err(e));
            }
            return;
        }
        if m.kind != MessageType::Groupchat {
            return;
        }
        let Some(from) = &m.from else { return };
        if from.resource().map(|r| r.as_str()) != Some(self.inner.nick.as_str()) {
            return;
        }
        let group = from.to_bare();
        let stanza_id = m.stanza_id_by(group.as_str());
        self.confirm_sent(&group, [&m.origin_id, &m.id], stanza_id);
    }

    /// Our message `ids` (origin-id, id) reached `group`, which archived it as `stanza_id`:
    /// its sender stops waiting.
    pub(crate) fn confirm_sent(
        &mut self,
        group: &BareJid,
        ids: [&Option<String>; 2],
        stanza_id: Option<&str>,
    ) {
        for id in ids.into_iter().flatten() {
            if self.pending_msg.get(id).is_some_and(|p| p.group == *group)
                && let Some(p) = self.pending_msg.remove(id)
            {
                let _ = p.tx.send(Ok(stanza_id.map(str::to_owned)));
                return;
            }
        }
    }

    /// `group` is gone, or we are no longer in it: the messages waiting for it fail with
    /// the room's refusal (403), or as not delivered (403: not a member any more).
    pub(crate) fn fail_messages_to(&mut self, group: &BareJid) {
        let ids: Vec<String> = self
            .pending_msg
            .iter()
            .filter(|(_, p)| p.group == *group)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(p) = self.pending_msg.remove(&id) {
                let e = p.refusal.unwrap_or_else(|| {
                    StanzaError::new(
                        ErrorType::Cancel,
                        "not-acceptable",
                        Some("no longer in the group".to_owned()),
                    )
                });
                let _ = p.tx.send(Err(e));
            }
        }
    }

    /// The messages to `group` waiting to go (held, or to send again after a rejoin), in
    /// the order they were sent; `again`: the ones sent before are included.
    pub(crate) fn take_for_sending(&mut self, group: &BareJid, again: bool) -> Vec<Vec<u8>> {
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        for p in self.pending_msg.values_mut() {
            if p.group != *group {
                continue;
            }
            // After each loss, every message the room has not confirmed goes again (once
            // per loss: a message refused after being sent again goes to its caller).
            let next = match p.state {
                SendState::Held => SendState::Sent,
                SendState::Sent | SendState::Resent if again => SendState::Resent,
                _ => continue,
            };
            p.state = next;
            out.push((p.seq, p.bytes.clone()));
        }
        out.sort_by_key(|(seq, _)| *seq);
        out.into_iter().map(|(_, b)| b).collect()
    }

    fn on_direct_message(&mut self, m: &Message) {
        if !matches!(m.kind, MessageType::Chat | MessageType::Normal) || m.muc_user.is_some() {
            return;
        }
        if let (Some(from), Some(state), None, None) = (&m.from, m.chat_state, &m.body, &m.media)
            && !self.tracker.services().is_group(from)
        {
            let from = from.to_bare();
            self.on_typing(from.clone(), false, Some(from), None, state);
            return;
        }
        let body = m.body.as_ref().or(m.media.as_ref().map(|x| &x.url));
        if let (Some(from), Some(body)) = (&m.from, body) {
            if self.tracker.services().is_group(from) {
                return;
            }
            let stanza_id = m.stanza_id_by(self.inner.me.as_str()).map(str::to_owned);
            if let Some(sid) = &stanza_id {
                self.positions.insert(from.to_bare(), sid.clone());
                self.positions_dirty = true;
            }
            self.emit(Event::ChatMessage {
                from: from.to_bare(),
                id: m.id.clone(),
                origin_id: m.origin_id.clone(),
                stanza_id,
                timestamp: m.delay.as_ref().map(|d| d.stamp.clone()),
                body: body.clone(),
                media: m.media.clone(),
            });
        }
    }

    fn resolve_join(&mut self, group: &BareJid, r: Result<bool, StanzaError>) {
        if let Some(waiters) = self.joins.remove(group) {
            for w in waiters {
                let _ = w.send(r.clone());
            }
        }
    }

    /// Forgets a group that is gone (list, room state) and reports `event` in order, once
    /// its bookmark is removed (so that a group list read after the event no longer has it);
    /// a group that is not (or no longer) listed reports nothing.
    pub(crate) fn group_gone(&mut self, group: &BareJid, event: Event) {
        if !self.unlist(group) {
            return;
        }
        // Until its bookmark is removed, a group list read from the server must not take
        // the group back.
        self.record(group).exiting = true;
        let t = self.reserve();
        let group = group.clone();
        self.start(|inner| {
            Box::pin(async move {
                let _ = inner.bookmark_remove(&group).await;
                inner.tell(move |c| {
                    c.record(&group).exiting = false;
                    c.fill(t, Some(event));
                });
            })
        });
    }

    fn on_group_event(&mut self, e: GroupEvent, m: Option<&Message>) {
        match e {
            GroupEvent::Joined { group, created, .. } => self.resolve_join(&group, Ok(created)),
            GroupEvent::RoomShutDown { group } => {
                self.room_lost(&group, crate::events::JoinReason::RoomShutDown);
            }
            GroupEvent::JoinFailed { group, error } => self.resolve_join(&group, Err(error)),
            GroupEvent::Message(gm) => {
                let notice = m.and_then(|m| Notice::find(&m.payloads));
                // While the group's archive is read, its live messages (and the notices
                // among them, to keep their order) wait behind it.
                if let Some(waiting) = self.catching_up.get_mut(&gm.group) {
                    waiting.push((gm, notice));
                    return;
                }
                self.deliver_with(gm, notice);
            }
            GroupEvent::Removed {
                group,
                is_self: true,
                by,
                ..
            } => {
                if self.records.get(&group).is_some_and(|r| r.exiting) {
                    return;
                }
                let event = Event::RemovedFromGroup {
                    group: group.clone(),
                    by,
                };
                self.group_gone(&group, event);
            }
            GroupEvent::Destroyed { group, .. } => {
                let by = self
                    .records
                    .get_mut(&group)
                    .and_then(|r| r.deleted_by.take())
                    .filter(|(_, at)| at.elapsed() < DELETION_NOTICE_VALIDITY)
                    .map(|(by, _)| by);
                let event = Event::GroupDeleted {
                    group: group.clone(),
                    by,
                };
                self.group_gone(&group, event);
            }
            GroupEvent::Invited {
                group, by, reason, ..
            } => {
                let ours = self.inner.is_our_group(&group);
                if !ours || self.is_listed(&group) {
                    tracing::debug!(%group, ours, "invitation ignored");
                    return;
                }
                match self.inner.invitations {
                    InvitationPolicy::Manual => self.emit(Event::Invitation { group, by, reason }),
                    InvitationPolicy::AutoAccept => {
                        let t = self.reserve();
                        // A failed accept (a forged invitation, a group that is gone)
                        // joins nothing and reports nothing.
                        self.start(|inner| {
                            Box::pin(async move {
                                let _ = inner.accept(&group, by, Some(t)).await;
                            })
                        });
                    }
                }
            }
            GroupEvent::ProfileChanged { group } => self.profile_changed_without_notice(group),
            GroupEvent::Typing {
                group,
                occupant,
                state,
            } => self.on_typing(group, true, occupant.jid, Some(occupant.nick), state),
            GroupEvent::Marker {
                group,
                occupant,
                kind,
                id,
            } => self.on_marker(group, occupant.jid, kind, &id),
            GroupEvent::Retracted { group, id, by, .. } => self.on_retracted(group, id, by),
            _ => {}
        }
    }

    /// Reports a group message (live or from the archive) unless it was reported already,
    /// and moves the group's position to it.
    pub(crate) fn deliver(&mut self, gm: GroupMessage) {
        self.deliver_with(gm, None);
    }

    pub(crate) fn deliver_with(&mut self, mut gm: GroupMessage, notice: Option<Notice>) {
        // A message in several languages: the reader's own as the body.
        if let (Some(bodies), Some(body)) = (gm.bodies.as_deref_mut(), gm.body.as_mut()) {
            bodies.prefer(body, &self.inner.languages);
        }
        // Our own message read back from the archive: a send waiting for a room we lost
        // reached it after all, and is not sent again.
        if gm.archived && gm.sender.nick == self.inner.nick {
            let group = gm.group.clone();
            let sid = gm.stanza_id.clone();
            self.confirm_sent(&group, [&gm.origin_id, &gm.id], sid.as_deref());
        }
        let record = self.record(&gm.group);
        if !record.seen.first_time(&gm) {
            tracing::debug!(group = %gm.group, id = ?gm.origin_id, archived = gm.archived, "a second copy of a message: not reported");
            return;
        }
        if let Some(sid) = &gm.stanza_id {
            record.last_stanza_id = Some(sid.clone());
            self.positions.insert(gm.group.clone(), sid.clone());
            self.positions_dirty = true;
        }
        // A message ends its sender's typing (no event: the message says it).
        let who = gm.sender.jid.as_ref().map(|j| j.to_string());
        self.typing.remove(&(
            gm.group.clone(),
            who.unwrap_or_else(|| gm.sender.nick.clone()),
        ));
        match notice {
            Some(n) => self.on_notice(&gm, n),
            None => {
                self.note_message(&gm);
                self.emit(Event::GroupMessage(gm));
            }
        }
    }

    /// Keeps the positions when they changed, at most once a second (or now, `force`).
    pub(crate) fn save_positions(&mut self, force: bool) {
        if !self.positions_dirty
            || (!force && self.positions_saved.elapsed() < POSITION_SAVE_INTERVAL)
        {
            return;
        }
        self.positions_dirty = false;
        self.positions_saved = Instant::now();
        if let Err(e) = self.inner.positions.save(&self.positions) {
            tracing::warn!(error = %e, "positions not saved");
            self.positions_dirty = true;
        }
    }

    /// A notice from a member: the event it stands for. Only the room's word on who sent
    /// it counts (the occupant's real JID, never a nickname), and only an admin's notice
    /// about an admin's action is believed.
    fn on_notice(&mut self, gm: &GroupMessage, n: Notice) {
        let Some(by) = gm.sender.jid.clone() else {
            return;
        };
        let group = gm.group.clone();
        let from_admin = gm.sender.affiliation == Some(Affiliation::Owner);
        if n.kind != NoticeKind::MemberLeft && !from_admin {
            tracing::debug!(%group, %by, kind = n.kind.as_str(), "notice ignored: not from an admin");
            return;
        }
        let first = n.participants.first().and_then(|p| bare_jid(p));
        match n.kind {
            NoticeKind::ParticipantsAdded => self.emit(Event::ParticipantsAdded {
                group,
                participants: n.participants.iter().filter_map(|p| bare_jid(p)).collect(),
                by,
            }),
            NoticeKind::ParticipantRemoved | NoticeKind::AdminGranted => {
                // A notice about someone names them; one that does not is not believed.
                let Some(participant) = first else {
                    tracing::debug!(%group, kind = n.kind.as_str(), "notice ignored: names nobody");
                    return;
                };
                self.emit(if n.kind == NoticeKind::AdminGranted {
                    Event::AdminGranted {
                        group,
                        participant,
                        by,
                    }
                } else {
                    Event::ParticipantRemoved {
                        group,
                        participant,
                        by,
                    }
                });
            }
            NoticeKind::MemberLeft => {
                self.emit(Event::MemberLeft {
                    group: group.clone(),
                    participant: by.clone(),
                });
                // A member cannot drop their own membership; an admin does it for them.
                let me_admin = self.my_affiliation(&group) == Some(Affiliation::Owner);
                if me_admin && by != self.inner.me && !from_admin {
                    self.start(|inner| {
                        Box::pin(async move {
                            let _ = inner
                                .request(Some(group.as_str()), |id| {
                                    muc_admin::set(
                                        group.as_str(),
                                        id,
                                        by.as_str(),
                                        Affiliation::None,
                                        None,
                                    )
                                })
                                .await;
                        })
                    });
                }
            }
            NoticeKind::GroupDeleted => {
                self.record(&group).deleted_by = Some((by, Instant::now()));
            }
            NoticeKind::ProfileUpdated => {
                self.record(&group).profile_notice = Some(Instant::now());
                self.report_profile(group, Some(by));
            }
            _ => {}
        }
    }

    /// Reads the group's profile and reports it, in the place of this moment.
    fn report_profile(&mut self, group: BareJid, by: Option<BareJid>) {
        let t = self.reserve();
        self.start(|inner| {
            Box::pin(async move {
                let profile = inner.profile(&group).await.ok();
                inner.tell(move |c| {
                    let event = profile.map(|profile| {
                        if let Some(r) = c.records.get_mut(&group).filter(|r| r.listed) {
                            r.name.clone_from(&profile.name);
                        }
                        Event::ProfileUpdated { group, profile, by }
                    });
                    c.fill(t, event);
                });
            })
        });
    }

    /// A configuration change (status 104). Changes made through this SDK come with a
    /// notice, which reports them with the actor; when none follows within
    /// [`NOTICE_GRACE`], another client made the change and it is reported without one.
    fn profile_changed_without_notice(&mut self, group: BareJid) {
        let seen_at = Instant::now();
        let r = self.record(&group);
        let ours = r
            .own_change
            .is_some_and(|t| t.elapsed() < OWN_CHANGE_WINDOW);
        if ours || std::mem::replace(&mut r.profile_check, true) {
            return; // our own change, or a check is already waiting
        }
        self.start(|inner| {
            Box::pin(async move {
                tokio::time::sleep(NOTICE_GRACE).await;
                inner.tell(move |c| {
                    let r = c.record(&group);
                    r.profile_check = false;
                    if r.profile_notice.is_none_or(|t| t < seen_at) {
                        c.report_profile(group, None);
                    }
                });
            })
        });
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The owner task: every transport event and every command passes here, in order.
pub(crate) async fn run(
    mut core: Core,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut transport: groupchat_transport::Client,
) {
    let mut follow_ups: FuturesUnordered<BoxFuture<'static, ()>> = FuturesUnordered::new();
    // Rooms silent for `room_check` are pinged; the check runs twice per period.
    let mut watch = tokio::time::interval_at(
        Instant::now() + core.inner.room_check,
        core.inner.room_check / 2,
    );
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Commands first: a request's registration is queued before its stanza is
            // sent, so it is always handled before the answer.
            biased;
            Some(cmd) = commands.recv() => cmd(&mut core),
            ev = transport.next_event() => match ev {
                Some(ev) => core.on_transport(ev),
                None => break,
            },
            Some(()) = follow_ups.next(), if !follow_ups.is_empty() => {}
            _ = watch.tick() => core.watch_rooms(),
        }
        // Whatever else is already here, commands still first; then the turn's events go
        // out together.
        loop {
            if let Ok(cmd) = commands.try_recv() {
                cmd(&mut core);
            } else if let Some(ev) = transport.try_next_event() {
                core.on_transport(ev);
            } else {
                break;
            }
        }
        core.flush_events();
        follow_ups.extend(core.started.drain(..));
        if follow_ups.is_empty() {
            for w in core.idle_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }
    core.flush_events();
    core.fail_pending();
}
