//! The Deployment controller: rolls a pod template out through ReplicaSets.
//!
//! Modelled on Kubernetes' `pkg/controller/deployment`:
//!
//! - **Ownership.** ReplicaSets whose controller reference carries the
//!   Deployment's uid and whose labels match its selector are its own;
//!   matching orphans are adopted, owned ones that stopped matching are
//!   released.
//! - **The new ReplicaSet** is the oldest owned one whose template equals
//!   the Deployment's, ignoring the `pod-template-hash` label. When none
//!   exists it is created as `"<deployment>-<hash>"`, with
//!   `pod-template-hash=<hash>` added to its labels, selector and template
//!   labels ([`template_hash`]: FNV-1a of the template's JSON, encoded like
//!   Kubernetes' `SafeEncodeString`), and the annotations
//!   `deployment.kubernetes.io/{revision,desired-replicas,max-replicas}`.
//! - **RollingUpdate** (`maxSurge` 25% rounded up, `maxUnavailable` 25%
//!   rounded down, unavailable forced to 1 when both are 0): scale the new
//!   ReplicaSet up while the sum of all `spec.replicas` stays within
//!   `replicas + maxSurge`; otherwise scale old ReplicaSets down (unhealthy
//!   replicas first) while the available pods, summed from the ReplicaSets'
//!   `status.availableReplicas`, stay at least `replicas - maxUnavailable`.
//!   One direction per reconcile, as in Kubernetes. With no old replicas
//!   left the new ReplicaSet is set to `replicas` directly (scaling).
//! - **Recreate**: scale every old ReplicaSet to 0, wait until none of their
//!   pods is running, then create or scale the new one to `replicas`.
//! - **Paused**: no rollout; a lone active ReplicaSet still follows
//!   `replicas`.
//! - **History**: once the rollout is complete, old ReplicaSets beyond
//!   `revisionHistoryLimit` (default 10), oldest revision first, are
//!   deleted if they have no replicas.
//! - **Status**: `replicas`, `updatedReplicas`, `readyReplicas`,
//!   `availableReplicas`, `unavailableReplicas`, `observedGeneration` and
//!   the `Available` and `Progressing` conditions, written when changed.
//! - **Progress deadline**: a rollout that makes no progress (no more
//!   updated, ready or available replicas, no fewer old ones) for
//!   `progressDeadlineSeconds` (default 600) gets `Progressing=False`,
//!   reason `ProgressDeadlineExceeded` (what `kubectl rollout status`
//!   reports as a failed rollout); the controller asks to be woken when
//!   the deadline would pass.
//!
//! Simplified: no proportional scaling of several active ReplicaSets when
//! `replicas` changes mid-rollout (the rolling update converges anyway), no
//! `collisionCount` (a name collision with a
//! foreign ReplicaSet is reported as a Warning event and retried), no
//! rollback annotations, and the Deployment's own revision annotation is
//! not maintained.

use std::borrow::Borrow;
use std::collections::BTreeSet;

use faultline_api::{
    Deployment, DeploymentCondition, DeploymentStatus, ObjectMeta, OwnerReference, Pod,
    PodTemplateSpec, ReplicaSet, ReplicaSetSpec, Resource,
};

use crate::util::{controller_uid, parse_time_ms, selector_matches, selector_usable};
use crate::{Action, EventRecord, Object, EVENT_NORMAL, EVENT_WARNING};

/// The label that ties a ReplicaSet and its pods to one template.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// A ReplicaSet's revision among its Deployment's, as a decimal string.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The Deployment's `replicas` when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// `replicas + maxSurge` when the ReplicaSet was last scaled.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// `revisionHistoryLimit` when unset.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;

/// The `pod-template-hash` of a template: FNV-1a (32 bit) of its canonical
/// JSON (struct fields in declaration order, maps sorted), with any
/// `pod-template-hash` label removed first, then Kubernetes'
/// `SafeEncodeString` of the decimal value: at most 10 characters from
/// `bcdfghjklmnpqrstvwxz2456789`.
pub fn template_hash(template: &PodTemplateSpec) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut t = template.clone();
    t.metadata.labels.remove(POD_TEMPLATE_HASH_LABEL);
    let bytes = serde_json::to_vec(&t).expect("a template always serialises");
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// The Deployment's `spec.replicas` (Kubernetes defaults it to 1).
pub fn desired_replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1).max(0)
}

fn is_recreate(d: &Deployment) -> bool {
    d.spec.strategy.kind == "Recreate"
}

/// `(maxSurge, maxUnavailable)` resolved against `replicas` (Kubernetes'
/// `ResolveFenceposts`): surge rounds up, unavailable down, and when both
/// come out 0 unavailable becomes 1. Both are 0 for Recreate.
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    if is_recreate(d) {
        return (0, 0);
    }
    let desired = desired_replicas(d);
    let pct25 = faultline_api::IntOrString::String("25%".into());
    let ru = d.spec.strategy.rolling_update.clone().unwrap_or_default();
    let surge_spec = ru.max_surge.unwrap_or_else(|| pct25.clone());
    let unavailable_spec = ru.max_unavailable.unwrap_or(pct25);
    // Validation refuses malformed values; should one slip through, fall
    // back to the safest reading (no surge, one unavailable).
    let surge = surge_spec.scaled(desired, true).unwrap_or(0).max(0);
    let mut unavailable = unavailable_spec.scaled(desired, false).unwrap_or(0).max(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// Kubernetes' `MaxUnavailable`: the resolved value capped at `replicas`,
/// 0 for Recreate or zero replicas.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let desired = desired_replicas(d);
    if is_recreate(d) || desired == 0 {
        return 0;
    }
    fenceposts(d).1.min(desired)
}

/// One owned ReplicaSet as this reconcile plans to leave it.
struct Planned {
    rs: ReplicaSet,
    /// The cached object; `None` for a ReplicaSet this reconcile creates.
    orig: Option<ReplicaSet>,
    /// Position in the order writes are emitted, once touched.
    touched: Option<usize>,
}

struct Plan<'a> {
    d: &'a Deployment,
    sets: Vec<Planned>,
    /// Index of the new ReplicaSet in `sets`.
    new: Option<usize>,
    touches: usize,
    out: Vec<Action>,
    created_new: bool,
    /// Names of all ReplicaSets in the namespace, owned or not.
    taken_names: BTreeSet<&'a str>,
}

impl Plan<'_> {
    fn touch(&mut self, i: usize) {
        if self.sets[i].touched.is_none() {
            self.sets[i].touched = Some(self.touches);
            self.touches += 1;
        }
    }

    fn replicas(&self, i: usize) -> i32 {
        self.sets[i].rs.spec.replicas.unwrap_or(1)
    }

    fn olds(&self) -> Vec<usize> {
        (0..self.sets.len())
            .filter(|i| Some(*i) != self.new)
            .collect()
    }

    /// All ReplicaSets' `spec.replicas`.
    fn total_replicas(&self) -> i32 {
        (0..self.sets.len()).map(|i| self.replicas(i)).sum()
    }

    fn scale(&mut self, i: usize, replicas: i32) {
        assert!(replicas >= 0, "never scale below zero");
        let (surge, _) = fenceposts(self.d);
        let desired = desired_replicas(self.d);
        let rs = &mut self.sets[i].rs;
        rs.spec.replicas = Some(replicas);
        rs.metadata
            .annotations
            .insert(DESIRED_REPLICAS_ANNOTATION.into(), desired.to_string());
        rs.metadata.annotations.insert(
            MAX_REPLICAS_ANNOTATION.into(),
            (desired + surge).to_string(),
        );
        self.touch(i);
    }

    /// Emits the writes for every touched ReplicaSet, in touch order, each
    /// followed by a scaling Event when its replicas changed.
    fn flush(&mut self) {
        let mut touched: Vec<(usize, usize)> = self
            .sets
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.touched.map(|t| (t, i)))
            .collect();
        touched.sort();
        for (_, i) in touched {
            let p = &self.sets[i];
            let to = p.rs.spec.replicas.unwrap_or(1);
            match &p.orig {
                None => {
                    self.out
                        .push(Action::Create(Object::ReplicaSet(p.rs.clone())));
                    self.out.push(Action::Event(EventRecord::new(
                        self.d,
                        EVENT_NORMAL,
                        "ScalingReplicaSet",
                        format!("Scaled up replica set {} to {to}", p.rs.metadata.name),
                    )));
                }
                Some(orig) if *orig != p.rs => {
                    self.out
                        .push(Action::Update(Object::ReplicaSet(p.rs.clone())));
                    let from = orig.spec.replicas.unwrap_or(1);
                    if from != to {
                        let dir = if to > from { "up" } else { "down" };
                        self.out.push(Action::Event(EventRecord::new(
                            self.d,
                            EVENT_NORMAL,
                            "ScalingReplicaSet",
                            format!(
                                "Scaled {dir} replica set {} from {from} to {to}",
                                p.rs.metadata.name
                            ),
                        )));
                    }
                }
                Some(_) => {}
            }
        }
    }
}

/// Reconciles one Deployment against the ReplicaSets and pods of its
/// namespace (others are ignored). `now_ms` is the wall clock, for the
/// conditions' times and the progress deadline.
///
/// Actions: releases of ReplicaSets that stopped matching, then creates and
/// updates of owned ReplicaSets (adoption, revision, scaling), each
/// followed by an Event, deletes beyond the history limit, the status
/// update.
pub fn reconcile<P: Borrow<Pod>>(
    d: &Deployment,
    rss: &[ReplicaSet],
    pods: &[P],
    now_ms: u64,
) -> Vec<Action> {
    assert!(
        !d.metadata.uid.is_empty(),
        "a Deployment from the cache has a uid"
    );
    let mut out = Vec::new();
    if !selector_usable(&d.spec.selector) {
        out.push(Action::Event(EventRecord::new(
            d,
            EVENT_WARNING,
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.".into(),
        )));
        return out;
    }
    let uid = d.metadata.uid.as_str();
    let deleting = d.metadata.deletion_timestamp.is_some();

    // Claim ReplicaSets, oldest first (Kubernetes' ReplicaSetsByCreationTimestamp).
    let mut candidates: Vec<&ReplicaSet> = rss
        .iter()
        .filter(|r| r.metadata.namespace == d.metadata.namespace)
        .collect();
    candidates.sort_by_key(|r| creation_key(r));
    let mut sets = Vec::new();
    let mut adoptions = 0;
    for rs in candidates {
        let matches = selector_matches(&d.spec.selector, &rs.metadata.labels);
        match controller_uid(&rs.metadata) {
            Some(owner) if owner == uid => {
                if matches {
                    sets.push(Planned {
                        rs: rs.clone(),
                        orig: Some(rs.clone()),
                        touched: None,
                    });
                } else if !deleting {
                    let mut released = rs.clone();
                    released.metadata.owner_references.retain(|o| o.uid != uid);
                    out.push(Action::Update(Object::ReplicaSet(released)));
                }
            }
            Some(_) => {}
            None => {
                if matches && !deleting && rs.metadata.deletion_timestamp.is_none() {
                    let mut adopted = rs.clone();
                    adopted
                        .metadata
                        .owner_references
                        .push(OwnerReference::controller_of(d));
                    // Adoptions are written first, in claim order.
                    sets.push(Planned {
                        rs: adopted,
                        orig: Some(rs.clone()),
                        touched: Some(adoptions),
                    });
                    adoptions += 1;
                }
            }
        }
    }
    let new = sets
        .iter()
        .position(|p| equal_ignoring_hash(&p.rs.spec.template, &d.spec.template));
    let mut plan = Plan {
        d,
        sets,
        new,
        touches: adoptions,
        out,
        created_new: false,
        taken_names: rss
            .iter()
            .filter(|r| r.metadata.namespace == d.metadata.namespace)
            .map(|r| r.metadata.name.as_str())
            .collect(),
    };

    if !deleting {
        if d.spec.paused {
            sync_paused(&mut plan);
        } else if is_recreate(d) {
            rollout_recreate(&mut plan, pods);
        } else {
            rollout_rolling(&mut plan);
        }
    }

    let mut status = calculate_status(&plan);
    let complete = is_complete(d, &status);
    let wake_ms = track_progress(d, &mut status, complete, now_ms);
    plan.flush();
    if complete && !deleting {
        cleanup_history(&mut plan);
    }
    let mut out = plan.out;
    if let Some(after_ms) = wake_ms {
        out.push(Action::Requeue { after_ms });
    }
    if status != d.status {
        let mut updated = d.clone();
        updated.status = status;
        out.push(Action::UpdateStatus(Object::Deployment(updated)));
    }
    out
}

/// The default `progressDeadlineSeconds`, as Kubernetes'.
pub const PROGRESS_DEADLINE_SECONDS: i32 = 600;

/// Stamps the conditions' times and applies the progress deadline
/// (Kubernetes' `syncRolloutStatus`): a condition whose status changed
/// gets `lastTransitionTime` now; `Progressing` gets `lastUpdateTime` now
/// whenever the rollout progressed; a rollout that has not progressed for
/// the deadline turns `Progressing` False. Returns how long until the
/// deadline would pass, for a requeue, while a rollout is under way.
fn track_progress(
    d: &Deployment,
    status: &mut DeploymentStatus,
    complete: bool,
    now_ms: u64,
) -> Option<u64> {
    let now = faultline_api::time::rfc3339(now_ms);
    let old = &d.status;
    let old_cond = |kind: &str| old.conditions.iter().find(|c| c.kind == kind);
    let old_others = old.replicas - old.updated_replicas;
    let new_others = status.replicas - status.updated_replicas;
    let progressed = status.updated_replicas > old.updated_replicas
        || new_others < old_others
        || status.ready_replicas > old.ready_replicas
        || status.available_replicas > old.available_replicas;
    let deadline_ms = 1000
        * u64::try_from(
            d.spec
                .progress_deadline_seconds
                .unwrap_or(PROGRESS_DEADLINE_SECONDS),
        )
        .unwrap_or(0);
    let mut wake = None;
    if let Some(p) = status
        .conditions
        .iter_mut()
        .find(|c| c.kind == "Progressing")
    {
        let before = old_cond("Progressing");
        // Exceeded stays exceeded until the rollout moves again.
        if let Some(b) = before {
            if b.reason == "ProgressDeadlineExceeded" && !progressed && !complete {
                *p = b.clone();
            }
        }
        let changed = before.is_none_or(|b| {
            (&b.status, &b.reason, &b.message) != (&p.status, &p.reason, &p.message)
        });
        p.last_update_time = match before.and_then(|b| b.last_update_time.clone()) {
            Some(t) if !progressed && !changed => Some(t),
            _ => Some(now.clone()),
        };
        let under_way = p.status == "True" && p.reason != "NewReplicaSetAvailable";
        if under_way && !complete && !d.spec.paused {
            let since = p
                .last_update_time
                .as_deref()
                .and_then(faultline_api::time::parse_ms)
                .unwrap_or(now_ms);
            let idle = now_ms.saturating_sub(since);
            if idle >= deadline_ms {
                let rs = p.message.split('"').nth(1).unwrap_or("").to_string();
                p.status = "False".into();
                p.reason = "ProgressDeadlineExceeded".into();
                p.message = format!("ReplicaSet \"{rs}\" has timed out progressing.");
                p.last_update_time = Some(now.clone());
            } else {
                wake = Some(deadline_ms - idle);
            }
        }
    }
    for c in &mut status.conditions {
        let before = old_cond(&c.kind);
        c.last_transition_time = match before {
            Some(b) if b.status == c.status => b.last_transition_time.clone(),
            _ => Some(now.clone()),
        };
        if c.kind != "Progressing" {
            c.last_update_time = match before {
                Some(b) if b.status == c.status && b.reason == c.reason => {
                    b.last_update_time.clone()
                }
                _ => Some(now.clone()),
            };
        }
    }
    wake
}

fn creation_key(rs: &ReplicaSet) -> (u64, String) {
    let t = rs
        .metadata
        .creation_timestamp
        .as_deref()
        .and_then(parse_time_ms)
        .unwrap_or(0);
    (t, rs.metadata.name.clone())
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let mut a = a.clone();
    let mut b = b.clone();
    a.metadata.labels.remove(POD_TEMPLATE_HASH_LABEL);
    b.metadata.labels.remove(POD_TEMPLATE_HASH_LABEL);
    a == b
}

/// Makes sure the new ReplicaSet exists and carries the newest revision;
/// `replicas` is what a newly created one starts with.
fn ensure_new(plan: &mut Plan<'_>, replicas: impl Fn(&Plan<'_>) -> i32) -> Option<usize> {
    let d = plan.d;
    let max_old_revision = plan
        .olds()
        .into_iter()
        .map(|i| revision(&plan.sets[i].rs))
        .max()
        .unwrap_or(0);
    if let Some(i) = plan.new {
        let rs = &mut plan.sets[i].rs;
        let mut changed = false;
        if revision(rs) <= max_old_revision {
            rs.metadata.annotations.insert(
                REVISION_ANNOTATION.into(),
                (max_old_revision + 1).to_string(),
            );
            changed = true;
        }
        if rs.spec.min_ready_seconds != d.spec.min_ready_seconds {
            rs.spec.min_ready_seconds = d.spec.min_ready_seconds;
            changed = true;
        }
        if changed {
            plan.touch(i);
        }
        return Some(i);
    }

    let hash = template_hash(&d.spec.template);
    let name = format!("{}-{hash}", d.metadata.name);
    if plan.taken_names.contains(name.as_str()) {
        // A ReplicaSet has the name but another template or owner: a hash
        // collision (Kubernetes bumps `collisionCount`; we report it).
        plan.out.push(Action::Event(EventRecord::new(
            d,
            EVENT_WARNING,
            "HashCollision",
            format!("ReplicaSet {name} exists with a different template"),
        )));
        return None;
    }
    let mut template = d.spec.template.clone();
    template
        .metadata
        .labels
        .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
    let mut selector = d.spec.selector.clone();
    selector
        .match_labels
        .insert(POD_TEMPLATE_HASH_LABEL.into(), hash);
    let mut rs = ReplicaSet {
        metadata: ObjectMeta {
            name,
            namespace: d.metadata.namespace.clone(),
            labels: template.metadata.labels.clone(),
            owner_references: vec![OwnerReference::controller_of(d)],
            ..Default::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(0),
            selector,
            template,
            min_ready_seconds: d.spec.min_ready_seconds,
        },
        ..Default::default()
    };
    rs.set_type_meta();
    rs.metadata.annotations.insert(
        REVISION_ANNOTATION.into(),
        (max_old_revision + 1).to_string(),
    );
    plan.sets.push(Planned {
        rs,
        orig: None,
        touched: None,
    });
    let i = plan.sets.len() - 1;
    plan.new = Some(i);
    let start = replicas(plan);
    plan.scale(i, start);
    plan.created_new = true;
    Some(i)
}

/// Kubernetes' `NewRSNewReplicas` for RollingUpdate: grow the new
/// ReplicaSet into the room `replicas + maxSurge` leaves, never past
/// `replicas` (and shrink it to `replicas` if above).
fn new_rs_target(plan: &Plan<'_>, current_new: i32) -> i32 {
    let desired = desired_replicas(plan.d);
    let (surge, _) = fenceposts(plan.d);
    let max_total = desired + surge;
    let total = plan.total_replicas();
    if total >= max_total {
        return current_new;
    }
    current_new + (max_total - total).min(desired - current_new)
}

fn rollout_rolling(plan: &mut Plan<'_>) {
    let desired = desired_replicas(plan.d);
    // A new ReplicaSet starts with its share of the surge room (all of
    // `replicas` when there are no old replicas).
    let Some(new) = ensure_new(plan, |p| new_rs_target(p, 0)) else {
        return;
    };
    // Scale the new ReplicaSet; Kubernetes stops the round after that.
    let current = plan.replicas(new);
    if current != desired {
        let target = if current > desired {
            desired
        } else {
            new_rs_target(plan, current)
        };
        if target != current {
            plan.scale(new, target);
            return;
        }
    }
    reconcile_old_rolling(plan, new);
}

fn reconcile_old_rolling(plan: &mut Plan<'_>, new: usize) {
    let d = plan.d;
    let mut olds = plan.olds();
    olds.sort_by_key(|i| creation_key(&plan.sets[*i].rs));
    let old_total: i32 = olds.iter().map(|i| plan.replicas(*i)).sum();
    if old_total == 0 {
        return;
    }
    let min_available = desired_replicas(d) - max_unavailable(d);
    let new_rs = &plan.sets[new].rs;
    let new_unavailable = plan.replicas(new) - new_rs.status.available_replicas;
    let max_scaled_down = plan.total_replicas() - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return;
    }

    // Unhealthy old replicas first: removing them costs no availability.
    let mut cleaned = 0;
    for &i in &olds {
        if cleaned >= max_scaled_down {
            break;
        }
        let replicas = plan.replicas(i);
        let available = plan.sets[i].rs.status.available_replicas;
        if replicas == 0 || replicas <= available {
            continue;
        }
        let n = (max_scaled_down - cleaned).min(replicas - available);
        plan.scale(i, replicas - n);
        cleaned += n;
    }

    // Then healthy ones, as far as availability allows.
    let available: i32 = plan
        .sets
        .iter()
        .map(|p| p.rs.status.available_replicas)
        .sum();
    if available <= min_available {
        return;
    }
    let budget = available - min_available;
    let mut scaled = 0;
    for &i in &olds {
        if scaled >= budget {
            break;
        }
        let replicas = plan.replicas(i);
        if replicas == 0 {
            continue;
        }
        let n = replicas.min(budget - scaled);
        plan.scale(i, replicas - n);
        scaled += n;
    }
}

fn rollout_recreate<P: Borrow<Pod>>(plan: &mut Plan<'_>, pods: &[P]) {
    let olds = plan.olds();
    let mut scaled = false;
    for &i in &olds {
        if plan.replicas(i) > 0 {
            plan.scale(i, 0);
            scaled = true;
        }
    }
    if scaled || old_pods_running(plan, &olds, pods) {
        return;
    }
    let desired = desired_replicas(plan.d);
    let Some(new) = ensure_new(plan, |_| desired) else {
        return;
    };
    if plan.replicas(new) != desired {
        plan.scale(new, desired);
    }
}

/// Kubernetes' `oldPodsRunning`: an old ReplicaSet still reports replicas,
/// or one of its pods is neither Succeeded nor Failed (terminating pods
/// count: they may still be serving).
fn old_pods_running<P: Borrow<Pod>>(plan: &Plan<'_>, olds: &[usize], pods: &[P]) -> bool {
    if olds.iter().any(|&i| plan.sets[i].rs.status.replicas > 0) {
        return true;
    }
    let uids: BTreeSet<&str> = olds
        .iter()
        .map(|&i| plan.sets[i].rs.metadata.uid.as_str())
        .collect();
    pods.iter().map(Borrow::borrow).any(|p: &Pod| {
        p.metadata.namespace == plan.d.metadata.namespace
            && controller_uid(&p.metadata).is_some_and(|u| uids.contains(u))
            && !p.is_terminal()
    })
}

/// A paused Deployment still follows `replicas` when one ReplicaSet is
/// active (Kubernetes' `sync` without proportional scaling).
fn sync_paused(plan: &mut Plan<'_>) {
    let desired = desired_replicas(plan.d);
    let active: Vec<usize> = (0..plan.sets.len())
        .filter(|&i| plan.replicas(i) > 0)
        .collect();
    let target = match active.as_slice() {
        [one] => Some(*one),
        [] => plan.new.or_else(|| plan.sets.len().checked_sub(1)),
        _ => None,
    };
    if let Some(i) = target {
        if plan.replicas(i) != desired {
            plan.scale(i, desired);
        }
    }
}

fn calculate_status(plan: &Plan<'_>) -> DeploymentStatus {
    let d = plan.d;
    let desired = desired_replicas(d);
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| plan.sets.iter().map(|p| f(&p.rs)).sum::<i32>();
    let available = sum(&|r| r.status.available_replicas);
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: sum(&|r| r.status.replicas),
        updated_replicas: plan.new.map_or(0, |i| plan.sets[i].rs.status.replicas),
        ready_replicas: sum(&|r| r.status.ready_replicas),
        available_replicas: available,
        unavailable_replicas: (plan.total_replicas() - available).max(0),
        conditions: d.status.conditions.clone(),
    };

    let (kind, reason, message) = if available >= desired - max_unavailable(d) {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    set_condition(&mut status, "Available", kind, reason, message.into());

    let new_name = plan.new.map(|i| plan.sets[i].rs.metadata.name.clone());
    if d.spec.paused {
        set_condition(
            &mut status,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
        );
    } else if let Some(name) = new_name {
        let (reason, message) = if is_complete(d, &status) {
            (
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{name}\" has successfully progressed."),
            )
        } else if plan.created_new {
            (
                "NewReplicaSetCreated",
                format!("Created new replica set \"{name}\""),
            )
        } else {
            (
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{name}\" is progressing."),
            )
        };
        set_condition(&mut status, "Progressing", "True", reason, message);
    }
    status
}

fn set_condition(
    status: &mut DeploymentStatus,
    kind: &str,
    value: &str,
    reason: &str,
    message: String,
) {
    // The times are stamped afterwards, against the previous status
    // (`track_progress`).
    let c = DeploymentCondition {
        kind: kind.into(),
        status: value.into(),
        reason: reason.into(),
        message,
        ..Default::default()
    };
    match status.conditions.iter_mut().find(|c| c.kind == kind) {
        Some(existing) => *existing = c,
        None => status.conditions.push(c),
    }
}

/// Kubernetes' `DeploymentComplete`: every replica updated and available.
fn is_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let desired = desired_replicas(d);
    status.updated_replicas == desired
        && status.replicas == desired
        && status.available_replicas == desired
        && status.observed_generation >= d.metadata.generation
}

/// Deletes old ReplicaSets beyond `revisionHistoryLimit`, oldest revision
/// first, skipping any that still has (or may have) replicas.
fn cleanup_history(plan: &mut Plan<'_>) {
    let limit = plan
        .d
        .spec
        .revision_history_limit
        .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
        .max(0) as usize;
    let mut cleanable: Vec<&ReplicaSet> = plan
        .olds()
        .into_iter()
        .map(|i| &plan.sets[i].rs)
        .filter(|rs| rs.metadata.deletion_timestamp.is_none() && !rs.metadata.uid.is_empty())
        .collect();
    if cleanable.len() <= limit {
        return;
    }
    cleanable.sort_by_key(|rs| (revision(rs), creation_key(rs)));
    let excess = cleanable.len() - limit;
    let mut deletes = Vec::new();
    for rs in cleanable.into_iter().take(excess) {
        if rs.status.replicas != 0
            || rs.spec.replicas.unwrap_or(1) != 0
            || rs.metadata.generation > rs.status.observed_generation
        {
            continue;
        }
        deletes.push(Action::delete(rs));
    }
    plan.out.extend(deletes);
}

#[cfg(test)]
mod tests;
