//! Connection settings: the command line over the config file, the password from a file,
//! the environment or a prompt, and the SDK client they make.

use std::path::{Path, PathBuf};
use std::time::Duration;

use groupchat_sdk::transport_tcp::{Security, TcpConnector, TlsOptions};
use groupchat_sdk::transport_ws::WsConnector;
use groupchat_sdk::{Client, ClientBuilder};
use serde::Deserialize;

use crate::args::ConnectionArgs;
use crate::output::CliError;

/// The password's environment variable.
pub(crate) const PASSWORD_ENV: &str = "GROUPCHAT_PASSWORD";

/// The config file: the connection options, so that a user does not repeat them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    jid: Option<String>,
    password_file: Option<PathBuf>,
    server: Option<String>,
    ws: Option<String>,
    ca_file: Option<PathBuf>,
    plaintext: Option<bool>,
    http_loopback: Option<bool>,
    timeout: Option<u64>,
}

/// `<config dir>/groupchat/config.toml`.
pub(crate) fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("groupchat").join("config.toml"))
}

/// The settings once the command line and the config file are merged (the command line
/// wins).
pub(crate) fn merged(args: &ConnectionArgs) -> Result<ConnectionArgs, CliError> {
    let (path, explicit) = match &args.config {
        Some(p) => (Some(p.clone()), true),
        None => (default_config_path(), false),
    };
    let file = match path {
        Some(p) if explicit || p.exists() => read_config(&p)?,
        _ => FileConfig::default(),
    };
    Ok(ConnectionArgs {
        jid: args.jid.clone().or(file.jid),
        password_file: args.password_file.clone().or(file.password_file),
        server: args.server.clone().or(file.server),
        ws: args.ws.clone().or(file.ws),
        ca_file: args.ca_file.clone().or(file.ca_file),
        plaintext: args.plaintext || file.plaintext.unwrap_or(false),
        http_loopback: args.http_loopback || file.http_loopback.unwrap_or(false),
        config: args.config.clone(),
        timeout: args.timeout.or(file.timeout),
    })
}

fn read_config(path: &Path) -> Result<FileConfig, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
}

/// The password: `--password-file` (first line), then the environment, then a prompt
/// without echo when standard input is a terminal.
fn password(settings: &ConnectionArgs, jid: &str) -> Result<String, CliError> {
    if let Some(path) = &settings.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
        return Ok(text.lines().next().unwrap_or_default().to_owned());
    }
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(p);
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return rpassword::prompt_password(format!("password for {jid}: "))
            .map_err(|e| CliError::usage(format!("cannot read the password: {e}")));
    }
    Err(CliError::usage(format!(
        "no password: give --password-file or set {PASSWORD_ENV}"
    )))
}

/// The client builder for these settings.
pub(crate) fn builder(settings: &ConnectionArgs) -> Result<ClientBuilder, CliError> {
    let jid = settings
        .jid
        .clone()
        .ok_or_else(|| CliError::usage("no JID: give --jid (or jid in the config file)"))?;
    let domain = jid
        .rsplit_once('@')
        .map(|(_, d)| d.split('/').next().unwrap_or(d).to_owned())
        .ok_or_else(|| CliError::usage(format!("{jid:?} is not a JID like alice@example.org")))?;
    let password = password(settings, &jid)?;
    let tls = settings
        .ca_file
        .as_ref()
        .map(|p| TlsOptions::ca_file(p.clone()));
    let mut b = Client::builder(jid.as_str(), password);
    if let Some(urls) = &settings.ws {
        // Several endpoints of one cluster, comma-separated: tried in order.
        let mut urls = urls.split(',').map(str::trim).filter(|u| !u.is_empty());
        let first = urls
            .next()
            .ok_or_else(|| CliError::usage("--ws needs a URL".to_owned()))?;
        let mut ws = WsConnector::builder(first);
        for url in urls {
            ws = ws.endpoint(url);
        }
        if let Some(t) = &tls {
            ws = ws.tls(t.clone());
        }
        if settings.plaintext {
            ws = ws.allow_insecure_loopback();
        }
        b = b.websocket(ws.build().map_err(|e| CliError::usage(e.to_string()))?);
    } else {
        let mut tcp = TcpConnector::builder(domain);
        // Several addresses of one cluster, comma-separated: tried in order.
        let targets = settings.server.as_deref().unwrap_or_default().split(',');
        for target in targets.map(str::trim).filter(|t| !t.is_empty()) {
            let (host, port) = target
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
                .ok_or_else(|| CliError::usage(format!("--server {target:?} is not HOST:PORT")))?;
            tcp = tcp.host_port(host, port);
        }
        if settings.plaintext {
            tcp = tcp.security(Security::InsecurePlaintextLoopback);
        }
        if let Some(t) = &tls {
            tcp = tcp.tls(t.clone());
        }
        b = b.tcp(tcp.build().map_err(|e| CliError::usage(e.to_string()))?);
    }
    if let Some(t) = tls {
        b = b.http_tls(t);
    }
    if settings.http_loopback {
        b = b.allow_insecure_http_loopback();
    }
    if let Some(s) = settings.timeout {
        b = b.request_timeout(Duration::from_secs(s.max(1)));
    }
    // A command-line session: give up on an unreachable server instead of retrying.
    Ok(b.connect_timeout(Duration::from_secs(20)))
}
