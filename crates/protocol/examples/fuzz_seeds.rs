//! Writes the fuzz seed corpus (`fuzz/corpus/<target>/`) from the real server recordings in
//! `crates/protocol/tests/data/`: `cargo run -p groupchat-protocol --example fuzz_seeds`.

use std::fs;
use std::path::{Path, PathBuf};

use groupchat_protocol::fuzz_targets::split_elements;

fn write(dir: &Path, name: &str, data: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), data).unwrap();
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("../../fuzz/corpus");
    for server in ["prosody", "ejabberd"] {
        let mut entries: Vec<_> = fs::read_dir(root.join("tests/data").join(server))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            let bytes = fs::read(&path).unwrap();
            if bytes.is_empty() {
                continue;
            }
            let elements = split_elements(&bytes);
            for (i, el) in elements.iter().enumerate() {
                write(&corpus.join("decode"), &format!("{server}-{stem}-{i}"), el);
            }
            // Chunked stream: a seed byte for the chunk size, then the recording.
            let mut chunked = vec![(stem.len() % 64) as u8];
            chunked.extend_from_slice(&bytes);
            write(
                &corpus.join("stream_chunks"),
                &format!("{server}-{stem}"),
                &chunked,
            );
            // WebSocket frames separated by 0xFF (stanzas get jabber:client declared).
            let frames: Vec<Vec<u8>> = elements
                .iter()
                .map(|e| {
                    let s = String::from_utf8_lossy(e);
                    let end = s.find([' ', '>', '/']).unwrap_or(s.len());
                    if s.contains("xmlns=") && s[..s.find('>').unwrap_or(0)].contains("xmlns=") {
                        e.clone()
                    } else {
                        format!("{} xmlns='jabber:client'{}", &s[..end], &s[end..]).into_bytes()
                    }
                })
                .collect();
            write(
                &corpus.join("ws_frames"),
                &format!("{server}-{stem}"),
                &frames.join(&0xFF),
            );
            // A script: log in (op 0 ×7), feed the recording in pieces (op 1), let time pass.
            let mut script = vec![0u8];
            for _ in 0..7 {
                script.extend_from_slice(&[0, 0]);
            }
            for piece in bytes.chunks(200) {
                script.extend_from_slice(&[1, piece.len() as u8]);
                script.extend_from_slice(piece);
            }
            script.extend_from_slice(&[3, 1, 4, 0, 2, 61, 2, 31, 6, 0]);
            write(
                &corpus.join("session_script"),
                &format!("{server}-{stem}"),
                &script,
            );
        }
    }
    println!("corpus written to {}", corpus.display());
}
