//! What the program prints: human-readable text by default, the seed's JSON with `--json`;
//! errors on stderr; the exit code from the error's status.

use std::io::IsTerminal as _;

use groupchat_sdk::{ConnectError, Progress, RequestError};
use serde::Serialize;
use serde_json::Value;

/// Why the program stops with an error.
#[derive(Debug)]
pub(crate) enum CliError {
    /// A bad argument or setting found before contacting the server (status 400).
    Usage(String),
    /// Connecting or logging in failed.
    Connect(Box<ConnectError>),
    /// A call failed.
    Request(Box<RequestError>),
}

impl CliError {
    pub(crate) fn usage(m: impl Into<String>) -> Self {
        Self::Usage(m.into())
    }

    /// The seed's status code.
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::Usage(_) => 400,
            Self::Connect(e) => e.status_code(),
            Self::Request(e) => e.status_code(),
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Usage(m) => f.write_str(m),
            Self::Connect(e) => write!(f, "{e}"),
            Self::Request(e) => write!(f, "{e}"),
        }
    }
}

impl From<RequestError> for CliError {
    fn from(e: RequestError) -> Self {
        Self::Request(Box::new(e))
    }
}

impl From<ConnectError> for CliError {
    fn from(e: ConnectError) -> Self {
        Self::Connect(Box::new(e))
    }
}

/// The exit code of a status (docs/cli.md has the table): 0 success, 2 bad argument, 3
/// wrong credentials, 4 refused or unavailable feature, 5 not found, 6 conflict, 7 too
/// large, 8 certificate, 9 server unreachable or failing, 10 timeout, 1 anything else.
pub(crate) fn exit_code(status: u16) -> i32 {
    match status {
        200..=299 => 0,
        400 => 2,
        401 => 3,
        403 => 4,
        404 => 5,
        409 => 6,
        413 => 7,
        495 => 8,
        502 | 503 => 9,
        504 => 10,
        _ => 1,
    }
}

/// Prints results in the chosen form.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Printer {
    pub(crate) json: bool,
}

impl Printer {
    /// A success: `human` as text, or `{statusCode: 200, message, data}`.
    pub(crate) fn ok<T: Serialize>(&self, data: &T, human: impl FnOnce() -> String) {
        if self.json {
            println!("{}", json_line(200, "Success", Some(data)));
        } else {
            let text = human();
            if !text.is_empty() {
                println!("{text}");
            }
        }
    }

    /// A failure: the JSON on stdout with `--json`, the message on stderr always.
    pub(crate) fn error(&self, e: &CliError) {
        if self.json {
            println!("{}", json_line::<()>(e.status(), &e.to_string(), None));
        }
        eprintln!("groupchat: error {}: {e}", e.status());
    }
}

/// The seed's response as one line of JSON.
pub(crate) fn json_line<T: Serialize>(status: u16, message: &str, data: Option<&T>) -> String {
    let mut v = serde_json::json!({ "statusCode": status, "message": message });
    if let Some(d) = data {
        v["data"] = serde_json::to_value(d).unwrap_or(Value::Null);
    }
    v.to_string()
}

/// A progress bar on stderr when it is a terminal, nothing otherwise; fed by the SDK's
/// progress callback.
pub(crate) fn progress_bar(what: &str) -> Option<impl Fn(Progress) + Send + Sync + 'static> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    Some(move |p: Progress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        // (A download of unknown size reports its total as the bytes so far.)
        if p.done == p.total && p.total > 0 && !bar.is_finished() {
            bar.finish_and_clear();
        }
    })
}

/// Rows of cells as an aligned table with a header.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = vec![line(header.to_vec())];
    for r in rows {
        out.push(line(r.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}
