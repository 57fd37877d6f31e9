//! Records the second benchmark corpus, `benches/data/traffic-corpus.xml`: what one member of
//! busy group chats receives from real Prosody 0.12 and ejabberd 23.01 servers, byte for byte.
//!
//! ```sh
//! cargo run -p groupchat-test-support --example record_corpus --release -- \
//!     [OUT (default benches/data/traffic-corpus.xml)] [--stanzas N (default 10000)]
//! ```
//!
//! The first corpus (`group-corpus.xml`) is generated, so it holds what its generator writes,
//! serialized the generator's way. This one is what the servers deliver: their attribute order
//! and quoting, the elements they add (stanza-id, delays, muc#user items and status codes, MAM
//! wrappers) and whatever they make of what members send.
//!
//! For each server in turn (Prosody, then ejabberd) it starts a throw-away [`TestServer`] and
//! logs in bob, the recipient, whose socket is read raw from right after resource binding, then
//! alice, carol, dave and erin. Most store a vCard with a photo. Alice creates three open,
//! persistent, archived rooms; everyone joins them with XEP-0115 caps and XEP-0153 avatar
//! hashes. Then, in batches, each paced on bob seeing every stanza of the batch (ejabberd drops
//! floods):
//! - group messages: bodies of 10 to 2000 characters, some dense in entities, non-ASCII or
//!   right-to-left; several bodies with `xml:lang`; origin-id, receipt requests, markable;
//!   XHTML-IM, replies with fallbacks, OOB links; sent with varied attribute order, quoting and
//!   namespace prefixes;
//! - reactions, chat states and displayed markers;
//! - presence updates (show, status, new caps or avatar), leaves, rejoins and nick changes;
//! - bob's MAM queries, paging forward and backward through each room's archive;
//! - bob leaving a room and joining it again (occupant list, history, subject).
//!
//! Both servers re-serialize what members send: single quotes, prefixes resolved to default
//! namespaces (ejabberd keeps the then unused `xmlns:p` declarations), character references
//! resolved, `"` and `'` in text escaped; Prosody reorders attributes, ejabberd children. So the
//! variety of the senders' syntax shows only as far as the servers keep it.
//!
//! The content comes from a fixed-seed xorshift generator: the mix is the same on every run,
//! while what it refers to (which message a reply or marker targets) follows the timing, and
//! the servers' ids and timestamps differ. Bob's bytes are cut into top-level elements by depth;
//! only messages, presences, MAM `fin` results and IQ requests are kept (stream management and
//! other IQ results are not). Each is written as received, except that the top-level
//! `to='bob@localhost/raw'` becomes `to='me@localhost/gajim.XK3F9A'`, the JID the benchmarks'
//! session is bound to; bob's JID inside stanzas (muc#user items, ejabberd's `ofrom` addresses)
//! stays. The file is a stream header, Prosody's stanzas, ejabberd's stanzas and the stream
//! footer, with no separators, like the first corpus; a per-server summary of the stanza kinds
//! goes to stdout.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use groupchat_test_support::{RawClient, ServerKind, TestServer, base64};

const DEFAULT_STANZAS: usize = 10_000;
/// The recipient's full JID on the test servers (`RawClient` binds resource `raw`).
const RECIPIENT: &str = "bob@localhost/raw";
/// The full JID the benchmarks' session is bound to.
const BENCH_JID: &str = "me@localhost/gajim.XK3F9A";

const USERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
const ALICE: usize = 0;
const BOB: usize = 1;
const ROOMS: usize = 3;
/// The client each user pretends to be (XEP-0115 node).
const CLIENTS: [&str; 5] = [
    "https://gajim.org",
    "https://psi-im.org",
    "http://conversations.im",
    "https://dino.im",
    "https://monal-im.org",
];
/// The nicks each user goes by (the first one when joining).
const NICKS: [&[&str]; 5] = [
    &["alice", "Alice ☆", "alice_"],
    &["bob"],
    &["carol", "Carol (mobile)", "carolé"],
    &["dave", "ダーヴ", "dave_afk"],
    &["erin", "Érin", "erin|away"],
];

/// How long the stanzas of one batch may take to reach bob.
const WAIT_MAX: Duration = Duration::from_secs(30);
/// Silence that ends the recording once the target is reached.
const QUIET: Duration = Duration::from_millis(500);
const SEED: u64 = 0x5EED_C0FF_EE15_600D;

const NS_MUC: &str = "http://jabber.org/protocol/muc";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NS_MAM: &str = "urn:xmpp:mam:2";
const NS_CAPS: &str = "http://jabber.org/protocol/caps";
const NS_VCARD_UPDATE: &str = "vcard-temp:x:update";
const NS_CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
const NS_MARKERS: &str = "urn:xmpp:chat-markers:0";
const NS_HINTS: &str = "urn:xmpp:hints";
/// Children of a message that count as known payloads in the summary. Those of
/// [`SERVER_EXTRA_NS`] are counted apart; any other namespace is an unknown payload (XHTML-IM,
/// reactions, replies, fallbacks, ...).
const KNOWN_MESSAGE_NS: [&str; 12] = [
    "jabber:client",
    "urn:xmpp:sid:0",
    "urn:xmpp:occupant-id:0",
    "urn:xmpp:delay",
    NS_MUC_USER,
    "urn:xmpp:receipts",
    NS_MARKERS,
    NS_CHATSTATES,
    "jabber:x:oob",
    NS_MAM,
    "urn:xmpp:forward:0",
    NS_HINTS,
];

/// What ejabberd adds to group messages: `<archived/>` (a pre-XEP-0359 stanza-id) and, in
/// room history, XEP-0033 `ofrom` addresses.
const SERVER_EXTRA_NS: [&str; 2] = ["urn:xmpp:mam:tmp", "http://jabber.org/protocol/address"];

#[rustfmt::skip]
const WORDS: &[&str] = &[
    "the", "a", "build", "release", "merge", "branch", "fix", "bug", "server", "client", "room",
    "ping", "timeout", "retry", "message", "stanza", "queue", "docs", "review", "later",
    "tomorrow", "meeting", "coffee", "thanks", "why", "how", "what", "works", "broken", "again",
    "interesting", "nice", "ok", "+1", "lgtm", "deploy", "rollback", "test", "flaky", "CI",
    "green", "red", "logs", "metrics", "latency", "p99", "cache", "database", "index", "schema",
    "migration", "config", "TLS", "certificate", "DNS", "proxy", "upload", "avatar", "call",
    "is", "it", "on", "in", "and", "or", "not", "yet", "done", "maybe", "sure", "soon",
];
#[rustfmt::skip]
const ENTITIES: &[&str] = &[
    "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "a&lt;b", "x &gt; y", "R&amp;D", "Q&amp;A",
    "&lt;html&gt;", "it&apos;s", "&quot;quoted&quot;", "&#x1F600;", "&#233;t&#233;",
    "&#x65E5;&#x672C;", "&#38;&#38;", "&#x2764;&#xFE0F;", "1 &lt; 2 &amp;&amp; 3 &gt; 2",
    "&lt;/body&gt;", "don&apos;t", "&#60;tag&#62;",
];
#[rustfmt::skip]
const UNICODE: &[&str] = &[
    "é", "café", "über", "naïve", "Straße", "façade", "日本語", "東京", "こんにちは", "中文", "한국어", "😀",
    "👍", "🎉", "👨‍👩‍👧", "🇫🇷", "Привет", "Ελληνικά", "…", "—", "«guillemets»", "ñandú",
    "smørrebrød", "ąę", "Ümlaut", "🙂", "✓", "→", "½", "€",
];
#[rustfmt::skip]
const RTL: &[&str] = &[
    "שלום", "עולם", "מה שלומך?", "תודה רבה", "מחר בבוקר", "مرحبا", "بالعالم", "شكرا جزيلا",
    "كيف حالك؟", "غدا", "اجتماع",
];
#[rustfmt::skip]
const GERMAN: &[&str] = &[
    "Hallo", "zusammen", "Grüße", "über", "schön", "Straße", "nicht", "danke", "morgen",
    "Besprechung", "fertig", "läuft",
];
#[rustfmt::skip]
const FRENCH: &[&str] = &[
    "bonjour", "à", "tous", "très", "déjà", "où", "ça", "merci", "demain", "réunion", "prêt",
    "français",
];
#[rustfmt::skip]
const JAPANESE: &[&str] = &[
    "こんにちは", "ありがとう", "日本語", "会議", "明日", "準備", "完了",
];

fn main() {
    let (out, total) = parse_args();
    let mut recordings = Vec::new();
    for (kind, target) in ServerKind::ALL
        .into_iter()
        .zip([total - total / 2, total / 2])
    {
        let Some(server) = TestServer::start(kind) else {
            eprintln!("{kind} is not installed: the corpus needs both servers");
            std::process::exit(1);
        };
        println!(
            "== {kind}: c2s on {}, recording {target} stanzas",
            server.c2s_addr()
        );
        let started = Instant::now();
        let recording = Recorder::run(kind, server.c2s_addr(), server.muc_domain(), target)
            .unwrap_or_else(|e| panic!("{kind}: {e}\n{}", server.log_tail(30)));
        println!("== {kind}: recorded in {:.1?}", started.elapsed());
        recordings.push(recording);
    }
    let size = write_corpus(&out, &recordings)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
    print_summary(&recordings, &out, size);
}

fn parse_args() -> (PathBuf, usize) {
    let usage = || -> ! {
        eprintln!(
            "usage: record_corpus [OUT] [--stanzas N]\n\
             (OUT defaults to benches/data/traffic-corpus.xml, N to {DEFAULT_STANZAS})"
        );
        std::process::exit(2)
    };
    let mut out = None;
    let mut total = DEFAULT_STANZAS;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--stanzas" => {
                total = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n: &usize| n >= 2)
                    .unwrap_or_else(|| usage());
            }
            a if a.starts_with('-') || out.is_some() => usage(),
            _ => out = Some(PathBuf::from(arg)),
        }
    }
    // The workspace root is two levels above this crate.
    let out = out.unwrap_or_else(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2);
        root.unwrap_or(Path::new("."))
            .join("benches/data/traffic-corpus.xml")
    });
    (out, total)
}

// ------------------------------------------------------------------------------------------
// Recording one server

/// What bob received from one server, ready to be written.
struct Recording {
    kind: ServerKind,
    /// Kept stanzas, readdressed to [`BENCH_JID`].
    stanzas: Vec<Vec<u8>>,
    /// Top-level elements received but not kept, by name (and IQ type).
    skipped: BTreeMap<String, usize>,
    /// Stanzas sent whose arrival at bob was awaited in vain.
    lost: usize,
    /// Kept stanzas whose `to` was not [`RECIPIENT`], left as they were.
    not_readdressed: usize,
}

/// A message in one of the rooms, as bob saw it: something to reply, react or mark.
#[derive(Clone)]
struct Seen {
    nick: String,
    /// The room's stanza-id, or the message id when the room sent none.
    id: String,
    /// A few words of its body, as serialized by the server.
    snippet: String,
}

/// Where bob's MAM paging stands in one room.
enum Cursor {
    /// Paging from the oldest message on, after this id.
    Forward(Option<String>),
    /// Paging from the newest message back, before this id.
    Backward(Option<String>),
}

/// The stanzas to send in one step, per user, and what bob must see before the next step.
struct Step {
    out: Vec<String>,
    /// `(key, how often bob had seen it when the step was made)`.
    expects: Vec<(String, u32)>,
}

impl Step {
    fn new() -> Self {
        Self {
            out: vec![String::new(); USERS.len()],
            expects: Vec::new(),
        }
    }
}

struct Recorder {
    kind: ServerKind,
    rng: Rng,
    rooms: Vec<String>,
    /// Each user's connection, write side (the read side is in a thread).
    conns: Vec<TcpStream>,
    readers: Vec<JoinHandle<()>>,
    /// Bob's stanzas, from his reader thread.
    rx: Receiver<Vec<u8>>,
    kept: Vec<Vec<u8>>,
    target: usize,
    /// How often bob has seen each key (see [`keys`]).
    seen: HashMap<String, u32>,
    skipped: BTreeMap<String, usize>,
    lost: usize,
    /// The nick of each user in each room, `None` when out of it.
    nicks: Vec<Vec<Option<String>>>,
    caps_ver: Vec<String>,
    /// Each user's avatar hash, `None` for no avatar.
    photo: Vec<Option<String>>,
    recent: Vec<VecDeque<Seen>>,
    mam: Vec<Cursor>,
    /// MAM `fin` results by IQ id.
    fins: HashMap<String, String>,
    counter: u64,
}

impl Recorder {
    fn run(kind: ServerKind, addr: SocketAddr, muc: &str, target: usize) -> io::Result<Recording> {
        let mut rng = Rng(SEED
            ^ match kind {
                ServerKind::Prosody => 1,
                ServerKind::Ejabberd => 2,
            });
        let rooms: Vec<String> = (1..=ROOMS).map(|i| format!("room{i}@{muc}")).collect();
        let caps_ver: Vec<String> = USERS.iter().map(|_| base64(&rng.bytes(20))).collect();
        let photo: Vec<Option<String>> = USERS
            .iter()
            .map(|_| (!rng.chance(20)).then(|| rng.hex(40)))
            .collect();

        // Bob first: the capture starts right after his resource binding.
        let (stream, leftover) =
            RawClient::login(addr, "localhost", "bob", "bobpass")?.into_parts();
        let (tx, rx) = mpsc::channel();
        let bob = stream.try_clone()?;
        let mut readers = vec![thread::spawn(move || {
            read_elements(stream, leftover, |s| tx.send(s).is_ok());
        })];

        // Alice makes the rooms, reading her own answers; then everyone's reads are drained.
        let mut alice = RawClient::login(addr, "localhost", "alice", "alicepass")?;
        if let Some((xml, id)) = vcard_set(&mut rng, ALICE, photo[ALICE].as_deref()) {
            request(&mut alice, &xml, &id)?;
        }
        for (i, room) in rooms.iter().enumerate() {
            let payload = presence_payload(
                &mut rng,
                ALICE,
                &caps_ver[ALICE],
                photo[ALICE].as_deref(),
                '\'',
            );
            let join = format!(
                "<presence to='{room}/alice' id='create{i}'>{payload}<x xmlns='{NS_MUC}'/></presence>"
            );
            create_room(&mut alice, kind, room, i, &join)?;
        }
        let mut alice = Some(alice);
        let mut conns = Vec::new();
        for (user, &name) in USERS.iter().enumerate() {
            let (stream, leftover) = match (user, alice.take()) {
                (ALICE, Some(client)) => client.into_parts(),
                (BOB, _) => {
                    conns.push(bob.try_clone()?);
                    continue;
                }
                _ => {
                    let mut client =
                        RawClient::login(addr, "localhost", name, &format!("{name}pass"))?;
                    if let Some((xml, id)) = vcard_set(&mut rng, user, photo[user].as_deref()) {
                        request(&mut client, &xml, &id)?;
                    }
                    client.into_parts()
                }
            };
            conns.push(stream.try_clone()?);
            readers.push(thread::spawn(move || drain(name, stream, leftover)));
        }

        let mut nicks = vec![vec![None; ROOMS]; USERS.len()];
        for room in &mut nicks[ALICE] {
            *room = Some("alice".to_owned());
        }
        let mut rec = Self {
            kind,
            rng,
            rooms,
            conns,
            readers,
            rx,
            kept: Vec::new(),
            target,
            seen: HashMap::new(),
            skipped: BTreeMap::new(),
            lost: 0,
            nicks,
            caps_ver,
            photo,
            recent: vec![VecDeque::new(); ROOMS],
            mam: (0..ROOMS).map(|_| Cursor::Forward(None)).collect(),
            fins: HashMap::new(),
            counter: 0,
        };
        rec.script()?;
        Ok(rec.finish())
    }

    /// Everything that happens in the rooms, until bob has received `target` stanzas.
    fn script(&mut self) -> io::Result<()> {
        if let Some((xml, id)) = vcard_set(&mut self.rng, BOB, self.photo[BOB].as_deref()) {
            let mut step = Step::new();
            step.out[BOB] = xml;
            self.expect(&mut step, format!("id:{id}"));
            self.flush(step, "bob's vCard")?;
        }
        for room in 0..ROOMS {
            let mut step = Step::new();
            self.join(&mut step, BOB, room, "<history maxstanzas='20'/>");
            self.flush(step, "bob joins")?;
        }
        for user in [2, 3, 4] {
            let mut step = Step::new();
            for room in 0..ROOMS {
                self.join(&mut step, user, room, "<history maxstanzas='0'/>");
            }
            self.flush(step, "members join")?;
        }
        let mut batch = 0usize;
        while self.kept.len() < self.target {
            batch += 1;
            let mut step = Step::new();
            for _ in 0..self.rng.range(25, 60) {
                self.action(&mut step);
            }
            self.flush(step, &format!("batch {batch}"))?;
            if batch.is_multiple_of(3) {
                self.mam_page(batch / 3 % ROOMS)?;
            }
            if batch % 20 == 10 {
                self.bob_rejoins(batch / 20 % ROOMS)?;
            }
            if batch.is_multiple_of(10) {
                println!(
                    "   {}: {batch} batches, {} stanzas",
                    self.kind,
                    self.kept.len()
                );
            }
        }
        // What is still on its way belongs to the traffic too, up to the target.
        while self.pump(QUIET) {}
        Ok(())
    }

    /// Bob must see `key` once more after `step` is sent.
    fn expect(&self, step: &mut Step, key: String) {
        let now = self.seen.get(&key).copied().unwrap_or(0);
        step.expects.push((key, now));
    }

    /// Sends the step and waits until bob saw all it expects (or [`WAIT_MAX`] passed).
    fn flush(&mut self, step: Step, what: &str) -> io::Result<()> {
        for (user, xml) in step.out.iter().enumerate() {
            if !xml.is_empty() {
                self.conns[user].write_all(xml.as_bytes())?;
            }
        }
        let deadline = Instant::now() + WAIT_MAX;
        loop {
            let missing: Vec<&str> = step
                .expects
                .iter()
                .filter(|(key, before)| self.seen.get(key).copied().unwrap_or(0) <= *before)
                .map(|(key, _)| key.as_str())
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                eprintln!(
                    "   {}: {what}: {} of {} awaited stanzas did not reach bob, e.g. {:?}",
                    self.kind,
                    missing.len(),
                    step.expects.len(),
                    &missing[..missing.len().min(3)]
                );
                self.lost += missing.len();
                return Ok(());
            }
            if !self.pump(left) {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "bob's connection ended",
                ));
            }
        }
    }

    /// Takes one stanza from bob's reader, waiting up to `timeout`; false if none came.
    fn pump(&mut self, timeout: Duration) -> bool {
        match self.rx.recv_timeout(timeout) {
            Ok(stanza) => {
                self.accept(stanza);
                true
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => false,
        }
    }

    /// Notes what bob received and keeps it if it belongs in the corpus.
    fn accept(&mut self, stanza: Vec<u8>) {
        let text = String::from_utf8_lossy(&stanza).into_owned();
        let tags = tags(&text);
        let Some(root) = tags.first() else { return };
        for key in keys(&tags) {
            *self.seen.entry(key).or_insert(0) += 1;
        }
        let keep = match root.local() {
            "message" => {
                self.remember(&text, &tags);
                true
            }
            "presence" => true,
            "iq" => {
                let id = root.attr("id").unwrap_or_default();
                match root.attr("type") {
                    Some("result" | "error") if id.starts_with("mam-") => {
                        self.fins.insert(id.to_owned(), text.clone());
                        true
                    }
                    Some("get" | "set") => true,
                    _ => false,
                }
            }
            _ => false,
        };
        if keep {
            if self.kept.len() < self.target {
                self.kept.push(stanza);
            }
        } else {
            let name = match root.attr("type") {
                Some(t) if root.local() == "iq" => format!("iq type={t}"),
                _ => root.name.to_owned(),
            };
            *self.skipped.entry(name).or_insert(0) += 1;
        }
    }

    /// Remembers a live group message with a body, to reply to, react to or mark later.
    fn remember(&mut self, text: &str, tags: &[Tag<'_>]) {
        let root = &tags[0];
        let Some((room, nick)) = root.attr("from").and_then(|f| f.split_once('/')) else {
            return;
        };
        let Some(room) = self.rooms.iter().position(|r| r == room) else {
            return;
        };
        if root.attr("type") != Some("groupchat") {
            return;
        }
        let Some(body) = tags.iter().find(|t| t.depth == 1 && t.local() == "body") else {
            return;
        };
        let from = body.start + body.raw.len();
        let Some(len) = text[from..].find("</body>") else {
            return;
        };
        let snippet: Vec<&str> = text[from..from + len].split_whitespace().take(6).collect();
        let stanza_id = tags
            .iter()
            .find(|t| t.depth == 1 && t.local() == "stanza-id");
        let Some(id) = stanza_id.unwrap_or(root).attr("id") else {
            return;
        };
        let recent = &mut self.recent[room];
        if recent.len() == 50 {
            recent.pop_front();
        }
        recent.push_back(Seen {
            nick: nick.to_owned(),
            id: id.to_owned(),
            snippet: snippet.join(" "),
        });
    }

    fn finish(mut self) -> Recording {
        for conn in &mut self.conns {
            let _ = conn.write_all(b"</stream:stream>");
            let _ = conn.shutdown(Shutdown::Both);
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let mut not_readdressed = 0;
        let stanzas = self
            .kept
            .iter()
            .map(|s| {
                readdress(s).unwrap_or_else(|| {
                    not_readdressed += 1;
                    s.clone()
                })
            })
            .collect();
        Recording {
            kind: self.kind,
            stanzas,
            skipped: self.skipped,
            lost: self.lost,
            not_readdressed,
        }
    }

    // ----- the traffic ---------------------------------------------------------------------

    /// One random thing a member does.
    fn action(&mut self, step: &mut Step) {
        let user = if self.rng.chance(3) {
            BOB
        } else {
            *self.rng.pick(&[ALICE, 2, 3, 4])
        };
        let room = self.rng.below(ROOMS);
        let roll = self.rng.below(1000);
        if user != BOB && roll < 30 {
            if self.nicks[user][room].is_some() {
                self.leave(step, user, room);
            } else {
                self.join(step, user, room, "<history maxstanzas='0'/>");
            }
            return;
        }
        let Some(nick) = self.nicks[user][room].clone() else {
            let history = if self.rng.chance(70) {
                "<history maxstanzas='0'/>"
            } else {
                ""
            };
            self.join(step, user, room, history);
            return;
        };
        match roll {
            _ if user == BOB => self.group_message(step, user, room),
            30..40 => self.change_nick(step, user, room, &nick),
            40..120 => self.update_presence(step, user, room, &nick),
            120..190 => self.chat_state(step, user, room),
            190..230 => self.displayed(step, user, room),
            230..270 => self.reaction(step, user, room),
            _ => self.group_message(step, user, room),
        }
    }

    fn quote(&mut self) -> char {
        if self.rng.chance(30) { '"' } else { '\'' }
    }

    /// A message id in the style of the user's client.
    fn new_id(&mut self, user: usize) -> String {
        match user {
            2 => self.rng.alnum(12),
            4 => self.rng.uuid().to_uppercase(),
            _ => self.rng.uuid(),
        }
    }

    /// `<message ...>` to `room`, its attributes in a random order.
    fn message_start(
        &mut self,
        room: usize,
        id: Option<&str>,
        lang: Option<&str>,
        q: char,
    ) -> String {
        let mut attrs = vec![
            ("to", self.rooms[room].clone()),
            ("type", "groupchat".to_owned()),
        ];
        if let Some(id) = id {
            attrs.push(("id", id.to_owned()));
        }
        if let Some(lang) = lang {
            attrs.push(("xml:lang", lang.to_owned()));
        }
        if self.rng.chance(50) {
            self.rng.shuffle(&mut attrs);
        }
        let mut s = "<message".to_owned();
        for (name, value) in attrs {
            let _ = write!(s, " {name}={q}{value}{q}");
        }
        s.push('>');
        s
    }

    fn send_message(&self, step: &mut Step, user: usize, xml: String, id: Option<String>) {
        step.out[user].push_str(&xml);
        if let Some(id) = id {
            self.expect(step, format!("id:{id}"));
        }
    }

    /// Body text, already escaped: `len` characters or a little more, in one of several styles.
    fn text(&mut self, len: usize) -> String {
        let style = self.rng.below(100);
        let mut s = String::new();
        let mut chars = 0;
        while chars < len {
            let roll = self.rng.below(100);
            let set = match style {
                0..15 if roll < 50 => ENTITIES,
                15..35 if roll < 50 => UNICODE,
                35..40 if roll < 85 => RTL,
                _ if roll < 5 => ENTITIES,
                _ if roll < 10 => UNICODE,
                _ => WORDS,
            };
            if !s.is_empty() {
                s.push(if len > 200 && self.rng.chance(3) {
                    '\n'
                } else {
                    ' '
                });
                chars += 1;
            }
            let word = *self.rng.pick(set);
            s.push_str(word);
            chars += word.chars().count();
        }
        s
    }

    /// A body length: mostly short, sometimes long.
    fn body_len(&mut self) -> usize {
        match self.rng.below(100) {
            0..60 => self.rng.range(10, 120),
            60..90 => self.rng.range(120, 600),
            _ => self.rng.range(600, 2000),
        }
    }

    fn words(&mut self, set: &[&str], n: usize) -> String {
        (0..n)
            .map(|_| *self.rng.pick(set))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn group_message(&mut self, step: &mut Step, user: usize, room: usize) {
        let q = self.quote();
        let id = self.new_id(user);
        let variant = self.rng.below(100);
        let lang = self
            .rng
            .chance(25)
            // With several bodies, the stanza's language is the unlabelled body's.
            .then(|| {
                *self.rng.pick(if variant < 10 {
                    &["en"]
                } else {
                    &["en", "de", "fr", "ja"]
                })
            });
        let mut main = String::new();
        match variant {
            0..10 => {
                // Two or three bodies, one per language.
                let first_lang = if lang.is_none() && self.rng.chance(50) {
                    format!(" xml:lang={q}en{q}")
                } else {
                    String::new()
                };
                let len = self.rng.range(3, 20);
                let en = self.words(WORDS, len);
                let _ = write!(main, "<body{first_lang}>{en}</body>");
                let others: &[(&str, &[&str])] = if self.rng.chance(50) {
                    &[("de", GERMAN)]
                } else {
                    &[("de", GERMAN), ("fr", FRENCH), ("ja", JAPANESE)][..self.rng.range(2, 4)]
                };
                for (code, set) in others {
                    let text = self.words(set, len);
                    let _ = write!(main, "<body xml:lang={q}{code}{q}>{text}</body>");
                }
            }
            10..18 => {
                let (plain, html) = self.xhtml(q);
                let _ = write!(main, "<body>{plain}</body>{html}");
            }
            18..25 if !self.recent[room].is_empty() => {
                let target = self.rng.pick(self.recent[room].make_contiguous()).clone();
                let quoted = format!("&gt; {}: {}\n", target.nick, target.snippet);
                let end = unescaped_len(&quoted);
                let len = self.body_len();
                let text = self.text(len.min(300));
                let reply = if self.rng.chance(20) {
                    format!(
                        "<rp:reply xmlns:rp={q}urn:xmpp:reply:0{q} to={q}{}/{}{q} id={q}{}{q}/>",
                        self.rooms[room], target.nick, target.id
                    )
                } else {
                    format!(
                        "<reply xmlns={q}urn:xmpp:reply:0{q} to={q}{}/{}{q} id={q}{}{q}/>",
                        self.rooms[room], target.nick, target.id
                    )
                };
                let _ = write!(
                    main,
                    "<body>{quoted}{text}</body>{reply}<fallback xmlns={q}urn:xmpp:fallback:0{q} \
                     for={q}urn:xmpp:reply:0{q}><body start={q}0{q} end={q}{end}{q}/></fallback>"
                );
            }
            25..30 => {
                let file = *self.rng.pick(&[
                    "IMG_20240501_101530.jpg",
                    "screenshot%202024-05-01.png",
                    "report.pdf",
                    "voice-message.m4a",
                    "video.mp4?token=9f2c&amp;dl=1",
                ]);
                let url = format!("https://upload.localhost/{}/{file}", self.rng.hex(32));
                let desc = if self.rng.chance(30) {
                    format!("<desc>{}</desc>", self.words(UNICODE, 3))
                } else {
                    String::new()
                };
                let _ = write!(
                    main,
                    "<body>{url}</body><x xmlns={q}jabber:x:oob{q}><url>{url}</url>{desc}</x>"
                );
            }
            _ => {
                let len = self.body_len();
                let text = self.text(len);
                let _ = write!(main, "<body>{text}</body>");
            }
        }
        let mut extras = Vec::new();
        if self.rng.chance(60) {
            let origin = if self.rng.chance(85) {
                id.clone()
            } else {
                self.new_id(user)
            };
            extras.push(format!(
                "<origin-id xmlns={q}urn:xmpp:sid:0{q} id={q}{origin}{q}/>"
            ));
        }
        if self.rng.chance(30) {
            extras.push(format!("<request xmlns={q}urn:xmpp:receipts{q}/>"));
        }
        if self.rng.chance(40) {
            extras.push(format!("<markable xmlns={q}{NS_MARKERS}{q}/>"));
        }
        if self.rng.chance(15) {
            extras.push(if self.rng.chance(20) {
                format!("<cs:active xmlns:cs={q}{NS_CHATSTATES}{q}/>")
            } else {
                format!("<active xmlns={q}{NS_CHATSTATES}{q}/>")
            });
        }
        if self.rng.chance(5) {
            extras.push(format!("<thread>{}</thread>", self.rng.hex(16)));
        }
        if self.rng.chance(3) {
            extras.push(format!("<store xmlns={q}{NS_HINTS}{q}/>"));
        }
        self.rng.shuffle(&mut extras);
        let (before, after) = extras.split_at(if self.rng.chance(20) {
            extras.len() / 2
        } else {
            0
        });
        let start = self.message_start(room, Some(&id), lang, q);
        let xml = format!(
            "{start}{}{main}{}</message>",
            before.concat(),
            after.concat()
        );
        self.send_message(step, user, xml, Some(id));
    }

    /// An XHTML-IM payload of one to a dozen paragraphs, and its plain-text body.
    fn xhtml(&mut self, q: char) -> (String, String) {
        let most = if self.rng.chance(20) { 12 } else { 3 };
        let paragraphs = 1 + self.rng.below(most);
        let (mut plain, mut html) = (String::new(), String::new());
        for _ in 0..paragraphs {
            let len = self.rng.range(20, 150);
            let (a, strong, b) = (self.text(len), *self.rng.pick(WORDS), self.text(len / 2));
            let _ = writeln!(plain, "{a} *{strong}* {b}");
            let _ = write!(html, "<p>{a} <strong>{strong}</strong> {b}");
            if self.rng.chance(40) {
                let em = self.words(WORDS, 2);
                let _ = write!(html, " <em>{em}</em>");
            }
            if self.rng.chance(30) {
                let n = self.rng.below(1000);
                let _ = write!(
                    html,
                    " <a href={q}https://example.org/page?id={n}&amp;ref=chat{q}>link</a>"
                );
            }
            if self.rng.chance(20) {
                let _ = write!(
                    html,
                    "<br/><span style={q}color: #d33{q}>{}</span>",
                    self.words(UNICODE, 2)
                );
            }
            html.push_str("</p>");
        }
        let body = format!("<body xmlns={q}http://www.w3.org/1999/xhtml{q}>{html}</body>");
        let wrapped = if self.rng.chance(15) {
            format!("<xh:html xmlns:xh={q}http://jabber.org/protocol/xhtml-im{q}>{body}</xh:html>")
        } else {
            format!("<html xmlns={q}http://jabber.org/protocol/xhtml-im{q}>{body}</html>")
        };
        (plain.trim_end().to_owned(), wrapped)
    }

    fn reaction(&mut self, step: &mut Step, user: usize, room: usize) {
        if self.recent[room].is_empty() {
            return self.group_message(step, user, room);
        }
        let q = self.quote();
        let target = self
            .rng
            .pick(self.recent[room].make_contiguous())
            .id
            .clone();
        let n = 1 + self.rng.below(3);
        let emojis: Vec<&str> = (0..n)
            .map(|_| {
                *self
                    .rng
                    .pick(&["👍", "❤️", "😂", "🎉", "👀", "🙏", "&#x1F44D;"])
            })
            .collect();
        let payload = if self.rng.chance(30) {
            let inner: String = emojis
                .iter()
                .map(|e| format!("<r:reaction>{e}</r:reaction>"))
                .collect();
            format!(
                "<r:reactions xmlns:r={q}urn:xmpp:reactions:0{q} id={q}{target}{q}>{inner}</r:reactions>"
            )
        } else {
            let inner: String = emojis
                .iter()
                .map(|e| format!("<reaction>{e}</reaction>"))
                .collect();
            format!(
                "<reactions xmlns={q}urn:xmpp:reactions:0{q} id={q}{target}{q}>{inner}</reactions>"
            )
        };
        let hint = if self.rng.chance(50) {
            format!("<store xmlns={q}{NS_HINTS}{q}/>")
        } else {
            String::new()
        };
        let id = self.new_id(user);
        let start = self.message_start(room, Some(&id), None, q);
        self.send_message(
            step,
            user,
            format!("{start}{payload}{hint}</message>"),
            Some(id),
        );
    }

    fn chat_state(&mut self, step: &mut Step, user: usize, room: usize) {
        let q = self.quote();
        let state = *self
            .rng
            .pick(&["composing", "composing", "paused", "active", "inactive"]);
        let id = self.rng.chance(70).then(|| self.new_id(user));
        let payload = if self.rng.chance(15) {
            format!("<cs:{state} xmlns:cs={q}{NS_CHATSTATES}{q}/>")
        } else {
            format!("<{state} xmlns={q}{NS_CHATSTATES}{q}/>")
        };
        let hint = if self.rng.chance(20) {
            format!("<no-store xmlns={q}{NS_HINTS}{q}/>")
        } else {
            String::new()
        };
        let start = self.message_start(room, id.as_deref(), None, q);
        self.send_message(step, user, format!("{start}{payload}{hint}</message>"), id);
    }

    fn displayed(&mut self, step: &mut Step, user: usize, room: usize) {
        if self.recent[room].is_empty() {
            return self.chat_state(step, user, room);
        }
        let q = self.quote();
        let target = self
            .rng
            .pick(self.recent[room].make_contiguous())
            .id
            .clone();
        let id = self.new_id(user);
        let start = self.message_start(room, Some(&id), None, q);
        let xml =
            format!("{start}<displayed xmlns={q}{NS_MARKERS}{q} id={q}{target}{q}/></message>");
        self.send_message(step, user, xml, Some(id));
    }

    /// A presence to `room/nick` with the user's caps and avatar (and maybe show and status).
    fn presence(&mut self, user: usize, room: usize, nick: &str, extra: &str) -> String {
        let q = self.quote();
        let payload = presence_payload(
            &mut self.rng,
            user,
            &self.caps_ver[user],
            self.photo[user].as_deref(),
            q,
        );
        let id = if self.rng.chance(80) {
            format!(" id={q}{}{q}", self.new_id(user))
        } else {
            String::new()
        };
        format!(
            "<presence to={q}{}/{nick}{q}{id}>{payload}{extra}</presence>",
            self.rooms[room]
        )
    }

    fn join(&mut self, step: &mut Step, user: usize, room: usize, history: &str) {
        let nick = NICKS[user][0];
        let xml = self.presence(
            user,
            room,
            nick,
            &format!("<x xmlns='{NS_MUC}'>{history}</x>"),
        );
        step.out[user].push_str(&xml);
        self.nicks[user][room] = Some(nick.to_owned());
        let key = format!("presence:{}/{nick}:available", self.rooms[room]);
        self.expect(step, key);
    }

    fn leave(&mut self, step: &mut Step, user: usize, room: usize) {
        let Some(nick) = self.nicks[user][room].take() else {
            return;
        };
        let q = self.quote();
        let status = if self.rng.chance(50) {
            format!("<status>{}</status>", self.text(20))
        } else {
            String::new()
        };
        let to = format!("{}/{nick}", self.rooms[room]);
        let xml = if self.rng.chance(50) {
            format!("<presence type={q}unavailable{q} to={q}{to}{q}>{status}</presence>")
        } else {
            format!("<presence to={q}{to}{q} type={q}unavailable{q}>{status}</presence>")
        };
        step.out[user].push_str(&xml);
        self.expect(step, format!("presence:{to}:unavailable"));
    }

    fn change_nick(&mut self, step: &mut Step, user: usize, room: usize, nick: &str) {
        let choices: Vec<&str> = NICKS[user].iter().copied().filter(|n| *n != nick).collect();
        if choices.is_empty() {
            return self.update_presence(step, user, room, nick);
        }
        let new = *self.rng.pick(&choices);
        let xml = self.presence(user, room, new, "");
        step.out[user].push_str(&xml);
        self.nicks[user][room] = Some(new.to_owned());
        let key = format!("presence:{}/{new}:available", self.rooms[room]);
        self.expect(step, key);
    }

    fn update_presence(&mut self, step: &mut Step, user: usize, room: usize, nick: &str) {
        if self.rng.chance(10) {
            self.caps_ver[user] = base64(&self.rng.bytes(20));
        }
        if self.rng.chance(5) {
            self.photo[user] = Some(self.rng.hex(40));
        }
        let mut extra = Vec::new();
        if self.rng.chance(60) {
            let show = *self.rng.pick(&["away", "xa", "dnd", "chat"]);
            extra.push(format!("<show>{show}</show>"));
        }
        if self.rng.chance(50) {
            let len = self.rng.range(5, 60);
            extra.push(format!("<status>{}</status>", self.text(len)));
        }
        if self.rng.chance(20) {
            extra.push(format!("<priority>{}</priority>", self.rng.below(50)));
        }
        if self.rng.chance(10) {
            extra.push("<idle xmlns='urn:xmpp:idle:1' since='2024-05-01T10:15:30Z'/>".to_owned());
        }
        self.rng.shuffle(&mut extra);
        let xml = self.presence(user, room, nick, &extra.concat());
        step.out[user].push_str(&xml);
        let key = format!("presence:{}/{nick}:available", self.rooms[room]);
        self.expect(step, key);
    }

    /// Bob asks for one page of the room's archive and moves his cursor.
    fn mam_page(&mut self, room: usize) -> io::Result<()> {
        self.counter += 1;
        let n = self.counter;
        let id = format!("mam-{n}");
        let max = *self.rng.pick(&[25, 50, 50, 100]);
        let set = match &self.mam[room] {
            Cursor::Forward(None) => format!("<max>{max}</max>"),
            Cursor::Forward(Some(after)) => format!("<max>{max}</max><after>{after}</after>"),
            Cursor::Backward(None) => format!("<max>{max}</max><before/>"),
            Cursor::Backward(Some(before)) => format!("<max>{max}</max><before>{before}</before>"),
        };
        let mut step = Step::new();
        let _ = write!(
            step.out[BOB],
            "<iq type='set' to='{}' id='{id}'><query xmlns='{NS_MAM}' queryid='q{n}'>\
             <set xmlns='http://jabber.org/protocol/rsm'>{set}</set></query></iq>",
            self.rooms[room]
        );
        self.expect(&mut step, format!("id:{id}"));
        self.flush(step, &format!("MAM query {id}"))?;
        let Some(fin) = self.fins.get(&id) else {
            return Ok(());
        };
        let complete = fin.contains("complete='true'") || fin.contains("complete=\"true\"");
        let first = element_text(fin, "first");
        let last = element_text(fin, "last");
        self.mam[room] = match &self.mam[room] {
            Cursor::Forward(_) if complete || last.is_none() => Cursor::Backward(None),
            Cursor::Forward(_) => Cursor::Forward(last),
            Cursor::Backward(_) if complete || first.is_none() => Cursor::Forward(None),
            Cursor::Backward(_) => Cursor::Backward(first),
        };
        Ok(())
    }

    /// Bob leaves the room and joins it again, with some history.
    fn bob_rejoins(&mut self, room: usize) -> io::Result<()> {
        let mut step = Step::new();
        let to = format!("{}/bob", self.rooms[room]);
        step.out[BOB].push_str(&format!("<presence to='{to}' type='unavailable'/>"));
        self.expect(&mut step, format!("presence:{to}:unavailable"));
        self.flush(step, "bob leaves")?;
        let mut step = Step::new();
        let history = format!("<history maxstanzas='{}'/>", self.rng.range(5, 40));
        self.join(&mut step, BOB, room, &history);
        self.expect(&mut step, format!("subject:{}", self.rooms[room]));
        self.flush(step, "bob rejoins")
    }
}

/// Caps, avatar hash and sometimes show/status, in a random order.
fn presence_payload(rng: &mut Rng, user: usize, ver: &str, photo: Option<&str>, q: char) -> String {
    let mut parts = vec![format!(
        "<c xmlns={q}{NS_CAPS}{q} hash={q}sha-1{q} node={q}{}{q} ver={q}{ver}{q}/>",
        CLIENTS[user]
    )];
    if rng.chance(90) {
        parts.push(match photo {
            Some(hash) => format!("<x xmlns={q}{NS_VCARD_UPDATE}{q}><photo>{hash}</photo></x>"),
            None => format!("<x xmlns={q}{NS_VCARD_UPDATE}{q}><photo/></x>"),
        });
    }
    rng.shuffle(&mut parts);
    parts.concat()
}

/// Alice joins (creating the room), submits its configuration and sets its subject.
fn create_room(
    alice: &mut RawClient,
    kind: ServerKind,
    room: &str,
    i: usize,
    join: &str,
) -> io::Result<()> {
    alice.send(join)?;
    alice.read_until_any(&["code='110'", "code=\"110\""])?;
    let archiving = match kind {
        ServerKind::Prosody => "muc#roomconfig_enablearchiving",
        ServerKind::Ejabberd => "mam",
    };
    let fields = [
        ("muc#roomconfig_roomname", format!("Room {}", i + 1)),
        ("muc#roomconfig_roomdesc", "Recorded traffic".to_owned()),
        ("muc#roomconfig_persistentroom", "1".to_owned()),
        ("muc#roomconfig_publicroom", "1".to_owned()),
        ("muc#roomconfig_membersonly", "0".to_owned()),
        ("muc#roomconfig_whois", "anyone".to_owned()),
        (archiving, "1".to_owned()),
    ];
    let mut form =
        format!("<field var='FORM_TYPE' type='hidden'><value>{NS_MUC}#roomconfig</value></field>");
    for (var, value) in fields {
        let _ = write!(form, "<field var='{var}'><value>{value}</value></field>");
    }
    let id = format!("config{i}");
    let submit = format!(
        "<iq type='set' to='{room}' id='{id}'><query xmlns='{NS_MUC}#owner'>\
         <x xmlns='jabber:x:data' type='submit'>{form}</x></query></iq>"
    );
    request(alice, &submit, &id)?;
    let subject = [
        "Release planning — Q3 🚀",
        "Support &amp; operations",
        "日本語チャンネル",
    ][i % 3];
    alice.send(&format!(
        "<message to='{room}' type='groupchat' id='subject{i}'><subject>{subject}</subject></message>"
    ))
}

/// Sends the IQ `xml`, whose id is `id`, and waits for its answer, which must be a result.
fn request(client: &mut RawClient, xml: &str, id: &str) -> io::Result<()> {
    client.send(xml)?;
    let (single, double) = (format!("id='{id}'"), format!("id=\"{id}\""));
    let head = client.read_until_any(&[&single, &double])?;
    // The answer's start tag: what came before its id, and the rest.
    let tag = format!(
        "{}{}",
        &head[head.rfind('<').unwrap_or(0)..],
        client.read_until(">")?
    );
    if tag.contains("result") {
        Ok(())
    } else {
        Err(io::Error::other(format!("{id} refused: {tag}")))
    }
}

/// The user's vCard (XEP-0054) with a made-up photo, or `None` for a user without an avatar.
/// ejabberd writes the XEP-0153 hash of presences itself, from the stored vCard (it empties
/// the one the client sent when there is none); Prosody passes the client's on.
fn vcard_set(rng: &mut Rng, user: usize, photo: Option<&str>) -> Option<(String, String)> {
    photo?;
    let name = USERS[user];
    let id = format!("vcard-{name}");
    let size = rng.range(90, 300);
    let binval = base64(&rng.bytes(size));
    let xml = format!(
        "<iq type='set' id='{id}'><vCard xmlns='vcard-temp'><FN>{name}</FN>\
         <NICKNAME>{name}</NICKNAME><PHOTO><TYPE>image/png</TYPE><BINVAL>{binval}</BINVAL>\
         </PHOTO></vCard></iq>"
    );
    Some((xml, id))
}

// ------------------------------------------------------------------------------------------
// Reading

/// Reads `stream` until it ends, handing every complete top-level element to `on_element`
/// (which returns false to stop). `leftover` is what was received before.
fn read_elements(
    mut stream: TcpStream,
    leftover: Vec<u8>,
    mut on_element: impl FnMut(Vec<u8>) -> bool,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut framer = Framer::default();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut data = leftover;
    loop {
        for element in framer.push(&data) {
            if !on_element(element) {
                return;
            }
        }
        data.clear();
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

/// Reads and drops what a sender receives, reporting the first errors it gets.
fn drain(name: &str, stream: TcpStream, leftover: Vec<u8>) {
    let mut errors = 0;
    read_elements(stream, leftover, |element| {
        let text = String::from_utf8_lossy(&element);
        if tags(&text).first().and_then(|t| t.attr("type")) == Some("error") {
            errors += 1;
            if errors <= 3 {
                eprintln!("   {name} got an error: {}", &text[..text.len().min(600)]);
            }
        }
        true
    });
}

/// Cuts the bytes of a stream (after its header) into top-level elements by tracking element
/// depth. Enough for what servers send: well-formed XML without DTDs; text between elements
/// (whitespace keepalives) and the stream's end tag are dropped.
#[derive(Default)]
struct Framer {
    buf: Vec<u8>,
    /// Where scanning resumes.
    pos: usize,
    depth: usize,
    /// Where the current top-level element starts (when `depth > 0`).
    start: usize,
}

impl Framer {
    fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(lt) = self.buf[self.pos..].iter().position(|&b| b == b'<') {
            let i = self.pos + lt;
            let rest = &self.buf[i..];
            if rest.len() < 2 || (rest[1] == b'!' && rest.len() < 9 && !rest.starts_with(b"<!--")) {
                self.pos = i;
                break;
            }
            let len = if rest[1] == b'?' {
                find(rest, b"?>").map(|p| p + 2)
            } else if rest.starts_with(b"<!--") {
                find(&rest[4..], b"-->").map(|p| p + 7)
            } else if rest.starts_with(b"<![CDATA[") {
                find(&rest[9..], b"]]>").map(|p| p + 12)
            } else {
                tag_end(rest).map(|p| p + 1)
            };
            let Some(len) = len else {
                self.pos = i;
                break;
            };
            let end = i + len;
            match rest[1] {
                b'?' | b'!' => {}
                b'/' => {
                    // At depth 0 this is the stream's own end tag.
                    if self.depth > 0 {
                        self.depth -= 1;
                        if self.depth == 0 {
                            out.push(self.buf[self.start..end].to_vec());
                        }
                    }
                }
                _ if rest[len - 2] == b'/' => {
                    if self.depth == 0 {
                        out.push(self.buf[i..end].to_vec());
                    }
                }
                _ => {
                    if self.depth == 0 {
                        self.start = i;
                    }
                    self.depth += 1;
                }
            }
            self.pos = end;
        }
        if self.depth == 0 && !self.buf[self.pos..].contains(&b'<') {
            self.pos = self.buf.len();
        }
        let done = if self.depth > 0 {
            self.start.min(self.pos)
        } else {
            self.pos
        };
        self.buf.drain(..done);
        self.pos -= done;
        self.start = self.start.saturating_sub(done);
        out
    }
}

/// The offset of the `>` that ends the tag `tag` starts with (quotes respected).
fn tag_end(tag: &[u8]) -> Option<usize> {
    let mut quote = None;
    for (k, &b) in tag.iter().enumerate().skip(1) {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b'>' => return Some(k),
            None => {}
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One start tag of an element.
struct Tag<'a> {
    /// The qualified name (`r:reactions`).
    name: &'a str,
    /// The start tag, `<` to `>`.
    raw: &'a str,
    /// Its offset in the element.
    start: usize,
    /// 0 for the top-level element.
    depth: usize,
    /// The index of the parent's tag.
    parent: Option<usize>,
    ns: String,
}

impl Tag<'_> {
    fn local(&self) -> &str {
        self.name.rsplit(':').next().unwrap_or(self.name)
    }

    fn attr(&self, name: &str) -> Option<&str> {
        attr(self.raw, name)
    }
}

/// The value of attribute `name` in the start tag `tag`, as written (not unescaped).
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    attr_span(tag, name).map(|(start, end)| &tag[start..end])
}

/// Where the value of attribute `name` is in the start tag `tag` (without the quotes).
fn attr_span(tag: &str, name: &str) -> Option<(usize, usize)> {
    let bytes = tag.as_bytes();
    let mut from = 0;
    while let Some(p) = tag[from..].find(name) {
        let at = from + p;
        from = at + name.len();
        let before = at.checked_sub(1).map(|b| bytes[b]);
        if !before.is_some_and(|b| b.is_ascii_whitespace()) || bytes.get(from) != Some(&b'=') {
            continue;
        }
        let q = *bytes.get(from + 1)?;
        let start = from + 2;
        return tag[start..]
            .find(char::from(q))
            .map(|len| (start, start + len));
    }
    None
}

/// The start tags of `xml` (one element) in document order, with depth, parent and namespace.
fn tags(xml: &str) -> Vec<Tag<'_>> {
    let mut out: Vec<Tag<'_>> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut i = 0;
    while let Some(p) = xml[i..].find('<') {
        let at = i + p;
        let rest = &xml.as_bytes()[at..];
        let Some(end) = tag_end(rest) else { break };
        i = at + end + 1;
        match rest.get(1) {
            Some(b'/') => {
                open.pop();
            }
            Some(b'?' | b'!') | None => {}
            Some(_) => {
                let raw = &xml[at..=at + end];
                let name_end = raw[1..]
                    .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
                    .map_or(raw.len(), |e| e + 1);
                let name = &raw[1..name_end];
                let decl = match name.split_once(':') {
                    Some((prefix, _)) => format!("xmlns:{prefix}"),
                    None => "xmlns".to_owned(),
                };
                let ns = std::iter::once(raw)
                    .chain(open.iter().rev().map(|&o| out[o].raw))
                    .find_map(|t| attr(t, &decl))
                    .unwrap_or("jabber:client")
                    .to_owned();
                out.push(Tag {
                    name,
                    raw,
                    start: at,
                    depth: open.len(),
                    parent: open.last().copied(),
                    ns,
                });
                if !raw.ends_with("/>") {
                    open.push(out.len() - 1);
                }
            }
        }
    }
    out
}

/// What bob's seeing a stanza tells the pacing: `id:<id>`, `presence:<from>:<type>`,
/// `subject:<room>`.
fn keys(tags: &[Tag<'_>]) -> Vec<String> {
    let root = &tags[0];
    let mut keys = Vec::new();
    if let Some(id) = root.attr("id") {
        keys.push(format!("id:{id}"));
    }
    let from = root.attr("from").unwrap_or_default();
    match root.local() {
        "presence" => {
            let kind = root.attr("type").unwrap_or("available");
            keys.push(format!("presence:{from}:{kind}"));
        }
        "message" if tags.iter().any(|t| t.depth == 1 && t.local() == "subject") => {
            let room = from.split('/').next().unwrap_or_default();
            keys.push(format!("subject:{room}"));
        }
        _ => {}
    }
    keys
}

/// The text of the first `<name>` element in `xml`.
fn element_text(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{name}"))?;
    let open_end = start + xml[start..].find('>')? + 1;
    let len = xml[open_end..].find(&format!("</{name}>"))?;
    Some(xml[open_end..open_end + len].to_owned())
}

/// Characters of escaped text once its entity and character references are resolved.
fn unescaped_len(escaped: &str) -> usize {
    let mut n = 0;
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c == '&' {
            for c in chars.by_ref() {
                if c == ';' {
                    break;
                }
            }
        }
        n += 1;
    }
    n
}

/// The stanza with its top-level `to='bob@localhost/raw'` (either quote) made
/// [`BENCH_JID`]; `None` when it is not addressed so.
fn readdress(stanza: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(&stanza[..=tag_end(stanza)?]).ok()?;
    let (start, end) = attr_span(head, "to")?;
    if &head[start..end] != RECIPIENT {
        return None;
    }
    let mut out = Vec::with_capacity(stanza.len() + BENCH_JID.len());
    out.extend_from_slice(&stanza[..start]);
    out.extend_from_slice(BENCH_JID.as_bytes());
    out.extend_from_slice(&stanza[end..]);
    Some(out)
}

// ------------------------------------------------------------------------------------------
// Output

fn write_corpus(path: &Path, recordings: &[Recording]) -> io::Result<usize> {
    let mut out = format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' id='{}' from='localhost' \
         version='1.0' xml:lang='en'>",
        Rng(SEED).next() % 10_000_000_000_000_000_000
    )
    .into_bytes();
    for recording in recordings {
        for stanza in &recording.stanzas {
            out.extend_from_slice(stanza);
        }
    }
    out.extend_from_slice(b"</stream:stream>");
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, &out)?;
    Ok(out.len())
}

/// Counts of the kinds of stanzas in one recording.
#[derive(Default)]
struct Stats {
    stanzas: usize,
    bytes: usize,
    live: usize,
    history: usize,
    subjects: usize,
    no_body: usize,
    several_bodies: usize,
    unknown_payloads: usize,
    server_extras: usize,
    mam_results: usize,
    presences: usize,
    unavailable: usize,
    self_presences: usize,
    with_caps: usize,
    with_vcard: usize,
    fins: usize,
    other_iqs: usize,
    errors: usize,
    unknown_ns: BTreeMap<String, usize>,
}

impl Stats {
    fn of(stanzas: &[Vec<u8>]) -> Self {
        let mut s = Self::default();
        for stanza in stanzas {
            let text = String::from_utf8_lossy(stanza);
            let tags = tags(&text);
            let root = &tags[0];
            s.stanzas += 1;
            s.bytes += stanza.len();
            if root.attr("type") == Some("error") {
                s.errors += 1;
            }
            let child = |local: &str, ns: &str| {
                tags.iter()
                    .any(|t| t.parent == Some(0) && t.local() == local && t.ns == ns)
            };
            match root.local() {
                "message" => {
                    let in_message =
                        |t: &Tag<'_>| t.parent.is_some_and(|p| tags[p].local() == "message");
                    if child("result", NS_MAM) {
                        s.mam_results += 1;
                    } else {
                        s.live += 1;
                        s.history += usize::from(child("delay", "urn:xmpp:delay"));
                        s.subjects += usize::from(child("subject", "jabber:client"));
                    }
                    let bodies = tags
                        .iter()
                        .filter(|t| t.local() == "body" && t.ns == "jabber:client" && in_message(t))
                        .count();
                    s.no_body += usize::from(bodies == 0);
                    s.several_bodies += usize::from(bodies > 1);
                    let (mut unknown, mut extra) = (false, false);
                    for t in tags.iter().filter(|t| in_message(t)) {
                        let ns = t.ns.as_str();
                        if SERVER_EXTRA_NS.contains(&ns) {
                            extra = true;
                        } else if !KNOWN_MESSAGE_NS.contains(&ns) {
                            *s.unknown_ns.entry(t.ns.clone()).or_insert(0) += 1;
                            unknown = true;
                        }
                    }
                    s.server_extras += usize::from(extra);
                    s.unknown_payloads += usize::from(unknown);
                }
                "presence" => {
                    s.presences += 1;
                    s.unavailable += usize::from(root.attr("type") == Some("unavailable"));
                    s.self_presences += usize::from(
                        tags.iter()
                            .any(|t| t.local() == "status" && t.attr("code") == Some("110")),
                    );
                    s.with_caps += usize::from(child("c", NS_CAPS));
                    s.with_vcard += usize::from(child("x", NS_VCARD_UPDATE));
                }
                _ => {
                    if tags.iter().any(|t| t.local() == "fin" && t.ns == NS_MAM) {
                        s.fins += 1;
                    } else {
                        s.other_iqs += 1;
                    }
                }
            }
        }
        s
    }
}

/// A line of the summary: its label and how to count it.
type Row = (&'static str, fn(&Stats) -> usize);

fn print_summary(recordings: &[Recording], out: &Path, size: usize) {
    let stats: Vec<Stats> = recordings.iter().map(|r| Stats::of(&r.stanzas)).collect();
    let total: usize = stats.iter().map(|s| s.stanzas).sum();
    println!("\n== {}: {total} stanzas, {size} bytes", out.display());
    let mut header = format!("{:<34}", "");
    for r in recordings {
        let _ = write!(header, "{:>12}", r.kind.to_string());
    }
    println!("{header}");
    let rows: [Row; 19] = [
        ("stanzas", |s| s.stanzas),
        ("bytes", |s| s.bytes),
        ("messages, live", |s| s.live),
        ("  of which room history (delay)", |s| s.history),
        ("  of which subject", |s| s.subjects),
        ("messages, MAM results", |s| s.mam_results),
        ("messages without body", |s| s.no_body),
        ("messages with several bodies", |s| s.several_bodies),
        ("messages with unknown payloads", |s| s.unknown_payloads),
        ("messages with ejabberd's extras", |s| s.server_extras),
        ("presences", |s| s.presences),
        ("  unavailable", |s| s.unavailable),
        ("  self-presence (110)", |s| s.self_presences),
        ("  with caps", |s| s.with_caps),
        ("  with vCard update", |s| s.with_vcard),
        ("IQs, MAM fin", |s| s.fins),
        ("IQs, other", |s| s.other_iqs),
        ("errors (type='error')", |s| s.errors),
        ("unknown-payload elements", |s| s.unknown_ns.values().sum()),
    ];
    for (label, get) in rows {
        let mut line = format!("{label:<34}");
        for s in &stats {
            let _ = write!(line, "{:>12}", get(s));
        }
        println!("{line}");
    }
    for (r, s) in recordings.iter().zip(&stats) {
        println!("{}:", r.kind);
        println!("  unknown payload namespaces: {:?}", s.unknown_ns);
        println!("  received but not recorded: {:?}", r.skipped);
        println!("  awaited but never received: {}", r.lost);
        println!("  left with their own `to`: {}", r.not_readdressed);
    }
}

// ------------------------------------------------------------------------------------------
// Randomness

/// xorshift64*: deterministic content without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `lo..hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16)]))
            .collect()
    }

    fn alnum(&mut self, n: usize) -> String {
        const SET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        (0..n)
            .map(|_| char::from(SET[self.below(SET.len())]))
            .collect()
    }

    fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-4{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[13..16],
            &h[16..20],
            &h[20..]
        )
    }
}
