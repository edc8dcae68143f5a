//! Turning a run into files a person or a CI system reads: `summary.json`
//! (the run contract), `junit.xml` (one test case per invariant) and
//! `timeline.svg` (client traffic, latency, faults and leaders over time).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

pub mod plot;
pub mod sweep;
use serde::{Deserialize, Serialize};

/// The outcome of one scenario run at one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub scenario: String,
    /// The scenario file the run came from.
    pub path: String,
    pub seed: u64,
    /// `pass` or `fail`.
    pub verdict: String,
    /// What the scenario file expects (`pass` or `fail`).
    pub expect: String,
    /// `engine` or `turmoil`.
    pub backend: String,
    /// Hex xxh3 of the event trace: the same seed gives the same hash.
    pub trace_hash: String,
    pub simulated_seconds: f64,
    pub wall_seconds: f64,
    /// Events folded into the trace.
    pub events: u64,
    pub faults: Vec<FaultRecord>,
    pub invariants: Vec<InvariantResult>,
    /// The command that replays this run bit for bit.
    pub reproduce: String,
    pub stats: RunStats,
    /// Simulated seconds of the faulty phase (healing starts here).
    #[serde(default)]
    pub faulty_phase_s: f64,
    /// Client operations per simulated second.
    #[serde(default)]
    pub timeline: Vec<TimelinePoint>,
    /// Every store leader elected, in order.
    #[serde(default)]
    pub leaders: Vec<LeaderChange>,
    /// User traffic per service (scenarios with `[[traffic]]`).
    #[serde(default)]
    pub services: Vec<ServiceReport>,
    /// When the whole control plane was down (no quorum of masters up and
    /// reachable from the nodes): (start s, end s).
    #[serde(default)]
    pub control_plane_down: Vec<(f64, f64)>,
    /// The width in seconds of one step of the time series below (and of
    /// [`ServiceReport::series`]).
    #[serde(default)]
    pub step_s: f64,
    /// Worker nodes over time (scenarios with a cluster).
    #[serde(default)]
    pub nodes: Vec<NodeTimeline>,
    /// API server requests, all masters together, one point per step.
    #[serde(default)]
    pub api: Vec<ApiPoint>,
    /// The faults this seed injected (the file's and the nemesis's) as
    /// `[[fault]]` tables: paste them into a scenario to replay this
    /// schedule without the nemesis.
    #[serde(default)]
    pub fault_schedule: String,
}

/// One worker node over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeTimeline {
    pub node: String,
    pub datacenter: String,
    /// Pods with a running container on the node at the start of each step.
    pub pods: Vec<u32>,
    /// Its `Ready` condition as stored in the API, each time it changed.
    pub ready: Vec<ReadyChange>,
}

/// A node's `Ready` condition changing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadyChange {
    pub t_s: f64,
    /// `True`, `False`, `Unknown`, or `deleted`.
    pub status: String,
}

/// API server requests in one step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiPoint {
    pub t_s: f64,
    pub requests: u64,
    /// Answered 4xx (conflicts and not-found are part of normal operation).
    pub client_errors: u64,
    /// Answered 5xx or 429 (the store unavailable, a timeout, overload).
    pub server_errors: u64,
}

/// What the users of one service saw in one step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServicePoint {
    pub t_s: f64,
    /// Requests sent in the step, and how many of them succeeded.
    pub requests: u64,
    pub ok: u64,
    /// Latency of the successful ones, milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// What the users of one service saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceReport {
    pub service: String,
    pub requests: u64,
    pub ok: u64,
    /// `ok / requests`.
    pub availability: f64,
    /// Latency of successful requests, milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// By the datacenter the users are in.
    pub by_datacenter: Vec<DatacenterAvailability>,
    /// Distinct pods that answered.
    pub pods_answering: u64,
    /// Stretches of time in which requests failed, with the faults that
    /// overlapped them.
    pub unavailable: Vec<UnavailableWindow>,
    /// The strictest `availability` SLO the scenario sets for it.
    #[serde(default)]
    pub slo: Option<f64>,
    /// One point per [`Summary::step_s`].
    #[serde(default)]
    pub series: Vec<ServicePoint>,
}

/// Availability as the users of one datacenter saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatacenterAvailability {
    pub datacenter: String,
    pub requests: u64,
    pub ok: u64,
    pub availability: f64,
    pub p99_ms: f64,
}

/// A window of failed requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnavailableWindow {
    pub start_s: f64,
    pub end_s: f64,
    pub failed: u64,
    pub total: u64,
    /// The faults in force during the window (`kind target`).
    pub faults: Vec<String>,
}

/// One second of client traffic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Start of the second (simulated seconds).
    pub t_s: f64,
    /// Operations that completed successfully in this second.
    pub ok: u64,
    /// Operations that definitely failed in this second.
    pub failed: u64,
    /// Operations invoked in this second whose outcome is unknown.
    pub unknown: u64,
    /// Latency percentiles of the successful ones, in milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A store leader taking office.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderChange {
    pub t_s: f64,
    pub term: u64,
    pub host: String,
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub kind: String,
    /// The hosts (or links) it hit.
    pub target: String,
    /// Simulated seconds since the start.
    pub start_s: f64,
    /// When it healed (None: lasted to the end of the faulty phase).
    pub end_s: Option<f64>,
    /// `scheduled` (from the file) or `nemesis`.
    pub source: String,
    pub detail: String,
}

/// One invariant's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvariantResult {
    pub name: String,
    pub kind: String,
    pub holds: bool,
    pub detail: String,
    /// When a violated invariant was first seen broken (simulated seconds),
    /// where the checker can tell.
    #[serde(default)]
    pub at_s: Option<f64>,
}

/// Workload counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunStats {
    pub ops_ok: u64,
    pub ops_failed: u64,
    pub ops_unknown: u64,
    pub set_acknowledged: u64,
    pub set_lost: u64,
    pub watch_events: u64,
    pub leaders: u64,
    /// Simulated seconds from healing until the replicas agreed.
    pub converged_after_s: Option<f64>,
}

impl Summary {
    /// True when every invariant held.
    pub fn passed(&self) -> bool {
        self.invariants.iter().all(|i| i.holds)
    }

    /// Writes the whole report into `dir`: the machine outputs
    /// ([`Summary::write_data`]) and the pages and charts ([`render_dir`]).
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        self.write_data(dir)?;
        self.render(dir)
    }

    /// Writes the machine outputs only: `summary.json` and `junit.xml`.
    /// [`render_dir`] draws the rest from them later.
    pub fn write_data(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(dir.join("summary.json"), json + "\n")
            .with_context(|| format!("writing {}/summary.json", dir.display()))?;
        std::fs::write(dir.join("junit.xml"), self.junit())
            .with_context(|| format!("writing {}/junit.xml", dir.display()))?;
        Ok(())
    }

    /// Draws the charts and the page of this run into `dir`.
    pub fn render(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("timeline.svg"), plot::timeline_svg(self)?)
            .with_context(|| format!("writing {}/timeline.svg", dir.display()))?;
        Ok(())
    }

    /// Reads a `summary.json`.
    pub fn read(path: &Path) -> anyhow::Result<Summary> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// JUnit XML: one test suite per run, one test case per invariant; a
    /// failure message carries the reproduce command.
    pub fn junit(&self) -> String {
        let failures = self.invariants.iter().filter(|i| !i.holds).count();
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            x,
            "<testsuites><testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" time=\"{:.3}\">",
            esc(&format!("{} seed {}", self.scenario, self.seed)),
            self.invariants.len(),
            failures,
            self.wall_seconds
        );
        for inv in &self.invariants {
            let _ = write!(
                x,
                "  <testcase classname=\"{}\" name=\"{}\">",
                esc(&self.scenario),
                esc(&inv.name)
            );
            if !inv.holds {
                let _ = write!(
                    x,
                    "<failure message=\"{}\">{}\nreproduce: {}</failure>",
                    esc(&inv.detail),
                    esc(&inv.detail),
                    esc(&self.reproduce)
                );
            }
            x.push_str("</testcase>\n");
        }
        x.push_str("</testsuite></testsuites>\n");
        x
    }
}

/// Renders the report of the run whose `summary.json` is in `dir` (what
/// `faultline report DIR` does).
pub fn render_dir(dir: &Path) -> anyhow::Result<Summary> {
    let s = Summary::read(&dir.join("summary.json"))?;
    s.render(dir)?;
    Ok(s)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_lists_every_invariant_and_the_reproduce_command() {
        let s = Summary {
            scenario: "s".into(),
            path: "scenarios/s.toml".into(),
            seed: 3,
            verdict: "fail".into(),
            expect: "pass".into(),
            backend: "engine".into(),
            trace_hash: "00".into(),
            simulated_seconds: 1.0,
            wall_seconds: 0.1,
            events: 1,
            faults: vec![],
            invariants: vec![
                InvariantResult {
                    name: "a".into(),
                    kind: "linearizable".into(),
                    holds: true,
                    detail: String::new(),
                },
                InvariantResult {
                    name: "b<&>".into(),
                    kind: "no-lost-writes".into(),
                    holds: false,
                    detail: "lost \"x\"".into(),
                },
            ],
            reproduce: "faultline sim run scenarios/s.toml --seed 3".into(),
            stats: RunStats::default(),
            faulty_phase_s: 1.0,
            timeline: vec![],
            leaders: vec![],
            services: vec![],
            control_plane_down: vec![],
        };
        let x = s.junit();
        assert!(x.contains("tests=\"2\" failures=\"1\""));
        assert!(x.contains("name=\"b&lt;&amp;&gt;\""));
        assert!(x.contains("reproduce: faultline sim run scenarios/s.toml --seed 3"));
    }
}
