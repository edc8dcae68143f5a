//! The kubelet's sync loop against a real API server in the simulator:
//! registration, restart policies with CrashLoopBackOff, terminal phases,
//! readiness, graceful deletion.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use faultline_api::{Node, Pod};
use faultline_apiserver::{serve as serve_api, ApiServerConfig, Role, Tokens};
use faultline_client::{Client, ClientConfig, DeleteParams};
use faultline_engine::{run, HostMain, World, WorldConfig};
use faultline_env::Env;
use faultline_kubelet::{KubeletConfig, SimRuntime};
use faultline_store::client::{ClientConfig as StoreClientConfig, StoreClient};
use faultline_store::server::{serve as serve_store, StoreConfig};

fn tokens() -> Tokens {
    let mut t = Tokens::default();
    t.add("admin", "admin", Role::Admin);
    t.add("n1", "system:node:n1", Role::Node("n1".into()));
    t
}

fn master(id: u64) -> HostMain {
    Rc::new(move |env: Env| {
        Box::pin(async move {
            let members: BTreeMap<u64, String> =
                (1..=3).map(|i| (i, format!("m{i}:2379"))).collect();
            let store = Rc::new(StoreClient::new(
                env.clone(),
                StoreClientConfig::new(members.values().cloned().collect()),
            ));
            env.spawn(serve_api(
                env.clone(),
                ApiServerConfig::new(6443, tokens()),
                store,
            ));
            serve_store(env, StoreConfig::new(id, 2379, members))
                .await
                .expect("replica starts");
        })
    })
}

fn servers() -> Vec<String> {
    (1..=3).map(|i| format!("m{i}:6443")).collect()
}

fn node() -> HostMain {
    Rc::new(move |env: Env| {
        Box::pin(async move {
            let client = Client::new(env.clone(), ClientConfig::new(servers(), "n1"));
            let runtime = Rc::new(SimRuntime::new(env.clone()));
            faultline_kubelet::run(env, client, runtime, KubeletConfig::new("n1", "10.1")).await;
        })
    })
}

fn pod(name: &str, image: &str, args: &[&str], policy: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": "n1", "restartPolicy": policy,
                 "containers": [{"name": "c", "image": image, "args": args}]}
    }))
    .unwrap()
}

type Log = Rc<RefCell<Vec<String>>>;

fn user(log: Log) -> HostMain {
    Rc::new(move |env: Env| {
        let log = log.clone();
        Box::pin(async move {
            env.sleep(Duration::from_secs(5)).await;
            let c = Client::new(env.clone(), ClientConfig::new(servers(), "admin"));
            for p in [
                pod("flaky", "crash", &["after=5s"], "Always"),
                pod("once", "crash", &["after=5s"], "Never"),
                pod("job", "exit0", &["after=5s"], "OnFailure"),
                pod("web", "echo", &[], "Always"),
            ] {
                c.create(&p).await.expect("create");
            }
            env.sleep(Duration::from_secs(90)).await;
            let n: Node = c.get("", "n1").await.expect("node registered");
            log.borrow_mut()
                .push(format!("node ready: {}", n.is_ready()));
            for name in ["flaky", "once", "job", "web"] {
                let p: Pod = c.get("default", name).await.expect("pod");
                let restarts = p.status.container_statuses.first().map(|s| s.restart_count);
                let line = match name {
                    // 5 s runs, then 10 s, 20 s, 40 s backoffs: a few restarts in 90 s.
                    "flaky" => format!(
                        "flaky restarted {}",
                        if restarts.unwrap_or(0) >= 2 {
                            "several times"
                        } else {
                            "too little"
                        }
                    ),
                    _ => format!(
                        "{name}: {} ready={} ip={}",
                        p.status.phase,
                        p.is_ready(),
                        p.status.pod_ip.starts_with("10.1.")
                    ),
                };
                log.borrow_mut().push(line);
            }
            c.delete::<Pod>("default", "web", &DeleteParams::default())
                .await
                .expect("delete");
            env.sleep(Duration::from_secs(10)).await;
            let gone = c
                .get::<Pod>("default", "web")
                .await
                .unwrap_err()
                .is_not_found();
            log.borrow_mut()
                .push(format!("web deleted by its kubelet: {gone}"));
        })
    })
}

#[test]
fn the_kubelet_runs_restarts_reports_and_deletes_its_pods() {
    let log: Log = Default::default();
    let l = log.clone();
    run(11, move || async move {
        let world = World::new(WorldConfig::new(11));
        for id in 1..=3 {
            world.add_host(&format!("m{id}"), "dc-a", master(id));
        }
        world.add_host("n1", "dc-a", node());
        world.add_host("user", "dc-a", user(l));
        tokio::time::sleep(Duration::from_secs(120)).await;
        world.shutdown();
    });
    assert_eq!(
        *log.borrow(),
        vec![
            "node ready: true".to_string(),
            "flaky restarted several times".to_string(),
            "once: Failed ready=false ip=true".to_string(),
            "job: Succeeded ready=false ip=true".to_string(),
            "web: Running ready=true ip=true".to_string(),
            "web deleted by its kubelet: true".to_string(),
        ]
    );
}
