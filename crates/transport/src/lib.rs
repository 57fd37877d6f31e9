//! The driver shared by groupchat's transports.
//!
//! A transport crate implements [`Connector`] (open a [`Link`]: a byte pipe for TCP, a frame
//! pipe for WebSocket). [`Client::start`] runs the sans-IO [`Session`](groupchat_protocol::Session) over links from that
//! connector in one tokio task: it reconnects with exponential backoff and jitter, tries
//! XEP-0198 resumption first (replaying unacknowledged stanzas), falls back to a fresh
//! session, and stops for good on errors a retry cannot fix (bad credentials, a certificate
//! that does not verify). The application holds a [`Client`] handle: send stanzas, read
//! [`TransportEvent`]s, close.
//!
//! ```no_run
//! # async fn f(connector: std::sync::Arc<dyn groupchat_transport::Connector>) {
//! use groupchat_transport::{Client, ClientConfig, TransportEvent};
//! let config = ClientConfig::new("alice@example.org".parse().unwrap(), "secret");
//! let mut client = Client::start(config, connector);
//! while let Some(event) = client.next_event().await {
//!     if let TransportEvent::State(state) = event {
//!         println!("{state:?}");
//!     }
//! }
//! # }
//! ```

mod driver;
mod error;
mod failover;
pub mod http;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use groupchat_protocol::codec::{Envelope, Stanza};
use groupchat_protocol::jid::{FullJid, Jid};
use groupchat_protocol::{DropReason, Framing, Limits, Mechanism, Password, SendId, Tls, Unacked};
use tokio::sync::{mpsc, oneshot, watch};

pub use error::{
    Cause, CertificateProblem, IoError, PlaintextProblem, ResolveProblem, TlsConfigProblem,
    TlsFailure, TransportError, UrlProblem, WebSocketFailure,
};
pub use failover::Failover;
pub use http::{HttpClient, HttpError, HttpOptions, Incoming};
pub use tls::{Roots, TlsOptions};

/// A connected byte (TCP) or frame (WebSocket) pipe to the server.
#[async_trait]
pub trait Link: Send {
    /// Writes bytes (TCP) or one text frame (WebSocket).
    async fn send(&mut self, data: Bytes) -> Result<(), TransportError>;
    /// The next chunk (TCP) or frame (WebSocket); `Ok(None)` at a clean end of stream.
    /// Must be cancel-safe: the driver races it against commands and timers.
    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError>;
    /// Upgrades the link to TLS in place (STARTTLS).
    async fn start_tls(&mut self) -> Result<(), TransportError>;
    /// Closes the link.
    async fn close(&mut self);
}

/// Opens links to one server.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// The framing its links carry.
    fn framing(&self) -> Framing;
    /// How its links are secured when they open.
    fn tls(&self) -> Tls;
    /// Opens a new link (resolving, connecting, and for direct TLS, handshaking).
    async fn connect(&self) -> Result<Box<dyn Link>, TransportError>;
    /// The last attempt ended: its session had logged in (`logged_in`), or it failed
    /// before (no link, a timeout, a stream that never logged in). A connector with several
    /// addresses picks where the next link goes from this (see [`Failover`]).
    fn session_ended(&self, logged_in: bool) {
        let _ = logged_in;
    }
}

/// When and how often to reconnect.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ReconnectPolicy {
    /// Reconnect at all.
    pub enabled: bool,
    /// First delay.
    pub initial_delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
    /// Growth per failed attempt.
    pub factor: f64,
    /// Random spread: each delay is multiplied by a factor in `[1 - jitter, 1 + jitter]`.
    pub jitter: f64,
    /// Give up after this many attempts in a row (`None`: never).
    pub max_attempts: Option<u32>,
    /// How long a session must stay logged in before the next loss starts the backoff
    /// again from `initial_delay`; a session that dies sooner keeps the delays growing.
    pub reset_after: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            factor: 2.0,
            jitter: 0.5,
            max_attempts: None,
            reset_after: Duration::from_secs(60),
        }
    }
}

impl ReconnectPolicy {
    /// No reconnection: the first disconnect ends the client.
    pub fn never() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// The delay before attempt `attempt` (1-based), given a random `unit` in `[0, 1)`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.initial_delay.as_secs_f64()
            * self.factor.powi(attempt.saturating_sub(1).min(64) as i32);
        let capped = base.min(self.max_delay.as_secs_f64());
        let spread = 1.0 + self.jitter * (2.0 * unit - 1.0);
        Duration::from_secs_f64((capped * spread).max(0.0))
    }
}

/// What the client needs to log in and stay connected. `Debug` hides the password.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The account (a resource, if given, is requested at bind).
    pub jid: Jid,
    /// Its password.
    pub password: Password,
    /// SASL mechanisms allowed, in order of preference.
    pub mechanisms: Vec<Mechanism>,
    /// Allow SASL PLAIN without TLS (loopback tests only).
    pub allow_plain_without_tls: bool,
    /// Stanza size and depth limits.
    pub limits: Limits,
    /// Time allowed to connect and negotiate.
    pub connect_timeout: Duration,
    /// Keep-alive interval.
    pub keepalive_interval: Duration,
    /// How long to wait for a stream-management ack before declaring the link dead.
    pub ack_timeout: Duration,
    /// Reconnection.
    pub reconnect: ReconnectPolicy,
    /// Size of the event queue, in batches (one per read from the server, bounded by the
    /// read size); a full queue slows reading from the server.
    pub event_capacity: usize,
}

impl ClientConfig {
    /// Defaults: every SASL mechanism (PLAIN only under TLS), 30 s to connect, reconnection on.
    pub fn new(jid: Jid, password: impl Into<Password>) -> Self {
        Self {
            jid,
            password: password.into(),
            mechanisms: Mechanism::ALL.to_vec(),
            allow_plain_without_tls: false,
            limits: Limits::default(),
            connect_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(60),
            ack_timeout: Duration::from_secs(30),
            reconnect: ReconnectPolicy::default(),
            event_capacity: 256,
        }
    }
}

/// The connection's state, as reported in [`TransportEvent::State`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Opening a link (attempt 1 is the first connection).
    Connecting {
        /// Attempt number since the last successful connection.
        attempt: u32,
    },
    /// Logged in and bound.
    Connected {
        /// Our full JID.
        jid: FullJid,
        /// A previous session was resumed: nothing was lost.
        resumed: bool,
        /// The server acknowledges what we send (XEP-0198): [`TransportEvent::Acked`]
        /// follows each stanza it has.
        acked: bool,
    },
    /// The link was lost; a reconnection follows.
    Disconnected {
        /// Why.
        reason: TransportError,
    },
    /// Waiting before the next attempt.
    Reconnecting {
        /// The coming attempt.
        attempt: u32,
        /// How long we wait first.
        delay: Duration,
    },
    /// Ended for good: closed by the application, or an error a retry cannot fix.
    Ended {
        /// `None` after a clean close.
        reason: Option<TransportError>,
    },
}

/// What the client reports.
#[derive(Debug)]
#[non_exhaustive]
pub enum TransportEvent {
    /// The connection changed state.
    State(ConnectionState),
    /// A stanza arrived.
    Stanza(Stanza),
    /// The server has every stanza up to this one.
    Acked {
        /// The last acknowledged stanza.
        up_to: SendId,
    },
    /// After a failed resumption, these stanzas may not have reached the server; the
    /// application decides whether to send them again.
    Unacknowledged {
        /// The stanzas, as sent.
        stanzas: Vec<Unacked>,
    },
    /// A received stanza was dropped (diagnostic); the session carries on.
    Dropped {
        /// Why.
        reason: DropReason,
        /// What could be read of it (name, id, type, sender).
        envelope: Option<Box<Envelope>>,
    },
}

enum Command {
    Send {
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<SendId, TransportError>>,
    },
    Close,
}

/// The application's handle on a running client.
#[derive(Debug)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    /// Events arrive in batches (one per read), and are handed out one by one from `ready`.
    events: mpsc::Receiver<Vec<TransportEvent>>,
    ready: std::collections::VecDeque<TransportEvent>,
    state: watch::Receiver<ConnectionState>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Send { bytes, .. } => write!(f, "Send({} bytes)", bytes.len()),
            Self::Close => f.write_str("Close"),
        }
    }
}

impl Client {
    /// Starts the client task on the current tokio runtime. It connects at once.
    pub fn start(config: ClientConfig, connector: Arc<dyn Connector>) -> Self {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::channel(config.event_capacity.max(1));
        let (state_tx, state) = watch::channel(ConnectionState::Connecting { attempt: 1 });
        tokio::spawn(driver::run(
            config, connector, command_rx, event_tx, state_tx,
        ));
        Self {
            commands,
            events,
            ready: std::collections::VecDeque::new(),
            state,
        }
    }

    /// Sends an encoded stanza (from the protocol crate's encoders). While disconnected it
    /// waits in order and goes out after the reconnection; with stream management it is
    /// replayed after a resumption until acknowledged.
    pub async fn send(&self, stanza: Vec<u8>) -> Result<SendId, TransportError> {
        self.handle().send(stanza).await
    }

    /// A cloneable handle that sends and closes, for tasks other than the event reader.
    pub fn handle(&self) -> Handle {
        Handle {
            commands: self.commands.clone(),
            state: self.state.clone(),
        }
    }

    /// The next event; `None` once the client has ended and every event was read.
    /// Cancel-safe: nothing is lost when the future is dropped before it completes.
    pub async fn next_event(&mut self) -> Option<TransportEvent> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            // `recv` is cancel-safe, and nothing awaits after it.
            self.ready.extend(self.events.recv().await?);
        }
    }

    /// The next event if one has arrived, without waiting.
    pub fn try_next_event(&mut self) -> Option<TransportEvent> {
        if self.ready.is_empty() {
            self.ready.extend(self.events.try_recv().ok()?);
        }
        self.ready.pop_front()
    }

    /// The events as a `futures::Stream`.
    pub fn events(&mut self) -> impl futures::Stream<Item = TransportEvent> + '_ {
        futures::stream::unfold(self, |client| async move {
            client.next_event().await.map(|e| (e, client))
        })
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        self.state.borrow().clone()
    }

    /// Waits until the state satisfies `f` (or the client ends).
    pub async fn wait_for_state(
        &mut self,
        f: impl Fn(&ConnectionState) -> bool,
    ) -> ConnectionState {
        let mut rx = self.state.clone();
        match rx
            .wait_for(|s| f(s) || matches!(s, ConnectionState::Ended { .. }))
            .await
        {
            Ok(s) => s.clone(),
            Err(_) => self.state(),
        }
    }

    /// Closes the stream cleanly and ends the client.
    pub fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }
}

/// Sends stanzas and closes a running [`Client`] from any task; the events stay with the
/// `Client`, which one reader owns.
#[derive(Clone, Debug)]
pub struct Handle {
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<ConnectionState>,
}

impl Handle {
    /// Like [`Client::send`].
    pub async fn send(&self, stanza: Vec<u8>) -> Result<SendId, TransportError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Send {
                bytes: stanza,
                reply,
            })
            .map_err(|_| TransportError::Ended)?;
        rx.await.map_err(|_| TransportError::Ended)?
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        self.state.borrow().clone()
    }

    /// Like [`Client::close`].
    pub fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = ReconnectPolicy::default();
        assert_eq!(p.delay(1, 0.5), Duration::from_millis(500));
        assert_eq!(p.delay(2, 0.5), Duration::from_secs(1));
        assert_eq!(p.delay(3, 0.5), Duration::from_secs(2));
        assert_eq!(p.delay(30, 0.5), Duration::from_secs(60), "capped");
        assert_eq!(
            p.delay(u32::MAX, 0.5),
            Duration::from_secs(60),
            "no overflow"
        );
        // Jitter spreads the delay by ±50%.
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(250));
        assert!(p.delay(1, 0.999_999) < Duration::from_millis(751));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let c = ClientConfig::new("alice@example.org".parse().unwrap(), "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
