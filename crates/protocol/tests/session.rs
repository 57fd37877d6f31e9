//! Scenario tests of the sans-IO session on scripted server transcripts, in both framings.
//! One binary (rustls style): each topic is a module under `tests/session/`.

// Test-only helpers are `pub` for the sibling modules of this one test binary.
#![allow(unreachable_pub)]
// The harness reads the real clock once, as the start of its virtual one.
#![allow(clippy::disallowed_methods)]

#[path = "session/harness.rs"]
mod harness;

#[path = "session/negotiation.rs"]
mod negotiation;

#[path = "session/stream_management.rs"]
mod stream_management;

#[path = "session/bad_input.rs"]
mod bad_input;

#[path = "session/chunking.rs"]
mod chunking;

#[path = "session/review_regressions.rs"]
mod review_regressions;
