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
//!
//! What to do about each pod is decided by the pure functions of
//! [`crate::sync`]; this module is their shell: it feeds them the informer's
//! pods, the runtime's containers and its own tables, and runs the runtime
//! calls, API calls, traces and probers they ask for, in their order.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use faultline_api::{
    labels, ConfigMap, Event, Lease, LeaseSpec, Node, NodeAddress, NodeCondition, ObjectMeta,
    ObjectReference, Pod, Quantity, ResourceList, Secret,
};
use faultline_client::{Change, Client, DeleteParams, Informer, ListParams};
use faultline_env::tls::TlsServer;
use faultline_env::Env;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::envvars;
use crate::logs::LogBuffer;
use crate::probe::{probe_container, ProbeResult, ProbeState};
use crate::runtime::{ContainerId, ContainerInfo, ContainerRuntime, ContainerSpec};
use crate::server::{LogRefusal, NodeLogs, KUBELET_PORT};
use crate::sync::{
    self, Backoff, BackoffKey, ContainerStep, PodPlan, PodSync, Readiness, Start, StartOutcome,
};
use crate::volumes;

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
    /// The kubelet's server (container output for the API server) listens
    /// here on the node's address, reported in the Node's
    /// `daemonEndpoints`; 0 serves nothing.
    pub port: u16,
    /// Serve HTTPS with this certificate, verifying clients (real mode);
    /// `None` serves plain HTTP, as in the simulator.
    pub tls: Option<TlsServer>,
    /// Record Events about pods (a container that failed to start, its
    /// back-off, a failed liveness probe), as `kubectl describe pod`
    /// shows them. On for real nodes; off in simulations, where they would
    /// add a store write to every crash of thousands of containers.
    pub events: bool,
    /// A running pod's ConfigMap and Secret volumes are read again this
    /// often, so an edit reaches its files within about this long (as
    /// Kubernetes' kubelet does on its periodic sync).
    pub volume_refresh: Duration,
    /// How many pods one sync pass works on at once (starting their
    /// containers, writing their status). Kubernetes' kubelet gives every
    /// pod a worker of its own: a pod whose runtime calls are slow (two
    /// Docker containers, ~0.3 s each) then does not hold up the others.
    /// 1 keeps the simulator's nodes sequential: there, starts cost no
    /// time, so concurrency would only reorder the same work.
    pub pod_workers: usize,
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
            port: KUBELET_PORT,
            tls: None,
            events: false,
            volume_refresh: Duration::from_secs(5),
            pod_workers: 1,
        }
    }
}

struct Worker {
    /// Readiness per running container id.
    ready: Readiness,
    /// When each (pod uid, container) may restart next, and the backoff.
    backoff: BTreeMap<BackoffKey, Backoff>,
    /// Pod IPs handed out, by pod uid.
    ips: BTreeMap<String, String>,
    next_ip: u32,
    /// Pod uids this kubelet already deleted for good.
    finalized: BTreeSet<String>,
    /// The output of the last container replaced by a restart, per pod
    /// uid and container name (`kubectl logs --previous` once the new
    /// one runs). Dropped with the pod; lost when the kubelet restarts.
    retired: BTreeMap<(String, String), (ContainerId, Rc<LogBuffer>)>,
    /// Running containers with a liveness prober.
    liveness: BTreeSet<ContainerId>,
    /// When each pod's volumes were last written, by pod uid, and why they
    /// could not be (the containers that mount them wait meanwhile).
    volumes: BTreeMap<String, VolumesWritten>,
}

/// The last [`Kubelet::write_volumes`] of one pod.
struct VolumesWritten {
    at: Instant,
    /// `MountVolume.SetUp failed ...` when some volume could not be
    /// written.
    error: Option<String>,
    /// Every volume was written once: the pod's containers may start (a
    /// later failure to refresh keeps the files as they were, as
    /// Kubernetes keeps a volume whose object went away).
    mounted: bool,
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
            retired: BTreeMap::new(),
            liveness: BTreeSet::new(),
            volumes: BTreeMap::new(),
        }),
        wake: Notify::new(),
    });
    if k.cfg.port != 0 {
        let (env2, port, tls) = (env.clone(), k.cfg.port, k.cfg.tls.clone());
        let logs: Rc<dyn NodeLogs> = k.clone();
        env.spawn(async move {
            if let Err(e) = crate::server::serve(env2.clone(), port, tls, logs).await {
                env2.trace(format_args!("kubelet server on port {port} stopped: {e}"));
            }
        });
    }
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
        n.status.node_info = node_info();
        n.status.daemon_endpoints.kubelet_endpoint.port = i32::from(self.cfg.port);
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
            Ok(n)
                if n.is_ready()
                    && n.status.capacity == self.cfg.capacity
                    && n.status.node_info == node_info()
                    && n.status.daemon_endpoints == self.node_object().status.daemon_endpoints =>
            {
                true
            }
            Ok(mut n) => {
                let mine = self.node_object().status;
                n.status.capacity = self.cfg.capacity.clone();
                n.status.allocatable = self.cfg.capacity.clone();
                n.status.addresses = mine.addresses;
                n.status.node_info = node_info();
                n.status.daemon_endpoints = mine.daemon_endpoints;
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
        // Volumes of pods that are gone (after their containers).
        for uid in self.runtime.volume_pods().await {
            if !wanted.contains(uid.as_str()) {
                let _ = self.runtime.remove_volumes(&uid).await;
            }
        }
        {
            let mut st = self.state.borrow_mut();
            st.ips.retain(|uid, _| wanted.contains(uid.as_str()));
            st.volumes.retain(|uid, _| wanted.contains(uid.as_str()));
            st.retired
                .retain(|(uid, _), _| wanted.contains(uid.as_str()));
        }
        let work = pods.iter().map(|pod| {
            let mine: Vec<&ContainerInfo> = running
                .iter()
                .filter(|c| c.pod_uid == pod.metadata.uid)
                .collect();
            async move { self.sync_pod(pod, &mine).await }
        });
        if self.cfg.pod_workers <= 1 {
            for w in work {
                w.await;
            }
        } else {
            // All on this task (nothing is spawned): up to `pod_workers`
            // pods' futures polled together.
            use futures_util::StreamExt as _;
            futures_util::stream::iter(work)
                .buffer_unordered(self.cfg.pod_workers)
                .for_each(|()| async {})
                .await;
        }
        self.watch_liveness(&pods, &running);
    }

    /// Gives every running container whose spec has a liveness probe a
    /// prober (containers started in this pass get theirs on the next; the
    /// first probe waits `initialDelaySeconds` from the container's start
    /// anyway). Adopted containers get one too, after a kubelet restart.
    fn watch_liveness(self: &Rc<Self>, pods: &[Rc<Pod>], containers: &[ContainerInfo]) {
        // Usually none: then nothing else is looked at.
        let probed: BTreeMap<&str, &Rc<Pod>> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| p.spec.containers.iter().any(|c| c.liveness_probe.is_some()))
            .map(|p| (p.metadata.uid.as_str(), p))
            .collect();
        if probed.is_empty() {
            return;
        }
        for c in containers.iter().filter(|c| c.state.is_running()) {
            let Some(pod) = probed.get(c.pod_uid.as_str()) else {
                continue;
            };
            if self.state.borrow().liveness.contains(&c.id) {
                continue;
            }
            let Some(spec) = pod
                .spec
                .containers
                .iter()
                .find(|s| s.name == c.container_name)
            else {
                continue;
            };
            let Some(p) = spec.liveness_probe.clone() else {
                continue;
            };
            self.state.borrow_mut().liveness.insert(c.id.clone());
            self.env.spawn(
                self.clone()
                    .liveness_prober(c.clone(), p, spec.ports.clone()),
            );
        }
    }

    /// Probes one container's liveness until it stops running; after
    /// `failureThreshold` failures in a row, kills it (the sync loop then
    /// restarts it as the pod's `restartPolicy` says, with its back-off).
    async fn liveness_prober(
        self: Rc<Self>,
        c: ContainerInfo,
        p: faultline_api::Probe,
        ports: Vec<faultline_api::ContainerPort>,
    ) {
        // The same threshold machine (and defaults) as readiness: the
        // container is killed once it counts as failing.
        let mut state = ProbeState::new(&p);
        self.env
            .sleep_until(state.first_probe_at(c.started_at))
            .await;
        while self.is_running(c.id.as_str()).await {
            let result =
                probe_container(&self.env, &*self.runtime, &c.id, &c.pod_ip, &p, &ports).await;
            state.observe(result.is_success());
            if let (true, ProbeResult::Failure(why)) = (state.failing(), result) {
                self.env.trace(format_args!(
                    "kubelet {}: {}/{} container {} failed its liveness probe ({why}), killing it",
                    self.cfg.node_name, c.pod_namespace, c.pod_name, c.container_name
                ));
                let pod = self.pods.get_shared(&c.pod_namespace, &c.pod_name);
                let grace = pod
                    .as_ref()
                    .map_or(sync::DEFAULT_GRACE, |p| sync::grace_period(p));
                if let (true, Some(pod)) = (self.cfg.events, &pod) {
                    self.event(
                        pod,
                        "Warning",
                        "Unhealthy",
                        format!("Liveness probe failed: {why}"),
                    )
                    .await;
                    let message = format!(
                        "Container {} failed liveness probe, will be restarted",
                        c.container_name
                    );
                    self.event(pod, "Normal", "Killing", message).await;
                }
                let _ = self.runtime.stop(&c.id, grace).await;
                self.wake.notify_one();
                break;
            }
            self.env.sleep(state.period()).await;
        }
        self.state.borrow_mut().liveness.remove(&c.id);
    }

    /// One pod's pass: [`sync::plan_pod`] and [`PodSync`] decide, this
    /// executes, in the order the decisions come.
    async fn sync_pod(self: &Rc<Self>, pod: &Pod, containers: &[&ContainerInfo]) {
        let finalized = self.state.borrow().finalized.contains(&pod.metadata.uid);
        match sync::plan_pod(pod, containers, finalized) {
            PodPlan::Delete { remove, delete } => {
                // Each container gets its grace period to end; it is
                // removed once it has (at once for a runtime whose
                // containers end when told), and the pod is deleted from
                // the API when all are gone.
                let grace = sync::grace_period(pod);
                let mut left = 0;
                for id in &remove {
                    let _ = self.runtime.stop(id, grace).await;
                    if self.is_running(id.as_str()).await {
                        left += 1;
                    } else {
                        let _ = self.runtime.remove(id).await;
                    }
                }
                if delete && left == 0 {
                    self.delete_pod(pod).await;
                }
            }
            PodPlan::Stop(running) => {
                for id in &running {
                    let _ = self.runtime.stop(id, sync::grace_period(pod)).await;
                }
            }
            PodPlan::Run => self.run_pod(pod, containers).await,
        }
    }

    /// Deletes a pod whose containers are gone from the API for good, and
    /// remembers it unless the API may still hold it.
    async fn delete_pod(&self, pod: &Pod) {
        let uid = pod.metadata.uid.clone();
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
            // Gone already, or a new pod took the name: nothing left to do.
            Err(e) if e.is_not_found() || e.is_conflict() => {
                self.state.borrow_mut().finalized.insert(uid);
            }
            Err(_) => {}
        }
    }

    /// Keeps a pod's containers running and its status written.
    async fn run_pod(self: &Rc<Self>, pod: &Pod, containers: &[&ContainerInfo]) {
        let ip = self.pod_ip(pod);
        self.write_volumes(pod).await;
        let mut pass =
            PodSync::new(pod, containers, self.env.now()).with_wall_clock(self.env.wall_ms());
        loop {
            // Read the tables afresh for every container: the previous
            // container's runtime calls awaited, and probers ran meanwhile.
            let step = {
                let st = self.state.borrow();
                pass.next_step(&st.ready, &st.backoff)
            };
            let Some(step) = step else { break };
            let spec = step.spec;
            if let Some((key, backoff)) = step.backoff.clone() {
                self.state.borrow_mut().backoff.insert(key, backoff);
                if self.cfg.events {
                    let latest = containers
                        .iter()
                        .rev()
                        .find(|c| c.container_name == spec.name);
                    if let Some(c) =
                        latest.filter(|c| c.exit_reason.as_deref() == Some("StartError"))
                    {
                        self.event(
                            pod,
                            "Warning",
                            "Failed",
                            format!("Error: {}", c.exit_message),
                        )
                        .await;
                    }
                    self.event(
                        pod,
                        "Warning",
                        "BackOff",
                        format!(
                            "Back-off restarting failed container {} in pod {}",
                            spec.name, pod.metadata.name
                        ),
                    )
                    .await;
                }
            }
            if let (Some(adopt), Some(p)) = (&step.adopt, step.probe()) {
                let id = adopt.id.as_str().to_string();
                self.state
                    .borrow_mut()
                    .ready
                    .insert(id.clone(), adopt.ready);
                self.env.spawn(self.clone().prober(
                    id,
                    ip.clone(),
                    p.clone(),
                    spec.ports.clone(),
                    adopt.probe_from,
                ));
            }
            let outcome = match &step.start {
                Some(start) => self.start_container(pod, &step, start, &ip).await,
                None => StartOutcome::NotAsked,
            };
            pass.record(outcome, &self.state.borrow().ready);
        }
        let status = pass.status(&self.cfg.address, &ip, &self.now());
        if let Some(status) = status {
            let next = Pod {
                status,
                ..pod.clone()
            };
            match self.client.update_status(&next).await {
                Ok(_) => {}
                Err(e) if e.is_conflict() => self.wake.notify_one(),
                Err(_) => {}
            }
        }
    }

    /// Executes one [`Start`]: removes the container it replaces, starts
    /// the new one and, when the spec has a readiness probe, probes it.
    async fn start_container(
        self: &Rc<Self>,
        pod: &Pod,
        step: &ContainerStep<'_>,
        start: &Start,
        ip: &str,
    ) -> StartOutcome {
        let spec = step.spec;
        if let Some(old) = &start.replaces {
            if let Ok(log) = self.runtime.log(old).await {
                let key = (pod.metadata.uid.clone(), spec.name.clone());
                self.state
                    .borrow_mut()
                    .retired
                    .insert(key, (old.clone(), log));
            }
            let _ = self.runtime.remove(old).await;
        }
        let attempt = start.attempt;
        // As in Kubernetes, no container of a pod starts before all its
        // volumes are mounted.
        let unmounted = self
            .state
            .borrow()
            .volumes
            .get(&pod.metadata.uid)
            .filter(|v| !v.mounted)
            .map(|v| v.error.clone().unwrap_or_default());
        if let Some(message) = unmounted {
            return StartOutcome::Failed {
                reason: "ContainerCreating",
                message,
            };
        }
        let env = match self.container_env(pod, spec, ip).await {
            Ok(env) => env,
            Err(message) => {
                self.env.trace(format_args!(
                    "kubelet {}: cannot configure {}/{}: {message}",
                    self.cfg.node_name, pod.metadata.name, spec.name
                ));
                return StartOutcome::Failed {
                    reason: "CreateContainerConfigError",
                    message,
                };
            }
        };
        let cs = ContainerSpec::from_pod(pod, spec, ip, attempt).with_env(env);
        match self.runtime.start(cs).await {
            Ok(id) => {
                self.env.trace(format_args!(
                    "kubelet {}: started {}/{} container {} attempt {attempt}",
                    self.cfg.node_name, pod.metadata.namespace, pod.metadata.name, spec.name
                ));
                if let (Some(p), Some(from)) = (step.probe(), start.probe_from) {
                    self.state
                        .borrow_mut()
                        .ready
                        .insert(id.as_str().to_string(), false);
                    self.env.spawn(self.clone().prober(
                        id.as_str().to_string(),
                        ip.to_string(),
                        p.clone(),
                        spec.ports.clone(),
                        from,
                    ));
                }
                StartOutcome::Started(id)
            }
            Err(e) => {
                self.env.trace(format_args!(
                    "kubelet {}: cannot start {}/{}: {e}",
                    self.cfg.node_name, pod.metadata.name, spec.name
                ));
                if self.cfg.events {
                    self.event(pod, "Warning", "Failed", format!("Error: {e}"))
                        .await;
                }
                StartOutcome::Failed {
                    reason: e.waiting_reason(),
                    message: e.to_string(),
                }
            }
        }
    }

    /// Writes the pod's ConfigMap and Secret volumes through the runtime
    /// (see [`volumes`]) when they were never written or
    /// [`KubeletConfig::volume_refresh`] has passed, so edits reach running
    /// containers. Until every volume could be written once, the pod's
    /// containers wait (`ContainerCreating`); a failure records a
    /// `FailedMount` event when it is new; what was written before stays.
    async fn write_volumes(&self, pod: &Pod) {
        if pod.spec.volumes.is_empty() {
            return;
        }
        let uid = &pod.metadata.uid;
        let now = self.env.now();
        let previous = self
            .state
            .borrow()
            .volumes
            .get(uid)
            .map(|v| (v.at, v.error.clone(), v.mounted));
        // Until mounted, every pass tries again; then every refresh.
        if let Some((at, _, true)) = &previous {
            if now.duration_since(*at) < self.cfg.volume_refresh {
                return;
            }
        }
        let error = match self.write_volumes_now(pod).await {
            Ok(()) => None,
            Err((volume, e)) => Some(format!(
                "MountVolume.SetUp failed for volume {volume:?}: {e}"
            )),
        };
        let (previous_error, was_mounted) = previous.map_or((None, false), |p| (p.1, p.2));
        if let (true, Some(message)) = (self.cfg.events, &error) {
            if previous_error.as_ref() != Some(message) {
                self.event(pod, "Warning", "FailedMount", message.clone())
                    .await;
            }
        }
        let mounted = was_mounted || error.is_none();
        self.state.borrow_mut().volumes.insert(
            uid.clone(),
            VolumesWritten {
                at: now,
                error,
                mounted,
            },
        );
    }

    /// Fetches what the pod's volumes project and writes every volume;
    /// the first that fails, with why.
    async fn write_volumes_now(&self, pod: &Pod) -> Result<(), (String, String)> {
        let ns = &pod.metadata.namespace;
        for v in &pod.spec.volumes {
            let failed = |e: String| (v.name.clone(), e);
            let mut lookups = envvars::Lookups::default();
            if let Some(c) = &v.config_map {
                let name = vec![c.name.clone()];
                lookups.config_maps = self.fetch::<ConfigMap>(ns, name).await.map_err(failed)?;
            }
            if let Some(s) = &v.secret {
                let name = vec![s.secret_name.clone()];
                lookups.secrets = self.fetch::<Secret>(ns, name).await.map_err(failed)?;
            }
            let files = volumes::project(v, &lookups).map_err(|e| (v.name.clone(), e))?;
            let changed = self
                .runtime
                .write_volume(&pod.metadata.uid, &v.name, &files)
                .await
                .map_err(|e| (v.name.clone(), e.to_string()))?;
            if changed {
                // Names and sizes only: a Secret's values never reach a
                // trace or a log.
                self.env.trace(format_args!(
                    "kubelet {}: volume {:?} of {ns}/{} holds {} files",
                    self.cfg.node_name,
                    v.name,
                    pod.metadata.name,
                    files.len()
                ));
            }
        }
        Ok(())
    }

    /// The container's environment (see [`envvars`]), fetching the
    /// ConfigMaps and Secrets it names (only those: a pod without any
    /// costs no request).
    async fn container_env(
        &self,
        pod: &Pod,
        spec: &faultline_api::Container,
        ip: &str,
    ) -> Result<Vec<(String, String)>, String> {
        let ns = &pod.metadata.namespace;
        let (maps, secrets) = envvars::references(spec);
        let lookups = envvars::Lookups {
            config_maps: self.fetch::<ConfigMap>(ns, maps).await?,
            secrets: self.fetch::<Secret>(ns, secrets).await?,
        };
        envvars::build(pod, spec, &self.cfg.address, ip, &lookups)
    }

    /// The objects of kind `T` named `names` in `ns`, `None` for those the
    /// API does not have; an error naming the object when the API cannot
    /// tell.
    async fn fetch<T: faultline_api::Resource>(
        &self,
        ns: &str,
        names: Vec<String>,
    ) -> Result<BTreeMap<String, Option<T>>, String> {
        let mut found = BTreeMap::new();
        for name in names {
            let got = match self.client.get::<T>(ns, &name).await {
                Ok(o) => Some(o),
                Err(e) if e.is_not_found() => None,
                Err(e) => {
                    let kind = T::KIND.to_lowercase();
                    return Err(format!("cannot read {kind} {name:?}: {e}"));
                }
            };
            found.insert(name, got);
        }
        Ok(found)
    }

    /// Records an Event about `pod` (best effort: events are for people).
    async fn event(&self, pod: &Pod, event_type: &str, reason: &str, message: String) {
        let metadata = ObjectMeta {
            generate_name: format!("{}-", pod.metadata.name),
            namespace: pod.metadata.namespace.clone(),
            ..Default::default()
        };
        let mut event = Event::first_occurrence(
            metadata,
            ObjectReference::to(pod),
            event_type,
            reason,
            &message,
            "kubelet",
            faultline_api::time::rfc3339_micros(self.env.wall_ms()),
        );
        event.source.host = self.cfg.node_name.clone();
        let _ = self.client.create(&event).await;
    }

    /// Whether the runtime runs container `id` (the probers' stop test).
    async fn is_running(&self, id: &str) -> bool {
        self.runtime
            .list()
            .await
            .iter()
            .any(|c| c.id.as_str() == id && c.state.is_running())
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
            if !self.is_running(&id).await {
                self.state.borrow_mut().ready.remove(&id);
                return;
            }
            let cid = ContainerId::new(id.clone());
            let ok = probe_container(&self.env, &*self.runtime, &cid, &ip, &p, &ports)
                .await
                .is_success();
            let ready = state.observe(ok);
            let changed = self.state.borrow_mut().ready.insert(id.clone(), ready) != Some(ready);
            if changed {
                self.wake.notify_one();
            }
            self.env.sleep(state.period()).await;
        }
    }
}

#[async_trait(?Send)]
impl NodeLogs for Kubelet {
    /// Picks the container instance as Kubernetes' kubelet does: the
    /// running one, else the last that ran; with `previous`, the last that
    /// terminated (the one a crash-looping container's restart waits on, or
    /// the one a restart replaced).
    async fn container_log(
        &self,
        ns: &str,
        name: &str,
        container: &str,
        previous: bool,
    ) -> Result<Rc<LogBuffer>, LogRefusal> {
        let pod = self.pods.get_shared(ns, name).ok_or_else(|| {
            LogRefusal::not_found(format!(
                "pod {name:?} in namespace {ns:?} is not on node {}",
                self.cfg.node_name
            ))
        })?;
        if !pod.spec.containers.iter().any(|c| c.name == container) {
            return Err(LogRefusal::bad_request(format!(
                "container {container:?} is not valid for pod {name:?}"
            )));
        }
        let instances: Vec<ContainerInfo> = self
            .runtime
            .list()
            .await
            .into_iter()
            .filter(|c| c.pod_uid == pod.metadata.uid && c.container_name == container)
            .collect();
        let retired = self
            .state
            .borrow()
            .retired
            .get(&(pod.metadata.uid.clone(), container.to_string()))
            .map(|(_, log)| log.clone());
        let chosen = if previous {
            match instances.iter().rev().find(|c| !c.state.is_running()) {
                Some(c) => self.runtime.log(&c.id).await.ok(),
                None => retired,
            }
        } else {
            match instances.last() {
                Some(c) => self.runtime.log(&c.id).await.ok(),
                None => retired,
            }
        };
        chosen.ok_or_else(|| {
            if previous {
                return LogRefusal::bad_request(format!(
                    "previous terminated container {container:?} in pod {name:?} not found"
                ));
            }
            let reason = pod
                .status
                .container_statuses
                .iter()
                .find(|s| s.name == container)
                .and_then(|s| s.state.waiting.as_ref())
                .map(|w| w.reason.clone())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "ContainerCreating".into());
            LogRefusal::bad_request(format!(
                "container {container:?} in pod {name:?} is waiting to start: {reason}"
            ))
        })
    }
}

/// What this kubelet reports it runs (`kubectl get nodes` shows the
/// version): this build's version, and the machine's OS and architecture
/// as compiled in (constants, so simulated nodes report the same).
fn node_info() -> faultline_api::NodeSystemInfo {
    let version = concat!("v", env!("CARGO_PKG_VERSION"), "-faultline");
    faultline_api::NodeSystemInfo {
        kubelet_version: version.into(),
        kube_proxy_version: version.into(),
        container_runtime_version: "faultline-builtin://1".into(),
        operating_system: std::env::consts::OS.into(),
        architecture: std::env::consts::ARCH.into(),
    }
}
