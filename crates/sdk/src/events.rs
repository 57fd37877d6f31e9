//! What the client reports: one [`Event`] type, delivered as an async stream
//! ([`Client::events`](crate::Client::events)) and to listener traits.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::Stream;
use groupchat_protocol::DropReason;
use groupchat_protocol::group::GroupMessage;
use groupchat_protocol::jid::{BareJid, FullJid, Jid};
use groupchat_transport::{ConnectionState, TransportError};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::group::GroupProfile;

fn as_text<S: serde::Serializer>(e: &TransportError, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(e)
}

fn opt_as_text<S: serde::Serializer>(e: &Option<TransportError>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.collect_str(e),
        None => s.serialize_none(),
    }
}

/// The connection's state, as events carry it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
#[non_exhaustive]
pub enum Connection {
    /// Opening a link.
    Connecting,
    /// Logged in; `resumed` when nothing was lost (XEP-0198).
    Connected {
        /// Our full JID.
        jid: FullJid,
        /// The previous session was resumed.
        resumed: bool,
    },
    /// The link was lost; a reconnection follows.
    Disconnected {
        /// Why (as text in JSON).
        #[serde(serialize_with = "as_text")]
        reason: TransportError,
    },
    /// Waiting before the next attempt.
    Reconnecting {
        /// The coming attempt.
        attempt: u32,
        /// Milliseconds until it.
        delay_ms: u64,
    },
    /// Ended for good.
    Ended {
        /// Why, unless closed by the application (as text in JSON).
        #[serde(serialize_with = "opt_as_text")]
        reason: Option<TransportError>,
    },
}

impl From<&ConnectionState> for Connection {
    fn from(s: &ConnectionState) -> Self {
        match s {
            ConnectionState::Connecting { .. } => Self::Connecting,
            ConnectionState::Connected { jid, resumed, .. } => Self::Connected {
                jid: jid.clone(),
                resumed: *resumed,
            },
            ConnectionState::Disconnected { reason } => Self::Disconnected {
                reason: reason.clone(),
            },
            ConnectionState::Reconnecting { attempt, delay } => Self::Reconnecting {
                attempt: *attempt,
                delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            },
            ConnectionState::Ended { reason } => Self::Ended {
                reason: reason.clone(),
            },
            _ => Self::Connecting,
        }
    }
}

/// Messages of one group that may not have reached this client: sent after `after` (the
/// archive id of the last message it saw there) and around `since_ms`. The group's archive
/// (XEP-0313) holds them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MissedMessages {
    /// The group.
    pub group: BareJid,
    /// The archive id (stanza-id) of the last message seen live in it, if any.
    pub after: Option<String>,
    /// When the last stanza of the lost session arrived, in milliseconds since the Unix
    /// epoch: messages from then until the rejoin may be missing.
    pub since_ms: u64,
}

/// Why groups were joined ([`Event::GroupsJoined`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum JoinReason {
    /// The client logged in.
    Login,
    /// A new session after a connection that could not be resumed: the server restarted,
    /// or the client failed over to another node of a cluster.
    NewSession,
    /// The room said it is shutting down (status 332: in a cluster, its node stopped); it
    /// restarts on another node when joined.
    RoomShutDown,
    /// The room refused our message as from someone not in it (its node died, and it
    /// restarted without us); the message was sent again after the join.
    MessageRefused,
    /// A self-ping (XEP-0410), sent because the room had been silent, found us out of it.
    SelfPing,
    /// An earlier join of the group failed; it was tried again.
    Retry,
}

fn display<S: serde::Serializer>(v: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Something that happened. Group events carry the group's JID and, where the group says,
/// the acting user's bare JID (`by`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
#[non_exhaustive]
pub enum Event {
    /// The connection changed state.
    Connection(Connection),
    /// The server could not resume the lost session and discarded what it had not yet
    /// delivered (a server restart, or Prosody refusing a resumption with too many stanzas
    /// waiting): these groups may have missed messages. Reported after the reconnection,
    /// before [`Event::GroupsJoined`]; the gap is in each group's archive.
    MessagesMayBeMissing {
        /// The groups and where their gap begins.
        groups: Vec<MissedMessages>,
    },
    /// A received stanza could not be decoded (hostile or broken: an attribute longer than
    /// the decoder takes, a bad JID, ...) and was dropped; the session carries on. A request
    /// waiting for it as its answer fails with 502.
    StanzaDropped {
        /// Why.
        #[serde(serialize_with = "display")]
        reason: DropReason,
        /// Its sender, when that could be read.
        from: Option<Jid>,
    },
    /// Groups were joined (again): every group of the list after a login without
    /// resumption (the first one, a server restart, a failover to another node of a
    /// cluster), or one group whose room was lost while connected (see [`JoinReason`]).
    /// What the groups said meanwhile follows from their archives, each message once.
    GroupsJoined {
        /// The joined groups.
        groups: Vec<BareJid>,
        /// Why they were joined.
        reason: JoinReason,
    },
    /// We created a group.
    GroupCreated {
        /// The group.
        group: BareJid,
        /// Its name.
        name: String,
        /// Who created it (us).
        by: BareJid,
    },
    /// Someone added us to a group; the SDK has joined and listed it (unless invitations are
    /// left to the application, see [`Event::Invitation`]).
    AddedToGroup {
        /// The group.
        group: BareJid,
        /// Its name.
        name: Option<String>,
        /// Who added us.
        by: Option<BareJid>,
    },
    /// An invitation the application decides on ([`InvitationPolicy::Manual`]); accept it
    /// with [`Client::join_group`](crate::Client::join_group).
    ///
    /// [`InvitationPolicy::Manual`]: crate::InvitationPolicy::Manual
    Invitation {
        /// The group.
        group: BareJid,
        /// Who invited us.
        by: Option<BareJid>,
        /// Their reason.
        reason: Option<String>,
    },
    /// The group's name or image changed.
    ProfileUpdated {
        /// The group.
        group: BareJid,
        /// The profile after the change.
        profile: GroupProfile,
        /// Who changed it, when known (changes by clients without this SDK do not say).
        by: Option<BareJid>,
    },
    /// Members were added.
    ParticipantsAdded {
        /// The group.
        group: BareJid,
        /// The new members.
        participants: Vec<BareJid>,
        /// Who added them.
        by: BareJid,
    },
    /// A member was removed by an admin.
    ParticipantRemoved {
        /// The group.
        group: BareJid,
        /// The removed member.
        participant: BareJid,
        /// The admin.
        by: BareJid,
    },
    /// A member became admin.
    AdminGranted {
        /// The group.
        group: BareJid,
        /// The new admin.
        participant: BareJid,
        /// The admin who granted it.
        by: BareJid,
    },
    /// A member left the group.
    MemberLeft {
        /// The group.
        group: BareJid,
        /// Who left.
        participant: BareJid,
    },
    /// The group was deleted (destroyed by an admin); it is gone from our list.
    GroupDeleted {
        /// The group.
        group: BareJid,
        /// The admin who deleted it, when known.
        by: Option<BareJid>,
    },
    /// We were removed from the group; it is gone from our list.
    RemovedFromGroup {
        /// The group.
        group: BareJid,
        /// The admin who removed us, when known.
        by: Option<BareJid>,
    },
    /// A message in a group.
    GroupMessage(GroupMessage),
    /// Someone is typing in a group or a 1:1 chat, stopped, or their typing expired.
    Typing {
        /// The group, or for a 1:1 chat the other user.
        conversation: BareJid,
        /// `conversation` is a group.
        is_group: bool,
        /// Who (their real JID; in a group, when the room tells).
        from: Option<BareJid>,
        /// Their nickname, in a group.
        nick: Option<String>,
        /// Typing, stopped, or expired.
        state: crate::TypingState,
    },
    /// Who received or saw one of our recent group messages changed (the seed's
    /// `groupMsgInfoListener`): the counts so far, from the markers seen live since we
    /// sent it. [`Client::message_info`](crate::Client::message_info) gives the names, the
    /// times and the number of members.
    MessageInfo {
        /// The group.
        group: BareJid,
        /// The message (its row id: the room's stanza-id).
        row_id: String,
        /// How many members received it.
        received: usize,
        /// How many members saw it.
        seen: usize,
    },
    /// A group message was deleted: for everyone (retracted by its sender, or by a
    /// moderator), or for this user only (on one of their devices).
    MessageDeleted {
        /// The group.
        group: BareJid,
        /// The message (its row id: the room's stanza-id).
        row_id: String,
        /// Who deleted it, when known.
        by: Option<BareJid>,
        /// Deleted for every member, not only for this user.
        for_everyone: bool,
    },
    /// This user cleared a group's chat (on one of their devices): history ends there.
    ChatCleared {
        /// The group.
        group: BareJid,
        /// Messages up to and including this row id are cleared.
        up_to: String,
    },
    /// A 1:1 chat message.
    ChatMessage {
        /// The sender's bare JID.
        from: BareJid,
        /// The message id.
        id: Option<String>,
        /// The sender's XEP-0359 origin-id.
        origin_id: Option<String>,
        /// Our archive's id for it (XEP-0359 stanza-id by our own account): the row id
        /// [`Client::history`](crate::Client::history) pages from.
        stanza_id: Option<String>,
        /// When it was sent, for a message the server kept while we were away (XEP-0203).
        timestamp: Option<String>,
        /// The text (for a media message, its URL).
        body: String,
        /// The attachment of a media message.
        media: Option<Box<groupchat_protocol::codec::xep::media::Media>>,
    },
}

impl Event {
    /// The group the event is about, if any.
    pub fn group(&self) -> Option<&BareJid> {
        match self {
            Self::GroupCreated { group, .. }
            | Self::AddedToGroup { group, .. }
            | Self::Invitation { group, .. }
            | Self::ProfileUpdated { group, .. }
            | Self::ParticipantsAdded { group, .. }
            | Self::ParticipantRemoved { group, .. }
            | Self::AdminGranted { group, .. }
            | Self::MemberLeft { group, .. }
            | Self::GroupDeleted { group, .. }
            | Self::RemovedFromGroup { group, .. } => Some(group),
            Self::GroupMessage(m) => Some(&m.group),
            Self::MessageInfo { group, .. }
            | Self::MessageDeleted { group, .. }
            | Self::ChatCleared { group, .. } => Some(group),
            Self::Typing {
                conversation,
                is_group,
                ..
            } => is_group.then_some(conversation),
            Self::Connection(_)
            | Self::ChatMessage { .. }
            | Self::GroupsJoined { .. }
            | Self::MessagesMayBeMissing { .. }
            | Self::StanzaDropped { .. } => None,
        }
    }
}

/// Group changes, like the seed API's `groupProfileListener`. Every method has a default
/// that does nothing: implement the ones you need. A listener that needs the client should
/// hold a [`std::sync::Weak`] reference or a channel, not a `Client`: the client keeps its
/// listeners, and a listener that keeps the client would keep the session open.
#[async_trait]
pub trait GroupProfileListener: Send + Sync {
    /// We created a group.
    async fn group_created(&self, _group: &BareJid, _name: &str) {}
    /// We were added to a group.
    async fn added_to_group(&self, _group: &BareJid, _by: Option<&BareJid>) {}
    /// The name or image changed.
    async fn profile_updated(
        &self,
        _group: &BareJid,
        _profile: &GroupProfile,
        _by: Option<&BareJid>,
    ) {
    }
    /// Members were added.
    async fn participants_added(&self, _group: &BareJid, _participants: &[BareJid], _by: &BareJid) {
    }
    /// A member was removed.
    async fn participant_removed(&self, _group: &BareJid, _participant: &BareJid, _by: &BareJid) {}
    /// A member became admin.
    async fn admin_granted(&self, _group: &BareJid, _participant: &BareJid, _by: &BareJid) {}
    /// A member left.
    async fn member_left(&self, _group: &BareJid, _participant: &BareJid) {}
    /// The group was deleted.
    async fn group_deleted(&self, _group: &BareJid, _by: Option<&BareJid>) {}
    /// We were removed.
    async fn removed_from_group(&self, _group: &BareJid, _by: Option<&BareJid>) {}
}

/// Connection state changes.
#[async_trait]
pub trait ConnectionListener: Send + Sync {
    /// The state changed.
    async fn connection_changed(&self, state: &Connection);
}

/// Incoming messages.
#[async_trait]
pub trait MessageListener: Send + Sync {
    /// A group message.
    async fn group_message(&self, _message: &GroupMessage) {}
    /// A 1:1 message.
    async fn chat_message(&self, _from: &BareJid, _body: &str) {}
}

/// The registered listeners.
#[derive(Clone, Default)]
pub(crate) struct Listeners {
    pub(crate) group: Vec<Arc<dyn GroupProfileListener>>,
    pub(crate) connection: Vec<Arc<dyn ConnectionListener>>,
    pub(crate) message: Vec<Arc<dyn MessageListener>>,
}

impl Listeners {
    fn is_empty(&self) -> bool {
        self.group.is_empty() && self.connection.is_empty() && self.message.is_empty()
    }

    /// Calls every listener the event concerns, in registration order.
    async fn dispatch(&self, e: &Event) {
        for l in &self.connection {
            if let Event::Connection(c) = e {
                l.connection_changed(c).await;
            }
        }
        for l in &self.message {
            match e {
                Event::GroupMessage(m) => l.group_message(m).await,
                Event::ChatMessage { from, body, .. } => l.chat_message(from, body).await,
                _ => {}
            }
        }
        for l in &self.group {
            match e {
                Event::GroupCreated { group, name, .. } => l.group_created(group, name).await,
                Event::AddedToGroup { group, by, .. } => {
                    l.added_to_group(group, by.as_ref()).await;
                }
                Event::ProfileUpdated { group, profile, by } => {
                    l.profile_updated(group, profile, by.as_ref()).await;
                }
                Event::ParticipantsAdded {
                    group,
                    participants,
                    by,
                } => l.participants_added(group, participants, by).await,
                Event::ParticipantRemoved {
                    group,
                    participant,
                    by,
                } => l.participant_removed(group, participant, by).await,
                Event::AdminGranted {
                    group,
                    participant,
                    by,
                } => l.admin_granted(group, participant, by).await,
                Event::MemberLeft { group, participant } => {
                    l.member_left(group, participant).await;
                }
                Event::GroupDeleted { group, by } => l.group_deleted(group, by.as_ref()).await,
                Event::RemovedFromGroup { group, by } => {
                    l.removed_from_group(group, by.as_ref()).await;
                }
                _ => {}
            }
        }
    }
}

/// Batches of events (one per turn of the owner task) kept for a first `events()` call that
/// has not come yet.
const UNCLAIMED_LIMIT: usize = 10_000;

/// Fans events out to every subscriber and to the listeners (on their own task, so that a
/// slow listener never stalls the connection). Subscribers are unbounded: an event is never
/// dropped for a slow reader.
pub(crate) struct EventHub {
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Vec<Event>>>>,
    /// Everything since the start, for the first `events()` call (taken once).
    first: Mutex<Option<mpsc::UnboundedReceiver<Vec<Event>>>>,
    listeners: mpsc::UnboundedSender<Vec<Event>>,
    registry: Arc<tokio::sync::RwLock<Listeners>>,
    /// A listener was registered: until then, events do not wake the listener task.
    listening: std::sync::atomic::AtomicBool,
}

impl EventHub {
    pub(crate) fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ltx, mut lrx) = mpsc::unbounded_channel::<Vec<Event>>();
        let registry = Arc::new(tokio::sync::RwLock::new(Listeners::default()));
        let reg = registry.clone();
        tokio::spawn(async move {
            while let Some(batch) = lrx.recv().await {
                // A copy of the list, so that a listener may register another one.
                let listeners = reg.read().await.clone();
                if !listeners.is_empty() {
                    for e in &batch {
                        listeners.dispatch(e).await;
                    }
                }
            }
        });
        Self {
            subscribers: Mutex::new(vec![tx]),
            first: Mutex::new(Some(rx)),
            listeners: ltx,
            registry,
            listening: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Registers listeners (`add` changes the registry).
    pub(crate) async fn register(&self, add: impl FnOnce(&mut Listeners)) {
        add(&mut *self.registry.write().await);
        self.listening
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Hands `batch` (events in order) to every stream and listener.
    pub(crate) fn emit(&self, batch: Vec<Event>) {
        {
            // Nobody asked for the stream from the start: stop keeping it after a while,
            // rather than growing without bound.
            let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
            if first.as_ref().is_some_and(|rx| rx.len() >= UNCLAIMED_LIMIT) {
                *first = None;
            }
        }
        let listening = self.listening.load(std::sync::atomic::Ordering::Acquire);
        let mut subs = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        // Copies for all but the last receiver: the common case (one stream, no listener)
        // moves the batch.
        let n = subs.len();
        let mut batch = Some(batch);
        let mut i = 0;
        subs.retain(|s| {
            i += 1;
            let b = if i == n && !listening {
                batch.take()
            } else {
                batch.clone()
            };
            b.is_some_and(|b| s.send(b).is_ok())
        });
        drop(subs);
        if let Some(b) = batch.filter(|_| listening) {
            let _ = self.listeners.send(b);
        }
    }

    pub(crate) fn subscribe(&self) -> EventStream {
        if let Some(rx) = self.first.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return EventStream {
                rx,
                ready: VecDeque::new(),
            };
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        EventStream {
            rx,
            ready: VecDeque::new(),
        }
    }
}

/// The client's events as a [`Stream`]; it ends when the client has ended.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<Vec<Event>>,
    /// The rest of the batch last received.
    ready: VecDeque<Event>,
}

impl EventStream {
    /// The next event (`None` once the client has ended). Cancel-safe.
    pub async fn next(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Event>> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return std::task::Poll::Ready(Some(e));
            }
            match self.rx.poll_recv(cx) {
                std::task::Poll::Ready(Some(batch)) => self.ready.extend(batch),
                std::task::Poll::Ready(None) => return std::task::Poll::Ready(None),
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
        }
    }
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Event>> {
        self.poll_event(cx)
    }
}
