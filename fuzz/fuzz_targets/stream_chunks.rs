#![no_main]
//! See `groupchat_protocol::fuzz_targets::stream_chunks`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    groupchat_protocol::fuzz_targets::stream_chunks(data);
});
