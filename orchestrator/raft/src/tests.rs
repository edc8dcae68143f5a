//! Unit tests, one behaviour each, over a tiny lossless in-order network
//! whose links can be cut.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use crate::*;

/// Nodes plus a FIFO of messages in flight. Persistence is implicit: every
/// `Ready` is acknowledged right away.
struct Net {
    nodes: BTreeMap<NodeId, RawNode>,
    queue: VecDeque<Message>,
    /// Directed links that drop everything.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Everything applied, per node.
    applied: BTreeMap<NodeId, Vec<Entry>>,
    reads: BTreeMap<NodeId, Vec<ReadState>>,
    /// Every `Ready` seen, per node (for inspecting persistence).
    readies: BTreeMap<NodeId, Vec<Ready>>,
}

fn cfg(id: NodeId, n: u64) -> Config {
    Config::new(id, (1..=n).collect())
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        data: vec![index as u8],
    }
}

fn restored(term: u64, entries: Vec<Entry>) -> Restored {
    Restored {
        hard_state: HardState {
            term,
            vote: None,
            recovering: false,
        },
        snapshot: None,
        entries,
        recovering: false,
        blank: false,
    }
}

impl Net {
    fn new(n: u64) -> Net {
        Net::with(n, |_| {}, |_| Restored::default())
    }

    fn with(n: u64, tweak: impl Fn(&mut Config), restore: impl Fn(NodeId) -> Restored) -> Net {
        let mut net = Net {
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            applied: BTreeMap::new(),
            reads: BTreeMap::new(),
            readies: BTreeMap::new(),
        };
        for id in 1..=n {
            let mut c = cfg(id, n);
            tweak(&mut c);
            net.nodes
                .insert(id, RawNode::new(c, restore(id), id * 7919));
        }
        net
    }

    fn node(&mut self, id: NodeId) -> &mut RawNode {
        self.nodes.get_mut(&id).unwrap()
    }

    fn status(&self, id: NodeId) -> Status {
        self.nodes[&id].status()
    }

    /// Runs the Ready loop of `id`, queueing its messages.
    fn drain(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        while node.has_ready() {
            let rd = node.ready();
            self.queue.extend(rd.messages.iter().cloned());
            self.applied
                .entry(id)
                .or_default()
                .extend(rd.committed_entries.iter().cloned());
            self.reads
                .entry(id)
                .or_default()
                .extend(rd.read_states.iter().copied());
            node.advance(&rd);
            node.check_invariants();
            self.readies.entry(id).or_default().push(rd);
        }
    }

    fn drain_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.drain(id);
        }
    }

    /// Delivers until quiet.
    fn settle(&mut self) {
        self.drain_all();
        while let Some(m) = self.queue.pop_front() {
            if self.cut.contains(&(m.from, m.to)) {
                continue;
            }
            let to = m.to;
            if let Some(node) = self.nodes.get_mut(&to) {
                node.step(m);
                node.check_invariants();
                self.drain(to);
            }
        }
    }

    /// Takes the queued messages without delivering them.
    fn take(&mut self) -> Vec<Message> {
        self.drain_all();
        self.queue.drain(..).collect()
    }

    fn tick(&mut self, id: NodeId, times: u32) {
        for _ in 0..times {
            self.node(id).tick();
            self.settle();
        }
    }

    fn tick_all(&mut self, times: u32) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for _ in 0..times {
            for &id in &ids {
                self.node(id).tick();
            }
            self.settle();
        }
    }

    fn isolate(&mut self, id: NodeId) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for other in ids {
            self.cut.insert((id, other));
            self.cut.insert((other, id));
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    /// A forced campaign by `id`, delivered until quiet, whatever comes of
    /// it.
    fn campaign(&mut self, id: NodeId) {
        self.node(id).campaign();
        self.settle();
    }

    /// Elects `id` by forced campaign.
    fn elect(&mut self, id: NodeId) {
        self.campaign(id);
        assert_eq!(self.status(id).role, Role::Leader);
    }

    /// Delivers `rounds` times what is queued, except appends (so votes and
    /// their answers go through, but no entry is replicated).
    fn deliver_all_but_appends(&mut self, rounds: usize) {
        for _ in 0..rounds {
            for m in self.take() {
                if !matches!(m.body, MessageBody::Append { .. }) {
                    let to = m.to;
                    self.node(to).step(m);
                }
            }
        }
    }
}

/// Leader 1 of three, cut off from the others for 25 ticks (more than an
/// election timeout), with `tweak` applied to every node's config.
fn isolated_leader(tweak: impl Fn(&mut Config)) -> Net {
    let mut net = Net::with(3, tweak, |_| Restored::default());
    net.elect(1);
    net.isolate(1);
    net.tick(1, 25);
    net
}

/// Leader 1 of three, cut off; node 2 stops hearing from it for
/// election_ticks and votes for node 3's forced campaign.
fn leader_3_behind_isolated_1() -> Net {
    let mut net = Net::new(3);
    net.elect(1);
    net.isolate(1);
    net.tick(2, 10); // node 2 has not heard from 1 for election_ticks
    net.campaign(3);
    net
}

fn vote(from: NodeId, to: NodeId, term: u64, pre: bool, last: (u64, u64)) -> Message {
    Message {
        from,
        to,
        term,
        body: MessageBody::Vote {
            pre,
            last_index: last.0,
            last_term: last.1,
        },
    }
}

/// A successful append answer up to `index`.
fn append_ok(from: NodeId, to: NodeId, term: u64, index: u64) -> Message {
    Message {
        from,
        to,
        term,
        body: MessageBody::AppendResponse {
            success: true,
            index,
            hint_index: 0,
            hint_term: 0,
            read_ctx: 0,
        },
    }
}

const VOTE_REFUSED: MessageBody = MessageBody::VoteResponse {
    pre: false,
    granted: false,
};

// ----- elections -----

#[test]
fn campaign_elects_and_commits_noop() {
    let mut net = Net::new(3);
    net.elect(1);
    for id in 1..=3 {
        let st = net.status(id);
        assert_eq!(
            (st.term, st.leader, st.commit),
            (1, Some(1), 1),
            "node {id}"
        );
        assert_eq!(
            net.applied[&id],
            vec![Entry {
                term: 1,
                index: 1,
                data: vec![]
            }]
        );
    }
}

#[test]
fn ticks_elect_exactly_one_leader() {
    let mut net = Net::new(5);
    net.tick_all(40);
    let leaders: Vec<NodeId> = (1..=5)
        .filter(|&id| net.status(id).role == Role::Leader)
        .collect();
    assert_eq!(leaders.len(), 1);
    let term = net.status(leaders[0]).term;
    for id in 1..=5 {
        assert_eq!(net.status(id).leader, Some(leaders[0]));
        assert_eq!(net.status(id).term, term);
    }
}

#[test]
fn election_timeout_is_randomized_within_bounds() {
    for seed in 0..20 {
        let mut node = RawNode::new(cfg(1, 3), Restored::default(), seed);
        let mut ticks = 0;
        while node.status().role == Role::Follower {
            node.tick();
            ticks += 1;
        }
        assert!((10..20).contains(&ticks), "seed {seed}: {ticks}");
    }
}

#[test]
fn vote_needs_up_to_date_log() {
    let mut net = Net::with(
        3,
        |_| {},
        |id| {
            restored(
                1,
                if id == 1 {
                    vec![entry(1, 1)]
                } else {
                    vec![entry(1, 1), entry(2, 1)]
                },
            )
        },
    );
    net.campaign(1);
    assert_ne!(net.status(1).role, Role::Leader);
}

#[test]
fn pre_vote_does_not_disrupt() {
    let mut net = Net::new(3);
    net.elect(1);
    net.isolate(3);
    net.tick(3, 100);
    // Pre-votes failed, so node 3 never bumped its term.
    assert_eq!(net.status(3).term, 1);
    net.heal();
    net.tick_all(30);
    assert_eq!(net.status(1).role, Role::Leader);
    assert_eq!(net.status(1).term, 1);
    assert_eq!(net.status(3).leader, Some(1));
}

#[test]
fn pre_vote_is_granted_without_changing_terms() {
    let mut net = Net::new(3);
    net.node(1).tick();
    for _ in 0..30 {
        net.node(1).tick();
        if net.status(1).role == Role::PreCandidate {
            break;
        }
    }
    assert_eq!(net.status(1).role, Role::PreCandidate);
    let msgs = net.take();
    assert!(msgs
        .iter()
        .all(|m| m.term == 1 && matches!(m.body, MessageBody::Vote { pre: true, .. })));
    for m in msgs {
        net.node(m.to).step(m);
    }
    assert_eq!((net.status(2).term, net.status(3).term), (0, 0));
    net.settle();
    assert_eq!(net.status(1).role, Role::Leader);
}

#[test]
fn check_quorum_steps_down_isolated_leader() {
    let mut net = isolated_leader(|_| {});
    assert_eq!(net.status(1).role, Role::Follower);
    assert_eq!(
        net.node(1).propose(vec![1]),
        Err(ProposeError::NotLeader { leader: None })
    );
}

#[test]
fn leader_without_check_quorum_stays() {
    let net = isolated_leader(|c| c.check_quorum = false);
    assert_eq!(net.status(1).role, Role::Leader);
}

#[test]
fn followers_ignore_votes_while_leader_is_live() {
    let mut net = Net::new(3);
    net.elect(1);
    net.node(3).campaign(); // forced, no pre-vote: term 2
    let votes = net.take();
    assert_eq!(votes.len(), 2);
    for m in votes {
        net.node(m.to).step(m);
    }
    // Sticky: nobody adopted term 2 or answered.
    assert_eq!((net.status(1).term, net.status(2).term), (1, 1));
    assert_eq!(net.status(1).role, Role::Leader);
    assert!(net.take().is_empty());
}

#[test]
fn votes_granted_once_the_lease_expires() {
    let net = leader_3_behind_isolated_1();
    assert_eq!(net.status(3).role, Role::Leader);
}

#[test]
fn stale_leader_learns_new_term_from_append_rejection() {
    let mut net = leader_3_behind_isolated_1();
    net.heal();
    assert_eq!(net.status(1).role, Role::Leader); // never ticked: still believes it leads
    net.tick(1, 1);
    assert_eq!(net.status(1).role, Role::Follower);
    assert_eq!(net.status(1).term, 2);
}

// ----- replication -----

#[test]
fn proposals_replicate_and_apply_everywhere() {
    let mut net = Net::new(3);
    net.elect(1);
    for i in 0..5u8 {
        assert_eq!(net.node(1).propose(vec![i]).unwrap(), 2 + u64::from(i));
    }
    net.settle();
    for id in 1..=3 {
        assert_eq!(net.applied[&id].len(), 6);
        assert_eq!(net.status(id).commit, 6);
    }
    assert_eq!(
        net.node(2).propose(vec![1]),
        Err(ProposeError::NotLeader { leader: Some(1) })
    );
}

#[test]
fn leader_commits_only_what_it_persisted() {
    let mut net = Net::new(1);
    net.elect(1);
    net.settle();
    let idx = net.node(1).propose(b"x".to_vec()).unwrap();
    let rd = net.node(1).ready();
    assert_eq!(rd.entries.len(), 1);
    assert!(
        rd.committed_entries.is_empty(),
        "handed out before persisting"
    );
    assert_eq!(net.status(1).commit, idx - 1);
    net.node(1).advance(&rd);
    assert_eq!(net.status(1).commit, idx);
    let rd = net.node(1).ready();
    assert_eq!(rd.committed_entries.last().map(|e| e.index), Some(idx));
}

#[test]
fn follower_truncates_conflicting_suffix() {
    // Node 2 holds uncommitted entries of term 2 that leader 1 (term 3
    // entries at index 3) does not.
    let mut net = Net::with(
        3,
        |_| {},
        |id| match id {
            1 => restored(3, vec![entry(1, 1), entry(2, 1), entry(3, 3)]),
            2 => restored(
                2,
                vec![
                    entry(1, 1),
                    entry(2, 1),
                    entry(3, 2),
                    entry(4, 2),
                    entry(5, 2),
                ],
            ),
            _ => Restored::default(),
        },
    );
    net.elect(1);
    // First Append (prev 3@3) was rejected with a hint, the retry from 3
    // overwrote 3..5.
    let overwritten: Vec<&Entry> = net.readies[&2]
        .iter()
        .filter_map(|rd| rd.entries.first())
        .filter(|e| e.index == 3)
        .collect();
    assert_eq!(overwritten.len(), 1);
    assert_eq!(overwritten[0].term, 3);
    assert_eq!(net.status(2).last_index, 4);
    assert_eq!(net.status(2).commit, 4);
    let applied: Vec<(u64, u64)> = net.applied[&2].iter().map(|e| (e.index, e.term)).collect();
    assert_eq!(applied, vec![(1, 1), (2, 1), (3, 3), (4, 4)]);
}

#[test]
fn fast_backtracking_skips_a_whole_term() {
    // Follower 2 has a long suffix of term 2; the leader's log has term 1
    // there. One rejection should bring the leader back to index 2.
    let mut leader_log: Vec<Entry> = (1..=2).map(|i| entry(i, 1)).collect();
    leader_log.extend((3..=20).map(|i| entry(i, 3)));
    let follower_log: Vec<Entry> = (1..=2)
        .map(|i| entry(i, 1))
        .chain((3..=30).map(|i| entry(i, 2)))
        .collect();
    let mut net = Net::with(
        3,
        |_| {},
        |id| match id {
            1 => restored(3, leader_log.clone()),
            2 => restored(2, follower_log.clone()),
            _ => restored(3, leader_log.clone()),
        },
    );
    net.node(1).campaign();
    let mut rejections = 0;
    net.drain_all();
    while let Some(m) = net.queue.pop_front() {
        if let MessageBody::AppendResponse { success: false, .. } = m.body {
            if m.from == 2 {
                rejections += 1;
            }
        }
        let to = m.to;
        net.node(to).step(m);
        net.drain(to);
    }
    assert_eq!(rejections, 1);
    assert_eq!(net.status(2).last_index, 21);
}

#[test]
fn old_term_entries_are_not_committed_by_counting() {
    // Figure 8 of the Raft paper: leader 1 (term 3) has 2@2 on a majority
    // but must not commit it until an entry of term 3 is replicated.
    let mut net = Net::with(
        3,
        |_| {},
        |id| match id {
            3 => restored(2, vec![entry(1, 1)]),
            _ => restored(2, vec![entry(1, 1), entry(2, 2)]),
        },
    );
    net.node(1).campaign();
    // Deliver votes and answers, but no Append to anyone.
    net.deliver_all_but_appends(3);
    assert_eq!(net.status(1).role, Role::Leader);
    assert_eq!(net.status(1).term, 3);
    // Node 2 acknowledges index 2 (it holds 2@2).
    net.node(1).step(append_ok(2, 1, 3, 2));
    net.node(1).check_invariants();
    assert_eq!(
        net.status(1).commit,
        0,
        "committed an old-term entry by counting replicas"
    );
    // Once the term-3 no-op at 3 is on a majority, 2 commits with it.
    net.node(1).step(append_ok(2, 1, 3, 3));
    assert_eq!(net.status(1).commit, 3);
}

#[test]
fn pipelining_respects_max_inflight_and_batch_bytes() {
    let mut net = Net::with(
        3,
        |c| {
            c.max_inflight = 2;
            c.max_append_bytes = 1;
        },
        |_| Restored::default(),
    );
    net.elect(1);
    for i in 0..6u8 {
        net.node(1).propose(vec![i]).unwrap();
    }
    let msgs = net.take();
    let to2: Vec<&Message> = msgs.iter().filter(|m| m.to == 2).collect();
    assert_eq!(to2.len(), 2, "at most max_inflight un-acknowledged appends");
    for m in to2 {
        let MessageBody::Append { entries, .. } = &m.body else {
            panic!("{m:?}")
        };
        assert_eq!(entries.len(), 1, "one byte per batch");
    }
    for m in msgs {
        net.queue.push_back(m);
    }
    net.settle();
    assert_eq!(net.status(2).commit, 7);
}

#[test]
fn lost_appends_are_resent_after_heartbeats() {
    let mut net = Net::new(3);
    net.elect(1);
    net.node(1).propose(vec![1]).unwrap();
    let _lost = net.take();
    net.tick_all(5);
    for id in 1..=3 {
        assert_eq!(net.status(id).commit, 2, "node {id}");
    }
}

// ----- reads -----

#[test]
fn read_index_waits_for_quorum_confirmation() {
    let mut net = Net::new(3);
    net.elect(1);
    net.node(1).propose(vec![1]).unwrap();
    net.settle();
    net.node(1).read_index(42).unwrap();
    net.drain(1);
    assert!(
        net.reads.get(&1).is_none_or(Vec::is_empty),
        "served before confirmation"
    );
    net.settle();
    assert_eq!(net.reads[&1], vec![ReadState { ctx: 42, index: 2 }]);
    assert!(net.node(2).read_index(1).is_err());
}

#[test]
fn read_index_on_isolated_leader_is_never_served() {
    let mut net = Net::with(3, |c| c.check_quorum = false, |_| Restored::default());
    net.elect(1);
    net.isolate(1);
    net.node(1).read_index(7).unwrap();
    net.tick(1, 30);
    assert!(net.reads.get(&1).is_none_or(Vec::is_empty));
}

#[test]
fn read_index_waits_for_own_term_commit() {
    let mut net = Net::new(3);
    net.node(1).campaign();
    // Deliver only the votes: leader, but the no-op is not yet committed.
    net.deliver_all_but_appends(2);
    assert_eq!(net.status(1).role, Role::Leader);
    net.node(1).read_index(5).unwrap();
    assert!(net.reads.get(&1).is_none_or(Vec::is_empty));
    net.settle();
    assert_eq!(net.reads[&1], vec![ReadState { ctx: 5, index: 1 }]);
}

#[test]
fn single_voter_reads_immediately() {
    let mut net = Net::new(1);
    net.elect(1);
    net.settle();
    net.node(1).read_index(3).unwrap();
    net.drain(1);
    assert_eq!(net.reads[&1], vec![ReadState { ctx: 3, index: 1 }]);
}

// ----- snapshots -----

#[test]
fn lagging_follower_gets_a_snapshot() {
    let mut net = Net::new(3);
    net.elect(1);
    net.isolate(3);
    for i in 0..10u8 {
        net.node(1).propose(vec![i]).unwrap();
    }
    net.settle();
    assert_eq!(net.status(1).applied, 11);
    let snap = Snapshot {
        meta: SnapshotMeta { index: 8, term: 1 },
        data: Rc::from(&b"state@8"[..]),
    };
    net.node(1).compact(snap.clone());
    assert_eq!(net.status(1).first_index, 9);
    net.heal();
    net.tick_all(3);
    let got: Vec<&Snapshot> = net.readies[&3]
        .iter()
        .filter_map(|rd| rd.snapshot.as_ref())
        .collect();
    assert_eq!(got, vec![&snap]);
    let st = net.status(3);
    assert_eq!(
        (st.commit, st.applied, st.last_index, st.first_index),
        (11, 11, 11, 9)
    );
    // Only the entries after the snapshot were applied on node 3.
    let applied: Vec<u64> = net.applied[&3].iter().map(|e| e.index).collect();
    assert_eq!(applied, vec![1, 9, 10, 11]);
}

#[test]
fn snapshot_already_covered_by_log_keeps_entries() {
    let mut node = RawNode::new(
        cfg(2, 3),
        restored(1, (1..=5).map(|i| entry(i, 1)).collect()),
        1,
    );
    let snap = Snapshot {
        meta: SnapshotMeta { index: 3, term: 1 },
        data: Rc::from(&b"s"[..]),
    };
    node.step(Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::InstallSnapshot { snapshot: snap },
    });
    node.check_invariants();
    let rd = node.ready();
    assert!(rd.snapshot.is_none());
    assert_eq!(rd.committed_entries.len(), 3);
    assert_eq!(
        rd.messages[0].body,
        MessageBody::SnapshotResponse { index: 3 }
    );
    assert_eq!(node.status().last_index, 5);
}

#[test]
fn restart_from_snapshot_and_entries() {
    let snap = Snapshot {
        meta: SnapshotMeta { index: 4, term: 2 },
        data: Rc::from(&b"s"[..]),
    };
    let r = Restored {
        hard_state: HardState {
            term: 3,
            vote: Some(1),
            recovering: false,
        },
        snapshot: Some(snap),
        entries: vec![entry(5, 2), entry(6, 3)],
        recovering: false,
        blank: false,
    };
    let node = RawNode::new(cfg(1, 3), r, 5);
    node.check_invariants();
    let st = node.status();
    assert_eq!(
        (
            st.term,
            st.commit,
            st.applied,
            st.first_index,
            st.last_index
        ),
        (3, 4, 4, 5, 6)
    );
    assert!(!node.has_ready());
}

// ----- recovery mode -----

fn recovering(term: u64, entries: Vec<Entry>) -> Restored {
    Restored {
        recovering: true,
        ..restored(term, entries)
    }
}

#[test]
fn recovering_node_neither_votes_nor_campaigns() {
    let mut node = RawNode::new(cfg(3, 3), recovering(1, vec![entry(1, 1)]), 9);
    assert!(node.status().recovering);
    // Fresh corruption moves to the next term (see `RawNode::new`).
    assert_eq!(node.status().term, 2);
    node.campaign();
    for _ in 0..100 {
        node.tick();
    }
    assert_eq!(node.status().role, Role::Follower);
    let rd = node.ready();
    assert_eq!(
        rd.hard_state,
        Some(HardState {
            term: 2,
            vote: None,
            recovering: true
        })
    );
    assert!(rd.messages.is_empty());
    node.advance(&rd);
    for pre in [true, false] {
        node.step(vote(1, 3, 5, pre, (10, 4)));
        let rd = node.ready();
        assert_eq!(rd.messages.len(), 1);
        assert_eq!(
            rd.messages[0].body,
            MessageBody::VoteResponse {
                pre,
                granted: false
            }
        );
        node.advance(&rd);
    }
}

/// A replica whose disk came back empty persists nothing until it hears
/// from the cluster, then moves past the term it heard (so the leader it
/// may have acknowledged for before losing its disk steps down), and stays
/// in recovery: it grants no vote.
#[test]
fn a_blank_replica_moves_past_the_first_term_it_hears() {
    let blank = Restored {
        blank: true,
        ..Restored::default()
    };
    let mut node = RawNode::new(cfg(3, 3), blank, 9);
    assert!(node.status().recovering);
    for _ in 0..100 {
        node.tick();
    }
    assert!(!node.has_ready(), "nothing to persist or send yet");
    node.step(Message {
        from: 1,
        to: 3,
        term: 5,
        body: MessageBody::Append {
            prev_index: 7,
            prev_term: 5,
            entries: vec![],
            commit: 7,
            read_ctx: 0,
        },
    });
    assert_eq!(node.status().term, 6);
    let rd = node.ready();
    assert_eq!(
        rd.hard_state,
        Some(HardState {
            term: 6,
            vote: None,
            recovering: true
        })
    );
    assert_eq!(rd.messages.len(), 1);
    assert_eq!(rd.messages[0].term, 6, "the stale leader learns the term");
    node.advance(&rd);
    node.step(vote(2, 3, 7, false, (0, 0)));
    let rd = node.ready();
    assert_eq!(rd.messages[0].body, VOTE_REFUSED);
    node.check_invariants();
}

#[test]
fn recovery_survives_a_clean_restart() {
    let mut node = RawNode::new(cfg(3, 3), recovering(1, vec![]), 9);
    let rd = node.ready();
    let hs = rd.hard_state.unwrap();
    node.advance(&rd);
    // Restart with nothing corrupt: the hard state still says recovering,
    // and the term does not move again.
    let node = RawNode::new(
        cfg(3, 3),
        Restored {
            hard_state: hs,
            ..Restored::default()
        },
        9,
    );
    assert!(node.status().recovering);
    assert_eq!(node.status().term, 2);
}

fn append(
    from: NodeId,
    to: NodeId,
    term: u64,
    prev: (u64, u64),
    entries: Vec<Entry>,
    commit: u64,
) -> Message {
    Message {
        from,
        to,
        term,
        body: MessageBody::Append {
            prev_index: prev.0,
            prev_term: prev.1,
            entries,
            commit,
            read_ctx: 0,
        },
    }
}

/// Why recovery requires an entry of the leader's own term: a new leader
/// only learns the true commit index by committing an entry of its term.
///
/// Node 3 acknowledged 1..=3 (all term 1), which a term-1 leader committed
/// with it, then lost 3 to corruption. Leader 1 of term 3 holds 1..=3 but,
/// freshly elected, its commit index still says 2. If node 3 ended recovery
/// on matching through the leader's commit (2@1), it would then vote for
/// node 2, whose log lacks the committed entry 3, and entry 3 could be lost.
#[test]
fn recovery_needs_a_committed_entry_of_the_leaders_term() {
    let mut node = RawNode::new(cfg(3, 3), recovering(1, vec![entry(1, 1), entry(2, 1)]), 9);
    assert_eq!(node.status().term, 2);
    // Leader 1, term 3, commit index 2 (an old-term entry).
    node.step(append(1, 3, 3, (2, 1), vec![entry(3, 1)], 2));
    node.check_invariants();
    assert!(
        node.status().recovering,
        "left recovery on an old-term commit index"
    );
    // Even fully caught up with the old-term prefix, still recovering.
    node.step(append(1, 3, 3, (3, 1), vec![], 3));
    assert!(node.status().recovering);
    // So it refuses node 2 (log 1..=2 of term 1) in a later election, once
    // leader 1's lease has run out.
    let rd = node.ready();
    node.advance(&rd);
    for _ in 0..20 {
        node.tick();
    }
    node.step(vote(2, 3, 4, false, (3, 1)));
    let rd = node.ready();
    assert!(rd.messages.iter().any(|m| m.body == VOTE_REFUSED));
    node.advance(&rd);
    // Term 4 leader 1 commits its no-op at 4: now node 3 holds an entry the
    // leader committed in its own term, hence every committed entry.
    node.step(append(
        1,
        3,
        4,
        (3, 1),
        vec![Entry {
            term: 4,
            index: 4,
            data: vec![],
        }],
        4,
    ));
    node.check_invariants();
    assert!(!node.status().recovering);
    let rd = node.ready();
    assert_eq!(rd.hard_state.map(|h| h.recovering), Some(false));
}

#[test]
fn recovery_needs_the_entry_to_be_committed() {
    let mut node = RawNode::new(cfg(3, 3), recovering(1, vec![]), 9);
    // Holds a term-3 entry, but the leader has not committed it yet.
    node.step(append(1, 3, 3, (0, 0), vec![entry(1, 3)], 0));
    assert!(node.status().recovering);
    node.step(append(1, 3, 3, (1, 3), vec![], 1));
    assert!(!node.status().recovering);
}

#[test]
fn recovering_replica_rejoins_a_cluster() {
    let mut net = Net::new(3);
    net.elect(1);
    for i in 0..3u8 {
        net.node(1).propose(vec![i]).unwrap();
    }
    net.settle();
    // Node 3 restarts having lost everything after index 2.
    let kept: Vec<Entry> = net.readies[&3]
        .iter()
        .flat_map(|rd| rd.entries.clone())
        .filter(|e| e.index <= 2)
        .collect();
    let hs = HardState {
        term: 1,
        vote: Some(1),
        recovering: false,
    };
    net.nodes.insert(
        3,
        RawNode::new(
            cfg(3, 3),
            Restored {
                hard_state: hs,
                snapshot: None,
                entries: kept,
                recovering: true,
                blank: false,
            },
            3,
        ),
    );
    net.tick_all(60);
    let st = net.status(3);
    assert!(!st.recovering);
    assert!(st.term >= 2);
    let leader = st.leader.unwrap();
    assert_eq!(net.status(3).commit, net.status(leader).commit);
}

// ----- misc -----

#[test]
fn messages_for_someone_else_are_ignored() {
    let mut node = RawNode::new(cfg(1, 3), Restored::default(), 1);
    node.step(vote(2, 3, 9, false, (0, 0)));
    assert_eq!(node.status().term, 0);
    assert!(!node.has_ready());
}

#[test]
fn hard_state_only_when_changed() {
    let mut net = Net::new(3);
    net.elect(1);
    let before = net.readies[&2].len();
    net.node(1).propose(vec![1]).unwrap();
    net.settle();
    assert!(net.readies[&2][before..]
        .iter()
        .all(|rd| rd.hard_state.is_none()));
}

#[test]
fn same_seed_same_behaviour() {
    let run = || {
        let mut net = Net::new(5);
        net.tick_all(50);
        (1..=5).map(|id| net.status(id)).collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn rejected_candidate_does_not_delay_our_timeout() {
    // Node 1 has the longer log; node 2's vote request at a higher term is
    // rejected and must not reset node 1's election timer: it times out
    // exactly when an identical node `b` that saw no vote does.
    let mut a = RawNode::new(cfg(1, 3), restored(1, vec![entry(1, 1), entry(2, 1)]), 4);
    let mut b = RawNode::new(cfg(1, 3), restored(1, vec![entry(1, 1), entry(2, 1)]), 4);
    for _ in 0..5 {
        a.tick();
        b.tick();
    }
    a.step(vote(2, 1, 7, false, (1, 1)));
    assert_eq!(a.status().term, 7);
    let (mut ta, mut tb) = (5, 5);
    while a.status().role == Role::Follower {
        a.tick();
        ta += 1;
    }
    while b.status().role == Role::Follower {
        b.tick();
        tb += 1;
    }
    assert_eq!(ta, tb);
}
