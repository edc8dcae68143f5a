//! What runs against the cluster during a scenario, recording what it sees
//! in the checker's records:
//!
//! - [`store`]: store clients (register operations for linearizability,
//!   set adds for lost writes), a watcher, the final reads after healing
//!   and the wait for the replicas to agree;
//! - [`traffic`]: users sending HTTP requests to services through the node
//!   proxies behind a health-checking load balancer, every request
//!   recorded;
//! - [`user`]: the operator who applies the scenario's deployments and
//!   performs its actions.
//!
//! Everything here is an async function over an [`Env`](faultline_env::Env),
//! so the same code runs on either simulation backend (and could run for
//! real); the runner makes hosts of them.

pub mod store;
pub mod traffic;
pub mod user;
