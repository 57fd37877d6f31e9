//! Malformed, hostile and unknown input: fatal exactly once, or dropped and reported.

use groupchat_protocol::{DropReason, Event, Framing, Input, Limits, SessionError, XmlError};

use crate::harness::*;

const FRAMINGS: [Framing; 2] = [Framing::Stream, Framing::WebSocket];

fn assert_fatal_once(p: &mut Pair, check: impl Fn(&SessionError) -> bool) {
    let d = p.disconnects();
    assert_eq!(d.len(), 1, "{:?}", p.events);
    assert!(check(d[0]), "{:?}", d[0]);
    // Nothing more: further input is ignored, no second report, no deadline.
    p.take_events();
    p.feed("<message/>");
    p.advance(std::time::Duration::from_secs(3600));
    p.transport_closed();
    assert!(p.events.is_empty(), "{:?}", p.events);
    assert_eq!(p.deadline, None);
}

#[test]
fn stream_error_is_reported_once() {
    for f in FRAMINGS {
        let mut p = logged_in(f, true);
        let err = match f {
            Framing::Stream => "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced by new connection</text></stream:error>".to_owned(),
            _ => format!("<stream:error xmlns:stream='{STREAM_NS}'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced by new connection</text></stream:error>"),
        };
        p.feed(&err);
        assert_fatal_once(
            &mut p,
            |e| matches!(e, SessionError::StreamError { condition, text } if condition == "conflict" && text.as_deref() == Some("Replaced by new connection")),
        );
    }
}

#[test]
fn malformed_framing_is_fatal_and_told_to_the_server() {
    for (f, bad) in [
        (Framing::Stream, "<message><body>x</bodyy></message>"),
        (Framing::Stream, "<message><body a='x>y</body></message>"),
        (
            Framing::WebSocket,
            "<message xmlns='jabber:client'><body>half",
        ),
        (Framing::WebSocket, "<a xmlns='x'/><b xmlns='x'/>junk"),
    ] {
        let mut p = logged_in(f, false);
        p.feed(bad);
        assert!(
            p.sent.iter().any(|s| s.contains("not-well-formed")),
            "{bad}: {:?}",
            p.sent
        );
        assert_fatal_once(&mut p, |e| matches!(e, SessionError::Xml(_)));
    }
}

/// A member can make the server relay a stanza that our decoder refuses (an attribute
/// longer than the DOM library takes, say); the framer found where it ends, so the stream
/// is intact and only that stanza is lost.
#[test]
fn a_complete_stanza_the_decoder_refuses_is_dropped_counted_and_the_next_one_arrives() {
    let long = |n: usize| "A".repeat(n);
    let cases: Vec<(String, &str)> = vec![
        (
            format!(
                "<message from='bob@localhost/b'><body>hi</body><x xmlns='urn:example:poison' v='{}'/></message>",
                long(8193)
            ),
            "attribute value",
        ),
        (
            format!(
                "<message from='bob@localhost/b'><body>hi</body><x xmlns='urn:example:poison' v='{}'/></message>",
                long(100_000)
            ),
            "attribute value",
        ),
        (
            format!(
                "<presence from='room@muc.localhost/bob'><x xmlns='urn:example:poison'><{} xmlns='urn:example:n'/></x></presence>",
                long(9000)
            ),
            "element name",
        ),
        (
            format!(
                "<message from='bob@localhost/b' id='{}'><body>hi</body></message>",
                long(9000)
            ),
            "attribute value",
        ),
        (
            "<message from='bob@localhost/b' to='a' to='b'/>".to_owned(),
            "duplicate",
        ),
        (
            "<message from='bob@localhost/b'><body>&undefined;</body></message>".to_owned(),
            "entity",
        ),
        (
            "<message from='bob@localhost/b'><x:body>unbound prefix</x:body></message>".to_owned(),
            "prefix",
        ),
        (
            "<message from='bob@localhost/b'><body>\u{0}</body></message>".to_owned(),
            "control",
        ),
        (
            "<iq from='bob@localhost/b' type='get' id='1'><q xmlns='urn:x' a='1' a='2'/></iq>"
                .to_owned(),
            "duplicate",
        ),
    ];
    for f in FRAMINGS {
        for (bad, what) in &cases {
            let mut p = logged_in(f, true);
            p.feed_client(bad);
            let ev = p.take_events();
            assert!(
                matches!(&ev[..], [Event::StanzaDropped { reason: DropReason::Invalid(e), envelope: Some(env) }] if e.to_string().contains(what) && ["message", "presence", "iq"].contains(&env.name.as_str())),
                "{what}: {ev:?}"
            );
            assert!(p.disconnects().is_empty());
            p.feed_client("<message from='bob@localhost/b'><body>next</body></message>");
            assert!(matches!(p.take_events()[..], [Event::Stanza(_)]), "{what}");
            // Both were counted: the server counts the dropped one as delivered.
            p.feed("<r xmlns='urn:xmpp:sm:3'/>");
            assert_eq!(p.last_sent(), "<a xmlns='urn:xmpp:sm:3' h='2'/>", "{what}");
        }
    }
    // An answer that cannot be decoded still names the request it answers.
    let mut p = logged_in(Framing::Stream, true);
    p.feed_client(&format!(
        "<iq from='room@muc.localhost' type='result' id='q7'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='text' name='{}'/></query></iq>",
        long(9000)
    ));
    let ev = p.take_events();
    let [
        Event::StanzaDropped {
            envelope: Some(env),
            ..
        },
    ] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (env.name.as_str(), env.id.as_deref(), env.kind.as_deref()),
        ("iq", Some("q7"), Some("result"))
    );
    assert_eq!(
        env.from.as_ref().map(ToString::to_string).as_deref(),
        Some("room@muc.localhost")
    );
    // Invalid UTF-8 inside a stanza is the same: the framer reads bytes.
    let mut p = logged_in(Framing::Stream, true);
    p.session.handle_input(Input::Received {
        now: p.now,
        data: b"<message><body>\xff\xfe</body></message>",
    });
    p.drain();
    assert!(matches!(p.take_events()[..], [Event::StanzaDropped { .. }]));
    p.feed_client("<message from='bob@localhost/b'><body>next</body></message>");
    assert!(matches!(p.take_events()[..], [Event::Stanza(_)]));
}

#[test]
fn during_negotiation_an_element_the_decoder_refuses_is_fatal() {
    let mut p = Pair::new(config(Framing::Stream));
    p.feed(&p.header());
    p.feed("<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl' a='1' a='2'/></stream:features>");
    assert_fatal_once(&mut p, |e| matches!(e, SessionError::Xml(_)));
}

#[test]
fn oversize_stanza_is_a_policy_violation() {
    for f in FRAMINGS {
        let mut c = config(f);
        c.limits = Limits::with_max_stanza_size(1024);
        let mut p = logged_in_with(c, false);
        // Exactly at the limit is fine.
        let body = "x".repeat(1024 - p.client("<message><body></body></message>").len());
        p.feed_client(&format!("<message><body>{body}</body></message>"));
        assert!(matches!(p.take_events()[..], [Event::Stanza(_)]));
        let body = "x".repeat(2000);
        p.feed_client(&format!("<message><body>{body}</body></message>"));
        assert!(p.sent.iter().any(|s| s.contains("policy-violation")));
        assert_fatal_once(&mut p, |e| {
            matches!(e, SessionError::Xml(XmlError::TooLarge { limit: 1024 }))
        });
    }
}

#[test]
fn oversize_is_caught_before_the_stanza_ends() {
    let mut c = config(Framing::Stream);
    c.limits = Limits::with_max_stanza_size(1024);
    let mut p = logged_in_with(c, false);
    p.feed("<message><body>");
    for _ in 0..10 {
        p.feed(&"y".repeat(200));
    }
    assert_eq!(
        p.disconnects().len(),
        1,
        "refused while still streaming, without the end tag"
    );
}

#[test]
fn too_deep_is_a_policy_violation() {
    let mut p = logged_in(Framing::Stream, false);
    let deep = "<a>".repeat(100);
    p.feed(&format!("<message>{deep}"));
    assert_fatal_once(&mut p, |e| {
        matches!(e, SessionError::Xml(XmlError::TooDeep { .. }))
    });
}

#[test]
fn dtd_and_friends_are_restricted() {
    for bad in [
        "<!DOCTYPE foo [<!ENTITY lol 'lol'>]>",
        "<!-- comment -->",
        "<?php x ?>",
        "<message><!ENTITY x 'y'></message>",
    ] {
        let mut p = logged_in(Framing::Stream, false);
        p.feed(bad);
        assert!(p.sent.iter().any(|s| s.contains("restricted-xml")), "{bad}");
        assert_fatal_once(&mut p, |e| {
            matches!(e, SessionError::Xml(XmlError::Restricted(_)))
        });
    }
    // WebSocket frames are held to the same subset.
    for bad in [
        "<!DOCTYPE foo>",
        "<message xmlns='jabber:client'><!-- c --></message>",
        "<?xml version='1.0'?><a xmlns='x'/>",
    ] {
        let mut p = logged_in(Framing::WebSocket, false);
        p.feed(bad);
        assert!(p.sent.iter().any(|s| s.contains("restricted-xml")), "{bad}");
        assert_fatal_once(&mut p, |e| {
            matches!(e, SessionError::Xml(XmlError::Restricted(_)))
        });
    }
    // Before the stream header too.
    let mut p = Pair::new(config(Framing::Stream));
    p.feed("<?xml version='1.0'?><!DOCTYPE stream:stream>");
    assert_fatal_once(&mut p, |e| {
        matches!(e, SessionError::Xml(XmlError::Restricted(_)))
    });
}

#[test]
fn unknown_elements_are_dropped_not_fatal() {
    for f in FRAMINGS {
        let mut p = logged_in(f, true);
        p.feed("<weird xmlns='urn:example:unknown'><x/></weird>");
        p.feed("<enabled xmlns='urn:xmpp:sm:3' id='again'/>");
        let ev = p.take_events();
        assert!(
            matches!(&ev[0], Event::StanzaDropped { reason: DropReason::Unknown { name, ns }, .. } if name == "weird" && ns == "urn:example:unknown"),
            "{ev:?}"
        );
        assert!(matches!(
            &ev[1],
            Event::StanzaDropped {
                reason: DropReason::UnexpectedSm(_),
                ..
            }
        ));
        // Still alive and counting only real stanzas.
        p.feed_client("<presence from='bob@localhost/b'/>");
        assert!(matches!(p.take_events()[..], [Event::Stanza(_)]));
        p.feed("<r xmlns='urn:xmpp:sm:3'/>");
        assert_eq!(p.last_sent(), "<a xmlns='urn:xmpp:sm:3' h='1'/>");
    }
}

#[test]
fn server_closing_the_stream_unasked() {
    let mut p = logged_in(Framing::Stream, true);
    p.feed("</stream:stream>");
    assert_eq!(p.last_sent(), "</stream:stream>");
    assert_fatal_once(&mut p, |e| matches!(e, SessionError::Protocol(_)));
}

#[test]
fn wrong_stream_namespace_is_fatal() {
    let mut p = Pair::new(config(Framing::Stream));
    p.feed("<stream:stream xmlns:stream='urn:wrong' version='1.0'>");
    assert_fatal_once(&mut p, |e| matches!(e, SessionError::Protocol(_)));
}

#[test]
fn data_during_tls_handshake_is_refused() {
    let mut c = config(Framing::Stream);
    c.tls = groupchat_protocol::Tls::StartTls;
    let mut p = Pair::new(c);
    p.open_with("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    p.feed("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    p.feed("<injected/>");
    assert_fatal_once(&mut p, |e| {
        *e == SessionError::TlsDowngrade && e.is_permanent()
    });
}

#[test]
fn plaintext_after_proceed_is_refused() {
    let mut c = config(Framing::Stream);
    c.tls = groupchat_protocol::Tls::StartTls;
    let mut p = Pair::new(c);
    p.open_with("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    // An attacker appends plaintext to the proceed, hoping it is read as if under TLS.
    p.feed("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><stream:features/>");
    assert_eq!(p.start_tls_requests, 0);
    assert_fatal_once(&mut p, |e| {
        *e == SessionError::TlsDowngrade && e.is_permanent()
    });
}
