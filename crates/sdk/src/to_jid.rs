//! JIDs as call arguments: text or typed.

use groupchat_protocol::jid::{BareJid, FullJid, Jid};

use crate::error::RequestError;

/// A JID given to a call: text (`&str`, `String`), parsed when the call runs (400 when it
/// is not a JID), or a typed JID from `groupchat_sdk::jid`, used as it is. So
/// `client.group_profile("team@conference.example.org")`, `client.group_profile(&group.jid)`
/// and a `Vec<String>` of members all work.
pub trait ToJid {
    /// The JID, or 400.
    fn to_jid(&self) -> Result<Jid, RequestError>;
}

impl ToJid for str {
    fn to_jid(&self) -> Result<Jid, RequestError> {
        self.trim()
            .parse()
            .map_err(|e| RequestError::BadRequest(format!("invalid JID {self:?}: {e}")))
    }
}

impl ToJid for String {
    fn to_jid(&self) -> Result<Jid, RequestError> {
        self.as_str().to_jid()
    }
}

impl ToJid for Jid {
    fn to_jid(&self) -> Result<Jid, RequestError> {
        Ok(self.clone())
    }
}

impl ToJid for BareJid {
    fn to_jid(&self) -> Result<Jid, RequestError> {
        Ok(self.clone().into())
    }
}

impl ToJid for FullJid {
    fn to_jid(&self) -> Result<Jid, RequestError> {
        Ok(self.clone().into())
    }
}

impl<T: ToJid + ?Sized> ToJid for &T {
    fn to_jid(&self) -> Result<Jid, RequestError> {
        (**self).to_jid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_typed_jids_are_accepted_and_bad_text_is_400() {
        let typed: BareJid = "bob@example.org".parse().unwrap();
        assert_eq!(
            " bob@example.org ".to_jid().unwrap(),
            typed.to_jid().unwrap()
        );
        assert_eq!(
            String::from("bob@example.org").to_jid().unwrap(),
            (&&typed).to_jid().unwrap()
        );
        assert_eq!("a@b@c".to_jid().unwrap_err().status_code(), 400);
    }
}
