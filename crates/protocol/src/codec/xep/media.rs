//! XEP-0066: Out of Band Data, XEP-0446: File Metadata Element, XEP-0447: Stateless File
//! Sharing — a media message's URL and what is known about the file.

use crate::codec::reader::{Ev, Start, XmlReader};
use crate::codec::write::Writer;
use crate::codec::{DecodeError, eof, number};

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

/// Writes a media message's OOB, file metadata and stateless file sharing payloads.
pub(crate) fn write_media(w: &mut Writer, m: &Media) {
    w.open_ns("x", OOB_NS);
    w.close_start();
    w.text_element("url", &m.url);
    w.end("x");
    w.open_ns("file-sharing", SFS_NS);
    w.close_start();
    w.open_ns("file", FILE_NS);
    w.close_start();
    if let Some(t) = &m.media_type {
        w.text_element("media-type", t);
    }
    if let Some(n) = &m.name {
        w.text_element("name", n);
    }
    if let Some(s) = m.size {
        w.text_element("size", &s.to_string());
    }
    if let Some(d) = m.duration_ms {
        w.text_element("length", &d.to_string());
    }
    if let Some(x) = m.width {
        w.text_element("width", &x.to_string());
    }
    if let Some(x) = m.height {
        w.text_element("height", &x.to_string());
    }
    if let Some(c) = &m.caption {
        w.text_element("desc", c);
    }
    for h in &m.hashes {
        w.open_ns("hash", HASHES_NS);
        w.attr("algo", &h.algo);
        w.close_start();
        w.text(&h.value);
        w.end("hash");
    }
    if let Some(t) = &m.thumbnail {
        w.open_ns("thumbnail", THUMBS_NS);
        w.attr("uri", &t.uri);
        w.attr_opt("media-type", t.media_type.as_deref());
        if let Some(x) = t.width {
            w.attr("width", &x.to_string());
        }
        if let Some(x) = t.height {
            w.attr("height", &x.to_string());
        }
        w.close_empty();
    }
    w.end("file");
    w.open("sources");
    w.close_start();
    w.open_ns("url-data", URL_DATA_NS);
    w.attr("target", &m.url);
    w.close_empty();
    w.end("sources");
    w.end("file-sharing");
}

/// Decodes `<x xmlns='jabber:x:oob'/>` (its start already read) into `m`.
pub(crate) fn decode_oob(
    r: &mut XmlReader<'_>,
    _s: &Start<'_>,
    m: &mut Media,
) -> Result<(), DecodeError> {
    loop {
        match r.next()? {
            Ev::Start(c) if c.name == "url" && c.ns == OOB_NS => {
                m.url = r.text(&c)?.trim().to_owned()
            }
            Ev::Start(c) if c.name == "desc" && c.ns == OOB_NS => {
                let d = r.text(&c)?;
                if m.caption.is_none() && !d.is_empty() {
                    m.caption = Some(d.into_owned());
                }
            }
            Ev::Start(c) => r.skip(&c)?,
            Ev::Text(_) => {}
            Ev::End => return Ok(()),
            Ev::Eof => return Err(eof()),
        }
    }
}

/// Decodes `<file-sharing/>` (XEP-0447, its start already read) into `m`.
pub(crate) fn decode_sfs(r: &mut XmlReader<'_>, m: &mut Media) -> Result<(), DecodeError> {
    loop {
        match r.next()? {
            Ev::Start(c) if c.is("file", FILE_NS) => decode_file(r, m)?,
            Ev::Start(c) if c.is("sources", SFS_NS) => loop {
                match r.next()? {
                    Ev::Start(u) if u.is("url-data", URL_DATA_NS) => {
                        if m.url.is_empty() {
                            m.url = u.req("target")?.into_owned();
                        }
                        r.skip(&u)?;
                    }
                    Ev::Start(u) => r.skip(&u)?,
                    Ev::Text(_) => {}
                    Ev::End => break,
                    Ev::Eof => return Err(eof()),
                }
            },
            Ev::Start(c) => r.skip(&c)?,
            Ev::Text(_) => {}
            Ev::End => return Ok(()),
            Ev::Eof => return Err(eof()),
        }
    }
}

/// Decodes `<file/>` (XEP-0446, its start already read) into `m`.
pub(crate) fn decode_file(r: &mut XmlReader<'_>, m: &mut Media) -> Result<(), DecodeError> {
    loop {
        let c = match r.next()? {
            Ev::Start(c) => c,
            Ev::Text(_) => continue,
            Ev::End => return Ok(()),
            Ev::Eof => return Err(eof()),
        };
        match (c.ns.as_ref(), c.name) {
            (FILE_NS, "media-type") => m.media_type = Some(r.text(&c)?.into_owned()),
            (FILE_NS, "name") => m.name = Some(r.text(&c)?.into_owned()),
            (FILE_NS, "size") => m.size = Some(number("file size", &r.text(&c)?)?),
            (FILE_NS, "length") => m.duration_ms = Some(number("media length", &r.text(&c)?)?),
            (FILE_NS, "width") => m.width = Some(number("width", &r.text(&c)?)?),
            (FILE_NS, "height") => m.height = Some(number("height", &r.text(&c)?)?),
            (FILE_NS, "desc") => m.caption = Some(r.text(&c)?.into_owned()),
            (HASHES_NS, "hash") => {
                let algo = c.req("algo")?.into_owned();
                let value = r.text(&c)?.trim().to_owned();
                m.hashes.push(Hash { algo, value });
            }
            (THUMBS_NS, "thumbnail") => {
                let num = |n: &'static str| -> Result<Option<u32>, DecodeError> {
                    c.attr(n)?.map(|v| number("thumbnail size", &v)).transpose()
                };
                m.thumbnail = Some(Thumbnail {
                    uri: c.req("uri")?.into_owned(),
                    media_type: c.attr_string("media-type")?,
                    width: num("width")?,
                    height: num("height")?,
                });
                r.skip(&c)?;
            }
            _ => r.skip(&c)?,
        }
    }
}
