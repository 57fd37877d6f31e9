//! The SDK's group calls against real servers: Prosody and ejabberd over TCP (STARTTLS with
//! the test CA), and the core flow over WebSocket. Each user is a separate client.

use std::time::Duration;

use groupchat_sdk::transport_tcp::{Security, TcpConnector, TlsOptions};
use groupchat_sdk::transport_ws::WsConnector;
use groupchat_sdk::{Client, Event, EventStream, GroupImage, ParticipantRole, RequestError};
use groupchat_test_support::{ServerKind, TestServer};

/// A 1×1 PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

/// A GIF header is enough for the type checks and the server.
static GIF: std::sync::LazyLock<GroupImage> = std::sync::LazyLock::new(|| {
    GroupImage::from_bytes(b"GIF89a\x01\0\x01\0\0\0\0;".to_vec()).unwrap()
});

#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Tcp,
    WebSocket,
}

async fn login(server: &TestServer, user: &str, via: Via) -> (Client, EventStream) {
    let account = server.account(user);
    let builder = Client::builder(account.jid.as_str(), account.password.as_str())
        .request_timeout(Duration::from_secs(20));
    let builder = match via {
        Via::Tcp => builder.tcp(
            TcpConnector::builder("localhost")
                .address(server.c2s_addr())
                .security(Security::StartTls)
                .tls(TlsOptions::ca_file(server.ca_cert_pem()))
                .build()
                .unwrap(),
        ),
        Via::WebSocket => builder.websocket(
            WsConnector::builder(server.websocket_url())
                .allow_insecure_loopback()
                .build()
                .unwrap(),
        ),
    };
    let client = builder
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}: {user} cannot connect: {e}", server.kind()));
    let events = client.events();
    (client, events)
}

/// Reads events until one matches; panics after 30 s.
async fn expect(events: &mut EventStream, what: &str, f: impl Fn(&Event) -> bool) -> Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Err(_) => panic!("timed out waiting for {what}"),
            Ok(None) => panic!("client ended while waiting for {what}"),
            Ok(Some(e)) if f(&e) => return e,
            Ok(Some(_)) => {}
        }
    }
}

fn status<T: std::fmt::Debug>(r: Result<T, RequestError>) -> u16 {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.status_code(),
    }
}

async fn listed(c: &Client, group: &str) -> Option<Option<String>> {
    c.groups()
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.jid == group)
        .map(|g| g.name)
}

/// Every group call, with alice (creator), bob (offline at creation), carol and dave.
async fn lifecycle(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, mut alice_ev) = login(&server, "alice", Via::Tcp).await;
    let (carol, mut carol_ev) = login(&server, "carol", Via::Tcp).await;
    let (dave, mut dave_ev) = login(&server, "dave", Via::Tcp).await;
    let services = alice.services();
    assert_eq!(
        services.groups.as_deref(),
        Some("conference.localhost"),
        "{kind}"
    );

    // Invalid arguments: 400, nothing sent.
    assert_eq!(
        status(alice.create_group("  ", &["bob@localhost"], None).await),
        400
    );
    assert_eq!(
        status(alice.create_group("T", &["not a jid@@"], None).await),
        400
    );
    assert_eq!(status(alice.group_jid("a/b")), 400);
    let jid = alice.group_jid("team").unwrap();
    assert_eq!(jid, "team@conference.localhost");

    let image = GroupImage::from_bytes(PNG.to_vec()).unwrap();
    let group = alice
        .create_group(
            "Team",
            &["bob@localhost", "carol@localhost", "dave@localhost"],
            Some(image.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("{kind}: create: {e}"));
    let g = group.jid.clone();
    assert!(alice.is_group(&g));
    assert!(!alice.is_group("bob@localhost"));
    expect(
        &mut alice_ev,
        "created",
        |e| matches!(e, Event::GroupCreated { group, name, .. } if *group == g && name == "Team"),
    )
    .await;
    // Carol is online: added at once, listed with the name, by alice.
    let added = expect(
        &mut carol_ev,
        "carol added",
        |e| matches!(e, Event::AddedToGroup { group, .. } if *group == g),
    )
    .await;
    assert_eq!(
        added,
        Event::AddedToGroup {
            group: g.clone(),
            name: Some("Team".into()),
            by: Some("alice@localhost".into()),
        },
        "{kind}"
    );
    assert_eq!(
        listed(&carol, &g).await,
        Some(Some("Team".into())),
        "{kind}"
    );
    expect(
        &mut dave_ev,
        "dave added",
        |e| matches!(e, Event::AddedToGroup { group, .. } if *group == g),
    )
    .await;
    assert_eq!(
        listed(&alice, &g).await,
        Some(Some("Team".into())),
        "{kind}"
    );

    // Bob was offline: the group is his at the next login.
    let (bob, mut bob_ev) = login(&server, "bob", Via::Tcp).await;
    expect(&mut bob_ev, "bob added at login", |e| {
        matches!(e, Event::AddedToGroup { group, by, .. } if *group == g && by.as_deref() == Some("alice@localhost"))
    })
    .await;
    assert_eq!(listed(&bob, &g).await, Some(Some("Team".into())), "{kind}");

    // Profile.
    let p = alice.group_profile(&g).await.unwrap();
    assert_eq!(p.name.as_deref(), Some("Team"), "{kind}");
    assert_eq!(p.image, Some(image), "{kind}");
    let p = alice
        .set_group_profile(&g, "Team 2", Some(GIF.clone()))
        .await
        .unwrap_or_else(|e| panic!("{kind}: set profile: {e}"));
    assert_eq!(p.name.as_deref(), Some("Team 2"), "{kind}");
    let ev = expect(
        &mut bob_ev,
        "profile event",
        |e| matches!(e, Event::ProfileUpdated { group, .. } if *group == g),
    )
    .await;
    let Event::ProfileUpdated { profile, by, .. } = ev else {
        unreachable!()
    };
    assert_eq!(profile.name.as_deref(), Some("Team 2"), "{kind}");
    assert_eq!(profile.image, Some(GIF.clone()), "{kind}");
    assert_eq!(by.as_deref(), Some("alice@localhost"), "{kind}");
    assert_eq!(
        bob.group_profile(&g).await.unwrap().name.as_deref(),
        Some("Team 2")
    );

    // Participants.
    let mut ps = alice.participants(&g).await.unwrap();
    ps.sort_by(|a, b| a.jid.cmp(&b.jid));
    let roles: Vec<(&str, ParticipantRole, bool)> = ps
        .iter()
        .map(|p| (p.jid.as_str(), p.role, p.online))
        .collect();
    assert_eq!(
        roles,
        [
            ("alice@localhost", ParticipantRole::Admin, true),
            ("bob@localhost", ParticipantRole::Member, true),
            ("carol@localhost", ParticipantRole::Member, true),
            ("dave@localhost", ParticipantRole::Member, true),
        ],
        "{kind}"
    );

    // A member may not change members or admins: 403, from the server.
    assert_eq!(
        status(carol.add_participants(&g, &["erin@localhost"]).await),
        403,
        "{kind}"
    );
    assert_eq!(
        status(carol.remove_participant(&g, "dave@localhost").await),
        403,
        "{kind}"
    );
    assert_eq!(
        status(carol.make_admin(&g, "carol@localhost").await),
        403,
        "{kind}"
    );
    assert_eq!(
        status(carol.set_group_profile(&g, "Mine", None).await),
        403,
        "{kind}"
    );
    // Unknown group: 404. Invalid JID: 400.
    assert_eq!(
        status(
            alice
                .group_profile("nosuchgroup@conference.localhost")
                .await
        ),
        404,
        "{kind}"
    );
    assert_eq!(
        status(alice.add_participants(&g, &["bad jid@"]).await),
        400,
        "{kind}"
    );
    assert_eq!(
        status(alice.participants("g@elsewhere.example").await),
        400,
        "{kind}"
    );

    // Alice makes bob admin; everyone hears it, by alice.
    alice.make_admin(&g, "bob@localhost").await.unwrap();
    let ev = expect(&mut carol_ev, "admin granted", |e| {
        matches!(e, Event::AdminGranted { .. })
    })
    .await;
    assert_eq!(
        ev,
        Event::AdminGranted {
            group: g.clone(),
            participant: "bob@localhost".into(),
            by: "alice@localhost".into()
        }
    );

    // Bob removes carol: she is told, by bob, and can no longer post (403).
    bob.remove_participant(&g, "carol@localhost").await.unwrap();
    let ev = expect(&mut carol_ev, "removed", |e| {
        matches!(e, Event::RemovedFromGroup { .. })
    })
    .await;
    assert_eq!(
        ev,
        Event::RemovedFromGroup {
            group: g.clone(),
            by: Some("bob@localhost".into())
        },
        "{kind}"
    );
    assert_eq!(listed(&carol, &g).await, None, "{kind}");
    assert_eq!(
        status(carol.send_text(&g, "still here?").await),
        403,
        "{kind}"
    );
    let ev = expect(&mut dave_ev, "participant removed", |e| {
        matches!(e, Event::ParticipantRemoved { .. })
    })
    .await;
    assert_eq!(
        ev,
        Event::ParticipantRemoved {
            group: g.clone(),
            participant: "carol@localhost".into(),
            by: "bob@localhost".into()
        }
    );
    // Members can still post.
    let sent = dave.send_text(&g, "hello").await.unwrap();
    assert!(sent.stanza_id.is_some(), "{kind}: the room gives a row id");
    expect(
        &mut alice_ev,
        "dave's message",
        |e| matches!(e, Event::GroupMessage(m) if m.body.as_deref() == Some("hello")),
    )
    .await;

    // Bob exits.
    bob.exit_group(&g).await.unwrap();
    let ev = expect(&mut alice_ev, "bob left", |e| {
        matches!(e, Event::MemberLeft { .. })
    })
    .await;
    assert_eq!(
        ev,
        Event::MemberLeft {
            group: g.clone(),
            participant: "bob@localhost".into()
        }
    );
    assert_eq!(listed(&bob, &g).await, None, "{kind}");
    let ps = alice.participants(&g).await.unwrap();
    assert!(
        !ps.iter().any(|p| p.jid == "bob@localhost"),
        "{kind}: {ps:?}"
    );

    // Alice deletes the group: dave sees it gone.
    alice.delete_group(&g).await.unwrap();
    let ev = expect(&mut dave_ev, "deleted", |e| {
        matches!(e, Event::GroupDeleted { .. })
    })
    .await;
    assert_eq!(
        ev,
        Event::GroupDeleted {
            group: g.clone(),
            by: Some("alice@localhost".into())
        },
        "{kind}"
    );
    assert_eq!(listed(&dave, &g).await, None, "{kind}");
    assert_eq!(listed(&alice, &g).await, None, "{kind}");
    assert_eq!(status(alice.group_profile(&g).await), 404, "{kind}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_call_on_prosody() {
    lifecycle(ServerKind::Prosody).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_call_on_ejabberd() {
    lifecycle(ServerKind::Ejabberd).await;
}
