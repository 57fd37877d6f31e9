//! One module per specification; each names its XEP (or RFC) in its first doc line.

pub mod bookmarks;
pub mod caps;
pub mod chat_states;
pub mod delay;
pub mod direct_invite;
pub mod disco;
pub mod hints;
pub mod mam;
pub mod markers;
pub mod media;
pub mod muc;
pub mod muc_admin;
pub mod muc_owner;
pub mod muc_user;
pub mod ping;
pub mod retract;
pub mod sid;
pub mod sm;
pub mod stanza_error;
pub mod upload;
pub mod vcard;
pub mod vcard_update;
