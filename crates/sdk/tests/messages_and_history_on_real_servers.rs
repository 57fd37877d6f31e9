//! Messaging on real servers: messages reach every member once and in order, the archive
//! pages the same way on Prosody and ejabberd (over TCP and WebSocket), typing comes and
//! goes, 1:1 chats, catch-up after a time offline. Each user is a separate client.

use std::sync::Arc;
use std::time::Duration;

use groupchat_sdk::jid::BareJid;
use groupchat_sdk::{
    Client, Connection, Direction, Event, EventStream, FileStore, History, HistoryRequest,
    PositionStore, RequestError, TypingState,
};
use groupchat_test_support::{ServerKind, TestServer};

mod support;
use support::{Via, expect, group_of};

async fn login(server: &TestServer, user: &str, via: Via) -> (Client, EventStream) {
    let builder = support::builder(server, user, via);
    let client = builder
        .typing_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}: {user} cannot connect: {e}", server.kind()));
    let events = client.events();
    (client, events)
}

/// The bodies of a page, in order.
fn bodies(h: &History) -> Vec<String> {
    h.messages
        .iter()
        .map(|m| m.body.clone().unwrap_or_default())
        .collect()
}

fn row_ids(h: &History) -> Vec<String> {
    h.messages.iter().map(|m| m.row_id.clone()).collect()
}

/// Waits for `n` group messages in `group` and returns their bodies in arrival order.
async fn receive(events: &mut EventStream, group: &BareJid, n: usize, who: &str) -> Vec<String> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        match tokio::time::timeout(Duration::from_secs(30), events.next()).await {
            Ok(Some(Event::GroupMessage(m))) if m.group == *group => {
                got.push(m.body.clone().unwrap_or_default());
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("{who}: events ended after {} messages", got.len()),
            Err(_) => panic!("{who}: only {} of {n} messages arrived: {got:?}", got.len()),
        }
    }
    got
}

/// alice sends 50 messages; bob and carol each get all 50 exactly once and in order; the
/// archive pages up by 20 through all of them and back down with the same row ids; the limit's
/// edges (0, 1, more than the archive, above the maximum) behave the same on both servers.
async fn messages_and_history(kind: ServerKind, via: Via) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, _alice_ev) = login(&server, "alice", via).await;
    let (bob, mut bob_ev) = login(&server, "bob", via).await;
    let (_carol, mut carol_ev) = login(&server, "carol", via).await;
    let g = group_of(
        &alice,
        "History",
        &["bob@localhost", "carol@localhost"],
        &mut [&mut bob_ev, &mut carol_ev],
    )
    .await;
    let sent_texts: Vec<String> = (1..=50).map(|i| format!("message {i:02}")).collect();
    let mut sent = Vec::new();
    for t in &sent_texts {
        let s = alice.send_text(&g, t).await.unwrap();
        assert!(
            s.stanza_id.is_some(),
            "{kind}/{via:?}: the room's archive id"
        );
        sent.push(s);
    }
    assert_eq!(
        receive(&mut bob_ev, &g, 50, "bob").await,
        sent_texts,
        "{kind}/{via:?}"
    );
    assert_eq!(
        receive(&mut carol_ev, &g, 50, "carol").await,
        sent_texts,
        "{kind}/{via:?}"
    );
    // Nothing arrives twice.
    for e in support::pending(&mut bob_ev).await {
        assert!(
            !matches!(&e, Event::GroupMessage(m) if m.group == g),
            "{kind}/{via:?}: a message arrived twice: {e:?}"
        );
    }

    // Up from the newest: 20, 20, 10 (complete), oldest first within each page.
    let mut pages = Vec::new();
    let mut req = HistoryRequest::latest(20);
    loop {
        let page = bob.history(&g, req.clone()).await.unwrap();
        let done = page.complete;
        let next = page.next(Direction::Up, 20);
        pages.push(page);
        if done {
            break;
        }
        req = next.expect("a cursor for the next page");
        assert!(pages.len() < 5, "{kind}/{via:?}: paging up does not end");
    }
    let sizes: Vec<usize> = pages.iter().map(|p| p.messages.len()).collect();
    assert_eq!(sizes, [20, 20, 10], "{kind}/{via:?}");
    let mut up: Vec<String> = Vec::new();
    for p in pages.iter().rev() {
        up.extend(bodies(p));
    }
    assert_eq!(
        up, sent_texts,
        "{kind}/{via:?}: the whole archive, in order"
    );
    let up_ids: Vec<String> = pages.iter().rev().flat_map(row_ids).collect();
    let sent_ids: Vec<String> = sent.iter().filter_map(|s| s.stanza_id.clone()).collect();
    assert_eq!(
        up_ids, sent_ids,
        "{kind}/{via:?}: row ids are the archive ids send_text returned"
    );
    let m = &pages[0].messages[19];
    assert_eq!(
        m.from.as_ref().map(ToString::to_string).as_deref(),
        Some("alice@localhost"),
        "{kind}"
    );
    assert_eq!(m.origin_id.as_deref(), Some(sent[49].id.as_str()), "{kind}");
    assert!(m.timestamp.is_some(), "{kind}: the archive's time");

    // Down from the oldest: the same rows, 20, 20, 10.
    let mut down_ids = Vec::new();
    let mut req = HistoryRequest::oldest(20);
    let mut down_sizes = Vec::new();
    loop {
        let page = bob.history(&g, req.clone()).await.unwrap();
        down_sizes.push(page.messages.len());
        down_ids.extend(row_ids(&page));
        if page.complete {
            break;
        }
        req = page.next(Direction::Down, 20).unwrap();
        assert!(
            down_sizes.len() < 5,
            "{kind}/{via:?}: paging down does not end"
        );
    }
    assert_eq!(down_sizes, [20, 20, 10], "{kind}/{via:?}");
    assert_eq!(
        down_ids, up_ids,
        "{kind}/{via:?}: down gives the rows up gave"
    );

    // From a row in the middle, both ways.
    let mid = &sent_ids[24];
    let older = bob
        .history(&g, HistoryRequest::older_than(mid, 5))
        .await
        .unwrap();
    assert_eq!(bodies(&older), sent_texts[19..24], "{kind}/{via:?}");
    assert!(!older.complete, "{kind}/{via:?}");
    let newer = bob
        .history(&g, HistoryRequest::newer_than(mid, 5))
        .await
        .unwrap();
    assert_eq!(bodies(&newer), sent_texts[25..30], "{kind}/{via:?}");
    assert!(!newer.complete, "{kind}/{via:?}");

    // The edges.
    let one = bob.history(&g, HistoryRequest::latest(1)).await.unwrap();
    assert_eq!(bodies(&one), ["message 50"], "{kind}/{via:?}");
    assert!(!one.complete, "{kind}/{via:?}: 49 older remain");
    let all = bob.history(&g, HistoryRequest::latest(100)).await.unwrap();
    assert_eq!(
        bodies(&all),
        sent_texts,
        "{kind}/{via:?}: a limit larger than the archive"
    );
    assert!(all.complete, "{kind}/{via:?}");
    let before_first = bob
        .history(&g, HistoryRequest::older_than(&sent_ids[0], 10))
        .await
        .unwrap();
    assert!(before_first.messages.is_empty(), "{kind}/{via:?}");
    assert!(before_first.complete, "{kind}/{via:?}");
    let after_last = bob
        .history(&g, HistoryRequest::newer_than(&sent_ids[49], 10))
        .await
        .unwrap();
    assert!(after_last.messages.is_empty(), "{kind}/{via:?}");
    assert!(after_last.complete, "{kind}/{via:?}");
    let last_two = bob
        .history(&g, HistoryRequest::newer_than(&sent_ids[47], 10))
        .await
        .unwrap();
    assert_eq!(bodies(&last_two), sent_texts[48..], "{kind}/{via:?}");
    assert!(last_two.complete, "{kind}/{via:?}");
    for bad in [0, 101] {
        let r = bob.history(&g, HistoryRequest::latest(bad)).await;
        assert!(
            matches!(r, Err(RequestError::BadRequest(_))),
            "{kind}/{via:?}: limit {bad}: {r:?}"
        );
    }
    // A server is neither a group nor a user.
    let server_jid = bob.history("localhost", HistoryRequest::latest(5)).await;
    assert_eq!(
        server_jid.map(|_| ()).unwrap_err().status_code(),
        400,
        "{kind}"
    );
}

async fn over_tcp(kind: ServerKind) {
    messages_and_history(kind, Via::Tcp).await;
}

async fn over_websocket(kind: ServerKind) {
    messages_and_history(kind, Via::WebSocket).await;
}

on_both_servers!(over_tcp: fifty_messages_arrive_once_in_order_and_history_pages_both_ways_on_prosody, fifty_messages_arrive_once_in_order_and_history_pages_both_ways_on_ejabberd);
on_both_servers!(over_websocket: fifty_messages_and_history_over_websocket_on_prosody, fifty_messages_and_history_over_websocket_on_ejabberd);

/// alice types in a group: bob and carol see her composing, then paused when she says
/// "gone"; a composing state never cleared expires after the typing timeout, with an event.
async fn typing(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, _alice_ev) = login(&server, "alice", Via::Tcp).await;
    let (_bob, mut bob_ev) = login(&server, "bob", Via::Tcp).await;
    let (_carol, mut carol_ev) = login(&server, "carol", Via::Tcp).await;
    let g = group_of(
        &alice,
        "Typing",
        &["bob@localhost", "carol@localhost"],
        &mut [&mut bob_ev, &mut carol_ev],
    )
    .await;
    let alice_jid: BareJid = "alice@localhost".parse().unwrap();
    let typing_is = |state: TypingState| {
        let (g, alice_jid) = (g.clone(), alice_jid.clone());
        move |e: &Event| {
            matches!(e, Event::Typing { conversation, from, state: s, .. }
                if *conversation == g && from.as_ref() == Some(&alice_jid) && *s == state)
        }
    };
    alice.send_typing(&g).await.unwrap();
    for ev in [&mut bob_ev, &mut carol_ev] {
        expect(ev, "composing", typing_is(TypingState::Composing)).await;
    }
    alice.send_typing_gone(&g).await.unwrap();
    for ev in [&mut bob_ev, &mut carol_ev] {
        expect(ev, "gone", typing_is(TypingState::Paused)).await;
    }
    // Composing, never cleared: expires (the test clients' timeout is 2 s).
    alice.send_typing(&g).await.unwrap();
    expect(
        &mut bob_ev,
        "composing again",
        typing_is(TypingState::Composing),
    )
    .await;
    let started = tokio::time::Instant::now();
    expect(&mut bob_ev, "expired", typing_is(TypingState::Expired)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{kind}: expired too early ({:?})",
        started.elapsed()
    );
    // Typing is not archived: the history holds no message.
    let h = alice.history(&g, HistoryRequest::latest(10)).await.unwrap();
    assert!(h.messages.is_empty(), "{kind}: {h:?}");
    // 1:1 too.
    alice.send_typing("bob@localhost").await.unwrap();
    expect(&mut bob_ev, "composing in a chat", |e| {
        matches!(e, Event::Typing { conversation, state: TypingState::Composing, .. }
            if conversation.as_str() == "alice@localhost")
    })
    .await;
}

on_both_servers!(typing: typing_reaches_members_gone_clears_it_and_an_uncleared_one_expires_on_prosody, typing_reaches_members_gone_clears_it_and_an_uncleared_one_expires_on_ejabberd);

/// 1:1: alice sends bob chat messages with the same call as to a group; bob receives them
/// with ids; both see them in the 1:1 history (each from their own archive), in order.
async fn one_to_one(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, _alice_ev) = login(&server, "alice", Via::Tcp).await;
    let (bob, mut bob_ev) = login(&server, "bob", Via::Tcp).await;
    let texts: Vec<String> = (1..=3).map(|i| format!("hello bob {i}")).collect();
    let mut ids = Vec::new();
    for t in &texts {
        let sent = alice.send_text("bob@localhost", t).await.unwrap();
        assert_eq!(sent.stanza_id, None, "{kind}: no room archive for a chat");
        ids.push(sent.id);
    }
    let mut got = Vec::new();
    while got.len() < texts.len() {
        let e = expect(
            &mut bob_ev,
            "a chat message",
            |e| matches!(e, Event::ChatMessage { from, .. } if from.as_str() == "alice@localhost"),
        )
        .await;
        let Event::ChatMessage {
            body,
            origin_id,
            stanza_id,
            ..
        } = e
        else {
            unreachable!()
        };
        assert!(stanza_id.is_some(), "{kind}: bob's archive id");
        got.push((body, origin_id));
    }
    let expected: Vec<(String, Option<String>)> = texts
        .iter()
        .cloned()
        .zip(ids.iter().cloned().map(Some))
        .collect();
    assert_eq!(got, expected, "{kind}: in order, with alice's ids");
    for (me, peer) in [(&alice, "bob@localhost"), (&bob, "alice@localhost")] {
        let h = me.history(peer, HistoryRequest::latest(10)).await.unwrap();
        assert_eq!(bodies(&h), texts, "{kind}: {} sees the chat", me.jid());
        assert!(h.complete, "{kind}");
        assert!(
            h.messages
                .iter()
                .all(|m| m.from.as_ref().map(|j| j.as_str()) == Some("alice@localhost")),
            "{kind}: {h:?}"
        );
        let older = me
            .history(peer, HistoryRequest::older_than(&h.messages[2].row_id, 10))
            .await
            .unwrap();
        assert_eq!(bodies(&older), texts[..2], "{kind}");
    }
    // A chat with someone else is not this one.
    let other = alice
        .history("carol@localhost", HistoryRequest::latest(10))
        .await
        .unwrap();
    assert!(other.messages.is_empty(), "{kind}: {other:?}");
}

on_both_servers!(one_to_one: a_chat_message_goes_with_the_same_call_and_both_see_it_in_history_on_prosody, a_chat_message_goes_with_the_same_call_and_both_see_it_in_history_on_ejabberd);

/// The group messages that arrive until none has come for `quiet`, as (body, archived).
async fn group_messages_until_quiet(
    events: &mut EventStream,
    group: &BareJid,
    quiet: Duration,
) -> Vec<(String, bool)> {
    let mut got = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(quiet, events.next()).await {
        if let Event::GroupMessage(m) = e
            && m.group == *group
        {
            got.push((m.body.clone().unwrap_or_default(), m.archived));
        }
    }
    got
}

/// Logs bob in with `store`, as a new process would.
async fn bob_with(
    server: &TestServer,
    store: Arc<dyn PositionStore>,
    via: Via,
) -> (Client, EventStream) {
    let builder = support::builder(server, "bob", via);
    let client = builder
        .positions(store)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}: bob cannot connect: {e}", server.kind()));
    let events = client.events();
    (client, events)
}

async fn close(client: Client, mut events: EventStream) {
    client.close();
    expect(&mut events, "the session's end", |e| {
        matches!(e, Event::Connection(Connection::Ended { .. }))
    })
    .await;
}

/// bob is offline while alice sends 30: his next login (a new client with the same position
/// file) delivers exactly those 30 from the archive, in order, marked archived, and none of
/// what he had seen; a login after that delivers nothing; a login with no position (memory
/// store) delivers the group's newest page only.
async fn catch_up(kind: ServerKind, via: Via) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let file = std::env::temp_dir().join(format!(
        "groupchat-positions-{}-{kind}-{via:?}.json",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&file);
    let (alice, _alice_ev) = login(&server, "alice", Via::Tcp).await;
    let (bob, mut bob_ev) = bob_with(&server, Arc::new(FileStore::new(&file)), via).await;
    let g = group_of(&alice, "Catch-up", &["bob@localhost"], &mut [&mut bob_ev]).await;
    for i in 1..=3 {
        alice.send_text(&g, &format!("seen {i}")).await.unwrap();
    }
    let seen = receive(&mut bob_ev, &g, 3, "bob").await;
    assert_eq!(seen, ["seen 1", "seen 2", "seen 3"], "{kind}");
    close(bob, bob_ev).await;
    let missed: Vec<String> = (1..=30).map(|i| format!("missed {i:02}")).collect();
    for t in &missed {
        alice.send_text(&g, t).await.unwrap();
    }

    let (bob, mut bob_ev) = bob_with(&server, Arc::new(FileStore::new(&file)), via).await;
    // A live message during the catch-up comes after the archived ones, once.
    alice.send_text(&g, "live after login").await.unwrap();
    let got = group_messages_until_quiet(&mut bob_ev, &g, Duration::from_secs(3)).await;
    let mut expected: Vec<(String, bool)> = missed.iter().map(|t| (t.clone(), true)).collect();
    let live_at = got.iter().position(|(b, _)| b == "live after login");
    assert!(
        live_at.is_some(),
        "{kind}: the live message arrived: {got:?}"
    );
    // The live message may also have been archived before the catch-up read that far:
    // either way it is reported once, after the 30.
    expected.push(("live after login".to_owned(), got[live_at.unwrap()].1));
    assert_eq!(
        got, expected,
        "{kind}: the 30 missed, in order, once, then the live one"
    );
    close(bob, bob_ev).await;

    // Nothing new: nothing fetched again.
    let (bob, mut bob_ev) = bob_with(&server, Arc::new(FileStore::new(&file)), via).await;
    let again = group_messages_until_quiet(&mut bob_ev, &g, Duration::from_secs(2)).await;
    assert!(again.is_empty(), "{kind}: refetched {again:?}");
    close(bob, bob_ev).await;

    // A corrupt file is no position: the newest page, no failure.
    std::fs::write(&file, b"{not json").unwrap();
    let (bob, mut bob_ev) = bob_with(&server, Arc::new(FileStore::new(&file)), via).await;
    let newest = group_messages_until_quiet(&mut bob_ev, &g, Duration::from_secs(2)).await;
    assert_eq!(
        newest.len(),
        groupchat_sdk::FIRST_CATCH_UP as usize,
        "{kind}: {newest:?}"
    );
    assert_eq!(
        newest.last().map(|(b, _)| b.as_str()),
        Some("live after login"),
        "{kind}"
    );
    assert!(newest.iter().all(|(_, archived)| *archived), "{kind}");
    close(bob, bob_ev).await;
    let _ = std::fs::remove_file(&file);
}

async fn catch_up_over_tcp(kind: ServerKind) {
    catch_up(kind, Via::Tcp).await;
}

async fn catch_up_over_websocket(kind: ServerKind) {
    catch_up(kind, Via::WebSocket).await;
}

on_both_servers!(catch_up_over_tcp: messages_sent_while_offline_arrive_once_in_order_at_the_next_login_on_prosody, messages_sent_while_offline_arrive_once_in_order_at_the_next_login_on_ejabberd);
on_both_servers!(catch_up_over_websocket: catch_up_over_websocket_on_prosody, catch_up_over_websocket_on_ejabberd);

/// bob and carol receive alice's message (their SDKs mark it received) and see it
/// (`mark_seen`): alice's `message_info` counts 2 received and 2 seen out of 2 members, also
/// from a new session; alice gets `MessageInfo` events as the counts change. A message from
/// an independent client that marks each message itself (raw stanzas) is counted the same
/// way, and a message nobody saw yet counts 2 received, 0 seen.
async fn message_info(kind: ServerKind) {
    use groupchat_sdk::MessageInfo;

    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, mut alice_ev) = login(&server, "alice", Via::Tcp).await;
    let (bob, mut bob_ev) = login(&server, "bob", Via::Tcp).await;
    let members = ["bob@localhost", "carol@localhost", "dave@localhost"];
    let g = group_of(&alice, "Receipts", &members, &mut [&mut bob_ev]).await;
    // carol speaks raw XMPP: she marks received and displayed herself, like other clients.
    let mut carol = support::raw_client(&server, "carol").await;
    support::raw_join(&mut carol, &g, "carol@localhost").await;
    let sent = alice.send_text(&g, "did you get this?").await.unwrap();
    let row = sent.stanza_id.clone().unwrap();
    for (kind_, id) in [("received", &row), ("displayed", &row)] {
        carol
            .send(
                format!(
                    "<message xmlns='jabber:client' to='{g}' type='groupchat'><{kind_} xmlns='urn:xmpp:chat-markers:0' id='{id}'/><store xmlns='urn:xmpp:hints'/></message>"
                )
                .into_bytes(),
            )
            .await
            .unwrap();
    }
    expect(
        &mut bob_ev,
        "the message",
        |e| matches!(e, Event::GroupMessage(m) if m.stanza_id.as_deref() == Some(row.as_str())),
    )
    .await;
    bob.mark_seen(&g, &row).await.unwrap();
    // alice hears the counts grow to 2 and 2.
    expect(
        &mut alice_ev,
        "both saw it",
        |e| matches!(e, Event::MessageInfo { row_id, received: 2, seen: 2, .. } if *row_id == row),
    )
    .await;
    let check = |info: &MessageInfo| {
        assert_eq!(
            info.sender.as_ref().map(|j| j.as_str()),
            Some("alice@localhost"),
            "{kind}"
        );
        let names = |r: &[groupchat_sdk::Receipt]| -> Vec<String> {
            r.iter().map(|x| x.jid.to_string()).collect()
        };
        assert_eq!(
            names(&info.received),
            ["bob@localhost", "carol@localhost"],
            "{kind}: {info:?}"
        );
        assert_eq!(
            names(&info.seen),
            ["bob@localhost", "carol@localhost"],
            "{kind}: {info:?}"
        );
        assert_eq!(info.members, 3, "{kind}: bob, carol, dave");
        assert!(
            info.received.iter().all(|r| r.at.is_some()),
            "{kind}: archive times"
        );
    };
    check(&alice.message_info(&g, &row).await.unwrap());
    // From a new session, long after: read from the archive.
    alice.close();
    let (alice2, _alice2_ev) = login(&server, "alice", Via::Tcp).await;
    check(&alice2.message_info(&g, &row).await.unwrap());

    // carol's own message (an independent client): bob's SDK marks it received; nobody saw it.
    carol
        .send(
            format!(
                "<message xmlns='jabber:client' to='{g}' type='groupchat' id='raw-1'><body>from carol</body><markable xmlns='urn:xmpp:chat-markers:0'/></message>"
            )
            .into_bytes(),
        )
        .await
        .unwrap();
    let carols = expect(
        &mut bob_ev,
        "carol's message",
        |e| matches!(e, Event::GroupMessage(m) if m.body.as_deref() == Some("from carol")),
    )
    .await;
    let Event::GroupMessage(carols) = carols else {
        unreachable!()
    };
    let carols_row = carols.stanza_id.unwrap();
    // Let the markers reach the archive.
    let mut info = alice2.message_info(&g, &carols_row).await.unwrap();
    for _ in 0..20 {
        if info.received_count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        info = alice2.message_info(&g, &carols_row).await.unwrap();
    }
    assert_eq!(
        info.sender.as_ref().map(|j| j.as_str()),
        Some("carol@localhost"),
        "{kind}"
    );
    let received: Vec<String> = info.received.iter().map(|r| r.jid.to_string()).collect();
    assert_eq!(
        received,
        ["alice@localhost", "bob@localhost"],
        "{kind}: {info:?}"
    );
    assert_eq!(info.seen_count(), 0, "{kind}");
    assert_eq!(info.members, 3, "{kind}: alice, bob, dave");
    // An unknown message: 404.
    let r = alice2.message_info(&g, "no-such-row").await;
    assert_eq!(r.map(|_| ()).unwrap_err().status_code(), 404, "{kind}");
}

on_both_servers!(message_info: who_received_and_saw_a_message_is_counted_live_and_from_the_archive_on_prosody, who_received_and_saw_a_message_is_counted_live_and_from_the_archive_on_ejabberd);

async fn login_device(server: &TestServer, user: &str, device: &str) -> (Client, EventStream) {
    let client = support::tcp_builder(server, user)
        .resource(device)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}: {user}/{device} cannot connect: {e}", server.kind()));
    let events = client.events();
    (client, events)
}

/// alice's second device, online when her first creates a group, joins it and receives its
/// messages.
async fn second_device(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (phone, _phone_ev) = login_device(&server, "alice", "phone").await;
    let (_laptop, mut laptop_ev) = login_device(&server, "alice", "laptop").await;
    let (bob, mut bob_ev) = login(&server, "bob", Via::Tcp).await;
    // The laptop reports the group as added, like bob.
    let members = ["bob@localhost"];
    let g = group_of(
        &phone,
        "Two devices",
        &members,
        &mut [&mut laptop_ev, &mut bob_ev],
    )
    .await;
    bob.send_text(&g, "hello both devices").await.unwrap();
    expect(
        &mut laptop_ev,
        "bob's message on the laptop",
        |e| matches!(e, Event::GroupMessage(m) if m.body.as_deref() == Some("hello both devices")),
    )
    .await;
}

on_both_servers!(second_device: a_group_created_on_one_device_is_joined_by_the_users_other_device_on_prosody, a_group_created_on_one_device_is_joined_by_the_users_other_device_on_ejabberd);

/// Delete for everyone (one's own message: everyone's event, gone from history; someone
/// else's as a plain member: 403), clear chat and delete for me (on every device of the user,
/// and only for that user).
async fn deletion(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, _alice_ev) = login(&server, "alice", Via::Tcp).await;
    let (bob, mut bob_ev) = login(&server, "bob", Via::Tcp).await;
    let (carol1, mut carol1_ev) = login_device(&server, "carol", "one").await;
    let g = group_of(
        &alice,
        "Deletion",
        &["bob@localhost", "carol@localhost"],
        &mut [&mut bob_ev, &mut carol1_ev],
    )
    .await;
    let (carol2, mut carol2_ev) = login_device(&server, "carol", "two").await;
    let mut rows = Vec::new();
    for t in ["m1", "m2", "m3"] {
        rows.push(alice.send_text(&g, t).await.unwrap().stanza_id.unwrap());
    }
    let texts = |h: &History| bodies(h);

    // alice deletes her m1 for everyone.
    alice.delete_for_everyone(&g, &rows[0]).await.unwrap();
    expect(&mut bob_ev, "m1 deleted", |e| {
        matches!(e, Event::MessageDeleted { row_id, for_everyone: true, by: Some(by), .. }
            if *row_id == rows[0] && by.as_str() == "alice@localhost")
    })
    .await;
    let h = bob.history(&g, HistoryRequest::latest(10)).await.unwrap();
    assert_eq!(texts(&h), ["m2", "m3"], "{kind}");
    // bob may not delete alice's message.
    let r = bob.delete_for_everyone(&g, &rows[1]).await;
    assert_eq!(r.unwrap_err().status_code(), 403, "{kind}");
    let h = carol1
        .history(&g, HistoryRequest::latest(10))
        .await
        .unwrap();
    assert_eq!(texts(&h), ["m2", "m3"], "{kind}: nothing else deleted");

    // carol clears the chat on one device: the other hears of it, and its history starts after.
    carol1.clear_chat(&g).await.unwrap();
    expect(
        &mut carol2_ev,
        "cleared",
        |e| matches!(e, Event::ChatCleared { group, .. } if *group == g),
    )
    .await;
    let m4 = alice.send_text(&g, "m4").await.unwrap().stanza_id.unwrap();
    let m5 = alice.send_text(&g, "m5").await.unwrap().stanza_id.unwrap();
    expect(
        &mut carol2_ev,
        "m5",
        |e| matches!(e, Event::GroupMessage(m) if m.stanza_id.as_deref() == Some(m5.as_str())),
    )
    .await;
    for (c, who) in [(&carol1, "carol one"), (&carol2, "carol two")] {
        let h = c.history(&g, HistoryRequest::latest(10)).await.unwrap();
        assert_eq!(texts(&h), ["m4", "m5"], "{kind}: {who}");
        assert!(h.complete, "{kind}: {who}: nothing before the clear");
        let h = c.history(&g, HistoryRequest::oldest(10)).await.unwrap();
        assert_eq!(
            texts(&h),
            ["m4", "m5"],
            "{kind}: {who}: oldest page starts after the clear"
        );
    }
    let h = bob.history(&g, HistoryRequest::latest(10)).await.unwrap();
    assert_eq!(
        texts(&h),
        ["m2", "m3", "m4", "m5"],
        "{kind}: bob's does not change"
    );

    // carol deletes m4 for herself.
    carol2.delete_for_me(&g, &[m4.as_str()]).await.unwrap();
    expect(
        &mut carol1_ev,
        "m4 deleted for carol",
        |e| matches!(e, Event::MessageDeleted { row_id, for_everyone: false, .. } if *row_id == m4),
    )
    .await;
    let h = carol1
        .history(&g, HistoryRequest::latest(10))
        .await
        .unwrap();
    assert_eq!(texts(&h), ["m5"], "{kind}");
    let h = bob.history(&g, HistoryRequest::latest(10)).await.unwrap();
    assert_eq!(texts(&h), ["m2", "m3", "m4", "m5"], "{kind}");
    // A new session of carol's reads the same state.
    carol1.close();
    let (carol3, _) = login_device(&server, "carol", "three").await;
    let h = carol3
        .history(&g, HistoryRequest::latest(10))
        .await
        .unwrap();
    assert_eq!(texts(&h), ["m5"], "{kind}: a new session");
}

on_both_servers!(deletion: deleting_for_everyone_for_me_and_clearing_reach_the_right_people_on_prosody, deleting_for_everyone_for_me_and_clearing_reach_the_right_people_on_ejabberd);
