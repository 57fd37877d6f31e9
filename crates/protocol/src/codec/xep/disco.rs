//! XEP-0030: Service Discovery — finding the group and upload services, and reading a room's
//! profile (identity, features and the XEP-0045 `muc#roominfo` form).

use crate::codec::write::iq;
use crate::codec::{DecodeError, Iq};

/// `http://jabber.org/protocol/disco#info`
pub const INFO_NS: &str = "http://jabber.org/protocol/disco#info";
/// `http://jabber.org/protocol/disco#items`
pub const ITEMS_NS: &str = "http://jabber.org/protocol/disco#items";

/// disco#info request.
pub fn info(to: &str, id: &str) -> Vec<u8> {
    iq("get", Some(to), id, |w| w.empty_ns("query", INFO_NS))
}

/// disco#items request.
pub fn items(to: &str, id: &str) -> Vec<u8> {
    iq("get", Some(to), id, |w| w.empty_ns("query", ITEMS_NS))
}

/// An entity's identities, features and extension forms.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Info {
    /// `(category, type, name)` of each identity.
    pub identities: Vec<(String, String, Option<String>)>,
    /// Feature namespaces.
    pub features: Vec<String>,
    /// Extension form fields `(FORM_TYPE, var, values)`.
    pub fields: Vec<(String, String, Vec<String>)>,
    /// XEP-0363 maximum upload size, if the form says.
    pub max_file_size: Option<u64>,
}

impl Info {
    /// True if the feature is offered.
    pub fn has_feature(&self, f: &str) -> bool {
        self.features.iter().any(|x| x == f)
    }

    /// True if an identity has this category and type.
    pub fn is(&self, category: &str, kind: &str) -> bool {
        self.identities
            .iter()
            .any(|(c, t, _)| c == category && t == kind)
    }

    /// The first value of a form field.
    pub fn field(&self, var: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(_, v, _)| v == var)
            .and_then(|(_, _, vals)| vals.first())
            .map(String::as_str)
    }
}

/// Reads a disco#info result (through xmpp-parsers' `DiscoInfoResult`).
pub fn decode_info(iq: &Iq) -> Result<Info, DecodeError> {
    let q = iq
        .payload
        .clone()
        .filter(|p| p.is("query", INFO_NS))
        .ok_or_else(|| DecodeError::invalid("disco#info", "no query"))?;
    let r = xmpp_parsers::disco::DiscoInfoResult::try_from(q)
        .map_err(|e| DecodeError::invalid("disco#info", &e.to_string()))?;
    let mut info = Info {
        identities: r
            .identities
            .into_iter()
            .map(|i| (i.category, i.type_, i.name))
            .collect(),
        features: r.features.into_iter().collect(),
        ..Info::default()
    };
    for form in r.extensions {
        let form_type = form.form_type().unwrap_or_default().to_owned();
        for f in form.fields {
            let Some(var) = f.var else { continue };
            if var == "FORM_TYPE" {
                continue;
            }
            if var == "max-file-size" {
                info.max_file_size = f.values.first().and_then(|v| v.trim().parse().ok());
            }
            info.fields.push((form_type.clone(), var, f.values));
        }
    }
    Ok(info)
}

/// Reads a disco#items result: the item JIDs (through xmpp-parsers' `DiscoItemsResult`).
pub fn decode_items(iq: &Iq) -> Result<Vec<String>, DecodeError> {
    let q = iq
        .payload
        .clone()
        .filter(|p| p.is("query", ITEMS_NS))
        .ok_or_else(|| DecodeError::invalid("disco#items", "no query"))?;
    let r = xmpp_parsers::disco::DiscoItemsResult::try_from(q)
        .map_err(|e| DecodeError::invalid("disco#items", &e.to_string()))?;
    Ok(r.items.into_iter().map(|i| i.jid.to_string()).collect())
}

/// A group's profile as its room describes itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RoomInfo {
    /// The group name (the identity's name, or `muc#roomconfig_roomname`).
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Occupants present now.
    pub occupants: Option<u32>,
    /// Members-only.
    pub members_only: bool,
    /// Real JIDs visible.
    pub non_anonymous: bool,
    /// Persistent.
    pub persistent: bool,
    /// Archived (XEP-0313 offered).
    pub archived: bool,
    /// Room avatar hash, where the server publishes one (Prosody `mod_vcard_muc`).
    pub avatar_hash: Option<String>,
    /// The room supports XEP-0421 occupant ids.
    pub occupant_id: bool,
    /// The room supports XEP-0425 moderation.
    pub moderation: bool,
}

impl RoomInfo {
    /// Reads the profile from disco#info.
    pub fn from_info(info: &Info) -> Self {
        let nonempty = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_owned);
        Self {
            name: info
                .identities
                .iter()
                .find(|(c, _, _)| c == "conference")
                .and_then(|(_, _, n)| n.clone())
                .or_else(|| nonempty(info.field("muc#roomconfig_roomname"))),
            description: nonempty(info.field("muc#roominfo_description")),
            occupants: info
                .field("muc#roominfo_occupants")
                .and_then(|v| v.trim().parse().ok()),
            members_only: info.has_feature("muc_membersonly"),
            non_anonymous: info.has_feature("muc_nonanonymous"),
            persistent: info.has_feature("muc_persistent"),
            archived: info.has_feature("urn:xmpp:mam:2"),
            avatar_hash: nonempty(info.field("muc#roominfo_avatarhash")).or_else(|| {
                nonempty(info.field("{http://modules.prosody.im/mod_vcard_muc}avatar#sha1"))
            }),
            occupant_id: info.has_feature("urn:xmpp:occupant-id:0"),
            moderation: info.has_feature("urn:xmpp:message-moderate:0")
                || info.has_feature("urn:xmpp:message-moderate:1"),
        }
    }
}
