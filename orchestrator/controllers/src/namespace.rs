//! The namespace controller: empties a namespace that is being deleted,
//! then deletes the namespace itself.
//!
//! Modelled on Kubernetes' `pkg/controller/namespace`: `DELETE` on a
//! namespace only marks it (`deletionTimestamp`, phase `Terminating`; the
//! API server refuses new content in it from then on); this controller
//! deletes everything inside — pods gracefully, through their kubelets —
//! and, once nothing is left, deletes the namespace again, which the API
//! server then removes (it checks that the namespace is empty).

use faultline_api::{Namespace, Resource};

use crate::gc::ObjectSummary;
use crate::Action;

/// How soon to look again at a namespace that still holds objects.
pub const RECHECK_MS: u64 = 2_000;

/// What to do about namespace `ns`, given every object in it (`inside`:
/// all kinds, events included).
pub fn reconcile(ns: &Namespace, inside: &[ObjectSummary]) -> Vec<Action> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Vec::new();
    }
    debug_assert!(inside.iter().all(|o| o.namespace == ns.metadata.name));
    if inside.is_empty() {
        return vec![Action::delete(ns)];
    }
    let mut actions: Vec<Action> = inside
        .iter()
        .filter(|o| !o.deleting)
        .map(ObjectSummary::delete)
        .collect();
    actions.push(Action::Requeue {
        after_ms: RECHECK_MS,
    });
    actions
}

/// Whether `ns` is being deleted.
pub fn is_terminating(ns: &Namespace) -> bool {
    ns.meta().deletion_timestamp.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_api::{ObjectMeta, Pod, Service};

    fn ns(deleting: bool) -> Namespace {
        let mut n = Namespace {
            metadata: ObjectMeta::named("", "t1"),
            ..Default::default()
        };
        n.metadata.uid = "ns-uid".into();
        if deleting {
            n.metadata.deletion_timestamp = Some("2026-12-07T00:00:00Z".into());
        }
        n
    }

    fn object<R: Resource + Default>(name: &str, deleting: bool) -> ObjectSummary {
        let mut o = R::default();
        o.meta_mut().namespace = "t1".into();
        o.meta_mut().name = name.into();
        o.meta_mut().uid = format!("{name}-uid");
        if deleting {
            o.meta_mut().deletion_timestamp = Some("2026-12-07T00:00:00Z".into());
        }
        ObjectSummary::of(&o)
    }

    #[test]
    fn a_live_namespace_is_left_alone() {
        assert!(reconcile(&ns(false), &[object::<Pod>("p", false)]).is_empty());
    }

    #[test]
    fn a_terminating_namespace_is_emptied_then_deleted() {
        let inside = [
            object::<Pod>("p", false),
            object::<Pod>("going", true),
            object::<Service>("s", false),
        ];
        let actions = reconcile(&ns(true), &inside);
        let deleted: Vec<&str> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deleted, ["p", "s"], "a pod already going is waited for");
        assert!(matches!(actions.last(), Some(Action::Requeue { .. })));

        let actions = reconcile(&ns(true), &[]);
        assert!(matches!(
            &actions[..],
            [Action::Delete { kind: "Namespace", name, uid, .. }] if name == "t1" && uid == "ns-uid"
        ));
    }
}
