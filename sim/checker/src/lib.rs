//! Invariant oracles over recorded histories: linearizability, lost writes,
//! watch order, availability.
//!
//! Faultline's simulated clients record what they asked the key-value store
//! and what they got back; after a run these checkers decide whether the
//! store behaved correctly. All of them are pure, deterministic functions of
//! their input (no clock, no randomness, ordered collections only).
//!
//! # Module map
//!
//! * [`availability`]: user requests against an SLO (whole run, sliding
//!   windows, when the error budget ran out), latency quantiles, and the
//!   windows of unavailability.
//! * [`history`]: the recorded data: [`Op`]s (a [`Call`] on one key, its
//!   invocation time and its [`Outcome`]: `Ok`, `Fail` or `Unknown`) and the
//!   [`History`] recorder.
//! * [`linearizable`]: a Wing & Gong / Lowe (Porcupine-style)
//!   linearizability checker for the per-key register model, with a step
//!   budget per key; [`check`] returns a [`Verdict`].
//! * [`set`]: Jepsen's set workload: no acknowledged add may be missing from
//!   the final read; [`check_set`] returns a [`SetVerdict`].
//! * [`watch`]: watch-stream checking against the authoritative list of
//!   committed writes: ordered revisions, no duplicates, no gaps, matching
//!   values; [`check_watch`] returns a [`WatchVerdict`].

#![warn(missing_docs)]

pub mod availability;
pub mod history;
pub mod linearizable;
pub mod set;
pub mod watch;

pub use history::{Call, CallResult, ClientId, History, HistoryError, Op, Outcome};
pub use linearizable::{check, Verdict, DEFAULT_MAX_STEPS_PER_KEY};
pub use set::{check_set, SetCheck, SetVerdict};
pub use watch::{check_watch, EventKind, WatchCheck, WatchEvent, WatchVerdict, WatchViolation};
