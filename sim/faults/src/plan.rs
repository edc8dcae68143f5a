//! The fault plan of a seed: the file's faults plus the nemesis's, drawn
//! before the run starts so the schedule can be printed, replayed and
//! shrunk.
//!
//! The nemesis draws Poisson arrivals around `every`, kinds by weight,
//! targets at random, each fault kept only if the faults already in force
//! plus it stay within the bounds (what a fault can take down at once is
//! its [`Cost`]); a few redraws, then the slot is skipped. An unbounded
//! nemesis has no bounds, and its faults overlap.

use std::time::Duration;

use faultline_scenario::fault::{
    ClockJump, ClockSkew, Crash, DiskCorruption, DiskSlow, KubeletRestart, Latency, Loss,
    NodeIsolate, Partition, Timed,
};
use faultline_scenario::{
    Dur, FaultKind, FaultSpec, IsolateFrom, Nemesis, NemesisMode, Scenario, SignedDur,
};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A fault in the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFault {
    pub start: Duration,
    /// When it heals (None: crash-like faults with no `for` never heal
    /// until the end of the faulty phase).
    pub end: Option<Duration>,
    pub spec: FaultSpec,
    /// `scheduled` or `nemesis`.
    pub source: &'static str,
}

impl PlannedFault {
    /// The kind.
    pub fn kind(&self) -> FaultKind {
        self.spec.kind()
    }
}

/// Builds the fault plan for `seed`: the file's faults plus the nemesis's,
/// in start order.
pub fn plan(scenario: &Scenario, seed: u64) -> Vec<PlannedFault> {
    let duration = scenario.duration.0;
    let mut out: Vec<PlannedFault> = scenario
        .faults
        .iter()
        .map(|f| PlannedFault {
            start: f.at.0,
            end: f.end(duration),
            spec: f.spec.clone(),
            source: "scheduled",
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
    let n = s.cluster.masters;
    let dcs = &s.cluster.datacenters;
    let minority = ((n.saturating_sub(1)) / 2).max(1);
    let masters = |m: u32| Cost {
        masters: m,
        ..Cost::default()
    };
    let nodes = |k: u32| Cost {
        nodes: k,
        ..Cost::default()
    };
    use FaultKind::*;
    match kind {
        Partition | PartitionOneWay => match target {
            Some("leader") => masters(1),
            Some("majority") => masters(n),
            _ => masters(minority),
        },
        MasterCrash | PowerLoss => match target {
            Some("majority") => masters(n / 2 + 1),
            Some("all") => masters(n),
            Some("one-per-datacenter") => masters(dcs.len().min(n as usize) as u32),
            _ => masters(1),
        },
        LeaderKill | DiskCorruption | DiskLoss | DiskFull | DiskEio | ControllerLeaderKill => {
            masters(1)
        }
        DatacenterOutage | DatacenterPartition => {
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
        NodeCrash | NodeIsolate => nodes(1),
        Pause => match target {
            Some("random-node") => nodes(1),
            _ => masters(1),
        },
        DiskSlow | Loss | Latency | KubeletRestart | ClockSkew | ClockJump => Cost::default(),
    }
}

/// The settings the nemesis draws for every fault, whatever its kind (so
/// the random stream does not depend on the kind drawn).
struct Draw {
    probability: f64,
    delay: Duration,
    bits: u32,
    offset_ms: i64,
    jitter: Duration,
    isolate_all: bool,
}

impl Draw {
    fn new(rng: &mut ChaCha8Rng) -> Draw {
        Draw {
            probability: rng.random_range(0.05..0.3),
            delay: Duration::from_millis(rng.random_range(20..300)),
            bits: rng.random_range(1..=3),
            offset_ms: {
                let ms = rng.random_range(1_000..120_000i64);
                if rng.random_bool(0.5) {
                    -ms
                } else {
                    ms
                }
            },
            jitter: Duration::from_millis(rng.random_range(0..50)),
            isolate_all: rng.random_bool(0.3),
        }
    }

    /// A fault of `kind` on `target` lasting `len`, with these settings.
    fn spec(&self, kind: FaultKind, target: Option<String>, len: Duration) -> FaultSpec {
        let duration = Dur(len);
        let crash = || Crash {
            target: target.clone(),
            duration: Some(duration),
        };
        let timed = || Timed {
            target: target.clone(),
            duration,
        };
        let partition = || Partition {
            target: target.clone(),
            groups: None,
            duration,
        };
        let offset = SignedDur::from_millis(self.offset_ms);
        use FaultKind as K;
        match kind {
            K::MasterCrash => FaultSpec::MasterCrash(crash()),
            K::LeaderKill => FaultSpec::LeaderKill(crash()),
            K::PowerLoss => FaultSpec::PowerLoss(crash()),
            K::NodeCrash => FaultSpec::NodeCrash(crash()),
            K::ControllerLeaderKill => FaultSpec::ControllerLeaderKill(crash()),
            K::DatacenterOutage => FaultSpec::DatacenterOutage(crash()),
            K::DiskLoss => FaultSpec::DiskLoss(crash()),
            K::DiskFull => FaultSpec::DiskFull(timed()),
            K::DiskEio => FaultSpec::DiskEio(timed()),
            K::DatacenterPartition => FaultSpec::DatacenterPartition(timed()),
            K::Pause => FaultSpec::Pause(timed()),
            K::Partition => FaultSpec::Partition(partition()),
            K::PartitionOneWay => FaultSpec::PartitionOneWay(partition()),
            K::Loss => FaultSpec::Loss(Loss {
                target,
                duration,
                probability: self.probability,
            }),
            K::Latency => FaultSpec::Latency(Latency {
                target,
                duration,
                delay: Dur(self.delay),
                jitter: Some(Dur(self.jitter)),
            }),
            K::DiskCorruption => FaultSpec::DiskCorruption(DiskCorruption {
                target,
                duration: Some(duration),
                bits: Some(self.bits),
            }),
            K::DiskSlow => FaultSpec::DiskSlow(DiskSlow {
                target,
                duration,
                delay: Dur(self.delay),
            }),
            K::NodeIsolate => FaultSpec::NodeIsolate(NodeIsolate {
                target,
                duration,
                from: if self.isolate_all {
                    IsolateFrom::All
                } else {
                    IsolateFrom::Masters
                },
            }),
            K::KubeletRestart => FaultSpec::KubeletRestart(KubeletRestart { target }),
            K::ClockSkew => FaultSpec::ClockSkew(ClockSkew {
                target,
                duration,
                offset,
            }),
            K::ClockJump => FaultSpec::ClockJump(ClockJump {
                target,
                duration: Some(duration),
                offset,
            }),
        }
    }
}

/// Draws the nemesis's faults for `seed`.
fn nemesis_plan(s: &Scenario, n: &Nemesis, seed: u64) -> Vec<PlannedFault> {
    let duration = s.duration.0;
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
                .unwrap_or(s.cluster.masters.saturating_sub(1) / 2),
            datacenters: n.max_datacenters.unwrap_or(1),
            nodes: n.max_nodes_down.unwrap_or(u32::MAX),
        }
    };
    let kinds = &n.kinds;
    let weights: Vec<u32> = kinds
        .iter()
        .map(|k| n.weights.get(k).copied().unwrap_or(1))
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
                c.plus(cost(s, f.kind(), f.spec.target()))
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
            let spec = Draw::new(&mut rng).spec(kind, target, len);
            if in_force.plus(cost(s, kind, spec.target())).within(bound) {
                out.push(PlannedFault {
                    start: t,
                    end: Some(t + len),
                    spec,
                    source: "nemesis",
                });
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
    use FaultKind::*;
    match kind {
        Partition | PartitionOneWay => pick(rng, &["leader", "minority", "majority", "random"]),
        LeaderKill => Some("leader".into()),
        MasterCrash | PowerLoss if unbounded => {
            pick(rng, &["leader", "random", "follower", "majority", "all"])
        }
        NodeCrash | NodeIsolate | KubeletRestart => Some("random".into()),
        DatacenterOutage | DatacenterPartition => s.cluster.datacenters.choose(rng).cloned(),
        ControllerLeaderKill => pick(rng, &["controller-manager", "scheduler"]),
        Pause | ClockSkew | ClockJump => {
            if s.has_nodes() {
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
