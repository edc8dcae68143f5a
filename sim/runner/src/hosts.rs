//! The hosts that act on the simulated cluster and watch it, each a thin
//! shell over `faultline-workloads` and `faultline-checker`: the user who
//! applies the deployments, the users of its services, the auditor of the
//! store's history, and the probes that judge convergence after healing.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use faultline_api::Node;
use faultline_checker::auditor::{self, Findings};
use faultline_checker::probe::{self, ProbeSpec};
use faultline_checker::record::{Clock, FinalState, SharedRecorder, SharedTrafficLog};
use faultline_client::{Client, ClientConfig, ListParams};
use faultline_engine::HostMain;
use faultline_env::Env;
use faultline_scenario::{node_names, InvariantKind, InvariantSpec, Scenario};
use faultline_store::client::{ClientConfig as StoreClientConfig, StoreClient};
use faultline_workloads::{store, traffic, user};

use crate::world::{api_servers, credentials, store_endpoints};

/// An admin API client on `env`.
fn admin(env: &Env, s: &Scenario) -> Client {
    Client::new(
        env.clone(),
        ClientConfig::new(api_servers(s), &credentials(s).admin),
    )
}

/// The user: creates the scenario's deployments (and services) as soon as
/// the API answers, then performs its actions on time.
pub fn user(s: &Scenario) -> HostMain {
    let s = Rc::new(s.clone());
    Rc::new(move |env: Env| {
        let s = s.clone();
        Box::pin(async move {
            let c = admin(&env, &s);
            user::act(env, c, &s).await;
        })
    })
}

/// The user of a real cluster: first waits (at most `limit`) until every
/// node of the scenario is registered and Ready, as an operator runs
/// `kubectl wait --for=condition=Ready node --all` after bringing a cluster
/// up, then acts as [`user`]. Containers start within seconds of each
/// other; a deployment applied while only the first node is Ready would
/// put every pod there, and a scenario about losing one node would prove
/// nothing. (In the simulator the nodes register before the API first
/// answers the user, so the simulated user does not wait.)
pub fn user_once_nodes_ready(s: &Scenario, limit: Duration) -> HostMain {
    let s = Rc::new(s.clone());
    Rc::new(move |env: Env| {
        let s = s.clone();
        Box::pin(async move {
            let c = admin(&env, &s);
            let want = node_names(&s);
            let deadline = env.now() + limit;
            while env.now() < deadline {
                let ready = match c.list::<Node>(None, &ListParams::default()).await {
                    Ok(l) => want.iter().all(|n| {
                        l.items
                            .iter()
                            .any(|x| &x.metadata.name == n && x.is_ready())
                    }),
                    Err(_) => false,
                };
                if ready {
                    break;
                }
                env.sleep(Duration::from_millis(250)).await;
            }
            user::act(env, c, &s).await;
        })
    })
}

/// The users of the scenario's services: (host, datacenter, main).
pub fn users(
    s: &Scenario,
    log: &SharedTrafficLog,
    clock: &Clock,
    stop: &Rc<Cell<bool>>,
) -> Vec<(String, String, HostMain)> {
    traffic::users(s)
        .into_iter()
        .map(|(name, dc, spec)| {
            let (log, clock, stop) = (log.clone(), clock.clone(), stop.clone());
            let main: HostMain = Rc::new(move |env: Env| {
                Box::pin(traffic::user_loop(
                    env,
                    spec.clone(),
                    log.clone(),
                    clock.clone(),
                    stop.clone(),
                ))
            });
            (name, dc, main)
        })
        .collect()
}

/// The auditor host: reads `/registry/` in the store from revision 1.
pub fn auditor(s: &Scenario, findings: Findings, clock: Clock) -> HostMain {
    let endpoints = store_endpoints(s);
    Rc::new(move |env: Env| {
        let store = Rc::new(StoreClient::new(
            env.clone(),
            StoreClientConfig::new(endpoints.clone()),
        ));
        Box::pin(auditor::audit(env, store, findings.clone(), clock.clone()))
    })
}

/// What the cluster probe checks after healing, from the scenario's
/// invariants; `None` when none needs it.
pub fn cluster_probe_spec(s: &Scenario) -> Option<ProbeSpec> {
    // `converges` in a cluster also means nodes Ready, deployments at
    // their desired ready replicas and endpoints equal to ready pods.
    let converges = s
        .has_nodes()
        .then(|| s.invariant(InvariantKind::Converges))
        .flatten();
    let spec = ProbeSpec {
        ready: s
            .invariant(InvariantKind::DeploymentsReady)
            .or(converges)
            .map(|i| {
                let only = match &i.spec {
                    InvariantSpec::DeploymentsReady(d) => d.deployments.clone(),
                    _ => None,
                };
                (i.within().unwrap_or(Duration::from_secs(120)), only)
            }),
        endpoints: converges.is_some(),
        pending: s.invariant(InvariantKind::PendingExplained).is_some(),
    };
    (spec.ready.is_some() || spec.pending).then_some(spec)
}

/// The cluster probe host.
pub fn cluster_probe(s: &Scenario, spec: ProbeSpec, findings: Findings) -> HostMain {
    let s = Rc::new(s.clone());
    Rc::new(move |env: Env| {
        let c = admin(&env, &s);
        Box::pin(probe::probe(
            env,
            c,
            spec.clone(),
            node_names(&s),
            findings.clone(),
        ))
    })
}

/// Where the store probe leaves what it found.
pub type StoreProbeResult = Rc<RefCell<Option<(Result<Duration, String>, FinalState)>>>;

/// The store probe, started once everything is healed: waits for the
/// replicas to converge, then reads the final state.
pub fn store_probe(s: &Scenario, rec: &SharedRecorder, result: &StoreProbeResult) -> HostMain {
    let within = s
        .invariant(InvariantKind::Converges)
        .and_then(|i| i.within())
        .unwrap_or(Duration::from_secs(60));
    let (eps, rec, result) = (store_endpoints(s), rec.clone(), result.clone());
    let keys = s.workload.as_ref().map(|w| w.keys).unwrap_or(0);
    let generations =
        (s.duration.0.as_secs_f64() / store::KEY_GENERATION.as_secs_f64()).ceil() as u64;
    let has_workload = s.workload.is_some();
    Rc::new(move |env: Env| {
        let (eps, rec, result) = (eps.clone(), rec.clone(), result.clone());
        Box::pin(async move {
            let converged = store::await_convergence(env.clone(), eps.clone(), within).await;
            let fin = if has_workload {
                store::final_reads(env, eps, keys, generations, rec).await
            } else {
                FinalState::default()
            };
            *result.borrow_mut() = Some((converged, fin));
        })
    })
}
