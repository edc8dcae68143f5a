//! The controller manager: the async driver that runs the pure reconcilers
//! of this crate against the API server.
//!
//! Every master runs [`run`]. It starts one informer per kind the
//! controllers read (Pods, ReplicaSets, Deployments, Services, Endpoints,
//! Nodes, Leases; all namespaces) and keeps them running whether or not it
//! leads, so a newly elected leader starts from warm caches. Leadership is
//! the Lease `kube-system/kube-controller-manager` ([`Elector`]); only the
//! leader's *elected work* runs the controllers, and every write it makes
//! goes through the fenced client, so the API server refuses the writes of
//! a deposed leader (409) even if it has not noticed yet.
//!
//! The elected work is one task (the Elector aborts it on loss of
//! leadership, and with it everything below, since nothing here is spawned
//! separately): it subscribes to the informers, waits for them to sync,
//! enqueues every object once, then runs concurrently
//!
//! - feeders, turning informer changes into work-queue keys (a pod change
//!   wakes its ReplicaSet, or the ones whose selector matches an orphan,
//!   and the Services whose selector matches; a ReplicaSet change wakes its
//!   Deployment; an Endpoints change wakes its Service) and recording pod
//!   arrivals and departures in the ReplicaSet [`Expectations`];
//! - one worker per keyed controller (ReplicaSet, Deployment, Endpoints),
//!   each draining its own [`WorkQueue`] of `(namespace, name)` keys;
//! - the node lifecycle controller every `monitor_period_ms`;
//! - the garbage collector every [`ManagerConfig::gc_every`].
//!
//! Actions run as the crate documentation says: in order, stopping at the
//! first failure, which requeues the key with backoff. Every write is
//! traced (`controller: create pod default/web-6b7f-x2k4p`); no-op
//! reconciles are not.

use std::cell::RefCell;
use std::time::Duration;

use faultline_api::{
    ConfigMap, Deployment, Endpoints, Event, Lease, Namespace, Node, Pod, ReplicaSet, Resource,
    Secret, Service,
};
use faultline_client::{
    ApiError, Change, Client, DeleteParams, Elector, ElectorConfig, Informer, ListParams, WorkQueue,
};
use faultline_env::Env;
use futures_util::future::join_all;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::expectations::Expectations;
use crate::gc::{self, ObjectSummary};
use crate::nodelifecycle::{self, NodeLifecycleConfig, NodeLifecycleState, LEASE_NAMESPACE};
use crate::{deployment, endpoints, namespace, replicaset, Action, EventRecord, Object};

/// The `source.component` of the Events the controllers record.
pub const COMPONENT: &str = "controller-manager";
/// Namespace of the leader-election Lease.
pub const ELECTION_NAMESPACE: &str = "kube-system";
/// Name of the leader-election Lease; its `holderIdentity` is the leader's
/// [`ManagerConfig::identity`].
pub const ELECTION_NAME: &str = "kube-controller-manager";

/// The kinds the manager caches completely: the garbage collector judges
/// owner references to these kinds only.
const CACHED_KINDS: [&str; 7] = [
    Pod::KIND,
    ReplicaSet::KIND,
    Deployment::KIND,
    Service::KIND,
    Endpoints::KIND,
    Node::KIND,
    Lease::KIND,
];

/// How a controller manager runs.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// This candidate in the leader election (the host name): must differ
    /// between masters.
    pub identity: String,
    /// Timing of the node lifecycle controller; it runs every
    /// `monitor_period_ms`.
    pub node_lifecycle: NodeLifecycleConfig,
    /// How often the informers re-announce every ReplicaSet, Deployment,
    /// Service and Endpoints, so a lost wake-up is repaired (default 30 s).
    pub resync: Duration,
    /// How often the garbage collector scans the caches (default 20 s).
    pub gc_every: Duration,
}

impl ManagerConfig {
    /// Kubernetes' defaults for the candidate `identity`.
    pub fn new(identity: &str) -> ManagerConfig {
        ManagerConfig {
            identity: identity.to_string(),
            node_lifecycle: NodeLifecycleConfig::default(),
            resync: Duration::from_secs(30),
            gc_every: Duration::from_secs(20),
        }
    }
}

/// Runs the controller manager on this host forever: informers at once,
/// the controllers whenever this host holds the election Lease. `client`
/// needs the controller role (everything except binding pods). Never
/// returns; drop the task to stop it.
pub async fn run(client: Client, cfg: ManagerConfig) {
    assert!(
        !cfg.identity.is_empty(),
        "an election candidate needs a name"
    );
    assert!(
        cfg.node_lifecycle.monitor_period_ms > 0,
        "the node lifecycle controller needs a period"
    );
    assert!(
        !cfg.gc_every.is_zero(),
        "the garbage collector needs a period"
    );
    // Created once, outside the elected work: `Informer::start` spawns on
    // the host, where the elector's abort does not reach, so they keep the
    // caches warm on every master.
    let caches = Caches::start(&client, cfg.resync);
    let elector = Elector::new(
        client.clone(),
        ElectorConfig::new(ELECTION_NAMESPACE, ELECTION_NAME, &cfg.identity),
    );
    elector
        .run(move |fenced| lead(fenced, caches.clone(), cfg.clone()))
        .await;
}

/// `(namespace, name)`: the work-queue key of the keyed controllers.
type Key = (String, String);

/// The informers every controller reads from.
#[derive(Clone)]
struct Caches {
    pods: Informer<Pod>,
    replicasets: Informer<ReplicaSet>,
    deployments: Informer<Deployment>,
    services: Informer<Service>,
    endpoints: Informer<Endpoints>,
    nodes: Informer<Node>,
    leases: Informer<Lease>,
    namespaces: Informer<Namespace>,
}

impl Caches {
    fn start(client: &Client, resync: Duration) -> Caches {
        fn inf<T: Resource>(c: &Client, resync: Option<Duration>) -> Informer<T> {
            Informer::start(c.clone(), None, ListParams::default(), resync)
        }
        let every = Some(resync);
        Caches {
            pods: inf(client, None),
            replicasets: inf(client, every),
            deployments: inf(client, every),
            services: inf(client, every),
            endpoints: inf(client, every),
            nodes: inf(client, None),
            leases: inf(client, None),
            namespaces: inf(client, None),
        }
    }

    async fn wait_synced(&self) {
        self.pods.wait_synced().await;
        self.replicasets.wait_synced().await;
        self.deployments.wait_synced().await;
        self.services.wait_synced().await;
        self.endpoints.wait_synced().await;
        self.nodes.wait_synced().await;
        self.leases.wait_synced().await;
        self.namespaces.wait_synced().await;
    }

    /// Every cached object, as the garbage collector sees it.
    fn summaries(&self) -> Vec<ObjectSummary> {
        let mut out = Vec::new();
        self.pods.for_each(|o| out.push(ObjectSummary::of(o)));
        self.replicasets
            .for_each(|o| out.push(ObjectSummary::of(o)));
        self.deployments
            .for_each(|o| out.push(ObjectSummary::of(o)));
        self.services.for_each(|o| out.push(ObjectSummary::of(o)));
        self.endpoints.for_each(|o| out.push(ObjectSummary::of(o)));
        self.nodes.for_each(|o| out.push(ObjectSummary::of(o)));
        self.leases.for_each(|o| out.push(ObjectSummary::of(o)));
        out
    }
}

/// The elected work: runs until the elector aborts it.
async fn lead(client: Client, caches: Caches, cfg: ManagerConfig) {
    let env = client.env().clone();
    // Subscribe before waiting, so no change between the sync and the
    // initial enqueue is missed.
    let pod_changes = caches.pods.subscribe();
    let rs_changes = caches.replicasets.subscribe();
    let deployment_changes = caches.deployments.subscribe();
    let service_changes = caches.services.subscribe();
    let endpoints_changes = caches.endpoints.subscribe();
    caches.wait_synced().await;
    let m = Manager {
        env: env.clone(),
        client,
        cfg,
        replicasets: WorkQueue::new(env.clone()),
        deployments: WorkQueue::new(env.clone()),
        services: WorkQueue::new(env.clone()),
        expectations: RefCell::new(Expectations::default()),
        caches,
    };
    env.trace(format_args!(
        "controller: {} runs the controllers",
        m.cfg.identity
    ));
    m.enqueue_all_replicasets();
    m.enqueue_all_deployments();
    m.enqueue_all_services();
    // One task: aborting it (loss of leadership) stops every loop at once.
    tokio::join!(
        m.feed_pods(pod_changes),
        m.feed_replicasets(rs_changes),
        m.feed_deployments(deployment_changes),
        m.feed_services(service_changes),
        m.feed_endpoints(endpoints_changes),
        m.replicaset_worker(),
        m.deployment_worker(),
        m.endpoints_worker(),
        m.node_lifecycle_loop(),
        m.gc_loop(),
        m.namespace_loop(),
    );
}

/// The state of one term of leadership.
struct Manager {
    env: Env,
    /// The fenced client: every write goes through it.
    client: Client,
    cfg: ManagerConfig,
    caches: Caches,
    replicasets: WorkQueue<Key>,
    deployments: WorkQueue<Key>,
    /// Keyed by Service; the Endpoints share the name.
    services: WorkQueue<Key>,
    /// Per ReplicaSet uid. Borrowed only between awaits.
    expectations: RefCell<Expectations>,
}

fn key_of<R: Resource>(o: &R) -> Key {
    (o.meta().namespace.clone(), o.meta().name.clone())
}

/// Does a Service selector pick these labels? An empty one picks nothing
/// (such a Service's Endpoints are not ours).
fn service_selects(
    selector: &std::collections::BTreeMap<String, String>,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// `namespace/name`, or `name` for cluster-scoped objects.
fn display(ns: &str, name: &str) -> String {
    if ns.is_empty() {
        name.to_string()
    } else {
        format!("{ns}/{name}")
    }
}

fn short(e: &ApiError) -> String {
    match e {
        ApiError::Status(s) => format!("{} {}", s.code, s.reason),
        ApiError::Transport { maybe_applied, .. } => {
            format!("no answer (maybe applied: {maybe_applied})")
        }
        ApiError::Decode(_) => "undecodable answer".into(),
    }
}

/// Runs `$e` with `$o` bound to the object an [`Object`] holds.
macro_rules! with_object {
    ($obj:expr, $o:ident => $e:expr) => {
        match $obj {
            Object::Pod($o) => $e,
            Object::ReplicaSet($o) => $e,
            Object::Deployment($o) => $e,
            Object::Endpoints($o) => $e,
            Object::Node($o) => $e,
        }
    };
}

/// Runs `$e` with the type `$t` standing for the kind named `$kind`.
macro_rules! with_kind {
    ($kind:expr, $t:ident => $e:expr) => {
        match $kind {
            "Pod" => {
                type $t = Pod;
                $e
            }
            "ReplicaSet" => {
                type $t = ReplicaSet;
                $e
            }
            "Deployment" => {
                type $t = Deployment;
                $e
            }
            "Service" => {
                type $t = Service;
                $e
            }
            "Endpoints" => {
                type $t = Endpoints;
                $e
            }
            "Node" => {
                type $t = Node;
                $e
            }
            "Lease" => {
                type $t = Lease;
                $e
            }
            "Event" => {
                type $t = Event;
                $e
            }
            "Namespace" => {
                type $t = Namespace;
                $e
            }
            "ConfigMap" => {
                type $t = ConfigMap;
                $e
            }
            "Secret" => {
                type $t = Secret;
                $e
            }
            other => panic!("the controllers never touch a {other}"),
        }
    };
}

impl Manager {
    // ------------------------------------------------------------ feeders

    fn enqueue_all_replicasets(&self) {
        self.caches
            .replicasets
            .for_each(|rs| self.replicasets.add(key_of(rs)));
    }

    fn enqueue_all_deployments(&self) {
        self.caches
            .deployments
            .for_each(|d| self.deployments.add(key_of(d)));
    }

    fn enqueue_all_services(&self) {
        self.caches
            .services
            .for_each(|s| self.services.add(key_of(s)));
    }

    async fn feed_pods(&self, mut changes: UnboundedReceiver<Change<Pod>>) {
        while let Some(change) = changes.recv().await {
            match change {
                Change::Added(pod) => {
                    // A pod that arrives already terminating counts as a
                    // deletion, not a creation (Kubernetes' addPod).
                    let mut e = self.expectations.borrow_mut();
                    if pod.metadata.deletion_timestamp.is_some() {
                        e.observe_deleted(&pod);
                    } else {
                        e.observe_created(&pod);
                    }
                    drop(e);
                    self.pod_changed(&pod);
                }
                Change::Modified { old, new } => {
                    if new.metadata.deletion_timestamp.is_some()
                        && old.metadata.deletion_timestamp.is_none()
                    {
                        self.expectations.borrow_mut().observe_deleted(&new);
                    }
                    self.pod_changed(&new);
                    if old.metadata.labels != new.metadata.labels
                        || old.metadata.owner_references != new.metadata.owner_references
                    {
                        self.pod_changed(&old);
                    }
                }
                Change::Deleted(pod) => {
                    self.expectations.borrow_mut().observe_deleted(&pod);
                    self.pod_changed(&pod);
                    // A Recreate rollout waits for the old pods to be gone.
                    if let Some(rs) = self.owner_replicaset(&pod) {
                        self.replicaset_changed(&rs);
                    }
                }
                Change::Resync => {}
            }
        }
    }

    /// The ReplicaSet that controls `pod`, if cached.
    fn owner_replicaset(&self, pod: &Pod) -> Option<ReplicaSet> {
        let r = pod.metadata.controller()?;
        if r.kind != ReplicaSet::KIND {
            return None;
        }
        self.caches
            .replicasets
            .get(&pod.metadata.namespace, &r.name)
            .filter(|rs| rs.metadata.uid == r.uid)
    }

    /// Wakes the ReplicaSet controlling `pod` (or, for an orphan, every
    /// one whose selector matches it) and the Services selecting it.
    fn pod_changed(&self, pod: &Pod) {
        let ns = &pod.metadata.namespace;
        let labels = &pod.metadata.labels;
        match pod.metadata.controller() {
            Some(r) if r.kind == ReplicaSet::KIND => {
                self.replicasets.add((ns.clone(), r.name.clone()));
            }
            Some(_) => {}
            None => self.caches.replicasets.for_each(|rs| {
                if &rs.metadata.namespace == ns && rs.spec.selector.matches(labels) {
                    self.replicasets.add(key_of(rs));
                }
            }),
        }
        self.caches.services.for_each(|svc| {
            if &svc.metadata.namespace == ns && service_selects(&svc.spec.selector, labels) {
                self.services.add(key_of(svc));
            }
        });
    }

    async fn feed_replicasets(&self, mut changes: UnboundedReceiver<Change<ReplicaSet>>) {
        while let Some(change) = changes.recv().await {
            match change {
                Change::Added(rs) => {
                    self.replicasets.add(key_of(&rs));
                    self.replicaset_changed(&rs);
                }
                Change::Modified { old, new } => {
                    self.replicasets.add(key_of(&new));
                    self.replicaset_changed(&new);
                    if old.metadata.owner_references != new.metadata.owner_references
                        || old.metadata.labels != new.metadata.labels
                    {
                        self.replicaset_changed(&old);
                    }
                }
                Change::Deleted(rs) => {
                    self.expectations.borrow_mut().forget(&rs.metadata.uid);
                    self.replicaset_changed(&rs);
                }
                Change::Resync => self.enqueue_all_replicasets(),
            }
        }
    }

    /// Wakes the Deployment controlling `rs` (or, for an orphan, every one
    /// whose selector matches it).
    fn replicaset_changed(&self, rs: &ReplicaSet) {
        let ns = &rs.metadata.namespace;
        match rs.metadata.controller() {
            Some(r) if r.kind == Deployment::KIND => {
                self.deployments.add((ns.clone(), r.name.clone()));
            }
            Some(_) => {}
            None => self.caches.deployments.for_each(|d| {
                if &d.metadata.namespace == ns && d.spec.selector.matches(&rs.metadata.labels) {
                    self.deployments.add(key_of(d));
                }
            }),
        }
    }

    async fn feed_deployments(&self, mut changes: UnboundedReceiver<Change<Deployment>>) {
        while let Some(change) = changes.recv().await {
            match change {
                Change::Added(d) | Change::Modified { new: d, .. } | Change::Deleted(d) => {
                    self.deployments.add(key_of(&d))
                }
                Change::Resync => self.enqueue_all_deployments(),
            }
        }
    }

    async fn feed_services(&self, mut changes: UnboundedReceiver<Change<Service>>) {
        while let Some(change) = changes.recv().await {
            match change {
                Change::Added(s) | Change::Modified { new: s, .. } | Change::Deleted(s) => {
                    self.services.add(key_of(&s))
                }
                Change::Resync => self.enqueue_all_services(),
            }
        }
    }

    /// Someone else touched an Endpoints object (or it is left over from a
    /// deleted Service): reconcile its Service.
    async fn feed_endpoints(&self, mut changes: UnboundedReceiver<Change<Endpoints>>) {
        while let Some(change) = changes.recv().await {
            match change {
                Change::Added(e) | Change::Modified { new: e, .. } | Change::Deleted(e) => {
                    self.services.add(key_of(&e))
                }
                Change::Resync => self
                    .caches
                    .endpoints
                    .for_each(|e| self.services.add(key_of(e))),
            }
        }
    }

    // ------------------------------------------------------------ workers

    async fn replicaset_worker(&self) {
        loop {
            let key = self.replicasets.next().await;
            self.sync_replicaset(&key).await;
        }
    }

    async fn sync_replicaset(&self, key: &Key) {
        let Some(rs) = self.caches.replicasets.get(&key.0, &key.1) else {
            self.replicasets.forget(key);
            return;
        };
        let now = self.env.wall_ms();
        let uid = rs.metadata.uid.clone();
        // Not until the cache shows this controller's last writes: the pod
        // informer's events requeue the key when it does.
        if !self.expectations.borrow().satisfied(&uid, now) {
            return;
        }
        let pods = self.caches.pods.list_ns_shared(&key.0);
        let actions = replicaset::reconcile(&rs, &pods, now);
        self.expectations.borrow_mut().expect(&uid, &actions, now);
        match self.execute(&actions).await {
            Ok(requeue) => self.done(&self.replicasets, key, requeue),
            Err(not_done) => {
                let not_done: Vec<Action> =
                    not_done.into_iter().map(|k| actions[k].clone()).collect();
                self.expectations.borrow_mut().unexpect(&uid, &not_done);
                self.replicasets.retry(key.clone());
            }
        }
    }

    async fn deployment_worker(&self) {
        loop {
            let key = self.deployments.next().await;
            let Some(d) = self.caches.deployments.get(&key.0, &key.1) else {
                self.deployments.forget(&key);
                continue;
            };
            let rss = self.caches.replicasets.list_ns(&key.0);
            let pods = self.caches.pods.list_ns_shared(&key.0);
            let actions = deployment::reconcile(&d, &rss, &pods, self.env.wall_ms());
            match self.execute(&actions).await {
                Ok(requeue) => self.done(&self.deployments, &key, requeue),
                Err(_) => self.deployments.retry(key),
            }
        }
    }

    async fn endpoints_worker(&self) {
        loop {
            let key = self.services.next().await;
            let existing = self.caches.endpoints.get(&key.0, &key.1);
            let actions: Vec<Action> = match self.caches.services.get(&key.0, &key.1) {
                Some(svc) => {
                    let pods = self.caches.pods.list_ns_shared(&key.0);
                    endpoints::reconcile(&svc, &pods, existing.as_ref())
                        .into_iter()
                        .collect()
                }
                // The Service is gone: so go its Endpoints (Kubernetes
                // deletes leftover Endpoints the same way).
                None => existing.iter().map(Action::delete).collect(),
            };
            match self.execute(&actions).await {
                Ok(requeue) => self.done(&self.services, &key, requeue),
                Err(_) => self.services.retry(key),
            }
        }
    }

    /// A reconcile of `key` succeeded: reset its backoff and schedule the
    /// requeue it asked for.
    fn done(&self, queue: &WorkQueue<Key>, key: &Key, requeue_ms: Option<u64>) {
        queue.forget(key);
        if let Some(ms) = requeue_ms {
            queue.add_after(key.clone(), Duration::from_millis(ms));
        }
    }

    async fn node_lifecycle_loop(&self) {
        let cfg = &self.cfg.node_lifecycle;
        let period = Duration::from_millis(cfg.monitor_period_ms);
        // Lives as long as this term's controller; losing it is safe (see
        // `NodeLifecycleState`).
        let mut state = NodeLifecycleState::default();
        loop {
            let nodes = self.caches.nodes.list_shared();
            let leases = self.caches.leases.list_ns_shared(LEASE_NAMESPACE);
            let pods = self.caches.pods.list_shared();
            let now = self.env.wall_ms();
            let actions = nodelifecycle::reconcile(&nodes, &leases, &pods, now, cfg, &mut state);
            // A failure stops this round; the next one recomputes it all.
            let _ = self.execute(&actions).await;
            self.env.sleep(period).await;
        }
    }

    async fn gc_loop(&self) {
        loop {
            self.env.sleep(self.cfg.gc_every).await;
            let objects = self.caches.summaries();
            for action in gc::reconcile(&objects, &CACHED_KINDS) {
                let Action::Delete { kind, uid, .. } = &action else {
                    unreachable!("the garbage collector only deletes");
                };
                let summary = objects
                    .iter()
                    .find(|o| o.kind == *kind && o.uid == *uid)
                    .expect("a doomed object comes from the summaries");
                // The caches of different kinds lag independently (a new
                // leader's ReplicaSet cache may not show the Deployment a
                // fresh ReplicaSet points at yet), so confirm with the API
                // server that every owner is really gone, as Kubernetes'
                // collector does before deleting.
                if !self.owners_gone(summary).await {
                    continue;
                }
                // Deletes are independent of each other: one failure does
                // not hold back the rest (the next scan retries it).
                let _ = self.write(&action).await;
            }
        }
    }

    /// Empties and deletes the namespaces being deleted (see
    /// [`namespace`]). Reads only the caches until some namespace is
    /// terminating; then lists its events, ConfigMaps and Secrets too (they
    /// are not cached).
    async fn namespace_loop(&self) {
        loop {
            self.env
                .sleep(Duration::from_millis(namespace::RECHECK_MS))
                .await;
            let mut doomed = Vec::new();
            self.caches.namespaces.for_each(|n| {
                if namespace::is_terminating(n) {
                    doomed.push(n.clone());
                }
            });
            if doomed.is_empty() {
                continue;
            }
            let objects = self.caches.summaries();
            for ns in &doomed {
                let name = &ns.metadata.name;
                let mut inside: Vec<ObjectSummary> = objects
                    .iter()
                    .filter(|o| o.namespace == *name)
                    .cloned()
                    .collect();
                // Not cached (events come and go; secrets are kept out of
                // the manager's memory): listed only while emptying.
                let all = ListParams::default();
                let listed = tokio::join!(
                    self.client.list::<Event>(Some(name), &all),
                    self.client.list::<ConfigMap>(Some(name), &all),
                    self.client.list::<Secret>(Some(name), &all),
                );
                match listed {
                    (Ok(events), Ok(configs), Ok(secrets)) => {
                        inside.extend(events.items.iter().map(ObjectSummary::of));
                        inside.extend(configs.items.iter().map(ObjectSummary::of));
                        inside.extend(secrets.items.iter().map(ObjectSummary::of));
                    }
                    _ => continue,
                }
                for action in namespace::reconcile(ns, &inside) {
                    if !matches!(action, Action::Requeue { .. }) {
                        let _ = self.write(&action).await;
                    }
                }
            }
        }
    }

    /// True when the API server confirms that none of `o`'s owners exists
    /// (absent, or its name reused by an object with another uid).
    async fn owners_gone(&self, o: &ObjectSummary) -> bool {
        for owner in &o.owners {
            let found = with_kind!(owner.kind.as_str(), T => self
                .client
                .get::<T>(&o.namespace, &owner.name)
                .await
                .map(|x| x.meta().uid.clone()));
            match found {
                Ok(uid) if uid == owner.uid => return false,
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(_) => return false,
            }
        }
        true
    }

    // ------------------------------------------------------------ actions

    /// Executes `actions` in order. `Ok` carries the shortest requeue asked
    /// for; `Err` lists the writes that failed or were not run (the rest
    /// of the list after a failure is not run).
    ///
    /// A run of creates (each with the events that follow it) goes in
    /// Kubernetes' slow-start batches: 1, then 2, 4, 8, ... at once, each
    /// batch only after the previous one fully succeeded, so a controller
    /// that keeps failing (a quota, a webhook, an API server down) sends a
    /// few requests, not a burst of them, while a healthy one creates 500
    /// pods in nine round trips instead of 500.
    async fn execute(&self, actions: &[Action]) -> Result<Option<u64>, Vec<usize>> {
        let mut requeue: Option<u64> = None;
        let mut i = 0;
        while i < actions.len() {
            match &actions[i] {
                Action::Event(rec) => self.record(rec),
                Action::Requeue { after_ms } => {
                    requeue = Some(requeue.map_or(*after_ms, |r| r.min(*after_ms)));
                }
                Action::Create(_) => {
                    let end = (i..actions.len())
                        .find(|&j| !matches!(actions[j], Action::Create(_) | Action::Event(_)))
                        .unwrap_or(actions.len());
                    if let Err(mut not_done) = self.create_slow_start(&actions[i..end]).await {
                        for k in &mut not_done {
                            *k += i;
                        }
                        not_done.extend(writes(actions, end));
                        return Err(not_done);
                    }
                    i = end;
                    continue;
                }
                write => {
                    if self.write(write).await.is_err() {
                        return Err(writes(actions, i));
                    }
                }
            }
            i += 1;
        }
        Ok(requeue)
    }

    /// Runs `run` (creates, each followed by its events) in slow-start
    /// batches; `Err` lists (in `run`) the creates that failed or were not
    /// run. A create's events are recorded once it succeeded.
    async fn create_slow_start(&self, run: &[Action]) -> Result<(), Vec<usize>> {
        let creates: Vec<usize> = (0..run.len())
            .filter(|&k| matches!(run[k], Action::Create(_)))
            .collect();
        let mut batch = 1;
        let mut pos = 0;
        while pos < creates.len() {
            let these = &creates[pos..(pos + batch).min(creates.len())];
            let results = join_all(these.iter().map(|&k| self.write(&run[k]))).await;
            let mut failed = Vec::new();
            for (&k, r) in these.iter().zip(results) {
                match r {
                    Ok(()) => run[k + 1..]
                        .iter()
                        .map_while(|a| match a {
                            Action::Event(rec) => Some(rec),
                            _ => None,
                        })
                        .for_each(|rec| self.record(rec)),
                    Err(_) => failed.push(k),
                }
            }
            pos += these.len();
            if !failed.is_empty() {
                failed.extend_from_slice(&creates[pos..]);
                return Err(failed);
            }
            batch *= 2;
        }
        Ok(())
    }

    /// Records an Event in the background. Events are for people: failures
    /// are ignored (a deposed leader's are fenced off).
    fn record(&self, rec: &EventRecord) {
        let event = rec.to_event(COMPONENT, self.env.wall_ms());
        let client = self.client.clone();
        self.env.spawn(async move {
            let _ = client.create(&event).await;
        });
    }

    /// Performs one write and traces it. `NotFound` on a delete is success.
    async fn write(&self, action: &Action) -> Result<(), ApiError> {
        let c = &self.client;
        let (verb, kind, ns, name, result) = match action {
            Action::Create(obj) => {
                let m = obj.meta();
                let r = with_object!(obj, o => c.create(o).await.map(|x| x.meta().name.clone()));
                let name = match &r {
                    Ok(n) => n.clone(),
                    Err(_) if m.name.is_empty() => m.generate_name.clone(),
                    Err(_) => m.name.clone(),
                };
                ("create", obj.kind(), &m.namespace, name, r.map(drop))
            }
            Action::Update(obj) => {
                let r = with_object!(obj, o => c.update(o).await.map(drop));
                let m = obj.meta();
                ("update", obj.kind(), &m.namespace, m.name.clone(), r)
            }
            Action::UpdateStatus(obj) => {
                let r = with_object!(obj, o => c.update_status(o).await.map(drop));
                let m = obj.meta();
                (
                    "update status of",
                    obj.kind(),
                    &m.namespace,
                    m.name.clone(),
                    r,
                )
            }
            Action::Delete {
                kind,
                namespace,
                name,
                uid,
                ..
            } => {
                let params = DeleteParams {
                    precondition_uid: uid.clone(),
                    ..Default::default()
                };
                let r =
                    with_kind!(*kind, T => c.delete::<T>(namespace, name, &params).await.map(drop));
                let r = match r {
                    Err(e) if e.is_not_found() => Ok(()),
                    r => r,
                };
                ("delete", *kind, namespace, name.clone(), r)
            }
            Action::Event(_) | Action::Requeue { .. } => {
                unreachable!("not a write: {action:?}")
            }
        };
        let what = display(ns, &name);
        let kind = kind.to_ascii_lowercase();
        match &result {
            Ok(()) => self
                .env
                .trace(format_args!("controller: {verb} {kind} {what}")),
            Err(e) => self.env.trace(format_args!(
                "controller: {verb} {kind} {what} failed: {}",
                short(e)
            )),
        }
        result
    }
}

/// The writes among `actions[from..]` (what a failure leaves undone).
fn writes(actions: &[Action], from: usize) -> Vec<usize> {
    (from..actions.len())
        .filter(|&k| !matches!(actions[k], Action::Event(_) | Action::Requeue { .. }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_selectors_need_every_label_and_select_nothing_when_empty() {
        let l = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let pod = l(&[("app", "web"), ("tier", "front")]);
        assert!(service_selects(&l(&[("app", "web")]), &pod));
        assert!(!service_selects(&l(&[("app", "web"), ("x", "y")]), &pod));
        assert!(!service_selects(&l(&[]), &pod));
    }

    #[test]
    fn defaults_follow_kubernetes() {
        let cfg = ManagerConfig::new("m1");
        assert_eq!(cfg.resync, Duration::from_secs(30));
        assert_eq!(cfg.gc_every, Duration::from_secs(20));
        assert_eq!(cfg.node_lifecycle.monitor_period_ms, 5_000);
        assert_eq!(display("", "n1"), "n1");
        assert_eq!(display("default", "web"), "default/web");
    }
}
