//! Every diagnostic line at the most verbose level, through a whole login and group flow on
//! real servers: the password, the SASL exchange and message bodies never appear.

use std::io::Write;
use std::sync::{Arc, Mutex};

use groupchat_test_support::{ServerKind, TestServer};

mod support;
use support::{added, tcp_builder, until};

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_of_a_login_and_group_flow_hold_no_secrets() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    let password = "Pa55-w0rd-that-must-not-leak";
    let body = "a body that stays out of the logs";
    for kind in ServerKind::ALL {
        let Some(server) = TestServer::start(kind) else {
            return;
        };
        let user = format!("logged{}", kind.to_string().to_lowercase());
        server.register(&user, password);
        let alice = tcp_builder(&server, &user).connect().await.unwrap();
        let (_bob, mut bob_ev) = support::login_tcp(&server, "bob").await;
        let g = alice
            .create_group("Logged", &["bob@localhost"], None)
            .await
            .unwrap()
            .jid;
        added(&mut bob_ev, &g).await;
        alice.participants(&g).await.unwrap();
        alice.send_text(&g, body).await.unwrap();
        until(&mut bob_ev, "the message", |e| {
            matches!(e, groupchat_sdk::Event::GroupMessage(m) if m.body.as_deref() == Some(body))
        })
        .await;
        alice.close();
    }

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    if let Ok(path) = std::env::var("GROUPCHAT_LOG_SAMPLE") {
        std::fs::write(path, &logs).unwrap();
    }
    // It did log, at every level down to trace, with connections and group calls.
    for expected in [
        "TRACE",
        "DEBUG",
        "logged in",
        "stanza received",
        "create_group",
        "group=",
    ] {
        assert!(logs.contains(expected), "no {expected:?} in the logs");
    }
    let plain_token =
        groupchat_test_support::base64(format!("\0loggedprosody\0{password}").as_bytes());
    for secret in [
        password,
        plain_token.as_str(),
        body,
        "<auth",
        "<response",
        "<challenge",
        "c=biws",
    ] {
        assert!(!logs.contains(secret), "{secret:?} appears in the logs");
    }
}
