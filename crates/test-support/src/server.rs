//! Throw-away Prosody and ejabberd instances on loopback, one temp directory each.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{
    allocate_ports, file_tail, find_executable, http_request, is_ci, json_string,
    probe_stream_features, read_lossy, release_ports, send_signal, tcp_accepts,
};

const PROSODY_CONFIG_TEMPLATE: &str = include_str!("../configs/prosody.cfg.lua.in");
const EJABBERD_CONFIG_TEMPLATE: &str = include_str!("../configs/ejabberd.yml.in");
const OPENSSL_CONFIG: &str = include_str!("../configs/openssl.cnf");

/// Overall time allowed for a server to answer on c2s, HTTP and HTTPS after launch.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for a clean shutdown after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How often a start is retried with fresh ports when a port turned out to be taken.
const START_ATTEMPTS: usize = 3;
/// Prefix of every instance directory under `std::env::temp_dir()`.
const DIR_PREFIX: &str = "groupchat-test-";
/// A file in an instance directory whose server was kept running on purpose.
const KEPT_MARKER: &str = "kept";
/// Set to `1` to keep instance directories after the server is dropped.
const KEEP_DIRS_ENV: &str = "GROUPCHAT_TEST_KEEP_DIRS";
/// Set to `1` to run the servers with debug logging.
const DEBUG_LOG_ENV: &str = "GROUPCHAT_TEST_SERVER_DEBUG";

/// The XEP-0363 upload service a [`TestServer`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadService {
    /// At `upload.localhost`, taking files up to this many bytes.
    Limit(u64),
    /// None: the server announces no upload service.
    Off,
}

impl Default for UploadService {
    /// 10 MiB.
    fn default() -> Self {
        Self::Limit(DEFAULT_UPLOAD_LIMIT)
    }
}

/// The upload service's size limit unless a test asks otherwise: 10 MiB.
pub const DEFAULT_UPLOAD_LIMIT: u64 = 10 * 1024 * 1024;

/// Which XMPP server implementation a [`TestServer`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// Prosody 0.12 (Debian packages `prosody`, `prosody-modules`, `lua-unbound`).
    Prosody,
    /// ejabberd 23.01 (Debian package `ejabberd`), run with plain `erl`.
    Ejabberd,
}

impl ServerKind {
    /// Every supported server, for tests that run against all of them.
    pub const ALL: [Self; 2] = [Self::Prosody, Self::Ejabberd];

    fn slug(self) -> &'static str {
        match self {
            Self::Prosody => "prosody",
            Self::Ejabberd => "ejabberd",
        }
    }

    fn apt_packages(self) -> &'static str {
        match self {
            Self::Prosody => "prosody prosody-modules lua-unbound",
            Self::Ejabberd => "ejabberd",
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Prosody => "Prosody",
            Self::Ejabberd => "ejabberd",
        })
    }
}

/// An account that exists on a [`TestServer`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Account {
    /// The bare JID, e.g. `alice@localhost`.
    pub jid: String,
    /// The localpart, e.g. `alice`.
    pub user: String,
    /// The password, e.g. `alicepass`.
    pub password: String,
}

impl Account {
    fn new(user: &str, password: &str, domain: &str) -> Self {
        Self {
            jid: format!("{user}@{domain}"),
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }
}

/// Where the binaries of one server kind live.
#[derive(Debug, Clone)]
enum Tools {
    Prosody {
        prosody: PathBuf,
        prosodyctl: PathBuf,
    },
    Ejabberd {
        erl: PathBuf,
        erl_libs: PathBuf,
    },
}

/// The loopback ports of one instance.
#[derive(Debug, Clone, Copy)]
struct Ports {
    c2s: u16,
    tls: u16,
    http: u16,
    https: u16,
}

impl Ports {
    fn allocate() -> Self {
        let ports =
            allocate_ports(4).unwrap_or_else(|e| panic!("cannot pick free loopback ports: {e}"));
        Self {
            c2s: ports[0],
            tls: ports[1],
            http: ports[2],
            https: ports[3],
        }
    }

    fn release(self) {
        release_ports(&[self.c2s, self.tls, self.http, self.https]);
    }
}

/// Why a launch did not reach readiness.
#[derive(Debug)]
pub(crate) struct LaunchFailure {
    pub(crate) reason: String,
    /// A listener could not bind its port: worth retrying with fresh ports.
    port_conflict: bool,
}

/// A real XMPP server (Prosody or ejabberd) running on loopback in its own temp directory.
///
/// The server listens on 127.0.0.1 only, on free ports, for the domain `localhost` with a MUC
/// service at `conference.localhost` and an upload service at `upload.localhost`. The accounts
/// in [`TestServer::DEFAULT_ACCOUNTS`] exist from the start. Dropping the value stops the
/// server (SIGTERM, then SIGKILL after 3 s) and removes the directory.
#[derive(Debug)]
pub struct TestServer {
    kind: ServerKind,
    dir: PathBuf,
    tools: Tools,
    ports: Ports,
    child: Option<Child>,
    ca_cert: PathBuf,
    extra_accounts: Mutex<Vec<Account>>,
    upload: UploadService,
    /// Left running when dropped ([`TestServer::keep_running`]).
    kept: bool,
    /// An ejabberd node of a cluster: Erlang distribution on (see [`crate::EjabberdCluster`]).
    pub(crate) node: Option<ErlNode>,
}

/// The Erlang distribution of one ejabberd node in a cluster: its name, the cluster's cookie
/// and the cluster's own epmd.
#[derive(Debug, Clone)]
pub(crate) struct ErlNode {
    pub(crate) name: String,
    pub(crate) cookie: String,
    pub(crate) epmd_port: u16,
}

impl TestServer {
    /// Accounts registered on every server before [`TestServer::start`] returns; the password
    /// of each is the name followed by `pass` (`alice` / `alicepass`).
    pub const DEFAULT_ACCOUNTS: [&'static str; 5] = ["alice", "bob", "carol", "dave", "erin"];

    /// Starts a fresh server in its own temp dir (under `std::env::temp_dir()`, unique name)
    /// with free loopback ports, and registers [`TestServer::DEFAULT_ACCOUNTS`].
    ///
    /// If the server binary (or `openssl`, needed for the certificate) is missing: when the
    /// environment variable `CI` is `true` this panics with a message naming the apt package to
    /// install; otherwise it prints a loud `SKIPPED: ...` message to stderr and returns `None`.
    ///
    /// # Panics
    /// If the binary exists but the server fails to start within 30 s (the message contains the
    /// tail of its log), or if the temp directory or certificate cannot be created.
    pub fn start(kind: ServerKind) -> Option<Self> {
        Self::start_with(kind, UploadService::default())
    }

    /// [`start`](Self::start) with another upload service (a larger limit, or none).
    pub fn start_with(kind: ServerKind, upload: UploadService) -> Option<Self> {
        Self::start_node(kind, upload, None, true)
    }

    /// Starts a server; an ejabberd `node` runs with Erlang distribution; `register`: the
    /// default accounts are made.
    pub(crate) fn start_node(
        kind: ServerKind,
        upload: UploadService,
        node: Option<ErlNode>,
        register: bool,
    ) -> Option<Self> {
        let tools = match locate_tools(kind) {
            Ok(tools) => tools,
            Err(missing) => return unavailable(kind, &missing, kind.apt_packages()),
        };
        let Some(openssl) = find_executable("openssl") else {
            return unavailable(
                kind,
                "the `openssl` command (needed for the TLS certificate)",
                "openssl",
            );
        };
        sweep_stale_dirs();
        let certificate = shared_certificate(&openssl).unwrap_or_else(|e| panic!("{e}"));
        let dir = create_instance_dir(kind)
            .unwrap_or_else(|e| panic!("cannot create the {kind} test directory: {e}"));
        let mut server = Self {
            kind,
            ca_cert: dir.join("certs").join("localhost.crt"),
            dir,
            tools,
            ports: Ports::allocate(),
            child: None,
            extra_accounts: Mutex::new(Vec::new()),
            upload,
            kept: false,
            node,
        };
        server
            .prepare_dir(certificate)
            .unwrap_or_else(|e| panic!("cannot prepare {}: {e}", server.dir.display()));

        let mut attempt = 1;
        loop {
            server
                .write_config()
                .unwrap_or_else(|e| panic!("cannot write the {kind} config: {e}"));
            if kind == ServerKind::Prosody && register {
                // prosodyctl writes the account files directly, no running server needed.
                for name in Self::DEFAULT_ACCOUNTS {
                    server.prosodyctl_register(name, &format!("{name}pass"));
                }
            }
            match server.launch() {
                Ok(()) => break,
                Err(failure) if failure.port_conflict && attempt < START_ATTEMPTS => {
                    eprintln!(
                        "{kind} test server: a port was taken ({}), retrying with new ports",
                        failure.reason
                    );
                    server.stop_process();
                    server.ports.release();
                    server.ports = Ports::allocate();
                    attempt += 1;
                }
                Err(failure) => server.fail(&format!("did not start: {}", failure.reason)),
            }
        }
        if kind == ServerKind::Ejabberd && register {
            for name in Self::DEFAULT_ACCOUNTS {
                server.ejabberd_register(name, &format!("{name}pass"));
            }
        }
        Some(server)
    }

    /// Leaves the server running after this value is gone (the demo's `--keep`): its
    /// directory stays, later starts do not sweep it, and it runs until its process
    /// (`server.pid` in [`dir`](Self::dir)) is stopped. Returns that process id.
    pub fn keep_running(mut self) -> u32 {
        let _ = fs::write(self.dir.join(KEPT_MARKER), b"");
        self.kept = true;
        // Dropping a `Child` neither kills nor waits for it.
        self.child.take().map_or(0, |c| c.id())
    }

    /// Which server implementation this is.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// The XMPP domain of the accounts: `localhost`.
    pub fn domain(&self) -> &str {
        "localhost"
    }

    /// The MUC (XEP-0045) service: `conference.localhost`.
    pub fn muc_domain(&self) -> &str {
        "conference.localhost"
    }

    /// The HTTP upload (XEP-0363) service: `upload.localhost`. Upload URLs it hands out point
    /// at `http://localhost:<http_port>/...`.
    pub fn upload_domain(&self) -> &str {
        "upload.localhost"
    }

    /// The client-to-server port (RFC 6120): STARTTLS is offered but not required, and
    /// plaintext authentication (PLAIN and SCRAM) is allowed.
    pub fn c2s_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports.c2s))
    }

    /// The XEP-0368 direct TLS c2s port (TLS from the first byte, certificate for `localhost`).
    pub fn direct_tls_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports.tls))
    }

    /// The plain HTTP port on 127.0.0.1 (WebSocket, BOSH, upload; on ejabberd also `/api`).
    pub fn http_port(&self) -> u16 {
        self.ports.http
    }

    /// The RFC 7395 WebSocket endpoint: `ws://127.0.0.1:PORT/xmpp-websocket`.
    pub fn websocket_url(&self) -> String {
        format!("ws://127.0.0.1:{}/xmpp-websocket", self.ports.http)
    }

    /// The HTTPS port on 127.0.0.1: the WebSocket endpoint and BOSH (on Prosody also upload)
    /// over TLS with the certificate of [`TestServer::ca_cert_pem`]. On ejabberd it also
    /// serves XEP-0156 host-meta (`/.well-known/host-meta` and `/.well-known/host-meta.json`),
    /// which advertises [`TestServer::secure_websocket_url`]; Prosody 0.12 has no host-meta.
    pub fn https_port(&self) -> u16 {
        self.ports.https
    }

    /// The RFC 7395 WebSocket endpoint over TLS: `wss://localhost:PORT/xmpp-websocket`, with
    /// the host name `localhost` so that the certificate verifies by name (trust
    /// [`TestServer::ca_cert_pem`]).
    pub fn secure_websocket_url(&self) -> String {
        format!("wss://localhost:{}/xmpp-websocket", self.ports.https)
    }

    /// The PEM file of the self-signed certificate the server presents. Trust it as the only
    /// root: it has CN `localhost` and the SANs `localhost`, `*.localhost`,
    /// `conference.localhost`, `upload.localhost`, `mix.localhost` and `127.0.0.1`, and it is
    /// marked `CA:FALSE` so that rustls/webpki accepts it as the server's end-entity certificate.
    pub fn ca_cert_pem(&self) -> &Path {
        &self.ca_cert
    }

    /// The instance directory (config, logs, data). Removed on drop unless the environment
    /// variable `GROUPCHAT_TEST_KEEP_DIRS` is `1`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One of [`TestServer::DEFAULT_ACCOUNTS`] or an account made with [`TestServer::register`].
    ///
    /// # Panics
    /// If no account of that name exists on this server.
    pub fn account(&self, name: &str) -> Account {
        if Self::DEFAULT_ACCOUNTS.contains(&name) {
            return Account::new(name, &format!("{name}pass"), self.domain());
        }
        let extra = self
            .extra_accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match extra.iter().find(|a| a.user == name) {
            Some(account) => account.clone(),
            None => panic!(
                "no account {name:?} on the {} test server: the default ones are {:?}; \
                 create others with TestServer::register",
                self.kind,
                Self::DEFAULT_ACCOUNTS
            ),
        }
    }

    /// Creates an extra account while the server runs. Use a new name: ejabberd refuses
    /// existing ones (this panics), Prosody would overwrite the password.
    ///
    /// # Panics
    /// If the server refuses the registration.
    pub fn register(&self, user: &str, password: &str) -> Account {
        match self.kind {
            ServerKind::Prosody => self.prosodyctl_register(user, password),
            ServerKind::Ejabberd => self.ejabberd_register(user, password),
        }
        let account = Account::new(user, password, self.domain());
        let mut extra = self
            .extra_accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        extra.retain(|a| a.user != user);
        extra.push(account.clone());
        account
    }

    /// Stops the server (SIGTERM, as in drop) and starts it again in the same directory on the
    /// same ports. Accounts, rooms and archives are kept; live sessions, including XEP-0198
    /// resumable ones, are gone.
    ///
    /// # Panics
    /// If the server does not come back within 30 s.
    pub fn restart(&mut self) {
        self.stop_process();
        if let Err(failure) = self.launch() {
            self.fail(&format!(
                "did not come back after restart: {}",
                failure.reason
            ));
        }
    }

    /// The last `lines` lines of the server's log file, followed (under a
    /// `--- console output ---` line) by the last `lines` lines the process wrote to
    /// stdout/stderr that are not copies of log lines (e.g. Erlang crash reports), if any.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut out = file_tail(&self.log_path(), lines);
        let console = read_lossy(&self.console_path());
        // ejabberd also logs to the console: keep only the lines that do not start like a
        // log line ("2026-11-27 00:27:56.654568+00:00 [info] ...").
        let extra: Vec<&str> = console
            .lines()
            .filter(|l| !l.trim().is_empty() && !looks_like_log_line(l))
            .collect();
        if !extra.is_empty() {
            out.push_str("--- console output ---\n");
            for line in &extra[extra.len().saturating_sub(lines)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    // ----- internals -------------------------------------------------------------------

    fn config_path(&self) -> PathBuf {
        match self.kind {
            ServerKind::Prosody => self.dir.join("prosody.cfg.lua"),
            ServerKind::Ejabberd => self.dir.join("ejabberd.yml"),
        }
    }

    fn log_path(&self) -> PathBuf {
        match self.kind {
            ServerKind::Prosody => self.dir.join("prosody.log"),
            ServerKind::Ejabberd => self.dir.join("log").join("ejabberd.log"),
        }
    }

    fn console_path(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    pub(crate) fn fail(&self, what: &str) -> ! {
        panic!(
            "{} test server in {} {what}\n--- last lines of its log ---\n{}",
            self.kind,
            self.dir.display(),
            self.log_tail(60)
        )
    }

    /// Creates the sub-directories and installs the certificate files.
    fn prepare_dir(&self, certificate: &Certificate) -> io::Result<()> {
        let certs = self.dir.join("certs");
        fs::create_dir_all(&certs)?;
        match self.kind {
            ServerKind::Prosody => fs::create_dir_all(self.dir.join("data"))?,
            ServerKind::Ejabberd => {
                for sub in ["spool", "log", "upload"] {
                    fs::create_dir_all(self.dir.join(sub))?;
                }
            }
        }
        fs::write(certs.join("localhost.crt"), &certificate.cert_pem)?;
        let key = certs.join("localhost.key");
        fs::write(&key, &certificate.key_pem)?;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600))?;
        let pem = certs.join("localhost.pem");
        fs::write(
            &pem,
            format!("{}{}", certificate.cert_pem, certificate.key_pem),
        )?;
        fs::set_permissions(&pem, fs::Permissions::from_mode(0o600))?;
        fs::write(self.dir.join("owner.pid"), std::process::id().to_string())
    }

    fn write_config(&self) -> io::Result<()> {
        let dir = self
            .dir
            .to_str()
            .filter(|d| !d.contains(['"', '\\', '\n', '\'', '@']));
        let Some(dir) = dir else {
            return Err(io::Error::other(format!(
                "the temp directory path {:?} has characters that cannot go into a config file",
                self.dir
            )));
        };
        let template = match self.kind {
            ServerKind::Prosody => PROSODY_CONFIG_TEMPLATE,
            ServerKind::Ejabberd => EJABBERD_CONFIG_TEMPLATE,
        };
        let debug = std::env::var(DEBUG_LOG_ENV).is_ok_and(|v| v == "1");
        let config = template
            .replace("@UPLOAD_COMPONENT@", &self.upload_config(dir))
            .replace("@UPLOAD_MODULE@", &self.upload_config(dir))
            .replace("@DIR@", dir)
            .replace("@C2S_PORT@", &self.ports.c2s.to_string())
            .replace("@TLS_PORT@", &self.ports.tls.to_string())
            .replace("@HTTP_PORT@", &self.ports.http.to_string())
            .replace("@HTTPS_PORT@", &self.ports.https.to_string())
            .replace("@LOG_LEVEL@", if debug { "debug" } else { "info" });
        debug_assert!(!config.contains("@DIR@") && !config.contains("_PORT@"));
        fs::write(self.config_path(), config)
    }

    /// The upload service's part of the configuration.
    fn upload_config(&self, dir: &str) -> String {
        match (self.kind, self.upload) {
            (_, UploadService::Off) => String::new(),
            (ServerKind::Prosody, UploadService::Limit(limit)) => format!(
                "Component \"upload.localhost\" \"http_file_share\"\n  \
                 http_file_share_size_limit = {limit}\n"
            ),
            (ServerKind::Ejabberd, UploadService::Limit(limit)) => format!(
                "  mod_http_upload:\n    \
                 put_url: \"http://localhost:{port}/upload\"\n    \
                 docroot: \"{dir}/upload\"\n    \
                 max_size: {limit}\n",
                port = self.ports.http
            ),
        }
    }

    /// Spawns the server process and waits until it answers on c2s, HTTP and HTTPS.
    pub(crate) fn launch(&mut self) -> Result<(), LaunchFailure> {
        let log_offset = fs::metadata(self.log_path()).map(|m| m.len()).unwrap_or(0) as usize;
        let console = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.console_path())
            .map_err(|e| LaunchFailure {
                reason: format!("cannot open console log: {e}"),
                port_conflict: false,
            })?;
        let mut command = self.command();
        command
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(clone_file(&console)?)
            .stderr(clone_file(&console)?);
        let child = command.spawn().map_err(|e| LaunchFailure {
            reason: format!("cannot run {:?}: {e}", command.get_program()),
            port_conflict: false,
        })?;
        let _ = fs::write(self.dir.join("server.pid"), child.id().to_string());
        self.child = Some(child);
        self.wait_ready(log_offset)
    }

    fn command(&self) -> Command {
        match &self.tools {
            Tools::Prosody { prosody, .. } => {
                let mut command = Command::new(prosody);
                command.arg("--config").arg(self.config_path()).arg("-F");
                command
            }
            Tools::Ejabberd { erl, erl_libs } => {
                let mut command = erl_command(erl, erl_libs);
                command
                    .env("EJABBERD_CONFIG_PATH", self.config_path())
                    .env("EJABBERD_LOG_PATH", self.log_path())
                    .env("EJABBERD_PID_PATH", self.dir.join("ejabberd.pid"));
                if std::env::var_os("HOME").is_none() {
                    command.env("HOME", &self.dir);
                }
                // No -sname/-name (unless a cluster's node, below): no Erlang distribution,
                // so no epmd and no node-name clash between parallel instances (the node is nonode@nohost, and Mnesia lives in
                // this instance's spool). With -noinput, Ctrl-C (SIGINT) halts the VM like the
                // rest of the test run. +sbwt none: no busy-waiting schedulers on small CI
                // machines.
                command.args([
                    "-noinput",
                    "+sbwt",
                    "none",
                    "+sbwtdcpu",
                    "none",
                    "+sbwtdio",
                    "none",
                    "-mnesia",
                    "dir",
                ]);
                command.arg(format!("\"{}\"", self.dir.join("spool").display()));
                // A cluster's node: distribution on loopback only, through the cluster's own
                // epmd (never the system's), with the cluster's cookie.
                if let Some(node) = &self.node {
                    command.env("ERL_EPMD_PORT", node.epmd_port.to_string());
                    command.args(["-name", &node.name, "-setcookie", &node.cookie]);
                    command.args(["-start_epmd", "false", "-kernel", "inet_dist_use_interface"]);
                    command.arg("{127,0,0,1}");
                }
                command.args(["-s", "ejabberd"]);
                command
            }
        }
    }

    /// Waits until the running process serves c2s, HTTP and HTTPS (again).
    pub(crate) fn wait_serving(&mut self) -> Result<(), LaunchFailure> {
        let log_offset = fs::metadata(self.log_path()).map(|m| m.len()).unwrap_or(0) as usize;
        self.wait_ready(log_offset)
    }

    fn wait_ready(&mut self, log_offset: usize) -> Result<(), LaunchFailure> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut c2s_ok = false;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = read_lossy(&self.log_path());
                return Err(LaunchFailure {
                    reason: format!("the process exited with {status}"),
                    port_conflict: looks_like_port_conflict(log.get(log_offset..).unwrap_or("")),
                });
            }
            let log = read_lossy(&self.log_path());
            let new_log = log.get(log_offset..).unwrap_or("");
            if looks_like_port_conflict(new_log) {
                return Err(LaunchFailure {
                    reason: "a listening port was already in use".into(),
                    port_conflict: true,
                });
            }
            if let Some(line) = fatal_log_line(self.kind, new_log) {
                return Err(LaunchFailure {
                    reason: format!("fatal log line: {line}"),
                    port_conflict: false,
                });
            }
            if !c2s_ok {
                c2s_ok = probe_stream_features(self.c2s_addr(), Duration::from_secs(2)).is_some();
            }
            if c2s_ok
                && tcp_accepts(SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports.http)))
                && tcp_accepts(SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports.https)))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LaunchFailure {
                    reason: format!(
                        "no <stream:features> on {} and HTTP on ports {} and {} (HTTPS) \
                         within {READY_TIMEOUT:?}",
                        self.c2s_addr(),
                        self.ports.http,
                        self.ports.https
                    ),
                    port_conflict: false,
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, wait up to 3 s, then SIGKILL.
    fn stop_process(&mut self) {
        self.stop_with(false, STOP_GRACE);
    }

    /// Stops the process: SIGKILL at once (`kill`), or SIGTERM and SIGKILL after `grace`;
    /// returns once it is gone.
    pub(crate) fn stop_with(&mut self, kill: bool, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if kill {
            let _ = child.kill();
        } else if matches!(child.try_wait(), Ok(None)) {
            send_signal(child.id(), "TERM");
            let deadline = Instant::now() + grace;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
        }
        let _ = child.wait();
        let _ = fs::remove_file(self.dir.join("server.pid"));
    }

    /// Runs `ejabberdctl`'s command `args` against this cluster node from a hidden control
    /// node (the node's own `/api` cannot run commands that restart ejabberd, like a join);
    /// its output, or why it failed.
    pub(crate) fn ejabberd_ctl(&self, args: &[&str]) -> Result<String, String> {
        static NEXT_CTL: AtomicUsize = AtomicUsize::new(0);
        let (Tools::Ejabberd { erl, erl_libs }, Some(node)) = (&self.tools, &self.node) else {
            return Err(format!("{} is not an ejabberd cluster node", self.kind));
        };
        let ctl = format!(
            "ctl{}_{}@127.0.0.1",
            NEXT_CTL.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        );
        let output = erl_command(erl, erl_libs)
            .env("ERL_EPMD_PORT", node.epmd_port.to_string())
            .args([
                "-name",
                &ctl,
                "-setcookie",
                &node.cookie,
                "-start_epmd",
                "false",
            ])
            .args([
                "-hidden",
                "-noinput",
                "-noshell",
                "-s",
                "ejabberd_ctl",
                "-extra",
            ])
            .arg(&node.name)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", erl.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if output.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "ejabberdctl {args:?} on {}: {}: {text}",
                node.name, output.status
            ))
        }
    }

    fn prosodyctl_register(&self, user: &str, password: &str) {
        let Tools::Prosody { prosodyctl, .. } = &self.tools else {
            unreachable!("prosodyctl_register on {}", self.kind)
        };
        let output = Command::new(prosodyctl)
            .arg("--config")
            .arg(self.config_path())
            .args(["register", user, self.domain(), password])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", prosodyctl.display()));
        if !output.status.success() {
            panic!(
                "prosodyctl register {user} failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    fn ejabberd_register(&self, user: &str, password: &str) {
        let body = format!(
            "{{\"user\":{},\"host\":{},\"password\":{}}}",
            json_string(user),
            json_string(self.domain()),
            json_string(password)
        );
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports.http));
        // Right after start-up the HTTP side may not be fully up: retry transport errors and
        // non-API answers for a while.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let result = http_request(addr, "POST", "/api/register", "application/json", &body);
            match result {
                Ok(response) if response.status == 200 => return,
                // A JSON error from the API (exists, malformed name, ...) is final.
                Ok(response)
                    if response.body.contains("\"status\":\"error\"")
                        || Instant::now() > deadline =>
                {
                    self.fail(&format!(
                        "refused to register {user}: HTTP {} {}",
                        response.status, response.body
                    ))
                }
                Err(e) if Instant::now() > deadline => self.fail(&format!("register {user}: {e}")),
                _ => thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if thread::panicking() && self.child.is_some() {
            eprintln!(
                "--- {} test server ({}) log tail, the test panicked ---\n{}",
                self.kind,
                self.dir.display(),
                self.log_tail(40)
            );
        }
        self.stop_process();
        self.ports.release();
        if std::env::var(KEEP_DIRS_ENV).is_ok_and(|v| v == "1") {
            eprintln!(
                "{} test server directory kept: {}",
                self.kind,
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// `erl` with ejabberd's libraries and none of the Erlang flags of the environment (they
/// could turn on distribution, or point at another epmd, and make instances clash).
fn erl_command(erl: &Path, erl_libs: &Path) -> Command {
    let mut command = Command::new(erl);
    command
        .env("ERL_LIBS", erl_libs)
        .env("ERL_CRASH_DUMP_BYTES", "0")
        .env_remove("ERL_FLAGS")
        .env_remove("ERL_AFLAGS")
        .env_remove("ERL_ZFLAGS")
        .env_remove("ERL_EPMD_PORT");
    command
}

fn clone_file(file: &File) -> Result<File, LaunchFailure> {
    file.try_clone().map_err(|e| LaunchFailure {
        reason: format!("cannot duplicate the console log handle: {e}"),
        port_conflict: false,
    })
}

/// `2026-11-27 00:27:56.654568+00:00 [info] ...`: a line ejabberd writes to its log too.
fn looks_like_log_line(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && line.get(19..).is_some_and(|s| s.contains(" ["))
}

fn looks_like_port_conflict(log: &str) -> bool {
    // Prosody: "Failed to open server port 1234 on 127.0.0.1, ... address already in use";
    // ejabberd: "... eaddrinuse ...".
    log.contains("Failed to open server port")
        || log.contains("eaddrinuse")
        || log.contains("address already in use")
}

/// A log line that means the server will never become ready, so there is no point in waiting.
fn fatal_log_line(kind: ServerKind, log: &str) -> Option<&str> {
    let markers: &[&str] = match kind {
        ServerKind::Prosody => &["Unable to load module", "Error initializing module"],
        ServerKind::Ejabberd => &[
            "Failed to start ejabberd",
            "application_start_failure",
            "Invalid value of option",
        ],
    };
    log.lines()
        .find(|line| markers.iter().any(|m| line.contains(m)))
}

fn unavailable(kind: ServerKind, missing: &str, package: &str) -> Option<TestServer> {
    if is_ci() {
        panic!(
            "cannot start the {kind} test server: {missing} not found. CI=true, so this is a failure, \
             not a skip. Install it: apt-get install {package}"
        );
    }
    let line = "!".repeat(100);
    let message = format!(
        "\n{line}\nSKIPPED: {kind} test server not available: {missing} not found.\n\
         SKIPPED: the tests that need it did NOT run. Install it: sudo apt-get install {package}\n\
         SKIPPED: (with CI=true this is a failure instead of a skip)\n{line}\n"
    );
    // Written to the stderr handle directly, not with eprintln!: the test harness captures
    // print macros of passing tests, and a skip must be visible.
    let _ = io::stderr().lock().write_all(message.as_bytes());
    None
}

fn locate_tools(kind: ServerKind) -> Result<Tools, String> {
    match kind {
        ServerKind::Prosody => {
            let prosody = find_executable("prosody").ok_or("the `prosody` binary")?;
            let prosodyctl = find_executable("prosodyctl").ok_or("the `prosodyctl` binary")?;
            if let Some(plugins) = prosody_plugin_dir(&prosody)
                && !plugins.join("mod_vcard_muc").exists()
                && !plugins.join("mod_vcard_muc.lua").exists()
            {
                return Err(format!(
                    "the community module mod_vcard_muc (package prosody-modules) in {}",
                    plugins.display()
                ));
            }
            Ok(Tools::Prosody {
                prosody,
                prosodyctl,
            })
        }
        ServerKind::Ejabberd => {
            let erl = find_executable("erl")
                .ok_or("the Erlang `erl` binary (installed with ejabberd)")?;
            let erl_libs = find_ejabberd_libs()
                .ok_or("the ejabberd Erlang application (ejabberd-*/ebin/ejabberd.beam)")?;
            Ok(Tools::Ejabberd { erl, erl_libs })
        }
    }
}

/// Prosody's own module directory, read from the `CFG_PLUGINDIR='...'` line of the `prosody`
/// launcher script (`/usr/lib/prosody/modules/` on Debian, where prosody-modules installs too).
fn prosody_plugin_dir(prosody: &Path) -> Option<PathBuf> {
    let script = fs::read_to_string(prosody).ok()?;
    let line = script
        .lines()
        .find(|l| l.trim_start().starts_with("CFG_PLUGINDIR"))?;
    let value = line.split_once('=')?.1.trim().trim_end_matches(';');
    let value = value.trim_matches(|c| c == '\'' || c == '"');
    let dir = PathBuf::from(value);
    dir.is_dir().then_some(dir)
}

/// The directory that contains `ejabberd-<version>/ebin/ejabberd.beam`, to be used as ERL_LIBS.
/// Debian puts it under `/usr/lib/<multiarch triplet>/`.
fn find_ejabberd_libs() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(entries) = fs::read_dir("/usr/lib") {
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        candidates.extend(dirs);
    }
    candidates.extend(
        [
            "/usr/lib/erlang/lib",
            "/usr/lib64/erlang/lib",
            "/usr/local/lib/erlang/lib",
            "/usr/local/lib",
        ]
        .into_iter()
        .map(PathBuf::from),
    );
    candidates.into_iter().find(|dir| {
        fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with("ejabberd-")
                    && e.path().join("ebin").join("ejabberd.beam").is_file()
            })
        })
    })
}

/// A certificate and its private key, PEM.
#[derive(Debug)]
struct Certificate {
    cert_pem: String,
    key_pem: String,
}

/// Generates the self-signed certificate once per process (RSA 2048, `openssl req -x509`) and
/// hands the same one to every instance.
fn shared_certificate(openssl: &Path) -> Result<&'static Certificate, String> {
    static CERT: OnceLock<Result<Certificate, String>> = OnceLock::new();
    CERT.get_or_init(|| generate_certificate(openssl))
        .as_ref()
        .map_err(Clone::clone)
}

fn generate_certificate(openssl: &Path) -> Result<Certificate, String> {
    let work = std::env::temp_dir().join(format!(
        "{DIR_PREFIX}cert-{}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
        let cnf = work.join("openssl.cnf");
        fs::write(&cnf, OPENSSL_CONFIG)
            .map_err(|e| format!("cannot write {}: {e}", cnf.display()))?;
        let (crt, key) = (work.join("localhost.crt"), work.join("localhost.key"));
        let output = Command::new(openssl)
            .args(["req", "-x509", "-config"])
            .arg(&cnf)
            .args(["-newkey", "rsa:2048", "-nodes", "-days", "3650", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", openssl.display()))?;
        if !output.status.success() {
            return Err(format!(
                "openssl req failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let read = |p: &Path| {
            fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        Ok(Certificate {
            cert_pem: read(&crt)?,
            key_pem: read(&key)?,
        })
    })();
    let _ = fs::remove_dir_all(&work);
    result
}

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// Creates `<temp>/groupchat-test-<kind>-<pid>-<n>`, a name no other live instance uses.
fn create_instance_dir(kind: ServerKind) -> io::Result<PathBuf> {
    let base = std::env::temp_dir();
    loop {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!(
            "{DIR_PREFIX}{}-{}-{n}",
            kind.slug(),
            std::process::id()
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            // Left over by an earlier process that had the same pid.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Once per process: removes instance directories of test processes that no longer exist (killed
/// before their servers were dropped) and stops the servers still running from them. A server
/// is only signalled if its command line names that directory, so a recycled pid is left alone.
fn sweep_stale_dirs() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(DIR_PREFIX) else {
                continue;
            };
            let mut parts = rest.split('-');
            let (Some(kind), Some(pid)) = (parts.next(), parts.next()) else {
                continue;
            };
            if !matches!(kind, "prosody" | "ejabberd") {
                continue;
            }
            let Ok(owner) = pid.parse::<u32>() else {
                continue;
            };
            if dir.join(KEPT_MARKER).exists() {
                continue;
            }
            if owner == std::process::id() || Path::new(&format!("/proc/{owner}")).exists() {
                continue;
            }
            // A cluster's own epmd, started by the test process that owned this directory.
            if let Ok(epmd) = fs::read_to_string(dir.join(crate::cluster::EPMD_PID_FILE))
                && let Ok(epmd) = epmd.trim().parse::<u32>()
            {
                let cmdline = fs::read(format!("/proc/{epmd}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains("epmd") {
                    send_signal(epmd, "KILL");
                }
            }
            if let Ok(server) = fs::read_to_string(dir.join("server.pid"))
                && let Ok(server) = server.trim().parse::<u32>()
            {
                let cmdline = fs::read(format!("/proc/{server}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&*dir.to_string_lossy()) {
                    send_signal(server, "KILL");
                }
            }
            let _ = fs::remove_dir_all(&dir);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_dir_from_launcher_script() {
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}unit-{}", std::process::id()));
        fs::create_dir_all(dir.join("modules")).unwrap();
        let script = dir.join("prosody");
        let modules = dir.join("modules");
        fs::write(
            &script,
            format!(
                "#!/usr/bin/lua\nCFG_SOURCEDIR='/x';\nCFG_PLUGINDIR='{}/';\n",
                modules.display()
            ),
        )
        .unwrap();
        assert_eq!(
            prosody_plugin_dir(&script),
            Some(PathBuf::from(format!("{}/", modules.display())))
        );
        fs::write(&script, "#!/usr/bin/lua\n").unwrap();
        assert_eq!(prosody_plugin_dir(&script), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn log_line_classification() {
        assert!(looks_like_log_line(
            "2026-11-27 00:27:56.654568+00:00 [info] <0.117.0>@ejabberd_config:load/1:82 Loading"
        ));
        assert!(!looks_like_log_line(
            "Kernel pid terminated (application_controller)"
        ));
        assert!(!looks_like_log_line("2026"));
        assert!(looks_like_port_conflict(
            "portmanager\terror\tFailed to open server port 5222 on 127.0.0.1, this port is in use"
        ));
        assert!(looks_like_port_conflict(
            "Failed to open socket at 127.0.0.1:47001 for ejabberd_c2s: address already in use"
        ));
        assert_eq!(
            fatal_log_line(
                ServerKind::Prosody,
                "a\nx\terror\tUnable to load module 'vcard_muc': nope\nb"
            ),
            Some("x\terror\tUnable to load module 'vcard_muc': nope")
        );
        assert_eq!(fatal_log_line(ServerKind::Ejabberd, "all good"), None);
    }
}
