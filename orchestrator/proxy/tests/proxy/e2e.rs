//! The whole pipeline: the user creates Pods and a Service; the kubelet on
//! `n1` runs the pods, the controller manager publishes their Endpoints,
//! and the proxy on `n1` forwards to them. The same seed gives the same
//! answers and the same trace.

use std::rc::Rc;
use std::time::Duration;

use faultline_api::Pod;
use faultline_controllers::ManagerConfig;
use faultline_engine::{run, World, WorldConfig};
use faultline_kubelet::KubeletConfig;
use faultline_proxy::ProxyConfig;

use crate::{capture, eventually, get, masters, service, tally, Envs, ADDR, POD_PORT};

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{
            "name": "c", "image": "echo",
            "ports": [{"name": "http", "containerPort": POD_PORT}],
        }]}
    }))
    .unwrap()
}

/// Runs the scenario; returns what the client saw and the trace hash.
fn scenario(seed: u64) -> (Vec<String>, u64) {
    run(seed, move || async move {
        let world = World::new(WorldConfig::new(seed));
        let envs: Envs = Rc::default();
        let masters = masters().with_manager(ManagerConfig::new(""));
        masters.add_to(&world, "dc-a");
        let kubelet = KubeletConfig::new("n1", "10.1");
        let proxy = ProxyConfig::new("n1");
        world.add_host("n1", "dc-a", masters.node("n1", Some(kubelet), Some(proxy)));
        world.add_host("c1", "dc-a", capture(envs.clone()));
        world.add_host("user", "dc-a", capture(envs.clone()));
        tokio::time::sleep(Duration::from_millis(1)).await;
        let client = envs.borrow()["c1"].clone();
        let user = envs.borrow()["user"].clone();
        let admin = masters.admin(&user);

        let mut pending: Vec<Pod> = ["web-1", "web-2", "web-3"].map(pod).to_vec();
        let svc = service("default", "web", 80, POD_PORT);
        let mut svc_done = false;
        while !pending.is_empty() || !svc_done {
            if let Some(p) = pending.first() {
                if admin.create(p).await.is_ok() {
                    pending.remove(0);
                }
            } else {
                svc_done = admin.create(&svc).await.is_ok();
            }
            user.sleep(Duration::from_millis(200)).await;
        }

        let mut log = Vec::new();
        eventually(&client, Duration::from_secs(120), || async {
            let mut answers = Vec::new();
            for _ in 0..3 {
                match get(&client, ADDR, "/").await {
                    Ok(a) if a.status == 200 => answers.push(a),
                    _ => return false,
                }
            }
            tally(&answers).len() == 3
        })
        .await
        .expect("every pod is served");
        log.push(format!("served after {}s", world.elapsed().as_secs()));
        let mut answers = Vec::new();
        for _ in 0..9 {
            answers.push(get(&client, ADDR, "/").await.unwrap());
        }
        log.push(format!("{:?}", tally(&answers)));

        // A pod goes away gracefully: its endpoint leaves before its
        // container stops, and nobody sees a failure.
        admin
            .delete::<Pod>("default", "web-2", &Default::default())
            .await
            .unwrap();
        let mut failures = 0;
        for _ in 0..400 {
            match get(&client, ADDR, "/").await {
                Ok(a) if a.status == 200 => {}
                _ => failures += 1,
            }
            client.sleep(Duration::from_millis(100)).await;
        }
        log.push(format!("failures while web-2 left: {failures}"));
        let mut answers = Vec::new();
        for _ in 0..6 {
            answers.push(get(&client, ADDR, "/").await.unwrap());
        }
        log.push(format!("{:?}", tally(&answers)));
        world.shutdown();
        (log, world.trace().hash())
    })
}

#[test]
fn pods_behind_a_service_are_served_through_the_node_proxy() {
    let (log, hash) = scenario(41);
    assert_eq!(log.len(), 4, "{log:?}");
    assert_eq!(log[1], r#"{"web-1": 3, "web-2": 3, "web-3": 3}"#);
    assert_eq!(log[2], "failures while web-2 left: 0");
    assert_eq!(log[3], r#"{"web-1": 3, "web-3": 3}"#);
    // Deterministic: the same seed, the same run.
    assert_eq!(scenario(41), (log, hash));
}
