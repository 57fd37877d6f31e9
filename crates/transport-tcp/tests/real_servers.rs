//! The TCP transport against real Prosody and ejabberd on loopback: STARTTLS and direct TLS
//! against the test CA, typed failures (password, certificate name, plaintext), and
//! delivery across connection cuts (resumption) and server restarts (fresh session).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use groupchat_protocol::codec::Stanza;
use groupchat_protocol::{SessionError, Tls};
use groupchat_test_support::{FaultProxy, ServerKind, TestServer};
use groupchat_transport::{
    CertificateProblem, Client, ConnectionState, TlsFailure, TransportError, TransportEvent,
};
use groupchat_transport_tcp::{Security, TcpConnector, TlsOptions};

use groupchat_test_support::transport::{
    chat, config, connected, echo, ended, presence, until_state,
};

fn connector(
    server: &TestServer,
    addr: std::net::SocketAddr,
    security: Security,
) -> Arc<TcpConnector> {
    Arc::new(
        TcpConnector::builder("localhost")
            .address(addr)
            .security(security)
            .tls(TlsOptions::ca_file(server.ca_cert_pem()))
            .build()
            .unwrap(),
    )
}

async fn login_and_echo(server: &TestServer, addr: std::net::SocketAddr, security: Security) {
    let alice = server.account("alice");
    let mut c = Client::start(config(&alice), connector(server, addr, security));
    until_state(&mut c, "connected", connected).await;
    echo(&mut c, "echo").await;
    c.close();
    let end = until_state(&mut c, "end", ended).await;
    assert_eq!(
        end,
        ConnectionState::Ended { reason: None },
        "{}",
        server.kind()
    );
}

/// Bob connected directly (and present), alice through `proxy`; returns (bob, alice, bob's JID).
async fn receiver_and_sender(server: &TestServer, proxy: &FaultProxy) -> (Client, Client, String) {
    let (alice, bob) = (server.account("alice"), server.account("bob"));
    let mut receiver = Client::start(
        config(&bob),
        connector(server, server.c2s_addr(), Security::StartTls),
    );
    let ConnectionState::Connected { jid, .. } = until_state(&mut receiver, "bob", connected).await
    else {
        unreachable!()
    };
    receiver.send(presence()).await.unwrap();
    let mut sender = Client::start(
        config(&alice),
        connector(server, proxy.addr(), Security::StartTls),
    );
    until_state(&mut sender, "alice", connected).await;
    (receiver, sender, jid.to_string())
}

async fn failures(server: &TestServer) {
    let kind = server.kind();
    let mut alice = server.account("alice");
    // Wrong password: typed, permanent, and no reconnection loop.
    alice.password = "wrong".into();
    let mut c = Client::start(
        config(&alice),
        connector(server, server.c2s_addr(), Security::StartTls),
    );
    let mut connecting = 0;
    let reason = loop {
        match c.next_event().await {
            Some(TransportEvent::State(ConnectionState::Connecting { .. })) => connecting += 1,
            Some(TransportEvent::State(ConnectionState::Ended { reason })) => break reason,
            Some(_) => {}
            None => panic!("{kind}: no end"),
        }
    };
    assert!(
        matches!(&reason, Some(TransportError::Session(SessionError::Auth(f))) if f.condition == "not-authorized"),
        "{kind}: {reason:?}"
    );
    assert_eq!(connecting, 1, "{kind}: a bad password must not be retried");

    // A certificate that does not match the name: typed TLS error naming the reason.
    let alice = server.account("alice");
    for (addr, security) in [
        (server.c2s_addr(), Security::StartTls),
        (server.direct_tls_addr(), Security::DirectTls),
    ] {
        let wrong = TcpConnector::builder("localhost")
            .address(addr)
            .security(security)
            .tls(
                TlsOptions::ca_file(server.ca_cert_pem())
                    .with_server_name("not-the-server.example"),
            )
            .build()
            .unwrap();
        let mut c = Client::start(config(&alice), Arc::new(wrong));
        let end = until_state(&mut c, "end", ended).await;
        match end {
            ConnectionState::Ended {
                reason: Some(TransportError::Tls(TlsFailure::InvalidCertificate(why))),
            } => {
                assert_eq!(why, CertificateProblem::WrongName, "{kind}");
            }
            other => panic!("{kind} {security:?}: {other:?}"),
        }
    }

    // Trusting only the webpki roots, the self-signed test CA does not verify.
    let strict = TcpConnector::builder("localhost")
        .address(server.c2s_addr())
        .build()
        .unwrap();
    let mut c = Client::start(config(&alice), Arc::new(strict));
    let end = until_state(&mut c, "end", ended).await;
    assert!(
        matches!(
            end,
            ConnectionState::Ended {
                reason: Some(TransportError::Tls(TlsFailure::InvalidCertificate(
                    CertificateProblem::UnknownIssuer
                )))
            }
        ),
        "{kind}: {end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_direct_tls_and_typed_failures_on_prosody() {
    let Some(server) = TestServer::start(ServerKind::Prosody) else {
        return;
    };
    login_and_echo(&server, server.c2s_addr(), Security::StartTls).await;
    login_and_echo(&server, server.direct_tls_addr(), Security::DirectTls).await;
    failures(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_direct_tls_and_typed_failures_on_ejabberd() {
    let Some(server) = TestServer::start(ServerKind::Ejabberd) else {
        return;
    };
    login_and_echo(&server, server.c2s_addr(), Security::StartTls).await;
    login_and_echo(&server, server.direct_tls_addr(), Security::DirectTls).await;
    failures(&server).await;
}

#[tokio::test]
async fn plaintext_needs_a_loopback_opt_in() {
    // Refused before any packet leaves: 192.0.2.1 is TEST-NET-1 and is never contacted.
    let c = TcpConnector::builder("example.org")
        .host_port("192.0.2.1", 5222)
        .security(Security::InsecurePlaintextLoopback)
        .build()
        .unwrap();
    assert_eq!(
        groupchat_transport::Connector::tls(&c),
        Tls::InsecurePlaintext
    );
    match groupchat_transport::Connector::connect(&c).await {
        Err(e @ TransportError::PlaintextRefused(_)) => assert!(e.is_permanent()),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("connected in plaintext to a non-loopback address"),
    }
}

/// After a fresh (non-resumed) reconnection the receiver sends its initial presence, then a
/// message to its own bare JID; once that comes back the server routes to it as available,
/// and `ready` counts one more reconnection. (A bare-JID message that ejabberd routes while
/// the presence is being processed can be stored offline after the offline queue was
/// flushed, and would then wait for the next login: the sender waits for `ready` instead
/// of racing the server.)
struct Rejoin {
    bare: String,
    ready: tokio::sync::watch::Sender<u32>,
    /// The distinct bodies received so far.
    received: Arc<std::sync::Mutex<HashSet<String>>>,
}

/// Collects chat bodies `m000`.. (in order) from `client` until `n` distinct ones arrived,
/// each with the number of fresh sessions the receiver had started before it arrived.
async fn collect(client: &mut Client, n: usize, rejoin: Option<Rejoin>) -> Vec<(String, u32)> {
    let mut bodies = Vec::new();
    let mut distinct = HashSet::new();
    let mut reconnections = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while distinct.len() < n {
        match tokio::time::timeout_at(deadline, client.next_event()).await {
            Err(_) => {
                let missing: Vec<String> = (0..n)
                    .map(|i| format!("m{i:03}"))
                    .filter(|b| !distinct.contains(b))
                    .collect();
                panic!(
                    "received {} of {n}, missing {missing:?}: {:?}",
                    distinct.len(),
                    client.state()
                )
            }
            Ok(Some(TransportEvent::Stanza(Stanza::Message(m)))) => match m.body {
                Some(b) if b.starts_with('m') => {
                    distinct.insert(b.clone());
                    if let Some(r) = &rejoin {
                        r.received.lock().unwrap().insert(b.clone());
                    }
                    bodies.push((b, reconnections));
                }
                Some(b) if b == format!("ready{reconnections}") => {
                    if let Some(r) = &rejoin {
                        r.ready.send_replace(reconnections);
                    }
                }
                _ => {}
            },
            Ok(Some(TransportEvent::State(ConnectionState::Connected { .. }))) => {
                if let Some(r) = &rejoin {
                    reconnections += 1;
                    client.send(presence()).await.unwrap();
                    let ping = format!("ready{reconnections}");
                    client.send(chat(&r.bare, &ping)).await.unwrap();
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("client ended"),
        }
    }
    bodies
}

async fn cut_in_the_middle(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let proxy = FaultProxy::start(server.c2s_addr()).unwrap();
    let (mut receiver, mut sender, to) = receiver_and_sender(&server, &proxy).await;
    let collector = tokio::spawn(async move { collect(&mut receiver, 200, None).await });
    let mut resumed = false;
    // The last stanza the server acknowledged before the cut (ids count from 0: alice sends
    // nothing else, so id n is m{n}).
    let mut acked_before_cut: Option<u64> = None;
    for i in 0..200 {
        if i == 100 {
            proxy.cut();
        }
        sender.send(chat(&to, &format!("m{i:03}"))).await.unwrap();
        // Read the sender's events as we go, to see the acks and the resumption.
        while let Ok(Some(ev)) =
            tokio::time::timeout(Duration::from_millis(1), sender.next_event()).await
        {
            match ev {
                TransportEvent::Acked { up_to } if i < 100 => {
                    acked_before_cut = acked_before_cut.max(Some(up_to.0));
                }
                TransportEvent::State(ConnectionState::Connected { resumed: r, .. }) => {
                    resumed |= r
                }
                TransportEvent::Unacknowledged { stanzas } => {
                    panic!("{kind}: resumption failed, {} unacked", stanzas.len())
                }
                _ => {}
            }
        }
    }
    let bodies: Vec<String> = collector
        .await
        .unwrap()
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    let expected: Vec<String> = (0..200).map(|i| format!("m{i:03}")).collect();
    // XEP-0198 is at-least-once: after `<resumed h/>` alice replays what the server had not
    // counted, and ejabberd's old connection may still route some of those from its buffer
    // (seen under load: m096 m096 m097 m098 m097 …). So: nothing lost, first arrivals in
    // order, and a second copy only of a stanza the server had not acknowledged before the
    // cut. (The SDK drops such copies by message id.)
    let mut first = Vec::new();
    let mut seen = HashSet::new();
    for b in &bodies {
        if seen.insert(b.clone()) {
            first.push(b.clone());
        } else {
            let n: u64 = b[1..].parse().unwrap();
            assert!(
                acked_before_cut.is_none_or(|a| n > a),
                "{kind}: {b} arrived twice although acknowledged before the cut (up to {acked_before_cut:?})"
            );
        }
    }
    assert_eq!(first, expected, "{kind}: all, in order");
    // The cut may land between writes; a resumption must have happened if it hit a live link.
    assert!(
        proxy.connection_count() >= 2,
        "{kind}: the cut forced a reconnection"
    );
    while !resumed {
        match tokio::time::timeout(Duration::from_secs(20), sender.next_event()).await {
            Ok(Some(TransportEvent::State(ConnectionState::Connected { resumed: r, .. }))) => {
                resumed = r
            }
            Ok(Some(TransportEvent::Unacknowledged { .. })) => panic!("{kind}: resumption failed"),
            Ok(Some(_)) => {}
            other => panic!("{kind}: no resumption: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_mid_stream_is_resumed_without_loss_on_prosody() {
    cut_in_the_middle(ServerKind::Prosody).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_mid_stream_is_resumed_without_loss_on_ejabberd() {
    cut_in_the_middle(ServerKind::Ejabberd).await;
}

async fn restart_in_the_middle(kind: ServerKind) {
    let Some(mut server) = TestServer::start(kind) else {
        return;
    };
    let proxy = FaultProxy::start(server.c2s_addr()).unwrap();
    let (mut receiver, mut sender, _) = receiver_and_sender(&server, &proxy).await;
    // Bob's messages go to his bare JID: after the restart his session is new, and whatever
    // arrives while he is away waits in offline storage until his presence.
    let (ready, mut bob_ready) = tokio::sync::watch::channel(0);
    let received = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let rejoin = Rejoin {
        bare: "bob@localhost".to_owned(),
        ready,
        received: received.clone(),
    };
    let collector = tokio::spawn(async move { collect(&mut receiver, 200, Some(rejoin)).await });

    let mut reported: Vec<u64> = Vec::new();
    let mut resent: HashSet<String> = HashSet::new();
    // The highest stanza id the server acknowledged (ids count from 0 per client, and alice
    // sends nothing else: id n is m{n} until re-sends start).
    let mut acked: Option<u64> = None;
    for i in 0..200 {
        if i == 100 {
            // What alice sends now never reaches the server...
            proxy.set_blackhole(groupchat_test_support::Direction::ToServer, true);
        }
        if i == 110 {
            // A stanza the server acknowledged is the server's to deliver (XEP-0198); ejabberd
            // drops those still on their way to the receiver when it is stopped (seen in CI:
            // m087..m091 lost). The client's part is what was *not* acknowledged, so the
            // restart waits until everything acknowledged has arrived.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                while let Ok(Some(ev)) =
                    tokio::time::timeout(Duration::from_millis(1), sender.next_event()).await
                {
                    if let TransportEvent::Acked { up_to } = ev {
                        acked = acked.max(Some(up_to.0));
                    }
                }
                let delivered = match acked {
                    None => true,
                    Some(a) => {
                        let got = received.lock().unwrap();
                        (0..=a).all(|n| got.contains(&format!("m{n:03}")))
                    }
                };
                if delivered {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{kind}: acknowledged up to {acked:?} but not delivered"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // ...and the server restarts: its sessions are gone, resumption is impossible.
            // (Prosody remembers the old session's count and says so in <failed h/>;
            // ejabberd does not: then everything since the last ack is reported.)
            tokio::task::block_in_place(|| server.restart());
            proxy.set_blackhole(groupchat_test_support::Direction::ToServer, false);
            tokio::time::timeout(Duration::from_secs(60), bob_ready.wait_for(|n| *n >= 1))
                .await
                .expect("bob is back after the restart")
                .unwrap();
        }
        sender
            .send(chat("bob@localhost", &format!("m{i:03}")))
            .await
            .unwrap();
        let mut resend = Vec::new();
        while let Ok(Some(ev)) =
            tokio::time::timeout(Duration::from_millis(1), sender.next_event()).await
        {
            match ev {
                TransportEvent::Unacknowledged { stanzas } => {
                    reported.extend(stanzas.iter().map(|u| u.id.0));
                    resend.extend(stanzas.into_iter().map(|u| u.bytes.to_vec()));
                }
                TransportEvent::Acked { up_to } if i < 110 => {
                    acked = acked.max(Some(up_to.0));
                }
                _ => {}
            }
        }
        // The application's choice after a failed resumption: send them again.
        for bytes in resend {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Some(b) = text
                .split("<body>")
                .nth(1)
                .and_then(|r| r.split("</body>").next())
            {
                resent.insert(b.to_owned());
            }
            sender.send(bytes).await.unwrap();
        }
    }
    let bodies = collector.await.unwrap();
    assert!(
        !reported.is_empty(),
        "{kind}: the sender was told which stanzas were not acknowledged"
    );
    assert!(
        reported.windows(2).all(|w| w[0] < w[1]),
        "{kind}: reported in send order: {reported:?}"
    );
    // Ids count from 0 per client (alice sent nothing else): m100..m109 never reached the
    // server, so each of them must be reported.
    assert!(
        (100..110).all(|i| reported.contains(&i)),
        "{kind}: {reported:?}"
    );
    let distinct: HashSet<&String> = bodies.iter().map(|(b, _)| b).collect();
    assert_eq!(distinct.len(), 200, "{kind}: nothing lost");
    // Duplicates are at-least-once effects of the restart, never anything else: stanzas
    // alice re-sent (delivered, but never acked to her), or stanzas bob had received but not
    // yet acked when the server shut down, which the server keeps offline and delivers again
    // to bob's next session (seen with Prosody; under load bob's last ack lags further
    // behind). The SDK removes them by message id.
    let mut first_session: HashMap<&String, u32> = HashMap::new();
    for (b, session) in &bodies {
        match first_session.get(b) {
            None => {
                first_session.insert(b, *session);
            }
            Some(first) => assert!(
                resent.contains(b) || session > first,
                "{kind}: duplicate {b} is neither re-sent nor redelivered to a later session"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_a_fresh_session_reports_the_unacknowledged_on_prosody() {
    restart_in_the_middle(ServerKind::Prosody).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_a_fresh_session_reports_the_unacknowledged_on_ejabberd() {
    restart_in_the_middle(ServerKind::Ejabberd).await;
}
