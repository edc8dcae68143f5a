//! The garbage collector: deletes objects whose owners are all gone.
//!
//! Modelled on Kubernetes' `pkg/controller/garbagecollector` with
//! background propagation: an object that has owner references, all of
//! which are dangling (no object of that kind with that uid exists: the
//! owner was deleted, or deleted and recreated under the same name with a
//! new uid), is deleted with a uid precondition. Objects already being
//! deleted are left alone.
//!
//! **The caller must pass complete snapshots.** The collector only trusts
//! the absence of an owner for kinds listed in `complete_kinds`: every
//! object of those kinds must be in `objects`. A dependent with any owner
//! reference to a kind outside that list is skipped, since its owner might
//! exist in a cache the caller did not pass; getting this wrong deletes live
//! workloads. The dependents themselves may be a subset.
//!
//! Simplified: no foreground deletion or `blockOwnerDeletion`, no orphan
//! propagation, and dangling references beside live ones are left in place
//! (Kubernetes patches them out).

use std::collections::BTreeSet;

use faultline_api::Resource;

use crate::Action;

/// What the collector needs to know about one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectSummary {
    /// `Pod`, `ReplicaSet`, ...: use the kind's `Resource::KIND`.
    pub kind: &'static str,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The object's uid: what owner references point at.
    pub uid: String,
    /// Carried into the Delete action.
    pub resource_version: String,
    /// `metadata.ownerReferences`.
    pub owners: Vec<OwnerSummary>,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
}

/// One owner reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerSummary {
    /// The owner's kind: only kinds in `complete_kinds` are judged.
    pub kind: String,
    /// The owner's name (informational: liveness is judged by uid).
    pub name: String,
    /// The owner's uid.
    pub uid: String,
}

impl ObjectSummary {
    /// The delete of this object, preconditioned on its uid.
    pub fn delete(&self) -> Action {
        Action::Delete {
            kind: self.kind,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            resource_version: self.resource_version.clone(),
        }
    }

    /// The summary of any API object.
    pub fn of<R: Resource>(obj: &R) -> ObjectSummary {
        let m = obj.meta();
        ObjectSummary {
            kind: R::KIND,
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            uid: m.uid.clone(),
            resource_version: m.resource_version.clone(),
            owners: m
                .owner_references
                .iter()
                .map(|o| OwnerSummary {
                    kind: o.kind.clone(),
                    name: o.name.clone(),
                    uid: o.uid.clone(),
                })
                .collect(),
            deleting: m.deletion_timestamp.is_some(),
        }
    }
}

/// Deletes for every object in `objects` whose owner references all dangle,
/// in (kind, namespace, name) order. `complete_kinds` names the kinds of
/// which `objects` holds every object (see the module documentation).
pub fn reconcile(objects: &[ObjectSummary], complete_kinds: &[&str]) -> Vec<Action> {
    let live: BTreeSet<(&str, &str)> = objects.iter().map(|o| (o.kind, o.uid.as_str())).collect();
    let mut doomed: Vec<&ObjectSummary> = objects
        .iter()
        .filter(|o| !o.deleting && !o.owners.is_empty())
        .filter(|o| {
            o.owners
                .iter()
                .all(|r| complete_kinds.contains(&r.kind.as_str()))
        })
        .filter(|o| {
            o.owners
                .iter()
                .all(|r| !live.contains(&(r.kind.as_str(), r.uid.as_str())))
        })
        .collect();
    doomed.sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
    doomed.into_iter().map(ObjectSummary::delete).collect()
}

#[cfg(test)]
mod tests {
    use faultline_api::{Deployment, ObjectMeta, OwnerReference, Pod, ReplicaSet};

    use super::*;

    fn meta(name: &str, uid: &str) -> ObjectMeta {
        ObjectMeta {
            uid: uid.into(),
            ..ObjectMeta::named("default", name)
        }
    }

    fn deleted(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .map(|a| match a {
                Action::Delete { name, .. } => name.as_str(),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn orphans_of_deleted_owners_are_deleted() {
        let d = Deployment {
            metadata: meta("web", "d1"),
            ..Default::default()
        };
        let mut rs_live = ReplicaSet {
            metadata: meta("web-a", "rs1"),
            ..Default::default()
        };
        rs_live
            .metadata
            .owner_references
            .push(OwnerReference::controller_of(&d));
        let gone = ReplicaSet {
            metadata: meta("web-b", "rs2"),
            ..Default::default()
        };
        let mut orphan = Pod {
            metadata: meta("web-b-x", "p1"),
            ..Default::default()
        };
        orphan
            .metadata
            .owner_references
            .push(OwnerReference::controller_of(&gone));
        let mut kept = Pod {
            metadata: meta("web-a-y", "p2"),
            ..Default::default()
        };
        kept.metadata
            .owner_references
            .push(OwnerReference::controller_of(&rs_live));
        let free = Pod {
            metadata: meta("free", "p3"),
            ..Default::default()
        };
        // An owner recreated under the same name has a new uid: still dangling.
        let recreated = ReplicaSet {
            metadata: meta("web-b", "rs3"),
            ..Default::default()
        };
        let mut going = orphan.clone();
        going.metadata.name = "already-going".into();
        going.metadata.deletion_timestamp = Some("2024-01-01T00:00:00Z".into());

        let objects = vec![
            ObjectSummary::of(&d),
            ObjectSummary::of(&rs_live),
            ObjectSummary::of(&recreated),
            ObjectSummary::of(&kept),
            ObjectSummary::of(&orphan),
            ObjectSummary::of(&free),
            ObjectSummary::of(&going),
        ];
        let out = reconcile(&objects, &["Deployment", "ReplicaSet"]);
        assert_eq!(deleted(&out), ["web-b-x"]);
        let Action::Delete { kind, uid, .. } = &out[0] else {
            unreachable!()
        };
        assert_eq!((*kind, uid.as_str()), ("Pod", "p1"));

        // Delete the Deployment: its ReplicaSet goes, and the next round its pods.
        let objects: Vec<ObjectSummary> = objects
            .into_iter()
            .filter(|o| o.kind != "Deployment")
            .collect();
        assert_eq!(
            deleted(&reconcile(&objects, &["Deployment", "ReplicaSet"])),
            ["web-b-x", "web-a"]
        );
    }

    #[test]
    fn owners_of_unlisted_kinds_are_never_presumed_gone() {
        let rs = ReplicaSet {
            metadata: meta("web-a", "rs1"),
            ..Default::default()
        };
        let mut pod = Pod {
            metadata: meta("web-a-x", "p1"),
            ..Default::default()
        };
        pod.metadata
            .owner_references
            .push(OwnerReference::controller_of(&rs));
        let objects = vec![ObjectSummary::of(&pod)];
        assert_eq!(reconcile(&objects, &["Deployment"]), vec![]);
        assert_eq!(deleted(&reconcile(&objects, &["ReplicaSet"])), ["web-a-x"]);
    }

    #[test]
    fn one_live_owner_is_enough() {
        let a = ReplicaSet {
            metadata: meta("a", "rs1"),
            ..Default::default()
        };
        let b = ReplicaSet {
            metadata: meta("b", "rs2"),
            ..Default::default()
        };
        let mut pod = Pod {
            metadata: meta("shared", "p1"),
            ..Default::default()
        };
        pod.metadata
            .owner_references
            .push(OwnerReference::controller_of(&a));
        pod.metadata
            .owner_references
            .push(OwnerReference::controller_of(&b));
        let objects = vec![ObjectSummary::of(&pod), ObjectSummary::of(&b)];
        assert_eq!(reconcile(&objects, &["ReplicaSet"]), vec![]);
    }
}
