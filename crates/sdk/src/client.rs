//! The client: one reader task that owns the connection's events, and request/response
//! plumbing (IQ ids, room joins, message reflections) shared by every call.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use groupchat_protocol::DropReason;
use groupchat_protocol::codec::xep::bookmarks::{Bookmark, Dialect};
use groupchat_protocol::codec::xep::stanza_error::{ErrorType, StanzaError};
use groupchat_protocol::codec::xep::{disco, muc_owner, upload};
use groupchat_protocol::codec::{Envelope, Iq, IqType, Message, MessageType, Stanza};
use groupchat_protocol::group::{GroupEvent, GroupServices, GroupTracker};
use groupchat_protocol::jid::{BareJid, Jid};
use groupchat_transport::{ClientConfig, ConnectionState, Connector, Handle, TransportEvent};
use tokio::sync::oneshot;

use crate::config::{ClientBuilder, InvitationPolicy};
use crate::error::{ConnectError, RequestError};
use crate::events::{
    ConnectionListener, Event, EventHub, EventStream, GroupProfileListener, MessageListener,
    MissedMessages,
};

/// How long a deletion notice names the actor of the room's destruction.
const DELETION_NOTICE_VALIDITY: Duration = Duration::from_secs(30);

/// The services the server offers, found with disco at login.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Services {
    /// The group (MUC) service, e.g. `conference.example.org`.
    pub groups: Option<String>,
    /// The HTTP upload service (XEP-0363) and its size limit.
    pub upload: Option<(String, Option<u64>)>,
    /// The account's archive (XEP-0313).
    pub mam: bool,
    /// PEP publish-options (XEP-0223), which bookmarks and private group state need.
    pub publish_options: bool,
}

/// The connected SDK client. Cheap to clone; every clone drives the same session, which is
/// closed when the last clone is dropped (or on [`close`](Self::close)).
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    _guard: Arc<CloseOnDrop>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("jid", &self.inner.me)
            .finish_non_exhaustive()
    }
}

struct CloseOnDrop(Handle);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

type Waiters<T> = Mutex<HashMap<String, Vec<oneshot::Sender<T>>>>;
type PendingIq = (Option<String>, oneshot::Sender<Result<Iq, RequestError>>);
type Reflection = Result<Option<String>, StanzaError>;

pub(crate) struct Inner {
    pub(crate) handle: Handle,
    pub(crate) me: BareJid,
    /// Our nickname in every group: the bare JID, unique by construction.
    pub(crate) nick: String,
    pub(crate) request_timeout: Duration,
    invitations: InvitationPolicy,
    pub(crate) http: crate::http::Http,
    id_prefix: String,
    next_id: AtomicU64,
    /// Requests waiting for their answer: id → (the entity asked, the waiter).
    pending_iq: Mutex<HashMap<String, PendingIq>>,
    /// Group messages waiting for the room's reflection (its stanza-id) or error.
    pending_msg: Mutex<HashMap<String, (String, oneshot::Sender<Reflection>)>>,
    joins: Waiters<Result<bool, StanzaError>>,
    pub(crate) services: Mutex<Services>,
    pub(crate) state: Mutex<State>,
    pub(crate) events: EventHub,
    /// Stanzas a failed resumption left unacknowledged: sent again once the groups are
    /// joined again (a groupchat message sent before would be refused by the room).
    replay: Mutex<Vec<Vec<u8>>>,
    /// One bookmark change at a time (the read-back after a publish compares the whole
    /// list).
    pub(crate) bookmark_lock: tokio::sync::Mutex<()>,
    /// When the last stanza arrived (milliseconds since the Unix epoch): where a gap after
    /// a lost session begins.
    last_received_ms: AtomicU64,
}

/// What the client knows about its groups.
pub(crate) struct State {
    pub(crate) tracker: GroupTracker,
    /// The group list (bookmarks): JID → name.
    pub(crate) groups: BTreeMap<String, Option<String>>,
    pub(crate) dialect: Dialect,
    /// Groups we are leaving: our own departure is not a removal.
    pub(crate) exiting: HashSet<String>,
    /// Who announced a group's deletion, and when (its notice precedes the destruction).
    pub(crate) deleted_by: HashMap<String, (String, Instant)>,
    /// When each group's last profile notice arrived.
    pub(crate) profile_notices: HashMap<String, Instant>,
    /// Groups with a pending "changed without a notice" check.
    pub(crate) profile_checks: HashSet<String>,
    /// When we last changed each group's configuration or image ourselves.
    pub(crate) own_changes: HashMap<String, Instant>,
    /// Groups whose bookmark is stored (the read-back after a publish expects them).
    pub(crate) bookmarked: BTreeSet<String>,
    /// Private-storage bookmarks that are not our groups: kept as they are.
    pub(crate) foreign_bookmarks: Vec<Bookmark>,
    /// The archive id of the last message seen live in each group.
    pub(crate) last_stanza_id: HashMap<String, String>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A room's "you are not a member" (XEP-0045 §7.2.6).
pub(crate) fn is_not_member(e: &RequestError) -> bool {
    matches!(e, RequestError::Stanza(s) if s.condition == "registration-required")
}

pub(crate) use groupchat_protocol::group::bare_of;

impl Client {
    /// Starts building a client for `jid` (see [`ClientBuilder`]).
    pub fn builder(
        jid: impl Into<String>,
        password: impl Into<groupchat_protocol::Password>,
    ) -> ClientBuilder {
        ClientBuilder::new(jid, password)
    }

    pub(crate) async fn connect(
        config: ClientConfig,
        connector: Arc<dyn Connector>,
        b: &ClientBuilder,
        me: BareJid,
    ) -> Result<Self, ConnectError> {
        let http = crate::http::Http {
            tls: b
                .http_tls
                .client_config(&[b"http/1.1"])
                .map_err(ConnectError::Transport)?,
            allow_loopback_plain: b.http_loopback_plain,
            timeout: b.request_timeout,
        };
        let mut transport = groupchat_transport::Client::start(config, connector);
        let handle = transport.handle();
        let state = tokio::time::timeout(
            b.connect_timeout,
            transport.wait_for_state(|s| matches!(s, ConnectionState::Connected { .. })),
        )
        .await;
        match state {
            Err(_) => {
                // The attempts' own failures are queued as events: report the last one.
                let mut last = None;
                while let Some(Some(ev)) = transport.next_event().now_or_never() {
                    if let TransportEvent::State(ConnectionState::Disconnected { reason }) = ev {
                        last = Some(reason);
                    }
                }
                transport.close();
                return Err(ConnectError::Timeout {
                    waited: b.connect_timeout,
                    last,
                });
            }
            Ok(ConnectionState::Ended { reason }) => {
                return Err(ConnectError::Transport(
                    reason.unwrap_or(groupchat_transport::TransportError::Ended),
                ));
            }
            Ok(_) => {}
        }
        let mut prefix = [0u8; 6];
        let _ = getrandom::fill(&mut prefix);
        let inner = Arc::new(Inner {
            handle: handle.clone(),
            nick: me.to_string(),
            me,
            request_timeout: b.request_timeout,
            invitations: b.invitations,
            http,
            id_prefix: prefix.iter().take(2).map(|b| format!("{b:02x}")).collect(),
            next_id: AtomicU64::new(1),
            pending_iq: Mutex::new(HashMap::new()),
            pending_msg: Mutex::new(HashMap::new()),
            joins: Mutex::new(HashMap::new()),
            services: Mutex::new(Services::default()),
            state: Mutex::new(State {
                tracker: GroupTracker::default(),
                groups: BTreeMap::new(),
                dialect: Dialect::default(),
                exiting: HashSet::new(),
                deleted_by: HashMap::new(),
                profile_notices: HashMap::new(),
                profile_checks: HashSet::new(),
                own_changes: HashMap::new(),
                bookmarked: BTreeSet::new(),
                foreign_bookmarks: Vec::new(),
                last_stanza_id: HashMap::new(),
            }),
            events: EventHub::new(),
            replay: Mutex::new(Vec::new()),
            bookmark_lock: tokio::sync::Mutex::new(()),
            last_received_ms: AtomicU64::new(unix_ms()),
        });
        let span = tracing::info_span!("client", jid = %inner.me);
        tokio::spawn(tracing::Instrument::instrument(
            run(inner.clone(), transport),
            span,
        ));
        let client = Self {
            inner,
            _guard: Arc::new(CloseOnDrop(handle)),
        };
        client
            .inner
            .clone()
            .setup(true)
            .await
            .map_err(ConnectError::Setup)?;
        Ok(client)
    }

    /// Our bare JID.
    pub fn jid(&self) -> &BareJid {
        &self.inner.me
    }

    /// The services found at login.
    pub fn services(&self) -> Services {
        lock(&self.inner.services).clone()
    }

    /// The connection's current state.
    pub fn connection(&self) -> crate::Connection {
        (&self.inner.handle.state()).into()
    }

    /// The events. The first call receives every event since the client started (up to
    /// 10 000 unread); later calls receive the events from the moment they are made.
    pub fn events(&self) -> EventStream {
        self.inner.events.subscribe()
    }

    /// Registers a group listener (like the seed's `groupProfileListener`).
    pub async fn add_group_listener(&self, l: Arc<dyn GroupProfileListener>) {
        self.inner.events.registry.write().await.group.push(l);
    }

    /// Registers a connection listener.
    pub async fn add_connection_listener(&self, l: Arc<dyn ConnectionListener>) {
        self.inner.events.registry.write().await.connection.push(l);
    }

    /// Registers a message listener.
    pub async fn add_message_listener(&self, l: Arc<dyn MessageListener>) {
        self.inner.events.registry.write().await.message.push(l);
    }

    /// True when `jid` is a group (a bare JID on the discovered group service), false for a
    /// user.
    pub fn is_group(&self, jid: &str) -> bool {
        self.inner.is_our_group(jid)
    }

    /// Closes the session cleanly; every clone stops working.
    pub fn close(&self) {
        self.inner.handle.close();
    }
}

impl Inner {
    /// A fresh stanza id: 64 random bits (ids of messages are seen by every member, so
    /// they must not predict the ids of our requests), plus a counter in case the OS RNG
    /// fails.
    pub(crate) fn new_id(&self) -> String {
        let mut r = [0u8; 8];
        let _ = getrandom::fill(&mut r);
        format!(
            "{}{:016x}-{}",
            self.id_prefix,
            u64::from_le_bytes(r),
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    pub(crate) fn emit(&self, e: Event) {
        self.events.emit(e);
    }

    /// Sends an IQ made by `make(id)` to `to` (`None`: our own account) and waits for the
    /// answer; an `error` answer becomes `Err(Stanza)`.
    pub(crate) async fn request(
        &self,
        to: Option<&str>,
        make: impl FnOnce(&str) -> Vec<u8>,
    ) -> Result<Iq, RequestError> {
        let id = self.new_id();
        let (tx, rx) = oneshot::channel();
        lock(&self.pending_iq).insert(id.clone(), (to.map(str::to_owned), tx));
        // One deadline for the whole call: while disconnected the stanza waits in the
        // outbox, and that wait counts too.
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        match tokio::time::timeout_at(deadline, self.handle.send(make(&id))).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                lock(&self.pending_iq).remove(&id);
                return Err(send_error(e));
            }
            Err(_) => {
                tracing::debug!(id, to, "request timed out waiting for a connection");
                lock(&self.pending_iq).remove(&id);
                return Err(RequestError::Timeout);
            }
        }
        tracing::trace!(id, to, "request sent");
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(Ok(iq))) if iq.kind == IqType::Error => {
                Err(RequestError::from(iq.error.unwrap_or_else(|| {
                    StanzaError::new(ErrorType::Cancel, "undefined-condition", None)
                })))
            }
            Ok(Ok(Ok(iq))) => Ok(iq),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(RequestError::NotConnected),
            Err(_) => {
                tracing::debug!(id, to, "request timed out");
                lock(&self.pending_iq).remove(&id);
                Err(RequestError::Timeout)
            }
        }
    }

    /// Sends a stanza without waiting for anything.
    pub(crate) async fn send(&self, bytes: Vec<u8>) -> Result<(), RequestError> {
        self.handle
            .send(bytes)
            .await
            .map(|_| ())
            .map_err(send_error)
    }

    /// Sends a groupchat message and waits for the room's reflection (its room stanza-id)
    /// or its error.
    pub(crate) async fn send_to_group(&self, m: &Message) -> Result<Option<String>, RequestError> {
        let id = m
            .origin_id
            .clone()
            .or_else(|| m.id.clone())
            .unwrap_or_else(|| self.new_id());
        let group =
            m.to.as_ref()
                .map(|t| t.to_bare().to_string())
                .unwrap_or_default();
        let (tx, rx) = oneshot::channel();
        lock(&self.pending_msg).insert(id.clone(), (group, tx));
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        let sent = match tokio::time::timeout_at(deadline, self.send(m.encode())).await {
            Ok(sent) => sent,
            // Still waiting for a connection: it stays queued and goes out after the
            // reconnection, so it may still be delivered.
            Err(_) => Err(RequestError::Unconfirmed { id: id.clone() }),
        };
        if let Err(e) = sent {
            lock(&self.pending_msg).remove(&id);
            return Err(e);
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(Ok(stanza_id))) => Ok(stanza_id),
            Ok(Ok(Err(e))) => Err(RequestError::refused_group_action(e)),
            Ok(Err(_)) => Err(RequestError::NotConnected),
            Err(_) => {
                tracing::debug!(id, "message not confirmed in time; it stays queued");
                // The connection still holds the message (XEP-0198 replays it on a
                // resumption), so say so rather than pretend it failed.
                lock(&self.pending_msg).remove(&id);
                Err(RequestError::Unconfirmed { id })
            }
        }
    }

    /// True when we are in `group`'s room now.
    pub(crate) fn in_room(&self, group: &str) -> bool {
        lock(&self.state)
            .tracker
            .occupants(group)
            .any(|o| o.nick == self.nick)
    }

    /// Our affiliation in `group`, as the room last said.
    pub(crate) fn my_affiliation(
        &self,
        group: &str,
    ) -> Option<groupchat_protocol::codec::xep::muc_user::Affiliation> {
        lock(&self.state)
            .tracker
            .occupants(group)
            .find(|o| o.nick == self.nick)
            .and_then(|o| o.affiliation)
    }

    /// Enters `group`'s room (without history: the archive has it). `Ok(true)` when the join
    /// created the room.
    pub(crate) async fn join(&self, group: &str) -> Result<bool, RequestError> {
        if self.in_room(group) {
            return Ok(false);
        }
        let (tx, rx) = oneshot::channel();
        lock(&self.joins)
            .entry(group.to_owned())
            .or_default()
            .push(tx);
        let id = self.new_id();
        let sent = self
            .send(muc_owner::join(group, &self.nick, &id, true))
            .await;
        let result = match sent {
            Err(e) => Err(e),
            Ok(()) => match tokio::time::timeout(self.request_timeout, rx).await {
                Ok(Ok(Ok(created))) => Ok(created),
                Ok(Ok(Err(e))) => Err(RequestError::refused_group_action(e)),
                Ok(Err(_)) => Err(RequestError::NotConnected),
                Err(_) => Err(RequestError::Timeout),
            },
        };
        if result.is_err() {
            // Drop waiters nobody will resolve (closed senders), so the map stays small.
            let mut joins = lock(&self.joins);
            if let Some(w) = joins.get_mut(group) {
                w.retain(|tx| !tx.is_closed());
                if w.is_empty() {
                    joins.remove(group);
                }
            }
        }
        result
    }

    /// Session set-up after a login without resumption: services (first time), group list
    /// (first time), presence, and every group joined again.
    async fn setup(self: Arc<Self>, first: bool) -> Result<(), RequestError> {
        if first {
            self.discover().await?;
        }
        {
            let services = GroupServices::new(lock(&self.services).groups.iter().cloned());
            lock(&self.state).tracker = GroupTracker::new(services);
        }
        if first {
            self.load_bookmarks().await?;
        }
        let groups: Vec<String> = lock(&self.state).groups.keys().cloned().collect();
        futures::future::join_all(groups.iter().map(|g| self.rejoin(g))).await;
        let joined: Vec<String> = groups.into_iter().filter(|g| self.in_room(g)).collect();
        self.emit(Event::GroupsJoined { groups: joined });
        let replay = std::mem::take(&mut *lock(&self.replay));
        for bytes in replay {
            self.send(bytes).await?;
        }
        // Presence last: invitations kept offline arrive after it, when the list is known.
        self.send(b"<presence xmlns='jabber:client'/>".to_vec())
            .await
    }

    async fn discover(&self) -> Result<(), RequestError> {
        let domain = self.me.domain().to_string();
        let items = self
            .request(Some(&domain), |id| disco::items(&domain, id))
            .await?;
        let items = disco::decode_items(&items).unwrap_or_default();
        let infos = futures::future::join_all(items.iter().map(|item| async move {
            let iq = self
                .request(Some(item), |id| disco::info(item, id))
                .await
                .ok()?;
            Some((item.clone(), disco::decode_info(&iq).ok()?))
        }))
        .await;
        let mut s = Services::default();
        for (jid, info) in infos.into_iter().flatten() {
            if info.is("conference", "text") && s.groups.is_none() {
                s.groups = Some(jid.clone());
            }
            if info.has_feature(upload::NS) && s.upload.is_none() {
                s.upload = Some((jid, info.max_file_size));
            }
        }
        let me = self.me.to_string();
        if let Ok(iq) = self.request(None, |id| disco::info(&me, id)).await
            && let Ok(info) = disco::decode_info(&iq)
        {
            s.mam = info.has_feature("urn:xmpp:mam:2");
            s.publish_options =
                info.has_feature("http://jabber.org/protocol/pubsub#publish-options");
        }
        *lock(&self.services) = s;
        Ok(())
    }

    /// Joins a group from our list again; a group that is gone or that removed us while we
    /// were away leaves the list, with the event.
    async fn rejoin(&self, group: &str) {
        let deleted = Event::GroupDeleted {
            group: group.to_owned(),
            by: None,
        };
        let event = match self.request(Some(group), |id| disco::info(group, id)).await {
            Err(RequestError::Stanza(e))
                if matches!(e.condition.as_str(), "item-not-found" | "gone") =>
            {
                deleted
            }
            Err(_) => return, // try again at the next login
            Ok(_) => match self.join(group).await {
                Ok(false) => return,
                // The room vanished between the two requests and our join re-created it.
                Ok(true) => {
                    let _ = self
                        .request(Some(group), |id| muc_owner::destroy(group, id, None))
                        .await;
                    deleted
                }
                // Members-only rooms refuse non-members with registration-required (or
                // forbidden).
                Err(e)
                    if matches!(e, RequestError::Forbidden(_) | RequestError::NotFound(_))
                        || is_not_member(&e) =>
                {
                    Event::RemovedFromGroup {
                        group: group.to_owned(),
                        by: None,
                    }
                }
                Err(_) => return,
            },
        };
        self.group_gone(group, event).await;
    }

    /// Forgets a group (list, bookmark, room state) and reports `event` — once: a group
    /// that is not (or no longer) in the list reports nothing.
    pub(crate) async fn group_gone(&self, group: &str, event: Event) {
        let known = {
            let mut st = lock(&self.state);
            st.tracker.forget(group);
            st.groups.remove(group).is_some()
        };
        if known {
            let _ = self.bookmark_remove(group).await;
            self.emit(event);
        }
    }

    /// Accepts an invitation: join, list, report. Only a members-only room on our group
    /// service that lets us in is accepted, so a forged invitation joins nothing.
    pub(crate) async fn accept(&self, group: &str, by: Option<String>) -> Result<(), RequestError> {
        if lock(&self.state).groups.contains_key(group) && self.in_room(group) {
            return Ok(());
        }
        let info = self
            .request(Some(group), |id| disco::info(group, id))
            .await
            .map_err(|e| match e {
                RequestError::Stanza(s) => RequestError::refused_group_action(*s),
                other => other,
            })?;
        let info =
            disco::decode_info(&info).map_err(|e| RequestError::BadRequest(e.to_string()))?;
        let room = disco::RoomInfo::from_info(&info);
        if !room.members_only {
            return Err(RequestError::BadRequest(format!(
                "{group} is not a group (not members-only)"
            )));
        }
        if self.join(group).await? {
            // The room vanished in between and our join re-created it: undo that.
            let _ = self
                .request(Some(group), |id| muc_owner::destroy(group, id, None))
                .await;
            return Err(RequestError::NotFound(format!("no group {group}")));
        }
        let name = room.name;
        let fresh = lock(&self.state)
            .groups
            .insert(group.to_owned(), name.clone())
            .is_none();
        // The bookmark first, so that the group is listed when the application hears of it;
        // the event even if the bookmark fails (it is written again with the next change of
        // the list), so that the application always hears of it.
        let listed = self
            .bookmark_add(Bookmark::new(group, name.clone(), Some(self.nick.clone())))
            .await;
        if fresh {
            self.emit(Event::AddedToGroup {
                group: group.to_owned(),
                name,
                by,
            });
        }
        listed
    }

    /// A stanza the session could not decode: a request waiting for it as its answer fails
    /// now (502) instead of timing out; the application hears of every drop.
    fn on_dropped(&self, reason: DropReason, envelope: Option<Box<Envelope>>) {
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
            from: envelope.and_then(|e| e.from).map(|j| j.to_string()),
        });
    }

    /// Hands the request waiting for answer `id` its outcome, if `from` may answer it; true
    /// when one was waiting.
    fn resolve_iq(
        &self,
        id: &str,
        from: Option<&Jid>,
        outcome: impl FnOnce() -> Result<Iq, RequestError>,
    ) -> bool {
        let mut pending = lock(&self.pending_iq);
        // Only the entity asked may answer: anything else leaves the request waiting.
        if !pending
            .get(id)
            .is_some_and(|(to, _)| self.answers(to.as_deref(), from))
        {
            return false;
        }
        match pending.remove(id) {
            Some((_, tx)) => {
                let _ = tx.send(outcome());
                true
            }
            None => false,
        }
    }

    /// After a session that could not be resumed: the server discarded what it had not
    /// delivered, so every group may have missed messages since the last stanza we got.
    fn report_gap(&self) {
        let since_ms = self.last_received_ms.load(Ordering::Relaxed);
        let st = lock(&self.state);
        let groups: Vec<MissedMessages> = st
            .groups
            .keys()
            .map(|g| MissedMessages {
                group: g.clone(),
                after: st.last_stanza_id.get(g).cloned(),
                since_ms,
            })
            .collect();
        drop(st);
        if !groups.is_empty() {
            tracing::debug!(groups = groups.len(), since_ms, "messages may be missing");
            self.emit(Event::MessagesMayBeMissing { groups });
        }
    }

    fn fail_pending(&self) {
        lock(&self.pending_iq).clear();
        lock(&self.pending_msg).clear();
        lock(&self.joins).clear();
    }

    /// Is `from` the entity a request to `expected` (`None`: our account) may be answered by?
    fn answers(&self, expected: Option<&str>, from: Option<&Jid>) -> bool {
        match (expected, from) {
            (_, None) => expected.is_none_or(|e| e == self.me.domain().as_str()),
            (None, Some(f)) => f.to_bare() == self.me,
            (Some(e), Some(f)) => f.to_string() == e,
        }
    }

    fn on_stanza(self: &Arc<Self>, stanza: Stanza) {
        match &stanza {
            Stanza::Iq(iq) => {
                self.on_iq(iq);
                return;
            }
            Stanza::Message(m) => self.resolve_message(m),
            _ => {}
        }
        let events = lock(&self.state).tracker.ingest(&stanza);
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

    fn on_iq(self: &Arc<Self>, iq: &Iq) {
        match iq.kind {
            IqType::Result | IqType::Error => {
                self.resolve_iq(&iq.id, iq.from.as_ref(), || Ok(iq.clone()));
            }
            _ => {
                let is_ping = iq
                    .payload
                    .as_ref()
                    .is_some_and(|p| p.is("ping", "urn:xmpp:ping"));
                let reply = if is_ping {
                    iq.result_reply()
                } else {
                    iq.error_reply("service-unavailable")
                };
                let this = self.clone();
                tokio::spawn(async move {
                    let _ = this.send(reply).await;
                });
            }
        }
    }

    /// Resolves a waiting group send: our reflection, or an error about it.
    fn resolve_message(&self, m: &Message) {
        if m.kind == MessageType::Error {
            // Only the group we wrote to may refuse a message (ids are visible to members).
            let from = m.from.as_ref().map(|f| f.to_bare().to_string());
            let mut pending = lock(&self.pending_msg);
            if let Some(id) = &m.id
                && pending
                    .get(id)
                    .is_some_and(|(g, _)| Some(g) == from.as_ref())
                && let Some((_, tx)) = pending.remove(id)
            {
                let e = m.error.as_deref().cloned().unwrap_or_else(|| {
                    StanzaError::new(ErrorType::Cancel, "undefined-condition", None)
                });
                let _ = tx.send(Err(e));
            }
            return;
        }
        if m.kind != MessageType::Groupchat {
            return;
        }
        let Some(from) = &m.from else { return };
        if from.resource().map(|r| r.as_str()) != Some(self.nick.as_str()) {
            return;
        }
        let group = from.to_bare().to_string();
        let mut pending = lock(&self.pending_msg);
        for id in [&m.origin_id, &m.id].into_iter().flatten() {
            if pending.get(id).is_some_and(|(g, _)| *g == group)
                && let Some((_, tx)) = pending.remove(id)
            {
                let _ = tx.send(Ok(m.stanza_id_by(&group).map(str::to_owned)));
                return;
            }
        }
    }

    fn on_direct_message(&self, m: &Message) {
        if !matches!(m.kind, MessageType::Chat | MessageType::Normal) || m.muc_user.is_some() {
            return;
        }
        if let (Some(from), Some(body)) = (&m.from, &m.body) {
            if lock(&self.state).tracker.services().is_group(from) {
                return;
            }
            self.emit(Event::ChatMessage {
                from: from.to_bare().to_string(),
                id: m.id.clone(),
                body: body.clone(),
            });
        }
    }

    fn resolve_join(&self, group: &str, r: Result<bool, StanzaError>) {
        if let Some(waiters) = lock(&self.joins).remove(group) {
            for w in waiters {
                let _ = w.send(r.clone());
            }
        }
    }

    fn on_group_event(self: &Arc<Self>, e: GroupEvent, m: Option<&Message>) {
        match e {
            GroupEvent::Joined { group, created, .. } => self.resolve_join(&group, Ok(created)),
            GroupEvent::JoinFailed { group, error } => self.resolve_join(&group, Err(error)),
            GroupEvent::Message(gm) => {
                if let Some(sid) = &gm.stanza_id {
                    lock(&self.state)
                        .last_stanza_id
                        .insert(gm.group.clone(), sid.clone());
                }
                let notice = m.and_then(|m| {
                    groupchat_protocol::codec::xep::notice::Notice::find(&m.payloads)
                });
                match notice {
                    Some(n) => self.on_notice(&gm, n),
                    None => self.emit(Event::GroupMessage(gm)),
                }
            }
            GroupEvent::Removed {
                group,
                is_self: true,
                by,
                ..
            } => {
                if lock(&self.state).exiting.contains(&group) {
                    return;
                }
                let this = self.clone();
                tokio::spawn(async move {
                    let by = by.as_deref().map(bare_of);
                    this.group_gone(
                        &group,
                        Event::RemovedFromGroup {
                            group: group.clone(),
                            by,
                        },
                    )
                    .await;
                });
            }
            GroupEvent::Destroyed { group, .. } => {
                let by = lock(&self.state)
                    .deleted_by
                    .remove(&group)
                    .filter(|(_, at)| at.elapsed() < DELETION_NOTICE_VALIDITY)
                    .map(|(by, _)| by);
                let this = self.clone();
                tokio::spawn(async move {
                    this.group_gone(
                        &group,
                        Event::GroupDeleted {
                            group: group.clone(),
                            by,
                        },
                    )
                    .await;
                });
            }
            GroupEvent::Invited {
                group, by, reason, ..
            } => {
                let ours = self.is_our_group(&group);
                if !ours || lock(&self.state).groups.contains_key(&group) {
                    tracing::debug!(group, ours, "invitation ignored");
                    return;
                }
                match self.invitations {
                    InvitationPolicy::Manual => self.emit(Event::Invitation { group, by, reason }),
                    InvitationPolicy::AutoAccept => {
                        let this = self.clone();
                        tokio::spawn(async move {
                            // A failed accept (a forged invitation, a group that is gone)
                            // joins nothing and reports nothing.
                            let _ = this.accept(&group, by).await;
                        });
                    }
                }
            }
            GroupEvent::ProfileChanged { group } => self.profile_changed_without_notice(group),
            _ => {}
        }
    }
}

/// A stanza the session refused to send is the caller's mistake (400, nothing was sent);
/// anything else means there is no connection to send on.
fn send_error(e: groupchat_transport::TransportError) -> RequestError {
    match e {
        groupchat_transport::TransportError::Usage(u) => {
            RequestError::BadRequest(format!("nothing was sent: {u}"))
        }
        _ => RequestError::NotConnected,
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The reader task: every transport event passes here, in order.
async fn run(inner: Arc<Inner>, mut transport: groupchat_transport::Client) {
    let mut connected_once = false;
    while let Some(ev) = transport.next_event().await {
        match ev {
            TransportEvent::State(s) => {
                // A new session after an earlier one: rooms and presence are gone.
                let fresh = matches!(s, ConnectionState::Connected { resumed: false, .. })
                    && connected_once;
                if fresh {
                    tracing::debug!("not resumed: joining every group again");
                    tokio::spawn(inner.clone().setup(false));
                }
                match &s {
                    ConnectionState::Connected { .. } => connected_once = true,
                    ConnectionState::Ended { .. } => inner.fail_pending(),
                    _ => {}
                }
                inner.emit(Event::Connection((&s).into()));
                if fresh {
                    inner.report_gap();
                }
            }
            TransportEvent::Stanza(stanza) => {
                inner.last_received_ms.store(unix_ms(), Ordering::Relaxed);
                inner.on_stanza(stanza);
            }
            TransportEvent::Dropped { reason, envelope } => {
                inner.last_received_ms.store(unix_ms(), Ordering::Relaxed);
                inner.on_dropped(reason, envelope);
            }
            TransportEvent::Unacknowledged { stanzas } => {
                // At-least-once: requests and messages the old session may have lost are
                // sent again (message ids let receivers drop the duplicates), by the set-up
                // of the new session (spawned at its `Connected`, which follows) once the
                // groups are joined again.
                lock(&inner.replay).extend(stanzas.into_iter().map(|u| u.bytes.to_vec()));
            }
            _ => {}
        }
    }
    inner.fail_pending();
}
