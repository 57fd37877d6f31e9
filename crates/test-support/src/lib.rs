//! Test support for the group-chat SDK: real XMPP servers on loopback, a fault-injecting
//! TCP proxy, and an in-memory server for exact tests of the SDK's own logic.
//!
//! - [`TestServer`] starts a throw-away Prosody 0.12 or ejabberd 23.01 in its own temp
//!   directory, on free 127.0.0.1 ports, with a self-signed certificate and the accounts
//!   `alice`, `bob`, `carol`, `dave` and `erin` (password = name + `pass`). Several instances,
//!   of either kind, can run at the same time in one test process.
//! - [`EjabberdCluster`] starts two ejabberd nodes as one cluster on loopback (their own
//!   epmd and cookie), and stops (SIGTERM or SIGKILL) and restarts a node.
//! - [`FaultProxy`] sits between a client and a server to cut connections, add delay, split
//!   writes into small chunks, black-hole one direction or inject bytes after a marker.
//! - [`RawClient`] logs in with none of the project's checks and sends any bytes: a
//!   hostile member.
//! - [`memory_server`] gives a [`Connector`](groupchat_transport::Connector) whose links end
//!   in the test: it negotiates the stream itself and lets the test play the server stanza
//!   by stanza, on tokio's paused clock if it likes.
//!
//! When a server is not installed, [`TestServer::start`] returns `None` after printing a loud
//! `SKIPPED` message, except under `CI=true`, where it panics so that CI cannot silently skip:
//!
//! ```no_run
//! use groupchat_test_support::{ServerKind, TestServer};
//!
//! for kind in ServerKind::ALL {
//!     let Some(server) = TestServer::start(kind) else { continue };
//!     let alice = server.account("alice");
//!     println!("{kind}: log in as {} on {}", alice.jid, server.c2s_addr());
//! }
//! ```
//!
//! Environment variables: `CI=true` (missing servers fail instead of skip),
//! `GROUPCHAT_TEST_KEEP_DIRS=1` (keep the instance directories),
//! `GROUPCHAT_TEST_SERVER_DEBUG=1` (debug-level server logs).
//!
//! The server configuration templates live in `configs/` and are compiled in.

mod cluster;
mod memory;
mod proxy;
mod raw;
mod server;
pub mod transport;
mod util;

pub use cluster::{EjabberdCluster, Node, Stop};
pub use memory::{MemoryConnector, MemoryServer, Sent, ServerConn, memory_server};
pub use proxy::{Direction, FaultProxy};
pub use raw::{RawClient, base64};
pub use server::{Account, DEFAULT_UPLOAD_LIMIT, ServerKind, TestServer, UploadService};
