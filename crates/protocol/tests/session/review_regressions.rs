//! Regressions for defects found in review: each test failed before its fix.

use std::time::Duration;

use groupchat_protocol::{Event, Framing, Limits, Mechanism, SessionError, XmlError};

use crate::harness::*;

#[test]
fn sending_after_a_long_idle_does_not_fake_an_ack_timeout() {
    let mut p = logged_in(Framing::Stream, true);
    p.advance(Duration::from_secs(45));
    p.session.send(p.now, &message(1)).unwrap();
    p.drain();
    // The ack deadline counts from the send, not from the last input.
    p.advance(Duration::from_secs(29));
    assert!(p.disconnects().is_empty(), "{:?}", p.events);
    p.feed("<a xmlns='urn:xmpp:sm:3' h='1'/>");
    assert!(p.disconnects().is_empty());
}

#[test]
fn an_outstanding_ack_request_is_not_restarted() {
    let mut p = logged_in(Framing::Stream, true);
    p.session.request_ack(p.now);
    p.advance(Duration::from_secs(20));
    p.session.request_ack(p.now);
    p.drain();
    assert_eq!(p.sent.iter().filter(|s| s.starts_with("<r ")).count(), 1);
    p.advance(Duration::from_secs(10));
    assert!(matches!(p.disconnects()[..], [SessionError::AckTimeout(_)]));
}

#[test]
fn a_drop_during_resumption_keeps_the_old_session_resumable() {
    let mut p = logged_in(Framing::Stream, true);
    p.session.send(p.now, &message(1)).unwrap();
    p.transport_closed();
    let mut q = resuming(Framing::Stream, p.session.resumption());
    assert!(q.last_sent().starts_with("<resume "));
    q.transport_closed();
    let r = q.session.resumption().expect("still resumable");
    assert_eq!(r.unacked().len(), 1);
}

#[test]
fn the_size_limit_is_per_stanza_not_per_read() {
    let mut c = config(Framing::Stream);
    c.limits = Limits::with_max_stanza_size(1024);
    let mut p = logged_in_with(c, false);
    let one = format!("<message><body>{}</body></message>", "x".repeat(270));
    p.feed(&one.repeat(10));
    assert_eq!(p.take_events().len(), 10);
    assert!(p.disconnects().is_empty());
    // An oversize self-closing stanza arriving whole is refused too.
    let big = format!("<presence status='{}'/>", "y".repeat(2000));
    p.feed(&big);
    assert!(matches!(
        p.disconnects()[..],
        [SessionError::Xml(XmlError::TooLarge { .. })]
    ));
}

#[test]
fn negotiation_crossing_a_close_is_ignored() {
    let mut c = config(Framing::Stream);
    c.mechanisms = vec![Mechanism::ScramSha1];
    let mut p = Pair::new(c);
    p.open_with(MECHS);
    p.session.close(p.now);
    p.drain();
    p.feed("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    assert_eq!(
        p.sent.iter().filter(|s| *s == "</stream:stream>").count(),
        1
    );
    p.feed("</stream:stream>");
    assert!(matches!(p.take_events()[..], [Event::Closed]));
}

#[test]
fn websocket_frames_hold_one_element_and_errors_declare_the_prefix() {
    let mut p = logged_in(Framing::WebSocket, true);
    p.feed("<r xmlns='urn:xmpp:sm:3'/><r xmlns='urn:xmpp:sm:3'/>");
    assert!(matches!(p.disconnects()[..], [SessionError::Xml(_)]));

    let mut p = logged_in(Framing::WebSocket, true);
    p.feed("<a xmlns='urn:xmpp:sm:3' h='9'/>");
    let err = p
        .sent
        .iter()
        .find(|s| s.contains("handled-count-too-high"))
        .unwrap();
    assert!(err.contains("xmlns:stream="), "{err}");
}

#[test]
fn config_debug_hides_the_entropy() {
    let c = config(Framing::Stream);
    let d = format!("{c:?}");
    assert!(!d.contains("42, 42"), "{d}");
    assert!(!d.contains("pencil"));
}

#[test]
fn a_failed_resume_with_an_impossible_count_reports_everything() {
    let mut p = logged_in(Framing::Stream, true);
    for n in 0..3 {
        p.session.send(p.now, &message(n)).unwrap();
    }
    p.transport_closed();
    let mut q = resuming(Framing::Stream, p.session.resumption());
    q.feed("<failed xmlns='urn:xmpp:sm:3' h='99'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
    match &q.take_events()[..] {
        [Event::ResumeFailed { unacked }] => assert_eq!(unacked.len(), 3),
        e => panic!("{e:?}"),
    }
}
