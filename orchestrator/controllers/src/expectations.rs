//! Expectations: what a controller has asked for and not yet seen.
//!
//! Kubernetes' `ControllerExpectations`. A reconcile works on the informer
//! cache; right after the ReplicaSet controller created five pods the cache
//! may not show them yet, and a second reconcile would create five more.
//! The driver therefore records the pod creates and deletes of a
//! reconcile's actions against the owner's uid before executing them,
//! reports the pod events its informer delivers, and reconciles an owner
//! again only once [`Expectations::satisfied`] (or after the TTL, in case
//! an event was lost).
//!
//! Driver protocol, per ReplicaSet key:
//! 1. if `!satisfied(uid, now)`, skip (the informer event will requeue it);
//! 2. `actions = replicaset::reconcile(..)`; `expect(uid, &actions, now)`;
//! 3. execute in order; on the first failure at index `i`,
//!    `unexpect(uid, &actions[i..])` (the failed and the skipped ones);
//! 4. informer: pod added → `observe_created(&pod)`; pod deleted, or
//!    updated with a `deletionTimestamp` → `observe_deleted(&pod)`;
//! 5. ReplicaSet deleted → `forget(uid)`.

use std::collections::{BTreeMap, BTreeSet};

use faultline_api::Pod;

use crate::util::controller_uid;
use crate::{Action, Object};

/// Kubernetes' `ExpectationsTimeout`: after this long, expectations are
/// presumed lost and the owner is reconciled anyway.
pub const EXPECTATIONS_TTL_MS: u64 = 5 * 60 * 1000;

/// Outstanding pod creates and deletes per owner uid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectations {
    pending: BTreeMap<String, Pending>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Pending {
    /// Creates not yet observed. Invariant: never negative.
    adds: u64,
    /// Uids of pods whose deletion is not yet observed.
    deletes: BTreeSet<String>,
    set_at_ms: u64,
}

impl Expectations {
    /// Records the pod creates and deletes among `actions` as expected for
    /// `owner_uid` (on top of any still outstanding).
    pub fn expect(&mut self, owner_uid: &str, actions: &[Action], now_ms: u64) {
        let (adds, deletes) = pod_writes(actions);
        if adds == 0 && deletes.is_empty() {
            return;
        }
        let p = self.pending.entry(owner_uid.to_string()).or_default();
        p.adds += adds;
        p.deletes.extend(deletes);
        p.set_at_ms = now_ms;
    }

    /// Withdraws the expectations for `actions` that failed or were never
    /// executed.
    pub fn unexpect(&mut self, owner_uid: &str, actions: &[Action]) {
        let (adds, deletes) = pod_writes(actions);
        if let Some(p) = self.pending.get_mut(owner_uid) {
            p.adds = p.adds.saturating_sub(adds);
            for uid in deletes {
                p.deletes.remove(&uid);
            }
        }
    }

    /// A pod appeared in the cache.
    pub fn observe_created(&mut self, pod: &Pod) {
        if let Some(p) = controller_uid(&pod.metadata).and_then(|u| self.pending.get_mut(u)) {
            p.adds = p.adds.saturating_sub(1);
        }
    }

    /// A pod left the cache or got a `deletionTimestamp`.
    pub fn observe_deleted(&mut self, pod: &Pod) {
        for p in self.pending.values_mut() {
            p.deletes.remove(&pod.metadata.uid);
        }
    }

    /// True when nothing is outstanding for `owner_uid`, or it has been
    /// outstanding for longer than [`EXPECTATIONS_TTL_MS`].
    pub fn satisfied(&self, owner_uid: &str, now_ms: u64) -> bool {
        match self.pending.get(owner_uid) {
            None => true,
            Some(p) => {
                (p.adds == 0 && p.deletes.is_empty()) || now_ms >= p.set_at_ms + EXPECTATIONS_TTL_MS
            }
        }
    }

    /// Drops everything recorded for `owner_uid` (the owner was deleted).
    pub fn forget(&mut self, owner_uid: &str) {
        self.pending.remove(owner_uid);
    }
}

fn pod_writes(actions: &[Action]) -> (u64, Vec<String>) {
    let mut adds = 0;
    let mut deletes = Vec::new();
    for a in actions {
        match a {
            Action::Create(Object::Pod(_)) => adds += 1,
            Action::Delete {
                kind: "Pod", uid, ..
            } => deletes.push(uid.clone()),
            _ => {}
        }
    }
    (adds, deletes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicaset;
    use crate::replicaset::tests::{pod, rs, NOW};

    #[test]
    fn creates_must_be_observed_before_the_next_reconcile() {
        let rs = rs("web-1", 3);
        let mut e = Expectations::default();
        let actions = replicaset::reconcile::<Pod>(&rs, &[], NOW);
        e.expect("uid-web-1", &actions, NOW);
        assert!(!e.satisfied("uid-web-1", NOW));
        assert!(e.satisfied("uid-other", NOW));
        // The second create fails: it and the third are withdrawn.
        let second = actions
            .iter()
            .position(|a| matches!(a, Action::Create(_)))
            .unwrap()
            + 1;
        e.unexpect("uid-web-1", &actions[second..]);
        assert!(!e.satisfied("uid-web-1", NOW));
        e.observe_created(&pod("a", Some(&rs), "", None));
        assert!(e.satisfied("uid-web-1", NOW));
    }

    #[test]
    fn deletes_are_tracked_by_uid_and_expire() {
        let rs = rs("web-1", 0);
        let pods = [
            pod("a", Some(&rs), "n1", None),
            pod("b", Some(&rs), "n1", None),
        ];
        let mut e = Expectations::default();
        e.expect("uid-web-1", &replicaset::reconcile(&rs, &pods, NOW), NOW);
        e.observe_deleted(&pods[0]);
        assert!(!e.satisfied("uid-web-1", NOW + 1));
        assert!(
            e.satisfied("uid-web-1", NOW + EXPECTATIONS_TTL_MS),
            "lost events expire"
        );
        e.observe_deleted(&pods[1]);
        assert!(e.satisfied("uid-web-1", NOW + 1));
        e.forget("uid-web-1");
        assert_eq!(e, Expectations::default());
    }
}
