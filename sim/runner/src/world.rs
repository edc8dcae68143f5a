//! The simulated cluster a scenario describes: its masters (a store
//! replica each and, with worker nodes, the control plane, wired by
//! `faultline-roles` as real mode wires them), its worker nodes (kubelet
//! and proxy over the simulated runtime, wrapped by the container ledger),
//! the store workload's clients, and the addresses they all use.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use faultline_api::{labels, Quantity};
use faultline_apiserver::server::RequestObserver;
use faultline_apiserver::{ApiServerConfig, Bugs as ApiBugs};
use faultline_checker::ledger::{Ledger, LedgerRuntime};
use faultline_checker::record::SharedRecorder;
use faultline_controllers::manager::ManagerConfig;
use faultline_engine::HostMain;
use faultline_env::Env;
use faultline_kubelet::{KubeletConfig, SimRuntime};
use faultline_proxy::ProxyConfig;
use faultline_roles::master::{ManagerSpec, SchedulerSpec};
use faultline_roles::{
    start_node, ControlPlaneSpec, Credentials, MasterSpec, NodeSpec, StoreRestart,
};
use faultline_scenario::{
    client_names, dc_of, master_names, node_names, Bug, ControlPlaneBug, Scenario,
};
use faultline_store::server::{Bugs, StoreConfig};
use faultline_workloads::store;
use tokio::sync::Notify;

use crate::observe::ApiLog;

/// The API server's port on every master.
pub const API_PORT: u16 = 6443;
/// The store's client/peer port on every master.
pub const STORE_PORT: u16 = 2379;

/// Store endpoints of every master.
pub fn store_endpoints(s: &Scenario) -> Vec<String> {
    master_names(s.cluster.masters)
        .into_iter()
        .map(|m| format!("{m}:{STORE_PORT}"))
        .collect()
}

/// API server addresses.
pub fn api_servers(s: &Scenario) -> Vec<String> {
    master_names(s.cluster.masters)
        .into_iter()
        .map(|m| format!("{m}:{API_PORT}"))
        .collect()
}

/// The cluster's credentials: well-known tokens (nobody outside the
/// simulation reaches the API).
pub fn credentials(s: &Scenario) -> Credentials {
    Credentials::well_known(&node_names(s))
}

/// Per node: the bell that restarts its kubelet and proxy processes (the
/// `kubelet-restart` fault rings it).
#[derive(Clone, Default)]
pub struct KubeletBells(Rc<RefCell<BTreeMap<String, Rc<Notify>>>>);

impl KubeletBells {
    /// The bell of `node`.
    pub fn bell(&self, node: &str) -> Rc<Notify> {
        self.0
            .borrow_mut()
            .entry(node.to_string())
            .or_default()
            .clone()
    }
}

/// The store configuration of master `i` (1-based).
pub fn store_config(s: &Scenario, i: u64) -> StoreConfig {
    let masters = master_names(s.cluster.masters);
    let members: BTreeMap<u64, String> = masters
        .iter()
        .enumerate()
        .map(|(j, m)| (j as u64 + 1, format!("{m}:{STORE_PORT}")))
        .collect();
    let mut cfg = StoreConfig::new(i, STORE_PORT, members);
    cfg.tick = s.store.tick.0;
    cfg.election_ticks = s.store.election_ticks;
    cfg.snapshot_every = s.store.snapshot_every;
    cfg.keep_revisions = s.store.keep_revisions;
    cfg.request_timeout = Duration::from_secs(3);
    cfg.bugs = Bugs {
        ack_before_commit: s.has_bug(Bug::AckBeforeCommit),
        stale_reads: s.has_bug(Bug::StaleReads),
        rejoin_as_new: s.has_bug(Bug::RejoinAsNew),
    };
    cfg
}

/// How a simulated master's store restarts when it cannot start: as a
/// service manager would (systemd's `Restart=on-failure`), every second; a
/// replica whose hard state is gone needs an operator and stays down.
pub const STORE_RESTART: StoreRestart = StoreRestart::OnFailure {
    after: Duration::from_secs(1),
};

/// The host main of a master.
///
/// After its first start a master rejoins an existing cluster, as an
/// operator switches etcd to `initial-cluster-state = existing` once the
/// cluster is up: an empty disk then means lost data.
pub fn master_host(spec: MasterSpec) -> HostMain {
    let started = Rc::new(Cell::new(false));
    Rc::new(move |env: Env| {
        let mut spec = spec.clone();
        spec.store.rejoin = started.replace(true);
        Box::pin(async move {
            // Its errors are in the trace; the host just stops.
            let _ = faultline_roles::master(env, spec).await;
        })
    })
}

/// Master `i`'s spec (1-based): the store replica, plus, with worker
/// nodes, the API server, scheduler and controller manager (each elected
/// where needed). The simulator's masters and a real run's master
/// containers (`faultline real run`) are built from this one function.
pub fn master_spec(s: &Scenario, i: u64, on_request: Option<RequestObserver>) -> MasterSpec {
    MasterSpec {
        store: store_config(s, i),
        restart: STORE_RESTART,
        control_plane: s.has_nodes().then(|| control_plane(s, on_request)),
    }
}

fn control_plane(s: &Scenario, on_request: Option<RequestObserver>) -> ControlPlaneSpec {
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
    ControlPlaneSpec {
        api,
        store_endpoints: store_endpoints(s),
        api_servers: api_servers(s),
        // The simulator's transport stays plain (see faultline_env::tls).
        api_tls: None,
        scheduler: Some(SchedulerSpec {
            token: creds.scheduler.clone(),
            count: s.control_plane.schedulers,
        }),
        controller_manager: Some(ManagerSpec {
            token: creds.controller.clone(),
            config: manager,
        }),
    }
}

/// The pod IP prefix of worker node `index` (0-based): `10.(index+1)`.
pub fn pod_prefix(index: usize) -> String {
    format!("10.{}", index + 1)
}

/// Worker node `index`'s spec (0-based; its name `name`, in datacenter
/// `dc`): the kubelet and the node's service proxy, as the simulator and a
/// real run's node containers both start them.
pub fn node_spec(s: &Scenario, index: usize, name: &str, dc: &str) -> NodeSpec {
    let node = &s.cluster.node;
    let mut cfg = KubeletConfig::new(name, &pod_prefix(index));
    cfg.labels.insert(labels::REGION.into(), dc.to_string());
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
    NodeSpec {
        api_servers: api_servers(s),
        token: credentials(s)
            .node(name)
            .expect("every node has a token")
            .to_string(),
        tls: None,
        kubelet: Some(cfg),
        proxy: Some(ProxyConfig::new(name)),
    }
}

/// A worker node: a kubelet over the simulated runtime, wrapped by the
/// container ledger, and the node's service proxy.
pub fn node_main(
    s: &Scenario,
    index: usize,
    dc: &str,
    ledger: Rc<Ledger>,
    bells: KubeletBells,
) -> HostMain {
    let s = Rc::new(s.clone());
    let dc = dc.to_string();
    Rc::new(move |env: Env| {
        let (s, dc, ledger, bells) = (s.clone(), dc.clone(), ledger.clone(), bells.clone());
        let name = env.host().to_string();
        Box::pin(async move {
            // The container runtime lives on the host: its containers
            // outlive a kubelet restart (the new kubelet adopts them).
            let runtime = Rc::new(LedgerRuntime::new(
                SimRuntime::new(env.clone()),
                ledger.clone(),
                &name,
            ));
            let spec = node_spec(&s, index, &name, &dc);
            let bell = bells.bell(&name);
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

/// Every host of a run but the probe: masters, clients and the watcher.
pub fn hosts(
    s: &Scenario,
    rec: &SharedRecorder,
    stop: &Rc<Cell<bool>>,
    api: Option<&Rc<ApiLog>>,
) -> Vec<(String, String, HostMain)> {
    let mut out = Vec::new();
    for (i, m) in master_names(s.cluster.masters).iter().enumerate() {
        let main = master_host(master_spec(s, i as u64 + 1, api.map(|a| a.observer())));
        out.push((m.clone(), dc_of(s, i), main));
    }
    if let Some(w) = &s.workload {
        let n = w.clients;
        let spec = Rc::new(store::WorkloadSpec {
            endpoints: store_endpoints(s),
            rate_per_client: w.rate / f64::from(n),
            keys: w.keys,
            mix: w.mix.clone(),
            stop: stop.clone(),
            spread_reads: w.spread_reads,
        });
        for (i, c) in client_names(n).iter().enumerate() {
            let (spec, rec) = (spec.clone(), rec.clone());
            let idx = i as u32 + 1;
            let main: HostMain = Rc::new(move |env| {
                Box::pin(store::client_loop(env, idx, spec.clone(), rec.clone()))
            });
            out.push((c.clone(), dc_of(s, i), main));
        }
        if w.watch {
            let (eps, rec) = (store_endpoints(s), rec.clone());
            let main: HostMain =
                Rc::new(move |env| Box::pin(store::watcher_loop(env, eps.clone(), rec.clone())));
            out.push(("watcher".to_string(), dc_of(s, 0), main));
        }
    }
    out
}
