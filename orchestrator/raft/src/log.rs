//! The in-memory Raft log: every entry since the last snapshot, plus the
//! indexes that say how far it is committed, persisted and applied.
//!
//! The shell never reads entries back from disk after start-up, so this is
//! the only copy the core replicates from. Entries live in a `Vec` with an
//! offset (the snapshot index) so lookups are O(1).

use crate::types::{Entry, Snapshot};

/// Log storage and its progress markers.
#[derive(Debug)]
pub(crate) struct RaftLog {
    /// Newest snapshot, kept to send to followers that fell behind `offset`.
    /// `Some` whenever `offset > 0`.
    pub snapshot: Option<Snapshot>,
    /// Index of the last entry the snapshot covers (0 with no snapshot).
    offset: u64,
    /// Term of the entry at `offset` (0 with no snapshot).
    offset_term: u64,
    /// Invariant: `entries[i].index == offset + 1 + i`, terms non-decreasing
    /// and `>= offset_term`.
    entries: Vec<Entry>,
    /// Highest index known committed. Invariant:
    /// `offset <= committed <= last_index()`.
    pub committed: u64,
    /// Highest index handed to the shell to apply (in a `Ready`).
    /// Invariant: `applied <= applying <= committed` and `applying <= stabled`
    /// unless a snapshot covers it.
    pub applying: u64,
    /// Highest index the shell acknowledged as applied (`advance`).
    pub applied: u64,
    /// Highest index the shell acknowledged as persisted: entries up to here
    /// are durable. Invariant: `stabled < unstable`.
    pub stabled: u64,
    /// First index not yet handed to the shell for persistence.
    /// Invariant: `unstable <= last_index() + 1`.
    pub unstable: u64,
    /// A snapshot received from the leader, not yet handed to the shell.
    pub pending_snapshot: Option<Snapshot>,
}

impl RaftLog {
    /// A log restored from the shell's disk: `snapshot` then `entries`.
    /// Everything restored is persisted; only the snapshot is known
    /// committed (the commit index is not durable).
    pub fn restore_from_disk(snapshot: Option<Snapshot>, entries: Vec<Entry>) -> RaftLog {
        let (offset, offset_term) = snapshot
            .as_ref()
            .map_or((0, 0), |s| (s.meta.index, s.meta.term));
        let mut log = RaftLog {
            snapshot,
            offset,
            offset_term,
            entries,
            committed: offset,
            applying: offset,
            applied: offset,
            stabled: 0,
            unstable: 0,
            pending_snapshot: None,
        };
        log.stabled = log.last_index();
        log.unstable = log.last_index() + 1;
        log.check();
        log
    }

    /// Index of the first entry held in memory.
    pub fn first_index(&self) -> u64 {
        self.offset + 1
    }

    /// Index of the snapshot the log starts after.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Index of the last entry (the snapshot index when empty).
    pub fn last_index(&self) -> u64 {
        self.offset + self.entries.len() as u64
    }

    /// Term of the last entry.
    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.offset_term, |e| e.term)
    }

    /// Term of the entry at `index`, if it is known: `None` below the
    /// snapshot (compacted) or past the end.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == self.offset {
            Some(self.offset_term)
        } else if index < self.offset || index > self.last_index() {
            None
        } else {
            Some(self.entries[(index - self.offset - 1) as usize].term)
        }
    }

    /// Whether the entry at `index` has `term`.
    pub fn match_term(&self, index: u64, term: u64) -> bool {
        self.term(index) == Some(term)
    }

    /// Whether a log ending at (`last_index`, `last_term`) is at least as
    /// up to date as this one (thesis §3.6.1).
    pub fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Entries in `[lo, hi]`. Both must be held in memory (or the range empty).
    pub fn slice(&self, lo: u64, hi: u64) -> &[Entry] {
        if lo > hi {
            return &[];
        }
        assert!(
            lo > self.offset && hi <= self.last_index(),
            "slice [{lo}, {hi}] out of the log"
        );
        &self.entries[(lo - self.offset - 1) as usize..(hi - self.offset) as usize]
    }

    /// Entries from `lo` on, at most `max_bytes` of data but at least one
    /// entry (so a huge entry still makes progress).
    pub fn entries_from(&self, lo: u64, max_bytes: usize) -> Vec<Entry> {
        let all = self.slice(lo, self.last_index());
        let mut bytes = 0usize;
        let mut n = 0;
        for e in all {
            bytes += e.data.len();
            if n > 0 && bytes > max_bytes {
                break;
            }
            n += 1;
        }
        all[..n].to_vec()
    }

    /// Appends an entry at the end (leader side).
    pub fn push(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index() + 1,
            "leader appends contiguously"
        );
        assert!(entry.term >= self.last_term(), "terms never decrease");
        self.entries.push(entry);
    }

    /// The follower side of AppendEntries: if the log matches (`prev_index`,
    /// `prev_term`), adds `entries` (truncating a conflicting suffix) and
    /// returns the last index now known to match the leader.
    /// Requires `prev_index >= committed`.
    pub fn maybe_append(
        &mut self,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
    ) -> Option<u64> {
        assert!(prev_index >= self.committed);
        if !self.match_term(prev_index, prev_term) {
            return None;
        }
        let last_new = prev_index + entries.len() as u64;
        // The first entry whose term differs from ours (or that we lack):
        // everything before it is already identical (Log Matching).
        let conflict = entries
            .iter()
            .position(|e| !self.match_term(e.index, e.term));
        if let Some(pos) = conflict {
            let from = entries[pos].index;
            // A committed entry can only conflict if Raft itself is broken.
            assert!(
                from > self.committed,
                "conflict at {from} <= committed {}",
                self.committed
            );
            self.truncate_from(from);
            self.entries.extend(entries.into_iter().skip(pos));
        }
        Some(last_new)
    }

    /// Drops entries from `index` on; the shell learns about it because the
    /// next `Ready.entries` starts at or before `index`.
    fn truncate_from(&mut self, index: u64) {
        assert!(index > self.offset && index <= self.last_index() + 1);
        self.entries.truncate((index - self.offset - 1) as usize);
        self.unstable = self.unstable.min(index);
        self.stabled = self.stabled.min(index - 1);
    }

    /// The largest index `<= index` whose term is `<= term`, but not below
    /// `committed`: where a rejected leader should probe next (the leader's
    /// entries up to `index` all have terms `<= term`, so ours with larger
    /// terms cannot match).
    pub fn find_conflict_by_term(&self, index: u64, term: u64) -> u64 {
        let mut i = index.min(self.last_index());
        while i > self.committed {
            match self.term(i) {
                Some(t) if t > term => i -= 1,
                _ => break,
            }
        }
        i
    }

    /// Raises the commit index (never lowers it).
    pub fn commit_to(&mut self, index: u64) {
        if index > self.committed {
            assert!(
                index <= self.last_index(),
                "commit {index} past last {}",
                self.last_index()
            );
            self.committed = index;
        }
    }

    /// Replaces the whole log with a snapshot from the leader.
    pub fn restore(&mut self, snapshot: Snapshot) {
        assert!(snapshot.meta.index > self.committed);
        self.offset = snapshot.meta.index;
        self.offset_term = snapshot.meta.term;
        self.entries.clear();
        self.committed = self.offset;
        self.applying = self.offset;
        // Nothing below the snapshot is handed out again; the snapshot itself
        // is persisted before anything that depends on it is sent.
        self.stabled = self.offset;
        self.unstable = self.offset + 1;
        self.snapshot = Some(snapshot.clone());
        self.pending_snapshot = Some(snapshot);
    }

    /// Drops entries covered by an applied snapshot the shell took.
    pub fn compact(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        if index <= self.offset {
            return; // older than what we have
        }
        assert!(
            index <= self.applied,
            "compact at {index} beyond applied {}",
            self.applied
        );
        assert_eq!(
            self.term(index),
            Some(snapshot.meta.term),
            "snapshot term mismatch at {index}"
        );
        self.entries.drain(..(index - self.offset) as usize);
        self.offset = index;
        self.offset_term = snapshot.meta.term;
        self.snapshot = Some(snapshot);
    }

    /// Entries not yet handed out for persistence; marks them handed out.
    pub fn take_unstable(&mut self) -> Vec<Entry> {
        let lo = self.unstable;
        let hi = self.last_index();
        self.unstable = hi + 1;
        self.slice(lo, hi).to_vec()
    }

    /// Whether some entries await persistence.
    pub fn has_unstable(&self) -> bool {
        self.unstable <= self.last_index()
    }

    /// The highest index that may be handed out to apply: committed and
    /// persisted locally.
    fn apply_limit(&self) -> u64 {
        self.committed.min(self.stabled)
    }

    /// Whether committed entries await applying.
    pub fn has_next_committed(&self) -> bool {
        self.apply_limit() > self.applying
    }

    /// Committed, persisted entries not yet handed out; marks them handed out.
    pub fn take_next_committed(&mut self) -> Vec<Entry> {
        let hi = self.apply_limit();
        if hi <= self.applying {
            return Vec::new();
        }
        let out = self.slice(self.applying + 1, hi).to_vec();
        self.applying = hi;
        out
    }

    /// The shell persisted entries up to `last` (of term `term`).
    pub fn stable_to(&mut self, last: u64, term: u64) {
        // If the log was truncated at or below `last` since the Ready was
        // taken, `unstable <= last` and the newer entries are still pending.
        if last < self.unstable && self.match_term(last, term) {
            self.stabled = self.stabled.max(last);
        }
    }

    /// Asserts the structural invariants.
    pub fn check(&self) {
        if self.offset > 0 {
            let s = self
                .snapshot
                .as_ref()
                .expect("a compacted log keeps its snapshot");
            assert!(s.meta.index == self.offset && s.meta.term == self.offset_term);
        }
        let mut prev_term = self.offset_term;
        for (i, e) in self.entries.iter().enumerate() {
            assert_eq!(e.index, self.offset + 1 + i as u64, "log not contiguous");
            assert!(e.term >= prev_term, "terms decrease at {}", e.index);
            prev_term = e.term;
        }
        assert!(
            self.applied <= self.applying,
            "applied {} > applying {}",
            self.applied,
            self.applying
        );
        assert!(
            self.applying <= self.committed,
            "applying {} > commit {}",
            self.applying,
            self.committed
        );
        assert!(
            self.offset <= self.committed,
            "commit {} below snapshot {}",
            self.committed,
            self.offset
        );
        assert!(
            self.committed <= self.last_index(),
            "commit {} > last {}",
            self.committed,
            self.last_index()
        );
        assert!(self.stabled < self.unstable && self.unstable <= self.last_index() + 1);
        assert!(self.applying <= self.stabled.max(self.offset));
    }
}
