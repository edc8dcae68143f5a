//! The object model shared by every orchestrator component.
//!
//! Resources are shaped like Kubernetes' (`apiVersion`, `kind`, `metadata`,
//! `spec`, `status`) and serialise to the same JSON, so a person who knows
//! `kubectl get -o json` can read them.
//!
//! - [`meta`]: object and list metadata, owner references, the
//!   [`Resource`] trait every kind implements;
//! - [`types`]: the kinds (Namespace, Node, Pod, Deployment, ReplicaSet,
//!   Service, Endpoints, Lease, Event, ConfigMap, Secret) and the sub-resources (Binding, Scale);
//! - [`quantity`]: resource quantities such as `250m`, `128Mi`, `1Gi`;
//! - [`status`]: the `Status` error body with reason and field causes.

pub mod decode;
pub mod defaults;
pub mod log_options;
pub mod meta;
pub mod patch;
pub mod quantity;
pub mod selector;
pub mod status;
pub mod time;
pub mod types;
pub mod validate;

pub use log_options::{BadLogOptions, PodLogOptions};
pub use meta::{List, ListMeta, ObjectMeta, ObjectReference, OwnerReference, Resource, WatchEvent};
pub use quantity::Quantity;
pub use selector::{FieldSelector, Selector};
pub use status::{Status, StatusCause, StatusDetails};
pub use types::*;
pub use validate::Validate;
