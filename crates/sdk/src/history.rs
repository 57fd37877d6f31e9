//! A conversation's history from the server's archive (XEP-0313 message archive, paged with
//! XEP-0059): the seed's "get chat messages" with its position (`up` / `down`), last row id
//! and limit. A group's history is the room's archive; a 1:1 chat's is our own archive,
//! filtered to the other user.
//!
//! The archive holds more than messages: markers, retractions, chat states a client asked to
//! store, the notices by which SDK clients announce who changed a group (reported live as
//! events, and left out of history). A page asks the archive for `limit` rows and, when some of them are not messages
//! (or are retracted), asks again from where it stopped, so that the application gets
//! `limit` messages per page unless the archive ends first.

use groupchat_protocol::codec::ext::group_state::GroupState;
use groupchat_protocol::codec::ext::notice::Notice;
use groupchat_protocol::codec::xep::media::Media;
use groupchat_protocol::codec::xep::stanza_error::{ErrorType, StanzaError};
use groupchat_protocol::codec::{Bodies, Message};
use groupchat_protocol::group::Occupant;
use groupchat_protocol::jid::{BareJid, Jid};
use groupchat_protocol::pagination::{
    ArchivedMessage, Collected, HistoryFilter, HistoryPage, HistoryQuery, MAX_LIMIT, MediaGallery,
    PageCollector,
};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::client::{Client, Inner};
use crate::core::Core;
use crate::error::RequestError;
use crate::to_jid::ToJid;

pub use groupchat_protocol::pagination::Direction;

/// The page size when the caller gives none.
pub const DEFAULT_HISTORY_LIMIT: u32 = 20;
/// The largest page: the servers cap theirs too (Prosody at 50 by default), and the SDK
/// fills a page from several archive queries when they do.
pub const MAX_HISTORY_LIMIT: u32 = MAX_LIMIT;

/// Which page of history: the seed's `POSITION`, `LAST_ROW_ID` and `LIMIT`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRequest {
    /// `Up` (older than the row) or `Down` (newer); `None` is the latest page.
    pub position: Option<Direction>,
    /// The archive row id (a message's `row_id`, a page's `first_row_id` or `last_row_id`)
    /// to page from. Without one, `Up` starts at the newest message and `Down` at the oldest.
    pub last_row_id: Option<String>,
    /// How many messages, 1 to [`MAX_HISTORY_LIMIT`].
    pub limit: u32,
}

impl Default for HistoryRequest {
    fn default() -> Self {
        Self::latest(DEFAULT_HISTORY_LIMIT)
    }
}

impl HistoryRequest {
    /// The newest `limit` messages.
    pub fn latest(limit: u32) -> Self {
        Self {
            position: None,
            last_row_id: None,
            limit,
        }
    }

    /// The `limit` messages just older than row `row_id` (the seed's `up`).
    pub fn older_than(row_id: impl Into<String>, limit: u32) -> Self {
        Self {
            position: Some(Direction::Up),
            last_row_id: Some(row_id.into()),
            limit,
        }
    }

    /// The `limit` messages just newer than row `row_id` (the seed's `down`).
    pub fn newer_than(row_id: impl Into<String>, limit: u32) -> Self {
        Self {
            position: Some(Direction::Down),
            last_row_id: Some(row_id.into()),
            limit,
        }
    }

    /// The oldest `limit` messages.
    pub fn oldest(limit: u32) -> Self {
        Self {
            position: Some(Direction::Down),
            last_row_id: None,
            limit,
        }
    }
}

/// One page of a conversation's history.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct History {
    /// The messages, oldest first.
    pub messages: Vec<HistoryMessage>,
    /// Where the next page up (older) starts: the oldest archive row this page read.
    pub first_row_id: Option<String>,
    /// Where the next page down (newer) starts: the newest archive row this page read.
    pub last_row_id: Option<String>,
    /// No more messages in the direction of the request (for the latest page: nothing
    /// older).
    pub complete: bool,
}

impl History {
    /// The request for the next page in `direction` from this one, or `None` when the page
    /// read no archive row. Check [`complete`](Self::complete) first: a page that reached
    /// the end in its own direction has no next page that way.
    pub fn next(&self, direction: Direction, limit: u32) -> Option<HistoryRequest> {
        let row = match direction {
            Direction::Up => self.first_row_id.clone()?,
            Direction::Down => self.last_row_id.clone()?,
        };
        Some(HistoryRequest {
            position: Some(direction),
            last_row_id: Some(row),
            limit,
        })
    }
}

/// A message read from an archive.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct HistoryMessage {
    /// The archive's id for it (in a group the room's stanza-id, in a 1:1 chat our own
    /// archive's): the row id to page from, and what markers and deletions refer to.
    pub row_id: String,
    /// The group, or for a 1:1 chat the other user.
    pub conversation: BareJid,
    /// The sender's nickname, in a group.
    pub nick: Option<String>,
    /// The sender's real JID (in a group, as the archive recorded it: groups are
    /// non-anonymous).
    pub from: Option<BareJid>,
    /// The sender's message id.
    pub id: Option<String>,
    /// The sender's XEP-0359 origin-id (what `send_text` returns as the message id).
    pub origin_id: Option<String>,
    /// When the archive stored it (XEP-0203 timestamp, UTC).
    pub timestamp: Option<String>,
    /// Text, in the reader's preferred language when the message has several.
    pub body: Option<String>,
    /// The other languages of a message in several.
    pub bodies: Option<Box<Bodies>>,
    /// Attachment.
    pub media: Option<Box<Media>>,
}

impl HistoryMessage {
    fn from_archived(
        conversation: &BareJid,
        is_group: bool,
        a: ArchivedMessage,
        languages: &[String],
    ) -> Self {
        let (nick, from) = if is_group {
            let sender = Occupant::archived_sender(&a.message);
            (Some(sender.nick).filter(|n| !n.is_empty()), sender.jid)
        } else {
            (None, a.message.from.clone().map(Jid::into_bare))
        };
        let ArchivedMessage {
            row_id,
            stamp,
            message: m,
            ..
        } = a;
        let Message {
            id,
            origin_id,
            delay,
            mut body,
            mut bodies,
            media,
            ..
        } = m;
        if let (Some(b), Some(body)) = (bodies.as_deref_mut(), body.as_mut()) {
            b.prefer(body, languages);
        }
        Self {
            row_id,
            conversation: conversation.clone(),
            nick,
            from,
            id,
            origin_id,
            timestamp: stamp.or_else(|| delay.map(|d| d.stamp)),
            body,
            bodies,
            media,
        }
    }
}

impl Client {
    /// A page of a group's or a 1:1 chat's history, oldest message first (the seed's "get
    /// chat messages"; a user's JID gives the 1:1 chat with that user, from our own archive).
    ///
    /// `request.position`: `None` for the latest page, `Up` for older messages than
    /// `last_row_id`, `Down` for newer ones. Markers, retractions and messages deleted for
    /// everyone are left out; the page is filled from further archive rows so that it holds
    /// `limit` messages unless the archive ends first (`complete`). Errors: 400 for a limit
    /// of 0 or above [`MAX_HISTORY_LIMIT`] or a JID that is neither a group nor a user, 404
    /// for an unknown group or row id, 403 when the group or server keeps no archive.
    #[tracing::instrument(level = "debug", skip_all, fields(with = tracing::field::Empty))]
    pub async fn history(
        &self,
        conversation: impl ToJid,
        request: HistoryRequest,
    ) -> Result<History, RequestError> {
        let jid = conversation.to_jid()?;
        let is_group = self.is_group(&jid);
        if !is_group && jid.node().is_none() {
            return Err(RequestError::BadRequest(format!(
                "{jid} is neither a group nor a user"
            )));
        }
        let conversation = jid.into_bare();
        tracing::Span::current().record("with", tracing::field::display(&conversation));
        // A group's archive is the room's; a 1:1 chat's is ours, filtered to the other user.
        let (archive, with) = if is_group {
            (conversation.to_string(), None)
        } else {
            (self.inner.me.to_string(), Some(conversation.to_string()))
        };
        if request.limit == 0 || request.limit > MAX_HISTORY_LIMIT {
            return Err(RequestError::BadRequest(format!(
                "the limit must be between 1 and {MAX_HISTORY_LIMIT}, not {}",
                request.limit
            )));
        }
        let direction = request.position.unwrap_or(Direction::Up);
        // A latest page is an `up` page from the newest end.
        let cursor = match request.position {
            None => None,
            Some(_) => request.last_row_id.clone(),
        };
        let rows = self
            .inner
            .read_messages(HistoryQuery {
                group: archive,
                with,
                direction,
                last_row_id: cursor,
                limit: request.limit,
            })
            .await?;
        Ok(History {
            messages: rows
                .messages
                .into_iter()
                .map(|a| {
                    HistoryMessage::from_archived(&conversation, is_group, a, &self.inner.languages)
                })
                .collect(),
            first_row_id: rows.first,
            last_row_id: rows.last,
            complete: rows.complete,
        })
    }
}

/// A page of a group's media gallery, newest first.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MediaPage {
    /// Media messages, newest first: 3 on the first page, 10 on later ones.
    pub messages: Vec<HistoryMessage>,
    /// The cursor for the next page: the row id of the oldest message here.
    pub last_row_id: Option<String>,
    /// No older media: this is the last page.
    pub complete: bool,
}

impl Client {
    /// A page of a group's media messages (the seed's "get group media messages"), newest
    /// first: without `last_row_id` the newest 3, then with the previous page's
    /// [`MediaPage::last_row_id`] the next 10. Media counts whatever client sent it (an OOB
    /// URL or XEP-0447 file sharing); retracted and hidden messages do not. Read from the
    /// group's archive, so it works on any device. 403 when the group keeps no archive, 404
    /// for an unknown group or row id.
    #[tracing::instrument(level = "debug", skip_all, fields(group = tracing::field::Empty))]
    pub async fn media_messages(
        &self,
        group: impl ToJid,
        last_row_id: Option<&str>,
    ) -> Result<MediaPage, RequestError> {
        let group = self.group_jid_of(group)?;
        tracing::Span::current().record("group", tracing::field::display(&group));
        let state = self.inner.group_state_of(group.clone()).await;
        let mut filter = HistoryFilter::new(state.as_ref());
        let mut gallery = MediaGallery::new(group.as_str(), last_row_id.map(str::to_owned));
        while let Some(query) = gallery.query() {
            let mut page = self.inner.history_page(query).await?;
            filter.apply(&mut page);
            gallery.absorb(page, is_media);
        }
        let (rows, complete) = gallery.finish();
        let messages: Vec<HistoryMessage> = rows
            .into_iter()
            .map(|a| HistoryMessage::from_archived(&group, true, a, &self.inner.languages))
            .collect();
        Ok(MediaPage {
            last_row_id: messages.last().map(|m| m.row_id.clone()),
            messages,
            complete,
        })
    }
}

impl Client {
    /// One message of a group's archive by its row id (to download its media, or show it
    /// again): 404 when the archive has no such row or it is not a message.
    pub async fn message(
        &self,
        group: impl ToJid,
        row_id: &str,
    ) -> Result<HistoryMessage, RequestError> {
        let group = self.group_jid_of(group)?;
        let row = self.inner.find_row(&group, row_id).await?;
        if !is_message(&row) {
            return Err(RequestError::NotFound(format!(
                "row {row_id} of {group} is not a message"
            )));
        }
        Ok(HistoryMessage::from_archived(
            &group,
            true,
            row,
            &self.inner.languages,
        ))
    }
}

/// Whether an archive row is a media message (a URL to fetch, not one of the SDK's notices).
fn is_media(a: &ArchivedMessage) -> bool {
    a.message.media.as_ref().is_some_and(|m| !m.url.is_empty())
        && Notice::find(&a.message.payloads).is_none()
}

/// Whether an archive row is a message the application sees: a body or media, and not one
/// of the SDK's notices ("alice added bob"), which are events.
pub(crate) fn is_message(a: &ArchivedMessage) -> bool {
    (a.message.body.is_some() || a.message.media.is_some())
        && Notice::find(&a.message.payloads).is_none()
}

impl Inner {
    /// What the user hid in the group `query` reads (none for a 1:1 chat).
    async fn group_state(&self, query: &HistoryQuery) -> Option<GroupState> {
        if query.with.is_some() {
            return None;
        }
        self.group_state_of(query.group.parse().ok()?).await
    }

    /// What the user hid in `group`.
    pub(crate) async fn group_state_of(&self, group: BareJid) -> Option<GroupState> {
        self.with(move |c| c.group_states.get(&group).cloned())
            .await
            .ok()
            .flatten()
    }

    /// `query.limit` messages from `query`'s cursor in its direction, reading further rows
    /// while some are not messages (markers, retractions, notices) or are retracted. The
    /// page's `first` / `last` are the oldest and newest rows read (the cursors onward).
    pub(crate) async fn read_messages(
        &self,
        mut query: HistoryQuery,
    ) -> Result<HistoryPage, RequestError> {
        let want = query.limit as usize;
        let direction = query.direction;
        let state = self.group_state(&query).await;
        // The oldest page of a cleared chat starts after the mark.
        if direction == Direction::Down && query.last_row_id.is_none() {
            query.last_row_id = state.as_ref().and_then(|s| s.cleared_up_to.clone());
        }
        let mut filter = HistoryFilter::new(state.as_ref());
        let mut messages: Vec<ArchivedMessage> = Vec::with_capacity(want);
        let (mut first, mut last) = (None::<String>, None::<String>);
        let template = query.clone();
        let complete = loop {
            query.limit = u32::try_from(want - messages.len()).unwrap_or(MAX_LIMIT);
            let mut page = self.history_page(query.clone()).await?;
            // The rows read, kept as cursors even when none of them is a message.
            if direction == Direction::Up || first.is_none() {
                first = page.first.clone().or(first);
            }
            if direction == Direction::Down || last.is_none() {
                last = page.last.clone().or(last);
            }
            filter.apply(&mut page);
            let read = page.messages.into_iter().filter(is_message);
            match direction {
                // Older rows go before what we have.
                Direction::Up => {
                    messages.splice(0..0, read);
                }
                Direction::Down => messages.extend(read),
            }
            if page.complete {
                break true;
            }
            if messages.len() >= want {
                break false;
            }
            query.last_row_id = match direction {
                Direction::Up => first.clone(),
                Direction::Down => last.clone(),
            };
            if query.last_row_id.is_none() {
                break true;
            }
        };
        Ok(HistoryPage::new(template, messages, first, last, complete))
    }
}

/// Waiting history queries: the collector of each, by its IQ id (also its query id).
pub(crate) type PendingPage = (
    PageCollector,
    oneshot::Sender<Result<HistoryPage, StanzaError>>,
);

impl Core {
    /// Offers `stanza` to the waiting history queries: their results and their end are
    /// theirs (and not events); anything else comes back.
    pub(crate) fn collect_history(
        &mut self,
        stanza: groupchat_protocol::codec::Stanza,
    ) -> Option<groupchat_protocol::codec::Stanza> {
        use groupchat_protocol::codec::Stanza;
        let key = match &stanza {
            Stanza::Message(m) => m.mam_result.as_ref().and_then(|r| r.query_id.clone()),
            Stanza::Iq(iq) => Some(iq.id.clone()),
            _ => None,
        };
        let Some(key) = key.filter(|k| self.pending_pages.contains_key(k)) else {
            return Some(stanza);
        };
        let Some((collector, _)) = self.pending_pages.get_mut(&key) else {
            return Some(stanza);
        };
        match collector.feed(stanza) {
            Ok(Collected::NotMine(s)) => Some(s),
            Ok(Collected::Done(page)) => {
                if let Some((_, tx)) = self.pending_pages.remove(&key) {
                    let _ = tx.send(Ok(page));
                }
                None
            }
            Ok(Collected::Failed(e)) => {
                if let Some((_, tx)) = self.pending_pages.remove(&key) {
                    let _ = tx.send(Err(e));
                }
                None
            }
            // A result, kept.
            Ok(_) => None,
            Err(e) => {
                // An end of query we cannot read: the query fails, the session carries on.
                tracing::debug!(error = %e, "unreadable end of a history query");
                if let Some((_, tx)) = self.pending_pages.remove(&key) {
                    let _ = tx.send(Err(StanzaError::new(
                        ErrorType::Cancel,
                        "undefined-condition",
                        Some(format!("the end of the query could not be read: {e}")),
                    )));
                }
                None
            }
        }
    }
}

impl Inner {
    /// Runs one archive query and collects its page.
    pub(crate) async fn history_page(
        &self,
        query: HistoryQuery,
    ) -> Result<HistoryPage, RequestError> {
        let id = self.new_id();
        let bytes = query.encode(&id);
        let (tx, rx) = oneshot::channel();
        {
            let (id, c) = (id.clone(), PageCollector::new(query, id.clone()));
            self.tell(move |core| {
                core.pending_pages.insert(id, (c, tx));
            });
        }
        let forget = || {
            let id = id.clone();
            self.tell(move |core| {
                core.pending_pages.remove(&id);
            });
        };
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        match tokio::time::timeout_at(deadline, self.send(bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                forget();
                return Err(e);
            }
            Err(_) => {
                forget();
                return Err(RequestError::Timeout);
            }
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(Ok(page))) => Ok(page),
            Ok(Ok(Err(e))) => Err(history_refused(e)),
            // The session ended before the query did.
            Ok(Err(_)) => Err(RequestError::NotConnected),
            Err(_) => {
                forget();
                Err(RequestError::Timeout)
            }
        }
    }
}

/// A refused archive query: no archive is 403 (the seed's "feature unavailable"), an unknown
/// row id 404, the rest as for any group action.
fn history_refused(e: StanzaError) -> RequestError {
    match e.condition.as_str() {
        "feature-not-implemented" | "service-unavailable" => {
            RequestError::FeatureUnavailable("message history (the group keeps no archive)".into())
        }
        "item-not-found" if e.text.is_none() => {
            RequestError::NotFound("no such group or archive row".into())
        }
        _ => RequestError::refused_group_action(e),
    }
}
