//! One run of a scenario at a seed: its options, what it observed for the
//! checkers, and its outcome. The backends (`engine.rs`, `turmoil.rs`) run
//! the phases; `summary.rs` judges.

use std::rc::Rc;
use std::time::Duration;

use faultline_checker::auditor::Findings;
use faultline_checker::ledger::Ledger;
use faultline_checker::raft::RaftMonitor;
use faultline_checker::record::{FinalState, SharedRecorder, SharedTrafficLog};
use faultline_reports::{FaultRecord, Summary};

use crate::observe::ApiLog;

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub seed: u64,
    /// Keep the trace's text lines (for `--trace`).
    pub keep_trace: bool,
    /// The scenario path as the user gave it (for the reproduce command).
    pub path: String,
    /// Told the simulated time as the run goes (a progress bar).
    pub progress: Option<Progress>,
}

/// See [`RunOptions::progress`]: called with simulated seconds.
#[derive(Clone)]
pub struct Progress(pub Rc<dyn Fn(f64)>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// A finished run.
pub struct RunOutcome {
    pub summary: Summary,
    pub trace: Vec<String>,
    /// [`faultline_engine::Trace::net_hash`]: the network traffic alone.
    pub net_hash: u64,
}

/// Everything the checkers need after a run.
pub struct Observed {
    pub rec: SharedRecorder,
    pub final_state: FinalState,
    /// How long after healing the store replicas agreed, or why not.
    pub converged: Result<Duration, String>,
    /// Raft leaders and safety violations.
    pub raft: RaftMonitor,
    /// What the auditor and the cluster probe found.
    pub findings: Findings,
    /// User requests.
    pub traffic: SharedTrafficLog,
    /// Control-plane outages (start ns, end ns).
    pub control_plane_down: Vec<(u64, u64)>,
    /// The cluster's observers (with worker nodes), for the container
    /// invariant and the report's time series.
    pub cluster: Option<ClusterObservers>,
}

/// What a backend hands over when a run ends, to be judged.
pub struct Finished {
    /// `engine` or `turmoil`.
    pub backend: &'static str,
    pub observed: Observed,
    /// The faults as injected.
    pub faults: Vec<FaultRecord>,
    pub trace_hash: u64,
    pub events: u64,
    pub simulated_seconds: f64,
    pub wall_seconds: f64,
}

/// What the report's cluster charts are drawn from.
pub struct ClusterObservers {
    pub api: Rc<ApiLog>,
    pub ledger: Rc<Ledger>,
    /// (node, datacenter)
    pub nodes: Vec<(String, String)>,
}

/// The command that replays a run.
/// (A real run replays its fault schedule, not the run itself.)
pub fn reproduce_command(path: &str, seed: u64, backend: &str) -> String {
    match backend {
        "engine" => format!("faultline sim run {path} --seed {seed}"),
        "real" => format!("faultline real run {path} --seed {seed}"),
        _ => format!("faultline sim run {path} --seed {seed} --backend {backend}"),
    }
}
