//! The event trace: every simulated event is folded into a running xxh3 hash
//! whose final value proves determinism (same seed, same hash), and can be
//! kept as text for debugging a seed.
//!
//! Structured [`Observation`]s (Raft leaders and applied entries, lease
//! holders) are hashed too, and handed to a monitor the run installs
//! ([`Trace::on_observation`]: the checker's Raft monitor); a violation it
//! reports becomes a trace line.

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};

use faultline_env::{Observation, Observer};
use tokio::time::Instant;
use xxhash_rust::xxh3::Xxh3;

/// See [`Trace::on_progress`].
type ProgressFn = Box<dyn Fn(u64)>;

/// See [`Trace::on_observation`]: told the host, the simulated ns and the
/// observation; answers a violation to record, if any.
pub type MonitorFn = Box<dyn Fn(&str, u64, &Observation) -> Option<String>>;

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
    monitor: RefCell<Option<MonitorFn>>,
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
            monitor: RefCell::new(None),
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

    /// Hands every observation to `f` (a safety monitor); a violation it
    /// answers is appended as a `SAFETY VIOLATION` line.
    pub fn on_observation(&self, f: MonitorFn) {
        *self.monitor.borrow_mut() = Some(f);
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
        let violation = self
            .monitor
            .borrow()
            .as_ref()
            .and_then(|f| f(host, now, &observation));
        if let Some(v) = violation {
            self.line(host, format_args!("SAFETY VIOLATION: {v}"));
        }
    }
}
