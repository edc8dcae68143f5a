//! Strategic merge patches as kubectl sends them, and JSON patches.

use super::*;
use serde_json::json;

fn smp(target: Value, patch: Value) -> Value {
    let mut t = target;
    strategic_merge_patch(&mut t, &patch).unwrap();
    t
}

fn deployment() -> Value {
    json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
        {"name": "app", "image": "echo", "args": ["-a", "-b"],
         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
         "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090}]},
        {"name": "side", "image": "sleep"}
    ]}}}})
}

#[test]
fn set_image_changes_one_container_and_keeps_the_rest() {
    // What `kubectl set image deploy/web app=echo:v2` sends.
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
        "containers": [{"image": "echo:v2", "name": "app"}]}}}});
    let out = smp(deployment(), patch);
    let mut want = deployment();
    want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("echo:v2");
    assert_eq!(out, want);
}

#[test]
fn lists_merge_on_their_keys() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app",
         "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
         "ports": [{"containerPort": 9090, "name": "metrics"}],
         "args": ["-c"]},
        {"name": "new", "image": "crash"}
    ]}}}});
    let out = smp(deployment(), patch);
    let c = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        c[0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}])
    );
    assert_eq!(
        c[0]["ports"],
        json!([{"containerPort": 8080, "name": "http"}, {"containerPort": 9090, "name": "metrics"}])
    );
    assert_eq!(
        c[0]["args"],
        json!(["-c"]),
        "lists without a merge key are replaced"
    );
    assert_eq!(c[2], json!({"name": "new", "image": "crash"}));
    assert_eq!(c.as_array().unwrap().len(), 3);

    let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
    let out = smp(
        svc,
        json!({"spec": {"ports": [{"port": 443, "targetPort": 8443}]}}),
    );
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}])
    );
}

#[test]
fn directives_delete_replace_order_and_retain() {
    let del = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "side", "$patch": "delete"}, {"name": "gone", "$patch": "delete"}]}}}});
    let out = smp(deployment(), del);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let replace = json!({"spec": {"template": {"spec": {"containers": [
        {"$patch": "replace"}, {"name": "only", "image": "echo"}]}}}});
    let out = smp(deployment(), replace);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "only", "image": "echo"}])
    );

    let map_replace =
        json!({"spec": {"template": {"$patch": "replace", "spec": {"containers": []}}}});
    let out = smp(deployment(), map_replace);
    assert_eq!(out["spec"]["template"], json!({"spec": {"containers": []}}));

    let order = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "side"}, {"name": "app"}]}}}});
    let out = smp(deployment(), order);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["name"],
        "side"
    );

    let retain = json!({"spec": {"$retainKeys": ["template"], "replicas": null}});
    let out = smp(deployment(), retain);
    assert!(out["spec"].get("replicas").is_none());
    assert!(out["spec"].get("template").is_some());

    let map_delete = json!({"spec": {"template": {"$patch": "delete"}}});
    let out = smp(deployment(), map_delete);
    assert_eq!(out, json!({"spec": {"replicas": 2}}));
}

#[test]
fn finalizers_merge_as_a_set() {
    let obj = json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1"}}});
    let out = smp(obj.clone(), json!({"metadata": {"finalizers": ["c", "a"]}}));
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
    let out = smp(
        obj,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"],
        "labels": {"x": null, "y": "2"}}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    assert_eq!(out["metadata"]["labels"], json!({"y": "2"}));
}

#[test]
fn bad_strategic_patches_are_refused_with_a_reason() {
    let mut t = deployment();
    let e = strategic_merge_patch(
        &mut t,
        &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
    )
    .unwrap_err();
    assert!(e.contains("merge key \"name\""), "{e}");
    let e = strategic_merge_patch(&mut t, &json!({"spec": {"$patch": "explode"}})).unwrap_err();
    assert!(e.contains("explode"), "{e}");
}

#[test]
fn json_patches_apply_in_order_and_fail_whole() {
    let mut t = deployment();
    let ops = br#"[
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "Z"}},
        {"op": "remove", "path": "/spec/template/spec/containers/1"},
        {"op": "test", "path": "/spec/replicas", "value": 5}
    ]"#;
    PatchType::Json
        .apply(&mut t, &serde_json::from_slice(ops).unwrap())
        .unwrap();
    assert_eq!(t["spec"]["replicas"], 5);
    assert_eq!(
        t["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        t["spec"]["template"]["spec"]["containers"][0]["env"][2],
        json!({"name": "Z"})
    );

    let before = t.clone();
    let failing = br#"[{"op": "replace", "path": "/spec/replicas", "value": 1},
                       {"op": "test", "path": "/spec/replicas", "value": 7}]"#;
    let e = PatchType::Json
        .apply(&mut t, &serde_json::from_slice(failing).unwrap())
        .unwrap_err();
    assert!(e.contains("JSON patch failed"), "{e}");
    assert_eq!(t, before, "a failed JSON patch changes nothing");
    let e = PatchType::Json
        .apply(&mut t, &json!({"op": 1}))
        .unwrap_err();
    assert!(e.contains("not a list of operations"), "{e}");
    assert_eq!(
        PatchType::from_content_type("application/json-patch+json"),
        Some(PatchType::Json)
    );
}
