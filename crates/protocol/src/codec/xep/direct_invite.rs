//! XEP-0249: Direct MUC Invitations — an invitation sent to the invitee, not through the
//! room (received ones are decoded with the message, see `muc_user::DirectInvite`).

use crate::codec::write::Writer;
use crate::codec::xep::muc_user;
use crate::ns;

/// A direct invitation (XEP-0249), sent to the invitee.
pub fn invite(room: &str, invitee: &str, reason: Option<&str>) -> Vec<u8> {
    let mut w = Writer::with_capacity(192);
    w.open_ns("message", ns::CLIENT);
    w.attr("to", invitee);
    w.close_start();
    w.open_ns("x", muc_user::DIRECT_INVITE_NS);
    w.attr("jid", room);
    w.attr_opt("reason", reason);
    w.close_empty();
    w.end("message");
    w.buf
}
