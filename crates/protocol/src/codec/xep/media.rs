//! XEP-0066: Out of Band Data, XEP-0446: File Metadata Element, XEP-0447: Stateless File
//! Sharing — a media message's URL and what is known about the file.

/// XEP-0066 `jabber:x:oob`
pub const OOB_NS: &str = "jabber:x:oob";
/// XEP-0446 `urn:xmpp:file:metadata:0`
pub const FILE_NS: &str = "urn:xmpp:file:metadata:0";
/// XEP-0447 `urn:xmpp:sfs:0`
pub const SFS_NS: &str = "urn:xmpp:sfs:0";
/// XEP-0103 URL address information `http://jabber.org/protocol/url-data`
pub const URL_DATA_NS: &str = "http://jabber.org/protocol/url-data";
/// XEP-0300 `urn:xmpp:hashes:2`
pub const HASHES_NS: &str = "urn:xmpp:hashes:2";
/// XEP-0264 `urn:xmpp:thumbs:1`
pub const THUMBS_NS: &str = "urn:xmpp:thumbs:1";

/// A thumbnail (XEP-0264), usually a small `data:` URI.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Thumbnail {
    /// Where the thumbnail is (often `data:image/...;base64,...`).
    pub uri: String,
    /// Its media type.
    pub media_type: Option<String>,
    /// Width in pixels.
    pub width: Option<u32>,
    /// Height in pixels.
    pub height: Option<u32>,
}

/// A XEP-0300 hash of the file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hash {
    /// The algorithm, e.g. `sha-256`.
    pub algo: String,
    /// The base64 value.
    pub value: String,
}

/// A media attachment: the download URL plus the file's metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Media {
    /// Where to download it (XEP-0066 URL, or the XEP-0447 url-data source).
    pub url: String,
    /// File name.
    pub name: Option<String>,
    /// MIME type, e.g. `image/jpeg`.
    pub media_type: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// Duration in milliseconds, for audio and video (XEP-0446 `length`).
    pub duration_ms: Option<u64>,
    /// Width in pixels.
    pub width: Option<u32>,
    /// Height in pixels.
    pub height: Option<u32>,
    /// Caption (XEP-0446 `desc`, or the XEP-0066 `desc`).
    pub caption: Option<String>,
    /// Hashes of the content.
    pub hashes: Vec<Hash>,
    /// A thumbnail.
    pub thumbnail: Option<Thumbnail>,
}
