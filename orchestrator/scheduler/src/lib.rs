//! The scheduler: which node should a pending pod run on?
//!
//! Sans-IO at the core, like every core in the workspace: a [`Cache`] is
//! *fed* nodes and pods (from informers, in whatever order the watches
//! deliver them) and answers [`Cache::schedule`] without reading a clock or
//! owning an RNG. The [`driver`] around it (informers, leader election, the
//! `pods/{name}/binding` call) uses it like this:
//!
//! ```text
//! node events  -> cache.upsert_node(node) / cache.remove_node(name)
//! pod events   -> cache.upsert_pod(&pod)  / cache.remove_pod(&pod)
//! pending pod  -> match cache.schedule(&pod, rng.next_u64()) {
//!                     Ok(node) => { cache.assume(&pod, &node); POST binding;
//!                                   on failure: cache.forget(uid) }
//!                     Err(why) => PodScheduled=False, reason Unschedulable,
//!                                 message why.to_string(); retry later
//!                 }
//! ```
//!
//! A decision is a filter then a score over *every* node (no sampling):
//!
//! - filters: the node is Ready and not cordoned, every `NoSchedule` /
//!   `NoExecute` taint is tolerated, `spec.nodeSelector` matches its labels,
//!   and the pod's cpu, memory and one pod slot fit its allocatable minus
//!   what is already bound or assumed there;
//! - scores (integers, weighted): spread the pod's workload across
//!   datacenters first, then zones, then nodes; then prefer the least
//!   allocated node;
//! - ties: broken by the caller's random `u64`, so seeds vary placements and
//!   a seed replays them, independently of the order events arrived in.

mod cache;
pub mod driver;
mod schedule;
mod unschedulable;

pub use cache::{workload_key, Cache, Resources, DEFAULT_MAX_PODS};
pub use driver::{run, run_with_informers, SchedulerConfig, DEFAULT_SCHEDULER_NAME};
pub use schedule::tolerates;
pub use unschedulable::{Reason, Unschedulable};

#[cfg(test)]
mod tests;
