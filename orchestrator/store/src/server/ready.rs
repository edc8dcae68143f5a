//! The ready loop and the ticker: persisting Raft's output, sending it, applying committed entries, feeding watchers, housekeeping and snapshots.

use std::rc::Rc;
use std::time::Duration;

use faultline_env::Observation;
use faultline_raft::{Message, MessageBody, Ready, Role, Snapshot, SnapshotMeta};
use tokio::sync::mpsc;

use super::{Node, RAFT_GROUP};
use crate::codec;
use crate::mvcc::Mvcc;
use crate::ops::{Command, Event, Op, StoreError};
use crate::proto::{Frame, Response};
use crate::storage::Storage;

impl Node {
    fn send(&self, messages: Vec<Message>) {
        for m in messages {
            if let Some(q) = self.peers.get(&m.to) {
                // A full queue means the peer is far behind or gone: drop,
                // Raft will resend what still matters.
                let _ = q.try_send(m);
            }
        }
    }

    /// Applies committed entries and answers whoever waits for them.
    fn apply(&self, entries: &[faultline_raft::Entry]) {
        for e in entries {
            let mut events: Vec<Event> = Vec::new();
            let result = {
                let mut mvcc = self.mvcc.borrow_mut();
                if e.data.is_empty() {
                    mvcc.apply_noop(e.index);
                    None
                } else {
                    let cmd: Command = codec::decode(&e.data)
                        .expect("committed entries were encoded by a replica");
                    let applied = mvcc.apply(e.index, &cmd);
                    events = applied.events;
                    Some((applied.revision, applied.result))
                }
            };
            self.applied_term.set(e.term);
            self.env.observe(Observation::RaftApplied {
                group: RAFT_GROUP,
                node: self.cfg.id,
                index: e.index,
                term: e.term,
                digest: xxhash_rust::xxh3::xxh3_64(&e.data),
            });
            // Answer the writer of this index, if it is still ours.
            let waiter = self.writers.borrow_mut().remove(&e.index);
            if let Some(w) = waiter {
                let r = match (&result, w.term == e.term) {
                    (Some((rev, res)), true) => Ok((*rev, res.clone())),
                    _ => Err(self.not_leader()),
                };
                let _ = w.tx.send(r);
            }
            if !events.is_empty() {
                self.notify_watchers(&events);
            }
        }
        if let Some(last) = entries.last() {
            let ready: Vec<u64> = self
                .apply_waiters
                .borrow()
                .range(..=last.index)
                .map(|(i, _)| *i)
                .collect();
            for i in ready {
                for tx in self
                    .apply_waiters
                    .borrow_mut()
                    .remove(&i)
                    .unwrap_or_default()
                {
                    let _ = tx.send(());
                }
            }
        }
    }

    fn watch_progress(&self) {
        self.watchers.borrow_mut().retain(|w| {
            let progress = Frame::Response {
                id: w.id,
                response: Response::Events { events: Vec::new() },
            };
            !matches!(
                w.tx.try_send(progress),
                Err(mpsc::error::TrySendError::Closed(_))
            )
        });
    }

    /// After a snapshot replaced the state machine: sends every watcher the
    /// events it has not seen yet (each exactly once), or ends it with
    /// `Compacted` when they are no longer kept.
    fn catch_up_watchers(&self) {
        let mvcc = self.mvcc.borrow();
        let current = mvcc.revision();
        self.watchers.borrow_mut().retain_mut(|w| {
            if w.next_revision > current {
                return !w.tx.is_closed();
            }
            let response = match mvcc.events_since(w.next_revision, &w.key, &w.range_end, 0) {
                Ok(events) => {
                    w.next_revision = current + 1;
                    if events.is_empty() {
                        return !w.tx.is_closed();
                    }
                    Response::Events { events }
                }
                Err(error) => Response::WatchEnded { error },
            };
            let ended = matches!(response, Response::WatchEnded { .. });
            match w.tx.try_send(Frame::Response { id: w.id, response }) {
                Ok(()) => !ended,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let _ = w.tx.try_send(Frame::Response {
                        id: w.id,
                        response: Response::WatchEnded {
                            error: StoreError::InvalidRequest {
                                detail: "watcher fell behind and was cancelled".into(),
                            },
                        },
                    });
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    fn notify_watchers(&self, events: &[Event]) {
        let mut watchers = self.watchers.borrow_mut();
        watchers.retain_mut(|w| {
            let mine: Vec<Event> = events
                .iter()
                .filter(|e| {
                    e.kv.mod_revision >= w.next_revision
                        && crate::ops::in_range(&e.kv.key, &w.key, &w.range_end)
                })
                .cloned()
                .collect();
            if let Some(last) = events.last() {
                w.next_revision = w.next_revision.max(last.kv.mod_revision + 1);
            }
            if mine.is_empty() {
                return !w.tx.is_closed();
            }
            let id = w.id;
            match w.tx.try_send(Frame::Response {
                id,
                response: Response::Events { events: mine },
            }) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // A watcher that cannot keep up is cancelled rather than
                    // silently skipping events.
                    let _ = w.tx.try_send(Frame::Response {
                        id,
                        response: Response::WatchEnded {
                            error: StoreError::InvalidRequest {
                                detail: "watcher fell behind and was cancelled".into(),
                            },
                        },
                    });
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Reacts to role changes after a Ready.
    fn after_ready(&self) {
        let status = self.raft.borrow().status();
        if status.role == Role::Leader {
            if self.led_term.get() != status.term {
                self.led_term.set(status.term);
                self.env
                    .trace(format_args!("store leader term {}", status.term));
                self.env.observe(Observation::RaftLeader {
                    group: RAFT_GROUP,
                    node: self.cfg.id,
                    term: status.term,
                });
                // A new leader cannot know when leases were last renewed:
                // give each a full TTL, as etcd does on promotion.
                let now = self.env.now();
                let mut deadlines = self.lease_deadlines.borrow_mut();
                deadlines.clear();
                for (id, ttl) in self.mvcc.borrow().leases() {
                    deadlines.insert(id, now + Duration::from_millis(ttl.max(0) as u64));
                }
                self.lease_revoking.borrow_mut().clear();
            }
        } else if self.led_term.get() != 0 {
            self.led_term.set(0);
            // Not the leader any more: pending reads cannot be confirmed.
            self.read_ctx.borrow_mut().clear();
            self.lease_deadlines.borrow_mut().clear();
        }
    }

    /// Leader housekeeping on every tick: expire leases, compact history.
    fn housekeeping(&self) {
        if self.led_term.get() == 0 {
            return;
        }
        let now = self.env.now();
        let expired: Vec<i64> = {
            let known: Vec<(i64, i64)> = self.mvcc.borrow().leases().collect();
            let mut deadlines = self.lease_deadlines.borrow_mut();
            deadlines.retain(|id, _| known.iter().any(|(k, _)| k == id));
            // A lease granted since the last look gets its full TTL from now.
            for (id, ttl) in known {
                deadlines
                    .entry(id)
                    .or_insert(now + Duration::from_millis(ttl.max(0) as u64));
            }
            let revoking = self.lease_revoking.borrow();
            deadlines
                .iter()
                .filter(|(id, d)| {
                    **d <= now
                        && revoking
                            .get(id)
                            .is_none_or(|at| *at + Duration::from_secs(5) <= now)
                })
                .map(|(id, _)| *id)
                .collect()
        };
        for id in expired {
            self.lease_revoking.borrow_mut().insert(id, now);
            self.propose_internal(Op::LeaseRevoke { id });
        }
        let (rev, compacted) = {
            let m = self.mvcc.borrow();
            (m.revision(), m.compact_revision())
        };
        if rev - compacted > 2 * self.cfg.keep_revisions {
            self.propose_internal(Op::Compact {
                revision: rev - self.cfg.keep_revisions,
            });
        }
    }
}

pub(super) async fn ticker(node: Rc<Node>) {
    let mut next = node.env.now();
    let mut last_progress = next;
    loop {
        next += node.cfg.tick;
        node.env.sleep_until(next).await;
        node.raft.borrow_mut().tick();
        node.housekeeping();
        node.wake.notify_one();
        if next - last_progress >= WATCH_PROGRESS_EVERY {
            last_progress = next;
            node.watch_progress();
        }
    }
}

/// Watchers get an empty batch this often, so a client can tell a quiet
/// watch from a dead connection (etcd's progress notifications).
pub const WATCH_PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Retries a storage operation until it succeeds, marking the replica as
/// failing meanwhile (it acknowledges nothing while its disk fails).
macro_rules! retry_disk {
    ($node:expr, $what:expr, $op:expr) => {{
        let mut backoff = Duration::from_millis(10);
        loop {
            match $op.await {
                Ok(v) => {
                    $node.disk_failed.set(false);
                    break v;
                }
                Err(e) => {
                    $node.disk_failed.set(true);
                    $node
                        .env
                        .trace(format_args!("store disk error during {}: {}", $what, e));
                    $node.env.sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }};
}

pub(super) async fn ready_loop(node: Rc<Node>, mut storage: Storage) {
    loop {
        node.wake.notified().await;
        loop {
            let rd = {
                let mut raft = node.raft.borrow_mut();
                if !raft.has_ready() {
                    break;
                }
                raft.ready()
            };
            handle_ready(&node, &mut storage, rd).await;
        }
    }
}

async fn handle_ready(node: &Rc<Node>, storage: &mut Storage, mut rd: Ready) {
    if let Some(snap) = &rd.snapshot {
        retry_disk!(node, "save snapshot", storage.save_snapshot(snap));
        let mvcc = Mvcc::restore(&snap.data)
            .expect("snapshots from the leader were checksummed on the wire");
        *node.mvcc.borrow_mut() = mvcc;
        node.applied_term.set(snap.meta.term);
        node.snapshot_index.set(snap.meta.index);
        node.env.trace(format_args!(
            "store installed snapshot at {}",
            snap.meta.index
        ));
        // The snapshot carries the history since its compact revision:
        // each watcher is caught up from the revision it expects next, or
        // ended with `Compacted` if that revision is gone.
        node.catch_up_watchers();
    }
    // A leader may replicate entries while it persists them itself (Raft
    // thesis §10.2.1): it counts its own copy towards a quorum only once
    // `advance` confirms it is durable. This saves one fsync of latency per
    // write. Only appends and snapshots go early, and only when this batch
    // changes no term or vote: a vote or a new term must be durable before
    // anyone hears of it.
    if rd.hard_state.is_none() && node.raft.borrow().status().role == Role::Leader {
        let (early, rest): (Vec<Message>, Vec<Message>) =
            std::mem::take(&mut rd.messages).into_iter().partition(|m| {
                matches!(
                    m.body,
                    MessageBody::Append { .. } | MessageBody::InstallSnapshot { .. }
                )
            });
        node.send(early);
        rd.messages = rest;
    }
    if !rd.entries.is_empty() {
        retry_disk!(node, "append", storage.append(&rd.entries));
    }
    if let Some(hs) = rd.hard_state {
        retry_disk!(node, "hard state", storage.set_hard_state(hs));
    }
    node.send(std::mem::take(&mut rd.messages));
    node.apply(&rd.committed_entries);
    for rs in &rd.read_states {
        let ready: Vec<u64> = node
            .read_ctx
            .borrow()
            .range(..=rs.ctx)
            .map(|(c, _)| *c)
            .collect();
        for ctx in ready {
            if let Some(tx) = node.read_ctx.borrow_mut().remove(&ctx) {
                let _ = tx.send(rs.index);
            }
        }
    }
    node.raft.borrow_mut().advance(&rd);
    // The full check walks the whole in-memory log: sample it.
    let n = node.readies.get() + 1;
    node.readies.set(n);
    if n.is_multiple_of(64) {
        node.raft.borrow().check_invariants();
    }
    node.after_ready();
    maybe_snapshot(node, storage).await;
}

async fn maybe_snapshot(node: &Rc<Node>, storage: &mut Storage) {
    let applied = node.mvcc.borrow().applied_index();
    if applied < node.snapshot_index.get() + node.cfg.snapshot_every {
        return;
    }
    let snap = Snapshot {
        meta: SnapshotMeta {
            index: applied,
            term: node.applied_term.get(),
        },
        data: node.mvcc.borrow().snapshot().into(),
    };
    retry_disk!(node, "snapshot", storage.save_snapshot(&snap));
    node.snapshot_index.set(applied);
    node.env.trace(format_args!("store snapshot at {applied}"));
    node.raft.borrow_mut().compact(snap);
}
