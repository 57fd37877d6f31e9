//! The sans-IO session over a plain blocking `std::net::TcpStream`: no async runtime.
//! Logs in (plaintext: loopback test servers only), sends a message to itself, receives it.
//!
//! `cargo run -p groupchat-protocol --example blocking_login -- 127.0.0.1:5222 alice@localhost alicepass`

// A driver owns the clock, the socket and the entropy: the core's sans-IO lints do not apply.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::error::Error;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use groupchat_protocol::codec::Stanza;
use groupchat_protocol::{Config, Event, Framing, Input, Output, Session, Tls, minidom::Element};

/// Drives `session` over `tcp` until `stop` accepts an event. Fails on disconnect or at `give_up`.
pub(crate) fn drive(
    session: &mut Session,
    tcp: &mut TcpStream,
    give_up: Instant,
    mut stop: impl FnMut(&Event) -> bool,
) -> Result<(), Box<dyn Error>> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let deadline = loop {
            match session.poll_output() {
                Output::Transmit(bytes) => tcp.write_all(&bytes)?,
                Output::Event(Event::Disconnected { reason }) => return Err(reason.into()),
                Output::Event(e) if stop(&e) || matches!(e, Event::Closed) => return Ok(()),
                Output::StartTls => return Err("this example speaks plaintext only".into()),
                Output::Timeout(deadline) => break deadline.unwrap_or(give_up).min(give_up),
                _ => {}
            }
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        tcp.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let input = match tcp.read(&mut buf) {
            Ok(0) => Input::TransportClosed(Instant::now()),
            Ok(n) => Input::Received {
                now: Instant::now(),
                data: &buf[..n],
            },
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() >= give_up {
                    return Err("timed out".into());
                }
                Input::Timeout(Instant::now())
            }
            Err(_) => Input::TransportClosed(Instant::now()),
        };
        session.handle_input(input);
    }
}

/// Logs in with `config` at `addr`, sends a message to our own full JID and returns the body
/// received back.
pub(crate) fn self_message(addr: &str, config: Config) -> Result<String, Box<dyn Error>> {
    let give_up = Instant::now() + Duration::from_secs(30);
    let mut tcp = TcpStream::connect(addr)?;
    let mut session = Session::new(config, Instant::now());
    drive(&mut session, &mut tcp, give_up, |e| {
        matches!(e, Event::Connected { .. })
    })?;
    let jid = session.jid().ok_or("closed before binding")?.clone();
    let body = format!("hello, {jid}");
    let msg = Element::builder("message", "jabber:client")
        .attr("to".try_into()?, jid.to_string())
        .attr("type".try_into()?, "chat")
        .append(Element::builder("body", "jabber:client").append(body.as_str()))
        .build();
    session.send(Instant::now(), &msg)?;
    let mut got = None;
    drive(&mut session, &mut tcp, give_up, |e| match e {
        Event::Stanza(Stanza::Message(m)) => {
            got.clone_from(&m.body);
            got.as_deref() == Some(body.as_str())
        }
        _ => false,
    })?;
    session.close(Instant::now());
    drive(&mut session, &mut tcp, give_up, |_| false)?;
    got.ok_or_else(|| "no message came back".into())
}

/// 32 bytes from std's per-process random hash keys; real drivers use the OS RNG (getrandom).
pub(crate) fn entropy() -> [u8; 32] {
    use std::hash::{BuildHasher, RandomState};
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&RandomState::new().hash_one(i).to_le_bytes());
    }
    out
}

#[allow(dead_code)] // the integration tests include this file for its functions only
fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, jid, password] = &args[..] else {
        return Err("usage: blocking_login HOST:PORT JID PASSWORD".into());
    };
    let mut config = Config::new(jid.parse()?, password.as_str(), Framing::Stream, entropy());
    config.tls = Tls::InsecurePlaintext; // explicit opt-in: loopback servers only
    config.allow_plain_without_tls = true;
    println!("received back: {}", self_message(addr, config)?);
    Ok(())
}
