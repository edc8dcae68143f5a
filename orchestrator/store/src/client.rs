//! The store client: finds the leader, multiplexes requests over one
//! connection per replica, and retries safely.
//!
//! Safe retries (Raft thesis §6.3): every write carries this client's id and
//! a sequence number; the state machine remembers the result of each
//! (client, seq) it applied, so a write retried after a timeout or a leader
//! change is applied at most once and answered with the original result.
//! A write that still has no answer at its deadline is reported as
//! [`ClientError::Timeout`] with `maybe_applied` set when any attempt may
//! have reached a leader: the caller must treat it as indeterminate.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use faultline_env::tls::TlsClient;
use faultline_env::Env;
use rand::RngCore;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use crate::ops::{
    Command, Compare, CompareOp, CompareTarget, DeleteRangeRequest, Event, KeyValue, Op, OpResult,
    PutRequest, RangeRequest, RangeResponse, RequestOp, StoreError, TxnRequest,
};
use crate::proto::{self, Frame, FrameReader, Request, Response, ServerError, StatusInfo};

/// Client tunables.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Replica addresses (`host:port`).
    pub endpoints: Vec<String>,
    /// Time allowed to dial one replica.
    pub connect_timeout: Duration,
    /// Time allowed for one attempt at one replica.
    pub attempt_timeout: Duration,
    /// Time allowed for a whole call, retries included.
    pub deadline: Duration,
    /// Send each linearizable read to a random replica first (as a load
    /// balancer would) instead of the known leader; a correct replica that
    /// is not the leader redirects it.
    pub spread_reads: bool,
    /// Mutual TLS to the replicas (real mode): the CA and this client's
    /// certificate; `None` is plain TCP, as in the simulator.
    pub tls: Option<TlsClient>,
}

impl ClientConfig {
    /// Defaults: 500 ms to connect, 2 s per attempt, 10 s per call.
    pub fn new(endpoints: Vec<String>) -> ClientConfig {
        ClientConfig {
            endpoints,
            connect_timeout: Duration::from_millis(500),
            attempt_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
            spread_reads: false,
            tls: None,
        }
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No answer before the deadline. If `maybe_applied`, a write may have
    /// taken effect (or may still): its outcome is unknown.
    #[error("timed out (maybe applied: {maybe_applied})")]
    Timeout { maybe_applied: bool },
    /// The store rejected the request (retrying will not help).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request was malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
}

enum Pending {
    Once(oneshot::Sender<Response>),
    Stream(mpsc::UnboundedSender<Response>),
}

struct Conn {
    out: mpsc::UnboundedSender<Vec<u8>>,
    pending: Rc<RefCell<BTreeMap<u64, Pending>>>,
    alive: Rc<Cell<bool>>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Drop for Conn {
    fn drop(&mut self) {
        // A connection cut by a partition hangs: its tasks would wait forever.
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Why one attempt failed.
enum Attempt {
    /// Never reached the replica: nothing can have been applied.
    Unreached,
    /// Sent, but no answer: it may have been applied.
    Lost,
}

/// A store client. Not `Send`: it lives on its host like everything else.
pub struct StoreClient {
    env: Env,
    cfg: ClientConfig,
    id: u64,
    next_seq: Cell<u64>,
    outstanding: RefCell<BTreeSet<u64>>,
    next_request: Cell<u64>,
    /// Index of the replica believed to lead.
    leader: Cell<usize>,
    conns: RefCell<BTreeMap<usize, Rc<Conn>>>,
}

impl StoreClient {
    /// A client with a random id drawn from the host's seeded stream.
    pub fn new(env: Env, cfg: ClientConfig) -> StoreClient {
        assert!(!cfg.endpoints.is_empty(), "a store client needs endpoints");
        let id = env.rng().next_u64() >> 11;
        let leader = env.rng().next_u64() as usize % cfg.endpoints.len();
        StoreClient {
            env,
            cfg,
            id,
            next_seq: Cell::new(1),
            outstanding: RefCell::new(BTreeSet::new()),
            next_request: Cell::new(1),
            leader: Cell::new(leader),
            conns: RefCell::new(BTreeMap::new()),
        }
    }

    /// This client's session id.
    pub fn id(&self) -> u64 {
        self.id
    }

    async fn conn(&self, endpoint: usize) -> Option<Rc<Conn>> {
        if let Some(c) = self.conns.borrow().get(&endpoint) {
            if c.alive.get() {
                return Some(c.clone());
            }
        }
        let addr = &self.cfg.endpoints[endpoint];
        let stream = match self
            .env
            .timeout(self.cfg.connect_timeout, self.env.net().connect(addr))
            .await
        {
            Ok(Ok(s)) => s,
            _ => return None,
        };
        let stream = match &self.cfg.tls {
            None => stream,
            Some(tls) => match self
                .env
                .timeout(self.cfg.connect_timeout, tls.connect(addr, stream))
                .await
            {
                Ok(Ok(s)) => s,
                _ => return None,
            },
        };
        let (read, mut write) = proto::split(stream);
        let (out, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let pending: Rc<RefCell<BTreeMap<u64, Pending>>> = Default::default();
        let alive = Rc::new(Cell::new(true));
        let a = alive.clone();
        let writer = self.env.spawn(async move {
            while let Some(mut buf) = out_rx.recv().await {
                while let Ok(more) = out_rx.try_recv() {
                    buf.extend(more);
                }
                if write.write_all(&buf).await.is_err() {
                    break;
                }
            }
            a.set(false);
        });
        let (p, a) = (pending.clone(), alive.clone());
        let reader = self.env.spawn(async move {
            let mut reader = FrameReader::new(read, proto::MAX_CLIENT_FRAME * 16);
            while let Ok(Frame::Response { id, response }) = reader.next().await {
                let mut pending = p.borrow_mut();
                match pending.get(&id) {
                    Some(Pending::Once(_)) => {
                        if let Some(Pending::Once(tx)) = pending.remove(&id) {
                            let _ = tx.send(response);
                        }
                    }
                    Some(Pending::Stream(tx)) if tx.send(response).is_err() => {
                        pending.remove(&id);
                    }
                    Some(Pending::Stream(_)) | None => {}
                }
            }
            // Connection gone: every waiter learns it by its sender dropping.
            a.set(false);
            p.borrow_mut().clear();
        });
        let conn = Rc::new(Conn {
            out,
            pending,
            alive,
            tasks: [writer, reader],
        });
        self.conns.borrow_mut().insert(endpoint, conn.clone());
        Some(conn)
    }

    fn send(&self, conn: &Conn, request: Request, pending: Pending) -> u64 {
        let id = self.next_request.get();
        self.next_request.set(id + 1);
        conn.pending.borrow_mut().insert(id, pending);
        let frame = proto::encode_frame(&Frame::Request { id, request }).expect("requests encode");
        if conn.out.send(frame).is_err() {
            conn.alive.set(false);
        }
        id
    }

    /// One attempt at one replica.
    async fn call(
        &self,
        endpoint: usize,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, Attempt> {
        let Some(conn) = self.conn(endpoint).await else {
            return Err(Attempt::Unreached);
        };
        let (tx, rx) = oneshot::channel();
        let id = self.send(&conn, request, Pending::Once(tx));
        match self.env.timeout(timeout, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => {
                self.conns.borrow_mut().remove(&endpoint);
                Err(Attempt::Lost)
            }
            Err(_) => {
                // No answer in time: the connection may be cut (a lost
                // message is never resent), so dial afresh next time.
                conn.pending.borrow_mut().remove(&id);
                conn.alive.set(false);
                self.conns.borrow_mut().remove(&endpoint);
                Err(Attempt::Lost)
            }
        }
    }

    fn next_endpoint(&self, current: usize) -> usize {
        (current + 1) % self.cfg.endpoints.len()
    }

    fn endpoint_of(&self, addr: &str) -> Option<usize> {
        self.cfg.endpoints.iter().position(|e| e == addr)
    }

    /// Sends `request` to the leader, following redirects and retrying until
    /// the deadline. `is_write` decides whether a lost attempt makes the
    /// outcome uncertain.
    async fn leader_call(&self, request: Request, is_write: bool) -> Result<Response, ClientError> {
        self.call_from(self.leader.get(), request, is_write).await
    }

    /// Like `leader_call`, starting at replica `first`.
    async fn call_from(
        &self,
        first: usize,
        request: Request,
        is_write: bool,
    ) -> Result<Response, ClientError> {
        let deadline = self.env.now() + self.cfg.deadline;
        let mut target = first;
        let mut maybe_applied = false;
        let mut tries = 0u32;
        loop {
            let now = self.env.now();
            if now >= deadline {
                return Err(ClientError::Timeout { maybe_applied });
            }
            let timeout = self.cfg.attempt_timeout.min(deadline - now);
            tries += 1;
            match self.call(target, request.clone(), timeout).await {
                Ok(Response::Error(ServerError::NotLeader { leader })) => {
                    match leader.as_deref().and_then(|a| self.endpoint_of(a)) {
                        Some(l) if l != target => target = l,
                        _ => {
                            // No leader known (an election is running):
                            // look elsewhere after a short pause.
                            target = self.next_endpoint(target);
                            self.pause(tries).await;
                        }
                    }
                }
                Ok(Response::Error(ServerError::Timeout)) => {
                    maybe_applied |= is_write;
                    target = self.next_endpoint(target);
                }
                Ok(Response::Error(ServerError::Unavailable(_))) => {
                    target = self.next_endpoint(target);
                    self.pause(tries).await;
                }
                Ok(Response::Error(ServerError::Store(e))) => return Err(ClientError::Store(e)),
                Ok(Response::Error(ServerError::BadRequest(e))) => {
                    return Err(ClientError::BadRequest(e));
                }
                Ok(r) => {
                    self.leader.set(target);
                    return Ok(r);
                }
                Err(Attempt::Unreached) => {
                    target = self.next_endpoint(target);
                    self.pause(tries).await;
                }
                Err(Attempt::Lost) => {
                    maybe_applied |= is_write;
                    target = self.next_endpoint(target);
                }
            }
        }
    }

    async fn pause(&self, tries: u32) {
        let ms = (10u64 << tries.min(5)).min(200);
        let jitter = self.env.rng().next_u64() % (ms / 2 + 1);
        self.env.sleep(Duration::from_millis(ms / 2 + jitter)).await;
    }

    /// Replicates a write; at most once, whatever the retries.
    pub async fn write(&self, op: Op) -> Result<(i64, OpResult), ClientError> {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        self.outstanding.borrow_mut().insert(seq);
        let first_incomplete = *self
            .outstanding
            .borrow()
            .first()
            .expect("seq just inserted");
        let cmd = Command {
            client: self.id,
            seq,
            first_incomplete,
            op,
        };
        let r = self.leader_call(Request::Write(cmd), true).await;
        self.outstanding.borrow_mut().remove(&seq);
        match r? {
            Response::Write {
                result: OpResult::Error(e),
                ..
            } => Err(ClientError::Store(e)),
            Response::Write { revision, result } => Ok((revision, result)),
            other => Err(ClientError::BadRequest(format!(
                "unexpected response {other:?}"
            ))),
        }
    }

    /// Reads a range. Linearizable reads go to the leader (read index);
    /// serializable ones to any replica.
    pub async fn range(
        &self,
        range: RangeRequest,
        linearizable: bool,
    ) -> Result<(i64, RangeResponse), ClientError> {
        let first = if self.cfg.spread_reads {
            self.env.rng().next_u64() as usize % self.cfg.endpoints.len()
        } else {
            self.leader.get()
        };
        match self
            .call_from(
                first,
                Request::Range {
                    range,
                    linearizable,
                },
                false,
            )
            .await?
        {
            Response::Range { revision, range } => Ok((revision, range)),
            other => Err(ClientError::BadRequest(format!(
                "unexpected response {other:?}"
            ))),
        }
    }

    /// Puts `key = value`; returns the new revision.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<i64, ClientError> {
        let op = Op::Put(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease: 0,
            prev_kv: false,
        });
        self.write(op).await.map(|(rev, _)| rev)
    }

    /// Puts `key = value` attached to `lease`.
    pub async fn put_with_lease(
        &self,
        key: &[u8],
        value: &[u8],
        lease: i64,
    ) -> Result<i64, ClientError> {
        let op = Op::Put(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            prev_kv: false,
        });
        self.write(op).await.map(|(rev, _)| rev)
    }

    /// Linearizable get of one key.
    pub async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, ClientError> {
        let (_, r) = self.range(single_key(key), true).await?;
        Ok(r.kvs.into_iter().next())
    }

    /// Deletes one key; returns how many keys were deleted.
    pub async fn delete(&self, key: &[u8]) -> Result<i64, ClientError> {
        let op = Op::DeleteRange(DeleteRangeRequest {
            key: key.to_vec(),
            range_end: Vec::new(),
            prev_kv: false,
        });
        match self.write(op).await? {
            (_, OpResult::DeleteRange { deleted, .. }) => Ok(deleted),
            (_, other) => Err(ClientError::BadRequest(format!(
                "unexpected result {other:?}"
            ))),
        }
    }

    /// Compare-and-swap on a value: sets `key = new` if its value is
    /// `expected` (`None`: the key is absent). Returns whether it swapped.
    pub async fn cas(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, ClientError> {
        let compare = match expected {
            Some(v) => Compare {
                key: key.to_vec(),
                range_end: Vec::new(),
                op: CompareOp::Equal,
                target: CompareTarget::Value(v.to_vec()),
            },
            None => Compare {
                key: key.to_vec(),
                range_end: Vec::new(),
                op: CompareOp::Equal,
                target: CompareTarget::CreateRevision(0),
            },
        };
        let txn = TxnRequest {
            compare: vec![compare],
            success: vec![RequestOp::Put(PutRequest {
                key: key.to_vec(),
                value: new.to_vec(),
                lease: 0,
                prev_kv: false,
            })],
            failure: Vec::new(),
        };
        match self.write(Op::Txn(txn)).await? {
            (_, OpResult::Txn(t)) => Ok(t.succeeded),
            (_, other) => Err(ClientError::BadRequest(format!(
                "unexpected result {other:?}"
            ))),
        }
    }

    /// Grants a lease of `ttl_ms`; returns its id.
    pub async fn lease_grant(&self, ttl_ms: i64) -> Result<i64, ClientError> {
        match self.write(Op::LeaseGrant { id: 0, ttl_ms }).await? {
            (_, OpResult::LeaseGrant { id, .. }) => Ok(id),
            (_, other) => Err(ClientError::BadRequest(format!(
                "unexpected result {other:?}"
            ))),
        }
    }

    /// Renews a lease; returns its TTL.
    pub async fn keep_alive(&self, lease: i64) -> Result<i64, ClientError> {
        match self
            .leader_call(Request::KeepAlive { lease }, false)
            .await?
        {
            Response::KeepAlive { ttl_ms } => Ok(ttl_ms),
            other => Err(ClientError::BadRequest(format!(
                "unexpected response {other:?}"
            ))),
        }
    }

    /// One replica's status (no retries).
    pub async fn status(&self, endpoint: usize) -> Option<StatusInfo> {
        match self
            .call(endpoint, Request::Status, self.cfg.attempt_timeout)
            .await
        {
            Ok(Response::Status(s)) => Some(s),
            _ => None,
        }
    }

    /// Watches `[key, range_end)` from `start_revision` at one replica.
    /// The stream ends when the connection does; re-watch from the last
    /// revision seen plus one.
    pub async fn watch(
        &self,
        key: &[u8],
        range_end: &[u8],
        start_revision: i64,
    ) -> Option<WatchStream> {
        let endpoint = self.leader.get();
        let Some(conn) = self.conn(endpoint).await else {
            // Any member serves watches: try the next one next time, or a
            // watcher whose only hint is a dead master waits for it forever.
            self.leader.set(self.next_endpoint(endpoint));
            return None;
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let request = Request::Watch {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
            start_revision,
        };
        self.send(&conn, request, Pending::Stream(tx));
        Some(WatchStream {
            rx,
            env: self.env.clone(),
            conn,
        })
    }
}

/// A watch that hears nothing, not even a progress notification, for this
/// long is considered cut off.
pub const WATCH_IDLE_TIMEOUT: Duration = Duration::from_secs(3);

/// Events of one watch, in revision order.
pub struct WatchStream {
    rx: mpsc::UnboundedReceiver<Response>,
    env: Env,
    conn: Rc<Conn>,
}

impl WatchStream {
    /// The next non-empty batch of events; `Err` when the server ended the
    /// watch; `None` when the connection closed or went silent.
    pub async fn next(&mut self) -> Option<Result<Vec<Event>, StoreError>> {
        loop {
            let r = match self.env.timeout(WATCH_IDLE_TIMEOUT, self.rx.recv()).await {
                Ok(Some(r)) => r,
                Ok(None) | Err(_) => {
                    self.conn.alive.set(false);
                    return None;
                }
            };
            match r {
                Response::Events { events } if events.is_empty() => continue,
                Response::Events { events } => return Some(Ok(events)),
                Response::WatchEnded { error } => return Some(Err(error)),
                _ => continue,
            }
        }
    }
}

/// A range request for exactly one key.
pub fn single_key(key: &[u8]) -> RangeRequest {
    RangeRequest {
        key: key.to_vec(),
        range_end: Vec::new(),
        limit: 0,
        revision: 0,
        keys_only: false,
        count_only: false,
    }
}

/// A range request for every key with `prefix`.
pub fn prefix(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 0,
        revision: 0,
        keys_only: false,
        count_only: false,
    }
}

/// The end of the range of keys starting with `prefix` (etcd's rule).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
