//! Roles and elections: becoming follower, pre-candidate, candidate or leader, and the votes that decide.

use rand::Rng;

use crate::progress::Progress;
use crate::types::{Entry, HardState, Message, MessageBody, NodeId, Role};

use super::RawNode;

impl RawNode {
    // ----- roles -----

    pub(super) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            recovering: self.recovering,
        }
    }

    pub(super) fn quorum(&self) -> usize {
        self.cfg.voters.len() / 2 + 1
    }

    pub(super) fn can_campaign(&self) -> bool {
        !self.recovering
    }

    /// Whether we heard from a live leader recently enough to ignore
    /// elections (CheckQuorum's lease; a leader is always in its own lease).
    pub(super) fn in_lease(&self) -> bool {
        self.cfg.check_quorum
            && self.leader.is_some()
            && self.election_elapsed < self.cfg.election_ticks
    }

    pub(super) fn reset_election_timer(&mut self) {
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

    pub(super) fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        self.reset(term);
        self.role = Role::Follower;
        self.leader = leader;
    }

    pub(super) fn become_pre_candidate(&mut self) {
        // Not `reset`: a pre-vote must not touch term or vote.
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.reset_election_timer();
        self.start_election(true);
    }

    pub(super) fn become_candidate(&mut self) {
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

    pub(super) fn handle_vote(
        &mut self,
        from: NodeId,
        term: u64,
        pre: bool,
        last_index: u64,
        last_term: u64,
    ) {
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

    pub(super) fn handle_vote_response(
        &mut self,
        from: NodeId,
        term: u64,
        pre: bool,
        granted: bool,
    ) {
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
}
