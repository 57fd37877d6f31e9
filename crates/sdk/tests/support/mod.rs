//! Helpers shared by the SDK's real-server tests (a subdirectory, so cargo does not build it
//! as a test of its own).

// Each including test binary uses a different subset.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use groupchat_sdk::jid::BareJid;
use groupchat_sdk::transport_tcp::{Security, TcpConnector, TlsOptions};
use groupchat_sdk::{Client, ClientBuilder, Event, EventStream, ReconnectPolicy, ToJid};
use groupchat_test_support::TestServer;
use groupchat_transport::{ClientConfig, ConnectionState};

/// One test per server kind, each on its own runtime: `on_both_servers!(flow: a, b)` runs
/// `flow(ServerKind::Prosody)` as test `a` and `flow(ServerKind::Ejabberd)` as test `b`.
#[macro_export]
macro_rules! on_both_servers {
    ($flow:ident: $prosody:ident, $ejabberd:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $prosody() {
            $flow(groupchat_test_support::ServerKind::Prosody).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $ejabberd() {
            $flow(groupchat_test_support::ServerKind::Ejabberd).await;
        }
    };
}

/// Reconnects quickly (100 ms, at most 1 s apart).
pub(crate) fn quick_reconnect() -> ReconnectPolicy {
    let mut r = ReconnectPolicy::default();
    r.initial_delay = Duration::from_millis(100);
    r.max_delay = Duration::from_secs(1);
    r
}

/// A builder for `user` over STARTTLS with the test CA, straight to the server.
pub(crate) fn tcp_builder(server: &TestServer, user: &str) -> ClientBuilder {
    let account = server.account(user);
    Client::builder(account.jid.as_str(), account.password.as_str())
        .request_timeout(Duration::from_secs(20))
        .reconnect(quick_reconnect())
        .tcp(
            TcpConnector::builder("localhost")
                .address(server.c2s_addr())
                .security(Security::StartTls)
                .tls(TlsOptions::ca_file(server.ca_cert_pem()))
                .build()
                .unwrap(),
        )
}

/// How a test client reaches the server.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Via {
    /// STARTTLS with the test CA ([`tcp_builder`]).
    Tcp,
    /// WebSocket on the server's loopback HTTP port.
    WebSocket,
}

/// A builder for `user` over `via`.
pub(crate) fn builder(server: &TestServer, user: &str, via: Via) -> ClientBuilder {
    match via {
        Via::Tcp => tcp_builder(server, user),
        Via::WebSocket => {
            let account = server.account(user);
            Client::builder(account.jid.as_str(), account.password.as_str())
                .request_timeout(Duration::from_secs(20))
                .reconnect(quick_reconnect())
                .websocket(
                    groupchat_sdk::transport_ws::WsConnector::builder(server.websocket_url())
                        .allow_insecure_loopback()
                        .build()
                        .unwrap(),
                )
        }
    }
}

/// A member who speaks raw XMPP through the transport crate (what another client can send
/// through the server, within our own encoder's checks), logged in.
pub(crate) async fn raw_client(server: &TestServer, user: &str) -> groupchat_transport::Client {
    let account = server.account(user);
    let connector = Arc::new(
        TcpConnector::builder("localhost")
            .address(server.c2s_addr())
            .tls(TlsOptions::ca_file(server.ca_cert_pem()))
            .build()
            .unwrap(),
    );
    let mut raw = groupchat_transport::Client::start(
        ClientConfig::new(account.jid.parse().unwrap(), account.password.as_str()),
        connector,
    );
    let state = raw
        .wait_for_state(|s| matches!(s, ConnectionState::Connected { .. }))
        .await;
    assert!(
        matches!(state, ConnectionState::Connected { .. }),
        "{state:?}"
    );
    raw
}

/// Makes the raw client enter `room` as `nick` (without history) and waits for its own
/// presence (status 110).
#[allow(dead_code)] // Not every test file that includes this module uses it.
pub(crate) async fn raw_join(raw: &mut groupchat_transport::Client, room: &BareJid, nick: &str) {
    use groupchat_protocol::codec::Stanza;
    use groupchat_transport::TransportEvent;
    raw.send(groupchat_protocol::codec::xep::muc::join(
        room.as_str(),
        nick,
        "j",
        true,
    ))
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ev = tokio::time::timeout_at(deadline, raw.next_event())
            .await
            .unwrap_or_else(|_| panic!("{nick} did not enter {room}"));
        if let Some(TransportEvent::Stanza(Stanza::Presence(p))) = ev
            && p.from.as_ref().is_some_and(|f| f.to_bare() == *room)
            && p.muc_user.as_ref().is_some_and(|u| u.has_status(110))
        {
            return;
        }
    }
}

/// Reads events until one matches and returns it with every event before it; panics after
/// 30 s.
pub(crate) async fn until(
    events: &mut EventStream,
    what: &str,
    f: impl Fn(&Event) -> bool,
) -> (Event, Vec<Event>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut before = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Err(_) => panic!("timed out waiting for {what}; saw {before:#?}"),
            Ok(None) => panic!("client ended while waiting for {what}"),
            Ok(Some(e)) if f(&e) => return (e, before),
            Ok(Some(e)) => before.push(e),
        }
    }
}

/// Reads events until one matches; panics after 30 s.
pub(crate) async fn expect(
    events: &mut EventStream,
    what: &str,
    f: impl Fn(&Event) -> bool,
) -> Event {
    until(events, what, f).await.0
}

/// A bare JID written in a test.
pub(crate) fn jid(s: &str) -> BareJid {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Waits until `client` hears that it was added to `group`.
pub(crate) async fn added(events: &mut EventStream, group: impl ToJid) {
    let group = group.to_jid().unwrap().into_bare();
    expect(
        events,
        "added to the group",
        |e| matches!(e, Event::AddedToGroup { group: g, .. } if *g == group),
    )
    .await;
}

/// `creator`'s new group `name` with `members`; returns once each of `members_events` has
/// reported it added.
pub(crate) async fn group_of(
    creator: &Client,
    name: &str,
    members: &[&str],
    members_events: &mut [&mut EventStream],
) -> BareJid {
    let g = creator.create_group(name, members, None).await.unwrap().jid;
    for ev in members_events {
        added(ev, &g).await;
    }
    g
}

/// The events already queued (until none comes for 200 ms).
pub(crate) async fn pending(events: &mut EventStream) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
        out.push(e);
    }
    out
}

/// An SDK client over STARTTLS with the test CA, and its events.
pub(crate) async fn login_tcp(server: &TestServer, user: &str) -> (Client, EventStream) {
    let client = tcp_builder(server, user)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}: {user} cannot connect: {e}", server.kind()));
    let events = client.events();
    (client, events)
}
