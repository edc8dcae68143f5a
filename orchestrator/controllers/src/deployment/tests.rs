//! Deployment controller tests: single reconciles, and whole rollouts in a
//! small in-memory world where the ReplicaSet controller and a toy kubelet
//! run beside the Deployment controller.

use faultline_api::{
    Container, DeploymentSpec, DeploymentStrategy, IntOrString, PodCondition, ReplicaSetStatus,
    RollingUpdateDeployment,
};

use super::*;
use crate::format_time_ms;
use crate::replicaset;
use crate::replicaset::tests::NOW;
use faultline_api::selector::label_map;

fn deployment(replicas: i32) -> Deployment {
    let mut d = Deployment {
        metadata: ObjectMeta {
            uid: "uid-web".into(),
            resource_version: "1".into(),
            generation: 1,
            ..ObjectMeta::named("default", "web")
        },
        spec: DeploymentSpec {
            replicas: Some(replicas),
            ..Default::default()
        },
        ..Default::default()
    };
    d.spec.selector.match_labels = label_map(&[("app", "web")]);
    d.spec.template.metadata.labels = label_map(&[("app", "web")]);
    d.spec.template.spec.containers = vec![Container {
        name: "c".into(),
        image: "echo:v1".into(),
        ..Default::default()
    }];
    d
}

fn rolling(d: &mut Deployment, surge: Option<IntOrString>, unavailable: Option<IntOrString>) {
    d.spec.strategy = DeploymentStrategy {
        kind: "RollingUpdate".into(),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: surge,
            max_unavailable: unavailable,
        }),
    };
}

/// The Recreate Deployment of `replicas` pods, rolled out.
fn recreate(replicas: i32) -> World {
    let mut d = deployment(replicas);
    d.spec.strategy.kind = "Recreate".into();
    let mut w = World::new(d);
    w.converge(30);
    w
}

/// The condition of `kind` in `st`, which must have one.
fn condition<'a>(st: &'a DeploymentStatus, kind: &str) -> &'a DeploymentCondition {
    st.conditions.iter().find(|c| c.kind == kind).unwrap()
}

fn set_image(d: &mut Deployment, image: &str) {
    d.spec.template.spec.containers[0].image = image.into();
    d.metadata.generation += 1;
}

/// The cluster as the API server would hold it, with writes applied the
/// way the server applies them (uids, generated names, resource versions,
/// generation bumps), and a kubelet that binds a pod in the step it is
/// created and makes it ready two seconds later.
struct World {
    now: u64,
    next: u64,
    d: Deployment,
    rss: Vec<ReplicaSet>,
    pods: Vec<Pod>,
    /// When true, every step checks the rolling-update bounds: replicas and
    /// pods within `replicas + maxSurge`, ready pods at least
    /// `replicas - maxUnavailable`.
    check_rollout: bool,
    /// Recreate: old and new pods never run at the same time.
    check_exclusive: bool,
    /// Pods of this image never become ready (a broken release).
    stuck_image: String,
}

impl World {
    fn new(d: Deployment) -> World {
        World {
            now: NOW,
            next: 100,
            d,
            rss: vec![],
            pods: vec![],
            check_rollout: false,
            check_exclusive: false,
            stuck_image: String::new(),
        }
    }

    fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for a in actions {
            let rv = self.id().to_string();
            match a {
                Action::Create(Object::ReplicaSet(mut rs)) => {
                    assert!(self.rss.iter().all(|r| r.metadata.name != rs.metadata.name));
                    rs.metadata.uid = format!("rs-{rv}");
                    rs.metadata.resource_version = rv;
                    rs.metadata.generation = 1;
                    rs.metadata.creation_timestamp = Some(format_time_ms(self.now));
                    self.rss.push(rs);
                }
                Action::Create(Object::Pod(mut p)) => {
                    assert!(p.metadata.name.is_empty());
                    p.metadata.name = format!("{}{rv}", p.metadata.generate_name);
                    p.metadata.uid = format!("pod-{rv}");
                    p.metadata.resource_version = rv;
                    p.metadata.creation_timestamp = Some(format_time_ms(self.now));
                    p.status.phase = "Pending".into();
                    self.pods.push(p);
                }
                Action::Update(Object::ReplicaSet(rs)) => {
                    let stored = self.stored_rs(&rs);
                    let generation = stored.metadata.generation + i64::from(stored.spec != rs.spec);
                    let status = stored.status.clone();
                    *stored = rs;
                    stored.status = status;
                    stored.metadata.generation = generation;
                    stored.metadata.resource_version = rv;
                }
                Action::UpdateStatus(Object::ReplicaSet(rs)) => {
                    let stored = self.stored_rs(&rs);
                    stored.status = rs.status;
                    stored.metadata.resource_version = rv;
                }
                Action::UpdateStatus(Object::Deployment(d)) => {
                    assert_eq!(
                        self.d.metadata.resource_version, d.metadata.resource_version,
                        "conflict"
                    );
                    self.d.status = d.status;
                    self.d.metadata.resource_version = rv;
                }
                Action::Delete { kind, uid, .. } => {
                    let before = self.rss.len() + self.pods.len();
                    match kind {
                        "ReplicaSet" => self.rss.retain(|r| r.metadata.uid != uid),
                        "Pod" => self.pods.retain(|p| p.metadata.uid != uid),
                        other => panic!("unexpected delete of a {other}"),
                    }
                    assert_eq!(
                        before - 1,
                        self.rss.len() + self.pods.len(),
                        "deleted {uid}"
                    );
                }
                Action::Event(_) | Action::Requeue { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// The stored ReplicaSet that the write `rs` replaces, checked to be
    /// the version the write was based on.
    fn stored_rs(&mut self, rs: &ReplicaSet) -> &mut ReplicaSet {
        let stored = self
            .rss
            .iter_mut()
            .find(|r| r.metadata.uid == rs.metadata.uid)
            .unwrap();
        assert_eq!(
            stored.metadata.resource_version, rs.metadata.resource_version,
            "conflict"
        );
        stored
    }

    fn kubelet(&mut self) {
        for p in &mut self.pods {
            if p.spec.node_name.is_empty() {
                p.spec.node_name = "n1".into();
                p.status.phase = "Running".into();
            } else if !p.is_ready() && p.spec.containers[0].image != self.stuck_image {
                let created =
                    parse_time_ms(p.metadata.creation_timestamp.as_deref().unwrap()).unwrap();
                if self.now >= created + 2_000 {
                    p.status.conditions.push(PodCondition {
                        kind: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(format_time_ms(self.now)),
                        ..Default::default()
                    });
                }
            }
        }
    }

    fn pods_of(&self, rs: &ReplicaSet) -> usize {
        self.pods
            .iter()
            .filter(|p| controller_uid(&p.metadata) == Some(rs.metadata.uid.as_str()))
            .count()
    }

    fn check(&self) {
        let desired = desired_replicas(&self.d);
        let (surge, _) = fenceposts(&self.d);
        if self.check_rollout {
            let spec_total: i32 = self.rss.iter().map(|r| r.spec.replicas.unwrap()).sum();
            assert!(
                spec_total <= desired + surge,
                "replicas {spec_total} > {desired}+{surge}"
            );
            let pods = self.pods.len() as i32;
            assert!(pods <= desired + surge, "pods {pods} > {desired}+{surge}");
            let ready = self.pods.iter().filter(|p| p.is_ready()).count() as i32;
            let floor = desired - max_unavailable(&self.d);
            assert!(
                ready >= floor,
                "available {ready} < {floor} at {}",
                self.now
            );
        }
        if self.check_exclusive {
            let running = self.rss.iter().filter(|r| self.pods_of(r) > 0).count();
            assert!(running <= 1, "old and new pods run together");
        }
    }

    /// One round: the Deployment controller, every ReplicaSet, the kubelet.
    /// Returns how many writes the controllers asked for.
    fn step(&mut self) -> usize {
        let actions = reconcile(&self.d, &self.rss, &self.pods, self.now);
        let mut writes = actions.iter().filter(|a| a.is_write()).count();
        self.apply(actions);
        self.check();
        let mut uids: Vec<String> = self.rss.iter().map(|r| r.metadata.uid.clone()).collect();
        uids.sort();
        for uid in uids {
            let rs = self
                .rss
                .iter()
                .find(|r| r.metadata.uid == uid)
                .unwrap()
                .clone();
            let actions = replicaset::reconcile(&rs, &self.pods, self.now);
            writes += actions.iter().filter(|a| a.is_write()).count();
            self.apply(actions);
            self.check();
        }
        self.kubelet();
        self.check();
        self.now += 1_000;
        writes
    }

    /// Steps until a round writes nothing; panics after `max` rounds.
    fn converge(&mut self, max: usize) -> usize {
        for round in 0..max {
            if self.step() == 0 {
                return round;
            }
        }
        panic!("no convergence in {max} rounds: {:#?}", self.d.status);
    }

    fn assert_complete(&self) {
        let desired = desired_replicas(&self.d);
        let st = &self.d.status;
        assert_eq!(
            (
                st.replicas,
                st.updated_replicas,
                st.ready_replicas,
                st.available_replicas,
                st.unavailable_replicas
            ),
            (desired, desired, desired, desired, 0)
        );
        assert_eq!(st.observed_generation, self.d.metadata.generation);
        assert_eq!(
            condition(st, "Progressing").reason,
            "NewReplicaSetAvailable"
        );
        assert_eq!(condition(st, "Available").status, "True");
        let hash = template_hash(&self.d.spec.template);
        let active: Vec<&ReplicaSet> = self
            .rss
            .iter()
            .filter(|r| r.spec.replicas != Some(0))
            .collect();
        assert_eq!(active.len(), usize::from(desired > 0));
        assert!(self
            .pods
            .iter()
            .all(|p| p.metadata.labels[POD_TEMPLATE_HASH_LABEL] == hash));
        assert_eq!(self.pods.len() as i32, desired);
    }
}

#[test]
fn template_hash_is_stable_and_safe() {
    let d = deployment(1);
    let h = template_hash(&d.spec.template);
    assert_eq!(h, template_hash(&d.spec.template.clone()));
    assert!(!h.is_empty() && h.len() <= 10, "{h}");
    assert!(
        h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
        "{h}"
    );
    let mut labelled = d.spec.template.clone();
    labelled
        .metadata
        .labels
        .insert(POD_TEMPLATE_HASH_LABEL.into(), h.clone());
    assert_eq!(
        template_hash(&labelled),
        h,
        "the hash label itself is ignored"
    );
    let mut v2 = d.clone();
    set_image(&mut v2, "echo:v2");
    assert_ne!(template_hash(&v2.spec.template), h);
}

#[test]
fn fenceposts_follow_kubernetes() {
    let mut d = deployment(10);
    assert_eq!(fenceposts(&d), (3, 2));
    rolling(
        &mut d,
        Some(IntOrString::Int(0)),
        Some(IntOrString::String("0%".into())),
    );
    assert_eq!(fenceposts(&d), (0, 1), "both zero: one may be unavailable");
    let mut small = deployment(1);
    rolling(
        &mut small,
        Some(IntOrString::Int(0)),
        Some(IntOrString::Int(5)),
    );
    assert_eq!(max_unavailable(&small), 1, "capped at replicas");
    small.spec.strategy.kind = "Recreate".into();
    assert_eq!((fenceposts(&small), max_unavailable(&small)), ((0, 0), 0));
}

#[test]
fn creates_the_first_replicaset_at_full_size() {
    let d = deployment(3);
    let out = reconcile::<Pod>(&d, &[], &[], NOW);
    let Action::Create(Object::ReplicaSet(rs)) = &out[0] else {
        panic!("{out:?}")
    };
    let hash = template_hash(&d.spec.template);
    assert_eq!(rs.metadata.name, format!("web-{hash}"));
    assert_eq!(rs.spec.replicas, Some(3));
    for l in [
        &rs.metadata.labels,
        &rs.spec.selector.match_labels,
        &rs.spec.template.metadata.labels,
    ] {
        assert_eq!(l[POD_TEMPLATE_HASH_LABEL], hash);
        assert_eq!(l["app"], "web");
    }
    assert_eq!(rs.metadata.controller().unwrap().uid, "uid-web");
    assert_eq!(rs.metadata.annotations[REVISION_ANNOTATION], "1");
    assert_eq!(rs.metadata.annotations[DESIRED_REPLICAS_ANNOTATION], "3");
    assert_eq!(rs.metadata.annotations[MAX_REPLICAS_ANNOTATION], "4");
    assert_eq!(rs.kind, "ReplicaSet");
    let Some(Action::UpdateStatus(Object::Deployment(st))) = out.last() else {
        panic!("{out:?}")
    };
    assert_eq!(
        condition(&st.status, "Progressing").reason,
        "NewReplicaSetCreated"
    );
}

#[test]
fn the_first_rollout_converges() {
    let mut w = World::new(deployment(5));
    w.converge(20);
    w.assert_complete();
    // A converged Deployment asks for nothing.
    assert_eq!(reconcile(&w.d, &w.rss, &w.pods, w.now), vec![]);
}

#[test]
fn rolling_updates_stay_within_surge_and_unavailability() {
    let cases: Vec<(i32, Option<IntOrString>, Option<IntOrString>)> = vec![
        (10, None, None),
        (10, Some(IntOrString::Int(0)), Some(IntOrString::Int(1))),
        (10, Some(IntOrString::Int(1)), Some(IntOrString::Int(0))),
        (
            4,
            Some(IntOrString::String("50%".into())),
            Some(IntOrString::String("0%".into())),
        ),
        (7, Some(IntOrString::Int(3)), Some(IntOrString::Int(3))),
        (1, None, None),
    ];
    for (replicas, surge, unavailable) in cases {
        let mut d = deployment(replicas);
        rolling(&mut d, surge.clone(), unavailable.clone());
        let mut w = World::new(d);
        w.converge(30);
        w.assert_complete();
        w.check_rollout = true;
        let old = w.rss[0].metadata.name.clone();
        set_image(&mut w.d, "echo:v2");
        let rounds = w.converge(200);
        assert!(rounds > 1, "{replicas} {surge:?} {unavailable:?}");
        w.assert_complete();
        let old = w.rss.iter().find(|r| r.metadata.name == old).unwrap();
        assert_eq!(old.spec.replicas, Some(0), "old ReplicaSet kept as history");
        let new = w
            .rss
            .iter()
            .find(|r| r.metadata.name != old.metadata.name)
            .unwrap();
        assert_eq!(new.metadata.annotations[REVISION_ANNOTATION], "2");
    }
}

#[test]
fn a_second_rollout_mid_way_converges_to_the_latest_template() {
    let mut w = World::new(deployment(6));
    w.converge(30);
    w.check_rollout = true;
    set_image(&mut w.d, "echo:v2");
    for _ in 0..3 {
        w.step();
    }
    set_image(&mut w.d, "echo:v3");
    w.converge(200);
    w.assert_complete();
    assert_eq!(w.rss.len(), 3);
}

#[test]
fn recreate_stops_old_pods_before_starting_new_ones() {
    let mut w = recreate(4);
    w.assert_complete();
    w.check_exclusive = true;
    set_image(&mut w.d, "echo:v2");
    // First round: the old ReplicaSet goes to 0, no new one yet.
    let out = reconcile(&w.d, &w.rss, &w.pods, w.now);
    assert!(
        !out.iter().any(|a| matches!(a, Action::Create(_))),
        "{out:?}"
    );
    w.converge(50);
    w.assert_complete();
    assert_eq!(w.rss.len(), 2);
}

#[test]
fn recreate_waits_for_terminating_old_pods() {
    let mut w = recreate(2);
    set_image(&mut w.d, "echo:v2");
    w.step(); // old scaled to 0 and its pods deleted
              // Pretend one old pod is still terminating, with the status caught up.
    w.rss[0].status.replicas = 0;
    let old = w.rss[0].clone();
    let mut lingering = replicaset::pod_from_template(&old);
    lingering.metadata.name = "lingering".into();
    lingering.metadata.namespace = "default".into();
    lingering.metadata.deletion_timestamp = Some(format_time_ms(w.now));
    let out = reconcile(&w.d, &w.rss, &[lingering], w.now);
    assert!(
        !out.iter().any(|a| matches!(a, Action::Create(_))),
        "{out:?}"
    );
    let out = reconcile::<Pod>(&w.d, &w.rss, &[], w.now);
    assert!(
        out.iter().any(|a| matches!(a, Action::Create(_))),
        "{out:?}"
    );
}

#[test]
fn scaling_one_replicaset_sets_it_directly() {
    let mut w = World::new(deployment(10));
    w.converge(30);
    for target in [15, 3, 0, 2] {
        w.d.spec.replicas = Some(target);
        w.d.metadata.generation += 1;
        let out = reconcile(&w.d, &w.rss, &w.pods, w.now);
        let Action::Update(Object::ReplicaSet(rs)) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(rs.spec.replicas, Some(target));
        assert_eq!(
            rs.metadata.annotations[DESIRED_REPLICAS_ANNOTATION],
            target.to_string()
        );
        w.converge(30);
        w.assert_complete();
    }
}

fn old_rs(d: &Deployment, revision: i64, replicas: i32) -> ReplicaSet {
    let mut rs = ReplicaSet {
        metadata: ObjectMeta {
            uid: format!("uid-old-{revision}"),
            resource_version: "5".into(),
            generation: 1,
            labels: label_map(&[("app", "web")]),
            owner_references: vec![OwnerReference::controller_of(d)],
            creation_timestamp: Some(format_time_ms(NOW - 100_000 + revision as u64)),
            ..ObjectMeta::named("default", &format!("web-old{revision}"))
        },
        spec: ReplicaSetSpec {
            replicas: Some(replicas),
            selector: d.spec.selector.clone(),
            template: d.spec.template.clone(),
            ..Default::default()
        },
        status: ReplicaSetStatus {
            observed_generation: 1,
            replicas,
            ..Default::default()
        },
        ..Default::default()
    };
    rs.spec.template.spec.containers[0].image = format!("echo:old{revision}");
    rs.metadata
        .annotations
        .insert(REVISION_ANNOTATION.into(), revision.to_string());
    rs
}

#[test]
fn history_beyond_the_limit_is_deleted_oldest_first() {
    let mut d = deployment(2);
    d.spec.revision_history_limit = Some(2);
    let mut w = World::new(d.clone());
    w.rss = (1..=5).map(|r| old_rs(&d, r, 0)).collect();
    w.converge(30);
    w.assert_complete();
    let mut left: Vec<String> = w.rss.iter().map(|r| r.metadata.name.clone()).collect();
    left.sort();
    let new_name = format!("web-{}", template_hash(&d.spec.template));
    assert_eq!(left, vec![new_name, "web-old4".into(), "web-old5".into()]);
    let new = w.rss.iter().find(|r| r.spec.replicas == Some(2)).unwrap();
    assert_eq!(new.metadata.annotations[REVISION_ANNOTATION], "6");

    // An excess ReplicaSet that still reports a replica is kept for now.
    let mut draining = old_rs(&d, 0, 0);
    draining.status.replicas = 1;
    w.rss.push(draining);
    let out = reconcile(&w.d, &w.rss, &w.pods, w.now);
    assert!(
        !out.iter().any(|a| matches!(a, Action::Delete { .. })),
        "{out:?}"
    );
    w.rss.last_mut().unwrap().status.replicas = 0;
    let out = reconcile(&w.d, &w.rss, &w.pods, w.now);
    assert!(
        matches!(&out[..], [Action::Delete { name, .. }] if name == "web-old0"),
        "{out:?}"
    );
}

#[test]
fn orphans_are_adopted_and_mismatches_released() {
    let d = deployment(1);
    let mut orphan = old_rs(&d, 1, 0);
    orphan.metadata.owner_references.clear();
    let mut stray = old_rs(&d, 2, 0);
    stray.metadata.labels = label_map(&[("app", "other")]);
    let foreign = {
        let mut r = old_rs(&d, 3, 0);
        r.metadata.owner_references[0].uid = "someone-else".into();
        r
    };
    let out = reconcile::<Pod>(&d, &[orphan, stray, foreign], &[], NOW);
    let updates: Vec<&ReplicaSet> = out
        .iter()
        .filter_map(|a| match a {
            Action::Update(Object::ReplicaSet(r)) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(updates.len(), 2, "{out:?}");
    assert_eq!(updates[0].metadata.name, "web-old2");
    assert!(updates[0].metadata.owner_references.is_empty(), "released");
    assert_eq!(updates[1].metadata.name, "web-old1");
    assert_eq!(
        updates[1].metadata.controller().unwrap().uid,
        "uid-web",
        "adopted"
    );
}

#[test]
fn an_existing_new_replicaset_is_reused_after_rollback() {
    let mut w = World::new(deployment(2));
    w.converge(30);
    let v1 = w.d.spec.template.clone();
    set_image(&mut w.d, "echo:v2");
    w.converge(50);
    // Roll back to v1: its ReplicaSet is found again and gets revision 3.
    w.d.spec.template = v1;
    w.d.metadata.generation += 1;
    w.converge(50);
    w.assert_complete();
    assert_eq!(w.rss.len(), 2);
    let active = w.rss.iter().find(|r| r.spec.replicas == Some(2)).unwrap();
    assert_eq!(active.metadata.annotations[REVISION_ANNOTATION], "3");
}

#[test]
fn a_paused_deployment_does_not_roll_out() {
    let mut w = World::new(deployment(3));
    w.converge(30);
    w.d.spec.paused = true;
    set_image(&mut w.d, "echo:v2");
    w.d.spec.replicas = Some(4);
    let out = reconcile(&w.d, &w.rss, &w.pods, w.now);
    assert!(
        !out.iter().any(|a| matches!(a, Action::Create(_))),
        "{out:?}"
    );
    let Action::Update(Object::ReplicaSet(rs)) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(rs.spec.replicas, Some(4), "still scales");
    let Some(Action::UpdateStatus(Object::Deployment(st))) = out.last() else {
        panic!("{out:?}")
    };
    assert!(st
        .status
        .conditions
        .iter()
        .any(|c| c.reason == "DeploymentPaused"));
}

#[test]
fn an_empty_selector_is_refused() {
    let mut d = deployment(1);
    d.spec.selector = Default::default();
    let out = reconcile::<Pod>(&d, &[], &[], NOW);
    assert!(
        matches!(&out[..], [Action::Event(e)] if e.reason == "SelectingAll"),
        "{out:?}"
    );
}

#[test]
fn a_foreign_replicaset_with_the_new_name_is_a_collision() {
    let d = deployment(1);
    let mut foreign = old_rs(&d, 1, 0);
    foreign.metadata.name = format!("web-{}", template_hash(&d.spec.template));
    foreign.metadata.owner_references[0].uid = "someone-else".into();
    let out = reconcile::<Pod>(&d, &[foreign], &[], NOW);
    assert!(
        !out.iter().any(|a| matches!(a, Action::Create(_))),
        "{out:?}"
    );
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Event(e) if e.reason == "HashCollision")));
}

#[test]
fn a_rollout_that_stops_progressing_exceeds_its_deadline_and_recovers() {
    let mut d = deployment(2);
    d.spec.progress_deadline_seconds = Some(30);
    let mut w = World::new(d);
    w.converge(30);
    let done = condition(&w.d.status, "Progressing").clone();
    assert_eq!(done.reason, "NewReplicaSetAvailable");
    assert!(done.last_update_time.is_some() && done.last_transition_time.is_some());

    w.stuck_image = "echo:broken".into();
    set_image(&mut w.d, "echo:broken");
    w.step();
    // While the rollout is under way, the controller asks to be woken by
    // the deadline.
    let actions = reconcile(&w.d, &w.rss, &w.pods, w.now);
    let wake = actions.iter().find_map(|a| match a {
        Action::Requeue { after_ms } => Some(*after_ms),
        _ => None,
    });
    assert!(wake.is_some_and(|ms| ms <= 30_000), "{actions:?}");

    let started = w.now;
    let mut exceeded = None;
    for _ in 0..60 {
        w.step();
        if condition(&w.d.status, "Progressing").reason == "ProgressDeadlineExceeded" {
            exceeded = Some(w.now);
            break;
        }
    }
    let at = exceeded.expect("the deadline passed");
    assert!(
        (29_000..=40_000).contains(&(at - started)),
        "exceeded {} ms after the rollout stalled",
        at - started
    );
    let p = condition(&w.d.status, "Progressing");
    assert_eq!(p.status, "False");
    assert!(p.message.contains("has timed out progressing"), "{p:?}");
    // It stays exceeded while nothing moves...
    w.step();
    w.step();
    assert_eq!(
        condition(&w.d.status, "Progressing").reason,
        "ProgressDeadlineExceeded"
    );
    // ...and a fixed release rolls out and completes.
    w.stuck_image.clear();
    set_image(&mut w.d, "echo:v3");
    w.converge(60);
    w.assert_complete();
    assert_eq!(condition(&w.d.status, "Progressing").status, "True");
}
