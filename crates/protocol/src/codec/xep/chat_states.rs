//! XEP-0085: Chat State Notifications.

/// A chat state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ChatState {
    /// Paying attention.
    Active,
    /// Typing.
    Composing,
    /// Stopped typing ("gone" in the seed API's typing call).
    Paused,
    /// Not paying attention.
    Inactive,
    /// Left the conversation.
    Gone,
}

/// `http://jabber.org/protocol/chatstates`
pub const NS: &str = "http://jabber.org/protocol/chatstates";

impl ChatState {
    /// The element name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Composing => "composing",
            Self::Paused => "paused",
            Self::Inactive => "inactive",
            Self::Gone => "gone",
        }
    }

    pub(crate) fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "active" => Self::Active,
            "composing" => Self::Composing,
            "paused" => Self::Paused,
            "inactive" => Self::Inactive,
            "gone" => Self::Gone,
            _ => return None,
        })
    }
}
