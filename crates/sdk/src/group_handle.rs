//! A per-group handle: the group calls without repeating the group's JID.

use groupchat_protocol::jid::BareJid;

use crate::client::Client;
use crate::error::RequestError;
use crate::group::{GroupImage, GroupProfile, Participant};
use crate::groups::SentMessage;
use crate::to_jid::ToJid;

/// One group, as [`Client::group`] gives it: each method is the [`Client`] call of the same
/// name for this group (as matrix-rust-sdk's `Room` or Smack's `MultiUserChat`). Cheap to
/// clone; it holds the client, so the session stays open while a handle lives.
#[derive(Clone, Debug)]
pub struct GroupHandle {
    client: Client,
    jid: BareJid,
}

impl Client {
    /// A handle on the group `jid` (a bare JID on the group service; 400 otherwise, 403 when
    /// the server has no group service). Nothing is sent: a group that does not exist shows
    /// as 404 on the first call.
    pub fn group(&self, jid: impl ToJid) -> Result<GroupHandle, RequestError> {
        Ok(GroupHandle {
            jid: self.group_arg(jid)?,
            client: self.clone(),
        })
    }
}

impl GroupHandle {
    /// The group's JID.
    pub fn jid(&self) -> &BareJid {
        &self.jid
    }

    /// [`Client::group_profile`].
    pub async fn profile(&self) -> Result<GroupProfile, RequestError> {
        self.client.group_profile(&self.jid).await
    }

    /// [`Client::set_group_profile`].
    pub async fn set_profile(
        &self,
        name: &str,
        image: Option<GroupImage>,
    ) -> Result<GroupProfile, RequestError> {
        self.client.set_group_profile(&self.jid, name, image).await
    }

    /// [`Client::participants`].
    pub async fn participants(&self) -> Result<Vec<Participant>, RequestError> {
        self.client.participants(&self.jid).await
    }

    /// [`Client::add_participants`].
    pub async fn add_participants<U: ToJid>(
        &self,
        users: impl IntoIterator<Item = U>,
    ) -> Result<(), RequestError> {
        self.client.add_participants(&self.jid, users).await
    }

    /// [`Client::remove_participant`].
    pub async fn remove_participant(&self, user: impl ToJid) -> Result<(), RequestError> {
        self.client.remove_participant(&self.jid, user).await
    }

    /// [`Client::make_admin`].
    pub async fn make_admin(&self, user: impl ToJid) -> Result<(), RequestError> {
        self.client.make_admin(&self.jid, user).await
    }

    /// [`Client::join_group`].
    pub async fn join(&self) -> Result<(), RequestError> {
        self.client.join_group(&self.jid).await
    }

    /// [`Client::exit_group`].
    pub async fn exit(&self) -> Result<(), RequestError> {
        self.client.exit_group(&self.jid).await
    }

    /// [`Client::delete_group`].
    pub async fn delete(&self) -> Result<(), RequestError> {
        self.client.delete_group(&self.jid).await
    }

    /// [`Client::send_text`] to this group.
    pub async fn send_text(&self, body: &str) -> Result<SentMessage, RequestError> {
        self.client.send_text(&self.jid, body).await
    }
}
