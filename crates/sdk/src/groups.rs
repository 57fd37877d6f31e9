//! The group calls of the seed API, one async method each, and the bookkeeping behind them
//! (bookmarks, notices, profile events).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupchat_protocol::codec::xep::bookmarks::{self, Bookmark, Dialect};
use groupchat_protocol::codec::xep::muc_user::Affiliation;
use groupchat_protocol::codec::xep::notice::{Notice, NoticeKind};
use groupchat_protocol::codec::xep::stanza_error::{ErrorType, StanzaError};
use groupchat_protocol::codec::xep::vcard::{self, Photo};
use groupchat_protocol::codec::xep::{disco, muc_admin, muc_owner, upload};
use groupchat_protocol::codec::{Message, MessageType};
use groupchat_protocol::group::GroupMessage;
use groupchat_protocol::jid::{BareJid, Jid};

use crate::client::{Client, Inner, is_not_member, lock};
use crate::error::RequestError;
use crate::events::Event;
use crate::group::{Group, GroupImage, GroupProfile, Participant, ParticipantRole};

/// Longest group name accepted.
const MAX_NAME_CHARS: usize = 256;
/// How long after a configuration change (status 104) without a notice the SDK reports the
/// change as made by an unknown client.
const NOTICE_GRACE: Duration = Duration::from_secs(5);
/// How long our own configuration submissions explain the status 104 that follows them.
const OWN_CHANGE_WINDOW: Duration = Duration::from_secs(10);

/// A message that was sent: its id, and for a group the room's archive id (the row id that
/// history, markers and deletion use).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SentMessage {
    /// Our id (also the XEP-0359 origin-id).
    pub id: String,
    /// The room's stanza-id, for a group message whose room assigns one.
    pub stanza_id: Option<String>,
}

fn parse_user(jid: &str) -> Result<BareJid, RequestError> {
    let j: BareJid = jid
        .trim()
        .parse()
        .map_err(|e| RequestError::BadRequest(format!("invalid JID {jid:?}: {e}")))?;
    if j.node().is_none() {
        return Err(RequestError::BadRequest(format!(
            "{jid:?} is not a user JID"
        )));
    }
    Ok(j)
}

fn check_name(name: &str) -> Result<String, RequestError> {
    let n = name.trim();
    if n.is_empty() {
        return Err(RequestError::BadRequest("the group name is empty".into()));
    }
    check_text("the group name", n)?;
    if n.chars().count() > MAX_NAME_CHARS {
        return Err(RequestError::BadRequest(format!(
            "the group name is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(n.to_owned())
}

/// 400 for text with a character XML cannot carry (nothing is sent): checked here to name
/// the character, before the session's own check of what is sent would refuse it.
fn check_text(what: &str, text: &str) -> Result<(), RequestError> {
    match groupchat_protocol::codec::invalid_xml_char(text) {
        Some(c) => Err(RequestError::BadRequest(format!(
            "{what} contains U+{:04X}, a character XML cannot carry; nothing was sent",
            u32::from(c)
        ))),
        None => Ok(()),
    }
}

fn not_a_participant(user: &str, group: &str) -> RequestError {
    RequestError::NotFound(format!("{user} is not a participant of {group}"))
}

fn conflict(text: &str) -> RequestError {
    RequestError::from(StanzaError::new(
        ErrorType::Cancel,
        "conflict",
        Some(text.to_owned()),
    ))
}

fn refused(e: RequestError) -> RequestError {
    match e {
        RequestError::Stanza(s) => RequestError::refused_group_action(*s),
        other => other,
    }
}

impl Client {
    /// The group service's domain, or 403 when the server has none.
    fn group_service(&self) -> Result<String, RequestError> {
        lock(&self.inner.services).groups.clone().ok_or_else(|| {
            RequestError::FeatureUnavailable("group chat (the server has no MUC service)".into())
        })
    }

    /// A group's JID, checked: on the group service (400 otherwise).
    fn group_arg(&self, group: &str) -> Result<String, RequestError> {
        let service = self.group_service()?;
        let j: BareJid = group
            .trim()
            .parse()
            .map_err(|e| RequestError::BadRequest(format!("invalid group JID {group:?}: {e}")))?;
        if j.node().is_none() || j.domain().as_str() != service {
            return Err(RequestError::BadRequest(format!(
                "{group:?} is not a group on {service}"
            )));
        }
        Ok(j.to_string())
    }

    /// The group JID for a group id: `<id>@<group service>`. 400 for an id that cannot be a
    /// JID's local part; 403 when the server has no group service.
    pub fn group_jid(&self, id: &str) -> Result<String, RequestError> {
        let service = self.group_service()?;
        let bad = id.is_empty()
            || id.len() > 1023
            || id
                .chars()
                .any(|c| c.is_whitespace() || "\"&'/:<>@".contains(c));
        if bad {
            return Err(RequestError::BadRequest(format!("invalid group id {id:?}")));
        }
        let jid: BareJid = format!("{id}@{service}")
            .parse()
            .map_err(|e| RequestError::BadRequest(format!("invalid group id {id:?}: {e}")))?;
        Ok(jid.to_string())
    }

    /// Creates a group named `name` with `members` (bare JIDs) and an optional image: the
    /// room is created persistent, members-only, hidden, non-anonymous and archived; each
    /// member is made a member and invited; the group is added to our list. Reports
    /// [`Event::GroupCreated`] here and [`Event::AddedToGroup`] to each member. Arguments
    /// are checked (and an image URL fetched) before anything is created; if a later step
    /// fails, the room is destroyed again.
    ///
    /// `members` is any list of JID-like strings: `&["bob@example.org"]`, a `Vec<String>`,
    /// an iterator of `&str`.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn create_group<M: AsRef<str>>(
        &self,
        name: &str,
        members: impl IntoIterator<Item = M>,
        image: Option<GroupImage>,
    ) -> Result<Group, RequestError> {
        let name = check_name(name)?;
        let members = self.others(members)?;
        let service = self.group_service()?;
        let photo = match &image {
            Some(i) => Some(self.resolve_image(i).await?),
            None => None,
        };
        let mut raw = [0u8; 9];
        getrandom::fill(&mut raw)
            .map_err(|e| RequestError::BadRequest(format!("no entropy: {e}")))?;
        let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let group = format!("{id}@{service}");
        let inner = &self.inner;
        inner.own_change(&group);
        if !inner.join(&group).await? {
            let _ = inner.send(muc_owner::leave(&group, &inner.nick)).await;
            return Err(conflict("a group with this id exists"));
        }
        let made = async {
            if photo.is_some() {
                self.require_vcard(&group).await?;
            }
            self.configure(&group, &name).await?;
            if let Some(photo) = &photo {
                self.store_image(&group, photo).await?;
            }
            for m in &members {
                self.add_one(&group, m).await?;
            }
            Ok::<(), RequestError>(())
        }
        .await;
        if let Err(e) = made {
            // Leave nothing half-made behind.
            let _ = inner
                .request(Some(&group), |id| muc_owner::destroy(&group, id, None))
                .await;
            return Err(e);
        }
        lock(&inner.state)
            .groups
            .insert(group.clone(), Some(name.clone()));
        let listed = inner
            .bookmark_add(Bookmark::new(
                &group,
                Some(name.clone()),
                Some(inner.nick.clone()),
            ))
            .await;
        self.inner.emit(Event::GroupCreated {
            group: group.clone(),
            name: name.clone(),
            by: inner.me.to_string(),
        });
        if !members.is_empty() {
            self.notice(
                &group,
                NoticeKind::ParticipantsAdded,
                members.iter().map(ToString::to_string).collect(),
            )
            .await?;
        }
        listed?;
        Ok(self.group_entry(group, Some(name)))
    }

    /// Parses user JIDs (400 for an invalid one), without duplicates and without us.
    fn others<U: AsRef<str>>(
        &self,
        users: impl IntoIterator<Item = U>,
    ) -> Result<Vec<BareJid>, RequestError> {
        let mut out: Vec<BareJid> = Vec::new();
        for u in users {
            let j = parse_user(u.as_ref())?;
            if j != self.inner.me && !out.contains(&j) {
                out.push(j);
            }
        }
        Ok(out)
    }

    /// Submits the group configuration with `name` (marked as our own change).
    async fn configure(&self, group: &str, name: &str) -> Result<(), RequestError> {
        let inner = &self.inner;
        let form = inner
            .request(Some(group), |id| muc_owner::get_config(group, id))
            .await
            .map_err(refused)?;
        let form = muc_owner::decode_config_form(&form)
            .map_err(|e| RequestError::BadRequest(e.to_string()))?;
        let config = muc_owner::RoomConfig::group(name);
        inner.own_change(group);
        inner
            .request(Some(group), |id| {
                muc_owner::submit_config(group, id, &config, &form)
            })
            .await
            .map_err(refused)
            .map(|_| ())
    }

    /// Makes `user` a member and invites them.
    async fn add_one(&self, group: &str, user: &BareJid) -> Result<(), RequestError> {
        let u = user.to_string();
        self.inner
            .request(Some(group), |id| {
                muc_admin::set(group, id, &u, Affiliation::Member, None)
            })
            .await
            .map_err(refused)?;
        self.inner.send(muc_owner::invite(group, &u, None)).await
    }

    /// Posts a notice (who did what) to the group.
    async fn notice(
        &self,
        group: &str,
        kind: NoticeKind,
        participants: Vec<String>,
    ) -> Result<(), RequestError> {
        let me = self.inner.me.to_string();
        let text = match kind {
            NoticeKind::ParticipantsAdded => format!("{me} added {}", participants.join(", ")),
            NoticeKind::ParticipantRemoved => format!("{me} removed {}", participants.join(", ")),
            NoticeKind::AdminGranted => format!("{me} made {} admin", participants.join(", ")),
            NoticeKind::MemberLeft => format!("{me} left"),
            NoticeKind::ProfileUpdated => format!("{me} changed the group profile"),
            NoticeKind::GroupDeleted => format!("{me} deleted the group"),
            _ => format!("{me}: {}", kind.as_str()),
        };
        let to: Jid = group
            .parse()
            .map_err(|e| RequestError::BadRequest(format!("{group}: {e}")))?;
        let m = Notice::new(kind, participants).message(to, &self.inner.new_id(), &text);
        self.inner.send_to_group(&m).await.map(|_| ())
    }

    /// Every group we are in, with names (from our bookmarks on the server, so that groups
    /// joined on other devices are listed too).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn groups(&self) -> Result<Vec<Group>, RequestError> {
        let stored = self.inner.read_bookmarks().await?;
        let mut st = lock(&self.inner.state);
        for b in stored {
            if st.exiting.contains(&b.jid) {
                continue;
            }
            let known = st.groups.entry(b.jid).or_insert(None);
            if known.is_none() {
                *known = b.name;
            }
        }
        let listed: Vec<(String, Option<String>)> = st
            .groups
            .iter()
            .map(|(j, n)| (j.clone(), n.clone()))
            .collect();
        drop(st);
        Ok(listed
            .into_iter()
            .map(|(jid, name)| self.group_entry(jid, name))
            .collect())
    }

    /// A listed group with what the room last said of us.
    fn group_entry(&self, jid: String, name: Option<String>) -> Group {
        let joined = self.inner.in_room(&jid);
        let role = self
            .inner
            .my_affiliation(&jid)
            .and_then(ParticipantRole::of);
        Group {
            jid,
            name,
            role,
            joined,
        }
    }

    /// Sets the group's name and, if given, its image (admins only: 403 otherwise). Every
    /// member receives [`Event::ProfileUpdated`]. The image is checked (and a URL fetched)
    /// before anything changes.
    #[tracing::instrument(level = "debug", skip_all, fields(group = %group))]
    pub async fn set_group_profile(
        &self,
        group: &str,
        name: &str,
        image: Option<GroupImage>,
    ) -> Result<GroupProfile, RequestError> {
        let group = self.group_arg(group)?;
        let name = check_name(name)?;
        let photo = match &image {
            Some(i) => Some(self.resolve_image(i).await?),
            None => None,
        };
        let inner = &self.inner;
        if photo.is_some() {
            self.require_vcard(&group).await?;
        }
        self.configure(&group, &name).await?;
        if let Some(photo) = &photo {
            self.store_image(&group, photo).await?;
        }
        let had = lock(&inner.state)
            .groups
            .insert(group.clone(), Some(name.clone()))
            .is_some();
        self.notice(&group, NoticeKind::ProfileUpdated, Vec::new())
            .await?;
        if had {
            inner
                .bookmark_add(Bookmark::new(&group, Some(name), Some(inner.nick.clone())))
                .await?;
        }
        self.group_profile(&group).await
    }

    /// The image's bytes, checked; an image given by URL is fetched (HTTPS) and checked the
    /// same way, so that every client can show it.
    async fn resolve_image(&self, image: &GroupImage) -> Result<Photo, RequestError> {
        let data = match image {
            GroupImage::Url { url } => {
                let (_, data) = self
                    .inner
                    .http
                    .get(url, crate::group::MAX_IMAGE_BYTES)
                    .await?;
                data
            }
            // Checked again: the variant can be built without `from_bytes`.
            GroupImage::Data { data, .. } => data.clone(),
        };
        match GroupImage::from_bytes(data)? {
            GroupImage::Data { media_type, data } => Ok(Photo { media_type, data }),
            GroupImage::Url { .. } => Err(RequestError::BadRequest("no image data".into())),
        }
    }

    /// 403 unless the group keeps a vCard (where its image lives).
    async fn require_vcard(&self, group: &str) -> Result<(), RequestError> {
        let info = self
            .inner
            .request(Some(group), |id| disco::info(group, id))
            .await
            .map_err(refused)?;
        let info =
            disco::decode_info(&info).map_err(|e| RequestError::BadRequest(e.to_string()))?;
        if info.has_feature(vcard::NS) {
            Ok(())
        } else {
            Err(RequestError::FeatureUnavailable(
                "group images (the group service keeps no vCard)".into(),
            ))
        }
    }

    /// Stores the image as the room's vCard photo (XEP-0486); the caller has checked the
    /// room keeps one (`require_vcard`).
    async fn store_image(&self, group: &str, photo: &Photo) -> Result<(), RequestError> {
        self.inner.own_change(group);
        self.inner
            .request(Some(group), |id| vcard::set_photo(group, id, photo))
            .await
            .map(|_| ())
            .map_err(refused)
    }

    /// Uploads a file to the server's upload service (XEP-0363) and returns the URL that
    /// serves it. 403 when the server has no upload service, 413 above its size limit.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn upload(
        &self,
        filename: &str,
        media_type: &str,
        data: Vec<u8>,
    ) -> Result<String, RequestError> {
        let (service, limit) = lock(&self.inner.services).upload.clone().ok_or_else(|| {
            RequestError::FeatureUnavailable(
                "file upload (the server has no upload service)".into(),
            )
        })?;
        let size = data.len() as u64;
        if let Some(limit) = limit.filter(|l| size > *l) {
            return Err(RequestError::TooLarge { size, limit });
        }
        if filename.is_empty() || filename.contains('/') {
            return Err(RequestError::BadRequest(format!(
                "invalid file name {filename:?}"
            )));
        }
        let iq = self
            .inner
            .request(Some(&service), |id| {
                upload::request(&service, id, filename, size, media_type)
            })
            .await?;
        let slot =
            upload::decode_slot(&iq).map_err(|e| RequestError::BadRequest(e.to_string()))??;
        self.inner
            .http
            .put(&slot.put, &slot.headers, media_type, data)
            .await?;
        Ok(slot.get)
    }

    /// The group's profile: name (disco#info) and image (the room's vCard). 404 for an
    /// unknown group.
    #[tracing::instrument(level = "debug", skip_all, fields(group = %group))]
    pub async fn group_profile(&self, group: &str) -> Result<GroupProfile, RequestError> {
        let group = self.group_arg(group)?;
        self.inner.profile(&group).await
    }

    /// The members: owners are admins, members and MUC admins are members; `online` when
    /// they are in the group now.
    #[tracing::instrument(level = "debug", skip_all, fields(group = %group))]
    pub async fn participants(&self, group: &str) -> Result<Vec<Participant>, RequestError> {
        let group = self.group_arg(group)?;
        let mut out: Vec<Participant> = Vec::new();
        for aff in [Affiliation::Owner, Affiliation::Admin, Affiliation::Member] {
            let Some(role) = ParticipantRole::of(aff) else {
                continue;
            };
            let jids: Vec<String> = match self.affiliation_list(&group, aff).await {
                Ok(list) => list,
                // A server that keeps a list from members: those present stand in, when we
                // are in the group ourselves (else the refusal stands).
                Err(RequestError::Forbidden(e)) => {
                    if !self.inner.in_room(&group) {
                        return Err(RequestError::Forbidden(e));
                    }
                    let st = lock(&self.inner.state);
                    st.tracker
                        .occupants(&group)
                        .filter(|o| o.affiliation == Some(aff))
                        .filter_map(|o| o.jid.clone())
                        .collect()
                }
                Err(e) => return Err(e),
            };
            for jid in jids {
                if !out.iter().any(|p| p.jid == jid) {
                    out.push(Participant {
                        jid,
                        role,
                        online: false,
                    });
                }
            }
        }
        let st = lock(&self.inner.state);
        for o in st.tracker.occupants(&group) {
            if let Some(p) = out.iter_mut().find(|p| Some(&p.jid) == o.jid.as_ref()) {
                p.online = true;
            }
        }
        Ok(out)
    }

    /// The bare JIDs with affiliation `aff`.
    async fn affiliation_list(
        &self,
        group: &str,
        aff: Affiliation,
    ) -> Result<Vec<String>, RequestError> {
        let iq = self
            .inner
            .request(Some(group), |id| muc_admin::get_list(group, id, aff))
            .await
            .map_err(refused)?;
        Ok(muc_admin::decode_list(&iq)
            .map_err(|e| RequestError::BadRequest(e.to_string()))?
            .into_iter()
            .map(|i| i.jid)
            .collect())
    }

    /// Every participant's affiliation (admins are MUC owners; members are members, or
    /// admins in the MUC sense when another client made them so).
    async fn affiliations(
        &self,
        group: &str,
    ) -> Result<HashMap<String, Affiliation>, RequestError> {
        let mut all = HashMap::new();
        for aff in [Affiliation::Member, Affiliation::Admin, Affiliation::Owner] {
            for jid in self.affiliation_list(group, aff).await? {
                all.insert(jid, aff);
            }
        }
        Ok(all)
    }

    /// Adds members (admins only: 403 otherwise); each is invited and receives
    /// [`Event::AddedToGroup`]; everyone receives [`Event::ParticipantsAdded`] naming the
    /// new ones. Users who are already participants are left as they are and announced to
    /// nobody (adding only them changes nothing).
    #[tracing::instrument(level = "debug", skip_all, fields(group = %group))]
    pub async fn add_participants<U: AsRef<str>>(
        &self,
        group: &str,
        users: impl IntoIterator<Item = U>,
    ) -> Result<(), RequestError> {
        let group = self.group_arg(group)?;
        let users = self.others(users)?;
        if users.is_empty() {
            return Err(RequestError::BadRequest("no participants given".into()));
        }
        let current = self.affiliations(&group).await?;
        let users: Vec<BareJid> = users
            .into_iter()
            .filter(|u| !current.contains_key(&u.to_string()))
            .collect();
        for u in &users {
            self.add_one(&group, u).await?;
        }
        if users.is_empty() {
            return Ok(());
        }
        self.notice(
            &group,
            NoticeKind::ParticipantsAdded,
            users.iter().map(ToString::to_string).collect(),
        )
        .await
    }

    /// Removes a member (admins only: 403 otherwise): they leave the room and may not come
    /// back unless added again. They receive [`Event::RemovedFromGroup`], everyone else
    /// [`Event::ParticipantRemoved`]. 404 when the user is not a participant (nothing is
    /// changed or announced).
    #[tracing::instrument(level = "debug", skip_all, fields(group = %group))]
    pub async fn remove_participant(&self, group: &str, user: &str) -> Result<(), RequestError> {
        let group = self.group_arg(group)?;
        let user = parse_user(user)?.to_string();
        if !self.affiliations(&group).await?.contains_key(&user) {
            return Err(not_a_participant(&user, &group));
        }
        self.inner
            .request(Some(&group), |id| {
                muc_admin::set(&group, id, &user, Affiliation::None, None)
            })
            .await
            .map_err(refused)?;
        self.notice(&group, NoticeKind::ParticipantRemoved, vec![user])
            .await
    }

    /// Makes a participant admin (admins only: 403 otherwise); everyone receives
    /// [`Event::AdminGranted`]. 404 when the user is not a participant (add them first:
    /// an admin nobody invited would never learn of the group); an admin already stays one
    /// and nothing is announced.
    #[tracing::instrument(level = "debug", skip_all, fields(group = %group))]
    pub async fn make_admin(&self, group: &str, user: &str) -> Result<(), RequestError> {
        let group = self.group_arg(group)?;
        let user = parse_user(user)?.to_string();
        match self.affiliations(&group).await?.get(&user) {
            None => Err(not_a_participant(&user, &group)),
            Some(Affiliation::Owner) => Ok(()),
            Some(_) => self.grant_admin(&group, user).await,
        }
    }

    /// Makes `user` owner and announces it.
    async fn grant_admin(&self, group: &str, user: String) -> Result<(), RequestError> {
        self.inner
            .request(Some(group), |id| {
                muc_admin::set(group, id, &user, Affiliation::Owner, None)
            })
            .await
            .map_err(refused)?;
        self.notice(group, NoticeKind::AdminGranted, vec![user])
            .await
    }

    /// Makes sure we are in the group's room (to act in it): 404 when the group is gone.
    async fn enter(&self, group: &str) -> Result<(), RequestError> {
        if self.inner.in_room(group) {
            return Ok(());
        }
        match self.inner.join(group).await {
            Ok(false) => Ok(()),
            Ok(true) => {
                // It did not exist: we just made an empty room. Undo that.
                let _ = self
                    .inner
                    .request(Some(group), |id| muc_owner::destroy(group, id, None))
                    .await;
                Err(RequestError::NotFound(format!("no group {group}")))
            }
            Err(e) => Err(e),
        }
    }

    /// Leaves the group for good. The last admin first hands admin to the member whose JID
    /// sorts first (so that the group keeps an admin); a group with no other member cannot
    /// be left (409: delete it instead). Everyone else receives [`Event::MemberLeft`].
    #[tracing::instrument(level = "debug", skip_all, fields(group = %group))]
    pub async fn exit_group(&self, group: &str) -> Result<(), RequestError> {
        let group = self.group_arg(group)?;
        let inner = &self.inner;
        let me = inner.me.to_string();
        self.enter(&group).await?;
        let admin = inner.my_affiliation(&group) == Some(Affiliation::Owner);
        if admin {
            let all = self.affiliations(&group).await?;
            if !all
                .iter()
                .any(|(j, a)| *a == Affiliation::Owner && *j != me)
            {
                let Some(heir) = all.into_keys().filter(|j| *j != me).min() else {
                    return Err(conflict(
                        "you are the group's only member: delete the group instead",
                    ));
                };
                self.grant_admin(&group, heir).await?;
            }
        }
        lock(&inner.state).exiting.insert(group.clone());
        let result = async {
            self.notice(&group, NoticeKind::MemberLeft, Vec::new())
                .await?;
            inner.send(muc_owner::leave(&group, &inner.nick)).await?;
            match inner
                .request(Some(&group), |id| {
                    muc_admin::set(&group, id, &me, Affiliation::None, None)
                })
                .await
                .map_err(refused)
            {
                // A plain member may not change affiliations, not even their own: an admin's
                // SDK drops it when it sees the member-left notice.
                Err(RequestError::Forbidden(_)) if !admin => Ok(()),
                other => other.map(|_| ()),
            }
        }
        .await;
        if let Err(e) = result {
            lock(&inner.state).exiting.remove(&group);
            return Err(e);
        }
        self.forget(&group).await
    }

    /// Deletes the group: an admin destroys it for everyone ([`Event::GroupDeleted`]); a
    /// member forgets it (leaves the room and drops it from the list; still a member, so
    /// an admin can invite them back). 404 when the group does not exist.
    #[tracing::instrument(level = "debug", skip_all, fields(group = %group))]
    pub async fn delete_group(&self, group: &str) -> Result<(), RequestError> {
        let group = self.group_arg(group)?;
        let inner = &self.inner;
        match self.enter(&group).await {
            Ok(()) => {}
            // Removed from it already: forgetting is all that is left.
            Err(e) if matches!(e, RequestError::Forbidden(_)) || is_not_member(&e) => {
                return self.forget(&group).await;
            }
            Err(e) => return Err(e),
        }
        if inner.my_affiliation(&group) == Some(Affiliation::Owner) {
            self.notice(&group, NoticeKind::GroupDeleted, Vec::new())
                .await?;
            inner
                .request(Some(&group), |id| muc_owner::destroy(&group, id, None))
                .await
                .map_err(refused)?;
            // Reported once: here, or by the room's destruction presence if it came first.
            inner
                .group_gone(
                    &group,
                    Event::GroupDeleted {
                        group: group.clone(),
                        by: Some(inner.me.to_string()),
                    },
                )
                .await;
            Ok(())
        } else {
            lock(&inner.state).exiting.insert(group.clone());
            inner.send(muc_owner::leave(&group, &inner.nick)).await?;
            self.forget(&group).await
        }
    }

    async fn forget(&self, group: &str) -> Result<(), RequestError> {
        {
            let mut st = lock(&self.inner.state);
            st.groups.remove(group);
            st.tracker.forget(group);
        }
        let r = self.inner.bookmark_remove(group).await;
        lock(&self.inner.state).exiting.remove(group);
        r
    }

    /// Joins a group we were invited to (with [`InvitationPolicy::Manual`]) and lists it.
    ///
    /// [`InvitationPolicy::Manual`]: crate::InvitationPolicy::Manual
    #[tracing::instrument(level = "debug", skip_all, fields(group = %group))]
    pub async fn join_group(&self, group: &str) -> Result<(), RequestError> {
        let group = self.group_arg(group)?;
        self.inner.accept(&group, None).await
    }

    /// Sends a text message: to a group (type groupchat; waits for the room to take it, so
    /// that a refusal surfaces as 403) or to a user (type chat).
    #[tracing::instrument(level = "debug", skip_all, fields(to = %to))]
    pub async fn send_text(&self, to: &str, body: &str) -> Result<SentMessage, RequestError> {
        let jid: Jid = to
            .trim()
            .parse()
            .map_err(|e| RequestError::BadRequest(format!("invalid JID {to:?}: {e}")))?;
        if body.is_empty() {
            return Err(RequestError::BadRequest("the message is empty".into()));
        }
        check_text("the message", body)?;
        let id = self.inner.new_id();
        if self.is_group(&jid.to_string()) {
            let m = Message::text(jid.to_bare().into(), MessageType::Groupchat, &id, body);
            let stanza_id = self.inner.send_to_group(&m).await?;
            Ok(SentMessage { id, stanza_id })
        } else {
            let m = Message::text(jid, MessageType::Chat, &id, body);
            self.inner.send(m.encode()).await?;
            Ok(SentMessage {
                id,
                stanza_id: None,
            })
        }
    }
}

impl Inner {
    pub(crate) async fn profile(&self, group: &str) -> Result<GroupProfile, RequestError> {
        let info = self
            .request(Some(group), |id| disco::info(group, id))
            .await
            .map_err(refused)?;
        let info =
            disco::decode_info(&info).map_err(|e| RequestError::BadRequest(e.to_string()))?;
        let room = disco::RoomInfo::from_info(&info);
        let image = match self.request(Some(group), |id| vcard::get(group, id)).await {
            Ok(iq) => match vcard::decode_photo_url(&iq) {
                Some(url) => Some(GroupImage::Url { url }),
                None => vcard::decode_photo(&iq)
                    .ok()
                    .flatten()
                    .map(|p| GroupImage::Data {
                        media_type: p.media_type,
                        data: p.data,
                    }),
            },
            // No vCard on this server or room: no image.
            Err(_) => None,
        };
        Ok(GroupProfile {
            jid: group.to_owned(),
            name: room.name,
            description: room.description,
            image,
        })
    }

    /// A notice from a member: the event it stands for. Only the room's word on who sent
    /// it counts (the occupant's real JID, never a nickname), and only an admin's notice
    /// about an admin's action is believed.
    pub(crate) fn on_notice(self: &Arc<Self>, gm: &GroupMessage, n: Notice) {
        let Some(by) = gm.sender.jid.clone() else {
            return;
        };
        let group = gm.group.clone();
        let from_admin = gm.sender.affiliation == Some(Affiliation::Owner);
        if n.kind != NoticeKind::MemberLeft && !from_admin {
            tracing::debug!(group, %by, kind = n.kind.as_str(), "notice ignored: not from an admin");
            return;
        }
        let first = n.participants.first().cloned().unwrap_or_default();
        match n.kind {
            NoticeKind::ParticipantsAdded => self.emit(Event::ParticipantsAdded {
                group,
                participants: n.participants,
                by,
            }),
            NoticeKind::ParticipantRemoved => self.emit(Event::ParticipantRemoved {
                group,
                participant: first,
                by,
            }),
            NoticeKind::AdminGranted => self.emit(Event::AdminGranted {
                group,
                participant: first,
                by,
            }),
            NoticeKind::MemberLeft => {
                self.emit(Event::MemberLeft {
                    group: group.clone(),
                    participant: by.clone(),
                });
                // A member cannot drop their own membership; an admin does it for them.
                let me_admin = self.my_affiliation(&group) == Some(Affiliation::Owner);
                if me_admin && by != self.me.to_string() && !from_admin {
                    let this = self.clone();
                    tokio::spawn(async move {
                        let _ = this
                            .request(Some(&group), |id| {
                                muc_admin::set(&group, id, &by, Affiliation::None, None)
                            })
                            .await;
                    });
                }
            }
            NoticeKind::GroupDeleted => {
                lock(&self.state)
                    .deleted_by
                    .insert(group, (by, Instant::now()));
            }
            NoticeKind::ProfileUpdated => {
                lock(&self.state)
                    .profile_notices
                    .insert(group.clone(), Instant::now());
                let this = self.clone();
                tokio::spawn(async move {
                    if let Ok(profile) = this.profile(&group).await {
                        this.note_name(&group, profile.name.clone());
                        this.emit(Event::ProfileUpdated {
                            group,
                            profile,
                            by: Some(by),
                        });
                    }
                });
            }
            _ => {}
        }
    }

    fn note_name(&self, group: &str, name: Option<String>) {
        if let Some(n) = lock(&self.state).groups.get_mut(group) {
            *n = name;
        }
    }

    /// Notes that we are about to change `group`'s configuration or image: the status 104
    /// that follows is ours, and our notice reports it.
    pub(crate) fn own_change(&self, group: &str) {
        lock(&self.state)
            .own_changes
            .insert(group.to_owned(), Instant::now());
    }

    /// A configuration change (status 104). Changes made through this SDK come with a
    /// notice, which reports them with the actor; when none follows within
    /// [`NOTICE_GRACE`], another client made the change and it is reported without one.
    pub(crate) fn profile_changed_without_notice(self: &Arc<Self>, group: String) {
        let seen_at = Instant::now();
        {
            let mut st = lock(&self.state);
            let ours = st
                .own_changes
                .get(&group)
                .is_some_and(|t| t.elapsed() < OWN_CHANGE_WINDOW);
            if ours || !st.profile_checks.insert(group.clone()) {
                return; // our own change, or a check is already waiting
            }
        }
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(NOTICE_GRACE).await;
            let noticed = {
                let mut st = lock(&this.state);
                st.profile_checks.remove(&group);
                st.profile_notices
                    .get(&group)
                    .is_some_and(|t| *t >= seen_at)
            };
            if noticed {
                return;
            }
            if let Ok(profile) = this.profile(&group).await {
                this.note_name(&group, profile.name.clone());
                this.emit(Event::ProfileUpdated {
                    group,
                    profile,
                    by: None,
                });
            }
        });
    }

    /// True for a group's bare JID on our group service: the one "is this a group?" test
    /// (bookmarks of rooms elsewhere, invitations to them, and user JIDs are not).
    pub(crate) fn is_our_group(&self, jid: &str) -> bool {
        jid.parse::<Jid>().is_ok_and(|j| {
            j.resource().is_none() && lock(&self.state).tracker.services().is_group(&j)
        })
    }

    /// Both bookmark stores, merged (XEP-0402 items and XEP-0048 private storage): our
    /// groups, and remembers the other entries of private storage so that rewriting it
    /// keeps them.
    pub(crate) async fn read_bookmarks(&self) -> Result<Vec<Bookmark>, RequestError> {
        let pep = match self.request(None, bookmarks::get_items).await {
            Ok(iq) => bookmarks::decode_items_result(&iq).unwrap_or_default(),
            Err(RequestError::Stanza(_)) => Vec::new(), // no node yet
            Err(e) => return Err(e),
        };
        let private = match self.request(None, bookmarks::get_private).await {
            Ok(iq) => bookmarks::decode_private(&iq).unwrap_or_default(),
            Err(RequestError::Stanza(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        let (ours, foreign): (Vec<Bookmark>, Vec<Bookmark>) =
            private.into_iter().partition(|b| self.is_our_group(&b.jid));
        {
            let mut st = lock(&self.state);
            if !ours.is_empty() {
                st.dialect = Dialect::Private;
            }
            st.foreign_bookmarks = foreign;
        }
        let mut all: Vec<Bookmark> = pep
            .into_iter()
            .filter(|b| self.is_our_group(&b.jid))
            .collect();
        for b in ours {
            if !all.iter().any(|x| x.jid == b.jid) {
                all.push(b);
            }
        }
        Ok(all)
    }

    pub(crate) async fn load_bookmarks(&self) -> Result<(), RequestError> {
        let all = self.read_bookmarks().await?;
        let mut st = lock(&self.state);
        for b in all {
            st.bookmarked.insert(b.jid.clone());
            st.groups.insert(b.jid, b.name);
        }
        Ok(())
    }

    /// Our groups that are bookmarked, plus `extra`, as bookmarks.
    fn bookmarks_with(&self, extra: Option<&Bookmark>) -> Vec<Bookmark> {
        let st = lock(&self.state);
        let mut out: Vec<Bookmark> = st
            .groups
            .iter()
            .filter(|(jid, _)| st.bookmarked.contains(*jid))
            .filter(|(jid, _)| extra.is_none_or(|b| b.jid != **jid))
            .map(|(jid, name)| Bookmark::new(jid, name.clone(), Some(self.nick.clone())))
            .collect();
        out.extend(extra.cloned());
        out
    }

    /// The private-storage document: our bookmarks and the foreign entries it held.
    fn private_document(&self, ours: Vec<Bookmark>) -> Vec<Bookmark> {
        let mut all = ours;
        all.extend(lock(&self.state).foreign_bookmarks.iter().cloned());
        all
    }

    /// Adds or updates a bookmark, walking the server's dialect (see
    /// `groupchat_protocol::codec::xep::bookmarks`). One change at a time.
    pub(crate) async fn bookmark_add(&self, b: Bookmark) -> Result<(), RequestError> {
        let _one = self.bookmark_lock.lock().await;
        loop {
            let dialect = lock(&self.state).dialect;
            let expected = self.bookmarks_with(Some(&b));
            if dialect == Dialect::Private {
                let doc = self.private_document(expected);
                self.request(None, |id| bookmarks::set_private(id, &doc))
                    .await?;
                lock(&self.state).bookmarked.insert(b.jid.clone());
                return Ok(());
            }
            match self
                .request(None, |id| bookmarks::publish(id, &b, dialect))
                .await
            {
                Ok(_) => {
                    let stored = match self.request(None, bookmarks::get_items).await {
                        Ok(iq) => bookmarks::decode_items_result(&iq).unwrap_or_default(),
                        Err(_) => Vec::new(),
                    };
                    let next = dialect.after_read_back(&expected, &stored);
                    if next == dialect {
                        lock(&self.state).bookmarked.insert(b.jid.clone());
                        return Ok(());
                    }
                    lock(&self.state).dialect = next;
                }
                Err(RequestError::Stanza(e)) => match dialect.after_publish_error(&e) {
                    Some(next) => lock(&self.state).dialect = next,
                    None => return Err(RequestError::Stanza(e)),
                },
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes a bookmark from both stores.
    pub(crate) async fn bookmark_remove(&self, group: &str) -> Result<(), RequestError> {
        let _one = self.bookmark_lock.lock().await;
        lock(&self.state).bookmarked.remove(group);
        let r = self.request(None, |id| bookmarks::retract(id, group)).await;
        if lock(&self.state).dialect == Dialect::Private {
            let ours = self.bookmarks_with(None);
            let doc = self.private_document(ours);
            return self
                .request(None, |id| bookmarks::set_private(id, &doc))
                .await
                .map(|_| ());
        }
        match r {
            Ok(_) | Err(RequestError::Stanza(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
