//! The store's API types, with etcd v3 semantics, and their validation.
//!
//! Every type here is serialised with postcard inside Raft entries and
//! snapshots (cached session results), so **append new enum variants at the
//! end only** and never reorder fields: postcard encodes variant indices and
//! field order.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Most operations (counted recursively through nested txns) one txn may hold.
pub const MAX_TXN_OPS: usize = 128;
/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 64 << 10;
/// Longest value, in bytes.
pub const MAX_VALUE_LEN: usize = 8 << 20;
/// Longest lease TTL (one year).
pub const MAX_LEASE_TTL_MS: i64 = 365 * 24 * 3600 * 1000;

/// A key's state at some revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Revision of the put that created the key (since its last deletion).
    pub create_revision: i64,
    /// Revision of the last put (or, in a delete event, of the deletion).
    pub mod_revision: i64,
    /// Number of puts since creation (1 after the creating put; 0 in a
    /// delete event).
    pub version: i64,
    /// Lease the key is attached to, 0 for none.
    pub lease: i64,
}

/// A read. Key ranges follow etcd: `range_end` empty = just `key`;
/// `range_end == [0]` = every key `>= key`; otherwise `[key, range_end)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// At most this many kvs (0 = no limit).
    pub limit: i64,
    /// 0 = current revision; otherwise read at that revision (error if it is
    /// compacted or in the future).
    pub revision: i64,
    pub keys_only: bool,
    pub count_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResponse {
    pub kvs: Vec<KeyValue>,
    /// More kvs matched than `limit` returned.
    pub more: bool,
    /// Number of kvs in the range (ignoring `limit`).
    pub count: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// 0 = no lease; otherwise the lease must exist.
    pub lease: i64,
    /// Return the key's previous state.
    pub prev_kv: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub prev_kv: bool,
}

/// What a compare looks at, and the operand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    Version(i64),
    CreateRevision(i64),
    ModRevision(i64),
    Value(Vec<u8>),
    Lease(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Less,
    Greater,
}

/// A txn guard: `<key's target> <op> <operand>`, for every key of the range
/// (etcd semantics). An absent key has version, create and mod revision and
/// lease 0; a `Value` compare on an absent key (or an empty range) is false.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub op: CompareOp,
    pub target: CompareTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestOp {
    Range(RangeRequest),
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
}

/// A transaction. As in etcd, the compares of nested txns are all evaluated
/// against the state *before* the txn, while reads inside the txn see the
/// txn's own earlier writes; a branch may not put the same key twice nor put
/// a key it also deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRequest {
    pub compare: Vec<Compare>,
    pub success: Vec<RequestOp>,
    pub failure: Vec<RequestOp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseOp {
    Range(RangeResponse),
    Put {
        prev_kv: Option<KeyValue>,
    },
    DeleteRange {
        deleted: i64,
        prev_kvs: Vec<KeyValue>,
    },
    Txn(TxnResponse),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResponse {
    pub succeeded: bool,
    pub responses: Vec<ResponseOp>,
}

/// A write that goes through the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    /// Drop history below `revision` (see [`crate::mvcc::Mvcc`]).
    Compact {
        revision: i64,
    },
    /// `id` 0 = let the store choose the next free id.
    LeaseGrant {
        id: i64,
        ttl_ms: i64,
    },
    LeaseRevoke {
        id: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    Put {
        prev_kv: Option<KeyValue>,
    },
    DeleteRange {
        deleted: i64,
        prev_kvs: Vec<KeyValue>,
    },
    Txn(TxnResponse),
    Compact,
    LeaseGrant {
        id: i64,
        ttl_ms: i64,
    },
    LeaseRevoke,
    Error(StoreError),
}

/// The payload of one Raft entry: a client's write, deduplicated by
/// (client, seq) so a client can retry safely after a leader change (Raft
/// thesis §6.3). `client == 0` means "no session": never deduplicated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub client: u64,
    pub seq: u64,
    /// The client has received responses for every seq below this.
    pub first_incomplete: u64,
    pub op: Op,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseHeader {
    pub revision: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

/// A watch event. For `Delete`, `kv` holds the key, `mod_revision` = the
/// deletion revision and everything else zero/empty. `prev_kv` is the key's
/// state before the event, when it existed and is still retained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

/// Errors a request can fail with. Part of [`OpResult`] (and so of
/// snapshots): append new variants at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum StoreError {
    #[error("revision has been compacted (compact revision {compact_revision})")]
    Compacted { compact_revision: i64 },
    #[error("revision {revision} is in the future (current revision {current})")]
    FutureRevision { revision: i64, current: i64 },
    #[error("lease {id} not found")]
    LeaseNotFound { id: i64 },
    #[error("lease {id} already exists")]
    LeaseExists { id: i64 },
    #[error("invalid request: {detail}")]
    InvalidRequest { detail: String },
    /// The client's seq is below a `first_incomplete` it already sent (its
    /// cached result was dropped), or its session was evicted.
    #[error("stale request: client {client} seq {seq} was already answered")]
    StaleRequest { client: u64, seq: u64 },
    /// Server-side (never produced by the state machine): this replica is
    /// not the leader; `leader` is a hint.
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader { leader: Option<u64> },
    /// Server-side: the request did not complete in time; it may or may not
    /// have been applied (retry with the same seq).
    #[error("request timed out")]
    Timeout,
    /// Server-side: the replica cannot serve (recovering, shutting down...).
    #[error("unavailable: {detail}")]
    Unavailable { detail: String },
}

fn invalid(detail: impl Into<String>) -> StoreError {
    StoreError::InvalidRequest {
        detail: detail.into(),
    }
}

/// Checks a key (non-empty, bounded).
pub fn validate_key(key: &[u8]) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(invalid("key is empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(invalid(format!(
            "key of {} bytes exceeds the limit of {MAX_KEY_LEN}",
            key.len()
        )));
    }
    Ok(())
}

impl RangeRequest {
    pub fn validate(&self) -> Result<(), StoreError> {
        validate_key(&self.key)?;
        if self.limit < 0 {
            return Err(invalid(format!("negative limit {}", self.limit)));
        }
        if self.revision < 0 {
            return Err(invalid(format!("negative revision {}", self.revision)));
        }
        Ok(())
    }
}

impl PutRequest {
    pub fn validate(&self) -> Result<(), StoreError> {
        validate_key(&self.key)?;
        if self.value.len() > MAX_VALUE_LEN {
            return Err(invalid(format!(
                "value of {} bytes exceeds the limit of {MAX_VALUE_LEN}",
                self.value.len()
            )));
        }
        if self.lease < 0 {
            return Err(invalid(format!("negative lease id {}", self.lease)));
        }
        Ok(())
    }
}

impl DeleteRangeRequest {
    pub fn validate(&self) -> Result<(), StoreError> {
        validate_key(&self.key)
    }
}

impl Compare {
    pub fn validate(&self) -> Result<(), StoreError> {
        validate_key(&self.key)
    }
}

/// Does `key` fall in the etcd range (`key_start`, `range_end`)?
pub fn in_range(key: &[u8], start: &[u8], range_end: &[u8]) -> bool {
    if range_end.is_empty() {
        key == start
    } else if range_end == [0] {
        key >= start
    } else {
        key >= start && key < range_end
    }
}

/// The keys one txn branch writes: puts (must be unique) and deleted ranges.
#[derive(Default)]
struct Writes {
    puts: BTreeSet<Vec<u8>>,
    dels: Vec<(Vec<u8>, Vec<u8>)>,
}

impl TxnRequest {
    /// Validates the txn: keys, nesting, op count, and that no branch puts a
    /// key twice or puts a key it deletes (etcd: "duplicate key given in txn
    /// request").
    pub fn validate(&self) -> Result<(), StoreError> {
        let mut count = 0usize;
        self.validate_inner(&mut count)?;
        Ok(())
    }

    fn validate_inner(&self, count: &mut usize) -> Result<(Writes, Writes), StoreError> {
        for c in &self.compare {
            c.validate()?;
        }
        *count += self.compare.len();
        let success = check_branch(&self.success, count)?;
        let failure = check_branch(&self.failure, count)?;
        if *count > MAX_TXN_OPS {
            return Err(invalid(format!(
                "txn has {count} compares and operations, more than the limit of {MAX_TXN_OPS}"
            )));
        }
        Ok((success, failure))
    }
}

fn check_branch(ops: &[RequestOp], count: &mut usize) -> Result<Writes, StoreError> {
    let mut w = Writes::default();
    let dup = |k: &[u8]| {
        invalid(format!(
            "duplicate key {:?} given in txn request",
            String::from_utf8_lossy(k)
        ))
    };
    for op in ops {
        *count += 1;
        if *count > MAX_TXN_OPS {
            return Err(invalid(format!(
                "txn has more than {MAX_TXN_OPS} compares and operations"
            )));
        }
        match op {
            RequestOp::Range(r) => r.validate()?,
            RequestOp::Put(p) => {
                p.validate()?;
                if !w.puts.insert(p.key.clone()) {
                    return Err(dup(&p.key));
                }
            }
            RequestOp::DeleteRange(d) => {
                d.validate()?;
                w.dels.push((d.key.clone(), d.range_end.clone()));
            }
            RequestOp::Txn(t) => {
                let (s, f) = t.validate_inner(count)?;
                // Only one nested branch runs, so each is checked against
                // this branch separately.
                for nested in [&s, &f] {
                    for k in &nested.puts {
                        if w.puts.contains(k) || w.dels.iter().any(|(a, b)| in_range(k, a, b)) {
                            return Err(dup(k));
                        }
                    }
                    for k in &w.puts {
                        if nested.dels.iter().any(|(a, b)| in_range(k, a, b)) {
                            return Err(dup(k));
                        }
                    }
                }
                for nested in [s, f] {
                    w.puts.extend(nested.puts);
                    w.dels.extend(nested.dels);
                }
            }
        }
    }
    for k in &w.puts {
        if w.dels.iter().any(|(a, b)| in_range(k, a, b)) {
            return Err(dup(k));
        }
    }
    Ok(w)
}

impl Op {
    /// Validates the request part that does not depend on the store's state.
    pub fn validate(&self) -> Result<(), StoreError> {
        match self {
            Op::Put(p) => p.validate(),
            Op::DeleteRange(d) => d.validate(),
            Op::Txn(t) => t.validate(),
            Op::Compact { revision } => {
                if *revision <= 0 {
                    Err(invalid(format!(
                        "compact revision {revision} must be positive"
                    )))
                } else {
                    Ok(())
                }
            }
            Op::LeaseGrant { id, ttl_ms } => {
                if *id < 0 {
                    return Err(invalid(format!("negative lease id {id}")));
                }
                if *ttl_ms <= 0 || *ttl_ms > MAX_LEASE_TTL_MS {
                    return Err(invalid(format!(
                        "lease ttl {ttl_ms} ms is outside 1..={MAX_LEASE_TTL_MS}"
                    )));
                }
                Ok(())
            }
            Op::LeaseRevoke { id } => {
                if *id <= 0 {
                    Err(invalid(format!("lease id {id} must be positive")))
                } else {
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str) -> RequestOp {
        RequestOp::Put(PutRequest {
            key: k.into(),
            value: b"v".to_vec(),
            ..Default::default()
        })
    }

    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp::DeleteRange(DeleteRangeRequest {
            key: k.into(),
            range_end: end.into(),
            prev_kv: false,
        })
    }

    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            compare: vec![],
            success,
            failure,
        }
    }

    #[test]
    fn ranges() {
        assert!(in_range(b"a", b"a", b""));
        assert!(!in_range(b"ab", b"a", b""));
        assert!(in_range(b"zzz", b"b", &[0]));
        assert!(!in_range(b"a", b"b", &[0]));
        assert!(in_range(b"b", b"a", b"c"));
        assert!(!in_range(b"c", b"a", b"c"));
    }

    #[test]
    fn validation() {
        assert!(Op::Put(PutRequest::default()).validate().is_err());
        assert!(txn(vec![put("a"), put("b")], vec![put("a")])
            .validate()
            .is_ok());
        assert!(txn(vec![put("a"), put("a")], vec![]).validate().is_err());
        assert!(txn(vec![put("b"), del("a", "c")], vec![])
            .validate()
            .is_err());
        assert!(txn(vec![del("a", "c"), del("b", "")], vec![])
            .validate()
            .is_ok());
        let nested = RequestOp::Txn(txn(vec![put("a")], vec![put("a")]));
        assert!(txn(vec![nested.clone()], vec![]).validate().is_ok());
        assert!(txn(vec![nested, put("a")], vec![]).validate().is_err());
        let many: Vec<_> = (0..=MAX_TXN_OPS).map(|i| put(&format!("k{i}"))).collect();
        let err = txn(many, vec![]).validate().unwrap_err();
        assert!(err.to_string().contains("limit") || err.to_string().contains("more than"));
        assert!(Op::LeaseGrant { id: 0, ttl_ms: 0 }.validate().is_err());
        assert!(Op::LeaseGrant { id: 0, ttl_ms: 10 }.validate().is_ok());
        assert!(Op::Compact { revision: 0 }.validate().is_err());
    }
}
