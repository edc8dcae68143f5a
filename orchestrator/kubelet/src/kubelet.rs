//! The kubelet's API side: registers its Node, renews its Lease, and keeps
//! the containers of the pods bound to it running and reported.
//!
//! The sync loop is level-triggered: every pass compares the pods the API
//! binds here (an informer with `fieldSelector=spec.nodeName=NODE`) with
//! what the runtime runs, starts and stops containers, restarts exited ones
//! per `restartPolicy` (with CrashLoopBackOff), and writes pod status when
//! it differs. Nothing it needs survives in memory across a crash: after a
//! restart it rebuilds from the API (restart counts, pod IPs) and from the
//! runtime.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use faultline_api::{
    labels, ContainerStatus, Lease, LeaseSpec, Node, NodeAddress, NodeCondition, ObjectMeta, Pod,
    PodStatus, Quantity, ResourceList,
};
use faultline_client::{Change, Client, DeleteParams, Informer, ListParams};
use faultline_env::Env;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::probe::{probe, ProbeState};
use crate::runtime::{ContainerInfo, ContainerRuntime, ContainerSpec};

/// How to run one kubelet.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    pub node_name: String,
    /// Labels the node registers with (datacenter and zone among them).
    pub labels: BTreeMap<String, String>,
    /// `cpu`, `memory`, `pods`.
    pub capacity: ResourceList,
    /// Pod IPs are `{pod_ip_prefix}.{n / 256}.{n % 256}`: give every node a
    /// distinct two-octet prefix such as `10.7`.
    pub pod_ip_prefix: String,
    /// The node's own address, reported as its InternalIP.
    pub address: String,
    pub lease_duration: Duration,
    pub lease_renew_every: Duration,
    /// The sync loop also runs this often without a trigger.
    pub sync_every: Duration,
}

impl KubeletConfig {
    pub fn new(node_name: &str, pod_ip_prefix: &str) -> KubeletConfig {
        let mut capacity = ResourceList::new();
        for (k, v) in [("cpu", "4"), ("memory", "8Gi"), ("pods", "110")] {
            capacity.insert(k.into(), Quantity::parse(v).expect("valid quantity"));
        }
        KubeletConfig {
            node_name: node_name.to_string(),
            labels: BTreeMap::new(),
            capacity,
            pod_ip_prefix: pod_ip_prefix.to_string(),
            address: node_name.to_string(),
            lease_duration: Duration::from_secs(40),
            lease_renew_every: Duration::from_secs(10),
            sync_every: Duration::from_secs(1),
        }
    }
}

/// Longest CrashLoopBackOff.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

struct Worker {
    /// Readiness per running container id.
    ready: BTreeMap<String, bool>,
    /// When each (pod uid, container) may restart next, and the backoff.
    backoff: BTreeMap<(String, String), (Instant, Duration)>,
    /// Pod IPs handed out, by pod uid.
    ips: BTreeMap<String, String>,
    next_ip: u32,
    /// Pod uids this kubelet already deleted for good.
    finalized: BTreeSet<String>,
}

struct Kubelet {
    env: Env,
    client: Client,
    runtime: Rc<dyn ContainerRuntime>,
    cfg: KubeletConfig,
    pods: Informer<Pod>,
    state: RefCell<Worker>,
    wake: Notify,
}

/// Runs the kubelet until the host stops.
pub async fn run(env: Env, client: Client, runtime: Rc<dyn ContainerRuntime>, cfg: KubeletConfig) {
    let params = ListParams::fields(&format!("spec.nodeName={}", cfg.node_name));
    let pods = Informer::<Pod>::start(client.clone(), None, params, Some(Duration::from_secs(30)));
    let k = Rc::new(Kubelet {
        env: env.clone(),
        client,
        runtime,
        cfg,
        pods,
        state: RefCell::new(Worker {
            ready: BTreeMap::new(),
            backoff: BTreeMap::new(),
            ips: BTreeMap::new(),
            next_ip: 1,
            finalized: BTreeSet::new(),
        }),
        wake: Notify::new(),
    });
    k.register().await;
    env.spawn(k.clone().heartbeat());
    let mut changes = k.pods.subscribe();
    let waker = k.clone();
    env.spawn(async move {
        while let Some(c) = changes.recv().await {
            if !matches!(c, Change::Resync) || waker.pods.has_synced() {
                waker.wake.notify_one();
            }
        }
    });
    k.pods.wait_synced().await;
    loop {
        k.sync().await;
        let _ = env.timeout(k.cfg.sync_every, k.wake.notified()).await;
    }
}

impl Kubelet {
    fn now(&self) -> String {
        faultline_api::time::rfc3339(self.env.wall_ms())
    }

    fn ready_condition(&self) -> NodeCondition {
        NodeCondition {
            kind: "Ready".into(),
            status: "True".into(),
            last_heartbeat_time: Some(self.now()),
            last_transition_time: Some(self.now()),
            reason: "KubeletReady".into(),
            message: "kubelet is posting ready status".into(),
        }
    }

    fn node_object(&self) -> Node {
        let mut labels = self.cfg.labels.clone();
        labels.insert(labels::HOSTNAME.into(), self.cfg.node_name.clone());
        let mut n = Node {
            metadata: ObjectMeta {
                name: self.cfg.node_name.clone(),
                labels,
                ..Default::default()
            },
            ..Default::default()
        };
        n.status.capacity = self.cfg.capacity.clone();
        n.status.allocatable = self.cfg.capacity.clone();
        n.status.conditions = vec![self.ready_condition()];
        n.status.addresses = vec![NodeAddress {
            kind: "InternalIP".into(),
            address: self.cfg.address.clone(),
        }];
        n
    }

    /// Creates the Node, or marks an existing one Ready with this
    /// kubelet's capacity; retries until the API answers.
    async fn register(&self) {
        let mut tries = 0u32;
        loop {
            if self.ensure_node_ready().await {
                self.env.trace(format_args!(
                    "kubelet: node {} registered",
                    self.cfg.node_name
                ));
                return;
            }
            tries += 1;
            let ms = (200u64 << tries.min(4)).min(3_000);
            self.env.sleep(Duration::from_millis(ms)).await;
        }
    }

    /// Makes sure the API shows this node Ready; true when it does.
    async fn ensure_node_ready(&self) -> bool {
        match self.client.get::<Node>("", &self.cfg.node_name).await {
            Err(e) if e.is_not_found() => self.client.create(&self.node_object()).await.is_ok(),
            Err(_) => false,
            Ok(n) if n.is_ready() && n.status.capacity == self.cfg.capacity => true,
            Ok(mut n) => {
                n.status.capacity = self.cfg.capacity.clone();
                n.status.allocatable = self.cfg.capacity.clone();
                n.status.addresses = self.node_object().status.addresses;
                n.status.conditions.retain(|c| c.kind != "Ready");
                n.status.conditions.push(self.ready_condition());
                self.client.update_status(&n).await.is_ok()
            }
        }
    }

    /// Renews the node's Lease, and re-asserts Ready when the node
    /// controller marked the node Unknown (after a partition, say).
    async fn heartbeat(self: Rc<Self>) {
        let ns = "kube-node-lease";
        loop {
            let now = faultline_api::time::rfc3339_micros(self.env.wall_ms());
            match self.client.get::<Lease>(ns, &self.cfg.node_name).await {
                Ok(mut l) => {
                    l.spec.renew_time = Some(now);
                    l.spec.holder_identity = Some(self.cfg.node_name.clone());
                    let _ = self.client.update(&l).await;
                }
                Err(e) if e.is_not_found() => {
                    let l = Lease {
                        metadata: ObjectMeta::named(ns, &self.cfg.node_name),
                        spec: LeaseSpec {
                            holder_identity: Some(self.cfg.node_name.clone()),
                            lease_duration_seconds: Some(self.cfg.lease_duration.as_secs() as i32),
                            acquire_time: Some(now.clone()),
                            renew_time: Some(now),
                            lease_transitions: None,
                        },
                        ..Default::default()
                    };
                    let _ = self.client.create(&l).await;
                }
                Err(_) => {}
            }
            self.ensure_node_ready().await;
            self.env.sleep(self.cfg.lease_renew_every).await;
        }
    }

    fn pod_ip(&self, pod: &Pod) -> String {
        let mut st = self.state.borrow_mut();
        if let Some(ip) = st.ips.get(&pod.metadata.uid) {
            return ip.clone();
        }
        let prefix = format!("{}.", self.cfg.pod_ip_prefix);
        // After a restart, keep the address the API recorded.
        let ip = if pod.status.pod_ip.starts_with(&prefix) {
            pod.status.pod_ip.clone()
        } else {
            let taken: BTreeSet<String> = st.ips.values().cloned().collect();
            loop {
                let n = st.next_ip;
                st.next_ip = if n >= 65_000 { 1 } else { n + 1 };
                let ip = format!("{prefix}{}.{}", n / 256, n % 256);
                if !taken.contains(&ip) {
                    break ip;
                }
            }
        };
        st.ips.insert(pod.metadata.uid.clone(), ip.clone());
        ip
    }

    /// One pass: reconcile every pod bound here with the runtime.
    async fn sync(self: &Rc<Self>) {
        // Shared, not copied: this runs every `sync_every` on every node.
        let pods = self.pods.list_shared();
        let running = self.runtime.list().await;
        let wanted: BTreeSet<&str> = pods.iter().map(|p| p.metadata.uid.as_str()).collect();
        // Containers of pods that are gone.
        for c in &running {
            if !wanted.contains(c.pod_uid.as_str()) {
                let _ = self.runtime.remove(&c.id).await;
                self.state.borrow_mut().ready.remove(c.id.as_str());
            }
        }
        self.state
            .borrow_mut()
            .ips
            .retain(|uid, _| wanted.contains(uid.as_str()));
        for pod in &pods {
            let mine: Vec<&ContainerInfo> = running
                .iter()
                .filter(|c| c.pod_uid == pod.metadata.uid)
                .collect();
            self.sync_pod(pod, &mine).await;
        }
    }

    async fn sync_pod(self: &Rc<Self>, pod: &Pod, containers: &[&ContainerInfo]) {
        let uid = pod.metadata.uid.clone();
        if pod.metadata.deletion_timestamp.is_some() {
            for c in containers {
                let _ = self.runtime.remove(&c.id).await;
            }
            if self.state.borrow().finalized.contains(&uid) {
                return;
            }
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                precondition_uid: uid.clone(),
                ..Default::default()
            };
            let ns = &pod.metadata.namespace;
            match self
                .client
                .delete::<Pod>(ns, &pod.metadata.name, &params)
                .await
            {
                Ok(_) => {
                    self.env.trace(format_args!(
                        "kubelet {}: pod {ns}/{} stopped and deleted",
                        self.cfg.node_name, pod.metadata.name
                    ));
                    self.state.borrow_mut().finalized.insert(uid);
                }
                Err(e) if e.is_not_found() || e.is_conflict() => {
                    self.state.borrow_mut().finalized.insert(uid);
                }
                Err(_) => {}
            }
            return;
        }
        if pod.is_terminal() {
            for c in containers {
                if c.state.is_running() {
                    let _ = self.runtime.stop(&c.id).await;
                }
            }
            return;
        }
        let ip = self.pod_ip(pod);
        let policy = match pod.spec.restart_policy.as_str() {
            "" => "Always",
            p => p,
        };
        let now = self.env.now();
        let mut statuses = Vec::new();
        let mut all_running = true;
        let mut all_ready = true;
        let mut exited_ok = 0;
        let mut failed = false;
        for spec in &pod.spec.containers {
            let latest = containers
                .iter()
                .filter(|c| c.container_name == spec.name)
                .max_by_key(|c| c.attempt);
            let before = pod
                .status
                .container_statuses
                .iter()
                .find(|s| s.name == spec.name)
                .map(|s| s.restart_count.max(0) as u32);
            let key = (uid.clone(), spec.name.clone());
            let start = match latest {
                None => Some(before.map(|n| n + 1).unwrap_or(0)),
                Some(c) if c.state.is_running() => None,
                Some(c) => {
                    let code = c.state.exit_code().unwrap_or(1);
                    let again = match policy {
                        "Always" => true,
                        "OnFailure" => code != 0,
                        _ => false,
                    };
                    if !again {
                        if code == 0 {
                            exited_ok += 1;
                        } else {
                            failed = true;
                        }
                        None
                    } else {
                        let mut st = self.state.borrow_mut();
                        let (at, delay) = st
                            .backoff
                            .get(&key)
                            .copied()
                            .unwrap_or((now, Duration::from_secs(10)));
                        if now >= at {
                            st.backoff
                                .insert(key.clone(), (now + delay, (delay * 2).min(MAX_BACKOFF)));
                            Some(c.attempt + 1)
                        } else {
                            None
                        }
                    }
                }
            };
            let mut info: Option<(String, bool, u32)> =
                latest.map(|c| (c.id.as_str().to_string(), c.state.is_running(), c.attempt));
            // A running container this kubelet did not start (it restarted,
            // the container did not): adopt it, keeping the readiness the
            // API last recorded for it, and probe it from now on.
            if let (None, Some(c), Some(p)) = (start, latest, &spec.readiness_probe) {
                let id = c.id.as_str().to_string();
                let adopt = c.state.is_running() && !self.state.borrow().ready.contains_key(&id);
                if adopt {
                    let was_ready = pod
                        .status
                        .container_statuses
                        .iter()
                        .any(|s| s.name == spec.name && s.container_id == id && s.ready);
                    self.state.borrow_mut().ready.insert(id.clone(), was_ready);
                    let delay = Duration::from_secs(p.initial_delay_seconds.max(0) as u64);
                    self.env.spawn(self.clone().prober(
                        id,
                        ip.clone(),
                        p.clone(),
                        spec.ports.clone(),
                        now.checked_sub(delay).unwrap_or(now),
                    ));
                }
            }
            if let Some(attempt) = start {
                if let Some(old) = latest {
                    let _ = self.runtime.remove(&old.id).await;
                }
                let cs = ContainerSpec::from_pod(pod, spec, &ip, attempt);
                match self.runtime.start(cs).await {
                    Ok(id) => {
                        self.env.trace(format_args!(
                            "kubelet {}: started {}/{} container {} attempt {attempt}",
                            self.cfg.node_name,
                            pod.metadata.namespace,
                            pod.metadata.name,
                            spec.name
                        ));
                        if let Some(p) = &spec.readiness_probe {
                            self.state
                                .borrow_mut()
                                .ready
                                .insert(id.as_str().to_string(), false);
                            self.env.spawn(self.clone().prober(
                                id.as_str().to_string(),
                                ip.clone(),
                                p.clone(),
                                spec.ports.clone(),
                                now,
                            ));
                        }
                        info = Some((id.as_str().to_string(), true, attempt));
                    }
                    Err(e) => {
                        self.env.trace(format_args!(
                            "kubelet {}: cannot start {}/{}: {e}",
                            self.cfg.node_name, pod.metadata.name, spec.name
                        ));
                        info = None;
                    }
                }
            }
            let (id, running, attempt) = info.unwrap_or_default();
            let ready = running
                && (spec.readiness_probe.is_none()
                    || self.state.borrow().ready.get(&id).copied().unwrap_or(false));
            all_running &= running;
            all_ready &= ready;
            statuses.push(ContainerStatus {
                name: spec.name.clone(),
                ready,
                restart_count: attempt as i32,
                image: spec.image.clone(),
                container_id: id,
                state: if running { "running" } else { "waiting" }.into(),
            });
        }
        let n = pod.spec.containers.len();
        let phase = if failed && policy == "Never" {
            "Failed"
        } else if exited_ok == n && n > 0 {
            "Succeeded"
        } else if all_running {
            "Running"
        } else {
            "Pending"
        };
        // The new status is built on a pod that carries nothing else, so a
        // pass that changes nothing copies no spec or metadata.
        let mut next = Pod {
            status: PodStatus {
                phase: phase.into(),
                conditions: pod.status.conditions.clone(),
                host_ip: self.cfg.address.clone(),
                pod_ip: ip,
                start_time: pod.status.start_time.clone().or_else(|| Some(self.now())),
                container_statuses: statuses,
                reason: String::new(),
                message: String::new(),
            },
            ..Default::default()
        };
        let ready = if all_ready && all_running {
            "True"
        } else {
            "False"
        };
        for kind in ["Initialized", "PodScheduled"] {
            next.set_condition(kind, "True", "", "");
        }
        for kind in ["ContainersReady", "Ready"] {
            let changed = next.condition(kind) != Some(ready);
            next.set_condition(kind, ready, "", "");
            if changed {
                if let Some(c) = next.status.conditions.iter_mut().find(|c| c.kind == kind) {
                    c.last_transition_time = Some(self.now());
                }
            }
        }
        if next.status != pod.status {
            let next = Pod {
                status: next.status,
                ..pod.clone()
            };
            match self.client.update_status(&next).await {
                Ok(_) => {}
                Err(e) if e.is_conflict() => self.wake.notify_one(),
                Err(_) => {}
            }
        }
    }

    /// Probes one container's readiness until it stops running.
    async fn prober(
        self: Rc<Self>,
        id: String,
        ip: String,
        p: faultline_api::Probe,
        ports: Vec<faultline_api::ContainerPort>,
        started: Instant,
    ) {
        let mut state = ProbeState::new(&p);
        self.env.sleep_until(state.first_probe_at(started)).await;
        loop {
            let alive = self
                .runtime
                .list()
                .await
                .iter()
                .any(|c| c.id.as_str() == id && c.state.is_running());
            if !alive {
                self.state.borrow_mut().ready.remove(&id);
                return;
            }
            let ok = probe(&self.env, &ip, &p, &ports).await.is_success();
            let ready = state.observe(ok);
            let changed = self.state.borrow_mut().ready.insert(id.clone(), ready) != Some(ready);
            if changed {
                self.wake.notify_one();
            }
            self.env.sleep(state.period()).await;
        }
    }
}
