//! `[[fault]]` entries: a kind and the settings of that kind.
//!
//! Each kind names the struct of settings it takes ([`Crash`], [`Loss`],
//! ...), so a setting a kind does not take is refused when the file is
//! read, by the type. Kinds with the same settings share a struct; the
//! table in `kinds!` below is the one list of kinds.
//!
//! Adding a kind: a line in the table (with its settings struct, a new one
//! if no existing one fits), then its behaviour in `faultline-faults` (the
//! compiler lists every `match` that must learn it).

use std::time::Duration;

use serde::Deserialize;

use crate::duration::{Dur, SignedDur};
use crate::settings::kinds;

/// The settings every kind's struct answers for.
pub trait FaultSettings {
    /// What it hits (see each kind for the names it accepts).
    fn target(&self) -> Option<&str>;
    /// How long it lasts (`for`), when given.
    fn duration(&self) -> Option<Duration>;
}

macro_rules! settings {
    ($($ty:ident: $for:ident),* $(,)?) => {
        $(impl FaultSettings for $ty {
            fn target(&self) -> Option<&str> {
                self.target.as_deref()
            }
            fn duration(&self) -> Option<Duration> {
                settings!(@for $for self)
            }
        })*
    };
    (@for required $s:ident) => { Some($s.duration.0) };
    (@for optional $s:ident) => { $s.duration.map(|d| d.0) };
    (@for none $s:ident) => { None };
}

kinds! {
    /// Every fault kind, by the name files use.
    kind FaultKind;
    /// A fault kind with its settings.
    spec FaultSpec: dyn FaultSettings;
    /// Crash a master process (page cache survives); restart after `for`.
    MasterCrash = "master-crash" (Crash),
    /// Crash whichever master leads the store right now.
    LeaderKill = "leader-kill" (Crash),
    /// Power loss on a master: unsynced writes are lost, the last may tear.
    PowerLoss = "power-loss" (Crash),
    /// Cut masters off: `target` = `leader` (isolate it), `minority`,
    /// `majority`, a host, or a datacenter; or explicit `groups`.
    Partition = "partition" (Partition),
    /// Like `partition` but only traffic *from* the target is dropped.
    PartitionOneWay = "partition-one-way" (Partition),
    /// Random loss on every link of the target (TCP retransmits).
    Loss = "loss" (Loss),
    /// Extra latency on every link of the target.
    Latency = "latency" (Latency),
    /// Flip bits in a master's log, then crash it so it must recover.
    DiskCorruption = "disk-corruption" (DiskCorruption),
    /// The master's disk is full for `for`.
    DiskFull = "disk-full" (Timed),
    /// Every disk operation of the master fails for `for`.
    DiskEio = "disk-eio" (Timed),
    /// Every disk operation of the master is slow for `for`.
    DiskSlow = "disk-slow" (DiskSlow),
    /// Crash a worker node (`target`: a node, a datacenter or `random`);
    /// it restarts after `for`, or at the end of the faulty phase.
    NodeCrash = "node-crash" (Crash),
    /// Cut a worker node off from every master (it keeps running).
    NodeIsolate = "node-isolate" (NodeIsolate),
    /// Crash the master whose controller manager (`target` =
    /// `controller-manager`, the default) or scheduler (`scheduler`) leads.
    ControllerLeaderKill = "controller-leader-kill" (Crash),
    /// Every master and node of datacenter `target` crashes; they restart
    /// after `for`.
    DatacenterOutage = "datacenter-outage" (Crash),
    /// Datacenter `target` is cut off from the others for `for` while its
    /// hosts keep running (users there still reach it): split brain.
    DatacenterPartition = "datacenter-partition" (Timed),
    /// The kubelet and proxy processes of a node restart (`target` as for
    /// `node-crash`); the node and its containers stay up.
    KubeletRestart = "kubelet-restart" (KubeletRestart),
    /// A host freezes for `for` (no timer fires, nothing is read or sent),
    /// then resumes with its stale state: a long GC pause, a stopped VM.
    Pause = "pause" (Timed),
    /// A host's wall clock is off by `offset` for `for`.
    ClockSkew = "clock-skew" (ClockSkew),
    /// A host's wall clock steps by `offset` and stays there (until `for`
    /// ends, or the end of the faulty phase).
    ClockJump = "clock-jump" (ClockJump),
    /// A master loses power and its disk: it comes back (after `for`, or
    /// at the end of the faulty phase) with nothing, and must rejoin
    /// without voting until a leader has repaired it.
    DiskLoss = "disk-loss" (Crash),
}

impl FaultKind {
    /// The kind named `name` in files.
    pub fn from_name(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Kinds that act on worker nodes.
    pub fn hits_nodes(self) -> bool {
        matches!(
            self,
            FaultKind::NodeCrash | FaultKind::NodeIsolate | FaultKind::KubeletRestart
        )
    }
}

impl FaultSpec {
    /// What it hits.
    pub fn target(&self) -> Option<&str> {
        self.settings().target()
    }

    /// How long it lasts (`for`), when given.
    pub fn duration(&self) -> Option<Duration> {
        self.settings().duration()
    }
}

/// A fault at a fixed time.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub at: Dur,
    pub spec: FaultSpec,
}

impl Fault {
    /// The kind.
    pub fn kind(&self) -> FaultKind {
        self.spec.kind()
    }

    /// When it heals in a run whose faulty phase lasts `run`: after `for`,
    /// or never before the end of the faulty phase.
    pub fn end(&self, run: Duration) -> Option<Duration> {
        self.spec.duration().map(|d| (self.at.0 + d).min(run))
    }
}

/// A fault whose target crashes (or loses something) and comes back after
/// `for`, or at the end of the faulty phase.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crash {
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default, rename = "for")]
    pub duration: Option<Dur>,
}

/// A fault that lasts `for`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timed {
    #[serde(default)]
    pub target: Option<String>,
    #[serde(rename = "for")]
    pub duration: Dur,
}

/// `partition`, `partition-one-way`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    #[serde(default)]
    pub target: Option<String>,
    /// Groups of host and datacenter names; every group is cut off from
    /// every other (one way: only what the first group sends is dropped).
    /// Hosts in no group are unaffected.
    #[serde(default)]
    pub groups: Option<Vec<Vec<String>>>,
    #[serde(rename = "for")]
    pub duration: Dur,
}

/// `loss`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loss {
    #[serde(default)]
    pub target: Option<String>,
    #[serde(rename = "for")]
    pub duration: Dur,
    /// Packet loss probability, in [0, 1).
    pub probability: f64,
}

/// `latency`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    #[serde(default)]
    pub target: Option<String>,
    #[serde(rename = "for")]
    pub duration: Dur,
    /// Extra delay per segment.
    pub delay: Dur,
    /// Uniform random extra delay per segment.
    #[serde(default)]
    pub jitter: Option<Dur>,
}

/// `disk-corruption`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskCorruption {
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default, rename = "for")]
    pub duration: Option<Dur>,
    /// Bits to flip (default 1).
    #[serde(default)]
    pub bits: Option<u32>,
}

/// `disk-slow`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSlow {
    #[serde(default)]
    pub target: Option<String>,
    #[serde(rename = "for")]
    pub duration: Dur,
    /// Extra delay of every disk operation.
    pub delay: Dur,
}

/// `node-isolate`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeIsolate {
    #[serde(default)]
    pub target: Option<String>,
    #[serde(rename = "for")]
    pub duration: Dur,
    /// Cut the node off from the `masters` (default) or from `all` other
    /// hosts.
    #[serde(default)]
    pub from: IsolateFrom,
}

/// `kubelet-restart`: instantaneous, so it takes no `for`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeletRestart {
    #[serde(default)]
    pub target: Option<String>,
}

/// `clock-skew`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSkew {
    #[serde(default)]
    pub target: Option<String>,
    #[serde(rename = "for")]
    pub duration: Dur,
    /// How far the host's wall clock is off: a signed duration like
    /// `"-90s"` or `"2m"`.
    pub offset: SignedDur,
}

/// `clock-jump`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockJump {
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default, rename = "for")]
    pub duration: Option<Dur>,
    /// How far the host's wall clock steps.
    pub offset: SignedDur,
}

settings! {
    Crash: optional,
    Timed: required,
    Partition: required,
    Loss: required,
    Latency: required,
    DiskCorruption: optional,
    DiskSlow: required,
    NodeIsolate: required,
    KubeletRestart: none,
    ClockSkew: required,
    ClockJump: optional,
}

/// What `node-isolate` cuts a node off from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IsolateFrom {
    #[default]
    Masters,
    All,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_takes_the_settings_of_its_struct() {
        assert_eq!(FaultKind::Loss.settings(), ["target", "for", "probability"]);
        assert_eq!(FaultKind::KubeletRestart.settings(), ["target"]);
        assert_eq!(FaultKind::from_name("disk-loss"), Some(FaultKind::DiskLoss));
        assert_eq!(FaultKind::ALL.len(), 21);
        for k in FaultKind::ALL {
            assert!(k.settings().contains(&"target"), "{}", k.name());
        }
    }
}
