//! The control plane's invariants, on what the auditor, the cluster probe
//! and the container ledger found (all present whenever a scenario has
//! worker nodes, which these invariants need).

use std::time::Duration;

use super::{at_deadline, Observations, Verdict};
use crate::auditor::ClusterFindings;

fn findings<'a>(obs: &Observations<'a>) -> &'a ClusterFindings {
    obs.cluster
        .expect("validated: control-plane invariants need worker nodes")
}

/// `deployments-ready`: every node Ready and every deployment at its
/// desired ready replicas within `within` (default 120 s) of healing.
pub fn deployments_ready(obs: &Observations<'_>, within: Option<Duration>) -> Verdict {
    let verdict = match &findings(obs).ready {
        Some(Ok(d)) => Verdict::new(
            true,
            format!(
                "every node Ready and every deployment at its desired ready replicas {:.1}s after healing",
                d.as_secs_f64()
            ),
        ),
        Some(Err(e)) => Verdict::new(false, e.clone()),
        None => Verdict::new(false, "the cluster probe did not finish"),
    };
    let within = within.map(|w| w.as_secs_f64()).unwrap_or(120.0);
    verdict.at(at_deadline(obs, within))
}

/// `single-binding`: no pod bound twice, in the store's whole history.
pub fn single_binding(obs: &Observations<'_>) -> Verdict {
    let f = findings(obs);
    match (f.double_bindings.first(), f.auditor_errors.first()) {
        (Some((at, what)), _) => Verdict::new(
            false,
            format!(
                "at {:.3}s: {what} ({} in all)",
                *at as f64 / 1e9,
                f.double_bindings.len()
            ),
        )
        .at(Some(*at)),
        (None, Some(e)) => Verdict::new(false, e.clone()),
        (None, None) => Verdict::new(
            true,
            format!(
                "{} pods bound, each once (store history to revision {})",
                f.pods_bound, f.last_revision
            ),
        ),
    }
}

/// `no-overcommit`: no node's bound pods ever request more than it
/// allocates.
pub fn no_overcommit(obs: &Observations<'_>) -> Verdict {
    let f = findings(obs);
    match (f.overcommits.first(), f.auditor_errors.first()) {
        (Some((at, what)), _) => {
            Verdict::new(false, format!("at {:.3}s: {what}", *at as f64 / 1e9)).at(Some(*at))
        }
        (None, Some(e)) => Verdict::new(false, e.clone()),
        (None, None) => Verdict::new(
            true,
            "no node's bound pods ever requested more than it allocates",
        ),
    }
}

/// `pending-explained`: pods still pending at the end say why.
pub fn pending_explained(obs: &Observations<'_>) -> Verdict {
    match &findings(obs).pending {
        Some(Ok(d)) => Verdict::new(true, d.clone()),
        Some(Err(e)) => Verdict::new(false, e.clone()),
        None => Verdict::new(false, "the cluster probe did not finish"),
    }
}

/// `single-container`: never two running containers for one pod and
/// container.
pub fn single_container(obs: &Observations<'_>) -> Verdict {
    let ledger = obs
        .containers
        .expect("validated: control-plane invariants need worker nodes");
    let violations = ledger.violations.borrow();
    match violations.first() {
        Some((at, what)) => {
            Verdict::new(false, format!("at {:.3}s: {what}", *at as f64 / 1e9)).at(Some(*at))
        }
        None => Verdict::new(
            true,
            format!(
                "{} containers started, never two at once for one pod and container",
                *ledger.started.borrow()
            ),
        ),
    }
}
