//! The scheduler's async shell: informers in, bindings, status and Events
//! out, around the sans-IO [`Cache`].
//!
//! [`run`] runs on every master. The node and pod informers run on every
//! master all the time (they are host tasks, which a lost election cannot
//! abort); a Lease (`kube-system/kube-scheduler`) elects one master whose
//! *leading work* — rebuilding the [`Cache`] from the informers, the queue
//! of pending pods and the scheduling loop — runs inside the [`Elector`]'s
//! task, so it dies the moment leadership is lost. Every write goes through
//! the elector's fenced client: a deposed leader's binding is refused by the
//! API server, and the binding itself is a compare-and-swap, so a pod is
//! never bound twice whatever the timing.
//!
//! One pod is decided at a time:
//!
//! ```text
//! queue.next() -> pending? -> cache.schedule(pod, rng) -> assume -> POST binding
//!                                  |                                 | ok: keep the assumption
//!                                  |                                 |     (the watch confirms it)
//!                                  |                                 | 404, 409 (bound/gone): drop
//!                                  |                                 | maybe applied: forget, look again later
//!                                  |                                 | else: forget, retry with backoff
//!                                  +-> unschedulable: PodScheduled=False + a FailedScheduling Event,
//!                                      parked until a node or a pod's departure can help (or 30 s)
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use faultline_api::{Event, Node, ObjectMeta, ObjectReference, Pod};
use faultline_client::{
    ApiError, Change, Client, Elector, ElectorConfig, Informer, ListParams, WorkQueue,
};
use faultline_env::Env;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::RngCore;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::{Cache, Unschedulable};

/// The `spec.schedulerName` this scheduler serves by default, and the
/// `source.component` of its Events.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// The namespace of the scheduler's leader-election Lease.
pub const LEASE_NAMESPACE: &str = "kube-system";

/// The name of the scheduler's leader-election Lease.
pub const LEASE_NAME: &str = "kube-scheduler";

/// How often the leader looks for expired assumptions and for the periodic
/// retry of unschedulable pods.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);

/// Bindings and status writes the scheduler has outstanding at most.
const MAX_IN_FLIGHT: usize = 256;

/// Scheduler tunables.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Pods whose `spec.schedulerName` is empty or equal to this are ours;
    /// also the `source.component` of our Events.
    pub name: String,
    /// This candidate in the election (the host name). Overrides
    /// `elector.identity`.
    pub identity: String,
    /// The election's Lease and timings.
    pub elector: ElectorConfig,
    /// Unschedulable pods are retried at least this often, even when no
    /// cluster change was seen that could help them.
    pub unschedulable_retry: Duration,
    /// An assumed placement the pod watch has not confirmed within this
    /// long is forgotten (its resources released) and the pod looked at
    /// again.
    pub assume_ttl: Duration,
    /// After a binding whose outcome is unknown (sent, no answer), the pod
    /// is looked at again after this long: by then the watch has usually
    /// shown whether it was bound.
    pub bind_unknown_delay: Duration,
}

impl SchedulerConfig {
    /// Defaults: `default-scheduler`, Lease `kube-system/kube-scheduler`
    /// with client-go's timings, 30 s retry and assumption TTL.
    pub fn new(identity: &str) -> SchedulerConfig {
        SchedulerConfig {
            name: DEFAULT_SCHEDULER_NAME.to_string(),
            identity: identity.to_string(),
            elector: ElectorConfig::new(LEASE_NAMESPACE, LEASE_NAME, identity),
            unschedulable_retry: Duration::from_secs(30),
            assume_ttl: Duration::from_secs(30),
            bind_unknown_delay: Duration::from_secs(2),
        }
    }
}

/// Runs the scheduler on this host forever: starts node and pod informers
/// (all namespaces) and schedules while elected. Call it on every master.
pub async fn run(client: Client, cfg: SchedulerConfig) {
    let nodes = Informer::<Node>::start(client.clone(), None, ListParams::default(), None);
    let pods = Informer::<Pod>::start(client.clone(), None, ListParams::default(), None);
    run_with_informers(client, cfg, nodes, pods).await
}

/// [`run`] with informers the caller started (and may share with other
/// components of the host): nodes and pods of every namespace.
pub async fn run_with_informers(
    client: Client,
    cfg: SchedulerConfig,
    nodes: Informer<Node>,
    pods: Informer<Pod>,
) {
    let mut elector_cfg = cfg.elector.clone();
    elector_cfg.identity = cfg.identity.clone();
    let cfg = Rc::new(cfg);
    Elector::new(client, elector_cfg)
        .run(move |fenced| lead(fenced, cfg.clone(), nodes.clone(), pods.clone()))
        .await
}

/// A pod's `(namespace, name)`.
type PodKey = (String, String);

fn key_of(pod: &Pod) -> PodKey {
    (pod.metadata.namespace.clone(), pod.metadata.name.clone())
}

/// True when `pod` waits for this scheduler: not bound, not being deleted,
/// not finished, and `spec.schedulerName` empty or `scheduler_name`.
pub fn is_pending(pod: &Pod, scheduler_name: &str) -> bool {
    pod.spec.node_name.is_empty()
        && pod.metadata.deletion_timestamp.is_none()
        && !pod.is_terminal()
        && (pod.spec.scheduler_name.is_empty() || pod.spec.scheduler_name == scheduler_name)
}

/// True when a node update may make a pod fit that did not: readiness,
/// cordon, taints, labels or resources changed (a heartbeat does not count).
fn node_fit_changed(old: &Node, new: &Node) -> bool {
    old.is_ready() != new.is_ready()
        || old.spec != new.spec
        || old.metadata.labels != new.metadata.labels
        || old.status.allocatable != new.status.allocatable
        || old.status.capacity != new.status.capacity
}

/// The `FailedScheduling` Warning Event about `pod`, named
/// `<pod>.<unique as hex>` as client-go's recorder names Events (it passes
/// the time in nanoseconds). Not `generateName = "<pod>."`: the API
/// server's validation, like Kubernetes', accepts a trailing `-` in a
/// `generateName` prefix but not a trailing `.`.
pub fn failed_scheduling_event(
    pod: &Pod,
    message: &str,
    component: &str,
    wall_ms: u64,
    unique: u64,
) -> Event {
    let metadata = ObjectMeta {
        name: format!("{}.{unique:x}", pod.metadata.name),
        namespace: pod.metadata.namespace.clone(),
        ..Default::default()
    };
    Event::first_occurrence(
        metadata,
        ObjectReference::to(pod),
        "Warning",
        "FailedScheduling",
        message,
        component,
        faultline_api::time::rfc3339(wall_ms),
    )
}

/// What the leader knows beyond the informers. Borrowed only between
/// awaits, never across one.
#[derive(Default)]
struct State {
    cache: Cache,
    /// Pods assumed onto a node (binding in flight, or sent and not yet
    /// confirmed by the watch), by uid: when, and the pod's key.
    /// Invariant: every entry is an assumed (unconfirmed) pod of `cache`.
    assumed: BTreeMap<String, (Instant, PodKey)>,
    /// Pods no node fitted at their last decision, waiting for a change
    /// that could help.
    unschedulable: BTreeSet<PodKey>,
}

impl State {
    /// Undoes the assumption for `uid`; a confirmed placement stays.
    fn forget(&mut self, uid: &str) {
        self.cache.forget(uid);
        self.assumed.remove(uid);
    }
}

/// The leading work of one term.
struct Leader {
    env: Env,
    /// The fenced client: every write goes through it.
    client: Client,
    cfg: Rc<SchedulerConfig>,
    pods: Informer<Pod>,
    queue: WorkQueue<PodKey>,
    state: RefCell<State>,
}

/// One term of leadership: rebuild the cache, then schedule until the
/// elector aborts this task. Everything runs inside this one future (no
/// spawned task outlives the term, bar the queue's delayed re-adds, which
/// only touch this term's queue).
async fn lead(
    client: Client,
    cfg: Rc<SchedulerConfig>,
    nodes: Informer<Node>,
    pods: Informer<Pod>,
) {
    let env = client.env().clone();
    // Subscribe before reading the informers' caches: a change between
    // the two is then both in the snapshot and in the stream, and applying
    // it twice is harmless (every cache update is idempotent).
    let node_changes = nodes.subscribe();
    let pod_changes = pods.subscribe();
    nodes.wait_synced().await;
    pods.wait_synced().await;

    let leader = Leader {
        env: env.clone(),
        client,
        cfg,
        pods: pods.clone(),
        queue: WorkQueue::new(env.clone()),
        state: RefCell::new(State::default()),
    };
    let mut pending = 0;
    {
        let mut st = leader.state.borrow_mut();
        nodes.for_each(|n| st.cache.upsert_node(n.clone()));
        pods.for_each(|p| {
            st.cache.upsert_pod(p);
            if is_pending(p, &leader.cfg.name) {
                leader.queue.add(key_of(p));
                pending += 1;
            }
        });
        env.trace(format_args!(
            "scheduler: {} leading with {} nodes, {} pods placed, {} pending",
            leader.cfg.identity,
            st.cache.node_count(),
            st.cache.pod_count(),
            pending
        ));
    }
    tokio::join!(
        leader.watch_nodes(node_changes),
        leader.watch_pods(pod_changes),
        leader.schedule_loop(),
        leader.housekeeping(),
    );
}

impl Leader {
    /// Keeps the cache's nodes current; retries unschedulable pods when a
    /// node appears or changes in a way that could let them fit.
    async fn watch_nodes(&self, mut changes: UnboundedReceiver<Change<Node>>) {
        while let Some(change) = changes.recv().await {
            let helps = {
                let mut st = self.state.borrow_mut();
                match change {
                    Change::Added(n) => {
                        let name = n.metadata.name.clone();
                        st.cache.upsert_node(n);
                        Some(format!("node {name} added"))
                    }
                    Change::Modified { old, new } => {
                        let name = new.metadata.name.clone();
                        let changed = node_fit_changed(&old, &new);
                        st.cache.upsert_node(new);
                        changed.then(|| format!("node {name} changed"))
                    }
                    Change::Deleted(n) => {
                        st.cache.remove_node(&n.metadata.name);
                        None
                    }
                    Change::Resync => None,
                }
            };
            if let Some(why) = helps {
                self.retry_unschedulable(&why);
            }
        }
    }

    /// Keeps the cache's pods current, queues pending pods, and retries
    /// unschedulable pods when a placed pod leaves or finishes.
    async fn watch_pods(&self, mut changes: UnboundedReceiver<Change<Pod>>) {
        while let Some(change) = changes.recv().await {
            let freed = match change {
                Change::Added(p) => {
                    self.on_pod(&p);
                    false
                }
                Change::Modified { old, new } => {
                    self.on_pod(&new);
                    !new.spec.node_name.is_empty() && new.is_terminal() && !old.is_terminal()
                }
                Change::Deleted(p) => {
                    let mut st = self.state.borrow_mut();
                    st.cache.remove_pod(&p);
                    st.assumed.remove(&p.metadata.uid);
                    st.unschedulable.remove(&key_of(&p));
                    !p.spec.node_name.is_empty() && !p.is_terminal()
                }
                Change::Resync => false,
            };
            if freed {
                self.retry_unschedulable("a pod left its node");
            }
        }
    }

    /// A pod was added or modified.
    fn on_pod(&self, pod: &Pod) {
        let key = key_of(pod);
        let pending = is_pending(pod, &self.cfg.name);
        {
            let mut st = self.state.borrow_mut();
            st.cache.upsert_pod(pod);
            if !pod.spec.node_name.is_empty() {
                // The watch confirmed a placement (ours or anyone's).
                st.assumed.remove(&pod.metadata.uid);
            }
            if !pending {
                st.unschedulable.remove(&key);
            }
        }
        if pending {
            self.queue.add(key);
        }
    }

    /// Moves every parked unschedulable pod back into the queue.
    fn retry_unschedulable(&self, why: &str) {
        let parked = std::mem::take(&mut self.state.borrow_mut().unschedulable);
        if parked.is_empty() {
            return;
        }
        self.env.trace(format_args!(
            "scheduler: retrying {} unschedulable pod(s): {why}",
            parked.len()
        ));
        for key in parked {
            self.queue.add(key);
        }
    }

    /// Decides pods one at a time and carries each decision out in the
    /// background, as Kubernetes' scheduling cycle hands a pod to its
    /// binding cycle and goes on: the pod is assumed on its node at once,
    /// so the next decision counts it, and the binding's round trip through
    /// the API server and the store no longer limits the rate to one pod
    /// per round trip. At most [`MAX_IN_FLIGHT`] writes are outstanding.
    async fn schedule_loop(&self) {
        let mut in_flight: FuturesUnordered<LocalBoxFuture<'_, ()>> = FuturesUnordered::new();
        loop {
            tokio::select! {
                biased;
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                key = self.queue.next(), if in_flight.len() < MAX_IN_FLIGHT => {
                    if let Some(write) = self.schedule_one(key) {
                        in_flight.push(write);
                    }
                }
            }
        }
    }

    /// Decides one pod; the write that carries the decision out, if any.
    fn schedule_one(&self, key: PodKey) -> Option<LocalBoxFuture<'_, ()>> {
        // The informer has the newest version of the pod we know of.
        let Some(pod) = self.pods.get(&key.0, &key.1) else {
            self.queue.forget(&key);
            return None;
        };
        if !is_pending(&pod, &self.cfg.name) {
            self.queue.forget(&key);
            self.state.borrow_mut().unschedulable.remove(&key);
            return None;
        }
        if self.state.borrow().assumed.contains_key(&pod.metadata.uid) {
            // Bound by us, not yet confirmed by the watch: the pod watch
            // or the assumption's expiry brings it back if need be.
            return None;
        }
        let tiebreak = self.env.rng().next_u64();
        let decision = self.state.borrow().cache.schedule(&pod, tiebreak);
        match decision {
            Ok(node) => {
                self.assume(&key, &pod, &node);
                Some(Box::pin(self.bind(key, pod, node)))
            }
            Err(why) => Some(Box::pin(async move {
                self.unschedulable(key, &pod, &why).await
            })),
        }
    }

    /// Counts `pod` on `node` until the binding is confirmed or dropped.
    fn assume(&self, key: &PodKey, pod: &Pod, node: &str) {
        let mut st = self.state.borrow_mut();
        st.cache.assume(pod, node);
        st.assumed
            .insert(pod.metadata.uid.clone(), (self.env.now(), key.clone()));
        st.unschedulable.remove(key);
    }

    async fn bind(&self, key: PodKey, pod: Pod, node: String) {
        let uid = pod.metadata.uid.clone();
        let (ns, name) = (&key.0, &key.1);
        let result = self.client.bind(ns, name, &uid, &node).await;
        let Err(e) = result else {
            self.queue.forget(&key);
            self.env
                .trace(format_args!("scheduler: bound {ns}/{name} to {node}"));
            return;
        };
        self.state.borrow_mut().forget(&uid);
        match &e {
            ApiError::Transport {
                maybe_applied: true,
                ..
            } => {
                // The binding may have happened: the watch will tell. If
                // the pod still looks pending later, a second binding
                // either succeeds (the first did not happen) or gets 409.
                self.env.trace(format_args!(
                    "scheduler: binding {ns}/{name} to {node} has an unknown outcome: {e}"
                ));
                self.queue.add_after(key, self.cfg.bind_unknown_delay);
            }
            e if e.is_not_found() => {
                self.env
                    .trace(format_args!("scheduler: {ns}/{name} is gone, dropped"));
                self.queue.forget(&key);
            }
            e if e.is_conflict() => self.resolve_conflict(key, &uid, e).await,
            e => {
                self.env.trace(format_args!(
                    "scheduler: binding {ns}/{name} to {node} failed, will retry: {e}"
                ));
                self.queue.retry(key);
            }
        }
    }

    /// A binding got 409. If the pod is bound already (by an earlier
    /// leader, or by a binding of ours whose answer was lost), being
    /// deleted, or replaced by a new pod of the same name, there is nothing
    /// to do; otherwise (the pod changed under the binding, or our fence is
    /// stale) try again later.
    async fn resolve_conflict(&self, key: PodKey, uid: &str, e: &ApiError) {
        let (ns, name) = (&key.0, &key.1);
        let now = match self.client.get::<Pod>(ns, name).await {
            Ok(p) => Some(p),
            Err(g) if g.is_not_found() => None,
            Err(_) => {
                self.queue.retry(key);
                return;
            }
        };
        let done = match &now {
            None => Some("it is gone".to_string()),
            Some(p) if p.metadata.uid != uid => Some("it was replaced".to_string()),
            Some(p) if !p.spec.node_name.is_empty() => {
                Some(format!("it is bound to {}", p.spec.node_name))
            }
            Some(p) if p.metadata.deletion_timestamp.is_some() => {
                Some("it is being deleted".to_string())
            }
            Some(_) => None,
        };
        match done {
            Some(why) => {
                self.env.trace(format_args!(
                    "scheduler: {ns}/{name} not bound by us, dropped: {why}"
                ));
                self.queue.forget(&key);
            }
            None => {
                self.env.trace(format_args!(
                    "scheduler: binding {ns}/{name} conflicted, will retry: {e}"
                ));
                self.queue.retry(key);
            }
        }
    }

    /// Records that no node fits: `PodScheduled=False` and a
    /// `FailedScheduling` Event, written only when the verdict changed, so
    /// repeated retries of a stuck pod do not storm the API server.
    async fn unschedulable(&self, key: PodKey, pod: &Pod, why: &Unschedulable) {
        let (ns, name) = (&key.0, &key.1);
        let message = why.to_string();
        self.state.borrow_mut().unschedulable.insert(key.clone());
        self.queue.forget(&key);
        let mut next = pod.clone();
        let was_false = pod.condition("PodScheduled") == Some("False");
        if !next.set_condition("PodScheduled", "False", "Unschedulable", &message) {
            return;
        }
        self.env.trace(format_args!(
            "scheduler: {ns}/{name} unschedulable: {message}"
        ));
        if !was_false {
            let stamp = faultline_api::time::rfc3339(self.env.wall_ms());
            if let Some(c) = next
                .status
                .conditions
                .iter_mut()
                .find(|c| c.kind == "PodScheduled")
            {
                c.last_transition_time = Some(stamp);
            }
        }
        // With the informer's resourceVersion: if the pod changed since,
        // the write fails and the change (an update event) queues the pod
        // for a fresh decision anyway.
        if let Err(e) = self.client.update_status(&next).await {
            self.env.trace(format_args!(
                "scheduler: recording {ns}/{name} unschedulable failed: {e}"
            ));
            if !e.is_conflict() && !e.is_not_found() {
                self.queue.retry(key);
            }
            return;
        }
        // Nanoseconds, as client-go; the low digits from the host's seeded
        // stream keep two Events of one millisecond apart.
        let wall_ms = self.env.wall_ms();
        let unique = wall_ms * 1_000_000 + self.env.rng().next_u64() % 1_000_000;
        let event = failed_scheduling_event(pod, &message, &self.cfg.name, wall_ms, unique);
        if let Err(e) = self.client.create(&event).await {
            // Events are for people; losing one is harmless.
            self.env.trace(format_args!(
                "scheduler: FailedScheduling event for {ns}/{name} not recorded: {e}"
            ));
        }
    }

    /// Forgets assumptions the watch never confirmed, and retries parked
    /// and pending pods periodically (a safety net for missed changes).
    async fn housekeeping(&self) {
        let mut next_sweep = self.env.now() + self.cfg.unschedulable_retry;
        loop {
            self.env.sleep(HOUSEKEEPING_EVERY).await;
            let now = self.env.now();
            let expired: Vec<(String, PodKey)> = {
                let st = self.state.borrow();
                st.assumed
                    .iter()
                    .filter(|(_, (at, _))| now.duration_since(*at) >= self.cfg.assume_ttl)
                    .map(|(uid, (_, key))| (uid.clone(), key.clone()))
                    .collect()
            };
            for (uid, key) in expired {
                self.state.borrow_mut().forget(&uid);
                self.env.trace(format_args!(
                    "scheduler: {}/{} binding not confirmed in time, assumption dropped",
                    key.0, key.1
                ));
                self.queue.add(key);
            }
            if now >= next_sweep {
                next_sweep = now + self.cfg.unschedulable_retry;
                self.retry_unschedulable("periodic retry");
                let name = &self.cfg.name;
                self.pods.for_each(|p| {
                    if is_pending(p, name) {
                        self.queue.add(key_of(p));
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).expect("a valid pod")
    }

    #[test]
    fn pending_means_unbound_alive_unfinished_and_ours() {
        let base = serde_json::json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": []}
        });
        assert!(is_pending(&pod(base.clone()), DEFAULT_SCHEDULER_NAME));
        let mut bound = base.clone();
        bound["spec"]["nodeName"] = "n1".into();
        assert!(!is_pending(&pod(bound), DEFAULT_SCHEDULER_NAME));
        let mut deleting = base.clone();
        deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        assert!(!is_pending(&pod(deleting), DEFAULT_SCHEDULER_NAME));
        let mut failed = base.clone();
        failed["status"]["phase"] = "Failed".into();
        assert!(!is_pending(&pod(failed), DEFAULT_SCHEDULER_NAME));
        let mut other = base.clone();
        other["spec"]["schedulerName"] = "other".into();
        assert!(!is_pending(&pod(other.clone()), DEFAULT_SCHEDULER_NAME));
        assert!(is_pending(&pod(other), "other"));
    }

    #[test]
    fn failed_scheduling_events_look_like_kubernetes() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "big", "namespace": "team", "uid": "u1"},
            "spec": {"containers": []}
        }));
        let e = failed_scheduling_event(
            &p,
            "0/3 nodes are available.",
            "default-scheduler",
            0,
            0xbeef,
        );
        assert_eq!(e.kind, "Event");
        assert_eq!(e.metadata.name, "big.beef");
        assert_eq!(faultline_api::Validate::validate(&e), vec![]);
        assert_eq!(e.metadata.namespace, "team");
        assert_eq!(e.involved_object.kind, "Pod");
        assert_eq!(e.involved_object.uid, "u1");
        assert_eq!(e.reason, "FailedScheduling");
        assert_eq!(e.event_type, "Warning");
        assert_eq!(e.source.component, "default-scheduler");
        assert_eq!(e.first_timestamp.as_deref(), Some("1970-01-01T00:00:00Z"));
    }

    #[test]
    fn heartbeats_do_not_count_as_node_changes() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                                        "lastHeartbeatTime": "2026-01-01T00:00:00Z"}]}
        }))
        .expect("a valid node");
        let mut beat = node.clone();
        beat.status.conditions[0].last_heartbeat_time = Some("2026-01-01T00:00:10Z".into());
        assert!(!node_fit_changed(&node, &beat));
        let mut down = node.clone();
        down.status.conditions[0].status = "False".into();
        assert!(node_fit_changed(&node, &down));
        let mut labelled = node.clone();
        labelled.metadata.labels.insert("x".into(), "y".into());
        assert!(node_fit_changed(&node, &labelled));
    }
}
