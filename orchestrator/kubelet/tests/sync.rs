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

/// `GET pods/NAME/log` as `token` (the admin's when `None`): the output, or
/// the refusal's code and message.
async fn pod_log(env: &Env, token: Option<&str>, pod: &str, query: &str) -> Result<String, String> {
    let c = match token {
        None => masters().admin(env),
        Some(t) => masters().client(env, t),
    };
    let path = format!(
        "{}?{query}",
        faultline_client::client::path::<Pod>(Some("default"), Some(pod), Some("log"))
    );
    match c.request(http::Method::GET, &path, None).await {
        Ok(body) => Ok(String::from_utf8_lossy(&body).into_owned()),
        Err(faultline_client::ApiError::Status(s)) => Err(format!("{} {}", s.code, s.message)),
        Err(e) => Err(format!("transport: {e}")),
    }
}

fn logs_user(log: Log) -> HostMain {
    Rc::new(move |env: Env| {
        let log = log.clone();
        Box::pin(async move {
            env.sleep(Duration::from_secs(5)).await;
            let c = masters().admin(&env);
            let two: Pod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "two", "namespace": "default"},
                "spec": {"nodeName": "n1", "containers": [
                    {"name": "a", "image": "sleep"}, {"name": "b", "image": "sleep"}]}
            }))
            .unwrap();
            for p in [
                pod("flaky", "crash", &["after=5s", "code=3"], "Always"),
                pod("web", "echo", &[], "Always"),
                pod("job", "exit0", &["after=8s"], "Never"),
                pod("nginx", "nginx:1.27", &[], "Always"),
                two,
            ] {
                c.create(&p).await.expect("create");
            }
            let say = |line: String| log.borrow_mut().push(line);
            // While `job` runs: a follower gets its output until it exits.
            env.sleep(Duration::from_secs(4)).await;
            say(format!(
                "job -f: {:?}",
                pod_log(&env, None, "job", "follow=true").await
            ));
            env.sleep(Duration::from_secs(30)).await;
            say(format!("web: {:?}", pod_log(&env, None, "web", "").await));
            // flaky: ran at 5 s... crashed, waits in backoff or runs again.
            let now = pod_log(&env, None, "flaky", "").await.unwrap_or_default();
            let before = pod_log(&env, None, "flaky", "previous=true").await;
            say(format!(
                "flaky now starts running: {}",
                now.starts_with("crash: running")
            ));
            say(format!("flaky previous: {before:?}"));
            say(format!(
                "flaky tail 1: {:?}",
                pod_log(&env, None, "flaky", "previous=true&tailLines=1").await
            ));
            say(format!("two: {:?}", pod_log(&env, None, "two", "").await));
            say(format!(
                "two/b: {:?}",
                pod_log(&env, None, "two", "container=b").await
            ));
            say(format!(
                "two/c: {:?}",
                pod_log(&env, None, "two", "container=c").await
            ));
            say(format!(
                "nginx: {:?}",
                pod_log(&env, None, "nginx", "").await
            ));
            say(format!(
                "bad tail: {:?}",
                pod_log(&env, None, "web", "tailLines=-2").await
            ));
            say(format!(
                "node n1: {:?}",
                pod_log(&env, Some("node-n1-token"), "web", "").await
            ));
        })
    })
}

#[test]
fn container_output_is_read_through_the_api_from_the_kubelet() {
    let log: Log = Default::default();
    let l = log.clone();
    let kubelet = KubeletConfig::new("n1", "10.1");
    simulate(12, 60, &masters(), move |world| {
        world.add_host("n1", "dc-a", masters().node("n1", Some(kubelet), None));
        world.add_host("user", "dc-a", logs_user(l));
    });
    let want = [
        r#"job -f: Ok("exit0: running; will exit with code 0 in 8s\nexit0: done\n")"#,
        r#"web: Ok("echo: listening on 10.1.0.2:8080\n")"#,
        "flaky now starts running: true",
        r#"flaky previous: Ok("crash: running; will exit with code 3 in 5s\ncrash: exiting with code 3\n")"#,
        r#"flaky tail 1: Ok("crash: exiting with code 3\n")"#,
        r#"two: Err("400 a container name must be specified for pod two, choose one of: [a b]")"#,
        r#"two/b: Ok("sleep: sleeping until stopped\n")"#,
        r#"two/c: Err("400 container c is not valid for pod two")"#,
        r#"nginx: Err("400 container \"c\" in pod \"nginx\" is waiting to start: ErrImageNeverPull")"#,
        r#"bad tail: Err("400 tailLines: -2: must be greater than or equal to 0")"#,
        r#"node n1: Err("403 User \"system:node:n1\" cannot get resource \"pods/log\" named \"web\" in namespace \"default\"")"#,
    ];
    assert_eq!(*log.borrow(), want);
}

/// The first container's state: `REASON: MESSAGE` while it waits, else
/// the state's name.
fn state(p: &Pod) -> String {
    let s = &p.status.container_statuses[0].state;
    match &s.waiting {
        Some(w) => format!("{}: {}", w.reason, w.message),
        None => s.name().to_string(),
    }
}

fn config_user(log: Log) -> HostMain {
    Rc::new(move |env: Env| {
        let log = log.clone();
        Box::pin(async move {
            env.sleep(Duration::from_secs(5)).await;
            let c = masters().admin(&env);
            let p: Pod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "configured", "namespace": "default"},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "sleep",
                    "env": [
                        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE"}}},
                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}]}
            }))
            .unwrap();
            c.create(&p).await.expect("create the pod");
            env.sleep(Duration::from_secs(5)).await;
            let p: Pod = c.get("default", "configured").await.expect("pod");
            log.borrow_mut()
                .push(format!("without them: {}", state(&p)));
            let cm: faultline_api::ConfigMap = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "cfg", "namespace": "default"}, "data": {"MODE": "fast"}
            }))
            .unwrap();
            c.create(&cm).await.expect("create the ConfigMap");
            env.sleep(Duration::from_secs(5)).await;
            let p: Pod = c.get("default", "configured").await.expect("pod");
            log.borrow_mut()
                .push(format!("with the ConfigMap: {}", state(&p)));
            let s: faultline_api::Secret = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "db", "namespace": "default"},
                "stringData": {"password": "hunter2"}
            }))
            .unwrap();
            c.create(&s).await.expect("create the Secret");
            env.sleep(Duration::from_secs(5)).await;
            let p: Pod = c.get("default", "configured").await.expect("pod");
            log.borrow_mut().push(format!("with both: {}", state(&p)));
        })
    })
}

#[test]
fn a_container_waits_for_the_configmaps_and_secrets_it_reads() {
    let log: Log = Default::default();
    let l = log.clone();
    let kubelet = KubeletConfig::new("n1", "10.1");
    simulate(13, 30, &masters(), move |world| {
        world.add_host("n1", "dc-a", masters().node("n1", Some(kubelet), None));
        world.add_host("user", "dc-a", config_user(l));
    });
    assert_eq!(
        *log.borrow(),
        [
            r#"without them: CreateContainerConfigError: configmap "cfg" not found"#,
            r#"with the ConfigMap: CreateContainerConfigError: secret "db" not found"#,
            "with both: running",
        ]
    );
}

fn volume_user(log: Log) -> HostMain {
    Rc::new(move |env: Env| {
        let log = log.clone();
        Box::pin(async move {
            env.sleep(Duration::from_secs(5)).await;
            let c = masters().admin(&env);
            let p: Pod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "mounted", "namespace": "default"},
                "spec": {"nodeName": "n1",
                    "volumes": [{"name": "config", "configMap": {"name": "app"}},
                                {"name": "creds", "secret": {"secretName": "db"}}],
                    "containers": [{"name": "c", "image": "sleep", "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/app"},
                        {"name": "creds", "mountPath": "/etc/creds"}]}]}
            }))
            .unwrap();
            c.create(&p).await.expect("create the pod");
            env.sleep(Duration::from_secs(5)).await;
            let p: Pod = c.get("default", "mounted").await.expect("pod");
            log.borrow_mut()
                .push(format!("without them: {}", state(&p)));
            let mut cm: faultline_api::ConfigMap = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "app", "namespace": "default"}, "data": {"a": "1"}
            }))
            .unwrap();
            let s: faultline_api::Secret = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "db", "namespace": "default"},
                "stringData": {"password": "hunter2", "user": "admin"}
            }))
            .unwrap();
            c.create(&s).await.expect("create the Secret");
            cm = c.create(&cm).await.expect("create the ConfigMap");
            env.sleep(Duration::from_secs(5)).await;
            let p: Pod = c.get("default", "mounted").await.expect("pod");
            log.borrow_mut().push(format!("with both: {}", state(&p)));
            cm.data.insert("b".into(), "2".into());
            c.update(&cm).await.expect("edit the ConfigMap");
            env.sleep(Duration::from_secs(10)).await;
            c.delete::<Pod>("default", "mounted", &DeleteParams::default())
                .await
                .expect("delete the pod");
        })
    })
}

#[test]
fn volumes_wait_for_their_objects_and_follow_edits() {
    let log: Log = Default::default();
    let l = log.clone();
    let kubelet = KubeletConfig::new("n1", "10.1");
    let trace = simulate(15, 40, &masters(), move |world| {
        world.add_host("n1", "dc-a", masters().node("n1", Some(kubelet), None));
        world.add_host("user", "dc-a", volume_user(l));
    });
    assert_eq!(
        *log.borrow(),
        [
            r#"without them: ContainerCreating: MountVolume.SetUp failed for volume "config": configmap "app" not found"#,
            "with both: running",
        ]
    );
    let volumes: Vec<&str> = trace
        .iter()
        .filter_map(|l| l.split_once("kubelet n1: volume ").map(|(_, v)| v))
        .collect();
    assert_eq!(
        volumes,
        [
            r#""config" of default/mounted holds 1 files"#,
            r#""creds" of default/mounted holds 2 files"#,
            r#""config" of default/mounted holds 2 files"#,
        ]
    );
    assert!(
        trace.iter().all(|l| !l.contains("hunter2")),
        "a Secret's value reached the trace"
    );
    assert!(
        trace
            .iter()
            .any(|l| l.contains("pod default/mounted stopped and deleted")),
        "the pod was not deleted"
    );
}

fn liveness_user(log: Log) -> HostMain {
    Rc::new(move |env: Env| {
        let log = log.clone();
        Box::pin(async move {
            env.sleep(Duration::from_secs(5)).await;
            let c = masters().admin(&env);
            let probed = |name: &str, probe: serde_json::Value| -> Pod {
                serde_json::from_value(serde_json::json!({
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "echo",
                        "ports": [{"containerPort": 8080}], "livenessProbe": probe}]}
                }))
                .unwrap()
            };
            let healthy = probed(
                "healthy",
                serde_json::json!({"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1}),
            );
            let wedged = probed(
                "wedged",
                serde_json::json!({"tcpSocket": {"port": 9999}, "periodSeconds": 1,
                                   "failureThreshold": 2, "initialDelaySeconds": 1}),
            );
            for p in [healthy, wedged] {
                c.create(&p).await.expect("create");
            }
            env.sleep(Duration::from_secs(40)).await;
            for name in ["healthy", "wedged"] {
                let p: Pod = c.get("default", name).await.expect("pod");
                let s = &p.status.container_statuses[0];
                let last = s
                    .last_state
                    .terminated
                    .as_ref()
                    .map(|t| t.exit_code.to_string())
                    .unwrap_or_else(|| "none".into());
                log.borrow_mut().push(format!(
                    "{name}: restarted {} last exit {last}",
                    if s.restart_count >= 2 {
                        "2+ times"
                    } else if s.restart_count == 0 {
                        "never"
                    } else {
                        "once"
                    }
                ));
            }
        })
    })
}

#[test]
fn a_container_failing_its_liveness_probe_is_restarted() {
    let log: Log = Default::default();
    let l = log.clone();
    let kubelet = KubeletConfig::new("n1", "10.1");
    simulate(14, 60, &masters(), move |world| {
        world.add_host("n1", "dc-a", masters().node("n1", Some(kubelet), None));
        world.add_host("user", "dc-a", liveness_user(l));
    });
    assert_eq!(
        *log.borrow(),
        [
            "healthy: restarted never last exit none",
            "wedged: restarted 2+ times last exit 137",
        ]
    );
}
