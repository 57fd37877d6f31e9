//! XEP-0045: Multi-User Chat — the occupant's use cases: entering and leaving a room
//! (§7.2, §7.14) and inviting someone through it (§7.8.2). What the room says back is
//! `muc_user`; configuring and destroying it is `muc_owner`.

use crate::codec::write::Writer;
use crate::codec::xep::muc_user;
use crate::ns;

/// The join presence for `room/nick`; `history_since_none` asks for no history replay
/// (the SDK catches up from the archive instead).
pub fn join(room: &str, nick: &str, id: &str, no_history: bool) -> Vec<u8> {
    let mut w = Writer::with_capacity(192);
    w.open_ns("presence", ns::CLIENT);
    w.attr("to", &format!("{room}/{nick}"));
    w.attr("id", id);
    w.close_start();
    w.open_ns("x", muc_user::MUC_NS);
    if no_history {
        w.close_start();
        w.open("history");
        w.attr("maxstanzas", "0");
        w.close_empty();
        w.end("x");
    } else {
        w.close_empty();
    }
    w.end("presence");
    w.buf
}

/// The presence that leaves a room.
pub fn leave(room: &str, nick: &str) -> Vec<u8> {
    let mut w = Writer::with_capacity(128);
    w.open_ns("presence", ns::CLIENT);
    w.attr("to", &format!("{room}/{nick}"));
    w.attr("type", "unavailable");
    w.close_empty();
    w.buf
}

/// A mediated invitation (XEP-0045 §7.8.2), sent to the room.
pub fn invite(room: &str, invitee: &str, reason: Option<&str>) -> Vec<u8> {
    let mut w = Writer::with_capacity(256);
    w.open_ns("message", ns::CLIENT);
    w.attr("to", room);
    w.close_start();
    w.open_ns("x", muc_user::NS);
    w.close_start();
    w.open("invite");
    w.attr("to", invitee);
    if let Some(r) = reason {
        w.close_start();
        w.text_element("reason", r);
        w.end("invite");
    } else {
        w.close_empty();
    }
    w.end("x");
    w.end("message");
    w.buf
}
