//! Records, byte for byte, what real Prosody 0.12 and ejabberd 23.01 servers send during the
//! group operations of the SDK (`design.md`, section 3), as fixtures for the protocol crate.
//!
//! ```sh
//! cargo run -p groupchat-test-support --example record_transcripts [-- prosody|ejabberd]
//! ```
//!
//! For each server kind it starts a fresh [`TestServer`], logs alice, bob, carol and dave in
//! (one `TcpStream` each: plaintext c2s, SASL PLAIN, bind, initial presence), then runs the
//! operations in order with hand-written stanzas. During an operation every socket is read;
//! the operation ends when the expected reply arrived and all sockets were then silent for
//! [`QUIET`]. The bytes a user received during one operation are written unchanged (no
//! re-serialization, nothing stripped) to `crates/protocol/tests/data/<kind>/<file>.xml`.
//!
//! With both kinds recorded, `crates/protocol/tests/data/README.md` is regenerated: the
//! operations part is generated, the hand-written notes after [`NOTES_MARKER`] are kept.
//!
//! Std only, no dependencies: the login and the small XML scanner are hand-written and
//! only good enough for what these two servers send.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use groupchat_test_support::{ServerKind, TestServer, base64};

/// Silence on all sockets that ends an operation, once its expected reply has arrived.
const QUIET: Duration = Duration::from_millis(600);
/// How long to wait for the expected reply of one step before going on without it.
const WAIT_MAX: Duration = Duration::from_secs(6);
/// Upper bound for the settle phase, in case a server never goes quiet.
const SETTLE_MAX: Duration = Duration::from_secs(10);

const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
const RESOURCE: &str = "rec";
const ROOM: &str = "team@conference.localhost";
const OTHER_ROOM: &str = "other@conference.localhost";

const NS_MUC: &str = "http://jabber.org/protocol/muc";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NS_MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const NS_RSM: &str = "http://jabber.org/protocol/rsm";
const NS_MAM: &str = "urn:xmpp:mam:2";
const NS_BOOKMARKS: &str = "urn:xmpp:bookmarks:1";
const NS_STATE: &str = "urn:xmpp:groupchat:state:0";

/// Everything in the README after this line is hand-written and kept on regeneration.
const NOTES_MARKER: &str =
    "<!-- Hand-written notes below this line are kept when the recorder regenerates this file. -->";

const STREAM_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

fn main() {
    let kinds: Vec<ServerKind> = match std::env::args().nth(1).as_deref() {
        Some("prosody") => vec![ServerKind::Prosody],
        Some("ejabberd") => vec![ServerKind::Ejabberd],
        None => ServerKind::ALL.to_vec(),
        Some(other) => {
            eprintln!("usage: record_transcripts [prosody|ejabberd] (got {other:?})");
            std::process::exit(2);
        }
    };
    let data = data_dir();
    let mut runs = Vec::new();
    for kind in kinds {
        let Some(server) = TestServer::start(kind) else {
            eprintln!("{kind} is not installed: nothing recorded for it");
            continue;
        };
        println!("== {kind}: c2s on {}", server.c2s_addr());
        let mut rec = Recorder::login(kind, server.c2s_addr()).unwrap_or_else(|e| {
            panic!("{kind}: login failed: {e}\n{}", server.log_tail(30));
        });
        run_operations(&mut rec);
        let dir = data.join(slug(kind));
        write_transcripts(&rec, &dir).unwrap_or_else(|e| panic!("writing {}: {e}", dir.display()));
        println!(
            "== {kind}: {} operations written to {}",
            rec.ops.len(),
            dir.display()
        );
        runs.push(rec.finish());
    }
    if runs.len() == ServerKind::ALL.len() {
        let readme = data.join("README.md");
        write_readme(&runs, &readme).unwrap_or_else(|e| panic!("{}: {e}", readme.display()));
        println!("== README regenerated: {}", readme.display());
    } else {
        println!("== README not regenerated (needs both servers in one run)");
    }
}

/// `crates/protocol/tests/data`.
fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocol/tests/data")
}

fn slug(kind: ServerKind) -> &'static str {
    match kind {
        ServerKind::Prosody => "prosody",
        ServerKind::Ejabberd => "ejabberd",
    }
}

// ------------------------------------------------------------------------------------------
// The operations

/// Runs every operation, in order, on one server.
fn run_operations(r: &mut Recorder) {
    // Initial presence: drained here so that no operation sees it.
    let steps = USERS
        .iter()
        .map(|u| Step::new(u, "<presence/>", Wait::Has(u, "<presence")))
        .collect();
    r.op(
        "login-presence",
        "each user sends initial presence",
        &[],
        steps,
    );

    // 1. Create.
    r.op(
        "muc-create",
        "alice joins the new room, which creates it",
        &[("muc-create", "alice")],
        vec![Step::new(
            "alice",
            format!("<presence to='{ROOM}/alice' id='join-alice'><x xmlns='{NS_MUC}'/></presence>"),
            Wait::Has("alice", "110"),
        )],
    );

    // 2. Configure.
    let form = r.op(
        "muc-config-form",
        "alice asks for the owner configuration form",
        &[("muc-config-form", "alice")],
        vec![Step::iq(
            "alice",
            "cfg1",
            format!("<iq type='get' to='{ROOM}' id='cfg1'><query xmlns='{NS_MUC_OWNER}'/></iq>"),
        )],
    );
    let vars = field_vars(&r.text(form, "alice"));
    println!("   config form fields: {vars:?}");
    let mut fields = vec![
        (
            "FORM_TYPE",
            vec!["http://jabber.org/protocol/muc#roomconfig"],
        ),
        ("muc#roomconfig_roomname", vec!["Team"]),
        ("muc#roomconfig_persistentroom", vec!["1"]),
        ("muc#roomconfig_membersonly", vec!["1"]),
        ("muc#roomconfig_publicroom", vec!["0"]),
        ("muc#roomconfig_whois", vec!["anyone"]),
    ];
    for archiving in ["muc#roomconfig_enablearchiving", "mam"] {
        if vars.iter().any(|v| v == archiving) {
            fields.push((archiving, vec!["1"]));
        }
    }
    if vars.iter().any(|v| v == "muc#roomconfig_getmemberlist") {
        fields.push((
            "muc#roomconfig_getmemberlist",
            vec!["moderator", "participant", "visitor"],
        ));
    }
    r.op(
        "muc-config-submit",
        "alice submits the form: name Team, persistent, members-only, hidden, whois anyone, \
         archiving on (and who may get the member list, where the form has that field)",
        &[("muc-config-submit", "alice")],
        vec![Step::iq(
            "alice",
            "cfg2",
            format!(
                "<iq type='set' to='{ROOM}' id='cfg2'><query xmlns='{NS_MUC_OWNER}'>{}</query></iq>",
                data_form("submit", &fields)
            ),
        )],
    );

    // 3. Affiliations.
    r.op(
        "muc-admin-member",
        "alice makes bob and carol members, one request each (dave stays without affiliation)",
        &[("muc-admin-member", "alice")],
        vec![
            Step::iq("alice", "aff1", set_affiliation("aff1", "bob", "member")),
            Step::iq("alice", "aff2", set_affiliation("aff2", "carol", "member")),
        ],
    );
    r.op(
        "muc-admin-owner",
        "alice makes bob an owner",
        &[("muc-admin-owner", "alice")],
        vec![Step::iq(
            "alice",
            "aff3",
            set_affiliation("aff3", "bob", "owner"),
        )],
    );
    for (id, aff) in [("list1", "owner"), ("list2", "admin"), ("list3", "member")] {
        let file = format!("muc-admin-list-{aff}");
        r.op(
            &file,
            &format!("alice gets the {aff} list"),
            &[(file.as_str(), "alice")],
            vec![Step::iq("alice", id, get_affiliation(id, aff))],
        );
    }
    r.op(
        "muc-admin-list-member (bob)",
        "bob (owner, not joined) gets the member list",
        &[("muc-admin-list-member--bob", "bob")],
        vec![Step::iq("bob", "list4", get_affiliation("list4", "member"))],
    );

    // 4. Invitations.
    r.op(
        "invite-mediated",
        "alice sends a mediated invitation for bob through the room",
        &[("invite-mediated--bob", "bob"), ("invite-mediated--alice", "alice")],
        vec![Step::new(
            "alice",
            format!(
                "<message to='{ROOM}' id='inv1'><x xmlns='{NS_MUC_USER}'><invite to='bob@localhost'>\
                 <reason>join us</reason></invite></x></message>"
            ),
            Wait::Has("bob", "invite"),
        )],
    );
    r.op(
        "invite-direct",
        "alice sends carol a direct (XEP-0249) invitation",
        &[("invite-direct--carol", "carol")],
        vec![Step::new(
            "alice",
            format!(
                "<message to='carol@localhost' id='inv2'><x xmlns='jabber:x:conference' \
                 jid='{ROOM}' reason='join us'/></message>"
            ),
            Wait::Id("carol", "inv2"),
        )],
    );

    // 5. Joins.
    r.op(
        "muc-join",
        "bob joins the room (alice is in it)",
        &[("muc-join--bob", "bob"), ("muc-join--alice", "alice")],
        vec![join("bob")],
    );
    r.op(
        "muc-join (carol)",
        "carol joins too (set-up for the moderation and removal operations)",
        &[("muc-join--carol", "carol")],
        vec![join("carol")],
    );

    // 6. Groupchat.
    let m1 = r.op(
        "groupchat",
        "alice sends a groupchat message with an origin-id",
        &[("groupchat--bob", "bob"), ("groupchat--alice", "alice")],
        vec![Step::new(
            "alice",
            format!(
                "<message type='groupchat' id='m1' to='{ROOM}'><body>hello team</body>\
                 <origin-id xmlns='urn:xmpp:sid:0' id='origin-m1'/></message>"
            ),
            Wait::Id("alice", "m1"),
        )],
    );
    let m1_sid = room_stanza_id(&r.text(m1, "bob"), "m1").unwrap_or_else(|| {
        println!("   !! no room stanza-id for m1 in bob's view; using a placeholder");
        "NO-STANZA-ID".to_owned()
    });
    println!("   stanza-id of m1: {m1_sid}");

    // 7. Chat states.
    for (id, state) in [("cs1", "composing"), ("cs2", "paused")] {
        let file = format!("chatstate-{state}--bob");
        r.op(
            &format!("chatstate-{state}"),
            &format!("alice sends a body-less `{state}` chat state with a no-store hint"),
            &[(file.as_str(), "bob")],
            vec![Step::new(
                "alice",
                format!(
                    "<message type='groupchat' id='{id}' to='{ROOM}'>\
                     <{state} xmlns='http://jabber.org/protocol/chatstates'/>\
                     <no-store xmlns='urn:xmpp:hints'/></message>"
                ),
                Wait::Id("bob", id),
            )],
        );
    }

    // 8. Media.
    r.op(
        "media-message",
        "alice sends a media message: body = URL, OOB, XEP-0447 file-sharing with metadata",
        &[("media-message--bob", "bob")],
        vec![Step::new(
            "alice",
            format!(
                "<message type='groupchat' id='media1' to='{ROOM}'>\
                 <body>http://localhost/f/cat.jpg</body>\
                 <x xmlns='jabber:x:oob'><url>http://localhost/f/cat.jpg</url></x>\
                 <file-sharing xmlns='urn:xmpp:sfs:0'><file xmlns='urn:xmpp:file:metadata:0'>\
                 <media-type>image/jpeg</media-type><name>cat.jpg</name><size>12345</size>\
                 <width>640</width><height>480</height><desc>a cat</desc>\
                 <hash xmlns='urn:xmpp:hashes:2' algo='sha-256'>\
                 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=</hash>\
                 <thumbnail xmlns='urn:xmpp:thumbs:1' uri='data:image/png;base64,iVBORw0KGgo=' \
                 media-type='image/png' width='16' height='12'/></file>\
                 <sources><url-data xmlns='http://jabber.org/protocol/url-data' \
                 target='http://localhost/f/cat.jpg'/></sources></file-sharing>\
                 <origin-id xmlns='urn:xmpp:sid:0' id='origin-media1'/></message>"
            ),
            Wait::Id("bob", "media1"),
        )],
    );

    // 9. Markers.
    for (id, marker) in [("mk1", "received"), ("mk2", "displayed")] {
        let file = format!("markers-{marker}--alice");
        r.op(
            &format!("markers-{marker}"),
            &format!("bob sends a `{marker}` marker for m1 (its room stanza-id) with a store hint"),
            &[(file.as_str(), "alice")],
            vec![Step::new(
                "bob",
                format!(
                    "<message type='groupchat' id='{id}' to='{ROOM}'>\
                     <{marker} xmlns='urn:xmpp:chat-markers:0' id='{m1_sid}'/>\
                     <store xmlns='urn:xmpp:hints'/></message>"
                ),
                Wait::Id("alice", id),
            )],
        );
    }

    // 10. Retraction, moderation.
    r.op(
        "retract",
        "alice retracts m1 (XEP-0424 v1, by room stanza-id) with a fallback body",
        &[("retract--bob", "bob")],
        vec![Step::new(
            "alice",
            format!(
                "<message type='groupchat' id='r1' to='{ROOM}'>\
                 <retract xmlns='urn:xmpp:message-retract:1' id='{m1_sid}'/>\
                 <fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/>\
                 <body>/me retracted a previous message, but your client does not support it</body>\
                 <store xmlns='urn:xmpp:hints'/>\
                 <origin-id xmlns='urn:xmpp:sid:0' id='origin-r1'/></message>"
            ),
            Wait::Id("bob", "r1"),
        )],
    );
    r.op(
        "retract-fasten",
        "alice retracts m1 again in the older fastening form (message-retract:0)",
        &[("retract-fasten--bob", "bob")],
        vec![Step::new(
            "alice",
            format!(
                "<message type='groupchat' id='r2' to='{ROOM}'>\
                 <apply-to xmlns='urn:xmpp:fasten:0' id='{m1_sid}'>\
                 <retract xmlns='urn:xmpp:message-retract:0'/></apply-to>\
                 <fallback xmlns='urn:xmpp:fallback:0'/>\
                 <body>/me retracted a previous message, but your client does not support it</body>\
                 <store xmlns='urn:xmpp:hints'/>\
                 <origin-id xmlns='urn:xmpp:sid:0' id='origin-r2'/></message>"
            ),
            Wait::Id("bob", "r2"),
        )],
    );
    let c1 = r.op(
        "groupchat (carol)",
        "carol sends a message (the one bob will moderate)",
        &[],
        vec![Step::new(
            "carol",
            format!(
                "<message type='groupchat' id='c1' to='{ROOM}'><body>buy cheap watches</body>\
                 <origin-id xmlns='urn:xmpp:sid:0' id='origin-c1'/></message>"
            ),
            Wait::Id("bob", "c1"),
        )],
    );
    let c1_sid = room_stanza_id(&r.text(c1, "bob"), "c1").unwrap_or_else(|| "NO-STANZA-ID".into());
    println!("   stanza-id of c1: {c1_sid}");
    let info = r.op(
        "room-info",
        "alice gets the room's disco#info",
        &[("room-info", "alice")],
        vec![Step::iq(
            "alice",
            "info1",
            format!(
                "<iq type='get' to='{ROOM}' id='info1'>\
                 <query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
            ),
        )],
    );
    let info = r.text(info, "alice");
    let moderate = if info.contains("urn:xmpp:message-moderate:1") {
        println!("   room advertises message-moderate:1");
        format!(
            "<iq type='set' to='{ROOM}' id='mod1'><moderate xmlns='urn:xmpp:message-moderate:1' \
             id='{c1_sid}'><retract xmlns='urn:xmpp:message-retract:1'/><reason>spam</reason>\
             </moderate></iq>"
        )
    } else {
        println!(
            "   room advertises message-moderate:0: {}",
            info.contains("urn:xmpp:message-moderate:0")
        );
        format!(
            "<iq type='set' to='{ROOM}' id='mod1'><apply-to xmlns='urn:xmpp:fasten:0' id='{c1_sid}'>\
             <moderate xmlns='urn:xmpp:message-moderate:0'><retract xmlns='urn:xmpp:message-retract:0'/>\
             <reason>spam</reason></moderate></apply-to></iq>"
        )
    };
    r.op(
        "moderate",
        "bob (owner) moderates carol's message (XEP-0425, the version the room advertises; \
         :0 when it advertises none)",
        &[("moderate--alice", "alice"), ("moderate--bob", "bob")],
        vec![Step::iq("bob", "mod1", moderate)],
    );

    // 11. MAM.
    let steps = (2..=6)
        .map(|n| {
            Step::new(
                "alice",
                format!(
                    "<message type='groupchat' id='m{n}' to='{ROOM}'><body>message {n}</body>\
                     <origin-id xmlns='urn:xmpp:sid:0' id='origin-m{n}'/></message>"
                ),
                Wait::Id("bob", leak(format!("m{n}"))),
            )
        })
        .collect();
    r.op("groupchat m2..m6", "alice sends m2 to m6", &[], steps);
    let mut before = String::new();
    let mut oldest = None;
    for page in 1..=40 {
        let id = format!("q{page}");
        let set = if before.is_empty() {
            "<max>2</max><before/>".to_owned()
        } else {
            format!("<max>2</max><before>{before}</before>")
        };
        let op = r.op(
            &format!("mam page {page}"),
            &format!("bob pages the room archive backwards, 2 per page (page {page})"),
            &[],
            vec![Step::iq("bob", leak(id.clone()), mam_query(&id, &set, ""))],
        );
        let text = r.text(op, "bob");
        let fin = element_with_id(&text, &id).unwrap_or_default();
        let complete = child_tag(&fin, "fin").and_then(|t| attr(t, "complete"));
        let first = child_text(&fin, "first");
        println!("   page {page}: complete={complete:?} first={first:?}");
        let done = complete.as_deref() == Some("true") || first.is_none() || page == 40;
        let file = match (page, done) {
            (1, _) => "mam-page-1-last".to_owned(),
            (_, true) => "mam-page-final".to_owned(),
            _ => format!("mam-page-{page}"),
        };
        r.ops[op].name = file.clone();
        r.ops[op].files.push((file, "bob"));
        if done {
            // With a one-page archive page 1 is also the final page.
            if page == 1 {
                r.ops[op].files.push(("mam-page-final".to_owned(), "bob"));
            }
            oldest = first;
            break;
        }
        before = first.unwrap_or_default();
    }
    let after = oldest.unwrap_or_default();
    r.op(
        "mam-page-after",
        "bob pages forwards from the oldest archived message (`after` = its id), 2 per page",
        &[("mam-page-after", "bob")],
        vec![Step::iq(
            "bob",
            "qa",
            mam_query("qa", &format!("<max>2</max><after>{after}</after>"), ""),
        )],
    );
    r.op(
        "mam-form",
        "bob queries the archive with a data form holding only FORM_TYPE (no RSM)",
        &[("mam-form", "bob")],
        vec![Step::iq(
            "bob",
            "qf",
            mam_query(
                "qf",
                "",
                &data_form("submit", &[("FORM_TYPE", vec![NS_MAM])]),
            ),
        )],
    );

    // 12. Room vCard.
    r.op(
        "room-vcard-set",
        "alice sets the room vCard (a photo)",
        &[("room-vcard-set", "alice"), ("room-vcard-set--bob", "bob")],
        vec![Step::iq(
            "alice",
            "vc1",
            format!(
                "<iq type='set' to='{ROOM}' id='vc1'><vCard xmlns='vcard-temp'><PHOTO>\
                 <TYPE>image/png</TYPE><BINVAL>iVBORw0KGgo=</BINVAL></PHOTO></vCard></iq>"
            ),
        )],
    );
    r.op(
        "room-vcard-get",
        "bob gets the room vCard",
        &[("room-vcard-get--bob", "bob")],
        vec![Step::iq(
            "bob",
            "vc2",
            format!("<iq type='get' to='{ROOM}' id='vc2'><vCard xmlns='vcard-temp'/></iq>"),
        )],
    );

    // 13, 14. Config change, subject.
    r.op(
        "config-change",
        "alice renames the room through the owner form (only FORM_TYPE and the name)",
        &[("config-change--bob", "bob"), ("config-change--alice", "alice")],
        vec![Step::iq(
            "alice",
            "cfg3",
            format!(
                "<iq type='set' to='{ROOM}' id='cfg3'><query xmlns='{NS_MUC_OWNER}'>{}</query></iq>",
                data_form(
                    "submit",
                    &[
                        ("FORM_TYPE", vec!["http://jabber.org/protocol/muc#roomconfig"]),
                        ("muc#roomconfig_roomname", vec!["Team renamed"]),
                    ]
                )
            ),
        )],
    );
    r.op(
        "subject",
        "alice sets the subject",
        &[("subject--bob", "bob")],
        vec![Step::new(
            "alice",
            format!(
                "<message type='groupchat' id='subj1' to='{ROOM}'>\
                 <subject>Sprint planning</subject></message>"
            ),
            Wait::Has("bob", "Sprint planning"),
        )],
    );

    // 15. Upload and server disco.
    for (name, id, size) in [
        ("upload-slot", "u1", "12345"),
        ("upload-slot-too-big", "u2", "999999999"),
    ] {
        r.op(
            name,
            &format!("alice asks upload.localhost for a slot of {size} bytes"),
            &[(name, "alice")],
            vec![Step::iq(
                "alice",
                id,
                format!(
                    "<iq type='get' to='upload.localhost' id='{id}'>\
                     <request xmlns='urn:xmpp:http:upload:0' filename='cat.jpg' size='{size}' \
                     content-type='image/jpeg'/></iq>"
                ),
            )],
        );
    }
    r.op(
        "disco-items-server",
        "alice gets disco#items of localhost",
        &[("disco-items-server", "alice")],
        vec![Step::iq(
            "alice",
            "d1",
            "<iq type='get' to='localhost' id='d1'>\
             <query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
        )],
    );
    r.op(
        "disco-info-upload",
        "alice gets disco#info of upload.localhost",
        &[("disco-info-upload", "alice")],
        vec![Step::iq(
            "alice",
            "d2",
            "<iq type='get' to='upload.localhost' id='d2'>\
             <query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )],
    );

    // 16. Bookmarks.
    let full_options = [
        (
            "FORM_TYPE",
            vec!["http://jabber.org/protocol/pubsub#publish-options"],
        ),
        ("pubsub#persist_items", vec!["true"]),
        ("pubsub#max_items", vec!["max"]),
        ("pubsub#send_last_published_item", vec!["never"]),
        ("pubsub#access_model", vec!["whitelist"]),
    ];
    let retry_options = [
        (
            "FORM_TYPE",
            vec!["http://jabber.org/protocol/pubsub#publish-options"],
        ),
        ("pubsub#persist_items", vec!["true"]),
        ("pubsub#access_model", vec!["whitelist"]),
    ];
    r.op(
        "bookmarks-402-publish",
        "alice publishes a XEP-0402 bookmark with the full publish-options",
        &[("bookmarks-402-publish", "alice")],
        vec![Step::iq(
            "alice",
            "bm1",
            bookmark_publish("bm1", ROOM, "Team", &full_options),
        )],
    );
    r.op(
        "bookmarks-402-publish-retry",
        "alice publishes it again without pubsub#max_items and pubsub#send_last_published_item",
        &[("bookmarks-402-publish-retry", "alice")],
        vec![Step::iq(
            "alice",
            "bm2",
            bookmark_publish("bm2", ROOM, "Team", &retry_options),
        )],
    );
    r.op(
        "bookmarks-402-publish-second",
        "alice publishes a second bookmark (another room), with the reduced publish-options",
        &[("bookmarks-402-publish-second", "alice")],
        vec![Step::iq(
            "alice",
            "bm3",
            bookmark_publish("bm3", OTHER_ROOM, "Other", &retry_options),
        )],
    );
    r.op(
        "bookmarks-402-items",
        "alice gets all items of her bookmarks node",
        &[("bookmarks-402-items", "alice")],
        vec![Step::iq("alice", "bm4", pubsub_items("bm4", NS_BOOKMARKS))],
    );
    r.op(
        "bookmarks-048-get-compat",
        "alice reads XEP-0048 private XML storage before ever writing to it: does it mirror the \
         XEP-0402 items?",
        &[("bookmarks-048-get-compat", "alice")],
        vec![Step::iq(
            "alice",
            "bm9",
            "<iq type='get' id='bm9'><query xmlns='jabber:iq:private'>\
             <storage xmlns='storage:bookmarks'/></query></iq>",
        )],
    );
    r.op(
        "bookmarks-402-retract",
        "alice retracts the second bookmark",
        &[("bookmarks-402-retract", "alice")],
        vec![Step::iq(
            "alice",
            "bm5",
            format!(
                "<iq type='set' id='bm5'><pubsub xmlns='{NS_PUBSUB}'>\
                 <retract node='{NS_BOOKMARKS}' notify='true'><item id='{OTHER_ROOM}'/></retract>\
                 </pubsub></iq>"
            ),
        )],
    );
    r.op(
        "bookmarks-048-set",
        "alice stores a XEP-0048 bookmark in XEP-0049 private XML storage",
        &[("bookmarks-048-set", "alice")],
        vec![Step::iq(
            "alice",
            "bm6",
            format!(
                "<iq type='set' id='bm6'><query xmlns='jabber:iq:private'>\
                 <storage xmlns='storage:bookmarks'><conference jid='{ROOM}' autojoin='true' \
                 name='Team'><nick>alice</nick></conference></storage></query></iq>"
            ),
        )],
    );
    r.op(
        "bookmarks-048-get",
        "alice reads the XEP-0048 bookmarks back from private XML storage",
        &[("bookmarks-048-get", "alice")],
        vec![Step::iq(
            "alice",
            "bm7",
            "<iq type='get' id='bm7'><query xmlns='jabber:iq:private'>\
             <storage xmlns='storage:bookmarks'/></query></iq>",
        )],
    );
    r.op(
        "bookmarks-402-items-after-048",
        "alice gets the XEP-0402 items again, after the XEP-0048 set",
        &[("bookmarks-402-items-after-048", "alice")],
        vec![Step::iq("alice", "bm8", pubsub_items("bm8", NS_BOOKMARKS))],
    );

    // 17. Private PEP node.
    r.op(
        "pep-private-node",
        "alice publishes her private per-group state (item id = group JID), whitelist + persist",
        &[("pep-private-node", "alice")],
        vec![Step::iq(
            "alice",
            "pep1",
            format!(
                "<iq type='set' id='pep1'><pubsub xmlns='{NS_PUBSUB}'><publish node='{NS_STATE}'>\
                 <item id='{ROOM}'><state xmlns='{NS_STATE}' group='{ROOM}'>\
                 <cleared-up-to id='{m1_sid}'/><hidden id='{c1_sid}'/></state></item></publish>\
                 <publish-options>{}</publish-options></pubsub></iq>",
                data_form("submit", &retry_options)
            ),
        )],
    );
    r.op(
        "pep-private-node-items",
        "alice retrieves the private node",
        &[("pep-private-node-items", "alice")],
        vec![Step::iq("alice", "pep2", pubsub_items("pep2", NS_STATE))],
    );

    // 18. Removal.
    r.op(
        "muc-remove",
        "alice sets carol's affiliation to none while carol is in the room",
        &[
            ("muc-remove--carol", "carol"),
            ("muc-remove--alice", "alice"),
        ],
        vec![Step::iq(
            "alice",
            "aff4",
            set_affiliation("aff4", "carol", "none"),
        )],
    );
    r.op(
        "muc-not-member-post",
        "carol, removed, tries to post to the room",
        &[("muc-not-member-post--carol", "carol")],
        vec![Step::new(
            "carol",
            format!(
                "<message type='groupchat' id='c2' to='{ROOM}'><body>am I still here?</body>\
                 </message>"
            ),
            Wait::Id("carol", "c2"),
        )],
    );
    r.op(
        "muc-join-refused",
        "dave (no affiliation) tries to join the members-only room",
        &[("muc-join-refused--dave", "dave")],
        vec![join("dave")],
    );

    // 19. Forbidden admin request, unknown room.
    r.op(
        "muc-admin-member (carol again)",
        "alice makes carol a member again",
        &[],
        vec![Step::iq(
            "alice",
            "aff5",
            set_affiliation("aff5", "carol", "member"),
        )],
    );
    r.op(
        "muc-rejoin (carol)",
        "carol joins again",
        &[],
        vec![join("carol")],
    );
    r.op(
        "muc-admin-list-member (carol)",
        "carol (plain member, joined) gets the member list",
        &[("muc-admin-list-member--carol", "carol")],
        vec![Step::iq(
            "carol",
            "list5",
            get_affiliation("list5", "member"),
        )],
    );
    r.op(
        "muc-admin-forbidden",
        "carol (plain member) tries to make dave a member",
        &[("muc-admin-forbidden--carol", "carol")],
        vec![Step::iq(
            "carol",
            "aff6",
            set_affiliation("aff6", "dave", "member"),
        )],
    );
    r.op(
        "disco-unknown-room",
        "alice gets disco#info of a room that does not exist",
        &[("disco-unknown-room", "alice")],
        vec![Step::iq(
            "alice",
            "d3",
            "<iq type='get' to='nosuch@conference.localhost' id='d3'>\
             <query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )],
    );

    // 20. Exit, 1:1 chat.
    r.op(
        "exit",
        "bob leaves the room (unavailable presence)",
        &[("exit--alice", "alice"), ("exit--bob", "bob")],
        vec![Step::new(
            "bob",
            format!("<presence type='unavailable' to='{ROOM}/bob' id='leave-bob'/>"),
            Wait::Has("bob", "unavailable"),
        )],
    );
    r.op(
        "chat-1to1",
        "alice sends bob a 1:1 chat message with an origin-id",
        &[("chat-1to1--bob", "bob")],
        vec![Step::new(
            "alice",
            "<message type='chat' to='bob@localhost' id='chat1'><body>hi bob</body>\
             <origin-id xmlns='urn:xmpp:sid:0' id='origin-chat1'/></message>",
            Wait::Id("bob", "chat1"),
        )],
    );

    // 21. Destroy.
    r.op(
        "muc-rejoin (bob)",
        "bob joins again (the room now has history and a subject)",
        &[("muc-rejoin--bob", "bob")],
        vec![join("bob")],
    );
    r.op(
        "destroy",
        "alice destroys the room while bob (and carol) are in it",
        &[("destroy--bob", "bob"), ("destroy--alice", "alice")],
        vec![Step::iq(
            "alice",
            "destroy1",
            format!(
                "<iq type='set' to='{ROOM}' id='destroy1'><query xmlns='{NS_MUC_OWNER}'>\
                 <destroy><reason>done</reason></destroy></query></iq>"
            ),
        )],
    );
}

fn join(user: &'static str) -> Step {
    Step::new(
        user,
        format!("<presence to='{ROOM}/{user}' id='join-{user}'><x xmlns='{NS_MUC}'/></presence>"),
        Wait::Either(user, "110", "type='error'"),
    )
}

fn set_affiliation(id: &str, user: &str, affiliation: &str) -> String {
    format!(
        "<iq type='set' to='{ROOM}' id='{id}'><query xmlns='{NS_MUC_ADMIN}'>\
         <item affiliation='{affiliation}' jid='{user}@localhost'/></query></iq>"
    )
}

fn get_affiliation(id: &str, affiliation: &str) -> String {
    format!(
        "<iq type='get' to='{ROOM}' id='{id}'><query xmlns='{NS_MUC_ADMIN}'>\
         <item affiliation='{affiliation}'/></query></iq>"
    )
}

fn mam_query(id: &str, set: &str, form: &str) -> String {
    let set = if set.is_empty() {
        String::new()
    } else {
        format!("<set xmlns='{NS_RSM}'>{set}</set>")
    };
    format!(
        "<iq type='set' to='{ROOM}' id='{id}'><query xmlns='{NS_MAM}' queryid='{id}'>{form}{set}\
         </query></iq>"
    )
}

fn bookmark_publish(id: &str, room: &str, name: &str, options: &[(&str, Vec<&str>)]) -> String {
    format!(
        "<iq type='set' id='{id}'><pubsub xmlns='{NS_PUBSUB}'><publish node='{NS_BOOKMARKS}'>\
         <item id='{room}'><conference xmlns='{NS_BOOKMARKS}' name='{name}' autojoin='true'>\
         <nick>alice</nick></conference></item></publish>\
         <publish-options>{}</publish-options></pubsub></iq>",
        data_form("submit", options)
    )
}

fn pubsub_items(id: &str, node: &str) -> String {
    format!(
        "<iq type='get' id='{id}'><pubsub xmlns='{NS_PUBSUB}'><items node='{node}'/></pubsub></iq>"
    )
}

fn data_form(kind: &str, fields: &[(&str, Vec<&str>)]) -> String {
    let mut out = format!("<x xmlns='jabber:x:data' type='{kind}'>");
    for (var, values) in fields {
        if *var == "FORM_TYPE" {
            let _ = write!(out, "<field var='FORM_TYPE' type='hidden'>");
        } else {
            let _ = write!(out, "<field var='{var}'>");
        }
        for value in values {
            let _ = write!(out, "<value>{value}</value>");
        }
        out.push_str("</field>");
    }
    out.push_str("</x>");
    out
}

/// A `&'static str` made at run time (a handful of ids, once per run).
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

// ------------------------------------------------------------------------------------------
// Recording

/// When a step counts as answered.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// A top-level element with this `id` attribute reached the user.
    Id(&'static str, &'static str),
    /// A top-level element containing the text (with `"` read as `'`) reached the user.
    Has(&'static str, &'static str),
    /// Either text.
    Either(&'static str, &'static str, &'static str),
}

#[derive(Debug)]
struct Step {
    user: &'static str,
    stanza: String,
    wait: Wait,
}

impl Step {
    fn new(user: &'static str, stanza: impl Into<String>, wait: Wait) -> Self {
        Self {
            user,
            stanza: stanza.into(),
            wait,
        }
    }

    /// An IQ from `user` whose reply (result or error) carries `id`.
    fn iq(user: &'static str, id: &'static str, stanza: impl Into<String>) -> Self {
        Self::new(user, stanza, Wait::Id(user, id))
    }
}

/// One operation on one server.
#[derive(Debug)]
struct OpRecord {
    name: String,
    desc: String,
    /// (file stem, user whose received bytes it holds).
    files: Vec<(String, &'static str)>,
    /// (sender, stanza) in the order sent.
    requests: Vec<(&'static str, String)>,
    /// Bytes each user received during the operation.
    received: BTreeMap<&'static str, Vec<u8>>,
    /// Steps whose expected reply never came.
    timeouts: Vec<String>,
}

struct Client {
    name: &'static str,
    stream: TcpStream,
    /// Bytes read during login after the bind result (given to the first operation).
    carry: Vec<u8>,
}

struct Recorder {
    kind: ServerKind,
    clients: Vec<Client>,
    ops: Vec<OpRecord>,
}

/// What the README needs from one server's run.
struct Run {
    kind: ServerKind,
    ops: Vec<OpRecord>,
}

impl Recorder {
    fn login(kind: ServerKind, addr: SocketAddr) -> io::Result<Self> {
        let mut clients = Vec::new();
        for name in USERS {
            clients.push(login(addr, name)?);
        }
        Ok(Self {
            kind,
            clients,
            ops: Vec::new(),
        })
    }

    fn finish(self) -> Run {
        Run {
            kind: self.kind,
            ops: self.ops,
        }
    }

    /// Runs one operation: sends each step's stanza and waits for its reply, then reads all
    /// sockets until they are quiet. Returns the index of the record.
    fn op(
        &mut self,
        name: &str,
        desc: &str,
        files: &[(&str, &'static str)],
        steps: Vec<Step>,
    ) -> usize {
        let mut record = OpRecord {
            name: name.to_owned(),
            desc: desc.to_owned(),
            files: files.iter().map(|(f, u)| ((*f).to_owned(), *u)).collect(),
            requests: Vec::new(),
            received: USERS.iter().map(|u| (*u, Vec::new())).collect(),
            timeouts: Vec::new(),
        };
        for client in &mut self.clients {
            let carry = std::mem::take(&mut client.carry);
            record
                .received
                .entry(client.name)
                .or_default()
                .extend(carry);
        }
        for step in steps {
            let client = self
                .clients
                .iter_mut()
                .find(|c| c.name == step.user)
                .expect("known user");
            client
                .stream
                .write_all(step.stanza.as_bytes())
                .unwrap_or_else(|e| panic!("{}: send failed: {e}", step.user));
            record.requests.push((step.user, step.stanza.clone()));
            let deadline = Instant::now() + WAIT_MAX;
            loop {
                self.pump(&mut record);
                if satisfied(step.wait, &record) {
                    break;
                }
                if Instant::now() > deadline {
                    let note = format!("{:?} not seen within {WAIT_MAX:?}", step.wait);
                    println!("   !! {name}: {note}");
                    record.timeouts.push(note);
                    break;
                }
                thread::sleep(Duration::from_millis(5));
            }
        }
        let start = Instant::now();
        let mut last = Instant::now();
        while last.elapsed() < QUIET && start.elapsed() < SETTLE_MAX {
            if self.pump(&mut record) {
                last = Instant::now();
            }
            thread::sleep(Duration::from_millis(5));
        }
        let summary: Vec<String> = record
            .received
            .iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(u, b)| format!("{u}: {}", summarize(b)))
            .collect();
        println!("-- {name}: {}", summary.join("; "));
        self.ops.push(record);
        self.ops.len() - 1
    }

    /// Reads whatever is available on every socket. True if anything arrived.
    fn pump(&mut self, record: &mut OpRecord) -> bool {
        let mut any = false;
        let mut buf = [0u8; 16384];
        for client in &mut self.clients {
            loop {
                match client.stream.read(&mut buf) {
                    Ok(0) => panic!("{}: the server closed the stream", client.name),
                    Ok(n) => {
                        record
                            .received
                            .entry(client.name)
                            .or_default()
                            .extend_from_slice(&buf[..n]);
                        any = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => panic!("{}: read failed: {e}", client.name),
                }
            }
        }
        any
    }

    /// What `user` received during operation `op`, as (lossy) text.
    fn text(&self, op: usize, user: &str) -> String {
        String::from_utf8_lossy(&self.ops[op].received[user]).into_owned()
    }
}

fn satisfied(wait: Wait, record: &OpRecord) -> bool {
    let user = match wait {
        Wait::Id(user, _) | Wait::Has(user, _) | Wait::Either(user, _, _) => user,
    };
    let matches = |el: &str| match wait {
        Wait::Id(_, id) => attr(el, "id").as_deref() == Some(id),
        Wait::Has(_, needle) => el.replace('"', "'").contains(needle),
        Wait::Either(_, a, b) => {
            let el = el.replace('"', "'");
            el.contains(a) || el.contains(b)
        }
    };
    let bytes = &record.received[user];
    split_elements(bytes)
        .into_iter()
        .any(|(s, e)| matches(&String::from_utf8_lossy(&bytes[s..e])))
}

/// Plaintext c2s login: stream, SASL PLAIN, stream restart, bind. The socket is left
/// non-blocking.
fn login(addr: SocketAddr, name: &'static str) -> io::Result<Client> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    stream.write_all(STREAM_HEADER.as_bytes())?;
    read_until(&mut stream, &mut buf, |b| {
        find(b, b"</stream:features>").is_some()
    })?;
    buf.clear();
    let credentials = base64(format!("\0{name}\0{name}pass").as_bytes());
    stream.write_all(
        format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{credentials}</auth>"
        )
        .as_bytes(),
    )?;
    read_until(&mut stream, &mut buf, |b| !split_elements(b).is_empty())?;
    let (s, e) = split_elements(&buf)[0];
    let answer = String::from_utf8_lossy(&buf[s..e]).into_owned();
    if !answer.starts_with("<success") {
        return Err(io::Error::other(format!("{name}: SASL failed: {answer}")));
    }
    buf.clear();
    stream.write_all(STREAM_HEADER.as_bytes())?;
    read_until(&mut stream, &mut buf, |b| {
        find(b, b"</stream:features>").is_some()
    })?;
    buf.clear();
    stream.write_all(
        format!(
            "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>{RESOURCE}</resource></bind></iq>"
        )
        .as_bytes(),
    )?;
    read_until(&mut stream, &mut buf, |b| {
        split_elements(b).iter().any(|&(s, e)| {
            attr(&String::from_utf8_lossy(&b[s..e]), "id").as_deref() == Some("bind")
        })
    })?;
    let elements = split_elements(&buf);
    let (s, e) = elements[0];
    let bound = String::from_utf8_lossy(&buf[s..e]).into_owned();
    if attr(&bound, "type").as_deref() != Some("result") {
        return Err(io::Error::other(format!("{name}: bind failed: {bound}")));
    }
    let carry = buf[e..].to_vec();
    stream.set_nonblocking(true)?;
    Ok(Client {
        name,
        stream,
        carry,
    })
}

fn read_until(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    done: impl Fn(&[u8]) -> bool,
) -> io::Result<()> {
    let mut chunk = [0u8; 8192];
    while !done(buf) {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                format!("stream closed; got {}", String::from_utf8_lossy(buf)),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// A tiny XML scanner, good enough for server output

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The byte ranges of the complete top-level elements in `buf` (text and whitespace between
/// them is skipped; an incomplete trailing element is not returned).
fn split_elements(buf: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut i = 0;
    while i < buf.len() {
        if buf[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &buf[i..];
        let skip = if rest.starts_with(b"<!--") {
            Some(b"-->".as_slice())
        } else if rest.starts_with(b"<![CDATA[") {
            Some(b"]]>".as_slice())
        } else if rest.starts_with(b"<?") {
            Some(b"?>".as_slice())
        } else {
            None
        };
        if let Some(end) = skip {
            match find(rest, end) {
                Some(p) => {
                    i += p + end.len();
                    continue;
                }
                None => break,
            }
        }
        // A tag: up to the first '>' outside quotes.
        let mut j = i + 1;
        let mut quote = None;
        while j < buf.len() {
            let c = buf[j];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == b'\'' || c == b'"' => quote = Some(c),
                None if c == b'>' => break,
                None => {}
            }
            j += 1;
        }
        if j >= buf.len() {
            break;
        }
        if buf[i + 1] == b'/' {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                out.push((start, j + 1));
            }
        } else if buf[j - 1] == b'/' {
            if depth == 0 {
                out.push((i, j + 1));
            }
        } else {
            if depth == 0 {
                start = i;
            }
            depth += 1;
        }
        i = j + 1;
    }
    out
}

/// The text of the elements, one string each.
fn elements(text: &str) -> Vec<&str> {
    split_elements(text.as_bytes())
        .into_iter()
        .map(|(s, e)| &text[s..e])
        .collect()
}

/// The name of the first tag of `el`.
fn tag_name(el: &str) -> &str {
    let rest = el.trim_start().trim_start_matches('<');
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// An attribute of the first tag of `el` (raw, entities left as they are).
fn attr(el: &str, name: &str) -> Option<String> {
    let tag_end = el.find('>').unwrap_or(el.len());
    let tag = &el[..tag_end];
    let mut rest = &tag[tag.find(|c: char| c.is_whitespace())?..];
    loop {
        rest = rest.trim_start();
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start();
        let quote = after.chars().next()?;
        let value_end = after[1..].find(quote)?;
        if key == name {
            return Some(after[1..=value_end].to_owned());
        }
        rest = &after[value_end + 2..];
    }
}

/// The first descendant start tag named `name` (the tag text only, up to its `>`).
fn child_tag<'a>(el: &'a str, name: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(p) = el[from..].find(&format!("<{name}")) {
        let at = from + p;
        let next = el[at + 1 + name.len()..].chars().next();
        if matches!(next, Some(c) if c.is_whitespace() || c == '>' || c == '/') {
            let end = el[at..].find('>').map_or(el.len(), |e| at + e + 1);
            return Some(&el[at..end]);
        }
        from = at + 1;
    }
    None
}

/// The text content of the first descendant element named `name`.
fn child_text(el: &str, name: &str) -> Option<String> {
    let tag = child_tag(el, name)?;
    if tag.ends_with("/>") {
        return None;
    }
    let start = el.find(tag)? + tag.len();
    let end = el[start..].find(&format!("</{name}>"))?;
    Some(el[start..start + end].to_owned())
}

/// The top-level element whose `id` attribute is `id`.
fn element_with_id(text: &str, id: &str) -> Option<String> {
    elements(text)
        .into_iter()
        .find(|el| attr(el, "id").as_deref() == Some(id))
        .map(str::to_owned)
}

/// The room's XEP-0359 stanza-id of the message with this id, as one occupant received it.
fn room_stanza_id(text: &str, message_id: &str) -> Option<String> {
    elements(text)
        .into_iter()
        .filter(|el| tag_name(el) == "message" && attr(el, "id").as_deref() == Some(message_id))
        .find_map(|el| {
            let mut from = 0;
            while let Some(tag) = child_tag(&el[from..], "stanza-id") {
                if attr(tag, "by").as_deref() == Some(ROOM) {
                    return attr(tag, "id");
                }
                from += el[from..].find(tag)? + tag.len();
            }
            None
        })
}

/// The `var`s of the data form fields in `text`, in order.
fn field_vars(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(tag) = child_tag(&text[from..], "field") {
        if let Some(var) = attr(tag, "var") {
            out.push(var);
        }
        from += text[from..].find(tag).unwrap_or(0) + tag.len();
    }
    out
}

/// `presence ×2, message[groupchat]`: the top-level elements, consecutive repeats folded.
fn summarize(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut parts: Vec<(String, usize)> = Vec::new();
    for el in elements(&text) {
        let mut label = tag_name(el).to_owned();
        if let Some(t) = attr(el, "type") {
            let _ = write!(label, "[{t}]");
        }
        match parts.last_mut() {
            Some((last, n)) if *last == label => *n += 1,
            _ => parts.push((label, 1)),
        }
    }
    if parts.is_empty() {
        return if bytes.iter().all(u8::is_ascii_whitespace) {
            "nothing".to_owned()
        } else {
            format!("{} bytes, no complete element", bytes.len())
        };
    }
    parts
        .into_iter()
        .map(|(label, n)| {
            if n == 1 {
                label
            } else {
                format!("{label} ×{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ------------------------------------------------------------------------------------------
// Output

fn write_transcripts(rec: &Recorder, dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "xml") {
            fs::remove_file(path)?;
        }
    }
    for op in &rec.ops {
        for (file, user) in &op.files {
            fs::write(dir.join(format!("{file}.xml")), &op.received[user])?;
        }
    }
    Ok(())
}

fn write_readme(runs: &[Run], path: &Path) -> io::Result<()> {
    let old = fs::read_to_string(path).unwrap_or_default();
    let notes = old.split_once(NOTES_MARKER).map_or_else(
        || "\n## Server differences and notes\n\n(to be written)\n".to_owned(),
        |(_, n)| n.to_owned(),
    );
    let mut out = String::new();
    out.push_str(
        "# Recorded server transcripts\n\n\
         Raw bytes that Prosody 0.12 (`prosody/`) and ejabberd 23.01 (`ejabberd/`) sent to one \
         user during one group operation, recorded by\n\
         `cargo run -p groupchat-test-support --example record_transcripts` \
         (`crates/test-support/examples/record_transcripts.rs`).\n\n\
         - Each file holds exactly what the named user's socket received during the operation, \
         after login (no stream header or features), unchanged: a sequence of top-level \
         elements with whatever whitespace the server put between them.\n\
         - `<operation>.xml` is the view of the user who sent the request; \
         `<operation>--<user>.xml` is that user's view.\n\
         - The users are `alice`, `bob`, `carol`, `dave` `@localhost`, each with resource `rec`. \
         The room is `team@conference.localhost`. Request ids are fixed; ids the servers \
         generate (stanza-ids, occupant-ids, upload URLs, timestamps) are left as they are, so \
         requests that refer to them (markers, retraction, moderation, MAM paging) differ between \
         the servers and between runs.\n\
         - An operation ends when its reply arrived and all four sockets were then silent for \
         600 ms. The operations run in the order below, in one session per server; set-up steps \
         without a file are listed too, since their traffic is not in any file.\n\n\
         ## Operations\n\n",
    );
    // Operations by name, in order (the runs differ only in the number of MAM pages).
    let mut names: Vec<&str> = Vec::new();
    for run in runs {
        let mut at = 0;
        for op in &run.ops {
            match names.iter().position(|n| *n == op.name) {
                Some(p) => at = p + 1,
                None => {
                    names.insert(at, &op.name);
                    at += 1;
                }
            }
        }
    }
    for name in names {
        let found: Vec<(ServerKind, &OpRecord)> = runs
            .iter()
            .filter_map(|r| r.ops.iter().find(|o| o.name == name).map(|o| (r.kind, o)))
            .collect();
        let op = found[0].1;
        let files = if op.files.is_empty() {
            "set-up step, no file".to_owned()
        } else {
            op.files
                .iter()
                .map(|(f, u)| format!("`{f}.xml` ({u})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "### {name}\n\n{}. Files: {files}.",
            capitalize(&op.desc)
        );
        if found.len() < runs.len() {
            let kinds: Vec<String> = found.iter().map(|(k, _)| k.to_string()).collect();
            let _ = writeln!(out, "Only on {}.", kinds.join(", "));
        }
        // The requests; shown once when every server got the same bytes.
        let same =
            found.len() == runs.len() && found.iter().all(|(_, o)| o.requests == op.requests);
        for (kind, this) in &found {
            let label = if same {
                "both servers".to_owned()
            } else {
                kind.to_string()
            };
            let _ = writeln!(out, "\nSent ({label}):\n```xml");
            for (user, stanza) in &this.requests {
                let _ = writeln!(out, "<!-- {user} --> {stanza}");
            }
            out.push_str("```\n");
            if same {
                break;
            }
        }
        let mut received = Vec::new();
        for (kind, this) in &found {
            let views: Vec<String> = this
                .received
                .iter()
                .filter(|(_, b)| !b.is_empty())
                .map(|(u, b)| format!("{u}: {}", summarize(b)))
                .collect();
            let views = if views.is_empty() {
                "nothing".to_owned()
            } else {
                views.join("; ")
            };
            let mut line = format!("**{kind}** — {views}");
            for t in &this.timeouts {
                let _ = write!(line, " (expected reply did not come: {t})");
            }
            received.push(line);
        }
        let _ = writeln!(out, "Received: {}.\n", received.join(" · "));
    }
    out.push_str(NOTES_MARKER);
    out.push_str(&notes);
    fs::write(path, out)
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
