//! `RawNode`: one Raft replica as a deterministic state machine. Ticks,
//! messages and proposals go in; a [`Ready`] batch of writes, sends and
//! commits comes out.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::log::RaftLog;
use crate::progress::{Progress, ProgressState};
use crate::read_only::ReadQueue;
use crate::types::{
    Config, Entry, HardState, Message, MessageBody, NodeId, ReadState, Ready, Restored, Role,
    Snapshot, Status,
};

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

    // ----- roles -----

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            recovering: self.recovering,
        }
    }

    fn quorum(&self) -> usize {
        self.cfg.voters.len() / 2 + 1
    }

    fn can_campaign(&self) -> bool {
        !self.recovering
    }

    /// Whether we heard from a live leader recently enough to ignore
    /// elections (CheckQuorum's lease; a leader is always in its own lease).
    fn in_lease(&self) -> bool {
        self.cfg.check_quorum
            && self.leader.is_some()
            && self.election_elapsed < self.cfg.election_ticks
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let e = self.cfg.election_ticks;
        self.randomized_timeout = self.rng.random_range(e..2 * e);
    }

    fn reset(&mut self, term: u64) {
        if term != self.term {
            self.term = term;
            self.vote = None;
        }
        self.leader = None;
        self.votes.clear();
        self.progress.clear();
        self.reads.clear();
        self.committed_own_term = false;
        self.heartbeat_elapsed = 0;
        self.reset_election_timer();
    }

    fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        self.reset(term);
        self.role = Role::Follower;
        self.leader = leader;
    }

    fn become_pre_candidate(&mut self) {
        // Not `reset`: a pre-vote must not touch term or vote.
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.reset_election_timer();
        self.start_election(true);
    }

    fn become_candidate(&mut self) {
        self.reset(self.term + 1);
        self.role = Role::Candidate;
        self.vote = Some(self.cfg.id);
        self.start_election(false);
    }

    fn start_election(&mut self, pre: bool) {
        self.votes.insert(self.cfg.id, true);
        if self.tally() == Some(true) {
            // A lone voter wins at once.
            if pre {
                self.become_candidate();
            } else {
                self.become_leader();
            }
            return;
        }
        let term = if pre { self.term + 1 } else { self.term };
        let body = MessageBody::Vote {
            pre,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        };
        for &peer in &self.cfg.voters {
            if peer != self.cfg.id {
                self.msgs.push(Message {
                    from: self.cfg.id,
                    to: peer,
                    term,
                    body: body.clone(),
                });
            }
        }
    }

    /// `Some(won)` once the votes decide the election.
    fn tally(&self) -> Option<bool> {
        let granted = self.votes.values().filter(|&&g| g).count();
        let rejected = self.votes.len() - granted;
        if granted >= self.quorum() {
            Some(true)
        } else if rejected >= self.quorum() {
            Some(false)
        } else {
            None
        }
    }

    fn become_leader(&mut self) {
        assert!(!self.recovering);
        let term = self.term;
        self.reset(term);
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        let last = self.log.last_index();
        for &peer in &self.cfg.voters {
            if peer != self.cfg.id {
                self.progress.insert(peer, Progress::new(last));
            }
        }
        // The no-op lets the new leader commit (and so learn the commit
        // index of) entries from earlier terms (thesis §3.6.2, §6.4).
        self.log.push(Entry {
            term,
            index: last + 1,
            data: Vec::new(),
        });
        self.broadcast_append();
    }

    // ----- elections -----

    fn handle_vote(&mut self, from: NodeId, term: u64, pre: bool, last_index: u64, last_term: u64) {
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre && term > self.term);
        let granted = can_vote && !self.recovering && self.log.is_up_to_date(last_index, last_term);
        if granted && !pre {
            self.vote = Some(from);
            self.reset_election_timer();
        }
        // A granted pre-vote answers in the proposed term so the
        // pre-candidate can count it; otherwise we answer in ours.
        let reply_term = if pre && granted { term } else { self.term };
        self.msgs.push(Message {
            from: self.cfg.id,
            to: from,
            term: reply_term,
            body: MessageBody::VoteResponse { pre, granted },
        });
    }

    fn handle_vote_response(&mut self, from: NodeId, term: u64, pre: bool, granted: bool) {
        let expected = match (self.role, pre) {
            (Role::PreCandidate, true) => {
                granted && term == self.term + 1 || !granted && term == self.term
            }
            (Role::Candidate, false) => term == self.term,
            _ => false,
        };
        if !expected {
            return;
        }
        self.votes.entry(from).or_insert(granted);
        match (self.tally(), pre) {
            (Some(true), true) => self.become_candidate(),
            (Some(true), false) => self.become_leader(),
            (Some(false), _) => self.become_follower(self.term, None),
            (None, _) => {}
        }
    }

    // ----- replication, follower side -----

    fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
        read_ctx: u64,
    ) {
        self.accept_leader(from);
        let body = if prev_index < self.log.committed {
            // Everything up to our commit index matches any current leader.
            let matched = self.log.committed;
            self.maybe_end_recovery(commit.min(matched));
            MessageBody::AppendResponse {
                success: true,
                index: matched,
                hint_index: 0,
                hint_term: 0,
                read_ctx,
            }
        } else if let Some(last_new) = self.log.maybe_append(prev_index, prev_term, entries) {
            self.log.commit_to(commit.min(last_new));
            self.maybe_end_recovery(commit.min(last_new));
            MessageBody::AppendResponse {
                success: true,
                index: last_new,
                hint_index: 0,
                hint_term: 0,
                read_ctx,
            }
        } else {
            // Our entries after `prev_index` are useless to the leader; if
            // ours at `prev_index` is there but of another term, skip every
            // entry with a term above `prev_term` (none can match).
            let start = if self.log.last_index() >= prev_index {
                prev_index.saturating_sub(1)
            } else {
                self.log.last_index()
            };
            let hint_index = self
                .log
                .find_conflict_by_term(start.max(self.log.committed), prev_term);
            let hint_term = self
                .log
                .term(hint_index)
                .expect("hint is at or above our commit index");
            MessageBody::AppendResponse {
                success: false,
                index: prev_index,
                hint_index,
                hint_term,
                read_ctx,
            }
        };
        self.send(from, body);
    }

    /// Our log matches the current leader's through `c <= leader's commit`.
    /// If that entry is from the leader's term, the leader committed an
    /// entry of its own term that we hold, and every earlier-term committed
    /// entry precedes it in the leader's log, so we hold those too. (An
    /// old-term entry at `c` proves nothing: a fresh leader's commit index
    /// may still point below entries committed earlier with this replica's
    /// since-lost acknowledgement.) Entries committed in the leader's own
    /// term never counted such an acknowledgement, thanks to the term bump
    /// in `new`.
    fn maybe_end_recovery(&mut self, c: u64) {
        if self.recovering && self.log.term(c) == Some(self.term) {
            self.recovering = false;
        }
    }

    /// `from` leads our current term: follow it and reset the election timer.
    fn accept_leader(&mut self, from: NodeId) {
        assert!(
            self.role != Role::Leader,
            "two leaders in term {}",
            self.term
        );
        if self.role != Role::Follower {
            self.become_follower(self.term, Some(from));
        }
        self.leader = Some(from);
        self.election_elapsed = 0;
    }

    fn handle_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
        self.accept_leader(from);
        let meta = snapshot.meta;
        if meta.index <= self.log.committed {
            // Already have it.
        } else if self.log.match_term(meta.index, meta.term) {
            // Our log already holds the snapshot's last entry: keep the
            // entries after it, just learn that it is committed.
            self.log.commit_to(meta.index);
        } else {
            self.log.restore(snapshot);
        }
        // Index known to match the leader: the committed prefix (not our
        // last index, whose suffix may still conflict).
        let index = self.log.committed;
        self.maybe_end_recovery(index);
        self.send(from, MessageBody::SnapshotResponse { index });
    }

    // ----- replication, leader side -----

    fn handle_append_response(
        &mut self,
        from: NodeId,
        success: bool,
        index: u64,
        (hint_index, hint_term): (u64, u64),
        read_ctx: u64,
    ) {
        if self.role != Role::Leader {
            return;
        }
        // Our last entry that can match the follower's hint: entries of
        // ours with a higher term than the follower's there cannot.
        let hint = if success {
            0
        } else {
            self.log.find_conflict_by_term(hint_index, hint_term)
        };
        let quorum = self.quorum();
        self.reads.ack(from, read_ctx);
        self.reads.pop_confirmed(quorum, &mut self.read_states);
        let max_inflight = self.cfg.max_inflight;
        let last_index = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        if !success {
            if index <= pr.matched && hint < pr.matched {
                // Rejected at or below what it acknowledged: either a stale
                // rejection, or the follower lost entries (corrupt restart,
                // now recovering). Forgetting its match is always safe (our
                // commit index never goes down) and lets us re-send.
                pr.matched = hint;
                pr.become_probe();
                self.send_append(from, false);
            } else if pr.maybe_decr_to(index, hint) {
                self.send_append(from, false);
            } else if pr.state == ProgressState::Probe {
                // A heartbeat rejection (heartbeats probe at `matched`, not
                // `next - 1`): our probe may have been lost, so send it again.
                pr.paused = false;
                self.send_append(from, false);
            }
            return;
        }
        if pr.maybe_update(index) {
            match pr.state {
                ProgressState::Probe => pr.become_replicate(),
                ProgressState::Snapshot { index: snap, .. } if pr.matched >= snap => {
                    pr.become_probe()
                }
                _ => {}
            }
            // If the follower acknowledged already committed entries it may
            // not know they are: tell it with an (empty) append.
            let stale_commit = index <= self.log.committed;
            if !self.maybe_commit() {
                self.send_append(from, stale_commit);
            }
        } else if pr.matched < last_index {
            // Probably a heartbeat answer while the follower lags: the probe
            // or some streamed appends may have been lost. Re-probe at
            // `next - 1` (an empty append is enough: a rejection resets us to
            // probing from `matched`).
            match pr.state {
                ProgressState::Probe => pr.paused = false,
                ProgressState::Replicate if pr.inflight.len() >= max_inflight => {
                    pr.inflight.pop_front();
                }
                _ => {}
            }
            self.send_append(from, true);
        }
    }

    fn handle_snapshot_response(&mut self, from: NodeId, index: u64) {
        if self.role != Role::Leader {
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        let updated = pr.maybe_update(index);
        if let ProgressState::Snapshot { .. } = pr.state {
            pr.become_probe();
        }
        if !(updated && self.maybe_commit()) {
            self.send_append(from, false);
        }
    }

    /// Commits the highest index a quorum has persisted, if it is of our
    /// term (thesis §3.6.2: older-term entries are committed only
    /// indirectly). Broadcasts the new commit index; returns whether it moved.
    fn maybe_commit(&mut self) -> bool {
        let mut matched: Vec<u64> = self.progress.values().map(|p| p.matched).collect();
        // Our own log counts only once persisted.
        matched.push(self.log.stabled);
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matched[self.quorum() - 1];
        if candidate <= self.log.committed || self.log.term(candidate) != Some(self.term) {
            return false;
        }
        self.log.commit_to(candidate);
        if !self.committed_own_term {
            self.committed_own_term = true;
            self.reads.set_index(candidate);
            let quorum = self.quorum();
            self.reads.pop_confirmed(quorum, &mut self.read_states);
        }
        self.broadcast_append();
        true
    }

    /// Sends new entries (or just the new commit index) to every follower
    /// that is not paused.
    fn broadcast_append(&mut self) {
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for peer in peers {
            self.send_append(peer, true);
        }
    }

    /// Sends the next batch to `to`: entries from its `next`, or the snapshot
    /// if those were compacted. With `allow_empty`, sends an empty append
    /// when there is nothing new (to carry the commit index).
    fn send_append(&mut self, to: NodeId, allow_empty: bool) {
        let pr = self.progress.get_mut(&to).expect("progress for every peer");
        if pr.is_paused(self.cfg.max_inflight) {
            return;
        }
        let prev_index = pr.next - 1;
        let Some(prev_term) = self.log.term(prev_index) else {
            // The entries this follower needs were compacted away.
            let snapshot = self
                .log
                .snapshot
                .clone()
                .expect("a compacted log keeps its snapshot");
            pr.become_snapshot(snapshot.meta.index);
            self.send(to, MessageBody::InstallSnapshot { snapshot });
            return;
        };
        let entries = if pr.next <= self.log.last_index() {
            self.log.entries_from(pr.next, self.cfg.max_append_bytes)
        } else {
            Vec::new()
        };
        if entries.is_empty() && !allow_empty {
            return;
        }
        let last = entries.last().map_or(prev_index, |e| e.index);
        pr.on_sent(last, !entries.is_empty());
        let body = MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit: self.log.committed,
            read_ctx: self.reads.latest_seq,
        };
        self.send(to, body);
    }

    /// Heartbeats: an empty append after `matched` (known to be present, so
    /// it succeeds unless the follower lost data), carrying the commit index
    /// and the newest read sequence.
    fn broadcast_heartbeat(&mut self) {
        let peers: Vec<(NodeId, u64)> = self
            .progress
            .iter()
            .map(|(&id, p)| (id, p.matched))
            .collect();
        for (to, matched) in peers {
            let (prev_index, prev_term) = match self.log.term(matched) {
                Some(t) => (matched, t),
                // Compacted: probe at the snapshot; a rejection sends the
                // snapshot.
                None => (
                    self.log.offset(),
                    self.log.term(self.log.offset()).expect("offset term known"),
                ),
            };
            let body = MessageBody::Append {
                prev_index,
                prev_term,
                entries: Vec::new(),
                commit: self.log.committed,
                read_ctx: self.reads.latest_seq,
            };
            self.send(to, body);
        }
    }

    fn send(&mut self, to: NodeId, body: MessageBody) {
        self.msgs.push(Message {
            from: self.cfg.id,
            to,
            term: self.term,
            body,
        });
    }
}
