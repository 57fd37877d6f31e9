//! XEP-0153: vCard-Based Avatars — the avatar hash a presence announces (rooms announce
//! their photo's hash this way when it changes).

/// `vcard-temp:x:update`
pub const NS: &str = "vcard-temp:x:update";

/// The `<x/>` of a presence.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct VCardUpdate {
    /// `None`: no `<photo/>` (the sender is not ready to say); `Some("")`: no avatar;
    /// otherwise the hex SHA-1 of the image.
    pub photo: Option<String>,
}
