//! A loopback TCP proxy for fault injection, built on std threads.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::util::find;

/// A direction of traffic through a [`FaultProxy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Bytes sent by the client, on their way to the upstream server.
    ToServer,
    /// Bytes sent by the upstream server, on their way to the client.
    ToClient,
}

/// The two sockets of one proxied connection, kept so that [`FaultProxy::cut`] can close them.
#[derive(Debug)]
struct Link {
    client: TcpStream,
    upstream: TcpStream,
}

impl Link {
    fn close(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }
}

/// State shared by the proxy handle, the accept loop and the forwarding threads.
#[derive(Debug, Default)]
struct Shared {
    stopping: AtomicBool,
    accepted: AtomicUsize,
    next_id: AtomicU64,
    delay: Mutex<Duration>,
    chunk_size: Mutex<Option<usize>>,
    blackhole_to_server: AtomicBool,
    blackhole_to_client: AtomicBool,
    links: Mutex<HashMap<u64, Link>>,
    injection: Mutex<Option<Arc<Injection>>>,
    next_injection: AtomicU64,
    injected: AtomicUsize,
}

/// Bytes to write into one direction of every connection, once per connection, after the
/// tag in which one of `markers` first occurs in that direction's traffic.
#[derive(Debug)]
struct Injection {
    /// Distinguishes successive injections, so that a connection takes each one once.
    id: u64,
    dir: Direction,
    markers: Vec<Vec<u8>>,
    bytes: Vec<u8>,
}

impl Shared {
    fn links(&self) -> MutexGuard<'_, HashMap<u64, Link>> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn delay(&self) -> Duration {
        *self.delay.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn chunk_size(&self) -> Option<usize> {
        *self.chunk_size.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn injection(&self) -> Option<Arc<Injection>> {
        self.injection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn blackhole(&self, dir: Direction) -> &AtomicBool {
        match dir {
            Direction::ToServer => &self.blackhole_to_server,
            Direction::ToClient => &self.blackhole_to_client,
        }
    }
}

/// A TCP proxy on 127.0.0.1 that forwards every accepted connection to one upstream address,
/// and can cut, delay, fragment or silently drop the traffic.
///
/// Settings apply immediately, to live connections as well as to new ones. Each connection
/// uses two threads (one per direction). Dropping the proxy stops the accept loop and closes
/// every connection.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards each connection to `upstream`.
    ///
    /// The upstream connection is made when a client connects; if it fails, the client
    /// connection is closed at once (it still counts in [`FaultProxy::connection_count`]).
    pub fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept_shared = Arc::clone(&shared);
        let accept_thread = thread::Builder::new()
            .name(format!("fault-proxy-accept-{}", addr.port()))
            .spawn(move || accept_loop(&listener, upstream, &accept_shared))?;
        Ok(Self {
            addr,
            upstream,
            shared,
            accept_thread: Some(accept_thread),
        })
    }

    /// The address clients connect to (127.0.0.1, free port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address every connection is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Abruptly closes every live connection on both sides (both sockets are shut down for
    /// reading and writing): the client sees end-of-stream or an error, and so does the
    /// upstream server. New connections are still accepted afterwards.
    pub fn cut(&self) {
        let links: Vec<Link> = self.shared.links().drain().map(|(_, link)| link).collect();
        for link in &links {
            link.close();
        }
    }

    /// Sleeps `d` before writing each forwarded chunk, in both directions (`Duration::ZERO`,
    /// the default, forwards at once). With [`FaultProxy::set_chunk_size`] every piece is
    /// delayed, so this also limits throughput.
    pub fn set_delay(&self, d: Duration) {
        *self.shared.delay.lock().unwrap_or_else(|e| e.into_inner()) = d;
    }

    /// Splits forwarded bytes into chunks of at most `n` bytes, each written (and flushed,
    /// with TCP_NODELAY) separately; `None`, the default, forwards whatever one read returned.
    /// A chunk size of 0 is treated as 1.
    pub fn set_chunk_size(&self, n: Option<usize>) {
        *self
            .shared
            .chunk_size
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = n.map(|n| n.max(1));
    }

    /// While `on`, silently drops the bytes flowing in `dir` (they are read and discarded,
    /// never delivered later); the connection stays open.
    pub fn set_blackhole(&self, dir: Direction, on: bool) {
        self.shared.blackhole(dir).store(on, Ordering::SeqCst);
    }

    /// From now on, on every connection (live or new), writes `bytes` into the traffic
    /// flowing in `dir` once, after the first `>` that follows the first occurrence of any
    /// of `markers` there: after the tag that holds the marker (e.g. `</bind></iq` and
    /// `<resumed `, so that each session is hit right after its login or resumption). A man
    /// in the middle, or a server, sending what it likes. Replaces an earlier injection.
    pub fn inject_after(&self, dir: Direction, markers: &[&[u8]], bytes: impl Into<Vec<u8>>) {
        let injection = Injection {
            id: self.shared.next_injection.fetch_add(1, Ordering::SeqCst) + 1,
            dir,
            markers: markers.iter().map(|m| m.to_vec()).collect(),
            bytes: bytes.into(),
        };
        *self
            .shared
            .injection
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(injection));
    }

    /// Stops injecting (what was injected stays injected).
    pub fn stop_injecting(&self) {
        *self
            .shared
            .injection
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// How many times bytes were injected so far.
    pub fn injection_count(&self) -> usize {
        self.shared.injected.load(Ordering::SeqCst)
    }

    /// The number of connections accepted so far (live or closed).
    pub fn connection_count(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// The number of connections currently open through the proxy.
    pub fn live_connections(&self) -> usize {
        self.shared.links().len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept() up; the loop sees `stopping` and exits.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(handle) = self.accept_thread.take() {
            let _ = handle.join();
        }
        self.cut();
    }
}

fn accept_loop(listener: &TcpListener, upstream: SocketAddr, shared: &Arc<Shared>) {
    for incoming in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = incoming else {
            // E.g. EMFILE: back off a little instead of spinning.
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::clone(shared);
        // Connect upstream off the accept thread so a slow upstream does not block accepts.
        let spawned = thread::Builder::new()
            .name("fault-proxy-conn".into())
            .spawn(move || start_link(client, upstream, &shared));
        if spawned.is_err() {
            continue;
        }
    }
}

fn start_link(client: TcpStream, upstream: SocketAddr, shared: &Arc<Shared>) {
    let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let clones = (|| {
        Ok::<_, io::Error>((
            Link {
                client: client.try_clone()?,
                upstream: server.try_clone()?,
            },
            client.try_clone()?,
            server.try_clone()?,
        ))
    })();
    let Ok((link, client_writer, server_writer)) = clones else {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
        return;
    };
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    {
        let mut links = shared.links();
        if shared.stopping.load(Ordering::SeqCst) {
            link.close();
            return;
        }
        links.insert(id, link);
    }
    let done = Arc::new(AtomicUsize::new(0));
    let up = {
        let shared = Arc::clone(shared);
        let done = Arc::clone(&done);
        thread::Builder::new()
            .name("fault-proxy-up".into())
            .spawn(move || {
                pump(
                    client,
                    server_writer,
                    Direction::ToServer,
                    id,
                    &shared,
                    &done,
                )
            })
    };
    if up.is_err() {
        if let Some(link) = shared.links().remove(&id) {
            link.close();
        }
        return;
    }
    pump(
        server,
        client_writer,
        Direction::ToClient,
        id,
        shared,
        &done,
    );
}

/// Copies `from` into `to` until end-of-stream or an error, applying the fault settings.
/// On end-of-stream the half-close is passed on; on an error both connections are closed.
/// The second pump of a connection to finish removes it from the live set.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    dir: Direction,
    id: u64,
    shared: &Shared,
    done: &AtomicUsize,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut matcher = Matcher::default();
    let clean_eof = loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break false,
        };
        let data = &buf[..n];
        let sent = match matcher.split(data, dir, shared) {
            Some((at, injection)) => forward(&data[..at], &mut to, dir, shared)
                .and_then(|()| forward(&injection.bytes, &mut to, dir, shared))
                .and_then(|()| forward(&data[at..], &mut to, dir, shared)),
            None => forward(data, &mut to, dir, shared),
        };
        if sent.is_err() {
            break false;
        }
    };
    if clean_eof {
        let _ = to.shutdown(Shutdown::Write);
    } else {
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    }
    if done.fetch_add(1, Ordering::SeqCst) == 1
        && let Some(link) = shared.links().remove(&id)
    {
        link.close();
    }
}

/// Finds where an injection goes in one direction of one connection.
#[derive(Default)]
struct Matcher {
    /// The last bytes seen, which may hold the start of a marker.
    tail: Vec<u8>,
    /// A marker was seen; the injection goes after the next `>`.
    armed: bool,
    /// The last injection done on this connection.
    done: u64,
}

impl Matcher {
    /// Where in `data` the current injection goes, if it does.
    fn split(
        &mut self,
        data: &[u8],
        dir: Direction,
        shared: &Shared,
    ) -> Option<(usize, Arc<Injection>)> {
        let injection = shared
            .injection()
            .filter(|i| i.dir == dir && i.id != self.done)?;
        let from = if self.armed {
            0
        } else {
            let keep = injection.markers.iter().map(Vec::len).max().unwrap_or(1) - 1;
            let mut window = std::mem::take(&mut self.tail);
            let old = window.len();
            window.extend_from_slice(data);
            let found = injection
                .markers
                .iter()
                .filter_map(|m| find(&window, m).map(|at| at + m.len()))
                .min();
            self.tail = window[window.len().saturating_sub(keep)..].to_vec();
            self.armed = found.is_some();
            found?.saturating_sub(old)
        };
        let end = from + data[from..].iter().position(|&b| b == b'>')? + 1;
        self.done = injection.id;
        self.armed = false;
        self.tail.clear();
        shared.injected.fetch_add(1, Ordering::SeqCst);
        Some((end, injection))
    }
}

fn forward(data: &[u8], to: &mut TcpStream, dir: Direction, shared: &Shared) -> io::Result<()> {
    let chunk = shared.chunk_size().unwrap_or(data.len()).max(1);
    for piece in data.chunks(chunk) {
        let delay = shared.delay();
        if !delay.is_zero() {
            thread::sleep(delay);
        }
        if shared.blackhole(dir).load(Ordering::SeqCst) {
            continue;
        }
        to.write_all(piece)?;
        to.flush()?;
    }
    Ok(())
}
