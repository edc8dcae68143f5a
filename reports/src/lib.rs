//! Turning a run into files a person or a CI system reads:
//!
//! - `summary.json` (the run contract, documented in `docs/reports.md`),
//!   `junit.xml` (one test case per invariant) and `faults.toml` (the
//!   injected schedule as scenario tables): [`Summary::write_data`];
//! - `index.html`, one self-contained page with every chart inline as SVG,
//!   and each chart again as a PNG: [`Summary::render`], or
//!   [`render_dir`] from a `summary.json` later;
//! - two runs side by side: [`compare`];
//! - the sweep report of `faultline sim explore`: [`sweep`].

use std::path::Path;

use anyhow::Context;

pub mod charts;
pub mod format;
pub mod html;
mod junit;
pub mod recovery;
pub mod sweep;
pub use format::{hms, pct};
use serde::{Deserialize, Serialize};

/// The outcome of one scenario run at one seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
        std::fs::write(dir.join("faults.toml"), self.faults_toml())
            .with_context(|| format!("writing {}/faults.toml", dir.display()))?;
        Ok(())
    }

    /// The injected schedule as a scenario fragment.
    pub fn faults_toml(&self) -> String {
        format!(
            "# The faults seed {} of {} injected (the file's and the nemesis's).\n\
             # Paste these tables into a copy of the scenario, without its [nemesis],\n\
             # to replay this schedule on its own.\n\n{}",
            self.seed, self.path, self.fault_schedule
        )
    }

    /// Draws the page of this run (`index.html`) and a PNG of each chart
    /// into `dir`.
    pub fn render(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut svgs = Vec::new();
        for c in charts::Chart::all(self) {
            let svg = charts::svg(self, &c)?;
            charts::png(self, &c, &dir.join(format!("{}.png", c.stem(self))))?;
            svgs.push((c, svg));
        }
        std::fs::write(dir.join("index.html"), html::run_page(self, &svgs))
            .with_context(|| format!("writing {}/index.html", dir.display()))?;
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
        junit::run(self)
    }
}

/// Renders the report of the run whose `summary.json` is in `dir` (what
/// `faultline report DIR` does).
pub fn render_dir(dir: &Path) -> anyhow::Result<Summary> {
    let s = Summary::read(&dir.join("summary.json"))?;
    s.render(dir)?;
    Ok(s)
}

/// Puts the runs whose reports are in `a` and `b` side by side in
/// `out/index.html` (`faultline report --compare A B`).
pub fn compare(a: &Path, b: &Path, out: &Path) -> anyhow::Result<()> {
    let sa = Summary::read(&a.join("summary.json"))?;
    let sb = Summary::read(&b.join("summary.json"))?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let (ca, cb) = (charts::Chart::all(&sa), charts::Chart::all(&sb));
    // Pair charts by file name: service `i` of one run may be another
    // service in the other.
    let mut stems: Vec<String> = Vec::new();
    for st in ca
        .iter()
        .map(|c| c.stem(&sa))
        .chain(cb.iter().map(|c| c.stem(&sb)))
    {
        if !stems.contains(&st) {
            stems.push(st);
        }
    }
    let mut pairs = Vec::new();
    for st in stems {
        let x = ca.iter().find(|c| c.stem(&sa) == st);
        let y = cb.iter().find(|c| c.stem(&sb) == st);
        let chart = x.or(y).expect("from one of the two").clone();
        let x = x.map(|c| charts::svg(&sa, c)).transpose()?;
        let y = y.map(|c| charts::svg(&sb, c)).transpose()?;
        pairs.push((chart, x, y));
    }
    let href = |dir: &Path| {
        relative(out, dir)
            .join("index.html")
            .to_string_lossy()
            .into_owned()
    };
    std::fs::write(
        out.join("index.html"),
        html::compare_page(&sa, &sb, &href(a), &href(b), &pairs),
    )
    .with_context(|| format!("writing {}/index.html", out.display()))?;
    Ok(())
}

/// `to` as seen from `from` (both taken from the current directory).
fn relative(from: &Path, to: &Path) -> std::path::PathBuf {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (from, to) = (abs(from), abs(to));
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = std::path::PathBuf::new();
    for _ in from.components().skip(common) {
        out.push("..");
    }
    for c in to.components().skip(common) {
        out.push(c);
    }
    out
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
                    at_s: None,
                },
                InvariantResult {
                    name: "b<&>".into(),
                    kind: "no-lost-writes".into(),
                    holds: false,
                    detail: "lost \"x\"".into(),
                    at_s: Some(2.5),
                },
            ],
            reproduce: "faultline sim run scenarios/s.toml --seed 3".into(),
            faulty_phase_s: 1.0,
            ..Default::default()
        };
        let x = s.junit();
        let doc = roxmltree::Document::parse(&x).unwrap();
        let suite = doc.descendants().find(|n| n.has_tag_name("testsuite"));
        let suite = suite.unwrap();
        assert_eq!(suite.attribute("name"), Some("s seed 3"));
        assert_eq!(suite.attribute("tests"), Some("2"));
        assert_eq!(suite.attribute("failures"), Some("1"));
        assert_eq!(suite.attribute("time"), Some("0.100"));
        assert!(x.contains("name=\"b&lt;&amp;&gt;\""));
        let failure = doc.descendants().find(|n| n.has_tag_name("failure"));
        assert_eq!(failure.unwrap().attribute("message"), Some("lost \"x\""));
        assert!(x.contains("reproduce: faultline sim run scenarios/s.toml --seed 3"));
    }
}
