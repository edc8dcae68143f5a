//! Plays a plan: starts and heals its faults as simulated time passes,
//! drawing role targets from the seed's fault stream, and records what each
//! one hit for the report.

use std::collections::BTreeMap;
use std::time::Duration;

use faultline_reports::FaultRecord;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{heal, start, Control, PlannedFault, Undo};

/// Starts and heals planned faults as time passes, and records them.
pub struct FaultDriver {
    plan: Vec<PlannedFault>,
    /// (time, is_start, plan index), sorted; heals before starts at a tie.
    events: Vec<(Duration, bool, usize)>,
    next: usize,
    rng: ChaCha8Rng,
    /// Plan index -> (record index, undo) of faults in force.
    active: BTreeMap<usize, (usize, Vec<Undo>)>,
    records: Vec<FaultRecord>,
}

impl FaultDriver {
    /// A driver for `plan`; targets are drawn from the seed's fault stream.
    pub fn new(plan: Vec<PlannedFault>, seed: u64) -> FaultDriver {
        let mut events = Vec::new();
        for (i, f) in plan.iter().enumerate() {
            events.push((f.start, true, i));
            if let Some(end) = f.end {
                events.push((end, false, i));
            }
        }
        events.sort_by_key(|&(t, is_start, i)| (t, is_start, i));
        FaultDriver {
            plan,
            events,
            next: 0,
            rng: ChaCha8Rng::seed_from_u64(faultline_env::host_seed(seed, "#faults")),
            active: Default::default(),
            records: Vec::new(),
        }
    }

    /// When the next start or heal is due.
    pub fn next_time(&self) -> Option<Duration> {
        self.events.get(self.next).map(|e| e.0)
    }

    /// Applies every start and heal due at or before `now`.
    pub fn advance(&mut self, now: Duration, ctl: &mut dyn Control) {
        while let Some(&(t, is_start, i)) = self.events.get(self.next) {
            if t > now {
                return;
            }
            self.next += 1;
            let f = &self.plan[i];
            if is_start {
                let (what, undo) = start(ctl, f, &mut self.rng);
                ctl.note(&format!("fault start {} {what}", f.kind().name()));
                self.active.insert(i, (self.records.len(), undo));
                self.records.push(FaultRecord {
                    kind: f.kind().name().to_string(),
                    target: what,
                    start_s: t.as_secs_f64(),
                    end_s: None,
                    source: f.source.to_string(),
                    detail: f.spec.target().unwrap_or_default().to_string(),
                });
            } else if let Some((idx, undo)) = self.active.remove(&i) {
                heal(ctl, &undo);
                self.records[idx].end_s = Some(t.as_secs_f64());
                ctl.note(&format!("fault heal {}", f.kind().name()));
            }
        }
    }

    /// Heals everything still in force (end of the faulty phase).
    pub fn heal_all(&mut self, now: Duration, ctl: &mut dyn Control) {
        for (_, (idx, undo)) in std::mem::take(&mut self.active) {
            heal(ctl, &undo);
            self.records[idx].end_s = Some(now.as_secs_f64());
        }
        self.next = self.events.len();
    }

    /// What was injected so far.
    pub fn records(&self) -> &[FaultRecord] {
        &self.records
    }
}
