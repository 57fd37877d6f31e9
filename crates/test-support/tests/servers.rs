//! Checks the test servers (Prosody, ejabberd) and the fault proxy with raw sockets.
//!
//! Without a server installed these tests print `SKIPPED` and pass, except under `CI=true`,
//! where `TestServer::start` panics and the test fails.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use groupchat_test_support::{Direction, FaultProxy, ServerKind, TestServer, base64};

const STREAM_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/// Reads from `stream` until the received text contains one of `needles` or `timeout` passes.
fn read_until(stream: &mut TcpStream, needles: &[&str], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if needles.iter().any(|n| text.contains(n)) {
            return text;
        }
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return text;
        };
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&received).into_owned(),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return String::from_utf8_lossy(&received).into_owned();
            }
            Err(e) => panic!("read error: {e}"),
        }
    }
}

/// Opens a plaintext stream and returns the stream features.
fn stream_features(addr: SocketAddr) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(STREAM_HEADER.as_bytes()).unwrap();
    let features = read_until(
        &mut stream,
        &["</stream:features>"],
        Duration::from_secs(10),
    );
    assert!(
        features.contains("</stream:features>"),
        "no stream features from {addr}: {features:?}"
    );
    (stream, features)
}

/// SASL PLAIN over plaintext c2s; the open stream on `<success`, `None` on `<failure`.
fn plain_auth(addr: SocketAddr, user: &str, password: &str) -> Option<TcpStream> {
    let (mut stream, _) = stream_features(addr);
    let auth = base64(format!("\0{user}\0{password}").as_bytes());
    let request =
        format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{auth}</auth>");
    stream.write_all(request.as_bytes()).unwrap();
    let answer = read_until(
        &mut stream,
        &["<success", "<failure"],
        Duration::from_secs(10),
    );
    assert!(
        answer.contains("<success") || answer.contains("<failure"),
        "no SASL answer: {answer:?}"
    );
    answer.contains("<success").then_some(stream)
}

/// SASL PLAIN over plaintext c2s; true on `<success`.
fn plain_login(addr: SocketAddr, user: &str, password: &str) -> bool {
    let stream = plain_auth(addr, user, password);
    if let Some(mut stream) = stream {
        let _ = stream.write_all(b"</stream:stream>");
        return true;
    }
    false
}

/// Logs in with PLAIN, restarts the stream and binds a resource: a ready c2s session.
fn bound_session(addr: SocketAddr, user: &str, password: &str) -> TcpStream {
    let mut stream = plain_auth(addr, user, password).expect("login");
    stream.write_all(STREAM_HEADER.as_bytes()).unwrap();
    let features = read_until(
        &mut stream,
        &["</stream:features>"],
        Duration::from_secs(10),
    );
    assert!(
        features.contains("urn:ietf:params:xml:ns:xmpp-bind"),
        "no bind: {features}"
    );
    stream
        .write_all(
            b"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
              <resource>test</resource></bind></iq>",
        )
        .unwrap();
    let bound = read_until(&mut stream, &["</iq>"], Duration::from_secs(10));
    assert!(bound.contains("<jid>"), "bind failed: {bound}");
    stream
}

/// XEP-0198: enabling resumption reports the configured 300 s window.
fn check_stream_management(kind: ServerKind, addr: SocketAddr) {
    let mut stream = bound_session(addr, "dave", "davepass");
    stream
        .write_all(b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .unwrap();
    let enabled = read_until(&mut stream, &["<enabled"], Duration::from_secs(10));
    let enabled = enabled + &read_until(&mut stream, &["/>"], Duration::from_millis(300));
    assert!(
        enabled.contains("max='300'") || enabled.contains("max=\"300\""),
        "{kind}: resumption window is not 300 s: {enabled}"
    );
    let _ = stream.write_all(b"</stream:stream>");
}

/// 200 pings of about 1 KiB each in one burst are all answered quickly: no c2s rate limit
/// (ejabberd's default `normal` shaper would take over a minute for this).
fn check_burst(kind: ServerKind, addr: SocketAddr) {
    const N: usize = 200;
    let mut stream = bound_session(addr, "erin", "erinpass");
    let padding = "x".repeat(1000);
    let burst: String = (0..N)
        .map(|i| format!("<iq type='get' id='p{i}-{padding}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"))
        .collect();
    let t = Instant::now();
    let mut writer = stream.try_clone().unwrap();
    let sender = thread::spawn(move || writer.write_all(burst.as_bytes()).unwrap());
    let deadline = t + Duration::from_secs(20);
    let mut received = String::new();
    let mut buf = vec![0u8; 64 * 1024];
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while Instant::now() < deadline
        && !(0..N).all(|i| {
            received.contains(&format!("'p{i}-")) || received.contains(&format!("\"p{i}-"))
        })
    {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("{kind}: read error during burst: {e}"),
        }
    }
    sender.join().unwrap();
    let answered = (0..N)
        .filter(|i| received.contains(&format!("'p{i}-")) || received.contains(&format!("\"p{i}-")))
        .count();
    println!(
        "{kind}: {answered}/{N} pings of 1 KiB answered in {:?}",
        t.elapsed()
    );
    assert_eq!(answered, N, "{kind}: burst throttled or lost");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "{kind}: burst took {:?}",
        t.elapsed()
    );
    let _ = stream.write_all(b"</stream:stream>");
}

/// Runs `openssl s_client` against `addr` trusting only `ca`; true if the chain and the
/// host name `localhost` verify.
fn openssl_verifies(addr: SocketAddr, ca: &Path, starttls: bool) -> bool {
    let mut command = Command::new("openssl");
    command
        .args([
            "s_client",
            "-brief",
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
        ])
        .args([
            "-servername",
            "localhost",
            "-connect",
            &addr.to_string(),
            "-CAfile",
        ])
        .arg(ca);
    if starttls {
        command.args(["-starttls", "xmpp", "-xmpphost", "localhost"]);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let ok = output.status.success() && text.contains("Verification: OK");
    if !ok {
        eprintln!("openssl s_client to {addr} (starttls={starttls}) failed: {text}");
    }
    ok
}

/// The HTTP Upgrade request to the XMPP WebSocket subprotocol, for `host`.
fn upgrade_request(host: &str) -> String {
    // The RFC 6455 example key; its accept value is s3pPLMBiTxaQ9kYGzzhZRbK+xOo=.
    format!(
        "GET /xmpp-websocket HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"
    )
}

/// HTTP Upgrade to the XMPP WebSocket subprotocol on the plain HTTP port; returns the
/// response head.
fn websocket_upgrade(server: &TestServer) -> String {
    let port = server.http_port();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(upgrade_request(&format!("127.0.0.1:{port}")).as_bytes())
        .unwrap();
    read_until(&mut stream, &["\r\n\r\n"], Duration::from_secs(10))
}

/// Sends `request` to the HTTPS port through `openssl s_client` (trusting only
/// `ca_cert_pem()`, verifying the name `localhost`) and returns what came back once it
/// contains `until` (with `None`: once the server closed), or after 15 s. Empty if the TLS
/// handshake failed.
fn https_exchange(server: &TestServer, request: &str, until: Option<&str>) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet", // no session dump; implies -ign_eof
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
            "-servername",
            "localhost",
            "-connect",
            &format!("127.0.0.1:{}", server.https_port()),
            "-CAfile",
        ])
        .arg(server.ca_cert_pem())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Keep stdin open: closing it could end the exchange before the answer arrives.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(request.as_bytes()).unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = Arc::clone(&received);
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = String::from_utf8_lossy(&received.lock().unwrap()).into_owned();
        if until.is_some_and(|u| text.contains(u))
            || reader.is_finished()
            || Instant::now() > deadline
        {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(stdin);
    reader.join().unwrap();
    String::from_utf8_lossy(&received.lock().unwrap()).into_owned()
}

/// HTTP Upgrade to the XMPP WebSocket subprotocol over TLS on the HTTPS port, `Host:
/// localhost:PORT` as in `secure_websocket_url()`; returns the response head.
fn secure_websocket_upgrade(server: &TestServer) -> String {
    let host = format!("localhost:{}", server.https_port());
    https_exchange(server, &upgrade_request(&host), Some("\r\n\r\n"))
}

/// Asserts a 101 answer that accepts the RFC 6455 example key and the `xmpp` subprotocol.
fn assert_upgraded(kind: ServerKind, what: &str, head: &str) {
    assert!(
        head.starts_with("HTTP/1.1 101"),
        "{kind}: {what} upgrade: {head:?}"
    );
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{kind}: {what}: bad Sec-WebSocket-Accept: {head:?}"
    );
    assert!(
        lower.contains("sec-websocket-protocol:") && lower.contains("xmpp"),
        "{kind}: {what}: {head:?}"
    );
}

/// GET `path` on the HTTPS port (`Connection: close`); the whole response.
fn https_get(server: &TestServer, path: &str) -> String {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
        server.https_port()
    );
    https_exchange(server, &request, None)
}

/// XEP-0156 host-meta on the HTTPS port: ejabberd advertises `secure_websocket_url()` in both
/// documents; Prosody 0.12 has no host-meta at all.
fn check_host_meta(kind: ServerKind, server: &TestServer) {
    let url = server.secure_websocket_url();
    for path in ["/.well-known/host-meta", "/.well-known/host-meta.json"] {
        let response = https_get(server, path);
        match kind {
            ServerKind::Ejabberd => {
                assert!(
                    response.starts_with("HTTP/1.1 200"),
                    "{kind}: {path}: {response:?}"
                );
                assert!(
                    response.contains("urn:xmpp:alt-connections:websocket")
                        && response.contains(&url),
                    "{kind}: {path} does not advertise {url}: {response:?}"
                );
            }
            ServerKind::Prosody => assert!(
                response.starts_with("HTTP/1.1 404"),
                "{kind}: {path}: {response:?}"
            ),
        }
    }
}

fn check_server(kind: ServerKind) {
    let t0 = Instant::now();
    let Some(mut server) = TestServer::start(kind) else {
        return;
    };
    println!(
        "{kind}: start() took {:?} (certificate, accounts and readiness included)",
        t0.elapsed()
    );
    assert_eq!(server.kind(), kind);
    assert_eq!(server.domain(), "localhost");
    assert_eq!(server.muc_domain(), "conference.localhost");
    assert!(server.websocket_url().starts_with("ws://127.0.0.1:"));
    assert!(
        server
            .websocket_url()
            .ends_with(&format!(":{}/xmpp-websocket", server.http_port()))
    );
    assert_eq!(
        server.secure_websocket_url(),
        format!("wss://localhost:{}/xmpp-websocket", server.https_port())
    );
    assert_ne!(server.https_port(), server.http_port());
    assert!(server.ca_cert_pem().is_file());
    assert!(server.dir().is_dir());

    // c2s: STARTTLS offered (not required) and the three mechanisms, over plaintext.
    let (_stream, features) = stream_features(server.c2s_addr());
    assert!(
        features.contains("urn:ietf:params:xml:ns:xmpp-tls"),
        "{kind}: no STARTTLS: {features}"
    );
    assert!(
        !features.contains("<required"),
        "{kind}: something is required: {features}"
    );
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"] {
        assert!(
            features.contains(&format!("<mechanism>{mechanism}</mechanism>")),
            "{kind}: mechanism {mechanism} missing: {features}"
        );
    }

    // Direct TLS accepts TCP, and both TLS paths verify against ca_cert_pem() as "localhost".
    TcpStream::connect(server.direct_tls_addr()).expect("direct TLS port accepts TCP");
    assert!(
        openssl_verifies(server.direct_tls_addr(), server.ca_cert_pem(), false),
        "{kind}: direct TLS"
    );
    assert!(
        openssl_verifies(server.c2s_addr(), server.ca_cert_pem(), true),
        "{kind}: STARTTLS"
    );
    let https_addr = SocketAddr::from(([127, 0, 0, 1], server.https_port()));
    assert!(
        openssl_verifies(https_addr, server.ca_cert_pem(), false),
        "{kind}: HTTPS"
    );

    // WebSocket upgrade, plain and over TLS; host-meta.
    assert_upgraded(kind, "ws://", &websocket_upgrade(&server));
    assert_upgraded(kind, "wss://", &secure_websocket_upgrade(&server));
    check_host_meta(kind, &server);

    // Default accounts.
    for name in TestServer::DEFAULT_ACCOUNTS {
        let account = server.account(name);
        assert_eq!(account.jid, format!("{name}@localhost"));
        assert_eq!(account.password, format!("{name}pass"));
    }
    let alice = server.account("alice");
    assert!(
        plain_login(server.c2s_addr(), &alice.user, &alice.password),
        "{kind}: alice login"
    );
    assert!(
        !plain_login(server.c2s_addr(), &alice.user, "wrong"),
        "{kind}: wrong password accepted"
    );

    // Extra account at run time.
    let frank = server.register("frank", "frank-secret");
    assert_eq!(frank.jid, "frank@localhost");
    assert_eq!(server.account("frank"), frank);
    assert!(
        plain_login(server.c2s_addr(), "frank", "frank-secret"),
        "{kind}: frank login"
    );

    check_stream_management(kind, server.c2s_addr());
    check_burst(kind, server.c2s_addr());

    // Restart with a live authenticated session that ignores the server's goodbye: same
    // ports, data kept, the old session gone.
    let mut live = plain_auth(server.c2s_addr(), "carol", "carolpass").expect("carol login");
    let (c2s, http, https) = (server.c2s_addr(), server.http_port(), server.https_port());
    let t1 = Instant::now();
    server.restart();
    println!(
        "{kind}: restart() took {:?} (one live session)",
        t1.elapsed()
    );
    let goodbye = read_until(&mut live, &["</stream:stream>"], Duration::from_secs(5));
    assert!(
        goodbye.contains("</stream:stream>") || goodbye.is_empty(),
        "{kind}: {goodbye:?}"
    );
    live.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(
        matches!(live.read(&mut [0u8; 256]), Ok(0) | Err(_)),
        "{kind}: old session still open"
    );
    assert_eq!(
        (server.c2s_addr(), server.http_port(), server.https_port()),
        (c2s, http, https)
    );
    stream_features(server.c2s_addr());
    assert!(
        plain_login(server.c2s_addr(), "frank", "frank-secret"),
        "{kind}: frank after restart"
    );
    assert!(
        plain_login(server.c2s_addr(), "bob", "bobpass"),
        "{kind}: bob after restart"
    );
    assert!(websocket_upgrade(&server).starts_with("HTTP/1.1 101"));
    assert_upgraded(
        kind,
        "wss:// after restart",
        &secure_websocket_upgrade(&server),
    );
    check_host_meta(kind, &server);

    assert!(!server.log_tail(20).trim().is_empty(), "{kind}: empty log");
    let dir = server.dir().to_owned();
    let t2 = Instant::now();
    drop(server);
    println!("{kind}: drop took {:?}", t2.elapsed());
    assert!(!dir.exists() || std::env::var("GROUPCHAT_TEST_KEEP_DIRS").is_ok_and(|v| v == "1"));
    assert!(
        TcpStream::connect(c2s).is_err(),
        "{kind}: still listening after drop"
    );
}

#[test]
fn prosody() {
    check_server(ServerKind::Prosody);
}

#[test]
fn ejabberd() {
    check_server(ServerKind::Ejabberd);
}

#[test]
#[should_panic(expected = "no account")]
fn unknown_account_panics() {
    let Some(server) = TestServer::start(ServerKind::Prosody) else {
        panic!("no account (skipped)")
    };
    server.account("mallory");
}

/// Two instances of each kind at once, from parallel threads: distinct ports, all answer, and
/// no Erlang port mapper (epmd) is started for ejabberd.
#[test]
fn parallel_instances() {
    let epmd_before = TcpStream::connect("127.0.0.1:4369").is_ok();
    let servers: Vec<TestServer> = thread::scope(|s| {
        let handles: Vec<_> = [
            ServerKind::Prosody,
            ServerKind::Prosody,
            ServerKind::Ejabberd,
            ServerKind::Ejabberd,
        ]
        .into_iter()
        .map(|kind| s.spawn(move || TestServer::start(kind)))
        .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect()
    });
    let mut ports: Vec<u16> = servers
        .iter()
        .flat_map(|s| {
            [
                s.c2s_addr().port(),
                s.direct_tls_addr().port(),
                s.http_port(),
                s.https_port(),
            ]
        })
        .collect();
    let total = ports.len();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), total, "ports shared between instances");
    for server in &servers {
        let bob = server.account("bob");
        assert!(
            plain_login(server.c2s_addr(), &bob.user, &bob.password),
            "{}: bob",
            server.kind()
        );
    }
    if !epmd_before && servers.iter().any(|s| s.kind() == ServerKind::Ejabberd) {
        assert!(
            TcpStream::connect("127.0.0.1:4369").is_err(),
            "epmd was started"
        );
    }
}

#[test]
fn server_kind_basics() {
    assert_eq!(ServerKind::ALL, [ServerKind::Prosody, ServerKind::Ejabberd]);
    assert_eq!(ServerKind::Prosody.to_string(), "Prosody");
    assert_eq!(ServerKind::Ejabberd.to_string(), "ejabberd");
}

// ----- FaultProxy ------------------------------------------------------------------------

/// An echo server that records the size of every read it gets.
struct Echo {
    addr: SocketAddr,
    reads: Arc<Mutex<Vec<usize>>>,
}

fn echo_server() -> Echo {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reads = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&reads);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let recorded = Arc::clone(&recorded);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            recorded.lock().unwrap().push(n);
                            if stream.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    Echo { addr, reads }
}

fn read_exact_timeout(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf).unwrap();
    buf
}

/// Asserts nothing arrives on `stream` for a short while.
fn assert_silent(stream: &mut TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected silence, got {other:?}"),
    }
}

#[test]
fn fault_proxy() {
    let echo = echo_server();
    let proxy = FaultProxy::start(echo.addr).unwrap();
    assert_eq!(proxy.upstream(), echo.addr);
    assert!(proxy.addr().ip().is_loopback());
    assert_eq!(proxy.connection_count(), 0);

    // Pass-through.
    let mut client = TcpStream::connect(proxy.addr()).unwrap();
    client.write_all(b"hello").unwrap();
    assert_eq!(read_exact_timeout(&mut client, 5), b"hello");
    assert_eq!(proxy.connection_count(), 1);
    assert_eq!(proxy.live_connections(), 1);

    // Chunking: the echo server gets reads of at most 3 bytes.
    echo.reads.lock().unwrap().clear();
    proxy.set_chunk_size(Some(3));
    proxy.set_delay(Duration::from_millis(15));
    let t = Instant::now();
    client.write_all(b"0123456789ab").unwrap();
    assert_eq!(read_exact_timeout(&mut client, 12), b"0123456789ab");
    // 4 chunks each way with 15 ms before each; the two directions overlap.
    assert!(
        t.elapsed() >= Duration::from_millis(60),
        "delay not applied: {:?}",
        t.elapsed()
    );
    let reads = echo.reads.lock().unwrap().clone();
    assert_eq!(reads.iter().sum::<usize>(), 12);
    assert!(
        reads.iter().all(|&n| n <= 3),
        "chunks bigger than 3: {reads:?}"
    );
    assert!(reads.len() >= 4, "{reads:?}");
    proxy.set_chunk_size(None);
    proxy.set_delay(Duration::ZERO);

    // Black hole towards the server: dropped, not delayed.
    proxy.set_blackhole(Direction::ToServer, true);
    client.write_all(b"lost").unwrap();
    assert_silent(&mut client);
    proxy.set_blackhole(Direction::ToServer, false);
    client.write_all(b"kept").unwrap();
    assert_eq!(read_exact_timeout(&mut client, 4), b"kept");
    assert_silent(&mut client);

    // Black hole towards the client: the server gets the bytes, its answer is dropped.
    echo.reads.lock().unwrap().clear();
    proxy.set_blackhole(Direction::ToClient, true);
    client.write_all(b"ping").unwrap();
    assert_silent(&mut client);
    assert_eq!(echo.reads.lock().unwrap().iter().sum::<usize>(), 4);
    proxy.set_blackhole(Direction::ToClient, false);
    client.write_all(b"pong").unwrap();
    assert_eq!(read_exact_timeout(&mut client, 4), b"pong");

    // Cut: the client sees end-of-stream or an error.
    proxy.cut();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    match client.read(&mut buf) {
        Ok(0) => {}
        Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected EOF or error after cut, got {other:?}"),
    }
    // New connections still work.
    let mut again = TcpStream::connect(proxy.addr()).unwrap();
    again.write_all(b"again").unwrap();
    assert_eq!(read_exact_timeout(&mut again, 5), b"again");
    assert_eq!(proxy.connection_count(), 2);

    // Drop closes the listener and the live connections.
    let addr = proxy.addr();
    drop(proxy);
    again
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    match again.read(&mut buf) {
        Ok(0) => {}
        Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected EOF or error after drop, got {other:?}"),
    }
    assert!(
        TcpStream::connect(addr).is_err(),
        "proxy still accepting after drop"
    );
}

#[test]
fn fault_proxy_half_close_and_dead_upstream() {
    // Upstream refuses: the client connection is closed at once.
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let proxy = FaultProxy::start(dead).unwrap();
    let mut client = TcpStream::connect(proxy.addr()).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 8];
    assert!(matches!(client.read(&mut buf), Ok(0) | Err(_)));
    assert_eq!(proxy.connection_count(), 1);

    // A client half-close reaches the upstream, whose remaining output still arrives.
    let echo = echo_server();
    let proxy = FaultProxy::start(echo.addr).unwrap();
    let mut client = TcpStream::connect(proxy.addr()).unwrap();
    client.write_all(b"bye").unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut all = Vec::new();
    client.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"bye");
}
