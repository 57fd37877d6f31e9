//! Heap + inline bytes held by one decoded stanza, measured with a counting allocator, for
//! every stanza of the corpus: ours (`decode_stanza` → `Stanza`, and the `GroupEvent`s it
//! becomes) against xmpp-parsers (`Message` / `Presence` as tokio-xmpp hands them over, and
//! after typed extraction). Prints median / p90 / max per kind of stanza.
//!
//! `cargo bench -p groupchat-benches --bench memory`

#![allow(missing_docs)]

mod common;
// The by-hand accounting of `crates/protocol/tests/sizes.rs`, checked here against the
// counting allocator (its `#[test]`s are not compiled into a bench binary).
#[allow(dead_code)]
#[path = "../../crates/protocol/tests/sizes.rs"]
mod sizes;

use std::alloc::System;
use std::collections::BTreeMap;
use std::mem::size_of;

use groupchat_benches::{Corpus, GROUP_SERVICE};
use groupchat_protocol::codec::{NsContext, Stanza, decode_stanza};
use groupchat_protocol::group::{GroupEvent, GroupServices, GroupTracker};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use xmpp_parsers::message::Message as XMessage;
use xmpp_parsers::presence::Presence as XPresence;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Runs `f` and returns its value with the heap bytes that are still allocated afterwards
/// (what the value holds; temporaries are freed inside `f`).
fn held<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let region = Region::new(GLOBAL);
    let v = f();
    let s = region.change();
    // stats_alloc already books a growing (shrinking) realloc's difference as allocated
    // (deallocated) bytes; `bytes_reallocated` is the same amount again.
    (v, s.bytes_allocated.saturating_sub(s.bytes_deallocated))
}

/// The kind of a stanza, for grouping the figures.
fn kind(bytes: &[u8]) -> &'static str {
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    let head = &text[..text.find('>').unwrap_or(text.len())];
    if text.starts_with("<presence") {
        "presence (room)"
    } else if text.contains("<result xmlns='urn:xmpp:mam:2'") {
        "message: archive result"
    } else if text.contains("<x xmlns='jabber:x:oob'") {
        "message: media (OOB)"
    } else if head.contains("type='groupchat'") && text.contains("<body>") {
        "message: live group text"
    } else {
        "message: chat state"
    }
}

#[derive(Default)]
struct Dist(Vec<usize>);

impl Dist {
    fn add(&mut self, v: usize) {
        self.0.push(v);
    }
    fn stats(&mut self) -> (usize, usize, usize, usize) {
        self.0.sort_unstable();
        let n = self.0.len();
        let at = |q: f64| self.0[((n as f64 - 1.0) * q).round() as usize];
        (n, at(0.5), at(0.9), self.0[n - 1])
    }
}

/// `<message ` → `<message xmlns='jabber:client' ` (the stream's default namespace, which
/// a stanza cut out of the stream inherits).
fn with_client_ns(bytes: &[u8]) -> Vec<u8> {
    let name_end = bytes
        .iter()
        .position(|&b| b == b' ' || b == b'>')
        .expect("a start tag");
    let mut v = bytes[..name_end].to_vec();
    v.extend_from_slice(b" xmlns='jabber:client'");
    v.extend_from_slice(&bytes[name_end..]);
    v
}

fn main() {
    let corpus = Corpus::load();
    let ctx = NsContext::client();
    let mut tracker = GroupTracker::new(GroupServices::new([GROUP_SERVICE]));
    // (kind, measure) → distribution
    let mut d: BTreeMap<(&str, &str), Dist> = BTreeMap::new();
    let mut keep_ours = Vec::new();
    let mut keep_theirs = Vec::new();
    let mut model_dev: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    let mut shown = 0;
    for s in &corpus.stanzas {
        let k = kind(s);
        let (st, heap) = held(|| decode_stanza(s, &ctx).expect("valid"));
        let model = sizes::stanza_held(&st);
        let measured = heap + size_of::<Stanza>();
        let dev = model.abs_diff(measured);
        let worst = model_dev.entry(k).or_insert((0, 0, 0));
        if dev > worst.0 {
            *worst = (dev, measured, model);
        }
        if dev > 0 && shown < 3 {
            shown += 1;
            eprintln!(
                "model {model} != measured {measured}: {}",
                String::from_utf8_lossy(s)
            );
        }
        d.entry((k, "ours: codec::Stanza"))
            .or_default()
            .add(heap + size_of::<Stanza>());
        // Measured on a copy: the tracker's own occupant tables grow while it ingests.
        let events = tracker.ingest(&st);
        let (events, heap) = held(|| events.clone());
        d.entry((k, "ours: Vec<GroupEvent> from it"))
            .or_default()
            .add(heap + size_of::<Vec<GroupEvent>>());
        keep_ours.push((st, events));

        let xml = with_client_ns(s);
        if k.starts_with("presence") {
            let (p, heap) = held(|| xso::from_bytes::<XPresence>(&xml).expect("valid"));
            d.entry((k, "xmpp-parsers: Presence"))
                .or_default()
                .add(heap + size_of::<XPresence>());
            // Bytes → extracted in one region: extraction moves out of (and frees) the tree.
            let (e, heap) = held(|| {
                common::extract_presence(xso::from_bytes::<XPresence>(&xml).expect("valid"))
            });
            d.entry((k, "xmpp-parsers: extracted (BasePresence)"))
                .or_default()
                .add(heap + size_of::<common::BasePresence>());
            keep_theirs.push(Box::new((p, e)) as Box<dyn std::any::Any>);
        } else {
            let (m, heap) = held(|| xso::from_bytes::<XMessage>(&xml).expect("valid"));
            d.entry((k, "xmpp-parsers: Message"))
                .or_default()
                .add(heap + size_of::<XMessage>());
            let (e, heap) =
                held(|| common::extract_message(xso::from_bytes::<XMessage>(&xml).expect("valid")));
            d.entry((k, "xmpp-parsers: extracted (BaseMessage)"))
                .or_default()
                .add(heap + size_of::<common::BaseMessage>());
            keep_theirs.push(Box::new((m, e)) as Box<dyn std::any::Any>);
        }
    }
    println!("bytes held per decoded stanza (inline size + heap), over the corpus");
    println!(
        "{:<26} {:<42} {:>6} {:>7} {:>7} {:>7}",
        "stanza", "held as", "count", "median", "p90", "max"
    );
    for ((k, what), dist) in &mut d {
        let (n, med, p90, max) = dist.stats();
        println!("{k:<26} {what:<42} {n:>6} {med:>7} {p90:>7} {max:>7}");
    }
    for (k, (dev, measured, model)) in &model_dev {
        println!(
            "{k:<26} tests/sizes.rs model vs allocator: largest difference {dev} bytes ({model} vs {measured})"
        );
    }
    println!(
        "size_of: Stanza {}, Message {}, Presence {}, GroupEvent {}, Event {}, minidom Element {}; xmpp-parsers Message {}, Presence {}",
        size_of::<Stanza>(),
        size_of::<groupchat_protocol::codec::Message>(),
        size_of::<groupchat_protocol::codec::Presence>(),
        size_of::<GroupEvent>(),
        size_of::<groupchat_protocol::Event>(),
        size_of::<minidom::Element>(),
        size_of::<XMessage>(),
        size_of::<XPresence>(),
    );
    drop((keep_ours, keep_theirs));
}
