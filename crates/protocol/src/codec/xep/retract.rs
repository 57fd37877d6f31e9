//! XEP-0424: Message Retraction, and XEP-0425: Moderated Message Retraction.

use crate::codec::reader::{Ev, Start, XmlReader};
use crate::codec::{DecodeError, eof};

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

/// Decodes `<retract/>` (XEP-0424 v0.4+, its start already read).
pub(crate) fn decode_retract(
    r: &mut XmlReader<'_>,
    s: &Start<'_>,
) -> Result<Retraction, DecodeError> {
    let mut rt = Retraction {
        id: s.req("id")?.into_owned(),
        moderated_by: None,
        reason: None,
    };
    loop {
        match r.next()? {
            Ev::Start(c)
                if c.name == "moderated" && (c.ns == MODERATE_NS || c.ns == MODERATE_NS_0) =>
            {
                rt.moderated_by = c.attr_string("by")?;
                r.skip(&c)?;
            }
            Ev::Start(c) if c.name == "reason" => rt.reason = Some(r.text(&c)?.into_owned()),
            Ev::Start(c) => r.skip(&c)?,
            Ev::Text(_) => {}
            Ev::End => return Ok(rt),
            Ev::Eof => return Err(eof()),
        }
    }
}

/// XEP-0422 `<apply-to/>`: the retraction and moderation forms of XEP-0424 v0.3 / 0425 v0.2.
pub(crate) fn decode_apply_to(
    r: &mut XmlReader<'_>,
    s: &Start<'_>,
) -> Result<Option<Retraction>, DecodeError> {
    let id = s.req("id")?.into_owned();
    let mut found = None;
    loop {
        match r.next()? {
            Ev::Start(c) if c.is("retract", NS_0) => {
                found.get_or_insert(Retraction {
                    id: id.clone(),
                    moderated_by: None,
                    reason: None,
                });
                r.skip(&c)?;
            }
            Ev::Start(c) if c.is("moderated", MODERATE_NS_0) => {
                let mut rt = Retraction {
                    id: id.clone(),
                    moderated_by: c.attr_string("by")?,
                    reason: None,
                };
                let mut is_retract = false;
                loop {
                    match r.next()? {
                        Ev::Start(x) if x.is("retract", NS_0) => {
                            is_retract = true;
                            r.skip(&x)?;
                        }
                        Ev::Start(x) if x.name == "reason" => {
                            rt.reason = Some(r.text(&x)?.into_owned())
                        }
                        Ev::Start(x) => r.skip(&x)?,
                        Ev::Text(_) => {}
                        Ev::End => break,
                        Ev::Eof => return Err(eof()),
                    }
                }
                if is_retract {
                    found = Some(rt);
                }
            }
            Ev::Start(c) => r.skip(&c)?,
            Ev::Text(_) => {}
            Ev::End => return Ok(found),
            Ev::Eof => return Err(eof()),
        }
    }
}
