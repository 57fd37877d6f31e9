//! The client task: one session at a time over one link, reconnecting between them.

use std::collections::VecDeque;
use std::sync::Arc;

use groupchat_protocol::{Config, Event, Input, Output, Resumption, SendId, Session, SessionError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{Instrument as _, debug, trace, warn};

use crate::{
    ClientConfig, Command, ConnectionState, Connector, Link, TransportError, TransportEvent,
};

/// A stanza waiting for a session to send it.
struct Pending {
    bytes: Vec<u8>,
    reply: Option<oneshot::Sender<Result<SendId, TransportError>>>,
}

struct Driver {
    config: ClientConfig,
    connector: Arc<dyn Connector>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<Vec<TransportEvent>>,
    /// Events of the input being handled, handed over together once the session has
    /// nothing more to do: the reader wakes once per read, not once per stanza.
    pending: Vec<TransportEvent>,
    state: watch::Sender<ConnectionState>,
    /// Stanzas the application sent while no session was bound, in order.
    outbox: VecDeque<Pending>,
    resumption: Option<Resumption>,
    next_send_id: u64,
    closing: bool,
}

/// How one connection ended.
enum End {
    /// Closed on request (or because the application dropped its handle).
    Closed,
    /// Lost; `bound_at` says when it had logged in, if it had.
    Lost {
        reason: TransportError,
        bound_at: Option<Instant>,
    },
}

/// The session clock: tokio's, so that tests with a paused clock drive the session's timers
/// too.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

pub(crate) async fn run(
    config: ClientConfig,
    connector: Arc<dyn Connector>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<Vec<TransportEvent>>,
    state: watch::Sender<ConnectionState>,
) {
    let mut d = Driver {
        config,
        connector,
        commands,
        events,
        pending: Vec::new(),
        state,
        outbox: VecDeque::new(),
        resumption: None,
        next_send_id: 0,
        closing: false,
    };
    let span = tracing::info_span!("xmpp", jid = %d.config.jid);
    d.run().instrument(span).await;
}

/// What a received stanza is, for a trace line: its kind, id and sender, never its content.
fn describe(s: &groupchat_protocol::codec::Stanza) -> (&'static str, Option<&str>, String) {
    use groupchat_protocol::codec::Stanza;
    let (kind, id, from) = match s {
        Stanza::Message(m) => ("message", m.id.as_deref(), m.from.as_ref()),
        Stanza::Presence(p) => ("presence", p.id.as_deref(), p.from.as_ref()),
        Stanza::Iq(iq) => ("iq", Some(iq.id.as_str()), iq.from.as_ref()),
        _ => ("other", None, None),
    };
    (kind, id, from.map(ToString::to_string).unwrap_or_default())
}

fn entropy() -> [u8; 32] {
    let mut e = [0u8; 32];
    // Without OS entropy the nonce still differs per session (the core mixes in the time).
    let _ = getrandom::fill(&mut e);
    e
}

fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

impl Driver {
    async fn set_state(&mut self, s: ConnectionState) {
        self.state.send_replace(s.clone());
        self.emit(TransportEvent::State(s));
        self.flush().await;
    }

    /// Hands the pending events over. Called before every wait, so none is held back.
    async fn flush(&mut self) {
        if !self.pending.is_empty() {
            // An application that dropped its handle no longer reads: that is fine.
            let _ = self.events.send(std::mem::take(&mut self.pending)).await;
        }
    }

    async fn run(&mut self) {
        let mut attempt = 1u32;
        loop {
            self.set_state(ConnectionState::Connecting { attempt })
                .await;
            debug!(attempt, "connecting");
            let end =
                match tokio::time::timeout(self.config.connect_timeout, self.connector.connect())
                    .await
                {
                    // The connector moves on to its next address (if it has several).
                    Err(_) => {
                        self.connector.session_ended(false);
                        End::Lost {
                            reason: TransportError::Timeout("connecting"),
                            bound_at: None,
                        }
                    }
                    Ok(Err(e)) => {
                        self.connector.session_ended(false);
                        End::Lost {
                            reason: e,
                            bound_at: None,
                        }
                    }
                    Ok(Ok(link)) => {
                        let span = tracing::debug_span!("connection", attempt);
                        let end = self.connection(link).instrument(span).await;
                        if let End::Lost { bound_at, .. } = &end {
                            self.connector.session_ended(bound_at.is_some());
                        }
                        end
                    }
                };
            let reason = match end {
                End::Closed => {
                    self.fail_outbox(TransportError::Ended);
                    self.set_state(ConnectionState::Ended { reason: None })
                        .await;
                    return;
                }
                End::Lost { reason, bound_at } => {
                    debug!(
                        %reason,
                        up_for = ?bound_at.map(|t| t.elapsed()),
                        "connection lost"
                    );
                    // Only a session that stayed up a while proves the server healthy: one
                    // that dies right after login (a middlebox, a poisoned offline queue)
                    // must not earn a fast full login, and its rejoins, every second.
                    if bound_at.is_some_and(|t| t.elapsed() >= self.config.reconnect.reset_after) {
                        attempt = 1;
                    }
                    reason
                }
            };
            let policy = &self.config.reconnect;
            let give_up = reason.is_permanent()
                || self.closing
                || !policy.enabled
                || policy.max_attempts.is_some_and(|m| attempt >= m);
            if give_up {
                warn!(%reason, permanent = reason.is_permanent(), "giving up");
                self.fail_outbox(reason.clone());
                self.set_state(ConnectionState::Ended {
                    reason: Some(reason),
                })
                .await;
                return;
            }
            self.set_state(ConnectionState::Disconnected { reason })
                .await;
            attempt += 1;
            let delay = self.config.reconnect.delay(attempt - 1, unit_random());
            debug!(attempt, ?delay, "reconnecting after a delay");
            self.set_state(ConnectionState::Reconnecting { attempt, delay })
                .await;
            // Commands keep flowing while we wait: sends are queued, close ends it.
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    cmd = self.commands.recv() => match cmd {
                        Some(Command::Send { bytes, reply }) => self.outbox.push_back(Pending { bytes, reply: Some(reply) }),
                        Some(Command::Close) | None => {
                            self.fail_outbox(TransportError::Ended);
                            self.set_state(ConnectionState::Ended { reason: None }).await;
                            return;
                        }
                    },
                }
            }
        }
    }

    fn fail_outbox(&mut self, e: TransportError) {
        for p in self.outbox.drain(..) {
            if let Some(r) = p.reply {
                let _ = r.send(Err(e.clone()));
            }
        }
    }

    fn session_config(&mut self) -> Config {
        let c = &self.config;
        let mut s = Config::new(
            c.jid.clone(),
            c.password.clone(),
            self.connector.framing(),
            entropy(),
        );
        s.tls = self.connector.tls();
        s.allow_plain_without_tls = c.allow_plain_without_tls;
        s.mechanisms.clone_from(&c.mechanisms);
        s.limits = c.limits;
        s.negotiation_timeout = c.connect_timeout;
        s.keepalive_interval = c.keepalive_interval;
        s.ack_timeout = c.ack_timeout;
        s.resume = self.resumption.take();
        s.first_send_id = self.next_send_id;
        s
    }

    async fn connection(&mut self, mut link: Box<dyn Link>) -> End {
        let mut session = Session::new(self.session_config(), now());
        let mut bound: Option<Instant> = None;
        let mut link_error = None;
        let end = loop {
            let deadline = match self
                .drain(&mut session, link.as_mut(), &mut bound, &mut link_error)
                .await
            {
                Drained::End(e) => break e,
                Drained::Wait(d) => d,
            };
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = link.recv() => match r {
                    Ok(Some(b)) => session.handle_input(Input::Received { now: now(), data: &b }),
                    Ok(None) => session.handle_input(Input::TransportClosed(now())),
                    Err(e) => {
                        link_error = Some(e);
                        session.handle_input(Input::TransportClosed(now()));
                    }
                },
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Send { bytes, reply }) => {
                        if session.is_connected() {
                            let r = self.send_now(&mut session, bytes);
                            let _ = reply.send(r);
                        } else {
                            self.outbox.push_back(Pending { bytes, reply: Some(reply) });
                        }
                    }
                    // Close on request, or when the application dropped its handle.
                    Some(Command::Close) | None => {
                        self.closing = true;
                        session.close(now());
                    }
                },
                () = sleep => session.handle_input(Input::Timeout(now())),
            }
        };
        link.close().await;
        end
    }

    fn send_now(
        &mut self,
        session: &mut Session,
        bytes: Vec<u8>,
    ) -> Result<SendId, TransportError> {
        let id = session
            .send_encoded(now(), bytes)
            .map_err(TransportError::Usage)?;
        self.next_send_id = id.0 + 1;
        Ok(id)
    }

    /// Carries out every pending output of the session.
    async fn drain(
        &mut self,
        session: &mut Session,
        link: &mut dyn Link,
        bound: &mut Option<Instant>,
        link_error: &mut Option<TransportError>,
    ) -> Drained {
        loop {
            match session.poll_output() {
                Output::Transmit(b) => {
                    if let Err(e) = link.send(b).await {
                        link_error.get_or_insert(e);
                        session.handle_input(Input::TransportClosed(now()));
                    }
                }
                Output::StartTls => match link.start_tls().await {
                    Ok(()) => session.handle_input(Input::TlsEstablished(now())),
                    Err(e) => {
                        return Drained::End(End::Lost {
                            reason: e,
                            bound_at: *bound,
                        });
                    }
                },
                Output::Event(ev) => {
                    if let Some(end) = self.session_event(session, ev, bound, link_error).await {
                        self.flush().await;
                        return Drained::End(end);
                    }
                }
                Output::Timeout(d) => {
                    self.flush().await;
                    return Drained::Wait(d);
                }
                _ => {}
            }
        }
    }

    fn emit(&mut self, e: TransportEvent) {
        self.pending.push(e);
    }

    async fn session_event(
        &mut self,
        session: &mut Session,
        ev: Event,
        bound: &mut Option<Instant>,
        link_error: &mut Option<TransportError>,
    ) -> Option<End> {
        match ev {
            Event::Connected {
                jid,
                resumed,
                acked,
            } => {
                debug!(%jid, resumed, outbox = self.outbox.len(), "logged in");
                *bound = Some(Instant::now());
                self.set_state(ConnectionState::Connected {
                    jid,
                    resumed,
                    acked,
                })
                .await;
                // What the application sent while we were away goes out now, in order.
                while let Some(p) = self.outbox.pop_front() {
                    let r = self.send_now(session, p.bytes);
                    if let Some(reply) = p.reply {
                        let _ = reply.send(r);
                    }
                }
                None
            }
            Event::Stanza(s) => {
                if tracing::enabled!(tracing::Level::TRACE) {
                    let (kind, id, from) = describe(&s);
                    trace!(kind, id, from, "stanza received");
                }
                self.emit(TransportEvent::Stanza(s));
                None
            }
            Event::Acked { up_to } => {
                self.emit(TransportEvent::Acked { up_to });
                None
            }
            Event::ResumeFailed { unacked } => {
                debug!(
                    unacked = unacked.len(),
                    "resumption refused: a fresh session"
                );
                self.emit(TransportEvent::Unacknowledged { stanzas: unacked });
                None
            }
            Event::StanzaDropped { reason, envelope } => {
                debug!(
                    %reason,
                    name = envelope.as_ref().map(|e| e.name.as_str()),
                    from = envelope.as_ref().and_then(|e| e.from.as_ref()).map(ToString::to_string),
                    "stanza dropped"
                );
                self.emit(TransportEvent::Dropped { reason, envelope });
                None
            }
            Event::Closed => Some(if self.closing {
                End::Closed
            } else {
                End::Lost {
                    reason: TransportError::Closed,
                    bound_at: *bound,
                }
            }),
            Event::Disconnected { reason } => {
                self.resumption = session.resumption();
                self.next_send_id = session.next_send_id().0;
                let reason = match (reason, link_error.take()) {
                    (SessionError::ConnectionLost, Some(e)) => e,
                    (r, _) => TransportError::Session(r),
                };
                Some(End::Lost {
                    reason,
                    bound_at: *bound,
                })
            }
            _ => None,
        }
    }
}

/// The outcome of draining a session's outputs.
enum Drained {
    /// Wait for input until this deadline.
    Wait(Option<std::time::Instant>),
    /// The connection is over.
    End(End),
}
