//! `RawNode`: one Raft replica as a deterministic state machine. Ticks,
//! messages and proposals go in; a [`Ready`] batch of writes, sends and
//! commits comes out.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::log::RaftLog;
use crate::progress::{Progress, ProgressState};
use crate::read_only::ReadQueue;
use crate::types::{
    Config, Entry, HardState, Message, MessageBody, NodeId, ReadState, Ready, Restored, Role,
    Snapshot, Status,
};

mod replication;
mod roles;

/// Why a leader-only request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This replica is not the leader; retry at `leader` if known.
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
}

/// One Raft replica. See the crate docs and [`Ready`] for the protocol with
/// the shell.
#[derive(Debug)]
pub struct RawNode {
    cfg: Config,
    /// Seeded by the caller; used for election timeouts only.
    rng: ChaCha8Rng,
    term: u64,
    /// Who we voted for in `term`. Invariant: `Some(id)` while candidate or
    /// leader.
    vote: Option<NodeId>,
    role: Role,
    /// Invariant: `Some(id)` exactly when leader.
    leader: Option<NodeId>,
    log: RaftLog,
    /// Followers' progress (leader only; empty otherwise), keyed by id so
    /// iteration is deterministic.
    progress: BTreeMap<NodeId, Progress>,
    /// Votes received in the current (pre-)election: id -> granted.
    votes: BTreeMap<NodeId, bool>,
    /// Ticks since the last election reset: for followers and candidates,
    /// since we last heard from a leader or granted a vote; for a leader,
    /// since the last check-quorum round.
    election_elapsed: u32,
    /// Drawn from `[election_ticks, 2 * election_ticks)` on every reset.
    randomized_timeout: u32,
    heartbeat_elapsed: u32,
    /// Leader: whether an entry of its own term is committed (reads wait
    /// for it, thesis §6.4).
    committed_own_term: bool,
    reads: ReadQueue,
    /// See `Restored::recovering`. Invariant: never leader or candidate
    /// while set.
    recovering: bool,
    /// See `Restored::blank`: nothing is persisted until the first message
    /// tells us a term to move past. Invariant: implies `recovering`.
    term_unknown: bool,
    /// Outbox, in generation order.
    msgs: Vec<Message>,
    read_states: Vec<ReadState>,
    /// The hard state last handed out in a `Ready` (or restored).
    prev_hard_state: HardState,
}

impl RawNode {
    /// Builds a replica from what the shell found on disk. `seed` feeds the
    /// election-timeout randomness.
    pub fn new(config: Config, restored: Restored, seed: u64) -> RawNode {
        assert!(config.id != 0, "node id 0 is reserved");
        assert!(
            config.voters.contains(&config.id),
            "{} is not among the voters",
            config.id
        );
        assert!(config.election_ticks > 0 && config.heartbeat_ticks > 0);
        assert!(config.max_inflight > 0);
        let mut cfg = config;
        cfg.voters.sort_unstable();
        cfg.voters.dedup();
        let log = RaftLog::restore_from_disk(restored.snapshot, restored.entries);
        // Entries and hard state of one Ready may be persisted in either
        // order, so a crash between the two can leave entries of a term the
        // hard state has not reached. No message depended on that Ready, so
        // adopting the entries' term with no vote is safe.
        let mut hard_state = restored.hard_state;
        if log.last_term() > hard_state.term {
            hard_state.term = log.last_term();
            hard_state.vote = None;
        }
        // A lone voter has nobody to recover from: what it lost is lost.
        let term_unknown = restored.blank && cfg.voters.len() > 1;
        let recovering =
            (restored.recovering || hard_state.recovering || term_unknown) && cfg.voters.len() > 1;
        if restored.recovering && recovering && !term_unknown {
            // Fresh corruption: we may have acknowledged, in our current term
            // H, entries we no longer hold, and H's leader may still count
            // those acknowledgements. Moving to H + 1 means only a leader of
            // a later term can end our recovery; such a leader holds every
            // entry committed in H or before, and they all precede the
            // entries of its own term that recovery requires us to hold.
            // (H's leader learns the new term from our answers and steps
            // down.)
            hard_state.term += 1;
            hard_state.vote = None;
        }
        let mut node = RawNode {
            rng: ChaCha8Rng::seed_from_u64(seed),
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            log,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed: 0,
            randomized_timeout: 0,
            heartbeat_elapsed: 0,
            committed_own_term: false,
            reads: ReadQueue::default(),
            recovering,
            term_unknown,
            msgs: Vec::new(),
            read_states: Vec::new(),
            prev_hard_state: restored.hard_state,
            cfg,
        };
        node.reset_election_timer();
        node
    }

    // ----- inputs -----

    /// Advances the logical clock by one tick.
    pub fn tick(&mut self) {
        self.election_elapsed += 1;
        if self.role == Role::Leader {
            self.tick_leader();
        } else if self.election_elapsed >= self.randomized_timeout {
            self.election_elapsed = 0;
            if self.can_campaign() {
                if self.cfg.pre_vote {
                    self.become_pre_candidate();
                } else {
                    self.become_candidate();
                }
            } else {
                // Not heard from a leader for a whole timeout: forget it, so
                // we are not stuck in its lease.
                self.leader = None;
                self.reset_election_timer();
            }
        }
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
        // Retry snapshots that got lost.
        let mut retry = Vec::new();
        for (&id, pr) in self.progress.iter_mut() {
            if let ProgressState::Snapshot { ticks, .. } = &mut pr.state {
                *ticks += 1;
                if *ticks >= self.cfg.election_ticks {
                    pr.become_probe();
                    retry.push(id);
                }
            }
        }
        for id in retry {
            self.send_append(id, false);
        }
        if self.election_elapsed >= self.cfg.election_ticks {
            self.election_elapsed = 0;
            if self.cfg.check_quorum {
                let active = 1 + self.progress.values().filter(|p| p.recent_active).count();
                if active < self.quorum() {
                    self.become_follower(self.term, None);
                    return;
                }
            }
            for pr in self.progress.values_mut() {
                pr.recent_active = false;
            }
        }
    }

    /// Starts an election now, without pre-vote. No-op for a leader, or
    /// while recovering.
    pub fn campaign(&mut self) {
        if self.role != Role::Leader && self.can_campaign() {
            self.become_candidate();
        }
    }

    /// Appends `data` to the log (leader only) and returns its index.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<u64, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        let index = self.log.last_index() + 1;
        self.log.push(Entry {
            term: self.term,
            index,
            data,
        });
        self.broadcast_append();
        Ok(index)
    }

    /// Registers a linearizable read (leader only). A `ReadState` with this
    /// `ctx` appears in a later `Ready` once a quorum has confirmed this
    /// node is still leader; if leadership is lost first it never appears.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        let index = self.committed_own_term.then_some(self.log.committed);
        self.reads.add(ctx, index);
        if self.cfg.voters.len() == 1 {
            self.reads.pop_confirmed(1, &mut self.read_states);
        } else {
            self.broadcast_heartbeat();
        }
        Ok(())
    }

    /// Handles an inbound message.
    pub fn step(&mut self, msg: Message) {
        if msg.to != self.cfg.id || msg.from == self.cfg.id || !self.cfg.voters.contains(&msg.from)
        {
            return;
        }
        if self.term_unknown {
            // A blank replica's first news of the cluster: move past its
            // term (see `Restored::blank`), then handle the message as one
            // from an older term (the sender learns ours and, if it led,
            // steps down).
            self.term_unknown = false;
            self.become_follower(msg.term.max(self.term) + 1, None);
        }
        if msg.term > self.term {
            match msg.body {
                MessageBody::Vote { .. } if self.in_lease() => return, // leader stickiness
                // Pre-votes are about a future term; they change nobody's term.
                MessageBody::Vote { pre: true, .. }
                | MessageBody::VoteResponse {
                    pre: true,
                    granted: true,
                } => {}
                MessageBody::Append { .. } | MessageBody::InstallSnapshot { .. } => {
                    self.become_follower(msg.term, Some(msg.from))
                }
                MessageBody::Vote { .. } => {
                    // Per the paper the timer resets only on hearing from a
                    // leader or granting a vote: a candidate whose log we
                    // reject must not delay our own candidacy, or stale
                    // candidates can keep the electable ones from ever
                    // timing out first.
                    let (elapsed, timeout) = (self.election_elapsed, self.randomized_timeout);
                    self.become_follower(msg.term, None);
                    (self.election_elapsed, self.randomized_timeout) = (elapsed, timeout);
                }
                _ => self.become_follower(msg.term, None),
            }
        } else if msg.term < self.term {
            match msg.body {
                // Tell a stale leader about the newer term so it steps down
                // (otherwise a node that bumped its term while partitioned
                // could never rejoin a leader that cannot hear from it).
                MessageBody::Append { .. } | MessageBody::InstallSnapshot { .. } => self.send(
                    msg.from,
                    MessageBody::AppendResponse {
                        success: false,
                        index: 0,
                        hint_index: 0,
                        hint_term: 0,
                        read_ctx: 0,
                    },
                ),
                // Tell a stale pre-candidate about our term.
                MessageBody::Vote { pre: true, .. } => self.send(
                    msg.from,
                    MessageBody::VoteResponse {
                        pre: true,
                        granted: false,
                    },
                ),
                _ => {}
            }
            return;
        }
        let Message {
            from, term, body, ..
        } = msg;
        match body {
            MessageBody::Vote {
                pre,
                last_index,
                last_term,
            } => self.handle_vote(from, term, pre, last_index, last_term),
            MessageBody::VoteResponse { pre, granted } => {
                self.handle_vote_response(from, term, pre, granted)
            }
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                read_ctx,
            } => self.handle_append(from, prev_index, prev_term, entries, commit, read_ctx),
            MessageBody::AppendResponse {
                success,
                index,
                hint_index,
                hint_term,
                read_ctx,
            } => {
                self.handle_append_response(from, success, index, (hint_index, hint_term), read_ctx)
            }
            MessageBody::InstallSnapshot { snapshot } => self.handle_snapshot(from, snapshot),
            MessageBody::SnapshotResponse { index } => self.handle_snapshot_response(from, index),
        }
    }

    // ----- the Ready protocol -----

    /// Whether `ready` would return a non-empty batch.
    pub fn has_ready(&self) -> bool {
        !self.msgs.is_empty()
            || !self.read_states.is_empty()
            || self.log.pending_snapshot.is_some()
            || self.log.has_unstable()
            || (!self.term_unknown && self.hard_state() != self.prev_hard_state)
            || self.log.has_next_committed()
    }

    /// Takes the pending batch. See [`Ready`] for what the shell must do.
    pub fn ready(&mut self) -> Ready {
        let hs = self.hard_state();
        let hard_state = (!self.term_unknown && hs != self.prev_hard_state).then_some(hs);
        if !self.term_unknown {
            self.prev_hard_state = hs;
        }
        Ready {
            hard_state,
            snapshot: self.log.pending_snapshot.take(),
            entries: self.log.take_unstable(),
            messages: std::mem::take(&mut self.msgs),
            committed_entries: self.log.take_next_committed(),
            read_states: std::mem::take(&mut self.read_states),
        }
    }

    /// The shell has done everything `ready` asked.
    pub fn advance(&mut self, ready: &Ready) {
        if let Some(s) = &ready.snapshot {
            self.log.applied = self.log.applied.max(s.meta.index);
        }
        if let Some(e) = ready.entries.last() {
            self.log.stable_to(e.index, e.term);
        }
        if let Some(e) = ready.committed_entries.last() {
            self.log.applied = self.log.applied.max(e.index);
        }
        if self.role == Role::Leader {
            // Our own persisted entries now count towards the quorum.
            self.maybe_commit();
        }
    }

    /// The app snapshotted its state at an applied index: forget the log up
    /// to it, and send the snapshot to followers that need those entries.
    pub fn compact(&mut self, snapshot: Snapshot) {
        self.log.compact(snapshot);
    }

    // ----- introspection -----

    /// A summary of this replica's state.
    pub fn status(&self) -> Status {
        Status {
            id: self.cfg.id,
            term: self.term,
            role: self.role,
            leader: self.leader,
            commit: self.log.committed,
            applied: self.log.applied,
            last_index: self.log.last_index(),
            first_index: self.log.first_index(),
            recovering: self.recovering,
        }
    }

    /// Asserts every invariant; a failure is a bug in this crate (or a shell
    /// that broke the `Ready` contract).
    pub fn check_invariants(&self) {
        self.log.check();
        assert!(
            self.log.last_term() <= self.term,
            "log term {} > term {}",
            self.log.last_term(),
            self.term
        );
        match self.role {
            Role::Leader => {
                assert_eq!(self.leader, Some(self.cfg.id));
                assert_eq!(self.vote, Some(self.cfg.id));
                assert_eq!(self.progress.len(), self.cfg.voters.len() - 1);
                for pr in self.progress.values() {
                    assert!(
                        pr.matched < pr.next,
                        "matched {} >= next {}",
                        pr.matched,
                        pr.next
                    );
                    assert!(pr.matched <= self.log.last_index());
                    assert!(pr.inflight.len() <= self.cfg.max_inflight);
                }
                assert!(self.log.committed >= self.log.offset());
            }
            Role::Candidate => {
                assert_eq!(self.vote, Some(self.cfg.id));
                assert!(self.leader.is_none() && self.progress.is_empty());
            }
            Role::PreCandidate | Role::Follower => {
                assert!(self.progress.is_empty() && self.reads.is_empty());
                assert!(self.leader != Some(self.cfg.id));
            }
        }
        if self.term_unknown {
            assert!(self.recovering, "a blank replica is recovering");
        }
        if self.recovering {
            assert_eq!(
                self.role,
                Role::Follower,
                "a recovering replica never campaigns"
            );
        }
    }
}
