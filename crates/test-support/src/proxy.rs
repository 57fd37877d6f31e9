//! A loopback TCP proxy for fault injection, built on std threads.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

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
    let clean_eof = loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break false,
        };
        if forward(&buf[..n], &mut to, dir, shared).is_err() {
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
