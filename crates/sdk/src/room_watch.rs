//! Rooms lost while connected, and getting them back.
//!
//! A group's room can vanish while our connection stays up: in a cluster, the node hosting
//! it stops (ejabberd does not move rooms), and the room restarts on another node at the
//! next stanza addressed to it — without us. The server tells occupants with status 332 when
//! the node shuts down cleanly, and nothing when it dies. Three signs mean "we are out":
//!
//! - a presence with status 332 ([`GroupEvent::RoomShutDown`]);
//! - one of our messages refused with `not-acceptable` (only occupants may send), or as
//!   sent to a room or service that is missing for a moment ([`rejoin_may_cure`]);
//! - a XEP-0410 self-ping, sent when nothing arrived from the room for
//!   [`ClientBuilder::room_check`] or when one of our messages is not confirmed within
//!   3 s, answered with `not-acceptable` or `item-not-found`.
//!
//! Each starts the same recovery: the room is joined again, [`Event::GroupsJoined`] says
//! which group and why, the archive is read from the last message the application got
//! (catch-up, with live messages waiting behind it and copies recognised), and our messages
//! the lost room did not take are sent again, in their order — those the archive shows it
//! took are confirmed instead. Meanwhile new messages to the group wait.
//!
//! [`GroupEvent::RoomShutDown`]: groupchat_protocol::group::GroupEvent::RoomShutDown
//! [`ClientBuilder::room_check`]: crate::ClientBuilder::room_check
//! [`Event::GroupsJoined`]: crate::Event::GroupsJoined

use std::sync::Arc;
use std::time::Duration;

use groupchat_protocol::codec::Stanza;
use groupchat_protocol::codec::xep::ping;
use groupchat_protocol::jid::BareJid;
use tokio::time::Instant;

use crate::client::Inner;
use crate::core::{Core, SendState};
use crate::error::RequestError;
use crate::events::{Event, JoinReason};

/// A room's refusal of our message that joining again may cure: we are not in the room
/// (`not-acceptable`: only occupants may send), or the room or its service is missing for a
/// moment (in a cluster, its node died and it has not restarted elsewhere yet). A group
/// that is really gone is found so by the rejoin, which fails the message.
pub(crate) fn rejoin_may_cure(condition: &str) -> bool {
    matches!(
        condition,
        "not-acceptable"
            | "item-not-found"
            | "service-unavailable"
            | "recipient-unavailable"
            | "remote-server-not-found"
            | "remote-server-timeout"
    )
}

/// How long a self-ping waits for its answer (at most the request timeout).
const PING_WAIT: Duration = Duration::from_secs(10);

impl Core {
    /// Notes that something arrived from a group's room (a self-ping waits for silence).
    pub(crate) fn heard_from(&mut self, stanza: &Stanza) {
        let from = match stanza {
            Stanza::Message(m) => m.from.as_ref(),
            Stanza::Presence(p) => p.from.as_ref(),
            Stanza::Iq(iq) => iq.from.as_ref(),
            _ => None,
        };
        if let Some(from) = from
            && self.tracker.services().is_group(from)
            && let Some(r) = self.records.get_mut(&from.to_bare())
        {
            r.heard = Some(Instant::now());
        }
    }

    /// We are out of `group`'s room while connected: join it again, catch up, send again
    /// what it did not take. Nothing to do for a group not in our list, one we are leaving,
    /// or while disconnected (the new session joins every group). During a recovery, a
    /// loss after its join starts another one when it ends; signs before the join are
    /// about the room that was lost.
    pub(crate) fn room_lost(&mut self, group: &BareJid, reason: JoinReason) {
        let rooms_away = self.rooms_away;
        let Some(r) = self.records.get_mut(group) else {
            return;
        };
        if r.recovering {
            if r.rejoined {
                r.lost_again.get_or_insert(reason);
            }
            return;
        }
        if !r.listed || r.exiting || rooms_away {
            return;
        }
        tracing::debug!(%group, ?reason, "out of the group's room: joining again");
        self.tracker.forget(group);
        let epoch = self.begin_recovery(group);
        let group = group.clone();
        self.start(move |inner| Box::pin(async move { inner.recover(group, reason, epoch).await }));
    }

    /// A recovery of `group` begins (a lost room, or a new session): its messages are held
    /// and its live messages wait for the catch-up. Returns the recovery's epoch: the
    /// steps of an older recovery, still running, no longer act on the group.
    pub(crate) fn begin_recovery(&mut self, group: &BareJid) -> u64 {
        self.begin_catch_up(group);
        self.record(group).pinging = false;
        self.hold(group, false)
    }

    /// Holds the messages to `group` under a new epoch (`rejoined`: we are in its room,
    /// and only the messages waiting for it are still to go).
    pub(crate) fn hold(&mut self, group: &BareJid, rejoined: bool) -> u64 {
        let r = self.record(group);
        r.epoch += 1;
        r.recovering = true;
        r.rejoined = rejoined;
        r.lost_again = None;
        r.epoch
    }

    /// True while recovery `epoch` is the group's latest.
    pub(crate) fn is_current(&self, group: &BareJid, epoch: u64) -> bool {
        self.records.get(group).is_some_and(|r| r.epoch == epoch)
    }

    /// The recovery's join failed (the group is tried again at the next check) or found
    /// the group gone (reported; what waited for it fails).
    pub(crate) fn not_rejoined(&mut self, group: &BareJid) {
        self.end_catch_up(group);
        let r = self.record(group);
        r.recovering = false;
        r.rejoined = false;
        r.lost_again = None;
        if !self.is_listed(group) {
            self.fail_messages_to(group);
        }
    }

    /// The periodic check: a listed group we are not in (an earlier join failed) is
    /// joined again; a room silent for `room_check` gets a self-ping.
    pub(crate) fn watch_rooms(&mut self) {
        if self.rooms_away || !self.connected_once {
            return;
        }
        let quiet_since = Instant::now().checked_sub(self.inner.room_check);
        let mut lost = Vec::new();
        let mut ping = Vec::new();
        for (group, r) in &self.records {
            if !r.listed || r.exiting || r.recovering || r.pinging {
                continue;
            }
            if !self.in_room(group) {
                lost.push(group.clone());
            } else if r.heard.is_none_or(|t| quiet_since.is_some_and(|q| t <= q)) {
                ping.push(group.clone());
            }
        }
        for group in lost {
            self.room_lost(&group, JoinReason::Retry);
        }
        for group in ping {
            self.check_room(&group);
        }
    }

    /// Asks `group`'s room now whether we are still in it (a message to it is waiting for
    /// its confirmation), unless a check or a recovery is under way.
    pub(crate) fn check_room(&mut self, group: &BareJid) {
        if self.rooms_away || !self.in_room(group) {
            return;
        }
        let Some(r) = self.records.get_mut(group) else {
            return;
        };
        if !r.listed || r.exiting || r.recovering || r.pinging {
            return;
        }
        r.pinging = true;
        let group = group.clone();
        self.start(move |inner| Box::pin(async move { inner.self_ping(group).await }));
    }

    /// The end of recovery `epoch` (joined, caught up): the messages the lost room did not
    /// take go out again, in their order, then the ones held meanwhile; the group takes
    /// sends directly only once all of them are handed to the connection, so that none is
    /// overtaken.
    pub(crate) fn recovered(&mut self, group: &BareJid, epoch: u64) {
        if !self.is_current(group, epoch) {
            return;
        }
        let out = self.take_for_sending(group, true);
        self.release(group, epoch, out);
    }

    /// Hands `out` to the connection, then what was held meanwhile, until nothing is left;
    /// then ends the hold (or starts the recovery a loss during it asked for).
    pub(crate) fn release(&mut self, group: &BareJid, epoch: u64, out: Vec<Vec<u8>>) {
        if out.is_empty() {
            let r = self.record(group);
            r.recovering = false;
            r.rejoined = false;
            if let Some(reason) = r.lost_again.take() {
                self.room_lost(group, reason);
            }
            return;
        }
        let group = group.clone();
        self.start(move |inner| {
            Box::pin(async move {
                for bytes in out {
                    let _ = inner.send(bytes).await;
                }
                inner.tell(move |c| {
                    if c.is_current(&group, epoch) {
                        let more = c.take_for_sending(&group, false);
                        c.release(&group, epoch, more);
                    }
                });
            })
        });
    }
}

impl Inner {
    /// Joins `group` again after its room was lost, reports it, catches up, and sends
    /// again what the lost room did not take; each step only while `epoch` is the group's
    /// latest recovery (a new session starts its own).
    async fn recover(self: Arc<Self>, group: BareJid, reason: JoinReason, epoch: u64) {
        let started = Instant::now();
        let joined = self.rejoin(&group).await == Some(true);
        let g = group.clone();
        let current = self
            .with(move |c| {
                if !c.is_current(&g, epoch) {
                    return false;
                }
                if joined {
                    c.record(&g).rejoined = true;
                    c.emit(Event::GroupsJoined {
                        groups: vec![g],
                        reason,
                    });
                } else {
                    c.not_rejoined(&g);
                }
                joined
            })
            .await;
        if current != Ok(true) {
            tracing::debug!(%group, ?reason, joined, "recovery ended without a join");
            return;
        }
        self.catch_up(&group, Some(epoch)).await;
        tracing::debug!(%group, ?reason, took = ?started.elapsed(), "group joined again and caught up");
        let _ = self.with(move |c| c.recovered(&group, epoch)).await;
    }

    /// XEP-0410: asks the room whether we are still in it, by pinging our own occupant JID.
    async fn self_ping(&self, group: BareJid) {
        let me = format!("{group}/{}", self.nick);
        // A ping lost with a dying node must not hold the next check back for long.
        let within = self.request_timeout.min(PING_WAIT);
        let answer = self
            .request_within(Some(&me), |id| ping::request(Some(&me), id), within)
            .await;
        let _ = self
            .with(move |c| {
                c.record(&group).pinging = false;
                match answer {
                    // The room does not know us: we are out.
                    Err(RequestError::Stanza(e))
                        if matches!(e.condition.as_str(), "not-acceptable" | "item-not-found") =>
                    {
                        c.room_lost(&group, JoinReason::SelfPing);
                    }
                    // Answered (by the room, or by our own client through it: XEP-0410's
                    // service-unavailable and feature-not-implemented mean the same).
                    Ok(_) | Err(RequestError::Stanza(_)) => {
                        c.record(&group).heard = Some(Instant::now());
                    }
                    // No answer (a ping lost with a dying node): asked again at once while
                    // our messages wait for the room's confirmation, else at the next check.
                    Err(_) => {
                        let waiting = c
                            .pending_msg
                            .values()
                            .any(|p| p.group == group && p.state == SendState::Sent);
                        if waiting {
                            c.check_room(&group);
                        }
                    }
                }
            })
            .await;
    }
}
