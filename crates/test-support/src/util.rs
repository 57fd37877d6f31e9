//! Small std-only helpers shared by the server harness: tool lookup, free ports, log tails,
//! raw HTTP and XMPP probes.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The stream header sent by the readiness probe (and by the tests).
pub(crate) const STREAM_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/// True when the environment variable `CI` is exactly `true`.
pub(crate) fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Finds an executable by name in `PATH`.
pub(crate) fn find_executable(name: &str) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH")?;
    std::env::split_paths(&path_var)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Ports handed out to live servers of this process, so that two servers started in parallel
/// threads never get the same port even though the probing listeners are dropped.
fn reserved_ports() -> &'static Mutex<HashSet<u16>> {
    static RESERVED: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    RESERVED.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Picks `n` distinct free loopback ports: binds 127.0.0.1:0, reads the port, drops the
/// listener. The ports stay reserved in this process until [`release_ports`].
pub(crate) fn allocate_ports(n: usize) -> io::Result<Vec<u16>> {
    let mut reserved = reserved_ports().lock().unwrap_or_else(|e| e.into_inner());
    // Keep every probing listener open until all ports are chosen, so the kernel cannot hand
    // the same port out twice.
    let mut listeners = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        if !reserved.contains(&port) {
            ports.push(port);
        }
        listeners.push(listener);
        if listeners.len() > n + 64 {
            return Err(io::Error::other(
                "could not find enough free loopback ports",
            ));
        }
    }
    reserved.extend(ports.iter().copied());
    Ok(ports)
}

/// Gives ports back to the in-process pool.
pub(crate) fn release_ports(ports: &[u16]) {
    let mut reserved = reserved_ports().lock().unwrap_or_else(|e| e.into_inner());
    for port in ports {
        reserved.remove(port);
    }
}

/// The last `lines` lines of a file (lossy UTF-8), or an empty string if it cannot be read.
pub(crate) fn file_tail(path: &Path, lines: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = all[start..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// Reads a whole file as lossy UTF-8; empty on error.
pub(crate) fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Sends `sig` (e.g. "TERM") to a process with the `kill` command.
pub(crate) fn send_signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True if something accepts TCP connections on `addr` right now.
pub(crate) fn tcp_accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Opens a plaintext c2s stream and returns what the server sent until `</stream:features>`
/// (or until the read timeout), as long as it contains `<stream:features`.
pub(crate) fn probe_stream_features(addr: SocketAddr, timeout: Duration) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    let deadline = Instant::now() + timeout;
    stream.write_all(STREAM_HEADER.as_bytes()).ok()?;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
        if contains(&received, b"</stream:features>") {
            break;
        }
    }
    let _ = stream.write_all(b"</stream:stream>");
    let text = String::from_utf8_lossy(&received).into_owned();
    text.contains("<stream:features").then_some(text)
}

/// Byte-substring search: where `needle` (not empty) first starts.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Byte-substring search.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// A minimal HTTP/1.1 response: status code and body.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// A hand-written HTTP/1.1 request over a std `TcpStream` with `Connection: close`.
pub(crate) fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.set_write_timeout(Some(Duration::from_secs(15)))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("malformed HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok(HttpResponse { status, body })
}

/// Escapes a string as a JSON string literal (with the quotes).
pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escaping() {
        assert_eq!(json_string("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
    }

    #[test]
    fn ports_are_distinct_and_reserved() {
        let a = allocate_ports(3).unwrap();
        let b = allocate_ports(3).unwrap();
        let all: HashSet<u16> = a.iter().chain(&b).copied().collect();
        assert_eq!(all.len(), 6);
        release_ports(&a);
        release_ports(&b);
    }

    #[test]
    fn tail_of_file() {
        let path = std::env::temp_dir().join(format!("gc-tail-{}", std::process::id()));
        std::fs::write(&path, "1\n2\n3\n4\n").unwrap();
        assert_eq!(file_tail(&path, 2), "3\n4\n");
        assert_eq!(file_tail(&path, 10), "1\n2\n3\n4\n");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(file_tail(&path, 2), "");
    }
}
