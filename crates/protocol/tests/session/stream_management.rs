//! XEP-0198: enable, ack counting, the replay queue, resume, failed resume; keep-alive.

use std::time::Duration;

use groupchat_protocol::{Event, Framing, SendId, SessionError};

use crate::harness::*;

const FRAMINGS: [Framing; 2] = [Framing::Stream, Framing::WebSocket];

#[test]
fn outbound_stanzas_are_queued_until_acked() {
    for f in FRAMINGS {
        let mut p = logged_in(f, true);
        let ids: Vec<SendId> = (0..3)
            .map(|n| p.session.send(p.now, &message(n)).unwrap())
            .collect();
        p.drain();
        // One ack request per burst, not one per stanza.
        assert_eq!(
            p.sent
                .iter()
                .filter(|s| s.as_str() == "<r xmlns='urn:xmpp:sm:3'/>")
                .count(),
            1
        );
        assert_eq!(p.session.unacked().len(), 3);
        p.feed("<a xmlns='urn:xmpp:sm:3' h='2'/>");
        assert!(matches!(p.take_events()[..], [Event::Acked { up_to }] if up_to == ids[1]));
        assert_eq!(
            p.session.unacked().map(|u| u.id).collect::<Vec<_>>(),
            vec![ids[2]]
        );
        p.feed("<a xmlns='urn:xmpp:sm:3' h='3'/>");
        assert_eq!(p.session.unacked().len(), 0);
    }
}

/// A stanza sent while an ack request is out is not covered by its answer: the answer is
/// followed by a new request at once (not at the next keepalive, a minute later), so that a
/// caller waiting for its stanza's acknowledgement gets it.
#[test]
fn stanzas_sent_while_an_ack_request_is_out_get_a_request_of_their_own() {
    let r = "<r xmlns='urn:xmpp:sm:3'/>";
    for f in FRAMINGS {
        let mut p = logged_in(f, true);
        p.session.send(p.now, &message(0)).unwrap();
        p.drain();
        let later = p.session.send(p.now, &message(1)).unwrap();
        p.drain();
        assert_eq!(p.sent.iter().filter(|s| s.as_str() == r).count(), 1);
        p.feed("<a xmlns='urn:xmpp:sm:3' h='1'/>");
        assert_eq!(
            p.last_sent(),
            r,
            "asked again for the stanza sent meanwhile"
        );
        p.feed("<a xmlns='urn:xmpp:sm:3' h='2'/>");
        assert!(
            p.take_events()
                .iter()
                .any(|e| matches!(e, Event::Acked { up_to } if *up_to == later))
        );
        // Everything acknowledged: no further request.
        assert_eq!(p.sent.iter().filter(|s| s.as_str() == r).count(), 2);
    }
}

#[test]
fn inbound_stanzas_are_counted_for_the_server() {
    for f in FRAMINGS {
        let mut p = logged_in(f, true);
        for n in 0..5 {
            p.feed_client(&format!(
                "<message from='bob@localhost/b' type='chat' id='i{n}'><body>x</body></message>"
            ));
        }
        // Non-stanzas are not counted.
        p.feed("<a xmlns='urn:xmpp:sm:3' h='0'/>");
        p.feed("<r xmlns='urn:xmpp:sm:3'/>");
        assert_eq!(p.last_sent(), "<a xmlns='urn:xmpp:sm:3' h='5'/>");
    }
}

#[test]
fn ack_for_more_than_was_sent_is_a_protocol_error() {
    let mut p = logged_in(Framing::Stream, true);
    p.session.send(p.now, &message(1)).unwrap();
    p.drain();
    p.feed("<a xmlns='urn:xmpp:sm:3' h='7'/>");
    assert!(p.sent.iter().any(|s| s.contains("handled-count-too-high")));
    assert!(matches!(p.disconnects()[..], [SessionError::Protocol(_)]));
}

#[test]
fn resume_replays_exactly_the_unacked_stanzas() {
    for f in FRAMINGS {
        let mut p = logged_in(f, true);
        for n in 0..4 {
            p.session.send(p.now, &message(n)).unwrap();
        }
        p.feed_client("<message from='bob@localhost/b' type='chat'><body>in</body></message>");
        p.feed("<a xmlns='urn:xmpp:sm:3' h='1'/>");
        p.transport_closed();
        assert!(matches!(
            p.disconnects()[..],
            [SessionError::ConnectionLost]
        ));
        let r = p.session.resumption().expect("resumable");
        assert_eq!(r.unacked().len(), 3);

        let mut q = resuming(f, Some(r));
        assert_eq!(
            q.last_sent(),
            "<resume xmlns='urn:xmpp:sm:3' h='1' previd='sm-1'/>"
        );
        q.take_sent();
        // The server got one more before the cut: only m2 and m3 are replayed.
        q.feed("<resumed xmlns='urn:xmpp:sm:3' h='2' previd='sm-1'/>");
        let replayed: Vec<&String> = q.sent.iter().filter(|s| s.contains("<message")).collect();
        assert_eq!(replayed.len(), 2, "{:?}", q.sent);
        assert!(
            replayed[0].contains("id='m2'") && replayed[1].contains("id='m3'"),
            "{replayed:?}"
        );
        let ev = q.take_events();
        assert!(matches!(ev[0], Event::Acked { up_to: SendId(1) }), "{ev:?}");
        assert!(
            matches!(&ev[1], Event::Connected { resumed: true, jid, .. } if jid.to_string() == "alice@localhost/r1")
        );
        // New stanzas continue the id sequence; inbound counting continues from 1.
        assert_eq!(q.session.send(q.now, &message(9)).unwrap(), SendId(4));
        q.feed("<r xmlns='urn:xmpp:sm:3'/>");
        assert_eq!(q.last_sent(), "<a xmlns='urn:xmpp:sm:3' h='1'/>");
        q.feed("<a xmlns='urn:xmpp:sm:3' h='5'/>");
        assert_eq!(q.session.unacked().len(), 0);
    }
}

#[test]
fn failed_resume_reports_unacked_and_binds_fresh() {
    for f in FRAMINGS {
        let mut p = logged_in(f, true);
        for n in 0..3 {
            p.session.send(p.now, &message(n)).unwrap();
        }
        p.transport_closed();
        let mut q = resuming(f, p.session.resumption());
        q.feed("<failed xmlns='urn:xmpp:sm:3' h='1'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
        match &q.take_events()[..] {
            [Event::ResumeFailed { unacked }] => {
                assert_eq!(
                    unacked.iter().map(|u| u.id).collect::<Vec<_>>(),
                    vec![SendId(1), SendId(2)]
                );
            }
            e => panic!("{e:?}"),
        }
        assert!(q.last_sent().contains("xmpp-bind"));
        q.feed_client("<iq type='result' id='gc-bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/new</jid></bind></iq>");
        assert!(matches!(
            &q.take_events()[..],
            [Event::Connected { resumed: false, .. }]
        ));
        assert_eq!(
            q.last_sent(),
            "<enable xmlns='urn:xmpp:sm:3' resume='true'/>"
        );
    }
}

#[test]
fn enable_refused_means_no_queue() {
    let mut c = config(Framing::Stream);
    c.allow_plain_without_tls = true;
    let mut p = Pair::new(c);
    p.open_with(&mechs(&["PLAIN"]));
    p.feed("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    p.open_with(BIND_SM);
    p.feed("<iq type='result' id='gc-bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/r1</jid></bind></iq>");
    p.feed("<failed xmlns='urn:xmpp:sm:3'/>");
    p.session.send(p.now, &message(1)).unwrap();
    assert_eq!(p.session.unacked().len(), 0);
    assert!(p.session.resumption().is_none());
}

#[test]
fn clean_close_is_not_resumable() {
    let mut p = logged_in(Framing::Stream, true);
    p.session.close(p.now);
    p.drain();
    assert!(
        p.sent
            .iter()
            .any(|s| s == "<a xmlns='urn:xmpp:sm:3' h='0'/>")
    );
    assert!(p.session.resumption().is_none());
}

#[test]
fn keepalive_whitespace_without_sm() {
    let mut p = logged_in(Framing::Stream, false);
    let start = p.now;
    assert_eq!(p.deadline, Some(start + Duration::from_secs(60)));
    p.advance(Duration::from_secs(30));
    assert!(p.sent.is_empty(), "nothing before the deadline");
    p.advance(Duration::from_secs(30));
    assert_eq!(p.sent, vec![" ".to_owned()]);
    assert_eq!(p.deadline, Some(start + Duration::from_secs(120)));
}

#[test]
fn keepalive_ack_request_and_dead_connection() {
    for f in FRAMINGS {
        let mut p = logged_in(f, true);
        p.advance(Duration::from_secs(60));
        assert_eq!(p.sent, vec!["<r xmlns='urn:xmpp:sm:3'/>".to_owned()]);
        // The answer arrives: alive, next keep-alive a full interval later.
        p.feed("<a xmlns='urn:xmpp:sm:3' h='0'/>");
        p.advance(Duration::from_secs(59));
        assert_eq!(p.sent.len(), 1);
        p.advance(Duration::from_secs(1));
        assert_eq!(p.sent.len(), 2);
        // No answer this time: the connection is declared dead at the ack timeout.
        p.advance(Duration::from_secs(29));
        assert!(p.disconnects().is_empty());
        let sent_before = p.sent.len();
        p.advance(Duration::from_secs(1));
        assert!(matches!(p.disconnects()[..], [SessionError::AckTimeout(_)]));
        assert!(
            p.session.resumption().is_some(),
            "a dead connection is still resumable"
        );
        // Nothing is sent on a dead link: a close that reached the server over a half-open
        // link would end the session that the resumption needs.
        assert_eq!(p.sent.len(), sent_before, "{:?}", &p.sent[sent_before..]);
    }
}

#[test]
fn negotiation_timeout() {
    let mut p = Pair::new(config(Framing::Stream));
    p.feed(&p.header());
    p.advance(Duration::from_secs(29));
    assert!(p.disconnects().is_empty());
    p.advance(Duration::from_secs(1));
    assert!(matches!(p.disconnects()[..], [SessionError::Timeout(_)]));
}

#[test]
fn received_stanzas_are_acknowledged_unasked_every_fifty() {
    for f in FRAMINGS {
        let mut p = logged_in(f, true);
        for i in 0..49 {
            p.feed_client(&format!(
                "<message from='bob@localhost/b' id='m{i}'><body>x</body></message>"
            ));
        }
        assert!(!p.sent.iter().any(|s| s.starts_with("<a ")), "{:?}", p.sent);
        p.feed_client("<message from='bob@localhost/b' id='m49'><body>x</body></message>");
        assert_eq!(p.last_sent(), "<a xmlns='urn:xmpp:sm:3' h='50'/>");
        // An answer to <r/> counts too: the next unasked one is 50 after it.
        p.feed("<r xmlns='urn:xmpp:sm:3'/>");
        assert_eq!(p.last_sent(), "<a xmlns='urn:xmpp:sm:3' h='50'/>");
        for i in 50..100 {
            p.feed_client(&format!(
                "<message from='bob@localhost/b' id='m{i}'><body>x</body></message>"
            ));
        }
        let acks: Vec<&String> = p.sent.iter().filter(|s| s.starts_with("<a ")).collect();
        assert_eq!(
            acks.last().map(|s| s.as_str()),
            Some("<a xmlns='urn:xmpp:sm:3' h='100'/>")
        );
        assert_eq!(acks.len(), 3, "{acks:?}");
    }
}
