//! The demo: starts a throw-away Prosody (or ejabberd: `-- ejabberd`) on loopback and walks
//! through the group API with three real users, each a separate SDK client: alice creates a
//! group with bob and carol and an image, they are added without doing anything, the profile
//! changes, bob becomes admin and removes carol, who can no longer post, and alice deletes
//! the group. Every event each user receives is printed as it arrives.
//!
//! ```sh
//! cargo run -p groupchat-sdk --example demo [-- ejabberd]
//! ```

use std::time::{Duration, Instant};

use groupchat_sdk::transport_tcp::{Security, TcpConnector, TlsOptions};
use groupchat_sdk::{Client, Event, GroupImage, Response};
use groupchat_test_support::{ServerKind, TestServer};

/// A 1×1 PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

async fn login(server: &TestServer, user: &str) -> Client {
    let account = server.account(user);
    let t = Instant::now();
    let client = Client::builder(account.jid.as_str(), account.password.as_str())
        .tcp(
            TcpConnector::builder("localhost")
                .address(server.c2s_addr())
                .security(Security::StartTls)
                .tls(TlsOptions::ca_file(server.ca_cert_pem()))
                .build()
                .expect("connector"),
        )
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{user}: {e} (status {})", e.status_code()));
    println!(
        "{user} logged in (STARTTLS, certificate verified) in {:?}",
        t.elapsed()
    );
    // Print this user's events as they come.
    let mut events = client.events();
    let name = user.to_owned();
    tokio::spawn(async move {
        while let Some(e) = events.next().await {
            if !matches!(e, Event::Connection(_) | Event::GroupsJoined { .. }) {
                println!(
                    "  [{name}] {}",
                    serde_json::to_string(&e).unwrap_or_default()
                );
            }
        }
    });
    client
}

fn pause() -> tokio::time::Sleep {
    // Lets the other users' events print before the next step.
    tokio::time::sleep(Duration::from_millis(300))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let kind = match std::env::args().nth(1).as_deref() {
        Some("ejabberd") => ServerKind::Ejabberd,
        _ => ServerKind::Prosody,
    };
    let t = Instant::now();
    let Some(server) = tokio::task::block_in_place(|| TestServer::start(kind)) else {
        eprintln!("{kind} is not installed: run scripts/install-servers first");
        std::process::exit(2);
    };
    println!(
        "{kind} started in {:?}, c2s on {}",
        t.elapsed(),
        server.c2s_addr()
    );
    let alice = login(&server, "alice").await;
    let bob = login(&server, "bob").await;
    let carol = login(&server, "carol").await;
    println!("services: {:?}", alice.services());

    println!("\nalice creates \"Team\" with bob and carol and an image");
    let image = GroupImage::from_bytes(PNG.to_vec()).expect("a PNG");
    let group = alice
        .create_group("Team", &["bob@localhost", "carol@localhost"], Some(image))
        .await
        .expect("create");
    let g = group.jid.clone();
    pause().await;
    let list: Response<_> = bob.groups().await.into();
    println!(
        "bob's groups: {}",
        serde_json::to_string(&list).unwrap_or_default()
    );

    println!("\nalice renames it; everyone hears, with who did it");
    alice
        .set_group_profile(&g, "Team 2", None)
        .await
        .expect("profile");
    pause().await;
    let participants: Response<_> = alice.participants(&g).await.into();
    println!(
        "participants: {}",
        serde_json::to_string(&participants).unwrap_or_default()
    );

    println!("\nmessages");
    bob.send_text(&g, "hello from bob").await.expect("send");
    pause().await;

    println!("\ncarol, a member, tries to add erin");
    let r: Response<()> = carol.add_participants(&g, &["erin@localhost"]).await.into();
    println!("  → {}", serde_json::to_string(&r).unwrap_or_default());

    println!("\nalice makes bob admin; bob removes carol");
    alice.make_admin(&g, "bob@localhost").await.expect("admin");
    bob.remove_participant(&g, "carol@localhost")
        .await
        .expect("remove");
    pause().await;
    let r: Response<_> = carol.send_text(&g, "am I still here?").await.into();
    println!(
        "carol posts → {}",
        serde_json::to_string(&r).unwrap_or_default()
    );

    println!("\nbob exits; alice deletes the group");
    bob.exit_group(&g).await.expect("exit");
    alice.delete_group(&g).await.expect("delete");
    pause().await;
    let r: Response<_> = alice.group_profile(&g).await.into();
    println!(
        "the group afterwards → {}",
        serde_json::to_string(&r).unwrap_or_default()
    );
    println!("\ndone in {:?}", t.elapsed());
}
