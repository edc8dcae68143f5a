//! The controller manager end to end in the simulator: three masters, each
//! running a store replica, an API server and the controller manager; a
//! test-only node agent that plays the scheduler and three kubelets
//! (binds pending pods round-robin, marks them Running and Ready with a pod
//! IP, finishes graceful deletions, renews the node leases); and a user
//! that drives a scenario and logs what it observes.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use faultline_api::{
    Deployment, Endpoints, Lease, LeaseSpec, Node, NodeCondition, ObjectMeta, Pod, PodCondition,
    ReplicaSet, Service,
};
use faultline_client::{Client, DeleteParams, ListParams};
use faultline_controllers::manager::{ELECTION_NAME, ELECTION_NAMESPACE};
use faultline_controllers::{ManagerConfig, NodeLifecycleConfig};
use faultline_engine::{run, HostMain, World, WorldConfig};
use faultline_env::Env;
use faultline_testkit::{retry, Log, Masters};

const NODES: [&str; 3] = ["n1", "n2", "n3"];

fn manager_config() -> ManagerConfig {
    ManagerConfig {
        node_lifecycle: NodeLifecycleConfig {
            grace_ms: 10_000,
            eviction_timeout_ms: 20_000,
            monitor_period_ms: 1_000,
            ..Default::default()
        },
        gc_every: Duration::from_secs(5),
        ..ManagerConfig::new("")
    }
}

/// Three masters, each a store replica, an API server and the controller
/// manager.
fn masters() -> Masters {
    Masters::api(3).with_manager(manager_config())
}

/// Nodes whose kubelet has stopped: no lease renewals, no new pods, no
/// finished deletions.
type Dead = Rc<RefCell<BTreeSet<String>>>;

fn now_micro(env: &Env) -> String {
    faultline_api::time::rfc3339_micros(env.wall_ms())
}

fn agent(dead: Dead) -> HostMain {
    Rc::new(move |env: Env| {
        let dead = dead.clone();
        Box::pin(async move {
            env.sleep(Duration::from_secs(3)).await;
            let admin = masters().admin(&env);
            let sched = masters().client(&env, &masters().credentials.scheduler);
            for name in NODES {
                let mut node = Node {
                    metadata: ObjectMeta::named("", name),
                    ..Default::default()
                };
                node.status.conditions.push(NodeCondition {
                    kind: "Ready".into(),
                    status: "True".into(),
                    reason: "KubeletReady".into(),
                    last_heartbeat_time: Some(now_micro(&env)),
                    last_transition_time: Some(now_micro(&env)),
                    ..Default::default()
                });
                retry(&env, || admin.create(&node)).await;
                let lease = Lease {
                    metadata: ObjectMeta::named("kube-node-lease", name),
                    spec: LeaseSpec {
                        holder_identity: Some(name.into()),
                        lease_duration_seconds: Some(40),
                        renew_time: Some(now_micro(&env)),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                retry(&env, || admin.create(&lease)).await;
            }
            let mut next_node = 0usize;
            let mut next_ip = 0u32;
            let mut renew_at = env.now();
            loop {
                env.sleep(Duration::from_millis(500)).await;
                let live: Vec<&str> = NODES
                    .iter()
                    .copied()
                    .filter(|n| !dead.borrow().contains(*n))
                    .collect();
                if env.now() >= renew_at {
                    renew_at += Duration::from_secs(2);
                    for name in &live {
                        if let Ok(mut l) = admin.get::<Lease>("kube-node-lease", name).await {
                            l.spec.renew_time = Some(now_micro(&env));
                            let _ = admin.update(&l).await;
                        }
                    }
                }
                let Ok(pods) = admin.list::<Pod>(None, &ListParams::default()).await else {
                    continue;
                };
                for pod in pods.items {
                    let (ns, name) = (&pod.metadata.namespace, &pod.metadata.name);
                    let node = pod.spec.node_name.as_str();
                    if pod.metadata.deletion_timestamp.is_some() {
                        if node.is_empty() || live.contains(&node) {
                            let now = DeleteParams {
                                grace_period_seconds: Some(0),
                                precondition_uid: pod.metadata.uid.clone(),
                                ..Default::default()
                            };
                            let _ = admin.delete::<Pod>(ns, name, &now).await;
                        }
                    } else if node.is_empty() {
                        if live.is_empty() {
                            continue;
                        }
                        let target = live[next_node % live.len()];
                        next_node += 1;
                        let _ = sched.bind(ns, name, &pod.metadata.uid, target).await;
                    } else if live.contains(&node) && pod.status.phase != "Running" {
                        next_ip += 1;
                        let mut p = pod.clone();
                        p.status.phase = "Running".into();
                        p.status.pod_ip = format!("10.0.{}.{}", next_ip / 250, next_ip % 250 + 1);
                        p.status.conditions = vec![PodCondition {
                            kind: "Ready".into(),
                            status: "True".into(),
                            last_transition_time: Some(now_micro(&env)),
                            ..Default::default()
                        }];
                        let _ = admin.update_status(&p).await;
                    }
                }
            }
        })
    })
}

/// What the user sees of the cluster.
struct State {
    deployments: Vec<Deployment>,
    replicasets: Vec<ReplicaSet>,
    pods: Vec<Pod>,
    endpoints: Vec<Endpoints>,
    nodes: Vec<Node>,
}

impl State {
    async fn read(c: &Client) -> Option<State> {
        let all = ListParams::default();
        Some(State {
            deployments: c.list(Some("default"), &all).await.ok()?.items,
            replicasets: c.list(Some("default"), &all).await.ok()?.items,
            pods: c.list(Some("default"), &all).await.ok()?.items,
            endpoints: c.list(Some("default"), &all).await.ok()?.items,
            nodes: c.list(None, &all).await.ok()?.items,
        })
    }

    /// Pods that are not being deleted.
    fn active(&self) -> Vec<&Pod> {
        self.pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    }

    /// Replica sets with pods wanted (the current ones).
    fn scaled_up(&self) -> Vec<&ReplicaSet> {
        self.replicasets
            .iter()
            .filter(|r| r.spec.replicas.unwrap_or(1) > 0)
            .collect()
    }

    fn images(&self) -> BTreeSet<String> {
        self.active()
            .iter()
            .flat_map(|p| p.spec.containers.iter().map(|c| c.image.clone()))
            .collect()
    }

    /// `replicas` active, ready pods, all of `image`, from one scaled-up
    /// ReplicaSet whose status and the Deployment's status agree.
    fn converged(&self, replicas: i32, image: &str) -> bool {
        let active = self.active();
        let Some(d) = self.deployments.first() else {
            return false;
        };
        let current = self.scaled_up();
        active.len() == replicas as usize
            && active.iter().all(|p| p.is_ready())
            && self.images() == BTreeSet::from([image.to_string()])
            && current.len() == 1
            && current[0].status.available_replicas == replicas
            && d.status.available_replicas == replicas
            && d.status.updated_replicas == replicas
            && d.status.replicas == replicas
    }

    /// The ready IPs of the `web` Endpoints equal the active ready pods'.
    fn endpoints_match(&self) -> bool {
        let Some(ep) = self.endpoints.iter().find(|e| e.metadata.name == "web") else {
            return false;
        };
        let published: BTreeSet<&str> = ep
            .subsets
            .iter()
            .flat_map(|s| s.addresses.iter().map(|a| a.ip.as_str()))
            .collect();
        let not_ready = ep
            .subsets
            .iter()
            .map(|s| s.not_ready_addresses.len())
            .sum::<usize>();
        let ready: BTreeSet<&str> = self
            .active()
            .iter()
            .filter(|p| p.is_ready() && !p.status.pod_ip.is_empty())
            .map(|p| p.status.pod_ip.as_str())
            .collect();
        !ready.is_empty() && published == ready && not_ready == 0
    }

    fn describe(&self) -> String {
        let rss: Vec<String> = self
            .replicasets
            .iter()
            .map(|r| {
                format!(
                    "{}={}/{}",
                    r.metadata.name,
                    r.spec.replicas.unwrap_or(1),
                    r.status.available_replicas
                )
            })
            .collect();
        let pods: Vec<String> = self
            .pods
            .iter()
            .map(|p| {
                format!(
                    "{}@{}{}{}",
                    p.metadata.name,
                    p.spec.node_name,
                    if p.is_ready() { "+" } else { "-" },
                    if p.metadata.deletion_timestamp.is_some() {
                        "(deleting)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        format!(
            "deployments={:?} rss={rss:?} pods={pods:?}",
            self.deployments
                .iter()
                .map(|d| (d.spec.replicas, &d.status))
                .collect::<Vec<_>>()
        )
    }
}

/// Polls every 500 ms until `pred` holds, for at most `secs`; logs `what`
/// (or what was seen last, on timeout).
async fn until(
    env: &Env,
    c: &Client,
    log: &Log,
    what: &str,
    secs: u64,
    pred: impl Fn(&State) -> bool,
) -> Option<State> {
    let deadline = env.now() + Duration::from_secs(secs);
    let mut last = String::from("nothing read");
    while env.now() < deadline {
        if let Some(s) = State::read(c).await {
            if pred(&s) {
                log.borrow_mut().push(what.to_string());
                return Some(s);
            }
            last = s.describe();
        }
        env.sleep(Duration::from_millis(500)).await;
    }
    log.borrow_mut()
        .push(format!("TIMEOUT waiting for {what}: {last}"));
    None
}

fn deployment(replicas: i32) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "echo",
                    "ports": [{"containerPort": 8080}],
                    "resources": {"requests": {"cpu": "100m"}}}]}
            }
        }
    }))
    .expect("a valid deployment")
}

fn service() -> Service {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .expect("a valid service")
}

/// Runs a world of three masters, the agent and `script` as the user;
/// returns the user's log and the trace lines of the run.
fn simulate<F, Fut>(seed: u64, secs: u64, script: F) -> (Vec<String>, Vec<String>)
where
    F: Fn(Env, World, Dead, Log) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let log: Log = Default::default();
    let l = log.clone();
    let lines = run(seed, move || async move {
        let mut wc = WorldConfig::new(seed);
        wc.keep_trace = true;
        let world = World::new(wc);
        masters().add_to(&world, "dc-a");
        let dead: Dead = Default::default();
        world.add_host("agent", "dc-a", agent(dead.clone()));
        let script = Rc::new(script);
        let w = world.clone();
        let user: HostMain =
            Rc::new(move |env: Env| Box::pin(script(env, w.clone(), dead.clone(), l.clone())));
        world.add_host("user", "dc-a", user);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let lines = world.trace().lines();
        world.shutdown();
        lines
    });
    let log = log.borrow().clone();
    (log, lines)
}

fn admin(env: &Env) -> Client {
    masters().admin(env)
}

#[test]
fn deployments_roll_out_publish_endpoints_and_get_collected() {
    let (log, trace) = simulate(7, 400, |env, _world, _dead, log| async move {
        env.sleep(Duration::from_secs(5)).await;
        let c = admin(&env);
        let d = deployment(3);
        retry(&env, || c.create(&d)).await;
        until(&env, &c, &log, "3 replicas", 60, |s| {
            s.replicasets.len() == 1 && s.converged(3, "echo")
        })
        .await;

        c.scale("default", "web", 5).await.expect("scale");
        until(&env, &c, &log, "scaled to 5", 60, |s| {
            s.replicasets.len() == 1 && s.converged(5, "echo")
        })
        .await;

        c.create(&service()).await.expect("service");
        until(&env, &c, &log, "endpoints list the 5 pods", 30, |s| {
            s.endpoints_match() && s.active().len() == 5
        })
        .await;

        let mut d: Deployment = c.get("default", "web").await.expect("get");
        d.spec.template.spec.containers[0].image = "echo:v2".into();
        c.update(&d).await.expect("new image");
        until(&env, &c, &log, "rolled out echo:v2", 120, |s| {
            s.replicasets.len() == 2
                && s.converged(5, "echo:v2")
                && s.pods.len() == 5
                && s.scaled_up()[0].spec.template.spec.containers[0].image == "echo:v2"
        })
        .await;
        until(&env, &c, &log, "endpoints follow the rollout", 30, |s| {
            s.endpoints_match() && s.active().len() == 5
        })
        .await;

        c.delete::<Deployment>("default", "web", &DeleteParams::default())
            .await
            .expect("delete");
        until(&env, &c, &log, "collected", 60, |s| {
            s.deployments.is_empty() && s.replicasets.is_empty() && s.pods.is_empty()
        })
        .await;
        until(&env, &c, &log, "endpoints empty", 30, |s| {
            s.endpoints.len() == 1 && s.endpoints[0].subsets.is_empty()
        })
        .await;
    });
    assert_eq!(
        log,
        [
            "3 replicas",
            "scaled to 5",
            "endpoints list the 5 pods",
            "rolled out echo:v2",
            "endpoints follow the rollout",
            "collected",
            "endpoints empty",
        ]
    );
    // The writes are part of the deterministic trace.
    let has = |needle: &str| trace.iter().any(|l| l.contains(needle));
    assert!(
        has("controller: create pod default/web-"),
        "pod creates traced"
    );
    assert!(has("controller: create replicaset default/web-"));
    assert!(has("controller: create endpoints default/web"));
    assert!(
        has("controller: delete replicaset default/web-"),
        "GC traced"
    );
}

/// Converges a Deployment, crashes the master that leads the controller
/// manager, scales, and waits for the next leader to converge it.
fn failover(seed: u64) -> (Vec<String>, Vec<String>) {
    simulate(seed, 300, |env, world, _dead, log| async move {
        env.sleep(Duration::from_secs(5)).await;
        let c = admin(&env);
        let d = deployment(2);
        retry(&env, || c.create(&d)).await;
        until(&env, &c, &log, "2 replicas", 60, |s| s.converged(2, "echo")).await;

        let lease: Lease = c
            .get(ELECTION_NAMESPACE, ELECTION_NAME)
            .await
            .expect("the election lease exists");
        let leader = lease.spec.holder_identity.expect("someone leads");
        world.crash(world.host(&leader).expect("the leader is a host"), false);
        log.borrow_mut().push("crashed the leader".into());

        retry(&env, || c.scale("default", "web", 4)).await;
        until(&env, &c, &log, "the new leader scaled to 4", 90, |s| {
            s.converged(4, "echo")
        })
        .await;
        let lease: Lease = retry(&env, || c.get(ELECTION_NAMESPACE, ELECTION_NAME)).await;
        let now = lease.spec.holder_identity.unwrap_or_default();
        log.borrow_mut().push(format!(
            "leadership moved: {}",
            !now.is_empty() && now != leader
        ));
    })
}

#[test]
fn a_new_leader_takes_over_when_the_old_one_crashes() {
    let (log, trace) = failover(11);
    assert_eq!(
        log,
        [
            "2 replicas",
            "crashed the leader",
            "the new leader scaled to 4",
            "leadership moved: true",
        ]
    );
    let starts = trace
        .iter()
        .filter(|l| l.contains("runs the controllers"))
        .count();
    assert!(starts >= 2, "two terms of leadership, saw {starts}");
}

#[test]
fn pods_of_a_silent_node_are_evicted_and_replaced() {
    let (log, _trace) = simulate(3, 300, |env, _world, dead, log| async move {
        env.sleep(Duration::from_secs(5)).await;
        let c = admin(&env);
        let d = deployment(3);
        retry(&env, || c.create(&d)).await;
        let Some(s) = until(&env, &c, &log, "3 replicas", 60, |s| s.converged(3, "echo")).await
        else {
            return;
        };
        let on_n3 = s
            .active()
            .iter()
            .filter(|p| p.spec.node_name == "n3")
            .count();
        log.borrow_mut().push(format!("pods on n3: {on_n3}"));

        dead.borrow_mut().insert("n3".into());
        until(&env, &c, &log, "n3 unknown and tainted", 30, |s| {
            s.nodes.iter().any(|n| {
                n.metadata.name == "n3"
                    && n.ready_status() == "Unknown"
                    && n.spec
                        .taints
                        .iter()
                        .any(|t| t.key == "node.kubernetes.io/unreachable")
            })
        })
        .await;
        until(&env, &c, &log, "evicted and replaced elsewhere", 60, |s| {
            let on_n3: Vec<&Pod> = s.pods.iter().filter(|p| p.spec.node_name == "n3").collect();
            !on_n3.is_empty()
                && on_n3
                    .iter()
                    .all(|p| p.metadata.deletion_timestamp.is_some())
                && s.active().len() == 3
                && s.active().iter().all(|p| p.is_ready())
        })
        .await;
        until(&env, &c, &log, "n1 and n2 stay ready", 1, |s| {
            s.nodes
                .iter()
                .filter(|n| n.metadata.name != "n3")
                .all(|n| n.is_ready() && n.spec.taints.is_empty())
        })
        .await;
    });
    assert_eq!(
        log,
        [
            "3 replicas",
            "pods on n3: 1",
            "n3 unknown and tainted",
            "evicted and replaced elsewhere",
            "n1 and n2 stay ready",
        ]
    );
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let (log_a, trace_a) = failover(5);
    let (log_b, trace_b) = failover(5);
    assert_eq!(log_a, log_b);
    assert!(trace_a.iter().any(|l| l.contains("controller: create pod")));
    let first_divergence = trace_a.iter().zip(&trace_b).position(|(a, b)| a != b);
    assert_eq!(first_divergence, None, "the runs diverge");
    assert_eq!(trace_a.len(), trace_b.len());
}
