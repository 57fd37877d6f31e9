//! XEP-0115: Entity Capabilities — the `<c/>` a presence carries (typed, because most
//! presences have one and a tree for each would cost more than the rest of the presence).

/// `http://jabber.org/protocol/caps`
pub const NS: &str = "http://jabber.org/protocol/caps";

/// What the sender's software can do, as a hash of its disco#info.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Caps {
    /// The hash function (`sha-1`).
    pub hash: String,
    /// The software's URI.
    pub node: String,
    /// The verification string (base64 of the hash).
    pub ver: String,
}
