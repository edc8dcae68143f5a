//! Scenarios, faults, workloads and the runner that judges a seed.
//!
//! - [`scenario`]: the TOML scenario format, parsed strictly;
//! - [`cluster`]: the control plane, worker nodes, the user and the
//!   control-plane observers (auditor, container ledger, cluster probe);
//! - [`faults`]: the fault plan (scheduled + nemesis, drawn from the seed)
//!   and how each fault kind starts and heals;
//! - [`workload`]: store clients, the watcher, and the final reads;
//! - [`traffic`]: users sending requests to services through the node
//!   proxies behind a health-checking load balancer, every request recorded;
//! - [`run`]: one scenario at one seed on the event-driven engine, and the
//!   invariant verdicts;
//! - [`turmoil_backend`]: the same run on turmoil, as a differential check.

pub mod cluster;
pub mod observe;
pub mod run;
pub mod shrink;
pub mod slo;
pub mod traffic;
pub mod turmoil_backend;
pub mod workload;

pub use faultline_faults as faults;
pub use faultline_scenario as scenario;
pub use faultline_scenario::{Scenario, ScenarioError};
pub use run::{run_engine, run_engine_inert_faults, RunOptions, RunOutcome};
