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
use std::time::Duration;

use faultline_env::tls::{TlsClient, TlsServer};
use faultline_env::Env;
use faultline_raft::{Config as RaftConfig, Message, NodeId, RawNode};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use crate::codec;
use crate::mvcc::Mvcc;
use crate::ops::OpResult;
use crate::proto::{Frame, ServerError};
use crate::storage::{Storage, StorageError};
use conn::handle_conn;
use peer::peer_sender;
use ready::{ready_loop, ticker};

mod conn;
mod peer;
mod ready;
mod requests;

pub use ready::WATCH_PROGRESS_EVERY;

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
    /// Mutual TLS for peers and clients (real mode); `None` is plain TCP,
    /// as in the simulator (see `faultline_env::tls`).
    pub tls: Option<StoreTls>,
}

/// A replica's TLS: its server side refuses any connection without a
/// certificate from the cluster CA (peer or client); its client side
/// presents the replica's own certificate to its peers.
#[derive(Debug, Clone)]
pub struct StoreTls {
    pub server: TlsServer,
    pub client: TlsClient,
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
            tls: None,
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
        let tls = cfg.tls.as_ref().map(|t| t.client.clone());
        env.spawn(peer_sender(env.clone(), cfg.id, addr.clone(), tls, rx));
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
