//! The SDK's own logic, exactly: event order under a burst, notice windows, time-outs while
//! disconnected. The server is the in-memory one of test-support, played stanza by stanza
//! by each test on tokio's paused clock, so "5 s later" is exact and takes no time.
//! Real-server tests (`group_calls_on_real_servers.rs`, `hostile_input_and_lost_links.rs`)
//! prove the features; these prove the timing and ordering that a real server cannot show
//! reliably.

use std::time::Duration;

use groupchat_sdk::{
    Client, ClientBuilder, ConnectError, Event, EventStream, JoinReason, RequestError,
};
use groupchat_test_support::{MemoryServer, Sent, ServerConn, memory_server};
use tokio::time::Instant;

const ME: &str = "alice@localhost";
const GROUP: &str = "g1@conference.localhost";
const BOB: &str = "bob@localhost";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A logged-in client whose group list holds [`GROUP`], where it is a member and bob an
/// admin; the server side and the events from the start.
async fn client_in_a_group() -> (Client, MemoryServer, ServerConn, EventStream) {
    let (client, server, conn) = logged_in().await;
    let mut events = client.events();
    // bob is in the group, as its admin.
    conn.send(format!(
        "<presence from='{GROUP}/{BOB}' to='{ME}/mem'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator' jid='{BOB}/phone'/></x></presence>"
    ));
    until(&mut events, |e| matches!(e, Event::GroupsJoined { .. })).await;
    (client, server, conn, events)
}

/// A client's login to the in-memory server, started (`configure` adds to its builder): the
/// login's task, the server, and the server's side of the connection.
async fn start_login(
    configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
) -> (
    tokio::task::JoinHandle<Result<Client, ConnectError>>,
    MemoryServer,
    ServerConn,
) {
    let (connector, server) = memory_server(ME);
    let builder = Client::builder(ME, "secret")
        .connector(connector)
        .request_timeout(REQUEST_TIMEOUT);
    let connect = tokio::spawn(configure(builder).connect());
    let conn = server.accept().await;
    (connect, server, conn)
}

/// A client logged in to the in-memory server, its set-up served; the server side.
async fn logged_in() -> (Client, MemoryServer, ServerConn) {
    let (connect, server, mut conn) = start_login(|b| b).await;
    serve_login(&mut conn).await;
    let client = connect.await.unwrap().expect("login");
    (client, server, conn)
}

/// Plays the server through the SDK's set-up: services, bookmarks, the join, presence, and
/// the group's catch-up (an archive with nothing new).
async fn serve_login(conn: &mut ServerConn) {
    serve_login_with(conn, |conn, id| {
        conn.send(fin(id));
    })
    .await;
}

/// The end of archive query `id`: nothing more.
fn fin(id: &str) -> String {
    format!(
        "<iq type='result' id='{id}' from='{GROUP}'><fin xmlns='urn:xmpp:mam:2' complete='true'/></iq>"
    )
}

/// An archived message of the group from bob, as a result of query `query`.
fn archived(query: &str, row: &str, body: &str) -> String {
    format!(
        "<message to='{ME}/mem' from='{GROUP}'><result xmlns='urn:xmpp:mam:2' queryid='{query}' id='{row}'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-12-01T10:00:00Z'/><message xmlns='jabber:client' type='groupchat' from='{GROUP}/{BOB}'><body>{body}</body><x xmlns='http://jabber.org/protocol/muc#user'><item jid='{BOB}'/></x></message></forwarded></result></message>"
    )
}

/// [`serve_login`], with the catch-up query answered by `catch_up(conn, query id)`.
async fn serve_login_with(conn: &mut ServerConn, catch_up: impl Fn(&ServerConn, &str)) {
    let (mut presence, mut caught_up) = (false, false);
    while !(presence && caught_up) {
        let s = conn
            .recv()
            .await
            .expect("the client went away during set-up");
        match s.name() {
            "presence" if s.attr("to").is_none() => presence = true,
            "iq" if s.has("urn:xmpp:mam:2") => {
                catch_up(conn, s.attr("id").unwrap());
                caught_up = true;
            }
            "presence" => {
                let to = s.attr("to").unwrap().to_owned();
                conn.send(format!(
                    "<presence from='{to}' to='{ME}/mem'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant' jid='{ME}/mem'/><status code='110'/></x></presence>"
                ));
            }
            "iq" => answer_setup_iq(conn, &s),
            _ => {}
        }
    }
}

fn answer_setup_iq(conn: &ServerConn, s: &Sent) {
    let id = s.attr("id").unwrap();
    let to = s.attr("to");
    let from = to.map(|t| format!(" from='{t}'")).unwrap_or_default();
    let payload = if s.has("disco#items") {
        "<query xmlns='http://jabber.org/protocol/disco#items'><item jid='conference.localhost'/></query>".to_owned()
    } else if s.has("disco#info") && to == Some("conference.localhost") {
        "<query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='text'/><feature var='http://jabber.org/protocol/muc'/></query>".to_owned()
    } else if s.has("disco#info") && to == Some(GROUP) {
        room_info("Team")
    } else if s.has("urn:xmpp:bookmarks:1") && s.attr("type") == Some("get") {
        format!(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'><item id='{GROUP}'><conference xmlns='urn:xmpp:bookmarks:1' name='Team' autojoin='true'><nick>{ME}</nick></conference></item></items></pubsub>"
        )
    } else if s.has("jabber:iq:private") && s.attr("type") == Some("get") {
        "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>".to_owned()
    } else {
        String::new()
    };
    conn.send(format!("<iq type='result' id='{id}'{from}>{payload}</iq>"));
}

fn room_info(name: &str) -> String {
    format!(
        "<query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='text' name='{name}'/><feature var='http://jabber.org/protocol/muc'/><feature var='muc_membersonly'/><feature var='muc_persistent'/><feature var='vcard-temp'/></query>"
    )
}

/// The next event that `f` accepts (others are skipped); fails after a minute of
/// (paused-clock) time.
async fn until(events: &mut EventStream, f: impl Fn(&Event) -> bool) -> Event {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let e = events.next().await.expect("events ended");
            if f(&e) {
                return e;
            }
        }
    })
    .await
    .expect("no such event within a minute")
}

/// The group events (connection and join events left out) that arrive within `d`.
async fn group_events_within(events: &mut EventStream, d: Duration) -> Vec<Event> {
    let mut out = Vec::new();
    let end = Instant::now() + d;
    while let Ok(Some(e)) = tokio::time::timeout_at(end, events.next()).await {
        if e.group().is_some() {
            out.push(e);
        }
    }
    out
}

/// A groupchat message from bob in the group, with `payload` after the body.
fn from_bob(id: &str, body: &str, payload: &str) -> String {
    format!(
        "<message type='groupchat' id='{id}' from='{GROUP}/{BOB}' to='{ME}/mem'><body>{body}</body>{payload}<stanza-id xmlns='urn:xmpp:sid:0' by='{GROUP}' id='s-{id}'/></message>"
    )
}

fn notice(kind: &str, participant: Option<&str>) -> String {
    let p = participant
        .map(|j| format!("<participant jid='{j}'/>"))
        .unwrap_or_default();
    format!("<notice xmlns='urn:xmpp:groupchat:notice:0' kind='{kind}'>{p}</notice>")
}

/// Answers the profile read the SDK makes after a change (disco#info, then the vCard)
/// `delay` after it is asked; returns when both are answered.
async fn answer_profile_read(conn: &mut ServerConn, name: &str, delay: Duration) {
    for _ in 0..2 {
        let s = conn.recv().await.expect("a profile read");
        assert_eq!(s.attr("to"), Some(GROUP), "asked the group: {}", s.xml);
        tokio::time::sleep(delay).await;
        let id = s.attr("id").unwrap();
        let payload = if s.has("disco#info") {
            room_info(name)
        } else {
            "<vCard xmlns='vcard-temp'/>".to_owned()
        };
        conn.send(format!(
            "<iq type='result' id='{id}' from='{GROUP}'>{payload}</iq>"
        ));
    }
}

/// Answers every IQ the client sends within `d` with an empty result.
async fn answer_iqs_within(conn: &mut ServerConn, d: Duration) {
    let end = Instant::now() + d;
    while let Ok(Some(s)) = tokio::time::timeout_at(end, conn.recv()).await {
        if s.name() == "iq" {
            let id = s.attr("id").unwrap();
            let from = s
                .attr("to")
                .map(|t| format!(" from='{t}'"))
                .unwrap_or_default();
            conn.send(format!("<iq type='result' id='{id}'{from}/>"));
        }
    }
}

fn kinds(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::GroupMessage(m) => format!("message {}", m.body.as_deref().unwrap_or("")),
            Event::ParticipantsAdded { .. } => "participants added".into(),
            Event::ProfileUpdated { by, profile, .. } => format!(
                "profile updated to {} by {}",
                profile.name.as_deref().unwrap_or("?"),
                by.as_ref().map_or("someone", |j| j.as_str())
            ),
            Event::AdminGranted { participant, .. } => format!("admin {participant}"),
            Event::GroupDeleted { by, .. } => {
                format!(
                    "deleted by {}",
                    by.as_ref().map_or("someone", |j| j.as_str())
                )
            }
            other => format!("{other:?}"),
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn events_come_out_in_stanza_order_under_a_burst_of_notices_and_messages() {
    let (_client, _server, mut conn, mut events) = client_in_a_group().await;
    // One burst: a notice, a message, a profile notice (whose event needs two requests),
    // a message, another notice.
    conn.send(
        [
            from_bob(
                "n1",
                "bob added carol",
                &notice("participants-added", Some("carol@localhost")),
            ),
            from_bob("m1", "first", ""),
            from_bob(
                "n2",
                "bob changed the profile",
                &notice("profile-updated", None),
            ),
            from_bob("m2", "second", ""),
            from_bob(
                "n3",
                "bob made carol admin",
                &notice("admin-granted", Some("carol@localhost")),
            ),
        ]
        .concat(),
    );
    // The server takes its time with the profile: 2 s per answer.
    answer_profile_read(&mut conn, "Renamed", Duration::from_secs(2)).await;
    let got = group_events_within(&mut events, Duration::from_secs(1)).await;
    assert_eq!(
        kinds(&got),
        [
            "participants added",
            "message first",
            "profile updated to Renamed by bob@localhost",
            "message second",
            "admin carol@localhost",
        ],
        "events in the order of their stanzas"
    );
}

#[tokio::test(start_paused = true)]
async fn a_configuration_change_without_a_notice_is_reported_after_the_grace_window() {
    let (_client, _server, mut conn, mut events) = client_in_a_group().await;
    let changed = Instant::now();
    conn.send(format!(
        "<message type='groupchat' from='{GROUP}' to='{ME}/mem'><x xmlns='http://jabber.org/protocol/muc#user'><status code='104'/></x></message>"
    ));
    // Nothing is asked or reported during the window: a notice may still explain it.
    let early = tokio::time::timeout(Duration::from_millis(4_900), conn.recv()).await;
    assert!(early.is_err(), "asked before the window ended: {early:?}");
    answer_profile_read(&mut conn, "Renamed elsewhere", Duration::ZERO).await;
    assert!(changed.elapsed() >= Duration::from_secs(5));
    let got = group_events_within(&mut events, Duration::from_secs(1)).await;
    assert_eq!(
        kinds(&got),
        ["profile updated to Renamed elsewhere by someone"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_notice_inside_the_grace_window_reports_the_change_once_with_its_author() {
    let (_client, _server, mut conn, mut events) = client_in_a_group().await;
    conn.send(format!(
        "<message type='groupchat' from='{GROUP}' to='{ME}/mem'><x xmlns='http://jabber.org/protocol/muc#user'><status code='104'/></x></message>"
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    conn.send(from_bob(
        "n1",
        "bob changed the profile",
        &notice("profile-updated", None),
    ));
    answer_profile_read(&mut conn, "Renamed", Duration::ZERO).await;
    // Past the window: no second report, no second read.
    let again = tokio::time::timeout(Duration::from_secs(10), conn.recv()).await;
    assert!(again.is_err(), "the profile was read again: {again:?}");
    let got = group_events_within(&mut events, Duration::from_secs(1)).await;
    assert_eq!(kinds(&got), ["profile updated to Renamed by bob@localhost"]);
}

/// The room's destruction presence, as the room sends it to us.
fn destroyed() -> String {
    format!(
        "<presence type='unavailable' from='{GROUP}/{ME}' to='{ME}/mem'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/><destroy/><status code='110'/></x></presence>"
    )
}

/// What a member hears when bob announces the group's deletion and the room is destroyed
/// `later`.
async fn deletion_announced(later: Duration) -> Vec<String> {
    let (_client, _server, mut conn, mut events) = client_in_a_group().await;
    conn.send(from_bob(
        "n1",
        "bob deleted the group",
        &notice("group-deleted", None),
    ));
    tokio::time::sleep(later).await;
    conn.send(destroyed());
    // The SDK removes the bookmark (answered), then reports.
    answer_iqs_within(&mut conn, Duration::from_secs(1)).await;
    kinds(&group_events_within(&mut events, Duration::from_secs(1)).await)
}

#[tokio::test(start_paused = true)]
async fn a_deletion_is_credited_to_the_admin_whose_notice_came_within_thirty_seconds() {
    assert_eq!(
        deletion_announced(Duration::from_secs(29)).await,
        ["deleted by bob@localhost"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_deletion_notice_older_than_thirty_seconds_names_nobody() {
    assert_eq!(
        deletion_announced(Duration::from_secs(31)).await,
        ["deleted by someone"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_made_while_disconnected_fails_at_its_request_timeout() {
    let (client, server, conn, _events) = client_in_a_group().await;
    server.refuse_connections(true);
    conn.reset();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let asked = Instant::now();
    let r = client.group_profile(GROUP).await;
    assert!(matches!(r, Err(RequestError::Timeout)), "{r:?}");
    assert_eq!(asked.elapsed(), REQUEST_TIMEOUT, "not a moment longer");
}

#[tokio::test(start_paused = true)]
async fn a_group_message_sent_while_disconnected_is_unconfirmed_at_the_timeout_and_sent_after_the_reconnection()
 {
    let (client, server, conn) = logged_in().await;
    server.refuse_connections(true);
    conn.reset();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let asked = Instant::now();
    let r = client.send_text(GROUP, "while away").await;
    assert!(
        matches!(r, Err(RequestError::Unconfirmed { .. })),
        "504 unconfirmed: {r:?}"
    );
    assert_eq!(asked.elapsed(), REQUEST_TIMEOUT);
    // The server comes back: the client logs in afresh (its resumption is refused), joins
    // again, and only then sends the queued message, once.
    server.refuse_connections(false);
    let mut conn = tokio::time::timeout(Duration::from_secs(120), server.accept())
        .await
        .expect("a reconnection within two minutes");
    let mut seen = Vec::new();
    let end = Instant::now() + Duration::from_secs(5);
    while let Ok(Some(s)) = tokio::time::timeout_at(end, conn.recv()).await {
        match s.name() {
            "iq" => answer_setup_iq(&conn, &s),
            "presence" if s.attr("to").is_some() => {
                let to = s.attr("to").unwrap().to_owned();
                conn.send(format!(
                    "<presence from='{to}' to='{ME}/mem'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant' jid='{ME}/mem'/><status code='110'/></x></presence>"
                ));
                seen.push("join".to_owned());
            }
            "message" => seen.push(format!(
                "message {}",
                s.xml.contains("<body>while away</body>")
            )),
            _ => {}
        }
    }
    assert_eq!(
        seen,
        ["join", "message true"],
        "joined first, then sent once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_message_delivered_twice_is_reported_once_but_another_senders_same_id_is_not_hidden() {
    let (_client, _server, conn, mut events) = client_in_a_group().await;
    // carol is in the group too.
    conn.send(format!(
        "<presence from='{GROUP}/carol@localhost' to='{ME}/mem'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant' jid='carol@localhost/pc'/></x></presence>"
    ));
    let with_origin = |nick: &str, body: &str, origin: &str, sid: &str| {
        format!(
            "<message type='groupchat' from='{GROUP}/{nick}' to='{ME}/mem'><body>{body}</body><origin-id xmlns='urn:xmpp:sid:0' id='{origin}'/><stanza-id xmlns='urn:xmpp:sid:0' by='{GROUP}' id='{sid}'/></message>"
        )
    };
    conn.send(
        [
            with_origin(BOB, "once", "o1", "s1"),
            // The same message again (a replay after a resumption; archived anew).
            with_origin(BOB, "once", "o1", "s2"),
            // carol's message with bob's id is hers, and is reported.
            with_origin("carol@localhost", "carol's", "o1", "s3"),
            with_origin(BOB, "next", "o2", "s4"),
        ]
        .concat(),
    );
    let got = group_events_within(&mut events, Duration::from_secs(1)).await;
    assert_eq!(
        kinds(&got),
        ["message once", "message carol's", "message next"]
    );
}

/// At login the group's archive is read while the room already sends live messages: the
/// archived ones come out first, in archive order, then the live ones; a live message that
/// the archive also returned is reported once; each archived one is marked as such.
#[tokio::test(start_paused = true)]
async fn a_catch_up_comes_out_before_the_live_messages_that_arrive_during_it_each_once() {
    let (connect, _server, mut conn) = start_login(|b| b).await;
    serve_login_with(&mut conn, |conn, query| {
        // Live, before the archive answers: one new, one the archive also holds.
        conn.send(from_bob("live-new", "live new", ""));
        conn.send(from_bob("both", "in both", ""));
        conn.send(archived(query, "s-old1", "old 1"));
        conn.send(archived(query, "s-old2", "old 2"));
        conn.send(archived(query, "s-both", "in both"));
        conn.send(fin(query));
    })
    .await;
    let client = connect.await.unwrap().expect("login");
    let mut events = client.events();
    conn.send(from_bob("after", "after", ""));
    let mut got = Vec::new();
    while got.len() < 5 {
        if let Event::GroupMessage(m) =
            until(&mut events, |e| matches!(e, Event::GroupMessage(_))).await
        {
            got.push((m.body.clone().unwrap_or_default(), m.archived));
        }
    }
    let expected = [
        ("old 1", true),
        ("old 2", true),
        ("in both", true),
        ("live new", false),
        ("after", false),
    ]
    .map(|(b, a)| (b.to_owned(), a));
    assert_eq!(got, expected);
    assert!(
        group_events_within(&mut events, Duration::from_secs(5))
            .await
            .iter()
            .all(|e| !matches!(e, Event::GroupMessage(_))),
        "a copy reported twice"
    );
}

/// The archive no longer holds the position the application left a group at (it expired,
/// or the server keeps a bounded number of messages): the gap is reported from that
/// position, and everything the archive still has is delivered, oldest first.
#[tokio::test(start_paused = true)]
async fn a_position_the_archive_no_longer_holds_is_a_reported_gap_then_all_it_has() {
    use groupchat_sdk::jid::BareJid;
    use groupchat_sdk::{MemoryStore, PositionStore};
    let store = std::sync::Arc::new(MemoryStore::default());
    let group: BareJid = GROUP.parse().unwrap();
    store
        .save(&[(group, "trimmed".to_owned())].into_iter().collect())
        .unwrap();
    let (connect, _server, mut conn) = start_login(|b| b.positions(store)).await;
    serve_login_with(&mut conn, |conn, query| {
        conn.send(format!(
            "<iq type='error' id='{query}' from='{GROUP}'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        ));
    })
    .await;
    // The second query, from the oldest message the archive has.
    let s = conn.recv().await.expect("a query from the oldest");
    assert!(s.has("urn:xmpp:mam:2") && !s.has("<after>"), "{}", s.xml);
    let query = s.attr("id").unwrap().to_owned();
    conn.send(archived(&query, "s-kept1", "kept 1"));
    conn.send(archived(&query, "s-kept2", "kept 2"));
    conn.send(fin(&query));
    let client = connect.await.unwrap().expect("login");
    let mut events = client.events();
    let gap = until(&mut events, |e| {
        matches!(e, Event::MessagesMayBeMissing { .. })
    })
    .await;
    assert!(
        matches!(&gap, Event::MessagesMayBeMissing { groups } if groups[0].after.as_deref() == Some("trimmed")),
        "{gap:?}"
    );
    let mut got = Vec::new();
    while got.len() < 2 {
        if let Event::GroupMessage(m) =
            until(&mut events, |e| matches!(e, Event::GroupMessage(_))).await
        {
            got.push(m.body.unwrap_or_default());
        }
    }
    assert_eq!(got, ["kept 1", "kept 2"]);
}

/// Plays the server through a rejoin of [`GROUP`] (disco#info, join, an empty catch-up);
/// returns the other stanzas the client sent meanwhile, in order, and how many joins.
async fn serve_rejoin(conn: &mut ServerConn) -> Vec<Sent> {
    tokio::time::timeout(Duration::from_secs(60), serve_rejoin_now(conn))
        .await
        .expect("no rejoin within a minute")
}

async fn serve_rejoin_now(conn: &mut ServerConn) -> Vec<Sent> {
    let mut others = Vec::new();
    loop {
        let s = conn
            .recv()
            .await
            .expect("the client went away during the rejoin");
        match s.name() {
            "iq" if s.has("urn:xmpp:mam:2") => {
                conn.send(fin(s.attr("id").unwrap()));
                return others;
            }
            "iq" if s.has("disco#info") && s.attr("to") == Some(GROUP) => {
                answer_setup_iq(conn, &s);
            }
            "presence" if s.attr("to").is_some_and(|t| t.starts_with(GROUP)) => {
                conn.send(format!(
                    "<presence from='{GROUP}/{ME}' to='{ME}/mem'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant' jid='{ME}/mem'/><status code='110'/></x></presence>"
                ));
            }
            _ => others.push(s),
        }
    }
}

/// The next groupchat message the client sends to [`GROUP`].
async fn next_group_message(conn: &mut ServerConn) -> Sent {
    let next = async {
        loop {
            let s = conn.recv().await.expect("a group message");
            if s.name() == "message" && s.attr("type") == Some("groupchat") && s.has("<body>") {
                return s;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), next)
        .await
        .expect("no group message within a minute")
}

/// The next ping the client sends.
async fn next_ping(conn: &mut ServerConn) -> Sent {
    loop {
        let s = conn.recv().await.expect("a ping");
        if s.name() == "iq" && s.has("urn:xmpp:ping") {
            return s;
        }
    }
}

/// `client` sends `body` to [`GROUP`] in a task of its own.
fn spawn_send(
    client: &Client,
    body: &'static str,
) -> tokio::task::JoinHandle<Result<groupchat_sdk::SentMessage, RequestError>> {
    let client = client.clone();
    tokio::spawn(async move { client.send_text(GROUP, body).await })
}

/// The groups and the reason of the next `GroupsJoined` that is not the login's.
async fn rejoined(events: &mut EventStream) -> (Vec<String>, JoinReason) {
    let e = until(
        events,
        |e| matches!(e, Event::GroupsJoined { reason, .. } if *reason != JoinReason::Login),
    )
    .await;
    let Event::GroupsJoined { groups, reason } = e else {
        unreachable!("{e:?}")
    };
    (groups.iter().map(ToString::to_string).collect(), reason)
}

/// The room answers self-ping `ping`: we are not in it.
fn refuse_ping(conn: &ServerConn, ping: &Sent) {
    conn.send(format!(
        "<iq type='error' id='{}' from='{GROUP}/{ME}' to='{ME}/mem'><ping xmlns='urn:xmpp:ping'/><error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        ping.attr("id").unwrap()
    ));
}

/// The room refuses `s` as from a non-occupant (ejabberd's words).
fn refuse(conn: &ServerConn, s: &Sent) {
    let id = s.attr("id").unwrap();
    conn.send(format!(
        "<message type='error' id='{id}' from='{GROUP}' to='{ME}/mem'><error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Only occupants are allowed to send messages to the conference</text></error></message>"
    ));
}

/// The room reflects `s` with archive id `sid`.
fn reflect(conn: &ServerConn, s: &Sent, sid: &str) {
    let id = s.attr("id").unwrap();
    conn.send(format!(
        "<message type='groupchat' id='{id}' from='{GROUP}/{ME}' to='{ME}/mem'><body>x</body><origin-id xmlns='urn:xmpp:sid:0' id='{id}'/><stanza-id xmlns='urn:xmpp:sid:0' by='{GROUP}' id='{sid}'/></message>"
    ));
}

/// A room that lost us refuses our message: the client joins again (reporting why),
/// catches up, and sends the message again, once, under the same id; the caller gets the
/// room's confirmation, not the refusal. Refused a second time, the caller gets the error.
#[tokio::test(start_paused = true)]
async fn a_message_refused_by_a_room_that_lost_us_is_sent_again_once_after_the_rejoin() {
    let (client, _server, mut conn, mut events) = client_in_a_group().await;
    let send = spawn_send(&client, "hello");
    let first = next_group_message(&mut conn).await;
    refuse(&conn, &first);
    let others = serve_rejoin(&mut conn).await;
    assert!(
        !others
            .iter()
            .any(|s| s.name() == "message" && s.has("<body>")),
        "nothing sent again before the catch-up: {others:?}"
    );
    let again = next_group_message(&mut conn).await;
    assert_eq!(again.attr("id"), first.attr("id"), "the same message");
    assert_eq!(again.xml, first.xml);
    reflect(&conn, &again, "s-hello");
    let sent = send.await.unwrap().expect("confirmed after the rejoin");
    assert_eq!(sent.stanza_id.as_deref(), Some("s-hello"));
    assert_eq!(
        rejoined(&mut events).await,
        (vec![GROUP.to_owned()], JoinReason::MessageRefused)
    );

    // Refused again after the rejoin: the caller's error (once, no loop).
    let send = spawn_send(&client, "twice");
    let first = next_group_message(&mut conn).await;
    refuse(&conn, &first);
    serve_rejoin(&mut conn).await;
    let again = next_group_message(&mut conn).await;
    refuse(&conn, &again);
    let refused = send.await.unwrap();
    assert!(
        matches!(&refused, Err(e) if e.status_code() == 403),
        "the room's refusal, 403: {refused:?}"
    );
    let more = tokio::time::timeout(Duration::from_secs(5), next_group_message(&mut conn)).await;
    assert!(more.is_err(), "sent a third time: {more:?}");
}

/// Status 332 (the room's node shut down): the client joins again; a message sent
/// meanwhile waits for the rejoin and its catch-up, then goes out.
#[tokio::test(start_paused = true)]
async fn a_room_shut_down_is_joined_again_and_messages_wait_for_it() {
    let (client, _server, mut conn, mut events) = client_in_a_group().await;
    conn.send(format!(
        "<presence type='unavailable' from='{GROUP}/{ME}' to='{ME}/mem'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'><reason>You are being removed from the room because of a system shutdown</reason></item><status code='332'/><status code='110'/></x></presence>"
    ));
    // The client is out: a message now waits.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let send = spawn_send(&client, "during");
    let others = serve_rejoin(&mut conn).await;
    assert!(
        !others
            .iter()
            .any(|s| s.name() == "message" && s.has("<body>")),
        "the message waited for the rejoin: {others:?}"
    );
    let m = next_group_message(&mut conn).await;
    assert!(m.has("during"), "{}", m.xml);
    reflect(&conn, &m, "s-during");
    send.await.unwrap().expect("sent after the rejoin");
    assert_eq!(
        rejoined(&mut events).await,
        (vec![GROUP.to_owned()], JoinReason::RoomShutDown)
    );
}

/// A room silent for `room_check` gets a XEP-0410 self-ping; answered, nothing happens
/// (and the next one waits for another silent period); refused with `not-acceptable`, the
/// client joins again.
#[tokio::test(start_paused = true)]
async fn a_silent_room_is_pinged_and_joined_again_when_the_ping_says_we_are_out() {
    let (connect, _server, mut conn) = start_login(|b| b.room_check(Duration::from_secs(20))).await;
    serve_login(&mut conn).await;
    let client = connect.await.unwrap().expect("login");
    let mut events = client.events();
    let start = Instant::now();
    let p1 = next_ping(&mut conn).await;
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(20) && waited <= Duration::from_secs(31),
        "first ping after {waited:?}"
    );
    assert_eq!(
        p1.attr("to"),
        Some(format!("{GROUP}/{ME}").as_str()),
        "our own occupant JID"
    );
    conn.send(format!(
        "<iq type='result' id='{}' from='{GROUP}/{ME}' to='{ME}/mem'/>",
        p1.attr("id").unwrap()
    ));
    let answered = Instant::now();
    let p2 = next_ping(&mut conn).await;
    assert!(
        answered.elapsed() >= Duration::from_secs(20),
        "pinged again after {:?}",
        answered.elapsed()
    );
    refuse_ping(&conn, &p2);
    serve_rejoin(&mut conn).await;
    assert_eq!(
        rejoined(&mut events).await,
        (vec![GROUP.to_owned()], JoinReason::SelfPing)
    );
}

/// A message the room neither confirms nor refuses (lost with a dead node) makes the client
/// ask the room after 3 s, well before `room_check` (60 s by default) of silence; told it
/// is out, the client joins again and sends the message again.
#[tokio::test(start_paused = true)]
async fn an_unconfirmed_message_makes_the_client_ask_the_room_at_once() {
    let (client, _server, mut conn, mut events) = client_in_a_group().await;
    let send = spawn_send(&client, "into the void");
    let lost = next_group_message(&mut conn).await;
    let sent_at = Instant::now();
    let ping = next_ping(&mut conn).await;
    let waited = sent_at.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "asked after {waited:?}"
    );
    refuse_ping(&conn, &ping);
    serve_rejoin(&mut conn).await;
    let again = next_group_message(&mut conn).await;
    assert_eq!(again.xml, lost.xml, "the same message, sent again");
    reflect(&conn, &again, "s-void");
    assert_eq!(
        send.await.unwrap().expect("confirmed").stanza_id.as_deref(),
        Some("s-void")
    );
    assert_eq!(
        rejoined(&mut events).await,
        (vec![GROUP.to_owned()], JoinReason::SelfPing)
    );
}

/// The connection is lost while a lost room is being joined again: the new session's
/// set-up takes the group over (the older recovery stops acting), and the refused message
/// goes out once, after the new session's join and catch-up.
#[tokio::test(start_paused = true)]
async fn a_session_lost_during_a_recovery_hands_the_group_to_the_new_session() {
    let (client, server, mut conn, mut events) = client_in_a_group().await;
    let send = spawn_send(&client, "m1");
    let first = next_group_message(&mut conn).await;
    refuse(&conn, &first);
    // The recovery asks the room; the connection drops before any answer.
    loop {
        let s = conn.recv().await.expect("the recovery's first request");
        if s.name() == "iq" && s.attr("to") == Some(GROUP) {
            break;
        }
    }
    conn.reset();
    let mut conn = tokio::time::timeout(Duration::from_secs(120), server.accept())
        .await
        .expect("a reconnection within two minutes");
    let mut seen = Vec::new();
    let end = Instant::now() + Duration::from_secs(20);
    while let Ok(Some(s)) = tokio::time::timeout_at(end, conn.recv()).await {
        match s.name() {
            "iq" if s.has("urn:xmpp:mam:2") => {
                seen.push("catch-up");
                conn.send(fin(s.attr("id").unwrap()));
            }
            "iq" => answer_setup_iq(&conn, &s),
            "presence" if s.attr("to").is_some() => {
                seen.push("join");
                conn.send(format!(
                    "<presence from='{GROUP}/{ME}' to='{ME}/mem'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant' jid='{ME}/mem'/><status code='110'/></x></presence>"
                ));
            }
            "message" if s.has("<body>m1</body>") => {
                seen.push("m1");
                reflect(&conn, &s, "s-m1");
            }
            _ => {}
        }
    }
    let m1 = seen.iter().position(|s| *s == "m1");
    assert_eq!(seen.iter().filter(|s| **s == "m1").count(), 1, "{seen:?}");
    assert!(
        m1 > seen.iter().position(|s| *s == "catch-up"),
        "sent after the new session's catch-up: {seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|s| **s == "catch-up").count(),
        1,
        "one catch-up: the older recovery stopped: {seen:?}"
    );
    send.await.unwrap().expect("confirmed in the new session");
    assert_eq!(
        rejoined(&mut events).await,
        (vec![GROUP.to_owned()], JoinReason::NewSession)
    );
    let late = tokio::time::timeout(Duration::from_secs(5), rejoined(&mut events)).await;
    assert!(late.is_err(), "the older recovery reported too: {late:?}");
}
