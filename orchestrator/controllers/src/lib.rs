//! The controller manager's reconcile functions, as pure functions.
//!
//! Each controller takes the object it reconciles plus a snapshot of the
//! related objects (what the informer caches hold) and returns the
//! [`Action`]s that move the cluster towards the desired state. Nothing here
//! performs I/O, reads a clock or draws randomness: wall time arrives as
//! `now_ms` (milliseconds since the Unix epoch), and the API server assigns
//! uids and completes `generateName`. The async driver, [`manager`]
//! (informers, work queues, leader election, API calls), executes the
//! actions.
//!
//! - [`replicaset`]: keeps `spec.replicas` pods of a template running;
//! - [`deployment`]: rolls a template out through ReplicaSets
//!   (RollingUpdate, Recreate) and keeps the revision history bounded;
//! - [`endpoints`]: publishes the ready and not-ready pods behind a Service;
//! - [`nodelifecycle`]: marks nodes whose lease went stale `Unknown`,
//!   taints them and evicts their pods after a timeout;
//! - [`gc`]: deletes objects whose owners are all gone;
//! - [`manager`]: the controller manager that runs all of the above
//!   against the API server while it holds the election Lease;
//! - [`expectations`]: the bookkeeping a driver needs so that a reconcile on
//!   a cache that has not yet seen the controller's own writes does not
//!   repeat them.
//!
//! # Executing actions
//!
//! A driver runs the actions of one reconcile **in order** and stops at the
//! first failure (conflict, precondition failed, ...), then requeues the key
//! with backoff: the next reconcile recomputes everything from the cache, so
//! nothing is lost. `NotFound` on [`Action::Delete`] counts as success.
//! Running in order with stop-on-error also gives Kubernetes' "slow start"
//! its point (a failing create does not get repeated hundreds of times); a
//! driver that wants concurrency may run consecutive creates in the batches
//! [`slow_start_batches`] returns.
//!
//! Determinism: every function's output order depends only on its inputs
//! (sorted by name/uid where the input order would otherwise leak through).

pub mod deployment;
pub mod endpoints;
pub mod expectations;
pub mod gc;
pub mod manager;
pub mod namespace;
pub mod nodelifecycle;
pub mod replicaset;
mod util;

use faultline_api::{
    Deployment, Endpoints, Event, Node, ObjectMeta, ObjectReference, Pod, ReplicaSet, Resource,
};

pub use manager::{run, ManagerConfig};
pub use nodelifecycle::NodeLifecycleConfig;
pub use util::{format_time_ms, parse_time_ms};

/// An object a controller writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// Created and adopted/released by the ReplicaSet controller; status
    /// (Ready=False) written by the node lifecycle controller.
    Pod(Pod),
    /// Created, scaled, adopted and released by the Deployment controller;
    /// status written by the ReplicaSet controller.
    ReplicaSet(ReplicaSet),
    /// Status written by the Deployment controller.
    Deployment(Deployment),
    /// Created and updated by the Endpoints controller.
    Endpoints(Endpoints),
    /// Ready condition (status) and taints (spec) written by the node
    /// lifecycle controller.
    Node(Node),
}

macro_rules! each_object {
    ($self:expr, $o:ident => $e:expr) => {
        match $self {
            Object::Pod($o) => $e,
            Object::ReplicaSet($o) => $e,
            Object::Deployment($o) => $e,
            Object::Endpoints($o) => $e,
            Object::Node($o) => $e,
        }
    };
}

/// Reads a [`Resource`] associated constant of whichever kind `$self` holds.
fn constants_of<R: Resource>(_: &R) -> (&'static str, &'static str, &'static str, bool) {
    (R::KIND, R::API_VERSION, R::PLURAL, R::NAMESPACED)
}

impl Object {
    /// `Pod`, `ReplicaSet`, ...
    pub fn kind(&self) -> &'static str {
        each_object!(self, o => constants_of(o).0)
    }

    /// `v1`, `apps/v1`.
    pub fn api_version(&self) -> &'static str {
        each_object!(self, o => constants_of(o).1)
    }

    /// The URL segment: `pods`, `replicasets`, ...
    pub fn plural(&self) -> &'static str {
        each_object!(self, o => constants_of(o).2)
    }

    /// False for cluster-scoped kinds (Node).
    pub fn namespaced(&self) -> bool {
        each_object!(self, o => constants_of(o).3)
    }

    /// The object's metadata (namespace, name, `resourceVersion` for the URL
    /// and the precondition).
    pub fn meta(&self) -> &ObjectMeta {
        each_object!(self, o => o.meta())
    }

    /// The object as JSON, ready to send as a request body.
    pub fn to_json(&self) -> serde_json::Value {
        each_object!(self, o => serde_json::to_value(o).expect("API objects always serialise"))
    }
}

/// `Normal` or `Warning`, as an Event's `type`.
pub const EVENT_NORMAL: &str = "Normal";
/// See [`EVENT_NORMAL`].
pub const EVENT_WARNING: &str = "Warning";

/// An Event to record about an object. Losing one is harmless: events are
/// for people, no controller reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The object the event is about.
    pub involved_object: ObjectReference,
    /// [`EVENT_NORMAL`] or [`EVENT_WARNING`].
    pub event_type: &'static str,
    /// CamelCase machine-readable cause: `SuccessfulCreate`, `ScalingReplicaSet`.
    pub reason: String,
    /// A sentence for people.
    pub message: String,
}

impl EventRecord {
    pub(crate) fn new<R: Resource>(
        obj: &R,
        event_type: &'static str,
        reason: &str,
        message: String,
    ) -> EventRecord {
        EventRecord {
            involved_object: ObjectReference::to(obj),
            event_type,
            reason: reason.to_string(),
            message,
        }
    }

    /// The Event object to create: named by the server from
    /// `generateName = "<involved name>."`, in the involved object's
    /// namespace (`default` for cluster-scoped objects, as Kubernetes does).
    pub fn to_event(&self, component: &str, now_ms: u64) -> Event {
        let namespace = if self.involved_object.namespace.is_empty() {
            "default".to_string()
        } else {
            self.involved_object.namespace.clone()
        };
        let metadata = ObjectMeta {
            generate_name: format!("{}-", self.involved_object.name),
            namespace,
            ..Default::default()
        };
        Event::first_occurrence(
            metadata,
            self.involved_object.clone(),
            self.event_type,
            &self.reason,
            &self.message,
            component,
            format_time_ms(now_ms),
        )
    }
}

/// One write a controller asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `POST` the object. Its `metadata.name` may be empty with
    /// `generateName` set; `AlreadyExists` means the cache was stale
    /// (requeue).
    Create(Object),
    /// `PUT` the object (spec and metadata) with its `resourceVersion` as the
    /// optimistic-concurrency precondition; a conflict means requeue.
    Update(Object),
    /// `PUT .../status` with the object's `resourceVersion`.
    UpdateStatus(Object),
    /// `DELETE` with `preconditions.uid = uid`, so that a newer object that
    /// reused the name is never deleted. `resource_version` is the version
    /// the decision was based on, for drivers that want to precondition on
    /// it too (the controllers here do not need it).
    Delete {
        /// `Resource::KIND` of the object: `Pod`, `ReplicaSet`, ...
        kind: &'static str,
        /// Empty for cluster-scoped kinds.
        namespace: String,
        /// The object's name.
        name: String,
        /// Sent as `preconditions.uid`.
        uid: String,
        /// The version the decision was based on (optional precondition).
        resource_version: String,
    },
    /// Record an Event (see [`EventRecord::to_event`]); failures are ignored.
    Event(EventRecord),
    /// Reconcile this key again after `after_ms` even if nothing changes
    /// (time-based transitions such as `minReadySeconds`). Not a write.
    Requeue {
        /// Delay in milliseconds of wall time.
        after_ms: u64,
    },
}

impl Action {
    /// A delete of `obj`, preconditioned on its uid.
    pub fn delete<R: Resource>(obj: &R) -> Action {
        let m = obj.meta();
        Action::Delete {
            kind: R::KIND,
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            uid: m.uid.clone(),
            resource_version: m.resource_version.clone(),
        }
    }

    /// True for the actions that write to the API server (not events or
    /// requeues).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Action::Create(_) | Action::Update(_) | Action::UpdateStatus(_) | Action::Delete { .. }
        )
    }
}

/// Kubernetes' slow-start batch sizes for `count` creations: 1, 2, 4, ...
/// (the last one partial). A driver running creates concurrently issues one
/// batch at a time and skips the rest after a batch with a failure.
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut left = count;
    let mut size = 1usize;
    while left > 0 {
        let n = size.min(left);
        out.push(n);
        left -= n;
        size = size.saturating_mul(2);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_doubles() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
    }

    #[test]
    fn objects_know_their_kind_and_url() {
        let o = Object::ReplicaSet(ReplicaSet::default());
        assert_eq!(
            (o.kind(), o.api_version(), o.plural()),
            ("ReplicaSet", "apps/v1", "replicasets")
        );
        assert!(o.namespaced());
        assert!(!Object::Node(Node::default()).namespaced());
    }

    #[test]
    fn events_for_cluster_scoped_objects_go_to_default() {
        let mut node = Node::default();
        node.metadata.name = "n1".into();
        let e = EventRecord::new(&node, EVENT_WARNING, "NodeNotReady", "gone".into())
            .to_event("nlc", 1_000);
        assert_eq!(e.metadata.namespace, "default");
        assert_eq!(e.metadata.generate_name, "n1-");
        assert_eq!(
            e.first_timestamp.as_deref(),
            Some("1970-01-01T00:00:01.000000Z")
        );
        assert_eq!(e.kind, "Event");
    }
}
