//! Round-trips of the request/response types off the hot path: room configuration,
//! affiliations, bookmarks (both storages), the private group state, vCard photos, upload
//! slots, and the outgoing message builders.

use groupchat_protocol::codec::ext::group_state::{self, GroupState};
use groupchat_protocol::codec::xep::bookmarks::{self, Bookmark};
use groupchat_protocol::codec::xep::chat_states::ChatState;
use groupchat_protocol::codec::xep::markers::MarkerKind;
use groupchat_protocol::codec::xep::muc_owner::{self, ConfigForm, RoomConfig};
use groupchat_protocol::codec::xep::muc_user::Affiliation;
use groupchat_protocol::codec::xep::upload::{self, Slot};
use groupchat_protocol::codec::xep::vcard::{self, Photo};
use groupchat_protocol::codec::xep::{direct_invite, muc, muc_admin};
use groupchat_protocol::codec::{Iq, Message, MessageType, NsContext, Stanza, decode_stanza};
use proptest::option;
use proptest::prelude::*;

const ROOM: &str = "team@conference.localhost";

fn iq(bytes: &[u8]) -> Iq {
    match decode_stanza(bytes, &NsContext::client()) {
        Ok(Stanza::Iq(iq)) => *iq,
        other => panic!("{other:?}: {}", String::from_utf8_lossy(bytes)),
    }
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 <>&'\"é]{1,16}"
}

fn jid() -> impl Strategy<Value = String> {
    "[a-z]{1,8}@[a-z]{1,8}\\.localhost"
}

fn bookmark() -> impl Strategy<Value = Bookmark> {
    (jid(), option::of(text()), any::<bool>(), option::of(text())).prop_map(
        |(j, name, autojoin, nick)| {
            let mut b = Bookmark::new(j, name, nick);
            b.autojoin = autojoin;
            b
        },
    )
}

fn affiliation() -> impl Strategy<Value = Affiliation> {
    prop_oneof![
        Just(Affiliation::Owner),
        Just(Affiliation::Admin),
        Just(Affiliation::Member),
        Just(Affiliation::None)
    ]
}

proptest! {
    #[test]
    fn room_config_round_trips(name in text(), desc in option::of(text()), flags in any::<[bool; 5]>(), prosody in any::<bool>()) {
        let mut c = RoomConfig::group(name);
        c.description = desc;
        [c.persistent, c.members_only, c.hidden, c.whois_anyone, c.archiving] = flags;
        let form = ConfigForm {
            vars: ["muc#roomconfig_roomdesc", "muc#roomconfig_whois", if prosody { "muc#roomconfig_enablearchiving" } else { "mam" }]
                .map(str::to_owned)
                .to_vec(),
            ..ConfigForm::default()
        };
        let back = muc_owner::decode_submission(&iq(&muc_owner::submit_config(ROOM, "c", &c, &form))).unwrap();
        prop_assert_eq!(back, c);
    }

    #[test]
    fn affiliation_changes_round_trip(j in jid(), a in affiliation()) {
        let items = muc_admin::decode_list(&iq(&muc_admin::set(ROOM, "a", &j, a, None))).unwrap();
        prop_assert_eq!(items.len(), 1);
        prop_assert_eq!(&items[0].jid, &j);
        prop_assert_eq!(items[0].affiliation, a);
    }

    #[test]
    fn bookmarks_round_trip(b in bookmark(), list in proptest::collection::vec(bookmark(), 0..5)) {
        for d in [bookmarks::Dialect::Pep, bookmarks::Dialect::PepReducedOptions] {
            let Iq { payload, .. } = iq(&bookmarks::publish("p", &b, d));
            prop_assert_eq!(bookmarks::decode_items(&payload.unwrap()), vec![b.clone()]);
        }
        prop_assert_eq!(bookmarks::decode_private(&iq(&bookmarks::set_private("s", &list))).unwrap(), list);
    }

    #[test]
    fn group_state_round_trips(cleared in option::of("[a-zA-Z0-9_-]{1,12}"), hidden in proptest::collection::vec("[a-zA-Z0-9_-]{1,12}", 0..5)) {
        let mut s = GroupState::new(ROOM);
        s.cleared_up_to = cleared;
        s.hidden = hidden;
        let Iq { payload, .. } = iq(&group_state::publish("g", &s));
        prop_assert_eq!(group_state::decode(&payload.unwrap()), vec![s]);
    }

    #[test]
    fn photos_round_trip(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let p = Photo { media_type: "image/png".into(), data };
        prop_assert_eq!(vcard::decode_photo(&iq(&vcard::set_photo(ROOM, "v", &p))).unwrap(), Some(p));
    }

    #[test]
    fn upload_slots_round_trip(name in "[a-z]{1,8}\\.jpg", size in 1u64..u64::MAX / 2, token in "[A-Za-z0-9.]{1,40}") {
        let r = upload::decode_request(&iq(&upload::request("upload.localhost", "u", &name, size, "image/jpeg"))).unwrap();
        prop_assert_eq!((r.filename.as_str(), r.size), (name.as_str(), size));
        let mut slot_iq = upload::encode_slot("u", &make_slot(&format!("http://localhost/f/{name}"), &token));
        // A header the XEP does not allow is dropped on decode.
        let injected = String::from_utf8(slot_iq.clone()).unwrap().replace("</put>", "<header name='X-Evil'>1</header></put>");
        slot_iq = injected.into_bytes();
        let s = upload::decode_slot(&iq(&slot_iq)).unwrap().unwrap();
        prop_assert_eq!(s.headers, vec![("Authorization".to_owned(), format!("Bearer {token}"))]);
    }

    #[test]
    fn message_builders_round_trip(body in text(), id in "[a-zA-Z0-9-]{1,12}") {
        let to: jid::Jid = ROOM.parse().unwrap();
        for m in [
            Message::text(to.clone(), MessageType::Groupchat, id.clone(), body),
            Message::chat_state(to.clone(), MessageType::Groupchat, ChatState::Composing),
            Message::marker(to.clone(), MessageType::Groupchat, MarkerKind::Displayed, id.clone()),
            Message::retraction(to, MessageType::Groupchat, id),
        ] {
            let back = decode_stanza(&m.encode(), &NsContext::client()).unwrap();
            prop_assert_eq!(back, Stanza::Message(Box::new(m)));
        }
    }
}

fn make_slot(url: &str, token: &str) -> Slot {
    // Slot is non-exhaustive: build it the way a server's answer would be read.
    let xml = format!(
        "<iq xmlns='jabber:client' type='result' id='u'><slot xmlns='urn:xmpp:http:upload:0'><put url='{url}'><header name='Authorization'>Bearer {token}</header></put><get url='{url}'/></slot></iq>"
    );
    upload::decode_slot(&iq(xml.as_bytes())).unwrap().unwrap()
}

#[test]
fn bookmark_dialect_falls_back_when_the_node_loses_items() {
    let a = Bookmark::new("a@conference.localhost", None, None);
    let b = Bookmark::new("b@conference.localhost", None, None);
    let d = bookmarks::Dialect::PepReducedOptions;
    // The second publish replaced the first: a single-item node.
    assert_eq!(
        d.after_read_back(&[a.clone(), b.clone()], std::slice::from_ref(&b)),
        bookmarks::Dialect::Private
    );
    assert_eq!(d.after_read_back(&[a.clone(), b.clone()], &[a, b]), d);
}

proptest! {
    #[test]
    fn room_presence_and_invitation_builders_round_trip(nick in "[a-zA-Z0-9 ]{1,12}", invitee in jid(), reason in option::of(text()), no_history in any::<bool>()) {
        let Stanza::Presence(p) = decode_stanza(&muc::join(ROOM, &nick, "j1", no_history), &NsContext::client()).unwrap() else { panic!() };
        prop_assert!(p.muc_join);
        prop_assert_eq!(p.to.unwrap().to_string(), format!("{ROOM}/{nick}"));
        let Stanza::Presence(p) = decode_stanza(&muc::leave(ROOM, &nick), &NsContext::client()).unwrap() else { panic!() };
        prop_assert_eq!(p.kind, groupchat_protocol::codec::PresenceType::Unavailable);

        let Stanza::Message(m) = decode_stanza(&muc::invite(ROOM, &invitee, reason.as_deref()), &NsContext::client()).unwrap() else { panic!() };
        let inv = m.muc_user.unwrap().invite.unwrap();
        prop_assert_eq!((inv.to.as_deref(), inv.reason.as_deref()), (Some(invitee.as_str()), reason.as_deref()));
        let Stanza::Message(m) = decode_stanza(&direct_invite::invite(ROOM, &invitee, reason.as_deref()), &NsContext::client()).unwrap() else { panic!() };
        let inv = m.direct_invite.unwrap();
        prop_assert_eq!((inv.room.as_deref(), inv.reason.as_deref()), (Some(ROOM), reason.as_deref()));
    }

    #[test]
    fn destroy_and_moderation_requests_are_well_formed(reason in option::of(text()), id in "[a-zA-Z0-9-]{1,12}") {
        let destroy = iq(&muc_owner::destroy(ROOM, "d", reason.as_deref()));
        let d = destroy.payload.unwrap();
        let got = d.get_child("destroy", muc_owner::NS).unwrap().get_child("reason", muc_owner::NS).map(|r| r.text());
        prop_assert_eq!(&got, &reason);
        let m = iq(&groupchat_protocol::codec::xep::retract::moderate(ROOM, "m", &id, reason.as_deref())).payload.unwrap();
        prop_assert_eq!(m.attr("id"), Some(id.as_str()));
        prop_assert!(m.has_child("retract", groupchat_protocol::codec::xep::retract::NS));
    }

    /// Hostile IQ payloads reach every cold-path decoder: typed errors or empty results,
    /// never a panic.
    #[test]
    fn cold_decoders_never_panic(children in proptest::collection::vec(("[a-z]{1,6}", prop_oneof![
        Just("jabber:x:data"), Just("http://jabber.org/protocol/disco#info"), Just("vcard-temp"),
        Just("urn:xmpp:http:upload:0"), Just("urn:xmpp:bookmarks:1"), Just("storage:bookmarks"),
        Just("http://jabber.org/protocol/muc#admin"), Just("urn:xmpp:mam:2"), Just("http://jabber.org/protocol/rsm"),
    ], "[a-zA-Z0-9 =/+]{0,10}"), 0..6), root in prop_oneof![
        Just(("query", "http://jabber.org/protocol/disco#info")), Just(("query", "http://jabber.org/protocol/muc#owner")),
        Just(("vCard", "vcard-temp")), Just(("slot", "urn:xmpp:http:upload:0")), Just(("pubsub", "http://jabber.org/protocol/pubsub")),
        Just(("query", "jabber:iq:private")), Just(("query", "http://jabber.org/protocol/muc#admin")), Just(("fin", "urn:xmpp:mam:2")),
    ]) {
        let inner: String = children.iter().map(|(n, ns, t)| format!("<{n} xmlns='{ns}' var='{t}' jid='{t}' url='{t}'>{t}<value>{t}</value><x xmlns='jabber:x:data' type='{n}'><field var='{t}'/></x></{n}>")).collect();
        let xml = format!("<iq xmlns='jabber:client' type='result' id='x'><{0} xmlns='{1}'>{inner}</{0}></iq>", root.0, root.1);
        let Ok(Stanza::Iq(iq)) = decode_stanza(xml.as_bytes(), &NsContext::client()) else { return Ok(()) };
        let _ = groupchat_protocol::codec::xep::disco::decode_info(&iq);
        let _ = groupchat_protocol::codec::xep::disco::decode_items(&iq);
        let _ = muc_owner::decode_config_form(&iq);
        let _ = muc_owner::decode_submission(&iq);
        let _ = muc_admin::decode_list(&iq);
        let _ = vcard::decode_photo(&iq);
        let _ = upload::decode_slot(&iq);
        let _ = upload::decode_request(&iq);
        let _ = bookmarks::decode_items_result(&iq);
        let _ = bookmarks::decode_private(&iq);
        let _ = group_state::decode_result(&iq);
        let _ = groupchat_protocol::pagination::Fin::from_iq(&iq);
        let _ = groupchat_protocol::pagination::HistoryQuery::decode(&iq);
    }
}
