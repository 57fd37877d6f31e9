#![no_main]
//! See `groupchat_protocol::fuzz_targets::session_script`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    groupchat_protocol::fuzz_targets::session_script(data);
});
