//! Decode throughput over the whole corpus, every implementation on the same bytes in the
//! same run: ours (session, `decode_stanza`, `GroupTracker::ingest`), tokio-xmpp +
//! xmpp-parsers, and the quick-xml floor. Before timing, all of them are run once and
//! checked to extract the same information.
//!
//! `cargo bench -p groupchat-benches --bench decode -- --warm-up-time 1 --measurement-time 5`
//! runs both corpora (`GROUPCHAT_CORPUS=traffic` for one).

#![allow(missing_docs)] // criterion's macros generate undocumented items.

mod common;

use std::hint::black_box;
use std::time::Instant;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use groupchat_benches::{Corpus, GROUP_SERVICE, feed, logged_in_session};
use groupchat_protocol::codec::{NsContext, decode_stanza};
use groupchat_protocol::group::{GroupServices, GroupTracker};

fn decode(c: &mut Criterion) {
    for (name, corpus) in Corpus::selected() {
        decode_corpus(c, name, &corpus);
    }
}

/// Every implementation over `corpus`, as the criterion group `decode-NAME`.
fn decode_corpus(c: &mut Criterion, name: &str, corpus: &Corpus) {
    let rt = common::runtime();
    let base_input = common::baseline_input(corpus);
    common::check_same_information(corpus, &rt, &base_input);
    let ctx = NsContext::client();
    let n = corpus.len() as u64;

    let mut g = c.benchmark_group(format!("decode-{name}"));
    g.throughput(Throughput::ElementsAndBytes {
        elements: n,
        bytes: corpus.bytes.len() as u64,
    });
    // One iteration is the whole corpus (tens to hundreds of milliseconds): few samples,
    // each of the same number of iterations.
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);

    // Ours, as an application gets it: the bytes, in 16 KiB reads, through a logged-in
    // session (framing, limits, restricted-XML checks, well-formedness, namespaces,
    // entities, typed decoding, XEP-0198 counting), every `Event::Stanza` drained.
    g.bench_function("ours/session", |b| {
        b.iter_batched(
            || {
                let now = Instant::now();
                (logged_in_session(corpus.header(), now), now)
            },
            |(mut s, now)| {
                let mut count = 0usize;
                feed(&mut s, now, corpus.body(), |st| {
                    black_box(st);
                    count += 1;
                });
                assert_eq!(count, corpus.len());
                s
            },
            BatchSize::PerIteration,
        );
    });

    // Ours, all the way to group events.
    g.bench_function("ours/session+ingest", |b| {
        b.iter_batched(
            || {
                let now = Instant::now();
                let t = GroupTracker::new(GroupServices::new([GROUP_SERVICE]));
                (logged_in_session(corpus.header(), now), now, t)
            },
            |(mut s, now, mut t)| {
                feed(&mut s, now, corpus.body(), |st| {
                    black_box(t.ingest(&st));
                    black_box(st);
                });
                (s, t)
            },
            BatchSize::PerIteration,
        );
    });

    // Ours, the codec alone on pre-split stanzas (no framing, no session).
    g.bench_function("ours/decode_stanza", |b| {
        b.iter(|| {
            for s in &corpus.stanzas {
                black_box(decode_stanza(s, &ctx).expect("valid stanza"));
            }
        });
    });

    g.bench_function("ours/decode_stanza+ingest", |b| {
        b.iter_batched(
            || GroupTracker::new(GroupServices::new([GROUP_SERVICE])),
            |mut t| {
                for s in &corpus.stanzas {
                    let st = decode_stanza(s, &ctx).expect("valid stanza");
                    black_box(t.ingest(&st));
                    black_box(st);
                }
                t
            },
            BatchSize::PerIteration,
        );
    });

    // The baseline: tokio-xmpp's XmppStream read path, then xmpp-parsers typed extraction.
    g.bench_function("baseline/tokio-xmpp+xmpp-parsers", |b| {
        b.iter(|| {
            let mut count = 0usize;
            common::baseline(&rt, &base_input, |s| {
                black_box(s);
                count += 1;
            });
            assert_eq!(count, corpus.len());
        });
    });

    // The baseline's read path alone (stanzas typed as xmpp-parsers Message/Presence with
    // minidom payloads, no extraction).
    g.bench_function("baseline/tokio-xmpp-read-only", |b| {
        b.iter(|| {
            common::baseline_read(&rt, &base_input, |s| {
                black_box(s);
            });
        });
    });

    // The floor: quick-xml's NsReader over the whole corpus, every event resolved and
    // unescaped.
    g.bench_function("floor/quick-xml-nsreader", |b| {
        b.iter(|| black_box(common::floor(&corpus.bytes)));
    });

    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
