//! XEP-0333: Displayed Markers (and the `received` / `acknowledged` markers of its earlier
//! versions, which servers relay and archive: the SDK's per-message delivery info uses them).

/// `urn:xmpp:chat-markers:0`
pub const NS: &str = "urn:xmpp:chat-markers:0";

/// Which marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MarkerKind {
    /// The message reached a device.
    Received,
    /// The message was shown to the user.
    Displayed,
    /// The user acted on it.
    Acknowledged,
}

impl MarkerKind {
    /// The element name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Displayed => "displayed",
            Self::Acknowledged => "acknowledged",
        }
    }

    pub(crate) fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "received" => Self::Received,
            "displayed" => Self::Displayed,
            "acknowledged" => Self::Acknowledged,
            _ => return None,
        })
    }
}

/// A marker about an earlier message; `id` is the room's stanza-id for group messages.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Marker {
    /// Which marker.
    pub kind: MarkerKind,
    /// The marked message.
    pub id: String,
}
