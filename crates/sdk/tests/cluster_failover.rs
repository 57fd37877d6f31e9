//! Groups on a two-node ejabberd cluster (test-support's `EjabberdCluster`): members on
//! different nodes, the node hosting the room lost during a burst of messages — with SIGTERM
//! (the room says 332) and with SIGKILL (the room says nothing) — then restarted, and the
//! other node lost in turn. Every member must end with every message exactly once, in
//! archive order. The clients mix TCP and WebSocket; each lists both nodes, its own first.
//!
//! The figures printed (`FAILOVER ...`) are the times from the signal to each member's
//! rejoin (detection + join) and to the last message of the burst reaching every member.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use groupchat_sdk::jid::BareJid;
use groupchat_sdk::transport_tcp::{Security, TcpConnector, TlsOptions};
use groupchat_sdk::transport_ws::WsConnector;
use groupchat_sdk::{Client, Event, HistoryRequest, JoinReason};
use groupchat_test_support::{EjabberdCluster, Node, Stop};
use tokio::time::Instant;

use support::{Via, quick_reconnect};

/// How long a silent room goes before a self-ping, for alice and carol.
const ROOM_CHECK: Duration = Duration::from_secs(3);
/// The bound on noticing a room lost without a word: 1.5 periods of the check, the ping's
/// round trip, and the join (generous: the machine runs four ejabberd nodes' worth of
/// tests).
const DETECTION_BOUND: Duration = Duration::from_secs(20);

/// What one member's client reported, as it arrived.
#[derive(Default)]
struct Log {
    /// Group messages: (body, room stanza-id).
    messages: Vec<(String, Option<String>)>,
    /// Groups joined: when, and why.
    joins: Vec<(Instant, JoinReason)>,
    /// Groups we were added to.
    added: Vec<BareJid>,
}

struct Member {
    name: &'static str,
    client: Client,
    log: Arc<Mutex<Log>>,
}

impl Member {
    /// `name`'s client over `via`, listing `nodes` in that order; `room_check`: the period
    /// of silence before a self-ping, `None` for the default (60 s).
    async fn connect(
        cluster: &EjabberdCluster,
        name: &'static str,
        via: Via,
        nodes: [Node; 2],
        room_check: Option<Duration>,
    ) -> Self {
        let account = cluster.account(name);
        let mut builder = Client::builder(account.jid.as_str(), account.password.as_str())
            // The whole recovery fits in a call's wait (detection, joins tried again with
            // growing waits, catch-up): 60 s leaves room on a loaded machine.
            .request_timeout(Duration::from_secs(60))
            .reconnect(quick_reconnect());
        if let Some(period) = room_check {
            builder = builder.room_check(period);
        }
        let builder = match via {
            Via::Tcp => {
                let mut tcp = TcpConnector::builder("localhost")
                    .security(Security::StartTls)
                    .tls(TlsOptions::ca_file(cluster.node(Node::A).ca_cert_pem()));
                for n in nodes {
                    tcp = tcp.address(cluster.node(n).c2s_addr());
                }
                builder.tcp(tcp.build().unwrap())
            }
            Via::WebSocket => {
                let mut ws = WsConnector::builder(cluster.node(nodes[0]).websocket_url())
                    .endpoint(cluster.node(nodes[1]).websocket_url())
                    .allow_insecure_loopback();
                ws = ws.connect_timeout(Duration::from_secs(5));
                builder.websocket(ws.build().unwrap())
            }
        };
        let client = builder
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{name} cannot connect: {e}"));
        let log = Arc::new(Mutex::new(Log::default()));
        let mut events = client.events();
        let sink = log.clone();
        tokio::spawn(async move {
            while let Some(e) = events.next().await {
                let mut l = sink.lock().unwrap();
                match e {
                    Event::GroupMessage(m) => {
                        l.messages.push((m.body.unwrap_or_default(), m.stanza_id));
                    }
                    Event::GroupsJoined { reason, groups } if !groups.is_empty() => {
                        l.joins.push((Instant::now(), reason));
                    }
                    Event::AddedToGroup { group, .. } => l.added.push(group),
                    _ => {}
                }
            }
        });
        Self { name, client, log }
    }

    /// The bodies received that start with `prefix`, in order.
    fn received(&self, prefix: &str) -> Vec<String> {
        let l = self.log.lock().unwrap();
        l.messages
            .iter()
            .filter(|(b, _)| b.starts_with(prefix))
            .map(|(b, _)| b.clone())
            .collect()
    }

    /// The rejoins reported after `since`.
    fn joins_since(&self, since: Instant) -> Vec<(Instant, JoinReason)> {
        let l = self.log.lock().unwrap();
        l.joins
            .iter()
            .filter(|(t, _)| *t >= since)
            .copied()
            .collect()
    }
}

/// Polls `ok` until it holds; panics with `what` after `within`.
async fn wait_until(what: &str, within: Duration, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The whole archive of `group` as `reader` reads it: bodies, oldest first.
async fn archive(reader: &Client, group: &BareJid) -> Vec<String> {
    let mut out = Vec::new();
    let mut request = HistoryRequest::oldest(100);
    loop {
        let page = reader.history(group, request.clone()).await.unwrap();
        out.extend(page.messages.iter().filter_map(|m| m.body.clone()));
        match page.last_row_id.clone() {
            Some(last) if !page.complete => request = HistoryRequest::newer_than(last, 100),
            _ => return out,
        }
    }
}

/// `sender` sends `n` messages `prefix-NNN`, pipelined (up to 32 waiting), in order; after
/// `stop_after` of them are confirmed, `node` of `cluster` is stopped with `how`. Returns
/// when the signal was sent. Every member must end with all `n`, once each, in archive
/// order; the figures are printed.
#[allow(clippy::too_many_arguments)]
async fn burst_through_loss(
    case: &str,
    cluster: &Arc<Mutex<EjabberdCluster>>,
    members: &[&Member],
    sender: &Member,
    poker: &Member,
    group: &BareJid,
    prefix: &str,
    n: usize,
    stop_after: usize,
    node: Node,
    how: Stop,
) {
    let confirmed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sending = {
        let client = sender.client.clone();
        let group = group.clone();
        let prefix = prefix.to_owned();
        let confirmed = confirmed.clone();
        tokio::spawn(async move {
            futures::stream::iter(0..n)
                .map(|i| {
                    let (client, group, confirmed) =
                        (client.clone(), group.clone(), confirmed.clone());
                    let body = format!("{prefix}-{i:03}");
                    async move {
                        let r = client.send_text(&group, &body).await;
                        confirmed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        (body, r)
                    }
                })
                .buffered(32)
                .collect::<Vec<_>>()
                .await
        })
    };
    wait_until(
        &format!("{case}: {stop_after} sends confirmed"),
        Duration::from_secs(60),
        || confirmed.load(std::sync::atomic::Ordering::SeqCst) >= stop_after,
    )
    .await;
    let stopped_at = Instant::now();
    {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.lock().unwrap().stop(node, how))
            .await
            .unwrap();
    }
    // Someone else speaks up at once: to a room that may be gone.
    let poke = format!("{prefix}-poke");
    poker
        .client
        .send_text(group, &poke)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{case}: {} could not send right after the loss: {e:?} ({})",
                poker.name,
                e.status_code()
            )
        });
    let results = tokio::time::timeout(Duration::from_secs(120), sending)
        .await
        .unwrap_or_else(|_| panic!("{case}: the burst did not finish"))
        .unwrap();
    for (body, r) in &results {
        assert!(r.is_ok(), "{case}: sending {body} failed: {r:?}");
    }
    let burst = n;
    let mut expected: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:03}")).collect();
    expected.push(poke.clone());
    expected.sort();
    let n = expected.len();
    for m in members {
        wait_until(
            &format!("{case}: {} has all {n} messages of {prefix}", m.name),
            Duration::from_secs(90),
            || m.received(prefix).iter().collect::<HashSet<_>>().len() >= n,
        )
        .await;
    }
    let complete_after = stopped_at.elapsed();
    // A moment for copies that would come late.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let in_archive: Vec<String> = archive(&sender.client, group)
        .await
        .into_iter()
        .filter(|b| b.starts_with(prefix))
        .collect();
    let mut sorted = in_archive.clone();
    sorted.sort();
    assert_eq!(
        sorted, expected,
        "{case}: the archive has each message once"
    );
    // The sender's messages, sent again after the loss in their order and ahead of the
    // ones sent meanwhile, are archived in the order they were sent.
    let senders: Vec<&String> = in_archive.iter().filter(|b| **b != poke).collect();
    let sent: Vec<String> = (0..burst).map(|i| format!("{prefix}-{i:03}")).collect();
    assert!(
        senders.iter().copied().eq(sent.iter()),
        "{case}: the archive has {}'s messages in the order sent: {senders:?}",
        sender.name
    );
    for m in members {
        let got = m.received(prefix);
        assert_eq!(
            got, in_archive,
            "{case}: {} got every message once, in archive order",
            m.name
        );
        let joins = m.joins_since(stopped_at);
        let first = joins
            .first()
            .unwrap_or_else(|| panic!("{case}: {} never joined again", m.name));
        let rejoined = first.0 - stopped_at;
        eprintln!(
            "FAILOVER {case}: {} rejoined after {rejoined:?} ({:?}); all {n} messages everywhere after {complete_after:?}",
            m.name, first.1
        );
        assert!(
            rejoined < DETECTION_BOUND,
            "{case}: {} rejoined after {rejoined:?}",
            m.name
        );
    }
}

/// Alice on node A, bob and carol on node B, in a group created through A: calls and
/// messages across nodes, and the same history through either node.
async fn group_across_nodes(alice: &Member, bob: &Member, carol: &Member) -> BareJid {
    let group = alice
        .client
        .create_group("Ops", [bob.client.jid(), carol.client.jid()], None)
        .await
        .unwrap()
        .jid;
    for m in [bob, carol] {
        wait_until(
            &format!("{} added to the group", m.name),
            Duration::from_secs(30),
            || m.log.lock().unwrap().added.contains(&group),
        )
        .await;
    }
    let participants = carol.client.participants(&group).await.unwrap();
    assert_eq!(participants.len(), 3, "{participants:?}");
    bob.client.send_text(&group, "hello-from-b").await.unwrap();
    alice
        .client
        .send_text(&group, "hello-from-a")
        .await
        .unwrap();
    for m in [alice, bob, carol] {
        wait_until(
            &format!("{} hears both", m.name),
            Duration::from_secs(20),
            || m.received("hello-").len() == 2,
        )
        .await;
    }
    assert_eq!(
        archive(&alice.client, &group).await,
        archive(&bob.client, &group).await,
        "the same history through node A and node B"
    );
    group
}

async fn failover(first: Stop, vias: [Via; 3]) {
    // GROUPCHAT_TEST_TRACE=1: the SDK's debug log on stderr.
    if std::env::var("GROUPCHAT_TEST_TRACE").is_ok_and(|v| v == "1") {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::stderr)
            .try_init();
    }
    let Some(cluster) = tokio::task::spawn_blocking(EjabberdCluster::start)
        .await
        .unwrap()
    else {
        return;
    };
    // bob, the first burst's sender, keeps the default room check: a sender notices a
    // silent loss through his unconfirmed messages, not through silence.
    let quick = Some(ROOM_CHECK);
    let alice = Member::connect(&cluster, "alice", vias[0], [Node::A, Node::B], quick).await;
    let bob = Member::connect(&cluster, "bob", vias[1], [Node::B, Node::A], None).await;
    let carol = Member::connect(&cluster, "carol", vias[2], [Node::B, Node::A], quick).await;
    let cluster = Arc::new(Mutex::new(cluster));
    let group = group_across_nodes(&alice, &bob, &carol).await;
    let all = [&alice, &bob, &carol];

    // Node A hosts the room (created through it) and alice's session.
    let case = format!("node A {first:?}");
    burst_through_loss(
        &case,
        &cluster,
        &all,
        &bob,
        &carol,
        &group,
        "burst",
        300,
        100,
        Node::A,
        first,
    )
    .await;
    let reasons = |m: &Member| {
        m.log
            .lock()
            .unwrap()
            .joins
            .iter()
            .map(|j| j.1)
            .collect::<Vec<_>>()
    };
    assert!(
        reasons(&alice).contains(&JoinReason::NewSession),
        "{case}: alice failed over to B"
    );
    // On SIGTERM the room said so. On SIGKILL nothing is said: carol's message right after
    // the loss is refused (then sent again) — or, when it races the surviving node's
    // notice of the death, swallowed, and her self-ping finds her out; bob's messages in
    // flight died with the node, and the self-ping his first unconfirmed one starts after
    // 3 s finds him out (his room check is the default 60 s). Either way the messages go
    // out again after the rejoin.
    let expected = match first {
        Stop::Term => vec![JoinReason::RoomShutDown],
        Stop::Kill => vec![JoinReason::MessageRefused, JoinReason::SelfPing],
    };
    for m in [&bob, &carol] {
        let seen = reasons(m);
        assert!(
            seen.iter().any(|r| expected.contains(r)),
            "{case}: {} {seen:?}",
            m.name
        );
    }

    // Node A back: the cluster heals; then node B (now hosting the room and every session)
    // goes the other way, during carol's burst.
    {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.lock().unwrap().restart(Node::A))
            .await
            .unwrap();
    }
    let second = match first {
        Stop::Term => Stop::Kill,
        Stop::Kill => Stop::Term,
    };
    let case = format!("node B {second:?} after node A came back");
    burst_through_loss(
        &case,
        &cluster,
        &all,
        &carol,
        &bob,
        &group,
        "again",
        100,
        30,
        Node::B,
        second,
    )
    .await;
    for m in all {
        m.client.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_node_stopped_with_sigterm_then_the_other_killed_loses_nothing() {
    failover(Stop::Term, [Via::Tcp, Via::WebSocket, Via::Tcp]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_node_killed_then_the_other_stopped_with_sigterm_loses_nothing() {
    failover(Stop::Kill, [Via::WebSocket, Via::Tcp, Via::WebSocket]).await;
}
