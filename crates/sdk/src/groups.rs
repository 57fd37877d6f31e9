//! The group calls of the seed API, one async method each, and the bookkeeping behind them
//! (bookmarks, notices, profile events).

use std::collections::HashMap;

use groupchat_protocol::codec::ext::notice::{Notice, NoticeKind};
use groupchat_protocol::codec::xep::bookmarks::{self, Bookmark, Dialect};
use groupchat_protocol::codec::xep::muc_user::Affiliation;
use groupchat_protocol::codec::xep::stanza_error::{ErrorType, StanzaError};
use groupchat_protocol::codec::xep::vcard::{self, Photo};
use groupchat_protocol::codec::xep::{disco, muc, muc_admin, muc_owner};
use groupchat_protocol::codec::{Message, MessageType};
use groupchat_protocol::group::bare_jid;
use groupchat_protocol::jid::{BareJid, Jid};

use crate::client::{Client, Inner, is_not_member};
use crate::error::RequestError;
use crate::events::Event;
use crate::group::{Group, GroupImage, GroupProfile, Participant, ParticipantRole};
use crate::to_jid::ToJid;

/// Longest group name accepted.
const MAX_NAME_CHARS: usize = 256;

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

/// A user's bare JID (400 for one that is not a user's: no local part, or a resource).
fn parse_user(jid: impl ToJid) -> Result<BareJid, RequestError> {
    let j = jid.to_jid()?;
    if j.node().is_none() || j.resource().is_some() {
        return Err(RequestError::BadRequest(format!(
            "{j} is not a user's bare JID"
        )));
    }
    Ok(j.into_bare())
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

fn not_a_participant(user: &BareJid, group: &BareJid) -> RequestError {
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
        self.inner.services.borrow().groups.clone().ok_or_else(|| {
            RequestError::FeatureUnavailable("group chat (the server has no MUC service)".into())
        })
    }

    /// A group's JID, checked: a bare JID on the group service (400 otherwise).
    pub(crate) fn group_arg(&self, group: impl ToJid) -> Result<BareJid, RequestError> {
        let service = self.group_service()?;
        let j = group.to_jid()?;
        if j.node().is_none() || j.resource().is_some() || j.domain().as_str() != service {
            return Err(RequestError::BadRequest(format!(
                "{j} is not a group on {service}"
            )));
        }
        Ok(j.into_bare())
    }

    /// The group JID for a group id: `<id>@<group service>`. 400 for an id that cannot be a
    /// JID's local part; 403 when the server has no group service.
    pub fn group_jid(&self, id: &str) -> Result<BareJid, RequestError> {
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
        Ok(jid)
    }

    /// Creates a group named `name` with `members` (bare JIDs) and an optional image: the
    /// room is created persistent, members-only, hidden, non-anonymous and archived; each
    /// member is made a member and invited; the group is added to our list. Reports
    /// [`Event::GroupCreated`] here and [`Event::AddedToGroup`] to each member. Arguments
    /// are checked (and an image URL fetched) before anything is created; if a later step
    /// fails, the room is destroyed again.
    ///
    /// `members` is any list of JIDs, as text or typed: `&["bob@example.org"]`, a
    /// `Vec<String>`, a `Vec<BareJid>`, an iterator of `&str`.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn create_group<M: ToJid>(
        &self,
        name: &str,
        members: impl IntoIterator<Item = M>,
        image: Option<GroupImage>,
    ) -> Result<Group, RequestError> {
        let name = check_name(name)?;
        let members = self.others(members)?;
        self.group_service()?;
        let photo = match &image {
            Some(i) => Some(self.resolve_image(i).await?),
            None => None,
        };
        let mut raw = [0u8; 9];
        getrandom::fill(&mut raw)
            .map_err(|e| RequestError::BadRequest(format!("no entropy: {e}")))?;
        let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let group = self.group_jid(&id)?;
        let inner = &self.inner;
        inner.own_change(&group);
        if !inner.join(&group).await? {
            let _ = inner.send(muc::leave(group.as_str(), &inner.nick)).await;
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
                .request(Some(group.as_str()), |id| {
                    muc_owner::destroy(group.as_str(), id, None)
                })
                .await;
            return Err(e);
        }
        {
            let (g, n) = (group.clone(), name.clone());
            inner.with(move |c| c.list(&g, Some(n))).await?;
        }
        let listed = inner
            .bookmark_add(Bookmark::new(
                group.as_str(),
                Some(name.clone()),
                Some(inner.nick.clone()),
            ))
            .await;
        self.inner.emit(Event::GroupCreated {
            group: group.clone(),
            name: name.clone(),
            by: inner.me.clone(),
        });
        if !members.is_empty() {
            self.notice(&group, NoticeKind::ParticipantsAdded, &members)
                .await?;
        }
        listed?;
        Ok(self.group_entry(group, Some(name)).await)
    }

    /// Parses user JIDs (400 for an invalid one), without duplicates and without us.
    fn others<U: ToJid>(
        &self,
        users: impl IntoIterator<Item = U>,
    ) -> Result<Vec<BareJid>, RequestError> {
        let mut out: Vec<BareJid> = Vec::new();
        for u in users {
            let j = parse_user(u)?;
            if j != self.inner.me && !out.contains(&j) {
                out.push(j);
            }
        }
        Ok(out)
    }

    /// Submits the group configuration with `name` (marked as our own change).
    async fn configure(&self, group: &BareJid, name: &str) -> Result<(), RequestError> {
        let inner = &self.inner;
        let form = inner
            .request(Some(group.as_str()), |id| {
                muc_owner::get_config(group.as_str(), id)
            })
            .await
            .map_err(refused)?;
        let form = muc_owner::decode_config_form(&form)
            .map_err(|e| RequestError::BadRequest(e.to_string()))?;
        let config = muc_owner::RoomConfig::group(name);
        inner.own_change(group);
        inner
            .request(Some(group.as_str()), |id| {
                muc_owner::submit_config(group.as_str(), id, &config, &form)
            })
            .await
            .map_err(refused)
            .map(|_| ())
    }

    /// Makes `user` a member and invites them.
    async fn add_one(&self, group: &BareJid, user: &BareJid) -> Result<(), RequestError> {
        let u = user.to_string();
        self.inner
            .request(Some(group.as_str()), |id| {
                muc_admin::set(group.as_str(), id, &u, Affiliation::Member, None)
            })
            .await
            .map_err(refused)?;
        self.inner.send(muc::invite(group.as_str(), &u, None)).await
    }

    /// Posts a notice (who did what) to the group.
    async fn notice(
        &self,
        group: &BareJid,
        kind: NoticeKind,
        participants: &[BareJid],
    ) -> Result<(), RequestError> {
        let me = &self.inner.me;
        let participants: Vec<String> = participants.iter().map(ToString::to_string).collect();
        let text = match kind {
            NoticeKind::ParticipantsAdded => format!("{me} added {}", participants.join(", ")),
            NoticeKind::ParticipantRemoved => format!("{me} removed {}", participants.join(", ")),
            NoticeKind::AdminGranted => format!("{me} made {} admin", participants.join(", ")),
            NoticeKind::MemberLeft => format!("{me} left"),
            NoticeKind::ProfileUpdated => format!("{me} changed the group profile"),
            NoticeKind::GroupDeleted => format!("{me} deleted the group"),
            _ => format!("{me}: {}", kind.as_str()),
        };
        let m = Notice::new(kind, participants).message(
            group.clone().into(),
            &self.inner.new_id(),
            &text,
        );
        self.inner.send_to_group(&m).await.map(|_| ())
    }

    /// Every group we are in, with names (from our bookmarks on the server, so that groups
    /// joined on other devices are listed too).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn groups(&self) -> Result<Vec<Group>, RequestError> {
        let stored = self.inner.read_bookmarks().await?;
        let listed: Vec<(BareJid, Option<String>)> = self
            .inner
            .with(move |c| {
                for (jid, b) in stored {
                    if c.records.get(&jid).is_some_and(|r| r.exiting) {
                        continue;
                    }
                    let r = c.record(&jid);
                    r.listed = true;
                    if r.name.is_none() {
                        r.name = b.name;
                    }
                }
                c.listed()
                    .map(|(j, r)| (j.clone(), r.name.clone()))
                    .collect()
            })
            .await?;
        let mut out = Vec::with_capacity(listed.len());
        for (jid, name) in listed {
            out.push(self.group_entry(jid, name).await);
        }
        Ok(out)
    }

    /// A listed group with what the room last said of us.
    async fn group_entry(&self, jid: BareJid, name: Option<String>) -> Group {
        let joined = self.inner.in_room(&jid).await;
        let role = self
            .inner
            .my_affiliation(&jid)
            .await
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
    #[tracing::instrument(level = "debug", skip_all, fields(group = tracing::field::Empty))]
    pub async fn set_group_profile(
        &self,
        group: impl ToJid,
        name: &str,
        image: Option<GroupImage>,
    ) -> Result<GroupProfile, RequestError> {
        let group = self.group_arg(group)?;
        tracing::Span::current().record("group", tracing::field::display(&group));
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
        let had = {
            let (g, n) = (group.clone(), name.clone());
            !inner.with(move |c| c.list(&g, Some(n))).await?
        };
        self.notice(&group, NoticeKind::ProfileUpdated, &[]).await?;
        if had {
            inner
                .bookmark_add(Bookmark::new(
                    group.as_str(),
                    Some(name),
                    Some(inner.nick.clone()),
                ))
                .await?;
        }
        self.inner.profile(&group).await
    }

    /// The image's bytes, checked; an image given by URL is fetched (HTTPS) and checked the
    /// same way, so that every client can show it.
    async fn resolve_image(&self, image: &GroupImage) -> Result<Photo, RequestError> {
        let data = match image {
            GroupImage::Url { url } => {
                let fetched = self
                    .inner
                    .http
                    .client()?
                    .get(url, crate::group::MAX_IMAGE_BYTES)
                    .await?;
                fetched.body.to_vec()
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
    async fn require_vcard(&self, group: &BareJid) -> Result<(), RequestError> {
        let info = self
            .inner
            .request(Some(group.as_str()), |id| disco::info(group.as_str(), id))
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
    async fn store_image(&self, group: &BareJid, photo: &Photo) -> Result<(), RequestError> {
        self.inner.own_change(group);
        self.inner
            .request(Some(group.as_str()), |id| {
                vcard::set_photo(group.as_str(), id, photo)
            })
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
        if filename.is_empty() || filename.contains('/') {
            return Err(RequestError::BadRequest(format!(
                "invalid file name {filename:?}"
            )));
        }
        let slot = self
            .inner
            .upload_slot(filename, data.len() as u64, media_type)
            .await?;
        self.inner
            .http
            .client()?
            .put(&slot.put, &slot.headers, media_type, data.into())
            .await?;
        Ok(slot.get)
    }

    /// The group's profile: name (disco#info) and image (the room's vCard). 404 for an
    /// unknown group.
    #[tracing::instrument(level = "debug", skip_all, fields(group = tracing::field::Empty))]
    pub async fn group_profile(&self, group: impl ToJid) -> Result<GroupProfile, RequestError> {
        let group = self.group_arg(group)?;
        tracing::Span::current().record("group", tracing::field::display(&group));
        self.inner.profile(&group).await
    }

    /// The members: owners are admins, members and MUC admins are members; `online` when
    /// they are in the group now.
    #[tracing::instrument(level = "debug", skip_all, fields(group = tracing::field::Empty))]
    pub async fn participants(&self, group: impl ToJid) -> Result<Vec<Participant>, RequestError> {
        let group = self.group_arg(group)?;
        tracing::Span::current().record("group", tracing::field::display(&group));
        let mut out: Vec<Participant> = Vec::new();
        for aff in [Affiliation::Owner, Affiliation::Admin, Affiliation::Member] {
            let Some(role) = ParticipantRole::of(aff) else {
                continue;
            };
            let jids: Vec<BareJid> = match self.affiliation_list(&group, aff).await {
                Ok(list) => list,
                // A server that keeps a list from members: those present stand in, when we
                // are in the group ourselves (else the refusal stands).
                Err(RequestError::Forbidden(e)) => {
                    if !self.inner.in_room(&group).await {
                        return Err(RequestError::Forbidden(e));
                    }
                    let g = group.clone();
                    self.inner
                        .with(move |c| {
                            c.tracker
                                .occupants(&g)
                                .filter(|o| o.affiliation == Some(aff))
                                .filter_map(|o| o.jid.clone())
                                .collect()
                        })
                        .await?
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
        let online: Vec<BareJid> = self
            .inner
            .with(move |c| {
                c.tracker
                    .occupants(&group)
                    .filter_map(|o| o.jid.clone())
                    .collect()
            })
            .await?;
        for p in &mut out {
            p.online = online.contains(&p.jid);
        }
        Ok(out)
    }

    /// The bare JIDs with affiliation `aff`.
    async fn affiliation_list(
        &self,
        group: &BareJid,
        aff: Affiliation,
    ) -> Result<Vec<BareJid>, RequestError> {
        let iq = self
            .inner
            .request(Some(group.as_str()), |id| {
                muc_admin::get_list(group.as_str(), id, aff)
            })
            .await
            .map_err(refused)?;
        Ok(muc_admin::decode_list(&iq)
            .map_err(|e| RequestError::BadRequest(e.to_string()))?
            .iter()
            .filter_map(|i| bare_jid(&i.jid))
            .collect())
    }

    /// Every participant's affiliation (admins are MUC owners; members are members, or
    /// admins in the MUC sense when another client made them so).
    async fn affiliations(
        &self,
        group: &BareJid,
    ) -> Result<HashMap<BareJid, Affiliation>, RequestError> {
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
    #[tracing::instrument(level = "debug", skip_all, fields(group = tracing::field::Empty))]
    pub async fn add_participants<U: ToJid>(
        &self,
        group: impl ToJid,
        users: impl IntoIterator<Item = U>,
    ) -> Result<(), RequestError> {
        let group = self.group_arg(group)?;
        tracing::Span::current().record("group", tracing::field::display(&group));
        let users = self.others(users)?;
        if users.is_empty() {
            return Err(RequestError::BadRequest("no participants given".into()));
        }
        let current = self.affiliations(&group).await?;
        let users: Vec<BareJid> = users
            .into_iter()
            .filter(|u| !current.contains_key(u))
            .collect();
        for u in &users {
            self.add_one(&group, u).await?;
        }
        if users.is_empty() {
            return Ok(());
        }
        self.notice(&group, NoticeKind::ParticipantsAdded, &users)
            .await
    }

    /// Removes a member (admins only: 403 otherwise): they leave the room and may not come
    /// back unless added again. They receive [`Event::RemovedFromGroup`], everyone else
    /// [`Event::ParticipantRemoved`]. 404 when the user is not a participant (nothing is
    /// changed or announced).
    #[tracing::instrument(level = "debug", skip_all, fields(group = tracing::field::Empty))]
    pub async fn remove_participant(
        &self,
        group: impl ToJid,
        user: impl ToJid,
    ) -> Result<(), RequestError> {
        let group = self.group_arg(group)?;
        tracing::Span::current().record("group", tracing::field::display(&group));
        let user = parse_user(user)?;
        if !self.affiliations(&group).await?.contains_key(&user) {
            return Err(not_a_participant(&user, &group));
        }
        self.inner
            .request(Some(group.as_str()), |id| {
                muc_admin::set(group.as_str(), id, user.as_str(), Affiliation::None, None)
            })
            .await
            .map_err(refused)?;
        self.notice(&group, NoticeKind::ParticipantRemoved, &[user])
            .await
    }

    /// Makes a participant admin (admins only: 403 otherwise); everyone receives
    /// [`Event::AdminGranted`]. 404 when the user is not a participant (add them first:
    /// an admin nobody invited would never learn of the group); an admin already stays one
    /// and nothing is announced.
    #[tracing::instrument(level = "debug", skip_all, fields(group = tracing::field::Empty))]
    pub async fn make_admin(
        &self,
        group: impl ToJid,
        user: impl ToJid,
    ) -> Result<(), RequestError> {
        let group = self.group_arg(group)?;
        tracing::Span::current().record("group", tracing::field::display(&group));
        let user = parse_user(user)?;
        match self.affiliations(&group).await?.get(&user) {
            None => Err(not_a_participant(&user, &group)),
            Some(Affiliation::Owner) => Ok(()),
            Some(_) => self.grant_admin(&group, user).await,
        }
    }

    /// Makes `user` owner and announces it.
    async fn grant_admin(&self, group: &BareJid, user: BareJid) -> Result<(), RequestError> {
        self.inner
            .request(Some(group.as_str()), |id| {
                muc_admin::set(group.as_str(), id, user.as_str(), Affiliation::Owner, None)
            })
            .await
            .map_err(refused)?;
        self.notice(group, NoticeKind::AdminGranted, &[user]).await
    }

    /// Makes sure we are in the group's room (to act in it): 404 when the group is gone.
    async fn enter(&self, group: &BareJid) -> Result<(), RequestError> {
        if self.inner.in_room(group).await {
            return Ok(());
        }
        match self.inner.join(group).await {
            Ok(false) => Ok(()),
            Ok(true) => {
                // It did not exist: we just made an empty room. Undo that.
                let _ = self
                    .inner
                    .request(Some(group.as_str()), |id| {
                        muc_owner::destroy(group.as_str(), id, None)
                    })
                    .await;
                Err(RequestError::NotFound(format!("no group {group}")))
            }
            Err(e) => Err(e),
        }
    }

    /// Leaves the group for good. The last admin first hands admin to the member whose JID
    /// sorts first (so that the group keeps an admin); a group with no other member cannot
    /// be left (409: delete it instead). Everyone else receives [`Event::MemberLeft`].
    #[tracing::instrument(level = "debug", skip_all, fields(group = tracing::field::Empty))]
    pub async fn exit_group(&self, group: impl ToJid) -> Result<(), RequestError> {
        let group = self.group_arg(group)?;
        tracing::Span::current().record("group", tracing::field::display(&group));
        let inner = &self.inner;
        let me = inner.me.clone();
        self.enter(&group).await?;
        let admin = inner.my_affiliation(&group).await == Some(Affiliation::Owner);
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
        inner.set_exiting(&group, true).await?;
        let result = async {
            self.notice(&group, NoticeKind::MemberLeft, &[]).await?;
            inner.send(muc::leave(group.as_str(), &inner.nick)).await?;
            match inner
                .request(Some(group.as_str()), |id| {
                    muc_admin::set(group.as_str(), id, me.as_str(), Affiliation::None, None)
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
            inner.set_exiting(&group, false).await?;
            return Err(e);
        }
        self.forget(&group).await
    }

    /// Deletes the group: an admin destroys it for everyone ([`Event::GroupDeleted`]); a
    /// member forgets it (leaves the room and drops it from the list; still a member, so
    /// an admin can invite them back). 404 when the group does not exist.
    #[tracing::instrument(level = "debug", skip_all, fields(group = tracing::field::Empty))]
    pub async fn delete_group(&self, group: impl ToJid) -> Result<(), RequestError> {
        let group = self.group_arg(group)?;
        tracing::Span::current().record("group", tracing::field::display(&group));
        let inner = &self.inner;
        match self.enter(&group).await {
            Ok(()) => {}
            // Removed from it already: forgetting is all that is left.
            Err(e) if matches!(e, RequestError::Forbidden(_)) || is_not_member(&e) => {
                return self.forget(&group).await;
            }
            Err(e) => return Err(e),
        }
        if inner.my_affiliation(&group).await == Some(Affiliation::Owner) {
            self.notice(&group, NoticeKind::GroupDeleted, &[]).await?;
            inner
                .request(Some(group.as_str()), |id| {
                    muc_owner::destroy(group.as_str(), id, None)
                })
                .await
                .map_err(refused)?;
            // Reported once: here, or by the room's destruction presence if it came first.
            inner
                .gone(
                    &group,
                    Event::GroupDeleted {
                        group: group.clone(),
                        by: Some(inner.me.clone()),
                    },
                )
                .await
        } else {
            inner.set_exiting(&group, true).await?;
            inner.send(muc::leave(group.as_str(), &inner.nick)).await?;
            self.forget(&group).await
        }
    }

    async fn forget(&self, group: &BareJid) -> Result<(), RequestError> {
        let g = group.clone();
        self.inner.with(move |c| c.unlist(&g)).await?;
        let r = self.inner.bookmark_remove(group).await;
        self.inner.set_exiting(group, false).await?;
        r
    }

    /// Joins a group we were invited to (with [`InvitationPolicy::Manual`]) and lists it.
    ///
    /// [`InvitationPolicy::Manual`]: crate::InvitationPolicy::Manual
    #[tracing::instrument(level = "debug", skip_all, fields(group = tracing::field::Empty))]
    pub async fn join_group(&self, group: impl ToJid) -> Result<(), RequestError> {
        let group = self.group_arg(group)?;
        tracing::Span::current().record("group", tracing::field::display(&group));
        self.inner.accept(&group, None, None).await
    }

    /// Sends a text message: to a group (type groupchat; waits for the room to take it, so
    /// that a refusal surfaces as 403, and returns the room's archive id) or to a user
    /// (type chat; waits for the server's XEP-0198 acknowledgement). Either way 504
    /// [`RequestError::Unconfirmed`] when the server does not confirm in time: the message
    /// stays queued and may still be delivered. Every message carries an origin-id (the
    /// returned id) and asks for markers.
    #[tracing::instrument(level = "debug", skip_all, fields(to = tracing::field::Empty))]
    pub async fn send_text(&self, to: impl ToJid, body: &str) -> Result<SentMessage, RequestError> {
        let jid = to.to_jid()?;
        tracing::Span::current().record("to", tracing::field::display(&jid));
        if body.is_empty() {
            return Err(RequestError::BadRequest("the message is empty".into()));
        }
        check_text("the message", body)?;
        let id = self.inner.new_id();
        if self.is_group(&jid) {
            let m = Message::text(jid.to_bare().into(), MessageType::Groupchat, &id, body);
            let stanza_id = self.inner.send_to_group(&m).await?;
            Ok(SentMessage { id, stanza_id })
        } else {
            let m = Message::text(jid, MessageType::Chat, &id, body);
            self.inner.send_acknowledged(m.encode(), &id).await?;
            Ok(SentMessage {
                id,
                stanza_id: None,
            })
        }
    }
}

impl Inner {
    /// `jid` as one of our groups: a bare JID on our group service.
    fn our_group(&self, jid: &str) -> Option<BareJid> {
        let j: Jid = jid.parse().ok()?;
        self.is_our_group(&j).then(|| j.into_bare())
    }

    /// Notes that we are about to change `group`'s configuration or image (see
    /// [`Core::own_change`](crate::core::Core::own_change)).
    pub(crate) fn own_change(&self, group: &BareJid) {
        let g = group.clone();
        self.tell(move |c| c.own_change(&g));
    }

    /// Marks `group` as being left by us (our departure is then no removal), or not.
    pub(crate) async fn set_exiting(&self, group: &BareJid, on: bool) -> Result<(), RequestError> {
        let g = group.clone();
        self.with(move |c| c.record(&g).exiting = on).await
    }

    /// Forgets a group that is gone and reports `event` once its bookmark is removed; a
    /// group that is not (or no longer) listed reports nothing. Returns when the bookmark is
    /// gone, also when the room's own word removed the group first (that removal's
    /// follow-up may still be running: the bookmark changes are one at a time, so this one
    /// ends after it), so that a group list read next no longer has it.
    pub(crate) async fn gone(&self, group: &BareJid, event: Event) -> Result<(), RequestError> {
        let g = group.clone();
        let listed = self.with(move |c| c.unlist(&g)).await?;
        let _ = self.bookmark_remove(group).await;
        if listed {
            self.emit(event);
        }
        Ok(())
    }

    pub(crate) async fn profile(&self, group: &BareJid) -> Result<GroupProfile, RequestError> {
        let info = self
            .request(Some(group.as_str()), |id| disco::info(group.as_str(), id))
            .await
            .map_err(refused)?;
        let info =
            disco::decode_info(&info).map_err(|e| RequestError::BadRequest(e.to_string()))?;
        let room = disco::RoomInfo::from_info(&info);
        let image = match self
            .request(Some(group.as_str()), |id| vcard::get(group.as_str(), id))
            .await
        {
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
            jid: group.clone(),
            name: room.name,
            description: room.description,
            image,
        })
    }

    /// Both bookmark stores, merged (XEP-0402 items and XEP-0048 private storage): our
    /// groups, and remembers the other entries of private storage so that rewriting it
    /// keeps them.
    pub(crate) async fn read_bookmarks(&self) -> Result<Vec<(BareJid, Bookmark)>, RequestError> {
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
        let (ours, foreign): (Vec<Bookmark>, Vec<Bookmark>) = private
            .into_iter()
            .partition(|b| self.our_group(&b.jid).is_some());
        let private_used = !ours.is_empty();
        self.with(move |c| {
            if private_used {
                c.dialect = Dialect::Private;
            }
            c.foreign_bookmarks = foreign;
        })
        .await?;
        let mut all: Vec<(BareJid, Bookmark)> = pep
            .into_iter()
            .filter_map(|b| Some((self.our_group(&b.jid)?, b)))
            .collect();
        for b in ours {
            if let Some(j) = self.our_group(&b.jid)
                && !all.iter().any(|(x, _)| *x == j)
            {
                all.push((j, b));
            }
        }
        Ok(all)
    }

    pub(crate) async fn load_bookmarks(&self) -> Result<(), RequestError> {
        let all = self.read_bookmarks().await?;
        self.with(move |c| {
            for (jid, b) in all {
                c.list(&jid, b.name);
                c.record(&jid).bookmarked = true;
            }
        })
        .await
    }

    /// The bookmark dialect, our listed groups that are bookmarked plus `extra` (the list
    /// a read-back should find), and the private-storage document (those and the foreign
    /// entries it held).
    async fn bookmark_state(
        &self,
        extra: Option<Bookmark>,
    ) -> Result<(Dialect, Vec<Bookmark>, Vec<Bookmark>), RequestError> {
        let nick = self.nick.clone();
        self.with(move |c| {
            let mut ours: Vec<Bookmark> = c
                .listed()
                .filter(|(jid, r)| {
                    r.bookmarked && extra.as_ref().is_none_or(|b| b.jid != jid.as_str())
                })
                .map(|(jid, r)| Bookmark::new(jid.as_str(), r.name.clone(), Some(nick.clone())))
                .collect();
            ours.extend(extra);
            let mut doc = ours.clone();
            doc.extend(c.foreign_bookmarks.iter().cloned());
            (c.dialect, ours, doc)
        })
        .await
    }

    fn set_bookmarked(&self, group: &BareJid, on: bool) {
        let g = group.clone();
        self.tell(move |c| c.record(&g).bookmarked = on);
    }

    fn set_dialect(&self, d: Dialect) {
        self.tell(move |c| c.dialect = d);
    }

    /// Adds or updates a bookmark, walking the server's dialect (see
    /// `groupchat_protocol::codec::xep::bookmarks`). One change at a time.
    pub(crate) async fn bookmark_add(&self, b: Bookmark) -> Result<(), RequestError> {
        let _one = self.bookmark_lock.lock().await;
        loop {
            let (dialect, expected, doc) = self.bookmark_state(Some(b.clone())).await?;
            if dialect == Dialect::Private {
                self.request(None, |id| bookmarks::set_private(id, &doc))
                    .await?;
                if let Some(j) = bare_jid(&b.jid) {
                    self.set_bookmarked(&j, true);
                }
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
                        if let Some(j) = bare_jid(&b.jid) {
                            self.set_bookmarked(&j, true);
                        }
                        return Ok(());
                    }
                    self.set_dialect(next);
                }
                Err(RequestError::Stanza(e)) => match dialect.after_publish_error(&e) {
                    Some(next) => self.set_dialect(next),
                    None => return Err(RequestError::Stanza(e)),
                },
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes a bookmark from both stores.
    pub(crate) async fn bookmark_remove(&self, group: &BareJid) -> Result<(), RequestError> {
        let _one = self.bookmark_lock.lock().await;
        self.set_bookmarked(group, false);
        let r = self
            .request(None, |id| bookmarks::retract(id, group.as_str()))
            .await;
        let (dialect, _, doc) = self.bookmark_state(None).await?;
        if dialect == Dialect::Private {
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
