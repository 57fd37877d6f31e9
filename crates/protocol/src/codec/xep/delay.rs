//! XEP-0203: Delayed Delivery.

use crate::codec::DecodeError;
use crate::codec::reader::{Start, XmlReader};

/// `urn:xmpp:delay`
pub const NS: &str = "urn:xmpp:delay";

/// When a stanza was originally sent, as the server stamped it (XEP-0082 date-time, kept as
/// sent: it is compared and shown, not computed with).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delay {
    /// The timestamp, e.g. `2026-11-27T10:00:00Z`.
    pub stamp: String,
    /// Who delayed it.
    pub from: Option<String>,
}

/// Decodes `<delay/>` (its start already read).
pub(crate) fn decode_delay(r: &mut XmlReader<'_>, s: &Start<'_>) -> Result<Delay, DecodeError> {
    let d = Delay {
        stamp: s.req("stamp")?.into_owned(),
        from: s.attr_string("from")?,
    };
    r.skip(s)?;
    Ok(d)
}
