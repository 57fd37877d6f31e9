//! Decoding what real servers sent: the recordings in `tests/data/{prosody,ejabberd}/`
//! (made by `cargo run -p groupchat-test-support --example record_transcripts`).

use std::path::PathBuf;

use crate::codec::{NsContext, Stanza, TopLevel, decode_top_level};
use crate::group::{GroupEvent, GroupServices, GroupTracker};
use crate::pagination::{Collected, HistoryQuery, PageCollector};
use crate::xml::{Limits, Scanner, Token};

const SERVERS: [&str; 2] = ["prosody", "ejabberd"];
const ROOM: &str = "team@conference.localhost";

fn dir(server: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(server)
}

/// The elements of one recording, each decoded.
fn stanzas(server: &str, file: &str) -> Vec<Stanza> {
    let path = dir(server).join(format!("{file}.xml"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    split(&bytes)
        .into_iter()
        .filter_map(|el| match decode_top_level(&el, &NsContext::client()) {
            Ok(TopLevel::Stanza(s)) => Some(s),
            Ok(TopLevel::Other(_)) => None,
            Err(e) => panic!("{server}/{file}: {e}\n{}", String::from_utf8_lossy(&el)),
        })
        .collect()
}

fn split(bytes: &[u8]) -> Vec<bytes::Bytes> {
    let mut sc = Scanner::new(false, Limits::default());
    sc.push(bytes);
    let mut out = Vec::new();
    while let Some(t) = sc.next_token().expect("recording is well-formed") {
        match t {
            Token::Element(b) => out.push(b),
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

fn events(server: &str, file: &str) -> Vec<GroupEvent> {
    let mut t = GroupTracker::new(GroupServices::new(["conference.localhost"]));
    stanzas(server, file)
        .iter()
        .flat_map(|s| t.ingest(s))
        .collect()
}

#[test]
fn every_recording_decodes() {
    for server in SERVERS {
        let mut n = 0;
        for entry in std::fs::read_dir(dir(server)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            n += stanzas(server, &name).len();
        }
        assert!(n > 100, "{server}: only {n} stanzas recorded");
    }
}

#[test]
fn room_creation_and_joins() {
    for server in SERVERS {
        let ev = events(server, "muc-create");
        assert!(
            ev.iter().any(
                |e| matches!(e, GroupEvent::Joined { group, created: true, .. } if group.as_str() == ROOM)
            ),
            "{server}: {ev:?}"
        );
        let ev = events(server, "muc-join--alice");
        assert!(
            ev.iter().any(
                |e| matches!(e, GroupEvent::ParticipantJoined { occupant, .. }
                if occupant.nick == "bob" && occupant.jid.as_ref().map(|j| j.as_str()) == Some("bob@localhost"))
            ),
            "{server}: {ev:?}"
        );
        let ev = events(server, "muc-join-refused--dave");
        match &ev[..] {
            [GroupEvent::JoinFailed { error, .. }] => {
                assert_eq!(error.condition, "registration-required", "{server}");
            }
            other => panic!("{server}: {other:?}"),
        }
    }
}

#[test]
fn group_messages_carry_ids_and_sender() {
    for server in SERVERS {
        let ev = events(server, "groupchat--bob");
        let [GroupEvent::Message(m)] = &ev[..] else {
            panic!("{server}: {ev:?}")
        };
        assert_eq!(m.body.as_deref(), Some("hello team"));
        assert_eq!(m.sender.nick, "alice");
        assert_eq!(m.origin_id.as_deref(), Some("origin-m1"));
        assert!(
            m.stanza_id.is_some(),
            "{server}: the room's stanza-id is the row id"
        );
        // ejabberd 23.01 has no XEP-0421.
        assert_eq!(
            m.sender.occupant_id.is_some(),
            server == "prosody",
            "{server}"
        );
    }
}

#[test]
fn typing_media_markers_retractions() {
    for server in SERVERS {
        let ev = events(server, "chatstate-composing--bob");
        assert!(
            matches!(
                &ev[..],
                [GroupEvent::Typing {
                    state: crate::codec::xep::chat_states::ChatState::Composing,
                    ..
                }]
            ),
            "{server}: {ev:?}"
        );
        let ev = events(server, "media-message--bob");
        let [GroupEvent::Message(m)] = &ev[..] else {
            panic!("{server}: {ev:?}")
        };
        let media = m.media.as_ref().expect("media");
        assert_eq!(media.name.as_deref(), Some("cat.jpg"));
        assert_eq!(media.media_type.as_deref(), Some("image/jpeg"));
        assert_eq!(media.size, Some(12345));
        assert_eq!((media.width, media.height), (Some(640), Some(480)));
        assert_eq!(media.url, "http://localhost/f/cat.jpg");
        assert!(media.thumbnail.is_some());
        let ev = events(server, "markers-received--alice");
        assert!(
            ev.iter().any(|e| matches!(
                e,
                GroupEvent::Marker {
                    kind: crate::codec::xep::markers::MarkerKind::Received,
                    ..
                }
            )),
            "{server}: {ev:?}"
        );
        let ev = events(server, "markers-displayed--alice");
        assert!(
            ev.iter().any(|e| matches!(
                e,
                GroupEvent::Marker {
                    kind: crate::codec::xep::markers::MarkerKind::Displayed,
                    ..
                }
            )),
            "{server}: {ev:?}"
        );
        let ev = events(server, "retract--bob");
        assert!(
            ev.iter().any(|e| matches!(
                e,
                GroupEvent::Retracted {
                    moderated: false,
                    ..
                }
            )),
            "{server}: {ev:?}"
        );
        let ev = events(server, "retract-fasten--bob");
        assert!(
            ev.iter().any(|e| matches!(e, GroupEvent::Retracted { .. })),
            "{server}: {ev:?}"
        );
    }
}

#[test]
fn invitations_profile_removal_destruction() {
    for server in SERVERS {
        let ev = events(server, "invite-mediated--bob");
        let invites: Vec<_> = ev
            .iter()
            .filter(|e| matches!(e, GroupEvent::Invited { .. }))
            .collect();
        // Prosody adds a XEP-0249 copy to the mediated invitation: still one event.
        assert_eq!(invites.len(), 1, "{server}: {ev:?}");
        assert!(
            matches!(invites[0], GroupEvent::Invited { group, by: Some(by), .. } if group.as_str() == ROOM && by.as_str() == "alice@localhost")
        );
        let ev = events(server, "invite-direct--carol");
        assert!(
            matches!(&ev[..], [GroupEvent::Invited { group, .. }] if group.as_str() == ROOM),
            "{server}: {ev:?}"
        );
        let ev = events(server, "config-change--bob");
        assert!(
            ev.iter()
                .any(|e| matches!(e, GroupEvent::ProfileChanged { .. })),
            "{server}: {ev:?}"
        );
        let ev = events(server, "muc-remove--carol");
        assert!(
            ev.iter().any(|e| matches!(
                e,
                GroupEvent::Removed {
                    status: 321,
                    is_self: true,
                    ..
                }
            )),
            "{server}: {ev:?}"
        );
        let ev = events(server, "destroy--bob");
        assert!(
            ev.iter().any(
                |e| matches!(e, GroupEvent::Destroyed { group, .. } if group.as_str() == ROOM)
            ),
            "{server}: {ev:?}"
        );
    }
}

#[test]
fn errors_carry_the_condition_each_server_chose() {
    // Both servers refuse a member's admin change with not-allowed and a removed member's
    // post with not-acceptable (the SDK reports both as a refused group action, 403).
    for (file, condition) in [
        ("muc-admin-forbidden--carol", "not-allowed"),
        ("disco-unknown-room", "item-not-found"),
        ("muc-not-member-post--carol", "not-acceptable"),
    ] {
        for server in SERVERS {
            let errs: Vec<_> = stanzas(server, file)
                .iter()
                .filter_map(|s| match s {
                    Stanza::Iq(iq) => iq.error.clone(),
                    Stanza::Message(m) => m.error.as_deref().cloned(),
                    Stanza::Presence(p) => p.error.as_deref().cloned(),
                })
                .collect();
            assert!(!errs.is_empty(), "{server}/{file}: no error");
            assert_eq!(errs[0].condition, condition, "{server}/{file}");
        }
    }
}

#[test]
fn archive_pages_from_both_servers() {
    for server in SERVERS {
        for (file, complete) in [("mam-page-1-last", false), ("mam-page-final", true)] {
            let all = stanzas(server, file);
            let iq_id = all
                .iter()
                .find_map(|s| match s {
                    Stanza::Iq(iq) => Some(iq.id.clone()),
                    _ => None,
                })
                .expect("fin");
            let mut c = PageCollector::new(HistoryQuery::latest(ROOM, 2), iq_id);
            let mut page = None;
            for s in all {
                if let Collected::Done(p) = c.feed(s).unwrap() {
                    page = Some(p);
                }
            }
            let page = page.unwrap_or_else(|| panic!("{server}/{file}: no page"));
            assert_eq!(page.complete, complete, "{server}/{file}");
            assert!(!page.messages.is_empty(), "{server}/{file}");
            assert!(
                page.messages.iter().all(|m| m.stamp.is_some()),
                "{server}/{file}"
            );
            if !complete {
                assert!(page.next_query().is_some());
            }
        }
    }
}

fn iq_of(server: &str, file: &str) -> crate::codec::Iq {
    stanzas(server, file)
        .into_iter()
        .find_map(|s| match s {
            Stanza::Iq(iq) => Some(*iq),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{server}/{file}: no iq"))
}

#[test]
fn owner_form_dialects_and_room_profile() {
    use crate::codec::xep::{disco, muc_owner};
    for server in SERVERS {
        let form = muc_owner::decode_config_form(&iq_of(server, "muc-config-form")).unwrap();
        let archiving = if server == "prosody" {
            "muc#roomconfig_enablearchiving"
        } else {
            "mam"
        };
        assert!(
            form.vars.iter().any(|v| v == archiving),
            "{server}: {:?}",
            form.vars
        );
        let submit =
            muc_owner::submit_config(ROOM, "c1", &muc_owner::RoomConfig::group("Team"), &form);
        let submit = String::from_utf8(submit).unwrap();
        assert!(
            submit.contains(&format!("var='{archiving}'")),
            "{server}: {submit}"
        );

        let info =
            disco::RoomInfo::from_info(&disco::decode_info(&iq_of(server, "room-info")).unwrap());
        assert_eq!(info.name.as_deref(), Some("Team"), "{server}");
        assert!(
            info.members_only && info.non_anonymous && info.persistent && info.archived,
            "{server}: {info:?}"
        );
        assert_eq!(info.occupant_id, server == "prosody");
        // Neither server moderates (no XEP-0425 in Prosody 0.12 or ejabberd 23.01).
        assert!(!info.moderation, "{server}");
    }
}

#[test]
fn admin_lists_vcards_uploads_bookmarks_state() {
    use crate::codec::ext::group_state;
    use crate::codec::xep::muc_user::Affiliation;
    use crate::codec::xep::{bookmarks, muc_admin, upload, vcard};
    for server in SERVERS {
        let owners = muc_admin::decode_list(&iq_of(server, "muc-admin-list-owner")).unwrap();
        assert!(
            owners
                .iter()
                .any(|i| i.jid == "alice@localhost" && i.affiliation == Affiliation::Owner),
            "{server}: {owners:?}"
        );
        let members = muc_admin::decode_list(&iq_of(server, "muc-admin-list-member--bob")).unwrap();
        assert!(
            !members.is_empty(),
            "{server}: a member can read the member list"
        );

        let photo = vcard::decode_photo(&iq_of(server, "room-vcard-get--bob"))
            .unwrap()
            .expect("photo");
        assert_eq!(photo.media_type, "image/png", "{server}");
        assert!(photo.data.starts_with(b"\x89PNG"), "{server}");

        let slot = upload::decode_slot(&iq_of(server, "upload-slot"))
            .unwrap()
            .expect("slot");
        assert!(
            slot.put.starts_with("http://localhost:") && slot.get.ends_with("cat.jpg"),
            "{server}: {slot:?}"
        );
        let too_big = upload::decode_slot(&iq_of(server, "upload-slot-too-big"))
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(too_big, upload::SlotRefusal::TooLarge { limit: Some(l) } if l > 0),
            "{server}: {too_big:?}"
        );

        let items = bookmarks::decode_items_result(&iq_of(server, "bookmarks-402-items")).unwrap();
        assert_eq!(items.len(), 2, "{server}: {items:?}");
        assert!(
            items
                .iter()
                .any(|b| b.jid == ROOM && b.name.as_deref() == Some("Team") && b.autojoin)
        );
        let private = bookmarks::decode_private(&iq_of(server, "bookmarks-048-get")).unwrap();
        assert!(
            private.iter().any(|b| b.jid == ROOM),
            "{server}: {private:?}"
        );

        let states = group_state::decode_result(&iq_of(server, "pep-private-node-items")).unwrap();
        assert!(
            states
                .iter()
                .any(|s| s.group == ROOM && s.cleared_up_to.is_some()),
            "{server}: {states:?}"
        );
    }
    // ejabberd refuses pubsub#max_items: the dialect steps down to reduced options.
    let refused = iq_of("ejabberd", "bookmarks-402-publish");
    let e = refused
        .error
        .expect("ejabberd refuses the full publish-options");
    assert_eq!(
        bookmarks::Dialect::Pep.after_publish_error(&e),
        Some(bookmarks::Dialect::PepReducedOptions)
    );
    assert!(iq_of("prosody", "bookmarks-402-publish").error.is_none());
}
