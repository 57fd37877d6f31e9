//! Runs one implementation once over the corpus, for instruction counts under callgrind.
//! Setup (loading the corpus, logging in, building the runtime) happens outside `measure`,
//! so that `--toggle-collect` counts only the work itself:
//!
//! ```text
//! cargo bench -p groupchat-benches --bench callgrind --no-run   # prints the binary's path
//! valgrind --tool=callgrind --toggle-collect='*callgrind::measure*' \
//!     target/release/deps/callgrind-HASH session
//! ```
//!
//! The one argument names the implementation: `session`, `session+ingest`, `decode_stanza`,
//! `decode_stanza+ingest`, `baseline`, `baseline-read`, `floor`, `encode-ours`, `encode-xso`,
//! or `idle-GROUPS` (1,000,000 `poll_output` calls on an idle session that joined GROUPS
//! groups). With anything else (as under `cargo bench`) it does nothing.

#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::time::Instant;

use groupchat_benches::{Corpus, GROUP_SERVICE, feed, logged_in_session};
use groupchat_protocol::Output;
use groupchat_protocol::codec::{NsContext, Stanza, decode_stanza};
use groupchat_protocol::group::{GroupServices, GroupTracker};
use xmpp_parsers::stanza::Stanza as XStanza;

/// Polls of an idle session per `idle-GROUPS` run.
const IDLE_POLLS: usize = 1_000_000;

/// The measured region: everything `f` does, and nothing else.
#[inline(never)]
fn measure<F: FnOnce() -> usize>(f: F) -> usize {
    black_box(f())
}

fn main() {
    // `cargo bench` runs every bench target with `--bench` (and criterion's options):
    // nothing to do then.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [which] = args.as_slice() else {
        return;
    };
    if which.starts_with('-') {
        return;
    }
    // One corpus per run: `GROUPCHAT_CORPUS=traffic` (default: the first, `group`), all of it
    // or the part `GROUPCHAT_SUBSET` names.
    let (_, corpus) = Corpus::from_env();
    let ctx = NsContext::client();
    let rt = common::runtime();
    let base_input = common::baseline_input(&corpus);
    let now = Instant::now();
    let n = match which.as_str() {
        "session" => {
            let mut s = logged_in_session(corpus.header(), now);
            measure(|| {
                let mut count = 0;
                feed(&mut s, now, corpus.body(), |st| {
                    black_box(st);
                    count += 1;
                });
                count
            })
        }
        "session+ingest" => {
            let mut s = logged_in_session(corpus.header(), now);
            let mut t = GroupTracker::new(GroupServices::new([GROUP_SERVICE]));
            measure(|| {
                let mut count = 0;
                feed(&mut s, now, corpus.body(), |st| {
                    black_box(t.ingest(&st));
                    black_box(st);
                    count += 1;
                });
                count
            })
        }
        "decode_stanza" => measure(|| {
            for s in &corpus.stanzas {
                black_box(decode_stanza(s, &ctx).expect("valid"));
            }
            corpus.len()
        }),
        "decode_stanza+ingest" => {
            let mut t = GroupTracker::new(GroupServices::new([GROUP_SERVICE]));
            measure(|| {
                for s in &corpus.stanzas {
                    let st = decode_stanza(s, &ctx).expect("valid");
                    black_box(t.ingest(&st));
                    black_box(st);
                }
                corpus.len()
            })
        }
        "baseline" => measure(|| {
            let mut count = 0;
            common::baseline(&rt, &base_input, |s| {
                black_box(s);
                count += 1;
            });
            count
        }),
        "baseline-read" => measure(|| {
            let mut count = 0;
            common::baseline_read(&rt, &base_input, |s| {
                black_box(s);
                count += 1;
            });
            count
        }),
        "floor" => measure(|| common::floor(&corpus.bytes)),
        "encode-ours" => {
            let mut s = logged_in_session(corpus.header(), now);
            let mut msgs = Vec::new();
            feed(&mut s, now, corpus.body(), |st| {
                if let Stanza::Message(m) = st {
                    msgs.push(m);
                }
            });
            measure(|| {
                for m in &msgs {
                    black_box(m.encode());
                }
                msgs.len()
            })
        }
        "encode-xso" => {
            let mut msgs = Vec::new();
            common::baseline_read(&rt, &base_input, |s| {
                if let XStanza::Message(m) = s {
                    msgs.push(m);
                }
            });
            measure(|| {
                for m in &msgs {
                    black_box(xso::to_vec(m).expect("serializes"));
                }
                msgs.len()
            })
        }
        idle if idle.starts_with("idle-") => {
            let groups: usize = idle["idle-".len()..].parse().expect("idle-GROUPS");
            let mut s = logged_in_session(corpus.header(), now);
            black_box(groupchat_benches::join_groups(&mut s, now, groups));
            measure(|| {
                let mut polls = 0;
                for _ in 0..IDLE_POLLS {
                    if let Output::Timeout(d) = s.poll_output() {
                        black_box(d);
                        polls += 1;
                    }
                }
                polls
            })
        }
        other => panic!("unknown implementation {other:?}"),
    };
    eprintln!("{which}: {n} items");
}
