//! Cross-checks the linearizability checker against a brute-force oracle on
//! small random histories (most of them not linearizable), with repeated
//! values, unknown and failed outcomes and CAS in every flavour.

use faultline_checker::{check, Call, CallResult, History, Op, Outcome, Verdict};
use proptest::prelude::*;

const VALUES: [&str; 3] = ["a", "b", "c"];

fn value() -> impl Strategy<Value = String> {
    (0..VALUES.len()).prop_map(|i| VALUES[i].to_owned())
}

fn maybe_value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![Just(None), value().prop_map(Some)]
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        3 => Just(Call::Get),
        3 => value().prop_map(|value| Call::Put { value }),
        1 => Just(Call::Delete),
        2 => (maybe_value(), value()).prop_map(|(expected, new)| Call::Cas { expected, new }),
    ]
}

/// A result of the right kind for `call`, with random content.
fn result_for(call: &Call, read: Option<String>, swapped: bool) -> CallResult {
    match call {
        Call::Get => CallResult::Get(read),
        Call::Put { .. } => CallResult::Put,
        Call::Delete => CallResult::Delete,
        Call::Cas { .. } => CallResult::Cas(swapped),
    }
}

fn op(id: u64) -> impl Strategy<Value = Op> {
    (
        call(),
        0u64..40,
        0u64..20,
        0u8..10,
        maybe_value(),
        any::<bool>(),
    )
        .prop_map(move |(call, invoke_ns, len, kind, read, swapped)| {
            let complete_ns = invoke_ns + len;
            let outcome = match kind {
                0..=1 => Outcome::Unknown,
                2 => Outcome::Fail { complete_ns },
                _ => Outcome::Ok {
                    complete_ns,
                    result: result_for(&call, read, swapped),
                },
            };
            Op {
                id,
                client: id,
                key: "k".into(),
                call,
                invoke_ns,
                outcome,
            }
        })
}

fn history() -> impl Strategy<Value = History> {
    (1usize..=7)
        .prop_flat_map(|n| (0..n as u64).map(op).collect::<Vec<_>>())
        .prop_map(|ops| History { ops })
}

/// Applies `op` to `state`; `None` if its recorded result is impossible.
fn step(state: &Option<String>, op: &Op) -> Option<Option<String>> {
    let result = match &op.outcome {
        Outcome::Ok { result, .. } => Some(result),
        _ => None,
    };
    match (&op.call, result) {
        (Call::Get, Some(CallResult::Get(v))) => (v == state).then(|| state.clone()),
        (Call::Put { value }, _) => Some(Some(value.clone())),
        (Call::Delete, _) => Some(None),
        (Call::Cas { expected, new }, r) => {
            let swap = expected == state;
            match r {
                Some(CallResult::Cas(s)) if *s != swap => None,
                _ => Some(if swap {
                    Some(new.clone())
                } else {
                    state.clone()
                }),
            }
        }
        _ => None,
    }
}

/// Depth-first search over every order of every admissible subset.
fn oracle(ops: &[&Op], done: &mut Vec<bool>, state: &Option<String>) -> bool {
    let pending_definite = ops
        .iter()
        .zip(done.iter())
        .any(|(o, d)| !d && o.complete_ns().is_some());
    if !pending_definite {
        return true;
    }
    for i in 0..ops.len() {
        if done[i] {
            continue;
        }
        // `i` can go next only if no other pending definite op returned
        // strictly before `i` was invoked.
        let blocked = ops.iter().zip(done.iter()).enumerate().any(|(j, (o, d))| {
            j != i && !d && o.complete_ns().is_some_and(|c| c < ops[i].invoke_ns)
        });
        if blocked {
            continue;
        }
        if let Some(next) = step(state, ops[i]) {
            done[i] = true;
            let ok = oracle(ops, done, &next);
            done[i] = false;
            if ok {
                return true;
            }
        }
    }
    false
}

fn brute_force(h: &History) -> bool {
    // Failed ops and unknown gets are irrelevant.
    let ops: Vec<&Op> = h
        .ops
        .iter()
        .filter(|o| match o.outcome {
            Outcome::Ok { .. } => true,
            Outcome::Fail { .. } => false,
            Outcome::Unknown => o.call.is_write(),
        })
        .collect();
    oracle(&ops, &mut vec![false; ops.len()], &None)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 5000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn agrees_with_brute_force(h in history()) {
        let expected = brute_force(&h);
        let verdict = check(&h, 1_000_000);
        let undecided = matches!(verdict, Verdict::Undecided { .. });
        prop_assert!(!undecided, "{:?}", verdict);
        prop_assert_eq!(verdict.is_linearizable(), expected, "{:?}", verdict);
    }
}
