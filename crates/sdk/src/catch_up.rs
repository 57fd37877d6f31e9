//! Catch-up: what a group said while we were away, read from its archive after a login or a
//! reconnection that could not resume, merged with what arrives live meanwhile so that the
//! application sees every message once, in archive order.
//!
//! The position (the archive id of the last message the application got) of every group
//! and 1:1 chat is kept by a [`PositionStore`]: in memory by default ([`MemoryStore`]), or in
//! a file ([`FileStore`]) so that a restarted application does not fetch again what it has
//! seen.

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;

use groupchat_protocol::group::GroupMessage;
use groupchat_protocol::jid::BareJid;
use groupchat_protocol::pagination::{Direction, HistoryFilter, HistoryQuery};

use crate::client::Inner;
use crate::core::Core;
use crate::events::{Event, MissedMessages};

/// Archive rows asked for per catch-up query: the most servers give (each query costs the
/// server a look-up in the whole archive with file-based storage).
const CATCH_UP_PAGE: u32 = groupchat_protocol::pagination::MAX_LIMIT;
/// Messages delivered for a group with no known position (one joined for the first time,
/// or any group after a restart with a [`MemoryStore`]): its newest page, not its archive.
pub const FIRST_CATCH_UP: u32 = 20;

/// Where each conversation was left: the archive id of the last message the application
/// got, by group (or 1:1 chat). The SDK loads it once when the client is built and saves the
/// whole map when it changed (at most once a second, and when the client closes).
pub trait PositionStore: Send + Sync + std::fmt::Debug {
    /// The positions saved last (empty when there are none, or they cannot be read).
    fn load(&self) -> BTreeMap<BareJid, String>;
    /// Keeps `positions` (the whole map).
    ///
    /// # Errors
    ///
    /// When they cannot be kept; the SDK logs it and tries again at the next change.
    fn save(&self, positions: &BTreeMap<BareJid, String>) -> io::Result<()>;
}

/// Positions in memory: lost when the process ends (the default).
#[derive(Debug, Default)]
pub struct MemoryStore(Mutex<BTreeMap<BareJid, String>>);

impl PositionStore for MemoryStore {
    fn load(&self) -> BTreeMap<BareJid, String> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn save(&self, positions: &BTreeMap<BareJid, String>) -> io::Result<()> {
        if let Ok(mut m) = self.0.lock() {
            m.clone_from(positions);
        }
        Ok(())
    }
}

/// Positions in a JSON file (`{"group@conference.example.org": "row id", ...}`), written to
/// a temporary file and renamed over the old one, so a crash leaves the old file or the new
/// one, never half of one. A missing, unreadable or corrupt file reads as no positions: the
/// next catch-up of each group is its newest page, never a failure.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// A store in `path` (created at the first save; its directory must exist).
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_owned(),
        }
    }
}

impl PositionStore for FileStore {
    fn load(&self) -> BTreeMap<BareJid, String> {
        let Ok(bytes) = std::fs::read(&self.path) else {
            return BTreeMap::new();
        };
        match serde_json::from_slice::<BTreeMap<String, String>>(&bytes) {
            Ok(raw) => raw
                .into_iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
                .collect(),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "position file unreadable: starting from each group's newest page");
                BTreeMap::new()
            }
        }
    }

    fn save(&self, positions: &BTreeMap<BareJid, String>) -> io::Result<()> {
        let raw: BTreeMap<&str, &str> = positions
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let json = serde_json::to_vec(&raw).map_err(io::Error::other)?;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)
    }
}

impl Core {
    /// From now until [`end_catch_up`](Self::end_catch_up), `group`'s live messages wait, so
    /// that the archived ones before them go out first.
    pub(crate) fn begin_catch_up(&mut self, group: &BareJid) {
        self.catching_up.entry(group.clone()).or_default();
    }

    /// The catch-up of `group` is over: the live messages that waited go out (those the
    /// archive already gave are recognised and dropped).
    pub(crate) fn end_catch_up(&mut self, group: &BareJid) {
        for (gm, notice) in self.catching_up.remove(group).unwrap_or_default() {
            self.deliver_with(gm, notice);
        }
    }
}

/// Groups caught up at the same time.
const CATCH_UP_CONCURRENCY: usize = 4;

impl Inner {
    /// Catches up on `groups` joined again (each with its recovery's epoch), a few at a
    /// time; after each, our messages to it that waited (or that the old room did not
    /// take) go out.
    pub(crate) async fn catch_up_all(self: Arc<Self>, groups: Vec<(BareJid, u64)>) {
        futures::stream::iter(groups)
            .for_each_concurrent(CATCH_UP_CONCURRENCY, |(g, epoch)| {
                let inner = self.clone();
                async move {
                    inner.catch_up(&g, Some(epoch)).await;
                    let _ = inner.with(move |c| c.recovered(&g, epoch)).await;
                }
            })
            .await;
    }

    /// Catches up on `group` from where the application left it (or its newest page when
    /// that is unknown), then lets its live messages through. A failed catch-up reports
    /// [`Event::MessagesMayBeMissing`] for the group, from where it was left. A catch-up
    /// of a recovery (`epoch`) stops, and leaves the live messages waiting, once a newer
    /// recovery of the group has begun (that one delivers them).
    pub(crate) async fn catch_up(&self, group: &BareJid, epoch: Option<u64>) {
        let g = group.clone();
        let Ok(after) = self.with(move |c| c.positions.get(&g).cloned()).await else {
            return;
        };
        let result = match &after {
            Some(row) => match self.fetch_after(group, Some(row), epoch).await {
                // The archive no longer holds our position (it expired, or the server keeps
                // a bounded number of messages): what came between is lost, and said so;
                // everything the archive still has is newer, and delivered.
                Err(crate::RequestError::NotFound(_)) => {
                    self.report_gap(group, after.clone()).await;
                    self.fetch_after(group, None, epoch).await
                }
                other => other,
            },
            None => self.fetch_newest(group, epoch).await,
        };
        match result {
            // A newer recovery of the group reads the archive itself.
            Ok(false) => return,
            Err(e) => {
                tracing::debug!(%group, error = %e, "catch-up failed");
                self.report_gap(group, after).await;
            }
            Ok(true) => {}
        }
        let g = group.clone();
        let _ = self
            .with(move |c| {
                if epoch.is_none_or(|e| c.is_current(&g, e)) {
                    c.end_catch_up(&g);
                }
            })
            .await;
    }

    async fn report_gap(&self, group: &BareJid, after: Option<String>) {
        let group = group.clone();
        let _ = self
            .with(move |c| {
                c.emit(Event::MessagesMayBeMissing {
                    groups: vec![MissedMessages {
                        group,
                        after,
                        since_ms: c.gap_since_ms,
                    }],
                });
            })
            .await;
    }

    /// Every page newer than `row` (from the oldest without one), delivered page by page
    /// (never all held at once).
    async fn fetch_after(
        &self,
        group: &BareJid,
        row: Option<&str>,
        epoch: Option<u64>,
    ) -> Result<bool, crate::RequestError> {
        let mut cursor = row.map(str::to_owned);
        let state = self.group_state_of(group.clone()).await;
        let mut filter = HistoryFilter::new(state.as_ref());
        loop {
            let query = HistoryQuery {
                group: group.to_string(),
                with: None,
                direction: Direction::Down,
                last_row_id: cursor.clone(),
                limit: CATCH_UP_PAGE,
            };
            let mut page = self.history_page(query).await?;
            let next = page.last.clone();
            filter.apply(&mut page);
            if !self.deliver_page(group, page.messages, epoch).await? {
                return Ok(false);
            }
            match next {
                Some(n) if !page.complete && Some(&n) != cursor.as_ref() => cursor = Some(n),
                _ => return Ok(true),
            }
        }
    }

    /// The newest [`FIRST_CATCH_UP`] messages.
    async fn fetch_newest(
        &self,
        group: &BareJid,
        epoch: Option<u64>,
    ) -> Result<bool, crate::RequestError> {
        let page = self
            .read_messages(HistoryQuery::latest(group.to_string(), FIRST_CATCH_UP))
            .await?;
        self.deliver_page(group, page.messages, epoch).await
    }

    /// Delivers a page; `false` (nothing delivered) once a newer recovery of the group has
    /// begun: it reads the archive itself.
    async fn deliver_page(
        &self,
        group: &BareJid,
        rows: Vec<groupchat_protocol::pagination::ArchivedMessage>,
        epoch: Option<u64>,
    ) -> Result<bool, crate::RequestError> {
        let messages: Vec<GroupMessage> = rows
            .iter()
            .filter(|a| crate::history::is_message(a))
            .map(|a| GroupMessage::from_archived(group.clone(), a))
            .collect();
        // In archive order, each once.
        let g = group.clone();
        self.with(move |c| {
            let current = epoch.is_none_or(|e| c.is_current(&g, e));
            if current {
                messages.into_iter().for_each(|gm| c.deliver(gm));
            }
            current
        })
        .await
    }
}
