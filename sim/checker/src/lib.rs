//! The checkers: what a run records, the observers that record what
//! components do, and every invariant judged behind one interface.
//!
//! Faultline's simulated clients record what they asked the key-value store
//! and what they got back, users record every request, and observers watch
//! the cluster; after a run [`judge`] decides each invariant. The oracles
//! are pure, deterministic functions of their input (no clock, no
//! randomness, ordered collections only).
//!
//! # Module map
//!
//! * [`judge`]: [`judge::judge`] an invariant on a run's
//!   [`judge::Observations`], one module per family of invariants.
//! * [`record`]: what workloads record (the store workload's [`Recorder`],
//!   the final reads, every user request in a [`record::TrafficLog`]).
//! * [`raft`]: the global Raft safety monitor, fed as replicas report.
//! * [`auditor`]: reads the store's pod and node history from revision 1
//!   (single binding, no over-commit, node readiness).
//! * [`probe`]: after healing, asks the API whether the cluster converged
//!   and whether pending pods say why.
//! * [`ledger`]: every container started on every node (single container).
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

pub mod auditor;
pub mod availability;
pub mod history;
pub mod judge;
pub mod ledger;
pub mod linearizable;
pub mod probe;
pub mod raft;
pub mod record;
pub mod set;
pub mod watch;

pub use history::{Call, CallResult, ClientId, History, HistoryError, Op, Outcome};
pub use judge::{judge, Observations};
pub use linearizable::{check, Verdict, DEFAULT_MAX_STEPS_PER_KEY};
pub use record::Recorder;
pub use set::{check_set, SetCheck, SetVerdict};
pub use watch::{check_watch, EventKind, WatchCheck, WatchEvent, WatchVerdict, WatchViolation};
