//! XEP-0359: Unique and Stable Stanza IDs (plus XEP-0421 occupant-id, which reuses its shape).

/// `urn:xmpp:sid:0`
pub const NS: &str = "urn:xmpp:sid:0";
/// XEP-0421 `urn:xmpp:occupant-id:0`
pub const OCCUPANT_ID_NS: &str = "urn:xmpp:occupant-id:0";
/// `urn:xmpp:mam:tmp`: the `<archived by id/>` of XEP-0313 before version 0.4, which
/// ejabberd still adds beside `stanza-id`.
pub const ARCHIVED_NS: &str = "urn:xmpp:mam:tmp";

/// A stanza id assigned by an archiving entity (`by`): the room's id is a group message's
/// row id in history pagination.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StanzaId {
    /// The id.
    pub id: String,
    /// Who assigned it (the room, or our own server).
    pub by: String,
    /// It came as the older `<archived xmlns='urn:xmpp:mam:tmp'/>` (written back so).
    pub legacy: bool,
}
