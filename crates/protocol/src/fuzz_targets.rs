//! The bodies of the cargo-fuzz targets in `fuzz/`, here so that a stable `cargo test` can
//! replay the checked-in corpus through exactly the same code (`tests/fuzz_corpus.rs`).
//! Each function panics only when an invariant breaks.

use std::time::{Duration, Instant};

use crate::codec::{NsContext, decode_stanza};
use crate::group::{GroupServices, GroupTracker};
use crate::{Config, Event, Framing, Input, Limits, Output, Session, Tls};

/// Bytes → typed stanza → group events.
pub fn decode(data: &[u8]) {
    if let Ok(s) = decode_stanza(data, &NsContext::client()) {
        let mut t = GroupTracker::new(GroupServices::new(["conference.localhost"]));
        let _ = t.ingest(&s);
        // What decodes must encode and decode again to the same value.
        let plain = match &s {
            crate::codec::Stanza::Message(m) if m.payloads.is_empty() => Some(m),
            _ => None,
        };
        if let Some(m) = plain {
            let again = decode_stanza(&m.encode(), &NsContext::client())
                .expect("re-encoded message decodes");
            assert_eq!(again, s, "message round-trip");
        }
    }
}

const STREAM_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='f' from='localhost' version='1.0'>";

/// What a server sends to log a session in with PLAIN, bind and enable stream management.
fn login_prelude(framing: Framing) -> Vec<Vec<u8>> {
    let (header, features) = match framing {
        Framing::Stream => (STREAM_HEADER.to_owned(), "<stream:features>".to_owned()),
        _ => (
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' version='1.0'/>"
                .to_owned(),
            "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>".to_owned(),
        ),
    };
    let client_ns = if framing == Framing::Stream {
        ""
    } else {
        " xmlns='jabber:client'"
    };
    vec![
        header.clone().into_bytes(),
        format!("{features}<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>").into_bytes(),
        b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>".to_vec(),
        header.into_bytes(),
        format!("{features}<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/></stream:features>").into_bytes(),
        format!("<iq{client_ns} type='result' id='gc-bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/f</jid></bind></iq>").into_bytes(),
        b"<enabled xmlns='urn:xmpp:sm:3' id='sm' resume='true'/>".to_vec(),
    ]
}

// The fuzz harness plays the driver: it reads the clock once, as the start of a virtual one.
#[allow(clippy::disallowed_methods)]
fn session(framing: Framing) -> (Session, Instant) {
    let now = Instant::now();
    let mut c = Config::new(
        "alice@localhost".parse().expect("valid"),
        "pw",
        framing,
        [1; 32],
    );
    c.tls = Tls::InsecurePlaintext;
    c.allow_plain_without_tls = true;
    c.limits = Limits::with_max_stanza_size(64 * 1024);
    (Session::new(c, now), now)
}

/// Drains the session and checks the invariants: a fatal end is reported at most once,
/// nothing is reported after it, and the output queue stays bounded.
#[derive(Default)]
struct Checker {
    ended: bool,
}

impl Checker {
    fn drain(&mut self, s: &mut Session) {
        for _ in 0..100_000 {
            match s.poll_output() {
                Output::Timeout(_) => return,
                Output::Event(Event::Disconnected { .. } | Event::Closed) => {
                    assert!(!self.ended, "the end was reported twice");
                    self.ended = true;
                }
                Output::Event(_) | Output::Transmit(_) | Output::StartTls => {
                    // Only the final flush may follow the end (a stream error, a close).
                }
            }
        }
        panic!("poll_output never returned Timeout");
    }
}

/// A logged-in session fed `data` (after a real login) in chunks whose sizes come from the
/// data itself: framing must not depend on where reads split.
pub fn stream_chunks(data: &[u8]) {
    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    let (mut s, now) = session(Framing::Stream);
    let mut c = Checker::default();
    c.drain(&mut s);
    for piece in login_prelude(Framing::Stream) {
        s.handle_input(Input::Received { now, data: &piece });
        c.drain(&mut s);
    }
    assert!(s.is_connected(), "the prelude logs in");
    let mut size = usize::from(seed % 64) + 1;
    for chunk in rest.chunks(size) {
        s.handle_input(Input::Received { now, data: chunk });
        c.drain(&mut s);
        size = size % 7 + 1;
    }
}

/// WebSocket framing: the data is split into frames at each `0xFF` byte.
pub fn ws_frames(data: &[u8]) {
    let (mut s, now) = session(Framing::WebSocket);
    let mut c = Checker::default();
    c.drain(&mut s);
    for piece in login_prelude(Framing::WebSocket) {
        s.handle_input(Input::Received { now, data: &piece });
        c.drain(&mut s);
    }
    assert!(s.is_connected(), "the prelude logs in");
    for frame in data.split(|&b| b == 0xFF) {
        s.handle_input(Input::Received { now, data: frame });
        c.drain(&mut s);
    }
}

/// An arbitrary script of inputs, commands and time advances, read from the bytes: each op
/// is one byte (its low 3 bits) followed by its arguments.
pub fn session_script(data: &[u8]) {
    let framing = if data.first().is_some_and(|b| b & 0x80 != 0) {
        Framing::WebSocket
    } else {
        Framing::Stream
    };
    let (mut s, mut now) = session(framing);
    let mut c = Checker::default();
    c.drain(&mut s);
    let prelude = login_prelude(framing);
    let mut next_prelude = 0;
    let mut i = 1;
    while i < data.len() {
        let op = data[i] & 7;
        let arg = data.get(i + 1).copied().unwrap_or(0);
        i += 2;
        match op {
            // The next step of a well-behaved login.
            0 => {
                if let Some(p) = prelude.get(next_prelude) {
                    s.handle_input(Input::Received { now, data: p });
                    next_prelude += 1;
                }
            }
            // Raw bytes from the server.
            1 => {
                let start = i.min(data.len());
                let n = usize::from(arg).min(data.len() - start);
                s.handle_input(Input::Received {
                    now,
                    data: &data[start..start + n],
                });
                i = start + n;
            }
            // Time passes; sometimes past every deadline.
            2 => {
                now += Duration::from_secs(u64::from(arg));
                s.handle_input(Input::Timeout(now));
            }
            3 => {
                let m = format!(
                    "<message xmlns='jabber:client' to='bob@localhost' id='m{arg}'><body>{arg}</body></message>"
                );
                let _ = s.send_encoded(now, m.into_bytes());
            }
            4 => s.request_ack(now),
            5 => s.close(now),
            6 => s.handle_input(Input::TransportClosed(now)),
            _ => s.handle_input(Input::TlsEstablished(now)),
        }
        c.drain(&mut s);
        // Bounded memory: the replay queue only holds what was sent.
        assert!(s.unacked().len() <= data.len());
    }
    if let Some(r) = s.resumption() {
        assert!(r.unacked().len() <= data.len());
    }
}

/// Splits a recording (a sequence of top-level elements) into its elements, for building
/// seed corpora.
pub fn split_elements(data: &[u8]) -> Vec<Vec<u8>> {
    let mut sc = crate::xml::Scanner::new(false, Limits::default());
    sc.push(data);
    let mut out = Vec::new();
    while let Ok(Some(crate::xml::Token::Element(b))) = sc.next_token() {
        out.push(b.to_vec());
    }
    out
}
