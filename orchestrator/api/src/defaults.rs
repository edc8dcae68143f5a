//! Kubernetes' defaults for fields a client may leave out, applied by the
//! API server on create and update (as kube-apiserver's defaulting does),
//! so what is stored and shown (`kubectl describe`, `get -o yaml`) carries
//! the value in force.
//!
//! Only defaults the components already assume are written here: a port's
//! protocol is TCP, and a probe's timeout, period and thresholds are the
//! kubelet's (`faultline_kubelet::probe`: 1 s, 10 s, 1 and 3), so defaulting
//! changes what is shown, never what happens.

use crate::types::{PodSpec, Probe, ServiceSpec};

/// A probe's defaults: timeout 1 s, period 10 s, success 1, failure 3.
pub const PROBE_TIMEOUT_SECONDS: i32 = 1;
pub const PROBE_PERIOD_SECONDS: i32 = 10;
pub const PROBE_SUCCESS_THRESHOLD: i32 = 1;
pub const PROBE_FAILURE_THRESHOLD: i32 = 3;

fn probe(p: &mut Probe) {
    let or = |v: &mut i32, d: i32| {
        if *v == 0 {
            *v = d;
        }
    };
    or(&mut p.timeout_seconds, PROBE_TIMEOUT_SECONDS);
    or(&mut p.period_seconds, PROBE_PERIOD_SECONDS);
    or(&mut p.success_threshold, PROBE_SUCCESS_THRESHOLD);
    or(&mut p.failure_threshold, PROBE_FAILURE_THRESHOLD);
}

fn tcp(protocol: &mut String) {
    if protocol.is_empty() {
        *protocol = "TCP".into();
    }
}

/// A pod's (or a pod template's) spec.
pub fn pod_spec(spec: &mut PodSpec) {
    for c in &mut spec.containers {
        for p in &mut c.ports {
            tcp(&mut p.protocol);
        }
        for p in [&mut c.readiness_probe, &mut c.liveness_probe]
            .into_iter()
            .flatten()
        {
            probe(p);
        }
    }
}

/// A Service's spec.
pub fn service_spec(spec: &mut ServiceSpec) {
    for p in &mut spec.ports {
        tcp(&mut p.protocol);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_only_what_is_missing() {
        let mut spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [{"name": "a", "image": "echo",
                "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
                "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 2}}]
        }))
        .unwrap();
        pod_spec(&mut spec);
        let c = &spec.containers[0];
        assert_eq!(c.ports[0].protocol, "TCP");
        assert_eq!(c.ports[1].protocol, "UDP");
        let p = c.readiness_probe.as_ref().unwrap();
        assert_eq!(
            (
                p.timeout_seconds,
                p.period_seconds,
                p.success_threshold,
                p.failure_threshold
            ),
            (1, 2, 1, 3)
        );
        let again = spec.clone();
        pod_spec(&mut spec);
        assert_eq!(spec, again, "defaulting twice changes nothing");
    }
}
