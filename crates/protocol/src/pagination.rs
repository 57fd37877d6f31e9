//! History pagination as plain data: XEP-0313 queries with XEP-0059 cursors, pages, gaps and
//! the media-gallery cursor. No I/O: the caller sends the query bytes and feeds back what
//! arrives.
//!
//! The seed's `POSITION` maps to [`Direction`]: `up` pages to older messages (RSM `before`),
//! `down` to newer ones (RSM `after`). `LAST_ROW_ID` is the room archive's stanza-id.

use serde::Serialize;

use crate::codec::write::Writer;
use crate::codec::xep::mam::{self, MamResult};
use crate::codec::{DecodeError, Iq, IqType, Message, NsContext, Stanza};
use crate::ns;

/// Which way a page goes from the cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Older messages (the seed's `up`; RSM `before`).
    Up,
    /// Newer messages (the seed's `down`; RSM `after`).
    Down,
}

/// One history request: a page of an archive next to a row id — a group's (the room's
/// archive), or a 1:1 chat's (our own archive, with `with` set to the other user).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryQuery {
    /// The archive queried: the group (room), or our own bare JID for a 1:1 chat.
    pub group: String,
    /// Only messages exchanged with this JID (XEP-0313 `with`): the other user of a 1:1
    /// chat in our own archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with: Option<String>,
    /// Older or newer.
    pub direction: Direction,
    /// The cursor: the archive id of the row to page from; `None` = from the newest (up)
    /// or the oldest (down) end.
    pub last_row_id: Option<String>,
    /// Page size.
    pub limit: u32,
}

/// The largest page we ask for; servers cap it anyway (Prosody: 100 by our test config).
pub const MAX_LIMIT: u32 = 100;

impl HistoryQuery {
    /// The newest `limit` messages of `group`.
    pub fn latest(group: impl Into<String>, limit: u32) -> Self {
        Self {
            group: group.into(),
            with: None,
            direction: Direction::Up,
            last_row_id: None,
            limit,
        }
    }

    /// The newest `limit` messages exchanged with `peer`, from our own archive (`me`).
    pub fn latest_with(me: impl Into<String>, peer: impl Into<String>, limit: u32) -> Self {
        Self {
            with: Some(peer.into()),
            ..Self::latest(me, limit)
        }
    }

    /// The MAM query IQ; `id` doubles as the query id that tags the results.
    pub fn encode(&self, id: &str) -> Vec<u8> {
        let mut w = Writer::with_capacity(320);
        w.open_ns("iq", ns::CLIENT);
        w.attr("type", "set");
        w.attr("to", &self.group);
        w.attr("id", id);
        w.close_start();
        w.open_ns("query", mam::NS);
        w.attr("queryid", id);
        w.close_start();
        if let Some(with) = &self.with {
            w.open_ns("x", crate::codec::xep::muc_owner::DATA_NS);
            w.attr("type", "submit");
            w.close_start();
            for (var, value, hidden) in [("FORM_TYPE", mam::NS, true), ("with", with, false)] {
                w.open("field");
                w.attr("var", var);
                if hidden {
                    w.attr("type", "hidden");
                }
                w.close_start();
                w.text_element("value", value);
                w.end("field");
            }
            w.end("x");
        }
        w.open_ns("set", mam::RSM_NS);
        w.close_start();
        w.text_element("max", &self.limit.clamp(1, MAX_LIMIT).to_string());
        match (self.direction, &self.last_row_id) {
            (Direction::Up, Some(id)) => w.text_element("before", id),
            // An empty <before/> asks for the last page.
            (Direction::Up, None) => {
                w.open("before");
                w.close_empty();
            }
            (Direction::Down, Some(id)) => w.text_element("after", id),
            (Direction::Down, None) => {}
        }
        w.end("set");
        w.end("query");
        w.end("iq");
        w.buf
    }
}

impl HistoryQuery {
    /// Reads a query back from its IQ (the inverse of [`encode`](Self::encode)).
    pub fn decode(iq: &Iq) -> Result<Self, DecodeError> {
        let bad = |what: &str| DecodeError::invalid("MAM query", what);
        let q = iq
            .payload
            .as_ref()
            .filter(|p| p.is("query", mam::NS))
            .ok_or_else(|| bad("no <query/>"))?;
        let set = q
            .get_child("set", mam::RSM_NS)
            .ok_or_else(|| bad("no <set/>"))?;
        let limit = set
            .get_child("max", mam::RSM_NS)
            .map(|m| m.text())
            .ok_or_else(|| bad("no <max/>"))?;
        let limit = limit.trim().parse().map_err(|_| bad("bad <max/>"))?;
        let (direction, last_row_id) = if let Some(b) = set.get_child("before", mam::RSM_NS) {
            let t = b.text();
            (Direction::Up, (!t.is_empty()).then_some(t))
        } else if let Some(a) = set.get_child("after", mam::RSM_NS) {
            (Direction::Down, Some(a.text()))
        } else {
            (Direction::Down, None)
        };
        let with = q
            .get_child("x", crate::codec::xep::muc_owner::DATA_NS)
            .into_iter()
            .flat_map(|x| x.children())
            .find(|f| {
                f.is("field", crate::codec::xep::muc_owner::DATA_NS)
                    && f.attr("var") == Some("with")
            })
            .and_then(|f| f.get_child("value", crate::codec::xep::muc_owner::DATA_NS))
            .map(|v| v.text());
        Ok(Self {
            with,
            group: iq
                .to
                .as_ref()
                .map(|j| j.to_string())
                .ok_or_else(|| bad("no 'to'"))?,
            direction,
            last_row_id,
            limit,
        })
    }
}

/// XEP-0313 `<fin/>`: how a query ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fin {
    /// `complete='true'`. Prosody omits the attribute on other pages; ejabberd says `false`.
    pub complete: bool,
    /// RSM `<first/>`: archive id of the page's oldest result.
    pub first: Option<String>,
    /// RSM `<last/>`: archive id of the page's newest result.
    pub last: Option<String>,
    /// RSM `<count/>`: total results of the query, if the server says.
    pub count: Option<u32>,
}

impl Fin {
    /// The IQ result carrying this `<fin/>` (what a server sends; for tests and fakes).
    pub fn encode_result(&self, iq_id: &str) -> Vec<u8> {
        let mut w = Writer::with_capacity(256);
        w.open_ns("iq", ns::CLIENT);
        w.attr("type", "result");
        w.attr("id", iq_id);
        w.close_start();
        w.open_ns("fin", mam::NS);
        if self.complete {
            w.attr("complete", "true");
        }
        w.close_start();
        w.open_ns("set", mam::RSM_NS);
        w.close_start();
        if let Some(f) = &self.first {
            w.text_element("first", f);
        }
        if let Some(l) = &self.last {
            w.text_element("last", l);
        }
        if let Some(c) = self.count {
            w.text_element("count", &c.to_string());
        }
        w.end("set");
        w.end("fin");
        w.end("iq");
        w.buf
    }

    /// Reads the `<fin/>` from an IQ result.
    pub fn from_iq(iq: &Iq) -> Result<Self, DecodeError> {
        let Some(el) = iq.payload.as_ref().filter(|p| p.is("fin", mam::NS)) else {
            return Err(DecodeError::invalid("MAM result", "without <fin/>"));
        };
        let mut fin = Self {
            complete: matches!(el.attr("complete"), Some("true" | "1")),
            ..Self::default()
        };
        if let Some(set) = el.get_child("set", mam::RSM_NS) {
            fin.first = set.get_child("first", mam::RSM_NS).map(|e| e.text());
            fin.last = set.get_child("last", mam::RSM_NS).map(|e| e.text());
            fin.count = match set.get_child("count", mam::RSM_NS) {
                Some(c) => Some(
                    c.text()
                        .trim()
                        .parse()
                        .map_err(|_| DecodeError::invalid("RSM count", &c.text()))?,
                ),
                None => None,
            };
        }
        Ok(fin)
    }
}

/// One archived message: its archive (row) id, the time the archive stamped, the message.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ArchivedMessage {
    /// The archive id: the row id to page from.
    pub row_id: String,
    /// The archive's timestamp.
    pub stamp: Option<String>,
    /// The message as archived.
    pub message: Message,
}

/// A page of history.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct HistoryPage {
    /// The query that produced it.
    pub query: HistoryQuery,
    /// Messages, oldest first.
    pub messages: Vec<ArchivedMessage>,
    /// Archive id of the oldest message on the page.
    pub first: Option<String>,
    /// Archive id of the newest message on the page.
    pub last: Option<String>,
    /// No more messages in this direction.
    pub complete: bool,
}

impl HistoryPage {
    /// A page of `messages` (oldest first) read for `query`.
    pub fn new(
        query: HistoryQuery,
        messages: Vec<ArchivedMessage>,
        first: Option<String>,
        last: Option<String>,
        complete: bool,
    ) -> Self {
        Self {
            query,
            messages,
            first,
            last,
            complete,
        }
    }

    /// The query for the following page in the same direction, or `None` at the end.
    pub fn next_query(&self) -> Option<HistoryQuery> {
        if self.complete {
            return None;
        }
        let cursor = match self.query.direction {
            Direction::Up => self.first.clone()?,
            Direction::Down => self.last.clone()?,
        };
        Some(HistoryQuery {
            last_row_id: Some(cursor),
            ..self.query.clone()
        })
    }
}

/// Collects the results of one query until its `<fin/>`: feed it every stanza; it keeps
/// the ones that belong to the query and says when the page is done.
#[derive(Debug)]
pub struct PageCollector {
    query: HistoryQuery,
    id: String,
    from: String,
    messages: Vec<ArchivedMessage>,
}

/// What [`PageCollector::feed`] made of a stanza.
#[derive(Debug)]
#[non_exhaustive]
pub enum Collected {
    /// Not ours: handle it elsewhere.
    NotMine(Stanza),
    /// A result, kept.
    Kept,
    /// The query finished.
    Done(HistoryPage),
    /// The server refused the query.
    Failed(crate::codec::xep::stanza_error::StanzaError),
}

impl PageCollector {
    /// Starts collecting for `query` sent with IQ id `id` (also its query id).
    pub fn new(query: HistoryQuery, id: impl Into<String>) -> Self {
        let from = query.group.clone();
        Self {
            query,
            id: id.into(),
            from,
            messages: Vec::new(),
        }
    }

    /// Offers a received stanza.
    pub fn feed(&mut self, stanza: Stanza) -> Result<Collected, DecodeError> {
        match stanza {
            Stanza::Message(mut m) => {
                let mine = m.mam_result.as_ref().is_some_and(|r| {
                    r.query_id.as_deref() == Some(self.id.as_str())
                        && m.from
                            .as_ref()
                            .is_none_or(|f| f.to_bare().as_str() == self.from)
                });
                if !mine {
                    return Ok(Collected::NotMine(Stanza::Message(m)));
                }
                let MamResult {
                    id, delay, message, ..
                } = *m.mam_result.take().expect("checked above");
                self.messages.push(ArchivedMessage {
                    row_id: id,
                    stamp: delay.map(|d| d.stamp),
                    message,
                });
                Ok(Collected::Kept)
            }
            Stanza::Iq(iq)
                if iq.id == self.id && matches!(iq.kind, IqType::Result | IqType::Error) =>
            {
                if let Some(e) = iq.error {
                    return Ok(Collected::Failed(e));
                }
                let fin = Fin::from_iq(&iq)?;
                let messages = std::mem::take(&mut self.messages);
                Ok(Collected::Done(HistoryPage {
                    query: self.query.clone(),
                    first: fin
                        .first
                        .or_else(|| messages.first().map(|m| m.row_id.clone())),
                    last: fin
                        .last
                        .or_else(|| messages.last().map(|m| m.row_id.clone())),
                    // An empty page cannot be followed: treat it as the end.
                    complete: fin.complete || messages.is_empty(),
                    messages,
                }))
            }
            other => Ok(Collected::NotMine(other)),
        }
    }
}

/// A hole in a group's timeline: messages after `after` (the last one seen before a
/// disconnect) that have not been fetched, up to `before` (the first live one seen since).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Gap {
    /// The group.
    pub group: String,
    /// Last archive id known before the gap; `None` = from the start of the archive.
    pub after: Option<String>,
    /// First archive id known after the gap; `None` = up to now.
    pub before: Option<String>,
}

impl Gap {
    /// A gap after `after` (up to now, until a live message narrows it).
    pub fn new(group: impl Into<String>, after: Option<String>) -> Self {
        Self {
            group: group.into(),
            after,
            before: None,
        }
    }

    /// A live message with archive id `id` arrived: the gap ends there.
    pub fn close_at(&mut self, id: impl Into<String>) {
        if self.before.is_none() {
            self.before = Some(id.into());
        }
    }

    /// The query that fetches the next part of the gap.
    pub fn query(&self, limit: u32) -> HistoryQuery {
        HistoryQuery {
            group: self.group.clone(),
            with: None,
            direction: Direction::Down,
            last_row_id: self.after.clone(),
            limit,
        }
    }

    /// Applies a fetched page: returns the messages that were missing (never the ones at or
    /// after `before`, already seen live) and whether the gap is now closed.
    pub fn fill(&mut self, page: HistoryPage) -> (Vec<ArchivedMessage>, bool) {
        let mut out = Vec::with_capacity(page.messages.len());
        let mut reached = false;
        for m in page.messages {
            if self.before.as_deref() == Some(m.row_id.as_str()) {
                reached = true;
                break;
            }
            out.push(m);
        }
        if let Some(last) = out.last() {
            self.after = Some(last.row_id.clone());
        }
        (out, reached || page.complete)
    }
}

/// One page of a group's media gallery: media messages, newest first, 3 on the first page
/// (no cursor) and 10 on each later one (from the cursor, the last media row id served),
/// filtered from archive pages scanned backwards. The state lives in the cursor, so a page
/// can be asked for again later, from another session.
#[derive(Clone, Debug)]
pub struct MediaGallery {
    group: String,
    /// The oldest archive row scanned so far (the next scan goes before it).
    before: Option<String>,
    /// Media found, newest first.
    found: Vec<ArchivedMessage>,
    want: usize,
    exhausted: bool,
}

/// Media on the first gallery page.
pub const GALLERY_FIRST_PAGE: usize = 3;
/// Media on each later gallery page.
pub const GALLERY_NEXT_PAGE: usize = 10;
/// Archive rows asked for per scan (the servers cap a page at 50 or more).
const GALLERY_SCAN: u32 = 50;

impl MediaGallery {
    /// The page of `group` after `last_row_id` (the oldest media of the previous page), or
    /// the first page without one.
    pub fn new(group: impl Into<String>, last_row_id: Option<String>) -> Self {
        Self {
            group: group.into(),
            want: if last_row_id.is_some() {
                GALLERY_NEXT_PAGE
            } else {
                GALLERY_FIRST_PAGE
            },
            before: last_row_id,
            found: Vec::new(),
            exhausted: false,
        }
    }

    /// The archive query to run next, or `None` when the page can be served.
    pub fn query(&self) -> Option<HistoryQuery> {
        // One more than the page: knowing whether another page follows.
        if self.exhausted || self.found.len() > self.want {
            return None;
        }
        Some(HistoryQuery {
            group: self.group.clone(),
            with: None,
            direction: Direction::Up,
            last_row_id: self.before.clone(),
            limit: GALLERY_SCAN,
        })
    }

    /// Feeds a scanned archive page (already filtered of what the user must not see);
    /// `is_media` says which rows count.
    pub fn absorb(&mut self, page: HistoryPage, is_media: impl Fn(&ArchivedMessage) -> bool) {
        self.exhausted = page.complete || page.first.is_none();
        self.before = page.first.clone().or(self.before.take());
        // Pages are oldest first; the gallery is newest first.
        self.found
            .extend(page.messages.into_iter().rev().filter(|m| is_media(m)));
    }

    /// The page (short at the end of the archive), and whether it is the last one.
    pub fn finish(mut self) -> (Vec<ArchivedMessage>, bool) {
        let last = self.found.len() <= self.want;
        self.found.truncate(self.want);
        (self.found, last)
    }
}

/// Decodes the results of one query from raw stanzas (used by tests and benchmarks).
pub fn collect_page(
    query: HistoryQuery,
    id: &str,
    stanzas: &[&[u8]],
    ctx: &NsContext,
) -> Result<Option<HistoryPage>, DecodeError> {
    let mut c = PageCollector::new(query, id);
    for s in stanzas {
        if let Collected::Done(p) = c.feed(crate::codec::decode_stanza(s, ctx)?)? {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// What a user should not see in a group's history: messages retracted for everyone
/// (XEP-0424/0425; servers keep them in the archive), messages deleted for this user, and
/// everything up to the "cleared" mark (both from the XEP-0223 group state).
#[derive(Clone, Debug, Default)]
pub struct HistoryFilter {
    /// Retracted id → who retracted it (`None`: a moderator, through the room).
    retracted: std::collections::HashMap<String, Option<String>>,
    hidden: std::collections::HashSet<String>,
    cleared_up_to: Option<String>,
}

impl HistoryFilter {
    /// A filter for a group's private state.
    pub fn new(state: Option<&crate::codec::ext::group_state::GroupState>) -> Self {
        Self {
            retracted: Default::default(),
            hidden: state
                .map(|s| s.hidden.iter().cloned().collect())
                .unwrap_or_default(),
            cleared_up_to: state.and_then(|s| s.cleared_up_to.clone()),
        }
    }

    /// Removes what must not be shown from `page`: retraction messages themselves, the
    /// messages they retract (in this page or, paging up, in older ones), hidden ones, and
    /// the cleared part, which also ends paging upwards.
    pub fn apply(&mut self, page: &mut HistoryPage) {
        for m in &page.messages {
            if let Some(r) = &m.message.retraction {
                // A moderator's retraction comes from the room itself; anyone else's
                // counts only for their own messages (checked below).
                let by_room = m
                    .message
                    .from
                    .as_ref()
                    .is_some_and(|f| f.resource().is_none())
                    && r.moderated_by.is_some();
                let by = if by_room { None } else { sender_of(&m.message) };
                if by_room || by.is_some() {
                    self.retracted.insert(r.id.clone(), by);
                }
            }
        }
        let cleared = self
            .cleared_up_to
            .as_ref()
            .and_then(|cleared| page.messages.iter().position(|m| &m.row_id == cleared));
        if let Some(pos) = cleared {
            // Pages are oldest first: the mark and everything before it are cleared.
            page.messages.drain(..=pos);
            if page.query.direction == Direction::Up {
                page.complete = true;
            }
        }
        let (retracted, hidden) = (&self.retracted, &self.hidden);
        page.messages.retain(|m| {
            let ids = [
                Some(m.row_id.as_str()),
                m.message.origin_id.as_deref(),
                m.message.id.as_deref(),
            ];
            let retracted_by_right = ids.into_iter().flatten().any(|id| match retracted.get(id) {
                Some(None) => true,
                Some(Some(by)) => sender_of(&m.message).as_ref() == Some(by),
                None => false,
            });
            m.message.retraction.is_none() && !hidden.contains(&m.row_id) && !retracted_by_right
        });
    }
}

/// Who sent an archived message: in a group, the real JID the room recorded (muc#user item);
/// in a 1:1 chat, the sender's bare JID.
fn sender_of(m: &Message) -> Option<String> {
    if let Some(u) = &m.muc_user {
        return u
            .items
            .iter()
            .find_map(|i| i.jid.as_deref())
            .and_then(|j| j.parse::<jid::Jid>().ok())
            .map(|j| j.to_bare().to_string());
    }
    m.from.as_ref().map(|f| f.to_bare().to_string())
}
