//! Deleting group messages: for everyone (XEP-0424 retraction of one's own message; a
//! moderator's XEP-0425 moderation where the server offers it), or for this user only and
//! "clear chat" (kept in a private PEP node, so every device of the user hides the same
//! messages; history and catch-up leave them out).

use groupchat_protocol::codec::ext::group_state::{self, GroupState};
use groupchat_protocol::codec::xep::muc_user::Affiliation;
use groupchat_protocol::codec::xep::{disco, retract};
use groupchat_protocol::codec::{Message, MessageType};
use groupchat_protocol::group::Occupant;
use groupchat_protocol::jid::BareJid;
use groupchat_protocol::pagination::{ArchivedMessage, Direction, HistoryQuery};

use crate::client::{Client, Inner};
use crate::core::Core;
use crate::error::RequestError;
use crate::events::Event;
use crate::to_jid::ToJid;

/// XEP-0425 versions a room may offer.
const MODERATION: [&str; 2] = [retract::MODERATE_NS, retract::MODERATE_NS_0];

impl Client {
    /// Deletes group message `row_id` for every member. One's own message is retracted
    /// (XEP-0424); someone else's needs an admin and a server that offers moderation
    /// (XEP-0425). 403 when neither applies (a plain member, or no moderation on the
    /// server), 404 when the group's archive has no such message.
    pub async fn delete_for_everyone(
        &self,
        group: impl ToJid,
        row_id: &str,
    ) -> Result<(), RequestError> {
        let group = self.group_jid_of(group)?;
        let row = self.inner.find_row(&group, row_id).await?;
        let sender = Occupant::archived_sender(&row.message).jid;
        if sender.as_ref() == Some(&self.inner.me) {
            let m = Message::retraction(group.clone().into(), MessageType::Groupchat, row_id);
            return self.inner.send(m.encode()).await;
        }
        let g = group.clone();
        let admin = self
            .inner
            .with(move |c| {
                matches!(
                    c.my_affiliation(&g),
                    Some(Affiliation::Owner | Affiliation::Admin)
                )
            })
            .await?;
        if !admin {
            return Err(RequestError::Forbidden(Box::new(
                groupchat_protocol::codec::xep::stanza_error::StanzaError::new(
                    groupchat_protocol::codec::xep::stanza_error::ErrorType::Auth,
                    "forbidden",
                    Some("only its sender or an admin can delete a message for everyone".into()),
                ),
            )));
        }
        let g = group.as_str();
        let info = self.inner.request(Some(g), |id| disco::info(g, id)).await?;
        let offered = disco::decode_info(&info)
            .map(|i| MODERATION.iter().any(|f| i.has_feature(f)))
            .unwrap_or(false);
        if !offered {
            return Err(RequestError::FeatureUnavailable(
                "deleting others' messages (the server offers no XEP-0425 moderation)".into(),
            ));
        }
        self.inner
            .request(Some(g), |id| retract::moderate(g, id, row_id, None))
            .await
            .map(|_| ())
            .map_err(|e| match e {
                RequestError::Stanza(s) => RequestError::refused_group_action(*s),
                other => other,
            })
    }

    /// Deletes group messages for this user only: hidden on every device (an event on
    /// each), left out of history and catch-up.
    pub async fn delete_for_me(
        &self,
        group: impl ToJid,
        row_ids: &[&str],
    ) -> Result<(), RequestError> {
        let group = self.group_jid_of(group)?;
        if row_ids.iter().any(|r| r.is_empty()) {
            return Err(RequestError::BadRequest("an empty message id".into()));
        }
        self.inner
            .change_group_state(&group, |s| {
                for r in row_ids {
                    if !s.hidden.iter().any(|h| h == r) {
                        s.hidden.push((*r).to_owned());
                    }
                }
            })
            .await
    }

    /// Clears a group's chat for this user: history (on every device) starts after its
    /// newest message so far.
    pub async fn clear_chat(&self, group: impl ToJid) -> Result<(), RequestError> {
        let group = self.group_jid_of(group)?;
        let newest = self
            .inner
            .history_page(HistoryQuery::latest(group.to_string(), 1))
            .await?;
        let Some(last) = newest.messages.last().map(|m| m.row_id.clone()) else {
            return Ok(()); // nothing to clear
        };
        self.inner
            .change_group_state(&group, move |s| {
                s.cleared_up_to = Some(last);
                // What was hidden before the mark is cleared anyway.
                s.hidden.clear();
            })
            .await
    }
}

impl Inner {
    /// The archived row `row_id` of `group` (404 when there is none).
    pub(crate) async fn find_row(
        &self,
        group: &BareJid,
        row_id: &str,
    ) -> Result<ArchivedMessage, RequestError> {
        let not_found = || RequestError::NotFound(format!("no message {row_id} in {group}"));
        let archive = group.to_string();
        let after = self
            .history_page(HistoryQuery {
                group: archive.clone(),
                with: None,
                direction: Direction::Down,
                last_row_id: Some(row_id.to_owned()),
                limit: 1,
            })
            .await
            .map_err(|e| match e {
                RequestError::NotFound(_) => not_found(),
                RequestError::Stanza(s) if s.condition == "item-not-found" => not_found(),
                other => other,
            })?;
        // The row just before the next one (or the newest, when it is the last).
        let query = match after.messages.first() {
            Some(next) => HistoryQuery {
                group: archive.clone(),
                with: None,
                direction: Direction::Up,
                last_row_id: Some(next.row_id.clone()),
                limit: 1,
            },
            None => HistoryQuery::latest(archive, 1),
        };
        self.history_page(query)
            .await?
            .messages
            .into_iter()
            .find(|m| m.row_id == row_id)
            .ok_or_else(not_found)
    }

    /// Reads what the user hid in each group (at login).
    pub(crate) async fn load_group_states(&self) {
        let Ok(iq) = self.request(None, group_state::get_all).await else {
            return; // no node yet
        };
        let states = group_state::decode_result(&iq).unwrap_or_default();
        let _ = self
            .with(move |c| {
                for s in states {
                    if let Ok(g) = s.group.parse::<BareJid>() {
                        c.group_states.insert(g, s);
                    }
                }
            })
            .await;
    }

    /// Changes `group`'s state as read from the server now (another device may have changed
    /// it), publishes it, and reports the change here (other devices hear of it from the
    /// server).
    async fn change_group_state(
        &self,
        group: &BareJid,
        change: impl FnOnce(&mut GroupState),
    ) -> Result<(), RequestError> {
        let _one = self.bookmark_lock.lock().await;
        let current = match self.request(None, group_state::get_all).await {
            Ok(iq) => group_state::decode_result(&iq).unwrap_or_default(),
            Err(RequestError::Stanza(_)) => Vec::new(), // no node yet
            Err(e) => return Err(e),
        };
        let mut state = current
            .into_iter()
            .find(|s| s.group == group.as_str())
            .unwrap_or_else(|| GroupState::new(group.as_str()));
        change(&mut state);
        self.request(None, |id| group_state::publish(id, &state))
            .await?;
        self.with(move |c| c.group_state_published(state)).await
    }
}

impl Core {
    /// A member retracted a message: reported once the archive confirms that the message was
    /// theirs (a member cannot delete someone else's message for everyone).
    pub(crate) fn on_retracted(&mut self, group: BareJid, id: String, by: Occupant) {
        let Some(by_jid) = by.jid else {
            return;
        };
        let t = self.reserve();
        self.start(move |inner| {
            Box::pin(async move {
                let sender = match inner.find_row(&group, &id).await {
                    Ok(row) => Occupant::archived_sender(&row.message).jid,
                    Err(e) => {
                        tracing::debug!(%group, error = %e, "retracted message not found");
                        None
                    }
                };
                let event = (sender.as_ref() == Some(&by_jid)).then(|| Event::MessageDeleted {
                    group,
                    row_id: id,
                    by: Some(by_jid),
                    for_everyone: true,
                });
                if event.is_none() {
                    tracing::debug!("a retraction of someone else's message: ignored");
                }
                inner.tell(move |c| c.fill(t, event));
            })
        });
    }
}
