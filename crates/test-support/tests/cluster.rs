//! The two-node ejabberd cluster of test-support, and the server behaviour the SDK's
//! failover relies on, seen with raw clients: accounts and rooms shared by both nodes, a room
//! lost with its node (status 332 on SIGTERM, silence on SIGKILL), what a member outside the
//! lost room is answered (XEP-0410 self-ping, a groupchat message), the room restarted on
//! the surviving node with its archive, and the cluster healing after a restart.

use groupchat_protocol::codec::{NsContext, decode_stanza};
use groupchat_protocol::group::{GroupEvent, GroupServices, GroupTracker};
use groupchat_test_support::{EjabberdCluster, Node, RawClient, Stop};

const ROOM: &str = "ops@conference.localhost";

fn login(cluster: &EjabberdCluster, node: Node, user: &str) -> RawClient {
    let a = cluster.account(user);
    RawClient::login(
        cluster.node(node).c2s_addr(),
        "localhost",
        &a.user,
        &a.password,
    )
    .unwrap_or_else(|e| panic!("{user} cannot log in on node {node:?}: {e}"))
}

fn join(c: &mut RawClient, nick: &str) -> String {
    c.send(&format!(
        "<presence to='{ROOM}/{nick}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"
    ))
    .unwrap();
    c.read_until("status code='110'").unwrap()
}

/// A persistent room created through node A by alice.
fn create_room(alice: &mut RawClient) {
    join(alice, "alice");
    alice
        .send(&format!(
            "<iq type='set' to='{ROOM}' id='cfg'><query xmlns='http://jabber.org/protocol/muc#owner'>\
             <x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>\
             <field var='muc#roomconfig_persistentroom'><value>1</value></field>\
             <field var='muc#roomconfig_whois'><value>anyone</value></field>\
             </x></query></iq>"
        ))
        .unwrap();
    let answer = alice.read_until("id='cfg'").unwrap();
    assert!(!answer.contains("type='error'"), "{answer}");
}

fn say(c: &mut RawClient, id: &str) {
    c.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='{id}'><body>{id}</body></message>"
    ))
    .unwrap();
}

fn self_ping(c: &mut RawClient, nick: &str, id: &str) -> String {
    c.send(&format!(
        "<iq type='get' to='{ROOM}/{nick}' id='{id}'><ping xmlns='urn:xmpp:ping'/></iq>"
    ))
    .unwrap();
    // A result is one empty element (its id last, as ejabberd writes it); an error ends
    // with </iq>.
    c.read_until_any(&[&format!("id='{id}'/>"), "</iq>"])
        .unwrap()
}

#[test]
fn a_room_lost_with_its_node_restarts_on_the_other_with_its_archive() {
    let Some(mut cluster) = EjabberdCluster::start() else {
        return;
    };
    assert_eq!(
        cluster.running_nodes(Node::B).unwrap(),
        ["ejabberd_a@127.0.0.1", "ejabberd_b@127.0.0.1"]
    );
    let mut alice = login(&cluster, Node::A, "alice");
    create_room(&mut alice);
    let mut carol = login(&cluster, Node::B, "carol");
    join(&mut carol, "carol");
    say(&mut alice, "before-1");
    carol.read_until(">before-1</body>").unwrap();

    // Joined: a self-ping is answered by the room.
    let pong = self_ping(&mut carol, "carol", "p1");
    assert!(pong.contains("type='result'"), "{pong}");

    // SIGTERM: carol, on node B, is told the room is gone (332), in a presence our
    // decoder turns into `RoomShutDown`.
    cluster.stop(Node::A, Stop::Term);
    let gone = carol.read_until("code='332'").unwrap() + &carol.read_until("</presence>").unwrap();
    let presence = &gone[gone.rfind("<presence").expect("a presence")..];
    assert!(presence.contains("type='unavailable'"), "{presence}");
    let stanza = decode_stanza(presence.as_bytes(), &NsContext::client())
        .unwrap_or_else(|e| panic!("{e}: {presence}"));
    let mut tracker = GroupTracker::new(GroupServices::new(["conference.localhost"]));
    assert_eq!(
        tracker.ingest(&stanza),
        [GroupEvent::RoomShutDown {
            group: ROOM.parse().unwrap()
        }],
        "{presence}"
    );

    // Out of the room: a self-ping and a message are refused as from a non-occupant.
    let pong = self_ping(&mut carol, "carol", "p2");
    assert!(pong.contains("type='error'"), "{pong}");
    assert!(pong.contains("not-acceptable"), "{pong}");
    say(&mut carol, "refused-1");
    let refused = carol.read_until("</message>").unwrap();
    assert!(
        refused.contains("type='error'") && refused.contains("not-acceptable"),
        "{refused}"
    );

    // A join restarts the room on node B, with its archive.
    join(&mut carol, "carol");
    carol
        .send(&format!(
            "<iq type='set' to='{ROOM}' id='mam'><query xmlns='urn:xmpp:mam:2' queryid='q'/></iq>"
        ))
        .unwrap();
    let archive = carol.read_until("id='mam'").unwrap();
    assert!(archive.contains(">before-1</body>"), "{archive}");

    // Node A comes back into the cluster.
    cluster.restart(Node::A);
    assert_eq!(cluster.running_nodes(Node::A).unwrap().len(), 2);

    // SIGKILL of node B (now hosting the room): alice, back on A and in the room, hears
    // nothing; her next message is refused.
    let mut alice = login(&cluster, Node::A, "alice");
    join(&mut alice, "alice");
    cluster.stop(Node::B, Stop::Kill);
    // Node A notices the death (a stanza racing that moment may be swallowed).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while cluster
        .running_nodes(Node::A)
        .map_or(true, |n| n.len() != 1)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "node A still sees node B"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pong = self_ping(&mut alice, "alice", "p3");
    assert!(pong.contains("not-acceptable"), "{pong}");
    say(&mut alice, "refused-2");
    let refused = alice.read_until("</message>").unwrap();
    assert!(refused.contains("not-acceptable"), "{refused}");
    cluster.restart(Node::B);
    assert_eq!(cluster.running_nodes(Node::A).unwrap().len(), 2);
}
