//! The control plane in the simulator: masters that run the store, the API
//! server, the scheduler and the controller manager; worker nodes that run
//! kubelets with the simulated container runtime; a user that applies the
//! scenario's deployments and actions; and the observers behind the
//! control-plane invariants:
//!
//! - the **auditor** watches every pod and node write in the store from
//!   revision 1 (exactly once, in order) and flags a pod bound twice or a
//!   node whose bound pods request more than it can allocate;
//! - the **container ledger** wraps each node's runtime and flags a second
//!   running container for a pod uid and container name while the first
//!   still runs (a crash ends a host's containers);
//! - the **cluster probe**, after every fault has healed, waits for all nodes
//!   Ready and every deployment at its desired ready, updated replicas.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use faultline_api::{
    labels, Container, ContainerPort, Deployment, DeploymentSpec as ApiDeploymentSpec, IntOrString,
    LabelSelector, Node, ObjectMeta, Pod, PodTemplateSpec, Quantity, ResourceRequirements,
    RollingUpdateDeployment, Service, ServicePort,
};
use faultline_apiserver::server::RequestObserver;
use faultline_apiserver::{ApiServerConfig, Bugs as ApiBugs};
use faultline_client::{Client, ClientConfig, ListParams};
use faultline_controllers::manager::ManagerConfig;
use faultline_engine::HostMain;
use faultline_env::Env;
use faultline_kubelet::{
    ContainerId, ContainerInfo, ContainerRuntime, ContainerSpec, KubeletConfig, RuntimeError,
    SimRuntime,
};
use faultline_proxy::ProxyConfig;
use faultline_roles::master::{ManagerSpec, SchedulerSpec};
use faultline_roles::{start_node, ControlPlaneSpec, Credentials, MasterSpec, NodeSpec};
use faultline_store::client::{prefix_end, ClientConfig as StoreClientConfig, StoreClient};
use faultline_store::ops::{EventKind, StoreError};
use faultline_store::server::StoreConfig;

use crate::scenario::{node_names, ActionKind, ControlPlaneBug, Scenario};

/// The API server's port on every master.
pub const API_PORT: u16 = 6443;

/// Simulated nanoseconds since the run began.
pub type Clock = Rc<dyn Fn() -> u64>;

/// Whether the scenario runs a control plane (it has worker nodes).
pub fn enabled(s: &Scenario) -> bool {
    s.cluster.nodes_per_datacenter > 0
}

/// API server addresses.
pub fn api_servers(s: &Scenario) -> Vec<String> {
    crate::scenario::master_names(s.cluster.masters)
        .into_iter()
        .map(|m| format!("{m}:{API_PORT}"))
        .collect()
}

/// The cluster's credentials: well-known tokens (nobody outside the
/// simulation reaches the API).
pub fn credentials(s: &Scenario) -> Credentials {
    Credentials::well_known(&node_names(s))
}

fn store_client(env: &Env, s: &Scenario) -> Rc<StoreClient> {
    Rc::new(StoreClient::new(
        env.clone(),
        StoreClientConfig::new(crate::run::endpoints(s)),
    ))
}

/// A master: the store replica, plus the API server, scheduler and
/// controller manager (each elected where needed).
pub fn master_main(
    s: &Scenario,
    store: StoreConfig,
    on_request: Option<RequestObserver>,
) -> HostMain {
    let creds = credentials(s);
    let mut api = ApiServerConfig::new(API_PORT, creds.tokens());
    api.on_request = on_request;
    api.bugs = ApiBugs {
        unchecked_binding: s
            .control_plane
            .bugs
            .contains(&ControlPlaneBug::UncheckedBinding),
    };
    let mut manager = ManagerConfig::new("");
    manager.node_lifecycle.grace_ms = s.control_plane.node_grace.0.as_millis() as u64;
    manager.node_lifecycle.eviction_timeout_ms =
        s.control_plane.eviction_timeout.0.as_millis() as u64;
    let control_plane = ControlPlaneSpec {
        api,
        store_endpoints: crate::run::endpoints(s),
        api_servers: api_servers(s),
        scheduler: Some(SchedulerSpec {
            token: creds.scheduler.clone(),
            count: s.control_plane.schedulers,
        }),
        controller_manager: Some(ManagerSpec {
            token: creds.controller.clone(),
            config: manager,
        }),
    };
    crate::run::master_host(MasterSpec {
        store,
        restart: crate::run::STORE_RESTART,
        control_plane: Some(control_plane),
    })
}

/// A worker node: a kubelet over the simulated runtime, wrapped by the
/// container ledger, and the node's service proxy.
pub fn node_main(s: &Scenario, index: usize, dc: &str, ledger: Rc<Ledger>) -> HostMain {
    let servers = api_servers(s);
    let creds = credentials(s);
    let node = s.cluster.node.clone();
    let dc = dc.to_string();
    Rc::new(move |env: Env| {
        let (servers, node, dc, ledger) =
            (servers.clone(), node.clone(), dc.clone(), ledger.clone());
        let name = env.host().to_string();
        let token = creds
            .node(&name)
            .expect("every node has a token")
            .to_string();
        Box::pin(async move {
            // The container runtime lives on the host: its containers
            // outlive a kubelet restart (the new kubelet adopts them).
            let runtime = Rc::new(LedgerRuntime {
                inner: SimRuntime::new(env.clone()),
                ledger: ledger.clone(),
                host: name.clone(),
            });
            let mut cfg = KubeletConfig::new(&name, &format!("10.{}", index + 1));
            cfg.labels.insert(labels::REGION.into(), dc.clone());
            cfg.labels.insert(labels::ZONE.into(), format!("{dc}-1"));
            cfg.capacity
                .insert("cpu".into(), Quantity::parse(&node.cpu).expect("validated"));
            cfg.capacity.insert(
                "memory".into(),
                Quantity::parse(&node.memory).expect("validated"),
            );
            cfg.capacity.insert(
                "pods".into(),
                Quantity::parse(&node.pods.to_string()).expect("a number"),
            );
            let spec = NodeSpec {
                api_servers: servers,
                token,
                kubelet: Some(cfg),
                proxy: Some(ProxyConfig::new(&name)),
            };
            let bell = ledger.kubelet_bell(&name);
            loop {
                // The node's process; a kubelet restart aborts it and
                // starts a new one over the same runtime.
                let (penv, process) = env.process();
                start_node(&penv, &spec, runtime.clone());
                bell.notified().await;
                process.abort_all();
                env.trace(format_args!("kubelet restart"));
            }
        })
    })
}

/// The Deployment object for a scenario entry.
pub fn deployment_object(d: &crate::scenario::DeploymentSpec) -> Deployment {
    let labels: BTreeMap<String, String> = [("app".to_string(), d.name.clone())].into();
    let mut requests = faultline_api::ResourceList::new();
    requests.insert("cpu".into(), Quantity::parse(&d.cpu).expect("validated"));
    requests.insert(
        "memory".into(),
        Quantity::parse(&d.memory).expect("validated"),
    );
    let probe = faultline_api::Probe {
        http_get: Some(faultline_api::HttpGetAction {
            path: "/healthz".into(),
            port: IntOrString::Int(8080),
        }),
        period_seconds: 10,
        ..Default::default()
    };
    let echo = d.image.starts_with("echo");
    let container = Container {
        name: "app".into(),
        image: d.image.clone(),
        ports: if echo {
            vec![ContainerPort {
                name: "http".into(),
                container_port: 8080,
                protocol: "TCP".into(),
            }]
        } else {
            Vec::new()
        },
        resources: ResourceRequirements {
            requests,
            limits: Default::default(),
        },
        readiness_probe: echo.then_some(probe),
        ..Default::default()
    };
    let rolling =
        (d.max_surge.is_some() || d.max_unavailable.is_some()).then(|| RollingUpdateDeployment {
            max_surge: d.max_surge.clone().map(int_or_string),
            max_unavailable: d.max_unavailable.clone().map(int_or_string),
        });
    Deployment {
        metadata: ObjectMeta {
            labels: labels.clone(),
            ..ObjectMeta::named(&d.namespace, &d.name)
        },
        spec: ApiDeploymentSpec {
            replicas: Some(d.replicas),
            selector: LabelSelector {
                match_labels: labels.clone(),
                match_expressions: Vec::new(),
            },
            template: PodTemplateSpec {
                metadata: ObjectMeta {
                    labels,
                    ..Default::default()
                },
                spec: faultline_api::PodSpec {
                    containers: vec![container],
                    ..Default::default()
                },
            },
            strategy: faultline_api::DeploymentStrategy {
                kind: "RollingUpdate".into(),
                rolling_update: rolling,
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

fn int_or_string(s: String) -> IntOrString {
    s.parse::<i32>()
        .map(IntOrString::Int)
        .unwrap_or(IntOrString::String(s))
}

fn service_object(d: &crate::scenario::DeploymentSpec, port: u16) -> Service {
    Service {
        metadata: ObjectMeta::named(&d.namespace, &d.name),
        spec: faultline_api::ServiceSpec {
            selector: [("app".to_string(), d.name.clone())].into(),
            ports: vec![ServicePort {
                name: "http".into(),
                protocol: "TCP".into(),
                port: port as i32,
                target_port: Some(IntOrString::Int(8080)),
                node_port: 0,
            }],
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The user: creates the scenario's deployments (and services) as soon as
/// the API answers, then performs its actions on time.
pub fn user_main(s: &Scenario) -> HostMain {
    let s = Rc::new(s.clone());
    Rc::new(move |env: Env| {
        let s = s.clone();
        Box::pin(async move {
            let start = env.now();
            let c = Client::new(
                env.clone(),
                ClientConfig::new(api_servers(&s), &credentials(&s).admin),
            );
            for d in &s.deployments {
                let obj = deployment_object(d);
                until_done(&env, || async {
                    match c.create(&obj).await {
                        Ok(_) => true,
                        Err(e) => e.is_already_exists(),
                    }
                })
                .await;
                if let Some(port) = d.port {
                    let svc = service_object(d, port);
                    until_done(&env, || async {
                        match c.create(&svc).await {
                            Ok(_) => true,
                            Err(e) => e.is_already_exists(),
                        }
                    })
                    .await;
                }
                env.trace(format_args!(
                    "user: applied deployment {}/{}",
                    d.namespace, d.name
                ));
            }
            let mut actions: Vec<_> = s.actions.to_vec();
            actions.sort_by_key(|a| a.at.0);
            for a in actions {
                env.sleep_until(start + a.at.0).await;
                let ns = s
                    .deployments
                    .iter()
                    .find(|d| d.name == a.deployment)
                    .map(|d| d.namespace.clone())
                    .unwrap_or_else(|| "default".into());
                until_done(&env, || async {
                    let Ok(mut d) = c.get::<Deployment>(&ns, &a.deployment).await else {
                        return false;
                    };
                    match a.kind {
                        ActionKind::Scale => d.spec.replicas = a.replicas,
                        ActionKind::SetImage => {
                            for ct in &mut d.spec.template.spec.containers {
                                ct.image = a.image.clone().unwrap_or_default();
                            }
                        }
                    }
                    c.update(&d).await.is_ok()
                })
                .await;
                env.trace(format_args!("user: {:?} {}", a.kind, a.deployment));
            }
        })
    })
}

/// Retries `f` every second until it reports done.
async fn until_done<F, Fut>(env: &Env, f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    while !f().await {
        env.sleep(Duration::from_secs(1)).await;
    }
}

/// What the control-plane observers found.
#[derive(Default)]
pub struct ClusterFindings {
    /// (simulated ns, what) for each pod bound twice.
    pub double_bindings: Vec<(u64, String)>,
    pub overcommits: Vec<(u64, String)>,
    pub auditor_errors: Vec<String>,
    /// Pods ever bound, and binding writes seen.
    pub pods_bound: u64,
    pub last_revision: i64,
    /// `deployments-ready` after healing.
    pub ready: Option<Result<Duration, String>>,
    /// `pending-explained` at the end.
    pub pending: Option<Result<String, String>>,
    /// The cluster probe has finished.
    pub probed: bool,
    /// Per node: its `Ready` condition each time the auditor saw it
    /// change (simulated ns, `True`/`False`/`Unknown`/`deleted`).
    pub readiness: BTreeMap<String, Vec<(u64, String)>>,
}

impl ClusterFindings {
    fn note_ready(&mut self, node: &str, at: u64, status: &str) {
        let changes = self.readiness.entry(node.to_string()).or_default();
        if changes.last().is_none_or(|(_, s)| s != status) {
            changes.push((at, status.to_string()));
        }
    }
}

pub type Findings = Rc<RefCell<ClusterFindings>>;

#[derive(Default)]
struct NodeUse {
    allocatable: (i64, i64, i64),
    /// uid -> (cpu milli, memory bytes)
    pods: BTreeMap<String, (i64, i64)>,
    over: bool,
}

/// The auditor host: watches `/registry/` in the store from revision 1.
pub fn auditor_main(s: &Scenario, findings: Findings, clock: Clock) -> HostMain {
    let s = Rc::new(s.clone());
    Rc::new(move |env: Env| {
        let (s, findings, clock) = (s.clone(), findings.clone(), clock.clone());
        Box::pin(async move {
            let store = store_client(&env, &s);
            let prefix = b"/registry/".to_vec();
            let mut bound: BTreeMap<String, String> = BTreeMap::new();
            let mut nodes: BTreeMap<String, NodeUse> = BTreeMap::new();
            let mut next = 1i64;
            loop {
                let Some(mut w) = store.watch(&prefix, &prefix_end(&prefix), next).await else {
                    env.sleep(Duration::from_millis(500)).await;
                    continue;
                };
                loop {
                    match w.next().await {
                        None => break,
                        Some(Err(StoreError::Compacted { compact_revision })) => {
                            findings.borrow_mut().auditor_errors.push(format!(
                                "the auditor lost history: revision {next} compacted (at {compact_revision})"
                            ));
                            return;
                        }
                        Some(Err(_)) => break,
                        Some(Ok(events)) => {
                            for ev in events {
                                next = ev.kv.mod_revision + 1;
                                let key = String::from_utf8_lossy(&ev.kv.key).into_owned();
                                let mut f = findings.borrow_mut();
                                f.last_revision = ev.kv.mod_revision;
                                if let Some(name) = key.strip_prefix("/registry/nodes/") {
                                    let u = nodes.entry(name.to_string()).or_default();
                                    if ev.kind == EventKind::Delete {
                                        f.note_ready(name, clock(), "deleted");
                                    }
                                    if ev.kind == EventKind::Put {
                                        if let Ok(n) = serde_json::from_slice::<Node>(&ev.kv.value)
                                        {
                                            let ready = match n.ready_status() {
                                                "" => "Unknown",
                                                s => s,
                                            };
                                            f.note_ready(name, clock(), ready);
                                            let q = |k: &str, milli: bool| {
                                                n.status
                                                    .allocatable
                                                    .get(k)
                                                    .map(|q| {
                                                        if milli {
                                                            q.milli_value()
                                                        } else {
                                                            q.value()
                                                        }
                                                    })
                                                    .unwrap_or(i64::MAX)
                                            };
                                            u.allocatable = (
                                                q("cpu", true),
                                                q("memory", false),
                                                q("pods", false),
                                            );
                                        }
                                    }
                                    continue;
                                }
                                if !key.starts_with("/registry/pods/") {
                                    continue;
                                }
                                let at = clock();
                                if ev.kind == EventKind::Delete {
                                    let uid = ev
                                        .prev_kv
                                        .as_ref()
                                        .and_then(|kv| {
                                            serde_json::from_slice::<Pod>(&kv.value).ok()
                                        })
                                        .map(|p| p.metadata.uid);
                                    if let Some(uid) = uid {
                                        for u in nodes.values_mut() {
                                            u.pods.remove(&uid);
                                        }
                                    }
                                    continue;
                                }
                                let Ok(p) = serde_json::from_slice::<Pod>(&ev.kv.value) else {
                                    f.auditor_errors.push(format!("{key}: undecodable pod"));
                                    continue;
                                };
                                let uid = p.metadata.uid.clone();
                                let node = p.spec.node_name.clone();
                                if !node.is_empty() {
                                    match bound.get(&uid) {
                                        None => {
                                            bound.insert(uid.clone(), node.clone());
                                            f.pods_bound += 1;
                                        }
                                        Some(first) if *first != node => {
                                            f.double_bindings.push((
                                                at,
                                                format!(
                                                    "pod {} (uid {uid}) bound to {first}, then re-bound to {node} at revision {}",
                                                    key.trim_start_matches("/registry/pods/"),
                                                    ev.kv.mod_revision
                                                ),
                                            ));
                                        }
                                        Some(_) => {}
                                    }
                                    let u = nodes.entry(node.clone()).or_default();
                                    if p.is_terminal() {
                                        u.pods.remove(&uid);
                                    } else {
                                        u.pods.insert(
                                            uid.clone(),
                                            (p.request("cpu"), p.request("memory")),
                                        );
                                    }
                                    let cpu: i64 = u.pods.values().map(|x| x.0).sum();
                                    let mem: i64 = u.pods.values().map(|x| x.1).sum();
                                    let count = u.pods.len() as i64;
                                    let (ac, am, ap) = u.allocatable;
                                    let over = (ac > 0 && cpu > ac)
                                        || (am > 0 && mem > am)
                                        || (ap > 0 && count > ap);
                                    if over && !u.over && ac > 0 {
                                        f.overcommits.push((
                                            at,
                                            format!(
                                                "node {node} over-committed at revision {}: {count} pods request cpu {cpu}m of {ac}m, memory {mem} of {am}",
                                                ev.kv.mod_revision
                                            ),
                                        ));
                                    }
                                    u.over = over;
                                }
                            }
                        }
                    }
                }
                env.sleep(Duration::from_millis(200)).await;
            }
        })
    })
}

/// What the cluster probe checks.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    /// `deployments-ready` / `converges`: the deadline, and which
    /// deployments (None: all).
    pub ready: Option<(Duration, Option<Vec<String>>)>,
    /// `converges`: also every Service's endpoints equal its ready pods.
    pub endpoints: bool,
    /// `pending-explained`.
    pub pending: bool,
}

/// The cluster probe, started after healing: waits until every node is
/// Ready and every deployment has its desired ready, updated replicas; then
/// checks that pods still pending say why.
pub fn cluster_probe_main(s: &Scenario, spec: ProbeSpec, findings: Findings) -> HostMain {
    let s = Rc::new(s.clone());
    Rc::new(move |env: Env| {
        let (s, findings, spec) = (s.clone(), findings.clone(), spec.clone());
        Box::pin(async move {
            let c = Client::new(
                env.clone(),
                ClientConfig::new(api_servers(&s), &credentials(&s).admin),
            );
            let start = env.now();
            let expected_nodes = node_names(&s);
            if let Some((within, only)) = &spec.ready {
                loop {
                    let last =
                        match cluster_state(&c, &expected_nodes, only.as_deref(), spec.endpoints)
                            .await
                        {
                            Ok(()) => {
                                findings.borrow_mut().ready = Some(Ok(env.now() - start));
                                break;
                            }
                            Err(why) => why,
                        };
                    if env.now() - start >= *within {
                        findings.borrow_mut().ready = Some(Err(format!(
                            "not converged {}s after healing: {last}",
                            within.as_secs()
                        )));
                        break;
                    }
                    env.sleep(Duration::from_secs(1)).await;
                }
            }
            if spec.pending {
                // Give the scheduler a retry round after healing.
                env.sleep(Duration::from_secs(35)).await;
                let verdict = loop {
                    match c.list::<Pod>(None, &ListParams::default()).await {
                        Ok(l) => break pending_explained(&l.items),
                        Err(_) => env.sleep(Duration::from_secs(1)).await,
                    }
                };
                findings.borrow_mut().pending = Some(verdict);
            }
            findings.borrow_mut().probed = true;
        })
    })
}

fn pending_explained(pods: &[Pod]) -> Result<String, String> {
    let pending: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.spec.node_name.is_empty() && p.metadata.deletion_timestamp.is_none())
        .collect();
    for p in &pending {
        let c = p
            .status
            .conditions
            .iter()
            .find(|c| c.kind == "PodScheduled");
        match c {
            Some(c)
                if c.status == "False" && c.reason == "Unschedulable" && !c.message.is_empty() => {}
            _ => {
                return Err(format!(
                    "pod {}/{} is pending without saying why (PodScheduled: {:?})",
                    p.metadata.namespace, p.metadata.name, c
                ));
            }
        }
    }
    match pending.first() {
        None => Ok("no pod left pending".into()),
        Some(p) => Ok(format!(
            "{} pending pod(s), each marked Unschedulable, e.g. {}: {}",
            pending.len(),
            p.metadata.name,
            p.status
                .conditions
                .iter()
                .find(|c| c.kind == "PodScheduled")
                .map(|c| c.message.as_str())
                .unwrap_or("")
        )),
    }
}

async fn cluster_state(
    c: &Client,
    expected_nodes: &[String],
    only: Option<&[String]>,
    endpoints: bool,
) -> Result<(), String> {
    let nodes = c
        .list::<Node>(None, &ListParams::default())
        .await
        .map_err(|e| format!("cannot list nodes: {e}"))?;
    for n in expected_nodes {
        match nodes.items.iter().find(|x| x.metadata.name == *n) {
            None => return Err(format!("node {n} is not registered")),
            Some(x) if !x.is_ready() => return Err(format!("node {n} is {}", x.ready_status())),
            _ => {}
        }
    }
    let deps = c
        .list::<Deployment>(None, &ListParams::default())
        .await
        .map_err(|e| format!("cannot list deployments: {e}"))?;
    for d in &deps.items {
        if only.is_some_and(|o| !o.contains(&d.metadata.name)) {
            continue;
        }
        let want = d.spec.replicas.unwrap_or(1);
        let st = &d.status;
        if st.observed_generation < d.metadata.generation
            || st.updated_replicas != want
            || st.ready_replicas != want
            || st.available_replicas != want
            || st.replicas != want
        {
            return Err(format!(
                "deployment {}/{} wants {want}: {} replicas, {} updated, {} ready, {} available (generation {} observed {})",
                d.metadata.namespace,
                d.metadata.name,
                st.replicas,
                st.updated_replicas,
                st.ready_replicas,
                st.available_replicas,
                d.metadata.generation,
                st.observed_generation
            ));
        }
    }
    if endpoints {
        endpoints_match_ready_pods(c).await?;
    }
    Ok(())
}

/// Every Service's Endpoints list exactly the IPs of its ready, running,
/// not terminating pods.
async fn endpoints_match_ready_pods(c: &Client) -> Result<(), String> {
    let services = c
        .list::<Service>(None, &ListParams::default())
        .await
        .map_err(|e| format!("cannot list services: {e}"))?;
    let pods = c
        .list::<Pod>(None, &ListParams::default())
        .await
        .map_err(|e| format!("cannot list pods: {e}"))?;
    let eps = c
        .list::<faultline_api::Endpoints>(None, &ListParams::default())
        .await
        .map_err(|e| format!("cannot list endpoints: {e}"))?;
    for svc in &services.items {
        if svc.spec.selector.is_empty() {
            continue;
        }
        let (ns, name) = (&svc.metadata.namespace, &svc.metadata.name);
        let want: std::collections::BTreeSet<&str> = pods
            .items
            .iter()
            .filter(|p| {
                p.metadata.namespace == *ns
                    && p.metadata.deletion_timestamp.is_none()
                    && p.is_ready()
                    && !p.status.pod_ip.is_empty()
                    && svc
                        .spec
                        .selector
                        .iter()
                        .all(|(k, v)| p.metadata.labels.get(k) == Some(v))
            })
            .map(|p| p.status.pod_ip.as_str())
            .collect();
        let have: std::collections::BTreeSet<&str> = eps
            .items
            .iter()
            .filter(|e| e.metadata.namespace == *ns && e.metadata.name == *name)
            .flat_map(|e| e.subsets.iter())
            .flat_map(|s| s.addresses.iter())
            .map(|a| a.ip.as_str())
            .collect();
        if want != have {
            return Err(format!(
                "service {ns}/{name}: endpoints {:?} but ready pods {:?}",
                have, want
            ));
        }
    }
    Ok(())
}

/// One container instance as the ledger saw it.
#[derive(Debug, Clone)]
struct Instance {
    host: String,
    pod: String,
    id: String,
    started: u64,
    ended: Option<u64>,
}

/// Every container started anywhere, by (pod uid, container name).
pub struct Ledger {
    clock: Clock,
    instances: RefCell<BTreeMap<(String, String), Vec<Instance>>>,
    /// (simulated ns, what) for each overlap.
    pub violations: RefCell<Vec<(u64, String)>>,
    pub started: RefCell<u64>,
    /// Per node: rung to restart its kubelet and proxy processes.
    kubelet_restarts: RefCell<BTreeMap<String, Rc<tokio::sync::Notify>>>,
}

impl Ledger {
    pub fn new(clock: Clock) -> Ledger {
        Ledger {
            clock,
            instances: RefCell::new(BTreeMap::new()),
            violations: RefCell::new(Vec::new()),
            started: RefCell::new(0),
            kubelet_restarts: RefCell::new(BTreeMap::new()),
        }
    }

    /// The bell that restarts `node`'s kubelet and proxy.
    pub fn kubelet_bell(&self, node: &str) -> Rc<tokio::sync::Notify> {
        self.kubelet_restarts
            .borrow_mut()
            .entry(node.to_string())
            .or_default()
            .clone()
    }

    fn start(&self, host: &str, spec: &ContainerSpec, id: &ContainerId) {
        let now = (self.clock)();
        let key = (spec.pod_uid.clone(), spec.container_name.clone());
        let mut all = self.instances.borrow_mut();
        let list = all.entry(key).or_default();
        if let Some(other) = list.iter().find(|i| i.ended.is_none()) {
            self.violations.borrow_mut().push((
                now,
                format!(
                    "pod {}/{} (uid {}) container {}: started on {host} while still running on {} ({})",
                    spec.pod_namespace, spec.pod_name, spec.pod_uid, spec.container_name, other.host, other.id
                ),
            ));
        }
        list.push(Instance {
            host: host.to_string(),
            pod: spec.pod_name.clone(),
            id: id.as_str().to_string(),
            started: now,
            ended: None,
        });
        *self.started.borrow_mut() += 1;
    }

    fn end(&self, id: &str, at: Option<u64>) {
        let now = at.unwrap_or_else(|| (self.clock)());
        for list in self.instances.borrow_mut().values_mut() {
            for i in list.iter_mut().filter(|i| i.id == id && i.ended.is_none()) {
                i.ended = Some(now.max(i.started));
            }
        }
    }

    /// The hosts running a container of a pod named `{prefix}-...` (a pod
    /// of that deployment), in name order.
    pub fn hosts_running(&self, prefix: &str) -> Vec<String> {
        let want = format!("{prefix}-");
        let hosts: std::collections::BTreeSet<String> = self
            .instances
            .borrow()
            .values()
            .flatten()
            .filter(|i| i.ended.is_none() && i.pod.starts_with(&want))
            .map(|i| i.host.clone())
            .collect();
        hosts.into_iter().collect()
    }

    /// Per host of `hosts`: the pods with a container running on it at
    /// the start of each `step_ns`, up to `end_ns`.
    pub fn pods_per_host(&self, hosts: &[String], step_ns: u64, end_ns: u64) -> Vec<Vec<u32>> {
        let steps = end_ns.div_ceil(step_ns).max(1) as usize;
        let mut out = vec![vec![0u32; steps]; hosts.len()];
        let index: BTreeMap<&str, usize> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), i))
            .collect();
        // A pod counts once per step however many containers it runs.
        let mut spans: BTreeMap<(usize, &str), Vec<(u64, u64)>> = BTreeMap::new();
        let all = self.instances.borrow();
        for ((uid, _), list) in all.iter() {
            for i in list {
                if let Some(&h) = index.get(i.host.as_str()) {
                    let end = i.ended.unwrap_or(u64::MAX);
                    spans
                        .entry((h, uid.as_str()))
                        .or_default()
                        .push((i.started, end));
                }
            }
        }
        for ((h, _), spans) in spans {
            for (k, count) in out[h].iter_mut().enumerate() {
                let t = k as u64 * step_ns;
                if spans.iter().any(|&(a, b)| a <= t && t < b) {
                    *count += 1;
                }
            }
        }
        out
    }

    /// A host crashed: everything it ran is dead.
    pub fn host_down(&self, host: &str) {
        let now = (self.clock)();
        for list in self.instances.borrow_mut().values_mut() {
            for i in list
                .iter_mut()
                .filter(|i| i.host == host && i.ended.is_none())
            {
                i.ended = Some(now);
            }
        }
    }
}

/// A runtime that tells the ledger what it starts and what stops.
struct LedgerRuntime {
    inner: SimRuntime,
    ledger: Rc<Ledger>,
    host: String,
}

#[async_trait(?Send)]
impl ContainerRuntime for LedgerRuntime {
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, RuntimeError> {
        let s = spec.clone();
        let id = self.inner.start(spec).await?;
        self.ledger.start(&self.host, &s, &id);
        Ok(id)
    }

    async fn stop(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let r = self.inner.stop(id).await;
        self.ledger.end(id.as_str(), None);
        r
    }

    async fn list(&self) -> Vec<ContainerInfo> {
        let list = self.inner.list().await;
        for c in &list {
            if !c.state.is_running() {
                self.ledger.end(c.id.as_str(), None);
            }
        }
        list
    }

    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let r = self.inner.remove(id).await;
        self.ledger.end(id.as_str(), None);
        r
    }
}
