//! What a run records for its checkers: the store workload's operations
//! (a [`History`] for linearizability, the set's adds, the watch stream)
//! and every user request. Workloads write these; the invariants read them.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use faultline_scenario::{node_names, traffic_clients, Scenario};
use faultline_store::client::ClientError;

use crate::history::{Call, CallResult, History, Outcome as OpOutcome};
use crate::watch::WatchEvent;

/// Simulated nanoseconds since the run began.
pub type Clock = Rc<dyn Fn() -> u64>;

/// Prefix of the store workload's set elements (its adds, and the prefix
/// its watcher follows).
pub const SET_PREFIX: &str = "set/";

/// One watch stream segment: gap-free from `start_revision` on.
#[derive(Debug, Clone, Default)]
pub struct WatchSegment {
    /// The revision the segment's watch started from.
    pub start_revision: u64,
    /// Every event, in the order received.
    pub received: Vec<WatchEvent>,
}

/// What the clients recorded.
pub struct Recorder {
    /// Simulated nanoseconds since the run began.
    clock: Rc<dyn Fn() -> u64>,
    /// Every register operation (linearizability).
    pub history: History,
    /// Set adds acknowledged as written.
    pub set_acknowledged: BTreeSet<String>,
    /// Set adds whose outcome is unknown (they may or may not be there).
    pub set_unknown: BTreeSet<String>,
    /// The watcher's segments, one per (re)started watch.
    pub watch: Vec<WatchSegment>,
    /// Operations that succeeded.
    pub ops_ok: u64,
    /// Operations that definitely did not take effect.
    pub ops_failed: u64,
    /// Operations whose outcome is unknown.
    pub ops_unknown: u64,
    /// Every client operation: (invoked ns, completed ns, outcome), for the
    /// report's timeline. Unknown outcomes have no completion.
    pub samples: Vec<Sample>,
}

/// One client operation as the timeline sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When it was sent (simulated ns).
    pub invoke_ns: u64,
    /// When it completed; `None` if its outcome is unknown.
    pub complete_ns: Option<u64>,
    /// How it ended.
    pub outcome: SampleOutcome,
}

/// How a client operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleOutcome {
    /// Succeeded.
    Ok,
    /// Definitely did not take effect.
    Failed,
    /// May or may not have taken effect.
    Unknown,
}

/// The recorder, shared by every client host of a run.
pub type SharedRecorder = Rc<RefCell<Recorder>>;

impl Recorder {
    /// A recorder whose times come from `clock` (simulated ns since start).
    pub fn new(clock: Rc<dyn Fn() -> u64>) -> SharedRecorder {
        Rc::new(RefCell::new(Recorder {
            clock,
            history: History::new(),
            set_acknowledged: BTreeSet::new(),
            set_unknown: BTreeSet::new(),
            watch: Vec::new(),
            ops_ok: 0,
            ops_failed: 0,
            ops_unknown: 0,
            samples: Vec::new(),
        }))
    }

    fn now_ns(&self) -> u64 {
        (self.clock)()
    }

    /// Records the invocation of `call` on `key` by `client`; returns
    /// the operation's id.
    pub fn invoke(&mut self, client: u64, key: &str, call: Call) -> u64 {
        let t = self.now_ns();
        self.history.invoke(client, key, call, t)
    }

    fn sample(&mut self, invoke_ns: u64, outcome: SampleOutcome) {
        let complete_ns = (outcome != SampleOutcome::Unknown).then(|| self.now_ns());
        match outcome {
            SampleOutcome::Ok => self.ops_ok += 1,
            SampleOutcome::Failed => self.ops_failed += 1,
            SampleOutcome::Unknown => self.ops_unknown += 1,
        }
        self.samples.push(Sample {
            invoke_ns,
            complete_ns,
            outcome,
        });
    }

    fn finish(&mut self, id: u64, outcome: OpOutcome) {
        let invoke_ns = self.history.get(id).map(|op| op.invoke_ns).unwrap_or(0);
        let kind = match outcome {
            OpOutcome::Ok { .. } => SampleOutcome::Ok,
            OpOutcome::Fail { .. } => SampleOutcome::Failed,
            OpOutcome::Unknown => SampleOutcome::Unknown,
        };
        self.sample(invoke_ns, kind);
        self.history
            .complete(id, outcome)
            .expect("each op completes once, after it was invoked");
    }

    /// Records a successful completion.
    pub fn ok(&mut self, id: u64, result: CallResult) {
        let complete_ns = self.now_ns();
        self.finish(
            id,
            OpOutcome::Ok {
                complete_ns,
                result,
            },
        );
    }

    /// Records a failed call: definitely not applied, or unknown.
    pub fn failed(&mut self, id: u64, e: &ClientError) {
        let complete_ns = self.now_ns();
        let outcome = match e {
            ClientError::Timeout {
                maybe_applied: true,
            } => OpOutcome::Unknown,
            _ => OpOutcome::Fail { complete_ns },
        };
        self.finish(id, outcome);
    }
}

/// What the final phase read.
#[derive(Debug, Default)]
pub struct FinalState {
    /// Every set element present, with its revision and value.
    pub set: Vec<(u64, String, String)>,
    /// Why the final read failed, if it did.
    pub error: Option<String>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Ok,
    /// Any other HTTP status (after the load balancer's retry).
    Status(u16),
    /// No answer within the timeout.
    Timeout,
    /// The connection failed or broke.
    Error,
}

/// One user request.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    /// Index into [`TrafficLog::services`].
    pub service: u16,
    /// Index into [`TrafficLog::clients`].
    pub client: u16,
    /// When it was sent (simulated ns).
    pub sent_ns: u64,
    /// When it was answered or gave up (simulated ns).
    pub done_ns: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Index into [`TrafficLog::nodes`] of the last node tried.
    pub node: Option<u16>,
    /// Index into [`TrafficLog::pods`] of the pod that answered.
    pub pod: Option<u32>,
    /// Nodes tried (the load balancer retries once).
    pub attempts: u8,
}

impl Request {
    /// As the availability checker sees it.
    pub fn judged(&self) -> crate::availability::Request {
        crate::availability::Request {
            sent_ns: self.sent_ns,
            done_ns: self.done_ns,
            ok: self.outcome == Outcome::Ok,
        }
    }
}

/// Every user request of a run.
#[derive(Debug, Default)]
pub struct TrafficLog {
    /// Every request, in the order sent.
    pub requests: Vec<Request>,
    /// Service names, by `Request::service`.
    pub services: Vec<String>,
    /// (client host, its datacenter), by `Request::client`.
    pub clients: Vec<(String, String)>,
    /// Node names, by `Request::node`.
    pub nodes: Vec<String>,
    /// Pod names, by `Request::pod`.
    pub pods: Vec<String>,
    pod_ids: BTreeMap<String, u32>,
}

impl TrafficLog {
    /// The log of `s`'s traffic, with its services, clients and nodes named.
    pub fn new(s: &Scenario) -> TrafficLog {
        TrafficLog {
            services: s.traffic.iter().map(|t| t.service.clone()).collect(),
            clients: traffic_clients(s)
                .into_iter()
                .map(|c| (c.name, c.datacenter))
                .collect(),
            nodes: node_names(s),
            ..Default::default()
        }
    }

    /// The index of pod `pod`, named on first sight.
    pub fn pod_id(&mut self, pod: &str) -> u32 {
        if let Some(&id) = self.pod_ids.get(pod) {
            return id;
        }
        let id = self.pods.len() as u32;
        self.pods.push(pod.to_string());
        self.pod_ids.insert(pod.to_string(), id);
        id
    }
}

/// The log, shared by every user host of a run.
pub type SharedTrafficLog = Rc<RefCell<TrafficLog>>;
