//! XEP-0054: vcard-temp — a group's image as its room's vCard photo (XEP-0486 style).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::codec::write::iq;
use crate::codec::{DecodeError, Iq};

/// `vcard-temp`
pub const NS: &str = "vcard-temp";

/// An image: its media type and bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Photo {
    /// e.g. `image/png`.
    pub media_type: String,
    /// The image bytes.
    pub data: Vec<u8>,
}

/// Sets the room's photo (owner only).
pub fn set_photo(room: &str, id: &str, photo: &Photo) -> Vec<u8> {
    iq("set", Some(room), id, |w| {
        w.open_ns("vCard", NS);
        w.close_start();
        w.open("PHOTO");
        w.close_start();
        w.text_element("TYPE", &photo.media_type);
        w.text_element("BINVAL", &B64.encode(&photo.data));
        w.end("PHOTO");
        w.end("vCard");
    })
}

/// Requests the room's vCard.
pub fn get(room: &str, id: &str) -> Vec<u8> {
    iq("get", Some(room), id, |w| w.empty_ns("vCard", NS))
}

/// Reads the photo from a vCard result (`None` when there is none).
pub fn decode_photo(iq: &Iq) -> Result<Option<Photo>, DecodeError> {
    let Some(photo) = iq
        .payload
        .as_ref()
        .filter(|p| p.is("vCard", NS))
        .and_then(|v| v.get_child("PHOTO", NS))
    else {
        return Ok(None);
    };
    let media_type = photo
        .get_child("TYPE", NS)
        .map(|t| t.text())
        .unwrap_or_default();
    let Some(bin) = photo.get_child("BINVAL", NS) else {
        return Ok(None);
    };
    let text: String = bin.text().split_ascii_whitespace().collect();
    let data = B64
        .decode(text.as_bytes())
        .map_err(|_| DecodeError::invalid("vCard photo", "not base64"))?;
    Ok(Some(Photo { media_type, data }))
}
