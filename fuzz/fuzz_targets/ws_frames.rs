#![no_main]
//! See `groupchat_protocol::fuzz_targets::ws_frames`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    groupchat_protocol::fuzz_targets::ws_frames(data);
});
