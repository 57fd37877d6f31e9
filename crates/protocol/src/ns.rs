//! XML namespaces used by the session.

/// RFC 6120: client stanzas.
pub const CLIENT: &str = "jabber:client";
/// RFC 6120: the stream element and stream features.
pub const STREAM: &str = "http://etherx.jabber.org/streams";
/// RFC 6120: stream error conditions.
pub const STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// RFC 6120: stanza error conditions.
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// RFC 6120: STARTTLS.
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// RFC 6120: SASL.
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// RFC 6120: resource binding.
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// RFC 3921: legacy session establishment.
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// RFC 7395: WebSocket framing.
pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
/// XEP-0198: stream management.
pub const SM: &str = "urn:xmpp:sm:3";
/// XML 1.0: the `xml:` prefix.
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
