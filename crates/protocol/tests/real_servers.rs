//! The sans-IO session against real Prosody and ejabberd servers started on loopback, driven
//! by the blocking `std::net` example: login with each SASL mechanism, a message to self,
//! and XEP-0198 resumption after the fault proxy cuts the connection.
//!
//! Under `CI=true` a missing server binary fails the test; elsewhere it is skipped loudly.

// Tests drive real sockets on the real clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "../examples/blocking_login.rs"]
mod blocking_login;

use std::error::Error;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use groupchat_protocol::codec::Stanza;
use groupchat_protocol::minidom::Element;
use groupchat_protocol::{Config, Event, Framing, Mechanism, Session, SessionError, Tls};
use groupchat_test_support::{Direction, FaultProxy, ServerKind, TestServer};

use blocking_login::{drive, entropy, self_message};

fn plaintext_config(jid: &str, password: &str, mechanism: Mechanism) -> Config {
    let mut c = Config::new(jid.parse().unwrap(), password, Framing::Stream, entropy());
    c.tls = Tls::InsecurePlaintext;
    c.allow_plain_without_tls = true;
    c.mechanisms = vec![mechanism];
    c
}

fn login_with_each_mechanism(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let alice = server.account("alice");
    for mech in Mechanism::ALL {
        let got = self_message(
            &server.c2s_addr().to_string(),
            plaintext_config(&alice.jid, &alice.password, mech),
        )
        .unwrap_or_else(|e| panic!("{kind} {mech}: {e}\n{}", server.log_tail(30)));
        assert!(
            got.starts_with("hello, alice@localhost/"),
            "{kind} {mech}: {got}"
        );
    }
    // A wrong password is a typed, permanent authentication error.
    let err = self_message(
        &server.c2s_addr().to_string(),
        plaintext_config(&alice.jid, "wrong", Mechanism::ScramSha256),
    )
    .unwrap_err();
    match err.downcast_ref::<SessionError>() {
        Some(e @ SessionError::Auth(f)) => {
            assert_eq!(f.condition, "not-authorized", "{kind}");
            assert!(e.is_permanent());
        }
        other => panic!("{kind}: expected an auth error, got {other:?} / {err}"),
    }
}

#[test]
fn blocking_example_logs_in_with_each_mechanism_on_prosody() {
    login_with_each_mechanism(ServerKind::Prosody);
}

#[test]
fn blocking_example_logs_in_with_each_mechanism_on_ejabberd() {
    login_with_each_mechanism(ServerKind::Ejabberd);
}

/// A logged-in blocking client.
struct Client {
    session: Session,
    tcp: TcpStream,
    /// Bodies of chat messages received, in order.
    bodies: Vec<String>,
}

impl Client {
    fn connect(addr: std::net::SocketAddr, config: Config) -> Result<(Self, bool), Box<dyn Error>> {
        let mut c = Self {
            session: Session::new(config, Instant::now()),
            tcp: TcpStream::connect(addr)?,
            bodies: Vec::new(),
        };
        let mut resumed = false;
        let mut resume_failed = false;
        let give_up = Instant::now() + Duration::from_secs(20);
        drive(&mut c.session, &mut c.tcp, give_up, |e| match e {
            Event::Connected { resumed: r, .. } => {
                resumed = *r;
                true
            }
            Event::ResumeFailed { .. } => {
                resume_failed = true;
                false
            }
            _ => false,
        })?;
        assert!(!resume_failed, "resumption was refused");
        Ok((c, resumed))
    }

    /// Drives for `d`, collecting message bodies; stops early once `until` holds.
    fn pump(
        &mut self,
        d: Duration,
        until: impl Fn(&[String]) -> bool,
    ) -> Result<(), Box<dyn Error>> {
        let bodies = &mut self.bodies;
        if until(bodies) {
            return Ok(());
        }
        let r = drive(&mut self.session, &mut self.tcp, Instant::now() + d, |e| {
            if let Event::Stanza(Stanza::Message(m)) = e
                && let Some(b) = &m.body
            {
                bodies.push(b.clone());
            }
            until(bodies)
        });
        match r {
            Err(e) if e.to_string() == "timed out" => Ok(()),
            r => r,
        }
    }

    /// Drives until the server has acknowledged everything sent so far.
    fn settle(&mut self) {
        let give_up = Instant::now() + Duration::from_secs(10);
        while self.session.unacked().len() > 0 {
            self.pump(Duration::from_millis(100), |_| false).unwrap();
            assert!(Instant::now() < give_up, "no ack from the server");
        }
    }

    fn send_chat(&mut self, to: &str, body: &str) {
        let msg = Element::builder("message", "jabber:client")
            .attr("to".try_into().unwrap(), to)
            .attr("type".try_into().unwrap(), "chat")
            .append(Element::builder("body", "jabber:client").append(body))
            .build();
        self.session.send(Instant::now(), &msg).unwrap();
    }

    fn presence(&mut self) {
        self.session
            .send(
                Instant::now(),
                &Element::builder("presence", "jabber:client").build(),
            )
            .unwrap();
    }

    fn full_jid(&self) -> String {
        self.session.jid().unwrap().to_string()
    }
}

fn count(bodies: &[String], body: &str) -> usize {
    bodies.iter().filter(|b| *b == body).count()
}

fn resume_after_cut(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice_acct, bob_acct) = (server.account("alice"), server.account("bob"));
    let proxy = FaultProxy::start(server.c2s_addr()).unwrap();
    let cfg = |a: &groupchat_test_support::Account| {
        plaintext_config(&a.jid, &a.password, Mechanism::ScramSha256)
    };

    let (mut alice, _) = Client::connect(proxy.addr(), cfg(&alice_acct)).unwrap();
    alice.presence();
    alice.settle(); // an ack proves stream management is enabled
    let (mut bob, _) = Client::connect(server.c2s_addr(), cfg(&bob_acct)).unwrap();
    bob.presence();
    bob.settle();
    let (alice_jid, bob_jid) = (alice.full_jid(), bob.full_jid());

    // Case 1: the stanza never reaches the server. It must be replayed on resumption.
    proxy.set_blackhole(Direction::ToServer, true);
    alice.send_chat(&bob_jid, "lost-on-the-way");
    alice.pump(Duration::from_millis(300), |_| false).unwrap();
    proxy.cut();
    let err = alice.pump(Duration::from_secs(5), |_| false).unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<SessionError>(),
            Some(SessionError::ConnectionLost)
        ),
        "{err}"
    );
    proxy.set_blackhole(Direction::ToServer, false);
    // While alice is away, bob writes to her: the server holds it for the resumed session.
    bob.send_chat(&alice_jid, "while-you-were-away");
    bob.settle();

    let mut c = cfg(&alice_acct);
    c.resume = alice.session.resumption();
    assert_eq!(c.resume.as_ref().map(|r| r.unacked().len()), Some(1));
    let earlier = std::mem::take(&mut alice.bodies);
    let (mut alice, resumed) = Client::connect(proxy.addr(), c).unwrap();
    assert!(resumed, "{kind}: session was not resumed");
    alice.bodies = earlier;
    alice.settle();
    alice
        .pump(Duration::from_secs(10), |b| {
            count(b, "while-you-were-away") == 1
        })
        .unwrap();
    bob.pump(Duration::from_secs(10), |b| {
        count(b, "lost-on-the-way") == 1
    })
    .unwrap();

    // Case 2: the server gets the stanza but its ack is lost. It must not be sent twice.
    proxy.set_blackhole(Direction::ToClient, true);
    alice.send_chat(&bob_jid, "ack-lost");
    bob.pump(Duration::from_secs(10), |b| count(b, "ack-lost") == 1)
        .unwrap();
    alice.pump(Duration::from_millis(300), |_| false).unwrap();
    proxy.cut();
    assert!(alice.pump(Duration::from_secs(5), |_| false).is_err());
    proxy.set_blackhole(Direction::ToClient, false);
    let mut c = cfg(&alice_acct);
    c.resume = alice.session.resumption();
    assert_eq!(
        c.resume.as_ref().map(|r| r.unacked().len()),
        Some(1),
        "the ack never arrived"
    );
    let earlier = std::mem::take(&mut alice.bodies);
    let (mut alice, resumed) = Client::connect(proxy.addr(), c).unwrap();
    assert!(resumed, "{kind}: session was not resumed");
    alice.bodies = earlier;
    alice.settle();
    assert_eq!(alice.session.unacked().len(), 0);

    // Exactly once, each: give duplicates time to show up.
    bob.pump(Duration::from_secs(2), |_| false).unwrap();
    alice.pump(Duration::from_secs(1), |_| false).unwrap();
    assert_eq!(
        count(&bob.bodies, "lost-on-the-way"),
        1,
        "{kind}: {:?}",
        bob.bodies
    );
    assert_eq!(
        count(&bob.bodies, "ack-lost"),
        1,
        "{kind}: {:?}",
        bob.bodies
    );
    assert_eq!(
        count(&alice.bodies, "while-you-were-away"),
        1,
        "{kind}: {:?}",
        alice.bodies
    );
    assert!(proxy.connection_count() >= 3);
}

#[test]
fn stream_management_resumes_after_a_cut_on_prosody() {
    resume_after_cut(ServerKind::Prosody);
}

#[test]
fn stream_management_resumes_after_a_cut_on_ejabberd() {
    resume_after_cut(ServerKind::Ejabberd);
}
