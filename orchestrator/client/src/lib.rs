//! How every component talks to the API: a typed client that fails over
//! between API servers, informers (list, then watch, with a local cache),
//! a work queue, and Lease-based leader election.

pub mod client;
pub mod informer;
pub mod leader;
pub mod queue;

pub use client::{ApiError, Client, ClientConfig, DeleteParams, ListParams, WatchItem};
pub use informer::{Change, Informer};
pub use leader::{Elector, ElectorConfig, Fence};
pub use queue::WorkQueue;
