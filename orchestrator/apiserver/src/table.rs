//! Server-side printing: the `Table` (`meta.k8s.io/v1`) kube-apiserver
//! answers a get or list with when the client asks for it
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, as `kubectl
//! get` does), with each kind's default columns as Kubernetes prints them
//! (priority 1 columns are the extra ones of `-o wide`).
//!
//! Rows are computed from the objects' JSON, and ages from the caller's
//! wall clock in milliseconds (`env.wall_ms()`), never the machine's.

use faultline_api::time::parse_ms;
use serde_json::{json, Value};

/// Whether an `Accept` header asks for a `Table` (in any position of its
/// list, as kubectl lists it first with a plain-JSON fallback last).
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.first() == Some(&"application/json")
            && params.contains(&"as=Table")
            && params.contains(&"g=meta.k8s.io")
            && params.iter().any(|p| matches!(*p, "v=v1" | "v=v1beta1"))
    })
}

/// What each row carries as its `object` (`?includeObject=`): nothing,
/// the object's metadata (the default) or the whole object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(param: Option<&str>) -> Result<Include, String> {
        match param.unwrap_or("Metadata") {
            "None" => Ok(Include::None),
            "" | "Metadata" => Ok(Include::Metadata),
            "Object" => Ok(Include::Object),
            other => Err(format!(
                "includeObject {other:?} is not one of None, Metadata, Object"
            )),
        }
    }
}

/// A column: its header, JSON type and whether `-o wide` alone shows it.
struct Column {
    name: &'static str,
    kind: &'static str,
    wide: bool,
    description: &'static str,
}

const fn col(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        wide: false,
        description,
    }
}

const fn int(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "integer",
        wide: false,
        description,
    }
}

const fn wide(c: Column) -> Column {
    Column { wide: true, ..c }
}

const NAME: Column = col("Name", "Name must be unique within a namespace.");
const AGE: Column = col(
    "Age",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);

fn columns(kind: &str) -> Vec<Column> {
    match kind {
        "Pod" => vec![
            NAME,
            col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
            col("Status", "The aggregate status of the containers in this pod."),
            int("Restarts", "The number of times the containers in this pod have been restarted."),
            AGE,
            wide(col("IP", "IP address allocated to the pod.")),
            wide(col("Node", "Name of the Node this pod is assigned to.")),
        ],
        "Deployment" => vec![
            NAME,
            col("Ready", "Number of the pod with ready state."),
            int("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            int("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            AGE,
            wide(col("Containers", "Names of each container in the template.")),
            wide(col("Images", "Images referenced by each container in the template.")),
            wide(col("Selector", "Label selector for pods.")),
        ],
        "ReplicaSet" => vec![
            NAME,
            int("Desired", "Number of desired pods."),
            int("Current", "Number of actual replicas."),
            int("Ready", "The number of ready replicas for this replica set."),
            AGE,
            wide(col("Containers", "Names of each container in the template.")),
            wide(col("Images", "Images referenced by each container in the template.")),
            wide(col("Selector", "Label selector for pods.")),
        ],
        "Service" => vec![
            NAME,
            col("Type", "The type of the service."),
            col("Cluster-IP", "The IP address of the service."),
            col("External-IP", "The external IP address of the service."),
            col("Port(s)", "The ports of the service."),
            AGE,
            wide(col("Selector", "Route service traffic to pods with label keys and values matching this selector.")),
        ],
        "Node" => vec![
            NAME,
            col("Status", "The status of the node."),
            col("Roles", "The roles of the node."),
            AGE,
            col("Version", "Kubelet Version reported by the node."),
            wide(col("Internal-IP", "List of internal IPs.")),
        ],
        "Endpoints" => vec![
            NAME,
            col("Endpoints", "Endpoints of the service."),
            AGE,
        ],
        "Event" => vec![
            col("Last Seen", "The time the event was last seen."),
            col("Type", "The type of the event."),
            col("Reason", "Why the event happened."),
            col("Object", "The object the event is about."),
            col("Message", "A human-readable description of the event."),
        ],
        "Namespace" => vec![NAME, col("Status", "The status of the namespace."), AGE],
        "Lease" => vec![NAME, col("Holder", "The holder of the lease."), AGE],
        "ConfigMap" => vec![NAME, int("Data", "The number of keys."), AGE],
        "Secret" => vec![
            NAME,
            col("Type", "The type of the secret."),
            int("Data", "The number of keys."),
            AGE,
        ],
        _ => vec![NAME, AGE],
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// How long ago an RFC 3339 time was, as kubectl prints ages.
fn age(at: &Value, now_ms: u64) -> String {
    match parse_ms(s(at)) {
        Some(t) => human_duration(now_ms.saturating_sub(t) / 1000),
        None => "<unknown>".into(),
    }
}

/// Kubernetes' `HumanDuration`: exact while short, coarser as it grows.
pub fn human_duration(secs: u64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            mm => format!("{h}h{mm}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        match h % 24 {
            0 => format!("{d}d"),
            hh => format!("{d}d{hh}h"),
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else if d < 365 * 8 {
        match d % 365 {
            0 => format!("{}y", d / 365),
            dd => format!("{}y{dd}d", d / 365),
        }
    } else {
        format!("{}y", d / 365)
    }
}

fn joined<'a>(items: impl Iterator<Item = &'a Value>, f: impl Fn(&Value) -> String) -> String {
    let parts: Vec<String> = items.map(f).filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn or_none(text: &str) -> Value {
    if text.is_empty() {
        "<none>".into()
    } else {
        text.into()
    }
}

fn selector_map(m: &Value) -> String {
    m.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", s(v)))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// A workload's template containers, images and selector.
fn template_cells(o: &Value) -> [Value; 3] {
    let containers = o["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    [
        joined(containers.iter(), |c| s(&c["name"]).to_string()).into(),
        joined(containers.iter(), |c| s(&c["image"]).to_string()).into(),
        or_none(&selector_map(&o["spec"]["selector"]["matchLabels"])),
    ]
}

/// A pod's STATUS as kubectl's printer computes it: Terminating while
/// being deleted; else the first container's waiting or terminated reason
/// (`CrashLoopBackOff`, `ErrImageNeverPull`, `Completed`, `Error`, or
/// `ExitCode:N`), `Running` again when a completed pod still has a running
/// container; else the pod's reason or phase.
fn pod_status(o: &Value) -> String {
    if !o["metadata"]["deletionTimestamp"].is_null() {
        return "Terminating".into();
    }
    let mut reason = match (s(&o["status"]["reason"]), s(&o["status"]["phase"])) {
        ("", "") => "Pending".to_string(),
        ("", phase) => phase.to_string(),
        (r, _) => r.to_string(),
    };
    let mut running = false;
    let statuses = o["status"]["containerStatuses"].as_array();
    for c in statuses.into_iter().flatten().rev() {
        let (waiting, ended) = (&c["state"]["waiting"], &c["state"]["terminated"]);
        if !s(&waiting["reason"]).is_empty() {
            reason = s(&waiting["reason"]).into();
        } else if !s(&ended["reason"]).is_empty() {
            reason = s(&ended["reason"]).into();
        } else if ended.is_object() {
            reason = format!("ExitCode:{}", n(&ended["exitCode"]));
        } else if c["ready"] == true && c["state"]["running"].is_object() {
            running = true;
        }
    }
    if reason == "Completed" && running {
        let ready = o["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        reason = if ready { "Running" } else { "NotReady" }.into();
    }
    reason
}

fn cells(kind: &str, o: &Value, now_ms: u64) -> Vec<Value> {
    let name: Value = s(&o["metadata"]["name"]).into();
    let created = age(&o["metadata"]["creationTimestamp"], now_ms);
    match kind {
        "Pod" => {
            let statuses = o["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = statuses.iter().map(|c| n(&c["restartCount"])).sum();
            vec![
                name,
                format!("{ready}/{total}").into(),
                pod_status(o).into(),
                restarts.into(),
                created.into(),
                or_none(s(&o["status"]["podIP"])),
                or_none(s(&o["spec"]["nodeName"])),
            ]
        }
        "Deployment" => {
            let [containers, images, selector] = template_cells(o);
            vec![
                name,
                format!(
                    "{}/{}",
                    n(&o["status"]["readyReplicas"]),
                    o["spec"]["replicas"].as_i64().unwrap_or(1)
                )
                .into(),
                n(&o["status"]["updatedReplicas"]).into(),
                n(&o["status"]["availableReplicas"]).into(),
                created.into(),
                containers,
                images,
                selector,
            ]
        }
        "ReplicaSet" => {
            let [containers, images, selector] = template_cells(o);
            vec![
                name,
                o["spec"]["replicas"].as_i64().unwrap_or(1).into(),
                n(&o["status"]["replicas"]).into(),
                n(&o["status"]["readyReplicas"]).into(),
                created.into(),
                containers,
                images,
                selector,
            ]
        }
        "Service" => {
            let ports = joined(o["spec"]["ports"].as_array().into_iter().flatten(), |p| {
                let proto = match s(&p["protocol"]) {
                    "" => "TCP",
                    x => x,
                };
                match n(&p["nodePort"]) {
                    0 => format!("{}/{proto}", n(&p["port"])),
                    np => format!("{}:{np}/{proto}", n(&p["port"])),
                }
            });
            vec![
                name,
                match s(&o["spec"]["type"]) {
                    "" => "ClusterIP".into(),
                    t => t.into(),
                },
                or_none(s(&o["spec"]["clusterIP"])),
                "<none>".into(),
                ports.into(),
                created.into(),
                or_none(&selector_map(&o["spec"]["selector"])),
            ]
        }
        "Node" => {
            let conditions = o["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let ready = conditions.iter().find(|c| c["type"] == "Ready");
            let mut status = match ready.map(|c| s(&c["status"])) {
                Some("True") => "Ready".to_string(),
                _ => "NotReady".to_string(),
            };
            if o["spec"]["unschedulable"] == true {
                status.push_str(",SchedulingDisabled");
            }
            let roles: Vec<&str> = o["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
                .collect();
            let internal = joined(
                o["status"]["addresses"].as_array().into_iter().flatten(),
                |a| {
                    if a["type"] == "InternalIP" {
                        s(&a["address"]).to_string()
                    } else {
                        String::new()
                    }
                },
            );
            vec![
                name,
                status.into(),
                or_none(&roles.join(",")),
                created.into(),
                or_none(s(&o["status"]["nodeInfo"]["kubeletVersion"])),
                internal.into(),
            ]
        }
        "Endpoints" => {
            let mut eps = Vec::new();
            for subset in o["subsets"].as_array().into_iter().flatten() {
                for a in subset["addresses"].as_array().into_iter().flatten() {
                    for p in subset["ports"].as_array().into_iter().flatten() {
                        eps.push(format!("{}:{}", s(&a["ip"]), n(&p["port"])));
                    }
                }
            }
            // kubectl shows the first three and how many more.
            let shown = match eps.len() {
                0 => "<none>".to_string(),
                1..=3 => eps.join(","),
                k => format!("{} + {} more...", eps[..3].join(","), k - 3),
            };
            vec![name, shown.into(), created.into()]
        }
        "Event" => {
            let last = match s(&o["lastTimestamp"]) {
                "" => &o["metadata"]["creationTimestamp"],
                _ => &o["lastTimestamp"],
            };
            let involved = &o["involvedObject"];
            vec![
                age(last, now_ms).into(),
                s(&o["type"]).into(),
                s(&o["reason"]).into(),
                format!(
                    "{}/{}",
                    s(&involved["kind"]).to_lowercase(),
                    s(&involved["name"])
                )
                .into(),
                s(&o["message"]).into(),
            ]
        }
        "Namespace" => vec![
            name,
            match s(&o["status"]["phase"]) {
                "" => "Active".into(),
                p => p.into(),
            },
            created.into(),
        ],
        "Lease" => vec![
            name,
            or_none(s(&o["spec"]["holderIdentity"])),
            created.into(),
        ],
        "ConfigMap" => {
            let keys = |f: &str| o[f].as_object().map_or(0, |m| m.len());
            vec![
                name,
                (keys("data") + keys("binaryData")).into(),
                created.into(),
            ]
        }
        "Secret" => vec![
            name,
            s(&o["type"]).into(),
            o["data"].as_object().map_or(0, |m| m.len()).into(),
            created.into(),
        ],
        _ => vec![name, created.into()],
    }
}

/// The `Table` of `objects` (JSON) of `kind` at `resource_version`.
pub fn table(
    kind: &str,
    objects: &[Value],
    resource_version: &str,
    include: Include,
    now_ms: u64,
) -> Value {
    let defs: Vec<Value> = columns(kind)
        .into_iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.kind,
                "format": if c.name == "Name" { "name" } else { "" },
                "description": c.description,
                "priority": if c.wide { 1 } else { 0 },
            })
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({ "cells": cells(kind, o, now_ms) });
            match include {
                Include::None => {}
                Include::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o["metadata"],
                    });
                }
                Include::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_kubectls_accept_header() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
        assert!(!wants_table("application/json;as=Table;v=v1;g=apps"));
    }

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(4 * 3600 + 120), "4h2m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86_400 + 7200), "3d2h");
        assert_eq!(human_duration(40 * 86_400), "40d");
        assert_eq!(human_duration(800 * 86_400), "2y70d");
    }

    #[test]
    fn a_pod_row_has_kubernetes_columns() {
        let now = parse_ms("2026-12-07T10:05:00Z").unwrap();
        let pod = json!({
            "metadata": {"name": "web-1", "creationTimestamp": "2026-12-07T10:00:00Z"},
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.7", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2},
                {"name": "b", "ready": false, "restartCount": 1}]},
        });
        let t = table("Pod", &[pod], "42", Include::Metadata, now);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node"]
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["web-1", "1/2", "Running", 3, "5m", "10.0.0.7", "n1"])
        );
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["metadata"]["resourceVersion"], "42");
    }

    #[test]
    fn a_pods_status_is_its_first_containers_reason_as_kubectl_prints_it() {
        let status = |phase: &str, states: Value| {
            pod_status(&json!({"metadata": {}, "status": {"phase": phase,
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": states}}))
        };
        let waiting = |r: &str| json!({"ready": false, "state": {"waiting": {"reason": r}}});
        let running = json!({"ready": true, "state": {"running": {}}});
        let ended = |code: i64, r: &str| json!({"ready": false, "state": {"terminated": {"exitCode": code, "reason": r}}});
        assert_eq!(status("Running", json!([running])), "Running");
        assert_eq!(
            status("Running", json!([waiting("CrashLoopBackOff"), running])),
            "CrashLoopBackOff"
        );
        assert_eq!(
            status("Pending", json!([running, waiting("ErrImageNeverPull")])),
            "ErrImageNeverPull"
        );
        assert_eq!(
            status("Succeeded", json!([ended(0, "Completed")])),
            "Completed"
        );
        assert_eq!(status("Failed", json!([ended(3, "Error")])), "Error");
        assert_eq!(status("Failed", json!([ended(137, "")])), "ExitCode:137");
        assert_eq!(
            status("Running", json!([ended(0, "Completed"), running])),
            "Running"
        );
        assert_eq!(status("", json!([])), "Pending");
    }
}
