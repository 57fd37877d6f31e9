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

/// The URL of the photo when the vCard points to one (`EXTVAL`, which some clients set; the
/// SDK itself always stores the image bytes, since Prosody's `mod_vcard_muc` fails on a
/// photo without `BINVAL`).
pub fn decode_photo_url(iq: &Iq) -> Option<String> {
    iq.payload
        .as_ref()
        .filter(|p| p.is("vCard", NS))?
        .get_child("PHOTO", NS)?
        .get_child("EXTVAL", NS)
        .map(minidom::Element::text)
        .filter(|u| !u.trim().is_empty())
}

/// Requests the room's vCard.
pub fn get(room: &str, id: &str) -> Vec<u8> {
    iq("get", Some(room), id, |w| w.empty_ns("vCard", NS))
}

/// Reads the photo from a vCard result (through xmpp-parsers' `VCard`); `None` when there is
/// none.
pub fn decode_photo(iq: &Iq) -> Result<Option<Photo>, DecodeError> {
    let Some(v) = iq.payload.clone().filter(|p| p.is("vCard", NS)) else {
        return Ok(None);
    };
    if decode_photo_url(iq).is_some() {
        return Ok(None); // an external photo: see `decode_photo_url`
    }
    let v = xmpp_parsers::vcard::VCard::try_from(v)
        .map_err(|e| DecodeError::invalid("vCard", &e.to_string()))?;
    Ok(v.photo.map(|p| Photo {
        media_type: p.type_.data,
        data: p.binval.data,
    }))
}
