//! A deterministic harness: a client `Session` against a scripted server, on a virtual clock.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use groupchat_protocol::minidom::Element;
use groupchat_protocol::{Config, Event, Framing, Input, Mechanism, Output, Session, Tls};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

pub const STREAM_NS: &str = "http://etherx.jabber.org/streams";

/// The client under test plus everything it produced.
pub struct Pair {
    pub session: Session,
    pub framing: Framing,
    pub now: Instant,
    /// Every transmitted unit (one frame each with WebSocket framing).
    pub sent: Vec<String>,
    pub events: Vec<Event>,
    pub start_tls_requests: usize,
    pub deadline: Option<Instant>,
}

pub fn config(framing: Framing) -> Config {
    let mut c = Config::new(
        "alice@localhost".parse().unwrap(),
        "pencil",
        framing,
        [42; 32],
    );
    c.tls = Tls::InsecurePlaintext;
    c
}

impl Pair {
    pub fn new(config: Config) -> Self {
        let now = Instant::now();
        let framing = config.framing;
        let mut p = Self {
            session: Session::new(config, now),
            framing,
            now,
            sent: Vec::new(),
            events: Vec::new(),
            start_tls_requests: 0,
            deadline: None,
        };
        p.drain();
        p
    }

    pub fn drain(&mut self) {
        loop {
            match self.session.poll_output() {
                Output::Transmit(b) => self.sent.push(String::from_utf8(b.to_vec()).unwrap()),
                Output::Event(e) => self.events.push(e),
                Output::StartTls => self.start_tls_requests += 1,
                Output::Timeout(d) => {
                    self.deadline = d;
                    return;
                }
                other => panic!("unexpected output {other:?}"),
            }
        }
    }

    /// Feeds one server transmission (one frame with WebSocket framing).
    pub fn feed(&mut self, data: &str) {
        self.session.handle_input(Input::Received {
            now: self.now,
            data: data.as_bytes(),
        });
        self.drain();
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.session.handle_input(Input::Timeout(self.now));
        self.drain();
    }

    pub fn tls_established(&mut self) {
        self.session.handle_input(Input::TlsEstablished(self.now));
        self.drain();
    }

    pub fn transport_closed(&mut self) {
        self.session.handle_input(Input::TransportClosed(self.now));
        self.drain();
    }

    pub fn take_sent(&mut self) -> Vec<String> {
        std::mem::take(&mut self.sent)
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The last transmitted unit.
    pub fn last_sent(&self) -> &str {
        self.sent.last().map_or("", String::as_str)
    }

    pub fn header(&self) -> String {
        match self.framing {
            Framing::Stream => format!(
                "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='{STREAM_NS}' id='s1' from='localhost' version='1.0' xml:lang='en'>"
            ),
            _ => "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='s1' from='localhost' version='1.0' xml:lang='en'/>".to_owned(),
        }
    }

    /// `<stream:features>` with the given children, declared right for the framing.
    pub fn features(&self, children: &str) -> String {
        match self.framing {
            Framing::Stream => format!("<stream:features>{children}</stream:features>"),
            _ => {
                format!("<stream:features xmlns:stream='{STREAM_NS}'>{children}</stream:features>")
            }
        }
    }

    /// Sends the header and features as the framing requires (one or two frames).
    pub fn open_with(&mut self, children: &str) {
        let (h, f) = (self.header(), self.features(children));
        match self.framing {
            Framing::Stream => self.feed(&format!("{h}{f}")),
            _ => {
                self.feed(&h);
                self.feed(&f);
            }
        }
    }

    /// A stanza in jabber:client, declared right for the framing.
    pub fn client(&self, stanza: &str) -> String {
        match self.framing {
            Framing::Stream => stanza.to_owned(),
            _ => {
                // Insert the namespace after the element name.
                let end = stanza[1..].find([' ', '>', '/']).unwrap() + 1;
                format!("{} xmlns='jabber:client'{}", &stanza[..end], &stanza[end..])
            }
        }
    }

    pub fn feed_client(&mut self, stanza: &str) {
        let s = self.client(stanza);
        self.feed(&s);
    }

    pub fn connected(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::Connected { .. }))
    }

    pub fn disconnects(&self) -> Vec<&groupchat_protocol::SessionError> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Disconnected { reason } => Some(reason),
                _ => None,
            })
            .collect()
    }
}

pub const MECHS: &str = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-1</mechanism><mechanism>SCRAM-SHA-256</mechanism></mechanisms>";
pub const BIND_SM: &str =
    "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/>";

pub fn mechs(names: &[&str]) -> String {
    let m: String = names
        .iter()
        .map(|n| format!("<mechanism>{n}</mechanism>"))
        .collect();
    format!("<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{m}</mechanisms>")
}

/// Text content between the first `>` and the last `</`.
pub fn inner(s: &str) -> &str {
    let a = s.find('>').unwrap() + 1;
    let b = s.rfind("</").unwrap();
    &s[a..b]
}

/// Server side of SCRAM (RFC 5802), to prove the client's proof and be proved in turn.
pub struct ScramServer {
    pub sha256: bool,
    pub password: String,
    pub salt: Vec<u8>,
    pub iterations: u32,
    client_first_bare: String,
    server_first: String,
}

impl ScramServer {
    pub fn new(mech: Mechanism, password: &str) -> Self {
        Self {
            sha256: mech == Mechanism::ScramSha256,
            password: password.into(),
            salt: b"salty-salt".to_vec(),
            iterations: 4096,
            client_first_bare: String::new(),
            server_first: String::new(),
        }
    }

    fn hmac(&self, k: &[u8], d: &[u8]) -> Vec<u8> {
        if self.sha256 {
            let mut m = Hmac::<Sha256>::new_from_slice(k).unwrap();
            m.update(d);
            m.finalize().into_bytes().to_vec()
        } else {
            let mut m = Hmac::<Sha1>::new_from_slice(k).unwrap();
            m.update(d);
            m.finalize().into_bytes().to_vec()
        }
    }

    fn h(&self, d: &[u8]) -> Vec<u8> {
        if self.sha256 {
            Sha256::digest(d).to_vec()
        } else {
            Sha1::digest(d).to_vec()
        }
    }

    fn salted(&self) -> Vec<u8> {
        let p = self.password.as_bytes();
        if self.sha256 {
            pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(p, &self.salt, self.iterations).to_vec()
        } else {
            pbkdf2::pbkdf2_hmac_array::<Sha1, 20>(p, &self.salt, self.iterations).to_vec()
        }
    }

    /// Takes the client-first message (decoded), returns server-first.
    pub fn first(&mut self, client_first: &str) -> String {
        let bare = client_first.strip_prefix("n,,").expect("gs2 header n,,");
        self.client_first_bare = bare.to_owned();
        let cnonce = bare.split(',').find_map(|p| p.strip_prefix("r=")).unwrap();
        self.server_first = format!(
            "r={cnonce}SERVERNONCE,s={},i={}",
            B64.encode(&self.salt),
            self.iterations
        );
        self.server_first.clone()
    }

    /// Verifies the client-final message; returns the server-final or None if the proof fails.
    pub fn last(&self, client_final: &str) -> Option<String> {
        let (without_proof, proof) = client_final.rsplit_once(",p=").unwrap();
        let proof = B64.decode(proof).unwrap();
        let auth = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let salted = self.salted();
        let stored = self.h(&self.hmac(&salted, b"Client Key"));
        let sig = self.hmac(&stored, auth.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        if self.h(&client_key) != stored {
            return None;
        }
        let server_sig = self.hmac(&self.hmac(&salted, b"Server Key"), auth.as_bytes());
        Some(format!("v={}", B64.encode(server_sig)))
    }
}

pub fn sasl_payload(sent: &str) -> String {
    let t = inner(sent);
    String::from_utf8(B64.decode(t).unwrap()).unwrap()
}

pub fn b64(s: &str) -> String {
    B64.encode(s)
}

/// A session logged in with PLAIN (allowed for the test), bound as alice@localhost/r1,
/// with stream management enabled and resumable when `sm` is set.
pub fn logged_in_with(mut c: Config, sm: bool) -> Pair {
    c.allow_plain_without_tls = true;
    c.mechanisms = vec![Mechanism::Plain];
    let mut p = Pair::new(c);
    p.open_with(&mechs(&["PLAIN"]));
    p.feed("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    p.open_with(if sm {
        BIND_SM
    } else {
        "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
    });
    p.feed_client("<iq type='result' id='gc-bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/r1</jid></bind></iq>");
    if sm {
        assert_eq!(
            p.last_sent(),
            "<enable xmlns='urn:xmpp:sm:3' resume='true'/>"
        );
        p.feed("<enabled xmlns='urn:xmpp:sm:3' id='sm-1' resume='true' max='300'/>");
    }
    assert!(p.connected());
    p.take_events();
    p.take_sent();
    p
}

pub fn logged_in(framing: Framing, sm: bool) -> Pair {
    logged_in_with(config(framing), sm)
}

pub fn message(n: usize) -> Element {
    format!("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m{n}'><body>{n}</body></message>")
        .parse()
        .unwrap()
}

/// A new session that logs in with PLAIN and, the features offering stream management,
/// sends `<resume/>` for `resume`: the point where the server answers resumed or failed.
pub fn resuming(framing: Framing, resume: Option<groupchat_protocol::Resumption>) -> Pair {
    let mut c = config(framing);
    c.allow_plain_without_tls = true;
    c.resume = resume;
    let mut q = Pair::new(c);
    q.open_with(&mechs(&["PLAIN"]));
    q.feed("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    q.take_sent();
    q.open_with(BIND_SM);
    q
}
