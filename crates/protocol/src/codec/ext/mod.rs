//! groupchat's own extensions, in namespaces of the project (`urn:xmpp:groupchat:*`): what
//! standard XMPP does not say and the SDK needs. Other clients ignore them (each carries a
//! fallback, or lives where only this SDK looks).

pub mod group_state;
pub mod notice;
