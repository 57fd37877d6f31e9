//! The cost of an idle session: `poll_output` (and a timer wake-up before the deadline) on a
//! logged-in session that has joined 1, 50 or 500 groups, each join a real join presence
//! answered by the room's self-presence. The session keeps no per-group state today, so
//! these should cost the same; the benchmark is there for when it does.
//!
//! `cargo bench -p groupchat-benches --bench session_idle -- --warm-up-time 1 --measurement-time 5`

#![allow(missing_docs)] // criterion's macros generate undocumented items.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use groupchat_benches::{Corpus, join_groups, logged_in_session};
use groupchat_protocol::{Input, Output};

fn session_idle(c: &mut Criterion) {
    let corpus = Corpus::load();
    let mut g = c.benchmark_group("session_idle");
    for groups in [1usize, 50, 500] {
        let now = Instant::now();
        let mut s = logged_in_session(corpus.header(), now);
        let tracker = join_groups(&mut s, now, groups);
        black_box(tracker);
        assert!(matches!(s.poll_output(), Output::Timeout(Some(_))));

        g.bench_with_input(BenchmarkId::new("poll_output", groups), &groups, |b, _| {
            b.iter(|| match s.poll_output() {
                Output::Timeout(d) => black_box(d),
                other => panic!("an idle session produced {other:?}"),
            });
        });

        // A spurious wake-up (before the keep-alive deadline) and the poll that follows.
        let early = now + Duration::from_secs(1);
        g.bench_with_input(BenchmarkId::new("timeout+poll", groups), &groups, |b, _| {
            b.iter(|| {
                s.handle_input(Input::Timeout(black_box(early)));
                match s.poll_output() {
                    Output::Timeout(d) => black_box(d),
                    other => panic!("an idle session produced {other:?}"),
                }
            });
        });
    }
    g.finish();
}

criterion_group!(benches, session_idle);
criterion_main!(benches);
