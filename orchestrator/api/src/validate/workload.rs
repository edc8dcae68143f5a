//! Deployments and replica sets: selectors, templates and rollout strategy.

use crate::selector::Selector;
use crate::status::StatusCause;
use crate::types::*;

use super::pod::check_pod_spec;
use super::{
    check_labels_annotations, check_non_negative, check_one_of, forbidden, invalid, not_supported,
    required, validate_label_selector, validate_meta, NameRule, Shown, Validate,
};

// ------------------------------------------------ Deployment and ReplicaSet

/// The selector as a query string for messages, or its debug form if it is
/// not expressible.
fn selector_text(selector: &LabelSelector) -> String {
    Selector::try_from(selector)
        .map(|s| s.to_string())
        .unwrap_or_else(|_| format!("{selector:?}"))
}

/// What Deployments and ReplicaSets share: replicas, a non-empty selector
/// that matches the template's labels, a valid template that restarts
/// always.
fn check_workload(
    out: &mut Vec<StatusCause>,
    kind: &str,
    replicas: Option<i32>,
    selector: &LabelSelector,
    template: &PodTemplateSpec,
    min_ready_seconds: i32,
) {
    if let Some(r) = replicas {
        check_non_negative(out, r.into(), "spec.replicas");
    }
    check_non_negative(out, min_ready_seconds.into(), "spec.minReadySeconds");
    let selector_errors = validate_label_selector(selector, "spec.selector");
    let selector_ok = selector_errors.is_empty();
    out.extend(selector_errors);
    if selector.is_empty() {
        out.push(required(
            "spec.selector",
            &format!("an empty selector is invalid for a {kind}: it would select every pod"),
        ));
    }
    check_labels_annotations(out, &template.metadata, "spec.template.metadata");
    if selector_ok && !selector.is_empty() && !selector.matches(&template.metadata.labels) {
        out.push(invalid(
            "spec.template.metadata.labels",
            &template.metadata.labels,
            &format!(
                "`selector` does not match template `labels` (selector: {})",
                selector_text(selector)
            ),
        ));
    }
    check_pod_spec(out, &template.spec, "spec.template.spec");
    // A controller replaces pods that exit; letting them stay down would
    // leave it fighting the kubelet.
    if matches!(template.spec.restart_policy.as_str(), "OnFailure" | "Never") {
        out.push(not_supported(
            "spec.template.spec.restartPolicy",
            &template.spec.restart_policy,
            &["Always"],
        ));
    }
}

fn check_selector_unchanged(out: &mut Vec<StatusCause>, new: &LabelSelector, old: &LabelSelector) {
    if new != old {
        out.push(invalid(
            "spec.selector",
            selector_text(new),
            &format!("field is immutable (was {:?})", selector_text(old)),
        ));
    }
}

/// Checks `maxSurge`/`maxUnavailable`; returns whether it is zero.
fn check_int_or_percent(
    out: &mut Vec<StatusCause>,
    value: &IntOrString,
    field: &str,
    percent_max_100: bool,
) -> bool {
    match value {
        IntOrString::Int(v) => {
            check_non_negative(out, (*v).into(), field);
            *v == 0
        }
        IntOrString::String(s) => {
            let pct = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse::<u64>().ok());
            match pct {
                None => {
                    out.push(invalid(
                        field,
                        Shown(value),
                        "must be an integer or a percentage (e.g. '25%')",
                    ));
                    false
                }
                Some(p) => {
                    if percent_max_100 && p > 100 {
                        out.push(invalid(
                            field,
                            Shown(value),
                            "must not be greater than 100%",
                        ));
                    }
                    p == 0
                }
            }
        }
    }
}

impl Validate for Deployment {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, true, NameRule::Subdomain);
        let s = &self.spec;
        check_workload(
            &mut out,
            "Deployment",
            s.replicas,
            &s.selector,
            &s.template,
            s.min_ready_seconds,
        );
        if let Some(limit) = s.revision_history_limit {
            check_non_negative(&mut out, limit.into(), "spec.revisionHistoryLimit");
        }
        check_one_of(
            &mut out,
            &s.strategy.kind,
            "spec.strategy.type",
            &["RollingUpdate", "Recreate"],
        );
        if let Some(ru) = &s.strategy.rolling_update {
            if s.strategy.kind == "Recreate" {
                out.push(forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
            let path = "spec.strategy.rollingUpdate";
            // Unset, either defaults to 25%, which is not zero.
            let surge_zero = ru.max_surge.as_ref().is_some_and(|v| {
                check_int_or_percent(&mut out, v, &format!("{path}.maxSurge"), false)
            });
            let unavailable_zero = ru.max_unavailable.as_ref().is_some_and(|v| {
                check_int_or_percent(&mut out, v, &format!("{path}.maxUnavailable"), true)
            });
            if surge_zero && unavailable_zero {
                if let Some(v) = &ru.max_unavailable {
                    out.push(invalid(
                        &format!("{path}.maxUnavailable"),
                        Shown(v),
                        "may not be 0 when `maxSurge` is 0: the rollout could never progress",
                    ));
                }
            }
        }
        out
    }

    /// `spec.selector` may not change: the Deployment would orphan the
    /// ReplicaSets and pods it owns.
    fn validate_update(&self, old: &Self) -> Vec<StatusCause> {
        let mut out = self.validate();
        check_selector_unchanged(&mut out, &self.spec.selector, &old.spec.selector);
        out
    }
}

impl Validate for ReplicaSet {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, true, NameRule::Subdomain);
        let s = &self.spec;
        check_workload(
            &mut out,
            "ReplicaSet",
            s.replicas,
            &s.selector,
            &s.template,
            s.min_ready_seconds,
        );
        out
    }

    /// `spec.selector` may not change: the ReplicaSet would orphan its pods.
    fn validate_update(&self, old: &Self) -> Vec<StatusCause> {
        let mut out = self.validate();
        check_selector_unchanged(&mut out, &self.spec.selector, &old.spec.selector);
        out
    }
}
