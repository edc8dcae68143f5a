//! Raft consensus as a sans-IO state machine, in the shape of raft-rs's
//! `RawNode`: the shell feeds it ticks, messages and proposals, takes a
//! [`Ready`] batch of writes, sends and commits, and acknowledges it.
//!
//! Why our own and not tikv's `raft`: its election timeout draws from
//! `rand::thread_rng()`, which breaks seed reproducibility, and its storage
//! trait assumes a synchronous log; a small pure core owns its randomness
//! (seeded by the caller) and reports to the simulator's checkers directly.

mod log;
mod node;
mod progress;
mod read_only;
mod types;

#[cfg(test)]
mod tests;

pub use node::{ProposeError, RawNode};
pub use types::*;
