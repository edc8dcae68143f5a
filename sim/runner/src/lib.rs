//! The runner: a scenario at a seed on a simulation backend, in phases,
//! and its verdict.
//!
//! - [`world`]: the cluster a scenario describes (masters and nodes wired
//!   by `faultline-roles`, the store workload's clients) and its addresses;
//! - [`hosts`]: the hosts that act on the cluster and watch it (the user,
//!   the users of services, the auditor, the probes), thin shells over
//!   `faultline-workloads` and `faultline-checker`;
//! - [`engine`]: the run on the event-driven engine: build, fault, heal,
//!   converge, read;
//! - [`turmoil`]: the same run on turmoil, as a differential check;
//! - [`run`]: a run's options, observations and outcome;
//! - [`summary`]: every invariant judged, and the report's summary;
//! - [`observe`]: the API server's load and per-service series for the
//!   report;
//! - [`shrink`]: a failing seed's fault schedule cut down by delta
//!   debugging.
//!
//! The scenario format, the faults, the workloads and the checkers are
//! crates of their own (`faultline-scenario`, `-faults`, `-workloads`,
//! `-checker`), re-exported here as [`scenario`], [`faults`],
//! [`workloads`] and [`checker`].

pub mod engine;
pub mod hosts;
pub mod observe;
pub mod run;
pub mod shrink;
pub mod summary;
pub mod turmoil;
pub mod world;

pub use engine::{run_engine, run_engine_inert_faults};
pub use faultline_checker as checker;
pub use faultline_faults as faults;
pub use faultline_scenario as scenario;
pub use faultline_scenario::{Scenario, ScenarioError};
pub use faultline_workloads as workloads;
pub use run::{RunOptions, RunOutcome};
