//! What a leader knows about one follower's log, and how it paces sends.

use std::collections::VecDeque;

/// How the leader is currently talking to a follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgressState {
    /// The follower's log position is unknown: one `Append` at a time, and
    /// back off on rejection.
    Probe,
    /// The follower is known to match: stream `Append`s optimistically, up
    /// to `max_inflight` unacknowledged ones.
    Replicate,
    /// An `InstallSnapshot` at `index` is in flight; `ticks` counts how long,
    /// so a lost snapshot is retried.
    Snapshot { index: u64, ticks: u32 },
}

/// The leader's view of one follower.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    /// Highest index known to match the leader's log.
    /// Invariant: `matched < next`.
    pub matched: u64,
    /// Next index to send.
    pub next: u64,
    pub state: ProgressState,
    /// In `Probe`: a probe is in flight, wait for an answer (or a heartbeat).
    pub paused: bool,
    /// In `Replicate`: last index of each un-acknowledged `Append`, oldest
    /// first. Invariant: `len() <= max_inflight`.
    pub inflight: VecDeque<u64>,
    /// Heard from since the last check-quorum round.
    pub recent_active: bool,
}

impl Progress {
    /// A follower of a fresh leader whose log ends at `last_index`.
    pub fn new(last_index: u64) -> Progress {
        Progress {
            matched: 0,
            next: last_index + 1,
            state: ProgressState::Probe,
            paused: false,
            inflight: VecDeque::new(),
            recent_active: true,
        }
    }

    /// Back to probing right after `matched`.
    pub fn become_probe(&mut self) {
        if let ProgressState::Snapshot { index, .. } = self.state {
            self.next = (self.matched + 1).max(index + 1);
        } else {
            self.next = self.matched + 1;
        }
        self.state = ProgressState::Probe;
        self.paused = false;
        self.inflight.clear();
    }

    /// Start streaming after `matched`.
    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next = self.matched + 1;
        self.paused = false;
        self.inflight.clear();
    }

    /// A snapshot at `index` was sent.
    pub fn become_snapshot(&mut self, index: u64) {
        self.state = ProgressState::Snapshot { index, ticks: 0 };
        self.paused = false;
        self.inflight.clear();
    }

    /// The follower matches through `index`; returns whether that is news.
    pub fn maybe_update(&mut self, index: u64) -> bool {
        let updated = index > self.matched;
        if updated {
            self.matched = index;
            self.paused = false;
        }
        self.next = self.next.max(index + 1);
        // Acknowledgements are cumulative: everything up to `index` arrived.
        while self.inflight.front().is_some_and(|&last| last <= index) {
            self.inflight.pop_front();
        }
        updated
    }

    /// The follower rejected an `Append` after `rejected` and suggested
    /// probing after `hint`; returns false if the rejection is stale.
    pub fn maybe_decr_to(&mut self, rejected: u64, hint: u64) -> bool {
        match self.state {
            ProgressState::Replicate => {
                if rejected <= self.matched {
                    return false;
                }
                self.become_probe();
                self.next = (hint + 1).min(rejected).max(self.matched + 1);
                true
            }
            ProgressState::Probe => {
                if self.next == 0 || self.next - 1 != rejected {
                    return false; // not an answer to the current probe
                }
                self.next = (hint + 1).min(rejected).max(self.matched + 1);
                self.paused = false;
                true
            }
            ProgressState::Snapshot { .. } => false,
        }
    }

    /// Whether the leader must hold back further `Append`s.
    pub fn is_paused(&self, max_inflight: usize) -> bool {
        match self.state {
            ProgressState::Probe => self.paused,
            ProgressState::Replicate => self.inflight.len() >= max_inflight,
            ProgressState::Snapshot { .. } => true,
        }
    }

    /// An `Append` whose last entry is `last` was sent (`last` is `next - 1`
    /// for an empty one).
    pub fn on_sent(&mut self, last: u64, had_entries: bool) {
        match self.state {
            ProgressState::Replicate => {
                if had_entries {
                    self.next = last + 1;
                    self.inflight.push_back(last);
                }
            }
            ProgressState::Probe => self.paused = true,
            ProgressState::Snapshot { .. } => {
                unreachable!("no appends while a snapshot is in flight")
            }
        }
    }
}
