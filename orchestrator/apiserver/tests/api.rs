//! The API server end to end in the simulator: three masters (store and API
//! server each), a client on another host. CRUD, optimistic concurrency,
//! binding, watch, and bad input answered with a precise 4xx `Status`,
//! nothing stored, the server still serving.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use faultline_api::{Pod, Status};
use faultline_client::client::WatchStream;
use faultline_client::{Client, DeleteParams, ListParams, WatchItem};
use faultline_engine::HostMain;
use faultline_env::Env;
use faultline_testkit::{simulate, Log, Masters};
use http::Method;

/// The test cluster: three masters, a store replica and an API server each.
fn masters() -> Masters {
    Masters::api(3)
}

/// Sends raw bytes as a request body and returns the Status (or "ok").
async fn raw(c: &Client, method: Method, path: &str, body: &[u8], ct: &str) -> String {
    match c.request(method, path, Some((body.to_vec(), ct))).await {
        Ok(_) => "ok".into(),
        Err(faultline_client::ApiError::Status(s)) => describe(&s),
        Err(e) => format!("transport: {e}"),
    }
}

fn describe(s: &Status) -> String {
    let fields: Vec<&str> = s
        .details
        .iter()
        .flat_map(|d| d.causes.iter().map(|c| c.field.as_str()))
        .collect();
    format!("{} {} [{}]", s.code, s.reason, fields.join(","))
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "echo",
                 "resources": {"requests": {"cpu": "100m"}}}]}
    }))
    .unwrap()
}

/// Runs `script` on a client host `user`, as the admin once the masters
/// have had 4 s to come up, in a world of the test masters at `seed` for
/// `secs` simulated seconds; returns the lines the script logged.
fn run_script<F, Fut>(seed: u64, secs: u64, script: F) -> Vec<String>
where
    F: Fn(Env, Client, Log) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let log: Log = Default::default();
    let l = log.clone();
    let script = Rc::new(script);
    let user: HostMain = Rc::new(move |env: Env| {
        let log = l.clone();
        let script = script.clone();
        Box::pin(async move {
            env.sleep(Duration::from_secs(4)).await;
            let admin = masters().admin(&env);
            script(env, admin, log).await;
        })
    });
    simulate(seed, secs, &masters(), move |world| {
        world.add_host("user", "dc-a", user);
    });
    log.take()
}

/// A watch of the pods of `default` from `resource_version`.
async fn watch_pods(admin: &Client, resource_version: &str, what: &str) -> WatchStream<Pod> {
    admin
        .watch::<Pod>(Some("default"), &ListParams::default(), resource_version)
        .await
        .expect(what)
}

async fn crud_bind_watch_and_bad_input(env: Env, admin: Client, log: Log) {
    let say = |s: String| log.borrow_mut().push(s);

    // Create, get, list, stale update, update.
    let created = admin.create(&pod("web-1")).await.expect("create");
    say(format!(
        "created uid={} phase={}",
        !created.metadata.uid.is_empty(),
        created.status.phase
    ));
    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.metadata.labels.insert("v".into(), "2".into());
    let updated = admin.update(&fresh).await.expect("update");
    stale.metadata.labels.insert("v".into(), "3".into());
    let e = admin.update(&stale).await.unwrap_err();
    say(format!("stale update: {}", e.code().unwrap_or(0)));
    let list = admin
        .list::<Pod>(Some("default"), &ListParams::labels("app=web,v in (2)"))
        .await
        .expect("list");
    say(format!(
        "listed {} at rv>0 {}",
        list.items.len(),
        list.revision() > 0
    ));

    // Watch from the list's revision sees a later change.
    let mut w = watch_pods(&admin, &list.metadata.resource_version, "watch").await;
    admin.create(&pod("web-2")).await.expect("create 2");
    match w.next().await {
        Some(WatchItem::Added(p)) => say(format!("watch: ADDED {}", p.metadata.name)),
        other => say(format!("watch: {other:?}")),
    }
    // Watches of a kind share the server's one store watch of it; a
    // watch from a revision before that one began replays from the
    // store, and both see what happens next.
    let mut older = watch_pods(
        &admin,
        &created.metadata.resource_version,
        "watch from an older revision",
    )
    .await;
    admin.create(&pod("web-3")).await.expect("create 3");
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(match older.next().await {
            Some(WatchItem::Added(p)) => format!("ADDED {}", p.metadata.name),
            Some(WatchItem::Modified(p)) => format!("MODIFIED {}", p.metadata.name),
            other => format!("{other:?}"),
        });
    }
    match w.next().await {
        Some(WatchItem::Added(p)) => seen.push(format!("and ADDED {}", p.metadata.name)),
        other => seen.push(format!("and {other:?}")),
    }
    say(format!("older watch: {}", seen.join(", ")));

    // Binding: once, then 409.
    let sched = masters().client(&env, &masters().credentials.scheduler);
    let b1 = sched
        .bind("default", "web-1", &updated.metadata.uid, "n1")
        .await;
    let b2 = sched
        .bind("default", "web-1", &updated.metadata.uid, "n2")
        .await;
    say(format!(
        "bind: {} then {}",
        b1.is_ok(),
        b2.map(|_| "ok".to_string())
            .unwrap_or_else(|e| e.code().unwrap_or(0).to_string())
    ));

    // A node may write the status of its own pods only.
    let node = masters().client(&env, masters().credentials.node("n1").unwrap());
    let mut p1: Pod = node.get("default", "web-1").await.expect("get");
    p1.status.phase = "Running".into();
    say(format!(
        "node status own pod: {}",
        node.update_status(&p1).await.is_ok()
    ));
    let mut p2: Pod = node.get("default", "web-2").await.expect("get");
    p2.status.phase = "Running".into();
    say(format!(
        "node status other pod: {}",
        node.update_status(&p2)
            .await
            .unwrap_err()
            .code()
            .unwrap_or(0)
    ));

    // Bad input.
    let pods = "/api/v1/namespaces/default/pods";
    let j = "application/json";
    let big = vec![b' '; 4 << 20];
    let bad: [(&str, &[u8]); 5] = [
                ("malformed", b"{\"metadata\":"),
                ("wrong kind", br#"{"kind":"Service","metadata":{"name":"x"}}"#),
                (
                    "missing fields",
                    br#"{"metadata":{"name":"x"},"spec":{"containers":[{"name":"c"}]}}"#,
                ),
                (
                    "bad name",
                    br#"{"metadata":{"name":"Not_A_Name"},"spec":{"containers":[{"name":"c","image":"echo"}]}}"#,
                ),
                ("oversized", &big),
            ];
    for (what, body) in bad {
        say(format!(
            "{what}: {}",
            raw(&admin, Method::POST, pods, body, j).await
        ));
    }
    // Unknown fields: refused under fieldValidation=Strict, dropped by
    // default (kube-apiserver's Warn; the warning is a response header).
    let unknown = br#"{"metadata":{"name":"x"},"spec":{"containers":[{"name":"c","image":"echo"}],"nodname":"a"}}"#;
    let strict = format!("{pods}?fieldValidation=Strict");
    say(format!(
        "unknown field, strict: {}",
        raw(&admin, Method::POST, &strict, unknown, j).await
    ));
    say(format!(
        "unknown field, default: {}",
        raw(&admin, Method::POST, pods, unknown, j).await
    ));
    say(format!(
        "wrong role: {}",
        describe_err(sched.create(&pod("web-3")).await.map(|_| ()))
    ));
    let nobody = masters().client(&env, "wrong");
    say(format!(
        "no token: {}",
        describe_err(nobody.get::<Pod>("default", "web-1").await.map(|_| ()))
    ));
    let all = admin
        .list::<Pod>(None, &ListParams::default())
        .await
        .expect("list");
    say(format!("still serving, pods stored: {}", all.items.len()));

    // Graceful deletion of a bound pod, then the final delete.
    let d: Pod = admin
        .delete("default", "web-1", &DeleteParams::default())
        .await
        .expect("delete");
    say(format!(
        "terminating: {}",
        d.metadata.deletion_timestamp.is_some()
    ));
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    node.delete::<Pod>("default", "web-1", &now)
        .await
        .expect("final delete");
    say(format!(
        "gone: {}",
        admin
            .get::<Pod>("default", "web-1")
            .await
            .unwrap_err()
            .code()
            .unwrap_or(0)
    ));
}

fn describe_err(r: Result<(), faultline_client::ApiError>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(faultline_client::ApiError::Status(s)) => describe(&s),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_api_serves_kubernetes_semantics_and_refuses_bad_input() {
    let log = run_script(3, 60, crud_bind_watch_and_bad_input);
    let expected = [
        "created uid=true phase=Pending",
        "stale update: 409",
        "listed 1 at rv>0 true",
        "watch: ADDED web-2",
        "older watch: MODIFIED web-1, ADDED web-2, ADDED web-3, and ADDED web-3",
        "bind: true then 409",
        "node status own pod: true",
        "node status other pod: 403",
        "malformed: 400 BadRequest []",
        "wrong kind: 400 BadRequest []",
        "missing fields: 422 Invalid [spec.containers[0].image]",
        "bad name: 422 Invalid [metadata.name]",
        "oversized: 413 RequestEntityTooLarge []",
        "unknown field, strict: 400 BadRequest []",
        "unknown field, default: ok",
        "wrong role: 403 Forbidden []",
        "no token: 401 Unauthorized []",
        "still serving, pods stored: 4",
        "terminating: true",
        "gone: 404",
    ];
    assert_eq!(
        log,
        expected.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );
}

/// A leader's writes carry its fence; once another candidate takes the
/// lease, the old fence is refused in the same transaction as the write.
async fn fencing(_env: Env, admin: Client, log: Log) {
    let say = |s: String| log.borrow_mut().push(s);
    let lease = faultline_api::Lease {
        metadata: faultline_api::ObjectMeta::named("kube-system", "demo"),
        spec: faultline_api::LeaseSpec {
            holder_identity: Some("a".into()),
            lease_transitions: Some(0),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut held = admin.create(&lease).await.expect("create lease");
    let as_a = admin.fenced("kube-system/demo=a/0");
    say(format!(
        "a writes while leading: {}",
        as_a.create(&pod("p1")).await.is_ok()
    ));
    held.spec.holder_identity = Some("b".into());
    held.spec.lease_transitions = Some(1);
    admin.update(&held).await.expect("b takes over");
    let e = as_a.create(&pod("p2")).await.unwrap_err();
    say(format!(
        "a writes after losing it: {}",
        describe_err(Err(e))
    ));
    let as_b = admin.fenced("kube-system/demo=b/1");
    say(format!(
        "b writes: {}",
        as_b.create(&pod("p3")).await.is_ok()
    ));
    let names: Vec<String> = admin
        .list::<Pod>(Some("default"), &ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|p| p.metadata.name)
        .collect();
    say(format!("stored: {}", names.join(",")));
}

#[test]
fn a_deposed_leaders_writes_are_fenced_off() {
    assert_eq!(
        run_script(5, 30, fencing),
        vec![
            "a writes while leading: true".to_string(),
            "a writes after losing it: 409 Conflict []".to_string(),
            "b writes: true".to_string(),
            "stored: p1,p3".to_string(),
        ]
    );
}

fn node_object(name: &str) -> faultline_api::Node {
    faultline_api::Node {
        metadata: faultline_api::ObjectMeta::named("", name),
        ..Default::default()
    }
}

fn node_lease(name: &str) -> faultline_api::Lease {
    faultline_api::Lease {
        metadata: faultline_api::ObjectMeta::named("kube-node-lease", name),
        spec: faultline_api::LeaseSpec {
            holder_identity: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The node restriction: a node's credentials create and change its own
/// Node and Lease only; refusals store nothing.
async fn node_restriction(env: Env, admin: Client, log: Log) {
    let say = |s: String| log.borrow_mut().push(s);
    let n1 = masters().client(&env, masters().credentials.node("n1").unwrap());
    say(format!(
        "own node: {}",
        describe_err(n1.create(&node_object("n1")).await.map(|_| ()))
    ));
    say(format!(
        "other node: {}",
        describe_err(n1.create(&node_object("n2")).await.map(|_| ()))
    ));
    say(format!(
        "own lease: {}",
        describe_err(n1.create(&node_lease("n1")).await.map(|_| ()))
    ));
    say(format!(
        "other lease: {}",
        describe_err(n1.create(&node_lease("n2")).await.map(|_| ()))
    ));
    let theirs = admin
        .create(&node_object("n2"))
        .await
        .expect("admin creates n2");
    say(format!(
        "update other node: {}",
        describe_err(n1.update(&theirs).await.map(|_| ()))
    ));
    let lease = admin
        .create(&node_lease("n2"))
        .await
        .expect("admin creates its lease");
    say(format!(
        "update other lease: {}",
        describe_err(n1.update(&lease).await.map(|_| ()))
    ));
    let nodes = admin
        .list::<faultline_api::Node>(None, &ListParams::default())
        .await
        .expect("list");
    say(format!("nodes: {}", nodes.items.len()));
    let after = admin
        .get::<faultline_api::Node>("", "n2")
        .await
        .expect("n2 is there");
    say(format!(
        "n2 untouched: {}",
        after.metadata.resource_version == theirs.metadata.resource_version
    ));
}

#[test]
fn a_node_changes_only_its_own_node_and_lease() {
    assert_eq!(
        run_script(7, 30, node_restriction),
        vec![
            "own node: ok".to_string(),
            "other node: 403 Forbidden []".to_string(),
            "own lease: ok".to_string(),
            "other lease: 403 Forbidden []".to_string(),
            "update other node: 403 Forbidden []".to_string(),
            "update other lease: 403 Forbidden []".to_string(),
            "nodes: 2".to_string(),
            "n2 untouched: true".to_string(),
        ]
    );
}

/// A GET whose body is JSON, or the Status it failed with.
async fn get_json(c: &Client, path: &str) -> Result<serde_json::Value, String> {
    match c.request(Method::GET, path, None).await {
        Ok(b) => Ok(serde_json::from_slice(&b).expect("JSON")),
        Err(faultline_client::ApiError::Status(s)) => Err(describe(&s)),
        Err(e) => Err(format!("transport: {e}")),
    }
}

/// Paged lists read one snapshot; a namespace goes Terminating, takes no
/// new content, and is removed only once empty.
async fn pages_and_namespaces(_env: Env, admin: Client, log: Log) {
    let say = |s: String| log.borrow_mut().push(s);
    for i in 1..=5 {
        admin.create(&pod(&format!("p{i}"))).await.expect("create");
    }
    let base = "/api/v1/namespaces/default/pods";
    let mut names = Vec::new();
    let mut path = format!("{base}?limit=2");
    let mut revisions = std::collections::BTreeSet::new();
    loop {
        let page = get_json(&admin, &path).await.expect("page");
        revisions.insert(page["metadata"]["resourceVersion"].to_string());
        for item in page["items"].as_array().unwrap() {
            names.push(item["metadata"]["name"].as_str().unwrap().to_string());
        }
        // A write between pages does not show in the later pages.
        if names.len() == 2 {
            admin.create(&pod("p0")).await.expect("create");
        }
        match page["metadata"]["continue"].as_str() {
            Some(c) => path = format!("{base}?limit=2&continue={c}"),
            None => break,
        }
    }
    say(format!(
        "pages: {} at {} revision",
        names.join(","),
        revisions.len()
    ));
    let filtered = get_json(&admin, &format!("{base}?limit=1&labelSelector=app%3Dnone"))
        .await
        .expect("filtered");
    say(format!(
        "filtered page: {} items, continue {:?}",
        filtered["items"].as_array().unwrap().len(),
        filtered["metadata"].get("continue")
    ));
    say(format!(
        "bad token: {}",
        get_json(&admin, &format!("{base}?limit=1&continue=bm9wZQ"))
            .await
            .unwrap_err()
    ));

    let ns: faultline_api::Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "t1"}
    }))
    .unwrap();
    admin.create(&ns).await.expect("namespace");
    let mut inside = pod("q1");
    inside.metadata.namespace = "t1".into();
    admin.create(&inside).await.expect("pod in t1");
    let del = |name: &'static str| {
        let admin = admin.clone();
        async move {
            admin
                .delete::<faultline_api::Namespace>("", name, &DeleteParams::default())
                .await
        }
    };
    let first = del("t1").await.expect("delete t1");
    say(format!(
        "t1: {} {}",
        first.status.phase,
        first.metadata.deletion_timestamp.is_some()
    ));
    let mut late = pod("q2");
    late.metadata.namespace = "t1".into();
    say(format!(
        "create in t1: {}",
        describe_err(admin.create(&late).await.map(|_| ()))
    ));
    del("t1").await.expect("delete t1 again");
    say(format!(
        "t1 while not empty: {}",
        admin
            .get::<faultline_api::Namespace>("", "t1")
            .await
            .is_ok()
    ));
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    admin
        .delete::<Pod>("t1", "q1", &now)
        .await
        .expect("delete q1");
    del("t1").await.expect("delete t1 when empty");
    say(format!(
        "t1 when empty: {}",
        describe_err(
            admin
                .get::<faultline_api::Namespace>("", "t1")
                .await
                .map(|_| ())
        )
    ));
    say(format!(
        "delete default: {}",
        describe_err(del("default").await.map(|_| ()))
    ));
}

#[test]
fn lists_page_on_one_snapshot_and_namespaces_empty_before_they_go() {
    assert_eq!(
        run_script(9, 30, pages_and_namespaces),
        [
            "pages: p1,p2,p3,p4,p5 at 1 revision",
            "filtered page: 0 items, continue None",
            "bad token: 400 BadRequest []",
            "t1: Terminating true",
            "create in t1: 403 Forbidden []",
            "t1 while not empty: true",
            "t1 when empty: 404 NotFound []",
            "delete default: 403 Forbidden []",
        ]
    );
}

async fn configs_and_secrets(env: Env, admin: Client, log: Log) {
    use faultline_api::{ConfigMap, Secret};
    let say = |s: String| log.borrow_mut().push(s);
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "cfg", "namespace": "default"},
        "data": {"app.conf": "debug=true\n", "MODE": "fast"},
        "immutable": true,
    }))
    .unwrap();
    let cm = admin.create(&cm).await.expect("create the ConfigMap");
    say(format!(
        "configmap keys: {:?}",
        cm.data.keys().collect::<Vec<_>>()
    ));
    let mut changed = cm.clone();
    changed.data.insert("MODE".into(), "slow".into());
    say(format!(
        "immutable: {}",
        describe_err(admin.update(&changed).await.map(|_| ()))
    ));
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "db", "namespace": "default"},
        "data": {"user": "YWRtaW4="},
        "stringData": {"password": "hunter2"},
    }))
    .unwrap();
    let s = admin.create(&secret).await.expect("create the Secret");
    say(format!(
        "secret: type {} data {:?} stringData kept: {}",
        s.secret_type,
        s.data,
        !s.string_data.is_empty()
    ));
    let bad = raw(
        &admin,
        Method::POST,
        "/api/v1/namespaces/default/secrets",
        br#"{"metadata":{"name":"bad"},"data":{"a/b":"eA==","token":"not base64"}}"#,
        "application/json",
    )
    .await;
    say(format!("bad secret: {bad}"));
    // A node reads a Secret only when a pod bound to it uses it.
    let n1 = masters().client(&env, masters().credentials.node("n1").unwrap());
    let get = |c: &Client| {
        let c = c.clone();
        async move { describe_err(c.get::<Secret>("default", "db").await.map(|_| ())) }
    };
    say(format!("n1 before: {}", get(&n1).await));
    let mut p = pod("uses-db");
    p.spec.node_name = "n1".into();
    p.spec.containers[0].env = vec![serde_json::from_value(serde_json::json!(
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
    ))
    .unwrap()];
    admin.create(&p).await.expect("create the pod");
    say(format!("n1 with a pod using it: {}", get(&n1).await));
    let n2 = masters().client(&env, masters().credentials.node("n2").unwrap());
    say(format!("n2: {}", get(&n2).await));
    let listed = n1
        .list::<Secret>(Some("default"), &ListParams::default())
        .await
        .map(|_| ());
    say(format!("n1 lists: {}", describe_err(listed)));
}

#[test]
fn configmaps_and_secrets_are_stored_validated_and_guarded() {
    assert_eq!(
        run_script(8, 30, configs_and_secrets),
        vec![
            r#"configmap keys: ["MODE", "app.conf"]"#.to_string(),
            "immutable: 422 Invalid [data]".to_string(),
            r#"secret: type Opaque data {"password": "aHVudGVyMg==", "user": "YWRtaW4="} stringData kept: false"#.to_string(),
            "bad secret: 422 Invalid [data[a/b],data[token]]".to_string(),
            "n1 before: 403 Forbidden []".to_string(),
            "n1 with a pod using it: ok".to_string(),
            "n2: 403 Forbidden []".to_string(),
            "n1 lists: 403 Forbidden []".to_string(),
        ]
    );
}
