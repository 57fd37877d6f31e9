//! XEP-0402: PEP Native Bookmarks, with the fallback to XEP-0048 bookmarks in XEP-0049
//! private XML storage for servers whose bookmarks node keeps only one item.
//!
//! ejabberd 23.01 refuses `pubsub#max_items` in publish-options ("Unknown field"); published
//! without it, a node created with the default configuration keeps a single item, so a
//! second group silently replaces the first. [`Dialect`] walks the steps: full options →
//! reduced options (after that refusal) → private storage (when a read-back shows the node
//! lost an item). Prosody keeps the full options.

use minidom::Element;

use crate::codec::write::{Writer, iq, private_publish, pubsub_items};
use crate::codec::xep::stanza_error::StanzaError;
use crate::codec::{DecodeError, Iq};

/// XEP-0402 node and namespace `urn:xmpp:bookmarks:1`
pub const NS: &str = "urn:xmpp:bookmarks:1";
/// XEP-0060 `http://jabber.org/protocol/pubsub`
pub const PUBSUB_NS: &str = "http://jabber.org/protocol/pubsub";
/// XEP-0049 `jabber:iq:private`
pub const PRIVATE_NS: &str = "jabber:iq:private";
/// XEP-0048 `storage:bookmarks`
pub const STORAGE_NS: &str = "storage:bookmarks";

/// A bookmarked group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Bookmark {
    /// The group's JID.
    pub jid: String,
    /// Its name.
    pub name: Option<String>,
    /// Join at login.
    pub autojoin: bool,
    /// Our nickname there.
    pub nick: Option<String>,
}

impl Bookmark {
    /// A bookmark that joins at login.
    pub fn new(jid: impl Into<String>, name: Option<String>, nick: Option<String>) -> Self {
        Self {
            jid: jid.into(),
            name,
            autojoin: true,
            nick,
        }
    }
}

/// How bookmarks are stored on this server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// XEP-0402 with the full publish-options (Prosody).
    #[default]
    Pep,
    /// XEP-0402 without `pubsub#max_items` / `send_last_published_item` (after a refusal).
    PepReducedOptions,
    /// XEP-0048 in private XML storage (the node keeps only one item).
    Private,
}

impl Dialect {
    /// The next dialect after the server refused a publish with `e`, if retrying can help.
    pub fn after_publish_error(self, e: &StanzaError) -> Option<Self> {
        let options_refused = matches!(
            e.condition.as_str(),
            "resource-constraint" | "not-acceptable" | "bad-request" | "conflict"
        ) || e
            .application
            .as_ref()
            .is_some_and(|(n, _)| n == "precondition-not-met");
        match self {
            Self::Pep if options_refused => Some(Self::PepReducedOptions),
            Self::PepReducedOptions => Some(Self::Private),
            _ => None,
        }
    }

    /// After publishing, compares what the node holds with what it should: when a bookmark
    /// went missing, the node keeps one item and bookmarks must move to private storage.
    pub fn after_read_back(self, expected: &[Bookmark], stored: &[Bookmark]) -> Self {
        let lost = expected
            .iter()
            .any(|b| !stored.iter().any(|s| s.jid == b.jid));
        if lost && self != Self::Private {
            Self::Private
        } else {
            self
        }
    }
}

/// Publishes one bookmark (XEP-0402), item id = the group JID.
pub fn publish(id: &str, b: &Bookmark, dialect: Dialect) -> Vec<u8> {
    let full: &[(&str, &str)] = &[
        ("pubsub#max_items", "max"),
        ("pubsub#send_last_published_item", "never"),
    ];
    let extra = if dialect == Dialect::Pep { full } else { &[] };
    private_publish(id, NS, &b.jid, extra, |w| write_conference_402(w, b))
}

fn write_conference_402(w: &mut Writer, b: &Bookmark) {
    w.open_ns("conference", NS);
    w.attr_opt("name", b.name.as_deref());
    if b.autojoin {
        w.attr("autojoin", "true");
    }
    close_conference(w, b.nick.as_deref());
}

/// Ends a `<conference>` start tag: with a `<nick/>` child, or empty.
fn close_conference(w: &mut Writer, nick: Option<&str>) {
    match nick {
        Some(n) => {
            w.close_start();
            w.text_element("nick", n);
            w.end("conference");
        }
        None => w.close_empty(),
    }
}

/// Retracts a bookmark (XEP-0402).
pub fn retract(id: &str, jid: &str) -> Vec<u8> {
    iq("set", None, id, |w| {
        w.open_ns("pubsub", PUBSUB_NS);
        w.close_start();
        w.open("retract");
        w.attr("node", NS);
        w.attr("notify", "true");
        w.close_start();
        w.open("item");
        w.attr("id", jid);
        w.close_empty();
        w.end("retract");
        w.end("pubsub");
    })
}

/// Requests all XEP-0402 bookmarks.
pub fn get_items(id: &str) -> Vec<u8> {
    pubsub_items(id, NS)
}

/// Reads the XEP-0402 items of a `pubsub` element (an items result, or a publish), through
/// xmpp-parsers' `PubSub` and `bookmarks2::Conference`. An item that is not a valid
/// bookmark (another client's mistake) is skipped, not allowed to hide the others.
pub fn decode_items(payload: &Element) -> Vec<Bookmark> {
    use xmpp_parsers::pubsub::PubSub;
    let items = match PubSub::try_from(payload.clone()) {
        Ok(PubSub::Items(items)) if items.node.0 == NS => items.items,
        Ok(PubSub::Publish { publish, .. }) if publish.node.0 == NS => publish.items,
        _ => Vec::new(),
    };
    items
        .into_iter()
        .filter_map(|item| {
            let jid = item.id?.0;
            let c = xmpp_parsers::bookmarks2::Conference::try_from(item.payload?).ok()?;
            Some(Bookmark {
                jid,
                name: c.name,
                autojoin: c.autojoin,
                nick: c.nick.map(|n| n.to_string()),
            })
        })
        .collect()
}

/// Reads the XEP-0402 items result.
pub fn decode_items_result(iq: &Iq) -> Result<Vec<Bookmark>, DecodeError> {
    match iq.payload.as_ref().filter(|p| p.is("pubsub", PUBSUB_NS)) {
        Some(p) => Ok(decode_items(p)),
        None if iq.error.is_some() => Err(DecodeError::invalid("bookmarks", "error reply")),
        None => Ok(Vec::new()),
    }
}

/// Requests the XEP-0048 bookmarks from private storage.
pub fn get_private(id: &str) -> Vec<u8> {
    iq("get", None, id, |w| {
        w.open_ns("query", PRIVATE_NS);
        w.close_start();
        w.empty_ns("storage", STORAGE_NS);
        w.end("query");
    })
}

/// Stores the whole XEP-0048 bookmark list in private storage (it is one document).
pub fn set_private(id: &str, bookmarks: &[Bookmark]) -> Vec<u8> {
    iq("set", None, id, |w| {
        w.open_ns("query", PRIVATE_NS);
        w.close_start();
        w.open_ns("storage", STORAGE_NS);
        w.close_start();
        for b in bookmarks {
            w.open("conference");
            w.attr("jid", &b.jid);
            w.attr_opt("name", b.name.as_deref());
            w.attr("autojoin", if b.autojoin { "true" } else { "false" });
            close_conference(w, b.nick.as_deref());
        }
        w.end("storage");
        w.end("query");
    })
}

/// Reads the XEP-0048 list from a private-storage result, through xmpp-parsers'
/// `bookmarks::Conference` (a conference that does not parse is skipped).
pub fn decode_private(iq: &Iq) -> Result<Vec<Bookmark>, DecodeError> {
    let Some(storage) = iq
        .payload
        .as_ref()
        .filter(|p| p.is("query", PRIVATE_NS))
        .and_then(|q| q.get_child("storage", STORAGE_NS))
    else {
        return Ok(Vec::new());
    };
    Ok(storage
        .children()
        .filter_map(|c| xmpp_parsers::bookmarks::Conference::try_from(c.clone()).ok())
        .map(|c| Bookmark {
            jid: c.jid.to_string(),
            name: c.name,
            autojoin: c.autojoin,
            nick: c.nick.map(|n| n.to_string()),
        })
        .collect())
}
