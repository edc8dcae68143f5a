//! Property tests for the linearizability checker: histories generated from a
//! real sequential execution must be accepted, and certainly-broken mutations
//! of them must be rejected.

use std::collections::BTreeMap;

use faultline_checker::{check, Call, CallResult, History, Outcome, Verdict};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BUDGET: u64 = 5_000_000;

/// Shape of a generated history.
#[derive(Debug, Clone, Copy)]
struct Shape {
    keys: usize,
    clients: u64,
    ops: usize,
    /// Probability that an op times out (outcome unknown).
    p_unknown: f64,
    /// Probability that an op is rejected (outcome fail, no effect).
    p_fail: f64,
}

/// An op under construction, with its linearization point.
struct Gen {
    client: u64,
    key: usize,
    call: Call,
    invoke: u64,
    lin: u64,
    /// `None`: unknown outcome.
    complete: Option<u64>,
    failed: bool,
    /// Whether the op takes effect (false for failed ops and for unknown ops
    /// that never land).
    applied: bool,
    result: Option<CallResult>,
}

/// Generates a linearizable history: every op gets a linearization point in
/// its [invoke, complete] interval (unknown ops: any time after invoke, or
/// never) and results come from executing the ops in that order.
fn generate(seed: u64, shape: Shape) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cursor: Vec<u64> = (0..shape.clients)
        .map(|_| rng.random_range(0..20))
        .collect();
    let mut written: Vec<Vec<String>> = vec![Vec::new(); shape.keys];
    let mut fresh = 0u64;
    let mut ops: Vec<Gen> = Vec::with_capacity(shape.ops);
    for _ in 0..shape.ops {
        let client = rng.random_range(0..shape.clients);
        let key = rng.random_range(0..shape.keys);
        let mut value = || {
            fresh += 1;
            format!("v{fresh}")
        };
        let call = match rng.random_range(0..10) {
            0..=3 => Call::Get,
            4..=6 => Call::Put { value: value() },
            7 => Call::Delete,
            _ => {
                let pool = &written[key];
                let expected = match rng.random_range(0..(pool.len() + 2)) {
                    0 => None,
                    i if i <= pool.len() => Some(pool[i - 1].clone()),
                    _ => Some("never-written".to_owned()),
                };
                Call::Cas {
                    expected,
                    new: value(),
                }
            }
        };
        if let Call::Put { value } | Call::Cas { new: value, .. } = &call {
            written[key].push(value.clone());
        }
        let c = usize::try_from(client).unwrap();
        let invoke = cursor[c] + rng.random_range(0..20);
        let duration = rng.random_range(0..50);
        let roll: f64 = rng.random();
        let (lin, complete, failed, applied) = if roll < shape.p_unknown {
            // Lands any time after invoke (possibly long after the client
            // gave up), or never.
            cursor[c] = invoke + 60;
            (
                invoke + rng.random_range(0..400),
                None,
                false,
                rng.random_bool(0.5),
            )
        } else if roll < shape.p_unknown + shape.p_fail {
            cursor[c] = invoke + duration;
            (invoke, Some(invoke + duration), true, false)
        } else {
            cursor[c] = invoke + duration;
            (
                invoke + rng.random_range(0..=duration),
                Some(invoke + duration),
                false,
                true,
            )
        };
        ops.push(Gen {
            client,
            key,
            call,
            invoke,
            lin,
            complete,
            failed,
            applied,
            result: None,
        });
    }
    // Execute in linearization order (ties: any order is valid, both points
    // lie in both intervals).
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| (ops[i].lin, i));
    let mut registers: Vec<Option<String>> = vec![None; shape.keys];
    for i in order {
        let op = &mut ops[i];
        if !op.applied {
            continue;
        }
        let reg = &mut registers[op.key];
        op.result = Some(match &op.call {
            Call::Get => CallResult::Get(reg.clone()),
            Call::Put { value } => {
                *reg = Some(value.clone());
                CallResult::Put
            }
            Call::Delete => {
                *reg = None;
                CallResult::Delete
            }
            Call::Cas { expected, new } => {
                let swap = reg == expected;
                if swap {
                    *reg = Some(new.clone());
                }
                CallResult::Cas(swap)
            }
        });
    }
    ops.sort_by_key(|op| op.invoke);
    let mut history = History::new();
    for op in ops {
        let id = history.invoke(op.client, format!("k{}", op.key), op.call, op.invoke);
        let outcome = match (op.complete, op.failed, op.result) {
            (None, _, _) => Outcome::Unknown,
            (Some(complete_ns), true, _) => Outcome::Fail { complete_ns },
            (Some(complete_ns), false, Some(result)) => Outcome::Ok {
                complete_ns,
                result,
            },
            (Some(_), false, None) => unreachable!("definite ops are applied"),
        };
        history.complete(id, outcome).unwrap();
    }
    history
}

/// Latest completion time in the history (0 if none).
fn end_of(history: &History) -> u64 {
    history
        .ops
        .iter()
        .map(|op| op.complete_ns().unwrap_or(op.invoke_ns))
        .max()
        .unwrap_or(0)
}

fn push_ok(h: &mut History, client: u64, key: &str, call: Call, span: (u64, u64), r: CallResult) {
    let id = h.invoke(client, key, call, span.0);
    h.complete(
        id,
        Outcome::Ok {
            complete_ns: span.1,
            result: r,
        },
    )
    .unwrap();
}

/// Makes a Get return a value that was never written to its key: either an
/// existing successful Get (picked by `pick`) or a new one at the end.
fn mutate_phantom_read(mut h: History, pick: usize) -> History {
    let gets: Vec<usize> = (0..h.ops.len())
        .filter(|&i| {
            matches!(
                h.ops[i].outcome,
                Outcome::Ok {
                    result: CallResult::Get(_),
                    ..
                }
            )
        })
        .collect();
    if gets.is_empty() {
        let t = end_of(&h) + 1;
        push_ok(
            &mut h,
            1000,
            "k0",
            Call::Get,
            (t, t + 1),
            CallResult::Get(Some("phantom".into())),
        );
    } else if let Outcome::Ok { result, .. } = &mut h.ops[gets[pick % gets.len()]].outcome {
        *result = CallResult::Get(Some("phantom".into()));
    }
    h
}

/// Appends, after everything completed, a Put of a fresh value on a key and
/// then a Get that returns the value of the last definite write to that key
/// before it (a stale read). No other op can write that old value again, so
/// the result is certainly not linearizable. Returns `None` when no key has
/// a definite write.
fn mutate_stale_read(mut h: History, pick: usize) -> Option<History> {
    // Last definite write per key, by completion time; a write's value is
    // unique, so which of several overlapping ones we pick does not matter.
    let mut last: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for op in &h.ops {
        let value = match (&op.call, &op.outcome) {
            (
                Call::Put { value },
                Outcome::Ok {
                    result: CallResult::Put,
                    ..
                },
            )
            | (
                Call::Cas { new: value, .. },
                Outcome::Ok {
                    result: CallResult::Cas(true),
                    ..
                },
            ) => value,
            _ => continue,
        };
        let done = op.complete_ns().unwrap();
        let slot = last.entry(op.key.clone()).or_insert((done, value.clone()));
        if done >= slot.0 {
            *slot = (done, value.clone());
        }
    }
    let keys: Vec<&String> = last.keys().collect();
    let key = (*keys.get(pick % keys.len().max(1))?).clone();
    let old = last[&key].1.clone();
    let t = end_of(&h) + 1;
    push_ok(
        &mut h,
        1000,
        &key,
        Call::Put {
            value: "fresh".into(),
        },
        (t, t + 5),
        CallResult::Put,
    );
    push_ok(
        &mut h,
        1001,
        &key,
        Call::Get,
        (t + 6, t + 8),
        CallResult::Get(Some(old)),
    );
    Some(h)
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        1usize..=3,
        1u64..=5,
        1usize..=60,
        prop_oneof![Just(0.0), Just(0.1), Just(0.25)],
        prop_oneof![Just(0.0), Just(0.05)],
    )
        .prop_map(|(keys, clients, ops, p_unknown, p_fail)| Shape {
            keys,
            clients,
            ops,
            p_unknown,
            p_fail,
        })
}

fn assert_not_linearizable(v: &Verdict, h: &History) -> Result<(), TestCaseError> {
    match v {
        Verdict::NotLinearizable { ops, detail, .. } => {
            prop_assert!(!ops.is_empty());
            prop_assert!(detail.contains("could not be linearized"), "{detail}");
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "expected NotLinearizable, got {other:?} for {h:#?}"
        ))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_histories_are_linearizable(seed in any::<u64>(), shape in shape()) {
        let h = generate(seed, shape);
        let v = check(&h, BUDGET);
        prop_assert_eq!(v, Verdict::Linearizable, "history: {:#?}", h);
    }

    #[test]
    fn phantom_reads_are_not_linearizable(
        seed in any::<u64>(),
        shape in shape(),
        pick in any::<usize>(),
    ) {
        let h = mutate_phantom_read(generate(seed, shape), pick);
        assert_not_linearizable(&check(&h, BUDGET), &h)?;
    }

    #[test]
    fn stale_reads_are_not_linearizable(
        seed in any::<u64>(),
        shape in shape(),
        pick in any::<usize>(),
    ) {
        let h = generate(seed, shape);
        if let Some(h) = mutate_stale_read(h, pick) {
            assert_not_linearizable(&check(&h, BUDGET), &h)?;
        }
    }
}

#[test]
fn verdict_round_trips_through_json() {
    let h = mutate_phantom_read(generate(7, shape_large(200, 2)), 3);
    let v = check(&h, BUDGET);
    assert!(matches!(v, Verdict::NotLinearizable { .. }));
    let json = serde_json::to_string(&v).unwrap();
    assert_eq!(serde_json::from_str::<Verdict>(&json).unwrap(), v);
    if let Verdict::NotLinearizable { detail, ops, .. } = &v {
        eprintln!("example detail: {detail}");
        for op in ops {
            eprintln!("  {op}");
        }
    }
}

fn shape_large(ops: usize, keys: usize) -> Shape {
    Shape {
        keys,
        clients: 5,
        ops,
        p_unknown: 0.02,
        p_fail: 0.02,
    }
}

/// Performance sanity check: 10,000 ops over 20 keys with 5 clients. Prints
/// the time taken; wall time is not asserted (the machine may be loaded).
#[test]
#[allow(clippy::disallowed_methods)] // wall clock only measures the test itself
fn ten_thousand_ops_check_quickly() {
    let h = generate(42, shape_large(10_000, 20));
    let unknown = h
        .ops
        .iter()
        .filter(|op| op.outcome == Outcome::Unknown)
        .count();
    let started = std::time::Instant::now();
    let v = check(&h, BUDGET);
    let elapsed = started.elapsed();
    eprintln!(
        "checked {} ops ({unknown} unknown) over 20 keys in {elapsed:?}",
        h.ops.len()
    );
    assert_eq!(v, Verdict::Linearizable);

    let bad = mutate_stale_read(h, 5).unwrap();
    let started = std::time::Instant::now();
    let v = check(&bad, BUDGET);
    eprintln!(
        "rejected the same history plus a stale read in {:?}",
        started.elapsed()
    );
    assert!(matches!(v, Verdict::NotLinearizable { .. }), "{v:?}");
}
