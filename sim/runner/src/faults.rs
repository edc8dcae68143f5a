//! Faults: the plan (scheduled faults from the file plus the nemesis's,
//! drawn from the seed before the run starts, so the schedule can be printed
//! and replayed) and how each kind is started and healed through a
//! backend-neutral [`Control`].

use std::rc::Rc;
use std::time::Duration;

use faultline_engine::{DiskFaults, SimDisk};
use faultline_reports::FaultRecord;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::scenario::{FaultKind, IsolateFrom, NemesisMode, Scenario};

/// What the fault driver needs from a backend.
pub trait Control {
    /// Master host names, in order.
    fn masters(&self) -> Vec<String>;
    /// Every host name.
    fn hosts(&self) -> Vec<String>;
    /// The host that holds a leader-election lease (`kube-system/NAME`).
    fn lease_holder(&self, lease: &str) -> Option<String> {
        let _ = lease;
        None
    }
    /// Worker node host names, in order (none without a control plane).
    fn nodes(&self) -> Vec<String> {
        Vec::new()
    }
    /// User-traffic client hosts (they live in a datacenter's network, so
    /// a datacenter partition cuts them off with it, but they are users,
    /// not machines of the cluster: an outage does not crash them).
    fn users(&self) -> Vec<String> {
        Vec::new()
    }
    /// Nodes running a pod of deployment `name` right now.
    fn nodes_running(&self, name: &str) -> Vec<String> {
        let _ = name;
        Vec::new()
    }
    /// The datacenter of a host.
    fn datacenter(&self, host: &str) -> String;
    /// The master that leads the highest term seen, if it is up.
    fn leader(&self) -> Option<String>;
    fn is_up(&self, host: &str) -> bool;
    fn crash(&mut self, host: &str, power_loss: bool);
    fn restart(&mut self, host: &str);
    /// Drops everything on the directed link.
    fn block(&mut self, from: &str, to: &str);
    fn unblock(&mut self, from: &str, to: &str);
    /// Degrades a directed link (loss probability, extra latency, extra
    /// jitter).
    fn degrade(&mut self, from: &str, to: &str, loss: f64, extra: Duration, jitter: Duration);
    /// Freezes a running host (see `World::pause`); false if the backend
    /// cannot.
    fn pause(&mut self, host: &str) -> bool {
        let _ = host;
        false
    }
    fn resume(&mut self, host: &str) {
        let _ = host;
    }
    /// Sets how far a host's wall clock is off; false if the backend cannot.
    fn set_clock_offset(&mut self, host: &str, offset_ms: i64) -> bool {
        let _ = (host, offset_ms);
        false
    }
    /// Restarts a node's kubelet and proxy processes; false if the backend
    /// cannot or the node is down.
    fn restart_kubelet(&mut self, host: &str) -> bool {
        let _ = host;
        false
    }
    fn restore(&mut self, from: &str, to: &str);
    fn disk(&self, host: &str) -> Rc<SimDisk>;
    /// Appends a line to the trace.
    fn note(&self, line: &str);
}

/// A fault in the plan.
#[derive(Debug, Clone)]
pub struct PlannedFault {
    pub start: Duration,
    /// When it heals (None: crash-like faults with no `for` never heal
    /// until the end of the faulty phase).
    pub end: Option<Duration>,
    pub kind: FaultKind,
    pub target: Option<String>,
    pub probability: Option<f64>,
    pub delay: Option<Duration>,
    pub bits: u32,
    /// Clock offset (`clock-skew`, `clock-jump`), ms.
    pub offset_ms: i64,
    /// Extra jitter (`latency`).
    pub jitter: Option<Duration>,
    /// `node-isolate` from every host, not only the masters.
    pub isolate_all: bool,
    /// Explicit partition groups (host and datacenter names).
    pub groups: Option<Vec<Vec<String>>>,
    /// `scheduled` or `nemesis`.
    pub source: &'static str,
}

/// Builds the fault plan for `seed`: the file's faults plus the nemesis's,
/// in start order.
pub fn plan(scenario: &Scenario, seed: u64) -> Vec<PlannedFault> {
    let duration = scenario.duration.get_ref().0;
    let mut out: Vec<PlannedFault> = scenario
        .faults
        .iter()
        .map(|f| {
            let f = f.get_ref();
            PlannedFault {
                start: f.at.0,
                end: f.duration.map(|d| (f.at.0 + d.0).min(duration)),
                kind: f.kind,
                target: f.target.clone(),
                probability: f.probability,
                delay: f.delay.map(|d| d.0),
                bits: f.bits.unwrap_or(1),
                offset_ms: f.offset.map(|o| o.millis()).unwrap_or(0),
                jitter: f.jitter.map(|d| d.0),
                isolate_all: f.from == Some(IsolateFrom::All),
                groups: f.groups.clone(),
                source: "scheduled",
            }
        })
        .collect();
    if let Some(n) = &scenario.nemesis {
        out.extend(nemesis_plan(scenario, n, seed));
    }
    out.sort_by_key(|f| f.start);
    out
}

/// What a fault takes away while it is in force, for the nemesis's bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cost {
    masters: u32,
    datacenters: u32,
    nodes: u32,
}

impl Cost {
    fn plus(self, o: Cost) -> Cost {
        Cost {
            masters: self.masters + o.masters,
            datacenters: self.datacenters + o.datacenters,
            nodes: self.nodes + o.nodes,
        }
    }
    fn within(self, b: Cost) -> bool {
        self.masters <= b.masters && self.datacenters <= b.datacenters && self.nodes <= b.nodes
    }
}

/// The most a fault of `kind` on `target` can take down at once.
fn cost(s: &Scenario, kind: FaultKind, target: Option<&str>) -> Cost {
    let n = *s.cluster.masters.get_ref();
    let dcs = s.cluster.datacenters.get_ref();
    let minority = ((n.saturating_sub(1)) / 2).max(1);
    let one = Cost {
        masters: 1,
        ..Cost::default()
    };
    let masters = |m: u32| Cost {
        masters: m,
        ..Cost::default()
    };
    match kind {
        FaultKind::Partition | FaultKind::PartitionOneWay => match target {
            Some("leader") => one,
            Some("majority") => masters(n),
            _ => masters(minority),
        },
        FaultKind::MasterCrash | FaultKind::PowerLoss => match target {
            Some("majority") => masters(n / 2 + 1),
            Some("all") => masters(n),
            Some("one-per-datacenter") => masters(dcs.len().min(n as usize) as u32),
            _ => one,
        },
        FaultKind::LeaderKill
        | FaultKind::DiskCorruption
        | FaultKind::DiskLoss
        | FaultKind::DiskFull
        | FaultKind::DiskEio
        | FaultKind::ControllerLeaderKill => one,
        FaultKind::DatacenterOutage | FaultKind::DatacenterPartition => {
            let i = dcs
                .iter()
                .position(|d| Some(d.as_str()) == target)
                .unwrap_or(0);
            Cost {
                masters: (0..n).filter(|m| *m as usize % dcs.len() == i).count() as u32,
                datacenters: 1,
                nodes: s.cluster.nodes_per_datacenter,
            }
        }
        FaultKind::NodeCrash | FaultKind::NodeIsolate => Cost {
            nodes: 1,
            ..Cost::default()
        },
        FaultKind::Pause => match target {
            Some("random-node") => Cost {
                nodes: 1,
                ..Cost::default()
            },
            _ => one,
        },
        FaultKind::DiskSlow
        | FaultKind::Loss
        | FaultKind::Latency
        | FaultKind::KubeletRestart
        | FaultKind::ClockSkew
        | FaultKind::ClockJump => Cost::default(),
    }
}

/// Draws the nemesis's faults for `seed`: Poisson arrivals around
/// `every`, kinds by weight, targets at random, each kept only if the
/// faults already in force plus it stay within the bounds (a few redraws,
/// then the slot is skipped). Unbounded: no bounds, and faults overlap.
fn nemesis_plan(s: &Scenario, n: &crate::scenario::Nemesis, seed: u64) -> Vec<PlannedFault> {
    let duration = s.duration.get_ref().0;
    let masters = *s.cluster.masters.get_ref();
    let unbounded = n.mode == NemesisMode::Unbounded;
    let overlap = n.overlap || unbounded;
    let bound = if unbounded {
        Cost {
            masters: u32::MAX,
            datacenters: u32::MAX,
            nodes: u32::MAX,
        }
    } else {
        Cost {
            masters: n
                .max_masters_down
                .as_ref()
                .map(|m| *m.get_ref())
                .unwrap_or(masters.saturating_sub(1) / 2),
            datacenters: n.max_datacenters.unwrap_or(1),
            nodes: n.max_nodes_down.unwrap_or(u32::MAX),
        }
    };
    let kinds = n.kinds.get_ref();
    let weights: Vec<u32> = kinds
        .iter()
        .map(|k| n.weights.get_ref().get(k.name()).copied().unwrap_or(1))
        .collect();
    let total: u32 = weights.iter().sum();
    let mut rng = ChaCha8Rng::seed_from_u64(faultline_env::host_seed(seed, "#nemesis"));
    let mut out: Vec<PlannedFault> = Vec::new();
    let mut t = n.start_after.0;
    let every = n.every.0.as_secs_f64();
    loop {
        // Exponential gaps around the mean, as a Poisson process.
        let u: f64 = rng.random_range(1e-9..1.0);
        t += Duration::from_secs_f64(-u.ln() * every);
        let len = Duration::from_secs_f64(
            rng.random_range(n.min_for.0.as_secs_f64()..=n.max_for.0.as_secs_f64()),
        );
        if t + len >= duration {
            break;
        }
        let in_force = out
            .iter()
            .filter(|f| f.start < t + len && f.end.is_none_or(|e| e > t))
            .fold(Cost::default(), |c, f| {
                c.plus(cost(s, f.kind, f.target.as_deref()))
            });
        for _ in 0..8 {
            let mut pick = rng.random_range(0..total.max(1));
            let mut kind = kinds[0];
            for (k, w) in kinds.iter().zip(&weights) {
                if pick < *w {
                    kind = *k;
                    break;
                }
                pick -= w;
            }
            let target = nemesis_target(s, kind, unbounded, &mut rng);
            let f = PlannedFault {
                start: t,
                end: Some(t + len),
                kind,
                target,
                probability: Some(rng.random_range(0.05..0.3)),
                delay: Some(Duration::from_millis(rng.random_range(20..300))),
                bits: rng.random_range(1..=3),
                offset_ms: {
                    let ms = rng.random_range(1_000..120_000i64);
                    if rng.random_bool(0.5) {
                        -ms
                    } else {
                        ms
                    }
                },
                jitter: Some(Duration::from_millis(rng.random_range(0..50))),
                isolate_all: rng.random_bool(0.3),
                groups: None,
                source: "nemesis",
            };
            if in_force
                .plus(cost(s, kind, f.target.as_deref()))
                .within(bound)
            {
                out.push(f);
                break;
            }
        }
        if !overlap {
            t += len;
        }
    }
    out
}

/// A target for a nemesis fault of `kind`.
fn nemesis_target(
    s: &Scenario,
    kind: FaultKind,
    unbounded: bool,
    rng: &mut ChaCha8Rng,
) -> Option<String> {
    let pick = |rng: &mut ChaCha8Rng, xs: &[&str]| xs.choose(rng).map(|x| x.to_string());
    match kind {
        FaultKind::Partition | FaultKind::PartitionOneWay => {
            pick(rng, &["leader", "minority", "majority", "random"])
        }
        FaultKind::LeaderKill => Some("leader".into()),
        FaultKind::MasterCrash | FaultKind::PowerLoss if unbounded => {
            pick(rng, &["leader", "random", "follower", "majority", "all"])
        }
        FaultKind::NodeCrash | FaultKind::NodeIsolate | FaultKind::KubeletRestart => {
            Some("random".into())
        }
        FaultKind::DatacenterOutage | FaultKind::DatacenterPartition => {
            s.cluster.datacenters.get_ref().choose(rng).cloned()
        }
        FaultKind::ControllerLeaderKill => pick(rng, &["controller-manager", "scheduler"]),
        FaultKind::Pause | FaultKind::ClockSkew | FaultKind::ClockJump => {
            if crate::cluster::enabled(s) {
                pick(
                    rng,
                    &["leader", "random", "random-node", "controller-manager"],
                )
            } else {
                pick(rng, &["leader", "random", "follower"])
            }
        }
        _ => pick(rng, &["leader", "random", "follower"]),
    }
}

/// How to undo a started fault.
#[derive(Debug, Clone)]
pub enum Undo {
    Restart(String),
    Unblock(String, String),
    Restore(String, String),
    ClearDisk(String),
    Resume(String),
    ClockReset(String),
}

/// Resolves a host target (`leader`, `follower`, `random`, a name).
fn pick_master(ctl: &dyn Control, target: Option<&str>, rng: &mut ChaCha8Rng) -> Option<String> {
    let up: Vec<String> = ctl.masters().into_iter().filter(|m| ctl.is_up(m)).collect();
    match target.unwrap_or("random") {
        "leader" => ctl.leader().or_else(|| up.choose(rng).cloned()),
        "follower" => {
            let leader = ctl.leader();
            let f: Vec<String> = up
                .iter()
                .filter(|m| Some(*m) != leader.as_ref())
                .cloned()
                .collect();
            f.choose(rng).cloned()
        }
        "random" => up.choose(rng).cloned(),
        name => Some(name.to_string()),
    }
}

/// Splits the masters into groups for a partition target.
fn partition_groups(
    ctl: &dyn Control,
    target: Option<&str>,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<String>> {
    let masters = ctl.masters();
    let n = masters.len();
    let target = target.unwrap_or("random");
    let dcs: Vec<String> = masters.iter().map(|m| ctl.datacenter(m)).collect();
    match target {
        "majority" => {
            // Nobody keeps a majority: groups of at most (n-1)/2.
            let size = ((n - 1) / 2).max(1);
            let mut shuffled = masters.clone();
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, rng.random_range(0..=i));
            }
            shuffled.chunks(size).map(|c| c.to_vec()).collect()
        }
        "minority" | "leader" | "random" | "follower" => {
            let leader = ctl.leader();
            let minority_size = ((n - 1) / 2).max(1);
            let mut rest = masters.clone();
            let mut minority = Vec::new();
            let seed_member = match target {
                "leader" => leader.clone(),
                "follower" => rest.iter().find(|m| Some(*m) != leader.as_ref()).cloned(),
                "minority" => {
                    // Half the time the leader is on the small side: the
                    // interesting case for stale reads and lost writes.
                    if rng.random_bool(0.5) {
                        leader.clone()
                    } else {
                        None
                    }
                }
                _ => None,
            };
            if let Some(s) = seed_member {
                rest.retain(|m| *m != s);
                minority.push(s);
            }
            let wanted = if target == "leader" { 1 } else { minority_size };
            while minority.len() < wanted && !rest.is_empty() {
                let i = rng.random_range(0..rest.len());
                minority.push(rest.remove(i));
            }
            vec![minority, rest]
        }
        name if dcs.iter().any(|d| d == name) => {
            let inside: Vec<String> = masters
                .iter()
                .filter(|m| ctl.datacenter(m) == name)
                .cloned()
                .collect();
            let outside: Vec<String> = masters
                .iter()
                .filter(|m| ctl.datacenter(m) != name)
                .cloned()
                .collect();
            vec![inside, outside]
        }
        host => {
            let rest: Vec<String> = masters.iter().filter(|m| *m != host).cloned().collect();
            vec![vec![host.to_string()], rest]
        }
    }
}

/// The leader-election lease of a control-plane component named in a
/// target: `scheduler`, else the controller manager's.
fn election_lease(component: &str) -> &'static str {
    match component {
        "scheduler" => "kube-system/kube-scheduler",
        _ => "kube-system/kube-controller-manager",
    }
}

/// Resolves named partition groups: each name is a host or a datacenter
/// (every host in it).
fn named_groups(ctl: &dyn Control, named: &[Vec<String>]) -> Vec<Vec<String>> {
    let hosts = ctl.hosts();
    named
        .iter()
        .map(|g| {
            let mut out: Vec<String> = Vec::new();
            for name in g {
                if hosts.contains(name) {
                    out.push(name.clone());
                } else {
                    out.extend(hosts.iter().filter(|h| ctl.datacenter(h) == *name).cloned());
                }
            }
            out.dedup();
            out
        })
        .collect()
}

/// Starts a fault; returns a description of what it hit and how to undo it.
pub fn start(ctl: &mut dyn Control, f: &PlannedFault, rng: &mut ChaCha8Rng) -> (String, Vec<Undo>) {
    let target = f.target.as_deref();
    let mut undo = Vec::new();
    let what = match f.kind {
        FaultKind::MasterCrash | FaultKind::PowerLoss
            if matches!(target, Some("all" | "majority" | "one-per-datacenter")) =>
        {
            // Several masters at once: only what each one fsynced survives.
            let up: Vec<String> = ctl.masters().into_iter().filter(|m| ctl.is_up(m)).collect();
            let hit: Vec<String> = match target {
                Some("majority") => {
                    let mut all = ctl.masters();
                    for i in (1..all.len()).rev() {
                        all.swap(i, rng.random_range(0..=i));
                    }
                    all.truncate(all.len() / 2 + 1);
                    all.sort();
                    all.retain(|m| ctl.is_up(m));
                    all
                }
                Some("one-per-datacenter") => {
                    let mut seen = std::collections::BTreeSet::new();
                    up.iter()
                        .filter(|m| seen.insert(ctl.datacenter(m)))
                        .cloned()
                        .collect()
                }
                _ => up,
            };
            for h in &hit {
                ctl.crash(h, f.kind == FaultKind::PowerLoss);
                undo.push(Undo::Restart(h.clone()));
            }
            hit.join(",")
        }
        FaultKind::DatacenterOutage => {
            let dc = target.unwrap_or_default();
            let hit: Vec<String> = ctl
                .masters()
                .into_iter()
                .chain(ctl.nodes())
                .filter(|h| ctl.datacenter(h) == dc && ctl.is_up(h))
                .collect();
            for h in &hit {
                ctl.crash(h, true);
                undo.push(Undo::Restart(h.clone()));
            }
            format!("{dc} [{}]", hit.join(","))
        }
        FaultKind::DatacenterPartition => {
            let dc = target.unwrap_or_default();
            let members: Vec<String> = ctl
                .masters()
                .into_iter()
                .chain(ctl.nodes())
                .chain(ctl.users())
                .collect();
            let (inside, outside): (Vec<String>, Vec<String>) =
                members.into_iter().partition(|h| ctl.datacenter(h) == dc);
            for a in &inside {
                for b in &outside {
                    for (x, y) in [(a, b), (b, a)] {
                        ctl.block(x, y);
                        undo.push(Undo::Unblock(x.clone(), y.clone()));
                    }
                }
            }
            format!("{{{}}} | rest", inside.join(","))
        }
        FaultKind::MasterCrash | FaultKind::LeaderKill | FaultKind::PowerLoss => {
            let t = if f.kind == FaultKind::LeaderKill {
                Some("leader")
            } else {
                target
            };
            match pick_master(ctl, t, rng) {
                Some(h) if ctl.is_up(&h) => {
                    ctl.crash(&h, f.kind == FaultKind::PowerLoss);
                    undo.push(Undo::Restart(h.clone()));
                    h
                }
                _ => "nobody (no master up)".into(),
            }
        }
        FaultKind::DiskCorruption => match pick_master(ctl, target, rng) {
            Some(h) => {
                let disk = ctl.disk(&h);
                let mut hits = Vec::new();
                for _ in 0..f.bits.max(1) {
                    // The log and snapshots; the double-written hard state is
                    // covered by the storage tests.
                    let prefix = if rng.random_bool(0.8) {
                        "wal/"
                    } else {
                        "snap/"
                    };
                    if let Some(at) = disk.corrupt(prefix).or_else(|| disk.corrupt("wal/")) {
                        hits.push(at);
                    }
                }
                // Corruption is found at start-up: crash so it restarts.
                if ctl.is_up(&h) {
                    ctl.crash(&h, false);
                }
                undo.push(Undo::Restart(h.clone()));
                format!("{h} [{}]", hits.join(", "))
            }
            None => "nobody".into(),
        },
        FaultKind::DiskLoss => match pick_master(ctl, target, rng) {
            Some(h) => {
                if ctl.is_up(&h) {
                    ctl.crash(&h, true);
                }
                ctl.disk(&h).wipe();
                undo.push(Undo::Restart(h.clone()));
                format!("{h} (disk lost)")
            }
            None => "nobody".into(),
        },
        FaultKind::DiskFull | FaultKind::DiskEio | FaultKind::DiskSlow => {
            match pick_master(ctl, target, rng) {
                Some(h) => {
                    let disk = ctl.disk(&h);
                    let mut faults = DiskFaults::default();
                    match f.kind {
                        FaultKind::DiskFull => faults.capacity = Some(disk.used() + 4096),
                        FaultKind::DiskEio => faults.eio = true,
                        _ => faults.slow = Some(f.delay.unwrap_or(Duration::from_millis(50))),
                    }
                    disk.set_faults(faults);
                    undo.push(Undo::ClearDisk(h.clone()));
                    h
                }
                None => "nobody".into(),
            }
        }
        FaultKind::Partition | FaultKind::PartitionOneWay => {
            let groups = match &f.groups {
                Some(named) => named_groups(ctl, named),
                None => partition_groups(ctl, target, rng),
            };
            let one_way = f.kind == FaultKind::PartitionOneWay;
            for (i, a) in groups.iter().enumerate() {
                for (j, b) in groups.iter().enumerate() {
                    if i == j || (one_way && i != 0) {
                        continue;
                    }
                    for x in a {
                        for y in b {
                            ctl.block(x, y);
                            undo.push(Undo::Unblock(x.clone(), y.clone()));
                        }
                    }
                }
            }
            let parts: Vec<String> = groups
                .iter()
                .map(|g| format!("{{{}}}", g.join(",")))
                .collect();
            parts.join(if one_way { " -/-> " } else { " | " })
        }
        FaultKind::ControllerLeaderKill => {
            let which = election_lease(target.unwrap_or("controller-manager"));
            match ctl.lease_holder(which) {
                Some(h) if ctl.is_up(&h) => {
                    ctl.crash(&h, false);
                    undo.push(Undo::Restart(h.clone()));
                    format!("{h} (holder of {which})")
                }
                _ => format!("nobody (no live holder of {which})"),
            }
        }
        FaultKind::NodeCrash | FaultKind::NodeIsolate | FaultKind::KubeletRestart => {
            let nodes: Vec<String> = ctl.nodes().into_iter().filter(|n| ctl.is_up(n)).collect();
            let hit: Vec<String> = match target.unwrap_or("random") {
                "random" => nodes.choose(rng).cloned().into_iter().collect(),
                t if t.starts_with("pod:") => {
                    let running = ctl.nodes_running(&t["pod:".len()..]);
                    running
                        .iter()
                        .filter(|n| ctl.is_up(n))
                        .collect::<Vec<_>>()
                        .choose(rng)
                        .map(|n| n.to_string())
                        .into_iter()
                        .collect()
                }
                t if nodes.iter().any(|n| n == t) => vec![t.to_string()],
                dc => nodes
                    .iter()
                    .filter(|n| ctl.datacenter(n) == dc)
                    .cloned()
                    .collect(),
            };
            for n in &hit {
                if f.kind == FaultKind::NodeCrash {
                    ctl.crash(n, false);
                    undo.push(Undo::Restart(n.clone()));
                } else if f.kind == FaultKind::KubeletRestart {
                    ctl.restart_kubelet(n);
                } else {
                    let others = if f.isolate_all {
                        ctl.hosts().into_iter().filter(|h| h != n).collect()
                    } else {
                        ctl.masters()
                    };
                    for m in others {
                        ctl.block(n, &m);
                        ctl.block(&m, n);
                        undo.push(Undo::Unblock(n.clone(), m.clone()));
                        undo.push(Undo::Unblock(m.clone(), n.clone()));
                    }
                }
            }
            if hit.is_empty() {
                "nobody (no node up)".into()
            } else {
                hit.join(",")
            }
        }
        FaultKind::Pause | FaultKind::ClockSkew | FaultKind::ClockJump => {
            let host = match target {
                Some("random-node") => {
                    let up: Vec<String> =
                        ctl.nodes().into_iter().filter(|n| ctl.is_up(n)).collect();
                    up.choose(rng).cloned()
                }
                Some(t) if ctl.nodes().iter().any(|n| n == t) => Some(t.to_string()),
                Some(t @ ("controller-manager" | "scheduler")) => {
                    ctl.lease_holder(election_lease(t))
                }
                t => pick_master(ctl, t, rng),
            };
            match host {
                Some(h) if ctl.is_up(&h) => {
                    let done = if f.kind == FaultKind::Pause {
                        ctl.pause(&h)
                    } else {
                        ctl.set_clock_offset(&h, f.offset_ms)
                    };
                    if !done {
                        format!(
                            "nobody ({} is not supported by this backend)",
                            f.kind.name()
                        )
                    } else if f.kind == FaultKind::Pause {
                        undo.push(Undo::Resume(h.clone()));
                        h
                    } else {
                        undo.push(Undo::ClockReset(h.clone()));
                        format!("{h} {:+}ms", f.offset_ms)
                    }
                }
                _ => "nobody (no host up)".into(),
            }
        }
        FaultKind::Loss | FaultKind::Latency => {
            let hosts: Vec<String> = match target {
                Some(t) if ctl.masters().iter().any(|m| m == t) => vec![t.to_string()],
                Some(t) if ctl.hosts().iter().any(|h| ctl.datacenter(h) == t) => ctl
                    .hosts()
                    .into_iter()
                    .filter(|h| ctl.datacenter(h) == t)
                    .collect(),
                t => pick_master(ctl, t, rng).into_iter().collect(),
            };
            let (loss, extra, jitter) = match f.kind {
                FaultKind::Loss => (f.probability.unwrap_or(0.1), Duration::ZERO, Duration::ZERO),
                _ => (
                    0.0,
                    f.delay.unwrap_or(Duration::from_millis(100)),
                    f.jitter.unwrap_or_default(),
                ),
            };
            for h in &hosts {
                for other in ctl.hosts() {
                    if other != *h {
                        ctl.degrade(h, &other, loss, extra, jitter);
                        ctl.degrade(&other, h, loss, extra, jitter);
                        undo.push(Undo::Restore(h.clone(), other.clone()));
                        undo.push(Undo::Restore(other.clone(), h.clone()));
                    }
                }
            }
            hosts.join(",")
        }
    };
    (what, undo)
}

/// Heals a started fault.
pub fn heal(ctl: &mut dyn Control, undo: &[Undo]) {
    for u in undo {
        match u {
            Undo::Restart(h) => ctl.restart(h),
            Undo::Unblock(a, b) => ctl.unblock(a, b),
            Undo::Restore(a, b) => ctl.restore(a, b),
            Undo::ClearDisk(h) => ctl.disk(h).set_faults(DiskFaults::default()),
            Undo::Resume(h) => ctl.resume(h),
            Undo::ClockReset(h) => {
                ctl.set_clock_offset(h, 0);
            }
        }
    }
}

/// Starts and heals planned faults as time passes, and records them.
pub struct FaultDriver {
    plan: Vec<PlannedFault>,
    /// (time, is_start, plan index), sorted; heals before starts at a tie.
    events: Vec<(Duration, bool, usize)>,
    next: usize,
    rng: ChaCha8Rng,
    /// Plan index -> (record index, undo) of faults in force.
    active: std::collections::BTreeMap<usize, (usize, Vec<Undo>)>,
    records: Vec<FaultRecord>,
}

impl FaultDriver {
    /// A driver for `plan`; targets are drawn from the seed's fault stream.
    pub fn new(plan: Vec<PlannedFault>, seed: u64) -> FaultDriver {
        let mut events = Vec::new();
        for (i, f) in plan.iter().enumerate() {
            events.push((f.start, true, i));
            if let Some(end) = f.end {
                events.push((end, false, i));
            }
        }
        events.sort_by_key(|&(t, is_start, i)| (t, is_start, i));
        FaultDriver {
            plan,
            events,
            next: 0,
            rng: ChaCha8Rng::seed_from_u64(faultline_env::host_seed(seed, "#faults")),
            active: Default::default(),
            records: Vec::new(),
        }
    }

    /// When the next start or heal is due.
    pub fn next_time(&self) -> Option<Duration> {
        self.events.get(self.next).map(|e| e.0)
    }

    /// Applies every start and heal due at or before `now`.
    pub fn advance(&mut self, now: Duration, ctl: &mut dyn Control) {
        while let Some(&(t, is_start, i)) = self.events.get(self.next) {
            if t > now {
                return;
            }
            self.next += 1;
            let f = &self.plan[i];
            if is_start {
                let (what, undo) = start(ctl, f, &mut self.rng);
                ctl.note(&format!("fault start {} {what}", f.kind.name()));
                self.active.insert(i, (self.records.len(), undo));
                self.records.push(FaultRecord {
                    kind: f.kind.name().to_string(),
                    target: what,
                    start_s: t.as_secs_f64(),
                    end_s: None,
                    source: f.source.to_string(),
                    detail: f.target.clone().unwrap_or_default(),
                });
            } else if let Some((idx, undo)) = self.active.remove(&i) {
                heal(ctl, &undo);
                self.records[idx].end_s = Some(t.as_secs_f64());
                ctl.note(&format!("fault heal {}", f.kind.name()));
            }
        }
    }

    /// Heals everything still in force (end of the faulty phase).
    pub fn heal_all(&mut self, now: Duration, ctl: &mut dyn Control) {
        for (_, (idx, undo)) in std::mem::take(&mut self.active) {
            heal(ctl, &undo);
            self.records[idx].end_s = Some(now.as_secs_f64());
        }
        self.next = self.events.len();
    }

    /// What was injected so far.
    pub fn records(&self) -> &[FaultRecord] {
        &self.records
    }
}
