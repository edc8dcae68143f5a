//! Scenario files: what cluster to build, what load to run, what faults to
//! inject and which invariants must hold. TOML, parsed strictly: unknown
//! fields are rejected, and every error names the file, line, column and
//! field at fault.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// A duration written like `90s`, `5m`, `250ms` or `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// Parses `90s`, `5m`, `250ms`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("invalid duration {s:?} ({e}); write it like \"90s\", \"5m\" or \"250ms\"")
    })
}

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// One line saying what this scenario proves.
    #[serde(default)]
    pub description: String,
    /// Simulated time the workload and faults run for.
    pub duration: Spanned<Dur>,
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
    #[serde(default, rename = "fault")]
    pub faults: Vec<Spanned<Fault>>,
    #[serde(default)]
    pub nemesis: Option<Nemesis>,
    #[serde(default, rename = "invariant")]
    pub invariants: Vec<Spanned<Invariant>>,
    /// Control-plane tunables (node lifecycle timeouts, test-only bugs).
    #[serde(default)]
    pub control_plane: ControlPlaneTuning,
    /// Workloads the cluster runs (needs nodes).
    #[serde(default, rename = "deployment")]
    pub deployments: Vec<Spanned<DeploymentSpec>>,
    /// What the user does during the run (scale, roll out a new image).
    #[serde(default, rename = "action")]
    pub actions: Vec<Spanned<Action>>,
    /// User traffic to services through the node proxies.
    #[serde(default, rename = "traffic")]
    pub traffic: Vec<Spanned<Traffic>>,
}

/// Users sending HTTP requests to a Service through the node proxies, as
/// an external load balancer would (health-checking nodes, preferring its
/// own datacenter's, moving to another node when one fails).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// A `[[deployment]]` with a `port`.
    pub service: String,
    /// Requests per simulated second, over all of this entry's clients
    /// (Poisson arrivals).
    pub rate: f64,
    /// Client hosts, placed round robin over the datacenters (default: one
    /// per datacenter).
    #[serde(default)]
    pub clients: Option<u32>,
    /// A request not answered within this is a failure.
    #[serde(default = "traffic_timeout")]
    pub timeout: Dur,
    /// When the users start (the service should be up by then).
    #[serde(default = "traffic_start")]
    pub start: Dur,
    /// `GET` (default, idempotent: retried once on another node) or `POST`
    /// (retried only when the request never left).
    #[serde(default)]
    pub method: HttpMethod,
}

fn traffic_timeout() -> Dur {
    Dur(Duration::from_secs(2))
}
fn traffic_start() -> Dur {
    Dur(Duration::from_secs(30))
}

/// The request method users send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Post,
}

/// Control-plane tunables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneTuning {
    /// A node whose lease is this stale is marked NotReady (Unknown).
    #[serde(default = "node_grace")]
    pub node_grace: Dur,
    /// Pods on a node NotReady this long are evicted and replaced.
    #[serde(default = "eviction_timeout")]
    pub eviction_timeout: Dur,
    /// Independently elected schedulers, all claiming the default
    /// scheduler's pods (more than one races on every binding: the API
    /// server's compare-and-swap must keep each pod bound once).
    #[serde(default = "one")]
    pub schedulers: u32,
    /// Test-only bugs that must be caught.
    #[serde(default)]
    pub bugs: Vec<Spanned<ControlPlaneBug>>,
}

fn one() -> u32 {
    1
}

impl Default for ControlPlaneTuning {
    fn default() -> Self {
        ControlPlaneTuning {
            node_grace: node_grace(),
            eviction_timeout: eviction_timeout(),
            schedulers: 1,
            bugs: Vec::new(),
        }
    }
}

fn node_grace() -> Dur {
    Dur(Duration::from_secs(40))
}
fn eviction_timeout() -> Dur {
    Dur(Duration::from_secs(60))
}

/// Deliberate control-plane bugs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControlPlaneBug {
    /// The API server binds pods with a blind write: no check that the pod
    /// is still unbound, no compare-and-swap on its revision.
    UncheckedBinding,
}

/// A Deployment (and, with `port`, a Service in front of it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    pub name: String,
    #[serde(default = "default_ns")]
    pub namespace: String,
    pub replicas: i32,
    /// A built-in application: `echo`, `echo:v2`, `sleep`, `crash`.
    #[serde(default = "echo")]
    pub image: String,
    #[serde(default = "cpu100")]
    pub cpu: String,
    #[serde(default = "mem128")]
    pub memory: String,
    /// Serve the pods as a Service on this port (targetPort 8080).
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub max_surge: Option<String>,
    #[serde(default)]
    pub max_unavailable: Option<String>,
}

fn default_ns() -> String {
    "default".into()
}
fn echo() -> String {
    "echo".into()
}
fn cpu100() -> String {
    "100m".into()
}
fn mem128() -> String {
    "128Mi".into()
}

/// A user action at a fixed time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub at: Dur,
    pub kind: ActionKind,
    pub deployment: String,
    /// For `scale`.
    #[serde(default)]
    pub replicas: Option<i32>,
    /// For `set-image`.
    #[serde(default)]
    pub image: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// Set the deployment's replicas (through its scale subresource).
    Scale,
    /// Change the pod template's image: a rolling update.
    SetImage,
}

fn default_seed() -> u64 {
    1
}

/// Whether the scenario is expected to pass or to catch a violation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    #[default]
    Pass,
    Fail,
}

/// The machines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Datacenter names; masters and clients are spread over them in order.
    pub datacenters: Spanned<Vec<String>>,
    /// Number of masters (store replicas): 1, 3 or 5 are sensible.
    pub masters: Spanned<u32>,
    #[serde(default)]
    pub latency: Latency,
    /// Worker nodes (kubelets) in each datacenter: `n1`, `n2`, ... placed
    /// round robin.
    #[serde(default)]
    pub nodes_per_datacenter: u32,
    /// Capacity of every node.
    #[serde(default)]
    pub node: NodeShape,
}

/// What one node offers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeShape {
    #[serde(default = "cpu4")]
    pub cpu: String,
    #[serde(default = "mem8")]
    pub memory: String,
    #[serde(default = "pods110")]
    pub pods: u32,
}

impl Default for NodeShape {
    fn default() -> Self {
        NodeShape {
            cpu: cpu4(),
            memory: mem8(),
            pods: pods110(),
        }
    }
}

fn cpu4() -> String {
    "4".into()
}
fn mem8() -> String {
    "8Gi".into()
}
fn pods110() -> u32 {
    110
}

/// Link latencies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    #[serde(default = "ms1")]
    pub within: Dur,
    #[serde(default = "ms20")]
    pub between: Dur,
    /// Uniform random extra delay per segment.
    #[serde(default = "zero")]
    pub jitter: Dur,
}

impl Default for Latency {
    fn default() -> Latency {
        Latency {
            within: ms1(),
            between: ms20(),
            jitter: zero(),
        }
    }
}

fn ms1() -> Dur {
    Dur(Duration::from_millis(1))
}
fn ms20() -> Dur {
    Dur(Duration::from_millis(20))
}
fn zero() -> Dur {
    Dur(Duration::ZERO)
}

/// Store tunables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreTuning {
    #[serde(default = "tick")]
    pub tick: Dur,
    #[serde(default = "election_ticks")]
    pub election_ticks: u32,
    #[serde(default = "snapshot_every")]
    pub snapshot_every: u64,
    #[serde(default = "keep_revisions")]
    pub keep_revisions: i64,
    /// Deliberate bugs, to prove the checkers bite. Test scenarios only.
    #[serde(default)]
    pub bugs: Vec<Spanned<Bug>>,
}

impl Default for StoreTuning {
    fn default() -> StoreTuning {
        StoreTuning {
            tick: tick(),
            election_ticks: election_ticks(),
            snapshot_every: snapshot_every(),
            keep_revisions: keep_revisions(),
            bugs: Vec::new(),
        }
    }
}

fn tick() -> Dur {
    Dur(Duration::from_millis(100))
}
fn election_ticks() -> u32 {
    10
}
fn snapshot_every() -> u64 {
    1000
}
fn keep_revisions() -> i64 {
    5000
}

/// A deliberate store bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// Acknowledge writes before they commit.
    AckBeforeCommit,
    /// Serve linearizable reads from any replica without a read index.
    StaleReads,
    /// A master that lost its disk rejoins as a new member: it votes at
    /// once, without the recovery a blank replica goes through.
    RejoinAsNew,
}

/// The client load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Client hosts, spread over the datacenters.
    #[serde(default = "clients")]
    pub clients: Spanned<u32>,
    /// Operations per simulated second, all clients together.
    #[serde(default = "rate")]
    pub rate: Spanned<f64>,
    /// Registers (keys) the register workload spreads over.
    #[serde(default = "keys")]
    pub keys: Spanned<u32>,
    /// Relative weights of the operations.
    #[serde(default)]
    pub mix: Mix,
    /// Run a watcher that checks the watch stream.
    #[serde(default = "yes")]
    pub watch: bool,
    /// Send each read to a random master first, as a load balancer would.
    #[serde(default)]
    pub spread_reads: bool,
}

fn clients() -> Spanned<u32> {
    Spanned::new(0..0, 3)
}
fn rate() -> Spanned<f64> {
    Spanned::new(0..0, 100.0)
}
fn keys() -> Spanned<u32> {
    Spanned::new(0..0, 8)
}
fn yes() -> bool {
    true
}

/// Operation weights.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    #[serde(default = "w3")]
    pub get: u32,
    #[serde(default = "w3")]
    pub put: u32,
    #[serde(default = "w2")]
    pub cas: u32,
    #[serde(default = "w1")]
    pub delete: u32,
    /// Set-workload adds (each a put of a fresh key, checked for loss).
    #[serde(default = "w3")]
    pub add: u32,
}

impl Default for Mix {
    fn default() -> Mix {
        Mix {
            get: 3,
            put: 3,
            cas: 2,
            delete: 1,
            add: 3,
        }
    }
}

fn w1() -> u32 {
    1
}
fn w2() -> u32 {
    2
}
fn w3() -> u32 {
    3
}

/// A fault at a fixed time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub at: Dur,
    pub kind: FaultKind,
    /// What it hits: a host name, a datacenter, `leader`, `follower`,
    /// `random`, `minority`, `majority` (see each kind).
    #[serde(default)]
    pub target: Option<String>,
    /// How long it lasts before it heals (crashed hosts restart).
    #[serde(rename = "for")]
    pub duration: Option<Dur>,
    /// Packet loss probability (`loss`).
    #[serde(default)]
    pub probability: Option<f64>,
    /// Extra delay (`latency`, `disk-slow`).
    #[serde(default)]
    pub delay: Option<Dur>,
    /// Bits to flip (`disk-corruption`).
    #[serde(default)]
    pub bits: Option<u32>,
    /// How far the host's wall clock is off (`clock-skew`, `clock-jump`):
    /// a signed duration like `"-90s"` or `"2m"`.
    #[serde(default)]
    pub offset: Option<SignedDur>,
    /// Uniform random extra delay per segment (`latency`).
    #[serde(default)]
    pub jitter: Option<Dur>,
    /// `node-isolate`: cut the node off from the `masters` (default) or
    /// from `all` other hosts.
    #[serde(default)]
    pub from: Option<IsolateFrom>,
    /// `partition`, `partition-one-way`: groups of host and datacenter
    /// names; every group is cut off from every other (one way: only what
    /// the first group sends is dropped). Hosts in no group are unaffected.
    #[serde(default)]
    pub groups: Option<Vec<Vec<String>>>,
}

/// What `node-isolate` cuts a node off from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IsolateFrom {
    #[default]
    Masters,
    All,
}

/// A signed duration: `"-90s"`, `"2m"`, `"+500ms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedDur {
    pub negative: bool,
    pub magnitude: Duration,
}

impl SignedDur {
    /// Milliseconds, negative when behind.
    pub fn millis(self) -> i64 {
        let ms = self.magnitude.as_millis() as i64;
        if self.negative {
            -ms
        } else {
            ms
        }
    }
}

impl fmt::Display for SignedDur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.negative { "-" } else { "" };
        write!(f, "{sign}{}", humantime::format_duration(self.magnitude))
    }
}

impl<'de> Deserialize<'de> for SignedDur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SignedDur, D::Error> {
        let s = String::deserialize(d)?;
        let t = s.trim();
        let (negative, rest) = match t.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        parse_duration(rest)
            .map(|magnitude| SignedDur {
                negative,
                magnitude,
            })
            .map_err(serde::de::Error::custom)
    }
}

/// Every fault kind a store scenario can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Crash a master process (page cache survives); restart after `for`.
    MasterCrash,
    /// Crash whichever master leads the store right now.
    LeaderKill,
    /// Power loss on a master: unsynced writes are lost, the last may tear.
    PowerLoss,
    /// Cut masters off: `target` = `leader` (isolate it), `minority`,
    /// `majority`, a host, or a datacenter.
    Partition,
    /// Like `partition` but only traffic *from* the target is dropped.
    PartitionOneWay,
    /// Random loss on every link of the target (TCP retransmits).
    Loss,
    /// Extra latency on every link of the target.
    Latency,
    /// Flip bits in a master's log, then crash it so it must recover.
    DiskCorruption,
    /// The master's disk is full for `for`.
    DiskFull,
    /// Every disk operation of the master fails for `for`.
    DiskEio,
    /// Every disk operation of the master is slow for `for`.
    DiskSlow,
    /// Crash a worker node (`target`: a node, a datacenter or `random`);
    /// it restarts after `for`, or at the end of the faulty phase.
    NodeCrash,
    /// Cut a worker node off from every master (it keeps running).
    NodeIsolate,
    /// Crash the master whose controller manager (`target` =
    /// `controller-manager`, the default) or scheduler (`scheduler`) leads.
    ControllerLeaderKill,
    /// Every master and node of datacenter `target` crashes; they restart
    /// after `for`.
    DatacenterOutage,
    /// Datacenter `target` is cut off from the others for `for` while its
    /// hosts keep running (users there still reach it): split brain.
    DatacenterPartition,
    /// The kubelet and proxy processes of a node restart (`target` as for
    /// `node-crash`); the node and its containers stay up.
    KubeletRestart,
    /// A host freezes for `for` (no timer fires, nothing is read or sent),
    /// then resumes with its stale state: a long GC pause, a stopped VM.
    Pause,
    /// A host's wall clock is off by `offset` for `for`.
    ClockSkew,
    /// A host's wall clock steps by `offset` and stays there (until `for`
    /// ends, or the end of the faulty phase).
    ClockJump,
    /// A master loses power and its disk: it comes back (after `for`, or
    /// at the end of the faulty phase) with nothing, and must rejoin
    /// without voting until a leader has repaired it.
    DiskLoss,
}

impl FaultKind {
    /// The kebab-case name used in files.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::MasterCrash => "master-crash",
            FaultKind::LeaderKill => "leader-kill",
            FaultKind::PowerLoss => "power-loss",
            FaultKind::Partition => "partition",
            FaultKind::PartitionOneWay => "partition-one-way",
            FaultKind::Loss => "loss",
            FaultKind::Latency => "latency",
            FaultKind::DiskCorruption => "disk-corruption",
            FaultKind::DiskFull => "disk-full",
            FaultKind::DiskEio => "disk-eio",
            FaultKind::DiskSlow => "disk-slow",
            FaultKind::NodeCrash => "node-crash",
            FaultKind::NodeIsolate => "node-isolate",
            FaultKind::ControllerLeaderKill => "controller-leader-kill",
            FaultKind::DatacenterOutage => "datacenter-outage",
            FaultKind::DatacenterPartition => "datacenter-partition",
            FaultKind::KubeletRestart => "kubelet-restart",
            FaultKind::Pause => "pause",
            FaultKind::ClockSkew => "clock-skew",
            FaultKind::ClockJump => "clock-jump",
            FaultKind::DiskLoss => "disk-loss",
        }
    }

    /// Every kind, in declaration order.
    pub const ALL: [FaultKind; 21] = [
        FaultKind::MasterCrash,
        FaultKind::LeaderKill,
        FaultKind::PowerLoss,
        FaultKind::Partition,
        FaultKind::PartitionOneWay,
        FaultKind::Loss,
        FaultKind::Latency,
        FaultKind::DiskCorruption,
        FaultKind::DiskFull,
        FaultKind::DiskEio,
        FaultKind::DiskSlow,
        FaultKind::NodeCrash,
        FaultKind::NodeIsolate,
        FaultKind::ControllerLeaderKill,
        FaultKind::DatacenterOutage,
        FaultKind::DatacenterPartition,
        FaultKind::KubeletRestart,
        FaultKind::Pause,
        FaultKind::ClockSkew,
        FaultKind::ClockJump,
        FaultKind::DiskLoss,
    ];

    /// The kind named `name` in files.
    pub fn from_name(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Kinds that act on worker nodes.
    pub fn hits_nodes(self) -> bool {
        matches!(
            self,
            FaultKind::NodeCrash | FaultKind::NodeIsolate | FaultKind::KubeletRestart
        )
    }
}

/// Random faults drawn from the seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nemesis {
    /// Mean time between the end of one fault and the start of the next.
    pub every: Dur,
    /// Kinds to draw from (uniformly).
    pub kinds: Spanned<Vec<FaultKind>>,
    /// Shortest and longest fault duration.
    #[serde(default = "min_for")]
    pub min_for: Dur,
    #[serde(default = "max_for")]
    pub max_for: Dur,
    /// Nothing starts before this.
    #[serde(default = "start_after")]
    pub start_after: Dur,
    /// Relative weight of each kind (kinds without one weigh 1).
    #[serde(default = "no_weights")]
    pub weights: Spanned<BTreeMap<String, u32>>,
    /// At most this many masters down or cut off at once (default: a
    /// minority, `(masters - 1) / 2`).
    #[serde(default)]
    pub max_masters_down: Option<Spanned<u32>>,
    /// At most this many datacenter-wide faults at once (default 1).
    #[serde(default)]
    pub max_datacenters: Option<u32>,
    /// At most this many worker nodes down or cut off at once (default: no
    /// bound).
    #[serde(default)]
    pub max_nodes_down: Option<u32>,
    /// Let a fault start while others are in force (within the bounds).
    #[serde(default)]
    pub overlap: bool,
    /// `bounded` (default) or `unbounded`: anything may fail at once, and
    /// only safety invariants (plus `converges`, after healing) are judged.
    #[serde(default)]
    pub mode: NemesisMode,
}

/// How far the nemesis may go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NemesisMode {
    #[default]
    Bounded,
    Unbounded,
}

fn no_weights() -> Spanned<BTreeMap<String, u32>> {
    Spanned::new(0..0, BTreeMap::new())
}
fn min_for() -> Dur {
    Dur(Duration::from_secs(1))
}
fn max_for() -> Dur {
    Dur(Duration::from_secs(10))
}
fn start_after() -> Dur {
    Dur(Duration::from_secs(2))
}

/// A property the run must keep.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invariant {
    pub kind: InvariantKind,
    /// Deadline for `converges`.
    #[serde(default)]
    pub within: Option<Dur>,
    /// Optional display name.
    #[serde(default)]
    pub name: Option<String>,
    /// For `deployments-ready`: only these deployments (default: all).
    #[serde(default)]
    pub deployments: Option<Vec<String>>,
    /// For `availability`, `latency`, `static-stability`: the service
    /// (default: every service with `[[traffic]]`).
    #[serde(default)]
    pub service: Option<String>,
    /// For `availability` and `static-stability`: the SLO, the fraction of
    /// requests that must succeed (e.g. 0.999).
    #[serde(default)]
    pub at_least: Option<f64>,
    /// For `availability`: also hold the SLO over every sliding window this
    /// long (not only over the whole run).
    #[serde(default)]
    pub window: Option<Dur>,
    /// For `latency`: the bound on the quantile of successful requests.
    #[serde(default)]
    pub below: Option<Dur>,
    /// For `latency`: which quantile (default 0.99).
    #[serde(default)]
    pub quantile: Option<f64>,
}

/// Invariant kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvariantKind {
    /// Every register history is linearizable.
    Linearizable,
    /// Every acknowledged set add is present at the end.
    NoLostWrites,
    /// Raft: at most one leader per term; committed entries never change.
    RaftSafety,
    /// After faults heal, every replica reaches the same state within `within`.
    Converges,
    /// Watch streams deliver every event once, in order, without gaps.
    WatchOrdered,
    /// After faults heal, every node is Ready and every Deployment has its
    /// desired ready, updated replicas within `within`.
    DeploymentsReady,
    /// A pod is bound to one node only, and never re-bound.
    SingleBinding,
    /// No node's bound pods request more than it can allocate.
    NoOvercommit,
    /// At most one running container per pod uid and container name.
    SingleContainer,
    /// At the end, every pod still unbound carries `PodScheduled=False`
    /// with reason `Unschedulable` and the scheduler's message.
    PendingExplained,
    /// The fraction of user requests to a service that succeed, over the
    /// run (and every `window`), is at least `at_least`.
    Availability,
    /// The `quantile` (p99) latency of successful requests is below `below`.
    Latency,
    /// While the whole control plane is down, pods that were serving keep
    /// serving and availability stays at `at_least`.
    StaticStability,
}

impl InvariantKind {
    /// The kebab-case name used in files.
    pub fn name(self) -> &'static str {
        match self {
            InvariantKind::Linearizable => "linearizable",
            InvariantKind::NoLostWrites => "no-lost-writes",
            InvariantKind::RaftSafety => "raft-safety",
            InvariantKind::Converges => "converges",
            InvariantKind::WatchOrdered => "watch-ordered",
            InvariantKind::DeploymentsReady => "deployments-ready",
            InvariantKind::SingleBinding => "single-binding",
            InvariantKind::NoOvercommit => "no-overcommit",
            InvariantKind::SingleContainer => "single-container",
            InvariantKind::PendingExplained => "pending-explained",
            InvariantKind::Availability => "availability",
            InvariantKind::Latency => "latency",
            InvariantKind::StaticStability => "static-stability",
        }
    }
}

/// A scenario file that failed to load: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScenarioError(pub String);

/// Host names of the masters, in order.
pub fn master_names(n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("m{i}")).collect()
}

/// Host names of the worker nodes, in order.
pub fn node_names(s: &Scenario) -> Vec<String> {
    let n = s.cluster.nodes_per_datacenter * s.cluster.datacenters.get_ref().len() as u32;
    (1..=n).map(|i| format!("n{i}")).collect()
}

/// Host names of the clients, in order.
pub fn client_names(n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("c{i}")).collect()
}

/// One user-traffic client host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficClient {
    /// Index into `Scenario::traffic`.
    pub entry: usize,
    /// Host name: `u1`, `u2`, ... over every `[[traffic]]` entry.
    pub name: String,
    /// The datacenter its users are in.
    pub datacenter: String,
}

/// Every user-traffic client host, in order: each entry's clients placed
/// round robin over the datacenters.
pub fn traffic_clients(s: &Scenario) -> Vec<TrafficClient> {
    let dcs = s.cluster.datacenters.get_ref();
    let mut out = Vec::new();
    for (entry, t) in s.traffic.iter().enumerate() {
        let n = t.get_ref().clients.unwrap_or(dcs.len() as u32);
        for i in 0..n as usize {
            out.push(TrafficClient {
                entry,
                name: format!("u{}", out.len() + 1),
                datacenter: dcs[i % dcs.len()].clone(),
            });
        }
    }
    out
}

impl Scenario {
    /// Loads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError(format!("{}: cannot read: {e}", path.display())))?;
        Scenario::parse(&text, &path.display().to_string())
    }

    /// Parses and validates scenario text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| {
            let (at, field) = e
                .span()
                .map(|s| {
                    let (l, c) = line_col(text, s.start);
                    let field = field_at(text, s.start)
                        .map(|f| format!("{f}: "))
                        .unwrap_or_default();
                    (format!(":{l}:{c}"), field)
                })
                .unwrap_or_default();
            let message = e.message().trim();
            let hint = did_you_mean(message)
                .map(|name| format!("; did you mean `{name}`?"))
                .unwrap_or_default();
            ScenarioError(format!("{origin}{at}: {field}{message}{hint}"))
        })?;
        scenario.validate(text, origin)?;
        Ok(scenario)
    }

    fn validate(&self, text: &str, origin: &str) -> Result<(), ScenarioError> {
        let err = |span: std::ops::Range<usize>, field: &str, msg: String| {
            let (l, c) = line_col(text, span.start);
            ScenarioError(format!("{origin}:{l}:{c}: {field}: {msg}"))
        };
        if self.duration.get_ref().0.is_zero() {
            return Err(err(
                self.duration.span(),
                "duration",
                "must be positive".into(),
            ));
        }
        let dcs = self.cluster.datacenters.get_ref();
        if dcs.is_empty() {
            return Err(err(
                self.cluster.datacenters.span(),
                "cluster.datacenters",
                "needs at least one datacenter".into(),
            ));
        }
        let unique: BTreeSet<&String> = dcs.iter().collect();
        if unique.len() != dcs.len() {
            return Err(err(
                self.cluster.datacenters.span(),
                "cluster.datacenters",
                "names must be unique".into(),
            ));
        }
        let masters = *self.cluster.masters.get_ref();
        if masters == 0 || masters > 9 {
            return Err(err(
                self.cluster.masters.span(),
                "cluster.masters",
                format!("{masters} masters: use 1 to 9 (3 or 5 are usual)"),
            ));
        }
        if let Some(w) = &self.workload {
            if *w.clients.get_ref() == 0 {
                return Err(err(
                    w.clients.span(),
                    "workload.clients",
                    "must be at least 1".into(),
                ));
            }
            let rate = *w.rate.get_ref();
            if !(rate > 0.0 && rate <= 100_000.0) {
                return Err(err(
                    w.rate.span(),
                    "workload.rate",
                    format!("{rate} is not in (0, 100000]"),
                ));
            }
            if *w.keys.get_ref() == 0 {
                return Err(err(
                    w.keys.span(),
                    "workload.keys",
                    "must be at least 1".into(),
                ));
            }
            let m = &w.mix;
            if m.get + m.put + m.cas + m.delete + m.add == 0 {
                return Err(ScenarioError(format!(
                    "{origin}: workload.mix: all weights are zero"
                )));
            }
        }
        // Raft's election timeout must outlast its heartbeat (one tick).
        if self.store.election_ticks < 2 {
            return Err(ScenarioError(format!(
                "{origin}: store.election_ticks: {}: use at least 2 (the default is {})",
                self.store.election_ticks,
                election_ticks()
            )));
        }
        if self.store.tick.0.is_zero() {
            return Err(ScenarioError(format!(
                "{origin}: store.tick: must be positive"
            )));
        }
        if self.control_plane.schedulers == 0 {
            return Err(ScenarioError(format!(
                "{origin}: control_plane.schedulers: must be at least 1"
            )));
        }
        let nodes: BTreeSet<String> = node_names(self).into_iter().collect();
        for q in [&self.cluster.node.cpu, &self.cluster.node.memory] {
            if let Err(e) = faultline_api::Quantity::parse(q) {
                return Err(ScenarioError(format!("{origin}: cluster.node: {e}")));
            }
        }
        let mut names = BTreeSet::new();
        for d in &self.deployments {
            let dep = d.get_ref();
            let field = format!("deployment ({})", dep.name);
            if nodes.is_empty() {
                return Err(err(
                    d.span(),
                    &field,
                    "a deployment needs worker nodes: set cluster.nodes_per_datacenter".into(),
                ));
            }
            if !faultline_api::validate::is_dns1123_label(&dep.name) {
                return Err(err(
                    d.span(),
                    &format!("{field}.name"),
                    "must be a DNS label (lower case letters, digits and '-')".into(),
                ));
            }
            if !names.insert((dep.namespace.clone(), dep.name.clone())) {
                return Err(err(d.span(), &field, "defined twice".into()));
            }
            if dep.replicas < 0 {
                return Err(err(
                    d.span(),
                    &format!("{field}.replicas"),
                    "must be >= 0".into(),
                ));
            }
            for q in [&dep.cpu, &dep.memory] {
                if let Err(e) = faultline_api::Quantity::parse(q) {
                    return Err(err(d.span(), &field, e.to_string()));
                }
            }
        }
        for a in &self.actions {
            let act = a.get_ref();
            if !self
                .deployments
                .iter()
                .any(|d| d.get_ref().name == act.deployment)
            {
                return Err(err(
                    a.span(),
                    "action.deployment",
                    format!("no [[deployment]] named {:?}", act.deployment),
                ));
            }
            if act.at.0 >= self.duration.get_ref().0 {
                return Err(err(
                    a.span(),
                    "action.at",
                    "is not before the end of the run".into(),
                ));
            }
            match act.kind {
                ActionKind::Scale if act.replicas.is_none_or(|r| r < 0) => {
                    return Err(err(
                        a.span(),
                        "action",
                        "scale needs `replicas` >= 0".into(),
                    ))
                }
                ActionKind::SetImage if act.image.is_none() => {
                    return Err(err(a.span(), "action", "set-image needs `image`".into()))
                }
                _ => {}
            }
        }
        let duration = self.duration.get_ref().0;
        let mut served = BTreeSet::new();
        for t in &self.traffic {
            let tr = t.get_ref();
            let field = format!("traffic ({})", tr.service);
            match self
                .deployments
                .iter()
                .map(|d| d.get_ref())
                .find(|d| d.name == tr.service)
            {
                None => {
                    return Err(err(
                        t.span(),
                        &format!("{field}.service"),
                        format!("no [[deployment]] named {:?}", tr.service),
                    ))
                }
                Some(d) if d.port.is_none() => {
                    return Err(err(
                        t.span(),
                        &format!("{field}.service"),
                        format!(
                            "deployment {:?} has no `port`, so no Service to send requests to",
                            tr.service
                        ),
                    ))
                }
                Some(_) => {}
            }
            if !served.insert(tr.service.clone()) {
                return Err(err(
                    t.span(),
                    &field,
                    "two [[traffic]] entries for one service: merge them".into(),
                ));
            }
            if !(tr.rate > 0.0 && tr.rate <= 10_000.0) {
                return Err(err(
                    t.span(),
                    &format!("{field}.rate"),
                    format!("{} is not in (0, 10000] requests per second", tr.rate),
                ));
            }
            if tr.clients == Some(0) {
                return Err(err(
                    t.span(),
                    &format!("{field}.clients"),
                    "must be at least 1".into(),
                ));
            }
            if tr.timeout.0.is_zero() {
                return Err(err(
                    t.span(),
                    &format!("{field}.timeout"),
                    "must be positive".into(),
                ));
            }
            if tr.start.0 >= duration {
                return Err(err(
                    t.span(),
                    &format!("{field}.start"),
                    "is not before the end of the run".into(),
                ));
            }
        }
        let hosts: BTreeSet<String> = master_names(masters).into_iter().collect();
        for f in &self.faults {
            let fault = f.get_ref();
            let field = format!("fault ({})", fault.kind.name());
            if fault.at.0 >= duration {
                return Err(err(
                    f.span(),
                    &field,
                    format!(
                        "at = {} is not before the end of the run ({})",
                        fault.at,
                        self.duration.get_ref()
                    ),
                ));
            }
            if let Some(d) = fault.duration {
                if d.0.is_zero() {
                    return Err(err(f.span(), &field, "`for` must be positive".into()));
                }
            }
            if matches!(
                fault.kind,
                FaultKind::DatacenterOutage | FaultKind::DatacenterPartition
            ) && !fault.target.as_ref().is_some_and(|t| dcs.contains(t))
            {
                return Err(err(
                    f.span(),
                    &format!("{field}.target"),
                    format!("needs a datacenter as `target` ({})", dcs.join(", ")),
                ));
            }
            if fault.kind == FaultKind::DatacenterPartition && dcs.len() < 2 {
                return Err(err(
                    f.span(),
                    &field,
                    "needs at least two datacenters".into(),
                ));
            }
            if fault.kind.hits_nodes() && nodes.is_empty() {
                return Err(err(
                    f.span(),
                    &field,
                    "there are no worker nodes: set cluster.nodes_per_datacenter".into(),
                ));
            }
            let needs_for = !matches!(
                fault.kind,
                FaultKind::LeaderKill
                    | FaultKind::MasterCrash
                    | FaultKind::PowerLoss
                    | FaultKind::DiskCorruption
                    | FaultKind::DiskLoss
                    | FaultKind::NodeCrash
                    | FaultKind::ControllerLeaderKill
                    | FaultKind::DatacenterOutage
                    | FaultKind::KubeletRestart
                    | FaultKind::ClockJump
            );
            if needs_for && fault.duration.is_none() {
                return Err(err(
                    f.span(),
                    &field,
                    "needs `for` (how long the fault lasts)".into(),
                ));
            }
            if let Some(t) = &fault.target {
                let ok = match fault.kind {
                    FaultKind::Partition | FaultKind::PartitionOneWay => {
                        hosts.contains(t)
                            || dcs.contains(t)
                            || ["leader", "follower", "random", "minority", "majority"]
                                .contains(&t.as_str())
                    }
                    FaultKind::Loss | FaultKind::Latency => {
                        hosts.contains(t)
                            || dcs.contains(t)
                            || ["leader", "follower", "random"].contains(&t.as_str())
                    }
                    FaultKind::LeaderKill => t == "leader",
                    FaultKind::NodeCrash | FaultKind::NodeIsolate | FaultKind::KubeletRestart => {
                        nodes.contains(t)
                            || dcs.contains(t)
                            || t == "random"
                            || t.strip_prefix("pod:").is_some_and(|d| {
                                self.deployments.iter().any(|x| x.get_ref().name == d)
                            })
                    }
                    FaultKind::ControllerLeaderKill => {
                        ["controller-manager", "scheduler"].contains(&t.as_str())
                    }
                    FaultKind::MasterCrash | FaultKind::PowerLoss => {
                        hosts.contains(t)
                            || [
                                "leader",
                                "follower",
                                "random",
                                "all",
                                "majority",
                                "one-per-datacenter",
                            ]
                            .contains(&t.as_str())
                    }
                    FaultKind::DatacenterOutage | FaultKind::DatacenterPartition => true,
                    FaultKind::Pause | FaultKind::ClockSkew | FaultKind::ClockJump => {
                        hosts.contains(t)
                            || nodes.contains(t)
                            || ["leader", "follower", "random", "random-node"].contains(&t.as_str())
                            || (!nodes.is_empty()
                                && ["controller-manager", "scheduler"].contains(&t.as_str()))
                    }
                    _ => {
                        hosts.contains(t) || ["leader", "follower", "random"].contains(&t.as_str())
                    }
                };
                if !ok {
                    return Err(err(
                        f.span(),
                        &format!("{field}.target"),
                        format!(
                            "unknown target {t:?}: use {}",
                            match fault.kind {
                                FaultKind::NodeCrash | FaultKind::NodeIsolate | FaultKind::KubeletRestart => format!(
                                    "a node ({}), a datacenter ({}), random, or pod:DEPLOYMENT (a node running one of its pods)",
                                    nodes.iter().cloned().collect::<Vec<_>>().join(", "),
                                    dcs.join(", ")
                                ),
                                FaultKind::MasterCrash | FaultKind::PowerLoss => format!(
                                    "a master ({}), or leader/follower/random/all/majority/one-per-datacenter",
                                    hosts.iter().cloned().collect::<Vec<_>>().join(", ")
                                ),
                                FaultKind::ControllerLeaderKill => {
                                    "controller-manager or scheduler".to_string()
                                }
                                FaultKind::LeaderKill => "leader".to_string(),
                                FaultKind::Pause | FaultKind::ClockSkew | FaultKind::ClockJump => format!(
                                    "a master ({}), a node ({}), leader, follower, random (a master), random-node, or (with nodes) controller-manager/scheduler (the master holding its lease)",
                                    hosts.iter().cloned().collect::<Vec<_>>().join(", "),
                                    nodes.iter().cloned().collect::<Vec<_>>().join(", ")
                                ),
                                _ => format!(
                                    "a master ({}), a datacenter ({}), or leader/follower/random{}",
                                    hosts.iter().cloned().collect::<Vec<_>>().join(", "),
                                    dcs.join(", "),
                                    if matches!(
                                        fault.kind,
                                        FaultKind::Partition | FaultKind::PartitionOneWay
                                    ) {
                                        "/minority/majority"
                                    } else {
                                        ""
                                    }
                                ),
                            }
                        ),
                    ));
                }
            }
            if let Some(p) = fault.probability {
                if !(0.0..1.0).contains(&p) {
                    return Err(err(
                        f.span(),
                        &format!("{field}.probability"),
                        format!("{p} is not in [0, 1)"),
                    ));
                }
            }
            let ignored = ignored_setting(&[
                (
                    "probability",
                    fault.probability.is_some(),
                    fault.kind == FaultKind::Loss,
                    "loss",
                ),
                (
                    "delay",
                    fault.delay.is_some(),
                    matches!(fault.kind, FaultKind::Latency | FaultKind::DiskSlow),
                    "latency and disk-slow",
                ),
                (
                    "bits",
                    fault.bits.is_some(),
                    fault.kind == FaultKind::DiskCorruption,
                    "disk-corruption",
                ),
            ]);
            if let Some((name, why)) = ignored {
                return Err(err(f.span(), &format!("{field}.{name}"), why));
            }
            if fault.bits == Some(0) {
                return Err(err(
                    f.span(),
                    &format!("{field}.bits"),
                    "must be at least 1".into(),
                ));
            }
            if fault.kind == FaultKind::Loss && fault.probability.is_none() {
                return Err(err(f.span(), &field, "needs `probability`".into()));
            }
            if matches!(fault.kind, FaultKind::Latency | FaultKind::DiskSlow)
                && fault.delay.is_none()
            {
                return Err(err(f.span(), &field, "needs `delay`".into()));
            }
            if fault.kind == FaultKind::KubeletRestart && fault.duration.is_some() {
                return Err(err(
                    f.span(),
                    &format!("{field}.for"),
                    "a kubelet restart is instantaneous: drop `for`".into(),
                ));
            }
            let clock = matches!(fault.kind, FaultKind::ClockSkew | FaultKind::ClockJump);
            match fault.offset {
                None if clock => {
                    return Err(err(
                        f.span(),
                        &field,
                        "needs `offset` (how far the clock is off, e.g. \"-90s\")".into(),
                    ))
                }
                Some(o) if clock && o.magnitude.is_zero() => {
                    return Err(err(
                        f.span(),
                        &format!("{field}.offset"),
                        "must not be zero".into(),
                    ))
                }
                Some(_) if !clock => {
                    return Err(err(
                        f.span(),
                        &format!("{field}.offset"),
                        "only clock-skew and clock-jump take an offset".into(),
                    ))
                }
                _ => {}
            }
            if fault.jitter.is_some() && fault.kind != FaultKind::Latency {
                return Err(err(
                    f.span(),
                    &format!("{field}.jitter"),
                    "only latency takes a jitter".into(),
                ));
            }
            if fault.from.is_some() && fault.kind != FaultKind::NodeIsolate {
                return Err(err(
                    f.span(),
                    &format!("{field}.from"),
                    "only node-isolate takes `from`".into(),
                ));
            }
            if let Some(groups) = &fault.groups {
                let gfield = format!("{field}.groups");
                if !matches!(
                    fault.kind,
                    FaultKind::Partition | FaultKind::PartitionOneWay
                ) {
                    return Err(err(
                        f.span(),
                        &gfield,
                        "only partition and partition-one-way take groups".into(),
                    ));
                }
                if fault.target.is_some() {
                    return Err(err(
                        f.span(),
                        &gfield,
                        "give either `target` or `groups`, not both".into(),
                    ));
                }
                if groups.len() < 2 || groups.iter().any(|g| g.is_empty()) {
                    return Err(err(
                        f.span(),
                        &gfield,
                        "needs at least two non-empty groups".into(),
                    ));
                }
                let users = traffic_clients(self);
                let store_clients = self
                    .workload
                    .as_ref()
                    .map(|w| client_names(*w.clients.get_ref()))
                    .unwrap_or_default();
                let mut seen = BTreeSet::new();
                for name in groups.iter().flatten() {
                    let known = hosts.contains(name)
                        || nodes.contains(name)
                        || dcs.contains(name)
                        || users.iter().any(|u| u.name == *name)
                        || store_clients.contains(name);
                    if !known {
                        return Err(err(
                            f.span(),
                            &gfield,
                            format!(
                                "unknown host or datacenter {name:?} (masters: {}; datacenters: {})",
                                hosts.iter().cloned().collect::<Vec<_>>().join(", "),
                                dcs.join(", ")
                            ),
                        ));
                    }
                    if !seen.insert(name.clone()) {
                        return Err(err(f.span(), &gfield, format!("{name:?} is in two groups")));
                    }
                }
            }
        }
        // Two faults of the same kind on the same explicit target at
        // overlapping times contradict each other (the first one's heal
        // would end the second early).
        for (i, a) in self.faults.iter().enumerate() {
            for b in &self.faults[i + 1..] {
                let (fa, fb) = (a.get_ref(), b.get_ref());
                let end = |f: &Fault| f.duration.map(|d| f.at.0 + d.0).unwrap_or(duration);
                let named = fa.target.as_deref().is_some_and(|t| {
                    hosts.contains(t) || nodes.contains(t) || dcs.iter().any(|d| d == t)
                });
                if fa.kind == fb.kind
                    && named
                    && fa.target == fb.target
                    && fa.at.0 < end(fb)
                    && fb.at.0 < end(fa)
                {
                    return Err(err(
                        b.span(),
                        &format!("fault ({})", fb.kind.name()),
                        format!(
                            "overlaps an earlier {} on {} (at {}): one fault per target at a time",
                            fa.kind.name(),
                            fa.target.as_deref().unwrap_or_default(),
                            fa.at
                        ),
                    ));
                }
            }
        }
        if let Some(n) = &self.nemesis {
            if n.every.0.is_zero() {
                return Err(ScenarioError(format!(
                    "{origin}: nemesis.every: must be positive"
                )));
            }
            if n.kinds.get_ref().is_empty() {
                return Err(err(
                    n.kinds.span(),
                    "nemesis.kinds",
                    "needs at least one kind".into(),
                ));
            }
            if n.min_for.0.is_zero() || n.min_for > n.max_for {
                return Err(ScenarioError(format!(
                    "{origin}: nemesis: min_for ({}) must be positive and at most max_for ({})",
                    n.min_for, n.max_for
                )));
            }
            for name in n.weights.get_ref().keys() {
                match FaultKind::from_name(name) {
                    Some(k) if n.kinds.get_ref().contains(&k) => {}
                    Some(_) => {
                        return Err(err(
                            n.weights.span(),
                            "nemesis.weights",
                            format!("{name} is not in nemesis.kinds"),
                        ))
                    }
                    None => {
                        return Err(err(
                            n.weights.span(),
                            "nemesis.weights",
                            format!("unknown fault kind {name:?}"),
                        ))
                    }
                }
            }
            if let Some(m) = &n.max_masters_down {
                if *m.get_ref() > masters {
                    return Err(err(
                        m.span(),
                        "nemesis.max_masters_down",
                        format!("{} is more than the {masters} masters", m.get_ref()),
                    ));
                }
            }
            for k in n.kinds.get_ref() {
                if k.hits_nodes() && nodes.is_empty() {
                    return Err(err(
                        n.kinds.span(),
                        "nemesis.kinds",
                        format!(
                            "{} needs worker nodes: set cluster.nodes_per_datacenter",
                            k.name()
                        ),
                    ));
                }
            }
            if n.mode == NemesisMode::Unbounded {
                for i in &self.invariants {
                    let k = i.get_ref().kind;
                    let safety = matches!(
                        k,
                        InvariantKind::Linearizable
                            | InvariantKind::NoLostWrites
                            | InvariantKind::RaftSafety
                            | InvariantKind::WatchOrdered
                            | InvariantKind::SingleBinding
                            | InvariantKind::NoOvercommit
                            | InvariantKind::SingleContainer
                            | InvariantKind::Converges
                    );
                    if !safety {
                        return Err(err(
                            i.span(),
                            &format!("invariant ({})", k.name()),
                            "an unbounded nemesis may take anything down: only safety invariants (and converges, judged after healing) can be checked".into(),
                        ));
                    }
                }
            }
        }
        if self.invariants.is_empty() {
            return Err(ScenarioError(format!(
                "{origin}: no [[invariant]]: a scenario must check something"
            )));
        }
        for i in &self.invariants {
            let inv = i.get_ref();
            let needs_workload = matches!(
                inv.kind,
                InvariantKind::Linearizable
                    | InvariantKind::NoLostWrites
                    | InvariantKind::WatchOrdered
            );
            if needs_workload && self.workload.is_none() {
                return Err(err(
                    i.span(),
                    &format!("invariant ({})", inv.kind.name()),
                    "needs a [workload] to record a history".into(),
                ));
            }
            if inv.kind == InvariantKind::WatchOrdered
                && self.workload.as_ref().is_some_and(|w| !w.watch)
            {
                return Err(err(
                    i.span(),
                    &format!("invariant ({})", inv.kind.name()),
                    "checks the workload's watcher, which `watch = false` turns off".into(),
                ));
            }
            let needs_nodes = matches!(
                inv.kind,
                InvariantKind::DeploymentsReady
                    | InvariantKind::SingleBinding
                    | InvariantKind::NoOvercommit
                    | InvariantKind::SingleContainer
                    | InvariantKind::PendingExplained
            );
            if needs_nodes && nodes.is_empty() {
                return Err(err(
                    i.span(),
                    &format!("invariant ({})", inv.kind.name()),
                    "needs worker nodes: set cluster.nodes_per_datacenter".into(),
                ));
            }
            if let Some(w) = inv.within {
                if w.0.is_zero() {
                    return Err(err(i.span(), "invariant.within", "must be positive".into()));
                }
            }
            let field = format!("invariant ({})", inv.kind.name());
            let on_traffic = matches!(
                inv.kind,
                InvariantKind::Availability
                    | InvariantKind::Latency
                    | InvariantKind::StaticStability
            );
            if on_traffic {
                if self.traffic.is_empty() {
                    return Err(err(
                        i.span(),
                        &field,
                        "needs [[traffic]] to a service to measure".into(),
                    ));
                }
                if let Some(svc) = &inv.service {
                    if !served.contains(svc) {
                        return Err(err(
                            i.span(),
                            &format!("{field}.service"),
                            format!(
                                "no [[traffic]] to {svc:?} (traffic goes to: {})",
                                served.iter().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                }
            }
            match inv.kind {
                InvariantKind::Availability | InvariantKind::StaticStability => {
                    match inv.at_least {
                        None if inv.kind == InvariantKind::Availability => {
                            return Err(err(
                                i.span(),
                                &field,
                                "needs `at_least` (the SLO, e.g. 0.999)".into(),
                            ))
                        }
                        Some(a) if !(a > 0.0 && a <= 1.0) => {
                            return Err(err(
                                i.span(),
                                &format!("{field}.at_least"),
                                format!("{a} is not in (0, 1]"),
                            ))
                        }
                        _ => {}
                    }
                    if let Some(w) = inv.window {
                        if w.0 < Duration::from_secs(1) {
                            return Err(err(
                                i.span(),
                                &format!("{field}.window"),
                                "must be at least 1s".into(),
                            ));
                        }
                    }
                }
                InvariantKind::Latency => {
                    if inv.below.is_none_or(|b| b.0.is_zero()) {
                        return Err(err(
                            i.span(),
                            &field,
                            "needs a positive `below` (e.g. \"250ms\")".into(),
                        ));
                    }
                    if let Some(q) = inv.quantile {
                        if !(q > 0.0 && q < 1.0) {
                            return Err(err(
                                i.span(),
                                &format!("{field}.quantile"),
                                format!("{q} is not in (0, 1)"),
                            ));
                        }
                    }
                }
                _ => {}
            }
            // As for faults: a setting the kind ignores is a mistake (checked
            // after what the kind itself needs).
            use InvariantKind::*;
            let k = inv.kind;
            let ignored = ignored_setting(&[
                (
                    "within",
                    inv.within.is_some(),
                    matches!(k, Converges | DeploymentsReady),
                    "converges and deployments-ready",
                ),
                (
                    "deployments",
                    inv.deployments.is_some(),
                    k == DeploymentsReady,
                    "deployments-ready",
                ),
                (
                    "service",
                    inv.service.is_some(),
                    matches!(k, Availability | Latency | StaticStability),
                    "availability, latency and static-stability",
                ),
                (
                    "at_least",
                    inv.at_least.is_some(),
                    matches!(k, Availability | StaticStability),
                    "availability and static-stability",
                ),
                (
                    "window",
                    inv.window.is_some(),
                    k == Availability,
                    "availability",
                ),
                ("below", inv.below.is_some(), k == Latency, "latency"),
                ("quantile", inv.quantile.is_some(), k == Latency, "latency"),
            ]);
            if let Some((name, why)) = ignored {
                return Err(err(i.span(), &format!("{field}.{name}"), why));
            }
        }
        Ok(())
    }
}

/// The first of `settings` given to a kind that does not take it, with
/// the message for it: each is (name, given, taken by this kind, the kinds
/// that take it). A setting the kind ignores is a mistake in the file (a
/// typo'd kind, or a setting put on the wrong entry), not a no-op.
fn ignored_setting(
    settings: &[(&'static str, bool, bool, &'static str)],
) -> Option<(&'static str, String)> {
    let &(name, _, _, who) = settings
        .iter()
        .find(|(_, given, takes, _)| *given && !*takes)?;
    let verb = if who.contains(" and ") {
        "take"
    } else {
        "takes"
    };
    Some((name, format!("only {who} {verb} `{name}`")))
}

/// The dotted name of the field whose line holds `offset` (`cluster.masters`,
/// `fault[2].kind`), when the line is a `key = value` line.
pub fn field_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with('['))?;
    // The innermost table header above the line, counting array entries.
    let mut table: Option<String> = None;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for l in text[..line_start].lines() {
        let l = l.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
            let n = counts.entry(name.trim().to_string()).or_insert(0);
            *n += 1;
            table = Some(format!("{}[{}]", name.trim(), *n));
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            table = Some(name.trim().to_string());
        }
    }
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// For a serde message `unknown field `X`, expected one of `a`, `b`, ...`
/// (or `unknown variant `X`, ...`), the expected name closest to `X`, when
/// one is close enough to be a likely typo: at most 2 edits, or at most a
/// third of the longer name's length (and always fewer edits than `X` has
/// characters, so a short name is not "corrected" into an unrelated one).
///
/// ```
/// use faultline_sim::scenario::did_you_mean;
/// assert_eq!(
///     did_you_mean("unknown field `rat`, expected one of `clients`, `rate`, `keys`"),
///     Some("rate".to_string())
/// );
/// assert_eq!(did_you_mean("unknown field `zzz`, expected `rate` or `keys`"), None);
/// ```
pub fn did_you_mean(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (unknown, rest) = rest.split_once('`')?;
    let (_, expected) = rest.split_once("expected")?;
    let names = expected.split('`').skip(1).step_by(2);
    let len = unknown.chars().count();
    names
        .map(|name| (edit_distance(unknown, name), name))
        .filter(|&(d, name)| {
            let longer = len.max(name.chars().count());
            d > 0 && d < len.max(1) && (d <= 2 || d * 3 <= longer)
        })
        .min_by_key(|&(d, _)| d)
        .map(|(_, name)| name.to_string())
}

/// Levenshtein distance: the fewest single-character insertions,
/// deletions and substitutions that turn `a` into `b`.
///
/// ```
/// use faultline_sim::scenario::edit_distance;
/// assert_eq!(edit_distance("kitten", "sitting"), 3);
/// assert_eq!(edit_distance("", "abc"), 3);
/// ```
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    // `row[j]`: the distance between the prefix of `a` seen so far and
    // `b[..j]`.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
duration = "30s"
[cluster]
datacenters = ["a", "b", "c"]
masters = 3
[workload]
rate = 50
[[fault]]
at = "5s"
kind = "leader-kill"
for = "3s"
[[invariant]]
kind = "linearizable"
"#;

    #[test]
    fn parses_a_good_file() {
        let s = Scenario::parse(GOOD, "t.toml").unwrap();
        assert_eq!(s.duration.get_ref().0, Duration::from_secs(30));
        assert_eq!(s.faults.len(), 1);
    }

    fn error_of(text: &str) -> String {
        Scenario::parse(text, "t.toml").unwrap_err().0
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = error_of(&GOOD.replace("masters = 3", "masters = \"three\""));
        assert!(e.starts_with("t.toml:6:"), "{e}");
        let e = error_of(&GOOD.replace("kind = \"leader-kill\"", "kind = \"meteor\""));
        assert!(e.contains("t.toml:11:") && e.contains("meteor"), "{e}");
        let e = error_of(&GOOD.replace("rate = 50", "rate = 50\nrat = 3"));
        assert!(e.contains("unknown field") && e.contains("rat"), "{e}");
        let e = error_of(&GOOD.replace("duration = \"30s\"", "duration = \"soon\""));
        assert!(
            e.contains("t.toml:3:") && e.contains("invalid duration"),
            "{e}"
        );
        let e = error_of(&GOOD.replace("at = \"5s\"", "at = \"50s\""));
        assert!(e.contains("not before the end"), "{e}");
        let e = error_of(&GOOD.replace("for = \"3s\"", "for = \"3s\"\ntarget = \"m9\""));
        assert!(e.contains("target") && e.contains("m9"), "{e}");
        let e = error_of(&GOOD.replace("masters = 3", "masters = 0"));
        assert!(e.contains("cluster.masters"), "{e}");
        let e = error_of("name = ");
        assert!(e.starts_with("t.toml:1:"), "{e}");
        let e = error_of(&GOOD.replace("[[invariant]]\nkind = \"linearizable\"\n", ""));
        assert!(e.contains("no [[invariant]]"), "{e}");
    }

    const TRAFFIC: &str = r#"
name = "t"
duration = "5m"
[cluster]
datacenters = ["a", "b", "c"]
masters = 3
nodes_per_datacenter = 1
[[deployment]]
name = "web"
replicas = 3
port = 80
[[deployment]]
name = "batch"
replicas = 1
[[traffic]]
service = "web"
rate = 100
[[fault]]
at = "60s"
kind = "datacenter-outage"
target = "a"
for = "2m"
[[invariant]]
kind = "availability"
service = "web"
at_least = 0.999
"#;

    #[test]
    fn traffic_and_availability_mistakes_are_named() {
        let s = Scenario::parse(TRAFFIC, "t.toml").unwrap();
        let users = traffic_clients(&s);
        assert_eq!(users.len(), 3, "one client per datacenter by default");
        assert_eq!(
            (users[2].name.as_str(), users[2].datacenter.as_str()),
            ("u3", "c")
        );
        let cases = [
            (
                "service = \"web\"\nrate",
                "service = \"nope\"\nrate",
                "no [[deployment]] named \"nope\"",
            ),
            (
                "service = \"web\"\nrate",
                "service = \"batch\"\nrate",
                "has no `port`",
            ),
            ("rate = 100", "rate = 0", "traffic (web).rate"),
            (
                "rate = 100",
                "rate = 100\nclients = 0",
                "traffic (web).clients",
            ),
            (
                "rate = 100",
                "rate = 100\nstart = \"9m\"",
                "traffic (web).start",
            ),
            (
                "rate = 100",
                "rate = 100\nmethod = \"PATCH\"",
                "unknown variant `PATCH`",
            ),
            (
                "at_least = 0.999",
                "at_least = 1.5",
                "invariant (availability).at_least",
            ),
            ("at_least = 0.999", "", "needs `at_least`"),
            (
                "at_least = 0.999",
                "at_least = 0.9\nwindow = \"0s\"",
                "window",
            ),
            (
                "service = \"web\"\nat_least",
                "service = \"api\"\nat_least",
                "no [[traffic]] to \"api\"",
            ),
            (
                "target = \"a\"",
                "target = \"z\"",
                "needs a datacenter as `target`",
            ),
            (
                "kind = \"availability\"",
                "kind = \"latency\"",
                "needs a positive `below`",
            ),
        ];
        for (from, to, needle) in cases {
            assert!(TRAFFIC.contains(from), "{from}");
            let e = error_of(&TRAFFIC.replacen(from, to, 1));
            assert!(e.contains(needle), "{to:?}: expected {needle:?} in {e}");
            assert!(e.starts_with("t.toml"), "{e}");
        }
        let no_traffic = TRAFFIC.replace("[[traffic]]\nservice = \"web\"\nrate = 100\n", "");
        assert!(error_of(&no_traffic).contains("needs [[traffic]]"));
        let e = error_of(&TRAFFIC.replace(
            "kind = \"datacenter-outage\"\ntarget = \"a\"",
            "kind = \"node-crash\"\ntarget = \"pod:nope\"",
        ));
        assert!(e.contains("pod:DEPLOYMENT"), "{e}");
    }
}
