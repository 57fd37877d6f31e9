//! The sans-IO client session: one XMPP stream, from the first byte to the close.
//!
//! RFC 6120 (stream, STARTTLS signalling, SASL, bind), RFC 7395 (WebSocket framing) and
//! XEP-0198 (stream management) as one state machine. See the crate docs for the drive loop.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use jid::{FullJid, Jid};
use minidom::Element;
use sha2::{Digest, Sha256};

use crate::codec::reader::JidCache;
use crate::codec::stream;
use crate::codec::xep::sm;
use crate::codec::{DecodeError, Iq, IqType, NsContext, Stanza, TopLevel, decode_top_level_cached};
use crate::error::{
    BindFailure, DropReason, ProtocolViolation, SaslFailure, SessionError, UsageError, XmlError,
};
use crate::ns;
use crate::sasl::{self, Mechanism, Password};
use crate::xml::{Limits, Scanner, Token};

/// How elements are delimited on the wire; fixed for the life of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Framing {
    /// TCP: one `<stream:stream>` document, received in arbitrary chunks.
    Stream,
    /// WebSocket (RFC 7395): each frame holds one complete element; `<open/>` / `<close/>`.
    WebSocket,
}

/// Whether and how the transport is encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tls {
    /// Plain TCP upgraded with STARTTLS; the session asks for it with [`Output::StartTls`].
    StartTls,
    /// The transport is already encrypted: direct TLS (XEP-0368) or `wss://`.
    Encrypted,
    /// No encryption at all. Explicit opt-in, meant for loopback test servers.
    InsecurePlaintext,
}

/// Everything a [`Session`] needs to log in. `Debug` shows neither the password nor the
/// entropy.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The account; a resource in a full JID is requested at bind time.
    pub jid: Jid,
    /// The account's password.
    pub password: Password,
    /// Wire framing.
    pub framing: Framing,
    /// Transport encryption.
    pub tls: Tls,
    /// Allow SASL PLAIN on an unencrypted stream (loopback tests only).
    pub allow_plain_without_tls: bool,
    /// SASL mechanisms we may use, in order of preference.
    pub mechanisms: Vec<Mechanism>,
    /// Enable XEP-0198 stream management when the server offers it.
    pub stream_management: bool,
    /// State of a previous session to resume (XEP-0198), from [`Session::resumption`].
    pub resume: Option<Resumption>,
    /// Size and depth limits for received stanzas.
    pub limits: Limits,
    /// Time allowed from the first byte to a bound (or resumed) session.
    pub negotiation_timeout: Duration,
    /// Send a keep-alive after this long without sending anything.
    pub keepalive_interval: Duration,
    /// With stream management, how long to wait for `<a/>` after `<r/>`.
    pub ack_timeout: Duration,
    /// The [`SendId`] of the first stanza this session sends: a driver that starts a fresh
    /// session after a failed resumption continues its numbering.
    pub first_send_id: u64,
    /// Fresh random bytes from the driver, new for every session: SCRAM nonces are derived
    /// from them (mixed with the session's start instant, so a reused value still gives a
    /// new nonce).
    pub entropy: [u8; 32],
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("jid", &self.jid)
            .field("password", &self.password)
            .field("framing", &self.framing)
            .field("tls", &self.tls)
            .field("allow_plain_without_tls", &self.allow_plain_without_tls)
            .field("mechanisms", &self.mechanisms)
            .field("stream_management", &self.stream_management)
            .field("resume", &self.resume.as_ref().map(|r| r.jid.to_string()))
            .field("limits", &self.limits)
            .field("negotiation_timeout", &self.negotiation_timeout)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("ack_timeout", &self.ack_timeout)
            .field("first_send_id", &self.first_send_id)
            .field("entropy", &"<redacted>")
            .finish()
    }
}

impl Config {
    /// A configuration with secure defaults: STARTTLS required, every mechanism allowed
    /// (PLAIN only under TLS), stream management on, 256 KiB stanza limit.
    pub fn new(
        jid: Jid,
        password: impl Into<Password>,
        framing: Framing,
        entropy: [u8; 32],
    ) -> Self {
        Self {
            jid,
            password: password.into(),
            tls: match framing {
                Framing::Stream => Tls::StartTls,
                Framing::WebSocket => Tls::Encrypted,
            },
            framing,
            allow_plain_without_tls: false,
            mechanisms: Mechanism::ALL.to_vec(),
            stream_management: true,
            resume: None,
            limits: Limits::default(),
            negotiation_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(60),
            ack_timeout: Duration::from_secs(30),
            first_send_id: 0,
            entropy,
        }
    }
}

/// Identifies a stanza handed to [`Session::send`]; increases by one per stanza.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SendId(pub u64);

/// A stanza the server has not acknowledged yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unacked {
    /// The id [`Session::send`] returned.
    pub id: SendId,
    /// The stanza as serialized on the wire.
    pub bytes: Bytes,
}

/// XEP-0198 state carried from a lost session into the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resumption {
    id: String,
    jid: FullJid,
    inbound: u32,
    outbound_acked: u32,
    unacked: VecDeque<Unacked>,
    next_send_id: u64,
}

impl Resumption {
    /// The full JID the session was bound to.
    pub fn jid(&self) -> &FullJid {
        &self.jid
    }

    /// Stanzas sent but not acknowledged: replayed on resumption.
    pub fn unacked(&self) -> impl ExactSizeIterator<Item = &Unacked> {
        self.unacked.iter()
    }
}

/// What the driver feeds in.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Input<'a> {
    /// Bytes read from the transport. With WebSocket framing: exactly one text frame.
    Received {
        /// When they were read.
        now: Instant,
        /// The bytes.
        data: &'a [u8],
    },
    /// The deadline from [`Output::Timeout`] (or a later time) has come.
    Timeout(Instant),
    /// The driver finished the TLS handshake requested by [`Output::StartTls`].
    TlsEstablished(Instant),
    /// The transport closed or failed (EOF, reset, I/O error).
    TransportClosed(Instant),
}

/// What the session asks the driver to do; drain until [`Output::Timeout`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Output {
    /// Write these bytes. With WebSocket framing: send them as one text frame.
    Transmit(Bytes),
    /// Something happened.
    Event(Event),
    /// Perform a TLS handshake on the transport now, then feed [`Input::TlsEstablished`].
    /// Feed no received bytes until then: they belong to the TLS layer.
    StartTls,
    /// Nothing more to do; call [`Input::Timeout`] at this instant (or never, if `None`).
    Timeout(Option<Instant>),
}

/// Something the application should know.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The session is bound (or resumed) and can send and receive stanzas.
    Connected {
        /// Our full JID.
        jid: FullJid,
        /// True when a previous session was resumed (XEP-0198) rather than started fresh.
        resumed: bool,
        /// The server acknowledges what we send (XEP-0198 asked for): [`Event::Acked`]
        /// follows each stanza it has.
        acked: bool,
    },
    /// A stanza (`message`, `presence` or `iq`) arrived.
    Stanza(Stanza),
    /// The server acknowledged every stanza up to and including this one.
    Acked {
        /// The last acknowledged stanza.
        up_to: SendId,
    },
    /// Resumption was refused; a fresh session follows. These stanzas may or may not have
    /// reached the server: the application decides whether to send them again.
    ResumeFailed {
        /// Stanzas that were never acknowledged.
        unacked: Vec<Unacked>,
    },
    /// A stanza was received but not understood; it was dropped.
    StanzaDropped {
        /// Why.
        reason: DropReason,
        /// What could be read of it (its name, id, type and sender), if anything (boxed:
        /// events stay small).
        envelope: Option<Box<crate::codec::Envelope>>,
    },
    /// The stream was closed cleanly after [`Session::close`].
    Closed,
    /// The session ended with an error. Reported once; see [`Session::resumption`].
    Disconnected {
        /// Why.
        reason: SessionError,
    },
}

#[derive(Debug)]
enum Phase {
    /// Waiting for the server's stream header (or `<open/>`).
    Header,
    /// Waiting for `<stream:features/>`.
    Features,
    /// Sent `<starttls/>`.
    Proceed,
    /// Asked the driver for TLS; waiting for `TlsEstablished`.
    Tls,
    /// In a SASL exchange.
    Auth(AuthState),
    /// Sent `<resume/>`.
    Resume,
    /// Sent the bind IQ.
    Bind,
    /// Sent the (non-optional) RFC 3921 session IQ.
    LegacySession,
    /// Bound: stanzas flow.
    Established,
    /// We sent our stream close; waiting for the server's.
    Closing,
    /// Over. Only [`Output::Timeout(None)`] from here on.
    Ended,
}

struct AuthState(sasl::Client);

impl fmt::Debug for AuthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthState(..)")
    }
}

#[derive(Debug, Default)]
struct Features {
    starttls: bool,
    mechanisms: Vec<String>,
    bind: bool,
    session_required: bool,
    sm: bool,
}

/// XEP-0198 counters and the replay queue.
#[derive(Debug, Default)]
struct StreamMgmt {
    /// `<enable/>` was sent: outbound stanzas are counted and queued.
    enabled: bool,
    /// `<enabled/>` (or `<resumed/>`) arrived: inbound stanzas are counted.
    counting_inbound: bool,
    /// The id to resume with, when the server allows resumption.
    resume_id: Option<String>,
    inbound: u32,
    /// The `h` of the last `<a/>` we sent.
    inbound_acked: u32,
    outbound_acked: u32,
    unacked: VecDeque<Unacked>,
    /// An `<r/>` is outstanding since this instant.
    ack_requested_at: Option<Instant>,
}

/// We acknowledge received stanzas unasked after this many (XEP-0198 §4 allows it), so
/// that the server's queue of what it must keep for a resumption stays short: Prosody
/// refuses a resumption once 500 wait, and then discards them.
const ACK_EVERY: u32 = 50;

const BIND_ID: &str = "gc-bind";
const SESSION_ID: &str = "gc-session";

/// One XMPP client session, driven by the caller's I/O loop.
///
/// Methods come in three groups: getters; [`handle_input`](Self::handle_input) and commands
/// ([`send`](Self::send), [`close`](Self::close)), which only enqueue work; and
/// [`poll_output`](Self::poll_output), which the driver calls until it returns
/// [`Output::Timeout`].
pub struct Session {
    config: Config,
    phase: Phase,
    scanner: Scanner,
    /// Namespace context of the current stream header, for decoding stanzas.
    ctx: NsContext,
    /// JIDs parsed from earlier stanzas (the codec's cache; bounded).
    jids: JidCache,
    encrypted: bool,
    authenticated: bool,
    features: Features,
    sm: StreamMgmt,
    jid: Option<FullJid>,
    out: VecDeque<Output>,
    now: Instant,
    negotiation_deadline: Option<Instant>,
    close_deadline: Option<Instant>,
    last_sent: Instant,
    next_send_id: u64,
    entropy_counter: u64,
    /// Resumption that is being attempted, until `<resumed/>` or `<failed/>`.
    resuming: Option<Resumption>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("jid", &self.config.jid)
            .field("phase", &self.phase)
            .field("encrypted", &self.encrypted)
            .field("queued_outputs", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Starts a session: the stream header is queued for sending at once.
    pub fn new(mut config: Config, now: Instant) -> Self {
        let resume = config.resume.take();
        {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            now.hash(&mut h);
            let mixed = Sha256::new()
                .chain_update(config.entropy)
                .chain_update(h.finish().to_le_bytes())
                .finalize();
            config.entropy.copy_from_slice(&mixed);
        }
        let next_send_id = resume
            .as_ref()
            .map_or(0, |r| r.next_send_id)
            .max(config.first_send_id);
        let mut s = Self {
            scanner: Scanner::new(config.framing == Framing::Stream, config.limits),
            phase: Phase::Header,
            ctx: NsContext::default(),
            jids: JidCache::kept(),
            encrypted: config.tls == Tls::Encrypted,
            authenticated: false,
            features: Features::default(),
            sm: StreamMgmt::default(),
            jid: None,
            out: VecDeque::new(),
            now,
            negotiation_deadline: Some(now + config.negotiation_timeout),
            close_deadline: None,
            last_sent: now,
            next_send_id,
            entropy_counter: 0,
            resuming: resume,
            config,
        };
        s.open_stream();
        s
    }

    /// The bound full JID, once connected.
    pub fn jid(&self) -> Option<&FullJid> {
        self.jid.as_ref()
    }

    /// True while stanzas can be sent.
    pub fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Established)
    }

    /// True once the session has ended (cleanly or not).
    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended)
    }

    /// The id the next sent stanza will get.
    pub fn next_send_id(&self) -> SendId {
        SendId(self.next_send_id)
    }

    /// Stanzas sent but not yet acknowledged by the server (XEP-0198).
    pub fn unacked(&self) -> impl ExactSizeIterator<Item = &Unacked> {
        self.sm.unacked.iter()
    }

    /// The state needed to resume this session in a new one (set it as
    /// [`Config::resume`]), when the server granted resumption.
    pub fn resumption(&self) -> Option<Resumption> {
        if let Some(r) = &self.resuming {
            // The connection dropped while resuming: the old session is still the one to resume.
            return Some(r.clone());
        }
        let id = self.sm.resume_id.clone()?;
        Some(Resumption {
            id,
            jid: self.jid.clone()?,
            inbound: self.sm.inbound,
            outbound_acked: self.sm.outbound_acked,
            unacked: self.sm.unacked.clone(),
            next_send_id: self.next_send_id,
        })
    }

    /// Feeds an input. Then drain [`poll_output`](Self::poll_output).
    pub fn handle_input(&mut self, input: Input<'_>) {
        match input {
            Input::Received { now, data } => {
                self.now = now;
                self.received(data);
            }
            Input::Timeout(now) => {
                self.now = now;
                self.timeout();
            }
            Input::TlsEstablished(now) => {
                self.now = now;
                if matches!(self.phase, Phase::Tls) {
                    self.encrypted = true;
                    self.open_stream();
                } else {
                    self.fail(SessionError::Protocol(ProtocolViolation::UnrequestedTls));
                }
            }
            Input::TransportClosed(now) => {
                self.now = now;
                match self.phase {
                    Phase::Ended => {}
                    Phase::Closing => self.end(None),
                    _ => self.end(Some(SessionError::ConnectionLost)),
                }
            }
        }
    }

    /// The next thing to do. Idle cost is O(1): a queue pop and three comparisons.
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        Output::Timeout(self.deadline())
    }

    /// Sends a stanza (`message`, `presence` or `iq`) at `now`. With stream management it is
    /// kept until the server acknowledges it, and replayed on resumption.
    ///
    /// Commands take `now` because they may start timers (the ack deadline).
    pub fn send(&mut self, now: Instant, stanza: &Element) -> Result<SendId, UsageError> {
        match self.phase {
            Phase::Established => {}
            Phase::Closing | Phase::Ended => return Err(UsageError::Ended),
            _ => return Err(UsageError::NotConnected),
        }
        if !matches!(stanza.name(), "message" | "presence" | "iq") || stanza.ns() != ns::CLIENT {
            return Err(UsageError::NotAStanza(stanza.name().to_owned()));
        }
        let mut buf = Vec::with_capacity(256);
        stanza
            .write_to(&mut buf)
            .map_err(|e| UsageError::Serialize(e.to_string()))?;
        self.now = now;
        Ok(self.send_stanza_bytes(Bytes::from(buf)))
    }

    /// Sends a stanza already encoded by this crate's codec (e.g. [`Message::encode`]):
    /// the fast path, without a tree. The bytes must be one `message`, `presence` or `iq`
    /// element in `jabber:client`; they are checked with the same framer as received data.
    ///
    /// [`Message::encode`]: crate::codec::Message::encode
    pub fn send_encoded(&mut self, now: Instant, stanza: Vec<u8>) -> Result<SendId, UsageError> {
        match self.phase {
            Phase::Established => {}
            Phase::Closing | Phase::Ended => return Err(UsageError::Ended),
            _ => return Err(UsageError::NotConnected),
        }
        let name = crate::codec::top_level_name(&stanza, &self.ctx)
            .map_err(|e| UsageError::Serialize(e.to_string()))?;
        if !matches!(name.as_str(), "message" | "presence" | "iq") {
            return Err(UsageError::NotAStanza(name));
        }
        self.now = now;
        Ok(self.send_stanza_bytes(Bytes::from(stanza)))
    }

    /// Asks the server to acknowledge what it has received (XEP-0198 `<r/>`), unless a
    /// request is already outstanding (which would restart the dead-connection timer).
    pub fn request_ack(&mut self, now: Instant) {
        if self.sm.enabled
            && matches!(self.phase, Phase::Established)
            && self.sm.ack_requested_at.is_none()
        {
            self.now = now;
            self.request_ack_now();
        }
    }

    /// Closes the stream cleanly; [`Event::Closed`] follows when the server agrees (or after
    /// five seconds).
    pub fn close(&mut self, now: Instant) {
        self.now = now;
        match self.phase {
            Phase::Closing | Phase::Ended => return,
            Phase::Tls => {
                self.end(None);
                return;
            }
            _ => {}
        }
        if self.sm.counting_inbound {
            // Let the server drop what we handled, so nothing is redelivered offline.
            self.transmit_vec(sm::ack(self.sm.inbound));
        }
        self.transmit_close();
        // A clean close ends resumability: the server discards the session.
        self.sm.resume_id = None;
        self.phase = Phase::Closing;
        self.close_deadline = Some(self.now + Duration::from_secs(5));
    }

    // ---- internals -------------------------------------------------------------------

    fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Ended => None,
            Phase::Closing => self.close_deadline,
            Phase::Established => {
                let keepalive = self.last_sent + self.config.keepalive_interval;
                let ack = self
                    .sm
                    .ack_requested_at
                    .map(|t| t + self.config.ack_timeout);
                Some(ack.map_or(keepalive, |a| a.min(keepalive)))
            }
            _ => self.negotiation_deadline,
        }
    }

    fn timeout(&mut self) {
        let now = self.now;
        match self.phase {
            Phase::Ended => {}
            Phase::Closing => {
                if self.close_deadline.is_some_and(|d| now >= d) {
                    self.end(None);
                }
            }
            Phase::Established => {
                let ack_overdue = self
                    .sm
                    .ack_requested_at
                    .is_some_and(|t| now >= t + self.config.ack_timeout);
                if ack_overdue {
                    self.fail(SessionError::AckTimeout(self.config.ack_timeout));
                    return;
                }
                if now >= self.last_sent + self.config.keepalive_interval {
                    if self.sm.enabled {
                        if self.sm.ack_requested_at.is_none() {
                            self.request_ack_now();
                        } else {
                            self.last_sent = now;
                        }
                    } else if self.config.framing == Framing::Stream {
                        // RFC 6120 §4.6.1: whitespace keeps NATs and the server happy.
                        self.transmit(Bytes::from_static(b" "));
                    } else {
                        // WebSocket keep-alive is the driver's ping; nothing to send here.
                        self.last_sent = now;
                    }
                }
            }
            _ => {
                if self.negotiation_deadline.is_some_and(|d| now >= d) {
                    self.fail(SessionError::Timeout("stream negotiation did not finish"));
                }
            }
        }
    }

    fn received(&mut self, data: &[u8]) {
        match self.phase {
            Phase::Ended => return,
            Phase::Tls => {
                self.fail(SessionError::TlsDowngrade);
                return;
            }
            _ => {}
        }
        self.scanner.push(data);
        let mut elements = 0usize;
        loop {
            if matches!(self.phase, Phase::Ended | Phase::Tls) {
                return;
            }
            let token = match self.scanner.next_token() {
                Ok(Some(t)) => t,
                Ok(None) => break,
                Err(e) => {
                    self.fail(e.into());
                    return;
                }
            };
            elements += 1;
            if self.config.framing == Framing::WebSocket && elements > 1 {
                self.fail(SessionError::Xml(XmlError::NotWellFormed(
                    "WebSocket frame holds more than one element",
                )));
                return;
            }
            match token {
                Token::StreamOpen(header) => self.stream_header(&header),
                Token::StreamClose => self.stream_closed(),
                Token::Element(bytes) => self.element(&bytes),
            }
        }
        if self.config.framing == Framing::WebSocket
            && !matches!(self.phase, Phase::Ended | Phase::Tls)
            && !self.scanner.at_boundary()
        {
            self.fail(SessionError::Xml(XmlError::NotWellFormed(
                "WebSocket frame does not hold one complete element",
            )));
        }
    }

    fn stream_header(&mut self, header: &[u8]) {
        if !matches!(self.phase, Phase::Header) {
            self.fail(SessionError::Protocol(ProtocolViolation::UnexpectedHeader));
            return;
        }
        let header = match stream::decode_header(header) {
            Ok(h) => h,
            Err(e) => {
                self.fail(XmlError::Parse(e.to_string()).into());
                return;
            }
        };
        if header.ns != ns::STREAM {
            self.fail(SessionError::Protocol(
                ProtocolViolation::WrongStreamNamespace,
            ));
            return;
        }
        if header
            .version
            .as_deref()
            .is_none_or(|v| !v.starts_with("1."))
        {
            self.fail(SessionError::Protocol(ProtocolViolation::NotXmpp1));
            return;
        }
        self.ctx = header.ctx;
        self.phase = Phase::Features;
    }

    fn stream_closed(&mut self) {
        if matches!(self.phase, Phase::Closing) {
            self.end(None);
        } else {
            self.transmit_close();
            self.end(Some(SessionError::Protocol(
                ProtocolViolation::ServerClosedStream,
            )));
        }
    }

    fn element(&mut self, bytes: &[u8]) {
        let el = match decode_top_level_cached(bytes, &self.ctx, &mut self.jids) {
            Ok(TopLevel::Stanza(stanza)) => {
                self.stanza(stanza);
                return;
            }
            Ok(TopLevel::Other(el)) => el,
            Err(e) => {
                let established = matches!(self.phase, Phase::Established | Phase::Closing);
                if let (false, DecodeError::Xml(x)) = (established, &e) {
                    // During negotiation the server's own elements must make sense.
                    self.fail(XmlError::Parse(x.clone()).into());
                    return;
                }
                // The framer found a complete element, so the stream is intact: whatever
                // is wrong inside it (a bad JID, a value over a limit, XML the decoder
                // refuses) costs this stanza only. A stanza is still counted, since the
                // server counts it as delivered.
                if self.sm.counting_inbound && established && is_stanza_element(bytes) {
                    self.count_inbound();
                }
                let envelope = crate::codec::envelope(bytes).map(Box::new);
                self.drop_stanza(DropReason::Invalid(e), envelope);
                return;
            }
        };
        let ns = el.ns();
        if matches!(self.phase, Phase::Closing)
            && !matches!(
                (ns.as_str(), el.name()),
                (ns::STREAM, "error") | (ns::FRAMING, "close") | (ns::SM, _)
            )
        {
            // Negotiation that crossed our close: moot now.
            return;
        }
        match (ns.as_str(), el.name()) {
            (ns::STREAM, "features") => self.features(&el),
            (ns::STREAM, "error") => {
                let (condition, text) = condition_and_text(&el, ns::STREAMS);
                self.end(Some(SessionError::StreamError { condition, text }));
            }
            (ns::FRAMING, "open") if self.config.framing == Framing::WebSocket => {
                if matches!(self.phase, Phase::Header) {
                    self.phase = Phase::Features;
                } else {
                    self.fail(SessionError::Protocol(ProtocolViolation::UnexpectedOpen));
                }
            }
            (ns::FRAMING, "close") if self.config.framing == Framing::WebSocket => {
                self.stream_closed();
            }
            (ns::TLS, "proceed") if matches!(self.phase, Phase::Proceed) => {
                if !self.scanner.is_drained() {
                    // Plaintext after <proceed/> would be read as if it came over TLS:
                    // the STARTTLS command-injection attack (CVE-2011-0411 family).
                    self.fail(SessionError::TlsDowngrade);
                    return;
                }
                self.phase = Phase::Tls;
                self.out.push_back(Output::StartTls);
            }
            (ns::TLS, "failure") => self.fail(SessionError::TlsRefused),
            (ns::SASL, name) => self.sasl(name, &el),
            (ns::SM, name) => self.stream_mgmt(name, &el),
            _ => self.drop_stanza(
                DropReason::Unknown {
                    name: el.name().to_owned(),
                    ns,
                },
                None,
            ),
        }
    }

    /// One more stanza received under stream management.
    fn count_inbound(&mut self) {
        self.sm.inbound = self.sm.inbound.wrapping_add(1);
        if self.sm.inbound.wrapping_sub(self.sm.inbound_acked) >= ACK_EVERY
            && matches!(self.phase, Phase::Established)
        {
            self.send_ack();
        }
    }

    fn send_ack(&mut self) {
        self.sm.inbound_acked = self.sm.inbound;
        self.transmit_vec(sm::ack(self.sm.inbound));
    }

    fn drop_stanza(&mut self, reason: DropReason, envelope: Option<Box<crate::codec::Envelope>>) {
        self.event(Event::StanzaDropped { reason, envelope });
    }

    fn stanza(&mut self, stanza: Stanza) {
        match (&self.phase, &stanza) {
            (Phase::Established, _) | (Phase::Closing, _) if self.jid.is_some() => {
                if self.sm.counting_inbound {
                    self.count_inbound();
                }
                self.event(Event::Stanza(stanza));
            }
            (Phase::Bind, Stanza::Iq(iq)) if iq.id == BIND_ID => self.bound(iq),
            (Phase::LegacySession, Stanza::Iq(iq)) if iq.id == SESSION_ID => {
                if iq.kind == IqType::Result {
                    self.established();
                } else {
                    self.fail(SessionError::Bind(Box::new(BindFailure::SessionRefused(
                        iq.error.clone(),
                    ))));
                }
            }
            (Phase::Closing, _) => {}
            _ => self.fail(SessionError::Protocol(ProtocolViolation::StanzaBeforeBind)),
        }
    }

    fn features(&mut self, el: &Element) {
        if !matches!(self.phase, Phase::Features) {
            self.fail(SessionError::Protocol(
                ProtocolViolation::UnexpectedFeatures,
            ));
            return;
        }
        let mut f = Features::default();
        for child in el.children() {
            match (child.ns().as_str(), child.name()) {
                (ns::TLS, "starttls") => f.starttls = true,
                (ns::SASL, "mechanisms") => {
                    f.mechanisms = child
                        .children()
                        .filter(|m| m.is("mechanism", ns::SASL))
                        .map(|m| m.text().trim().to_owned())
                        .collect();
                }
                (ns::BIND, "bind") => f.bind = true,
                (ns::SESSION, "session") => {
                    f.session_required = !child.has_child("optional", ns::SESSION);
                }
                (ns::SM, "sm") => f.sm = true,
                _ => {}
            }
        }
        self.features = f;
        if !self.encrypted {
            if self.features.starttls && self.config.tls == Tls::StartTls {
                self.transmit_vec(stream::starttls());
                self.phase = Phase::Proceed;
                return;
            }
            if self.config.tls != Tls::InsecurePlaintext {
                self.fail(SessionError::TlsUnavailable);
                return;
            }
        }
        if !self.authenticated {
            self.start_auth();
            return;
        }
        if let Some(r) = &self.resuming {
            if self.features.sm {
                let msg = sm::resume(r.inbound, &r.id);
                self.transmit_vec(msg);
                self.phase = Phase::Resume;
                return;
            }
            self.resume_failed(None);
        }
        self.bind();
    }

    fn start_auth(&mut self) {
        let plain_allowed = self.encrypted || self.config.allow_plain_without_tls;
        let offered = &self.features.mechanisms;
        let mut plain_refused = false;
        let choice = self.config.mechanisms.iter().copied().find(|m| {
            let on_offer = offered.iter().any(|o| o == m.name());
            if on_offer && *m == Mechanism::Plain && !plain_allowed {
                plain_refused = true;
                return false;
            }
            on_offer
        });
        let Some(mechanism) = choice else {
            let offered = offered.join(",");
            self.fail(SessionError::NoMechanism {
                offered,
                plain_refused,
            });
            return;
        };
        let username = match &self.config.jid.node() {
            Some(n) => n.as_str().to_owned(),
            None => {
                self.fail(SessionError::InvalidAccount(
                    "the account JID has no local part",
                ));
                return;
            }
        };
        let nonce = B64.encode(self.random(18));
        match sasl::Client::start(mechanism, &username, &self.config.password, &nonce) {
            Ok((client, initial)) => {
                let data = if initial.is_empty() {
                    "=".to_owned()
                } else {
                    B64.encode(&initial)
                };
                self.transmit_vec(stream::auth(mechanism.name(), &data));
                self.phase = Phase::Auth(AuthState(client));
            }
            Err(e) => self.fail(e),
        }
    }

    fn sasl(&mut self, name: &str, el: &Element) {
        let Phase::Auth(AuthState(client)) = &mut self.phase else {
            self.fail(SessionError::Protocol(ProtocolViolation::UnexpectedSasl(
                name.to_owned(),
            )));
            return;
        };
        let text = el.text();
        let data = match text.trim() {
            "" | "=" => Ok(Vec::new()),
            t => B64.decode(t),
        };
        let Ok(data) = data else {
            self.fail(SessionError::Protocol(ProtocolViolation::SaslNotBase64));
            return;
        };
        match name {
            "challenge" => match client.respond(&data) {
                Ok(resp) => {
                    self.transmit_vec(stream::response(&B64.encode(resp)));
                }
                Err(e) => self.fail(e),
            },
            "success" => match client.finish(&data) {
                Ok(()) => {
                    self.authenticated = true;
                    self.open_stream();
                }
                Err(e) => self.fail(e),
            },
            "failure" => {
                let (condition, text) = condition_and_text(el, ns::SASL);
                self.fail(SessionError::Auth(SaslFailure { condition, text }));
            }
            _ => self.fail(SessionError::Protocol(ProtocolViolation::UnexpectedSasl(
                name.to_owned(),
            ))),
        }
    }

    fn bind(&mut self) {
        if !self.features.bind {
            self.fail(SessionError::Bind(Box::new(BindFailure::NotOffered)));
            return;
        }
        let resource = self.config.jid.resource().map(|r| r.as_str());
        self.transmit_vec(stream::bind(BIND_ID, resource));
        self.phase = Phase::Bind;
    }

    fn bound(&mut self, iq: &Iq) {
        if iq.kind != IqType::Result {
            self.fail(SessionError::Bind(Box::new(BindFailure::Refused(
                iq.error.clone(),
            ))));
            return;
        }
        // Through xmpp-parsers' `BindResponse` (once per login: the cold path).
        let jid = iq
            .payload
            .clone()
            .and_then(|p| xmpp_parsers::bind::BindResponse::try_from(p).ok())
            .map(FullJid::from);
        let Some(jid) = jid else {
            self.fail(SessionError::Bind(Box::new(BindFailure::NoJid)));
            return;
        };
        if jid.to_bare() != self.config.jid.to_bare() {
            self.fail(SessionError::Bind(Box::new(BindFailure::ForeignJid(jid))));
            return;
        }
        self.jid = Some(jid);
        if self.features.session_required {
            self.transmit_vec(stream::session(SESSION_ID));
            self.phase = Phase::LegacySession;
            return;
        }
        self.established();
    }

    fn established(&mut self) {
        self.phase = Phase::Established;
        self.negotiation_deadline = None;
        if self.config.stream_management && self.features.sm {
            self.transmit_vec(sm::enable());
            self.sm.enabled = true;
        }
        let jid = self.jid.clone().expect("bound before established");
        self.event(Event::Connected {
            jid,
            resumed: false,
            acked: self.sm.enabled,
        });
    }

    fn resume_failed(&mut self, h: Option<u32>) {
        let Some(mut r) = self.resuming.take() else {
            return;
        };
        // A count outside what we sent would ack stanzas the server never saw: ignore it.
        if let Some(h) = h.filter(|h| h.wrapping_sub(r.outbound_acked) as usize <= r.unacked.len())
        {
            ack_queue(&mut r.outbound_acked, &mut r.unacked, h);
        }
        let unacked: Vec<Unacked> = r.unacked.into_iter().collect();
        self.event(Event::ResumeFailed { unacked });
    }

    fn stream_mgmt(&mut self, name: &str, el: &Element) {
        let h = el.attr("h").and_then(|h| h.parse::<u32>().ok());
        match (name, &self.phase) {
            ("enabled", Phase::Established) if self.sm.enabled && !self.sm.counting_inbound => {
                self.sm.counting_inbound = true;
                if matches!(el.attr("resume"), Some("true" | "1")) {
                    self.sm.resume_id = el.attr("id").map(str::to_owned);
                }
            }
            ("failed", Phase::Established) if self.sm.enabled && !self.sm.counting_inbound => {
                // Enabling was refused: no counting, no replay queue.
                self.sm = StreamMgmt::default();
            }
            ("resumed", Phase::Resume) => {
                let r = self.resuming.take().expect("resuming in Resume phase");
                let Some(h) = h else {
                    self.fail(SessionError::Protocol(ProtocolViolation::MissingH(
                        "resumed",
                    )));
                    return;
                };
                self.jid = Some(r.jid.clone());
                self.sm = StreamMgmt {
                    enabled: true,
                    counting_inbound: true,
                    resume_id: el.attr("previd").map_or(Some(r.id), |p| Some(p.to_owned())),
                    inbound: r.inbound,
                    inbound_acked: r.inbound,
                    outbound_acked: r.outbound_acked,
                    unacked: r.unacked,
                    ack_requested_at: None,
                };
                if !self.acknowledge(h) {
                    return;
                }
                self.phase = Phase::Established;
                self.negotiation_deadline = None;
                // Replay what the server did not get, in order, under the same ids.
                let replay: Vec<Bytes> = self.sm.unacked.iter().map(|u| u.bytes.clone()).collect();
                for b in replay {
                    self.transmit(b);
                }
                if !self.sm.unacked.is_empty() {
                    self.request_ack_now();
                }
                self.event(Event::Connected {
                    jid: self.jid.clone().expect("set above"),
                    resumed: true,
                    acked: true,
                });
            }
            ("failed", Phase::Resume) => {
                self.resume_failed(h);
                self.bind();
            }
            ("r", Phase::Established | Phase::Closing) if self.sm.counting_inbound => {
                self.send_ack();
            }
            ("a", Phase::Established | Phase::Closing) if self.sm.enabled => {
                let Some(h) = h else {
                    self.fail(SessionError::Protocol(ProtocolViolation::MissingH("a")));
                    return;
                };
                self.sm.ack_requested_at = None;
                self.acknowledge(h);
                // Stanzas sent while that request was out are not covered yet: ask again,
                // so that every burst is acknowledged without waiting for the keepalive.
                if !self.sm.unacked.is_empty() && matches!(self.phase, Phase::Established) {
                    self.request_ack_now();
                }
            }
            _ => self.drop_stanza(DropReason::UnexpectedSm(name.to_owned()), None),
        }
    }

    /// Applies the server's count `h`; false (and the session failed) if it is impossible.
    fn acknowledge(&mut self, h: u32) -> bool {
        let new = h.wrapping_sub(self.sm.outbound_acked);
        if new as usize > self.sm.unacked.len() {
            // XEP-0198 §4: the server claims stanzas we never sent.
            let sent = self
                .sm
                .outbound_acked
                .wrapping_add(self.sm.unacked.len() as u32);
            self.transmit_vec(stream::error(
                self.config.framing,
                "undefined-condition",
                |w| sm::handled_count_too_high(w, h, sent),
            ));
            self.fail(SessionError::Protocol(ProtocolViolation::AckedTooMany {
                acked: h,
            }));
            return false;
        }
        let last = ack_queue(&mut self.sm.outbound_acked, &mut self.sm.unacked, h);
        if let Some(up_to) = last {
            self.event(Event::Acked { up_to });
        }
        true
    }

    fn send_stanza_bytes(&mut self, bytes: Bytes) -> SendId {
        let id = SendId(self.next_send_id);
        self.next_send_id += 1;
        if self.sm.enabled {
            self.sm.unacked.push_back(Unacked {
                id,
                bytes: bytes.clone(),
            });
        }
        self.transmit(bytes);
        if self.sm.enabled && self.sm.ack_requested_at.is_none() {
            self.request_ack_now();
        }
        id
    }

    fn request_ack_now(&mut self) {
        self.transmit_vec(sm::request());
        self.sm.ack_requested_at = Some(self.now);
    }

    fn open_stream(&mut self) {
        self.scanner = self.scanner.restart();
        // TCP: the server's header declares the context. WebSocket: every frame declares its
        // own; default to jabber:client for servers that leave it out.
        self.ctx = NsContext {
            default: ns::CLIENT.to_owned(),
            prefixes: Vec::new(),
            lang: None,
        };
        let header = stream::header(self.config.framing, self.config.jid.domain().as_str());
        self.transmit_vec(header);
        self.phase = Phase::Header;
    }

    fn transmit_close(&mut self) {
        self.transmit_vec(stream::close(self.config.framing));
    }

    fn transmit_vec(&mut self, v: Vec<u8>) {
        self.transmit(Bytes::from(v));
    }

    fn transmit(&mut self, b: Bytes) {
        self.last_sent = self.now;
        self.out.push_back(Output::Transmit(b));
    }

    fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    /// A fatal error: tell the server why (for XML errors), close, report once.
    fn fail(&mut self, reason: SessionError) {
        if matches!(self.phase, Phase::Ended) {
            return;
        }
        if let (SessionError::Xml(x), false) = (&reason, matches!(self.phase, Phase::Closing)) {
            let err = stream::error(self.config.framing, x.stream_condition(), |_| {});
            self.transmit_vec(err);
        }
        // A dead link gets no close: on a half-open link it could still reach the server,
        // which would end the session that resumption needs.
        if !matches!(self.phase, Phase::Tls | Phase::Closing)
            && !matches!(
                reason,
                SessionError::ConnectionLost | SessionError::AckTimeout(_)
            )
        {
            self.transmit_close();
        }
        self.end(Some(reason));
    }

    fn end(&mut self, reason: Option<SessionError>) {
        if matches!(self.phase, Phase::Ended) {
            return;
        }
        self.phase = Phase::Ended;
        self.sm.ack_requested_at = None;
        if reason.as_ref().is_some_and(SessionError::is_permanent) {
            self.sm.resume_id = None;
        }
        self.event(match reason {
            None => Event::Closed,
            Some(reason) => Event::Disconnected { reason },
        });
    }

    /// Deterministic bytes derived from the driver's entropy (SHA-256 in counter mode).
    fn random(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let mut h = Sha256::new();
            h.update(self.config.entropy);
            h.update(self.entropy_counter.to_le_bytes());
            self.entropy_counter += 1;
            out.extend_from_slice(&h.finalize());
        }
        out.truncate(n);
        out
    }
}

/// Drops acknowledged stanzas; returns the id of the last one dropped.
fn ack_queue(acked: &mut u32, queue: &mut VecDeque<Unacked>, h: u32) -> Option<SendId> {
    let n = (h.wrapping_sub(*acked) as usize).min(queue.len());
    let mut last = None;
    for _ in 0..n {
        last = queue.pop_front().map(|u| u.id);
    }
    *acked = acked.wrapping_add(n as u32);
    last
}

/// The first child in `ns` (other than `text`) and the `text` child, of an error element.
fn condition_and_text(el: &Element, ns: &str) -> (String, Option<String>) {
    let condition = el
        .children()
        .find(|c| c.ns() == ns && c.name() != "text")
        .map_or_else(|| "undefined-condition".to_owned(), |c| c.name().to_owned());
    let text = el.get_child("text", ns).map(Element::text);
    (condition, text)
}

/// True when a top-level element's name is `message`, `presence` or `iq` (prefixed or not):
/// what the server counts for XEP-0198, read from the bytes of an element that could not be
/// decoded.
fn is_stanza_element(bytes: &[u8]) -> bool {
    let end = bytes
        .iter()
        .skip(1)
        .position(|&c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'/' | b'>'))
        .map_or(bytes.len(), |i| i + 1);
    let qname = bytes.get(1..end).unwrap_or_default();
    let local = match memchr::memrchr(b':', qname) {
        Some(i) => &qname[i + 1..],
        None => qname,
    };
    matches!(local, b"message" | b"presence" | b"iq")
}
