//! Two ejabberd nodes clustered on loopback: their own epmd, cookie, ports and mnesia
//! directories; nodes stopped with SIGTERM or SIGKILL and started again.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::server::{Account, ErlNode, ServerKind, TestServer, UploadService};
use crate::util::{allocate_ports, find_executable, is_ci, release_ports, tcp_accepts};

/// The file in node A's directory that holds the cluster's epmd pid (for the sweep of a
/// killed test process's leftovers).
pub(crate) const EPMD_PID_FILE: &str = "epmd.pid";
/// How long a node stopped with SIGTERM may take to shut down before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(20);
/// How long a restarted node may take to be back in the cluster.
const HEAL_TIMEOUT: Duration = Duration::from_secs(30);

/// One node of an [`EjabberdCluster`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// The first node: the others joined it.
    A,
    /// The second node.
    B,
}

impl Node {
    fn index(self) -> usize {
        match self {
            Self::A => 0,
            Self::B => 1,
        }
    }

    fn erlang_name(self) -> &'static str {
        match self {
            Self::A => "ejabberd_a@127.0.0.1",
            Self::B => "ejabberd_b@127.0.0.1",
        }
    }
}

/// How a node is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: ejabberd shuts down cleanly (its rooms tell their occupants, status 332).
    Term,
    /// SIGKILL: the node vanishes and tells nobody.
    Kill,
}

/// Two ejabberd 23.01 nodes serving one XMPP domain (`localhost`) as one cluster, each on its
/// own loopback ports and directory, joined through their own epmd (never the system's)
/// with a cookie of their own, so that several clusters and plain servers run side by side.
/// The default accounts ([`TestServer::DEFAULT_ACCOUNTS`]) exist on both nodes (registered
/// once: accounts are shared). Dropping the value stops both nodes and the epmd.
#[derive(Debug)]
pub struct EjabberdCluster {
    /// Node A, then node B; emptied first when dropped.
    nodes: Vec<TestServer>,
    epmd: Option<Child>,
    epmd_port: u16,
}

impl EjabberdCluster {
    /// Starts epmd, node A (which registers the default accounts), node B, and joins B to
    /// A; returns once both serve clients as one cluster.
    ///
    /// When ejabberd (or epmd) is missing this returns `None` after a loud `SKIPPED`
    /// message, or panics under `CI=true`, like [`TestServer::start`].
    ///
    /// # Panics
    /// If a node does not start, or the join fails (the message has the node's log).
    pub fn start() -> Option<Self> {
        let Some(epmd_bin) = find_executable("epmd") else {
            let message = "the Erlang `epmd` binary (package erlang-base, installed with ejabberd)";
            if is_ci() {
                panic!("CI=true and {message} is missing: install the `ejabberd` package");
            }
            eprintln!("SKIPPED: {message} is missing (install the `ejabberd` package)");
            return None;
        };
        let epmd_port = allocate_ports(1)
            .unwrap_or_else(|e| panic!("cannot pick a free loopback port for epmd: {e}"))[0];
        let epmd = Command::new(epmd_bin)
            .args(["-port", &epmd_port.to_string(), "-address", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run epmd: {e}"));
        let mut cluster = Self {
            nodes: Vec::new(),
            epmd: Some(epmd),
            epmd_port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !tcp_accepts(SocketAddr::from((Ipv4Addr::LOCALHOST, epmd_port))) {
            assert!(
                Instant::now() < deadline,
                "epmd did not listen on {epmd_port}"
            );
            thread::sleep(Duration::from_millis(20));
        }
        let cookie = cookie();
        for node in [Node::A, Node::B] {
            let erl = ErlNode {
                name: node.erlang_name().to_owned(),
                cookie: cookie.clone(),
                epmd_port,
            };
            let server = TestServer::start_node(
                ServerKind::Ejabberd,
                UploadService::default(),
                Some(erl),
                node == Node::A,
            )?;
            if node == Node::A
                && let Some(epmd) = &cluster.epmd
            {
                let _ = fs::write(server.dir().join(EPMD_PID_FILE), epmd.id().to_string());
            }
            cluster.nodes.push(server);
        }
        let b = &mut cluster.nodes[1];
        if let Err(e) = b.ejabberd_ctl(&["join_cluster", Node::A.erlang_name()]) {
            b.fail(&format!("could not join the cluster: {e}"));
        }
        // The join restarted ejabberd inside node B: wait until it serves again.
        if let Err(f) = b.wait_serving() {
            b.fail(&format!("did not come back after joining: {}", f.reason));
        }
        cluster.wait_clustered(Node::B);
        Some(cluster)
    }

    /// A node, running or not: its ports, URLs and log.
    pub fn node(&self, node: Node) -> &TestServer {
        &self.nodes[node.index()]
    }

    /// One of [`TestServer::DEFAULT_ACCOUNTS`] (or one registered through a node): accounts
    /// are the cluster's, usable on either node.
    pub fn account(&self, name: &str) -> Account {
        self.nodes[0].account(name)
    }

    /// Stops `node` and returns once its process is gone (a SIGTERM that does not finish
    /// within 20 s ends with SIGKILL).
    pub fn stop(&mut self, node: Node, how: Stop) {
        self.nodes[node.index()].stop_with(how == Stop::Kill, TERM_GRACE);
    }

    /// Starts a stopped `node` again in its directory, on its ports, and returns once it
    /// serves clients and is in the cluster again (it rejoins by itself from its mnesia
    /// directory; the node that stopped last must be running, or started first).
    ///
    /// # Panics
    /// If it does not come back within 30 s.
    pub fn restart(&mut self, node: Node) {
        let server = &mut self.nodes[node.index()];
        if let Err(f) = server.launch() {
            server.fail(&format!("did not come back: {}", f.reason));
        }
        self.wait_clustered(node);
    }

    /// The nodes `via` sees running in its cluster (`list_cluster`), e.g.
    /// `["ejabberd_a@127.0.0.1", "ejabberd_b@127.0.0.1"]`.
    ///
    /// # Errors
    /// When `via` does not answer.
    pub fn running_nodes(&self, via: Node) -> Result<Vec<String>, String> {
        let out = self.nodes[via.index()].ejabberd_ctl(&["list_cluster"])?;
        let mut nodes: Vec<String> = out
            .split(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | ',' | '[' | ']'))
            .filter(|w| w.starts_with("ejabberd_") && w.contains('@'))
            .map(str::to_owned)
            .collect();
        nodes.sort();
        nodes.dedup();
        Ok(nodes)
    }

    /// Waits until `node` lists both nodes as running.
    fn wait_clustered(&self, node: Node) {
        let deadline = Instant::now() + HEAL_TIMEOUT;
        loop {
            let seen = self.running_nodes(node);
            if seen.as_ref().is_ok_and(|n| n.len() == 2) {
                return;
            }
            if Instant::now() > deadline {
                self.node(node).fail(&format!(
                    "is not back in the cluster within {HEAL_TIMEOUT:?} (it sees {seen:?})"
                ));
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for EjabberdCluster {
    fn drop(&mut self) {
        // The nodes first (they may still talk to epmd while stopping).
        self.nodes.clear();
        if let Some(mut epmd) = self.epmd.take() {
            let _ = epmd.kill();
            let _ = epmd.wait();
        }
        release_ports(&[self.epmd_port]);
    }
}

/// A cookie no other cluster on the machine has.
fn cookie() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("groupchat{}x{nanos}", std::process::id())
}
