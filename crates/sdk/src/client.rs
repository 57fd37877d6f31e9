//! The client handle and the request plumbing every call shares: IQ ids and answers,
//! room joins, message reflections. The state they touch belongs to the owner task
//! ([`crate::core`]); this side only sends it commands.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt as _;
use groupchat_protocol::codec::xep::bookmarks::Bookmark;
use groupchat_protocol::codec::xep::stanza_error::{ErrorType, StanzaError};
use groupchat_protocol::codec::xep::{disco, muc, muc_owner, upload};
use groupchat_protocol::codec::{Iq, IqType, Message};
use groupchat_protocol::group::{GroupServices, GroupTracker};
use groupchat_protocol::jid::{BareJid, Jid};
use groupchat_transport::{ClientConfig, ConnectionState, Connector, Handle, TransportEvent};
use tokio::sync::{oneshot, watch};

use crate::config::{ClientBuilder, InvitationPolicy};
use crate::core::{Command, Core, PendingMessage, SendState, Ticket};
use crate::error::{ConnectError, RequestError};
use crate::events::{
    ConnectionListener, Event, EventHub, EventStream, GroupProfileListener, JoinReason,
    MessageListener,
};
use crate::to_jid::ToJid;

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

/// What every call shares: fixed at login, plus the way to the owner task.
pub(crate) struct Inner {
    pub(crate) handle: Handle,
    pub(crate) me: BareJid,
    /// Our nickname in every group: the bare JID, unique by construction.
    pub(crate) nick: String,
    pub(crate) request_timeout: Duration,
    /// The set-up's requests at login (discovery) wait this long: they are part of
    /// connecting, and a slow answer must not read as a missing service.
    connect_timeout: Duration,
    pub(crate) invitations: InvitationPolicy,
    /// The user's languages, most wanted first (`ClientBuilder::languages`).
    pub(crate) languages: Vec<String>,
    /// How long an uncleared "typing" stands (`ClientBuilder::typing_timeout`).
    pub(crate) typing_timeout: Duration,
    /// How long a room may stay silent before a self-ping (`ClientBuilder::room_check`).
    pub(crate) room_check: Duration,
    /// Mark received group messages (`ClientBuilder::send_received_markers`).
    pub(crate) send_received_markers: bool,
    /// Where the positions in each conversation are kept (`ClientBuilder::positions`).
    pub(crate) positions: Arc<dyn crate::PositionStore>,
    pub(crate) http: crate::http::LazyHttp,
    id_prefix: String,
    next_id: AtomicU64,
    /// Commands to the owner of the state.
    commands: tokio::sync::mpsc::UnboundedSender<Command>,
    /// The services found at login (written once by the set-up, read by sync calls).
    pub(crate) services: watch::Sender<Services>,
    /// The group services of `services`, as the "is this a group?" test reads them (derived
    /// once, when the services are found).
    group_services: watch::Sender<GroupServices>,
    pub(crate) events: EventHub,
    /// One bookmark change at a time (the read-back after a publish compares the whole
    /// list).
    pub(crate) bookmark_lock: tokio::sync::Mutex<()>,
}

/// How long a group message may wait for its room's confirmation before the client asks
/// the room whether we are still in it (at most `room_check`).
const UNCONFIRMED_CHECK: Duration = Duration::from_secs(3);

/// How many times a group of our list is tried when joined again.
const REJOIN_TRIES: u32 = 4;
/// How long the first try waits for the room; each next one twice as long (2, 4, 8,
/// 16 s; never more than the request timeout). A healthy room answers in milliseconds;
/// a stanza lost in a room's restart is tried again soon.
const REJOIN_WAIT: Duration = Duration::from_secs(2);
/// The pause after the first failed try; each next one grows by as much.
const REJOIN_PAUSE: Duration = Duration::from_millis(500);

/// A room's "you are not a member" (XEP-0045 §7.2.6).
pub(crate) fn is_not_member(e: &RequestError) -> bool {
    matches!(e, RequestError::Stanza(s) if s.condition == "registration-required")
}

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
        let http =
            crate::http::LazyHttp::new(&b.http_tls, b.request_timeout, b.http_loopback_plain)
                .map_err(ConnectError::Transport)?;
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
        let (commands, command_rx) = tokio::sync::mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            handle: handle.clone(),
            nick: me.to_string(),
            me,
            request_timeout: b.request_timeout,
            connect_timeout: b.connect_timeout,
            invitations: b.invitations,
            languages: b.languages.clone(),
            typing_timeout: b.typing_timeout,
            room_check: b.room_check,
            send_received_markers: b.send_received_markers,
            positions: b.positions.clone(),
            http,
            id_prefix: prefix.iter().take(2).map(|b| format!("{b:02x}")).collect(),
            next_id: AtomicU64::new(1),
            commands,
            services: watch::Sender::new(Services::default()),
            group_services: watch::Sender::new(GroupServices::default()),
            events: EventHub::new(),
            bookmark_lock: tokio::sync::Mutex::new(()),
        });
        let span = tracing::info_span!("client", jid = %inner.me);
        tokio::spawn(tracing::Instrument::instrument(
            crate::core::run(Core::new(inner.clone()), command_rx, transport),
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
        self.inner.services.borrow().clone()
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
        self.inner.events.register(|r| r.group.push(l)).await;
    }

    /// Registers a connection listener.
    pub async fn add_connection_listener(&self, l: Arc<dyn ConnectionListener>) {
        self.inner.events.register(|r| r.connection.push(l)).await;
    }

    /// Registers a message listener.
    pub async fn add_message_listener(&self, l: Arc<dyn MessageListener>) {
        self.inner.events.register(|r| r.message.push(l)).await;
    }

    /// True when `jid` is a group (a bare JID on the discovered group service), false for a
    /// user.
    pub fn is_group(&self, jid: impl ToJid) -> bool {
        jid.to_jid().is_ok_and(|j| self.inner.is_our_group(&j))
    }

    /// Waits until what the server kept for this session has arrived and been handled:
    /// offline messages and invitations (accepted, their groups joined and bookmarked) —
    /// the point from which a short-lived program (a command line) sees the account as
    /// another client would. A round trip to the server (XEP-0199 ping: the server answers
    /// after delivering what it queued before), then until nothing the SDK started is still
    /// running (at most the request timeout). 504 when the server does not answer in time.
    pub async fn settle(&self) -> Result<(), RequestError> {
        let domain = self.inner.me.domain().to_string();
        match self
            .inner
            .request(Some(&domain), |id| {
                groupchat_protocol::codec::xep::ping::request(Some(&domain), id)
            })
            .await
        {
            // A server without ping answers with an error: a round trip all the same.
            Ok(_) | Err(RequestError::Stanza(_)) => {}
            Err(e) => return Err(e),
        }
        let (tx, rx) = oneshot::channel();
        self.inner.tell(move |c| c.idle_waiters.push(tx));
        // Some follow-ups are timers (an uncleared "typing" expiring): past the request
        // timeout the account is as settled as it gets.
        match tokio::time::timeout(self.inner.request_timeout, rx).await {
            Ok(Err(_)) => Err(RequestError::NotConnected),
            _ => Ok(()),
        }
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

    /// Has the owner run `f` on the state, without waiting (commands run in order).
    pub(crate) fn tell(&self, f: impl FnOnce(&mut Core) + Send + 'static) {
        let _ = self.commands.send(Box::new(f));
    }

    /// Has the owner run `f` on the state and returns its result; 503 once the client has
    /// ended.
    pub(crate) async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> R + Send + 'static,
    ) -> Result<R, RequestError> {
        let (tx, rx) = oneshot::channel();
        self.tell(move |c| {
            let _ = tx.send(f(c));
        });
        rx.await.map_err(|_| RequestError::NotConnected)
    }

    /// Reports `e` in order with the events of the stanzas handled before it.
    pub(crate) fn emit(&self, e: Event) {
        self.tell(move |c| c.emit(e));
    }

    /// Sends an IQ made by `make(id)` to `to` (`None`: our own account) and waits for the
    /// answer; an `error` answer becomes `Err(Stanza)`.
    pub(crate) async fn request(
        &self,
        to: Option<&str>,
        make: impl FnOnce(&str) -> Vec<u8>,
    ) -> Result<Iq, RequestError> {
        self.request_within(to, make, self.request_timeout).await
    }

    /// [`request`](Self::request) with its own time-out.
    pub(crate) async fn request_within(
        &self,
        to: Option<&str>,
        make: impl FnOnce(&str) -> Vec<u8>,
        timeout: Duration,
    ) -> Result<Iq, RequestError> {
        let id = self.new_id();
        let (tx, rx) = oneshot::channel();
        {
            let (id, to) = (id.clone(), to.map(str::to_owned));
            self.tell(move |c| {
                c.pending_iq.insert(id, (to, tx));
            });
        }
        let forget = |id: &str| {
            let id = id.to_owned();
            self.tell(move |c| {
                c.pending_iq.remove(&id);
            });
        };
        // One deadline for the whole call: while disconnected the stanza waits in the
        // outbox, and that wait counts too.
        let deadline = tokio::time::Instant::now() + timeout;
        match tokio::time::timeout_at(deadline, self.handle.send(make(&id))).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                forget(&id);
                return Err(send_error(e));
            }
            Err(_) => {
                tracing::debug!(id, to, "request timed out waiting for a connection");
                forget(&id);
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
                forget(&id);
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

    /// Sends a stanza and waits until the server has it: its XEP-0198 acknowledgement (at
    /// once when the server does not acknowledge). 504 [`RequestError::Unconfirmed`] when
    /// no acknowledgement comes in time: the stanza stays queued and may still be delivered.
    pub(crate) async fn send_acknowledged(
        &self,
        bytes: Vec<u8>,
        id: &str,
    ) -> Result<(), RequestError> {
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        let unconfirmed = || RequestError::Unconfirmed { id: id.to_owned() };
        let sent = match tokio::time::timeout_at(deadline, self.handle.send(bytes)).await {
            Ok(Ok(sent)) => sent,
            Ok(Err(e)) => return Err(send_error(e)),
            Err(_) => return Err(unconfirmed()),
        };
        let (tx, rx) = oneshot::channel();
        self.tell(move |c| c.wait_for_ack(sent, tx));
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(())) => Ok(()),
            // A fresh session replaced the one it was sent on: it may or may not have
            // reached the server (the SDK sends it again after the rejoin).
            Ok(Err(_)) | Err(_) => Err(unconfirmed()),
        }
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
            m.to.as_ref().map(Jid::to_bare).ok_or_else(|| {
                RequestError::BadRequest("a group message without a group".into())
            })?;
        let (tx, rx) = oneshot::channel();
        let bytes = m.encode();
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        let group_of_send = group.clone();
        // While the room is not ours (disconnected, or being joined again) the owner holds
        // the message and sends it once it is; otherwise it goes out now. Either way it is
        // kept until the room confirms it, to be sent again if the room is lost first.
        let now = {
            let id = id.clone();
            self.with(move |c| {
                let hold = c.rooms_away || c.records.get(&group).is_some_and(|r| r.recovering);
                let seq = c.next_seq;
                c.next_seq += 1;
                c.pending_msg.insert(
                    id,
                    PendingMessage {
                        group,
                        tx,
                        bytes: bytes.clone(),
                        seq,
                        state: if hold {
                            SendState::Held
                        } else {
                            SendState::Sent
                        },
                        refusal: None,
                    },
                );
                (!hold).then_some(bytes)
            })
            .await?
        };
        if let Some(bytes) = now {
            let sent = match tokio::time::timeout_at(deadline, self.send(bytes)).await {
                Ok(sent) => sent,
                // Still waiting for a connection: it stays queued and goes out after the
                // reconnection, so it may still be delivered.
                Err(_) => Err(RequestError::Unconfirmed { id: id.clone() }),
            };
            if let Err(e) = sent {
                // Nothing was sent (refused, or the client ended) — unless the connection
                // still holds it, which a rejoin may need to send it again.
                if !matches!(e, RequestError::Unconfirmed { .. }) {
                    let id = id.clone();
                    self.tell(move |c| {
                        c.pending_msg.remove(&id);
                    });
                }
                return Err(e);
            }
        }
        // A room that has not confirmed our message after a moment may have been lost
        // without a word (its node died, and the message with it): ask it now rather than
        // after `room_check` of silence.
        let mut rx = rx;
        let check_at =
            (tokio::time::Instant::now() + self.room_check.min(UNCONFIRMED_CHECK)).min(deadline);
        let answer = match tokio::time::timeout_at(check_at, &mut rx).await {
            Ok(answer) => Ok(answer),
            Err(_) => {
                let g = group_of_send.clone();
                self.tell(move |c| c.check_room(&g));
                tokio::time::timeout_at(deadline, rx).await
            }
        };
        match answer {
            Ok(Ok(Ok(stanza_id))) => Ok(stanza_id),
            Ok(Ok(Err(e))) => Err(RequestError::refused_group_action(e)),
            Ok(Err(_)) => Err(RequestError::NotConnected),
            Err(_) => {
                tracing::debug!(id, "message not confirmed in time; it stays queued");
                // The message is not withdrawn: the connection (XEP-0198 replays it on a
                // resumption) or the SDK (held, or sent again after a rejoin) still holds
                // it, so say so rather than pretend it failed.
                Err(RequestError::Unconfirmed { id })
            }
        }
    }

    /// True when we are in `group`'s room now.
    pub(crate) async fn in_room(&self, group: &BareJid) -> bool {
        let g = group.clone();
        self.with(move |c| c.in_room(&g)).await.unwrap_or(false)
    }

    /// Our affiliation in `group`, as the room last said.
    pub(crate) async fn my_affiliation(
        &self,
        group: &BareJid,
    ) -> Option<groupchat_protocol::codec::xep::muc_user::Affiliation> {
        let g = group.clone();
        self.with(move |c| c.my_affiliation(&g))
            .await
            .ok()
            .flatten()
    }

    /// Enters `group`'s room (without history: the archive has it). `Ok(true)` when the join
    /// created the room.
    pub(crate) async fn join(&self, group: &BareJid) -> Result<bool, RequestError> {
        self.join_within(group, self.request_timeout).await
    }

    /// [`join`](Self::join), waiting at most `timeout` for the room.
    async fn join_within(&self, group: &BareJid, timeout: Duration) -> Result<bool, RequestError> {
        let (tx, rx) = oneshot::channel();
        let g = group.clone();
        // Checked and registered in one step, so that a join answered in between is not
        // missed.
        let already = self
            .with(move |c| {
                if c.in_room(&g) {
                    return true;
                }
                c.joins.entry(g).or_default().push(tx);
                false
            })
            .await?;
        if already {
            return Ok(false);
        }
        let id = self.new_id();
        let sent = self
            .send(muc::join(group.as_str(), &self.nick, &id, true))
            .await;
        let result = match sent {
            Err(e) => Err(e),
            Ok(()) => match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(Ok(created))) => Ok(created),
                Ok(Ok(Err(e))) => Err(RequestError::refused_group_action(e)),
                Ok(Err(_)) => Err(RequestError::NotConnected),
                Err(_) => Err(RequestError::Timeout),
            },
        };
        if result.is_err() {
            // Drop waiters nobody will resolve (closed senders), so the map stays small.
            let g = group.clone();
            self.tell(move |c| {
                if let Some(w) = c.joins.get_mut(&g) {
                    w.retain(|tx| !tx.is_closed());
                    if w.is_empty() {
                        c.joins.remove(&g);
                    }
                }
            });
        }
        result
    }

    /// Session set-up after a login without resumption: services (first time), group list
    /// (first time), presence, and every group joined again.
    pub(crate) async fn setup(self: Arc<Self>, first: bool) -> Result<(), RequestError> {
        if first {
            self.discover().await?;
        }
        let services = self.group_services.borrow().clone();
        self.with(move |c| c.tracker = GroupTracker::new(services))
            .await?;
        if first {
            self.load_bookmarks().await?;
            self.load_group_states().await;
        }
        // Each group's live messages wait from before its join until its archive has been
        // read (catch-up), so that the application gets them in archive order; our
        // messages to it wait until then too. A newer set-up (another new session)
        // supersedes this one: its groups' epochs move on, and this one stops acting.
        let (session, groups): (u64, Vec<(BareJid, u64)>) = self
            .with(|c| {
                c.sessions += 1;
                let groups: Vec<BareJid> = c.listed().map(|(g, _)| g.clone()).collect();
                let groups = groups
                    .into_iter()
                    .map(|g| {
                        let epoch = c.begin_recovery(&g);
                        (g, epoch)
                    })
                    .collect();
                (c.sessions, groups)
            })
            .await?;
        let this = &*self;
        futures::future::join_all(groups.iter().map(|(g, epoch)| async move {
            let joined = this.rejoin(g).await == Some(true);
            // Joined: a loss from now on is a new one (see `room_lost`).
            let (g, epoch) = (g.clone(), *epoch);
            let _ = this
                .with(move |c| {
                    if joined && c.is_current(&g, epoch) && c.in_room(&g) {
                        c.record(&g).rejoined = true;
                    }
                })
                .await;
        }))
        .await;
        let reason = if first {
            JoinReason::Login
        } else {
            JoinReason::NewSession
        };
        self.with(move |c| {
            if c.sessions != session {
                return;
            }
            type Epochs = Vec<(BareJid, u64)>;
            let (joined, out): (Epochs, Epochs) = groups
                .into_iter()
                .filter(|(g, epoch)| c.is_current(g, *epoch))
                .partition(|(g, _)| c.in_room(g));
            for (g, _) in &out {
                c.not_rejoined(g);
            }
            c.emit(Event::GroupsJoined {
                groups: joined.iter().map(|(g, _)| g.clone()).collect(),
                reason,
            });
            c.rooms_back();
            c.start(move |inner| Box::pin(async move { inner.catch_up_all(joined).await }));
        })
        .await?;
        // Presence last: invitations kept offline arrive after it, when the list is known.
        self.send(crate::devices::own_caps().presence()).await
    }

    async fn discover(&self) -> Result<(), RequestError> {
        let within = self.connect_timeout;
        let domain = self.me.domain().to_string();
        let items = self
            .request_within(Some(&domain), |id| disco::items(&domain, id), within)
            .await?;
        let items = disco::decode_items(&items).unwrap_or_default();
        let infos = futures::future::join_all(items.iter().map(|item| async move {
            match self
                .request_within(Some(item), |id| disco::info(item, id), within)
                .await
            {
                Ok(iq) => Ok(disco::decode_info(&iq)
                    .ok()
                    .map(|info| (item.clone(), info))),
                // An item that refuses disco is not a service we use.
                Err(RequestError::Stanza(_)) => Ok(None),
                // No answer is no proof that a service is missing: the set-up fails
                // rather than report the server without groups.
                Err(e) => Err(e),
            }
        }))
        .await;
        let infos: Vec<_> = infos.into_iter().collect::<Result<_, _>>()?;
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
        if let Ok(iq) = self
            .request_within(None, |id| disco::info(&me, id), within)
            .await
            && let Ok(info) = disco::decode_info(&iq)
        {
            s.mam = info.has_feature("urn:xmpp:mam:2");
            s.publish_options =
                info.has_feature("http://jabber.org/protocol/pubsub#publish-options");
        }
        self.group_services
            .send_replace(GroupServices::new(s.groups.iter().cloned()));
        self.services.send_replace(s);
        Ok(())
    }

    /// Joins a group from our list again, trying a few times ([`REJOIN_TRIES`], waiting
    /// from [`REJOIN_WAIT`] up: a room restarting on another node of a cluster can swallow
    /// a stanza that raced its restart); a group that is gone or that removed us
    /// while we were away leaves the list, with the event. `Some(true)`: joined;
    /// `Some(false)`: gone (reported); `None`: not now (the periodic room check tries again).
    pub(crate) async fn rejoin(&self, group: &BareJid) -> Option<bool> {
        let mut within = REJOIN_WAIT;
        for attempt in 1..=REJOIN_TRIES {
            match self
                .rejoin_once(group, within.min(self.request_timeout))
                .await
            {
                None if attempt < REJOIN_TRIES => {
                    // An error answer comes at once: pause, or every try would land in
                    // the same moment of the room's restart.
                    tokio::time::sleep(REJOIN_PAUSE * attempt).await;
                    within *= 2;
                }
                done => return done,
            }
        }
        None
    }

    async fn rejoin_once(&self, group: &BareJid, within: Duration) -> Option<bool> {
        let deleted = Event::GroupDeleted {
            group: group.clone(),
            by: None,
        };
        let g = group.as_str();
        let mut info = self
            .request_within(Some(g), |id| disco::info(g, id), within)
            .await;
        // "No such room" can be a moment of a cluster's room restart: a group is only
        // taken for deleted when a second look, a second later, says so too.
        if matches!(&info, Err(RequestError::Stanza(e)) if e.condition == "item-not-found") {
            tokio::time::sleep(Duration::from_secs(1)).await;
            info = self
                .request_within(Some(g), |id| disco::info(g, id), within)
                .await;
        }
        let event = match info {
            Err(RequestError::Stanza(e))
                if matches!(e.condition.as_str(), "item-not-found" | "gone") =>
            {
                deleted
            }
            Err(e) => {
                tracing::debug!(%group, error = %e, "no answer to the group's disco#info");
                return None;
            }
            Ok(_) => match self.join_within(group, within).await {
                Ok(false) => return Some(true),
                // The room vanished between the two requests and our join re-created it.
                Ok(true) => {
                    let _ = self
                        .request(Some(g), |id| muc_owner::destroy(g, id, None))
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
                        group: group.clone(),
                        by: None,
                    }
                }
                Err(e) => {
                    tracing::debug!(%group, error = %e, "join failed");
                    return None;
                }
            },
        };
        let g = group.clone();
        let _ = self.with(move |c| c.group_gone(&g, event)).await;
        Some(false)
    }

    /// Accepts an invitation: join, list, report (in the place `ticket` holds, if given).
    /// Only a members-only room on our group service that lets us in is accepted, so a
    /// forged invitation joins nothing.
    pub(crate) async fn accept(
        &self,
        group: &BareJid,
        by: Option<BareJid>,
        ticket: Option<Ticket>,
    ) -> Result<(), RequestError> {
        let g = group.clone();
        self.tell(move |c| c.begin_catch_up(&g));
        let (event, result) = match self.join_and_list(group, by).await {
            Ok((event, listed)) => (event, listed),
            Err(e) => (None, Err(e)),
        };
        // A group joined for the first time: its newest page, after the event.
        let g = group.clone();
        let first_time = event.is_some();
        // The event (or, when there is none, the end of the place held for it).
        self.tell(move |c| {
            match ticket {
                Some(t) => c.fill(t, event),
                None => event.into_iter().for_each(|e| c.emit(e)),
            }
            if first_time {
                c.start(move |inner| Box::pin(async move { inner.catch_up(&g, None).await }));
            } else {
                c.end_catch_up(&g);
            }
        });
        result
    }

    /// [`accept`](Self::accept)'s work: the event to report (none when the group was listed
    /// already), and how writing its bookmark went.
    async fn join_and_list(
        &self,
        group: &BareJid,
        by: Option<BareJid>,
    ) -> Result<(Option<Event>, Result<(), RequestError>), RequestError> {
        let g = group.clone();
        if self.with(move |c| c.is_listed(&g) && c.in_room(&g)).await? {
            return Ok((None, Ok(())));
        }
        let info = self
            .request(Some(group.as_str()), |id| disco::info(group.as_str(), id))
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
                .request(Some(group.as_str()), |id| {
                    muc_owner::destroy(group.as_str(), id, None)
                })
                .await;
            return Err(RequestError::NotFound(format!("no group {group}")));
        }
        let name = room.name;
        let (g, n) = (group.clone(), name.clone());
        let fresh = self.with(move |c| c.list(&g, n)).await?;
        // The bookmark first, so that the group is listed when the application hears of it;
        // the event even if the bookmark fails (it is written again with the next change of
        // the list), so that the application always hears of it.
        let listed = self
            .bookmark_add(Bookmark::new(
                group.as_str(),
                name.clone(),
                Some(self.nick.clone()),
            ))
            .await;
        let event = fresh.then(|| Event::AddedToGroup {
            group: group.clone(),
            name,
            by,
        });
        Ok((event, listed))
    }

    /// Is `from` the entity a request to `expected` (`None`: our account) may be answered by?
    pub(crate) fn answers(&self, expected: Option<&str>, from: Option<&Jid>) -> bool {
        match (expected, from) {
            (_, None) => expected.is_none_or(|e| e == self.me.domain().as_str()),
            (None, Some(f)) => f.to_bare() == self.me,
            (Some(e), Some(f)) => f.to_string() == e,
        }
    }

    /// True for a group's bare JID on our group service: the one "is this a group?" test
    /// (bookmarks of rooms elsewhere, invitations to them, and user JIDs are not).
    pub(crate) fn is_our_group(&self, jid: &Jid) -> bool {
        jid.resource().is_none() && self.group_services.borrow().is_group(jid)
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
