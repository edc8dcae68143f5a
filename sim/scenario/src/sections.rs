//! The sections of a scenario file besides its faults and invariants: the
//! cluster, the store's tuning, the client workload, deployments, user
//! actions and traffic, the nemesis, and the control plane's tuning.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::duration::Dur;
use crate::fault::FaultKind;

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
    pub bugs: Vec<ControlPlaneBug>,
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
    pub datacenters: Vec<String>,
    /// Number of masters (store replicas): 1, 3 or 5 are sensible.
    pub masters: u32,
    #[serde(default)]
    pub latency: LinkLatency,
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
pub struct LinkLatency {
    #[serde(default = "ms1")]
    pub within: Dur,
    #[serde(default = "ms20")]
    pub between: Dur,
    /// Uniform random extra delay per segment.
    #[serde(default = "zero")]
    pub jitter: Dur,
}

impl Default for LinkLatency {
    fn default() -> LinkLatency {
        LinkLatency {
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
    pub bugs: Vec<Bug>,
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
    pub clients: u32,
    /// Operations per simulated second, all clients together.
    #[serde(default = "rate")]
    pub rate: f64,
    /// Registers (keys) the register workload spreads over.
    #[serde(default = "keys")]
    pub keys: u32,
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

fn clients() -> u32 {
    3
}
fn rate() -> f64 {
    100.0
}
fn keys() -> u32 {
    8
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

/// Random faults drawn from the seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nemesis {
    /// Mean time between the end of one fault and the start of the next.
    pub every: Dur,
    /// Kinds to draw from (uniformly).
    pub kinds: Vec<FaultKind>,
    /// Shortest and longest fault duration.
    #[serde(default = "min_for")]
    pub min_for: Dur,
    #[serde(default = "max_for")]
    pub max_for: Dur,
    /// Nothing starts before this.
    #[serde(default = "start_after")]
    pub start_after: Dur,
    /// Relative weight of each kind (kinds without one weigh 1).
    #[serde(default)]
    pub weights: BTreeMap<FaultKind, u32>,
    /// At most this many masters down or cut off at once (default: a
    /// minority, `(masters - 1) / 2`).
    #[serde(default)]
    pub max_masters_down: Option<u32>,
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

fn min_for() -> Dur {
    Dur(Duration::from_secs(1))
}
fn max_for() -> Dur {
    Dur(Duration::from_secs(10))
}
fn start_after() -> Dur {
    Dur(Duration::from_secs(2))
}
