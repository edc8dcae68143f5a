//! The store workload, run by client hosts inside the simulation; what
//! they see goes into the checker's [`Recorder`](faultline_checker::Recorder).
//!
//! - **register** ops (get, put, cas, delete) on a few keys, recorded as a
//!   history for the linearizability checker;
//! - **set** adds (a put of a fresh key), checked for loss at the end;
//! - a **watcher** that follows the set's prefix and records every event,
//!   checked for gaps, duplicates and order.
//!
//! Everything a client does goes through its host's `Env`, so the same code
//! runs on both backends.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use faultline_checker::history::{Call, CallResult};
use faultline_checker::record::{FinalState, SharedRecorder, WatchSegment, SET_PREFIX};
use faultline_checker::watch::{EventKind as WEventKind, WatchEvent};
use faultline_env::Env;
use faultline_store::client::{prefix, prefix_end, ClientConfig, ClientError, StoreClient};
use faultline_store::ops::EventKind;
use rand::Rng;
use tokio::sync::Semaphore;

use faultline_scenario::Mix;

/// Prefix of the register keys.
pub const REGISTER_PREFIX: &str = "reg/";
/// Registers are replaced by fresh ones this often (Jepsen's "independent"
/// keys): a key's history stays short, so checking it stays tractable even
/// when an outage piles up concurrent operations.
pub const KEY_GENERATION: Duration = Duration::from_secs(10);

/// Operations one client keeps in flight at most.
pub const MAX_IN_FLIGHT: usize = 3;

/// The register key `k` of generation `generation`.
pub fn register_key(generation: u64, k: u32) -> String {
    format!("{REGISTER_PREFIX}g{generation}/k{k}")
}
/// The client id used for the final reads.
pub const FINAL_CLIENT: u64 = u64::MAX;

/// What the clients do.
pub struct WorkloadSpec {
    pub endpoints: Vec<String>,
    /// Operations per simulated second for one client.
    pub rate_per_client: f64,
    pub keys: u32,
    pub mix: Mix,
    /// Set when the faulty phase ends: clients stop issuing operations.
    pub stop: Rc<Cell<bool>>,
    /// Reads start at a random master.
    pub spread_reads: bool,
}

fn client_config(endpoints: &[String]) -> ClientConfig {
    let mut cfg = ClientConfig::new(endpoints.to_vec());
    cfg.attempt_timeout = Duration::from_secs(1);
    cfg.deadline = Duration::from_secs(5);
    cfg
}

fn value(v: &Option<faultline_store::ops::KeyValue>) -> Option<String> {
    v.as_ref()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

/// One client: issues operations at random until told to stop.
pub async fn client_loop(env: Env, index: u32, spec: Rc<WorkloadSpec>, rec: SharedRecorder) {
    let mut cfg = client_config(&spec.endpoints);
    cfg.spread_reads = spec.spread_reads;
    let client = Rc::new(StoreClient::new(env.clone(), cfg));
    let id = u64::from(index);
    let weights = [
        spec.mix.get,
        spec.mix.put,
        spec.mix.cas,
        spec.mix.delete,
        spec.mix.add,
    ];
    let total: u32 = weights.iter().sum();
    // The last value this client saw per key, to make CAS plausible.
    let seen: Rc<RefCell<BTreeMap<String, Option<String>>>> = Default::default();
    let mut n = 0u64;
    let start = env.now();
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let (gap, pick, k) = {
            let mut rng = env.rng();
            let u: f64 = rng.random_range(1e-9..1.0);
            (
                Duration::from_secs_f64(-u.ln() / spec.rate_per_client),
                rng.random_range(0..total),
                rng.random_range(0..spec.keys),
            )
        };
        env.sleep(gap).await;
        if spec.stop.get() {
            return;
        }
        n += 1;
        let generation = ((env.now() - start).as_secs_f64() / KEY_GENERATION.as_secs_f64()) as u64;
        let key = register_key(generation, k);
        let mut acc = 0;
        let op = weights
            .iter()
            .position(|w| {
                acc += w;
                pick < acc
            })
            .expect("pick < total");
        let val = format!("c{index}-{n}");
        // Open loop, as a load generator, so the offered rate does not
        // depend on latency — but with a few operations in flight at most
        // per client, as a bounded pool of connections would have: an
        // outage then piles up a handful of operations per client, not
        // hundreds, and each key's history stays checkable.
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        let task = one_op(client.clone(), id, op, key, val, seen.clone(), rec.clone());
        env.spawn(async move {
            task.await;
            drop(permit);
        });
    }
}

/// Runs and records one operation of a client.
async fn one_op(
    client: Rc<StoreClient>,
    id: u64,
    op: usize,
    key: String,
    val: String,
    seen: Rc<RefCell<BTreeMap<String, Option<String>>>>,
    rec: SharedRecorder,
) {
    match op {
        0 => {
            let op_id = rec.borrow_mut().invoke(id, &key, Call::Get);
            match client.get(key.as_bytes()).await {
                Ok(kv) => {
                    let v = value(&kv);
                    seen.borrow_mut().insert(key.clone(), v.clone());
                    rec.borrow_mut().ok(op_id, CallResult::Get(v));
                }
                // A read that timed out constrains nothing.
                Err(e) => rec.borrow_mut().failed(op_id, &e),
            }
        }
        1 => {
            let op_id = rec
                .borrow_mut()
                .invoke(id, &key, Call::Put { value: val.clone() });
            match client.put(key.as_bytes(), val.as_bytes()).await {
                Ok(_) => {
                    seen.borrow_mut().insert(key.clone(), Some(val));
                    rec.borrow_mut().ok(op_id, CallResult::Put);
                }
                Err(e) => rec.borrow_mut().failed(op_id, &e),
            }
        }
        2 => {
            let expected = seen.borrow().get(&key).cloned().flatten();
            let call = Call::Cas {
                expected: expected.clone(),
                new: val.clone(),
            };
            let op_id = rec.borrow_mut().invoke(id, &key, call);
            match client
                .cas(
                    key.as_bytes(),
                    expected.as_deref().map(str::as_bytes),
                    val.as_bytes(),
                )
                .await
            {
                Ok(swapped) => {
                    if swapped {
                        seen.borrow_mut().insert(key.clone(), Some(val));
                    }
                    rec.borrow_mut().ok(op_id, CallResult::Cas(swapped));
                }
                Err(e) => rec.borrow_mut().failed(op_id, &e),
            }
        }
        3 => {
            let op_id = rec.borrow_mut().invoke(id, &key, Call::Delete);
            match client.delete(key.as_bytes()).await {
                Ok(_) => {
                    seen.borrow_mut().insert(key.clone(), None);
                    rec.borrow_mut().ok(op_id, CallResult::Delete);
                }
                Err(e) => rec.borrow_mut().failed(op_id, &e),
            }
        }
        _ => {
            let element = format!("{SET_PREFIX}{val}");
            match client.put(element.as_bytes(), val.as_bytes()).await {
                Ok(_) => {
                    let mut r = rec.borrow_mut();
                    r.ops_ok += 1;
                    r.set_acknowledged.insert(element);
                }
                Err(ClientError::Timeout {
                    maybe_applied: true,
                }) => {
                    let mut r = rec.borrow_mut();
                    r.ops_unknown += 1;
                    r.set_unknown.insert(element);
                }
                Err(_) => rec.borrow_mut().ops_failed += 1,
            }
        }
    }
}

/// Follows the set prefix from revision 1 and records every event.
pub async fn watcher_loop(env: Env, endpoints: Vec<String>, rec: SharedRecorder) {
    let client = StoreClient::new(env.clone(), client_config(&endpoints));
    let end = prefix_end(SET_PREFIX.as_bytes());
    let mut next: u64 = 1;
    rec.borrow_mut().watch.push(WatchSegment {
        start_revision: 1,
        received: Vec::new(),
    });
    loop {
        let Some(mut stream) = client.watch(SET_PREFIX.as_bytes(), &end, next as i64).await else {
            env.sleep(Duration::from_millis(200)).await;
            continue;
        };
        loop {
            match stream.next().await {
                Some(Ok(events)) => {
                    let mut r = rec.borrow_mut();
                    let seg = r.watch.last_mut().expect("a segment is open");
                    for e in events {
                        let revision = e.kv.mod_revision as u64;
                        next = next.max(revision + 1);
                        seg.received.push(WatchEvent {
                            revision,
                            key: String::from_utf8_lossy(&e.kv.key).into_owned(),
                            kind: match e.kind {
                                EventKind::Put => WEventKind::Put {
                                    value: String::from_utf8_lossy(&e.kv.value).into_owned(),
                                },
                                EventKind::Delete => WEventKind::Delete,
                            },
                        });
                    }
                }
                Some(Err(faultline_store::ops::StoreError::Compacted { compact_revision }))
                    if compact_revision as u64 >= next =>
                {
                    // History we had not seen was compacted: a gap is
                    // legitimate here, so a new gap-free segment starts.
                    next = compact_revision as u64 + 1;
                    rec.borrow_mut().watch.push(WatchSegment {
                        start_revision: next,
                        received: Vec::new(),
                    });
                    break;
                }
                Some(Err(_)) | None => break,
            }
        }
        env.sleep(Duration::from_millis(100)).await;
    }
}

/// After healing: reads the whole set and every register (recording the
/// register reads in the history so linearizability covers the end state).
pub async fn final_reads(
    env: Env,
    endpoints: Vec<String>,
    keys: u32,
    generations: u64,
    rec: SharedRecorder,
) -> FinalState {
    let client = StoreClient::new(env.clone(), client_config(&endpoints));
    let mut out = FinalState::default();
    let deadline = env.now() + Duration::from_secs(60);
    loop {
        match client.range(prefix(SET_PREFIX.as_bytes()), true).await {
            Ok((_, r)) => {
                out.set = r
                    .kvs
                    .iter()
                    .map(|kv| {
                        (
                            kv.mod_revision as u64,
                            String::from_utf8_lossy(&kv.key).into_owned(),
                            String::from_utf8_lossy(&kv.value).into_owned(),
                        )
                    })
                    .collect();
                break;
            }
            Err(e) if env.now() >= deadline => {
                out.error = Some(format!("final read of the set failed: {e}"));
                return out;
            }
            Err(_) => env.sleep(Duration::from_millis(500)).await,
        }
    }
    for (generation, k) in (0..generations).flat_map(|g| (0..keys).map(move |k| (g, k))) {
        let key = register_key(generation, k);
        let op_id = rec.borrow_mut().invoke(FINAL_CLIENT, &key, Call::Get);
        match client.get(key.as_bytes()).await {
            Ok(kv) => rec.borrow_mut().ok(op_id, CallResult::Get(value(&kv))),
            Err(e) => rec.borrow_mut().failed(op_id, &e),
        }
    }
    out
}

/// Waits until every replica reports the same applied index and state
/// digest, with one leader and nobody recovering. Returns how long it took.
pub async fn await_convergence(
    env: Env,
    endpoints: Vec<String>,
    within: Duration,
) -> Result<Duration, String> {
    let start = env.now();
    let client = StoreClient::new(env.clone(), client_config(&endpoints));
    let mut stable = 0;
    loop {
        let mut states = Vec::new();
        for i in 0..endpoints.len() {
            states.push(client.status(i).await);
        }
        let view: Vec<String> = states
            .iter()
            .zip(&endpoints)
            .map(|(s, e)| match s {
                Some(s) => format!(
                    "{e}: term {} leader {:?} applied {} commit {} digest {:016x}{}",
                    s.term,
                    s.leader,
                    s.applied,
                    s.commit,
                    s.digest,
                    if s.recovering { " RECOVERING" } else { "" }
                ),
                None => format!("{e}: unreachable"),
            })
            .collect();
        let all: Option<Vec<_>> = states.into_iter().collect();
        let agreed = all.as_ref().is_some_and(|all| {
            let first = &all[0];
            first.leader.is_some()
                && all.iter().all(|s| {
                    !s.recovering
                        && s.applied == first.applied
                        && s.applied == s.commit
                        && s.digest == first.digest
                        && s.leader == first.leader
                        && s.term == first.term
                })
        });
        if agreed {
            stable += 1;
            if stable >= 2 {
                return Ok(env.now() - start);
            }
        } else {
            stable = 0;
        }
        if env.now() - start >= within {
            return Err(format!(
                "replicas did not converge within {within:?}: {}",
                view.join("; ")
            ));
        }
        env.sleep(Duration::from_millis(500)).await;
    }
}
