//! Typing notifications (XEP-0085 chat states, never archived): sending them, and reporting
//! other people's, with an expiry for a "typing" nobody clears (a client that crashed or lost
//! its link while its user typed).

use std::time::Duration;

use groupchat_protocol::codec::xep::chat_states::ChatState;
use groupchat_protocol::codec::{Message, MessageType};
use groupchat_protocol::jid::BareJid;
use serde::Serialize;
use tokio::time::Instant;

use crate::client::Client;
use crate::core::Core;
use crate::error::RequestError;
use crate::events::Event;
use crate::to_jid::ToJid;

/// How long a "typing" stands when nothing clears it.
pub(crate) const TYPING_TIMEOUT: Duration = Duration::from_secs(30);

/// What someone's typing indicator says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum TypingState {
    /// Typing (XEP-0085 `composing`).
    Composing,
    /// Stopped typing: `paused` (the seed's "gone" call), or any other state that ends
    /// composing (`active`, `inactive`, `gone`).
    Paused,
    /// A `composing` that nothing cleared within the typing timeout
    /// ([`ClientBuilder::typing_timeout`](crate::ClientBuilder::typing_timeout)).
    Expired,
}

impl Client {
    /// Tells a group or a user that we are typing (XEP-0085 `composing`, not archived).
    pub async fn send_typing(&self, to: impl ToJid) -> Result<(), RequestError> {
        self.send_chat_state(to, ChatState::Composing).await
    }

    /// Tells a group or a user that we stopped typing (the seed's "gone": XEP-0085
    /// `paused`, not archived).
    pub async fn send_typing_gone(&self, to: impl ToJid) -> Result<(), RequestError> {
        self.send_chat_state(to, ChatState::Paused).await
    }

    async fn send_chat_state(&self, to: impl ToJid, state: ChatState) -> Result<(), RequestError> {
        let jid = to.to_jid()?;
        let (to, kind) = if self.is_group(&jid) {
            (jid.into_bare().into(), MessageType::Groupchat)
        } else {
            (jid, MessageType::Chat)
        };
        self.inner
            .send(Message::chat_state(to, kind, state).encode())
            .await
    }
}

/// Who is typing where, and since when (the instant tells a newer "composing" from the one
/// an expiry check was started for).
pub(crate) type TypingKey = (BareJid, String);

impl Core {
    /// Someone's chat state in `conversation`: reported, and a "composing" armed to expire.
    /// Our own (the room reflects it) is not reported.
    pub(crate) fn on_typing(
        &mut self,
        conversation: BareJid,
        is_group: bool,
        from: Option<BareJid>,
        nick: Option<String>,
        state: ChatState,
    ) {
        if from.as_ref() == Some(&self.inner.me) || nick.as_deref() == Some(&self.inner.nick) {
            return;
        }
        let who = from
            .as_ref()
            .map(|j| j.to_string())
            .or_else(|| nick.clone())
            .unwrap_or_default();
        let key: TypingKey = (conversation.clone(), who);
        let state = if state == ChatState::Composing {
            let since = Instant::now();
            let first = self.typing.insert(key.clone(), since).is_none();
            if first {
                self.arm_typing_expiry(key, since, is_group, from.clone(), nick.clone());
            }
            TypingState::Composing
        } else {
            self.typing.remove(&key);
            TypingState::Paused
        };
        self.emit(Event::Typing {
            conversation,
            is_group,
            from,
            nick,
            state,
        });
    }

    /// After the timeout, reports an expiry unless the typing ended or was renewed (then
    /// checks again from the renewal).
    fn arm_typing_expiry(
        &mut self,
        key: TypingKey,
        since: Instant,
        is_group: bool,
        from: Option<BareJid>,
        nick: Option<String>,
    ) {
        self.start(move |inner| {
            Box::pin(async move {
                let timeout = inner.typing_timeout;
                tokio::time::sleep_until(since + timeout).await;
                inner.tell(move |c| match c.typing.get(&key).copied() {
                    Some(at) if at == since => {
                        c.typing.remove(&key);
                        c.emit(Event::Typing {
                            conversation: key.0,
                            is_group,
                            from,
                            nick,
                            state: TypingState::Expired,
                        });
                    }
                    // Renewed: count from the newest "composing".
                    Some(at) => c.arm_typing_expiry(key, at, is_group, from, nick),
                    None => {}
                });
            })
        });
    }
}
