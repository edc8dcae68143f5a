//! `/openapi/v2`: the same API as the v3 documents, in Swagger 2.0 shape,
//! as JSON or as the protobuf kubectl asks for.
//!
//! kubectl before 1.27 validates `apply` and `create` against this document
//! and reads nothing else: it asks for gnostic's protobuf encoding of
//! OpenAPI v2 (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`),
//! finds each kind's definition by its `x-kubernetes-group-version-kind`
//! extension, and refuses fields the definition does not have, as
//! `--validate=strict` does server-side in later versions.
//!
//! The document is derived from the v3 ones (one source of truth, itself
//! derived from the types the server decodes into): references move from
//! `#/components/schemas/` to `#/definitions/`, an `allOf` of one reference
//! becomes the reference, request bodies become `body` parameters.
//!
//! The protobuf encoder is written here: no crate carries gnostic's
//! OpenAPI v2 messages, and a walker over the JSON document keeps the two
//! encodings equal by construction. It writes the subset of
//! `openapiv2/OpenAPIv2.proto` (gnostic) the document uses; field numbers
//! are that file's.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::openapi;

/// kubectl's `Accept` for the protobuf form (the `.v1.0` spelling is the
/// older one).
const PROTOBUF_TYPES: [&str; 2] = [
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
];

/// The content type of the protobuf form in answers: the `.v1.0`
/// spelling, as kube-apiserver answers (Go's MIME parser, which kubectl's
/// client runs on the answer, refuses the `@`).
pub const PROTOBUF: &str = PROTOBUF_TYPES[1];

/// True when `accept` asks for the protobuf form.
pub fn wants_protobuf(accept: &str) -> bool {
    accept
        .split(',')
        .any(|a| PROTOBUF_TYPES.contains(&a.split(';').next().unwrap_or("").trim()))
}

struct Docs {
    json: Value,
    protobuf: Vec<u8>,
}

fn docs() -> &'static Docs {
    static DOCS: OnceLock<Docs> = OnceLock::new();
    DOCS.get_or_init(|| {
        let json = build();
        let protobuf = encode::document(&json);
        Docs { json, protobuf }
    })
}

/// The document as JSON.
pub fn json() -> &'static Value {
    &docs().json
}

/// The document as gnostic's protobuf.
pub fn protobuf() -> &'static [u8] {
    &docs().protobuf
}

fn build() -> Value {
    let mut definitions = Map::new();
    let mut paths = Map::new();
    for (_, doc) in openapi::group_versions() {
        if let Some(schemas) = doc["components"]["schemas"].as_object() {
            for (name, schema) in schemas {
                definitions
                    .entry(name.clone())
                    .or_insert_with(|| v2_schema(schema));
            }
        }
        if let Some(items) = doc["paths"].as_object() {
            for (path, item) in items {
                let mut ops = Map::new();
                for (method, op) in item.as_object().into_iter().flatten() {
                    ops.insert(method.clone(), v2_operation(op));
                }
                paths.insert(path.clone(), Value::Object(ops));
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Faultline", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "definitions": definitions,
    })
}

/// A v3 schema in v2's shape.
fn v2_schema(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => {
                        let name = r.trim_start_matches("#/components/schemas/");
                        out.insert(k.clone(), json!(format!("#/definitions/{name}")));
                    }
                    // `allOf: [{$ref}]` (an optional field of a named
                    // type): the reference itself, as Kubernetes' v2 has.
                    ("allOf", Value::Array(all)) if all.len() == 1 => {
                        if let Value::Object(inner) = v2_schema(&all[0]) {
                            out.extend(inner);
                        }
                    }
                    _ => {
                        out.insert(k.clone(), v2_schema(x));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(v2_schema).collect()),
        other => other.clone(),
    }
}

/// A v3 operation in v2's shape: parameters typed inline, the request
/// body a `body` parameter, the response's schema on the response.
fn v2_operation(op: &Value) -> Value {
    let mut out = Map::new();
    for key in [
        "operationId",
        "x-kubernetes-action",
        "x-kubernetes-group-version-kind",
    ] {
        if let Some(v) = op.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let mut params: Vec<Value> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let mut q = json!({
                "name": p["name"],
                "in": p["in"],
                "type": p["schema"]["type"].as_str().unwrap_or("string"),
            });
            if p["required"] == true {
                q["required"] = json!(true);
            }
            if let Some(d) = p["description"].as_str() {
                q["description"] = json!(d);
            }
            q
        })
        .collect();
    if let Some(content) = op["requestBody"]["content"].as_object() {
        let schema = content
            .get("application/json")
            .map(|c| v2_schema(&c["schema"]))
            .unwrap_or_else(|| json!({"type": "object"}));
        params.push(json!({"name": "body", "in": "body", "required": true, "schema": schema}));
        out.insert("consumes".into(), json!(content.keys().collect::<Vec<_>>()));
    }
    out.insert("parameters".into(), Value::Array(params));
    let (produces, schema) = match op["responses"]["200"]["content"].as_object() {
        Some(c) => match c.iter().next() {
            Some((ct, body)) => (json!([ct]), v2_schema(&body["schema"])),
            None => (json!(["application/json"]), json!({})),
        },
        None => (json!(["application/json"]), json!({})),
    };
    out.insert("produces".into(), produces);
    out.insert(
        "responses".into(),
        json!({"200": {"description": "OK", "schema": schema}}),
    );
    Value::Object(out)
}

/// gnostic's `openapi.v2` messages, written from the JSON document.
mod encode {
    use serde_json::{Map, Value};

    /// A protobuf message being written.
    #[derive(Default)]
    struct Msg(Vec<u8>);

    impl Msg {
        fn varint(&mut self, mut v: u64) {
            while v >= 0x80 {
                self.0.push((v as u8) | 0x80);
                v >>= 7;
            }
            self.0.push(v as u8);
        }

        fn key(&mut self, field: u32, wire: u8) {
            self.varint(u64::from(field) << 3 | u64::from(wire));
        }

        fn bytes(&mut self, field: u32, b: &[u8]) {
            self.key(field, 2);
            self.varint(b.len() as u64);
            self.0.extend_from_slice(b);
        }

        /// A string field (proto3: an empty one is not written).
        fn string(&mut self, field: u32, s: &str) {
            if !s.is_empty() {
                self.bytes(field, s.as_bytes());
            }
        }

        /// The string at `v[key]`, if it is one.
        fn string_at(&mut self, field: u32, v: &Value, key: &str) {
            if let Some(s) = v.get(key).and_then(Value::as_str) {
                self.string(field, s);
            }
        }

        fn strings(&mut self, field: u32, v: Option<&Value>) {
            for s in v.and_then(Value::as_array).into_iter().flatten() {
                if let Some(s) = s.as_str() {
                    self.bytes(field, s.as_bytes());
                }
            }
        }

        fn bool(&mut self, field: u32, b: bool) {
            if b {
                self.key(field, 0);
                self.varint(1);
            }
        }

        fn int64(&mut self, field: u32, v: Option<&Value>) {
            if let Some(n) = v.and_then(Value::as_i64) {
                self.key(field, 0);
                self.varint(n as u64);
            }
        }

        fn double(&mut self, field: u32, v: Option<&Value>) {
            if let Some(x) = v.and_then(Value::as_f64) {
                self.key(field, 1);
                self.0.extend_from_slice(&x.to_le_bytes());
            }
        }

        /// A nested message, written even when empty (its presence means
        /// something: an empty `type` list is not a missing one).
        fn message(&mut self, field: u32, m: Msg) {
            self.bytes(field, &m.0);
        }
    }

    /// `Any { yaml = 2 }`: JSON is YAML, which is what readers parse.
    fn any(v: &Value) -> Msg {
        let mut m = Msg::default();
        m.string(2, &v.to_string());
        m
    }

    /// `repeated NamedAny vendor_extension`: every `x-` key of `v`.
    fn extensions(out: &mut Msg, field: u32, v: &Map<String, Value>) {
        for (k, x) in v.iter().filter(|(k, _)| k.starts_with("x-")) {
            let mut named = Msg::default();
            named.string(1, k);
            named.message(2, any(x));
            out.message(field, named);
        }
    }

    fn schema(v: &Value) -> Msg {
        let mut m = Msg::default();
        let Some(o) = v.as_object() else {
            return m;
        };
        m.string_at(1, v, "$ref");
        m.string_at(2, v, "format");
        m.string_at(3, v, "title");
        m.string_at(4, v, "description");
        if let Some(d) = o.get("default") {
            m.message(5, any(d));
        }
        m.double(6, o.get("multipleOf"));
        m.double(7, o.get("maximum"));
        m.bool(8, o.get("exclusiveMaximum") == Some(&Value::Bool(true)));
        m.double(9, o.get("minimum"));
        m.bool(10, o.get("exclusiveMinimum") == Some(&Value::Bool(true)));
        m.int64(11, o.get("maxLength"));
        m.int64(12, o.get("minLength"));
        m.string_at(13, v, "pattern");
        m.int64(14, o.get("maxItems"));
        m.int64(15, o.get("minItems"));
        m.bool(16, o.get("uniqueItems") == Some(&Value::Bool(true)));
        m.int64(17, o.get("maxProperties"));
        m.int64(18, o.get("minProperties"));
        m.strings(19, o.get("required"));
        for e in o
            .get("enum")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            m.message(20, any(e));
        }
        match o.get("additionalProperties") {
            Some(Value::Bool(b)) => {
                let mut item = Msg::default();
                item.key(2, 0);
                item.varint(u64::from(*b));
                m.message(21, item);
            }
            Some(s @ Value::Object(_)) => {
                let mut item = Msg::default();
                item.message(1, schema(s));
                m.message(21, item);
            }
            _ => {}
        }
        match o.get("type") {
            Some(Value::String(t)) => {
                let mut item = Msg::default();
                item.string(1, t);
                m.message(22, item);
            }
            Some(ts @ Value::Array(_)) => {
                let mut item = Msg::default();
                item.strings(1, Some(ts));
                m.message(22, item);
            }
            _ => {}
        }
        match o.get("items") {
            Some(Value::Array(all)) => {
                let mut item = Msg::default();
                all.iter().for_each(|s| item.message(1, schema(s)));
                m.message(23, item);
            }
            Some(s @ Value::Object(_)) => {
                let mut item = Msg::default();
                item.message(1, schema(s));
                m.message(23, item);
            }
            _ => {}
        }
        for s in o
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            m.message(24, schema(s));
        }
        if let Some(props) = o.get("properties").and_then(Value::as_object) {
            let mut p = Msg::default();
            named_schemas(&mut p, props);
            m.message(25, p);
        }
        m.string_at(26, v, "discriminator");
        m.bool(27, o.get("readOnly") == Some(&Value::Bool(true)));
        extensions(&mut m, 31, o);
        m
    }

    /// `repeated NamedSchema additional_properties = 1`.
    fn named_schemas(out: &mut Msg, all: &Map<String, Value>) {
        for (name, s) in all {
            let mut named = Msg::default();
            named.string(1, name);
            named.message(2, schema(s));
            out.message(1, named);
        }
    }

    fn parameter(p: &Value) -> Msg {
        let required = p["required"] == true;
        let mut param = Msg::default();
        if p["in"] == "body" {
            let mut body = Msg::default();
            body.string_at(1, p, "description");
            body.string_at(2, p, "name");
            body.string(3, "body");
            body.bool(4, required);
            body.message(5, schema(&p["schema"]));
            param.message(1, body);
        } else {
            // query (3) and path (4) sub-schemas share their first fields:
            // required 1, in 2, description 3, name 4; then the type is 6
            // for a query parameter (after allow_empty_value) and 5 for a
            // path one.
            let (which, type_field) = match p["in"].as_str() {
                Some("path") => (4, 5),
                Some("header") => (1, 5),
                _ => (3, 6),
            };
            let mut sub = Msg::default();
            sub.bool(1, required);
            sub.string_at(2, p, "in");
            sub.string_at(3, p, "description");
            sub.string_at(4, p, "name");
            sub.string_at(type_field, p, "type");
            let mut non_body = Msg::default();
            non_body.message(which, sub);
            param.message(2, non_body);
        }
        let mut item = Msg::default();
        item.message(1, param);
        item
    }

    fn operation(op: &Value) -> Msg {
        let mut m = Msg::default();
        m.string_at(5, op, "operationId");
        m.strings(6, op.get("produces"));
        m.strings(7, op.get("consumes"));
        for p in op["parameters"].as_array().into_iter().flatten() {
            m.message(8, parameter(p));
        }
        if let Some(codes) = op["responses"].as_object() {
            let mut responses = Msg::default();
            for (code, r) in codes {
                let mut response = Msg::default();
                response.string_at(1, r, "description");
                if r.get("schema")
                    .is_some_and(|s| s.as_object().is_some_and(|o| !o.is_empty()))
                {
                    let mut item = Msg::default();
                    item.message(1, schema(&r["schema"]));
                    response.message(2, item);
                }
                let mut value = Msg::default();
                value.message(1, response);
                let mut named = Msg::default();
                named.string(1, code);
                named.message(2, value);
                responses.message(1, named);
            }
            m.message(9, responses);
        }
        if let Some(o) = op.as_object() {
            extensions(&mut m, 13, o);
        }
        m
    }

    fn path_item(item: &Value) -> Msg {
        let mut m = Msg::default();
        for (method, field) in [
            ("get", 2),
            ("put", 3),
            ("post", 4),
            ("delete", 5),
            ("options", 6),
            ("head", 7),
            ("patch", 8),
        ] {
            if let Some(op) = item.get(method) {
                m.message(field, operation(op));
            }
        }
        m
    }

    /// `openapi.v2.Document`.
    pub(super) fn document(doc: &Value) -> Vec<u8> {
        let mut m = Msg::default();
        m.string_at(1, doc, "swagger");
        let mut info = Msg::default();
        info.string_at(1, &doc["info"], "title");
        info.string_at(2, &doc["info"], "version");
        m.message(2, info);
        let mut paths = Msg::default();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            let mut named = Msg::default();
            named.string(1, path);
            named.message(2, path_item(item));
            paths.message(2, named);
        }
        m.message(8, paths);
        let mut defs = Msg::default();
        if let Some(all) = doc["definitions"].as_object() {
            named_schemas(&mut defs, all);
        }
        m.message(9, defs);
        m.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal protobuf reader for the tests: the fields of one message
    /// as (number, wire type, payload bytes or varint).
    fn fields(mut b: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
        fn varint(b: &mut &[u8]) -> u64 {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    return v;
                }
                shift += 7;
            }
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            let key = varint(&mut b);
            let (field, wire) = (key >> 3, key & 7);
            let payload = match wire {
                0 => varint(&mut b).to_le_bytes().to_vec(),
                1 => {
                    let (x, rest) = b.split_at(8);
                    b = rest;
                    x.to_vec()
                }
                2 => {
                    let n = varint(&mut b) as usize;
                    let (x, rest) = b.split_at(n);
                    b = rest;
                    x.to_vec()
                }
                w => panic!("wire type {w}"),
            };
            out.push((field, wire, payload));
        }
        out
    }

    fn field(msg: &[u8], n: u64) -> Vec<Vec<u8>> {
        fields(msg)
            .into_iter()
            .filter(|(f, _, _)| *f == n)
            .map(|(_, _, p)| p)
            .collect()
    }

    fn text(b: &[u8]) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn the_json_document_is_swagger_2_with_kubernetes_kinds() {
        let doc = json();
        assert_eq!(doc["swagger"], "2.0");
        let deploy = &doc["definitions"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deploy["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        let text = doc.to_string();
        assert!(!text.contains("#/components/"), "every reference moved");
        let spec = &deploy["properties"]["spec"];
        assert!(
            spec["$ref"].as_str().unwrap().starts_with("#/definitions/"),
            "{spec}"
        );
        let create = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["post"];
        let body = create["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["in"] == "body")
            .expect("a body parameter");
        assert!(body["schema"]["$ref"].is_string(), "{body}");
    }

    #[test]
    fn the_protobuf_carries_each_definition_with_its_kind() {
        let pb = protobuf();
        assert_eq!(text(&field(pb, 1)[0]), "2.0");
        let defs = &field(pb, 9)[0];
        let named = field(defs, 1);
        assert_eq!(
            named.len(),
            json()["definitions"].as_object().unwrap().len()
        );
        let pod = named
            .iter()
            .find(|n| text(&field(n, 1)[0]) == "io.k8s.api.core.v1.Pod")
            .expect("the Pod");
        let schema = &field(pod, 2)[0];
        // Its properties, by name.
        let props = &field(schema, 25)[0];
        let names: Vec<String> = field(props, 1)
            .iter()
            .map(|p| text(&field(p, 1)[0]).to_string())
            .collect();
        for want in ["apiVersion", "kind", "metadata", "spec", "status"] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
        // The kind extension, as YAML (JSON) in an Any.
        let ext = field(schema, 31)
            .into_iter()
            .find(|e| text(&field(e, 1)[0]) == "x-kubernetes-group-version-kind")
            .expect("the kind extension");
        let yaml = text(&field(&field(&ext, 2)[0], 2)[0]).to_string();
        let gvk: Value = serde_json::from_str(&yaml).unwrap();
        assert_eq!(gvk[0]["kind"], "Pod");
        assert_eq!(gvk[0]["version"], "v1");
        // Paths are there too.
        let paths = field(&field(pb, 8)[0], 2);
        assert!(paths
            .iter()
            .any(|p| text(&field(p, 1)[0]) == "/api/v1/namespaces/{namespace}/pods/{name}"));
    }

    #[test]
    fn kubectls_accept_header_selects_protobuf() {
        assert!(wants_protobuf(
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
        ));
        assert!(wants_protobuf(
            "application/json;q=0.9, application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        ));
        assert!(!wants_protobuf("application/json"));
    }
}
