//! Media download (the seed's "download media"): the file is streamed to a temporary file in
//! the target directory and renamed at the end, under a sanitised name; its size is held to
//! what the message announced and its hash checked when one was sent. A failed, rejected or
//! cancelled download (its future dropped) leaves no file behind.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use groupchat_protocol::codec::xep::media::Media;
use sha2::Digest as _;
use tokio::io::AsyncWriteExt as _;

use crate::client::Client;
use crate::error::RequestError;
use crate::media::{Progress, ProgressFn};

/// Why downloaded bytes were refused (502): the file is not what the message announced.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadProblem {
    /// More or fewer bytes than announced (by the message, or the web server's
    /// `Content-Length`).
    #[error("{received} bytes received where {expected} were announced")]
    SizeMismatch {
        /// The size announced.
        expected: u64,
        /// What arrived (for too many, where the download stopped).
        received: u64,
    },
    /// The content's hash differs from the one the message carried.
    #[error("the {algo} hash of the file is not the one announced")]
    HashMismatch {
        /// The algorithm (`sha-256`, `sha-512`).
        algo: String,
    },
}

/// How to download.
#[derive(Clone, Default)]
pub struct DownloadOptions {
    file_name: Option<String>,
    overwrite: bool,
    max_size: Option<u64>,
    progress: Option<ProgressFn>,
}

impl std::fmt::Debug for DownloadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadOptions")
            .field("file_name", &self.file_name)
            .field("overwrite", &self.overwrite)
            .field("max_size", &self.max_size)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// The largest download without an announced size, unless [`DownloadOptions::max_size`]
/// says otherwise.
pub const DEFAULT_MAX_DOWNLOAD: u64 = 4 * 1024 * 1024 * 1024;

impl DownloadOptions {
    /// Save under this name (sanitised like any other) instead of the announced one.
    pub fn file_name(mut self, name: impl Into<String>) -> Self {
        self.file_name = Some(name.into());
        self
    }

    /// Replace a file of the same name instead of saving as `name (1).ext`.
    pub fn overwrite(mut self, on: bool) -> Self {
        self.overwrite = on;
        self
    }

    /// Refuse (413) a download larger than this; default [`DEFAULT_MAX_DOWNLOAD`], and the
    /// announced size when the message has one.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// Called as bytes arrive: monotonic, ending at the total.
    pub fn on_progress(mut self, f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(std::sync::Arc::new(f));
        self
    }
}

/// The longest file name kept, in bytes (file systems allow 255; room for a `(n)` suffix).
const MAX_NAME_BYTES: usize = 200;

/// Windows' reserved device names, refused everywhere so that a file saved here can be
/// copied there.
const RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// A file name safe to create inside a directory: the last path component only, without
/// control or reserved characters, not hidden, not a device name, at most 200 bytes (the
/// extension kept), never empty.
pub fn sanitize_file_name(name: &str) -> String {
    // Only what follows the last separator of either system.
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut s: String = last
        .chars()
        .map(|c| match c {
            c if c.is_control() => '_',
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c => c,
        })
        .collect();
    // Windows drops trailing dots and spaces; leading dots hide a file (or make `..`).
    s = s.trim_end_matches(['.', ' ']).to_owned();
    s = s.trim_start_matches(['.', ' ']).to_owned();
    let stem = s.split('.').next().unwrap_or("").trim_end();
    if RESERVED.iter().any(|r| stem.eq_ignore_ascii_case(r)) {
        s.insert(0, '_');
    }
    if s.len() > MAX_NAME_BYTES {
        s = shorten(&s, MAX_NAME_BYTES);
    }
    if s.is_empty() {
        s = "download".to_owned();
    }
    s
}

/// `name` cut to at most `max` bytes on a character boundary, keeping a short extension.
fn shorten(name: &str, max: usize) -> String {
    let (stem, ext) = match name.rfind('.') {
        Some(i) if name.len() - i <= 16 && i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let mut cut = max.saturating_sub(ext.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ext}", &stem[..cut])
}

/// `name (n).ext`.
fn numbered(name: &str, n: u32) -> String {
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{} ({n}){}", &name[..i], &name[i..]),
        _ => format!("{name} ({n})"),
    }
}

/// The name a URL's last path segment gives (percent-decoded).
fn name_from_url(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let last = u.path_segments()?.next_back()?;
    Some(
        percent_encoding::percent_decode_str(last)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// Removes the temporary file unless the download completed (also when the future is
/// dropped mid-way).
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A hash the message announced that we can check.
enum Check {
    Sha256(sha2::Sha256, Vec<u8>),
    Sha512(sha2::Sha512, Vec<u8>),
}

impl Check {
    fn of(media: &Media) -> Option<Self> {
        let decode = |v: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        };
        media.hashes.iter().find_map(|h| match h.algo.as_str() {
            "sha-256" => Some(Self::Sha256(sha2::Sha256::new(), decode(&h.value)?)),
            "sha-512" => Some(Self::Sha512(sha2::Sha512::new(), decode(&h.value)?)),
            _ => None,
        })
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha256(h, _) => h.update(data),
            Self::Sha512(h, _) => h.update(data),
        }
    }

    fn verify(self) -> Result<(), DownloadProblem> {
        let (ok, algo) = match self {
            Self::Sha256(h, want) => (h.finalize().as_slice() == want, "sha-256"),
            Self::Sha512(h, want) => (h.finalize().as_slice() == want, "sha-512"),
        };
        if ok {
            Ok(())
        } else {
            Err(DownloadProblem::HashMismatch { algo: algo.into() })
        }
    }
}

impl Client {
    /// Downloads a received message's media into `dir` and returns the saved file's path.
    ///
    /// The name is the announced one (or the URL's), sanitised: no path separators, no `..`,
    /// no hidden or reserved names, at most 200 bytes; an existing file gets ` (1)`, ` (2)`…
    /// unless [`DownloadOptions::overwrite`]. The bytes go to a temporary file renamed at the
    /// end; more or fewer than the announced size, or a hash that differs, is
    /// [`RequestError::DownloadRejected`] (502) and leaves no file. Only `https://` (plain
    /// HTTP to loopback when the builder allowed it); redirects are bounded; a stall longer
    /// than the request timeout is 504.
    pub async fn download_media(
        &self,
        media: &Media,
        dir: impl AsRef<Path>,
        options: DownloadOptions,
    ) -> Result<PathBuf, RequestError> {
        self.download(&media.url, Some(media), dir.as_ref(), options)
            .await
    }

    /// Downloads `url` into `dir`, as [`download_media`](Self::download_media) without an
    /// announced size or hash.
    pub async fn download_url(
        &self,
        url: &str,
        dir: impl AsRef<Path>,
        options: DownloadOptions,
    ) -> Result<PathBuf, RequestError> {
        self.download(url, None, dir.as_ref(), options).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn download(
        &self,
        url: &str,
        media: Option<&Media>,
        dir: &Path,
        options: DownloadOptions,
    ) -> Result<PathBuf, RequestError> {
        let meta = tokio::fs::metadata(dir)
            .await
            .map_err(|e| RequestError::file(dir, &e))?;
        if !meta.is_dir() {
            return Err(RequestError::File {
                path: dir.to_owned(),
                kind: std::io::ErrorKind::NotADirectory,
                reason: "not a directory".into(),
            });
        }
        let name = options
            .file_name
            .clone()
            .or_else(|| media.and_then(|m| m.name.clone()))
            .or_else(|| name_from_url(url))
            .unwrap_or_default();
        let name = sanitize_file_name(&name);
        let announced = media.and_then(|m| m.size);
        // The default cap is for downloads nobody announced a size for.
        let limit = options.max_size.unwrap_or(if announced.is_some() {
            u64::MAX
        } else {
            DEFAULT_MAX_DOWNLOAD
        });
        if let Some(size) = announced.filter(|s| *s > limit) {
            return Err(RequestError::TooLarge { size, limit });
        }
        let mut incoming = self.inner.http.client()?.get_stream(url).await?;
        let declared = incoming.content_length();
        if let (Some(a), Some(d)) = (announced, declared)
            && a != d
        {
            return Err(RequestError::DownloadRejected(
                DownloadProblem::SizeMismatch {
                    expected: a,
                    received: d,
                },
            ));
        }
        let expected = announced.or(declared);
        if let Some(size) = expected.filter(|s| *s > limit) {
            return Err(RequestError::TooLarge { size, limit });
        }
        let mut temp = TempFile {
            path: dir.join(format!(".{name}.{}.part", self.inner.new_id())),
            keep: false,
        };
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp.path)
            .await
            .map_err(|e| RequestError::file(&temp.path, &e))?;
        let mut check = media.and_then(Check::of);
        let mut done = 0u64;
        let report = |done: u64| {
            if let Some(p) = &options.progress {
                p(Progress {
                    done,
                    total: expected.unwrap_or(done),
                });
            }
        };
        report(0);
        while let Some(chunk) = incoming.chunk().await? {
            done += chunk.len() as u64;
            if let Some(e) = expected.filter(|e| done > *e) {
                return Err(RequestError::DownloadRejected(
                    DownloadProblem::SizeMismatch {
                        expected: e,
                        received: done,
                    },
                ));
            }
            if done > limit {
                return Err(RequestError::TooLarge { size: done, limit });
            }
            if let Some(c) = &mut check {
                c.update(&chunk);
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| RequestError::file(&temp.path, &e))?;
            report(done);
        }
        if let Some(e) = expected.filter(|e| done != *e) {
            return Err(RequestError::DownloadRejected(
                DownloadProblem::SizeMismatch {
                    expected: e,
                    received: done,
                },
            ));
        }
        if let Some(c) = check {
            c.verify().map_err(RequestError::DownloadRejected)?;
        }
        file.sync_all()
            .await
            .map_err(|e| RequestError::file(&temp.path, &e))?;
        drop(file);
        let target = place(dir, &name, options.overwrite).await?;
        if let Err(e) = tokio::fs::rename(&temp.path, &target).await {
            if !options.overwrite {
                // The empty file that reserved the name.
                let _ = tokio::fs::remove_file(&target).await;
            }
            return Err(RequestError::file(&target, &e));
        }
        temp.keep = true;
        tracing::debug!(bytes = done, "media downloaded");
        Ok(target)
    }
}

/// The path to save `name` at in `dir`: the name itself when free (or when overwriting),
/// else the first free `name (n).ext`, reserved by creating it (so that two downloads never
/// pick the same one) and then replaced by the rename.
async fn place(dir: &Path, name: &str, overwrite: bool) -> Result<PathBuf, RequestError> {
    let first = dir.join(name);
    if overwrite {
        return Ok(first);
    }
    for n in 0..10_000u32 {
        let path = if n == 0 {
            first.clone()
        } else {
            dir.join(numbered(name, n))
        };
        match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
        {
            Ok(_) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(RequestError::file(&path, &e)),
        }
    }
    Err(RequestError::File {
        path: first,
        kind: std::io::ErrorKind::AlreadyExists,
        reason: "no free name".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_plain_file_names() {
        let cases = [
            ("../../etc/passwd", "passwd"),
            ("/abs/x", "x"),
            ("..\\..\\windows\\win.ini", "win.ini"),
            ("CON", "_CON"),
            ("con.txt", "_con.txt"),
            ("", "download"),
            ("..", "download"),
            (".bashrc", "bashrc"),
            ("a\u{0}b\nc.txt", "a_b_c.txt"),
            ("what?.pdf", "what_.pdf"),
            ("report. ", "report"),
            ("photo.jpg", "photo.jpg"),
            ("日本語.txt", "日本語.txt"),
        ];
        for (given, want) in cases {
            assert_eq!(sanitize_file_name(given), want, "{given:?}");
        }
        let long = format!("{}.pdf", "é".repeat(150));
        let s = sanitize_file_name(&long);
        assert!(s.len() <= MAX_NAME_BYTES && s.ends_with(".pdf"), "{s}");
        assert_eq!(numbered("a.tar.gz", 2), "a.tar (2).gz");
        assert_eq!(numbered("README", 1), "README (1)");
        assert_eq!(
            name_from_url("https://h/x/y/my%20file.png?q=1").as_deref(),
            Some("my file.png")
        );
    }
}
