//! Media messages (the seed's image, audio, video and document messages, and its media
//! metadata message): the file is checked (type by extension and content, size against the
//! upload service's limit), uploaded with XEP-0363 (a slot, then an HTTP PUT streamed from
//! disk), and announced in one message whose body is the URL, with XEP-0066 OOB and
//! XEP-0446/0447 file metadata (name, type, size, SHA-256, duration, dimensions, thumbnail,
//! caption). The same calls send to a group or to a user.
//!
//! A cancelled upload (its future dropped) or a failed one sends no message.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use groupchat_protocol::codec::xep::media::{Hash, Media, Thumbnail};
use groupchat_protocol::codec::xep::upload;
use groupchat_protocol::codec::{Message, MessageType};
use groupchat_protocol::jid::Jid;
use serde::Serialize;
use sha2::Digest as _;
use tokio::io::AsyncReadExt as _;

use crate::client::{Client, Inner};
use crate::error::RequestError;
use crate::groups::SentMessage;
use crate::to_jid::ToJid;

/// What a media message holds, as the seed names it (`file` is a document).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MediaKind {
    /// png, jpg, jpeg, gif, svg.
    Image,
    /// mp3, mpeg (MPEG audio), wav.
    Audio,
    /// mp4.
    Video,
    /// pdf, doc, docx, xls, xlsx, csv, ppt, pptx, txt (the seed's `file` type).
    #[serde(rename = "file")]
    Document,
}

impl MediaKind {
    /// The seed's name: `image`, `audio`, `video` or `file`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Document => "file",
        }
    }

    /// The kind of a received media type (`image/png` → image, ...; anything else is a
    /// document).
    pub fn of_media_type(media_type: &str) -> Self {
        match media_type.split('/').next() {
            Some("image") => Self::Image,
            Some("audio") => Self::Audio,
            Some("video") => Self::Video,
            _ => Self::Document,
        }
    }

    fn extensions(self) -> impl Iterator<Item = &'static str> {
        TYPES
            .iter()
            .filter(move |t| t.kind == self)
            .map(|t| t.extension)
    }
}

impl std::str::FromStr for MediaKind {
    type Err = RequestError;

    /// The seed's `MSG_TYPE`: `image`, `video`, `audio` or `file` (also `document`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "image" => Ok(Self::Image),
            "audio" => Ok(Self::Audio),
            "video" => Ok(Self::Video),
            "file" | "document" => Ok(Self::Document),
            other => Err(RequestError::InvalidMedia(MediaProblem::UnknownKind(
                other.to_owned(),
            ))),
        }
    }
}

impl std::fmt::Display for MediaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a media file or its description was refused (400); nothing was uploaded or sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaProblem {
    /// The extension is not one the seed lists for the kind.
    #[error("{kind} files must be {allowed}, not {extension:?}")]
    UnsupportedType {
        /// The kind asked for.
        kind: MediaKind,
        /// The file's extension (lower case; empty when it has none).
        extension: String,
        /// The extensions accepted.
        allowed: String,
    },
    /// The content is not what the extension says (a PNG named `.pdf`).
    #[error("the content of {name:?} is not a {extension} file")]
    ContentMismatch {
        /// The file name.
        name: String,
        /// The extension it claims.
        extension: String,
    },
    /// The file is empty.
    #[error("{0:?} is empty")]
    Empty(String),
    /// A required field is missing (the seed's media metadata message).
    #[error("{field} is required for {kind} messages")]
    MissingField {
        /// The field, in the seed's words (`duration`, `thumbImg`, `fileName`, ...).
        field: &'static str,
        /// The message kind.
        kind: MediaKind,
    },
    /// A duration that is not `mm:ss` (or `h:mm:ss`).
    #[error("duration {0:?} is not mm:ss")]
    InvalidDuration(String),
    /// A thumbnail that is not a base64 PNG, JPEG or GIF of at most
    /// [`MAX_THUMBNAIL_BYTES`].
    #[error("invalid thumbnail: {0}")]
    InvalidThumbnail(&'static str),
    /// A file name that cannot be offered (empty, a path, control characters).
    #[error("invalid file name {0:?}")]
    InvalidFileName(String),
    /// A URL that is not `https://` (or `http://`).
    #[error("invalid file URL {0:?}")]
    InvalidUrl(String),
    /// A message kind the seed does not have.
    #[error("unknown message type {0:?} (image, video, audio or file)")]
    UnknownKind(String),
    /// A caption or message id XML cannot carry.
    #[error("{0} contains a character XML cannot carry")]
    InvalidText(&'static str),
}

fn invalid(p: MediaProblem) -> RequestError {
    RequestError::InvalidMedia(p)
}

/// A duration as the seed writes it, `mm:ss` (minutes may exceed 59; `h:mm:ss` is read
/// too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MediaDuration(Duration);

impl MediaDuration {
    /// A duration.
    pub fn new(d: Duration) -> Self {
        Self(d)
    }

    /// As a [`Duration`].
    pub fn as_duration(self) -> Duration {
        self.0
    }

    /// Milliseconds (XEP-0446 `length`).
    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }
}

impl std::str::FromStr for MediaDuration {
    type Err = RequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || invalid(MediaProblem::InvalidDuration(s.to_owned()));
        let parts: Vec<&str> = s.trim().split(':').collect();
        let num = |p: &str| -> Result<u64, RequestError> {
            if p.is_empty() || p.len() > 6 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        let secs = match parts.as_slice() {
            [m, s] => {
                let (m, s) = (num(m)?, num(s)?);
                if s > 59 {
                    return Err(bad());
                }
                m * 60 + s
            }
            [h, m, s] => {
                let (h, m, s) = (num(h)?, num(m)?, num(s)?);
                if m > 59 || s > 59 {
                    return Err(bad());
                }
                h * 3600 + m * 60 + s
            }
            _ => return Err(bad()),
        };
        Ok(Self(Duration::from_secs(secs)))
    }
}

impl std::fmt::Display for MediaDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0.as_secs();
        write!(f, "{:02}:{:02}", s / 60, s % 60)
    }
}

/// How far a transfer is: bytes done of the total.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Bytes sent or received so far.
    pub done: u64,
    /// The file's size (for a download whose size nobody announced, the bytes so far).
    pub total: u64,
}

/// Called with each step of a transfer, from the task running it; keep it quick (forward
/// to a channel for a `Stream`).
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// A file to send: a path (streamed from disk) or bytes with a file name.
#[derive(Clone)]
pub struct MediaFile {
    name: String,
    source: Source,
}

#[derive(Clone)]
enum Source {
    Path(PathBuf),
    Bytes(Bytes),
}

impl std::fmt::Debug for MediaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("MediaFile");
        d.field("name", &self.name);
        match &self.source {
            Source::Path(p) => d.field("path", p),
            Source::Bytes(b) => d.field("len", &b.len()),
        };
        d.finish()
    }
}

impl MediaFile {
    /// The file at `path`; it is offered under its own name.
    pub fn open(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self {
            name,
            source: Source::Path(path),
        }
    }

    /// `data`, offered as `name` (its extension gives the type).
    pub fn from_bytes(name: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Self {
            name: name.into(),
            source: Source::Bytes(data.into()),
        }
    }

    /// The name it is offered under.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn size(&self) -> Result<u64, RequestError> {
        match &self.source {
            Source::Path(p) => {
                let meta = tokio::fs::metadata(p)
                    .await
                    .map_err(|e| RequestError::file(p, &e))?;
                if !meta.is_file() {
                    return Err(RequestError::File {
                        path: p.clone(),
                        kind: std::io::ErrorKind::InvalidInput,
                        reason: "not a regular file".into(),
                    });
                }
                Ok(meta.len())
            }
            Source::Bytes(b) => Ok(b.len() as u64),
        }
    }

    /// The first [`SNIFF_BYTES`] (or fewer).
    async fn head(&self) -> Result<Vec<u8>, RequestError> {
        match &self.source {
            Source::Path(p) => {
                let file = tokio::fs::File::open(p)
                    .await
                    .map_err(|e| RequestError::file(p, &e))?;
                let mut head = Vec::with_capacity(SNIFF_BYTES);
                file.take(SNIFF_BYTES as u64)
                    .read_to_end(&mut head)
                    .await
                    .map_err(|e| RequestError::file(p, &e))?;
                Ok(head)
            }
            Source::Bytes(b) => Ok(b[..b.len().min(SNIFF_BYTES)].to_vec()),
        }
    }
}

/// The optional parts of a media message (the seed's `FILE_OPTIONS`).
#[derive(Clone, Default)]
pub struct MediaOptions {
    caption: Option<String>,
    duration: Option<MediaDuration>,
    thumbnail: Option<String>,
    message_id: Option<String>,
    progress: Option<ProgressFn>,
}

impl std::fmt::Debug for MediaOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaOptions")
            .field("caption", &self.caption)
            .field("duration", &self.duration)
            .field("thumbnail", &self.thumbnail.as_ref().map(String::len))
            .field("message_id", &self.message_id)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl MediaOptions {
    /// A caption shown with the media.
    pub fn caption(mut self, caption: impl Into<String>) -> Self {
        self.caption = Some(caption.into());
        self
    }

    /// The length of an audio or video file.
    pub fn duration(mut self, d: MediaDuration) -> Self {
        self.duration = Some(d);
        self
    }

    /// A thumbnail, base64 (PNG, JPEG or GIF, at most [`MAX_THUMBNAIL_BYTES`] decoded).
    /// PNG, JPEG and GIF images get one made by the SDK when none is given.
    pub fn thumbnail(mut self, base64: impl Into<String>) -> Self {
        self.thumbnail = Some(base64.into());
        self
    }

    /// The message's id (XEP-0359 origin-id) instead of a generated one.
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// Called as the upload goes: monotonic, ending at the file's size.
    pub fn on_progress(mut self, f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }
}

/// Media uploaded elsewhere, announced in a message (the seed's media metadata message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaMetadata {
    /// image, video, audio or file.
    pub kind: MediaKind,
    /// The file's name.
    pub file_name: String,
    /// Where to download it.
    pub file_url: String,
    /// Its size in bytes.
    pub file_size: u64,
    /// Required for audio and video.
    pub duration: Option<MediaDuration>,
    /// Base64; required for video.
    pub thumbnail: Option<String>,
    /// Optional caption.
    pub caption: Option<String>,
}

/// A sent media message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SentMedia {
    /// Our id (the XEP-0359 origin-id) and, in a group, the room's archive id.
    #[serde(flatten)]
    pub message: SentMessage,
    /// What the message announced.
    pub media: Media,
}

/// Bytes read to recognise a file's type.
const SNIFF_BYTES: usize = 64 * 1024;
/// The largest thumbnail carried in a message (decoded): it travels base64 in the stanza,
/// which both servers cap at 256 KiB.
pub const MAX_THUMBNAIL_BYTES: usize = 48 * 1024;
/// Pieces of a file read and sent at a time.
const CHUNK: usize = 64 * 1024;

/// How a type's content is recognised.
#[derive(Clone, Copy, Debug)]
enum Content {
    /// A magic number `infer` knows.
    Magic(fn(&[u8]) -> bool),
    /// An `<svg` root element (SVG is text; no magic number).
    Svg,
    /// An OLE2 compound file (legacy Office: doc, xls, ppt).
    Ole,
    /// UTF-8 text without NUL (csv, txt).
    Text,
}

#[derive(Debug)]
struct FileType {
    kind: MediaKind,
    extension: &'static str,
    media_type: &'static str,
    content: Content,
}

const fn t(
    kind: MediaKind,
    extension: &'static str,
    media_type: &'static str,
    content: Content,
) -> FileType {
    FileType {
        kind,
        extension,
        media_type,
        content,
    }
}

/// The seed's types, and the OOXML ones a user would expect beside doc, xls and ppt.
const TYPES: &[FileType] = {
    use Content::*;
    use MediaKind::*;
    &[
        t(Image, "png", "image/png", Magic(infer::image::is_png)),
        t(Image, "jpg", "image/jpeg", Magic(infer::image::is_jpeg)),
        t(Image, "jpeg", "image/jpeg", Magic(infer::image::is_jpeg)),
        t(Image, "gif", "image/gif", Magic(infer::image::is_gif)),
        t(Image, "svg", "image/svg+xml", Svg),
        t(Audio, "mp3", "audio/mpeg", Magic(infer::audio::is_mp3)),
        t(Audio, "mpeg", "audio/mpeg", Magic(infer::audio::is_mp3)),
        t(Audio, "wav", "audio/wav", Magic(infer::audio::is_wav)),
        t(Video, "mp4", "video/mp4", Magic(infer::video::is_mp4)),
        t(
            Document,
            "pdf",
            "application/pdf",
            Magic(infer::archive::is_pdf),
        ),
        t(Document, "doc", "application/msword", Ole),
        t(Document, "xls", "application/vnd.ms-excel", Ole),
        t(Document, "ppt", "application/vnd.ms-powerpoint", Ole),
        t(
            Document,
            "docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Magic(infer::doc::is_docx),
        ),
        t(
            Document,
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Magic(infer::doc::is_xlsx),
        ),
        t(
            Document,
            "pptx",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            Magic(infer::doc::is_pptx),
        ),
        t(Document, "csv", "text/csv", Text),
        t(Document, "txt", "text/plain", Text),
    ]
};

impl Content {
    fn matches(self, head: &[u8]) -> bool {
        match self {
            Self::Magic(f) => f(head),
            Self::Svg => is_svg(head),
            Self::Ole => head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]),
            Self::Text => !head.contains(&0) && valid_utf8_prefix(head).is_some(),
        }
    }
}

/// `head` as text, tolerating a character cut at its end.
fn valid_utf8_prefix(head: &[u8]) -> Option<&str> {
    match std::str::from_utf8(head) {
        Ok(h) => Some(h),
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok(),
        Err(_) => None,
    }
}

/// Whether `head` is an SVG document: text whose first element is `<svg` (after an XML
/// declaration, comments and a doctype).
pub(crate) fn is_svg(head: &[u8]) -> bool {
    let Some(text) = valid_utf8_prefix(&head[..head.len().min(4096)]) else {
        return false;
    };
    let mut rest = text.trim_start_matches('\u{feff}').trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("<?") {
            let Some(end) = r.find("?>") else {
                return false;
            };
            rest = r[end + 2..].trim_start();
        } else if let Some(r) = rest.strip_prefix("<!--") {
            let Some(end) = r.find("-->") else {
                return false;
            };
            rest = r[end + 3..].trim_start();
        } else if let Some(r) = rest.strip_prefix("<!") {
            let Some(end) = r.find('>') else {
                return false;
            };
            rest = r[end + 1..].trim_start();
        } else {
            return rest
                .strip_prefix("<svg")
                .is_some_and(|r| r.starts_with(|c: char| c.is_whitespace() || c == '>'));
        }
    }
}

/// The image type of `data` among those a group image may be (PNG, JPEG, GIF, SVG).
pub(crate) fn image_type(data: &[u8]) -> Option<&'static str> {
    TYPES
        .iter()
        .filter(|t| t.kind == MediaKind::Image)
        .find(|t| t.content.matches(data))
        .map(|t| t.media_type)
}

/// The type the seed lists for `kind` under `extension` (lower case).
fn listed(kind: MediaKind, extension: &str) -> Option<&'static FileType> {
    TYPES
        .iter()
        .find(|t| t.kind == kind && t.extension == extension)
}

/// The media type of an image file extension the seed accepts (png, jpg, jpeg, gif, svg).
pub(crate) fn image_type_for_extension(extension: &str) -> Option<&'static str> {
    listed(MediaKind::Image, extension).map(|t| t.media_type)
}

fn extension_of(name: &str) -> String {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default()
}

/// The type of a file offered as `kind`: by its extension, then checked against its first
/// bytes.
fn file_type(kind: MediaKind, name: &str, head: &[u8]) -> Result<&'static FileType, RequestError> {
    let extension = extension_of(name);
    let Some(ty) = listed(kind, &extension) else {
        return Err(invalid(MediaProblem::UnsupportedType {
            kind,
            extension,
            allowed: kind.extensions().collect::<Vec<_>>().join(", "),
        }));
    };
    if !ty.content.matches(head) {
        return Err(invalid(MediaProblem::ContentMismatch {
            name: name.to_owned(),
            extension,
        }));
    }
    Ok(ty)
}

/// A file name we may offer: no path, no control characters, not empty.
fn check_name(name: &str) -> Result<(), RequestError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(invalid(MediaProblem::InvalidFileName(name.to_owned())));
    }
    Ok(())
}

fn check_text(what: &'static str, text: &str) -> Result<(), RequestError> {
    match groupchat_protocol::codec::invalid_xml_char(text) {
        Some(_) => Err(invalid(MediaProblem::InvalidText(what))),
        None => Ok(()),
    }
}

/// A base64 thumbnail as a XEP-0264 thumbnail (a `data:` URI).
fn thumbnail_of(base64: &str) -> Result<Thumbnail, RequestError> {
    let bad = |why| invalid(MediaProblem::InvalidThumbnail(why));
    // Tolerate a data URI given whole.
    let raw = base64
        .trim()
        .split_once(";base64,")
        .map_or(base64.trim(), |(_, b)| b);
    if raw.len() > MAX_THUMBNAIL_BYTES.div_ceil(3) * 4 + 4 {
        return Err(bad("larger than 48 KiB"));
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|_| bad("not base64"))?;
    if data.len() > MAX_THUMBNAIL_BYTES {
        return Err(bad("larger than 48 KiB"));
    }
    let Some(media_type @ ("image/png" | "image/jpeg" | "image/gif")) = image_type(&data) else {
        return Err(bad("not a PNG, JPEG or GIF image"));
    };
    let (width, height) = dimensions(&data).unzip();
    let mut t = Thumbnail::default();
    t.uri = format!("data:{media_type};base64,{raw}");
    t.media_type = Some(media_type.to_owned());
    (t.width, t.height) = (width, height);
    Ok(t)
}

/// An image's size in pixels from its header (PNG, JPEG, GIF).
fn dimensions(head: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(std::io::Cursor::new(head))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

/// Images up to this size get a thumbnail made by the SDK (decoding needs the whole image
/// in memory).
const THUMBNAIL_SOURCE_LIMIT: u64 = 16 * 1024 * 1024;
/// The made thumbnail's longer side.
const THUMBNAIL_SIDE: u32 = 128;

/// A small JPEG of a PNG, JPEG or GIF image, or `None` when it cannot be made cheaply.
fn make_thumbnail(data: &[u8]) -> Option<Thumbnail> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(data))
        .with_guessed_format()
        .ok()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(12_000);
    limits.max_image_height = Some(12_000);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let image = reader.decode().ok()?;
    // `thumbnail` fits the box, which would enlarge a small image.
    let small = if image.width().max(image.height()) > THUMBNAIL_SIDE {
        image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE)
    } else {
        image
    }
    .into_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 70)
        .encode_image(&small)
        .ok()?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&out);
    let mut t = Thumbnail::default();
    t.uri = format!("data:image/jpeg;base64,{b64}");
    t.media_type = Some("image/jpeg".into());
    (t.width, t.height) = (Some(small.width()), Some(small.height()));
    Some(t)
}

impl Client {
    /// Sends an image (png, jpg, jpeg, gif, svg): see [`send_media`](Self::send_media).
    pub async fn send_image(
        &self,
        to: impl ToJid,
        file: MediaFile,
        options: MediaOptions,
    ) -> Result<SentMedia, RequestError> {
        self.send_media(to, MediaKind::Image, file, options).await
    }

    /// Sends an audio file (mp3, mpeg, wav): see [`send_media`](Self::send_media).
    pub async fn send_audio(
        &self,
        to: impl ToJid,
        file: MediaFile,
        options: MediaOptions,
    ) -> Result<SentMedia, RequestError> {
        self.send_media(to, MediaKind::Audio, file, options).await
    }

    /// Sends a video (mp4): see [`send_media`](Self::send_media).
    pub async fn send_video(
        &self,
        to: impl ToJid,
        file: MediaFile,
        options: MediaOptions,
    ) -> Result<SentMedia, RequestError> {
        self.send_media(to, MediaKind::Video, file, options).await
    }

    /// Sends a document (pdf, doc, docx, xls, xlsx, csv, ppt, pptx, txt): see
    /// [`send_media`](Self::send_media).
    pub async fn send_document(
        &self,
        to: impl ToJid,
        file: MediaFile,
        options: MediaOptions,
    ) -> Result<SentMedia, RequestError> {
        self.send_media(to, MediaKind::Document, file, options)
            .await
    }

    /// Uploads `file` and sends it to a group or a user as one media message.
    ///
    /// Before anything is uploaded: the extension must be one the seed lists for `kind` and
    /// the content must match it (400, [`RequestError::InvalidMedia`]); the size must be
    /// within the upload service's limit (413); the server must have an upload service (403).
    /// The file is then streamed to the XEP-0363 slot (never read whole into memory),
    /// reporting progress, and the message carries its URL, name, type, size, SHA-256,
    /// caption, duration, image dimensions and thumbnail (made from PNG, JPEG and GIF images
    /// when none is given). Dropping the future cancels the upload; a cancelled or failed
    /// upload sends no message. The message is confirmed as for
    /// [`send_text`](Self::send_text).
    #[tracing::instrument(level = "debug", skip_all, fields(to = tracing::field::Empty, kind = %kind))]
    pub async fn send_media(
        &self,
        to: impl ToJid,
        kind: MediaKind,
        file: MediaFile,
        options: MediaOptions,
    ) -> Result<SentMedia, RequestError> {
        let to = to.to_jid()?;
        tracing::Span::current().record("to", tracing::field::display(&to));
        self.check_recipient(&to)?;
        check_name(&file.name)?;
        if let Some(c) = &options.caption {
            check_text("the caption", c)?;
        }
        if let Some(id) = &options.message_id {
            check_text("the message id", id)?;
            if id.is_empty() {
                return Err(invalid(MediaProblem::InvalidText("the message id")));
            }
        }
        let mut thumbnail = options.thumbnail.as_deref().map(thumbnail_of).transpose()?;
        let size = file.size().await?;
        if size == 0 {
            return Err(invalid(MediaProblem::Empty(file.name.clone())));
        }
        let head = file.head().await?;
        let ty = file_type(kind, &file.name, &head)?;
        let (width, height) = if kind == MediaKind::Image {
            dimensions(&head).unzip()
        } else {
            (None, None)
        };
        if thumbnail.is_none() && kind == MediaKind::Image && ty.media_type != "image/svg+xml" {
            thumbnail = self.inner.auto_thumbnail(&file, size).await;
        }
        let progress = options.progress.clone();
        let (url, hash) = self
            .inner
            .upload_file(&file, size, ty.media_type, progress)
            .await?;
        let mut media = Media::default();
        media.url = url;
        media.name = Some(file.name.clone());
        media.media_type = Some(ty.media_type.to_owned());
        media.size = Some(size);
        media.duration_ms = options.duration.map(MediaDuration::as_millis);
        media.width = width;
        media.height = height;
        media.caption = options.caption.clone();
        media.hashes = vec![Hash {
            algo: "sha-256".into(),
            value: base64::engine::general_purpose::STANDARD.encode(hash),
        }];
        media.thumbnail = thumbnail;
        let message = self
            .send_media_message(&to, options.message_id, media.clone())
            .await?;
        Ok(SentMedia { message, media })
    }

    /// Sends media uploaded elsewhere (the seed's media metadata message). 400 naming the
    /// field when the name, URL or size is missing, when an audio or video message has no
    /// duration, or a video no thumbnail.
    #[tracing::instrument(level = "debug", skip_all, fields(to = tracing::field::Empty, kind = %meta.kind))]
    pub async fn send_media_metadata(
        &self,
        to: impl ToJid,
        meta: MediaMetadata,
    ) -> Result<SentMedia, RequestError> {
        let to = to.to_jid()?;
        tracing::Span::current().record("to", tracing::field::display(&to));
        let kind = meta.kind;
        let missing = |field| invalid(MediaProblem::MissingField { field, kind });
        if meta.file_name.trim().is_empty() {
            return Err(missing("fileName"));
        }
        if meta.file_url.trim().is_empty() {
            return Err(missing("fileURL"));
        }
        if meta.file_size == 0 {
            return Err(missing("fileSize"));
        }
        if matches!(kind, MediaKind::Audio | MediaKind::Video) && meta.duration.is_none() {
            return Err(missing("duration"));
        }
        if kind == MediaKind::Video && meta.thumbnail.as_deref().is_none_or(str::is_empty) {
            return Err(missing("thumbImg"));
        }
        check_name(&meta.file_name)?;
        let url = url::Url::parse(&meta.file_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
            .ok_or_else(|| invalid(MediaProblem::InvalidUrl(meta.file_url.clone())))?;
        if let Some(c) = &meta.caption {
            check_text("the caption", c)?;
        }
        let thumbnail = meta.thumbnail.as_deref().map(thumbnail_of).transpose()?;
        // The type from the name when the seed lists it for the kind; else the kind's family.
        let extension = extension_of(&meta.file_name);
        let media_type = listed(kind, &extension)
            .map(|t| t.media_type)
            .unwrap_or(match kind {
                MediaKind::Image => "image/*",
                MediaKind::Audio => "audio/*",
                MediaKind::Video => "video/*",
                MediaKind::Document => "application/octet-stream",
            });
        let mut media = Media::default();
        media.url = url.to_string();
        media.name = Some(meta.file_name);
        media.media_type = Some(media_type.to_owned());
        media.size = Some(meta.file_size);
        media.duration_ms = meta.duration.map(MediaDuration::as_millis);
        media.caption = meta.caption;
        media.thumbnail = thumbnail;
        let message = self.send_media_message(&to, None, media.clone()).await?;
        Ok(SentMedia { message, media })
    }

    /// A group or a user (400 for a server or service JID), checked before any upload.
    fn check_recipient(&self, to: &Jid) -> Result<(), RequestError> {
        if self.is_group(to) || to.node().is_some() {
            Ok(())
        } else {
            Err(RequestError::BadRequest(format!(
                "{to} is neither a group nor a user"
            )))
        }
    }

    async fn send_media_message(
        &self,
        to: &Jid,
        id: Option<String>,
        media: Media,
    ) -> Result<SentMessage, RequestError> {
        self.check_recipient(to)?;
        let id = id.unwrap_or_else(|| self.inner.new_id());
        if self.is_group(to) {
            let m = Message::media(
                to.to_bare().into(),
                MessageType::Groupchat,
                id.clone(),
                media,
            );
            let stanza_id = self.inner.send_to_group(&m).await?;
            Ok(SentMessage { id, stanza_id })
        } else {
            let m = Message::media(to.clone(), MessageType::Chat, id.clone(), media);
            self.inner.send_acknowledged(m.encode(), &id).await?;
            Ok(SentMessage {
                id,
                stanza_id: None,
            })
        }
    }
}

impl Inner {
    /// A thumbnail of an image file small enough to decode, made off the async threads.
    async fn auto_thumbnail(&self, file: &MediaFile, size: u64) -> Option<Thumbnail> {
        if size > THUMBNAIL_SOURCE_LIMIT {
            return None;
        }
        let data = match &file.source {
            Source::Path(p) => Bytes::from(tokio::fs::read(p).await.ok()?),
            Source::Bytes(b) => b.clone(),
        };
        tokio::task::spawn_blocking(move || make_thumbnail(&data))
            .await
            .ok()
            .flatten()
    }

    /// A XEP-0363 slot for `size` bytes of `media_type` named `name`: 403 without an upload
    /// service, 413 above its limit (checked before asking, and as the service answers).
    pub(crate) async fn upload_slot(
        &self,
        name: &str,
        size: u64,
        media_type: &str,
    ) -> Result<upload::Slot, RequestError> {
        let (service, limit) = self.services.borrow().upload.clone().ok_or_else(|| {
            RequestError::FeatureUnavailable(
                "file upload (the server has no upload service)".into(),
            )
        })?;
        if let Some(limit) = limit.filter(|l| size > *l) {
            return Err(RequestError::TooLarge { size, limit });
        }
        let iq = self
            .request(Some(&service), |id| {
                upload::request(&service, id, name, size, media_type)
            })
            .await?;
        match upload::decode_slot(&iq).map_err(|e| RequestError::MalformedAnswer(e.to_string()))? {
            Ok(slot) => Ok(slot),
            Err(upload::SlotRefusal::TooLarge { limit }) => Err(RequestError::TooLarge {
                size,
                limit: limit.unwrap_or(0),
            }),
            Err(upload::SlotRefusal::Refused(e)) => Err(RequestError::from(e)),
            Err(e) => Err(RequestError::MalformedAnswer(format!("{e:?}"))),
        }
    }

    /// Uploads `file` (`size` bytes, checked) to a fresh slot, streaming it, and returns the
    /// URL to share and the SHA-256 of what was sent. The upload fails with 504 when the
    /// web server takes no bytes for the request timeout.
    pub(crate) async fn upload_file(
        &self,
        file: &MediaFile,
        size: u64,
        media_type: &str,
        progress: Option<ProgressFn>,
    ) -> Result<(String, [u8; 32]), RequestError> {
        let slot = self.upload_slot(&file.name, size, media_type).await?;
        let http = self.http.client()?.clone();
        let sent = Arc::new(AtomicU64::new(0));
        let (hash_tx, hash_rx) = tokio::sync::oneshot::channel();
        let body = body_stream(file, size, progress, sent.clone(), hash_tx).await?;
        let put = http.put_stream(&slot.put, &slot.headers, media_type, size, body);
        tokio::pin!(put);
        // The PUT has no overall deadline (a large file takes long); a stall has one.
        let stall = self.request_timeout;
        let mut last = (0, tokio::time::Instant::now());
        let mut tick = tokio::time::interval(
            Duration::from_millis(250)
                .min(stall)
                .max(Duration::from_millis(1)),
        );
        loop {
            tokio::select! {
                r = &mut put => { r?; break; }
                _ = tick.tick() => {
                    let now = sent.load(Ordering::Relaxed);
                    if now != last.0 {
                        last = (now, tokio::time::Instant::now());
                    } else if last.1.elapsed() > stall {
                        return Err(RequestError::Http(groupchat_transport::HttpError::Timeout {
                            url: slot.put.clone(),
                        }));
                    }
                }
            }
        }
        let hash = hash_rx.await.map_err(|_| {
            RequestError::MalformedAnswer("the web server accepted an incomplete upload".into())
        })?;
        Ok((slot.get, hash))
    }
}

/// The file as a stream of pieces for the PUT: exactly `size` bytes (a file that changed
/// size meanwhile fails the upload), hashed and counted as the server takes them; the hash
/// goes to `hash` after the last byte.
async fn body_stream(
    file: &MediaFile,
    size: u64,
    progress: Option<ProgressFn>,
    sent: Arc<AtomicU64>,
    hash: tokio::sync::oneshot::Sender<[u8; 32]>,
) -> Result<impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static, RequestError> {
    enum Reader {
        File(tokio::fs::File, PathBuf),
        Bytes(Bytes),
    }
    let reader = match &file.source {
        Source::Path(p) => Reader::File(
            tokio::fs::File::open(p)
                .await
                .map_err(|e| RequestError::file(p, &e))?,
            p.clone(),
        ),
        Source::Bytes(b) => Reader::Bytes(b.clone()),
    };
    struct State {
        reader: Reader,
        hasher: sha2::Sha256,
        done: u64,
        hash: Option<tokio::sync::oneshot::Sender<[u8; 32]>>,
    }
    let state = State {
        reader,
        hasher: sha2::Sha256::new(),
        done: 0,
        hash: Some(hash),
    };
    let report = move |done: u64| {
        sent.store(done, Ordering::Relaxed);
        if let Some(p) = &progress {
            p(Progress { done, total: size });
        }
    };
    report(0);
    Ok(futures::stream::try_unfold(state, move |mut s| {
        let report = report.clone();
        async move {
            if s.done == size {
                return Ok(None);
            }
            let want = usize::try_from(size - s.done).unwrap_or(CHUNK).min(CHUNK);
            let chunk = match &mut s.reader {
                Reader::Bytes(b) => b.split_to(want.min(b.len())),
                Reader::File(f, path) => {
                    let mut buf = vec![0; want];
                    let n = f.read(&mut buf).await.map_err(|e| {
                        std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                    })?;
                    buf.truncate(n);
                    Bytes::from(buf)
                }
            };
            if chunk.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file got shorter during the upload",
                ));
            }
            s.hasher.update(&chunk);
            s.done += chunk.len() as u64;
            // The HTTP client stops asking once the declared length is sent: the hash is
            // complete with the last piece.
            if s.done == size
                && let Some(tx) = s.hash.take()
            {
                let _ = tx.send(s.hasher.finalize_reset().into());
            }
            report(s.done);
            Ok(Some((chunk, s)))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png() -> Vec<u8> {
        let mut out = Vec::new();
        image::RgbImage::from_pixel(40, 30, image::Rgb([200, 10, 10]))
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn a_type_is_accepted_only_when_extension_and_content_agree() {
        let png = png();
        assert!(file_type(MediaKind::Image, "cat.PNG", &png).is_ok());
        let e = file_type(MediaKind::Document, "cat.pdf", &png).unwrap_err();
        assert!(
            matches!(
                e,
                RequestError::InvalidMedia(MediaProblem::ContentMismatch { .. })
            ),
            "{e:?}"
        );
        assert_eq!(e.status_code(), 400);
        let e = file_type(MediaKind::Image, "cat.bmp", &png).unwrap_err();
        assert!(e.to_string().contains("png, jpg, jpeg, gif, svg"), "{e}");
        assert!(file_type(MediaKind::Audio, "cat.png", &png).is_err());
        assert!(file_type(MediaKind::Document, "notes.txt", "héllo\n".as_bytes()).is_ok());
        assert!(file_type(MediaKind::Document, "notes.txt", &png).is_err());
        let svg = b"<?xml version='1.0'?>\n<!-- x -->\n<svg xmlns='http://www.w3.org/2000/svg'/>";
        assert!(file_type(MediaKind::Image, "a.svg", svg).is_ok());
        assert!(file_type(MediaKind::Image, "a.svg", b"<html><svg/></html>").is_err());
        assert!(file_type(MediaKind::Document, "a.pdf", b"%PDF-1.7\n...").is_ok());
    }

    #[test]
    fn durations_are_minutes_and_seconds() {
        let d: MediaDuration = "03:25".parse().unwrap();
        assert_eq!(d.as_millis(), 205_000);
        assert_eq!(d.to_string(), "03:25");
        assert_eq!(
            "1:02:03".parse::<MediaDuration>().unwrap().as_millis(),
            3_723_000
        );
        for bad in ["", "3", "3:60", "a:bb", "-1:00", "1:2:3:4", " : "] {
            assert!(bad.parse::<MediaDuration>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn thumbnails_are_small_images_and_made_for_pictures() {
        let png = png();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
        let t = thumbnail_of(&b64).unwrap();
        assert!(t.uri.starts_with("data:image/png;base64,"));
        assert_eq!((t.width, t.height), (Some(40), Some(30)));
        assert!(thumbnail_of("not base64!").is_err());
        let text = base64::engine::general_purpose::STANDARD.encode("hello");
        assert!(thumbnail_of(&text).is_err());
        let big = base64::engine::general_purpose::STANDARD.encode(vec![0u8; 60_000]);
        assert!(thumbnail_of(&big).is_err());
        let made = make_thumbnail(&png).unwrap();
        assert!(made.uri.starts_with("data:image/jpeg;base64,"));
        assert_eq!(made.width, Some(40));
        assert_eq!(dimensions(&png), Some((40, 30)));
    }
}
