//! Scenario files: what cluster to build, what load to run, what faults to
//! inject and which invariants must hold. TOML, parsed strictly into plain
//! typed values: unknown fields are refused, each fault and invariant kind
//! takes exactly the settings of its type, and every error names the file,
//! line, column and field at fault.
//!
//! - [`duration`]: `90s`-style durations and signed clock offsets;
//! - [`sections`]: the cluster, store tuning, workload, deployments,
//!   actions, traffic, nemesis and control-plane tuning;
//! - [`fault`]: `[[fault]]` kinds and their settings;
//! - [`invariant`]: `[[invariant]]` kinds and their settings;
//! - [`names`]: the hosts a scenario implies (masters, nodes, clients,
//!   users);
//! - `parse` and `validate`: reading a file, and the checks across fields
//!   and sections. Positions are looked up in the parsed document while
//!   loading; the [`Scenario`] carries none.

pub mod duration;
pub mod fault;
pub mod invariant;
pub mod names;
mod parse;
pub mod sections;
mod settings;
mod validate;

use std::path::Path;

use serde::Deserialize;

pub use duration::{parse_duration, Dur, SignedDur};
pub use fault::{Fault, FaultKind, FaultSpec, IsolateFrom};
pub use invariant::{Invariant, InvariantKind, InvariantSpec};
pub use names::{client_names, dc_of, master_names, node_names, traffic_clients, TrafficClient};
pub use parse::did_you_mean;
pub use sections::*;

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// One line saying what this scenario proves.
    #[serde(default)]
    pub description: String,
    /// Simulated time the workload and faults run for.
    pub duration: Dur,
    /// The seed used when none is given on the command line.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// `pass` (default) or `fail`: a scenario that must catch a violation.
    #[serde(default)]
    pub expect: Expect,
    pub cluster: Cluster,
    #[serde(default)]
    pub store: StoreTuning,
    #[serde(default)]
    pub workload: Option<Workload>,
    /// Faults at fixed times (read on their own: see `parse`).
    #[serde(default, rename = "fault", deserialize_with = "parse::read_apart")]
    pub faults: Vec<Fault>,
    #[serde(default)]
    pub nemesis: Option<Nemesis>,
    /// The properties to check (read on their own: see `parse`).
    #[serde(default, rename = "invariant", deserialize_with = "parse::read_apart")]
    pub invariants: Vec<Invariant>,
    /// Control-plane tunables (node lifecycle timeouts, test-only bugs).
    #[serde(default)]
    pub control_plane: ControlPlaneTuning,
    /// Workloads the cluster runs (needs nodes).
    #[serde(default, rename = "deployment")]
    pub deployments: Vec<DeploymentSpec>,
    /// What the user does during the run (scale, roll out a new image).
    #[serde(default, rename = "action")]
    pub actions: Vec<Action>,
    /// User traffic to services through the node proxies.
    #[serde(default, rename = "traffic")]
    pub traffic: Vec<Traffic>,
}

fn default_seed() -> u64 {
    1
}

/// A scenario file that failed to load: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScenarioError(pub String);

impl Scenario {
    /// Loads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError(format!("{}: cannot read: {e}", path.display())))?;
        Scenario::parse(&text, &path.display().to_string())
    }

    /// Parses and validates scenario text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        parse::parse(text, origin)
    }

    /// Whether the scenario runs a control plane (it has worker nodes).
    pub fn has_nodes(&self) -> bool {
        self.cluster.nodes_per_datacenter > 0
    }

    /// The first invariant of `kind`, if any.
    pub fn invariant(&self, kind: InvariantKind) -> Option<&Invariant> {
        self.invariants.iter().find(|i| i.kind() == kind)
    }

    /// Whether a store bug is switched on.
    pub fn has_bug(&self, bug: Bug) -> bool {
        self.store.bugs.contains(&bug)
    }

    /// The simulated time the workload and faults run for.
    pub fn faulty_phase(&self) -> std::time::Duration {
        self.duration.0
    }
}

#[cfg(test)]
mod tests;
