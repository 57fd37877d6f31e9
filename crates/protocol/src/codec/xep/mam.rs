//! XEP-0313: Message Archive Management (results, with XEP-0297 forwarding), and XEP-0059:
//! Result Set Management (the page cursor).

use crate::codec::message::Message;
use crate::codec::message::decode;
use crate::codec::reader::{Ev, Start, XmlReader};
use crate::codec::xep::delay::Delay;
use crate::codec::xep::delay::{self, decode_delay};
use crate::codec::{DecodeError, eof};
use crate::ns;

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

/// Decodes a MAM `<result/>` (its start already read): the forwarded message and its delay.
pub(crate) fn decode_mam_result(
    r: &mut XmlReader<'_>,
    s: &Start<'_>,
) -> Result<MamResult, DecodeError> {
    let query_id = s.attr_string("queryid")?;
    let id = s.req("id")?.into_owned();
    let mut delay_v = None;
    let mut message = None;
    loop {
        match r.next()? {
            Ev::Start(f) if f.is("forwarded", FORWARD_NS) => loop {
                match r.next()? {
                    Ev::Start(x) if x.is("delay", delay::NS) => {
                        delay_v = Some(decode_delay(r, &x)?)
                    }
                    Ev::Start(x) if x.is("message", ns::CLIENT) => message = Some(decode(r, &x)?),
                    Ev::Start(x) => r.skip(&x)?,
                    Ev::Text(_) => {}
                    Ev::End => break,
                    Ev::Eof => return Err(eof()),
                }
            },
            Ev::Start(x) => r.skip(&x)?,
            Ev::Text(_) => {}
            Ev::End => break,
            Ev::Eof => return Err(eof()),
        }
    }
    let message = message
        .ok_or_else(|| DecodeError::invalid("archive result", "without a forwarded message"))?;
    Ok(MamResult {
        query_id,
        id,
        delay: delay_v,
        message,
    })
}
