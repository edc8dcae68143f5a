//! The kubelet's sync loop against a real API server in the simulator:
//! registration, restart policies with CrashLoopBackOff, terminal phases,
//! readiness, graceful deletion.

use std::rc::Rc;
use std::time::Duration;

use faultline_api::{Node, Pod};
use faultline_client::DeleteParams;
use faultline_engine::HostMain;
use faultline_env::Env;
use faultline_kubelet::KubeletConfig;
use faultline_testkit::{simulate, Log, Masters};

/// Three masters (a store replica and an API server each).
fn masters() -> Masters {
    Masters::api(3)
}

fn pod(name: &str, image: &str, args: &[&str], policy: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": "n1", "restartPolicy": policy,
                 "containers": [{"name": "c", "image": image, "args": args}]}
    }))
    .unwrap()
}

fn user(log: Log) -> HostMain {
    Rc::new(move |env: Env| {
        let log = log.clone();
        Box::pin(async move {
            env.sleep(Duration::from_secs(5)).await;
            let c = masters().admin(&env);
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
    let kubelet = KubeletConfig::new("n1", "10.1");
    simulate(11, 120, &masters(), move |world| {
        world.add_host("n1", "dc-a", masters().node("n1", Some(kubelet), None));
        world.add_host("user", "dc-a", user(l));
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
