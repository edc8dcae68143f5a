//! The store's invariants: on the register history (`linearizable`), the
//! set's final read (`no-lost-writes`), the watch stream
//! (`watch-ordered`), the Raft monitor (`raft-safety`), and agreement
//! after healing (`converges`).

use std::time::Duration;

use super::{at_deadline, Observations, Verdict};
use crate::record::SET_PREFIX;
use crate::{linearizable, set, watch};

/// The linearizability checker's search budget per key.
const STEPS_PER_KEY: u64 = 2_000_000;

/// `linearizable`: every register history.
pub fn linearizable(obs: &Observations<'_>) -> Verdict {
    let history = &obs.store.history;
    match linearizable::check(history, STEPS_PER_KEY) {
        linearizable::Verdict::Linearizable => Verdict::new(
            true,
            format!("{} register operations linearizable", history.ops.len()),
        ),
        linearizable::Verdict::NotLinearizable { key, detail, .. } => {
            Verdict::new(false, format!("key {key}: {detail}"))
        }
        linearizable::Verdict::Undecided { key, steps } => Verdict::new(
            false,
            format!("undecided: key {key} exhausted the search budget after {steps} steps"),
        ),
    }
}

/// The set check of the final read, when it succeeded.
pub fn set_verdict(obs: &Observations<'_>) -> Option<set::SetVerdict> {
    if obs.final_state.error.is_some() {
        return None;
    }
    Some(set::check_set(&set::SetCheck {
        acknowledged: obs.store.set_acknowledged.clone(),
        unknown: obs.store.set_unknown.clone(),
        final_read: obs
            .final_state
            .set
            .iter()
            .map(|(_, k, _)| k.clone())
            .collect(),
    }))
}

/// `no-lost-writes`: every acknowledged add is in the final read.
pub fn no_lost_writes(obs: &Observations<'_>) -> Verdict {
    let rec = obs.store;
    let Some(verdict) = set_verdict(obs) else {
        return Verdict::new(false, obs.final_state.error.clone().unwrap_or_default());
    };
    if verdict.ok() {
        return Verdict::new(
            true,
            format!(
                "{} acknowledged adds all present ({} of {} unknown ones too)",
                rec.set_acknowledged.len(),
                verdict.recovered,
                rec.set_unknown.len()
            ),
        );
    }
    let mut lost = verdict.lost.clone();
    lost.truncate(5);
    Verdict::new(
        false,
        format!(
            "{} acknowledged writes lost (e.g. {}), {} unexpected",
            verdict.lost.len(),
            lost.join(", "),
            verdict.unexpected.len()
        ),
    )
}

/// `watch-ordered`: every watch segment against the committed writes the
/// final read found.
pub fn watch_ordered(obs: &Observations<'_>) -> Verdict {
    let rec = obs.store;
    let mut committed: Vec<watch::WatchEvent> = obs
        .final_state
        .set
        .iter()
        .map(|(rev, k, v)| watch::WatchEvent {
            revision: *rev,
            key: k.clone(),
            kind: watch::EventKind::Put { value: v.clone() },
        })
        .collect();
    committed.sort_by(|a, b| (a.revision, &a.key).cmp(&(b.revision, &b.key)));
    let mut bad = None;
    let mut total = 0;
    for seg in &rec.watch {
        total += seg.received.len();
        let v = watch::check_watch(&watch::WatchCheck {
            prefix: SET_PREFIX.to_string(),
            start_revision: seg.start_revision,
            received: seg.received.clone(),
            committed: committed.clone(),
        });
        if let (Some(violation), None) = (&v.violation, &bad) {
            bad = Some(format!(
                "watch from revision {}: {violation}",
                seg.start_revision
            ));
        }
    }
    match (bad, &obs.final_state.error) {
        (Some(b), _) => Verdict::new(false, b),
        (None, Some(e)) => Verdict::new(false, e.clone()),
        (None, None) => Verdict::new(
            true,
            format!(
                "{total} events in {} segment(s), in order, no gap",
                rec.watch.len()
            ),
        ),
    }
}

/// `raft-safety`: what the Raft monitor saw.
pub fn raft_safety(obs: &Observations<'_>) -> Verdict {
    let v = obs.raft.violations();
    if v.is_empty() {
        return Verdict::new(
            true,
            format!(
                "{} leader terms, no safety violation",
                obs.raft.leaders().len()
            ),
        );
    }
    // One broken entry is usually followed by every later one: name the
    // first few and count the rest.
    let more = match v.len() {
        n if n > 3 => format!("; and {} more", n - 3),
        _ => String::new(),
    };
    Verdict::new(false, format!("{}{more}", v[..v.len().min(3)].join("; ")))
}

/// `converges`: the store replicas agreed after healing and, with worker
/// nodes, the cluster converged too (nodes Ready, deployments at their
/// ready replicas, endpoints equal to ready pods), within `within` (60 s
/// for the store alone, 120 s with nodes).
pub fn converges(obs: &Observations<'_>, within: Option<Duration>) -> Verdict {
    let cluster = obs.cluster.map(|f| f.ready.clone());
    let verdict = match (obs.converged, cluster) {
        (Err(e), _) => Verdict::new(false, e.clone()),
        (Ok(_), Some(Some(Err(e)))) => Verdict::new(false, e),
        (Ok(_), Some(None)) => Verdict::new(false, "the cluster probe did not finish"),
        (Ok(_), Some(Some(Ok(d)))) => Verdict::new(
            true,
            format!(
                "store replicas agreed; every node Ready, every deployment at its desired ready replicas and every service's endpoints equal to its ready pods {:.1}s after healing",
                d.as_secs_f64()
            ),
        ),
        (Ok(d), None) => Verdict::new(
            true,
            format!("replicas agreed {:.1}s after healing", d.as_secs_f64()),
        ),
    };
    let default = if obs.cluster.is_some() { 120.0 } else { 60.0 };
    let within = within.map(|w| w.as_secs_f64()).unwrap_or(default);
    verdict.at(at_deadline(obs, within))
}
