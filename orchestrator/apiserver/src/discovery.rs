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
    resource("", "pods/log", "Pod", true, &["get"]),
    in_all(named(
        resource("", "services", "Service", true, ALL),
        &["svc"],
    )),
    named(resource("", "endpoints", "Endpoints", true, ALL), &["ep"]),
    named(resource("", "events", "Event", true, ALL), &["ev"]),
    named(resource("", "configmaps", "ConfigMap", true, ALL), &["cm"]),
    resource("", "secrets", "Secret", true, ALL),
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

/// The content type of aggregated discovery (kubectl 1.26 and later ask for
/// it first on `/api` and `/apis`, and fall back to the per-group lists).
pub const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header asks for aggregated discovery (v2).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList")
    })
}

/// Aggregated discovery: every resource of the core group (`core`, for
/// `/api`) or of the named groups (`/apis`) in one document.
pub fn aggregated(core: bool) -> Value {
    let groups: &[&str] = if core {
        &[""]
    } else {
        &["apps", "coordination.k8s.io"]
    };
    let items: Vec<Value> = groups
        .iter()
        .map(|g| {
            let resources: Vec<Value> = RESOURCES
                .iter()
                .filter(|r| r.group == *g && !r.plural.contains('/'))
                .map(|r| {
                    let subresources: Vec<Value> = RESOURCES
                        .iter()
                        .filter_map(|s| {
                            let (parent, sub) = s.plural.split_once('/')?;
                            (s.group == r.group && parent == r.plural).then(|| {
                                let group = if s.kind == "Scale" { "autoscaling" } else { s.group };
                                json!({
                                    "subresource": sub,
                                    "responseKind": {"group": group, "version": "v1", "kind": s.kind},
                                    "verbs": s.verbs,
                                })
                            })
                        })
                        .collect();
                    let mut v = json!({
                        "resource": r.plural,
                        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.kind.to_lowercase(),
                        "verbs": r.verbs,
                    });
                    if !r.short_names.is_empty() {
                        v["shortNames"] = json!(r.short_names);
                    }
                    if !r.categories.is_empty() {
                        v["categories"] = json!(r.categories);
                    }
                    if !subresources.is_empty() {
                        v["subresources"] = json!(subresources);
                    }
                    v
                })
                .collect();
            let mut meta = json!({});
            if !g.is_empty() {
                meta["name"] = json!(g);
            }
            json!({
                "metadata": meta,
                "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}],
            })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
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

    #[test]
    fn aggregated_discovery_lists_every_group_with_its_subresources() {
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json"));
        let apis = aggregated(false);
        let apps = &apis["items"][0];
        assert_eq!(apps["metadata"]["name"], "apps");
        let deploy = &apps["versions"][0]["resources"][0];
        assert_eq!(deploy["resource"], "deployments");
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        let subs: Vec<&str> = deploy["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["subresource"].as_str().unwrap())
            .collect();
        assert_eq!(subs, ["status", "scale"]);
        assert_eq!(
            deploy["subresources"][1]["responseKind"]["group"],
            "autoscaling"
        );
        let core = aggregated(true);
        assert!(core["items"][0]["metadata"].get("name").is_none());
        assert_eq!(
            core["items"][0]["versions"][0]["resources"][0]["scope"],
            "Cluster"
        );
    }
}
