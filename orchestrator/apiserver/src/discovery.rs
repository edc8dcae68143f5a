//! Discovery documents: which groups, versions and resources the server
//! serves (`/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`), shaped
//! like Kubernetes' so `kubectl api-resources` style tools can read them.

use serde_json::{json, Value};

/// One resource (or subresource) as discovery describes it.
#[derive(Debug, Clone, Copy)]
pub struct ApiResource {
    pub group: &'static str,
    pub version: &'static str,
    /// `pods`, or `pods/status` for a subresource.
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
    /// Kubernetes' abbreviations (`kubectl get svc`).
    pub short_names: &'static [&'static str],
    /// `all` for what `kubectl get all` lists.
    pub categories: &'static [&'static str],
}

const fn resource(
    group: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    verbs: &'static [&'static str],
) -> ApiResource {
    ApiResource {
        group,
        version: "v1",
        plural,
        kind,
        namespaced,
        verbs,
        short_names: &[],
        categories: &[],
    }
}

const fn named(r: ApiResource, short_names: &'static [&'static str]) -> ApiResource {
    ApiResource { short_names, ..r }
}

const fn in_all(r: ApiResource) -> ApiResource {
    ApiResource {
        categories: &["all"],
        ..r
    }
}

/// Every resource and subresource served, with Kubernetes' short names
/// and categories.
pub const RESOURCES: &[ApiResource] = &[
    named(resource("", "namespaces", "Namespace", false, ALL), &["ns"]),
    named(resource("", "nodes", "Node", false, ALL), &["no"]),
    resource("", "nodes/status", "Node", false, STATUS),
    in_all(named(resource("", "pods", "Pod", true, ALL), &["po"])),
    resource("", "pods/status", "Pod", true, STATUS),
    resource("", "pods/binding", "Binding", true, &["create"]),
    in_all(named(
        resource("", "services", "Service", true, ALL),
        &["svc"],
    )),
    named(resource("", "endpoints", "Endpoints", true, ALL), &["ep"]),
    named(resource("", "events", "Event", true, ALL), &["ev"]),
    in_all(named(
        resource("apps", "deployments", "Deployment", true, ALL),
        &["deploy"],
    )),
    resource("apps", "deployments/status", "Deployment", true, STATUS),
    resource("apps", "deployments/scale", "Scale", true, STATUS),
    in_all(named(
        resource("apps", "replicasets", "ReplicaSet", true, ALL),
        &["rs"],
    )),
    resource("apps", "replicasets/status", "ReplicaSet", true, STATUS),
    resource("coordination.k8s.io", "leases", "Lease", true, ALL),
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
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            let mut v = json!({
                "name": r.plural,
                "singularName": if r.plural.contains('/') { String::new() } else { r.kind.to_lowercase() },
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": r.verbs,
            });
            if !r.short_names.is_empty() {
                v["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                v["categories"] = json!(r.categories);
            }
            v
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

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} is listed"))
    }

    #[test]
    fn resources_carry_kubernetes_short_names_and_categories() {
        let core = resources("", "v1").unwrap();
        assert_eq!(find(&core, "services")["shortNames"], json!(["svc"]));
        assert_eq!(find(&core, "pods")["categories"], json!(["all"]));
        assert!(find(&core, "events").get("categories").is_none());
        assert!(find(&core, "pods/status").get("shortNames").is_none());
        let apps = resources("apps", "v1").unwrap();
        assert_eq!(find(&apps, "deployments")["shortNames"], json!(["deploy"]));
        assert_eq!(find(&apps, "replicasets")["categories"], json!(["all"]));
        assert!(resources("batch", "v1").is_none());
    }
}
