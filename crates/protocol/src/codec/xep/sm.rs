//! XEP-0198: Stream Management — the elements the client sends: enabling (with
//! resumption), resuming, asking for an ack, acknowledging, and the stream error for a
//! server that claims stanzas it was never sent.

use crate::codec::write::Writer;
use crate::ns;

/// `<enable resume='true'/>`.
pub fn enable() -> Vec<u8> {
    let mut w = Writer::with_capacity(64);
    w.open_ns("enable", ns::SM);
    w.attr("resume", "true");
    w.close_empty();
    w.buf
}

/// `<resume/>` of session `previd`, having handled `h` stanzas.
pub fn resume(h: u32, previd: &str) -> Vec<u8> {
    let mut w = Writer::with_capacity(96);
    w.open_ns("resume", ns::SM);
    w.attr("h", &h.to_string());
    w.attr("previd", previd);
    w.close_empty();
    w.buf
}

/// `<r/>`: asks the server how many stanzas it has handled.
pub fn request() -> Vec<u8> {
    let mut w = Writer::with_capacity(40);
    w.empty_ns("r", ns::SM);
    w.buf
}

/// `<a h='…'/>`: we have handled `h` stanzas.
pub fn ack(h: u32) -> Vec<u8> {
    let mut w = Writer::with_capacity(48);
    w.open_ns("a", ns::SM);
    w.attr("h", &h.to_string());
    w.close_empty();
    w.buf
}

/// The application condition of the stream error for an ack of stanzas never sent
/// (XEP-0198 §4): `<handled-count-too-high h='…' send-count='…'/>`.
pub(crate) fn handled_count_too_high(w: &mut Writer, h: u32, send_count: u32) {
    w.open_ns("handled-count-too-high", ns::SM);
    w.attr("h", &h.to_string());
    w.attr("send-count", &send_count.to_string());
    w.close_empty();
}
