//! XEP-0313: Message Archive Management (results, with XEP-0297 forwarding), and XEP-0059:
//! Result Set Management (the page cursor).

use crate::codec::message::Message;
use crate::codec::xep::delay::Delay;

/// `urn:xmpp:mam:2`
pub const NS: &str = "urn:xmpp:mam:2";
/// XEP-0297 `urn:xmpp:forward:0`
pub const FORWARD_NS: &str = "urn:xmpp:forward:0";
/// XEP-0059 `http://jabber.org/protocol/rsm`
pub const RSM_NS: &str = "http://jabber.org/protocol/rsm";

/// One archived message, as returned for a query.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MamResult {
    /// The query this result answers.
    pub query_id: Option<String>,
    /// The archive id: the row id for pagination (the room's stanza-id).
    pub id: String,
    /// When the server archived it.
    pub delay: Option<Delay>,
    /// The archived message.
    pub message: Message,
}

impl MamResult {
    /// A result with archive id `id` wrapping `message`.
    pub fn new(id: impl Into<String>, message: Message) -> Self {
        Self {
            query_id: None,
            id: id.into(),
            delay: None,
            message,
        }
    }
}
