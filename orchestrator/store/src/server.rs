//! A store replica: the async shell around a [`RawNode`] and an [`Mvcc`].
//!
//! Tasks (all spawned through the host's [`Env`], so a crash drops them):
//! - the **ready loop** takes each `Ready` batch, persists it (group commit:
//!   whatever accumulated while the previous fsync ran goes in one write and
//!   one sync), sends messages, applies committed entries, answers writers,
//!   watchers and readers, and takes snapshots;
//! - the **ticker** ticks Raft and, on the leader, expires leases and
//!   compacts old revisions;
//! - one **sender** per peer keeps a connection and writes queued messages,
//!   dropping them while the peer is unreachable (Raft retries by itself);
//! - one **connection handler** per inbound connection (peer or client).
//!
//! Disk errors stall the ready loop, which retries with backoff: a replica
//! whose disk fails stops acknowledging, the rest of the cluster carries
//! on, and nothing unpersisted is ever acknowledged.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use faultline_env::{BoxConn, Env, Observation};
use faultline_raft::{
    Config as RaftConfig, Message, MessageBody, NodeId, RawNode, Ready, Role, Snapshot,
    SnapshotMeta,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio::time::Instant;

use crate::codec;
use crate::mvcc::Mvcc;
use crate::ops::{Command, Event, Op, OpResult, RangeRequest, RangeResponse, StoreError};
use crate::proto::{
    self, Frame, FrameError, FrameReader, Request, Response, ServerError, StatusInfo,
};
use crate::storage::{Storage, StorageError};

/// The Raft group id reported to the simulator's safety monitor.
pub const RAFT_GROUP: u64 = 1;

/// Client ids at or above this are the replicas' own internal proposals
/// (lease expiry, compaction).
const INTERNAL_CLIENT_BASE: u64 = u64::MAX - 1024;

/// Deliberate bugs, for proving that the checkers catch a broken store.
/// Never enable outside tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bugs {
    /// Acknowledge a write as soon as the leader has proposed it, before it
    /// is committed (a leader crash then loses acknowledged writes).
    pub ack_before_commit: bool,
    /// Serve linearizable reads from any replica's local state without a
    /// read-index round (followers answer stale reads).
    pub stale_reads: bool,
    /// A member that comes back with an empty disk starts as a brand-new
    /// replica (term 0, no vote cast) instead of a blank one that stays in
    /// recovery: it may vote again in a term it already voted in, and help
    /// elect a leader that lacks entries it had acknowledged.
    #[serde(default)]
    pub rejoin_as_new: bool,
}

/// How to run one replica.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub id: NodeId,
    /// Port to serve peers and clients on.
    pub port: u16,
    /// Every member, this one included: id -> `host:port`.
    pub members: BTreeMap<NodeId, String>,
    /// Length of one Raft tick.
    pub tick: Duration,
    pub election_ticks: u32,
    pub heartbeat_ticks: u32,
    /// Take a snapshot (and truncate the log) every this many applied entries.
    pub snapshot_every: u64,
    /// Keep this many revisions of history; older ones are compacted.
    pub keep_revisions: i64,
    /// How long the server waits for a write to commit or a read to be
    /// confirmed before answering `Timeout`.
    pub request_timeout: Duration,
    pub bugs: Bugs,
    /// This replica was a member before (etcd's `initial-cluster-state =
    /// existing`): an empty disk means its data was lost, not that the
    /// cluster is new, and it must rejoin without voting until repaired.
    pub rejoin: bool,
}

impl StoreConfig {
    /// Defaults in the spirit of etcd: 100 ms heartbeats, 1-2 s elections.
    pub fn new(id: NodeId, port: u16, members: BTreeMap<NodeId, String>) -> StoreConfig {
        StoreConfig {
            id,
            port,
            members,
            tick: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 1,
            // etcd's default: snapshots serialise the whole state machine
            // inside the ready loop, so they should be rare.
            snapshot_every: 100_000,
            keep_revisions: 100_000,
            request_timeout: Duration::from_secs(5),
            bugs: Bugs::default(),
            rejoin: false,
        }
    }
}

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("cannot restore the state machine from the snapshot: {0}")]
    Snapshot(#[from] codec::CodecError),
    #[error("cannot listen on port {port}: {source}")]
    Bind { port: u16, source: std::io::Error },
}

type WriteResult = Result<(i64, OpResult), ServerError>;

struct Waiter {
    term: u64,
    tx: oneshot::Sender<WriteResult>,
}

struct Watcher {
    key: Vec<u8>,
    range_end: Vec<u8>,
    /// Next revision this watcher expects.
    next_revision: i64,
    tx: mpsc::Sender<Frame>,
    /// The connection it came on and the request id its events answer.
    conn: u64,
    id: u64,
}

/// The shared state of a replica.
struct Node {
    env: Env,
    cfg: StoreConfig,
    raft: RefCell<RawNode>,
    mvcc: RefCell<Mvcc>,
    wake: Notify,
    /// Writers waiting for their entry to apply, by log index.
    writers: RefCell<BTreeMap<u64, Waiter>>,
    /// Readers waiting for read-index confirmation, by context.
    read_ctx: RefCell<BTreeMap<u64, oneshot::Sender<u64>>>,
    next_read_ctx: Cell<u64>,
    /// Readers waiting for the state machine to reach an index.
    apply_waiters: RefCell<BTreeMap<u64, Vec<oneshot::Sender<()>>>>,
    watchers: RefCell<Vec<Watcher>>,
    /// Lease deadlines, tracked by the leader only (as in etcd).
    lease_deadlines: RefCell<BTreeMap<i64, Instant>>,
    lease_revoking: RefCell<BTreeMap<i64, Instant>>,
    peers: BTreeMap<NodeId, mpsc::Sender<Message>>,
    led_term: Cell<u64>,
    applied_term: Cell<u64>,
    snapshot_index: Cell<u64>,
    disk_failed: Cell<bool>,
    /// Ready batches handled so far.
    readies: Cell<u64>,
}

/// Runs a replica until its host crashes. Returns only if it cannot start.
pub async fn serve(env: Env, cfg: StoreConfig) -> Result<(), ServeError> {
    let (storage, mut restored, report) = Storage::open(env.disk_rc()).await?;
    restored.blank = cfg.rejoin
        && !cfg.bugs.rejoin_as_new
        && restored.snapshot.is_none()
        && restored.entries.is_empty()
        && restored.hard_state == Default::default();
    env.trace(format_args!(
        "store open: {} entries, snapshot {:?}, torn_tail {}, corruption {:?}, recovering {}, blank {}",
        report.entries,
        report.snapshot_index,
        report.torn_tail,
        report.corruption,
        restored.recovering,
        restored.blank
    ));
    let mvcc = match &restored.snapshot {
        Some(s) => Mvcc::restore(&s.data)?,
        None => Mvcc::new(),
    };
    let snapshot_meta = restored
        .snapshot
        .as_ref()
        .map(|s| s.meta)
        .unwrap_or_default();
    let mut raft_cfg = RaftConfig::new(cfg.id, cfg.members.keys().copied().collect());
    raft_cfg.election_ticks = cfg.election_ticks;
    raft_cfg.heartbeat_ticks = cfg.heartbeat_ticks;
    let seed = rand::RngCore::next_u64(&mut *env.rng());
    let raft = RawNode::new(raft_cfg, restored, seed);

    let listener = env
        .net()
        .bind(cfg.port)
        .await
        .map_err(|source| ServeError::Bind {
            port: cfg.port,
            source,
        })?;

    let mut peers = BTreeMap::new();
    for (&id, addr) in &cfg.members {
        if id == cfg.id {
            continue;
        }
        let (tx, rx) = mpsc::channel(4096);
        peers.insert(id, tx);
        env.spawn(peer_sender(env.clone(), cfg.id, addr.clone(), rx));
    }

    let node = Rc::new(Node {
        env: env.clone(),
        cfg,
        raft: RefCell::new(raft),
        mvcc: RefCell::new(mvcc),
        wake: Notify::new(),
        writers: RefCell::new(BTreeMap::new()),
        read_ctx: RefCell::new(BTreeMap::new()),
        next_read_ctx: Cell::new(1),
        apply_waiters: RefCell::new(BTreeMap::new()),
        watchers: RefCell::new(Vec::new()),
        lease_deadlines: RefCell::new(BTreeMap::new()),
        lease_revoking: RefCell::new(BTreeMap::new()),
        peers,
        led_term: Cell::new(0),
        applied_term: Cell::new(snapshot_meta.term),
        snapshot_index: Cell::new(snapshot_meta.index),
        disk_failed: Cell::new(false),
        readies: Cell::new(0),
    });

    env.spawn(ready_loop(node.clone(), storage));
    env.spawn(ticker(node.clone()));
    node.wake.notify_one();
    accept_loop(node, listener).await;
    Ok(())
}

async fn accept_loop(node: Rc<Node>, mut listener: Box<dyn faultline_env::Listener>) {
    let mut next_conn = 0u64;
    loop {
        match listener.accept().await {
            Ok((conn, _peer)) => {
                next_conn += 1;
                node.env.spawn(handle_conn(node.clone(), conn, next_conn));
            }
            Err(e) => {
                node.env.trace(format_args!("store accept error: {e}"));
                node.env.sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A peer connection that has not been acknowledged for this long is dead.
const PEER_ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a receiver acknowledges a peer connection.
const PEER_ACK_EVERY: Duration = Duration::from_millis(500);
/// An inbound peer connection silent for this long is closed.
const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps a connection to one peer and writes its queued messages.
async fn peer_sender(env: Env, from: NodeId, addr: String, mut rx: mpsc::Receiver<Message>) {
    let mut backoff = Duration::from_millis(50);
    let mut pending: Option<Message> = None;
    loop {
        // Wait for something to send before dialling.
        if pending.is_none() {
            match rx.recv().await {
                Some(m) => pending = Some(m),
                None => return,
            }
        }
        let conn = env
            .timeout(Duration::from_millis(500), env.net().connect(&addr))
            .await;
        let conn = match conn {
            Ok(Ok(c)) => c,
            _ => {
                // Unreachable: what was queued is stale by the time we get
                // through; Raft will resend what still matters.
                pending = None;
                while rx.try_recv().is_ok() {}
                env.sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let (read, mut write) = proto::split(conn);
        // Acks from the receiver prove the path works both ways; the ack
        // reader raises `dead` when they stop (or the connection closes).
        // One watchdog per connection, not a timer per message: this loop
        // runs for every Raft message of the simulation.
        let dead = Rc::new(Notify::new());
        let acks = {
            let (dead, env, addr) = (dead.clone(), env.clone(), addr.clone());
            env.clone().spawn(async move {
                let mut reader = FrameReader::new(read, 1024);
                while let Ok(Ok(Frame::Ack)) = env.timeout(PEER_ACK_TIMEOUT, reader.next()).await {}
                env.trace(format_args!(
                    "store: connection to {addr} unacknowledged, redialling"
                ));
                dead.notify_one();
            })
        };
        let hello = proto::encode_frame(&Frame::Hello { from }).expect("hello encodes");
        let mut buf = hello;
        loop {
            if let Some(msg) = pending.take() {
                push_raft_frame(&mut buf, msg);
            }
            while buf.len() < (1 << 20) {
                match rx.try_recv() {
                    Ok(m) => push_raft_frame(&mut buf, m),
                    Err(_) => break,
                }
            }
            if !buf.is_empty() {
                // A peer that stops reading (partitioned, frozen) stops
                // acking too: the watchdog ends the write.
                let ok = tokio::select! {
                    biased;
                    r = write.write_all(&buf) => r.is_ok(),
                    _ = dead.notified() => false,
                };
                buf.clear();
                if !ok {
                    break;
                }
            }
            tokio::select! {
                biased;
                m = rx.recv() => match m {
                    Some(m) => pending = Some(m),
                    None => return,
                },
                _ = dead.notified() => break,
            }
        }
        acks.abort();
    }
}

fn push_raft_frame(buf: &mut Vec<u8>, msg: Message) {
    codec::encode_framed(&Frame::Raft(msg), buf).expect("raft messages fit in a frame");
}

/// Serves one inbound connection: a peer (after `Hello`) or a client.
async fn handle_conn(node: Rc<Node>, conn: BoxConn, conn_id: u64) {
    let (read, mut write) = proto::split(conn);
    let mut reader = FrameReader::new(read, proto::MAX_CLIENT_FRAME);
    let first = match reader.next().await {
        Ok(f) => f,
        Err(_) => return,
    };
    if let Frame::Hello { from } = first {
        if !node.cfg.members.contains_key(&from) {
            return;
        }
        reader.set_max(codec::MAX_RECORD_LEN);
        let env = node.env.clone();
        let acker = node.env.spawn(async move {
            let ack = proto::encode_frame(&Frame::Ack).expect("ack encodes");
            loop {
                if !matches!(
                    env.timeout(Duration::from_secs(1), write.write_all(&ack))
                        .await,
                    Ok(Ok(()))
                ) {
                    return;
                }
                env.sleep(PEER_ACK_EVERY).await;
            }
        });
        loop {
            match node.env.timeout(PEER_IDLE_TIMEOUT, reader.next()).await {
                Ok(Ok(Frame::Raft(msg))) if msg.from == from && msg.to == node.cfg.id => {
                    node.raft.borrow_mut().step(msg);
                    node.wake.notify_one();
                }
                _ => break,
            }
        }
        acker.abort();
        return;
    }
    // A client: responses (and watch events) go through one writer task.
    let (tx, mut rx) = mpsc::channel::<Frame>(1024);
    let writer = node.env.spawn(async move {
        while let Some(frame) = rx.recv().await {
            let mut buf = proto::encode_frame(&frame).expect("responses encode");
            while let Ok(f) = rx.try_recv() {
                buf.extend(proto::encode_frame(&f).expect("responses encode"));
            }
            if write.write_all(&buf).await.is_err() {
                return;
            }
        }
    });
    // A client may have this many requests in flight; past that, we stop
    // reading its connection (TCP back-pressure) instead of piling up tasks.
    let slots = Arc::new(Semaphore::new(MAX_REQUESTS_IN_FLIGHT));
    let mut frame = Ok(first);
    loop {
        match frame {
            Ok(Frame::Request { id, request }) => {
                let permit = slots.clone().acquire_owned().await.expect("never closed");
                let node = node.clone();
                let tx = tx.clone();
                node.env.clone().spawn(async move {
                    if let Some(response) = handle_request(&node, id, conn_id, request, &tx).await {
                        let _ = tx.send(Frame::Response { id, response }).await;
                    }
                    drop(permit);
                });
            }
            Ok(_) => {
                let response = Response::Error(ServerError::BadRequest("unexpected frame".into()));
                let _ = tx.send(Frame::Response { id: 0, response }).await;
                break;
            }
            Err(FrameError::Closed) => break,
            Err(e) => {
                node.env
                    .trace(format_args!("store: dropping client connection: {e}"));
                break;
            }
        }
        frame = reader.next().await;
    }
    node.watchers.borrow_mut().retain(|w| w.conn != conn_id);
    drop(tx);
    // Let the last responses go out, but not wait forever on a client that
    // stopped reading.
    let abort = writer.abort_handle();
    if node
        .env
        .timeout(Duration::from_secs(5), writer)
        .await
        .is_err()
    {
        abort.abort();
    }
}

/// Requests one client connection may have in flight.
const MAX_REQUESTS_IN_FLIGHT: usize = 256;

/// Handles one request; `None` when the response was already streamed.
async fn handle_request(
    node: &Rc<Node>,
    id: u64,
    conn_id: u64,
    request: Request,
    tx: &mpsc::Sender<Frame>,
) -> Option<Response> {
    Some(match request {
        Request::Write(cmd) => {
            if cmd.client >= INTERNAL_CLIENT_BASE {
                Response::Error(ServerError::BadRequest(
                    "client id reserved for replicas".into(),
                ))
            } else {
                match node.write(cmd).await {
                    Ok((revision, result)) => Response::Write { revision, result },
                    Err(e) => Response::Error(e),
                }
            }
        }
        Request::Range {
            range,
            linearizable,
        } => match node.read(range, linearizable).await {
            Ok((revision, range)) => Response::Range { revision, range },
            Err(e) => Response::Error(e),
        },
        Request::Watch {
            key,
            range_end,
            start_revision,
        } => {
            node.watch(conn_id, id, key, range_end, start_revision, tx.clone())
                .await;
            return None;
        }
        Request::KeepAlive { lease } => match node.keep_alive(lease) {
            Ok(ttl_ms) => Response::KeepAlive { ttl_ms },
            Err(e) => Response::Error(e),
        },
        Request::Status => Response::Status(node.status()),
    })
}

impl Node {
    fn leader_addr(&self) -> Option<String> {
        let leader = self.raft.borrow().status().leader?;
        self.cfg.members.get(&leader).cloned()
    }

    fn not_leader(&self) -> ServerError {
        ServerError::NotLeader {
            leader: self.leader_addr(),
        }
    }

    fn status(&self) -> StatusInfo {
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
    async fn write(&self, cmd: Command) -> WriteResult {
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
    async fn read(
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
    async fn watch(
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

    fn keep_alive(&self, lease: i64) -> Result<i64, ServerError> {
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
    fn propose_internal(&self, op: Op) {
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

async fn ticker(node: Rc<Node>) {
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

async fn ready_loop(node: Rc<Node>, mut storage: Storage) {
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
