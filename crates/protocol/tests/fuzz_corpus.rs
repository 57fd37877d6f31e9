//! Replays every checked-in fuzz corpus file (`fuzz/corpus/<target>/`) through the targets'
//! code on the stable toolchain, so that `cargo test` covers the corpus and every crash
//! input ever found.

use std::path::PathBuf;

use groupchat_protocol::fuzz_targets;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| f(&data));
        assert!(r.is_ok(), "{target}: {} panics", path.display());
        n += 1;
    }
    assert!(n >= 10, "{target}: only {n} corpus files");
}

#[test]
fn decode_corpus() {
    replay("decode", fuzz_targets::decode);
}

#[test]
fn stream_chunks_corpus() {
    replay("stream_chunks", fuzz_targets::stream_chunks);
}

#[test]
fn ws_frames_corpus() {
    replay("ws_frames", fuzz_targets::ws_frames);
}

#[test]
fn session_script_corpus() {
    replay("session_script", fuzz_targets::session_script);
}
