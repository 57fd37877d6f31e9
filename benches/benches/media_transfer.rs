//! Media upload + download through a real loopback server: throughput and the peak RSS of
//! the SDK process, for a small and a large file (the same RSS for both shows the file is
//! streamed, never held), against a reference measured in the same run: the same PUT and
//! GET over a plain socket with `tokio::io::copy` (no HTTP client, no hashing, 8 KiB
//! copies), to the same server. The server bounds both (Prosody takes uploads at a few
//! MiB/s); "speed/socket" above 1 means the SDK moved the file faster than the reference.
//!
//! `cargo bench -p groupchat-benches --bench media_transfer [-- --mib N --server prosody|ejabberd]`
//!
//! Each transfer runs in a process of its own (this binary, re-run with `--transfer`), so
//! that its peak RSS (`VmHWM`) is its own. The SDK process logs in as alice, sends the file
//! to bob as a document (XEP-0363 slot, streamed PUT, message) and downloads it again with
//! `download_media` (streamed to disk, size and SHA-256 checked).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use groupchat_test_support::{RawClient, ServerKind, TestServer, UploadService};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| groupchat_benches::arg(&args, name);
    if let Some(which) = arg("--transfer") {
        let file = PathBuf::from(arg("--file").unwrap());
        let (up, down) = match which.as_str() {
            "sdk" => runtime().block_on(sdk(&arg("--addr").unwrap(), &file)),
            "socket" => runtime().block_on(socket(
                &arg("--put").unwrap(),
                &arg("--auth").unwrap_or_default(),
                &arg("--get").unwrap(),
                &file,
            )),
            other => panic!("unknown transfer {other}"),
        };
        println!(
            "DONE {} {} {}",
            up.as_micros(),
            down.as_micros(),
            groupchat_benches::peak_rss_kib()
        );
        return;
    }
    let mib: u64 = arg("--mib").map_or(100, |n| n.parse().unwrap());
    let servers = match arg("--server").as_deref() {
        Some("prosody") => vec![ServerKind::Prosody],
        Some("ejabberd") => vec![ServerKind::Ejabberd],
        _ => vec![ServerKind::Prosody, ServerKind::Ejabberd],
    };
    let dir = std::env::temp_dir().join(format!("groupchat-media-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sizes = [mib / 10, mib].map(|m| m.max(1) * 1024 * 1024);
    let files: Vec<PathBuf> = sizes.iter().map(|&n| make_file(&dir, n)).collect();
    for kind in servers {
        let server = TestServer::start_with(kind, UploadService::Limit(2 * sizes[1]))
            .expect("the server starts");
        println!("== {kind}");
        println!(
            "{:>8} {:>10} {:>12} {:>12} {:>10}",
            "MiB", "transfer", "up MiB/s", "down MiB/s", "peak RSS"
        );
        for (file, &size) in files.iter().zip(&sizes) {
            let (put, auth, get) = slot(&server, size);
            let socket = run(&[
                "--transfer",
                "socket",
                "--put",
                &put,
                "--auth",
                &auth,
                "--get",
                &get,
                "--file",
                file.to_str().unwrap(),
            ]);
            let sdk = run(&[
                "--transfer",
                "sdk",
                "--addr",
                &server.c2s_addr().to_string(),
                "--file",
                file.to_str().unwrap(),
            ]);
            for (name, (up, down, rss)) in [("socket", socket), ("sdk", sdk)] {
                let rate = |us: u64| size as f64 / (1024.0 * 1024.0) / (us as f64 / 1e6);
                println!(
                    "{:>8} {name:>10} {:>12.0} {:>12.0} {:>7.1} MB",
                    size / (1024 * 1024),
                    rate(up),
                    rate(down),
                    rss as f64 / 1024.0
                );
            }
            println!(
                "{:>8} {:>10} {:>12.2} {:>12.2}",
                "",
                "speed/socket",
                socket.0 as f64 / sdk.0 as f64,
                socket.1 as f64 / sdk.1 as f64
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A PDF-headed file of `size` bytes of noise.
fn make_file(dir: &Path, size: u64) -> PathBuf {
    let path = dir.join(format!("bench-{}.pdf", size / (1024 * 1024)));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    f.write_all(b"%PDF-1.7\n").unwrap();
    let mut x = size | 1;
    let mut written = 9u64;
    let mut block = vec![0u8; 64 * 1024];
    while written < size {
        for b in block.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 24) as u8;
        }
        let n = (size - written).min(block.len() as u64) as usize;
        f.write_all(&block[..n]).unwrap();
        written += n as u64;
    }
    path
}

/// Runs a transfer process; its (upload µs, download µs, peak RSS KiB).
fn run(args: &[&str]) -> (u64, u64, u64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    let mut p = line.split_whitespace();
    assert_eq!(p.next(), Some("DONE"), "{args:?}: {text}");
    let mut n = || p.next().unwrap().parse().unwrap();
    (n(), n(), n())
}

/// A slot for the socket reference, asked with raw XMPP: (PUT URL, Authorization header, GET URL).
fn slot(server: &TestServer, size: u64) -> (String, String, String) {
    let mut raw = RawClient::login(server.c2s_addr(), "localhost", "carol", "carolpass").unwrap();
    raw.send(&format!(
        "<iq type='get' to='upload.localhost' id='s1'><request xmlns='urn:xmpp:http:upload:0' \
         filename='socket.pdf' size='{size}' content-type='application/pdf'/></iq>"
    ))
    .unwrap();
    let answer = raw.read_until("</iq>").unwrap();
    let attr = |tag: &str| {
        let at = answer.find(&format!("<{tag} ")).unwrap();
        let rest = &answer[at..];
        let start = rest.find("url=").unwrap() + 5;
        let end = start + rest[start..].find(['\'', '"']).unwrap();
        rest[start..end].replace("&amp;", "&")
    };
    let auth = answer
        .find("name='Authorization'>")
        .or_else(|| answer.find("name=\"Authorization\">"))
        .map(|i| {
            let rest = &answer[i + 21..];
            rest[..rest.find('<').unwrap()].to_owned()
        })
        .unwrap_or_default();
    (attr("put"), auth, attr("get"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn sdk(addr: &str, file: &Path) -> (Duration, Duration) {
    use groupchat_sdk::{DownloadOptions, MediaFile, MediaOptions};
    let alice = groupchat_sdk::Client::builder("alice@localhost", "alicepass")
        .tcp(
            groupchat_sdk::transport_tcp::TcpConnector::builder("localhost")
                .address(addr.parse().unwrap())
                .security(groupchat_sdk::transport_tcp::Security::InsecurePlaintextLoopback)
                .build()
                .unwrap(),
        )
        .allow_insecure_http_loopback()
        .request_timeout(Duration::from_secs(60))
        .connect()
        .await
        .expect("alice logs in");
    let start = Instant::now();
    let sent = alice
        .send_document(
            "bob@localhost",
            MediaFile::open(file),
            MediaOptions::default(),
        )
        .await
        .expect("the upload");
    let up = start.elapsed();
    let dir = file.with_extension("sdk-down");
    std::fs::create_dir_all(&dir).unwrap();
    let start = Instant::now();
    let saved = alice
        .download_media(
            &sent.media,
            &dir,
            DownloadOptions::default().overwrite(true),
        )
        .await
        .expect("the download");
    let down = start.elapsed();
    assert_eq!(
        std::fs::metadata(&saved).unwrap().len(),
        std::fs::metadata(file).unwrap().len()
    );
    let _ = std::fs::remove_dir_all(&dir);
    (up, down)
}

/// The same PUT and GET over a plain socket: request head, then `tokio::io::copy`.
async fn socket(put: &str, auth: &str, get: &str, file: &Path) -> (Duration, Duration) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let size = std::fs::metadata(file).unwrap().len();
    let (host, path) = split(put);
    let start = Instant::now();
    let mut s = tokio::net::TcpStream::connect(resolve(host)).await.unwrap();
    let auth = if auth.is_empty() {
        String::new()
    } else {
        format!("Authorization: {auth}\r\n")
    };
    s.write_all(
        format!(
            "PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/pdf\r\n\
             Content-Length: {size}\r\n{auth}Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut f = tokio::fs::File::open(file).await.unwrap();
    tokio::io::copy(&mut f, &mut s).await.unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 20"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let up = start.elapsed();
    let (host, path) = split(get);
    let start = Instant::now();
    let mut s = tokio::net::TcpStream::connect(resolve(host)).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let out = file.with_extension("socket-down");
    let mut f = tokio::fs::File::create(&out).await.unwrap();
    let n = tokio::io::copy(&mut s, &mut f).await.unwrap();
    f.sync_all().await.unwrap();
    let down = start.elapsed();
    assert!(n > size, "head + body: {n}");
    let _ = std::fs::remove_file(out);
    (up, down)
}

fn split(url: &str) -> (&str, &str) {
    let rest = url.strip_prefix("http://").expect("a loopback http URL");
    let slash = rest.find('/').unwrap();
    (&rest[..slash], &rest[slash..])
}

fn resolve(host: &str) -> std::net::SocketAddr {
    let port = host.rsplit(':').next().unwrap();
    format!("127.0.0.1:{port}").parse().unwrap()
}
