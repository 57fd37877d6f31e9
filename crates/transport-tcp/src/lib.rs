//! groupchat-transport-tcp
//!
//! An empty shell for now: the driver lands with its own issue. See `docs/ARCHITECTURE.md`.
