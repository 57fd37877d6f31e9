//! Shared setup for the groupchat benchmarks: the corpus, and a logged-in [`Session`] to feed
//! it to. The baselines (tokio-xmpp + xmpp-parsers, quick-xml) live with the bench targets
//! (`benches/benches/common/`), so that this library, and `cargo test --workspace`, never compile them.
//!
//! See `docs/benchmarks.md` for the commands and the results.

use std::time::Instant;

use groupchat_protocol::codec::{Presence, Stanza};
use groupchat_protocol::group::{GroupEvent, GroupServices, GroupTracker};
use groupchat_protocol::{Config, Event, Framing, Input, Output, Session, Tls};

/// The corpora, checked in, by name: each a `<stream:stream>` header, about 10,000 stanzas,
/// the stream footer. `group`: the first corpus, generated; `traffic`: recorded from real
/// Prosody and ejabberd servers (`cargo run -p groupchat-test-support --example
/// record_corpus`).
pub const CORPORA: [(&str, &str); 2] = [
    (
        "group",
        concat!(env!("CARGO_MANIFEST_DIR"), "/data/group-corpus.xml"),
    ),
    (
        "traffic",
        concat!(env!("CARGO_MANIFEST_DIR"), "/data/traffic-corpus.xml"),
    ),
];

/// Bytes handed over per read, for every implementation alike (one TLS record's worth).
pub const CHUNK: usize = 16 * 1024;

/// The account the corpus is addressed to.
pub const ACCOUNT: &str = "me@localhost";
/// The full JID the corpus is addressed to (the bind result).
pub const FULL_JID: &str = "me@localhost/gajim.XK3F9A";
/// The group service of the corpus.
pub const GROUP_SERVICE: &str = "conference.localhost";

/// The corpus, with the offsets of its parts.
pub struct Corpus {
    /// The whole file.
    pub bytes: Vec<u8>,
    header_end: usize,
    body_end: usize,
    /// The stanzas, cut by our framer ([`groupchat_protocol::fuzz_targets::split_elements`]).
    pub stanzas: Vec<Vec<u8>>,
}

impl Corpus {
    /// Reads the first corpus (`group`).
    ///
    /// # Panics
    ///
    /// If the file is missing or not a stream of stanzas.
    pub fn load() -> Self {
        Self::named("group")
    }

    /// The corpora `GROUPCHAT_CORPUS` names (comma-separated; all of them when unset), with
    /// their names.
    ///
    /// # Panics
    ///
    /// If a name is unknown or a file is missing.
    pub fn selected() -> Vec<(&'static str, Self)> {
        let wanted = std::env::var("GROUPCHAT_CORPUS").unwrap_or_default();
        CORPORA
            .iter()
            .filter(|(name, _)| wanted.is_empty() || wanted.split(',').any(|w| w.trim() == *name))
            .map(|(name, _)| (*name, Self::named(name)))
            .collect()
    }

    /// Reads the corpus `name` (see [`CORPORA`]) and cuts it into stanzas.
    ///
    /// # Panics
    ///
    /// If the name is unknown, or the file is missing or not a stream of stanzas.
    pub fn named(name: &str) -> Self {
        let path = CORPORA
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no corpus named {name}"))
            .1;
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let open = find(&bytes, b"<stream:stream").expect("a stream header");
        let header_end = open + find(&bytes[open..], b">").expect("the header's end") + 1;
        let footer = b"</stream:stream>";
        let trimmed = bytes.trim_ascii_end();
        assert!(
            trimmed.ends_with(footer),
            "the corpus ends with the stream footer"
        );
        let body_end = trimmed.len() - footer.len();
        let stanzas =
            groupchat_protocol::fuzz_targets::split_elements(&bytes[header_end..body_end]);
        Self {
            bytes,
            header_end,
            body_end,
            stanzas,
        }
    }

    /// `<?xml ...?><stream:stream ...>`.
    pub fn header(&self) -> &[u8] {
        &self.bytes[..self.header_end]
    }

    /// The stanzas, as received: everything between the header and the footer.
    pub fn body(&self) -> &[u8] {
        &self.bytes[self.header_end..self.body_end]
    }

    /// Number of top-level stanzas.
    pub fn len(&self) -> usize {
        self.stanzas.len()
    }

    /// True for an empty corpus.
    pub fn is_empty(&self) -> bool {
        self.stanzas.is_empty()
    }
}

/// The parts of a corpus the per-kind figures are given for: the server a recorded stanza
/// came from, or the kind of stanza. `GROUPCHAT_SUBSET=NAME` makes the benches measure only
/// that part (see [`Corpus::subset`]).
pub const SUBSETS: [&str; 7] = [
    "prosody",
    "ejabberd",
    "live-message",
    "archived-message",
    "message-without-body",
    "presence",
    "iq",
];

/// The kind of a top-level stanza, as [`SUBSETS`] names it: a message with a body received
/// live, a MAM result (an archived message forwarded in a `<result/>`), any other message
/// (chat states, markers, reactions, subjects...), a presence or an IQ.
pub fn stanza_kind(stanza: &[u8]) -> &'static str {
    let has = |needle: &[u8]| find(stanza, needle).is_some();
    if stanza.starts_with(b"<presence") {
        "presence"
    } else if stanza.starts_with(b"<iq") {
        "iq"
    } else if has(b"urn:xmpp:mam:2") && has(b"<result") {
        "archived-message"
    } else if has(b"<body") {
        "live-message"
    } else {
        "message-without-body"
    }
}

impl Corpus {
    /// The same stream with only the stanzas of `subset` (one of [`SUBSETS`]). The server
    /// subsets hold for the recorded corpus, which `record_corpus` writes as Prosody's
    /// stanzas (the first half, rounded up) followed by ejabberd's.
    ///
    /// # Panics
    ///
    /// If `subset` is not one of [`SUBSETS`], or leaves no stanza.
    pub fn subset(&self, subset: &str) -> Self {
        assert!(SUBSETS.contains(&subset), "no subset named {subset}");
        let first_half = self.stanzas.len() - self.stanzas.len() / 2;
        let kept: Vec<Vec<u8>> = self
            .stanzas
            .iter()
            .enumerate()
            .filter(|(i, s)| match subset {
                "prosody" => *i < first_half,
                "ejabberd" => *i >= first_half,
                kind => stanza_kind(s) == kind,
            })
            .map(|(_, s)| s.clone())
            .collect();
        assert!(!kept.is_empty(), "no stanza in subset {subset}");
        let mut bytes = self.header().to_vec();
        let header_end = bytes.len();
        for s in &kept {
            bytes.extend_from_slice(s);
        }
        let body_end = bytes.len();
        bytes.extend_from_slice(&self.bytes[self.body_end..]);
        Self {
            bytes,
            header_end,
            body_end,
            stanzas: kept,
        }
    }

    /// The corpus `GROUPCHAT_CORPUS` names (default `group`), cut to `GROUPCHAT_SUBSET` when
    /// that is set: what a bench that measures one corpus per run reads.
    ///
    /// # Panics
    ///
    /// As [`Corpus::named`] and [`Corpus::subset`].
    pub fn from_env() -> (String, Self) {
        let name = std::env::var("GROUPCHAT_CORPUS").unwrap_or_else(|_| "group".to_owned());
        let corpus = Self::named(&name);
        match std::env::var("GROUPCHAT_SUBSET") {
            Ok(subset) if !subset.is_empty() => {
                (format!("{name}/{subset}"), corpus.subset(&subset))
            }
            _ => (name, corpus),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Drains `session` until [`Output::Timeout`], handing every event to `on_event`.
pub fn drain(session: &mut Session, mut on_event: impl FnMut(Event)) {
    loop {
        match session.poll_output() {
            Output::Timeout(_) => return,
            Output::Event(e) => on_event(e),
            _ => {}
        }
    }
}

/// A session logged in with PLAIN over a plaintext stream, bound to [`FULL_JID`], with
/// stream management enabled, as the corpus' recipient. `header` is the server's stream
/// header (the corpus' own).
///
/// # Panics
///
/// If the login does not complete.
pub fn logged_in_session(header: &[u8], now: Instant) -> Session {
    let mut config = Config::new(
        ACCOUNT.parse().expect("valid JID"),
        "secret",
        Framing::Stream,
        [7; 32],
    );
    config.tls = Tls::InsecurePlaintext;
    config.allow_plain_without_tls = true;
    let mut session = Session::new(config, now);
    let features = |children: &str| format!("<stream:features>{children}</stream:features>");
    let prelude: [Vec<u8>; 7] = [
        header.to_vec(),
        features("<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>").into_bytes(),
        b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>".to_vec(),
        header.to_vec(),
        features("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/>").into_bytes(),
        format!("<iq type='result' id='gc-bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>{FULL_JID}</jid></bind></iq>").into_bytes(),
        b"<enabled xmlns='urn:xmpp:sm:3' id='sm-1' resume='true'/>".to_vec(),
    ];
    drain(&mut session, |_| {});
    for piece in &prelude {
        session.handle_input(Input::Received { now, data: piece });
        drain(&mut session, |e| {
            assert!(
                !matches!(e, Event::Disconnected { .. }),
                "login failed: {e:?}"
            );
        });
    }
    assert!(session.is_connected(), "the prelude logs in");
    session
}

/// Feeds `data` to `session` in [`CHUNK`]-sized reads, draining after each, and hands every
/// decoded stanza to `on_stanza`. Returns the number of stanzas dropped as not understood.
pub fn feed(
    session: &mut Session,
    now: Instant,
    data: &[u8],
    mut on_stanza: impl FnMut(Stanza),
) -> usize {
    let mut dropped = 0;
    for chunk in data.chunks(CHUNK) {
        session.handle_input(Input::Received { now, data: chunk });
        drain(session, |e| match e {
            Event::Stanza(s) => on_stanza(s),
            Event::StanzaDropped { .. } => dropped += 1,
            Event::Disconnected { reason } => panic!("the session ended: {reason}"),
            _ => {}
        });
    }
    dropped
}

/// Joins `groups` rooms the way the protocol does: a join presence per room (sent with
/// [`Session::send_encoded`]), the room's self-presence (status 110) fed back, and the
/// server's `<a/>` for all of them, so that nothing is left outstanding. Returns the
/// tracker that saw the joins.
///
/// The session itself holds no per-group state today (rooms live in [`GroupTracker`] and in
/// the SDK), so the number of groups is not expected to change what an idle poll costs; the
/// benchmark keeps the joins real so that it stays meaningful when per-group state arrives.
///
/// # Panics
///
/// If a join is not reported as [`GroupEvent::Joined`].
pub fn join_groups(session: &mut Session, now: Instant, groups: usize) -> GroupTracker {
    let mut tracker = GroupTracker::new(GroupServices::new([GROUP_SERVICE]));
    for i in 0..groups {
        let mut join = Presence::default();
        join.to = Some(
            format!("room{i}@{GROUP_SERVICE}/me")
                .parse()
                .expect("valid JID"),
        );
        join.muc_join = true;
        session
            .send_encoded(now, join.encode())
            .expect("connected session sends");
    }
    drain(session, |_| {});
    let mut reply = String::new();
    for i in 0..groups {
        reply.push_str(&format!(
            "<presence from='room{i}@{GROUP_SERVICE}/me' to='{FULL_JID}'>\
             <x xmlns='http://jabber.org/protocol/muc#user'>\
             <item affiliation='member' role='participant' jid='{FULL_JID}'/>\
             <status code='110'/></x></presence>"
        ));
    }
    reply.push_str(&format!("<a xmlns='urn:xmpp:sm:3' h='{groups}'/>"));
    let mut joined = 0;
    feed(session, now, reply.as_bytes(), |s| {
        joined += tracker
            .ingest(&s)
            .iter()
            .filter(|e| matches!(e, GroupEvent::Joined { .. }))
            .count();
    });
    assert_eq!(joined, groups, "every join is confirmed");
    assert_eq!(
        session.unacked().len(),
        0,
        "the server acknowledged the joins"
    );
    tracker
}

/// The value after `name` on a bench's command line (`--messages 100`).
pub fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// This process's peak RSS in KiB (`VmHWM` from `/proc/self/status`; `getrusage` would need
/// `unsafe`, which the workspace forbids).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
