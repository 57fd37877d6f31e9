//! The driver's own logic against a scripted in-memory server, on tokio's paused clock:
//! backoff growth and its reset rule, permanent errors, and what a dead link is sent.
//! Real-server tests (transport-tcp, transport-ws) prove the features; these prove the exact
//! timing, which a real server cannot show in a few milliseconds.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use groupchat_protocol::{Framing, SessionError, Tls};
use groupchat_transport::{
    Client, ClientConfig, ConnectionState, Connector, Link, ReconnectPolicy, TransportError,
    TransportEvent,
};
use tokio::time::Instant;

/// What one connection of the scripted server does.
#[derive(Clone, Copy, Debug, Default)]
struct Plan {
    /// The link breaks this long after the login (`None`: never).
    die_after: Option<Duration>,
    /// Offer STARTTLS, then append plaintext to the `<proceed/>`.
    proceed_then_plaintext: bool,
    /// Once stream management is enabled nothing more reaches the client (a half-open
    /// link).
    silent_after_login: bool,
    /// Answer a `<resume/>` with `<resumed/>` (else `<failed/>`).
    resume_ok: bool,
}

/// What the scripted server saw on one connection.
#[derive(Debug, Default)]
struct Seen {
    /// Every byte the client sent.
    sent: Vec<u8>,
    /// The driver closed the link.
    closed: bool,
}

impl Seen {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.sent).into_owned()
    }
}

/// A connector whose n-th connection follows `plans[n]` (the last plan repeats).
struct Scripted {
    plans: Vec<Plan>,
    connects: Mutex<Vec<(Instant, Arc<Mutex<Seen>>)>>,
}

impl Scripted {
    fn new(plans: Vec<Plan>) -> Arc<Self> {
        Arc::new(Self {
            plans,
            connects: Mutex::new(Vec::new()),
        })
    }

    fn connection_times(&self) -> Vec<Instant> {
        self.connects.lock().unwrap().iter().map(|c| c.0).collect()
    }

    fn seen(&self, n: usize) -> Arc<Mutex<Seen>> {
        self.connects.lock().unwrap()[n].1.clone()
    }
}

#[async_trait]
impl Connector for Scripted {
    fn framing(&self) -> Framing {
        Framing::Stream
    }

    fn tls(&self) -> Tls {
        if self.plans.iter().any(|p| p.proceed_then_plaintext) {
            Tls::StartTls
        } else {
            Tls::InsecurePlaintext
        }
    }

    async fn connect(&self) -> Result<Box<dyn Link>, TransportError> {
        let mut connects = self.connects.lock().unwrap();
        let plan = self.plans[connects.len().min(self.plans.len() - 1)];
        let seen = Arc::new(Mutex::new(Seen::default()));
        connects.push((Instant::now(), seen.clone()));
        Ok(Box::new(ScriptedLink {
            plan,
            seen,
            out: VecDeque::new(),
            logged_in_at: None,
            authenticated: false,
            silent: false,
        }))
    }
}

struct ScriptedLink {
    plan: Plan,
    seen: Arc<Mutex<Seen>>,
    out: VecDeque<Bytes>,
    logged_in_at: Option<Instant>,
    authenticated: bool,
    silent: bool,
}

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>";

impl ScriptedLink {
    fn reply(&mut self, s: &str) {
        if self.silent {
            return;
        }
        self.out.push_back(Bytes::copy_from_slice(s.as_bytes()));
    }

    fn logged_in(&mut self) {
        self.logged_in_at = Some(Instant::now());
    }

    /// The server's answer to what the client sent (each of the session's writes is one
    /// element, or the stream header).
    fn react(&mut self, data: &str) {
        if data.contains("<stream:stream") {
            let features = if self.authenticated {
                "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/></stream:features>"
            } else if self.plan.proceed_then_plaintext {
                "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>"
            } else {
                "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>"
            };
            self.reply(&format!("{HEADER}{features}"));
        } else if data.contains("<starttls") {
            // A man in the middle appends its own plaintext to the server's proceed.
            self.reply("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>");
        } else if data.contains("<auth ") {
            self.authenticated = true;
            self.reply("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
        } else if data.contains("<bind ") {
            let id = data
                .split("id='")
                .nth(1)
                .and_then(|r| r.split('\'').next())
                .unwrap_or_default()
                .to_owned();
            self.reply(&format!("<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/r</jid></bind></iq>"));
            self.logged_in();
        } else if data.contains("<enable ") {
            self.reply("<enabled xmlns='urn:xmpp:sm:3' id='sm1' resume='true'/>");
            self.silent = self.plan.silent_after_login;
        } else if data.contains("<resume ") {
            if self.plan.resume_ok {
                self.reply("<resumed xmlns='urn:xmpp:sm:3' previd='sm1' h='0'/>");
                self.logged_in();
            } else {
                self.reply("<failed xmlns='urn:xmpp:sm:3'/>");
            }
        } else if data.contains("<r ") {
            self.reply("<a xmlns='urn:xmpp:sm:3' h='0'/>");
        }
    }
}

#[async_trait]
impl Link for ScriptedLink {
    async fn send(&mut self, data: Bytes) -> Result<(), TransportError> {
        self.seen.lock().unwrap().sent.extend_from_slice(&data);
        self.react(&String::from_utf8_lossy(&data));
        Ok(())
    }

    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        if let Some(b) = self.out.pop_front() {
            return Ok(Some(b));
        }
        match (self.plan.die_after, self.logged_in_at) {
            (Some(d), Some(t)) => {
                tokio::time::sleep_until(t + d).await;
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "reset by a middlebox",
                )
                .into())
            }
            _ => std::future::pending().await,
        }
    }

    async fn start_tls(&mut self) -> Result<(), TransportError> {
        panic!("the session must not start TLS after a tampered <proceed/>")
    }

    async fn close(&mut self) {
        self.seen.lock().unwrap().closed = true;
    }
}

fn config(reconnect: ReconnectPolicy) -> ClientConfig {
    let mut c = ClientConfig::new("alice@localhost".parse().unwrap(), "secret");
    c.allow_plain_without_tls = true;
    c.reconnect = reconnect;
    c
}

/// The default policy without jitter, so that every delay is exact.
fn exact_policy() -> ReconnectPolicy {
    let mut p = ReconnectPolicy::default();
    p.jitter = 0.0;
    p
}

/// Every state until `until` (virtual time).
async fn states_until(client: &mut Client, until: Instant) -> Vec<ConnectionState> {
    let mut states = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout_at(until, client.next_event()).await {
        if let TransportEvent::State(s) = ev {
            let ended = matches!(s, ConnectionState::Ended { .. });
            states.push(s);
            if ended {
                break;
            }
        }
    }
    states
}

fn reconnect_delays(states: &[ConnectionState]) -> Vec<Duration> {
    states
        .iter()
        .filter_map(|s| match s {
            ConnectionState::Reconnecting { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn sessions_that_die_right_after_login_keep_the_backoff_growing() {
    let server = Scripted::new(vec![Plan {
        die_after: Some(Duration::from_secs(1)),
        ..Plan::default()
    }]);
    let start = Instant::now();
    let mut client = Client::start(config(exact_policy()), server.clone());
    let states = states_until(&mut client, start + Duration::from_secs(30)).await;

    // 0.5 s, 1 s, 2 s, 4 s, 8 s, 16 s: six logins in 30 s, not one per second and a half.
    let secs = |v: &[f64]| {
        v.iter()
            .map(|s| Duration::from_secs_f64(*s))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        reconnect_delays(&states),
        secs(&[0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
    );
    let at: Vec<f64> = server
        .connection_times()
        .iter()
        .map(|t| (*t - start).as_secs_f64())
        .collect();
    assert_eq!(at, vec![0.0, 1.5, 3.5, 6.5, 11.5, 20.5]);
    // The application is told each time why: the link's own error.
    let reasons: Vec<&TransportError> = states
        .iter()
        .filter_map(|s| match s {
            ConnectionState::Disconnected { reason } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 6);
    assert!(
        reasons
            .iter()
            .all(|r| r.to_string().contains("reset by a middlebox")),
        "{reasons:?}"
    );
    let attempts: Vec<u32> = states
        .iter()
        .filter_map(|s| match s {
            ConnectionState::Connecting { attempt } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, vec![1, 2, 3, 4, 5, 6]);
}

#[tokio::test(start_paused = true)]
async fn a_session_that_stayed_up_a_minute_resets_the_backoff() {
    let short = Plan {
        die_after: Some(Duration::from_secs(1)),
        ..Plan::default()
    };
    let long = Plan {
        die_after: Some(Duration::from_secs(60)),
        ..Plan::default()
    };
    let almost = Plan {
        die_after: Some(Duration::from_secs(59)),
        ..Plan::default()
    };
    let server = Scripted::new(vec![short, short, long, short, almost, short]);
    let start = Instant::now();
    let mut client = Client::start(config(exact_policy()), server.clone());
    let states = states_until(&mut client, start + Duration::from_secs(200)).await;
    let delays = reconnect_delays(&states);
    let secs = |v: &[f64]| {
        v.iter()
            .map(|s| Duration::from_secs_f64(*s))
            .collect::<Vec<_>>()
    };
    // Two short sessions grow it; the minute-long third resets it; 59 s is not enough.
    assert_eq!(delays[..5], secs(&[0.5, 1.0, 0.5, 1.0, 2.0])[..]);
}

#[tokio::test(start_paused = true)]
async fn plaintext_after_proceed_ends_the_client_at_once() {
    let server = Scripted::new(vec![Plan {
        proceed_then_plaintext: true,
        ..Plan::default()
    }]);
    let start = Instant::now();
    let mut client = Client::start(config(exact_policy()), server.clone());
    let states = states_until(&mut client, start + Duration::from_secs(60)).await;
    assert!(
        matches!(
            states.last(),
            Some(ConnectionState::Ended {
                reason: Some(TransportError::Session(SessionError::TlsDowngrade))
            })
        ),
        "{states:?}"
    );
    assert_eq!(server.connection_times().len(), 1, "no retry");
}

#[tokio::test(start_paused = true)]
async fn a_dead_link_is_dropped_without_a_stream_close_and_the_session_resumes() {
    let server = Scripted::new(vec![
        Plan {
            silent_after_login: true,
            ..Plan::default()
        },
        Plan {
            resume_ok: true,
            ..Plan::default()
        },
    ]);
    let start = Instant::now();
    let mut client = Client::start(config(exact_policy()), server.clone());
    let states = states_until(&mut client, start + Duration::from_secs(200)).await;
    // Keep-alive <r/> after 60 s, no <a/> within 30 s: dead.
    let dead = states
        .iter()
        .find_map(|s| match s {
            ConnectionState::Disconnected { reason } => Some(reason.clone()),
            _ => None,
        })
        .expect("the dead link is noticed");
    assert!(
        matches!(dead, TransportError::Session(SessionError::AckTimeout(_))),
        "{dead:?}"
    );
    let first = server.seen(0);
    let first = first.lock().unwrap();
    assert!(first.text().contains("<r xmlns='urn:xmpp:sm:3'/>"));
    assert!(
        !first.text().contains("</stream:stream>"),
        "a close over a half-open link would end the server's session: {}",
        first.text()
    );
    assert!(first.closed, "the link itself is dropped");
    // The next connection resumes the same session.
    assert!(server.seen(1).lock().unwrap().text().contains("<resume "));
    assert!(
        states
            .iter()
            .any(|s| matches!(s, ConnectionState::Connected { resumed: true, .. }))
    );
}
