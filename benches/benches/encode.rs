//! Encode throughput: the corpus' messages (group messages, archive results, chat states,
//! media), decoded once by each library, then serialized: ours `Message::encode` against
//! xmpp-parsers' path, `xso::to_vec` on its `Message`.
//!
//! `cargo bench -p groupchat-benches --bench encode -- --warm-up-time 1 --measurement-time 5`

#![allow(missing_docs)] // criterion's macros generate undocumented items.

mod common;

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use groupchat_benches::{Corpus, feed, logged_in_session};
use groupchat_protocol::codec::{Message, NsContext, Stanza, decode_stanza};
use xmpp_parsers::message::Message as XMessage;
use xmpp_parsers::stanza::Stanza as XStanza;

fn encode(c: &mut Criterion) {
    let corpus = Corpus::load();
    let now = Instant::now();
    let mut session = logged_in_session(corpus.header(), now);
    let mut ours: Vec<Message> = Vec::new();
    feed(&mut session, now, corpus.body(), |s| {
        if let Stanza::Message(m) = s {
            ours.push(*m);
        }
    });
    let rt = common::runtime();
    let mut theirs: Vec<XMessage> = Vec::new();
    common::baseline_read(&rt, &common::baseline_input(&corpus), |s| {
        if let XStanza::Message(m) = s {
            theirs.push(m);
        }
    });
    assert_eq!(ours.len(), theirs.len(), "the same messages on both sides");

    // Both outputs must decode back to what was encoded (ours: the same value; theirs: the
    // same stanza as ours reads it).
    let ctx = NsContext::client();
    let mut out_ours = 0u64;
    let mut out_theirs = 0u64;
    for (a, b) in ours.iter().zip(&theirs) {
        let ea = a.encode();
        let eb = xso::to_vec(b).expect("xso serializes");
        out_ours += ea.len() as u64;
        out_theirs += eb.len() as u64;
        let da = decode_stanza(&ea, &ctx).expect("ours decodes");
        let db = decode_stanza(&eb, &ctx).expect("theirs decodes");
        assert_eq!(da, Stanza::Message(Box::new(a.clone())), "ours round-trips");
        assert_eq!(
            common::summary_ours(&da),
            common::summary_ours(&db),
            "both encode the same information"
        );
    }
    eprintln!(
        "encode: {} messages; ours writes {out_ours} bytes, xso {out_theirs} bytes",
        ours.len()
    );

    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(ours.len() as u64));
    g.sample_size(20);
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("ours/Message::encode", |b| {
        b.iter(|| {
            for m in &ours {
                black_box(m.encode());
            }
        });
    });
    g.bench_function("baseline/xso::to_vec", |b| {
        b.iter(|| {
            for m in &theirs {
                black_box(xso::to_vec(m).expect("xso serializes"));
            }
        });
    });
    g.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
