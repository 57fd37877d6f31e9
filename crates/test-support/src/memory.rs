//! An in-memory server for deterministic tests of the SDK's own logic: a [`Connector`] whose
//! links end in the test, which plays the server stanza by stanza.
//!
//! The link does the stream negotiation itself (features, SASL PLAIN, bind, stream
//! management, acks), so a test sees only the stanzas the client sends after its login and
//! answers what it wants, when it wants: on tokio's paused clock, notice windows and time-outs
//! are exact. It proves the SDK's logic; real-server tests prove the features.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use groupchat_protocol::{Framing, Tls};
use groupchat_transport::{Connector, Link, TransportError};
use tokio::sync::{Mutex, mpsc};

/// The server side: hands the test each connection the client opens.
#[derive(Debug)]
pub struct MemoryServer {
    connections: Mutex<mpsc::UnboundedReceiver<ServerConn>>,
    refuse: Arc<AtomicBool>,
}

/// The client side: give it to the SDK's builder (`.connector(...)`).
#[derive(Debug)]
pub struct MemoryConnector {
    account: String,
    connections: mpsc::UnboundedSender<ServerConn>,
    refuse: Arc<AtomicBool>,
}

/// A new in-memory server for `account` (a bare JID, e.g. `alice@localhost`).
pub fn memory_server(account: &str) -> (Arc<MemoryConnector>, MemoryServer) {
    let (tx, rx) = mpsc::unbounded_channel();
    let refuse = Arc::new(AtomicBool::new(false));
    (
        Arc::new(MemoryConnector {
            account: account.to_owned(),
            connections: tx,
            refuse: refuse.clone(),
        }),
        MemoryServer {
            connections: Mutex::new(rx),
            refuse,
        },
    )
}

impl MemoryServer {
    /// The next connection the client opened (logged in or not yet: its stanzas arrive
    /// after the login).
    pub async fn accept(&self) -> ServerConn {
        self.connections
            .lock()
            .await
            .recv()
            .await
            .expect("the connector is gone")
    }

    /// From now on, connection attempts fail (connection refused), or succeed again.
    pub fn refuse_connections(&self, refuse: bool) {
        self.refuse.store(refuse, Ordering::SeqCst);
    }
}

/// One stanza the client sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The element as sent.
    pub xml: String,
}

impl Sent {
    /// The element's name (`iq`, `message`, `presence`).
    pub fn name(&self) -> &str {
        let s = self.xml.trim_start_matches('<');
        let end = s
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(s.len());
        &s[..end]
    }

    /// The value of attribute `name` of the element itself.
    pub fn attr(&self, name: &str) -> Option<&str> {
        let head = &self.xml[..self.xml.find('>').unwrap_or(self.xml.len())];
        attr(head, name)
    }

    /// True when the element contains `needle` (a namespace, an element name, ...).
    pub fn has(&self, needle: &str) -> bool {
        self.xml.contains(needle)
    }
}

/// `name='value'` or `name="value"` in `tag`.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = tag;
    loop {
        let at = rest.find(name)?;
        let before = rest[..at].chars().last();
        let after = &rest[at + name.len()..];
        rest = after;
        if !before.is_some_and(char::is_whitespace) {
            continue;
        }
        let Some(v) = after.strip_prefix('=') else {
            continue;
        };
        let quote = v.chars().next()?;
        let v = &v[1..];
        return v.find(quote).map(|end| &v[..end]);
    }
}

enum ToClient {
    Data(Bytes),
    Reset,
}

/// One connection, as the server sees it.
#[derive(Debug)]
pub struct ServerConn {
    from_client: mpsc::UnboundedReceiver<Sent>,
    to_client: mpsc::UnboundedSender<ToClient>,
}

impl std::fmt::Debug for ToClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Data(b) => write!(f, "Data({} bytes)", b.len()),
            Self::Reset => f.write_str("Reset"),
        }
    }
}

impl ServerConn {
    /// The next stanza the client sent after its login; `None` once the link is closed.
    pub async fn recv(&mut self) -> Option<Sent> {
        self.from_client.recv().await
    }

    /// Sends `xml` (one or more stanzas) to the client.
    pub fn send(&self, xml: impl Into<String>) {
        let _ = self
            .to_client
            .send(ToClient::Data(Bytes::from(xml.into().into_bytes())));
    }

    /// Breaks the link (the client sees a connection reset).
    pub fn reset(&self) {
        let _ = self.to_client.send(ToClient::Reset);
    }
}

#[async_trait]
impl Connector for MemoryConnector {
    fn framing(&self) -> Framing {
        Framing::Stream
    }

    /// An in-process pipe nobody else can read: as private as a TLS link.
    fn tls(&self) -> Tls {
        Tls::Encrypted
    }

    async fn connect(&self) -> Result<Box<dyn Link>, TransportError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "the in-memory server refuses connections",
            )
            .into());
        }
        let (to_test, from_client) = mpsc::unbounded_channel();
        let (to_client, from_test) = mpsc::unbounded_channel();
        self.connections
            .send(ServerConn {
                from_client,
                to_client,
            })
            .map_err(|_| TransportError::Ended)?;
        Ok(Box::new(MemoryLink {
            account: self.account.clone(),
            to_test,
            from_test,
            out: VecDeque::new(),
            buf: String::new(),
            authenticated: false,
            logged_in: false,
            handled: 0,
        }))
    }
}

struct MemoryLink {
    account: String,
    to_test: mpsc::UnboundedSender<Sent>,
    from_test: mpsc::UnboundedReceiver<ToClient>,
    /// Negotiation answers, sent before anything of the test's.
    out: VecDeque<Bytes>,
    /// Bytes of an element not yet complete.
    buf: String,
    authenticated: bool,
    logged_in: bool,
    /// Stanzas received since stream management was enabled (XEP-0198 `h`).
    handled: u32,
}

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='mem1' from='localhost' version='1.0'>";

/// The length of the first complete element (or stream header) in `s`, if any.
fn first_element(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let close = b.get(i + 1) == Some(&b'/');
        let decl = matches!(b.get(i + 1), Some(b'?' | b'!'));
        // The end of this tag, skipping quoted values.
        let mut j = i + 1;
        let mut quote = None;
        while j < b.len() {
            match (quote, b[j]) {
                (None, q @ (b'\'' | b'"')) => quote = Some(q),
                (Some(q), c) if c == q => quote = None,
                (None, b'>') => break,
                _ => {}
            }
            j += 1;
        }
        if j >= b.len() {
            return None;
        }
        let self_closing = b[j - 1] == b'/';
        if s[i..].starts_with("<stream:stream") || decl {
            return Some(j + 1);
        } else if close {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return Some(j + 1);
            }
        } else if self_closing {
            if depth == 0 {
                return Some(j + 1);
            }
        } else {
            depth += 1;
        }
        i = j + 1;
    }
    None
}

impl MemoryLink {
    fn reply(&mut self, s: &str) {
        self.out.push_back(Bytes::copy_from_slice(s.as_bytes()));
    }

    fn element(&mut self, e: String) {
        let sent = Sent { xml: e };
        if sent.xml.starts_with("<stream:stream") {
            let features = if self.authenticated {
                "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/></stream:features>"
            } else {
                "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>"
            };
            self.reply(&format!("{HEADER}{features}"));
            return;
        }
        match sent.name() {
            "auth" => {
                self.authenticated = true;
                self.reply("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
            }
            "iq" if !self.logged_in && sent.has("urn:ietf:params:xml:ns:xmpp-bind") => {
                let id = sent.attr("id").unwrap_or_default().to_owned();
                let resource = sent
                    .xml
                    .split("<resource>")
                    .nth(1)
                    .and_then(|r| r.split('<').next())
                    .unwrap_or("mem")
                    .to_owned();
                let account = self.account.clone();
                self.reply(&format!(
                    "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>{account}/{resource}</jid></bind></iq>"
                ));
            }
            "enable" => {
                self.logged_in = true;
                self.reply("<enabled xmlns='urn:xmpp:sm:3' id='sm1' resume='true'/>");
            }
            "resume" => self.reply("<failed xmlns='urn:xmpp:sm:3'/>"),
            "r" => {
                let h = self.handled;
                self.reply(&format!("<a xmlns='urn:xmpp:sm:3' h='{h}'/>"));
            }
            // Acks, and the stream's end.
            "a" | "/stream:stream" => {}
            _ => {
                if self.logged_in {
                    self.handled += 1;
                }
                let _ = self.to_test.send(sent);
            }
        }
    }
}

#[async_trait]
impl Link for MemoryLink {
    async fn send(&mut self, data: Bytes) -> Result<(), TransportError> {
        self.buf.push_str(&String::from_utf8_lossy(&data));
        while let Some(n) = first_element(&self.buf) {
            let e: String = self.buf.drain(..n).collect();
            let e = e.trim().to_owned();
            if e.starts_with("<?") {
                continue;
            }
            self.element(e);
        }
        Ok(())
    }

    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        if let Some(b) = self.out.pop_front() {
            return Ok(Some(b));
        }
        match self.from_test.recv().await {
            Some(ToClient::Data(b)) => Ok(Some(b)),
            Some(ToClient::Reset) => Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "the in-memory server reset the link",
            )
            .into()),
            None => Ok(None),
        }
    }

    async fn start_tls(&mut self) -> Result<(), TransportError> {
        Err(TransportError::Ended)
    }

    async fn close(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_split_where_they_end() {
        assert_eq!(first_element("<a/><b/>"), Some(4));
        assert_eq!(first_element("<iq id='x>'><q/></iq><b/>"), Some(21));
        assert_eq!(first_element("<iq><q/>"), None);
        assert_eq!(
            first_element("<stream:stream xmlns='jabber:client'><iq/>"),
            Some(37)
        );
    }

    #[test]
    fn attributes_are_read_from_the_element_itself() {
        let s = Sent {
            xml: "<iq type='get' id=\"q1\" to='conference.localhost'><query/></iq>".into(),
        };
        assert_eq!(s.name(), "iq");
        assert_eq!(s.attr("id"), Some("q1"));
        assert_eq!(s.attr("to"), Some("conference.localhost"));
        assert_eq!(s.attr("from"), None);
    }
}
