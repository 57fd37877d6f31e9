//! Errors, in three tiers (see `docs/ARCHITECTURE.md`):
//!
//! - [`SessionError`]: fatal; reported exactly once, as [`Event::Disconnected`](crate::Event).
//! - [`UsageError`]: a command called at the wrong time; returned synchronously.
//! - [`DropReason`]: one received stanza could not be used; it is dropped and reported as
//!   [`Event::StanzaDropped`](crate::Event), and the session carries on.

use std::fmt;

use crate::codec::xep::stanza_error::StanzaError;

/// Why received bytes are not acceptable XMPP XML (RFC 6120 §11).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XmlError {
    /// The bytes are not well-formed XML.
    #[error("XML not well-formed: {0}")]
    NotWellFormed(&'static str),
    /// The XML uses a construct that XMPP forbids (comment, PI, DTD, entity declaration).
    #[error("restricted XML: {0} is not allowed in XMPP")]
    Restricted(&'static str),
    /// A stanza exceeds the configured size limit.
    #[error("stanza larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A stanza nests deeper than the configured limit.
    #[error("stanza nested deeper than the limit of {limit} levels")]
    TooDeep {
        /// The limit in levels.
        limit: usize,
    },
    /// The XML parser refused the element (attribute syntax, entity, namespace, UTF-8, ...).
    #[error("XML not well-formed: {0}")]
    Parse(String),
}

impl XmlError {
    /// The stream error condition (RFC 6120 §4.9.3) we send to the peer for this error.
    pub fn stream_condition(&self) -> &'static str {
        match self {
            Self::NotWellFormed(_) | Self::Parse(_) => "not-well-formed",
            Self::Restricted(_) => "restricted-xml",
            Self::TooLarge { .. } | Self::TooDeep { .. } => "policy-violation",
        }
    }
}

/// A SASL failure condition (RFC 6120 §6.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaslFailure {
    /// The condition element's name, e.g. `not-authorized`.
    pub condition: String,
    /// The server's human-readable text, if any.
    pub text: Option<String>,
}

impl fmt::Display for SaslFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.condition)?;
        if let Some(t) = &self.text {
            write!(f, " ({t})")?;
        }
        Ok(())
    }
}

/// How the server broke the protocol (RFC 6120, XEP-0198), in [`SessionError::Protocol`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolViolation {
    /// TLS was established although we never asked for it.
    #[error("TLS established without a request")]
    UnrequestedTls,
    /// A stream header where none may come.
    #[error("unexpected stream header")]
    UnexpectedHeader,
    /// The stream header is not in the streams namespace.
    #[error("stream header in the wrong namespace")]
    WrongStreamNamespace,
    /// The server does not announce XMPP 1.0.
    #[error("server does not speak XMPP 1.0")]
    NotXmpp1,
    /// The server closed the stream without being asked.
    #[error("server closed the stream")]
    ServerClosedStream,
    /// A WebSocket `<open/>` where none may come.
    #[error("unexpected <open/>")]
    UnexpectedOpen,
    /// A stanza before resource binding finished.
    #[error("a stanza arrived before the session was bound")]
    StanzaBeforeBind,
    /// Stream features where none may come.
    #[error("unexpected stream features")]
    UnexpectedFeatures,
    /// A SASL element out of turn.
    #[error("unexpected SASL <{0}/>")]
    UnexpectedSasl(String),
    /// A SASL payload that is not base64.
    #[error("SASL payload is not base64")]
    SaslNotBase64,
    /// A challenge during PLAIN, which has none.
    #[error("challenge received for PLAIN")]
    ChallengeForPlain,
    /// A stream-management element without its `h` count.
    #[error("<{0}/> without a valid h")]
    MissingH(&'static str),
    /// The server acknowledged more stanzas than we sent.
    #[error("server acknowledged {acked} stanzas, more than we sent")]
    AckedTooMany {
        /// The `h` it sent.
        acked: u32,
    },
}

/// A fatal session error: the stream is over. Reported once, as `Event::Disconnected`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The peer sent bytes that are not acceptable XMPP XML.
    #[error("malformed stream: {0}")]
    Xml(#[from] XmlError),
    /// The server sent a stream error (RFC 6120 §4.9).
    #[error("stream error from server: {condition}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    StreamError {
        /// The condition element's name, e.g. `conflict`.
        condition: String,
        /// The server's text, if any.
        text: Option<String>,
    },
    /// The server refused our credentials.
    #[error("authentication failed: {0}")]
    Auth(SaslFailure),
    /// The server proved it does not know our password (SCRAM server signature mismatch),
    /// or sent a SCRAM message we cannot accept.
    #[error("SCRAM exchange invalid: {0}")]
    Scram(&'static str),
    /// None of the SASL mechanisms we are allowed to use is offered.
    #[error("no usable SASL mechanism: server offers [{offered}]{}", if *plain_refused { "; PLAIN refused without TLS (allow it explicitly for loopback)" } else { "" })]
    NoMechanism {
        /// What the server offered, comma separated.
        offered: String,
        /// PLAIN was offered but refused because the stream is not encrypted.
        plain_refused: bool,
    },
    /// The stream is not encrypted, TLS is not offered, and plaintext was not allowed.
    #[error("the server does not offer TLS and plaintext was not allowed")]
    TlsUnavailable,
    /// The server refused STARTTLS.
    #[error("the server refused STARTTLS")]
    TlsRefused,
    /// The peer broke the protocol in a way we cannot recover from.
    #[error("protocol violation: {0}")]
    Protocol(ProtocolViolation),
    /// The account cannot log in as configured (a JID without a local part): permanent.
    #[error("invalid account: {0}")]
    InvalidAccount(&'static str),
    /// Resource binding (or the legacy session establishment) failed.
    #[error("resource binding failed: {0}")]
    Bind(Box<BindFailure>),
    /// Nothing arrived from the server within the deadline (negotiation or keep-alive).
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The transport closed without a stream close from the server.
    #[error("connection lost")]
    ConnectionLost,
    /// The server did not answer a stream-management ack request in time: the link is
    /// dead (or half-open). The stream is not closed, so the server keeps the session for
    /// resumption.
    #[error("no stream management ack from the server within {0:?}: the link is dead")]
    AckTimeout(std::time::Duration),
    /// Bytes arrived in plaintext where only TLS may follow (after `<proceed/>`, or during the
    /// handshake): a STARTTLS command-injection or downgrade attempt by someone on the path.
    #[error(
        "plaintext data after the server's <proceed/>: someone on the path is tampering with the connection"
    )]
    TlsDowngrade,
}

impl SessionError {
    /// True when reconnecting with the same configuration cannot help (bad credentials,
    /// missing TLS, no common mechanism, a TLS downgrade attempt): a driver must not retry
    /// these in a loop.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Auth(_)
                | Self::NoMechanism { .. }
                | Self::TlsUnavailable
                | Self::TlsRefused
                | Self::TlsDowngrade
                | Self::InvalidAccount(_)
                | Self::Scram(_)
        )
    }
}

/// Why resource binding (RFC 6120 §7) or the legacy session establishment failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindFailure {
    /// The server's features offer no resource binding.
    #[error("the server does not offer resource binding")]
    NotOffered,
    /// The server refused to bind (its stanza error, when it sent one).
    #[error("the server refused: {}", describe(.0.as_ref()))]
    Refused(Option<StanzaError>),
    /// The bind result holds no valid full JID.
    #[error("the bind result holds no valid full JID")]
    NoJid,
    /// The server bound another account's JID.
    #[error("the server bound a foreign JID {0}")]
    ForeignJid(jid::FullJid),
    /// The server refused the legacy session establishment (RFC 3921 §3).
    #[error("session establishment refused: {}", describe(.0.as_ref()))]
    SessionRefused(Option<StanzaError>),
}

fn describe(e: Option<&StanzaError>) -> String {
    match e {
        Some(e) => match &e.text {
            Some(t) => format!("{} ({t})", e.condition),
            None => e.condition.clone(),
        },
        None => "no error condition".to_owned(),
    }
}

/// A command called when the session cannot take it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// The session is not bound yet (or is resuming): stanzas cannot be sent.
    #[error("not connected: the session is still negotiating")]
    NotConnected,
    /// The session has ended.
    #[error("the session has ended")]
    Ended,
    /// The element is not a stanza (`message`, `presence` or `iq` in `jabber:client`).
    #[error("not a stanza: <{0}/>")]
    NotAStanza(String),
    /// The stanza could not be serialized.
    #[error("the stanza could not be serialized: {0}")]
    Serialize(String),
}

/// Why a received stanza was dropped (never fatal).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DropReason {
    /// A top-level element we do not understand.
    #[error("unknown top-level element <{name} xmlns='{ns}'>")]
    Unknown {
        /// The element's local name.
        name: String,
        /// The element's namespace.
        ns: String,
    },
    /// A well-formed stanza with invalid content (a bad JID, a missing required attribute).
    #[error("invalid stanza: {0}")]
    Invalid(crate::codec::DecodeError),
    /// A stream-management element that makes no sense now.
    #[error("unexpected stream-management element: {0}")]
    UnexpectedSm(String),
}
