//! Disk faults on a master: flipped bits (found at the restart they
//! force), a lost disk, and a disk that is full, failing or slow while the
//! fault lasts.

use std::time::Duration;

use faultline_engine::DiskFaults;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::targets::pick_master;
use crate::{Control, Undo};

/// `disk-corruption`: flips `bits` bits (default 1) in the master's log
/// or snapshots, then crashes it so it finds them when it starts.
pub fn corrupt(
    ctl: &mut dyn Control,
    target: Option<&str>,
    bits: Option<u32>,
    rng: &mut ChaCha8Rng,
    undo: &mut Vec<Undo>,
) -> String {
    let Some(h) = pick_master(ctl, target, rng) else {
        return "nobody".into();
    };
    let disk = ctl.disk(&h);
    let mut hits = Vec::new();
    for _ in 0..bits.unwrap_or(1).max(1) {
        // The log and snapshots; the double-written hard state is covered
        // by the storage tests.
        let prefix = if rng.random_bool(0.8) {
            "wal/"
        } else {
            "snap/"
        };
        if let Some(at) = disk.corrupt(prefix).or_else(|| disk.corrupt("wal/")) {
            hits.push(at);
        }
    }
    // Corruption is found at start-up: crash so it restarts.
    if ctl.is_up(&h) {
        ctl.crash(&h, false);
    }
    undo.push(Undo::Restart(h.clone()));
    format!("{h} [{}]", hits.join(", "))
}

/// `disk-loss`: the master loses power and its disk.
pub fn lose(
    ctl: &mut dyn Control,
    target: Option<&str>,
    rng: &mut ChaCha8Rng,
    undo: &mut Vec<Undo>,
) -> String {
    let Some(h) = pick_master(ctl, target, rng) else {
        return "nobody".into();
    };
    if ctl.is_up(&h) {
        ctl.crash(&h, true);
    }
    ctl.lose_disk(&h);
    undo.push(Undo::Restart(h.clone()));
    format!("{h} (disk lost)")
}

/// `disk-full`: no room beyond what the disk holds now (plus a page).
pub fn full(
    ctl: &mut dyn Control,
    target: Option<&str>,
    rng: &mut ChaCha8Rng,
    undo: &mut Vec<Undo>,
) -> String {
    set(ctl, target, rng, undo, |used| DiskFaults {
        capacity: Some(used + 4096),
        ..DiskFaults::default()
    })
}

/// `disk-eio`: every operation fails.
pub fn eio(
    ctl: &mut dyn Control,
    target: Option<&str>,
    rng: &mut ChaCha8Rng,
    undo: &mut Vec<Undo>,
) -> String {
    set(ctl, target, rng, undo, |_| DiskFaults {
        eio: true,
        ..DiskFaults::default()
    })
}

/// `disk-slow`: every operation takes `delay` longer.
pub fn slow(
    ctl: &mut dyn Control,
    target: Option<&str>,
    delay: Duration,
    rng: &mut ChaCha8Rng,
    undo: &mut Vec<Undo>,
) -> String {
    set(ctl, target, rng, undo, |_| DiskFaults {
        slow: Some(delay),
        ..DiskFaults::default()
    })
}

/// Sets a master's disk faults (from what its disk holds) until healed.
fn set(
    ctl: &mut dyn Control,
    target: Option<&str>,
    rng: &mut ChaCha8Rng,
    undo: &mut Vec<Undo>,
    faults: impl FnOnce(u64) -> DiskFaults,
) -> String {
    let Some(h) = pick_master(ctl, target, rng) else {
        return "nobody".into();
    };
    let disk = ctl.disk(&h);
    disk.set_faults(faults(disk.used()));
    undo.push(Undo::ClearDisk(h.clone()));
    h
}
