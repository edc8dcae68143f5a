//! The OpenAPI v3 documents (`/openapi/v3` and one per group-version), as
//! kube-apiserver publishes them, so that `kubectl apply` validates and
//! `kubectl explain` describes.
//!
//! kubectl (1.27 and later) asks `/openapi/v3` first. When the document's
//! `PATCH` operation for a kind takes the `fieldValidation` parameter,
//! kubectl leaves validation to the server (`?fieldValidation=Strict`,
//! which the server honours: see `faultline_api::decode`); it also reads the
//! kinds' schemas, with their list merge keys, to compute the strategic
//! merge patches of `kubectl apply`. The schemas are derived (schemars) from
//! the very types the server decodes into, so they cannot drift from them.
//!
//! kubectl before 1.27 reads `/openapi/v2` instead: see
//! [`crate::openapi_v2`], which derives it from these documents.

use std::sync::OnceLock;

use faultline_api::patch::{list_merge_key, merges_as_set};
use faultline_api::{
    Binding, ConfigMap, Deployment, Endpoints, Event, Lease, Namespace, Node, Pod, ReplicaSet,
    Resource, Scale, Secret, Service,
};
use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use crate::discovery::{ApiResource, RESOURCES};

/// The documents, built once (they depend only on this build's types).
struct Docs {
    /// `/openapi/v3`: each group-version's path and content hash.
    root: Value,
    /// `(path after /openapi/v3/, document)`, e.g. `("api/v1", ...)`.
    group_versions: Vec<(String, Value)>,
}

fn docs() -> &'static Docs {
    static DOCS: OnceLock<Docs> = OnceLock::new();
    DOCS.get_or_init(build)
}

/// `/openapi/v3`.
pub fn root() -> &'static Value {
    &docs().root
}

/// `/openapi/v3/{api/v1 | apis/GROUP/VERSION}`, if served.
pub fn group_version(path: &str) -> Option<&'static Value> {
    docs()
        .group_versions
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, d)| d)
}

/// Every group-version's document, with its path after `/openapi/v3/`.
pub fn group_versions() -> &'static [(String, Value)] {
    &docs().group_versions
}

/// The component name of a kind's schema, as Kubernetes names them
/// (`io.k8s.api.core.v1.Pod`; a `scale` subresource is autoscaling's).
fn component(r: &ApiResource) -> String {
    if r.plural.ends_with("/scale") {
        return format!("io.k8s.api.autoscaling.{}.Scale", r.version);
    }
    let package = match r.group {
        "" => "core",
        "coordination.k8s.io" => "coordination",
        g => g,
    };
    format!("io.k8s.api.{package}.{}.{}", r.version, r.kind)
}

fn build() -> Docs {
    let mut gen = SchemaSettings::openapi3()
        .with(|s| s.meta_schema = None)
        .into_generator();
    // The kinds' own names; the nested types keep their Rust names.
    let kinds: Vec<(&str, Value)> = vec![
        (Namespace::KIND, schema_of::<Namespace>(&mut gen)),
        (Node::KIND, schema_of::<Node>(&mut gen)),
        (Pod::KIND, schema_of::<Pod>(&mut gen)),
        (Service::KIND, schema_of::<Service>(&mut gen)),
        (Endpoints::KIND, schema_of::<Endpoints>(&mut gen)),
        (Event::KIND, schema_of::<Event>(&mut gen)),
        (ConfigMap::KIND, schema_of::<ConfigMap>(&mut gen)),
        (Secret::KIND, schema_of::<Secret>(&mut gen)),
        (Deployment::KIND, schema_of::<Deployment>(&mut gen)),
        (ReplicaSet::KIND, schema_of::<ReplicaSet>(&mut gen)),
        (Lease::KIND, schema_of::<Lease>(&mut gen)),
        (Binding::KIND, schema_of::<Binding>(&mut gen)),
        (Scale::KIND, schema_of::<Scale>(&mut gen)),
    ];
    let kinds: Vec<(&str, Value)> = kinds
        .into_iter()
        .map(|(k, mut v)| {
            kube_shape(&mut v);
            (k, v)
        })
        .collect();
    let mut defs: Map<String, Value> = gen.take_definitions(true);
    for (name, def) in defs.iter_mut() {
        kube_shape(def);
        add_patch_extensions(name, def);
    }
    let mut group_versions = Vec::new();
    let mut root_paths = Map::new();
    for (group, version) in [("", "v1"), ("apps", "v1"), ("coordination.k8s.io", "v1")] {
        let mut schemas = defs.clone();
        let mut paths = Map::new();
        for r in RESOURCES
            .iter()
            .filter(|r| r.group == group && r.version == version)
        {
            let name = component(r);
            let kind = name.rsplit('.').next().unwrap_or_default().to_string();
            let gvk = match kind.as_str() {
                "Scale" => json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
                k => json!({"group": group, "version": version, "kind": k}),
            };
            if !schemas.contains_key(&name) {
                let (_, schema) = kinds
                    .iter()
                    .find(|(k, _)| *k == kind)
                    .expect("every served kind has a schema");
                let mut schema = schema.clone();
                schema["x-kubernetes-group-version-kind"] = json!([gvk]);
                schemas.insert(name.clone(), schema);
            }
            add_paths(&mut paths, r, &name, &gvk);
        }
        let doc = json!({
            "openapi": "3.0.0",
            "info": {"title": "Faultline", "version": env!("CARGO_PKG_VERSION")},
            "paths": paths,
            "components": {"schemas": schemas},
        });
        let path = match group {
            "" => format!("api/{version}"),
            g => format!("apis/{g}/{version}"),
        };
        let text = serde_json::to_vec(&doc).expect("documents serialise");
        let hash = format!("{:016X}", xxhash_rust::xxh3::xxh3_64(&text));
        root_paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
        );
        group_versions.push((path, doc));
    }
    Docs {
        root: json!({ "paths": root_paths }),
        group_versions,
    }
}

/// A kind's schema, inlined (its nested types stay references).
fn schema_of<T: schemars::JsonSchema>(gen: &mut schemars::SchemaGenerator) -> Value {
    let mut s = gen.root_schema_for::<T>().to_value();
    if let Some(m) = s.as_object_mut() {
        m.remove("$schema");
        m.remove("title");
        m.remove("components");
    }
    s
}

/// Rewrites schemars' output in the shape Kubernetes' documents have: an
/// optional field is the field's schema (`allOf: [{$ref}]` for a reference),
/// not `anyOf` it-or-null; and no `default`s (serde's defaults here are
/// zero values, not Kubernetes' defaults, and would mislead `explain`).
fn kube_shape(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("default");
            if let Some(Value::Array(any)) = m.get("anyOf") {
                let is_null = |x: &Value| x.get("enum") == Some(&json!([null]));
                if any.len() == 2 && any.iter().any(is_null) {
                    let other = any
                        .iter()
                        .find(|x| !is_null(x))
                        .cloned()
                        .expect("one of two is not null");
                    m.remove("anyOf");
                    match other {
                        Value::Object(o) if o.contains_key("$ref") => {
                            m.insert("allOf".into(), json!([o]));
                        }
                        Value::Object(o) => m.extend(o),
                        _ => {}
                    }
                }
            }
            if m.get("type").is_some_and(Value::is_array) {
                // `["string", "null"]`: the non-null one.
                let t = m["type"]
                    .as_array()
                    .and_then(|ts| ts.iter().find(|t| *t != "null").cloned());
                match t {
                    Some(t) => m.insert("type".into(), t),
                    None => m.remove("type"),
                };
            }
            m.values_mut().for_each(kube_shape);
        }
        Value::Array(items) => items.iter_mut().for_each(kube_shape),
        _ => {}
    }
}

/// Marks the lists that strategic merge patch merges, as Kubernetes'
/// schemas do (`x-kubernetes-patch-strategy`, `-merge-key`).
fn add_patch_extensions(def_name: &str, def: &mut Value) {
    let Some(props) = def.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for (field, prop) in props.iter_mut() {
        let is_list = prop.get("type").and_then(Value::as_str) == Some("array");
        if !is_list {
            continue;
        }
        if let Some(key) = list_merge_key(field, def_name == "Container") {
            prop["x-kubernetes-patch-strategy"] = json!("merge");
            prop["x-kubernetes-patch-merge-key"] = json!(key);
        } else if merges_as_set(field) {
            prop["x-kubernetes-patch-strategy"] = json!("merge");
        }
    }
}

/// The operations on one resource, each marked with its kind and action
/// (`x-kubernetes-group-version-kind`, `x-kubernetes-action`), as kubectl
/// looks them up.
fn add_paths(paths: &mut Map<String, Value>, r: &ApiResource, schema: &str, gvk: &Value) {
    let (plural, sub) = match r.plural.split_once('/') {
        Some((p, s)) => (p, Some(s)),
        None => (r.plural, None),
    };
    let base = match r.group {
        "" => format!("/api/{}", r.version),
        g => format!("/apis/{g}/{}", r.version),
    };
    let scope = if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{plural}")
    } else {
        format!("{base}/{plural}")
    };
    let reference = json!({"$ref": format!("#/components/schemas/{schema}")});
    let op = |action: &str, body: bool| {
        let mut params = vec![
            json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}),
        ];
        if r.namespaced {
            params.push(json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}));
        }
        if body {
            params.push(json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string"},
                "description": "Ignore, Warn (the default) or Strict: what unknown fields in the body mean."}));
            params
                .push(json!({"name": "fieldManager", "in": "query", "schema": {"type": "string"}}));
        }
        let mut o = json!({
            "operationId": format!("{action}{}{}", r.kind, sub.map(|s| format!("_{s}")).unwrap_or_default()),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": params,
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
        });
        if sub == Some("log") {
            // A container's output, not an object.
            o["responses"] = json!({"200": {"description": "OK",
                "content": {"text/plain": {"schema": {"type": "string"}}}}});
        }
        if body {
            let ct = if action == "patch" {
                json!({
                    "application/json-patch+json": {"schema": {"type": "object"}},
                    "application/merge-patch+json": {"schema": {"type": "object"}},
                    "application/strategic-merge-patch+json": {"schema": {"type": "object"}},
                })
            } else {
                json!({"application/json": {"schema": reference}})
            };
            o["requestBody"] = json!({"content": ct});
        }
        o
    };
    let has = |v: &str| r.verbs.contains(&v);
    let item = match sub {
        Some(s) => format!("{scope}/{{name}}/{s}"),
        None => format!("{scope}/{{name}}"),
    };
    let mut item_ops = Map::new();
    if has("get") {
        item_ops.insert("get".into(), op("get", false));
    }
    if has("update") {
        item_ops.insert("put".into(), op("put", true));
    }
    if has("patch") {
        item_ops.insert("patch".into(), op("patch", true));
    }
    if has("delete") {
        item_ops.insert("delete".into(), op("delete", false));
    }
    if has("create") && sub.is_some() {
        item_ops.insert("post".into(), op("post", true));
    }
    if !item_ops.is_empty() {
        paths.insert(item, Value::Object(item_ops));
    }
    if sub.is_none() {
        let mut list_ops = Map::new();
        if has("list") {
            let mut l = op("list", false);
            l["parameters"]
                .as_array_mut()
                .expect("a list")
                .retain(|p| p["name"] != "name");
            list_ops.insert("get".into(), l);
        }
        if has("create") {
            let mut c = op("post", true);
            c["parameters"]
                .as_array_mut()
                .expect("a list")
                .retain(|p| p["name"] != "name");
            list_ops.insert("post".into(), c);
        }
        paths.insert(scope, Value::Object(list_ops));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_kind_has_a_schema_and_a_validating_patch() {
        let root = root();
        for gv in ["api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1"] {
            let url = root["paths"][gv]["serverRelativeURL"].as_str().unwrap();
            assert!(url.starts_with(&format!("/openapi/v3/{gv}?hash=")), "{url}");
            assert!(group_version(gv).is_some());
        }
        let core = group_version("api/v1").unwrap();
        let pod = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(pod["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert!(pod["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
        let schemas = &core["components"]["schemas"];
        let pod_schema = &schemas["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod_schema["x-kubernetes-group-version-kind"][0]["kind"],
            "Pod"
        );
        assert!(pod_schema["properties"]["spec"].is_object());
        let containers = &schemas["PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(
            schemas["Container"]["properties"]["ports"]["x-kubernetes-patch-merge-key"],
            "containerPort"
        );
        assert_eq!(
            schemas["ServiceSpec"]["properties"]["ports"]["x-kubernetes-patch-merge-key"],
            "port"
        );
        let apps = group_version("apis/apps/v1").unwrap();
        let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
        assert_eq!(
            scale["patch"]["x-kubernetes-group-version-kind"]["kind"],
            "Scale"
        );
        assert!(group_version("apis/batch/v1").is_none());
    }
}
