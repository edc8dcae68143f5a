use super::*;
use proptest::prelude::*;

fn put(key: &str, value: &str) -> Op {
    Op::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        lease: 0,
        prev_kv: true,
    })
}

fn cmd(op: Op) -> Command {
    Command {
        client: 0,
        seq: 0,
        first_incomplete: 0,
        op,
    }
}

fn get(m: &Mvcc, key: &str, rev: i64) -> Result<RangeResponse, StoreError> {
    m.range(&RangeRequest {
        key: key.into(),
        revision: rev,
        ..Default::default()
    })
}

struct Driver {
    m: Mvcc,
    index: u64,
}

impl Driver {
    fn new() -> Driver {
        Driver {
            m: Mvcc::new(),
            index: 0,
        }
    }
    fn apply(&mut self, op: Op) -> Applied {
        self.index += 1;
        self.m.apply(self.index, &cmd(op))
    }
}

#[test]
fn revisions_versions_and_history() {
    let mut d = Driver::new();
    assert_eq!(d.m.revision(), 1);
    let a = d.apply(put("a", "1"));
    assert_eq!(a.revision, 2);
    assert_eq!(a.result, OpResult::Put { prev_kv: None });
    assert_eq!(a.events.len(), 1);
    let b = d.apply(put("a", "2"));
    let OpResult::Put {
        prev_kv: Some(prev),
    } = &b.result
    else {
        panic!("{b:?}")
    };
    assert_eq!((prev.value.as_slice(), prev.version), (&b"1"[..], 1));
    let kv = d.m.get(b"a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    // Delete, then re-create: create_revision and version reset.
    let del = d.apply(Op::DeleteRange(DeleteRangeRequest {
        key: "a".into(),
        range_end: vec![],
        prev_kv: true,
    }));
    assert_eq!(del.revision, 4);
    assert_eq!(del.events[0].kind, EventKind::Delete);
    assert_eq!(del.events[0].kv.mod_revision, 4);
    // Deleting nothing does not bump the revision.
    let none = d.apply(Op::DeleteRange(DeleteRangeRequest {
        key: "zz".into(),
        range_end: vec![],
        prev_kv: false,
    }));
    assert_eq!(none.revision, 4);
    assert!(none.events.is_empty());
    d.apply(put("a", "3"));
    let kv = d.m.get(b"a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
    // History.
    assert_eq!(get(&d.m, "a", 2).unwrap().kvs[0].value, b"1");
    assert_eq!(get(&d.m, "a", 3).unwrap().kvs[0].value, b"2");
    assert_eq!(get(&d.m, "a", 4).unwrap().count, 0);
    assert_eq!(
        get(&d.m, "a", 6),
        Err(StoreError::FutureRevision {
            revision: 6,
            current: 5
        })
    );
    // Compaction keeps what is needed to read at the compact revision.
    assert_eq!(
        d.apply(Op::Compact { revision: 3 }).result,
        OpResult::Compact
    );
    assert_eq!(get(&d.m, "a", 3).unwrap().kvs[0].value, b"2");
    assert_eq!(
        get(&d.m, "a", 2),
        Err(StoreError::Compacted {
            compact_revision: 3
        })
    );
    assert!(matches!(
        d.apply(Op::Compact { revision: 3 }).result,
        OpResult::Error(StoreError::Compacted { .. })
    ));
    assert!(matches!(
        d.apply(Op::Compact { revision: 9 }).result,
        OpResult::Error(StoreError::FutureRevision { .. })
    ));
    assert!(d.m.events_since(3, b"a", b"", 0).is_err());
    let evs = d.m.events_since(4, b"a", b"", 0).unwrap();
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0].prev_kv.as_ref().unwrap().value, b"2");
    assert_eq!(evs[1].prev_kv, None);
}

#[test]
fn ranges_limits_and_flags() {
    let mut d = Driver::new();
    for k in ["a", "b", "c", "d"] {
        d.apply(put(k, k));
    }
    let r =
        d.m.range(&RangeRequest {
            key: "b".into(),
            range_end: vec![0],
            limit: 2,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.more, r.count), (2, true, 3));
    let r =
        d.m.range(&RangeRequest {
            key: "a".into(),
            range_end: "c".into(),
            keys_only: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.kvs.len(), 2);
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    let r =
        d.m.range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            count_only: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.count), (0, 4));
    assert!(d.m.range(&RangeRequest::default()).is_err());
    let r =
        d.m.range(&RangeRequest {
            key: "c".into(),
            range_end: "a".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.count, 0);
}

#[test]
fn txn_semantics() {
    let mut d = Driver::new();
    d.apply(put("a", "1"));
    let cas = |rev: i64| {
        Op::Txn(TxnRequest {
            compare: vec![Compare {
                key: "a".into(),
                range_end: vec![],
                op: CompareOp::Equal,
                target: CompareTarget::ModRevision(rev),
            }],
            success: vec![
                RequestOp::Put(PutRequest {
                    key: "a".into(),
                    value: "x".into(),
                    ..Default::default()
                }),
                RequestOp::Put(PutRequest {
                    key: "b".into(),
                    value: "y".into(),
                    ..Default::default()
                }),
                RequestOp::Range(RangeRequest {
                    key: "a".into(),
                    range_end: "c".into(),
                    ..Default::default()
                }),
            ],
            failure: vec![RequestOp::Range(RangeRequest {
                key: "a".into(),
                ..Default::default()
            })],
        })
    };
    let fail = d.apply(cas(1));
    let OpResult::Txn(t) = &fail.result else {
        panic!()
    };
    assert!(!t.succeeded);
    assert_eq!(fail.revision, 2);
    let ok = d.apply(cas(2));
    let OpResult::Txn(t) = &ok.result else {
        panic!()
    };
    assert!(t.succeeded);
    assert_eq!(ok.revision, 3, "one txn = one revision");
    assert_eq!(ok.events.len(), 2);
    let ResponseOp::Range(r) = &t.responses[2] else {
        panic!()
    };
    assert_eq!(r.count, 2, "reads in a txn see its own writes");
    assert!(r.kvs.iter().all(|kv| kv.mod_revision == 3));
    assert_eq!(d.m.events_since(3, &[0], &[0], 0).unwrap(), ok.events);
    // Value compare on an absent key is false; version compare sees 0.
    let absent = |target| {
        Op::Txn(TxnRequest {
            compare: vec![Compare {
                key: "nope".into(),
                range_end: vec![],
                op: CompareOp::Equal,
                target,
            }],
            success: vec![],
            failure: vec![],
        })
    };
    let r = d.apply(absent(CompareTarget::Value(vec![])));
    assert_eq!(r.result, OpResult::Txn(TxnResponse::default()));
    let r = d.apply(absent(CompareTarget::Version(0)));
    assert!(matches!(
        r.result,
        OpResult::Txn(TxnResponse {
            succeeded: true,
            ..
        })
    ));
    // Missing lease: the whole txn fails without effect.
    let before = d.m.digest();
    let r = d.apply(Op::Txn(TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(PutRequest {
                key: "c".into(),
                ..Default::default()
            }),
            RequestOp::Put(PutRequest {
                key: "d".into(),
                lease: 42,
                ..Default::default()
            }),
        ],
        failure: vec![],
    }));
    assert_eq!(
        r.result,
        OpResult::Error(StoreError::LeaseNotFound { id: 42 })
    );
    assert_eq!(r.revision, 3);
    assert!(d.m.get(b"c").is_none());
    // Only the applied index changed.
    assert_ne!(before, d.m.digest());
    assert_eq!(d.m.revision(), 3);
}

#[test]
fn leases() {
    let mut d = Driver::new();
    let g = d.apply(Op::LeaseGrant {
        id: 0,
        ttl_ms: 1000,
    });
    assert_eq!(
        g.result,
        OpResult::LeaseGrant {
            id: 1,
            ttl_ms: 1000
        }
    );
    assert_eq!(g.revision, 1);
    assert!(matches!(
        d.apply(Op::LeaseGrant { id: 1, ttl_ms: 5 }).result,
        OpResult::Error(StoreError::LeaseExists { id: 1 })
    ));
    d.apply(Op::LeaseGrant { id: 2, ttl_ms: 5 });
    assert_eq!(
        d.apply(Op::LeaseGrant { id: 0, ttl_ms: 5 }).result,
        OpResult::LeaseGrant { id: 3, ttl_ms: 5 }
    );
    for (k, lease) in [("a", 1), ("b", 1), ("c", 2)] {
        d.apply(Op::Put(PutRequest {
            key: k.into(),
            value: vec![],
            lease,
            prev_kv: false,
        }));
    }
    // Re-attach b to lease 2.
    d.apply(Op::Put(PutRequest {
        key: "b".into(),
        value: vec![],
        lease: 2,
        prev_kv: false,
    }));
    assert_eq!(d.m.lease_keys(1).count(), 1);
    let r = d.apply(Op::LeaseRevoke { id: 2 });
    assert_eq!(r.result, OpResult::LeaseRevoke);
    assert_eq!(r.events.len(), 2);
    assert!(r.events.iter().all(|e| e.kind == EventKind::Delete));
    assert!(d.m.get(b"b").is_none() && d.m.get(b"c").is_none() && d.m.get(b"a").is_some());
    assert_eq!(d.m.leases().collect::<Vec<_>>(), vec![(1, 1000), (3, 5)]);
    assert!(matches!(
        d.apply(Op::Put(PutRequest {
            key: "z".into(),
            value: vec![],
            lease: 2,
            prev_kv: false,
        }))
        .result,
        OpResult::Error(StoreError::LeaseNotFound { id: 2 })
    ));
    assert!(matches!(
        d.apply(Op::LeaseGrant { id: 0, ttl_ms: -1 }).result,
        OpResult::Error(StoreError::InvalidRequest { .. })
    ));
}

#[test]
fn sessions_deduplicate() {
    let mut m = Mvcc::new();
    let c = |seq, first_incomplete| Command {
        client: 7,
        seq,
        first_incomplete,
        op: put("k", &format!("v{seq}")),
    };
    let first = m.apply(1, &c(1, 1));
    let again = m.apply(2, &c(1, 1));
    assert!(again.duplicate && again.events.is_empty());
    assert_eq!(
        (again.result.clone(), again.revision),
        (first.result, first.revision)
    );
    assert_eq!(m.revision(), 2);
    m.apply(3, &c(2, 2)); // acknowledges seq 1
    let stale = m.apply(4, &c(1, 1));
    assert!(stale.duplicate);
    assert!(matches!(
        stale.result,
        OpResult::Error(StoreError::StaleRequest { .. })
    ));
    assert_eq!(m.revision(), 3);
    // Eviction of the least recently active client.
    let mut index = 10;
    for client in 100..100 + MAX_SESSIONS as u64 {
        index += 1;
        m.apply(
            index,
            &Command {
                client,
                seq: 1,
                first_incomplete: 1,
                op: Op::Compact { revision: 0 }, // invalid: cheap, still cached
            },
        );
    }
    assert_eq!(m.sessions.len(), MAX_SESSIONS);
    assert!(!m.sessions.contains_key(&7));
    let restored = Mvcc::restore(&m.snapshot()).unwrap();
    assert_eq!(restored, m);
    assert_eq!(restored.digest(), m.digest());
    assert!(Mvcc::restore(&[]).is_err());
    assert!(matches!(
        Mvcc::restore(&[9, 0]),
        Err(CodecError::Version { .. })
    ));
}

// ---- model-based property test ----

#[derive(Debug, Clone, PartialEq)]
struct MKv {
    value: Vec<u8>,
    create: i64,
    modr: i64,
    ver: i64,
    lease: i64,
}

struct Model {
    rev: i64,
    compact: i64,
    cur: BTreeMap<Vec<u8>, MKv>,
    /// The state at every revision >= compact.
    hist: BTreeMap<i64, BTreeMap<Vec<u8>, MKv>>,
    leases: BTreeMap<i64, i64>,
    next_lease: i64,
    events: Vec<Event>,
}

fn mkv(key: &[u8], v: &MKv) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        value: v.value.clone(),
        create_revision: v.create,
        mod_revision: v.modr,
        version: v.ver,
        lease: v.lease,
    }
}

impl Model {
    fn new() -> Model {
        Model {
            rev: 1,
            compact: 0,
            cur: BTreeMap::new(),
            hist: [(1, BTreeMap::new())].into(),
            leases: BTreeMap::new(),
            next_lease: 1,
            events: vec![],
        }
    }

    fn bump(&mut self, changed: bool) {
        if changed {
            self.rev += 1;
            self.hist.insert(self.rev, self.cur.clone());
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Option<KeyValue> {
        let prev = self.cur.get(key).cloned();
        let new = MKv {
            value: value.to_vec(),
            create: prev.as_ref().map_or(self.rev + 1, |p| p.create),
            modr: self.rev + 1,
            ver: prev.as_ref().map_or(1, |p| p.ver + 1),
            lease,
        };
        let prev_kv = prev.map(|p| mkv(key, &p));
        self.events.push(Event {
            kind: EventKind::Put,
            kv: mkv(key, &new),
            prev_kv: prev_kv.clone(),
        });
        self.cur.insert(key.to_vec(), new);
        prev_kv
    }

    fn delete(&mut self, key: &[u8]) -> KeyValue {
        let prev = self.cur.remove(key).expect("live");
        let prev_kv = mkv(key, &prev);
        self.events.push(Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.to_vec(),
                value: vec![],
                create_revision: 0,
                mod_revision: self.rev + 1,
                version: 0,
                lease: 0,
            },
            prev_kv: Some(prev_kv.clone()),
        });
        prev_kv
    }

    fn apply(&mut self, op: &Op) -> OpResult {
        match op {
            Op::Put(p) => {
                if p.lease != 0 && !self.leases.contains_key(&p.lease) {
                    return OpResult::Error(StoreError::LeaseNotFound { id: p.lease });
                }
                let prev = self.put(&p.key, &p.value, p.lease);
                self.bump(true);
                OpResult::Put {
                    prev_kv: if p.prev_kv { prev } else { None },
                }
            }
            Op::DeleteRange(d) => {
                let keys: Vec<Vec<u8>> = self
                    .cur
                    .keys()
                    .filter(|k| in_range(k, &d.key, &d.range_end))
                    .cloned()
                    .collect();
                let prev: Vec<KeyValue> = keys.iter().map(|k| self.delete(k)).collect();
                self.bump(!keys.is_empty());
                OpResult::DeleteRange {
                    deleted: keys.len() as i64,
                    prev_kvs: if d.prev_kv { prev } else { vec![] },
                }
            }
            Op::Txn(t) => {
                // Only the shapes the generator builds: one compare, a put
                // on success, a range on failure.
                let c = &t.compare[0];
                let cur = self.cur.get(&c.key);
                let ok = match (&c.target, cur) {
                    (CompareTarget::Value(v), Some(kv)) => kv.value == *v,
                    (CompareTarget::Value(_), None) => false,
                    (CompareTarget::ModRevision(r), kv) => kv.map_or(0, |kv| kv.modr) == *r,
                    _ => unreachable!(),
                };
                let branch = if ok { &t.success } else { &t.failure };
                let mut responses = vec![];
                for op in branch {
                    match op {
                        RequestOp::Put(p) => {
                            let prev = self.put(&p.key, &p.value, 0);
                            responses.push(ResponseOp::Put {
                                prev_kv: if p.prev_kv { prev } else { None },
                            });
                        }
                        RequestOp::Range(r) => {
                            responses.push(ResponseOp::Range(self.range(r).expect("current read")))
                        }
                        _ => unreachable!(),
                    }
                }
                self.bump(ok);
                OpResult::Txn(TxnResponse {
                    succeeded: ok,
                    responses,
                })
            }
            Op::Compact { revision } => {
                if *revision <= self.compact {
                    OpResult::Error(StoreError::Compacted {
                        compact_revision: self.compact,
                    })
                } else if *revision > self.rev {
                    OpResult::Error(StoreError::FutureRevision {
                        revision: *revision,
                        current: self.rev,
                    })
                } else {
                    self.compact = *revision;
                    self.hist = self.hist.split_off(revision);
                    self.events.retain(|e| e.kv.mod_revision > *revision);
                    OpResult::Compact
                }
            }
            Op::LeaseGrant { id, ttl_ms } => {
                let id = if *id == 0 {
                    while self.leases.contains_key(&self.next_lease) {
                        self.next_lease += 1;
                    }
                    self.next_lease += 1;
                    self.next_lease - 1
                } else {
                    *id
                };
                if self.leases.contains_key(&id) {
                    return OpResult::Error(StoreError::LeaseExists { id });
                }
                self.leases.insert(id, *ttl_ms);
                OpResult::LeaseGrant {
                    id,
                    ttl_ms: *ttl_ms,
                }
            }
            Op::LeaseRevoke { id } => {
                if self.leases.remove(id).is_none() {
                    return OpResult::Error(StoreError::LeaseNotFound { id: *id });
                }
                let keys: Vec<Vec<u8>> = self
                    .cur
                    .iter()
                    .filter(|(_, v)| v.lease == *id)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in &keys {
                    self.delete(k);
                }
                self.bump(!keys.is_empty());
                OpResult::LeaseRevoke
            }
        }
    }

    fn range(&self, r: &RangeRequest) -> Result<RangeResponse, StoreError> {
        let state = if r.revision == 0 {
            &self.cur
        } else if r.revision > self.rev {
            return Err(StoreError::FutureRevision {
                revision: r.revision,
                current: self.rev,
            });
        } else if r.revision < self.compact {
            return Err(StoreError::Compacted {
                compact_revision: self.compact,
            });
        } else {
            &self.hist[&r.revision]
        };
        let all: Vec<KeyValue> = state
            .iter()
            .filter(|(k, _)| in_range(k, &r.key, &r.range_end))
            .map(|(k, v)| mkv(k, v))
            .collect();
        let count = all.len() as i64;
        let limit = if r.limit == 0 { i64::MAX } else { r.limit };
        Ok(RangeResponse {
            more: count > limit,
            kvs: all.into_iter().take(limit.min(1 << 20) as usize).collect(),
            count,
        })
    }
}

#[derive(Debug, Clone)]
enum Action {
    Write(Op),
    Read(RangeRequest),
    Watch(i64),
    Retry,
    Snapshot,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    (b'a'..b'f').prop_map(|c| vec![c])
}

fn range_end() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![]),
        Just(vec![0]),
        (b'a'..b'g').prop_map(|c| vec![c])
    ]
}

fn action() -> impl Strategy<Value = Action> {
    let value = prop::collection::vec(b'0'..b'3', 0..3);
    prop_oneof![
        4 => (key(), value.clone(), prop_oneof![3 => Just(0i64), 1 => 1..4i64], any::<bool>())
            .prop_map(|(key, value, lease, prev_kv)| Action::Write(Op::Put(PutRequest { key, value, lease, prev_kv }))),
        2 => (key(), range_end(), any::<bool>())
            .prop_map(|(key, range_end, prev_kv)| Action::Write(Op::DeleteRange(DeleteRangeRequest { key, range_end, prev_kv }))),
        3 => (key(), prop_oneof![value.clone().prop_map(CompareTarget::Value), (0..12i64).prop_map(CompareTarget::ModRevision)], value)
            .prop_map(|(key, target, value)| Action::Write(Op::Txn(TxnRequest {
                compare: vec![Compare { key: key.clone(), range_end: vec![], op: CompareOp::Equal, target }],
                success: vec![RequestOp::Put(PutRequest { key: key.clone(), value, lease: 0, prev_kv: true })],
                failure: vec![RequestOp::Range(RangeRequest { key, range_end: vec![0], ..Default::default() })],
            }))),
        3 => (key(), range_end(), 0..14i64, 0..3i64, any::<bool>())
            .prop_map(|(key, range_end, revision, limit, keys_only)| Action::Read(RangeRequest { key, range_end, limit, revision, keys_only, count_only: false })),
        1 => (1..14i64).prop_map(|revision| Action::Write(Op::Compact { revision })),
        1 => (0..4i64).prop_map(|id| Action::Write(Op::LeaseGrant { id, ttl_ms: 100 })),
        1 => (1..5i64).prop_map(|id| Action::Write(Op::LeaseRevoke { id })),
        1 => (1..14i64).prop_map(Action::Watch),
        1 => Just(Action::Retry),
        1 => Just(Action::Snapshot),
    ]
}

fn fix_keys_only(mut r: RangeResponse, keys_only: bool) -> RangeResponse {
    if keys_only {
        for kv in &mut r.kvs {
            kv.value.clear();
        }
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn matches_model(actions in prop::collection::vec(action(), 1..60)) {
        let mut m = Mvcc::new();
        let mut model = Model::new();
        let mut twin: Option<Mvcc> = None;
        let mut index = 0u64;
        let mut seq = 0u64;
        let mut last: Option<(Command, Applied)> = None;
        for a in actions {
            match a {
                Action::Write(op) => {
                    index += 1;
                    seq += 1;
                    let c = Command { client: 1, seq, first_incomplete: seq, op: op.clone() };
                    let got = m.apply(index, &c);
                    if let Some(t) = &mut twin {
                        prop_assert_eq!(&t.apply(index, &c), &got);
                    }
                    let n_events = model.events.len();
                    let want = model.apply(&op);
                    prop_assert_eq!(&got.result, &want, "op {:?}", op);
                    prop_assert_eq!(got.revision, model.rev);
                    prop_assert!(!got.duplicate);
                    let fresh = if matches!(op, Op::Compact { .. }) { &[][..] } else { &model.events[n_events..] };
                    prop_assert_eq!(&got.events[..], fresh);
                    last = Some((c, got));
                }
                Action::Retry => {
                    if let Some((c, first)) = &last {
                        index += 1;
                        let before = m.revision();
                        let got = m.apply(index, c);
                        if let Some(t) = &mut twin {
                            prop_assert_eq!(&t.apply(index, c), &got);
                        }
                        prop_assert!(got.duplicate && got.events.is_empty());
                        prop_assert_eq!(&got.result, &first.result);
                        prop_assert_eq!(got.revision, first.revision);
                        prop_assert_eq!(m.revision(), before);
                    }
                }
                Action::Read(r) => {
                    let got = m.range(&r);
                    let want = model.range(&r).map(|x| fix_keys_only(x, r.keys_only));
                    prop_assert_eq!(&got, &want, "read {:?}", r);
                    if let Some(t) = &twin {
                        prop_assert_eq!(&t.range(&r), &got);
                    }
                }
                Action::Watch(start) => {
                    let got = m.events_since(start, &[0], &[0], 0);
                    if start <= model.compact {
                        prop_assert!(got.is_err());
                    } else {
                        let want: Vec<Event> = model.events.iter().filter(|e| e.kv.mod_revision >= start).cloned().collect();
                        prop_assert_eq!(got.unwrap(), want);
                        let some = m.events_since(start, b"b", b"d", 1).unwrap();
                        let want: Vec<Event> = model.events.iter()
                            .filter(|e| e.kv.mod_revision >= start && in_range(&e.kv.key, b"b", b"d"))
                            .cloned().collect();
                        prop_assert_eq!(&some[..], &want[..some.len()]);
                        prop_assert!(some.len() <= 2);
                    }
                }
                Action::Snapshot => {
                    let restored = Mvcc::restore(&m.snapshot()).unwrap();
                    prop_assert_eq!(restored.digest(), m.digest());
                    prop_assert_eq!(&restored, &m);
                    twin = Some(restored);
                }
            }
        }
        if let Some(t) = twin {
            prop_assert_eq!(t.digest(), m.digest());
        }
    }
}

#[test]
fn nested_txn_compares_see_the_state_before_the_txn() {
    let mut d = Driver::new();
    d.apply(put("a", "1"));
    let version_is = |v| Compare {
        key: "a".into(),
        range_end: vec![],
        op: CompareOp::Equal,
        target: CompareTarget::Version(v),
    };
    let r = d.apply(Op::Txn(TxnRequest {
        compare: vec![version_is(1)],
        success: vec![
            RequestOp::Put(PutRequest {
                key: "a".into(),
                value: "2".into(),
                ..Default::default()
            }),
            RequestOp::Txn(TxnRequest {
                // Still version 1: nested compares are evaluated up front.
                compare: vec![version_is(1)],
                success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                    key: "b".into(),
                    range_end: "z".into(),
                    prev_kv: true,
                })],
                failure: vec![],
            }),
        ],
        failure: vec![],
    }));
    let OpResult::Txn(t) = &r.result else {
        panic!("{r:?}")
    };
    assert!(t.succeeded);
    let ResponseOp::Txn(inner) = &t.responses[1] else {
        panic!()
    };
    assert!(inner.succeeded);
    assert_eq!(d.m.get(b"a").unwrap().version, 2);
    // Compare over a range: every key must satisfy it.
    d.apply(put("b", "1"));
    let r = d.apply(Op::Txn(TxnRequest {
        compare: vec![Compare {
            key: "a".into(),
            range_end: "c".into(),
            op: CompareOp::Greater,
            target: CompareTarget::Value(b"1".to_vec()),
        }],
        success: vec![],
        failure: vec![],
    }));
    assert!(matches!(
        r.result,
        OpResult::Txn(TxnResponse {
            succeeded: false,
            ..
        })
    ));
    // Duplicate puts are rejected before anything happens.
    let r = d.apply(Op::Txn(TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(PutRequest {
                key: "x".into(),
                ..Default::default()
            }),
            RequestOp::Put(PutRequest {
                key: "x".into(),
                ..Default::default()
            }),
        ],
        failure: vec![],
    }));
    assert!(matches!(
        r.result,
        OpResult::Error(StoreError::InvalidRequest { .. })
    ));
}

#[test]
fn watch_limit_keeps_revisions_whole() {
    let mut d = Driver::new();
    d.apply(put("a", "1"));
    d.apply(Op::Txn(TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(PutRequest {
                key: "b".into(),
                ..Default::default()
            }),
            RequestOp::Put(PutRequest {
                key: "c".into(),
                ..Default::default()
            }),
        ],
        failure: vec![],
    }));
    d.apply(put("d", "1"));
    let all = d.m.events_since(1, &[0], &[0], 0).unwrap();
    assert_eq!(all.len(), 4);
    let two = d.m.events_since(3, &[0], &[0], 1).unwrap();
    assert_eq!(two.len(), 2, "the txn's two events stay together");
    assert_eq!(two, all[1..3]);
    assert!(d.m.events_since(0, &[0], &[0], 0).is_err());
    assert!(d.m.events_since(9, &[0], &[0], 0).unwrap().is_empty());
}

#[test]
fn many_keys() {
    let mut d = Driver::new();
    let n = 20_000;
    for i in 0..n {
        d.apply(put(&format!("key/{i:06}"), "some value"));
    }
    for i in 0..n / 2 {
        d.apply(put(&format!("key/{i:06}"), "another value"));
    }
    let r =
        d.m.range(&RangeRequest {
            key: "key/".into(),
            range_end: "key0".into(),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((r.count, r.kvs.len(), r.more), (n as i64, 10, true));
    let rev = d.m.revision();
    d.apply(Op::Compact { revision: rev - 5 });
    let restored = Mvcc::restore(&d.m.snapshot()).unwrap();
    assert_eq!(restored.digest(), d.m.digest());
    assert_eq!(restored.live_keys(), n);
}
