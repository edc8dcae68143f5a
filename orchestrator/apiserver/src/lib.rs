//! The API server: Kubernetes-style HTTP/JSON resources, stateless over the
//! replicated store.
//!
//! - [`auth`]: bearer tokens and roles (admin, scheduler, controller, node);
//! - [`registry`]: objects in the store, optimistic concurrency, per-kind
//!   create/update rules;
//! - [`server`]: routing, list/watch, patch, delete, binding and scale;
//! - [`cacher`]: the watch cache, one store watch per kind fanned out to
//!   every client watch;
//! - [`discovery`]: `/api`, `/apis` and the resource lists;
//! - [`openapi`]: the OpenAPI v3 documents kubectl validates and patches with;
//! - [`openapi_v2`]: the same as Swagger 2.0, JSON or protobuf, for kubectl
//!   before 1.27;
//! - [`table`]: the server-side `Table` rows `kubectl get` prints.

// `Status` is the error: the body the client receives, built once per
// failed request. Boxing it would only add noise to every handler.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod cacher;
pub mod discovery;
pub mod openapi;
pub mod openapi_v2;
pub mod registry;
pub mod server;
pub mod table;

pub use auth::{Role, Tokens};
pub use registry::Bugs;
pub use server::{serve, ApiServerConfig};
