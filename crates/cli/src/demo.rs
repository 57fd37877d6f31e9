//! `groupchat demo`: starts a throw-away server on loopback with the tests' own launcher
//! (`groupchat-test-support`), then plays a scenario with three users, each a separate SDK
//! client, printing what each of them sees.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use groupchat_sdk::transport_tcp::{Security, TcpConnector, TlsOptions};
use groupchat_sdk::{Client, DownloadOptions, GroupImage, HistoryRequest, MediaFile, MediaOptions};
use groupchat_test_support::{ServerKind, TestServer};

use crate::args::DemoArgs;
use crate::commands::event_line;
use crate::output::CliError;

/// A 1×1 PNG, the group's image.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

pub(crate) async fn run(server_arg: Option<&str>, args: DemoArgs) -> Result<(), CliError> {
    let kind = match server_arg {
        None | Some("prosody") => ServerKind::Prosody,
        Some("ejabberd") => ServerKind::Ejabberd,
        Some(other) => {
            return Err(CliError::usage(format!(
                "demo --server takes prosody or ejabberd, not {other:?}"
            )));
        }
    };
    let t = Instant::now();
    let Some(server) = tokio::task::block_in_place(|| TestServer::start(kind)) else {
        return Err(CliError::usage(format!(
            "{kind} is not installed: run scripts/install-servers first"
        )));
    };
    println!(
        "{kind} started on 127.0.0.1:{} in {:.1} s (TLS with its own CA; users alice, bob, carol)",
        server.c2s_addr().port(),
        t.elapsed().as_secs_f32()
    );
    let result = scenario(&server).await;
    if args.keep {
        let dir = server.dir().to_owned();
        let addr = server.c2s_addr();
        let ca = server.ca_cert_pem().to_owned();
        let pid = tokio::task::block_in_place(|| server.keep_running());
        println!(
            "\nThe server keeps running (pid {pid}, files in {}). Connect to it:\n\n  \
             GROUPCHAT_PASSWORD=alicepass groupchat --jid alice@localhost --server {addr} \
             --ca-file {} --http-loopback groups list\n\nStop it with: kill {pid} && rm -r {}",
            dir.display(),
            ca.display(),
            dir.display()
        );
    } else {
        tokio::task::block_in_place(|| drop(server));
        println!("\n{kind} stopped.");
    }
    result
}

async fn login(server: &TestServer, user: &str) -> Result<Client, CliError> {
    let account = server.account(user);
    let client = Client::builder(account.jid.as_str(), account.password.as_str())
        .tcp(
            TcpConnector::builder("localhost")
                .address(server.c2s_addr())
                .security(Security::StartTls)
                .tls(TlsOptions::ca_file(server.ca_cert_pem()))
                .build()
                .map_err(|e| CliError::usage(e.to_string()))?,
        )
        .http_tls(TlsOptions::ca_file(server.ca_cert_pem()))
        .allow_insecure_http_loopback()
        .connect()
        .await?;
    let mut events = client.events();
    let name = user.to_owned();
    tokio::spawn(async move {
        while let Some(e) = events.next().await {
            if let Some(line) = event_line(&e).filter(|_| {
                // Delivery counts come at every marker; the scenario asks for them once.
                !matches!(
                    e,
                    groupchat_sdk::Event::Connection(_)
                        | groupchat_sdk::Event::GroupsJoined { .. }
                        | groupchat_sdk::Event::MessageInfo { .. }
                )
            }) {
                println!("    [{name} sees] {line}");
            }
        }
    });
    println!("{user} logged in (STARTTLS, certificate verified)");
    Ok(client)
}

fn step(text: &str) {
    println!("\n== {text}");
}

/// Lets the others' events print before the next step.
async fn pause() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

async fn scenario(server: &TestServer) -> Result<(), CliError> {
    let alice = login(server, "alice").await?;
    let bob = login(server, "bob").await?;
    let carol = login(server, "carol").await?;

    step("alice creates \"Demo team\" with bob and carol, and an image");
    let image = GroupImage::from_bytes(PNG.to_vec())?;
    let g = alice
        .create_group(
            "Demo team",
            &["bob@localhost", "carol@localhost"],
            Some(image),
        )
        .await?
        .jid;
    println!("group: {g}");
    pause().await;

    step("alice says hello; bob types, then answers");
    let hello = alice.send_text(&g, "Hello team!").await?;
    bob.send_typing(&g).await?;
    pause().await;
    bob.send_typing_gone(&g).await?;
    bob.send_text(&g, "Hi alice!").await?;
    pause().await;

    step("alice sends ten more; carol reads the history, five at a time");
    for i in 1..=10 {
        alice.send_text(&g, &format!("update {i}")).await?;
    }
    pause().await;
    let page = carol.history(&g, HistoryRequest::latest(5)).await?;
    let bodies = |h: &groupchat_sdk::History| {
        h.messages
            .iter()
            .map(|m| m.body.clone().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    println!("carol's latest 5: {}", bodies(&page));
    if let Some(older) = page.next(groupchat_sdk::Direction::Up, 5) {
        let page = carol.history(&g, older).await?;
        println!("carol's 5 before: {}", bodies(&page));
    }

    step("alice shares a document; bob downloads it");
    let dir = demo_dir();
    std::fs::create_dir_all(&dir).map_err(|e| CliError::usage(e.to_string()))?;
    let report = dir.join("plan.pdf");
    std::fs::write(&report, b"%PDF-1.4\n% the demo's plan\n")
        .map_err(|e| CliError::usage(e.to_string()))?;
    let sent = alice
        .send_document(
            &g,
            MediaFile::open(&report),
            MediaOptions::default().caption("the plan"),
        )
        .await?;
    println!("uploaded to {}", sent.media.url);
    pause().await;
    let inbox = dir.join("bob");
    std::fs::create_dir_all(&inbox).map_err(|e| CliError::usage(e.to_string()))?;
    let saved = bob
        .download_media(&sent.media, &inbox, DownloadOptions::default())
        .await?;
    println!(
        "bob saved {} ({} bytes, SHA-256 checked)",
        saved.display(),
        std::fs::metadata(&saved).map(|m| m.len()).unwrap_or(0)
    );

    step("bob and carol read alice's hello; alice asks who saw it");
    let row = hello.stanza_id.clone().unwrap_or_default();
    bob.mark_seen(&g, &row).await?;
    carol.mark_seen(&g, &row).await?;
    pause().await;
    let info = alice.message_info(&g, &row).await?;
    println!(
        "received by {}/{}, seen by {}/{}",
        info.received_count(),
        info.members,
        info.seen_count(),
        info.members
    );

    step("alice deletes \"update 10\" for everyone");
    let latest = alice.history(&g, HistoryRequest::latest(5)).await?;
    if let Some(m) = latest
        .messages
        .iter()
        .find(|m| m.body.as_deref() == Some("update 10"))
    {
        alice.delete_for_everyone(&g, &m.row_id).await?;
    }
    pause().await;

    step("alice makes bob an admin; bob removes carol, who can no longer post");
    alice.make_admin(&g, "bob@localhost").await?;
    pause().await;
    bob.remove_participant(&g, "carol@localhost").await?;
    pause().await;
    match carol.send_text(&g, "am I still here?").await {
        Ok(_) => println!("carol could still post (unexpected)"),
        Err(e) => println!("carol's message is refused: {} {e}", e.status_code()),
    }

    step("alice deletes the group");
    alice.delete_group(&g).await?;
    pause().await;
    for c in [&alice, &bob, &carol] {
        c.close();
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn demo_dir() -> PathBuf {
    std::env::temp_dir().join(format!("groupchat-demo-{}", std::process::id()))
}
