//! The deterministic multi-version state machine applied from the Raft log.
//!
//! # Revisions
//! One global revision, starting at **1** for an empty store (as in etcd:
//! the first write is revision 2). Every applied command that changes at
//! least one key increments it by exactly one: a txn is one revision even
//! when it writes several keys (they are ordered by sub-revision, i.e. their
//! order of execution). Reads, failed commands, deletes that match nothing,
//! compactions and lease grants do not bump it; a lease revoke bumps it when
//! it deletes keys.
//!
//! # Data structures
//! - `keys`: every key with its retained versions, oldest first (a version
//!   is a put or a tombstone). The last version is the key's current state;
//!   historical reads binary-search the versions.
//! - `events`: the ordered watch log, `(revision, sub) -> key`; an event is
//!   rebuilt from the key's versions (the version at that revision and the
//!   one before it), so values are stored once.
//!
//! Compaction at `R` keeps, per key, the newest version `<= R` (unless it is
//! a tombstone) and everything after; events at revisions `<= R` are dropped
//! (watches must start after `R`).
//!
//! # Sessions
//! Per client, the results of seqs `>= first_incomplete` are cached so a
//! retried command returns the original result without re-executing (Raft
//! thesis §6.3). At most [`MAX_SESSIONS`] clients are kept; the least
//! recently active (by applied index) is evicted, after which a retry of an
//! old seq of that client would execute again.

use std::collections::{btree_map, BTreeMap, BTreeSet};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::ops::*;

/// Most client sessions kept for deduplication.
pub const MAX_SESSIONS: usize = 4096;

/// Version byte in front of [`Mvcc::snapshot`] bytes.
pub const SNAPSHOT_FORMAT: u8 = 1;

/// The result of applying one committed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub result: OpResult,
    /// The store revision to put in the response header (for a duplicate,
    /// the revision of the original application).
    pub revision: i64,
    /// The watch events this entry produced, in order (empty for duplicates).
    pub events: Vec<Event>,
    /// The command had already been applied (cached result returned) or was
    /// stale.
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Version {
    rev: i64,
    create: i64,
    ver: i64,
    lease: i64,
    /// `None` = tombstone (the key was deleted at `rev`).
    value: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Lease {
    ttl_ms: i64,
    keys: BTreeSet<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    first_incomplete: u64,
    last_active: u64,
    /// seq -> (result, revision).
    results: BTreeMap<u64, (OpResult, i64)>,
}

/// The state machine. Everything in it is ordered (BTree*), so snapshots and
/// digests are deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mvcc {
    revision: i64,
    compact_revision: i64,
    applied_index: u64,
    keys: BTreeMap<Vec<u8>, Vec<Version>>,
    events: BTreeMap<(i64, u32), Vec<u8>>,
    leases: BTreeMap<i64, Lease>,
    next_lease_id: i64,
    sessions: BTreeMap<u64, Session>,
    /// (last_active, client), for eviction.
    activity: BTreeSet<(u64, u64)>,
}

impl Default for Mvcc {
    fn default() -> Self {
        Mvcc::new()
    }
}

/// The in-progress write of one command.
struct WriteCtx {
    rev: i64,
    sub: u32,
    events: Vec<Event>,
}

/// Which branch each (nested) txn takes, decided before executing.
struct Path {
    succeeded: bool,
    nested: Vec<Path>,
}

fn range_bounds<'a>(key: &'a [u8], end: &'a [u8]) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    if end.is_empty() {
        (Bound::Included(key), Bound::Included(key))
    } else if end == [0] {
        (Bound::Included(key), Bound::Unbounded)
    } else if end <= key {
        // Empty range: BTreeMap::range panics on start > end.
        (Bound::Included(key), Bound::Excluded(key))
    } else {
        (Bound::Included(key), Bound::Excluded(end))
    }
}

/// The version visible at `rev` (None = latest), if it is live.
fn visible(versions: &[Version], rev: Option<i64>) -> Option<&Version> {
    let v = match rev {
        None => versions.last()?,
        Some(rev) => {
            let n = versions.partition_point(|v| v.rev <= rev);
            versions.get(n.checked_sub(1)?)?
        }
    };
    v.value.as_ref().map(|_| v)
}

fn to_kv(key: &[u8], v: &Version) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        value: v.value.clone().unwrap_or_default(),
        create_revision: v.create,
        mod_revision: v.rev,
        version: v.ver,
        lease: v.lease,
    }
}

fn compare_holds(op: CompareOp, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        CompareOp::Equal => ord == Equal,
        CompareOp::NotEqual => ord != Equal,
        CompareOp::Less => ord == Less,
        CompareOp::Greater => ord == Greater,
    }
}

impl Mvcc {
    /// An empty store at revision 1.
    pub fn new() -> Mvcc {
        Mvcc {
            revision: 1,
            compact_revision: 0,
            applied_index: 0,
            keys: BTreeMap::new(),
            events: BTreeMap::new(),
            leases: BTreeMap::new(),
            next_lease_id: 1,
            sessions: BTreeMap::new(),
            activity: BTreeSet::new(),
        }
    }

    /// The current revision (1 for an empty store).
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The last compaction revision (0 if never compacted).
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// Index of the last applied Raft entry.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Live leases `(id, ttl_ms)`, by id. Expiry is the leader's business:
    /// it tracks deadlines in memory and proposes `LeaseRevoke`.
    pub fn leases(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.leases.iter().map(|(id, l)| (*id, l.ttl_ms))
    }

    /// Keys attached to lease `id`.
    pub fn lease_keys(&self, id: i64) -> impl Iterator<Item = &[u8]> + '_ {
        self.leases
            .get(&id)
            .into_iter()
            .flat_map(|l| l.keys.iter().map(|k| k.as_slice()))
    }

    /// Number of live keys (O(keys)).
    pub fn live_keys(&self) -> usize {
        self.keys
            .values()
            .filter(|vs| vs.last().is_some_and(|v| v.value.is_some()))
            .count()
    }

    /// Advances the applied index over a Raft no-op entry.
    pub fn apply_noop(&mut self, index: u64) {
        debug_assert!(index > self.applied_index, "entry {index} applied twice");
        self.applied_index = self.applied_index.max(index);
    }

    /// Applies committed entry `index`. Deterministic: every replica that
    /// applies the same entries gets the same results, events and digest.
    pub fn apply(&mut self, index: u64, cmd: &Command) -> Applied {
        debug_assert!(index > self.applied_index, "entry {index} applied twice");
        self.applied_index = self.applied_index.max(index);
        if cmd.client != 0 {
            if let Some(s) = self.sessions.get_mut(&cmd.client) {
                let cached = s.results.get(&cmd.seq).cloned();
                let stale = cmd.seq < s.first_incomplete;
                if cached.is_some() || stale {
                    self.activity.remove(&(s.last_active, cmd.client));
                    s.last_active = index;
                    self.activity.insert((index, cmd.client));
                    let (result, revision) = match cached {
                        Some(c) => c,
                        None => (
                            OpResult::Error(StoreError::StaleRequest {
                                client: cmd.client,
                                seq: cmd.seq,
                            }),
                            self.revision,
                        ),
                    };
                    return Applied {
                        result,
                        revision,
                        events: Vec::new(),
                        duplicate: true,
                    };
                }
            }
        }
        let (result, events) = self.execute(&cmd.op);
        if cmd.client != 0 {
            self.record(index, cmd, &result);
        }
        Applied {
            result,
            revision: self.revision,
            events,
            duplicate: false,
        }
    }

    fn record(&mut self, index: u64, cmd: &Command, result: &OpResult) {
        let s = self.sessions.entry(cmd.client).or_insert_with(|| Session {
            first_incomplete: 0,
            last_active: 0,
            results: BTreeMap::new(),
        });
        self.activity.remove(&(s.last_active, cmd.client));
        s.last_active = index;
        self.activity.insert((index, cmd.client));
        s.first_incomplete = s.first_incomplete.max(cmd.first_incomplete);
        if cmd.seq >= s.first_incomplete {
            s.results.insert(cmd.seq, (result.clone(), self.revision));
        }
        s.results = s.results.split_off(&s.first_incomplete);
        while self.sessions.len() > MAX_SESSIONS {
            let Some((_, client)) = self.activity.pop_first() else {
                break;
            };
            self.sessions.remove(&client);
        }
    }

    fn execute(&mut self, op: &Op) -> (OpResult, Vec<Event>) {
        if let Err(e) = op.validate() {
            return (OpResult::Error(e), Vec::new());
        }
        let mut ctx = WriteCtx {
            rev: self.revision + 1,
            sub: 0,
            events: Vec::new(),
        };
        let result = match op {
            Op::Put(p) => {
                if p.lease != 0 && !self.leases.contains_key(&p.lease) {
                    OpResult::Error(StoreError::LeaseNotFound { id: p.lease })
                } else {
                    let prev = self.put(&mut ctx, p);
                    OpResult::Put {
                        prev_kv: if p.prev_kv { prev } else { None },
                    }
                }
            }
            Op::DeleteRange(d) => {
                let (deleted, prev_kvs) = self.delete_range(&mut ctx, d);
                OpResult::DeleteRange { deleted, prev_kvs }
            }
            Op::Txn(t) => {
                let path = self.choose(t);
                match self.precheck(t, &path) {
                    Err(e) => OpResult::Error(e),
                    Ok(()) => OpResult::Txn(self.run_txn(&mut ctx, t, &path)),
                }
            }
            Op::Compact { revision } => match self.compact(*revision) {
                Ok(()) => OpResult::Compact,
                Err(e) => OpResult::Error(e),
            },
            Op::LeaseGrant { id, ttl_ms } => {
                let id = if *id == 0 {
                    while self.leases.contains_key(&self.next_lease_id) {
                        self.next_lease_id += 1;
                    }
                    self.next_lease_id += 1;
                    self.next_lease_id - 1
                } else {
                    *id
                };
                match self.leases.entry(id) {
                    btree_map::Entry::Occupied(_) => {
                        OpResult::Error(StoreError::LeaseExists { id })
                    }
                    btree_map::Entry::Vacant(slot) => {
                        slot.insert(Lease {
                            ttl_ms: *ttl_ms,
                            keys: BTreeSet::new(),
                        });
                        OpResult::LeaseGrant {
                            id,
                            ttl_ms: *ttl_ms,
                        }
                    }
                }
            }
            Op::LeaseRevoke { id } => match self.leases.get(id) {
                None => OpResult::Error(StoreError::LeaseNotFound { id: *id }),
                Some(lease) => {
                    let keys: Vec<Vec<u8>> = lease.keys.iter().cloned().collect();
                    for key in keys {
                        self.delete_key(&mut ctx, &key);
                    }
                    self.leases.remove(id);
                    OpResult::LeaseRevoke
                }
            },
        };
        if ctx.sub > 0 {
            self.revision = ctx.rev;
        }
        (result, ctx.events)
    }

    fn put(&mut self, ctx: &mut WriteCtx, p: &PutRequest) -> Option<KeyValue> {
        let versions = self.keys.entry(p.key.clone()).or_default();
        let prev = visible(versions, None).cloned();
        let (create, ver) = match &prev {
            Some(v) => (v.create, v.ver + 1),
            None => (ctx.rev, 1),
        };
        let version = Version {
            rev: ctx.rev,
            create,
            ver,
            lease: p.lease,
            value: Some(p.value.clone()),
        };
        debug_assert!(versions.last().is_none_or(|v| v.rev < ctx.rev));
        versions.push(version.clone());
        if let Some(old) = &prev {
            if old.lease != 0 && old.lease != p.lease {
                if let Some(l) = self.leases.get_mut(&old.lease) {
                    l.keys.remove(&p.key);
                }
            }
        }
        if p.lease != 0 {
            if let Some(l) = self.leases.get_mut(&p.lease) {
                l.keys.insert(p.key.clone());
            }
        }
        let prev_kv = prev.map(|v| to_kv(&p.key, &v));
        self.events.insert((ctx.rev, ctx.sub), p.key.clone());
        ctx.sub += 1;
        ctx.events.push(Event {
            kind: EventKind::Put,
            kv: to_kv(&p.key, &version),
            prev_kv: prev_kv.clone(),
        });
        prev_kv
    }

    /// Deletes a live key; returns its previous state.
    fn delete_key(&mut self, ctx: &mut WriteCtx, key: &[u8]) -> Option<KeyValue> {
        let versions = self.keys.get_mut(key)?;
        let prev = visible(versions, None)?.clone();
        debug_assert!(prev.rev < ctx.rev);
        versions.push(Version {
            rev: ctx.rev,
            create: 0,
            ver: 0,
            lease: 0,
            value: None,
        });
        if prev.lease != 0 {
            if let Some(l) = self.leases.get_mut(&prev.lease) {
                l.keys.remove(key);
            }
        }
        let prev_kv = to_kv(key, &prev);
        self.events.insert((ctx.rev, ctx.sub), key.to_vec());
        ctx.sub += 1;
        ctx.events.push(Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.to_vec(),
                value: Vec::new(),
                create_revision: 0,
                mod_revision: ctx.rev,
                version: 0,
                lease: 0,
            },
            prev_kv: Some(prev_kv.clone()),
        });
        Some(prev_kv)
    }

    fn delete_range(&mut self, ctx: &mut WriteCtx, d: &DeleteRangeRequest) -> (i64, Vec<KeyValue>) {
        let live: Vec<Vec<u8>> = self
            .keys
            .range::<[u8], _>(range_bounds(&d.key, &d.range_end))
            .filter(|(_, vs)| visible(vs, None).is_some())
            .map(|(k, _)| k.clone())
            .collect();
        let mut prev_kvs = Vec::new();
        for key in &live {
            if let Some(prev) = self.delete_key(ctx, key) {
                if d.prev_kv {
                    prev_kvs.push(prev);
                }
            }
        }
        (live.len() as i64, prev_kvs)
    }

    fn compare(&self, c: &Compare) -> bool {
        let kvs: Vec<&Version> = self
            .keys
            .range::<[u8], _>(range_bounds(&c.key, &c.range_end))
            .filter_map(|(_, vs)| visible(vs, None))
            .collect();
        let zero = Version {
            rev: 0,
            create: 0,
            ver: 0,
            lease: 0,
            value: None,
        };
        let check = |v: &Version| -> bool {
            let ord = match &c.target {
                CompareTarget::Version(x) => v.ver.cmp(x),
                CompareTarget::CreateRevision(x) => v.create.cmp(x),
                CompareTarget::ModRevision(x) => v.rev.cmp(x),
                CompareTarget::Lease(x) => v.lease.cmp(x),
                CompareTarget::Value(x) => match &v.value {
                    Some(val) => val.as_slice().cmp(x.as_slice()),
                    None => return false,
                },
            };
            compare_holds(c.op, ord)
        };
        if kvs.is_empty() {
            check(&zero)
        } else {
            kvs.into_iter().all(check)
        }
    }

    /// Evaluates every compare of `t` and of the nested txns on the path it
    /// takes, against the state before the txn (etcd semantics).
    fn choose(&self, t: &TxnRequest) -> Path {
        let succeeded = t.compare.iter().all(|c| self.compare(c));
        let branch = if succeeded { &t.success } else { &t.failure };
        let nested = branch
            .iter()
            .filter_map(|op| match op {
                RequestOp::Txn(n) => Some(self.choose(n)),
                _ => None,
            })
            .collect();
        Path { succeeded, nested }
    }

    /// Everything that can make the txn fail is checked before it writes
    /// anything, so a failed txn has no effect.
    fn precheck(&self, t: &TxnRequest, path: &Path) -> Result<(), StoreError> {
        let branch = if path.succeeded {
            &t.success
        } else {
            &t.failure
        };
        let mut nested = path.nested.iter();
        for op in branch {
            match op {
                RequestOp::Range(r) => self.check_read_revision(r.revision)?,
                RequestOp::Put(p) => {
                    if p.lease != 0 && !self.leases.contains_key(&p.lease) {
                        return Err(StoreError::LeaseNotFound { id: p.lease });
                    }
                }
                RequestOp::DeleteRange(_) => {}
                RequestOp::Txn(n) => self.precheck(n, nested.next().expect("path"))?,
            }
        }
        Ok(())
    }

    fn run_txn(&mut self, ctx: &mut WriteCtx, t: &TxnRequest, path: &Path) -> TxnResponse {
        let branch = if path.succeeded {
            &t.success
        } else {
            &t.failure
        };
        let mut nested = path.nested.iter();
        let mut responses = Vec::with_capacity(branch.len());
        for op in branch {
            responses.push(match op {
                RequestOp::Range(r) => {
                    let rev = if r.revision == 0 {
                        None
                    } else {
                        Some(r.revision)
                    };
                    ResponseOp::Range(self.read(r, rev))
                }
                RequestOp::Put(p) => {
                    let prev = self.put(ctx, p);
                    ResponseOp::Put {
                        prev_kv: if p.prev_kv { prev } else { None },
                    }
                }
                RequestOp::DeleteRange(d) => {
                    let (deleted, prev_kvs) = self.delete_range(ctx, d);
                    ResponseOp::DeleteRange { deleted, prev_kvs }
                }
                RequestOp::Txn(n) => {
                    ResponseOp::Txn(self.run_txn(ctx, n, nested.next().expect("path")))
                }
            });
        }
        TxnResponse {
            succeeded: path.succeeded,
            responses,
        }
    }

    fn check_read_revision(&self, revision: i64) -> Result<(), StoreError> {
        if revision > self.revision {
            return Err(StoreError::FutureRevision {
                revision,
                current: self.revision,
            });
        }
        if revision != 0 && revision < self.compact_revision {
            return Err(StoreError::Compacted {
                compact_revision: self.compact_revision,
            });
        }
        Ok(())
    }

    /// Reads at `rev` (None = latest), assuming `rev` was checked.
    fn read(&self, r: &RangeRequest, rev: Option<i64>) -> RangeResponse {
        let mut kvs = Vec::new();
        let mut count = 0i64;
        let limit = if r.limit > 0 { r.limit } else { i64::MAX };
        for (key, vs) in self
            .keys
            .range::<[u8], _>(range_bounds(&r.key, &r.range_end))
        {
            let Some(v) = visible(vs, rev) else { continue };
            count += 1;
            if !r.count_only && count <= limit {
                let mut kv = to_kv(key, v);
                if r.keys_only {
                    kv.value.clear();
                }
                kvs.push(kv);
            }
        }
        RangeResponse {
            more: !r.count_only && count > limit,
            kvs,
            count,
        }
    }

    /// Serves a read at the current revision (`revision == 0`) or at a
    /// historical one: `Compacted` below the compact revision,
    /// `FutureRevision` above the current one.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, StoreError> {
        req.validate()?;
        self.check_read_revision(req.revision)?;
        let rev = if req.revision == 0 {
            None
        } else {
            Some(req.revision)
        };
        Ok(self.read(req, rev))
    }

    /// The current state of one key.
    pub fn get(&self, key: &[u8]) -> Option<KeyValue> {
        let vs = self.keys.get(key)?;
        visible(vs, None).map(|v| to_kv(key, v))
    }

    fn compact(&mut self, revision: i64) -> Result<(), StoreError> {
        if revision <= self.compact_revision {
            return Err(StoreError::Compacted {
                compact_revision: self.compact_revision,
            });
        }
        if revision > self.revision {
            return Err(StoreError::FutureRevision {
                revision,
                current: self.revision,
            });
        }
        self.keys.retain(|_, vs| {
            let n = vs.partition_point(|v| v.rev <= revision);
            // Keep the newest version <= revision (needed to read at it)
            // unless it is a tombstone.
            let keep_from = match n.checked_sub(1) {
                Some(i) if vs[i].value.is_some() => i,
                Some(i) => i + 1,
                None => 0,
            };
            vs.drain(..keep_from);
            !vs.is_empty()
        });
        self.events = self.events.split_off(&(revision + 1, 0));
        self.compact_revision = revision;
        Ok(())
    }

    /// Watch catch-up: every event with revision `>= start_revision` on the
    /// range, in revision order. `limit` (0 = none) is rounded up to a
    /// revision boundary: the events of one revision are never split.
    /// `Compacted` if `start_revision <= compact_revision` (events at the
    /// compact revision may be gone); `start_revision` must be >= 1.
    pub fn events_since(
        &self,
        start_revision: i64,
        key: &[u8],
        range_end: &[u8],
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        validate_key(key)?;
        if start_revision < 1 {
            return Err(StoreError::InvalidRequest {
                detail: format!("watch start revision {start_revision} must be >= 1"),
            });
        }
        if start_revision <= self.compact_revision {
            return Err(StoreError::Compacted {
                compact_revision: self.compact_revision,
            });
        }
        let mut out = Vec::new();
        let mut last_rev = 0;
        for (&(rev, _), k) in self.events.range((start_revision, 0)..) {
            if limit != 0 && out.len() >= limit && rev != last_rev {
                break;
            }
            if !in_range(k, key, range_end) {
                continue;
            }
            if let Some(e) = self.event_at(k, rev) {
                last_rev = rev;
                out.push(e);
            }
        }
        Ok(out)
    }

    fn event_at(&self, key: &[u8], rev: i64) -> Option<Event> {
        let vs = self.keys.get(key)?;
        let i = vs.binary_search_by_key(&rev, |v| v.rev).ok()?;
        let v = &vs[i];
        let prev_kv = i
            .checked_sub(1)
            .and_then(|p| vs[p].value.as_ref().map(|_| to_kv(key, &vs[p])));
        Some(match v.value {
            Some(_) => Event {
                kind: EventKind::Put,
                kv: to_kv(key, v),
                prev_kv,
            },
            None => Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: key.to_vec(),
                    value: Vec::new(),
                    create_revision: 0,
                    mod_revision: rev,
                    version: 0,
                    lease: 0,
                },
                prev_kv,
            },
        })
    }

    /// The whole state (keys with history, events, leases, sessions,
    /// revisions, applied index) as deterministic bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = vec![SNAPSHOT_FORMAT];
        out.extend(codec::encode(self).expect("the state machine always serialises"));
        out
    }

    /// Rebuilds a state machine from [`Mvcc::snapshot`] bytes.
    pub fn restore(bytes: &[u8]) -> Result<Mvcc, CodecError> {
        let (&version, rest) = bytes
            .split_first()
            .ok_or_else(|| CodecError::Decode("empty snapshot".into()))?;
        if version != SNAPSHOT_FORMAT {
            return Err(CodecError::Version {
                found: version,
                expected: SNAPSHOT_FORMAT,
            });
        }
        codec::decode(rest)
    }

    /// xxh3 of the snapshot bytes: equal on replicas that applied the same
    /// entries.
    pub fn digest(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&self.snapshot())
    }
}

#[cfg(test)]
mod tests;
