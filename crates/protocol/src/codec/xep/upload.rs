//! XEP-0363: HTTP File Upload — asking for a slot.

use minidom::Element;

use crate::codec::write::iq;
use crate::codec::xep::stanza_error::StanzaError;
use crate::codec::{DecodeError, Iq};

/// `urn:xmpp:http:upload:0`
pub const NS: &str = "urn:xmpp:http:upload:0";

/// Where to PUT the file (with which headers) and where it can be fetched afterwards.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Slot {
    /// PUT URL.
    pub put: String,
    /// Headers to send with the PUT (Authorization, Cookie, Expires only, per the XEP).
    #[serde(skip)]
    pub headers: Vec<(String, String)>,
    /// GET URL to share.
    pub get: String,
}

/// Requests a slot from the upload service.
pub fn request(service: &str, id: &str, filename: &str, size: u64, content_type: &str) -> Vec<u8> {
    iq("get", Some(service), id, |w| {
        w.open_ns("request", NS);
        w.attr("filename", filename);
        w.attr("size", &size.to_string());
        w.attr("content-type", content_type);
        w.close_empty();
    })
}

/// Why the upload service gave no slot.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotRefusal {
    /// The file is larger than the service takes (`<file-too-large/>`), with its limit
    /// when it says.
    TooLarge {
        /// The largest size accepted, in bytes.
        limit: Option<u64>,
    },
    /// Any other refusal.
    Refused(StanzaError),
}

/// Reads the slot, or the refusal.
pub fn decode_slot(iq: &Iq) -> Result<Result<Slot, SlotRefusal>, DecodeError> {
    if let Some(e) = &iq.error {
        if let Some((_, text)) = e
            .application
            .as_ref()
            .filter(|(n, _)| n == "file-too-large")
        {
            return Ok(Err(SlotRefusal::TooLarge {
                limit: text.trim().parse().ok(),
            }));
        }
        return Ok(Err(SlotRefusal::Refused(e.clone())));
    }
    let slot = iq
        .payload
        .as_ref()
        .filter(|p| p.is("slot", NS))
        .ok_or_else(|| DecodeError::invalid("upload slot", "missing"))?;
    let put = slot
        .get_child("put", NS)
        .ok_or_else(|| DecodeError::invalid("upload slot", "no put"))?;
    let get = slot
        .get_child("get", NS)
        .ok_or_else(|| DecodeError::invalid("upload slot", "no get"))?;
    let allowed = ["authorization", "cookie", "expires"];
    Ok(Ok(Slot {
        put: put
            .attr("url")
            .ok_or_else(|| DecodeError::invalid("upload slot", "no put url"))?
            .to_owned(),
        headers: put
            .children()
            .filter(|h| h.is("header", NS))
            .filter_map(|h| {
                let name = h.attr("name")?;
                // XEP-0363 §5: other headers must be ignored (they could smuggle requests).
                allowed
                    .contains(&name.to_ascii_lowercase().as_str())
                    .then(|| (name.to_owned(), Element::text(h).replace(['\r', '\n'], "")))
            })
            .collect(),
        get: get
            .attr("url")
            .ok_or_else(|| DecodeError::invalid("upload slot", "no get url"))?
            .to_owned(),
    }))
}

/// What a slot request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlotRequest {
    /// File name.
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// MIME type.
    pub content_type: Option<String>,
}

/// Reads a slot request (for tests and fakes).
pub fn decode_request(iq: &Iq) -> Result<SlotRequest, DecodeError> {
    let r = iq
        .payload
        .as_ref()
        .filter(|p| p.is("request", NS))
        .ok_or_else(|| DecodeError::invalid("upload request", "missing"))?;
    Ok(SlotRequest {
        filename: r
            .attr("filename")
            .ok_or_else(|| DecodeError::invalid("upload request", "no filename"))?
            .to_owned(),
        size: r
            .attr("size")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| DecodeError::invalid("upload request", "bad size"))?,
        content_type: r.attr("content-type").map(str::to_owned),
    })
}

/// The slot result a server sends (for tests and fakes).
pub fn encode_slot(id: &str, slot: &Slot) -> Vec<u8> {
    iq("result", None, id, |w| {
        w.open_ns("slot", NS);
        w.close_start();
        w.open("put");
        w.attr("url", &slot.put);
        w.close_start();
        for (n, v) in &slot.headers {
            w.open("header");
            w.attr("name", n);
            w.close_start();
            w.text(v);
            w.end("header");
        }
        w.end("put");
        w.open("get");
        w.attr("url", &slot.get);
        w.close_empty();
        w.end("slot");
    })
}
