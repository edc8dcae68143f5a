//! What a client asks of a replica: writes through Raft, reads (linearizable or serializable), watches and lease keep-alives.

use std::time::Duration;

use faultline_raft::Role;
use tokio::sync::{mpsc, oneshot};

use super::{Node, Waiter, Watcher, WriteResult, INTERNAL_CLIENT_BASE};
use crate::codec;
use crate::ops::{Command, Op, OpResult, RangeRequest, RangeResponse, StoreError};
use crate::proto::{self, Frame, Response, ServerError, StatusInfo};

impl Node {
    fn leader_addr(&self) -> Option<String> {
        let leader = self.raft.borrow().status().leader?;
        self.cfg.members.get(&leader).cloned()
    }

    pub(super) fn not_leader(&self) -> ServerError {
        ServerError::NotLeader {
            leader: self.leader_addr(),
        }
    }

    pub(super) fn status(&self) -> StatusInfo {
        let s = self.raft.borrow().status();
        StatusInfo {
            id: s.id,
            term: s.term,
            leader: s.leader,
            is_leader: s.role == Role::Leader,
            commit: s.commit,
            applied: s.applied,
            revision: self.mvcc.borrow().revision(),
            digest: self.mvcc.borrow().digest(),
            recovering: s.recovering,
        }
    }

    /// Proposes `cmd` and waits for it to apply.
    pub(super) async fn write(&self, cmd: Command) -> WriteResult {
        let data = codec::encode(&cmd).map_err(|e| ServerError::BadRequest(e.to_string()))?;
        if data.len() > proto::MAX_CLIENT_FRAME {
            return Err(ServerError::BadRequest(format!(
                "request of {} bytes is too large",
                data.len()
            )));
        }
        if self.disk_failed.get() {
            return Err(ServerError::Unavailable("disk failing".into()));
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut raft = self.raft.borrow_mut();
            let index = match raft.propose(data) {
                Ok(i) => i,
                Err(_) => {
                    drop(raft);
                    return Err(self.not_leader());
                }
            };
            let term = raft.status().term;
            self.writers.borrow_mut().insert(index, Waiter { term, tx });
        }
        self.wake.notify_one();
        if self.cfg.bugs.ack_before_commit {
            // BUG (deliberate, test-only): acknowledge before commit.
            let rev = self.mvcc.borrow().revision() + 1;
            return Ok((rev, fake_result(&cmd.op)));
        }
        match self.env.timeout(self.cfg.request_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(self.not_leader()),
            Err(_) => Err(ServerError::Timeout),
        }
    }

    /// Serves a range read.
    pub(super) async fn read(
        &self,
        range: RangeRequest,
        linearizable: bool,
    ) -> Result<(i64, RangeResponse), ServerError> {
        if linearizable && !self.cfg.bugs.stale_reads {
            let ctx = self.next_read_ctx.get();
            self.next_read_ctx.set(ctx + 1);
            let (tx, rx) = oneshot::channel();
            if self.raft.borrow_mut().read_index(ctx).is_err() {
                return Err(self.not_leader());
            }
            self.read_ctx.borrow_mut().insert(ctx, tx);
            self.wake.notify_one();
            let index = match self.env.timeout(self.cfg.request_timeout, rx).await {
                Ok(Ok(i)) => i,
                Ok(Err(_)) => return Err(self.not_leader()),
                Err(_) => return Err(ServerError::Timeout),
            };
            if self.mvcc.borrow().applied_index() < index {
                let (tx, rx) = oneshot::channel();
                self.apply_waiters
                    .borrow_mut()
                    .entry(index)
                    .or_default()
                    .push(tx);
                match self.env.timeout(self.cfg.request_timeout, rx).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => {
                        return Err(ServerError::Unavailable("state machine reset".into()))
                    }
                    Err(_) => return Err(ServerError::Timeout),
                }
            }
        }
        let mvcc = self.mvcc.borrow();
        let r = mvcc.range(&range).map_err(ServerError::Store)?;
        Ok((mvcc.revision(), r))
    }

    /// Registers a watcher and sends its catch-up events.
    pub(super) async fn watch(
        &self,
        conn: u64,
        id: u64,
        key: Vec<u8>,
        range_end: Vec<u8>,
        start_revision: i64,
        tx: mpsc::Sender<Frame>,
    ) {
        let (catch_up, next_revision) = {
            let mvcc = self.mvcc.borrow();
            let current = mvcc.revision();
            if start_revision > 0 && start_revision <= current {
                match mvcc.events_since(start_revision, &key, &range_end, usize::MAX) {
                    Ok(ev) => (ev, current + 1),
                    Err(error) => {
                        let _ = tx.try_send(Frame::Response {
                            id,
                            response: Response::WatchEnded { error },
                        });
                        return;
                    }
                }
            } else {
                (Vec::new(), start_revision.max(current + 1))
            }
        };
        for chunk in catch_up.chunks(256) {
            if tx
                .send(Frame::Response {
                    id,
                    response: Response::Events {
                        events: chunk.to_vec(),
                    },
                })
                .await
                .is_err()
            {
                return;
            }
        }
        // Events applied while the catch-up was being sent.
        let missed = {
            let mvcc = self.mvcc.borrow();
            if mvcc.revision() >= next_revision {
                mvcc.events_since(next_revision, &key, &range_end, usize::MAX)
            } else {
                Ok(Vec::new())
            }
        };
        let next_revision = match missed {
            Ok(ev) => {
                let next = ev
                    .last()
                    .map(|e| e.kv.mod_revision + 1)
                    .unwrap_or(next_revision);
                let next = next.max(self.mvcc.borrow().revision() + 1);
                if !ev.is_empty() {
                    let _ = tx.try_send(Frame::Response {
                        id,
                        response: Response::Events { events: ev },
                    });
                }
                next
            }
            Err(error) => {
                let _ = tx.try_send(Frame::Response {
                    id,
                    response: Response::WatchEnded { error },
                });
                return;
            }
        };
        self.watchers.borrow_mut().push(Watcher {
            key,
            range_end,
            next_revision,
            tx,
            conn,
            id,
        });
    }

    pub(super) fn keep_alive(&self, lease: i64) -> Result<i64, ServerError> {
        if self.raft.borrow().status().role != Role::Leader {
            return Err(self.not_leader());
        }
        let ttl = self
            .mvcc
            .borrow()
            .leases()
            .find(|(id, _)| *id == lease)
            .map(|(_, ttl)| ttl)
            .ok_or(ServerError::Store(StoreError::LeaseNotFound { id: lease }))?;
        let deadline = self.env.now() + Duration::from_millis(ttl.max(0) as u64);
        self.lease_deadlines.borrow_mut().insert(lease, deadline);
        Ok(ttl)
    }

    /// Proposes an internal command (lease expiry, compaction) as leader.
    pub(super) fn propose_internal(&self, op: Op) {
        let mut raft = self.raft.borrow_mut();
        let status = raft.status();
        if status.role != Role::Leader {
            return;
        }
        // The next log index is unique for this replica's client id across
        // its whole life, so the session table never mistakes two internal
        // proposals for a retry.
        let seq = status.last_index + 1;
        let cmd = Command {
            client: INTERNAL_CLIENT_BASE + self.cfg.id,
            seq,
            first_incomplete: seq,
            op,
        };
        let data = codec::encode(&cmd).expect("internal commands encode");
        let _ = raft.propose(data);
        drop(raft);
        self.wake.notify_one();
    }
}

fn fake_result(op: &Op) -> OpResult {
    match op {
        Op::Put(_) => OpResult::Put { prev_kv: None },
        Op::DeleteRange(_) => OpResult::DeleteRange {
            deleted: 1,
            prev_kvs: Vec::new(),
        },
        Op::Txn(_) => OpResult::Txn(crate::ops::TxnResponse {
            succeeded: true,
            responses: Vec::new(),
        }),
        Op::Compact { .. } => OpResult::Compact,
        Op::LeaseGrant { id, ttl_ms } => OpResult::LeaseGrant {
            id: *id,
            ttl_ms: *ttl_ms,
        },
        Op::LeaseRevoke { .. } => OpResult::LeaseRevoke,
    }
}
