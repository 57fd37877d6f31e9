//! [`ClientBuilder`]: account, transport, timeouts, reconnection and invitation policy.

use std::sync::Arc;
use std::time::Duration;

use groupchat_protocol::Password;
use groupchat_transport::{ClientConfig, Connector, ReconnectPolicy, TlsOptions};
#[cfg(feature = "tcp")]
use groupchat_transport_tcp::TcpConnector;
#[cfg(feature = "ws")]
use groupchat_transport_ws::WsConnector;

use crate::client::Client;
use crate::error::ConnectError;

/// The default of [`ClientBuilder::room_check`].
pub const ROOM_CHECK: Duration = Duration::from_secs(60);

/// What the SDK does when someone adds us to a group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvitationPolicy {
    /// Join the group, list it (bookmark) and report [`Event::AddedToGroup`] — the
    /// application does nothing. Only invitations to groups whose member list includes us
    /// succeed (groups are members-only), so a forged invitation joins nothing.
    ///
    /// [`Event::AddedToGroup`]: crate::Event::AddedToGroup
    #[default]
    AutoAccept,
    /// Report [`Event::Invitation`]; the application calls
    /// [`Client::join_group`] to accept.
    ///
    /// [`Event::Invitation`]: crate::Event::Invitation
    Manual,
}

/// Builds a [`Client`]: `ClientBuilder::new(jid, password)`, then a transport, then
/// [`connect`](Self::connect).
pub struct ClientBuilder {
    pub(crate) jid: String,
    pub(crate) password: Password,
    pub(crate) connector: Option<Arc<dyn Connector>>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) reconnect: ReconnectPolicy,
    pub(crate) keepalive: Option<(Duration, Duration)>,
    pub(crate) resource: Option<String>,
    pub(crate) languages: Vec<String>,
    pub(crate) typing_timeout: Duration,
    pub(crate) room_check: Duration,
    pub(crate) send_received_markers: bool,
    pub(crate) positions: Arc<dyn crate::PositionStore>,
    pub(crate) invitations: InvitationPolicy,
    pub(crate) http_tls: TlsOptions,
    pub(crate) http_loopback_plain: bool,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("jid", &self.jid)
            .field("password", &self.password)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("invitations", &self.invitations)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// An account: its bare JID (`user@example.org`) and password. Without a transport, the
    /// client connects over TCP to the JID's domain (DNS SRV, STARTTLS, certificates checked
    /// against the webpki roots).
    pub fn new(jid: impl Into<String>, password: impl Into<Password>) -> Self {
        Self {
            jid: jid.into(),
            password: password.into(),
            connector: None,
            connect_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            reconnect: ReconnectPolicy::default(),
            keepalive: None,
            resource: None,
            languages: Vec::new(),
            typing_timeout: crate::typing::TYPING_TIMEOUT,
            room_check: ROOM_CHECK,
            send_received_markers: true,
            positions: Arc::new(crate::MemoryStore::default()),
            invitations: InvitationPolicy::default(),
            http_tls: TlsOptions::default(),
            http_loopback_plain: false,
        }
    }

    /// TCP with TLS (STARTTLS or direct TLS, see [`TcpConnector::builder`]).
    #[cfg(feature = "tcp")]
    pub fn tcp(mut self, connector: TcpConnector) -> Self {
        self.connector = Some(Arc::new(connector));
        self
    }

    /// WebSocket, RFC 7395 (see [`WsConnector::builder`]).
    #[cfg(feature = "ws")]
    pub fn websocket(mut self, connector: WsConnector) -> Self {
        self.connector = Some(Arc::new(connector));
        self
    }

    /// Any other [`Connector`].
    pub fn connector(mut self, connector: Arc<dyn Connector>) -> Self {
        self.connector = Some(connector);
        self
    }

    /// How long [`connect`](Self::connect) waits for the login (default 30 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// How long a call waits for the server's answer before failing with 504 (default 30 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Reconnection after a lost connection (default: exponential backoff with jitter).
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// How a dead link is noticed (defaults: 60 s and 30 s): after `interval` without
    /// sending, the client asks the server for an ack (XEP-0198), and a link whose server
    /// does not answer within `ack_timeout` (of that request, or of any send) is dropped
    /// and the session resumed on a new one.
    pub fn keepalive(mut self, interval: Duration, ack_timeout: Duration) -> Self {
        self.keepalive = Some((interval, ack_timeout));
        self
    }

    /// Names this device (the XMPP resource, e.g. `phone`), so that the account's other
    /// devices and the server's logs can tell it apart; by default the server picks a
    /// random one.
    pub fn resource(mut self, device: impl Into<String>) -> Self {
        self.resource = Some(device.into());
        self
    }

    /// Where the positions in each conversation (the last message the application got) are
    /// kept: in memory by default ([`MemoryStore`](crate::MemoryStore)); a
    /// [`FileStore`](crate::FileStore) lets a restarted application catch up from where it
    /// stopped instead of from each group's newest page.
    pub fn positions(mut self, store: Arc<dyn crate::PositionStore>) -> Self {
        self.positions = store;
        self
    }

    /// Whether the client tells each group that its messages reached this device (an
    /// XEP-0333 `received` marker for the newest message of each read, on by default): what
    /// other members' [`Client::message_info`](crate::Client::message_info) counts as
    /// received.
    pub fn send_received_markers(mut self, on: bool) -> Self {
        self.send_received_markers = on;
        self
    }

    /// How long someone's "typing" stands when nothing clears it (default 30 s): then an
    /// [`Event::Typing`](crate::Event::Typing) with
    /// [`TypingState::Expired`](crate::TypingState::Expired) ends it.
    pub fn typing_timeout(mut self, d: Duration) -> Self {
        self.typing_timeout = d;
        self
    }

    /// How long a group's room may stay silent before the client asks it whether we are
    /// still in it (a XEP-0410 self-ping; default 60 s, at least 1 s). A room can be lost
    /// without a word (in a cluster, its node died): a member who only reads notices it
    /// within about 1.5 times this period, then joins again and catches up. A member who
    /// sends notices sooner: the room refuses the message, or, when it does not confirm
    /// it within 3 s, the client asks at once; the message is sent again after the
    /// rejoin.
    pub fn room_check(mut self, d: Duration) -> Self {
        self.room_check = d.max(Duration::from_secs(1));
        self
    }

    /// The languages the user reads, most wanted first (`["de-CH", "en"]`). A message sent
    /// in several languages (one `<body xml:lang>` each) is reported with the best of them
    /// as its `body`, the others in `bodies`; by default the message's own default
    /// language is the body.
    pub fn languages<I, S>(mut self, languages: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.languages = languages.into_iter().map(Into::into).collect();
        self
    }

    /// What to do when someone adds us to a group (default: accept).
    pub fn invitations(mut self, policy: InvitationPolicy) -> Self {
        self.invitations = policy;
        self
    }

    /// Certificate trust for HTTPS (images given by URL, uploads); default: the webpki
    /// roots.
    pub fn http_tls(mut self, tls: TlsOptions) -> Self {
        self.http_tls = tls;
        self
    }

    /// Allows plain `http://` to loopback addresses (`localhost`, `127.0.0.1`, `::1`), for
    /// local test servers whose upload service hands out such URLs. Other plain-HTTP URLs
    /// are always refused.
    pub fn allow_insecure_http_loopback(mut self) -> Self {
        self.http_loopback_plain = true;
        self
    }

    /// Connects, logs in, discovers the server's services, loads the group list and joins
    /// every group. Returns once all of that is done.
    pub async fn connect(self) -> Result<Client, ConnectError> {
        let jid: jid::BareJid = self
            .jid
            .parse()
            .map_err(|e| ConnectError::Invalid(format!("JID {:?}: {e}", self.jid)))?;
        if jid.node().is_none() {
            return Err(ConnectError::Invalid(format!(
                "JID {:?} has no user part",
                self.jid
            )));
        }
        let connector: Arc<dyn Connector> = match self.connector.clone() {
            Some(c) => c,
            #[cfg(feature = "tcp")]
            None => Arc::new(
                TcpConnector::builder(jid.domain().as_str())
                    .build()
                    .map_err(ConnectError::Transport)?,
            ),
            #[cfg(not(feature = "tcp"))]
            None => {
                return Err(ConnectError::Invalid(
                    "no transport: give one (e.g. .websocket(..)), or build with the `tcp` feature \
                     for the default TCP connection"
                        .into(),
                ));
            }
        };
        let account: jid::Jid = match &self.resource {
            None => jid.clone().into(),
            Some(r) => jid::FullJid::from_parts(
                jid.node(),
                jid.domain(),
                &jid::ResourcePart::new(r)
                    .map_err(|e| ConnectError::Invalid(format!("device name {r:?}: {e}")))?,
            )
            .into(),
        };
        let mut config = ClientConfig::new(account, self.password.clone());
        config.connect_timeout = self.connect_timeout;
        config.reconnect = self.reconnect.clone();
        if let Some((interval, ack_timeout)) = self.keepalive {
            config.keepalive_interval = interval;
            config.ack_timeout = ack_timeout;
        }
        Client::connect(config, connector, &self, jid).await
    }
}
