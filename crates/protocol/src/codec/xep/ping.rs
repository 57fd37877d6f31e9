//! XEP-0199: XMPP Ping — a round trip to the server.

use crate::codec::write::iq;

/// `urn:xmpp:ping`
pub const NS: &str = "urn:xmpp:ping";

/// A ping to `to` (our server when `None`).
pub fn request(to: Option<&str>, id: &str) -> Vec<u8> {
    iq("get", to, id, |w| w.empty_ns("ping", NS))
}
