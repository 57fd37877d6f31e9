//! Sans-IO core of groupchat: XMPP stream negotiation and framing as a pure state machine.
//!
//! No sockets, no tokio, no clock, no randomness of its own: the driver feeds bytes, time
//! and entropy in and carries bytes out. The same [`Session`] runs under the tokio
//! transports, under a blocking `std::net` loop (`examples/blocking_login.rs`), inside a
//! fuzzer, and in deterministic tests.
//!
//! # The drive loop
//!
//! Mutate (an input or a command), then drain [`Session::poll_output`] until it returns
//! [`Output::Timeout`], then wait for bytes or that deadline, whichever comes first.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//! use std::time::Instant;
//! use groupchat_protocol::{Config, Event, Framing, Input, Output, Session, Tls};
//!
//! let mut tcp = TcpStream::connect("127.0.0.1:5222")?;
//! let mut config = Config::new("alice@localhost".parse()?, "secret", Framing::Stream, [7; 32]);
//! config.tls = Tls::InsecurePlaintext; // loopback only; real drivers do STARTTLS
//! config.allow_plain_without_tls = true;
//! let mut session = Session::new(config, Instant::now());
//! let mut buf = [0u8; 4096];
//! loop {
//!     let deadline = loop {
//!         match session.poll_output() {
//!             Output::Transmit(bytes) => tcp.write_all(&bytes)?,
//!             Output::Event(Event::Connected { jid, .. }) => println!("bound as {jid}"),
//!             Output::Event(Event::Disconnected { reason }) => return Err(reason.into()),
//!             Output::Event(_) => {}
//!             Output::StartTls => unreachable!("plaintext was configured"),
//!             Output::Timeout(deadline) => break deadline,
//!             _ => {}
//!         }
//!     };
//!     let now = Instant::now();
//!     tcp.set_read_timeout(deadline.map(|d| d.saturating_duration_since(now).max(std::time::Duration::from_millis(1))))?;
//!     match tcp.read(&mut buf) {
//!         Ok(0) => session.handle_input(Input::TransportClosed(Instant::now())),
//!         Ok(n) => session.handle_input(Input::Received { now: Instant::now(), data: &buf[..n] }),
//!         Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
//!             session.handle_input(Input::Timeout(Instant::now()))
//!         }
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Errors
//!
//! Fatal problems ([`SessionError`]) end the session and are reported once, as
//! [`Event::Disconnected`]. Commands called at the wrong time return a [`UsageError`]. A
//! received stanza that is well-formed but not understood is dropped and reported as
//! [`Event::StanzaDropped`]; it never ends the session.

pub mod codec;
mod error;
/// The fuzz targets' entry points (feature `fuzzing`, or `cfg(fuzzing)` under cargo-fuzz).
#[cfg(any(fuzzing, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz_targets;
pub mod group;
pub mod ns;
pub mod pagination;
mod sasl;
mod session;
mod xml;

pub use error::{
    BindFailure, DropReason, ProtocolViolation, SaslFailure, SessionError, UsageError, XmlError,
};
pub use jid;
pub use minidom;
pub use sasl::{Mechanism, Password};
pub use session::{
    Config, Event, Framing, Input, Output, Resumption, SendId, Session, Tls, Unacked,
};
pub use xml::Limits;
