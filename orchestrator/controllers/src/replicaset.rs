//! The ReplicaSet controller: keeps `spec.replicas` pods of the template
//! running.
//!
//! Modelled on Kubernetes' `pkg/controller/replicaset`:
//!
//! - **Claiming.** A pod belongs to the ReplicaSet when its controller
//!   owner reference carries the ReplicaSet's uid. Active orphans (no
//!   controller reference) that match the selector are adopted (an
//!   [`Action::Update`] adding the reference); owned active pods that no
//!   longer match are released (the reference removed). A ReplicaSet being
//!   deleted neither adopts, releases, creates nor deletes.
//! - **Active** pods are neither terminal (`Succeeded`/`Failed`) nor being
//!   deleted; only they count towards `spec.replicas` (default 1).
//! - **Scaling.** Too few: create pods from the template with
//!   `generateName = "<rs>-"`, at most [`BURST_REPLICAS`] per reconcile.
//!   Too many: delete the surplus in Kubernetes' `ActivePods` order
//!   (unassigned < Pending < Unknown < Running; not ready < ready; ready
//!   for less time < longer; more restarts < fewer; newer < older), ties
//!   broken by name and uid.
//! - **Status**: `replicas`, `fullyLabeledReplicas` (pods carrying every
//!   template label), `readyReplicas`, `availableReplicas` (ready for longer
//!   than `minReadySeconds`, judged from the Ready condition's
//!   `lastTransitionTime`) and `observedGeneration`, written only when
//!   changed. When a ready pod will become available later, an
//!   [`Action::Requeue`] says when.
//!
//! Simplified: owned *terminal* pods are deleted here so they get replaced
//! and do not pile up (Kubernetes leaves them to the pod GC); deletion
//! ranking ignores co-location on nodes; there is no `ReplicaFailure`
//! condition. Kubernetes' "expectations" (do not act again until the cache
//! has seen the last writes) are the driver's job, see
//! [`crate::expectations`].

use std::borrow::Borrow;
use std::cmp::Reverse;

use faultline_api::{OwnerReference, Pod, ReplicaSet, ReplicaSetStatus, Resource};

use crate::util::{
    controller_uid, parse_time_ms, pod_is_active, pod_is_available, pod_ready_since_ms,
    selector_matches, selector_usable,
};
use crate::{Action, EventRecord, Object, EVENT_NORMAL};

/// Most pods created or deleted by one reconcile (Kubernetes' `burstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// Reconciles one ReplicaSet against the pods of its namespace (pods of
/// other namespaces are ignored). Actions come in this order: adoptions and
/// releases, deletion of owned terminal pods, scaling creates or deletes
/// (each followed by an Event), the status update, a requeue.
pub fn reconcile<P: Borrow<Pod>>(rs: &ReplicaSet, pods: &[P], now_ms: u64) -> Vec<Action> {
    assert!(
        !rs.metadata.uid.is_empty(),
        "a ReplicaSet from the cache has a uid"
    );
    let mut out = Vec::new();
    let uid = rs.metadata.uid.as_str();
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let usable = selector_usable(&rs.spec.selector);

    let mut candidates: Vec<&Pod> = pods
        .iter()
        .map(Borrow::borrow)
        .filter(|p| p.metadata.namespace == rs.metadata.namespace)
        .collect();
    candidates.sort_by(|a, b| {
        (&a.metadata.name, &a.metadata.uid).cmp(&(&b.metadata.name, &b.metadata.uid))
    });

    // Claim: the pods this ReplicaSet manages, adopting and releasing on the way.
    let mut active: Vec<Pod> = Vec::new();
    let mut terminal: Vec<&Pod> = Vec::new();
    for pod in candidates {
        let matches = usable && selector_matches(&rs.spec.selector, &pod.metadata.labels);
        match controller_uid(&pod.metadata) {
            Some(owner) if owner == uid => {
                if pod.is_terminal() && pod.metadata.deletion_timestamp.is_none() {
                    terminal.push(pod);
                } else if !pod_is_active(pod) {
                    // Being deleted: neither counted nor touched.
                } else if matches {
                    active.push(pod.clone());
                } else if !deleting {
                    let mut released = pod.clone();
                    released.metadata.owner_references.retain(|o| o.uid != uid);
                    out.push(Action::Update(Object::Pod(released)));
                }
            }
            Some(_) => {}
            None => {
                if matches && pod_is_active(pod) && !deleting {
                    let mut adopted = pod.clone();
                    adopted
                        .metadata
                        .owner_references
                        .push(OwnerReference::controller_of(rs));
                    out.push(Action::Update(Object::Pod(adopted.clone())));
                    active.push(adopted);
                }
            }
        }
    }

    if !deleting {
        for pod in &terminal {
            out.push(Action::delete(*pod));
            out.push(Action::Event(EventRecord::new(
                rs,
                EVENT_NORMAL,
                "SuccessfulDelete",
                format!("Deleted {} pod: {}", pod.status.phase, pod.metadata.name),
            )));
        }
        manage_replicas(rs, &active, &mut out);
    }

    let status = calculate_status(rs, &active, now_ms);
    if status != rs.status {
        let mut updated = rs.clone();
        updated.status = status;
        out.push(Action::UpdateStatus(Object::ReplicaSet(updated)));
    }
    if let Some(after_ms) = next_availability_ms(rs, &active, now_ms) {
        out.push(Action::Requeue { after_ms });
    }
    out
}

/// The ReplicaSet's `spec.replicas` (Kubernetes defaults it to 1).
pub fn desired_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(1).max(0)
}

fn manage_replicas(rs: &ReplicaSet, active: &[Pod], out: &mut Vec<Action>) {
    let desired = desired_replicas(rs) as usize;
    if active.len() < desired {
        let count = (desired - active.len()).min(BURST_REPLICAS);
        for _ in 0..count {
            out.push(Action::Create(Object::Pod(pod_from_template(rs))));
        }
        out.push(Action::Event(EventRecord::new(
            rs,
            EVENT_NORMAL,
            "SuccessfulCreate",
            format!("Created {count} pod(s) from {}", rs.metadata.name),
        )));
    } else if active.len() > desired {
        let count = (active.len() - desired).min(BURST_REPLICAS);
        let mut ranked: Vec<&Pod> = active.iter().collect();
        ranked.sort_by_key(|p| deletion_rank(p));
        for pod in ranked.into_iter().take(count) {
            out.push(Action::delete(pod));
            out.push(Action::Event(EventRecord::new(
                rs,
                EVENT_NORMAL,
                "SuccessfulDelete",
                format!("Deleted pod: {}", pod.metadata.name),
            )));
        }
    }
}

/// A new pod for `rs`: the template's labels, annotations and spec, a
/// controller reference to `rs`, and a name the server generates.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = &rs.spec.template;
    let mut pod = Pod {
        spec: template.spec.clone(),
        ..Default::default()
    };
    pod.metadata.generate_name = format!("{}-", rs.metadata.name);
    pod.metadata.namespace = rs.metadata.namespace.clone();
    pod.metadata.labels = template.metadata.labels.clone();
    pod.metadata.annotations = template.metadata.annotations.clone();
    pod.metadata.owner_references = vec![OwnerReference::controller_of(rs)];
    pod.set_type_meta();
    pod
}

type DeletionRank<'a> = (
    bool,
    u8,
    bool,
    Reverse<u64>,
    Reverse<i32>,
    Reverse<u64>,
    &'a str,
    &'a str,
);

/// Sort key: pods that sort first are deleted first (Kubernetes'
/// `controller.ActivePods`, without the co-location ranks).
fn deletion_rank(pod: &Pod) -> DeletionRank<'_> {
    let assigned = !pod.spec.node_name.is_empty();
    let phase = match pod.status.phase.as_str() {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    };
    let ready = pod.is_ready();
    // Among ready pods the one ready for less time goes first; an unknown
    // ready time counts as "just now", as Kubernetes' `afterOrZero` does.
    let ready_since = if ready {
        pod_ready_since_ms(pod).unwrap_or(u64::MAX)
    } else {
        0
    };
    let restarts = pod
        .status
        .container_statuses
        .iter()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0);
    let created = pod
        .metadata
        .creation_timestamp
        .as_deref()
        .and_then(parse_time_ms)
        .unwrap_or(u64::MAX);
    (
        assigned,
        phase,
        ready,
        Reverse(ready_since),
        Reverse(restarts),
        Reverse(created),
        pod.metadata.name.as_str(),
        pod.metadata.uid.as_str(),
    )
}

fn calculate_status(rs: &ReplicaSet, active: &[Pod], now_ms: u64) -> ReplicaSetStatus {
    let template_labels = &rs.spec.template.metadata.labels;
    let count = |f: &dyn Fn(&Pod) -> bool| active.iter().filter(|p| f(p)).count() as i32;
    ReplicaSetStatus {
        observed_generation: rs.metadata.generation,
        replicas: active.len() as i32,
        fully_labeled_replicas: count(&|p| {
            template_labels
                .iter()
                .all(|(k, v)| p.metadata.labels.get(k) == Some(v))
        }),
        ready_replicas: count(&|p| p.is_ready()),
        available_replicas: count(&|p| pod_is_available(p, rs.spec.min_ready_seconds, now_ms)),
    }
}

/// Milliseconds until the next ready pod becomes available, if any will.
fn next_availability_ms(rs: &ReplicaSet, active: &[Pod], now_ms: u64) -> Option<u64> {
    if rs.spec.min_ready_seconds <= 0 {
        return None;
    }
    let min_ready_ms = rs.spec.min_ready_seconds as u64 * 1000;
    active
        .iter()
        .filter(|p| !pod_is_available(p, rs.spec.min_ready_seconds, now_ms))
        .filter_map(pod_ready_since_ms)
        // Available once strictly past `since + minReady`.
        .map(|since| (since + min_ready_ms + 1).saturating_sub(now_ms).max(1))
        .min()
}

#[cfg(test)]
pub(crate) mod tests {
    use faultline_api::selector::label_map;
    use faultline_api::{ContainerStatus, ObjectMeta, PodCondition, ReplicaSetSpec};

    use super::*;
    use crate::format_time_ms;

    pub(crate) const NOW: u64 = 1_700_000_000_000;

    pub(crate) fn rs(name: &str, replicas: i32) -> ReplicaSet {
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                uid: format!("uid-{name}"),
                resource_version: "7".into(),
                generation: 1,
                ..ObjectMeta::named("default", name)
            },
            spec: ReplicaSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            },
            ..Default::default()
        };
        rs.spec.selector.match_labels = label_map(&[("app", "web")]);
        rs.spec.template.metadata.labels = label_map(&[("app", "web")]);
        rs
    }

    /// A pod of `owner` (or an orphan), Running and Ready since `ready_ms`
    /// when given, bound to `node` when not empty.
    pub(crate) fn pod(
        name: &str,
        owner: Option<&ReplicaSet>,
        node: &str,
        ready_ms: Option<u64>,
    ) -> Pod {
        let mut p = Pod {
            metadata: ObjectMeta {
                uid: format!("uid-{name}"),
                resource_version: "3".into(),
                labels: label_map(&[("app", "web")]),
                creation_timestamp: Some(format_time_ms(NOW - 3_600_000)),
                ..ObjectMeta::named("default", name)
            },
            ..Default::default()
        };
        if let Some(o) = owner {
            p.metadata
                .owner_references
                .push(OwnerReference::controller_of(o));
        }
        p.spec.node_name = node.to_string();
        p.status.phase = if node.is_empty() {
            "Pending"
        } else {
            "Running"
        }
        .to_string();
        if let Some(t) = ready_ms {
            p.status.conditions.push(PodCondition {
                kind: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(format_time_ms(t)),
                ..Default::default()
            });
        }
        p
    }

    fn creates(actions: &[Action]) -> usize {
        actions
            .iter()
            .filter(|a| matches!(a, Action::Create(Object::Pod(_))))
            .count()
    }

    fn deleted(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    fn status_of(actions: &[Action]) -> Option<ReplicaSetStatus> {
        actions.iter().find_map(|a| match a {
            Action::UpdateStatus(Object::ReplicaSet(r)) => Some(r.status.clone()),
            _ => None,
        })
    }

    #[test]
    fn scales_up_from_the_template() {
        let rs = rs("web-1", 3);
        let out = reconcile(&rs, &[pod("a", Some(&rs), "n1", Some(NOW - 10))], NOW);
        assert_eq!(creates(&out), 2);
        let Action::Create(Object::Pod(p)) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(p.metadata.generate_name, "web-1-");
        assert!(p.metadata.name.is_empty());
        assert_eq!(p.metadata.namespace, "default");
        assert_eq!(p.metadata.labels, label_map(&[("app", "web")]));
        assert_eq!(p.metadata.controller().unwrap().uid, "uid-web-1");
        assert_eq!(p.kind, "Pod");
        let st = status_of(&out).unwrap();
        assert_eq!(
            (
                st.replicas,
                st.ready_replicas,
                st.available_replicas,
                st.observed_generation
            ),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn creates_at_most_a_burst() {
        let rs = rs("big", 2000);
        assert_eq!(creates(&reconcile::<Pod>(&rs, &[], NOW)), BURST_REPLICAS);
    }

    #[test]
    fn scales_down_in_kubernetes_order() {
        let rs = rs("web-1", 1);
        let mut restarted = pod("restarted", Some(&rs), "n1", Some(NOW - 50_000));
        restarted.status.container_statuses.push(ContainerStatus {
            restart_count: 4,
            ..Default::default()
        });
        let mut unknown = pod("unknown", Some(&rs), "n1", None);
        unknown.status.phase = "Unknown".into();
        let pods = vec![
            pod("old-ready", Some(&rs), "n1", Some(NOW - 100_000)),
            pod("new-ready", Some(&rs), "n2", Some(NOW - 1_000)),
            restarted,
            pod("running-not-ready", Some(&rs), "n1", None),
            unknown,
            pod("pending", Some(&rs), "n2", None),
            pod("unassigned", Some(&rs), "", None),
        ];
        // `pending` is bound but still Pending.
        let mut pods = pods;
        pods[5].status.phase = "Pending".into();
        let out = reconcile(&rs, &pods, NOW);
        assert_eq!(
            deleted(&out),
            [
                "unassigned",
                "pending",
                "unknown",
                "running-not-ready",
                "new-ready",
                "restarted"
            ]
        );
        assert_eq!(creates(&out), 0);
    }

    #[test]
    fn restarts_and_age_break_ties() {
        let rs = rs("web-1", 1);
        let same = NOW - 10_000;
        let mut a = pod("a", Some(&rs), "n1", Some(same));
        a.status.container_statuses.push(ContainerStatus {
            restart_count: 1,
            ..Default::default()
        });
        let b = pod("b", Some(&rs), "n1", Some(same));
        let mut c = pod("c", Some(&rs), "n1", Some(same));
        c.metadata.creation_timestamp = Some(format_time_ms(NOW - 5_000));
        // a has restarts -> first; then c is newer than b.
        assert_eq!(
            deleted(&reconcile(&rs, &[b.clone(), c.clone(), a.clone()], NOW)),
            ["a", "c"]
        );
        let rs0 = super::tests::rs("web-1", 0);
        assert_eq!(deleted(&reconcile(&rs0, &[b, c, a], NOW)), ["a", "c", "b"]);
    }

    #[test]
    fn adopts_orphans_and_releases_mismatches() {
        let rs = rs("web-1", 2);
        let orphan = pod("orphan", None, "n1", Some(NOW - 10));
        let mut other_app = pod("other", None, "n1", None);
        other_app.metadata.labels = label_map(&[("app", "db")]);
        let mut relabelled = pod("relabelled", Some(&rs), "n1", None);
        relabelled.metadata.labels = label_map(&[("app", "debug")]);
        let foreign = pod(
            "foreign",
            Some(&super::tests::rs("other-rs", 1)),
            "n1",
            None,
        );
        let mut elsewhere = pod("elsewhere", None, "n1", None);
        elsewhere.metadata.namespace = "prod".into();
        let out = reconcile(
            &rs,
            &[orphan, other_app, relabelled, foreign, elsewhere],
            NOW,
        );
        let updates: Vec<&Pod> = out
            .iter()
            .filter_map(|a| match a {
                Action::Update(Object::Pod(p)) => Some(p),
                _ => None,
            })
            .collect();
        assert_eq!(updates.len(), 2);
        assert_eq!(updates[0].metadata.name, "orphan");
        assert_eq!(updates[0].metadata.controller().unwrap().uid, "uid-web-1");
        assert_eq!(
            updates[0].metadata.resource_version, "3",
            "optimistic concurrency"
        );
        assert_eq!(updates[1].metadata.name, "relabelled");
        assert!(updates[1].metadata.owner_references.is_empty());
        // The adopted pod counts: one more is needed, not two.
        assert_eq!(creates(&out), 1);
        assert_eq!(status_of(&out).unwrap().replicas, 1);
    }

    #[test]
    fn terminal_and_deleting_pods_do_not_count() {
        let rs = rs("web-1", 2);
        let mut failed = pod("failed", Some(&rs), "n1", None);
        failed.status.phase = "Failed".into();
        let mut going = pod("going", Some(&rs), "n1", Some(NOW - 10));
        going.metadata.deletion_timestamp = Some(format_time_ms(NOW));
        let mut orphan_failed = pod("orphan-failed", None, "n1", None);
        orphan_failed.status.phase = "Failed".into();
        let out = reconcile(&rs, &[failed, going, orphan_failed], NOW);
        assert_eq!(
            deleted(&out),
            ["failed"],
            "the failed pod is deleted, the orphan left alone"
        );
        assert_eq!(creates(&out), 2);
        assert!(!out.iter().any(|a| matches!(a, Action::Update(_))));
    }

    #[test]
    fn status_tracks_availability_and_requeues() {
        let mut rs = rs("web-1", 4);
        rs.spec.min_ready_seconds = 10;
        rs.spec
            .template
            .metadata
            .labels
            .insert("tier".into(), "front".into());
        let mut full = pod("full", Some(&rs), "n1", Some(NOW - 60_000));
        full.metadata.labels.insert("tier".into(), "front".into());
        let pods = vec![
            full,
            pod("fresh", Some(&rs), "n1", Some(NOW - 4_000)),
            pod("fresher", Some(&rs), "n1", Some(NOW - 1_000)),
            pod("starting", Some(&rs), "n1", None),
        ];
        let out = reconcile(&rs, &pods, NOW);
        let st = status_of(&out).unwrap();
        assert_eq!(
            (
                st.replicas,
                st.fully_labeled_replicas,
                st.ready_replicas,
                st.available_replicas
            ),
            (4, 1, 3, 1)
        );
        assert_eq!(out.last(), Some(&Action::Requeue { after_ms: 6_001 }));
        assert_eq!(creates(&out), 0);
    }

    #[test]
    fn unchanged_status_is_not_written() {
        let mut rs = rs("web-1", 1);
        rs.status = ReplicaSetStatus {
            observed_generation: 1,
            replicas: 1,
            fully_labeled_replicas: 1,
            ready_replicas: 1,
            available_replicas: 1,
        };
        assert_eq!(
            reconcile(&rs, &[pod("a", Some(&rs), "n1", Some(NOW - 10))], NOW),
            vec![]
        );
        rs.metadata.generation = 2;
        assert!(status_of(&reconcile(
            &rs,
            &[pod("a", Some(&rs), "n1", Some(NOW - 10))],
            NOW
        ))
        .is_some());
    }

    #[test]
    fn a_deleting_replicaset_only_reports() {
        let mut rs = rs("web-1", 3);
        rs.metadata.deletion_timestamp = Some(format_time_ms(NOW));
        let out = reconcile(&rs, &[pod("orphan", None, "n1", None)], NOW);
        assert!(
            out.iter().all(|a| matches!(a, Action::UpdateStatus(_))),
            "{out:?}"
        );
    }

    #[test]
    fn an_empty_selector_claims_nothing() {
        let mut rs = rs("web-1", 0);
        rs.spec.selector = Default::default();
        let out = reconcile(&rs, &[pod("orphan", None, "n1", None)], NOW);
        assert!(!out.iter().any(|a| matches!(a, Action::Update(_))));
    }

    #[test]
    fn input_order_does_not_change_the_output() {
        let rs = rs("web-1", 2);
        let mut pods: Vec<Pod> = (0..6)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    Some(&rs),
                    "n1",
                    Some(NOW - 1_000 * (i % 3)),
                )
            })
            .collect();
        pods.push(pod("orphan", None, "n1", None));
        let forward = reconcile(&rs, &pods, NOW);
        pods.reverse();
        assert_eq!(reconcile(&rs, &pods, NOW), forward);
    }
}
