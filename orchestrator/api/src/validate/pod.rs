//! Pods: their spec, containers, resources, probes and tolerations.

use std::collections::BTreeSet;

use crate::status::StatusCause;
use crate::types::*;

use super::cluster::TAINT_EFFECTS;
use super::CONTAINER_RESOURCES;
use super::{
    check_label_map, check_non_negative, check_one_of, check_port, check_port_or_name,
    check_protocol, check_subdomain, duplicate, forbidden, invalid, is_dns1123_label, is_label_key,
    is_label_value, is_port_name, not_found, not_supported, required, validate_meta, NameRule,
    Validate, DNS1123_LABEL_RULE, LABEL_KEY_RULE, LABEL_VALUE_RULE, PORT_NAME_RULE,
};

// ---------------------------------------------------------------------- Pod

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];

/// Checks a pod spec with errors under `path` (`spec` for a Pod,
/// `spec.template.spec` for a workload's template).
pub(super) fn check_pod_spec(out: &mut Vec<StatusCause>, spec: &PodSpec, path: &str) {
    if spec.containers.is_empty() {
        out.push(required(
            &format!("{path}.containers"),
            "a pod needs at least one container",
        ));
    }
    let volumes = check_volumes(out, &spec.volumes, path);
    let mut names = BTreeSet::new();
    // Containers of a pod share one network namespace, so ports (and the
    // port names Services resolve) must be unique across all of them.
    let mut ports = BTreeSet::new();
    let mut port_names = BTreeSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let cpath = format!("{path}.containers[{i}]");
        let field = |f: &str| format!("{cpath}.{f}");
        if c.name.is_empty() {
            out.push(required(&field("name"), ""));
        } else if !is_dns1123_label(&c.name) {
            out.push(invalid(&field("name"), &c.name, DNS1123_LABEL_RULE));
        } else if !names.insert(c.name.as_str()) {
            out.push(duplicate(&field("name"), &c.name));
        }
        if c.image.is_empty() {
            out.push(required(&field("image"), ""));
        } else if c.image.trim() != c.image {
            out.push(invalid(
                &field("image"),
                &c.image,
                "must not have leading or trailing whitespace",
            ));
        }
        for (j, p) in c.ports.iter().enumerate() {
            let ppath = format!("{cpath}.ports[{j}]");
            let port_ok = check_port(out, p.container_port, &format!("{ppath}.containerPort"));
            let protocol = check_protocol(out, &p.protocol, &format!("{ppath}.protocol"));
            if port_ok && !ports.insert((p.container_port, protocol)) {
                out.push(duplicate(
                    &format!("{ppath}.containerPort"),
                    p.container_port,
                ));
            }
            if !p.name.is_empty() {
                if !is_port_name(&p.name) {
                    out.push(invalid(&format!("{ppath}.name"), &p.name, PORT_NAME_RULE));
                } else if !port_names.insert(p.name.as_str()) {
                    out.push(duplicate(&format!("{ppath}.name"), &p.name));
                }
            }
        }
        check_env(out, c, &cpath);
        check_volume_mounts(out, c, &volumes, &cpath);
        check_resources(out, &c.resources, &field("resources"));
        if let Some(probe) = &c.readiness_probe {
            check_probe(out, probe, &field("readinessProbe"));
        }
        if let Some(probe) = &c.liveness_probe {
            check_probe(out, probe, &field("livenessProbe"));
            if probe.success_threshold > 1 {
                out.push(invalid(
                    &field("livenessProbe.successThreshold"),
                    probe.success_threshold,
                    "must be 1",
                ));
            }
        }
    }
    check_one_of(
        out,
        &spec.restart_policy,
        &format!("{path}.restartPolicy"),
        RESTART_POLICIES,
    );
    check_label_map(out, &spec.node_selector, &format!("{path}.nodeSelector"));
    for (i, t) in spec.tolerations.iter().enumerate() {
        check_toleration(out, t, &format!("{path}.tolerations[{i}]"));
    }
    if let Some(grace) = spec.termination_grace_period_seconds {
        check_non_negative(out, grace, &format!("{path}.terminationGracePeriodSeconds"));
    }
    if !spec.scheduler_name.is_empty() {
        check_subdomain(out, &spec.scheduler_name, &format!("{path}.schedulerName"));
    }
    if !spec.node_name.is_empty() {
        check_subdomain(out, &spec.node_name, &format!("{path}.nodeName"));
    }
}

/// Checks `spec.volumes`; returns the names of the valid ones (what
/// `volumeMounts` may refer to).
fn check_volumes<'a>(
    out: &mut Vec<StatusCause>,
    volumes: &'a [Volume],
    path: &str,
) -> BTreeSet<&'a str> {
    let mut names = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let vpath = format!("{path}.volumes[{i}]");
        if v.name.is_empty() {
            out.push(required(&format!("{vpath}.name"), ""));
        } else if !is_dns1123_label(&v.name) {
            out.push(invalid(
                &format!("{vpath}.name"),
                &v.name,
                DNS1123_LABEL_RULE,
            ));
        } else if !names.insert(v.name.as_str()) {
            out.push(duplicate(&format!("{vpath}.name"), &v.name));
        }
        match (&v.config_map, &v.secret) {
            (Some(c), None) => {
                let spath = format!("{vpath}.configMap");
                if c.name.is_empty() {
                    out.push(required(&format!("{spath}.name"), ""));
                }
                check_projection(out, &c.items, c.default_mode, &spath);
            }
            (None, Some(s)) => {
                let spath = format!("{vpath}.secret");
                if s.secret_name.is_empty() {
                    out.push(required(&format!("{spath}.secretName"), ""));
                }
                check_projection(out, &s.items, s.default_mode, &spath);
            }
            (None, None) => out.push(required(
                &vpath,
                "must specify one volume source: `configMap` or `secret` (the volume sources this \
                 API serves)",
            )),
            (Some(_), Some(_)) => out.push(forbidden(
                &format!("{vpath}.secret"),
                "may not specify more than 1 volume type",
            )),
        }
    }
    names
}

/// A ConfigMap's or Secret's `items` and `defaultMode`.
fn check_projection(
    out: &mut Vec<StatusCause>,
    items: &[KeyToPath],
    mode: Option<i32>,
    path: &str,
) {
    check_mode(out, mode, &format!("{path}.defaultMode"));
    let mut paths = BTreeSet::new();
    for (j, item) in items.iter().enumerate() {
        let ipath = format!("{path}.items[{j}]");
        if item.key.is_empty() {
            out.push(required(&format!("{ipath}.key"), ""));
        }
        if item.path.is_empty() {
            out.push(required(&format!("{ipath}.path"), ""));
        } else if let Err(why) = check_relative_path(&item.path) {
            out.push(invalid(&format!("{ipath}.path"), &item.path, why));
        } else if !paths.insert(item.path.as_str()) {
            out.push(duplicate(&format!("{ipath}.path"), &item.path));
        }
        check_mode(out, item.mode, &format!("{ipath}.mode"));
    }
}

/// File permission bits: 0 to 0777.
fn check_mode(out: &mut Vec<StatusCause>, mode: Option<i32>, path: &str) {
    if let Some(m) = mode {
        if !(0..=0o777).contains(&m) {
            out.push(invalid(
                path,
                m,
                "must be a number between 0 and 0777 (octal), both inclusive",
            ));
        }
    }
}

/// A path inside a volume: relative, without `..` elements, and not
/// starting with `..` (the names the projection keeps for itself).
pub fn check_relative_path(p: &str) -> Result<(), &'static str> {
    if p.starts_with('/') {
        return Err("must be a relative path");
    }
    if p.split('/').any(|part| part == "..") {
        return Err("must not contain '..'");
    }
    if p.starts_with("..") {
        return Err("must not start with '..'");
    }
    if p.split('/').any(|part| part.is_empty() || part == ".") {
        return Err("must not contain empty or '.' elements");
    }
    Ok(())
}

fn check_volume_mounts(
    out: &mut Vec<StatusCause>,
    c: &Container,
    volumes: &BTreeSet<&str>,
    cpath: &str,
) {
    let mut paths = BTreeSet::new();
    for (j, m) in c.volume_mounts.iter().enumerate() {
        let mpath = format!("{cpath}.volumeMounts[{j}]");
        if m.name.is_empty() {
            out.push(required(&format!("{mpath}.name"), ""));
        } else if !volumes.contains(m.name.as_str()) {
            out.push(not_found(&format!("{mpath}.name"), &m.name));
        }
        let field = format!("{mpath}.mountPath");
        if m.mount_path.is_empty() {
            out.push(required(&field, ""));
        } else if !m.mount_path.starts_with('/') {
            out.push(invalid(&field, &m.mount_path, "must be an absolute path"));
        } else if m.mount_path.split('/').any(|part| part == "..") {
            out.push(invalid(&field, &m.mount_path, "must not contain '..'"));
        } else if m.mount_path.contains(':') {
            out.push(invalid(&field, &m.mount_path, "must not contain ':'"));
        } else if !paths.insert(m.mount_path.trim_end_matches('/')) {
            out.push(invalid(&field, &m.mount_path, "must be unique"));
        }
    }
}

/// The pod fields the downward API gives a container (`fieldRef`).
pub const DOWNWARD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// Whether `path` is a downward API field: one of [`DOWNWARD_FIELDS`],
/// or a label or annotation (`metadata.labels['app']`).
pub fn is_downward_field(path: &str) -> bool {
    DOWNWARD_FIELDS.contains(&path)
        || ["metadata.labels['", "metadata.annotations['"]
            .iter()
            .any(|p| path.starts_with(p) && path.ends_with("']") && path.len() > p.len() + 2)
}

fn check_env(out: &mut Vec<StatusCause>, c: &Container, cpath: &str) {
    for (j, e) in c.env.iter().enumerate() {
        let epath = format!("{cpath}.env[{j}]");
        if e.name.is_empty() {
            out.push(required(&format!("{epath}.name"), ""));
        }
        let Some(from) = &e.value_from else { continue };
        let fpath = format!("{epath}.valueFrom");
        if !e.value.is_empty() {
            out.push(invalid(
                &fpath,
                "",
                "may not be specified when `value` is not empty",
            ));
        }
        let sources = [
            from.field_ref.is_some(),
            from.config_map_key_ref.is_some(),
            from.secret_key_ref.is_some(),
            from.resource_field_ref.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            out.push(invalid(
                &fpath,
                "",
                "must specify exactly one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        }
        if let Some(f) = &from.field_ref {
            if !is_downward_field(&f.field_path) {
                out.push(not_supported(
                    &format!("{fpath}.fieldRef.fieldPath"),
                    &f.field_path,
                    DOWNWARD_FIELDS,
                ));
            }
        }
        for (kind, sel) in [
            ("configMapKeyRef", &from.config_map_key_ref),
            ("secretKeyRef", &from.secret_key_ref),
        ] {
            let Some(sel) = sel else { continue };
            if sel.name.is_empty() {
                out.push(required(&format!("{fpath}.{kind}.name"), ""));
            }
            if sel.key.is_empty() {
                out.push(required(&format!("{fpath}.{kind}.key"), ""));
            }
        }
    }
    for (j, e) in c.env_from.iter().enumerate() {
        let epath = format!("{cpath}.envFrom[{j}]");
        match (&e.config_map_ref, &e.secret_ref) {
            (Some(r), None) | (None, Some(r)) if r.name.is_empty() => {
                out.push(required(&format!("{epath}.name"), ""));
            }
            (Some(_), None) | (None, Some(_)) => {}
            _ => out.push(invalid(
                &epath,
                "",
                "must specify exactly one of: `configMapRef` or `secretRef`",
            )),
        }
    }
}

fn check_resources(out: &mut Vec<StatusCause>, r: &ResourceRequirements, path: &str) {
    for (kind, list) in [("requests", &r.requests), ("limits", &r.limits)] {
        for name in list.keys() {
            if !CONTAINER_RESOURCES.contains(&name.as_str()) {
                out.push(not_supported(
                    &format!("{path}.{kind}[{name}]"),
                    name,
                    CONTAINER_RESOURCES,
                ));
            }
        }
    }
    for (name, request) in &r.requests {
        if let Some(limit) = r.limits.get(name) {
            if request.milli_value() > limit.milli_value() {
                out.push(invalid(
                    &format!("{path}.requests[{name}]"),
                    request.as_str(),
                    &format!("must be less than or equal to {name} limit of {limit}"),
                ));
            }
        }
    }
}

fn check_probe(out: &mut Vec<StatusCause>, p: &Probe, path: &str) {
    let handlers = [
        ("httpGet", p.http_get.is_some()),
        ("tcpSocket", p.tcp_socket.is_some()),
        ("exec", p.exec.is_some()),
    ];
    match handlers.iter().filter(|(_, set)| *set).count() {
        0 => out.push(required(
            path,
            "must specify a handler type (exec, httpGet or tcpSocket)",
        )),
        1 => {}
        _ => {
            let second = handlers.iter().filter(|(_, set)| *set).nth(1).expect("two");
            out.push(forbidden(
                &format!("{path}.{}", second.0),
                "may not specify more than 1 handler type",
            ))
        }
    }
    if p.exec.as_ref().is_some_and(|e| e.command.is_empty()) {
        out.push(required(&format!("{path}.exec.command"), ""));
    }
    if let Some(h) = &p.http_get {
        check_port_or_name(out, &h.port, &format!("{path}.httpGet.port"));
    }
    if let Some(t) = &p.tcp_socket {
        check_port_or_name(out, &t.port, &format!("{path}.tcpSocket.port"));
    }
    for (name, value) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("periodSeconds", p.period_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        check_non_negative(out, value.into(), &format!("{path}.{name}"));
    }
}

fn check_toleration(out: &mut Vec<StatusCause>, t: &Toleration, path: &str) {
    let op_field = format!("{path}.operator");
    if !t.key.is_empty() && !is_label_key(&t.key) {
        out.push(invalid(&format!("{path}.key"), &t.key, LABEL_KEY_RULE));
    }
    match t.operator.as_str() {
        "" | "Equal" => {
            if t.key.is_empty() {
                out.push(invalid(
                    &op_field,
                    &t.operator,
                    "operator must be Exists when `key` is empty, which means \
                     \"match all values and all keys\"",
                ));
            }
            if !is_label_value(&t.value) {
                out.push(invalid(
                    &format!("{path}.value"),
                    &t.value,
                    LABEL_VALUE_RULE,
                ));
            }
        }
        "Exists" => {
            if !t.value.is_empty() {
                out.push(invalid(
                    &op_field,
                    &t.value,
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
        }
        other => out.push(not_supported(&op_field, other, &["Equal", "Exists"])),
    }
    check_one_of(out, &t.effect, &format!("{path}.effect"), TAINT_EFFECTS);
}

impl Validate for Pod {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, true, NameRule::Subdomain);
        check_pod_spec(&mut out, &self.spec, "spec");
        out
    }

    /// A pod's spec is fixed at creation, except that `spec.nodeName` may
    /// go from empty to a node once (the binding); it may never change
    /// after that.
    fn validate_update(&self, old: &Self) -> Vec<StatusCause> {
        let mut out = self.validate();
        if !old.spec.node_name.is_empty() && self.spec.node_name != old.spec.node_name {
            out.push(forbidden(
                "spec.nodeName",
                &format!(
                    "may not be changed once set (the pod is bound to node {:?}, the update \
                     asks for {:?})",
                    old.spec.node_name, self.spec.node_name
                ),
            ));
        }
        let changed = changed_fields(
            &PodSpec {
                node_name: String::new(),
                ..self.spec.clone()
            },
            &PodSpec {
                node_name: String::new(),
                ..old.spec.clone()
            },
        );
        if !changed.is_empty() {
            out.push(forbidden(
                "spec",
                &format!(
                    "pod updates may not change fields other than `spec.nodeName` (which may \
                     only be set once, while empty); changed: {}",
                    changed.join(", ")
                ),
            ));
        }
        out
    }
}

/// The top-level JSON fields in which `new` and `old` differ (camelCase,
/// as a user wrote them).
fn changed_fields<T: serde::Serialize + PartialEq>(new: &T, old: &T) -> Vec<String> {
    if new == old {
        return Vec::new();
    }
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(new), serde_json::to_value(old))
    else {
        // Not representable as objects: say only that something changed.
        return vec!["(the whole value)".to_string()];
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}
