//! Helpers shared by the controllers: time stamps, label selectors, pod
//! predicates.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use faultline_api::{LabelSelector, Pod};

/// Parses an RFC 3339 time stamp (`2024-05-01T12:00:00Z`, optionally with
/// fractional seconds) into milliseconds since the Unix epoch. `None` for
/// anything unparsable or before 1970.
pub fn parse_time_ms(text: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    let since = t.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}

/// Formats milliseconds since the Unix epoch as RFC 3339 with microseconds,
/// the way Kubernetes writes `MicroTime` (`1970-01-01T00:00:01.000000Z`).
pub fn format_time_ms(ms: u64) -> String {
    humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Does `sel` select an object with `labels`? Every `matchLabels` pair and
/// every `matchExpressions` requirement must hold; an empty selector selects
/// everything, an unknown operator nothing. Delegates to
/// `faultline_api::selector` (the tests below pin the semantics the
/// controllers rely on).
pub(crate) fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    sel.matches(labels)
}

/// A selector a workload controller may use: Kubernetes' validation refuses
/// empty ones, and treating an empty selector as "everything" would make a
/// controller adopt every pod in the namespace.
pub(crate) fn selector_usable(sel: &LabelSelector) -> bool {
    !sel.match_labels.is_empty() || !sel.match_expressions.is_empty()
}

/// Neither terminal (Succeeded/Failed) nor being deleted: Kubernetes'
/// `FilterActivePods`.
pub(crate) fn pod_is_active(pod: &Pod) -> bool {
    !pod.is_terminal() && pod.metadata.deletion_timestamp.is_none()
}

/// When the pod's Ready condition last became True, if it is True and the
/// time is known.
pub(crate) fn pod_ready_since_ms(pod: &Pod) -> Option<u64> {
    let c = pod.status.conditions.iter().find(|c| c.kind == "Ready")?;
    if c.status != "True" {
        return None;
    }
    c.last_transition_time.as_deref().and_then(parse_time_ms)
}

/// Kubernetes' `IsPodAvailable`: ready, and (with `minReadySeconds`) ready
/// for strictly longer than that. A ready pod without a transition time is
/// available only when `min_ready_seconds` is 0.
pub(crate) fn pod_is_available(pod: &Pod, min_ready_seconds: i32, now_ms: u64) -> bool {
    if !pod.is_ready() {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    match pod_ready_since_ms(pod) {
        Some(since) => since + min_ready_seconds as u64 * 1000 < now_ms,
        None => false,
    }
}

/// The uid of the object's controller owner reference, if any.
pub(crate) fn controller_uid(meta: &faultline_api::ObjectMeta) -> Option<&str> {
    meta.controller().map(|o| o.uid.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_api::selector::label_map;
    use faultline_api::LabelSelectorRequirement;

    #[test]
    fn times_round_trip() {
        let s = format_time_ms(1_700_000_000_123);
        assert_eq!(s, "2023-11-14T22:13:20.123000Z");
        assert_eq!(parse_time_ms(&s), Some(1_700_000_000_123));
        assert_eq!(
            parse_time_ms("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000)
        );
        assert_eq!(parse_time_ms("yesterday"), None);
    }

    #[test]
    fn selectors_follow_kubernetes() {
        let l = label_map(&[("app", "web"), ("tier", "front")]);
        let mut s = LabelSelector::default();
        assert!(selector_matches(&s, &l), "empty selects everything");
        assert!(!selector_usable(&s));
        s.match_labels = label_map(&[("app", "web")]);
        assert!(selector_matches(&s, &l));
        s.match_expressions = vec![LabelSelectorRequirement::new(
            "tier",
            "In",
            &["front", "back"],
        )];
        assert!(selector_matches(&s, &l));
        s.match_expressions = vec![LabelSelectorRequirement::new("tier", "NotIn", &["front"])];
        assert!(!selector_matches(&s, &l));
        s.match_expressions = vec![
            LabelSelectorRequirement::new("zone", "NotIn", &["a"]),
            LabelSelectorRequirement::new("zone", "DoesNotExist", &[]),
        ];
        assert!(selector_matches(&s, &l));
        s.match_expressions = vec![LabelSelectorRequirement::new("zone", "Exists", &[])];
        assert!(!selector_matches(&s, &l));
        s.match_expressions = vec![LabelSelectorRequirement::new("app", "Matches", &[])];
        assert!(!selector_matches(&s, &l));
        s.match_expressions.clear();
        s.match_labels = label_map(&[("app", "db")]);
        assert!(!selector_matches(&s, &l));
    }
}
