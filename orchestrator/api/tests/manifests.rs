//! Manifests as people write them (here, a Deployment and a Service with
//! the fields `kubectl get -o yaml` shows on a Kubernetes cluster) decode,
//! and every field survives the round trip.

use faultline_api::{Deployment, Service};

fn documents() -> Vec<serde_json::Value> {
    include_str!("fixtures/typical.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("fixture JSON"))
        .collect()
}

/// Every key of `want` is in `got` with the same value (defaults the
/// server fills in may be added, and a zero, false or empty value may be
/// left out, as Kubernetes leaves it out).
fn contained(want: &serde_json::Value, got: &serde_json::Value, path: &str) {
    match (want, got) {
        (serde_json::Value::Object(w), serde_json::Value::Object(g)) => {
            for (k, v) in w {
                let here = format!("{path}.{k}");
                match g.get(k) {
                    Some(g) => contained(v, g, &here),
                    None => assert!(empty(v), "{here} was dropped"),
                }
            }
        }
        (serde_json::Value::Array(w), serde_json::Value::Array(g)) => {
            assert_eq!(w.len(), g.len(), "{path}");
            for (i, (w, g)) in w.iter().zip(g).enumerate() {
                contained(w, g, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(want, got, "{path}"),
    }
}

fn empty(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Bool(b) => !b,
        serde_json::Value::Number(n) => n.as_f64() == Some(0.0),
        serde_json::Value::String(s) => s.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
    }
}

#[test]
fn a_typical_deployment_and_service_decode_and_keep_every_field() {
    let docs = documents();
    let d: Deployment = serde_json::from_value(docs[0].clone()).unwrap();
    contained(&docs[0], &serde_json::to_value(&d).unwrap(), "deployment");
    let s: Service = serde_json::from_value(docs[1].clone()).unwrap();
    contained(&docs[1], &serde_json::to_value(&s).unwrap(), "service");
}
