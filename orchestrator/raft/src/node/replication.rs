//! Log replication: appends and snapshots on the follower side, progress, commit and sends on the leader side.

use crate::progress::ProgressState;
use crate::types::{Entry, Message, MessageBody, NodeId, Role, Snapshot};

use super::RawNode;

impl RawNode {
    // ----- replication, follower side -----

    pub(super) fn handle_append(
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

    pub(super) fn handle_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
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

    pub(super) fn handle_append_response(
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

    pub(super) fn handle_snapshot_response(&mut self, from: NodeId, index: u64) {
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
    pub(super) fn maybe_commit(&mut self) -> bool {
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
    pub(super) fn broadcast_append(&mut self) {
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for peer in peers {
            self.send_append(peer, true);
        }
    }

    /// Sends the next batch to `to`: entries from its `next`, or the snapshot
    /// if those were compacted. With `allow_empty`, sends an empty append
    /// when there is nothing new (to carry the commit index).
    pub(super) fn send_append(&mut self, to: NodeId, allow_empty: bool) {
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
    pub(super) fn broadcast_heartbeat(&mut self) {
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

    pub(super) fn send(&mut self, to: NodeId, body: MessageBody) {
        self.msgs.push(Message {
            from: self.cfg.id,
            to,
            term: self.term,
            body,
        });
    }
}
