//! Property: any split of a valid server byte stream gives the same events and the same
//! client output as feeding it whole.

use groupchat_protocol::{Framing, Input, Output};
use proptest::prelude::*;

use crate::harness::*;

/// A whole server side of a PLAIN login with SM and some traffic, as one byte string.
fn server_bytes() -> String {
    let h = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>";
    let mut s = String::new();
    s += h;
    s += &format!("<stream:features>{}</stream:features>", mechs(&["PLAIN"]));
    s += "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
    s += h;
    s += &format!("<stream:features>{BIND_SM}</stream:features>");
    s += "<iq type='result' id='gc-bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/r1</jid></bind></iq>";
    s += "<enabled xmlns='urn:xmpp:sm:3' id='sm-1' resume='true'/>  \n";
    for n in 0..5 {
        s += &format!(
            "<message from='room@conference.localhost/bob' type='groupchat' id='g{n}'><body>caf\u{e9} &lt;{n}&gt; \u{1f600}</body><stanza-id xmlns='urn:xmpp:sid:0' id='sid{n}' by='room@conference.localhost'/><![CDATA[ ]]></message> "
        );
    }
    s += "<presence from='room@conference.localhost/carol'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant'/></x></presence>";
    s += "<r xmlns='urn:xmpp:sm:3'/>";
    s += "<weird xmlns='urn:example'/>";
    s += "</stream:stream>";
    s
}

/// Feeds `chunks` and returns a transcript of everything the session did, in order.
fn run(chunks: &[&[u8]]) -> Vec<String> {
    let mut c = config(Framing::Stream);
    c.allow_plain_without_tls = true;
    let now = std::time::Instant::now();
    let mut s = groupchat_protocol::Session::new(c, now);
    let mut log = Vec::new();
    let drain = |s: &mut groupchat_protocol::Session, log: &mut Vec<String>| loop {
        match s.poll_output() {
            Output::Transmit(b) => log.push(format!("tx {}", String::from_utf8_lossy(&b))),
            Output::Event(e) => log.push(format!("ev {e:?}")),
            Output::Timeout(_) => break,
            o => log.push(format!("{o:?}")),
        }
    };
    drain(&mut s, &mut log);
    for chunk in chunks {
        s.handle_input(Input::Received { now, data: chunk });
        drain(&mut s, &mut log);
    }
    log
}

#[test]
fn the_transcript_is_what_we_expect() {
    let bytes = server_bytes();
    let log = run(&[bytes.as_bytes()]);
    let stanzas = log.iter().filter(|l| l.starts_with("ev Stanza(")).count();
    assert_eq!(stanzas, 6, "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l == "tx <a xmlns='urn:xmpp:sm:3' h='6'/>"),
        "{log:#?}"
    );
    assert!(log.iter().any(|l| l.contains("StanzaDropped")));
    assert!(log.last().unwrap().contains("Disconnected"), "{log:#?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn any_chunking_gives_the_same_transcript(cuts in proptest::collection::vec(0usize..4000, 0..60)) {
        let bytes = server_bytes();
        let b = bytes.as_bytes();
        let whole = run(&[b]);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (b.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut chunks = Vec::new();
        let mut last = 0;
        for c in cuts {
            chunks.push(&b[last..c]);
            last = c;
        }
        chunks.push(&b[last..]);
        prop_assert_eq!(run(&chunks), whole);
    }

    #[test]
    fn one_byte_at_a_time_too(_x in 0..1u8) {
        let bytes = server_bytes();
        let chunks: Vec<&[u8]> = bytes.as_bytes().chunks(1).collect();
        prop_assert_eq!(run(&chunks), run(&[bytes.as_bytes()]));
    }
}
