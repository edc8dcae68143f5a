//! Linearizable reads without log writes (thesis §6.4): the leader records
//! its commit index when a read arrives and serves it once a quorum has
//! acknowledged a message sent after the read, proving it was still leader.

use std::collections::{BTreeSet, VecDeque};

use crate::types::{NodeId, ReadState};

/// One read waiting for confirmation.
#[derive(Debug)]
struct PendingRead {
    /// The shell's context, handed back in the `ReadState`.
    ctx: u64,
    /// Our own sequence number for the read: what travels as `read_ctx`.
    seq: u64,
    /// The commit index to serve at; `None` until the leader has committed
    /// an entry of its own term (before that its commit index may be stale).
    index: Option<u64>,
    /// Followers that answered a message carrying `read_ctx >= seq`.
    acks: BTreeSet<NodeId>,
}

/// A leader's pending reads, in `ctx` order.
#[derive(Debug, Default)]
pub(crate) struct ReadQueue {
    pending: VecDeque<PendingRead>,
    /// Sequence number of the newest read; attached to every outgoing
    /// `Append` as `read_ctx`. Ours rather than the shell's `ctx` so that it
    /// strictly increases whatever the shell passes: an answer carrying an
    /// older number must never confirm a newer read.
    pub latest_seq: u64,
}

impl ReadQueue {
    /// Registers a read.
    pub fn add(&mut self, ctx: u64, index: Option<u64>) {
        self.latest_seq += 1;
        let seq = self.latest_seq;
        self.pending.push_back(PendingRead {
            ctx,
            seq,
            index,
            acks: BTreeSet::new(),
        });
    }

    /// `from` answered a message that carried `read_ctx`.
    pub fn ack(&mut self, from: NodeId, read_ctx: u64) {
        for r in self.pending.iter_mut().take_while(|r| r.seq <= read_ctx) {
            r.acks.insert(from);
        }
    }

    /// The leader committed its first entry of its term at `commit`.
    pub fn set_index(&mut self, commit: u64) {
        for r in self.pending.iter_mut().filter(|r| r.index.is_none()) {
            r.index = Some(commit);
        }
    }

    /// Reads confirmed by `quorum` (counting the leader itself), in order.
    pub fn pop_confirmed(&mut self, quorum: usize, out: &mut Vec<ReadState>) {
        // Later reads have at most the acks of earlier ones, so stop at the
        // first unconfirmed one.
        while let Some(r) = self.pending.front() {
            match r.index {
                Some(index) if r.acks.len() + 1 >= quorum => {
                    out.push(ReadState { ctx: r.ctx, index });
                    self.pending.pop_front();
                }
                _ => break,
            }
        }
    }

    /// Drops every pending read (leadership lost: they can never be served
    /// by this node; the shell times them out).
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// Whether any read awaits confirmation.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}
