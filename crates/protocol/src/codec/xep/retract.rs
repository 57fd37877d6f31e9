//! XEP-0424: Message Retraction, and XEP-0425: Moderated Message Retraction.

/// XEP-0424 v0.4 `urn:xmpp:message-retract:1`
pub const NS: &str = "urn:xmpp:message-retract:1";
/// XEP-0424 v0.3 `urn:xmpp:message-retract:0` (inside XEP-0422 `apply-to`)
pub const NS_0: &str = "urn:xmpp:message-retract:0";
/// XEP-0422 Message Fastening `urn:xmpp:fasten:0`
pub const FASTEN_NS: &str = "urn:xmpp:fasten:0";
/// XEP-0425 `urn:xmpp:message-moderate:1`
pub const MODERATE_NS: &str = "urn:xmpp:message-moderate:1";
/// XEP-0425 v0.2 `urn:xmpp:message-moderate:0`
pub const MODERATE_NS_0: &str = "urn:xmpp:message-moderate:0";

/// A retraction of an earlier message (by its sender, or by a moderator).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Retraction {
    /// The retracted message: the room's stanza-id in a group, the origin-id in 1:1.
    pub id: String,
    /// Set when a moderator retracted someone else's message (XEP-0425).
    pub moderated_by: Option<String>,
    /// The moderator's reason.
    pub reason: Option<String>,
}

/// A moderator's request to retract someone's message in a room (XEP-0425 v0.3+).
pub fn moderate(room: &str, id: &str, stanza_id: &str, reason: Option<&str>) -> Vec<u8> {
    crate::codec::write::iq("set", Some(room), id, |w| {
        w.open_ns("moderate", MODERATE_NS);
        w.attr("id", stanza_id);
        w.close_start();
        w.empty_ns("retract", NS);
        if let Some(r) = reason {
            w.text_element("reason", r);
        }
        w.end("moderate");
    })
}
