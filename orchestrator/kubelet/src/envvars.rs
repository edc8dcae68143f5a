//! A container's environment, as Kubernetes' kubelet builds it: `envFrom`
//! (every key of a ConfigMap or Secret, with a prefix), then `env` (plain
//! values, which may refer to earlier variables as `$(NAME)`; the downward
//! API's `fieldRef`; one key of a ConfigMap or Secret), and `$(NAME)`
//! expansion in `command` and `args`.
//!
//! Pure functions: the shell fetches the ConfigMaps and Secrets that
//! [`references`] names and hands them over as [`Lookups`]. A missing
//! object or key that is not `optional` is an error in Kubernetes' words,
//! which the kubelet reports as the container's `CreateContainerConfigError`.

use std::collections::BTreeMap;

use base64::Engine;
use faultline_api::{ConfigMap, Container, KeySelector, Pod, Secret};

/// The ConfigMaps and Secrets of the pod's namespace a container refers
/// to, as fetched: `None` when the API says there is none of that name.
#[derive(Debug, Clone, Default)]
pub struct Lookups {
    pub config_maps: BTreeMap<String, Option<ConfigMap>>,
    pub secrets: BTreeMap<String, Option<Secret>>,
}

/// The names of the ConfigMaps and of the Secrets `container` refers to.
pub fn references(container: &Container) -> (Vec<String>, Vec<String>) {
    let (mut maps, mut secrets) = (Vec::new(), Vec::new());
    for e in &container.env_from {
        if let Some(r) = &e.config_map_ref {
            maps.push(r.name.clone());
        }
        if let Some(r) = &e.secret_ref {
            secrets.push(r.name.clone());
        }
    }
    for e in container.env.iter().filter_map(|e| e.value_from.as_ref()) {
        if let Some(k) = &e.config_map_key_ref {
            maps.push(k.name.clone());
        }
        if let Some(k) = &e.secret_key_ref {
            secrets.push(k.name.clone());
        }
    }
    maps.sort();
    maps.dedup();
    secrets.sort();
    secrets.dedup();
    (maps, secrets)
}

/// A Secret's values, decoded (not UTF-8: replaced, as a process
/// environment holds text).
fn secret_values(s: &Secret) -> BTreeMap<String, String> {
    s.data
        .iter()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v)
                .unwrap_or_default();
            (k.clone(), String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect()
}

fn config_values(c: &ConfigMap) -> BTreeMap<String, String> {
    c.data.clone()
}

/// The value of a downward API field of `pod`.
fn field(pod: &Pod, path: &str, host_ip: &str, pod_ip: &str) -> Option<String> {
    let m = &pod.metadata;
    let quoted = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("']"))
    };
    Some(match path {
        "metadata.name" => m.name.clone(),
        "metadata.namespace" => m.namespace.clone(),
        "metadata.uid" => m.uid.clone(),
        "spec.nodeName" => pod.spec.node_name.clone(),
        "spec.serviceAccountName" => String::new(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        _ => {
            if let Some(k) = quoted("metadata.labels['") {
                m.labels.get(k).cloned().unwrap_or_default()
            } else if let Some(k) = quoted("metadata.annotations['") {
                m.annotations.get(k).cloned().unwrap_or_default()
            } else {
                return None;
            }
        }
    })
}

/// Kubernetes' `$(NAME)` expansion: a defined name is replaced, an
/// undefined one is kept as written, `$$` is a `$`.
pub fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(close) = after.strip_prefix('(').and_then(|a| a.find(')')) {
            let name = &after[1..=close];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &after[close + 2..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The value of key `k.key` of the ConfigMap or Secret (`kind`) whose
/// `values` were found (`None`: no such object): `Ok(None)` when it is
/// missing but optional.
fn key_value(
    values: Option<BTreeMap<String, String>>,
    k: &KeySelector,
    kind: &str,
    ns: &str,
) -> Result<Option<String>, String> {
    let optional = k.optional == Some(true);
    match values {
        Some(values) => match values.get(&k.key) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(format!(
                "couldn't find key {} in {kind} {ns}/{}",
                k.key, k.name
            )),
        },
        None if optional => Ok(None),
        None => Err(format!("{} {:?} not found", kind.to_lowercase(), k.name)),
    }
}

/// The environment of `container` of `pod` (running on a node at
/// `host_ip`, with `pod_ip`), in definition order, later names replacing
/// earlier ones; or why it cannot be built.
pub fn build(
    pod: &Pod,
    container: &Container,
    host_ip: &str,
    pod_ip: &str,
    lookups: &Lookups,
) -> Result<Vec<(String, String)>, String> {
    let ns = &pod.metadata.namespace;
    let mut order: Vec<String> = Vec::new();
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut set = |name: String, value: String, vars: &mut BTreeMap<String, String>| {
        if vars.insert(name.clone(), value).is_none() {
            order.push(name);
        }
    };
    for e in &container.env_from {
        let values = match (&e.config_map_ref, &e.secret_ref) {
            (Some(r), _) => match lookups.config_maps.get(&r.name).cloned().flatten() {
                Some(c) => config_values(&c),
                None if r.optional == Some(true) => continue,
                None => return Err(format!("configmap {:?} not found", r.name)),
            },
            (None, Some(r)) => match lookups.secrets.get(&r.name).cloned().flatten() {
                Some(s) => secret_values(&s),
                None if r.optional == Some(true) => continue,
                None => return Err(format!("secret {:?} not found", r.name)),
            },
            (None, None) => continue,
        };
        for (k, v) in values {
            set(format!("{}{k}", e.prefix), v, &mut vars);
        }
    }
    for e in &container.env {
        let value = match &e.value_from {
            None => expand(&e.value, &vars),
            Some(from) => {
                if let Some(f) = &from.field_ref {
                    field(pod, &f.field_path, host_ip, pod_ip).ok_or_else(|| {
                        format!("unsupported fieldRef fieldPath {:?}", f.field_path)
                    })?
                } else if let Some(k) = &from.config_map_key_ref {
                    let found = lookups.config_maps.get(&k.name).cloned().flatten();
                    match key_value(found.as_ref().map(config_values), k, "ConfigMap", ns)? {
                        Some(v) => v,
                        None => continue,
                    }
                } else if let Some(k) = &from.secret_key_ref {
                    let found = lookups.secrets.get(&k.name).cloned().flatten();
                    match key_value(found.as_ref().map(secret_values), k, "Secret", ns)? {
                        Some(v) => v,
                        None => continue,
                    }
                } else {
                    // resourceFieldRef: kept in the spec, not resolved.
                    continue;
                }
            }
        };
        set(e.name.clone(), value, &mut vars);
    }
    Ok(order
        .into_iter()
        .map(|name| {
            let value = vars.remove(&name).expect("every ordered name has a value");
            (name, value)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expansion_replaces_known_names_and_keeps_the_rest() {
        let v = vars(&[("POD_IP", "10.1.0.7"), ("PORT", "8080")]);
        assert_eq!(
            expand("--bind $(POD_IP):$(PORT)", &v),
            "--bind 10.1.0.7:8080"
        );
        assert_eq!(
            expand("$(MISSING) and $$(POD_IP)", &v),
            "$(MISSING) and $(POD_IP)"
        );
        assert_eq!(expand("cost $5 $(", &v), "cost $5 $(");
        assert_eq!(expand("$$$(PORT)", &v), "$8080");
    }

    fn pod(container: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1",
                         "labels": {"app": "web"}},
            "spec": {"nodeName": "n2", "containers": [container]}
        }))
        .unwrap()
    }

    fn lookups() -> Lookups {
        let mut l = Lookups::default();
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "cfg", "namespace": "shop"},
            "data": {"MODE": "fast", "LEVEL": "3"}
        }))
        .unwrap();
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db", "namespace": "shop"},
            "data": {"password": "aHVudGVyMg=="}
        }))
        .unwrap();
        l.config_maps.insert("cfg".into(), Some(cm));
        l.secrets.insert("db".into(), Some(secret));
        l.config_maps.insert("gone".into(), None);
        l
    }

    #[test]
    fn variables_come_from_the_pod_its_configmaps_and_secrets() {
        let p = pod(serde_json::json!({"name": "app", "image": "echo",
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "URL", "value": "http://$(POD_IP):8080/$(CFG_MODE)"},
            {"name": "CFG_MODE", "value": "slow"},
        ]}));
        let (maps, secrets) = references(&p.spec.containers[0]);
        assert_eq!(
            (maps, secrets),
            (vec!["cfg".to_string()], vec!["db".to_string()])
        );
        let env = build(
            &p,
            &p.spec.containers[0],
            "192.0.2.2",
            "10.2.0.5",
            &lookups(),
        )
        .unwrap();
        let got: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            got,
            [
                "CFG_LEVEL=3",
                "CFG_MODE=slow",
                "POD_IP=10.2.0.5",
                "NODE=n2",
                "APP=web",
                "PASSWORD=hunter2",
                "URL=http://10.2.0.5:8080/fast",
            ]
        );
    }

    #[test]
    fn missing_objects_and_keys_are_errors_unless_optional() {
        let build_with = |env: serde_json::Value| {
            let p = pod(serde_json::json!({"name": "app", "image": "echo", "env": [env]}));
            build(&p, &p.spec.containers[0], "", "", &lookups())
        };
        assert_eq!(
            build_with(serde_json::json!({"name": "X",
                "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}})),
            Err("configmap \"gone\" not found".to_string())
        );
        assert_eq!(
            build_with(serde_json::json!({"name": "X",
                "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}})),
            Err("couldn't find key user in Secret shop/db".to_string())
        );
        assert_eq!(
            build_with(serde_json::json!({"name": "X",
                "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": true}}})),
            Ok(vec![])
        );
    }
}
