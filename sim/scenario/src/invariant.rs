//! `[[invariant]]` entries: a kind and the settings of that kind, as for
//! faults (see `fault.rs`): a setting a kind does not take is refused by
//! its type. How each is judged lives in `faultline-checker`.

use std::time::Duration;

use serde::Deserialize;

use crate::duration::Dur;
use crate::settings::kinds;

/// The settings every invariant kind's struct answers for (each says
/// what it has; the defaults say "none").
pub trait InvariantSettings {
    /// The deadline after healing (`converges`, `deployments-ready`), when
    /// given.
    fn within(&self) -> Option<Duration> {
        None
    }
    /// The service it measures (`availability`, `latency`,
    /// `static-stability`), when named.
    fn service(&self) -> Option<&str> {
        None
    }
}

kinds! {
    /// Every invariant kind, by the name files use.
    kind InvariantKind;
    /// An invariant kind with its settings.
    spec InvariantSpec: dyn InvariantSettings;
    /// Every register history is linearizable.
    Linearizable = "linearizable" (NoSettings),
    /// Every acknowledged set add is present at the end.
    NoLostWrites = "no-lost-writes" (NoSettings),
    /// Raft: at most one leader per term; committed entries never change.
    RaftSafety = "raft-safety" (NoSettings),
    /// After faults heal, every replica reaches the same state within
    /// `within` (and, with worker nodes, the cluster converges too).
    Converges = "converges" (Deadline),
    /// Watch streams deliver every event once, in order, without gaps.
    WatchOrdered = "watch-ordered" (NoSettings),
    /// After faults heal, every node is Ready and every Deployment has its
    /// desired ready, updated replicas within `within`.
    DeploymentsReady = "deployments-ready" (DeploymentsReady),
    /// A pod is bound to one node only, and never re-bound.
    SingleBinding = "single-binding" (NoSettings),
    /// No node's bound pods request more than it can allocate.
    NoOvercommit = "no-overcommit" (NoSettings),
    /// At most one running container per pod uid and container name.
    SingleContainer = "single-container" (NoSettings),
    /// At the end, every pod still unbound carries `PodScheduled=False`
    /// with reason `Unschedulable` and the scheduler's message.
    PendingExplained = "pending-explained" (NoSettings),
    /// The fraction of user requests to a service that succeed, over the
    /// run (and every `window`), is at least `at_least`.
    Availability = "availability" (Availability),
    /// The `quantile` (p99) latency of successful requests is below `below`.
    Latency = "latency" (Latency),
    /// While the whole control plane is down, pods that were serving keep
    /// serving and availability stays at `at_least`.
    StaticStability = "static-stability" (StaticStability),
}

/// A property the run must keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Invariant {
    /// Display name (default: the kind's name).
    pub name: Option<String>,
    pub spec: InvariantSpec,
}

impl Invariant {
    /// The kind.
    pub fn kind(&self) -> InvariantKind {
        self.spec.kind()
    }

    /// Its display name.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.kind().name())
    }

    /// The deadline after healing (`converges`, `deployments-ready`), when
    /// given.
    pub fn within(&self) -> Option<Duration> {
        self.spec.settings().within()
    }

    /// The service it measures (`availability`, `latency`,
    /// `static-stability`), when named.
    pub fn service(&self) -> Option<&str> {
        self.spec.settings().service()
    }

    /// True for the kinds judged on what never happened (safety), which an
    /// unbounded nemesis cannot excuse, plus `converges` (judged after
    /// healing).
    pub fn is_safety(&self) -> bool {
        use InvariantKind::*;
        matches!(
            self.kind(),
            Linearizable
                | NoLostWrites
                | RaftSafety
                | WatchOrdered
                | SingleBinding
                | NoOvercommit
                | SingleContainer
                | Converges
        )
    }
}

/// A kind without settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

/// `converges`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deadline {
    /// Deadline after healing (default 60 s for the store alone, 120 s with
    /// worker nodes).
    #[serde(default)]
    pub within: Option<Dur>,
}

/// `deployments-ready`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentsReady {
    /// Deadline after healing (default 120 s).
    #[serde(default)]
    pub within: Option<Dur>,
    /// Only these deployments (default: all).
    #[serde(default)]
    pub deployments: Option<Vec<String>>,
}

/// `availability`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Availability {
    /// The service (default: every service with `[[traffic]]`).
    #[serde(default)]
    pub service: Option<String>,
    /// The SLO: the fraction of requests that must succeed (e.g. 0.999).
    pub at_least: f64,
    /// Also hold the SLO over every sliding window this long (not only over
    /// the whole run).
    #[serde(default)]
    pub window: Option<Dur>,
}

/// `latency`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// The service (default: every service with `[[traffic]]`).
    #[serde(default)]
    pub service: Option<String>,
    /// The bound on the quantile of successful requests.
    pub below: Dur,
    /// Which quantile (default 0.99).
    #[serde(default)]
    pub quantile: Option<f64>,
}

/// `static-stability`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticStability {
    /// The service (default: every service with `[[traffic]]`).
    #[serde(default)]
    pub service: Option<String>,
    /// The SLO while the control plane is down (default 0.999).
    #[serde(default)]
    pub at_least: Option<f64>,
}

impl InvariantSettings for NoSettings {}

impl InvariantSettings for Deadline {
    fn within(&self) -> Option<Duration> {
        self.within.map(|w| w.0)
    }
}

impl InvariantSettings for DeploymentsReady {
    fn within(&self) -> Option<Duration> {
        self.within.map(|w| w.0)
    }
}

impl InvariantSettings for Availability {
    fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }
}

impl InvariantSettings for Latency {
    fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }
}

impl InvariantSettings for StaticStability {
    fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }
}
