//! groupchat-sdk: an async group-chat client over standard XMPP (Prosody, ejabberd, …).
//!
//! Connect with a [`ClientBuilder`], then call one async method per group operation of
//! the seed API; every call returns `Result<T, RequestError>`, whose errors carry a status
//! code (400 invalid argument, 403 refused or feature missing, 404 unknown group, 504 no
//! answer, …) and convert into the seed's `{statusCode, message, data}` shape with
//! [`Response`]. What happens in your groups arrives as [`Event`]s, on a
//! [`futures::Stream`] ([`Client::events`]) and on listener traits
//! ([`GroupProfileListener`], [`ConnectionListener`], [`MessageListener`]).
//!
//! ```no_run
//! use futures::StreamExt as _;
//! use groupchat_sdk::{Client, Event, GroupImage, Response};
//! use groupchat_sdk::transport_tcp::{Security, TcpConnector};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // TCP with STARTTLS to the JID's domain (DNS SRV), certificates checked.
//! let client = Client::builder("alice@example.org", "secret")
//!     .tcp(TcpConnector::builder("example.org").security(Security::StartTls).build()?)
//!     .connect()
//!     .await?;
//! let mut events = client.events();
//!
//! let image = GroupImage::from_file("team.png").await?;
//! let group = client
//!     .create_group("Team", &["bob@example.org", "carol@example.org"], Some(image))
//!     .await?;
//! client.send_text(&group.jid, "Welcome!").await?;
//!
//! // The seed's response shape, for an app that speaks JSON.
//! let list: Response<_> = client.groups().await.into();
//! println!("{}", serde_json::to_string(&list)?);
//!
//! while let Some(event) = events.next().await {
//!     if let Event::ParticipantRemoved { group, participant, by } = event {
//!         println!("{by} removed {participant} from {group}");
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The crate composes `groupchat-transport-tcp` or `groupchat-transport-ws` (re-exported as
//! [`transport_tcp`] and [`transport_ws`]) with the sans-IO `groupchat-protocol`; see
//! `docs/ARCHITECTURE.md` and `docs/sdk.md` for how each call maps to XMPP.

/// The README's library example, compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

mod catch_up;
mod client;
mod config;
mod core;
mod deletion;
mod devices;
mod download;
mod error;
mod events;
mod group;
mod group_handle;
mod groups;
mod history;
mod http;
mod media;
mod message_info;
mod room_watch;
mod to_jid;
mod typing;

pub use catch_up::{FIRST_CATCH_UP, FileStore, MemoryStore, PositionStore};
pub use client::{Client, Services};
pub use config::{ClientBuilder, InvitationPolicy, ROOM_CHECK};
pub use download::{DEFAULT_MAX_DOWNLOAD, DownloadOptions, DownloadProblem, sanitize_file_name};
pub use error::{ConnectError, RequestError, Response, status_of};
pub use events::{
    Connection, ConnectionListener, Event, EventStream, GroupProfileListener, JoinReason,
    MessageListener, MissedMessages,
};
pub use group::{Group, GroupImage, GroupProfile, MAX_IMAGE_BYTES, Participant, ParticipantRole};
pub use group_handle::GroupHandle;
pub use groups::SentMessage;
pub use history::{
    DEFAULT_HISTORY_LIMIT, Direction, History, HistoryMessage, HistoryRequest, MAX_HISTORY_LIMIT,
    MediaPage,
};
pub use media::{
    MAX_THUMBNAIL_BYTES, MediaDuration, MediaFile, MediaKind, MediaMetadata, MediaOptions,
    MediaProblem, Progress, ProgressFn, SentMedia,
};
pub use message_info::{MessageInfo, Receipt};
pub use to_jid::ToJid;
pub use typing::TypingState;

pub use groupchat_protocol::DropReason;
pub use groupchat_protocol::codec::xep::media::{Hash, Media, Thumbnail};
pub use groupchat_protocol::codec::xep::muc_user::Affiliation;
pub use groupchat_protocol::codec::{Bodies, LangText};
pub use groupchat_protocol::group::{GroupMessage, Occupant};
/// JIDs (`BareJid`, `FullJid`, `Jid`), as the SDK's types carry them.
pub use groupchat_protocol::jid;
pub use groupchat_transport::{
    CertificateProblem, ConnectionState, Connector, HttpError, Link, ReconnectPolicy, TlsFailure,
    TransportError,
};
/// TLS options (trusted roots, a CA file, a caller-built configuration), for either
/// transport and for HTTPS.
pub use groupchat_transport::{Roots, TlsOptions};
/// The TCP transport (connector builder, TLS options); feature `tcp` (default).
#[cfg(feature = "tcp")]
pub use groupchat_transport_tcp as transport_tcp;
/// The WebSocket transport; feature `ws` (default).
#[cfg(feature = "ws")]
pub use groupchat_transport_ws as transport_ws;
