//! XEP-0045: Multi-User Chat — `muc#admin`: affiliation lists and changes.

use crate::codec::write::iq;
use crate::codec::xep::muc_user::Affiliation;
use crate::codec::{DecodeError, Iq};

/// `http://jabber.org/protocol/muc#admin`
pub const NS: &str = "http://jabber.org/protocol/muc#admin";

/// One entry of an affiliation list.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AffiliationItem {
    /// The user's bare JID.
    pub jid: String,
    /// The affiliation.
    pub affiliation: Affiliation,
    /// A reserved nickname, if any.
    pub nick: Option<String>,
}

/// Requests the list of users with `affiliation`.
pub fn get_list(room: &str, id: &str, affiliation: Affiliation) -> Vec<u8> {
    iq("get", Some(room), id, |w| {
        w.open_ns("query", NS);
        w.close_start();
        w.open("item");
        w.attr("affiliation", affiliation.as_str());
        w.close_empty();
        w.end("query");
    })
}

/// Sets one user's affiliation. One user per request: Prosody 0.12 applies only the first
/// item of a request with several.
pub fn set(
    room: &str,
    id: &str,
    jid: &str,
    affiliation: Affiliation,
    reason: Option<&str>,
) -> Vec<u8> {
    iq("set", Some(room), id, |w| {
        w.open_ns("query", NS);
        w.close_start();
        w.open("item");
        w.attr("affiliation", affiliation.as_str());
        w.attr("jid", jid);
        if let Some(r) = reason {
            w.close_start();
            w.text_element("reason", r);
            w.end("item");
        } else {
            w.close_empty();
        }
        w.end("query");
    })
}

/// Reads an affiliation list (or a set request) from an IQ.
pub fn decode_list(iq: &Iq) -> Result<Vec<AffiliationItem>, DecodeError> {
    let Some(q) = iq.payload.as_ref().filter(|p| p.is("query", NS)) else {
        return Ok(Vec::new());
    };
    q.children()
        .filter(|c| c.is("item", NS))
        .map(|i| {
            let jid = i
                .attr("jid")
                .ok_or_else(|| DecodeError::invalid("affiliation item", "without jid"))?;
            let a = i.attr("affiliation").unwrap_or("none");
            Ok(AffiliationItem {
                jid: jid.split('/').next().unwrap_or(jid).to_owned(),
                affiliation: Affiliation::parse(a)
                    .ok_or_else(|| DecodeError::invalid("affiliation", a))?,
                nick: i.attr("nick").map(str::to_owned),
            })
        })
        .collect()
}
