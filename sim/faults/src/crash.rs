//! Crashes: masters (one, or several at once), the holder of a
//! control-plane lease, and every machine of a datacenter. Each crashed
//! host restarts when the fault heals.

use std::collections::BTreeSet;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::targets::{election_lease, pick_master};
use crate::{Control, Undo};

/// `master-crash`, `power-loss` and `leader-kill`: one master (`leader`,
/// `follower`, `random`, a name), or several at once (`all`, `majority`,
/// `one-per-datacenter`), in which case only what each one fsynced
/// survives.
pub fn masters(
    ctl: &mut dyn Control,
    target: Option<&str>,
    power_loss: bool,
    rng: &mut ChaCha8Rng,
    undo: &mut Vec<Undo>,
) -> String {
    if matches!(target, Some("all" | "majority" | "one-per-datacenter")) {
        let up: Vec<String> = ctl.masters().into_iter().filter(|m| ctl.is_up(m)).collect();
        let hit: Vec<String> = match target {
            Some("majority") => {
                let mut all = ctl.masters();
                for i in (1..all.len()).rev() {
                    all.swap(i, rng.random_range(0..=i));
                }
                all.truncate(all.len() / 2 + 1);
                all.sort();
                all.retain(|m| ctl.is_up(m));
                all
            }
            Some("one-per-datacenter") => {
                let mut seen = BTreeSet::new();
                up.iter()
                    .filter(|m| seen.insert(ctl.datacenter(m)))
                    .cloned()
                    .collect()
            }
            _ => up,
        };
        for h in &hit {
            ctl.crash(h, power_loss);
            undo.push(Undo::Restart(h.clone()));
        }
        return hit.join(",");
    }
    match pick_master(ctl, target, rng) {
        Some(h) if ctl.is_up(&h) => {
            ctl.crash(&h, power_loss);
            undo.push(Undo::Restart(h.clone()));
            h
        }
        _ => "nobody (no master up)".into(),
    }
}

/// `controller-leader-kill`: the master holding the controller manager's
/// (or, with `scheduler`, the scheduler's) lease.
pub fn controller_leader(
    ctl: &mut dyn Control,
    target: Option<&str>,
    undo: &mut Vec<Undo>,
) -> String {
    let which = election_lease(target.unwrap_or("controller-manager"));
    match ctl.lease_holder(which) {
        Some(h) if ctl.is_up(&h) => {
            ctl.crash(&h, false);
            undo.push(Undo::Restart(h.clone()));
            format!("{h} (holder of {which})")
        }
        _ => format!("nobody (no live holder of {which})"),
    }
}

/// `datacenter-outage`: every master and node of the datacenter loses
/// power.
pub fn datacenter(ctl: &mut dyn Control, target: Option<&str>, undo: &mut Vec<Undo>) -> String {
    let dc = target.unwrap_or_default();
    let hit: Vec<String> = ctl
        .masters()
        .into_iter()
        .chain(ctl.nodes())
        .filter(|h| ctl.datacenter(h) == dc && ctl.is_up(h))
        .collect();
    for h in &hit {
        ctl.crash(h, true);
        undo.push(Undo::Restart(h.clone()));
    }
    format!("{dc} [{}]", hit.join(","))
}
