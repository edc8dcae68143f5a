//! Faults of a host's process: a freeze (`pause`) and a wall clock that is
//! off (`clock-skew`) or steps (`clock-jump`). Targets: a master (`leader`,
//! `follower`, `random`, a name), a node (by name, or `random-node`), or
//! the master holding `controller-manager`'s or `scheduler`'s lease.

use faultline_scenario::SignedDur;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use crate::targets::{election_lease, pick_master};
use crate::{Control, Undo};

fn host(ctl: &dyn Control, target: Option<&str>, rng: &mut ChaCha8Rng) -> Option<String> {
    match target {
        Some("random-node") => {
            let up: Vec<String> = ctl.nodes().into_iter().filter(|n| ctl.is_up(n)).collect();
            up.choose(rng).cloned()
        }
        Some(t) if ctl.nodes().iter().any(|n| n == t) => Some(t.to_string()),
        Some(t @ ("controller-manager" | "scheduler")) => ctl.lease_holder(election_lease(t)),
        t => pick_master(ctl, t, rng),
    }
}

/// `pause`: the host freezes until healed.
pub fn pause(
    ctl: &mut dyn Control,
    target: Option<&str>,
    rng: &mut ChaCha8Rng,
    undo: &mut Vec<Undo>,
) -> String {
    match host(ctl, target, rng) {
        Some(h) if ctl.is_up(&h) => {
            if !ctl.pause(&h) {
                return "nobody (pause is not supported by this backend)".into();
            }
            undo.push(Undo::Resume(h.clone()));
            h
        }
        _ => "nobody (no host up)".into(),
    }
}

/// `clock-skew` and `clock-jump` (named `kind`): the host's wall clock is
/// off by `offset` until healed.
pub fn clock(
    ctl: &mut dyn Control,
    kind: &str,
    target: Option<&str>,
    offset: SignedDur,
    rng: &mut ChaCha8Rng,
    undo: &mut Vec<Undo>,
) -> String {
    let offset_ms = offset.millis();
    match host(ctl, target, rng) {
        Some(h) if ctl.is_up(&h) => {
            if !ctl.set_clock_offset(&h, offset_ms) {
                return format!("nobody ({kind} is not supported by this backend)");
            }
            undo.push(Undo::ClockReset(h.clone()));
            format!("{h} {offset_ms:+}ms")
        }
        _ => "nobody (no host up)".into(),
    }
}
