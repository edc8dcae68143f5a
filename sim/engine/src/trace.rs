//! The event trace: every simulated event is folded into a running xxh3 hash
//! whose final value proves determinism (same seed, same hash), and can be
//! kept as text for debugging a seed.
//!
//! The trace also hosts the global Raft safety monitor, fed by
//! [`Observation`]s: at most one leader per term, and every replica applies
//! the same entry at each index (committed entries never change).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use faultline_env::{Observation, Observer};
use tokio::time::Instant;
use xxhash_rust::xxh3::Xxh3;

/// See [`Trace::on_progress`].
type ProgressFn = Box<dyn Fn(u64)>;

/// The trace of one run.
pub struct Trace {
    clock: Box<dyn Fn() -> u64>,
    hasher: RefCell<Xxh3>,
    /// The network events alone (connects, segments, drops), folded
    /// cheaply: what the hosts did to each other, without the text lines
    /// that name faults and lifecycle events.
    net_mix: Cell<u64>,
    events: Cell<u64>,
    line: RefCell<String>,
    /// Text lines, kept only when asked for (`--trace`).
    lines: Option<RefCell<Vec<String>>>,
    monitor: RefCell<SafetyMonitor>,
    /// Told the simulated time every few thousand events (a progress bar);
    /// it only reads, so it cannot change the run.
    progress: RefCell<Option<ProgressFn>>,
}

impl Trace {
    /// A trace timed by tokio's clock, from `start`.
    pub fn new(start: Instant, keep_lines: bool) -> Trace {
        Trace::with_clock(
            Box::new(move || Instant::now().duration_since(start).as_nanos() as u64),
            keep_lines,
        )
    }

    /// A trace timed by `clock` (simulated nanoseconds since the start), for
    /// backends whose hosts do not share one tokio clock (turmoil).
    pub fn with_clock(clock: Box<dyn Fn() -> u64>, keep_lines: bool) -> Trace {
        Trace {
            clock,
            hasher: RefCell::new(Xxh3::new()),
            net_mix: Cell::new(0),
            events: Cell::new(0),
            line: RefCell::new(String::new()),
            lines: keep_lines.then(|| RefCell::new(Vec::new())),
            monitor: RefCell::new(SafetyMonitor::default()),
            progress: RefCell::new(None),
        }
    }

    /// Calls `f` with the simulated nanoseconds every 4,096 events.
    pub fn on_progress(&self, f: Box<dyn Fn(u64)>) {
        *self.progress.borrow_mut() = Some(f);
    }

    fn count(&self) {
        let n = self.events.get() + 1;
        self.events.set(n);
        if n.is_multiple_of(4096) {
            if let Some(f) = &*self.progress.borrow() {
                f(self.elapsed_ns());
            }
        }
    }

    fn elapsed_ns(&self) -> u64 {
        (self.clock)()
    }

    /// Folds a network event into the hash: `kind` 1 = connect, 2 = segment
    /// sent, 3 = segment dropped by a partition.
    pub(crate) fn net(&self, kind: u8, from: usize, to: usize, value: u64) {
        let mut rec = [0u8; 33];
        rec[0] = kind;
        rec[1..9].copy_from_slice(&self.elapsed_ns().to_le_bytes());
        rec[9..17].copy_from_slice(&(from as u64).to_le_bytes());
        rec[17..25].copy_from_slice(&(to as u64).to_le_bytes());
        rec[25..33].copy_from_slice(&value.to_le_bytes());
        self.hasher.borrow_mut().update(&rec);
        self.count();
        let mut m = self.net_mix.get();
        for w in rec[1..].chunks(8) {
            let w = u64::from_le_bytes(w.try_into().expect("8-byte words"));
            m = (m ^ w ^ u64::from(kind))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(23);
        }
        self.net_mix.set(m);
    }

    /// A hash of the network events alone: two runs whose hosts exchanged
    /// exactly the same traffic at the same times have the same one, even
    /// if their text lines differ.
    pub fn net_hash(&self) -> u64 {
        self.net_mix.get()
    }

    /// Appends a text event (faults, host lifecycle, component events).
    pub fn line(&self, host: &str, args: fmt::Arguments<'_>) {
        let mut line = self.line.borrow_mut();
        line.clear();
        let t = self.elapsed_ns();
        let _ = write!(
            line,
            "{}.{:09} {host} {args}",
            t / 1_000_000_000,
            t % 1_000_000_000
        );
        self.hasher.borrow_mut().update(line.as_bytes());
        self.hasher.borrow_mut().update(b"\n");
        self.count();
        if let Some(lines) = &self.lines {
            lines.borrow_mut().push(line.clone());
        }
    }

    /// The hash of everything so far.
    pub fn hash(&self) -> u64 {
        self.hasher.borrow().digest()
    }

    /// The number of events so far.
    pub fn events(&self) -> u64 {
        self.events.get()
    }

    /// The text lines kept so far (empty unless the world keeps them).
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .as_ref()
            .map(|l| l.borrow().clone())
            .unwrap_or_default()
    }

    /// Safety violations seen by the monitor, in order.
    pub fn violations(&self) -> Vec<String> {
        self.monitor.borrow().violations.clone()
    }

    /// Leaders by (group, term), for reports.
    /// The host that last acquired a leader-election lease.
    pub fn lease_holder(&self, lease: &str) -> Option<String> {
        self.monitor
            .borrow()
            .leases
            .get(lease)
            .map(|(h, _, _)| h.clone())
    }

    pub fn leaders(&self) -> Vec<(u64, u64, String, u64)> {
        self.monitor
            .borrow()
            .leaders
            .iter()
            .map(|(&(group, term), (host, at))| (group, term, host.clone(), *at))
            .collect()
    }
}

impl Observer for Trace {
    fn trace(&self, host: &str, line: fmt::Arguments<'_>) {
        self.line(host, line);
    }

    fn observe(&self, host: &str, observation: Observation) {
        let now = self.elapsed_ns();
        // Every apply on every replica is part of the trace: two runs that
        // commit differently cannot hash the same.
        if let Observation::RaftApplied {
            node,
            index,
            term,
            digest,
            ..
        } = observation
        {
            let mut rec = [0u8; 40];
            rec[0..8].copy_from_slice(&now.to_le_bytes());
            rec[8..16].copy_from_slice(&node.to_le_bytes());
            rec[16..24].copy_from_slice(&index.to_le_bytes());
            rec[24..32].copy_from_slice(&term.to_le_bytes());
            rec[32..40].copy_from_slice(&digest.to_le_bytes());
            self.hasher.borrow_mut().update(&rec);
            self.events.set(self.events.get() + 1);
        }
        let violation = self.monitor.borrow_mut().observe(host, now, &observation);
        if let Some(v) = violation {
            self.line(host, format_args!("SAFETY VIOLATION: {v}"));
        }
    }
}

/// Checks Raft's global safety properties as replicas report them.
#[derive(Default)]
struct SafetyMonitor {
    /// (group, term) -> (leader host, when it won, ns).
    leaders: BTreeMap<(u64, u64), (String, u64)>,
    /// (group, index) -> (term, digest, first host that applied it).
    applied: BTreeMap<(u64, u64), (u64, u64, String)>,
    /// Leader-election lease -> (holder host, transitions, since ns).
    leases: BTreeMap<String, (String, u64, u64)>,
    violations: Vec<String>,
}

impl SafetyMonitor {
    fn observe(&mut self, host: &str, now_ns: u64, obs: &Observation) -> Option<String> {
        let violation = match *obs {
            Observation::LeaseAcquired {
                ref lease,
                transitions,
            } => {
                self.leases
                    .insert(lease.clone(), (host.to_string(), transitions, now_ns));
                None
            }
            Observation::RaftLeader { group, node, term } => {
                match self.leaders.get(&(group, term)) {
                    Some((other, _)) if other != host => Some(format!(
                        "two leaders in term {term} of raft group {group}: {other} and {host} (node {node})"
                    )),
                    Some(_) => None,
                    None => {
                        self.leaders
                            .insert((group, term), (host.to_string(), now_ns));
                        None
                    }
                }
            }
            Observation::RaftApplied {
                group,
                node: _,
                index,
                term,
                digest,
            } => match self.applied.get(&(group, index)) {
                Some((t, d, other)) if (*t, *d) != (term, digest) => Some(format!(
                    "committed entry {index} of raft group {group} differs: {other} applied term {t} digest {d:016x}, {host} applied term {term} digest {digest:016x}"
                )),
                Some(_) => None,
                None => {
                    self.applied
                        .insert((group, index), (term, digest, host.to_string()));
                    None
                }
            },
        };
        if let Some(v) = &violation {
            self.violations.push(v.clone());
        }
        violation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_catches_two_leaders_and_divergent_entries() {
        let mut m = SafetyMonitor::default();
        let lead = |node, term| Observation::RaftLeader {
            group: 1,
            node,
            term,
        };
        assert!(m.observe("m1", 0, &lead(1, 3)).is_none());
        assert!(m.observe("m1", 1, &lead(1, 3)).is_none());
        assert!(m.observe("m2", 2, &lead(2, 4)).is_none());
        assert!(m.observe("m2", 3, &lead(2, 3)).is_some());
        let applied = |term, digest| Observation::RaftApplied {
            group: 1,
            node: 1,
            index: 7,
            term,
            digest,
        };
        assert!(m.observe("m1", 4, &applied(3, 42)).is_none());
        assert!(m.observe("m2", 5, &applied(3, 42)).is_none());
        assert!(m.observe("m3", 6, &applied(3, 43)).is_some());
        assert_eq!(m.violations.len(), 2);
    }
}
