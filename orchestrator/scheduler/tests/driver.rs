//! The scheduler driver end to end in the simulator: three masters, each
//! running a store replica, an API server and the scheduler; an admin on
//! another host creates nodes and pods and watches what happens.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use faultline_api::{Event, Lease, Node, Pod};
use faultline_client::{Client, ListParams, WatchItem};
use faultline_engine::{run, HostMain, World, WorldConfig};
use faultline_env::Env;
use faultline_scheduler::driver::{LEASE_NAME, LEASE_NAMESPACE};
use faultline_testkit::Masters;

/// Three masters, each a store replica, an API server and the scheduler.
fn masters() -> Masters {
    Masters::api(3).with_scheduler()
}

/// What the admin host reports to the test, and asks of the world.
#[derive(Default)]
struct Shared {
    log: Vec<String>,
    /// A host the world should crash.
    crash: Option<String>,
    done: bool,
}

type Handle = Rc<RefCell<Shared>>;

fn node(name: &str, region: &str, cpu: &str) -> Node {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/region": region}},
        "status": {
            "allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
            "capacity": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    }))
    .expect("a valid node")
}

fn pod(name: &str, app: &str, cpu: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "echo",
                 "resources": {"requests": {"cpu": cpu}}}]}
    }))
    .expect("a valid pod")
}

/// Polls `check` every half second until it holds or `within` passes.
async fn eventually<F, Fut>(env: &Env, within: Duration, check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = env.now() + within;
    loop {
        if check().await {
            return true;
        }
        if env.now() >= deadline {
            return false;
        }
        env.sleep(Duration::from_millis(500)).await;
    }
}

/// Retries a create until the cluster accepts it (the store may still be
/// electing its leader).
async fn create<T: faultline_api::Resource>(env: &Env, c: &Client, obj: &T) {
    for _ in 0..100 {
        match c.create(obj).await {
            Ok(_) => return,
            Err(e) if e.is_already_exists() => return,
            Err(_) => env.sleep(Duration::from_millis(500)).await,
        }
    }
    panic!("could not create {}", obj.meta().name);
}

/// Pods with label `app`, as `node=count` sorted by node (`-` unbound).
async fn spread(c: &Client, app: &str) -> String {
    let Ok(list) = c
        .list::<Pod>(Some("default"), &ListParams::labels(&format!("app={app}")))
        .await
    else {
        return "unlistable".into();
    };
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for p in &list.items {
        let n = if p.spec.node_name.is_empty() {
            "-".to_string()
        } else {
            p.spec.node_name.clone()
        };
        *per.entry(n).or_default() += 1;
    }
    per.iter()
        .map(|(n, k)| format!("{n}={k}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `PodScheduled` condition of a pod: `status reason`.
async fn scheduled(c: &Client, name: &str) -> String {
    match c.get::<Pod>("default", name).await {
        Ok(p) => p
            .status
            .conditions
            .iter()
            .find(|c| c.kind == "PodScheduled")
            .map(|c| format!("{} {}", c.status, c.reason))
            .unwrap_or_default(),
        Err(e) => e.to_string(),
    }
}

/// Creates three ready nodes (2 cpu each, one per datacenter) and six
/// pods of one workload, and waits until they are spread two per node.
async fn setup(env: &Env, admin: &Client, say: &dyn Fn(String)) {
    for (i, dc) in ["dc-a", "dc-b", "dc-c"].iter().enumerate() {
        create(env, admin, &node(&format!("n{}", i + 1), dc, "2")).await;
    }
    for i in 0..6 {
        create(env, admin, &pod(&format!("web-{i}"), "web", "500m")).await;
    }
    let want = "n1=2 n2=2 n3=2";
    let ok = eventually(env, Duration::from_secs(60), || async {
        spread(admin, "web").await == want
    })
    .await;
    say(format!("web spread: {} ({ok})", spread(admin, "web").await));
}

fn admin_script(shared: Handle, failover: bool) -> HostMain {
    Rc::new(move |env: Env| {
        let shared = shared.clone();
        Box::pin(async move {
            env.sleep(Duration::from_secs(3)).await;
            let admin = masters().admin(&env);
            let say = |s: String| shared.borrow_mut().log.push(s);
            setup(&env, &admin, &say).await;
            if failover {
                failover_phase(&env, &admin, &shared, &say).await;
            } else {
                unschedulable_phase(&env, &admin, &say).await;
            }
            shared.borrow_mut().done = true;
        })
    })
}

async fn unschedulable_phase(env: &Env, admin: &Client, say: &dyn Fn(String)) {
    create(env, admin, &pod("big", "big", "64")).await;
    let ok = eventually(env, Duration::from_secs(30), || async {
        scheduled(admin, "big").await == "False Unschedulable"
    })
    .await;
    say(format!("big: {} ({ok})", scheduled(admin, "big").await));
    let big: Pod = admin.get("default", "big").await.expect("get big");
    let message = big
        .status
        .conditions
        .iter()
        .find(|c| c.kind == "PodScheduled")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    say(format!("big message: {message}"));
    let ok = eventually(env, Duration::from_secs(30), || async {
        let Ok(events) = admin
            .list::<Event>(Some("default"), &ListParams::default())
            .await
        else {
            return false;
        };
        events.items.iter().any(|e| {
            e.reason == "FailedScheduling"
                && e.involved_object.name == "big"
                && e.event_type == "Warning"
                && e.source.component == "default-scheduler"
                && e.metadata.name.starts_with("big.")
        })
    })
    .await;
    say(format!("FailedScheduling event: {ok}"));

    // A node big enough arrives: the parked pod is retried and bound.
    create(env, admin, &node("n4", "dc-a", "128")).await;
    let ok = eventually(env, Duration::from_secs(20), || async {
        admin
            .get::<Pod>("default", "big")
            .await
            .is_ok_and(|p| p.spec.node_name == "n4")
    })
    .await;
    say(format!("big bound to n4: {ok}"));
    say(format!("big: {}", scheduled(admin, "big").await));
}

async fn holder(admin: &Client) -> Option<String> {
    admin
        .get::<Lease>(LEASE_NAMESPACE, LEASE_NAME)
        .await
        .ok()
        .and_then(|l| l.spec.holder_identity)
}

async fn failover_phase(env: &Env, admin: &Client, shared: &Handle, say: &dyn Fn(String)) {
    let old = holder(admin).await.expect("a scheduler leads");
    say("leader found".into());
    // The world crashes it within 100 ms, likely while the first three
    // are created and bound; the last three are for the next leader.
    shared.borrow_mut().crash = Some(old.clone());
    for i in 0..6 {
        if i == 3 {
            env.sleep(Duration::from_secs(1)).await;
        }
        create(env, admin, &pod(&format!("late-{i}"), "late", "250m")).await;
    }
    let ok = eventually(env, Duration::from_secs(40), || async {
        admin
            .list::<Pod>(Some("default"), &ListParams::labels("app=late"))
            .await
            .is_ok_and(|l| {
                l.items.len() == 6 && l.items.iter().all(|p| !p.spec.node_name.is_empty())
            })
    })
    .await;
    say(format!("late pods bound within 40s: {ok}"));
    let new = holder(admin).await.unwrap_or_default();
    say(format!(
        "new leader differs: {}",
        !new.is_empty() && new != old
    ));

    // The whole history of pods: once set, nodeName never changes.
    let list = admin
        .list::<Pod>(None, &ListParams::default())
        .await
        .expect("list pods");
    let upto = list.revision();
    let mut w = admin
        .watch::<Pod>(None, &ListParams::default(), "1")
        .await
        .expect("watch from revision 1");
    let mut first: BTreeMap<String, String> = BTreeMap::new();
    let mut rebound = Vec::new();
    let mut bindings = 0;
    while let Some(item) = w.next().await {
        let p = match item {
            WatchItem::Added(p) | WatchItem::Modified(p) | WatchItem::Deleted(p) => p,
            WatchItem::Bookmark(rv) if rv.parse::<i64>().unwrap_or(0) >= upto => break,
            WatchItem::Bookmark(_) => continue,
            WatchItem::Error(s) => panic!("watch failed: {s:?}"),
        };
        let rev = p.metadata.revision();
        if !p.spec.node_name.is_empty() {
            match first.get(&p.metadata.uid) {
                None => {
                    bindings += 1;
                    first.insert(p.metadata.uid.clone(), p.spec.node_name.clone());
                }
                Some(n) if *n != p.spec.node_name => rebound.push(p.metadata.name.clone()),
                Some(_) => {}
            }
        }
        if rev >= upto {
            break;
        }
    }
    say(format!("pods bound: {bindings}, rebound: {rebound:?}"));
}

/// Runs the world until the admin script is done (or 300 s pass), crashing
/// the hosts it asks for; returns its log and the trace's hash.
fn simulate(seed: u64, failover: bool) -> (Vec<String>, u64) {
    let shared: Handle = Default::default();
    let s = shared.clone();
    let hash = run(seed, move || async move {
        let mut cfg = WorldConfig::new(seed);
        cfg.keep_trace = std::env::var_os("FAULTLINE_TRACE").is_some();
        let world = World::new(cfg);
        masters().add_to(&world, "dc-a");
        world.add_host("admin", "dc-a", admin_script(s.clone(), failover));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let crash = s.borrow_mut().crash.take();
            if let Some(host) = crash {
                let id = world.host(&host).expect("a known host");
                world.crash(id, false);
            }
            if s.borrow().done || tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        world.shutdown();
        if std::env::var_os("FAULTLINE_TRACE").is_some() {
            for l in world.trace().lines() {
                if l.contains("scheduler") || l.contains("leader") {
                    eprintln!("{l}");
                }
            }
        }
        world.trace().hash()
    });
    let log = shared.borrow().log.clone();
    (log, hash)
}

#[test]
fn pods_spread_then_unschedulable_pod_waits_for_a_node() {
    for seed in [1, 2] {
        let (log, _) = simulate(seed, false);
        assert_eq!(log.len(), 6, "seed {seed}: {log:#?}");
        assert_eq!(log[0], "web spread: n1=2 n2=2 n3=2 (true)", "seed {seed}");
        assert_eq!(log[1], "big: False Unschedulable (true)", "seed {seed}");
        assert_eq!(
            log[2], "big message: 0/3 nodes are available: 3 Insufficient cpu.",
            "seed {seed}"
        );
        assert_eq!(log[3], "FailedScheduling event: true", "seed {seed}");
        assert_eq!(log[4], "big bound to n4: true", "seed {seed}");
        assert_eq!(log[5], "big: True ", "seed {seed}");
    }
}

#[test]
fn a_new_leader_takes_over_and_no_pod_is_bound_twice() {
    for seed in [3, 4] {
        let (log, _) = simulate(seed, true);
        assert_eq!(
            log,
            vec![
                "web spread: n1=2 n2=2 n3=2 (true)".to_string(),
                "leader found".into(),
                "late pods bound within 40s: true".into(),
                "new leader differs: true".into(),
                "pods bound: 12, rebound: []".into(),
            ],
            "seed {seed}"
        );
    }
}

#[test]
fn a_seed_replays_the_same_trace() {
    let a = simulate(5, false);
    let b = simulate(5, false);
    assert_eq!(a, b);
}
