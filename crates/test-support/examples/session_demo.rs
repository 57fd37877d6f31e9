//! The demo: starts a throw-away Prosody (or ejabberd: `-- ejabberd`) on loopback, logs alice
//! in through the sans-IO session driven by a blocking `std::net` loop (the protocol crate's
//! `blocking_login` example), sends a message to herself and receives it.
//!
//! ```sh
//! cargo run -p groupchat-test-support --example session_demo [-- ejabberd]
//! ```

// A driver owns the clock and the socket.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "../../protocol/examples/blocking_login.rs"]
mod blocking_login;

use std::time::Instant;

use groupchat_protocol::{Config, Framing, Mechanism, Tls};
use groupchat_test_support::{ServerKind, TestServer};

fn main() {
    let kind = match std::env::args().nth(1).as_deref() {
        Some("ejabberd") => ServerKind::Ejabberd,
        _ => ServerKind::Prosody,
    };
    let t = Instant::now();
    let Some(server) = TestServer::start(kind) else {
        eprintln!("{kind} is not installed; nothing to demo");
        std::process::exit(2);
    };
    println!(
        "{kind} started in {:?}, c2s on {}",
        t.elapsed(),
        server.c2s_addr()
    );
    let alice = server.account("alice");
    let mut config = Config::new(
        alice.jid.parse().expect("valid JID"),
        alice.password.as_str(),
        Framing::Stream,
        blocking_login::entropy(),
    );
    // Plaintext is an explicit opt-in, for this loopback server only.
    config.tls = Tls::InsecurePlaintext;
    config.mechanisms = vec![Mechanism::ScramSha256];
    let t = Instant::now();
    match blocking_login::self_message(&server.c2s_addr().to_string(), config) {
        Ok(body) => println!(
            "logged in with SCRAM-SHA-256, sent and received {body:?} in {:?}",
            t.elapsed()
        ),
        Err(e) => {
            eprintln!("demo failed: {e}\n{}", server.log_tail(20));
            std::process::exit(1);
        }
    }
}
