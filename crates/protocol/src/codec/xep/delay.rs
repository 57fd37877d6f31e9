//! XEP-0203: Delayed Delivery.

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
