//! The `groupchat` binary against real servers: every subcommand's output, human and
//! `--json`, the error exits, and `watch` until SIGINT.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use groupchat_test_support::{ServerKind, TestServer};
use serde_json::Value;

/// `groupchat` as `user`, over STARTTLS with the test CA, with an empty home (no config
/// file of the machine's user).
fn gc(server: &TestServer, home: &Path, user: &str) -> Command {
    let mut c = Command::cargo_bin("groupchat").unwrap();
    c.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GROUPCHAT_PASSWORD", format!("{user}pass"))
        .args([
            "--jid",
            &format!("{user}@localhost"),
            "--server",
            &server.c2s_addr().to_string(),
            "--ca-file",
            server.ca_cert_pem().to_str().unwrap(),
            "--http-loopback",
            "--timeout",
            "20",
        ]);
    c
}

/// Runs, expects success, returns stdout.
fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs with `--json`, expects success, returns `data`.
fn json(c: &mut Command) -> Value {
    let text = ok(c.arg("--json"));
    let v: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("not one JSON object: {e}: {text}"));
    assert_eq!(v["statusCode"], 200, "{v}");
    assert_eq!(v["message"], "Success");
    v["data"].clone()
}

/// Runs, expects exit `code`, returns stderr.
fn fails(c: &mut Command, code: i32) -> String {
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{c:?}: {stderr}");
    stderr
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("groupchat-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn every_subcommand(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let home = temp(&format!("home-{kind}"));
    let files = temp(&format!("files-{kind}"));
    let s = &server;
    let h = home.as_path();

    // Groups.
    let created = json(gc(s, h, "alice").args([
        "groups",
        "create",
        "CLI team",
        "--member",
        "bob@localhost",
        "--member",
        "carol@localhost",
    ]));
    let g = created["jid"].as_str().unwrap().to_owned();
    assert!(g.ends_with("@conference.localhost"), "{created}");
    let list = ok(gc(s, h, "alice").args(["groups", "list"]));
    assert!(list.starts_with("GROUP") && list.contains(&g), "{list}");
    let list = json(gc(s, h, "bob").args(["groups", "list"]));
    assert!(
        list.as_array().unwrap().iter().any(|x| x["jid"] == g),
        "{list}"
    );
    assert_eq!(
        ok(gc(s, h, "alice").args(["groups", "jid", "team42"])).trim(),
        "team42@conference.localhost"
    );
    let profile = ok(gc(s, h, "alice").args(["groups", "profile", &g]));
    assert!(profile.contains("name: CLI team"), "{profile}");
    let p = json(gc(s, h, "alice").args(["groups", "set-profile", &g, "--name", "CLI crew"]));
    assert_eq!(p["name"], "CLI crew");
    let added = json(gc(s, h, "alice").args(["groups", "add", &g, "dave@localhost"]));
    assert_eq!(added, serde_json::json!(["dave@localhost"]));
    let admin = ok(gc(s, h, "alice").args(["groups", "make-admin", &g, "bob@localhost"]));
    assert!(admin.contains("bob@localhost is an admin"), "{admin}");
    let removed = ok(gc(s, h, "alice").args(["groups", "remove", &g, "dave@localhost"]));
    assert!(removed.starts_with("removed dave@localhost"), "{removed}");
    let people = ok(gc(s, h, "alice").args(["groups", "participants", &g]));
    assert!(
        people.contains("bob@localhost") && people.contains("admin"),
        "{people}"
    );
    assert!(!people.contains("dave@localhost"), "{people}");
    let people = json(gc(s, h, "carol").args(["groups", "participants", &g]));
    assert_eq!(people.as_array().unwrap().len(), 3, "{people}");

    // Messages.
    let hello = ok(gc(s, h, "alice").args(["send", "text", &g, "hello from the shell"]));
    assert!(
        hello.starts_with("sent ") && hello.contains("row id"),
        "{hello}"
    );
    let sent = json(gc(s, h, "alice").args(["send", "text", &g, "second"]));
    let second_row = sent["stanzaId"].as_str().unwrap().to_owned();
    let pdf = files.join("notes.pdf");
    std::fs::write(&pdf, b"%PDF-1.4\nnotes from the shell\n").unwrap();
    let doc = json(gc(s, h, "alice").args([
        "send",
        "document",
        &g,
        pdf.to_str().unwrap(),
        "--caption",
        "the notes",
    ]));
    let doc_row = doc["stanzaId"].as_str().unwrap().to_owned();
    assert_eq!(doc["media"]["name"], "notes.pdf");
    let e = fails(
        gc(s, h, "alice").args([
            "send",
            "media",
            &g,
            "--type",
            "video",
            "--name",
            "v.mp4",
            "--url",
            "https://media.example.org/v.mp4",
            "--size",
            "10",
        ]),
        2,
    );
    assert!(e.contains("error 400") && e.contains("duration"), "{e}");
    ok(gc(s, h, "alice").args([
        "send",
        "media",
        &g,
        "--type",
        "file",
        "--name",
        "spec.pdf",
        "--url",
        "https://media.example.org/spec.pdf",
        "--size",
        "1234",
    ]));

    // History and the gallery.
    let page = ok(gc(s, h, "bob").args(["history", &g, "--limit", "3"]));
    assert!(
        page.contains("second") && page.contains("notes.pdf"),
        "{page}"
    );
    assert!(
        !page.contains("hello from the shell"),
        "3 newest only: {page}"
    );
    let all = ok(gc(s, h, "bob").args(["history", &g, "--all", "--limit", "2", "--json"]));
    let pages: Vec<Value> = all
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(pages.len() >= 2, "{all}");
    let bodies: usize = pages
        .iter()
        .map(|p| p["data"]["messages"].as_array().unwrap().len())
        .sum();
    assert_eq!(bodies, 4, "every message once: {all}");
    let gallery = json(gc(s, h, "bob").args(["media", &g]));
    assert_eq!(
        gallery["messages"].as_array().unwrap().len(),
        2,
        "{gallery}"
    );
    assert_eq!(gallery["complete"], true);
    let gallery = ok(gc(s, h, "bob").args(["media", &g]));
    assert!(
        gallery.contains("spec.pdf") && gallery.contains("(no older media)"),
        "{gallery}"
    );
    let jid = json(gc(s, h, "bob").args(["groups", "jid", "x1"]));
    assert_eq!(jid, "x1@conference.localhost");

    // Download, typing, info, delete, clear.
    let down = temp(&format!("down-{kind}"));
    let saved =
        ok(gc(s, h, "bob").args(["download", &g, &doc_row, "--dir", down.to_str().unwrap()]));
    assert!(saved.contains("notes.pdf"), "{saved}");
    assert_eq!(
        std::fs::read(down.join("notes.pdf")).unwrap(),
        std::fs::read(&pdf).unwrap()
    );
    assert!(ok(gc(s, h, "bob").args(["typing", &g])).contains("typing in"));
    assert!(json(gc(s, h, "bob").args(["gone", &g])).is_null());
    let down2 = temp(&format!("down2-{kind}"));
    let path = json(gc(s, h, "carol").args([
        "download",
        &g,
        &doc_row,
        "--dir",
        down2.to_str().unwrap(),
        "--name",
        "../x.pdf",
    ]));
    assert_eq!(
        path,
        down2.join("x.pdf").to_str().unwrap(),
        "sanitised, inside the directory"
    );
    let info = json(gc(s, h, "alice").args(["info", &g, &second_row]));
    assert_eq!(info["members"], 2, "{info}");
    let info = ok(gc(s, h, "alice").args(["info", &g, &second_row]));
    assert!(
        info.contains("received by") && info.contains("/2"),
        "{info}"
    );
    assert!(json(gc(s, h, "carol").args(["delete", &g, &second_row, "--for-me"])).is_null());
    let deleted = ok(gc(s, h, "alice").args(["delete", &g, &second_row]));
    assert!(deleted.contains("for everyone"), "{deleted}");
    let page = ok(gc(s, h, "bob").args(["history", &g]));
    assert!(!page.contains("second"), "deleted for everyone: {page}");
    assert!(ok(gc(s, h, "carol").args(["clear", &g])).starts_with("cleared"));
    let page = json(gc(s, h, "carol").args(["history", &g]));
    assert_eq!(page["messages"].as_array().unwrap().len(), 0, "{page}");
    // Every page stops at the cleared mark too.
    let all = ok(gc(s, h, "carol").args(["history", &g, "--all", "--limit", "1", "--json"]));
    let shown: usize = all
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["data"]["messages"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(shown, 0, "{all}");

    // watch: an event another client causes, then SIGINT ends it cleanly.
    let mut watch = StdCommand::new(assert_cmd::cargo::cargo_bin("groupchat"));
    let mut args: Vec<String> = gc(s, h, "bob")
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    args.push("watch".into());
    let mut child = watch
        .args(&args)
        .env_clear()
        .env("HOME", h)
        .env("GROUPCHAT_PASSWORD", "bobpass")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.starts_with("watching bob@localhost"), "{line}");
    ok(gc(s, h, "alice").args(["send", "text", &g, "are you watching?"]));
    // Lines on a channel, so that the wait has a deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for l in stdout.lines() {
            if tx.send(l.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) if l.contains(": are you watching?") => break,
            Ok(l) => seen.push(l),
            Err(e) => {
                let _ = child.kill();
                panic!("{e}: watch printed {seen:#?}");
            }
        }
    }
    let status = StdCommand::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "watch did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0), "a clean exit");

    // Errors: a bad argument, a wrong password, an unknown group.
    fails(gc(s, h, "alice").args(["groups", "jid"]), 2);
    fails(
        gc(s, h, "alice").args(["--server", "nonsense", "groups", "list"]),
        2,
    );
    let mut wrong = gc(s, h, "alice");
    wrong.env("GROUPCHAT_PASSWORD", "not-the-password-42");
    let out = wrong.args(["groups", "list", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "wrong password → 3");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("\"statusCode\":401"), "{all}");
    assert!(
        !all.contains("not-the-password-42"),
        "the password is never printed: {all}"
    );
    let e = fails(
        gc(s, h, "alice").args(["groups", "profile", "nosuch@conference.localhost"]),
        5,
    );
    assert!(e.contains("error 404"), "{e}");

    // The connection options from the config file instead of the command line.
    let config_dir = home.join(".config").join("groupchat");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("config.toml"),
        format!(
            "jid = \"dave@localhost\"\nserver = \"{}\"\nca_file = \"{}\"\n",
            s.c2s_addr(),
            s.ca_cert_pem().display()
        ),
    )
    .unwrap();
    let mut from_file = Command::cargo_bin("groupchat").unwrap();
    from_file
        .env_clear()
        .env("HOME", h)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("GROUPCHAT_PASSWORD", "davepass");
    let list = ok(from_file.args(["groups", "list"]));
    assert!(list.starts_with("GROUP"), "{list}");
    std::fs::remove_file(config_dir.join("config.toml")).unwrap();

    // Leaving and deleting.
    assert!(ok(gc(s, h, "carol").args(["groups", "exit", &g])).starts_with("left"));
    assert!(json(gc(s, h, "alice").args(["groups", "delete", &g])).is_null());
    let list = json(gc(s, h, "alice").args(["groups", "list"]));
    assert!(
        list.as_array().unwrap().iter().all(|x| x["jid"] != g),
        "{list}"
    );
    for d in [home, files, down, down2] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn every_subcommand_on_prosody() {
    every_subcommand(ServerKind::Prosody);
}

#[test]
fn every_subcommand_on_ejabberd() {
    every_subcommand(ServerKind::Ejabberd);
}

#[test]
fn completions_name_the_program() {
    let out = Command::cargo_bin("groupchat")
        .unwrap()
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("groupchat"));
}
