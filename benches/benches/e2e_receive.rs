//! End to end, socket to application: the CPU a receiver spends per group message, and its
//! peak memory, for our SDK, tokio-xmpp + xmpp-parsers, and a raw floor that only counts
//! message ends in 64 KiB reads — against real Prosody and ejabberd, started like the tests
//! start them.
//!
//! `cargo bench -p groupchat-benches --bench e2e_receive [-- --messages N --reps R]`
//!
//! `-- --catch-up [--messages N] [--server prosody|ejabberd]` measures the SDK's catch-up
//! instead: bob (SDK, file position store) is offline while alice sends N messages to an
//! archived group; a new bob process then logs in and reads them from the archive. Wall
//! time, CPU per message and peak RSS, for N and for N / 10 (the same RSS for both shows that
//! pages are handed on, not collected).
//!
//! Each receiver runs in a process of its own (this binary, re-run with `--receiver`), so
//! that `getrusage` counts its CPU and peak RSS alone. It logs in as bob, joins the
//! members-only group alice made, says READY, then reads until it has N group messages with
//! a body and reports the user + system CPU it spent between READY and the last message.
//! Alice floods the group from this (parent) process meanwhile. Every receiver runs on a
//! multi-threaded tokio runtime with two workers (the default an application gets on this
//! 2-core machine), the floor on a plain blocking socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use groupchat_test_support::{RawClient, ServerKind, TestServer};

const BODY: &str = "The quick brown fox jumps over the lazy dog, and then over the lazy dog again.";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| groupchat_benches::arg(&args, name);
    if let Some(receiver) = arg("--receiver") {
        let count: usize = arg("--count").unwrap().parse().unwrap();
        let addr = arg("--addr").unwrap();
        let room = arg("--room").unwrap();
        if receiver == "sdk-catch-up" {
            let store = arg("--store").unwrap();
            let (cpu, rss, wall_ms) = runtime().block_on(sdk_catch_up(&addr, &store, count));
            println!("DONE {cpu} {rss} {wall_ms}");
            return;
        }
        let (cpu, rss) = match receiver.as_str() {
            "floor" => floor(&addr, &room, count),
            "async-floor" => async_floor(&addr, &room, count),
            "sdk" => runtime().block_on(sdk(&addr, &room, count)),
            "tokio-xmpp" => runtime().block_on(tokio_xmpp(&addr, &room, count)),
            other => panic!("unknown receiver {other}"),
        };
        println!("DONE {cpu} {rss} {}", switches());
        return;
    }
    if args.iter().any(|a| a == "--catch-up") {
        let messages = arg("--messages").map_or(10_000, |n| n.parse().unwrap());
        catch_up(messages, arg("--server").as_deref());
        return;
    }
    let messages: usize = arg("--messages").map_or(20_000, |n| n.parse().unwrap());
    let reps: usize = arg("--reps").map_or(3, |n| n.parse().unwrap());
    // `--server prosody|ejabberd` and `--only floor|tokio-xmpp|sdk` narrow a run (profiling).
    let only_server = arg("--server");
    let only = arg("--only");
    let mut table = Vec::new();
    for kind in ServerKind::ALL {
        if only_server
            .as_deref()
            .is_some_and(|s| !kind.to_string().eq_ignore_ascii_case(s))
        {
            continue;
        }
        let Some(server) = TestServer::start(kind) else {
            continue;
        };
        let room = make_group(&server);
        unarchived(&server, &room);
        let mut results: Vec<(&str, Vec<f64>, Vec<u64>)> = Vec::new();
        for name in ["floor", "async-floor", "tokio-xmpp", "sdk"] {
            if only.as_deref().is_some_and(|o| o != name) {
                continue;
            }
            let (mut cpus, mut rsss) = (Vec::new(), Vec::new());
            for rep in 0..reps {
                let (cpu_us, rss_kb) = run_receiver(&server, &room, name, messages, rep);
                cpus.push(cpu_us as f64 / messages as f64);
                rsss.push(rss_kb);
            }
            eprintln!("{kind} {name}: µs/message {cpus:.2?}, peak RSS KiB {rsss:?}");
            results.push((name, cpus, rsss));
        }
        table.push((kind, results));
    }
    println!(
        "\n{messages} group messages per run, {reps} runs; CPU per message = (user + system) / messages, median; peak RSS = max over runs\n"
    );
    println!(
        "| server | receiver | CPU µs / message (median) | runs | peak RSS KiB | ÷ tokio-xmpp CPU |"
    );
    println!("| --- | --- | ---: | --- | ---: | ---: |");
    for (kind, results) in &table {
        let baseline = results
            .iter()
            .find(|r| r.0 == "tokio-xmpp")
            .map(|r| median(&r.1))
            .unwrap_or(f64::NAN);
        for (name, cpus, rsss) in results {
            let m = median(cpus);
            println!(
                "| {kind} | {name} | {m:.2} | {} | {} | {:.2} |",
                cpus.iter()
                    .map(|c| format!("{c:.2}"))
                    .collect::<Vec<_>>()
                    .join(" / "),
                rsss.iter().max().unwrap(),
                m / baseline
            );
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Alice's members-only group with bob as a member, made through the SDK like an
/// application would.
fn make_group(server: &TestServer) -> String {
    runtime().block_on(async {
        let alice = groupchat_sdk::Client::builder("alice@localhost", "alicepass")
            .tcp(
                groupchat_sdk::transport_tcp::TcpConnector::builder("localhost")
                    .address(server.c2s_addr())
                    .tls(groupchat_sdk::TlsOptions::ca_file(server.ca_cert_pem()))
                    .build()
                    .unwrap(),
            )
            .connect()
            .await
            .expect("alice logs in");
        let group = alice
            .create_group("Flood", &["bob@localhost"], None)
            .await
            .expect("the group");
        group.jid.to_string()
    })
}

/// Turns the room's archive off. ejabberd 23.01 keeps MAM in mnesia bag tables here, where
/// each insert costs time in the number of messages the room already holds: it delivers a
/// flood at tens of messages a second, one per TCP segment, and every receiver then
/// measures a wake-up per message rather than its receive path. Off on both servers, so
/// that the rooms have the same shape.
fn unarchived(server: &TestServer, room: &str) {
    use groupchat_protocol::codec::xep::muc_owner;
    use groupchat_protocol::codec::{NsContext, Stanza, decode_stanza};

    let mut alice = RawClient::login(server.c2s_addr(), "localhost", "alice", "alicepass")
        .expect("alice logs in");
    alice.send(&join_presence(room, "alice-config")).unwrap();
    alice.read_until("status code='110'").unwrap();
    let get = String::from_utf8(muc_owner::get_config(room, "cfg-get")).unwrap();
    alice.send(&get).unwrap();
    let answer = alice.read_until("</iq>").unwrap();
    let iq = &answer[answer.rfind("<iq").unwrap()..];
    let Ok(Stanza::Iq(iq)) = decode_stanza(iq.as_bytes(), &NsContext::client()) else {
        panic!("no configuration form: {answer}");
    };
    let form = muc_owner::decode_config_form(&iq).expect("the form");
    let mut config = muc_owner::RoomConfig::group("Flood");
    config.archiving = false;
    let set = muc_owner::submit_config(room, "cfg-set", &config, &form);
    alice.send(&String::from_utf8(set).unwrap()).unwrap();
    // The answer's start tag (it may close itself): what came before its id, and the rest.
    let head = alice.read_until_any(&["'cfg-set'", "\"cfg-set\""]).unwrap();
    let tag = format!(
        "{}{}",
        &head[head.rfind('<').unwrap()..],
        alice.read_until(">").unwrap()
    );
    assert!(tag.contains("result"), "archiving not turned off: {tag}");
}

/// One run of one receiver: start it, flood when it is ready, read its report.
fn run_receiver(
    server: &TestServer,
    room: &str,
    name: &str,
    messages: usize,
    rep: usize,
) -> (u64, u64) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(receiver_args(server, name, room, messages))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Alice stays connected until the receiver is done (a closed stream may lose what the
    // server had not yet read).
    let line = report_after(&mut child, name, || {
        flood(server, room, messages, &format!("{name}{rep}"))
    });
    let mut parts = line.split_whitespace();
    assert_eq!(parts.next(), Some("DONE"), "{name}: {line}");
    let cpu = parts.next().unwrap().parse().unwrap();
    let rss = parts.next().unwrap().parse().unwrap();
    let switches: u64 = parts.next().unwrap().parse().unwrap();
    eprintln!(
        "{name}: {:.2} context switches per message",
        switches as f64 / messages as f64
    );
    (cpu, rss)
}

/// The command line of receiver `name`.
fn receiver_args(server: &TestServer, name: &str, room: &str, count: usize) -> Vec<String> {
    [
        "--receiver",
        name,
        "--addr",
        &server.c2s_addr().to_string(),
        "--room",
        room,
        "--count",
        &count.to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Waits for the receiver's READY, runs `then` (kept alive until the receiver is done), and
/// returns the receiver's last line once it has ended.
fn report_after<T>(
    child: &mut std::process::Child,
    name: &str,
    then: impl FnOnce() -> T,
) -> String {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY", "{name}: {line}");
    let _kept = then();
    line.clear();
    out.read_line(&mut line).unwrap();
    child.wait().unwrap();
    line
}

/// Alice joins and sends `n` messages to the group as fast as the socket takes them.
fn flood(server: &TestServer, room: &str, n: usize, tag: &str) -> RawClient {
    let mut alice = RawClient::login(server.c2s_addr(), "localhost", "alice", "alicepass")
        .expect("alice logs in");
    alice
        .send(&format!(
            "<presence to='{room}/alice-{tag}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"
        ))
        .unwrap();
    alice.read_until("status code='110'").unwrap();
    // In rounds of 500, each sent once alice sees the room reflect the last one: the
    // server's queues stay short (ejabberd drops a room's messages past its process queue
    // limit when 20,000 arrive at once).
    let mut batch = String::new();
    for round in (0..n).collect::<Vec<_>>().chunks(500) {
        for i in round {
            batch.push_str(&format!(
                "<message to='{room}' type='groupchat' id='{tag}-{i}'><body>{BODY} #{i}</body><origin-id xmlns='urn:xmpp:sid:0' id='{tag}-{i}'/></message>"
            ));
        }
        alice.send(&batch).unwrap();
        batch.clear();
        let last = round[round.len() - 1];
        alice
            .read_until(&format!("#{last}</body>"))
            .unwrap_or_else(|e| panic!("the room did not reflect message {last}: {e}"));
    }
    alice
}

/// CPU time of this process so far (µs: user + system, summed over its threads from
/// `/proc/self/task/*/schedstat`, which counts in nanoseconds), and its peak RSS (KiB,
/// `VmHWM`). Read from /proc because `getrusage` needs `unsafe` (forbidden here); the
/// runtimes' threads live as long as the process, so none is missed.
fn usage() -> (u64, u64) {
    let (ns, _) = cpu_and_switches();
    (ns / 1000, groupchat_benches::peak_rss_kib())
}

/// CPU nanoseconds and context switches (voluntary + involuntary: each is a sleep and a
/// wake-up, or a preemption), summed over this process's threads.
fn cpu_and_switches() -> (u64, u64) {
    let (mut ns, mut switches) = (0u64, 0u64);
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        if let Ok(s) = std::fs::read_to_string(dir.join("schedstat")) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(s) = std::fs::read_to_string(dir.join("status")) {
            switches += s
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    (ns, switches)
}

static SWITCHES_AT_READY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn ready() -> u64 {
    println!("READY");
    std::io::stdout().flush().unwrap();
    SWITCHES_AT_READY.store(cpu_and_switches().1, std::sync::atomic::Ordering::Relaxed);
    usage().0
}

/// Context switches since READY.
fn switches() -> u64 {
    cpu_and_switches().1 - SWITCHES_AT_READY.load(std::sync::atomic::Ordering::Relaxed)
}

fn join_presence(room: &str, nick: &str) -> String {
    format!(
        "<presence to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"
    )
}

/// The floor: log in, join, then count `</body>` in 64 KiB reads (each flood message has
/// one body; nothing is parsed).
fn floor(addr: &str, room: &str, count: usize) -> (u64, u64) {
    let mut bob = RawClient::login(addr.parse().unwrap(), "localhost", "bob", "bobpass")
        .expect("bob logs in");
    bob.send(&join_presence(room, "bob-floor")).unwrap();
    bob.read_until("status code='110'").unwrap();
    let (mut stream, pending): (TcpStream, Vec<u8>) = bob.into_parts();
    let start = ready();
    let mut bodies = Bodies::new(&pending);
    let mut buf = vec![0u8; 64 * 1024];
    while bodies.seen < count {
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "the server closed the stream");
        bodies.feed(&buf[..n]);
    }
    let (end, rss) = usage();
    (end - start, rss)
}

/// Counts `</body>` in a byte stream read in chunks.
struct Bodies {
    finder: memchr::memmem::Finder<'static>,
    /// The end of the previous chunk: a marker split across two reads is found with it.
    tail: Vec<u8>,
    seen: usize,
}

impl Bodies {
    fn new(already: &[u8]) -> Self {
        let finder = memchr::memmem::Finder::new(b"</body>");
        let seen = finder.find_iter(already).count();
        Self {
            finder,
            tail: Vec::new(),
            seen,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        self.tail.extend_from_slice(chunk);
        self.seen += self.finder.find_iter(&self.tail).count();
        let keep = self.tail.len().min(6);
        self.tail.drain(..self.tail.len() - keep);
    }
}

/// The async floor: the floor's counting, but reading from a tokio socket inside `block_on`
/// on the same runtime as the other receivers. What it costs above the floor is the wake-ups
/// of an async receiver on this runtime, which no async client avoids.
fn async_floor(addr: &str, room: &str, count: usize) -> (u64, u64) {
    use tokio::io::AsyncReadExt as _;
    let mut bob = RawClient::login(addr.parse().unwrap(), "localhost", "bob", "bobpass")
        .expect("bob logs in");
    bob.send(&join_presence(room, "bob-async-floor")).unwrap();
    bob.read_until("status code='110'").unwrap();
    let (stream, pending): (TcpStream, Vec<u8>) = bob.into_parts();
    stream.set_nonblocking(true).unwrap();
    runtime().block_on(async move {
        let mut stream = tokio::net::TcpStream::from_std(stream).unwrap();
        let start = ready();
        let mut bodies = Bodies::new(&pending);
        let mut buf = vec![0u8; 64 * 1024];
        while bodies.seen < count {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the stream");
            bodies.feed(&buf[..n]);
        }
        let (end, rss) = usage();
        (end - start, rss)
    })
}

/// Our SDK: events from `Client::events()`.
/// bob through the SDK, over plaintext TCP on loopback.
fn sdk_bob(addr: &str) -> groupchat_sdk::ClientBuilder {
    groupchat_sdk::Client::builder("bob@localhost", "bobpass")
        .tcp(
            groupchat_sdk::transport_tcp::TcpConnector::builder("localhost")
                .address(addr.parse().unwrap())
                .security(groupchat_sdk::transport_tcp::Security::InsecurePlaintextLoopback)
                .build()
                .unwrap(),
        )
        .request_timeout(Duration::from_secs(60))
}

async fn sdk(addr: &str, room: &str, count: usize) -> (u64, u64) {
    let bob = sdk_bob(addr).connect().await.expect("bob logs in");
    let mut events = bob.events();
    bob.join_group(room).await.expect("bob joins");
    let start = ready();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen < count {
        assert!(Instant::now() < deadline, "sdk: {seen} of {count}");
        match events.next().await {
            Some(groupchat_sdk::Event::GroupMessage(m)) if m.body.is_some() => seen += 1,
            Some(_) => {}
            None => panic!("sdk: events ended after {seen}"),
        }
    }
    let (end, rss) = usage();
    (end - start, rss)
}

/// tokio-xmpp 6 with xmpp-parsers' typed stanzas.
async fn tokio_xmpp(addr: &str, room: &str, count: usize) -> (u64, u64) {
    use futures::StreamExt as _;
    use tokio_xmpp::connect::{DnsConfig, TcpServerConnector};
    use tokio_xmpp::xmlstream::Timeouts;
    use tokio_xmpp::{Event, Stanza};
    use xmpp_parsers::message::MessageType;

    let jid: xmpp_parsers::jid::BareJid = "bob@localhost".parse().unwrap();
    let mut client = tokio_xmpp::Client::new_with_connector(
        jid,
        "bobpass",
        TcpServerConnector::from(DnsConfig::Addr {
            addr: addr.to_owned(),
        }),
        Timeouts::default(),
    );
    loop {
        match client.next().await {
            Some(Event::Online { .. }) => break,
            Some(Event::Disconnected(e)) => panic!("tokio-xmpp: {e}"),
            Some(_) => {}
            None => panic!("tokio-xmpp: ended"),
        }
    }
    let join: minidom::Element = join_presence(room, "bob-tokio-xmpp")
        .replace("<presence ", "<presence xmlns='jabber:client' ")
        .parse()
        .unwrap();
    let presence = xmpp_parsers::presence::Presence::try_from(join).unwrap();
    client
        .send_stanza(Stanza::Presence(presence))
        .await
        .unwrap();
    loop {
        match client.next().await {
            Some(Event::Stanza(Stanza::Presence(p)))
                if p.from.as_ref().is_some_and(|f| {
                    f.resource().is_some_and(|r| r.as_str() == "bob-tokio-xmpp")
                }) =>
            {
                break;
            }
            Some(Event::Disconnected(e)) => panic!("tokio-xmpp: {e}"),
            Some(_) => {}
            None => panic!("tokio-xmpp: ended"),
        }
    }
    let start = ready();
    let mut seen = 0;
    while seen < count {
        match client.next().await {
            Some(Event::Stanza(Stanza::Message(m)))
                if m.type_ == MessageType::Groupchat && !m.bodies.is_empty() =>
            {
                seen += 1;
            }
            Some(Event::Disconnected(e)) => panic!("tokio-xmpp: {e} after {seen}"),
            Some(_) => {}
            None => panic!("tokio-xmpp: ended after {seen}"),
        }
    }
    let (end, rss) = usage();
    (end - start, rss)
}

/// The catch-up benchmark (see the module's doc).
fn catch_up(messages: usize, only_server: Option<&str>) {
    let mut rows = Vec::new();
    for kind in ServerKind::ALL {
        if only_server.is_some_and(|s| !kind.to_string().eq_ignore_ascii_case(s)) {
            continue;
        }
        let Some(server) = TestServer::start(kind) else {
            continue;
        };
        let room = make_group(&server);
        let store = std::env::temp_dir().join(format!("groupchat-bench-positions-{kind}.json"));
        let _ = std::fs::remove_file(&store);
        // A first login (it accepts the invitation and sees one message): the position.
        run_catch_up_receiver(&server, &store, 1, Some(&room));
        for (n, tag) in [(messages, "big"), (messages / 10, "small")] {
            let started = Instant::now();
            drop(flood(&server, &room, n, tag));
            eprintln!("{kind}: {n} messages archived in {:.1?}", started.elapsed());
            let (cpu_us, rss_kb, wall_ms) = run_catch_up_receiver(&server, &store, n, None);
            eprintln!(
                "{kind}: caught up on {n} in {wall_ms} ms, {:.2} µs CPU / message, peak RSS {rss_kb} KiB",
                cpu_us as f64 / n as f64
            );
            rows.push((kind, n, wall_ms, cpu_us as f64 / n as f64, rss_kb));
        }
        let _ = std::fs::remove_file(&store);
    }
    println!(
        "\n| server | messages caught up | wall time | CPU µs / message (login included) | peak RSS KiB |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (kind, n, wall_ms, cpu, rss) in rows {
        println!(
            "| {kind} | {n} | {:.2} s | {cpu:.2} | {rss} |",
            wall_ms as f64 / 1000.0
        );
    }
}

/// Runs an SDK bob that logs in with the position file `store` and reads `count` group
/// messages; with `seed_room`, alice sends one message to it once bob is ready.
fn run_catch_up_receiver(
    server: &TestServer,
    store: &std::path::Path,
    count: usize,
    seed_room: Option<&str>,
) -> (u64, u64, u64) {
    let mut args = receiver_args(server, "sdk-catch-up", "-", count);
    args.extend(["--store".to_owned(), store.to_str().unwrap().to_owned()]);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let line = report_after(&mut child, "catch-up", || {
        seed_room.map(|room| flood(server, room, 1, "seed"))
    });
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(line.starts_with("DONE") && v.len() == 3, "catch-up: {line}");
    (v[0], v[1], v[2])
}

/// bob logs in with a file position store and reads `count` group messages (from the
/// archive, after a time offline); the session is closed cleanly so that the position is
/// saved. CPU from before the login.
async fn sdk_catch_up(addr: &str, store: &str, count: usize) -> (u64, u64, u64) {
    let start = ready();
    let started = Instant::now();
    let bob = sdk_bob(addr)
        .positions(std::sync::Arc::new(groupchat_sdk::FileStore::new(store)))
        .connect()
        .await
        .expect("bob logs in");
    let mut events = bob.events();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < count {
        assert!(Instant::now() < deadline, "catch-up: {seen} of {count}");
        match events.next().await {
            Some(groupchat_sdk::Event::GroupMessage(m)) if m.body.is_some() => seen += 1,
            Some(groupchat_sdk::Event::MessagesMayBeMissing { groups }) => {
                panic!("catch-up failed: {groups:?}")
            }
            Some(_) => {}
            None => panic!("catch-up: events ended after {seen}"),
        }
    }
    let wall_ms = started.elapsed().as_millis() as u64;
    let (end, rss) = usage();
    bob.close();
    while let Some(e) = events.next().await {
        if matches!(
            e,
            groupchat_sdk::Event::Connection(groupchat_sdk::Connection::Ended { .. })
        ) {
            break;
        }
    }
    (end - start, rss, wall_ms)
}
