//! The SDK's group calls against real servers: Prosody and ejabberd over TCP (STARTTLS with
//! the test CA), and the core flow over WebSocket. Each user is a separate client.

use std::time::Duration;

use groupchat_sdk::jid::BareJid;
use groupchat_sdk::transport_tcp::{TcpConnector, TlsOptions};
use groupchat_sdk::{
    Client, Connection, Event, EventStream, GroupImage, GroupProfileListener, InvitationPolicy,
    JoinReason, ParticipantRole, RequestError, Response, ToJid,
};
use groupchat_test_support::{ServerKind, TestServer};

mod support;
use support::{Via, added, expect, group_of, jid, raw_client, raw_join};

/// A 1×1 PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

/// A GIF header is enough for the type checks and the server.
static GIF: std::sync::LazyLock<GroupImage> = std::sync::LazyLock::new(|| {
    GroupImage::from_bytes(b"GIF89a\x01\0\x01\0\0\0\0;".to_vec()).unwrap()
});

async fn login(server: &TestServer, user: &str, via: Via) -> (Client, EventStream) {
    let builder = support::builder(server, user, via).allow_insecure_http_loopback();
    let client = builder
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}: {user} cannot connect: {e}", server.kind()));
    let events = client.events();
    (client, events)
}

fn status<T: std::fmt::Debug>(r: Result<T, RequestError>) -> u16 {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.status_code(),
    }
}

async fn listed(c: &Client, group: impl ToJid) -> Option<Option<String>> {
    let group = group.to_jid().unwrap().into_bare();
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
    let team = alice.group_jid("team").unwrap();
    assert_eq!(team.as_str(), "team@conference.localhost");

    let image = GroupImage::from_bytes(PNG.to_vec()).unwrap();
    let group = alice
        .create_group(
            "Team",
            // Ourselves and a duplicate are ignored.
            &[
                "bob@localhost",
                "carol@localhost",
                "dave@localhost",
                "alice@localhost",
                "bob@localhost",
            ],
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
            by: Some(jid("alice@localhost")),
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
        matches!(e, Event::AddedToGroup { group, by, .. } if *group == g && by.as_ref().map(|j| j.as_str()) == Some("alice@localhost"))
    })
    .await;
    assert_eq!(listed(&bob, &g).await, Some(Some("Team".into())), "{kind}");

    // Profile.
    let p = alice.group_profile(&g).await.unwrap();
    assert_eq!(p.name.as_deref(), Some("Team"), "{kind}");
    assert_eq!(p.image, Some(image), "{kind}");
    // An image given by URL (here one the server's upload service serves) is fetched and
    // kept like a file; plain http to a non-loopback host is refused.
    let GroupImage::Data { data, .. } = &*GIF else {
        unreachable!()
    };
    let url = alice
        .upload("team.gif", "image/gif", data.clone())
        .await
        .unwrap();
    assert_eq!(
        status(
            alice
                .set_group_profile(
                    &g,
                    "X",
                    Some(GroupImage::from_url("http://192.0.2.1/a.gif").unwrap())
                )
                .await
        ),
        400
    );
    assert_eq!(
        alice.group_profile(&g).await.unwrap().name.as_deref(),
        Some("Team"),
        "{kind}: a refused image changes nothing"
    );
    let p = alice
        .set_group_profile(&g, "Team 2", Some(GroupImage::from_url(url).unwrap()))
        .await
        .unwrap_or_else(|e| panic!("{kind}: set profile: {e}"));
    assert_eq!(p.name.as_deref(), Some("Team 2"), "{kind}");
    // (Skips a report without the actor, which a slow machine could make first.)
    let ev = expect(
        &mut bob_ev,
        "profile event",
        |e| matches!(e, Event::ProfileUpdated { group, by: Some(_), .. } if *group == g),
    )
    .await;
    let Event::ProfileUpdated { profile, by, .. } = ev else {
        unreachable!()
    };
    assert_eq!(profile.name.as_deref(), Some("Team 2"), "{kind}");
    assert_eq!(profile.image, Some(GIF.clone()), "{kind}");
    assert_eq!(
        by.as_ref().map(|j| j.as_str()),
        Some("alice@localhost"),
        "{kind}"
    );
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
            participant: jid("bob@localhost"),
            by: jid("alice@localhost")
        }
    );

    // Adding an admin again leaves them admin.
    alice
        .add_participants(&g, &["bob@localhost"])
        .await
        .unwrap();
    let ps = alice.participants(&g).await.unwrap();
    assert!(
        ps.iter()
            .any(|p| p.jid.as_str() == "bob@localhost" && p.role == ParticipantRole::Admin),
        "{kind}: {ps:?}"
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
            by: Some(jid("bob@localhost"))
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
            participant: jid("carol@localhost"),
            by: jid("bob@localhost")
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
            participant: jid("bob@localhost")
        }
    );
    assert_eq!(listed(&bob, &g).await, None, "{kind}");
    let ps = alice.participants(&g).await.unwrap();
    assert!(
        !ps.iter().any(|p| p.jid.as_str() == "bob@localhost"),
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
            by: Some(jid("alice@localhost"))
        },
        "{kind}"
    );
    assert_eq!(listed(&dave, &g).await, None, "{kind}");
    assert_eq!(listed(&alice, &g).await, None, "{kind}");
    assert_eq!(status(alice.group_profile(&g).await), 404, "{kind}");
}

on_both_servers!(lifecycle: every_group_call_on_prosody, every_group_call_on_ejabberd);

/// The core flow over WebSocket (RFC 7395): create with a member and an image, the member
/// is added, a profile change reaches them, removal, deletion.
async fn core_flow_over_websocket(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, _alice_ev) = login(&server, "alice", Via::WebSocket).await;
    let (bob, mut bob_ev) = login(&server, "bob", Via::WebSocket).await;
    let g = alice
        .create_group("Over WS", &["bob@localhost"], Some(GIF.clone()))
        .await
        .unwrap_or_else(|e| panic!("{kind}: {e}"))
        .jid;
    added(&mut bob_ev, &g).await;
    assert_eq!(
        listed(&bob, &g).await,
        Some(Some("Over WS".into())),
        "{kind}"
    );
    assert_eq!(
        bob.group_profile(&g).await.unwrap().image,
        Some(GIF.clone())
    );
    alice.set_group_profile(&g, "Renamed", None).await.unwrap();
    let ev = expect(&mut bob_ev, "profile", |e| {
        matches!(e, Event::ProfileUpdated { .. })
    })
    .await;
    let Event::ProfileUpdated { profile, by, .. } = ev else {
        unreachable!()
    };
    assert_eq!(
        (profile.name.as_deref(), by.as_ref().map(|j| j.as_str())),
        (Some("Renamed"), Some("alice@localhost"))
    );
    bob.send_text(&g, "hi over ws").await.unwrap();
    alice.remove_participant(&g, "bob@localhost").await.unwrap();
    expect(&mut bob_ev, "removed", |e| {
        matches!(e, Event::RemovedFromGroup { group, by } if *group == g && by.as_ref().map(|j| j.as_str()) == Some("alice@localhost"))
    })
    .await;
    assert_eq!(status(bob.send_text(&g, "let me in").await), 403, "{kind}");
    alice.delete_group(&g).await.unwrap();
    assert_eq!(listed(&alice, &g).await, None);
}

on_both_servers!(core_flow_over_websocket: core_flow_over_websocket_on_prosody, core_flow_over_websocket_on_ejabberd);

/// Login failures are typed: a malformed JID is 400 before any connection, a wrong
/// password 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors_have_status_codes() {
    let e = Client::builder("not a jid", "x")
        .connect()
        .await
        .unwrap_err();
    assert_eq!(e.status_code(), 400, "{e}");
    let e = Client::builder("example.org", "x")
        .connect()
        .await
        .unwrap_err();
    assert_eq!(e.status_code(), 400, "a JID without a user: {e}");
    // Nothing listens there: the time-out names the last attempt's real failure (503).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let e = Client::builder("alice@localhost", "x")
        .connect_timeout(Duration::from_secs(2))
        .tcp(
            TcpConnector::builder("localhost")
                .address(closed)
                .build()
                .unwrap(),
        )
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            groupchat_sdk::ConnectError::Timeout {
                last: Some(groupchat_sdk::TransportError::Io(_)),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.status_code(), 503, "{e}");
    assert!(e.to_string().contains("refused"), "{e}");
    let Some(server) = TestServer::start(ServerKind::Prosody) else {
        return;
    };
    let e = Client::builder("alice@localhost", "wrong")
        .tcp(
            TcpConnector::builder("localhost")
                .address(server.c2s_addr())
                .tls(TlsOptions::ca_file(server.ca_cert_pem()))
                .build()
                .unwrap(),
        )
        .connect()
        .await
        .unwrap_err();
    assert_eq!(e.status_code(), 401, "{e}");
}

struct Recorder(tokio::sync::mpsc::UnboundedSender<String>);

#[async_trait::async_trait]
impl GroupProfileListener for Recorder {
    async fn added_to_group(&self, group: &BareJid, by: Option<&BareJid>) {
        let _ = self.0.send(format!(
            "added {group} by {}",
            by.map_or("?", |j| j.as_str())
        ));
    }
    async fn admin_granted(&self, group: &BareJid, participant: &BareJid, by: &BareJid) {
        let _ = self
            .0
            .send(format!("admin {participant} in {group} by {by}"));
    }
}

/// What happens while a member is away reaches them at their next login: removal and
/// deletion; an invitation left to the application; listeners; the last admin's exit; the
/// seed's response shape.
async fn while_away(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, _alice_ev) = login(&server, "alice", Via::Tcp).await;
    let g1 = alice
        .create_group("One", &["bob@localhost"], None)
        .await
        .unwrap()
        .jid;
    let g2 = alice
        .create_group("Two", &["bob@localhost"], None)
        .await
        .unwrap()
        .jid;
    {
        let (bob, mut bob_ev) = login(&server, "bob", Via::Tcp).await;
        let mut added = Vec::new();
        for _ in 0..2 {
            match expect(&mut bob_ev, "added", |e| {
                matches!(e, Event::AddedToGroup { .. })
            })
            .await
            {
                Event::AddedToGroup { group, .. } => added.push(group),
                _ => unreachable!(),
            }
        }
        added.sort();
        let mut want = vec![g1.clone(), g2.clone()];
        want.sort();
        assert_eq!(added, want, "{kind}");
        bob.close();
        expect(&mut bob_ev, "closed", |e| {
            matches!(e, Event::Connection(Connection::Ended { .. }))
        })
        .await;
    }
    // While bob is away: removed from one group, the other deleted.
    alice
        .remove_participant(&g1, "bob@localhost")
        .await
        .unwrap();
    alice.delete_group(&g2).await.unwrap();
    let (bob, mut bob_ev) = login(&server, "bob", Via::Tcp).await;
    let mut seen = vec![
        expect(&mut bob_ev, "gone", |e| {
            matches!(
                e,
                Event::RemovedFromGroup { .. } | Event::GroupDeleted { .. }
            )
        })
        .await,
        expect(&mut bob_ev, "gone", |e| {
            matches!(
                e,
                Event::RemovedFromGroup { .. } | Event::GroupDeleted { .. }
            )
        })
        .await,
    ];
    seen.sort_by_key(|e| e.group().cloned());
    let mut want = vec![
        Event::RemovedFromGroup {
            group: g1.clone(),
            by: None,
        },
        Event::GroupDeleted {
            group: g2.clone(),
            by: None,
        },
    ];
    want.sort_by_key(|e| e.group().cloned());
    assert_eq!(seen, want, "{kind}");
    assert_eq!(listed(&bob, &g1).await, None);
    assert_eq!(listed(&bob, &g2).await, None);
    drop(bob);

    // Carol decides on invitations herself; a listener hears about the group.
    let account = server.account("carol");
    let carol = Client::builder(account.jid.as_str(), account.password.as_str())
        .tcp(
            TcpConnector::builder("localhost")
                .address(server.c2s_addr())
                .tls(TlsOptions::ca_file(server.ca_cert_pem()))
                .build()
                .unwrap(),
        )
        .invitations(InvitationPolicy::Manual)
        .connect()
        .await
        .unwrap();
    let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    carol
        .add_group_listener(std::sync::Arc::new(Recorder(tx)))
        .await;
    let mut carol_ev = carol.events();
    alice
        .add_participants(&g1, &["carol@localhost"])
        .await
        .unwrap();
    let ev = expect(&mut carol_ev, "invitation", |e| {
        matches!(e, Event::Invitation { .. })
    })
    .await;
    assert!(
        matches!(&ev, Event::Invitation { group, by, .. } if *group == g1 && by.as_ref().map(|j| j.as_str()) == Some("alice@localhost")),
        "{kind}: {ev:?}"
    );
    assert_eq!(listed(&carol, &g1).await, None, "{kind}: not accepted yet");
    carol.join_group(&g1).await.unwrap();
    assert_eq!(
        listed(&carol, &g1).await,
        Some(Some("One".into())),
        "{kind}"
    );
    let first = tokio::time::timeout(Duration::from_secs(20), heard.recv())
        .await
        .unwrap();
    assert_eq!(first.as_deref(), Some(format!("added {g1} by ?").as_str()));
    alice.make_admin(&g1, "carol@localhost").await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(20), heard.recv())
        .await
        .unwrap();
    assert_eq!(
        second.as_deref(),
        Some(format!("admin carol@localhost in {g1} by alice@localhost").as_str())
    );

    // The seed's response shape.
    let r: Response<_> = alice.participants(&g1).await.into();
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["statusCode"], 200);
    assert_eq!(json["message"], "Success");
    assert_eq!(json["data"].as_array().map(Vec::len), Some(2), "{json}");
    let r: Response<()> = carol.remove_participant(&g1, "nobody@").await.into();
    assert_eq!(serde_json::to_value(&r).unwrap()["statusCode"], 400);

    // Alice and carol are both admins: alice may simply leave; then carol, the last
    // admin and only member, cannot leave (409) and deletes instead.
    alice.exit_group(&g1).await.unwrap();
    assert_eq!(status(carol.exit_group(&g1).await), 409, "{kind}");
    carol.delete_group(&g1).await.unwrap();
    assert_eq!(listed(&carol, &g1).await, None, "{kind}");
}

on_both_servers!(while_away: what_happens_while_away_on_prosody, what_happens_while_away_on_ejabberd);

/// The last admin who exits hands admin to a member first.
async fn last_admin_hands_over(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, _a) = login(&server, "alice", Via::Tcp).await;
    let (bob, mut bob_ev) = login(&server, "bob", Via::Tcp).await;
    let (carol, mut carol_ev) = login(&server, "carol", Via::Tcp).await;
    let g = group_of(
        &alice,
        "Hand-over",
        &["carol@localhost", "bob@localhost"],
        &mut [&mut bob_ev, &mut carol_ev],
    )
    .await;
    alice.exit_group(&g).await.unwrap();
    let ev = expect(&mut carol_ev, "admin", |e| {
        matches!(e, Event::AdminGranted { .. })
    })
    .await;
    assert_eq!(
        ev,
        Event::AdminGranted {
            group: g.clone(),
            participant: jid("bob@localhost"),
            by: jid("alice@localhost")
        },
        "{kind}: the member whose JID sorts first"
    );
    expect(
        &mut carol_ev,
        "left",
        |e| matches!(e, Event::MemberLeft { participant, .. } if participant.as_str() == "alice@localhost"),
    )
    .await;
    let mut ps = bob.participants(&g).await.unwrap();
    ps.sort_by(|a, b| a.jid.cmp(&b.jid));
    let roles: Vec<(&str, ParticipantRole)> = ps.iter().map(|p| (p.jid.as_str(), p.role)).collect();
    assert_eq!(
        roles,
        [
            ("bob@localhost", ParticipantRole::Admin),
            ("carol@localhost", ParticipantRole::Member)
        ],
        "{kind}"
    );

    // A plain member exits: gone from their list, and (an admin's SDK drops the
    // membership the member may not drop) from the participants.
    carol
        .exit_group(&g)
        .await
        .unwrap_or_else(|e| panic!("{kind}: member exit: {e}"));
    assert_eq!(listed(&carol, &g).await, None, "{kind}");
    expect(
        &mut bob_ev,
        "carol left",
        |e| matches!(e, Event::MemberLeft { participant, .. } if participant.as_str() == "carol@localhost"),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ps = bob.participants(&g).await.unwrap();
        if !ps.iter().any(|p| p.jid.as_str() == "carol@localhost") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kind}: carol still listed: {ps:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

on_both_servers!(last_admin_hands_over: the_last_admin_hands_over_on_prosody, the_last_admin_hands_over_on_ejabberd);

/// After a server restart the session cannot be resumed: the client logs in again, joins
/// its groups again, and messages flow.
async fn restart(kind: ServerKind) {
    let Some(mut server) = TestServer::start(kind) else {
        return;
    };
    let (alice, mut alice_ev) = login(&server, "alice", Via::Tcp).await;
    let (bob, mut bob_ev) = login(&server, "bob", Via::Tcp).await;
    let g = alice
        .create_group("Survives", &["bob@localhost"], None)
        .await
        .unwrap()
        .jid;
    expect(&mut bob_ev, "added", |e| {
        matches!(e, Event::AddedToGroup { .. })
    })
    .await;
    tokio::task::block_in_place(|| server.restart());
    for ev in [&mut alice_ev, &mut bob_ev] {
        expect(ev, "reconnected", |e| {
            matches!(
                e,
                Event::Connection(Connection::Connected { resumed: false, .. })
            )
        })
        .await;
    }
    for ev in [&mut alice_ev, &mut bob_ev] {
        // (The first login's event listed no group.)
        let joined = expect(
            ev,
            "rejoined",
            |e| matches!(e, Event::GroupsJoined { groups, .. } if !groups.is_empty()),
        )
        .await;
        assert_eq!(
            joined,
            Event::GroupsJoined {
                groups: vec![g.clone()],
                reason: JoinReason::NewSession,
            },
            "{kind}"
        );
    }
    bob.send_text(&g, "back").await.unwrap();
    expect(
        &mut alice_ev,
        "bob's message",
        |e| matches!(e, Event::GroupMessage(m) if m.body.as_deref() == Some("back")),
    )
    .await;
    assert_eq!(listed(&bob, &g).await, Some(Some("Survives".into())));
}

on_both_servers!(restart: groups_are_rejoined_after_a_server_restart_on_prosody, groups_are_rejoined_after_a_server_restart_on_ejabberd);

/// A member who does not use the SDK cannot fake admin actions with notices, and an
/// invitation to a room that is not a group (here an open room) is not accepted. Carol
/// speaks raw XMPP through the transport crate.
async fn forgeries_are_ignored(kind: ServerKind) {
    use groupchat_protocol::codec::ext::notice::{Notice, NoticeKind};
    use groupchat_protocol::codec::xep::direct_invite;

    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, _a) = login(&server, "alice", Via::Tcp).await;
    let (bob, mut bob_ev) = login(&server, "bob", Via::Tcp).await;
    let g = group_of(
        &alice,
        "Real",
        &["bob@localhost", "carol@localhost"],
        &mut [&mut bob_ev],
    )
    .await;

    let mut raw = raw_client(&server, "carol").await;
    // Carol enters the group (she is a member) and an open room of her own.
    let open = format!("open-{}", std::process::id());
    let open_room = alice.group_jid(&open).unwrap();
    for room in [&g, &open_room] {
        raw_join(&mut raw, room, "carol@localhost").await;
    }
    // Forged admin notices to the group, and an invitation to the open room.
    let to: jid::Jid = g.clone().into();
    for (kind_, who) in [
        (NoticeKind::ParticipantRemoved, "alice@localhost"),
        (NoticeKind::AdminGranted, "carol@localhost"),
        (NoticeKind::ProfileUpdated, "carol@localhost"),
    ] {
        let m = Notice::new(kind_, vec![who.to_owned()]).message(to.clone(), "forged", "forged");
        raw.send(m.encode()).await.unwrap();
    }
    raw.send(direct_invite::invite(
        open_room.as_str(),
        "bob@localhost",
        None,
    ))
    .await
    .unwrap();
    // A real admin action follows in the same room: bob hears it, and nothing forged first.
    alice.make_admin(&g, "bob@localhost").await.unwrap();
    let first = expect(&mut bob_ev, "the real notice", |e| {
        matches!(
            e,
            Event::ParticipantRemoved { .. }
                | Event::AdminGranted { .. }
                | Event::ProfileUpdated { .. }
                | Event::AddedToGroup { .. }
        )
    })
    .await;
    assert_eq!(
        first,
        Event::AdminGranted {
            group: g.clone(),
            participant: jid("bob@localhost"),
            by: jid("alice@localhost")
        },
        "{kind}: a forged notice was believed"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        listed(&bob, &open_room).await,
        None,
        "{kind}: joined an open room on a forged invitation"
    );
    raw.close();
}

on_both_servers!(forgeries_are_ignored: forgeries_are_ignored_on_prosody, forgeries_are_ignored_on_ejabberd);

/// Calls that change nothing announce nothing: re-adding a member, removing or promoting
/// someone who is not a participant (404), promoting an admin again. Most go through the
/// group's handle (`client.group(jid)`), with JIDs as text and typed.
async fn calls_that_change_nothing(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, _a) = login(&server, "alice", Via::Tcp).await;
    let (bob, mut bob_ev) = login(&server, "bob", Via::Tcp).await;
    // Member lists are any iterator of JID-like strings.
    let created = alice
        .create_group("No-ops", vec!["bob@localhost".to_owned()], None)
        .await
        .unwrap();
    assert_eq!(
        (created.role, created.joined),
        (Some(ParticipantRole::Admin), true)
    );
    let g = created.jid;
    added(&mut bob_ev, &g).await;
    let listed = bob.groups().await.unwrap();
    let mine = listed.iter().find(|x| x.jid == g).expect("listed");
    assert_eq!(
        (mine.role, mine.joined),
        (Some(ParticipantRole::Member), true)
    );
    // What the creation announced reaches bob first.
    alice.send_text(&g, "created").await.unwrap();
    support::until(
        &mut bob_ev,
        "created",
        |e| matches!(e, Event::GroupMessage(m) if m.body.as_deref() == Some("created")),
    )
    .await;
    // The same calls through the group's handle, with text and typed JIDs.
    assert_eq!(status(alice.group("bob@localhost")), 400);
    let team = alice.group(&g).unwrap();
    assert_eq!(team.jid(), &g);
    team.add_participants(&["bob@localhost"]).await.unwrap();
    assert_eq!(
        status(team.remove_participant("carol@localhost").await),
        404
    );
    assert_eq!(status(team.make_admin(jid("carol@localhost")).await), 404);
    team.make_admin(&jid("bob@localhost")).await.unwrap();
    alice.make_admin(&g, "bob@localhost").await.unwrap();
    team.send_text("sentinel").await.unwrap();
    let (_, before) = support::until(
        &mut bob_ev,
        "the sentinel",
        |e| matches!(e, Event::GroupMessage(m) if m.body.as_deref() == Some("sentinel")),
    )
    .await;
    let announced: Vec<&Event> = before
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::ParticipantsAdded { .. }
                    | Event::ParticipantRemoved { .. }
                    | Event::AdminGranted { .. }
            )
        })
        .collect();
    assert_eq!(
        announced,
        vec![&Event::AdminGranted {
            group: g.clone(),
            participant: jid("bob@localhost"),
            by: jid("alice@localhost")
        }],
        "{kind}"
    );
    // carol was never made anything.
    let carol = team
        .participants()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.jid.as_str() == "carol@localhost");
    assert!(carol.is_none(), "{carol:?}");
}

on_both_servers!(calls_that_change_nothing: calls_that_change_nothing_announce_nothing_on_prosody, calls_that_change_nothing_announce_nothing_on_ejabberd);

/// One message in three languages (a `<body xml:lang>` each, sent by carol from a plain
/// XMPP client): bob, who reads French first, gets the French body and the other two; alice,
/// who named no language, gets the message's default-language body and the other two.
async fn body_languages(kind: ServerKind) {
    use groupchat_sdk::{Bodies, GroupMessage};

    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, mut alice_ev) = login(&server, "alice", Via::Tcp).await;
    let bob = support::tcp_builder(&server, "bob")
        .languages(["fr-CA", "de"])
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{kind}: bob cannot connect: {e}"));
    let mut bob_ev = bob.events();
    let g = group_of(
        &alice,
        "Languages",
        &["bob@localhost", "carol@localhost"],
        &mut [&mut bob_ev],
    )
    .await;
    let mut carol = raw_client(&server, "carol").await;
    raw_join(&mut carol, &g, "carol@localhost").await;
    carol
        .send(
            format!(
                "<message xmlns='jabber:client' to='{g}' type='groupchat' id='three' xml:lang='en'>\
                 <body>Hello</body><body xml:lang='de'>Hallo</body><body xml:lang='fr'>Bonjour</body></message>"
            )
            .into_bytes(),
        )
        .await
        .unwrap();
    let received = |ev: Event| match ev {
        Event::GroupMessage(m) => m,
        other => unreachable!("{other:?}"),
    };
    let is_it = |e: &Event| matches!(e, Event::GroupMessage(m) if m.id.as_deref() == Some("three"));
    let texts = |m: &GroupMessage| {
        let b: &Bodies = m.bodies.as_deref().expect("every language kept");
        let mut others: Vec<(String, String)> = b
            .others
            .iter()
            .map(|o| (o.lang.clone(), o.text.clone()))
            .collect();
        others.sort();
        (m.body.clone().unwrap_or_default(), b.lang.clone(), others)
    };
    let for_bob = received(expect(&mut bob_ev, "the message (bob)", is_it).await);
    let (body, lang, others) = texts(&for_bob);
    assert_eq!(
        (body.as_str(), lang.as_deref()),
        ("Bonjour", Some("fr")),
        "{kind}"
    );
    assert_eq!(others.len(), 2, "{kind}: {others:?}");
    assert!(
        others.iter().any(|(l, t)| l == "de" && t == "Hallo"),
        "{kind}: {others:?}"
    );
    assert!(
        others.iter().any(|(_, t)| t == "Hello"),
        "{kind}: {others:?}"
    );
    let for_alice = received(expect(&mut alice_ev, "the message (alice)", is_it).await);
    let (body, _, others) = texts(&for_alice);
    assert_eq!(body, "Hello", "{kind}");
    assert_eq!(
        others,
        [
            ("de".to_owned(), "Hallo".to_owned()),
            ("fr".to_owned(), "Bonjour".to_owned())
        ],
        "{kind}"
    );
}

on_both_servers!(body_languages: a_message_in_three_languages_reaches_each_reader_in_theirs_on_prosody, a_message_in_three_languages_reaches_each_reader_in_theirs_on_ejabberd);
