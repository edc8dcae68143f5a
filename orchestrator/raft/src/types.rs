//! The data Raft exchanges with its shell: log entries, persistent state,
//! snapshots, messages and the `Ready` batch.

use std::rc::Rc;

use serde::{Deserialize, Serialize};

/// A replica's identity within its group. Never 0.
pub type NodeId = u64;

/// One log entry. An entry with empty `data` is the no-op a new leader
/// appends to commit entries of earlier terms (Raft thesis §3.6.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    pub data: Vec<u8>,
}

/// State that must be durable before any message that depends on it is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub vote: Option<NodeId>,
    /// The replica is in recovery mode (see `Restored::recovering`). Kept
    /// here so that it survives restarts: a replica that crashes again
    /// before a leader has repaired its log must come back still
    /// recovering, though the shell finds nothing corrupt the second time.
    #[serde(default)]
    pub recovering: bool,
}

/// Describes the log prefix a snapshot replaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Index of the last entry the snapshot covers.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
}

/// A state-machine snapshot. `data` is opaque to Raft and shared (snapshots
/// can be large; they are sent to several followers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Rc<[u8]>,
}

/// A message between replicas. `term` is the sender's current term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: u64,
    pub body: MessageBody,
}

/// The kinds of Raft messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// Leader -> follower: entries after (`prev_index`, `prev_term`), and the
    /// leader's commit index. An empty `entries` is a heartbeat. `read_ctx`
    /// carries the highest pending read-index context so that acknowledgements
    /// confirm leadership for reads.
    Append {
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
        read_ctx: u64,
    },
    /// Follower -> leader. On success `index` is the last index known to
    /// match the leader's log; on rejection `index` is the rejected
    /// `prev_index`, and (`hint_index`, `hint_term`) is the follower's last
    /// entry that may still match: the leader retries after the last entry
    /// of its own with index `<= hint_index` and term `<= hint_term` (fast
    /// backtracking, skipping a whole conflicting term per round trip).
    /// `read_ctx` echoes the `Append`'s.
    AppendResponse {
        success: bool,
        index: u64,
        hint_index: u64,
        hint_term: u64,
        read_ctx: u64,
    },
    /// Candidate -> all. `pre` marks a pre-vote (thesis §9.6), which does
    /// not change anyone's term.
    Vote {
        pre: bool,
        last_index: u64,
        last_term: u64,
    },
    /// Reply to `Vote`.
    VoteResponse { pre: bool, granted: bool },
    /// Leader -> lagging follower whose next entry was compacted away.
    InstallSnapshot { snapshot: Snapshot },
    /// Reply to `InstallSnapshot`: `index` is the highest index the
    /// follower now knows to match the leader (its commit index, at least
    /// the snapshot's), not its last index, whose suffix may still conflict.
    SnapshotResponse { index: u64 },
}

/// A replica's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// A linearizable read that may now be served: once the state machine has
/// applied `index`, reads registered with `ctx` see every write committed
/// before the read began (thesis §6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadState {
    pub ctx: u64,
    pub index: u64,
}

/// What the shell must do, in this order:
/// 1. if `snapshot` is set, persist it, drop every stored log entry (the
///    snapshot replaces the whole log; `entries`, if any, follow it) and
///    restore the state machine from it;
/// 2. persist `entries` (truncating any stored suffix from `entries[0].index`)
///    and `hard_state` if set, durably (fsync). The two may be written in
///    either order, or atomically, but both before step 3;
/// 3. only then send `messages`;
/// 4. apply `committed_entries` in order (they are always already persisted
///    locally), and serve `read_states` once their index is applied;
/// 5. call `RawNode::advance` with this `Ready`.
///
/// `ready`/`advance` must alternate (one `Ready` outstanding at a time);
/// `tick`, `step` and `propose` may be called in between.
#[derive(Debug, Default)]
pub struct Ready {
    pub hard_state: Option<HardState>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub messages: Vec<Message>,
    pub committed_entries: Vec<Entry>,
    pub read_states: Vec<ReadState>,
}

impl Ready {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.snapshot.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.committed_entries.is_empty()
            && self.read_states.is_empty()
    }
}

/// A snapshot of a replica's state for logs, checkers and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub term: u64,
    pub role: Role,
    pub leader: Option<NodeId>,
    pub commit: u64,
    pub applied: u64,
    pub last_index: u64,
    pub first_index: u64,
    /// True while the replica is rebuilding a log it found corrupt and must
    /// neither vote nor campaign.
    pub recovering: bool,
}

/// What the shell found on disk at start-up.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    pub hard_state: HardState,
    /// The newest intact snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
    /// The shell found a corrupt record (or a corrupt snapshot) and
    /// discarded everything from it on: the replica may have lost entries it
    /// acknowledged, so it must not vote or campaign until a leader has
    /// brought it up to an index committed in that leader's term. The node
    /// also stays in recovery if `hard_state.recovering` is set (an earlier
    /// recovery not finished before a crash). On a fresh corruption
    /// (`recovering` here) the node also moves to the next term, since the
    /// leader of its current term may still count acknowledgements of the
    /// lost entries; only a later leader can end the recovery.
    pub recovering: bool,
    /// The disk came back empty although this replica was a member before
    /// (the shell knows it from its configuration, like etcd's
    /// `initial-cluster-state = existing`): its term, vote and log are lost.
    /// It stays in recovery, persists nothing, and on the first message it
    /// hears, of term T, moves to term T + 1, so that (as after a fresh
    /// corruption) only a leader elected after it came back can end its
    /// recovery, and the leader it may have acknowledged for steps down.
    pub blank: bool,
}

/// Tunables. Times are in ticks; the shell decides how long a tick is.
#[derive(Debug, Clone)]
pub struct Config {
    pub id: NodeId,
    /// Every voter, including `id`.
    pub voters: Vec<NodeId>,
    /// A follower that hears nothing for a random time in
    /// `[election_ticks, 2 * election_ticks)` campaigns.
    pub election_ticks: u32,
    /// A leader sends heartbeats every `heartbeat_ticks`.
    pub heartbeat_ticks: u32,
    /// Pre-vote before disrupting a stable leader (thesis §9.6).
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum for `election_ticks` steps
    /// down, and followers ignore votes while they hear from a leader.
    pub check_quorum: bool,
    /// Upper bound on the entry bytes in one `Append`.
    pub max_append_bytes: usize,
    /// Upper bound on un-acknowledged `Append` messages per follower.
    pub max_inflight: usize,
}

impl Config {
    /// Sensible defaults for a group of `voters`.
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Config {
        Config {
            id,
            voters,
            election_ticks: 10,
            heartbeat_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            max_append_bytes: 1 << 20,
            max_inflight: 64,
        }
    }
}
