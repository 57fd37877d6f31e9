//! STARTTLS, SASL (each mechanism), bind, legacy session, clean close.

use groupchat_protocol::codec::{MessageType, Stanza};
use groupchat_protocol::minidom::Element;
use groupchat_protocol::{BindFailure, Event, Framing, Mechanism, SessionError, Tls};

use crate::harness::*;

const FRAMINGS: [Framing; 2] = [Framing::Stream, Framing::WebSocket];

/// Runs a full SCRAM login and returns the pair, bound.
fn scram_login(framing: Framing, mech: Mechanism, offered: &[&str]) -> Pair {
    let mut p = Pair::new(config(framing));
    p.open_with(&mechs(offered));
    let auth = p.last_sent().to_owned();
    assert!(
        auth.contains(&format!("mechanism='{}'", mech.name())),
        "{auth}"
    );
    let mut server = ScramServer::new(mech, "pencil");
    let first = server.first(&sasl_payload(&auth));
    p.feed(&format!(
        "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
        b64(&first)
    ));
    let fin = sasl_payload(p.last_sent());
    let verifier = server.last(&fin).expect("client proof verifies");
    p.feed(&format!(
        "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</success>",
        b64(&verifier)
    ));
    assert!(
        p.last_sent().contains("version='1.0'"),
        "stream restarted: {}",
        p.last_sent()
    );
    p.open_with(BIND_SM);
    assert!(p.last_sent().contains("urn:ietf:params:xml:ns:xmpp-bind"));
    p.feed_client("<iq type='result' id='gc-bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/r1</jid></bind></iq>");
    p
}

#[test]
fn scram_sha256_is_preferred_and_logs_in() {
    for f in FRAMINGS {
        let p = scram_login(
            f,
            Mechanism::ScramSha256,
            &["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"],
        );
        assert!(
            matches!(&p.events[0], Event::Connected { jid, resumed: false, .. } if jid.to_string() == "alice@localhost/r1")
        );
        assert_eq!(p.session.jid().unwrap().to_string(), "alice@localhost/r1");
        assert!(p.session.is_connected());
    }
}

#[test]
fn scram_sha1_when_256_is_not_offered() {
    for f in FRAMINGS {
        let p = scram_login(f, Mechanism::ScramSha1, &["SCRAM-SHA-1", "PLAIN"]);
        assert!(p.connected());
    }
}

#[test]
fn scram_with_a_forged_server_signature_fails() {
    for f in FRAMINGS {
        let mut p = Pair::new(config(f));
        p.open_with(&mechs(&["SCRAM-SHA-1"]));
        let mut server = ScramServer::new(Mechanism::ScramSha1, "pencil");
        let first = server.first(&sasl_payload(p.last_sent()));
        p.feed(&format!(
            "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
            b64(&first)
        ));
        // A server that does not know the password cannot produce the verifier.
        p.feed(&format!(
            "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</success>",
            b64("v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        ));
        assert!(matches!(p.disconnects()[..], [SessionError::Scram(_)]));
    }
}

#[test]
fn plain_login_when_allowed() {
    for f in FRAMINGS {
        let mut c = config(f);
        c.allow_plain_without_tls = true;
        c.mechanisms = vec![Mechanism::Plain];
        let mut p = Pair::new(c);
        p.open_with(&mechs(&["PLAIN", "SCRAM-SHA-1"]));
        assert!(p.last_sent().contains("mechanism='PLAIN'"));
        assert_eq!(sasl_payload(p.last_sent()), "\0alice\0pencil");
        p.feed("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
        p.open_with(BIND_SM);
        p.feed_client("<iq type='result' id='gc-bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/x</jid></bind></iq>");
        assert!(p.connected());
    }
}

#[test]
fn plain_is_refused_without_tls_unless_allowed() {
    for f in FRAMINGS {
        let mut p = Pair::new(config(f));
        p.open_with(&mechs(&["PLAIN"]));
        let d = p.disconnects();
        assert!(
            matches!(
                d[..],
                [SessionError::NoMechanism {
                    plain_refused: true,
                    ..
                }]
            ),
            "{d:?}"
        );
        assert!(d[0].is_permanent());
        assert!(!p.sent.iter().any(|s| s.contains("mechanism='PLAIN'")));
    }
}

#[test]
fn plain_is_used_under_tls() {
    let mut c = config(Framing::Stream);
    c.tls = Tls::Encrypted;
    let mut p = Pair::new(c);
    p.open_with(&mechs(&["PLAIN"]));
    assert!(p.last_sent().contains("mechanism='PLAIN'"));
}

#[test]
fn auth_failure_is_typed_and_permanent() {
    for f in FRAMINGS {
        let mut p = Pair::new(config(f));
        p.open_with(MECHS);
        p.feed("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text xml:lang='en'>Invalid username or password</text></failure>");
        let d = p.disconnects();
        match d[..] {
            [SessionError::Auth(f)] => {
                assert_eq!(f.condition, "not-authorized");
                assert_eq!(f.text.as_deref(), Some("Invalid username or password"));
            }
            _ => panic!("{d:?}"),
        }
        assert!(d[0].is_permanent());
        assert!(p.session.is_ended());
    }
}

#[test]
fn starttls_is_signalled_then_the_stream_restarts() {
    let mut c = config(Framing::Stream);
    c.tls = Tls::StartTls;
    let mut p = Pair::new(c);
    p.open_with(&format!(
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>{MECHS}"
    ));
    assert_eq!(
        p.last_sent(),
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    );
    p.feed("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert_eq!(p.start_tls_requests, 1);
    let before = p.sent.len();
    p.tls_established();
    assert_eq!(p.sent.len(), before + 1);
    assert!(
        p.last_sent()
            .starts_with("<?xml version='1.0'?><stream:stream")
    );
    // After TLS, PLAIN is acceptable and SCRAM-SHA-256 still preferred.
    p.open_with(MECHS);
    assert!(p.last_sent().contains("mechanism='SCRAM-SHA-256'"));
}

#[test]
fn tls_required_but_not_offered_fails() {
    let mut c = config(Framing::Stream);
    c.tls = Tls::StartTls;
    let mut p = Pair::new(c);
    p.open_with(MECHS);
    assert!(matches!(
        p.disconnects()[..],
        [SessionError::TlsUnavailable]
    ));
    assert!(
        !p.sent.iter().any(|s| s.contains("<auth")),
        "no credentials on a plaintext stream"
    );
}

#[test]
fn starttls_failure_is_fatal() {
    let mut c = config(Framing::Stream);
    c.tls = Tls::StartTls;
    let mut p = Pair::new(c);
    p.open_with("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    p.feed("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert!(matches!(p.disconnects()[..], [SessionError::TlsRefused]));
}

#[test]
fn requested_resource_and_bind_error() {
    for f in FRAMINGS {
        let mut c = config(f);
        c.jid = "alice@localhost/phone".parse().unwrap();
        c.allow_plain_without_tls = true;
        let mut p = Pair::new(c);
        p.open_with(&mechs(&["PLAIN"]));
        p.feed("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
        p.open_with(BIND_SM);
        assert!(
            p.last_sent().contains("<resource>phone</resource>"),
            "{}",
            p.last_sent()
        );
        p.feed_client("<iq type='error' id='gc-bind'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
        assert!(matches!(
            &p.disconnects()[..],
            [SessionError::Bind(f)] if matches!(&**f, BindFailure::Refused(Some(e)) if e.condition == "conflict")
        ));
    }
}

#[test]
fn required_legacy_session_is_established() {
    let mut c = config(Framing::Stream);
    c.allow_plain_without_tls = true;
    let mut p = Pair::new(c);
    p.open_with(&mechs(&["PLAIN"]));
    p.feed("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    p.open_with("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>");
    p.feed("<iq type='result' id='gc-bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/x</jid></bind></iq>");
    assert!(!p.connected());
    assert!(p.last_sent().contains("xmpp-session"));
    p.feed("<iq type='result' id='gc-session'/>");
    assert!(p.connected());
}

#[test]
fn stanzas_flow_and_clean_close() {
    for f in FRAMINGS {
        let mut p = scram_login(f, Mechanism::ScramSha256, &["SCRAM-SHA-256"]);
        p.take_events();
        p.feed_client("<message from='bob@localhost/x' to='alice@localhost/r1' type='chat' id='m1'><body>hi &amp; bye</body></message>");
        match &p.take_events()[..] {
            [Event::Stanza(Stanza::Message(m))] => {
                assert_eq!(m.body.as_deref(), Some("hi & bye"));
                assert_eq!(m.kind, MessageType::Chat);
                assert_eq!(m.from.as_ref().unwrap().as_str(), "bob@localhost/x");
            }
            e => panic!("{e:?}"),
        }
        let msg: Element =
            "<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>yo</body></message>".parse().unwrap();
        let sent_before = p.sent.len();
        p.session.send(p.now, &msg).unwrap();
        p.drain();
        assert!(p.sent.len() > sent_before);
        assert!(p.sent[sent_before].contains("<body>yo</body>"));
        p.session.close(p.now);
        p.drain();
        let closing = match f {
            Framing::Stream => "</stream:stream>",
            _ => "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
        };
        assert_eq!(p.last_sent(), closing);
        assert!(p.session.send(p.now, &msg).is_err());
        match f {
            Framing::Stream => p.feed("</stream:stream>"),
            _ => p.feed("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"),
        }
        assert!(matches!(&p.take_events()[..], [Event::Closed]));
        assert_eq!(p.deadline, None);
    }
}

#[test]
fn send_before_bind_and_non_stanzas_are_usage_errors() {
    let mut p = Pair::new(config(Framing::Stream));
    let msg: Element = "<message xmlns='jabber:client' to='bob@localhost'/>"
        .parse()
        .unwrap();
    assert_eq!(
        p.session.send(p.now, &msg),
        Err(groupchat_protocol::UsageError::NotConnected)
    );
    let mut p = scram_login(Framing::Stream, Mechanism::ScramSha1, &["SCRAM-SHA-1"]);
    let not: Element = "<r xmlns='urn:xmpp:sm:3'/>".parse().unwrap();
    assert!(matches!(
        p.session.send(p.now, &not),
        Err(groupchat_protocol::UsageError::NotAStanza(_))
    ));
    p.drain();
}

#[test]
fn password_is_not_in_debug_output() {
    let c = config(Framing::Stream);
    let p = Pair::new(c.clone());
    assert!(!format!("{c:?}").contains("pencil"));
    assert!(!format!("{:?}", p.session).contains("pencil"));
}
