//! The stanza codec: encode → decode round-trips for every typed payload, and hostile input
//! (random trees, random bytes) never panics.

use groupchat_protocol::codec::xep::caps::Caps;
use groupchat_protocol::codec::xep::chat_states::ChatState;
use groupchat_protocol::codec::xep::delay::Delay;
use groupchat_protocol::codec::xep::hints::Hints;
use groupchat_protocol::codec::xep::mam::MamResult;
use groupchat_protocol::codec::xep::markers::{Marker, MarkerKind};
use groupchat_protocol::codec::xep::media::{Hash, Media, Thumbnail};
use groupchat_protocol::codec::xep::muc_user::{Affiliation, Destroy, Invite, Item, MucUser, Role};
use groupchat_protocol::codec::xep::retract::Retraction;
use groupchat_protocol::codec::xep::sid::StanzaId;
use groupchat_protocol::codec::xep::stanza_error::{ErrorType, StanzaError};
use groupchat_protocol::codec::xep::vcard_update::VCardUpdate;
use groupchat_protocol::codec::{
    Bodies, LangText, Message, MessageType, NsContext, Presence, PresenceType, Stanza,
    decode_stanza, invalid_xml_char,
};
use proptest::option;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    // Every character XML can carry (markup, white space, every plane), with the ones that
    // need escaping made common; `any_text_round_trips_or_is_refused` covers the rest.
    let special = prop_oneof![
        Just('<'),
        Just('>'),
        Just('&'),
        Just('\''),
        Just('"'),
        Just('\r'),
        Just('\n'),
        Just('\t'),
        Just(' ')
    ];
    let c = prop_oneof![
        3 => any::<char>().prop_filter("XML can carry it", |c| invalid_xml_char(&c.to_string()).is_none()),
        1 => special,
    ];
    proptest::collection::vec(c, 0..24).prop_map(|v| v.into_iter().collect())
}

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.:+/=-]{1,16}"
}

fn jid() -> impl Strategy<Value = jid::Jid> {
    (
        "[a-z][a-z0-9]{0,8}",
        "[a-z]{1,8}(\\.[a-z]{1,5})?",
        option::of("[a-zA-Z0-9 ]{1,8}"),
    )
        .prop_map(|(n, d, r)| {
            let s = match r {
                Some(r) => format!("{n}@{d}/{r}"),
                None => format!("{n}@{d}"),
            };
            jid::Jid::new(&s).unwrap()
        })
}

fn delay() -> impl Strategy<Value = Delay> {
    (token(), option::of(token())).prop_map(|(stamp, from)| Delay { stamp, from })
}

fn media() -> impl Strategy<Value = Media> {
    (
        "[a-z]{1,6}://[a-z0-9./]{1,20}",
        option::of(text()),
        option::of(token()),
        (
            option::of(any::<u64>()),
            option::of(any::<u64>()),
            option::of(any::<u32>()),
            option::of(any::<u32>()),
        ),
        option::of(text()),
        proptest::collection::vec((token(), "[A-Za-z0-9+/=]{1,12}"), 0..2),
        option::of((
            token(),
            option::of(token()),
            option::of(any::<u32>()),
            option::of(any::<u32>()),
        )),
    )
        .prop_map(
            |(
                url,
                name,
                media_type,
                (size, duration_ms, width, height),
                caption,
                hashes,
                thumb,
            )| {
                let mut m = Media::default();
                m.url = url;
                m.name = name;
                m.media_type = media_type;
                m.size = size;
                m.duration_ms = duration_ms;
                m.width = width;
                m.height = height;
                m.caption = caption;
                m.hashes = hashes
                    .into_iter()
                    .map(|(algo, value)| Hash { algo, value })
                    .collect();
                m.thumbnail = thumb.map(|(uri, media_type, width, height)| {
                    let mut t = Thumbnail::default();
                    t.uri = uri;
                    t.media_type = media_type;
                    t.width = width;
                    t.height = height;
                    t
                });
                m
            },
        )
}

fn affiliation() -> impl Strategy<Value = Affiliation> {
    prop_oneof![
        Just(Affiliation::Owner),
        Just(Affiliation::Admin),
        Just(Affiliation::Member),
        Just(Affiliation::Outcast),
        Just(Affiliation::None)
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Moderator),
        Just(Role::Participant),
        Just(Role::Visitor),
        Just(Role::None)
    ]
}

fn muc_user() -> impl Strategy<Value = MucUser> {
    let item = (
        option::of(affiliation()),
        option::of(role()),
        option::of(token()),
        option::of(text()),
        (option::of(token()), option::of(text())),
        option::of(text()),
    )
        .prop_map(|(affiliation, role, jid, nick, actor, reason)| {
            let mut i = Item::default();
            i.affiliation = affiliation;
            i.role = role;
            i.jid = jid;
            i.nick = nick;
            (i.actor, i.actor_nick) = actor;
            i.reason = reason;
            i
        });
    let invite = || {
        (option::of(token()), option::of(token()), option::of(text())).prop_map(
            |(from, to, reason)| {
                let mut i = Invite::default();
                i.from = from;
                i.to = to;
                i.reason = reason;
                i
            },
        )
    };
    (
        proptest::collection::vec(100u16..400, 0..4),
        proptest::collection::vec(item, 0..3),
        option::of((invite(), option::of(token()))),
        option::of(invite()),
        option::of((option::of(token()), option::of(text()))),
    )
        .prop_map(|(status, items, invite, decline, destroy)| {
            let mut u = MucUser::default();
            u.status = status;
            u.items = items;
            u.invite = invite.map(|(mut i, password)| {
                i.password = password;
                i
            });
            u.decline = decline;
            u.destroy = destroy.map(|(jid, reason)| {
                let mut d = Destroy::default();
                d.jid = jid;
                d.reason = reason;
                d
            });
            u
        })
}

fn error() -> impl Strategy<Value = StanzaError> {
    (
        prop_oneof![
            Just(ErrorType::Auth),
            Just(ErrorType::Cancel),
            Just(ErrorType::Continue),
            Just(ErrorType::Modify),
            Just(ErrorType::Wait)
        ],
        prop_oneof![
            Just("forbidden"),
            Just("item-not-found"),
            Just("service-unavailable"),
            Just("not-allowed")
        ],
        option::of(text()),
    )
        .prop_map(|(kind, condition, text)| StanzaError::new(kind, condition, text))
}

fn message_kind() -> impl Strategy<Value = MessageType> {
    prop_oneof![
        Just(MessageType::Chat),
        Just(MessageType::Groupchat),
        Just(MessageType::Normal),
        Just(MessageType::Headline),
        Just(MessageType::Error)
    ]
}

fn chat_state() -> impl Strategy<Value = ChatState> {
    prop_oneof![
        Just(ChatState::Active),
        Just(ChatState::Composing),
        Just(ChatState::Paused),
        Just(ChatState::Inactive),
        Just(ChatState::Gone)
    ]
}

fn marker() -> impl Strategy<Value = Marker> {
    (
        prop_oneof![
            Just(MarkerKind::Received),
            Just(MarkerKind::Displayed),
            Just(MarkerKind::Acknowledged)
        ],
        token(),
    )
        .prop_map(|(kind, id)| Marker { kind, id })
}

fn hints() -> impl Strategy<Value = Hints> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(a, b, c, d)| {
        let mut h = Hints::default();
        h.no_store = a;
        h.no_permanent_store = b;
        h.store = c;
        h.no_copy = d;
        h
    })
}

/// A message without the nested archive result.
fn plain_message() -> impl Strategy<Value = Message> {
    (
        (
            option::of(jid()),
            option::of(jid()),
            option::of(token()),
            message_kind(),
        ),
        (option::of(text()), option::of(text()), option::of(token())),
        (
            proptest::collection::vec((token(), token()), 0..3),
            option::of(token()),
            option::of(token()),
            option::of(delay()),
        ),
        (
            option::of(chat_state()),
            any::<bool>(),
            option::of(marker()),
            hints(),
            any::<bool>(),
            option::of(token()),
        ),
        (
            option::of(media()),
            option::of((token(), option::of(token()), option::of(text()))),
            option::of(muc_user()),
            option::of((token(), option::of(text()), option::of(token()))),
            option::of(error()),
        ),
    )
        .prop_map(|(head, texts, ids, states, payloads)| {
            let mut m = Message::default();
            (m.from, m.to, m.id, m.kind) = head;
            (m.body, m.subject, m.thread) = texts;
            let (sids, origin, occupant, delay) = ids;
            m.stanza_ids = sids
                .into_iter()
                .map(|(id, by)| StanzaId {
                    id,
                    by,
                    legacy: false,
                })
                .collect();
            m.origin_id = origin;
            m.occupant_id = occupant;
            m.delay = delay;
            (
                m.chat_state,
                m.markable,
                m.marker,
                m.hints,
                m.receipt_request,
                m.receipt,
            ) = states;
            let (media, retraction, muc_user, invite, error) = payloads;
            m.media = media.map(Box::new);
            m.retraction = retraction.map(|(id, moderated_by, reason)| {
                Box::new(Retraction {
                    id,
                    moderated_by,
                    reason,
                })
            });
            m.muc_user = muc_user.map(Box::new);
            m.direct_invite = invite.map(|(room, reason, password)| {
                let mut i = Invite::default();
                i.room = Some(room);
                i.reason = reason;
                i.password = password;
                Box::new(i)
            });
            m.error = error.map(Box::new);
            m
        })
}

fn message() -> impl Strategy<Value = Message> {
    (
        plain_message(),
        option::of((
            option::of(token()),
            token(),
            option::of(delay()),
            plain_message(),
        )),
    )
        .prop_map(|(mut m, result)| {
            if let Some((query_id, id, delay, inner)) = result {
                let mut r = MamResult::new(id, inner);
                r.query_id = query_id;
                r.delay = delay;
                m.mam_result = Some(Box::new(r));
            }
            m
        })
}

fn presence() -> impl Strategy<Value = Presence> {
    (
        (option::of(jid()), option::of(jid()), option::of(token())),
        prop_oneof![
            Just((PresenceType::Available, None)),
            Just((PresenceType::Unavailable, None)),
            Just((PresenceType::Error, None)),
            Just((PresenceType::Other, Some("subscribe".to_owned()))),
        ],
        (
            option::of(token()),
            option::of(text()),
            option::of(muc_user()),
            any::<bool>(),
            option::of(token()),
            option::of(error()),
        ),
        (
            option::of((token(), token(), token())),
            option::of(option::of(token())),
        ),
    )
        .prop_map(|(head, kind, body, (caps, avatar))| {
            let mut p = Presence::default();
            (p.from, p.to, p.id) = head;
            (p.kind, p.raw_type) = kind;
            let (show, status, muc_user, muc_join, occupant_id, error) = body;
            p.show = show;
            p.status = status;
            p.muc_user = muc_user.map(Box::new);
            p.muc_join = muc_join;
            p.occupant_id = occupant_id;
            p.error = error.map(Box::new);
            p.caps = caps.map(|(hash, node, ver)| {
                let mut c = Caps::default();
                (c.hash, c.node, c.ver) = (hash, node, ver);
                Box::new(c)
            });
            p.vcard_update = avatar.map(|photo| {
                let mut u = VCardUpdate::default();
                u.photo = photo;
                u
            });
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any text at all: a body XML can carry round-trips; one it cannot is caught by
    /// `invalid_xml_char` before anything is sent (the SDK answers 400), and its encoding
    /// would not decode.
    #[test]
    fn any_text_round_trips_or_is_refused(body in any::<String>()) {
        let to: jid::Jid = "room@muc.example.org".parse().unwrap();
        let m = Message::text(to, MessageType::Groupchat, "id1", body.clone());
        let bytes = m.encode();
        let back = decode_stanza(&bytes, &NsContext::client());
        match invalid_xml_char(&body) {
            None => {
                let Ok(Stanza::Message(back)) = back else {
                    return Err(TestCaseError::fail(format!("{back:?}")));
                };
                prop_assert_eq!(back.body.as_deref(), Some(body.as_str()));
            }
            Some(_) => prop_assert!(back.is_err(), "{:?}", back),
        }
    }

    #[test]
    fn presence_round_trips(p in presence()) {
        let bytes = p.encode();
        let back = decode_stanza(&bytes, &NsContext::client());
        prop_assert!(back.is_ok(), "{:?}\n{}", back, String::from_utf8_lossy(&bytes));
        prop_assert_eq!(back.unwrap(), Stanza::Presence(Box::new(p)));
    }

    /// Random bytes: an error or a stanza, never a panic.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_stanza(&bytes, &NsContext::client());
    }

    /// Random trees built from the names and namespaces the decoders know, with random
    /// attributes and text: typed errors, never a panic.
    #[test]
    fn random_elements_never_panic(tree in element_tree()) {
        let xml = format!("<message xmlns='jabber:client' from='a@b/c' type='groupchat'>{tree}</message>");
        let _ = decode_stanza(xml.as_bytes(), &NsContext::client());
        let xml = format!("<presence xmlns='jabber:client'>{tree}</presence>");
        let _ = decode_stanza(xml.as_bytes(), &NsContext::client());
        let xml = format!("<iq xmlns='jabber:client' type='result' id='x'>{tree}</iq>");
        let _ = decode_stanza(xml.as_bytes(), &NsContext::client());
    }
}

/// Messages nest a message (archive results): the strategy's value trees are deep, so this
/// runs on a thread with a larger stack than the test harness gives.
#[test]
fn message_round_trips() {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            let mut runner =
                proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(512));
            runner
                .run(&message(), |m| {
                    let bytes = m.encode();
                    let back = decode_stanza(&bytes, &NsContext::client());
                    prop_assert!(
                        back.is_ok(),
                        "{:?}\n{}",
                        back,
                        String::from_utf8_lossy(&bytes)
                    );
                    prop_assert_eq!(back.unwrap(), Stanza::Message(Box::new(m)));
                    Ok(())
                })
                .unwrap();
        })
        .unwrap()
        .join()
        .unwrap();
}

const NAMES: &[(&str, &str)] = &[
    ("body", "jabber:client"),
    ("error", "jabber:client"),
    ("stanza-id", "urn:xmpp:sid:0"),
    ("origin-id", "urn:xmpp:sid:0"),
    ("occupant-id", "urn:xmpp:occupant-id:0"),
    ("delay", "urn:xmpp:delay"),
    ("composing", "http://jabber.org/protocol/chatstates"),
    ("displayed", "urn:xmpp:chat-markers:0"),
    ("x", "jabber:x:oob"),
    ("url", "jabber:x:oob"),
    ("file-sharing", "urn:xmpp:sfs:0"),
    ("file", "urn:xmpp:file:metadata:0"),
    ("size", "urn:xmpp:file:metadata:0"),
    ("thumbnail", "urn:xmpp:thumbs:1"),
    ("retract", "urn:xmpp:message-retract:1"),
    ("apply-to", "urn:xmpp:fasten:0"),
    ("moderated", "urn:xmpp:message-moderate:0"),
    ("x", "http://jabber.org/protocol/muc#user"),
    ("item", "http://jabber.org/protocol/muc#user"),
    ("status", "http://jabber.org/protocol/muc#user"),
    ("x", "jabber:x:conference"),
    ("result", "urn:xmpp:mam:2"),
    ("forwarded", "urn:xmpp:forward:0"),
    ("message", "jabber:client"),
    ("unknown", "urn:example"),
];

fn element_tree() -> impl Strategy<Value = String> {
    let leaf = (
        0..NAMES.len(),
        proptest::collection::vec(("[a-z]{1,6}", "[a-z0-9@/. ]{0,6}"), 0..3),
        "[a-z0-9 &;<]{0,8}",
    )
        .prop_map(|(i, attrs, t)| {
            let (n, ns) = NAMES[i];
            let a: String = attrs.iter().map(|(k, v)| format!(" {k}='{v}'")).collect();
            // Unescaped '<' or '&' make some leaves malformed on purpose.
            format!("<{n} xmlns='{ns}'{a}>{t}</{n}>")
        });
    leaf.prop_recursive(4, 32, 4, |inner| {
        (
            0..NAMES.len(),
            proptest::collection::vec(inner, 0..4),
            proptest::collection::vec(("[a-z]{1,6}", "[a-z0-9]{0,4}"), 0..2),
        )
            .prop_map(|(i, kids, attrs)| {
                let (n, ns) = NAMES[i];
                let a: String = attrs.iter().map(|(k, v)| format!(" {k}='{v}'")).collect();
                format!("<{n} xmlns='{ns}'{a}>{}</{n}>", kids.concat())
            })
    })
}

/// Attribute syntax, names and duplicates are refused at every depth (the codec's reader
/// checks them as it reads each tag; the framer only checks the stream header).
#[test]
fn bad_attributes_are_refused_at_any_depth() {
    for tag in [
        "<x xmlns='urn:a' a='1' a='2'/>",
        "<x xmlns='urn:a' a='1'b='2'/>",
        "<x xmlns='urn:a' 1a='1'/>",
        "<x xmlns='urn:a' a:b:c='1'/>",
        "<x xmlns='urn:a' a=1/>",
        "<x xmlns='urn:a' a='1/>",
        "<x xmlns='urn:a' a/>",
        "<x xmlns='urn:a' a='1' / b='2'/>",
        "<x xmlns='urn:a' / a='1' a='2'/>",
        "<x xmlns='urn:a' a='1<2'/>",
        "<x xmlns='urn:a' a='&bogus;'/>",
        "<x xmlns='urn:a' a='&#1;'/>",
        "<x xmlns='urn:a' a='&'/>",
        "<x xmlns='urn:a' foo:bar='1'/>",
        "<x xmlns='urn:a' xmlns:p='urn:b' xmlns:q='urn:b' p:a='1' q:a='2'/>",
        // more attributes than a tag keeps positions for: checked all the same
        "<x xmlns='urn:a' a1='' a2='' a3='' a4='' a5='' a6='' a7='' a8='' a9='' a1=''/>",
    ] {
        for xml in [
            format!(
                "<message xmlns='jabber:client' {}",
                &tag[3..].replacen("xmlns='urn:a' ", "", 1)
            ),
            format!("<message xmlns='jabber:client'><body>hi</body>{tag}</message>"),
            format!("<message xmlns='jabber:client'><a xmlns='urn:b'><b>{tag}</b></a></message>"),
            format!("<presence xmlns='jabber:client'>{tag}</presence>"),
        ] {
            let r = decode_stanza(xml.as_bytes(), &NsContext::client());
            assert!(r.is_err(), "accepted: {xml}");
        }
    }
    let nine = "<message xmlns='jabber:client'><x xmlns='urn:a' a1='' a2='' a3='' a4='' a5='' a6='' a7='' a8='' a9=''/></message>";
    assert!(decode_stanza(nine.as_bytes(), &NsContext::client()).is_ok());
}

/// XML 1.0 §2.2: a control character or U+FFFE / U+FFFF is refused wherever it stands in the
/// stanza (the reader checks the stanza in blocks; the offending character is tried at every
/// offset across several blocks, and straddling a block's end), and the text around it,
/// with tabs, newlines and other U+FFxx characters, is accepted.
#[test]
fn a_forbidden_character_is_refused_at_every_offset() {
    let in_body = |t: &str| format!("<message xmlns='jabber:client'><body>{t}</body></message>");
    // Near the stanza's end too, where the last, partial block is.
    let at_end = |t: &str| format!("<message xmlns='jabber:client'>{t}</message>");
    for len in 0..80 {
        let pad: String = "\tab\r\n\u{FFFD}".chars().cycle().take(len).collect();
        for stanza in [in_body, at_end] {
            assert!(decode_stanza(stanza(&pad).as_bytes(), &NsContext::client()).is_ok());
            for bad in ["\u{1}", "\u{1f}", "\u{FFFE}", "\u{FFFF}"] {
                let xml = stanza(&format!("{pad}{bad}"));
                let r = decode_stanza(xml.as_bytes(), &NsContext::client());
                assert!(r.is_err(), "accepted {bad:?} after {len} characters: {xml}");
            }
        }
    }
}

fn decode_message(xml: &str, ctx: &NsContext) -> Message {
    match decode_stanza(xml.as_bytes(), ctx).unwrap() {
        Stanza::Message(m) => *m,
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_body_language_is_kept_and_the_default_one_is_the_body() {
    // The body without its own xml:lang is in the default language, wherever it stands.
    let m = decode_message(
        "<message xmlns='jabber:client' xml:lang='en'><body xml:lang='de'>Hallo</body><body>Hello</body><body xml:lang='fr'>Bonjour</body></message>",
        &NsContext::client(),
    );
    assert_eq!(m.body.as_deref(), Some("Hello"));
    let b = m.bodies.as_deref().unwrap();
    assert_eq!(b.lang.as_deref(), Some("en"));
    assert_eq!(
        b.others,
        [LangText::new("de", "Hallo"), LangText::new("fr", "Bonjour")]
    );
    // Every body tagged: the one in the stream's language (the stanza says none).
    let mut ctx = NsContext::client();
    ctx.lang = Some("fr".into());
    let m = decode_message(
        "<message xmlns='jabber:client'><body xml:lang='de'>Hallo</body><body xml:lang='FR'>Bonjour</body></message>",
        &ctx,
    );
    assert_eq!(m.body.as_deref(), Some("Bonjour"));
    // Nothing says which is the default: the first.
    let m = decode_message(
        "<message xmlns='jabber:client'><body xml:lang='de'>Hallo</body><body xml:lang='fr'>Bonjour</body></message>",
        &NsContext::client(),
    );
    assert_eq!(m.body.as_deref(), Some("Hallo"));
    // Encoded and decoded again: the same message.
    let again = decode_message(
        std::str::from_utf8(&m.encode()).unwrap(),
        &NsContext::client(),
    );
    assert_eq!(again, m);
    // One body: no languages kept.
    let one = decode_message(
        "<message xmlns='jabber:client'><body xml:lang='de'>Hallo</body></message>",
        &NsContext::client(),
    );
    assert_eq!((one.body.as_deref(), one.bodies), (Some("Hallo"), None));
}

#[test]
fn a_reader_gets_the_body_in_the_language_it_prefers() {
    let pick = |pref: &[&str]| {
        let mut b = Bodies::new(
            Some("en".into()),
            vec![
                LangText::new("de-CH", "Grüezi"),
                LangText::new("fr", "Bonjour"),
            ],
        );
        let mut body = "Hello".to_owned();
        let pref: Vec<String> = pref.iter().map(|s| (*s).to_owned()).collect();
        b.prefer(&mut body, &pref);
        // Nothing is lost: the default body is now among the others.
        let mut all: Vec<String> = b.others.iter().map(|o| o.text.clone()).collect();
        all.push(body.clone());
        all.sort();
        assert_eq!(all, ["Bonjour", "Grüezi", "Hello"]);
        (body, b.lang)
    };
    assert_eq!(pick(&["fr", "de"]), ("Bonjour".into(), Some("fr".into())));
    assert_eq!(pick(&["de"]).0, "Grüezi", "same primary language");
    assert_eq!(
        pick(&["it", "FR"]).0,
        "Bonjour",
        "first preference that exists"
    );
    assert_eq!(
        pick(&["en-GB", "fr"]).0,
        "Hello",
        "the body's own language is near enough"
    );
    assert_eq!(pick(&["it"]).0, "Hello", "none: the default body");
    assert_eq!(pick(&[]).0, "Hello");
}
