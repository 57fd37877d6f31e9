//! The group types the calls take and return.

use std::path::Path;

use base64::Engine as _;
use groupchat_protocol::jid::BareJid;
use serde::Serialize;

use crate::error::RequestError;

/// A group in the user's list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Group {
    /// The group's JID (`<id>@<group service>`).
    pub jid: BareJid,
    /// Its name, as last known.
    pub name: Option<String>,
    /// Our role in it, as the room last said (`None` while we are not in its room).
    pub role: Option<ParticipantRole>,
    /// We are in its room now (messages arrive live).
    pub joined: bool,
}

/// A group's profile: name and image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct GroupProfile {
    /// The group's JID.
    pub jid: BareJid,
    /// Its name.
    pub name: Option<String>,
    /// Its description, if set.
    pub description: Option<String>,
    /// Its image, if set.
    pub image: Option<GroupImage>,
}

/// A group image: bytes kept by the server (the room's vCard photo, XEP-0486), or a link
/// to an image on the web.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum GroupImage {
    /// Image bytes.
    Data {
        /// `image/png`, `image/jpeg`, `image/gif` or `image/svg+xml`.
        media_type: String,
        /// The bytes (base64 in JSON).
        #[serde(serialize_with = "as_base64")]
        data: Vec<u8>,
    },
    /// An image URL (`https://` or `http://`).
    Url {
        /// The URL.
        url: String,
    },
}

impl std::fmt::Debug for GroupImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Data { media_type, data } => f
                .debug_struct("Data")
                .field("media_type", media_type)
                .field("len", &data.len())
                .finish(),
            Self::Url { url } => f.debug_struct("Url").field("url", url).finish(),
        }
    }
}

fn as_base64<S: serde::Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(data))
}

/// The largest image kept in a group's vCard. Both servers refuse stanzas above 256 KiB,
/// and the image travels base64-encoded (4/3 larger) in one stanza.
pub const MAX_IMAGE_BYTES: u64 = 128 * 1024;

impl GroupImage {
    /// An image from bytes; the type comes from the content (PNG, JPEG, GIF or SVG), and
    /// anything else is refused with 400.
    pub fn from_bytes(data: Vec<u8>) -> Result<Self, RequestError> {
        let media_type = crate::media::image_type(&data).ok_or_else(|| {
            RequestError::BadRequest("the image is not a PNG, JPEG, GIF or SVG file".into())
        })?;
        let size = data.len() as u64;
        if size > MAX_IMAGE_BYTES {
            return Err(RequestError::TooLarge {
                size,
                limit: MAX_IMAGE_BYTES,
            });
        }
        Ok(Self::Data {
            media_type: media_type.to_owned(),
            data,
        })
    }

    /// An image read from a file: its extension must be png, jpg, jpeg, gif or svg and match
    /// its content (400 otherwise); at most [`MAX_IMAGE_BYTES`] (413).
    pub async fn from_file(path: impl AsRef<Path>) -> Result<Self, RequestError> {
        let path = path.as_ref();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let Some(declared) = crate::media::image_type_for_extension(&ext) else {
            return Err(RequestError::BadRequest(format!(
                "{}: an image must be png, jpg, jpeg, gif or svg",
                path.display()
            )));
        };
        let meta = tokio::fs::metadata(path).await.map_err(|e| {
            RequestError::BadRequest(format!("cannot read {}: {e}", path.display()))
        })?;
        if meta.len() > MAX_IMAGE_BYTES {
            return Err(RequestError::TooLarge {
                size: meta.len(),
                limit: MAX_IMAGE_BYTES,
            });
        }
        let data = tokio::fs::read(path).await.map_err(|e| {
            RequestError::BadRequest(format!("cannot read {}: {e}", path.display()))
        })?;
        let image = Self::from_bytes(data)?;
        match &image {
            Self::Data { media_type, .. } if media_type == declared => Ok(image),
            _ => Err(RequestError::BadRequest(format!(
                "{}: the content is not a {ext} image",
                path.display()
            ))),
        }
    }

    /// An image on the web; only `https://` and `http://` URLs are accepted (400).
    pub fn from_url(url: impl Into<String>) -> Result<Self, RequestError> {
        let url = url.into();
        let lower = url.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"));
        match rest {
            Some(r) if !r.is_empty() && !url.chars().any(char::is_whitespace) => {
                Ok(Self::Url { url })
            }
            _ => Err(RequestError::BadRequest(format!(
                "not an http(s) image URL: {url:?}"
            ))),
        }
    }
}

/// What a participant may do: the seed's admin is the MUC owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum ParticipantRole {
    /// May change the group, its members and admins (MUC owner).
    Admin,
    /// A member (MUC member, or admin in MUC's sense, which the SDK does not create).
    Member,
}

impl ParticipantRole {
    /// The role a MUC affiliation stands for (`None` for none or outcast).
    pub(crate) fn of(aff: groupchat_protocol::codec::xep::muc_user::Affiliation) -> Option<Self> {
        use groupchat_protocol::codec::xep::muc_user::Affiliation;
        match aff {
            Affiliation::Owner => Some(Self::Admin),
            Affiliation::Admin | Affiliation::Member => Some(Self::Member),
            _ => None,
        }
    }
}

/// A member of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Participant {
    /// Their bare JID.
    pub jid: BareJid,
    /// Admin or member.
    pub role: ParticipantRole,
    /// In the group right now (connected).
    pub online: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_types_come_from_the_content() {
        let png = b"\x89PNG\r\n\x1a\nrest".to_vec();
        assert!(
            matches!(GroupImage::from_bytes(png), Ok(GroupImage::Data { media_type, .. }) if media_type == "image/png")
        );
        let svg = b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'/>".to_vec();
        assert!(
            matches!(GroupImage::from_bytes(svg), Ok(GroupImage::Data { media_type, .. }) if media_type == "image/svg+xml")
        );
        let e = GroupImage::from_bytes(b"%PDF-1.4".to_vec()).unwrap_err();
        assert_eq!(e.status_code(), 400);
        let big = [b"GIF89a".as_slice(), &vec![0; MAX_IMAGE_BYTES as usize]].concat();
        assert_eq!(GroupImage::from_bytes(big).unwrap_err().status_code(), 413);
    }

    #[test]
    fn urls_must_be_http() {
        assert!(GroupImage::from_url("https://example.org/a.png").is_ok());
        for bad in [
            "ftp://x/a.png",
            "https://",
            "javascript:alert(1)",
            "https://a b",
        ] {
            assert_eq!(
                GroupImage::from_url(bad).unwrap_err().status_code(),
                400,
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn a_file_whose_content_does_not_match_its_extension_is_refused() {
        let dir = std::env::temp_dir().join(format!("gc-img-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("photo.png");
        std::fs::write(&fake, b"GIF89a....").unwrap();
        assert_eq!(
            GroupImage::from_file(&fake)
                .await
                .unwrap_err()
                .status_code(),
            400
        );
        let doc = dir.join("notes.txt");
        std::fs::write(&doc, b"hello").unwrap();
        assert_eq!(
            GroupImage::from_file(&doc).await.unwrap_err().status_code(),
            400
        );
        let ok = dir.join("photo.gif");
        std::fs::write(&ok, b"GIF89a....").unwrap();
        assert!(GroupImage::from_file(&ok).await.is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
