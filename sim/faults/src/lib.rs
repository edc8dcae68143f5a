//! Faults: the plan a seed draws, how each kind starts and heals, and the
//! driver that plays a plan as simulated time passes.
//!
//! - [`plan`]: the file's faults plus the nemesis's, drawn from the seed
//!   before the run starts (so the schedule can be printed and replayed),
//!   kept within the nemesis's bounds;
//! - [`Control`]: what a backend offers the faults (crash, partition,
//!   degrade a link, freeze, skew a clock, touch a disk);
//! - a module per family of kinds, each with the `start` of its kinds:
//!   [`crash`] (masters, leaders, datacenters), [`network`] (partitions,
//!   loss, latency), [`disk`], [`node`] (worker nodes and their kubelets)
//!   and [`process`] (pauses and clocks);
//! - [`driver`]: starts and heals a plan's faults on time and records them;
//! - [`schedule`]: a plan written back as `[[fault]]` tables (reports, the
//!   shrinker).
//!
//! A new fault kind: its line and settings in `faultline-scenario`'s
//! `fault.rs`, its `start` in the family module it belongs to (or a new
//! one), and an arm in [`start`], in `plan`'s cost and nemesis target, and
//! in [`schedule`]: each a `match` the compiler points to.

pub mod control;
pub mod crash;
pub mod disk;
pub mod driver;
pub mod network;
pub mod node;
pub mod plan;
pub mod process;
pub mod schedule;
mod targets;

pub use control::Control;
pub use driver::FaultDriver;
pub use plan::{plan, PlannedFault};

use faultline_scenario::FaultSpec;
use rand_chacha::ChaCha8Rng;

/// How to undo a started fault.
#[derive(Debug, Clone)]
pub enum Undo {
    Restart(String),
    Unblock(String, String),
    Restore(String, String),
    ClearDisk(String),
    Resume(String),
    ClockReset(String),
}

/// Starts a fault; returns a description of what it hit and how to undo
/// it. Targets named by role (`leader`, `random`, ...) are resolved now,
/// from `rng`.
pub fn start(ctl: &mut dyn Control, f: &PlannedFault, rng: &mut ChaCha8Rng) -> (String, Vec<Undo>) {
    let mut undo = Vec::new();
    let target = f.spec.target();
    let what = match &f.spec {
        FaultSpec::MasterCrash(_) => crash::masters(ctl, target, false, rng, &mut undo),
        FaultSpec::PowerLoss(_) => crash::masters(ctl, target, true, rng, &mut undo),
        FaultSpec::LeaderKill(_) => crash::masters(ctl, Some("leader"), false, rng, &mut undo),
        FaultSpec::ControllerLeaderKill(_) => crash::controller_leader(ctl, target, &mut undo),
        FaultSpec::DatacenterOutage(_) => crash::datacenter(ctl, target, &mut undo),
        FaultSpec::DatacenterPartition(_) => network::datacenter(ctl, target, &mut undo),
        FaultSpec::Partition(p) => network::partition(ctl, p, false, rng, &mut undo),
        FaultSpec::PartitionOneWay(p) => network::partition(ctl, p, true, rng, &mut undo),
        FaultSpec::Loss(l) => network::degrade(ctl, target, l.probability, None, rng, &mut undo),
        FaultSpec::Latency(l) => network::degrade(ctl, target, 0.0, Some(l), rng, &mut undo),
        FaultSpec::DiskCorruption(d) => disk::corrupt(ctl, target, d.bits, rng, &mut undo),
        FaultSpec::DiskLoss(_) => disk::lose(ctl, target, rng, &mut undo),
        FaultSpec::DiskFull(_) => disk::full(ctl, target, rng, &mut undo),
        FaultSpec::DiskEio(_) => disk::eio(ctl, target, rng, &mut undo),
        FaultSpec::DiskSlow(d) => disk::slow(ctl, target, d.delay.0, rng, &mut undo),
        FaultSpec::NodeCrash(_) => node::crash(ctl, target, rng, &mut undo),
        FaultSpec::NodeIsolate(n) => node::isolate(ctl, target, n.from, rng, &mut undo),
        FaultSpec::KubeletRestart(_) => node::restart_kubelet(ctl, target, rng),
        FaultSpec::Pause(_) => process::pause(ctl, target, rng, &mut undo),
        FaultSpec::ClockSkew(c) => {
            process::clock(ctl, "clock-skew", target, c.offset, rng, &mut undo)
        }
        FaultSpec::ClockJump(c) => {
            process::clock(ctl, "clock-jump", target, c.offset, rng, &mut undo)
        }
    };
    (what, undo)
}

/// Heals a started fault.
pub fn heal(ctl: &mut dyn Control, undo: &[Undo]) {
    for u in undo {
        match u {
            Undo::Restart(h) => ctl.restart(h),
            Undo::Unblock(a, b) => ctl.unblock(a, b),
            Undo::Restore(a, b) => ctl.restore(a, b),
            Undo::ClearDisk(h) => ctl.disk(h).set_faults(Default::default()),
            Undo::Resume(h) => ctl.resume(h),
            Undo::ClockReset(h) => {
                ctl.set_clock_offset(h, 0);
            }
        }
    }
}
