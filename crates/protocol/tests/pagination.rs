//! History pagination: queries, both servers' `complete` signalling, cursors, gaps, the
//! media gallery.

use groupchat_protocol::codec::xep::mam::MamResult;
use groupchat_protocol::codec::xep::media::Media;
use groupchat_protocol::codec::{Message, MessageType, NsContext, Stanza, decode_stanza};
use groupchat_protocol::pagination::{
    Collected, Direction, Fin, Gap, HistoryPage, HistoryQuery, MediaGallery, PageCollector,
};
use proptest::prelude::*;

const ROOM: &str = "team@conference.localhost";

fn decode(b: &[u8]) -> Stanza {
    decode_stanza(b, &NsContext::client()).unwrap()
}

fn result(query_id: &str, row: &str, body: &str, media: bool) -> Vec<u8> {
    let mut inner = Message::default();
    inner.from = Some(format!("{ROOM}/alice").parse().unwrap());
    inner.kind = MessageType::Groupchat;
    inner.body = Some(body.to_owned());
    if media {
        let mut m = Media::default();
        m.url = format!("http://localhost/{body}.jpg");
        inner.media = Some(Box::new(m));
    }
    let mut r = MamResult::new(row, inner);
    r.query_id = Some(query_id.to_owned());
    let mut outer = Message::default();
    outer.from = Some(ROOM.parse().unwrap());
    outer.to = Some("bob@localhost/r".parse().unwrap());
    outer.mam_result = Some(Box::new(r));
    outer.encode()
}

/// A fake archive of `n` rows answering queries the way `prosody` (or ejabberd) does.
fn serve(q: &HistoryQuery, n: usize, id: &str, prosody: bool, media_every: usize) -> Vec<Vec<u8>> {
    let rows: Vec<usize> = (0..n).collect();
    let pos = |r: &str| rows.iter().position(|x| format!("r{x}") == r).unwrap();
    let limit = q.limit as usize;
    let (from, to) = match (q.direction, &q.last_row_id) {
        (Direction::Up, None) => (n.saturating_sub(limit), n),
        (Direction::Up, Some(r)) => (pos(r).saturating_sub(limit), pos(r)),
        (Direction::Down, None) => (0, limit.min(n)),
        (Direction::Down, Some(r)) => (pos(r) + 1, (pos(r) + 1 + limit).min(n)),
    };
    let mut out: Vec<Vec<u8>> = rows[from..to]
        .iter()
        .map(|i| {
            result(
                id,
                &format!("r{i}"),
                &format!("m{i}"),
                media_every > 0 && i % media_every == 0,
            )
        })
        .collect();
    let complete = match q.direction {
        Direction::Up => from == 0,
        Direction::Down => to == n,
    };
    let mut fin = Fin::default();
    fin.complete = complete;
    fin.first = (from < to).then(|| format!("r{from}"));
    fin.last = (from < to).then(|| format!("r{}", to - 1));
    let mut bytes = fin.encode_result(id);
    if !complete && !prosody {
        // ejabberd says complete='false'; Prosody leaves the attribute out.
        let s = String::from_utf8(bytes).unwrap().replace(
            "<fin xmlns='urn:xmpp:mam:2'",
            "<fin xmlns='urn:xmpp:mam:2' complete='false'",
        );
        bytes = s.into_bytes();
    }
    out.push(bytes);
    out
}

fn page(q: &HistoryQuery, n: usize, prosody: bool, media_every: usize) -> HistoryPage {
    let mut c = PageCollector::new(q.clone(), "q1");
    for s in serve(q, n, "q1", prosody, media_every) {
        if let Collected::Done(p) = c.feed(decode(&s)).unwrap() {
            return p;
        }
    }
    panic!("no fin");
}

#[test]
fn query_encoding() {
    let q = HistoryQuery::latest(ROOM, 20);
    let s = String::from_utf8(q.encode("q1")).unwrap();
    assert!(s.contains("<max>20</max><before/>"), "{s}");
    assert!(s.contains("queryid='q1'") && s.contains(&format!("to='{ROOM}'")));
    let q = HistoryQuery {
        direction: Direction::Down,
        last_row_id: Some("-x&1".into()),
        ..q
    };
    let s = String::from_utf8(q.encode("q2")).unwrap();
    assert!(s.contains("<after>-x&amp;1</after>"), "{s}");
}

#[test]
fn paging_up_to_the_start_on_both_servers() {
    for prosody in [true, false] {
        let mut q = Some(HistoryQuery::latest(ROOM, 2));
        let mut seen = Vec::new();
        let mut pages = 0;
        while let Some(query) = q {
            let p = page(&query, 5, prosody, 0);
            pages += 1;
            // Each page is oldest first; pages go backwards.
            let bodies: Vec<String> = p
                .messages
                .iter()
                .map(|m| m.message.body.clone().unwrap())
                .collect();
            seen.splice(0..0, bodies);
            q = p.next_query();
        }
        assert_eq!(pages, 3, "prosody={prosody}");
        assert_eq!(seen, ["m0", "m1", "m2", "m3", "m4"]);
    }
}

#[test]
fn paging_down_from_a_row() {
    for prosody in [true, false] {
        let mut q = Some(HistoryQuery {
            direction: Direction::Down,
            last_row_id: Some("r1".into()),
            ..HistoryQuery::latest(ROOM, 2)
        });
        let mut seen = Vec::new();
        while let Some(query) = q {
            let p = page(&query, 6, prosody, 0);
            seen.extend(p.messages.iter().map(|m| m.row_id.clone()));
            q = p.next_query();
        }
        assert_eq!(seen, ["r2", "r3", "r4", "r5"]);
    }
}

#[test]
fn results_of_other_queries_and_live_messages_pass_through() {
    let q = HistoryQuery::latest(ROOM, 2);
    let mut c = PageCollector::new(q, "q1");
    let other = result("q9", "r1", "x", false);
    assert!(matches!(
        c.feed(decode(&other)).unwrap(),
        Collected::NotMine(_)
    ));
    let live = b"<message xmlns='jabber:client' from='team@conference.localhost/bob' type='groupchat'><body>live</body></message>";
    assert!(matches!(
        c.feed(decode(live)).unwrap(),
        Collected::NotMine(_)
    ));
    let err = b"<iq xmlns='jabber:client' type='error' id='q1'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>";
    match c.feed(decode(err)).unwrap() {
        Collected::Failed(e) => assert_eq!(e.condition, "item-not-found"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_gap_is_filled_up_to_the_first_live_message() {
    // Seen r1 before the disconnect; r4 arrived live before catch-up ran.
    let mut gap = Gap::new(ROOM, Some("r1".into()));
    gap.close_at("r4");
    let mut filled = Vec::new();
    loop {
        let p = page(&gap.query(1), 6, true, 0);
        let (msgs, closed) = gap.fill(p);
        filled.extend(msgs.into_iter().map(|m| m.row_id));
        if closed {
            break;
        }
    }
    assert_eq!(filled, ["r2", "r3"]);
}

#[test]
fn media_gallery_serves_3_then_10_newest_first_from_the_cursor() {
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let mut g = MediaGallery::new(ROOM, cursor.clone());
        while let Some(q) = g.query() {
            g.absorb(page(&q, 200, true, 3), |m| m.message.media.is_some());
        }
        let (p, last) = g.finish();
        let p: Vec<String> = p.into_iter().map(|m| m.row_id).collect();
        cursor = p.last().cloned();
        pages.push(p);
        if last {
            break;
        }
    }
    // Media at rows divisible by 3: 0, 3, ..., 198 → 67 of them: 3 + 6 × 10 + 4.
    assert_eq!(pages[0], ["r198", "r195", "r192"]);
    assert_eq!(pages[1].len(), 10);
    assert_eq!(pages[1][0], "r189");
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 10, 10, 10, 10, 10, 10, 4]
    );
    assert_eq!(pages.last().unwrap().last().unwrap(), "r0");
    let all: Vec<&String> = pages.iter().flatten().collect();
    let mut sorted = all.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 67, "no media served twice");
}

proptest! {
    #[test]
    fn query_round_trips(
        up in any::<bool>(),
        cursor in proptest::option::of("[a-zA-Z0-9<&'-]{1,12}"),
        limit in 1u32..=100,
        with in proptest::option::of("[a-z]{1,8}@localhost"),
    ) {
        let q = HistoryQuery {
            group: ROOM.to_owned(),
            with,
            direction: if up { Direction::Up } else { Direction::Down },
            last_row_id: cursor,
            limit,
        };
        let Stanza::Iq(iq) = decode(&q.encode("id1")) else { panic!() };
        let back = HistoryQuery::decode(&iq).unwrap();
        // `down` without a cursor and `down` are the same query.
        prop_assert_eq!(back, q);
    }

    #[test]
    fn fin_round_trips(complete in any::<bool>(), first in proptest::option::of("[a-z0-9-]{1,8}"), last in proptest::option::of("[a-z0-9-]{1,8}"), count in proptest::option::of(any::<u32>())) {
        let mut f = Fin::default();
        f.complete = complete;
        f.first = first;
        f.last = last;
        f.count = count;
        let Stanza::Iq(iq) = decode(&f.encode_result("x")) else { panic!() };
        prop_assert_eq!(Fin::from_iq(&iq).unwrap(), f);
    }
}

#[test]
fn history_hides_retracted_hidden_and_cleared_messages_but_not_a_forged_retraction() {
    use groupchat_protocol::codec::ext::group_state::GroupState;
    use groupchat_protocol::pagination::HistoryFilter;
    // r0..r9; r7 retracts r5's message (by its room stanza-id = row id here).
    let q = HistoryQuery::latest(ROOM, 10);
    let mut p = page(&q, 10, true, 0);
    let mut retraction = Message::retraction(ROOM.parse().unwrap(), MessageType::Groupchat, "r5");
    retraction.from = Some(format!("{ROOM}/alice").parse().unwrap());
    p.messages[7].message = retraction;
    // Senders as the room archives them (the real JID in a muc#user item): r5 and r6 are
    // alice's, r7 her retraction of r5, r9 mallory's forged retraction of r6.
    let by = |jid: &str| {
        let mut item = groupchat_protocol::codec::xep::muc_user::Item::default();
        item.jid = Some(jid.to_owned());
        let mut u = groupchat_protocol::codec::xep::muc_user::MucUser::default();
        u.items.push(item);
        Some(Box::new(u))
    };
    for i in [5, 6, 7] {
        p.messages[i].message.muc_user = by("alice@localhost/phone");
    }
    let mut forged = Message::retraction(ROOM.parse().unwrap(), MessageType::Groupchat, "r6");
    forged.from = Some(format!("{ROOM}/mallory").parse().unwrap());
    forged.muc_user = by("mallory@localhost");
    p.messages[9].message = forged;
    let mut state = GroupState::new(ROOM);
    state.cleared_up_to = Some("r2".into());
    state.hidden = vec!["r8".into()];
    let mut f = HistoryFilter::new(Some(&state));
    f.apply(&mut p);
    let rows: Vec<&str> = p.messages.iter().map(|m| m.row_id.as_str()).collect();
    // r6 stays: only its sender (or a moderator, through the room) may retract it.
    assert_eq!(rows, ["r3", "r4", "r6"]);
    assert!(p.complete, "nothing older than the cleared mark is fetched");
}
