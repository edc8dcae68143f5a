//! Every invariant behind one interface: [`judge`] takes an invariant of
//! the scenario and what the run [`Observations`] recorded, and gives a
//! [`Verdict`]. Each family of invariants has a module:
//!
//! - [`store`]: `linearizable`, `no-lost-writes`, `watch-ordered`,
//!   `raft-safety`, and `converges` (store replicas, and with worker nodes
//!   the cluster too);
//! - [`cluster`]: `deployments-ready`, `single-binding`, `no-overcommit`,
//!   `pending-explained`, `single-container`;
//! - [`slo`]: `availability`, `latency`, `static-stability`.
//!
//! A new invariant: a line in `faultline-scenario`'s `invariant.rs` (with
//! its settings), its judging in the family module it belongs to (or a new
//! one), and an arm in [`judge`]; whatever it needs recorded goes into
//! [`Observations`].

pub mod cluster;
pub mod slo;
pub mod store;

use std::time::Duration;

use faultline_scenario::{Invariant, InvariantSpec};

use crate::auditor::ClusterFindings;
use crate::ledger::Ledger;
use crate::raft::RaftMonitor;
use crate::record::{FinalState, Recorder, TrafficLog};

/// What a run recorded, for judging.
pub struct Observations<'a> {
    /// The store workload's operations.
    pub store: &'a Recorder,
    /// The final reads after healing.
    pub final_state: &'a FinalState,
    /// How long after healing the store replicas agreed, or why not.
    pub converged: &'a Result<Duration, String>,
    /// Raft leaders and safety violations.
    pub raft: &'a RaftMonitor,
    /// With worker nodes: what the auditor and the cluster probe found.
    pub cluster: Option<&'a ClusterFindings>,
    /// With worker nodes: every container started.
    pub containers: Option<&'a Ledger>,
    /// Every user request.
    pub traffic: &'a TrafficLog,
    /// Control-plane outages (start ns, end ns).
    pub control_plane_down: &'a [(u64, u64)],
    /// When healing began (the end of the faulty phase), seconds.
    pub healed_s: f64,
    /// How long the run lasted in simulated seconds.
    pub simulated_s: f64,
}

/// An invariant's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Whether the invariant held.
    pub holds: bool,
    /// What was found: counts when it holds, the first violation when not.
    pub detail: String,
    /// When a violated invariant broke (simulated ns), where its checker
    /// can tell.
    pub at_ns: Option<u64>,
}

impl Verdict {
    /// A verdict without a time.
    pub fn new(holds: bool, detail: impl Into<String>) -> Verdict {
        Verdict {
            holds,
            detail: detail.into(),
            at_ns: None,
        }
    }

    /// When violated, broke at `at_ns`.
    pub fn at(mut self, at_ns: Option<u64>) -> Verdict {
        if !self.holds {
            self.at_ns = at_ns;
        }
        self
    }
}

/// Judges one invariant on what the run recorded.
pub fn judge(inv: &Invariant, obs: &Observations<'_>) -> Verdict {
    match &inv.spec {
        InvariantSpec::Linearizable(_) => store::linearizable(obs),
        InvariantSpec::NoLostWrites(_) => store::no_lost_writes(obs),
        InvariantSpec::WatchOrdered(_) => store::watch_ordered(obs),
        InvariantSpec::RaftSafety(_) => store::raft_safety(obs),
        InvariantSpec::Converges(c) => store::converges(obs, c.within.map(|w| w.0)),
        InvariantSpec::DeploymentsReady(d) => {
            cluster::deployments_ready(obs, d.within.map(|w| w.0))
        }
        InvariantSpec::SingleBinding(_) => cluster::single_binding(obs),
        InvariantSpec::NoOvercommit(_) => cluster::no_overcommit(obs),
        InvariantSpec::PendingExplained(_) => cluster::pending_explained(obs),
        InvariantSpec::SingleContainer(_) => cluster::single_container(obs),
        InvariantSpec::Availability(a) => {
            let (holds, detail, at) = slo::availability(a, obs.traffic);
            Verdict::new(holds, detail).at(at)
        }
        InvariantSpec::Latency(l) => {
            let (holds, detail) = slo::latency(l, obs.traffic);
            Verdict::new(holds, detail)
        }
        InvariantSpec::StaticStability(s) => {
            let (holds, detail, at) = slo::static_stability(s, obs.traffic, obs.control_plane_down);
            Verdict::new(holds, detail).at(at)
        }
    }
}

/// A deadline invariant (judged after healing) that failed broke at the
/// deadline, or at the run's end if that came first.
fn at_deadline(obs: &Observations<'_>, within_s: f64) -> Option<u64> {
    Some(((obs.healed_s + within_s).min(obs.simulated_s) * 1e9) as u64)
}
