//! Nothing a member, a server or someone on the path sends knocks a client offline for long,
//! on real Prosody and ejabberd: hostile but legal stanzas relayed by the servers are
//! dropped with a diagnostic; hostile bytes injected on every connection (through the fault
//! proxy, in plaintext on loopback) cost a growing backoff, not a login per second; a
//! half-open link resumes without a duplicate; a lost session that cannot be resumed is
//! reported as a gap, never a silent loss.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use groupchat_protocol::codec::Stanza;
use groupchat_protocol::codec::xep::muc_owner;
use groupchat_protocol::pagination::{Collected, HistoryQuery, PageCollector};
use groupchat_sdk::jid::BareJid;
use groupchat_sdk::transport_tcp::{Security, TcpConnector};
use groupchat_sdk::{Client, Connection, Event, RequestError, ToJid};
use groupchat_test_support::{Direction, FaultProxy, RawClient, ServerKind, TestServer};
use groupchat_transport::TransportEvent;

mod support;
use support::{
    added, group_of, login_tcp as login, quick_reconnect, raw_client, tcp_builder, until,
};

/// An SDK client in plaintext through `proxy` (loopback only), so that the proxy can read
/// and inject stream bytes.
fn via_proxy(server: &TestServer, user: &str, proxy: &FaultProxy) -> groupchat_sdk::ClientBuilder {
    let account = server.account(user);
    Client::builder(account.jid.as_str(), account.password.as_str())
        .request_timeout(Duration::from_secs(20))
        .tcp(
            TcpConnector::builder("localhost")
                .address(proxy.addr())
                .security(Security::InsecurePlaintextLoopback)
                .build()
                .unwrap(),
        )
}

/// Reads the raw client's events until `f` returns a value; panics after 20 s.
async fn raw_until<T>(
    raw: &mut groupchat_transport::Client,
    what: &str,
    mut f: impl FnMut(Stanza) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, raw.next_event()).await {
            Err(_) => panic!("timed out waiting for {what}"),
            Ok(None) => panic!("raw client ended waiting for {what}"),
            Ok(Some(TransportEvent::Stanza(s))) => {
                if let Some(v) = f(s) {
                    return v;
                }
            }
            Ok(Some(_)) => {}
        }
    }
}

/// A hostile member: logs in with none of our checks on what it sends.
fn hostile(server: &TestServer, user: &str) -> RawClient {
    let a = server.account(user);
    RawClient::login(server.c2s_addr(), server.domain(), &a.user, &a.password)
        .unwrap_or_else(|e| panic!("{user} raw login: {e}"))
}

/// Sends raw XML (blocking, off the runtime's async work).
fn raw_send(c: &mut RawClient, xml: &str) {
    tokio::task::block_in_place(|| c.send(xml)).unwrap();
}

/// Reads raw XML until one of `markers` (blocking, off the runtime's async work).
fn raw_read(c: &mut RawClient, markers: &[&str]) -> String {
    tokio::task::block_in_place(|| c.read_until_any(markers)).unwrap()
}

fn is_disconnect(e: &Event) -> bool {
    matches!(
        e,
        Event::Connection(Connection::Disconnected { .. } | Connection::Ended { .. })
    )
}

fn group_message(group: impl ToJid, body: &str) -> impl Fn(&Event) -> bool {
    let (group, body) = (group.to_jid().unwrap().into_bare(), body.to_owned());
    move |e| matches!(e, Event::GroupMessage(m) if m.group == group && m.body.as_deref() == Some(body.as_str()))
}

fn dropped(e: &Event) -> bool {
    matches!(e, Event::StanzaDropped { .. })
}

/// `<x xmlns='urn:example:poison' v='AAAA…'/>` with a value of `len` bytes: legal XML that
/// both servers relay.
fn poison(len: usize) -> String {
    format!("<x xmlns='urn:example:poison' v='{}'/>", "A".repeat(len))
}

/// A member's raw stanzas with an attribute of 8,193 bytes or 100 KB, as a group message, as
/// a room presence and as an offline chat message, and a room named with 9,000 characters
/// at an invitation: each recipient stays connected, hears of the dropped stanza, and the
/// next message arrives.
async fn poisoned_stanzas_are_dropped(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, _alice_ev) = login(&server, "alice").await;
    let (_bob, mut bob_ev) = login(&server, "bob").await;
    let g = alice
        .create_group(
            "Poison",
            &["bob@localhost", "carol@localhost", "dave@localhost"],
            None,
        )
        .await
        .unwrap()
        .jid;
    added(&mut bob_ev, &g).await;
    let mut carol = hostile(&server, "carol");
    raw_send(
        &mut carol,
        &format!(
            "<presence to='{g}/carol@localhost'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"
        ),
    );
    raw_read(&mut carol, &["code='110'", "code=\"110\""]);
    let groupchat = |body: &str, extra: &str| {
        format!(
            "<message type='groupchat' to='{g}' id='{body}'><body>{body}</body>{extra}</message>"
        )
    };

    // A group message, twice.
    for (i, len) in [8193, 100_000].into_iter().enumerate() {
        raw_send(&mut carol, &groupchat("poisoned", &poison(len)));
        let next = format!("after-message-{i}");
        raw_send(&mut carol, &groupchat(&next, ""));
        let (_, before) = until(&mut bob_ev, &next, group_message(&g, &next)).await;
        assert!(before.iter().any(dropped), "{len}: {before:#?}");
        assert!(!before.iter().any(is_disconnect), "{len}: {before:#?}");
    }

    // A room presence, which the room sends to every occupant, twice.
    for (i, len) in [8193, 100_000].into_iter().enumerate() {
        let presence = format!(
            "<presence to='{g}/carol@localhost'>{}</presence>",
            poison(len)
        );
        raw_send(&mut carol, &presence);
        let next = format!("after-presence-{i}");
        raw_send(&mut carol, &groupchat(&next, ""));
        let (_, before) = until(&mut bob_ev, &next, group_message(&g, &next)).await;
        assert!(before.iter().any(dropped), "{len}: {before:#?}");
        assert!(!before.iter().any(is_disconnect), "{len}: {before:#?}");
    }

    // Offline chat messages, delivered at dave's next login.
    for len in [8193, 100_000] {
        let m = format!(
            "<message type='chat' to='dave@localhost' id='p{len}'><body>hi</body>{}</message>",
            poison(len)
        );
        raw_send(&mut carol, &m);
    }
    // The server has them once it answers a ping sent after them.
    raw_send(
        &mut carol,
        "<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    raw_read(&mut carol, &["'sync'", "\"sync\""]);
    let (mut dave, mut dave_ev) = login(&server, "dave").await;
    raw_send(
        &mut carol,
        "<message type='chat' to='dave@localhost' id='n1'><body>next</body></message>",
    );
    // The offline queue and the live message may come in either order. ejabberd stores
    // offline messages asynchronously: under load one can be stored after the queue was
    // flushed to dave's new session (also "next", when it reaches the server before dave's
    // presence), and then waits for his next login — so what is still missing 10 s after
    // "next", or 25 s without it, is looked for at a second login.
    let mut seen = Vec::new();
    let mut drops = 0;
    let mut next = false;
    let mut logins = 1;
    while drops < 2 || !next {
        // (Shorter than `until`'s own 30 s.)
        let wait = if next {
            Duration::from_secs(10)
        } else {
            Duration::from_secs(25)
        };
        let got = tokio::time::timeout(
            wait,
            until(
                &mut dave_ev,
                "the offline drops and the next message",
                |e| dropped(e) || matches!(e, Event::ChatMessage { body, .. } if body == "next"),
            ),
        )
        .await;
        let Ok((e, before)) = got else {
            assert!(logins == 1, "{drops} drops, next: {next}: {seen:#?}");
            seen.extend(support::pending(&mut dave_ev).await);
            assert!(!seen.iter().any(is_disconnect), "{seen:#?}");
            dave.close();
            (dave, dave_ev) = login(&server, "dave").await;
            seen.clear();
            logins += 1;
            continue;
        };
        seen.extend(before);
        if dropped(&e) {
            drops += 1;
        } else {
            next = true;
        }
        seen.push(e);
    }
    assert!(!seen.iter().any(is_disconnect), "{seen:#?}");
    drop(dave);

    // A room whose name is 9,000 characters: alice renames a group of hers through a raw
    // session (the SDK would trim the name), then adds bob, whose SDK reads the room's
    // name while accepting.
    let h = alice
        .create_group("Long", &[] as &[&str], None)
        .await
        .unwrap()
        .jid;
    let mut alice_raw = raw_client(&server, "alice").await;
    alice_raw
        .send(muc_owner::get_config(h.as_str(), "cfg"))
        .await
        .unwrap();
    let form = raw_until(&mut alice_raw, "the config form", |s| match s {
        Stanza::Iq(iq) if iq.id == "cfg" => Some(muc_owner::decode_config_form(&iq).unwrap()),
        _ => None,
    })
    .await;
    let config = muc_owner::RoomConfig::group("N".repeat(9000));
    alice_raw
        .send(muc_owner::submit_config(h.as_str(), "set", &config, &form))
        .await
        .unwrap();
    raw_until(&mut alice_raw, "the renaming", |s| match s {
        Stanza::Iq(iq) if iq.id == "set" => Some(()),
        _ => None,
    })
    .await;
    alice
        .add_participants(&h, &["bob@localhost"])
        .await
        .unwrap();
    raw_send(&mut carol, &groupchat("after-invitation", ""));
    let (_, before) = until(
        &mut bob_ev,
        "after-invitation",
        group_message(&g, "after-invitation"),
    )
    .await;
    assert!(!before.iter().any(is_disconnect), "{before:#?}");
    // The invitation's room answered with a name the decoder refuses: bob heard of the drop
    // (the accept failed at once with 502 rather than waiting for a time-out).
    let more = tokio::time::timeout(Duration::from_secs(10), async {
        if before.iter().any(dropped) {
            return;
        }
        until(&mut bob_ev, "the dropped room info", dropped).await;
    })
    .await;
    assert!(more.is_ok(), "no drop reported: {before:#?}");
}

on_both_servers!(poisoned_stanzas_are_dropped: poisoned_stanzas_are_dropped_on_prosody, poisoned_stanzas_are_dropped_on_ejabberd);

/// What someone on the path injects right after each login.
fn hostile_cases() -> Vec<(&'static str, Vec<u8>)> {
    let bomb = {
        let mut s = String::from("<!DOCTYPE lolz [<!ENTITY lol 'lol'>");
        for i in 1..10 {
            let prev = if i == 1 {
                "lol".to_owned()
            } else {
                format!("lol{}", i - 1)
            };
            s.push_str(&format!(
                "<!ENTITY lol{i} '{}'>",
                format!("&{prev};").repeat(10)
            ));
        }
        s.push_str("]><message><body>&lol9;</body></message>");
        s
    };
    vec![
        ("DTD", b"<!DOCTYPE stream:stream [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>".to_vec()),
        ("entity bomb", bomb.into_bytes()),
        (
            "undefined entity",
            b"<message from='eve@localhost/x'><body>&xxe;</body></message>".to_vec(),
        ),
        ("10 MB stanza", {
            let mut v = b"<message from='eve@localhost/x'><body>".to_vec();
            v.resize(10 * 1024 * 1024, b'A');
            v
        }),
        (
            "invalid UTF-8",
            b"<message from='eve@localhost/x'><body>\xff\xfe\xfd</body></message>".to_vec(),
        ),
        (
            "stream error",
            b"<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
                .to_vec(),
        ),
        ("10,000-deep nesting", {
            let mut v = b"<message from='eve@localhost/x'>".to_vec();
            for _ in 0..10_000 {
                v.extend_from_slice(b"<a>");
            }
            v
        }),
        ("garbage flood", {
            let mut v = Vec::with_capacity(1 << 20);
            let mut x = 0x2545_f491_u32;
            while v.len() < 1 << 20 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                v.extend_from_slice(&x.to_le_bytes());
            }
            v
        }),
    ]
}

/// The peak resident set of this process, in KiB (Linux).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Each hostile case injected right after every login for 30 s, all at once (one user and
/// one proxy each): each client makes at most ~6 connection attempts (the backoff keeps
/// growing, since no session stays up), memory stays bounded, and once the injection stops
/// each is back in its group.
async fn hostile_bytes_after_every_login(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    // GROUPCHAT_HOSTILE_CASE=<name> runs one case alone, to read its own memory figure.
    let only = std::env::var("GROUPCHAT_HOSTILE_CASE").ok();
    let cases: Vec<_> = hostile_cases()
        .into_iter()
        .filter(|(name, _)| only.as_deref().is_none_or(|o| o == *name))
        .collect();
    let users: Vec<String> = (0..cases.len()).map(|i| format!("hostile{i}")).collect();
    for u in &users {
        server.register(u, "hostilepass");
    }
    let (alice, mut alice_ev) = login(&server, "alice").await;
    let members: Vec<String> = users.iter().map(|u| format!("{u}@localhost")).collect();
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    let g = alice
        .create_group("Hostile", &members, None)
        .await
        .unwrap()
        .jid;
    let mut clients = Vec::new();
    for u in &users {
        let proxy = FaultProxy::start(server.c2s_addr()).unwrap();
        let client = via_proxy(&server, u, &proxy).connect().await.unwrap();
        let mut events = client.events();
        added(&mut events, &g).await;
        clients.push((proxy, client, events));
    }
    let rss_before = peak_rss_kib();
    // Injected after the bind result or the resumption: every new session is hit right
    // after its login.
    for ((_, bytes), (proxy, _, _)) in cases.iter().zip(&clients) {
        proxy.inject_after(
            Direction::ToClient,
            &[b"</bind></iq", b"<resumed "],
            bytes.clone(),
        );
        proxy.cut();
    }
    let start = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let mut report = Vec::new();
    for ((name, _), (proxy, _, _)) in cases.iter().zip(&clients) {
        // The cut connection came back through the proxy: it counts as the first attempt.
        let attempts = proxy.connection_count() - 1;
        proxy.stop_injecting();
        report.push((*name, attempts, proxy.injection_count()));
    }
    let rss_after = peak_rss_kib();
    println!(
        "{kind}: connection attempts in 30 s: {report:?}; peak RSS {rss_before} KiB before, {rss_after} KiB after ({:?})",
        start.elapsed()
    );
    for (name, attempts, injected) in &report {
        assert!(*injected >= 1, "{name}: nothing was injected");
        assert!(
            *attempts <= 7,
            "{name}: {attempts} connection attempts in 30 s"
        );
    }
    assert!(
        rss_after.saturating_sub(rss_before) < 256 * 1024,
        "peak RSS grew from {rss_before} to {rss_after} KiB"
    );
    // Back to normal: each member posts in the group once it is back in it (its next
    // attempt may be a backoff of up to ~48 s away), and alice reads it.
    for (i, (_, client, _)) in clients.iter().enumerate() {
        let body = format!("back-{i}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            match client.send_text(&g, &body).await {
                Ok(_) => break,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("{}: not back in the group: {e}", cases[i].0),
            }
        }
        until(&mut alice_ev, &body, group_message(&g, &body)).await;
    }
}

on_both_servers!(hostile_bytes_after_every_login: hostile_bytes_after_every_login_on_prosody, hostile_bytes_after_every_login_on_ejabberd);

/// The room's archive as a member's raw client sees it: every body, oldest first.
async fn archived_bodies(server: &TestServer, user: &str, room: impl ToJid) -> Vec<String> {
    let room = room.to_jid().unwrap().to_string();
    let room = room.as_str();
    let mut raw = raw_client(server, user).await;
    let query = HistoryQuery::latest(room, 100);
    raw.send(query.encode("mam")).await.unwrap();
    let mut collector = PageCollector::new(query, "mam");
    let page = raw_until(&mut raw, "the archive page", |s| {
        match collector.feed(s).unwrap() {
            Collected::Done(page) => Some(page),
            Collected::Failed(e) => panic!("MAM refused: {e:?}"),
            _ => None,
        }
    })
    .await;
    page.messages
        .into_iter()
        .filter_map(|m| m.message.body)
        .collect()
}

/// alice's group with bob (and carol, offline), one of them (`through`: "alice" or "bob")
/// reaching the server through a fault proxy with quick reconnects, the other directly.
struct Proxied {
    proxy: FaultProxy,
    alice: Client,
    alice_ev: groupchat_sdk::EventStream,
    bob: Client,
    bob_ev: groupchat_sdk::EventStream,
    g: BareJid,
}

async fn through_proxy(
    server: &TestServer,
    through: &str,
    configure: impl FnOnce(groupchat_sdk::ClientBuilder) -> groupchat_sdk::ClientBuilder,
) -> Proxied {
    let proxy = FaultProxy::start(server.c2s_addr()).unwrap();
    let proxied = configure(via_proxy(server, through, &proxy).reconnect(quick_reconnect()))
        .connect()
        .await
        .unwrap();
    let proxied_ev = proxied.events();
    let other = if through == "alice" { "bob" } else { "alice" };
    let (direct, direct_ev) = login(server, other).await;
    let ((alice, alice_ev), (bob, mut bob_ev)) = if through == "alice" {
        ((proxied, proxied_ev), (direct, direct_ev))
    } else {
        ((direct, direct_ev), (proxied, proxied_ev))
    };
    let members = ["bob@localhost", "carol@localhost"];
    let g = group_of(&alice, "Through a proxy", &members, &mut [&mut bob_ev]).await;
    Proxied {
        proxy,
        alice,
        alice_ev,
        bob,
        bob_ev,
        g,
    }
}

/// [`through_proxy`] for alice, whose calls time out after 2 s.
async fn via_proxy_with_bob(
    server: &TestServer,
    configure: impl FnOnce(groupchat_sdk::ClientBuilder) -> groupchat_sdk::ClientBuilder,
) -> Proxied {
    through_proxy(server, "alice", |b| {
        configure(b.request_timeout(Duration::from_secs(2)))
    })
    .await
}

/// The server's answers stop reaching alice (the proxy drops server→client only) while she
/// sends: her call reports 504 "may still be delivered", the dead link is dropped without a
/// stream close, the session resumes once the fault clears, and the message is in the
/// archive once and reaches bob once.
async fn half_open_link(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let keepalive = via_proxy_with_bob(&server, |b| {
        b.keepalive(Duration::from_secs(60), Duration::from_secs(3))
    });
    let Proxied {
        proxy,
        alice,
        mut alice_ev,
        mut bob_ev,
        g,
        // Bound, so that bob's client lives to the end of the test.
        bob: _bob,
    } = keepalive.await;

    proxy.set_blackhole(Direction::ToClient, true);
    let sent = alice.send_text(&g, "through a half-open link").await;
    assert!(
        matches!(&sent, Err(e @ RequestError::Unconfirmed { .. }) if e.status_code() == 504),
        "{sent:?}"
    );
    // The missing ack declares the link dead (3 s after the send).
    until(&mut alice_ev, "the dead link", |e| {
        matches!(e, Event::Connection(Connection::Disconnected { reason }) if reason.to_string().contains("no stream management ack"))
    })
    .await;
    proxy.set_blackhole(Direction::ToClient, false);
    until(&mut alice_ev, "the resumption", |e| {
        matches!(
            e,
            Event::Connection(Connection::Connected { resumed: true, .. })
        )
    })
    .await;
    alice.send_text(&g, "after the fault").await.unwrap();
    let (_, before) = until(
        &mut bob_ev,
        "after the fault",
        group_message(&g, "after the fault"),
    )
    .await;
    let seen = before
        .iter()
        .filter(|e| group_message(&g, "through a half-open link")(e))
        .count();
    assert_eq!(seen, 1, "bob got it {seen} times: {before:#?}");
    let archive = archived_bodies(&server, "carol", &g).await;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for b in &archive {
        *counts.entry(b.as_str()).or_default() += 1;
    }
    assert_eq!(
        counts.get("through a half-open link"),
        Some(&1),
        "{archive:?}"
    );
}

on_both_servers!(half_open_link: a_half_open_link_resumes_and_the_message_is_archived_once_on_prosody, a_half_open_link_resumes_and_the_message_is_archived_once_on_ejabberd);

/// Reads bob's group messages in `g` until `last` arrives; panics on a gap report or after
/// `within`. Returns the bodies in arrival order.
async fn bodies_until(
    events: &mut groupchat_sdk::EventStream,
    g: &BareJid,
    last: &str,
    within: Duration,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    loop {
        let e = match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(e)) => e,
            other => panic!("no {last:?}: {other:?}; {} received", got.len()),
        };
        match e {
            Event::GroupMessage(m) if m.group == *g => {
                let body = m.body.clone().unwrap_or_default();
                got.push(body.clone());
                if body == last {
                    return got;
                }
            }
            Event::MessagesMayBeMissing { groups } => {
                panic!(
                    "a gap was reported: {groups:?} after {} messages",
                    got.len()
                )
            }
            _ => {}
        }
    }
}

/// 1,000 group messages, sent as fast as the room takes them, while bob's connection is cut
/// after every 50, with the default backoff: bob stays away longer each time, and Prosody
/// refuses a resumption once more than 500 stanzas wait for him (and discards them). Whether
/// a session resumes or a catch-up from the archive fills in, bob gets every message exactly
/// once, in order, without a gap report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_every_fifty_messages_loses_nothing_on_prosody() {
    let Some(server) = TestServer::start(ServerKind::Prosody) else {
        return;
    };
    let proxy = FaultProxy::start(server.c2s_addr()).unwrap();
    let bob = via_proxy(&server, "bob", &proxy).connect().await.unwrap();
    let mut bob_ev = bob.events();
    let (alice, _alice_ev) = login(&server, "alice").await;
    let g = group_of(&alice, "Cuts", &["bob@localhost"], &mut [&mut bob_ev]).await;
    let sent: Vec<String> = (0..1000).map(|i| format!("m{i:04}")).collect();
    let proxy = Arc::new(proxy);
    let sender = {
        let (alice, g, sent, p) = (alice.clone(), g.clone(), sent.clone(), proxy.clone());
        tokio::spawn(async move {
            for (i, body) in sent.iter().enumerate() {
                if i > 0 && i % 50 == 0 {
                    p.cut();
                }
                alice.send_text(&g, body).await.unwrap();
            }
        })
    };
    let got = bodies_until(&mut bob_ev, &g, "m0999", Duration::from_secs(240)).await;
    sender.await.unwrap();
    println!(
        "{} received, {} connections",
        got.len(),
        proxy.connection_count()
    );
    assert_eq!(got, sent, "every message once, in order");
}

/// A 300-message burst while bob's connection is cut every 20 messages (quick reconnects,
/// so the sessions resume): every message exactly once, in order.
async fn cut_every_twenty(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let Proxied {
        proxy,
        bob: _bob,
        mut bob_ev,
        alice,
        alice_ev: _alice_ev,
        g,
    } = through_proxy(&server, "bob", |b| b).await;
    let sent: Vec<String> = (0..300).map(|i| format!("b{i:03}")).collect();
    let sender = {
        let (alice, g, sent) = (alice.clone(), g.clone(), sent.clone());
        tokio::spawn(async move {
            for (i, body) in sent.iter().enumerate() {
                if i > 0 && i % 20 == 0 {
                    proxy.cut();
                }
                alice.send_text(&g, body).await.unwrap();
            }
            proxy
        })
    };
    let got = bodies_until(&mut bob_ev, &g, "b299", Duration::from_secs(120)).await;
    let proxy = sender.await.unwrap();
    assert_eq!(got, sent, "{kind}: every message once, in order");
    assert!(proxy.connection_count() > 2, "{kind}: the cuts happened");
}

on_both_servers!(cut_every_twenty: a_burst_cut_every_twenty_messages_arrives_once_in_order_on_prosody, a_burst_cut_every_twenty_messages_arrives_once_in_order_on_ejabberd);

/// The server restarts in the middle of a burst (no session can resume) and bob stays away
/// while alice goes on: his catch-up from the archive delivers what he missed, then the
/// messages alice sends during it, every one once and in order.
async fn restart_mid_burst(kind: ServerKind) {
    let Some(mut server) = TestServer::start(kind) else {
        return;
    };
    let Proxied {
        proxy,
        bob: _bob,
        mut bob_ev,
        alice,
        mut alice_ev,
        g,
    } = through_proxy(&server, "bob", |b| b).await;
    let sent: Vec<String> = (0..300).map(|i| format!("r{i:03}")).collect();
    for body in &sent[..100] {
        alice.send_text(&g, body).await.unwrap();
    }
    // bob cannot reach the server for now; the server restarts.
    proxy.set_blackhole(Direction::ToServer, true);
    proxy.set_blackhole(Direction::ToClient, true);
    proxy.cut();
    tokio::task::block_in_place(|| server.restart());
    until(
        &mut alice_ev,
        "alice back",
        |e| matches!(e, Event::GroupsJoined { groups, .. } if !groups.is_empty()),
    )
    .await;
    for body in &sent[100..200] {
        alice.send_text(&g, body).await.unwrap();
    }
    // bob comes back to a fresh session while alice goes on.
    proxy.set_blackhole(Direction::ToServer, false);
    proxy.set_blackhole(Direction::ToClient, false);
    proxy.cut();
    let sender = {
        let (alice, g, sent) = (alice.clone(), g.clone(), sent.clone());
        tokio::spawn(async move {
            for body in &sent[200..] {
                alice.send_text(&g, body).await.unwrap();
            }
        })
    };
    let got = bodies_until(&mut bob_ev, &g, "r299", Duration::from_secs(120)).await;
    sender.await.unwrap();
    assert_eq!(got, sent, "{kind}: every message once, in order");
}

on_both_servers!(restart_mid_burst: a_server_restart_mid_burst_loses_and_repeats_nothing_on_prosody, a_server_restart_mid_burst_loses_and_repeats_nothing_on_ejabberd);

/// Text that XML cannot carry (a control character) is refused with 400 before anything is
/// sent; the session carries on and the next message arrives alone.
async fn text_xml_cannot_carry(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    // (Alice names her device: the session is bound to it.)
    let alice = tcp_builder(&server, "alice")
        .resource("phone")
        .connect()
        .await
        .unwrap();
    let mut alice_ev = alice.events();
    let (jid, _) = until(&mut alice_ev, "connected", |e| {
        matches!(e, Event::Connection(Connection::Connected { .. }))
    })
    .await;
    assert!(
        matches!(&jid, Event::Connection(Connection::Connected { jid, .. }) if jid.as_str() == "alice@localhost/phone"),
        "{jid:?}"
    );
    let (_bob, mut bob_ev) = login(&server, "bob").await;
    let g = group_of(&alice, "Bell", &["bob@localhost"], &mut [&mut bob_ev]).await;
    for to in [g.as_str(), "bob@localhost"] {
        let r = alice.send_text(to, "ring \u{7} the bell").await;
        assert!(
            matches!(&r, Err(e @ RequestError::BadRequest(m)) if e.status_code() == 400 && m.contains("U+0007")),
            "{r:?}"
        );
    }
    let r = alice.create_group("bell \u{7}", &[] as &[&str], None).await;
    assert!(matches!(r, Err(RequestError::BadRequest(_))), "{r:?}");
    alice.send_text(&g, "after the bell").await.unwrap();
    let (_, before) = until(
        &mut bob_ev,
        "after the bell",
        group_message(&g, "after the bell"),
    )
    .await;
    assert!(
        !before.iter().any(|e| matches!(e, Event::GroupMessage(_))),
        "{before:#?}"
    );
    // Still connected: no disconnection on alice's side at any point.
    alice
        .send_text("bob@localhost", "still here")
        .await
        .unwrap();
    let (_, before) = until(
        &mut bob_ev,
        "still here",
        |e| matches!(e, Event::ChatMessage { body, .. } if body == "still here"),
    )
    .await;
    assert!(
        !before
            .iter()
            .any(|e| matches!(e, Event::ChatMessage { .. })),
        "{before:#?}"
    );
    let events = support::pending(&mut alice_ev).await;
    assert!(!events.iter().any(is_disconnect), "{events:#?}");
}

on_both_servers!(text_xml_cannot_carry: text_xml_cannot_carry_is_refused_with_400_on_prosody, text_xml_cannot_carry_is_refused_with_400_on_ejabberd);

/// While the connection is down, a call still ends at its request timeout (the wait for a
/// connection counts): an IQ call is 504, a message 504 "may still be delivered" — and that
/// message does go out, once, after the reconnection.
async fn calls_while_disconnected(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let Proxied {
        proxy,
        alice,
        mut alice_ev,
        mut bob_ev,
        g,
        // Bound, so that bob's client lives to the end of the test.
        bob: _bob,
    } = via_proxy_with_bob(&server, |b| b).await;

    // The link drops and the next ones never log in (the server's bytes are lost).
    proxy.set_blackhole(Direction::ToClient, true);
    proxy.cut();
    until(&mut alice_ev, "the disconnection", is_disconnect).await;
    // Each call has its 2 s; a call that waited for the connection instead would wait as
    // long as the blackhole lasts.
    let bounded = Duration::from_secs(15);
    let profile = tokio::time::timeout(bounded, alice.group_profile(&g))
        .await
        .expect("group_profile waited past its request timeout");
    assert!(
        matches!(&profile, Err(e @ RequestError::Timeout) if e.status_code() == 504),
        "{profile:?}"
    );
    let sent = tokio::time::timeout(bounded, alice.send_text(&g, "written while away"))
        .await
        .expect("send_text waited past its request timeout");
    assert!(
        matches!(&sent, Err(RequestError::Unconfirmed { .. })),
        "{sent:?}"
    );
    proxy.set_blackhole(Direction::ToClient, false);
    proxy.cut();
    let (_, before) = until(
        &mut bob_ev,
        "the queued message",
        group_message(&g, "written while away"),
    )
    .await;
    assert!(!before.iter().any(group_message(&g, "written while away")));
    alice.send_text(&g, "back").await.unwrap();
    let (_, before) = until(&mut bob_ev, "back", group_message(&g, "back")).await;
    assert!(
        !before.iter().any(group_message(&g, "written while away")),
        "delivered twice: {before:#?}"
    );
}

on_both_servers!(calls_while_disconnected: a_call_made_while_disconnected_ends_at_its_timeout_on_prosody, a_call_made_while_disconnected_ends_at_its_timeout_on_ejabberd);
