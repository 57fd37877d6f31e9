//! Helpers for the real-server tests of both transports (transport-tcp and transport-ws):
//! a quickly reconnecting client configuration, waiting for a state, an echo round trip.

use std::time::Duration;

use crate::Account;
use groupchat_protocol::codec::{Message, MessageType, Stanza};
use groupchat_transport::{Client, ClientConfig, ConnectionState, ReconnectPolicy, TransportEvent};

/// A client for `account` that reconnects quickly (100 ms, at most 1 s apart).
pub fn config(account: &Account) -> ClientConfig {
    let mut c = ClientConfig::new(account.jid.parse().unwrap(), account.password.as_str());
    let mut r = ReconnectPolicy::default();
    r.initial_delay = Duration::from_millis(100);
    r.max_delay = Duration::from_secs(1);
    c.reconnect = r;
    c.connect_timeout = Duration::from_secs(15);
    c
}

/// Reads events until a state matching `f`; panics on an end, a timeout or a gone client.
pub async fn until_state(
    client: &mut Client,
    what: &str,
    f: impl Fn(&ConnectionState) -> bool,
) -> ConnectionState {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        match tokio::time::timeout_at(deadline, client.next_event()).await {
            Err(_) => panic!("timed out waiting for {what}: {:?}", client.state()),
            Ok(Some(TransportEvent::State(s))) if f(&s) => return s,
            Ok(Some(TransportEvent::State(ConnectionState::Ended { reason }))) => {
                panic!("ended while waiting for {what}: {reason:?}")
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("client gone while waiting for {what}"),
        }
    }
}

/// `Connected`, resumed or not.
pub fn connected(s: &ConnectionState) -> bool {
    matches!(s, ConnectionState::Connected { .. })
}

/// `Ended`, for any reason.
pub fn ended(s: &ConnectionState) -> bool {
    matches!(s, ConnectionState::Ended { .. })
}

/// A chat message whose body doubles as its id.
pub fn chat(to: &str, body: &str) -> Vec<u8> {
    Message::text(
        to.parse().unwrap(),
        MessageType::Chat,
        body.to_owned(),
        body.to_owned(),
    )
    .encode()
}

/// Initial presence.
pub fn presence() -> Vec<u8> {
    b"<presence xmlns='jabber:client'/>".to_vec()
}

/// Sends `body` to our own full JID and waits until it comes back.
pub async fn echo(c: &mut Client, body: &str) {
    let jid = match c.state() {
        ConnectionState::Connected { jid, .. } => jid,
        s => panic!("not connected: {s:?}"),
    };
    c.send(chat(&jid.to_string(), body)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, c.next_event())
            .await
            .expect("echo timed out")
        {
            Some(TransportEvent::Stanza(Stanza::Message(m))) if m.body.as_deref() == Some(body) => {
                return;
            }
            Some(_) => {}
            None => panic!("client ended"),
        }
    }
}
