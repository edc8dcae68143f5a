//! Cluster-level objects: namespaces, nodes, leases and events.

use std::collections::BTreeSet;

use crate::status::StatusCause;
use crate::types::*;

use super::{
    check_non_negative, check_one_of, duplicate, invalid, is_label_key, is_label_value,
    not_supported, required, validate_meta, NameRule, Validate, LABEL_KEY_RULE, LABEL_VALUE_RULE,
};

// ---------------------------------------------------------------- Namespace

impl Validate for Namespace {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, false, NameRule::Label);
        check_one_of(
            &mut out,
            &self.status.phase,
            "status.phase",
            &["Active", "Terminating"],
        );
        out
    }
}

// --------------------------------------------------------------------- Node

/// The resources a node may report in `capacity` and `allocatable`.
pub const NODE_RESOURCES: &[&str] = &["cpu", "memory", "pods", "ephemeral-storage"];

/// The resources a container may request or be limited to.
pub const CONTAINER_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

pub(super) const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

impl Validate for Node {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, false, NameRule::Subdomain);
        let mut seen = BTreeSet::new();
        for (i, t) in self.spec.taints.iter().enumerate() {
            let path = format!("spec.taints[{i}]");
            if t.key.is_empty() {
                out.push(required(&format!("{path}.key"), ""));
            } else if !is_label_key(&t.key) {
                out.push(invalid(&format!("{path}.key"), &t.key, LABEL_KEY_RULE));
            }
            if !is_label_value(&t.value) {
                out.push(invalid(
                    &format!("{path}.value"),
                    &t.value,
                    LABEL_VALUE_RULE,
                ));
            }
            if t.effect.is_empty() {
                out.push(required(&format!("{path}.effect"), ""));
            } else {
                check_one_of(
                    &mut out,
                    &t.effect,
                    &format!("{path}.effect"),
                    TAINT_EFFECTS,
                );
            }
            if !seen.insert((t.key.as_str(), t.effect.as_str())) {
                out.push(duplicate(
                    &format!("{path}.effect"),
                    format!("{}:{}", t.key, t.effect),
                ));
            }
        }
        for (name, list) in [
            ("capacity", &self.status.capacity),
            ("allocatable", &self.status.allocatable),
        ] {
            for resource in list.keys() {
                if !NODE_RESOURCES.contains(&resource.as_str()) {
                    out.push(not_supported(
                        &format!("status.{name}[{resource}]"),
                        resource,
                        NODE_RESOURCES,
                    ));
                }
            }
        }
        out
    }
}

// -------------------------------------------------------------- Lease, Event

impl Validate for Lease {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, true, NameRule::Subdomain);
        if let Some(d) = self.spec.lease_duration_seconds {
            if d <= 0 {
                out.push(invalid(
                    "spec.leaseDurationSeconds",
                    d,
                    "must be greater than 0",
                ));
            }
        }
        if let Some(t) = self.spec.lease_transitions {
            check_non_negative(&mut out, t.into(), "spec.leaseTransitions");
        }
        out
    }
}

impl Validate for Event {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, true, NameRule::Subdomain);
        let o = &self.involved_object;
        if o.kind.is_empty() {
            out.push(required("involvedObject.kind", ""));
        }
        if o.name.is_empty() {
            out.push(required("involvedObject.name", ""));
        }
        // Events about cluster-scoped objects (Nodes) live in some namespace
        // while the object has none; a namespaced object's events live in
        // its own namespace.
        if !o.namespace.is_empty() && o.namespace != self.metadata.namespace {
            out.push(invalid(
                "involvedObject.namespace",
                &o.namespace,
                &format!(
                    "does not match the event's namespace {:?}",
                    self.metadata.namespace
                ),
            ));
        }
        check_one_of(&mut out, &self.event_type, "type", &["Normal", "Warning"]);
        check_non_negative(&mut out, self.count.into(), "count");
        out
    }
}
