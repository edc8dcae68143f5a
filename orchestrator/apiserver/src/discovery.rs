//! Discovery documents: which groups, versions and resources the server
//! serves (`/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`), shaped
//! like Kubernetes' so `kubectl api-resources` style tools can read them.

use serde_json::{json, Value};

/// (group, version, plural, kind, namespaced, verbs)
pub type ResourceRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
);

/// Every resource and subresource served.
pub const RESOURCES: &[ResourceRow] = &[
    ("", "v1", "namespaces", "Namespace", false, ALL),
    ("", "v1", "nodes", "Node", false, ALL),
    ("", "v1", "nodes/status", "Node", false, STATUS),
    ("", "v1", "pods", "Pod", true, ALL),
    ("", "v1", "pods/status", "Pod", true, STATUS),
    ("", "v1", "pods/binding", "Binding", true, &["create"]),
    ("", "v1", "services", "Service", true, ALL),
    ("", "v1", "endpoints", "Endpoints", true, ALL),
    ("", "v1", "events", "Event", true, ALL),
    ("apps", "v1", "deployments", "Deployment", true, ALL),
    (
        "apps",
        "v1",
        "deployments/status",
        "Deployment",
        true,
        STATUS,
    ),
    ("apps", "v1", "deployments/scale", "Scale", true, STATUS),
    ("apps", "v1", "replicasets", "ReplicaSet", true, ALL),
    (
        "apps",
        "v1",
        "replicasets/status",
        "ReplicaSet",
        true,
        STATUS,
    ),
    ("coordination.k8s.io", "v1", "leases", "Lease", true, ALL),
];

const ALL: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const STATUS: &[&str] = &["get", "patch", "update"];

/// `/api`
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
}

/// `/apis`
pub fn groups() -> Value {
    let groups: Vec<Value> = ["apps", "coordination.k8s.io"]
        .iter()
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/api/v1` or `/apis/{group}/v1`; `None` for a group or version we do
/// not serve.
pub fn resources(group: &str, version: &str) -> Option<Value> {
    let list: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.0 == group && r.1 == version)
        .map(|(_, _, plural, kind, namespaced, verbs)| {
            json!({
                "name": plural,
                "singularName": if plural.contains('/') { String::new() } else { kind.to_lowercase() },
                "namespaced": namespaced,
                "kind": kind,
                "verbs": verbs,
            })
        })
        .collect();
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}
