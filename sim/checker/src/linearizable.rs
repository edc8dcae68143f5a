//! Linearizability checker for the per-key register model.
//!
//! Each key is an independent register that starts out absent and supports
//! `Get`, `Put`, `Delete` and compare-and-set (see [`Call`]). Because
//! operations on different keys never interact, the history is partitioned
//! per key (linearizability is compositional) and each partition is checked
//! on its own, in key order.
//!
//! # Algorithm
//!
//! Wing & Gong's search with Lowe's memoisation, as in Porcupine:
//!
//! * Every operation contributes a *call* event at `invoke_ns` and, when it
//!   has a definite outcome, a *return* event at `complete_ns`. Events are
//!   sorted by time; at equal times calls sort before returns, so an op that
//!   returns at `t` and one invoked at the same `t` count as **concurrent**.
//!   A return at `t` happens-before an invoke at `t'` only if `t < t'`.
//! * The search walks the event list from its head. At a call it tries to
//!   linearize that op next (apply it to the register); if the register
//!   accepts it and the pair (set of linearized ops, register state) was
//!   never seen before, the op is lifted out of the list and the walk
//!   restarts from the head. Reaching the return of an op that is not yet
//!   linearized means the current prefix is a dead end: the most recently
//!   linearized op is undone (backtracking) and the walk continues after it.
//! * The memo cache holds every (linearized-set bitset, state) pair ever
//!   reached; a pair already visited is never explored twice.
//! * The key is linearizable once every op with a definite outcome is
//!   linearized; it is not once backtracking empties the stack.
//!
//! # Outcomes
//!
//! * [`Outcome::Ok`] ops must be linearized between invocation and
//!   completion, with exactly the recorded result.
//! * [`Outcome::Fail`] ops definitely did not happen and are dropped.
//! * [`Outcome::Unknown`] writes (`Put`, `Delete`, `Cas`) complete at
//!   +infinity: they may be linearized at any point after their invocation,
//!   or never (dropped). An unknown `Cas` behaves like a real compare-and-set
//!   wherever it is placed. An unknown `Get` constrains nothing and is
//!   dropped.
//! * The initial value of every key is "absent".
//!
//! # Taming unknown outcomes
//!
//! Unknown writes make the search exponential (each may or may not happen,
//! anywhere after its invocation). Three sound and complete reductions
//! keep the common cases cheap:
//!
//! * Unknown writes whose written value nothing could ever observe (no `Get`
//!   returned it, no `Cas` expects it, and no definite `Cas` failed on the
//!   key) are dropped up front: such a write can always be dropped from a
//!   valid linearization instead. If some `Cas` failed, such writes are kept
//!   but all write one canonical "unobserved" state.
//! * An unknown write that is the only possible writer of a value observed
//!   by a definite op must take effect before that op completed; it gets
//!   that completion as its deadline, i.e. it must be linearized.
//! * The remaining unknown ops with identical effects (e.g. several
//!   timed-out deletes) are interchangeable and are linearized in
//!   invocation order only.
//!
//! Histories with many unknown writes whose values *are* observed can still
//! be expensive to reject. Each key's search is capped at a number of steps
//! (event visits); past it the verdict is [`Verdict::Undecided`] rather than
//! a hang.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::history::{Call, CallResult, DisplayValue, History, Op, Outcome};

/// A reasonable per-key step budget for [`check`]: 5 million search steps.
pub const DEFAULT_MAX_STEPS_PER_KEY: u64 = 5_000_000;

/// At most this many ops are reported in [`Verdict::NotLinearizable::ops`].
const MAX_WINDOW_OPS: usize = 32;
/// At most this many ops that completed before the culprit was invoked are
/// included in the reported window.
const MAX_PRECEDING_OPS: usize = 3;
/// At most this many candidate register states are named in a detail.
const MAX_REPORTED_STATES: usize = 16;

/// The result of [`check`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Every key's sub-history is linearizable.
    Linearizable,
    /// The sub-history of `key` is not linearizable.
    NotLinearizable {
        /// The first key (in key order) whose sub-history is not
        /// linearizable.
        key: String,
        /// A small window of ops on `key` around the failure, sorted by
        /// invocation time: the op that could not be linearized, the ops
        /// concurrent with it, and the last few ops that completed before it
        /// was invoked.
        ops: Vec<Op>,
        /// Human-readable explanation: which op could not be linearized and
        /// what the register could have held at that point.
        detail: String,
    },
    /// The search for `key` ran out of its step budget before deciding (and
    /// no key was found to be non-linearizable).
    Undecided {
        /// The first key (in key order) whose check was cut short.
        key: String,
        /// The steps spent on it.
        steps: u64,
    },
}

impl Verdict {
    /// Whether the verdict is [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// Checks `history` for linearizability against the per-key register model,
/// spending at most `max_steps_per_key` search steps on each key (see
/// [`DEFAULT_MAX_STEPS_PER_KEY`]).
///
/// Keys are checked in order. The first non-linearizable key is reported;
/// if none is found but some key exhausted its budget, the first such key is
/// reported as [`Verdict::Undecided`].
pub fn check(history: &History, max_steps_per_key: u64) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in &history.ops {
        let keep = match op.outcome {
            Outcome::Ok { .. } => true,
            Outcome::Fail { .. } => false,
            Outcome::Unknown => op.call.is_write(),
        };
        if keep {
            by_key.entry(op.key.as_str()).or_default().push(op);
        }
    }
    let mut undecided = None;
    for (key, ops) in by_key {
        let mut search = KeySearch::new(prepare(ops));
        match search.run(max_steps_per_key, None) {
            SearchResult::Linearizable => {}
            SearchResult::Stuck(failure) => {
                // Run again, watching the culprit, to learn every state the
                // register could have held while it was pending. The search
                // is deterministic, so this fits the same budget.
                let pending = match search.run(max_steps_per_key, Some(failure.culprit)) {
                    SearchResult::Stuck(again) => again.watched,
                    _ => BTreeSet::new(),
                };
                return search.verdict(key, failure, pending);
            }
            SearchResult::OutOfSteps(steps) => {
                if undecided.is_none() {
                    undecided = Some(Verdict::Undecided {
                        key: key.to_owned(),
                        steps,
                    });
                }
            }
        }
    }
    undecided.unwrap_or(Verdict::Linearizable)
}

/// One op of a key's sub-history, with the time by which it must have
/// taken effect (`None`: it may take effect at any time, or never).
#[derive(Debug, Clone, Copy)]
struct KeyOp<'a> {
    op: &'a Op,
    ret: Option<u64>,
    /// An unknown write whose written value nothing observes: it writes the
    /// canonical [`UNOBSERVED`] state instead.
    canonical: bool,
}

/// The value an op writes if it takes effect (`Some(None)` for a delete),
/// or `None` for ops that never write (gets and definitely failed CASes).
fn written_value(op: &Op) -> Option<Option<&str>> {
    match (&op.call, &op.outcome) {
        (Call::Get, _) => None,
        (Call::Put { value }, _) => Some(Some(value.as_str())),
        (Call::Delete, _) => Some(None),
        (
            Call::Cas { .. },
            Outcome::Ok {
                result: CallResult::Cas(false),
                ..
            },
        ) => None,
        (Call::Cas { new, .. }, _) => Some(Some(new.as_str())),
    }
}

/// Prepares one key's ops (definite ops and unknown writes) for the search.
///
/// * Unknown writes whose written value nothing could observe (no `Get`
///   returned it, no `Cas` expects it, and no definite `Cas` failed on the
///   key) are dropped: in any valid linearization such a write is followed
///   only by non-swapping unknown CASes before being overwritten, so it can
///   be dropped together with them.
/// * Surviving unknown writes of unobservable values write the canonical
///   [`UNOBSERVED`] state: all such states behave identically under every
///   op of the key, so merging them is sound and shrinks the search.
/// * An unknown write that is the only op that could write its value `x`
///   must have taken effect before any definite op that observed `x` (a
///   `Get` returning it, a `Cas` that swapped from it) completed: it gets
///   that completion time as its deadline, which spares the search from
///   trying to leave it out.
fn prepare(ops: Vec<&Op>) -> Vec<KeyOp<'_>> {
    let mut observable: BTreeSet<Option<&str>> = BTreeSet::new();
    // Earliest completion of a definite op that saw each value.
    let mut first_seen: BTreeMap<&str, u64> = BTreeMap::new();
    let mut writers: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failed_cas = false;
    for op in &ops {
        if let Some(Some(v)) = written_value(op) {
            *writers.entry(v).or_default() += 1;
        }
        let seen = match (&op.call, &op.outcome) {
            (
                Call::Get,
                Outcome::Ok {
                    result: CallResult::Get(v),
                    complete_ns,
                },
            ) => {
                observable.insert(v.as_deref());
                v.as_deref().map(|v| (v, *complete_ns))
            }
            (Call::Cas { expected, .. }, outcome) => {
                observable.insert(expected.as_deref());
                match outcome {
                    Outcome::Ok {
                        result: CallResult::Cas(false),
                        ..
                    } => {
                        failed_cas = true;
                        None
                    }
                    Outcome::Ok {
                        result: CallResult::Cas(true),
                        complete_ns,
                    } => expected.as_deref().map(|v| (v, *complete_ns)),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some((v, at)) = seen {
            let slot = first_seen.entry(v).or_insert(at);
            *slot = (*slot).min(at);
        }
    }
    ops.into_iter()
        .filter_map(|op| {
            if op.outcome != Outcome::Unknown {
                return Some(KeyOp {
                    op,
                    ret: op.complete_ns(),
                    canonical: false,
                });
            }
            let written = written_value(op)?;
            if !failed_cas && !observable.contains(&written) {
                return None;
            }
            let ret = written
                .filter(|v| writers.get(v) == Some(&1))
                .and_then(|v| first_seen.get(v).copied());
            Some(KeyOp {
                op,
                ret,
                canonical: written.is_some() && !observable.contains(&written),
            })
        })
        .collect()
}

/// Register state: 0 is "absent", `i + 1` is the `i`-th interned value.
type State = u32;
const ABSENT: State = 0;
/// Stands for every value that no op of the key observes (no `Get` returned
/// it, no `Cas` expects it): all such values behave identically.
const UNOBSERVED: State = State::MAX;

/// An op translated to interned register states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ModelOp {
    /// A `Get` that returned this state.
    Read(State),
    /// A `Put` or `Delete` (definite or unknown): sets this state.
    Write(State),
    /// A compare-and-set; `swapped` is `None` when the outcome is unknown.
    Cas {
        expected: State,
        new: State,
        swapped: Option<bool>,
    },
    /// A definite op whose result does not answer its call: never legal.
    Impossible,
}

impl ModelOp {
    /// The register state after applying this op to `state`, or `None` if
    /// the op's recorded result is inconsistent with `state`.
    fn step(self, state: State) -> Option<State> {
        match self {
            ModelOp::Read(s) => (s == state).then_some(state),
            ModelOp::Write(s) => Some(s),
            ModelOp::Cas {
                expected,
                new,
                swapped,
            } => match swapped {
                Some(true) => (state == expected).then_some(new),
                Some(false) => (state != expected).then_some(state),
                None => Some(if state == expected { new } else { state }),
            },
            ModelOp::Impossible => None,
        }
    }
}

/// Interns the register values of one key.
#[derive(Default)]
struct Values<'a> {
    ids: BTreeMap<&'a str, State>,
    names: Vec<&'a str>,
}

impl<'a> Values<'a> {
    fn intern(&mut self, v: Option<&'a str>) -> State {
        let Some(v) = v else { return ABSENT };
        if let Some(&id) = self.ids.get(v) {
            return id;
        }
        self.names.push(v);
        let id = State::try_from(self.names.len()).expect("fewer than 2^32 values per key");
        self.ids.insert(v, id);
        id
    }

    fn describe(&self, s: State) -> String {
        match s {
            ABSENT => DisplayValue(None).to_string(),
            UNOBSERVED => "<a value written by a timed-out write and never observed>".to_owned(),
            s => DisplayValue(Some(self.names[s as usize - 1])).to_string(),
        }
    }

    fn model(&mut self, key_op: KeyOp<'a>) -> ModelOp {
        let op = key_op.op;
        if key_op.canonical {
            return match &op.call {
                Call::Cas { expected, .. } => ModelOp::Cas {
                    expected: self.intern(expected.as_deref()),
                    new: UNOBSERVED,
                    swapped: None,
                },
                _ => ModelOp::Write(UNOBSERVED),
            };
        }
        match (&op.call, &op.outcome) {
            (_, Outcome::Fail { .. }) => ModelOp::Impossible,
            (Call::Get, Outcome::Ok { result, .. }) => match result {
                CallResult::Get(v) => ModelOp::Read(self.intern(v.as_deref())),
                _ => ModelOp::Impossible,
            },
            // Unknown gets are dropped before the search; a no-op anyway.
            (Call::Get, Outcome::Unknown) => ModelOp::Cas {
                expected: ABSENT,
                new: ABSENT,
                swapped: None,
            },
            (Call::Put { value }, outcome) => match outcome {
                Outcome::Ok {
                    result: CallResult::Put,
                    ..
                }
                | Outcome::Unknown => ModelOp::Write(self.intern(Some(value))),
                _ => ModelOp::Impossible,
            },
            (Call::Delete, outcome) => match outcome {
                Outcome::Ok {
                    result: CallResult::Delete,
                    ..
                }
                | Outcome::Unknown => ModelOp::Write(ABSENT),
                _ => ModelOp::Impossible,
            },
            (Call::Cas { expected, new }, outcome) => {
                let swapped = match outcome {
                    Outcome::Ok {
                        result: CallResult::Cas(b),
                        ..
                    } => Some(*b),
                    Outcome::Unknown => None,
                    _ => return ModelOp::Impossible,
                };
                ModelOp::Cas {
                    expected: self.intern(expected.as_deref()),
                    new: self.intern(Some(new)),
                    swapped,
                }
            }
        }
    }
}

/// A visited (linearized-set bitset, register state) pair of the memo cache.
type Visited = (Box<[u64]>, State);

/// "No node" in the event list.
const NIL: usize = usize::MAX;
/// The list head sentinel; event nodes are `1..=events`, in sorted order.
const HEAD: usize = 0;

/// A 64-bit mixer (splitmix64 finaliser) for the incremental set hash.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

enum SearchResult {
    Linearizable,
    Stuck(Failure),
    OutOfSteps(u64),
}

/// Where the search got furthest before failing.
struct Failure {
    /// Index of the op whose return the search could not get past on its
    /// furthest attempt.
    culprit: usize,
    /// Register states seen when blocked there.
    blocked: BTreeSet<State>,
    /// Largest number of ops linearized when blocked there.
    depth: usize,
    /// States in which the watched op (if any) was tried and refused.
    watched: BTreeSet<State>,
}

/// The Wing & Gong / Lowe search over one key's ops.
struct KeySearch<'a> {
    ops: Vec<KeyOp<'a>>,
    model: Vec<ModelOp>,
    values: Values<'a>,
    /// Doubly linked event list (dancing links): `next`/`prev` per node.
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Per node: the op index and whether it is the op's call event.
    node_op: Vec<usize>,
    node_is_call: Vec<bool>,
    /// Per op: its return node, or `NIL` if it need not be linearized.
    ret_node: Vec<usize>,
    /// Return nodes still in the list.
    returns: usize,
    /// Per op: `(group, rank)` for ops without a return event. Such ops
    /// with the same model op are interchangeable except for their
    /// invocation times, so each group is linearized in invocation order
    /// (the `rank`-th op of a group only after the earlier ones): any
    /// linearization can be rearranged that way, and it spares the search
    /// from trying every subset.
    group: Vec<Option<(usize, usize)>>,
    groups: usize,
}

impl<'a> KeySearch<'a> {
    fn new(ops: Vec<KeyOp<'a>>) -> Self {
        let mut values = Values::default();
        let model: Vec<ModelOp> = ops.iter().map(|&k| values.model(k)).collect();
        let mut by_model: BTreeMap<ModelOp, Vec<usize>> = BTreeMap::new();
        for (i, k) in ops.iter().enumerate() {
            if k.ret.is_none() {
                by_model.entry(model[i]).or_default().push(i);
            }
        }
        let mut group = vec![None; ops.len()];
        let groups = by_model.len();
        for (g, mut members) in by_model.into_values().enumerate() {
            members.sort_by_key(|&i| (ops[i].op.invoke_ns, ops[i].op.id));
            for (rank, i) in members.into_iter().enumerate() {
                group[i] = Some((g, rank));
            }
        }
        // (time, 0 = call / 1 = return, op index): calls before returns at
        // equal times, so such ops are concurrent.
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, k) in ops.iter().enumerate() {
            events.push((k.op.invoke_ns, 0, i));
            if let Some(done) = k.ret {
                events.push((done.max(k.op.invoke_ns), 1, i));
            }
        }
        events.sort_unstable();
        let nodes = events.len() + 1;
        let mut next = vec![NIL; nodes];
        let mut prev = vec![HEAD; nodes];
        let mut node_op = vec![0; nodes];
        let mut node_is_call = vec![false; nodes];
        let mut ret_node = vec![NIL; ops.len()];
        let mut returns = 0;
        for (j, &(_, kind, i)) in events.iter().enumerate() {
            let node = j + 1;
            next[j] = node;
            prev[node] = j;
            node_op[node] = i;
            node_is_call[node] = kind == 0;
            if kind == 1 {
                ret_node[i] = node;
                returns += 1;
            }
        }
        KeySearch {
            ops,
            model,
            values,
            next,
            prev,
            node_op,
            node_is_call,
            ret_node,
            returns,
            group,
            groups,
        }
    }

    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        if n != NIL {
            self.prev[n] = node;
        }
    }

    /// Removes an op's call (and return) from the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        let ret = self.ret_node[self.node_op[call]];
        if ret != NIL {
            self.unlink(ret);
            self.returns -= 1;
        }
    }

    /// Undoes [`Self::lift`]; lifts must be undone in reverse order.
    fn unlift(&mut self, call: usize) {
        let ret = self.ret_node[self.node_op[call]];
        if ret != NIL {
            self.relink(ret);
            self.returns += 1;
        }
        self.relink(call);
    }

    /// Runs the search. A failed search leaves the list as it found it, so
    /// it can be run again (e.g. to watch the culprit).
    fn run(&mut self, max_steps: u64, watch: Option<usize>) -> SearchResult {
        let words = self.ops.len().div_ceil(64);
        let mut linearized = vec![0u64; words];
        let mut set_hash = 0u64;
        // (hash of set and state) -> visited (set, state) pairs.
        let mut cache: BTreeMap<u64, Vec<Visited>> = BTreeMap::new();
        // (call node, state before linearizing it)
        let mut stack: Vec<(usize, State)> = Vec::new();
        let mut state = ABSENT;
        let mut entry = self.next[HEAD];
        let mut steps = 0u64;
        // Furthest blocking return node, states seen there, max depth there.
        let mut best = (HEAD, BTreeSet::new(), 0usize);
        let mut watched = BTreeSet::new();
        // Per group: how many of its ops are linearized.
        let mut used = vec![0usize; self.groups];

        while self.returns > 0 {
            if steps >= max_steps {
                return SearchResult::OutOfSteps(steps);
            }
            steps += 1;
            let op = self.node_op[entry];
            if self.node_is_call[entry] {
                let in_turn = self.group[op].is_none_or(|(g, rank)| used[g] == rank);
                if !in_turn {
                    entry = self.next[entry];
                    continue;
                }
                if let Some(new_state) = self.model[op].step(state) {
                    let (w, bit) = (op / 64, 1u64 << (op % 64));
                    linearized[w] |= bit;
                    set_hash ^= mix(op as u64);
                    let key = set_hash ^ mix(u64::from(new_state) ^ 0x5851_F42D_4C95_7F2D);
                    let bucket = cache.entry(key).or_default();
                    let seen = bucket
                        .iter()
                        .any(|(set, s)| *s == new_state && **set == *linearized);
                    if !seen {
                        bucket.push((linearized.clone().into_boxed_slice(), new_state));
                        stack.push((entry, state));
                        state = new_state;
                        if let Some((g, _)) = self.group[op] {
                            used[g] += 1;
                        }
                        self.lift(entry);
                        entry = self.next[HEAD];
                        continue;
                    }
                    linearized[w] &= !bit;
                    set_hash ^= mix(op as u64);
                } else if watch == Some(op) && watched.len() < MAX_REPORTED_STATES {
                    watched.insert(state);
                }
                entry = self.next[entry];
            } else {
                // The return of an op that is not linearized: dead end.
                if entry > best.0 {
                    best = (entry, BTreeSet::from([state]), stack.len());
                } else if entry == best.0 {
                    if best.1.len() < MAX_REPORTED_STATES {
                        best.1.insert(state);
                    }
                    best.2 = best.2.max(stack.len());
                }
                let Some((call, before)) = stack.pop() else {
                    return SearchResult::Stuck(Failure {
                        culprit: self.node_op[best.0],
                        blocked: best.1,
                        depth: best.2,
                        watched,
                    });
                };
                let undone = self.node_op[call];
                linearized[undone / 64] &= !(1u64 << (undone % 64));
                set_hash ^= mix(undone as u64);
                state = before;
                if let Some((g, _)) = self.group[undone] {
                    used[g] -= 1;
                }
                self.unlift(call);
                entry = self.next[call];
            }
        }
        SearchResult::Linearizable
    }

    fn describe(&self, states: &BTreeSet<State>) -> String {
        let names = states
            .iter()
            .map(|&s| self.values.describe(s))
            .collect::<Vec<_>>()
            .join(", ");
        if states.len() == 1 {
            names
        } else {
            format!("one of {{{names}}}")
        }
    }

    /// Builds the verdict for a failed search. `pending` holds the states
    /// in which the culprit was tried and refused.
    fn verdict(&self, key: &str, failure: Failure, pending: BTreeSet<State>) -> Verdict {
        let KeyOp {
            op: culprit, ret, ..
        } = self.ops[failure.culprit];
        let held = if pending.is_empty() {
            self.describe(&failure.blocked)
        } else {
            self.describe(&pending)
        };
        let at_return = self.describe(&failure.blocked);
        let why = match (&culprit.call, &culprit.outcome) {
            (Call::Get, Outcome::Ok { result, .. }) if result.matches(&culprit.call) => format!(
                "it returned {result}, but while it was pending the register could only have \
                 held {held}"
            ),
            (Call::Cas { expected, .. }, Outcome::Ok { result, .. })
                if result == &CallResult::Cas(true) =>
            {
                format!(
                    "it swapped, so the register must have held {}, but while it was pending it \
                     could only have held {held}",
                    DisplayValue(expected.as_deref())
                )
            }
            (Call::Cas { expected, .. }, Outcome::Ok { result, .. })
                if result == &CallResult::Cas(false) =>
            {
                format!(
                    "it did not swap, so the register must not have held {}, but while it was \
                     pending it could only have held {held}",
                    DisplayValue(expected.as_deref())
                )
            }
            (_, Outcome::Ok { result, .. }) if !result.matches(&culprit.call) => {
                format!("its result {result:?} does not answer the call")
            }
            (_, Outcome::Unknown) => format!(
                "it is the only write of its value, which was observed by {} ns, so it must \
                 have taken effect by then, but no order of it and the ops concurrent with it \
                 is consistent; the register could have held {at_return} at that point",
                ret.unwrap_or(u64::MAX)
            ),
            _ => format!(
                "no order of it and the ops concurrent with it is consistent; when it \
                 completed the register could have held {at_return}"
            ),
        };
        let detail = format!(
            "{culprit} could not be linearized: {why} (the search's furthest path linearized \
             {depth} of the {total} op(s) checked on key {key:?})",
            depth = failure.depth,
            total = self.ops.len(),
        );
        Verdict::NotLinearizable {
            key: key.to_owned(),
            ops: self.window(failure.culprit),
            detail,
        }
    }

    /// The culprit, the ops concurrent with it and the last few ops that
    /// completed before it was invoked, sorted by invocation time.
    fn window(&self, culprit: usize) -> Vec<Op> {
        let c = self.ops[culprit].op;
        let (start, end) = (c.invoke_ns, c.complete_ns().unwrap_or(u64::MAX));
        let mut definite = Vec::new();
        let mut unknown = Vec::new();
        let mut before = Vec::new();
        for (i, k) in self.ops.iter().enumerate() {
            if i == culprit || k.op.invoke_ns > end {
                continue;
            }
            match k.op.complete_ns() {
                Some(done) if done < start => before.push((done, i)),
                Some(_) => definite.push(i),
                None => unknown.push(i),
            }
        }
        before.sort_unstable_by(|a, b| b.cmp(a));
        let mut chosen = vec![culprit];
        chosen.extend(definite);
        chosen.extend(before.iter().take(MAX_PRECEDING_OPS).map(|&(_, i)| i));
        // Latest-invoked unknown ops first.
        chosen.extend(unknown.iter().rev());
        chosen.truncate(MAX_WINDOW_OPS);
        let op = |i: usize| self.ops[i].op;
        chosen.sort_unstable_by_key(|&i| (op(i).invoke_ns, op(i).id));
        chosen.into_iter().map(|i| op(i).clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: u64 = DEFAULT_MAX_STEPS_PER_KEY;

    /// A tiny history builder: `(client, key, call, invoke, completion)`.
    struct B(History);

    impl B {
        fn new() -> Self {
            B(History::new())
        }
        fn ok(&mut self, client: u64, key: &str, call: Call, span: (u64, u64), r: CallResult) {
            let id = self.0.invoke(client, key, call, span.0);
            self.0
                .complete(
                    id,
                    Outcome::Ok {
                        complete_ns: span.1,
                        result: r,
                    },
                )
                .unwrap();
        }
        fn put(&mut self, client: u64, key: &str, v: &str, span: (u64, u64)) {
            self.ok(client, key, put(v), span, CallResult::Put);
        }
        fn get(&mut self, client: u64, key: &str, v: Option<&str>, span: (u64, u64)) {
            self.ok(
                client,
                key,
                Call::Get,
                span,
                CallResult::Get(v.map(str::to_owned)),
            );
        }
        fn unknown(&mut self, client: u64, key: &str, call: Call, at: u64) {
            self.0.invoke(client, key, call, at);
        }
        fn fail(&mut self, client: u64, key: &str, call: Call, span: (u64, u64)) {
            let id = self.0.invoke(client, key, call, span.0);
            self.0
                .complete(
                    id,
                    Outcome::Fail {
                        complete_ns: span.1,
                    },
                )
                .unwrap();
        }
        fn check(&self) -> Verdict {
            check(&self.0, BUDGET)
        }
    }

    fn put(v: &str) -> Call {
        Call::Put {
            value: v.to_owned(),
        }
    }

    fn cas(expected: Option<&str>, new: &str) -> Call {
        Call::Cas {
            expected: expected.map(str::to_owned),
            new: new.to_owned(),
        }
    }

    fn assert_not_lin(v: &Verdict, key: &str, culprit_id: u64) -> String {
        match v {
            Verdict::NotLinearizable {
                key: k,
                ops,
                detail,
            } => {
                assert_eq!(k, key);
                assert!(
                    detail.starts_with(&format!("op #{culprit_id} ")),
                    "unexpected culprit: {detail}"
                );
                assert!(ops.iter().any(|o| o.id == culprit_id), "{ops:?}");
                detail.clone()
            }
            other => panic!("expected NotLinearizable, got {other:?}"),
        }
    }

    #[test]
    fn empty_history() {
        assert_eq!(check(&History::new(), BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn sequential() {
        let mut b = B::new();
        b.get(1, "k", None, (0, 1));
        b.put(1, "k", "a", (2, 3));
        b.get(2, "k", Some("a"), (4, 5));
        b.put(2, "k", "b", (6, 7));
        b.get(1, "k", Some("b"), (8, 9));
        b.ok(1, "k", Call::Delete, (10, 11), CallResult::Delete);
        b.get(2, "k", None, (12, 13));
        assert!(b.check().is_linearizable());
    }

    #[test]
    fn concurrent_overlapping_writes() {
        let mut b = B::new();
        b.put(1, "k", "a", (0, 10));
        b.put(2, "k", "b", (1, 9));
        // Both orders are possible, and reads may disagree while concurrent.
        b.get(3, "k", Some("a"), (2, 3));
        b.get(4, "k", Some("b"), (4, 5));
        b.get(3, "k", Some("b"), (6, 12));
        b.get(4, "k", Some("b"), (13, 14));
        assert!(b.check().is_linearizable());
        // The reads fixed the order "a" then "b": "a" cannot come back.
        b.get(3, "k", Some("a"), (15, 16));
        let detail = assert_not_lin(&b.check(), "k", 6);
        assert!(
            detail.contains(
                "returned \"a\", but while it was pending the register could only have held \"b\""
            ),
            "{detail}"
        );
    }

    #[test]
    fn stale_read() {
        let mut b = B::new();
        b.put(1, "k", "old", (0, 1));
        b.put(1, "k", "new", (2, 3));
        b.get(2, "k", Some("old"), (4, 5));
        let v = b.check();
        let detail = assert_not_lin(&v, "k", 2);
        assert!(
            detail.contains("returned \"old\", but while it was pending the register could only have held \"new\""),
            "{detail}"
        );
        let Verdict::NotLinearizable { ops, .. } = v else {
            unreachable!()
        };
        // The culprit and the writes before it.
        assert_eq!(ops.iter().map(|o| o.id).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn returns_and_invokes_at_the_same_instant_are_concurrent() {
        let mut b = B::new();
        b.put(1, "k", "a", (0, 1));
        b.put(1, "k", "b", (2, 5));
        // Invoked at 5, the instant the put of "b" returned: concurrent.
        b.get(2, "k", Some("a"), (5, 6));
        assert!(b.check().is_linearizable());
        b.get(2, "k", Some("a"), (6, 7));
        assert!(!b.check().is_linearizable());
    }

    #[test]
    fn read_of_value_never_written() {
        let mut b = B::new();
        b.put(1, "k", "a", (0, 10));
        b.get(2, "k", Some("zzz"), (2, 3));
        let detail = assert_not_lin(&b.check(), "k", 1);
        assert!(
            detail.contains("returned \"zzz\", but while it was pending the register could only have held one of {<absent>, \"a\"}"),
            "{detail}"
        );
    }

    #[test]
    fn unknown_writes_may_appear_later_or_never() {
        let mut b = B::new();
        b.put(1, "k", "a", (0, 1));
        b.unknown(2, "k", put("u"), 2);
        b.get(3, "k", Some("a"), (100, 101));
        // The timed-out put lands much later.
        b.get(3, "k", Some("u"), (500, 501));
        b.put(1, "k", "c", (600, 601));
        b.get(3, "k", Some("c"), (700, 701));
        b.unknown(1, "k", put("never-seen"), 800);
        b.unknown(1, "k", Call::Get, 800);
        assert!(b.check().is_linearizable());

        // But it takes effect only once: it cannot reappear after "c".
        b.get(3, "k", Some("u"), (900, 901));
        assert_not_lin(&b.check(), "k", 8);
    }

    #[test]
    fn unknown_write_cannot_precede_its_invocation() {
        let mut b = B::new();
        b.get(1, "k", Some("u"), (0, 1));
        b.unknown(2, "k", put("u"), 2);
        assert_not_lin(&b.check(), "k", 0);
    }

    #[test]
    fn failed_ops_are_ignored() {
        let mut b = B::new();
        b.put(1, "k", "a", (0, 1));
        b.fail(2, "k", put("f"), (2, 3));
        b.get(1, "k", Some("a"), (4, 5));
        assert!(b.check().is_linearizable());
        b.get(1, "k", Some("f"), (6, 7));
        assert!(!b.check().is_linearizable());
    }

    #[test]
    fn cas_semantics() {
        let mut b = B::new();
        b.ok(1, "k", cas(None, "a"), (0, 1), CallResult::Cas(true));
        b.ok(1, "k", cas(None, "x"), (2, 3), CallResult::Cas(false));
        b.ok(2, "k", cas(Some("a"), "b"), (4, 5), CallResult::Cas(true));
        b.ok(2, "k", cas(Some("a"), "y"), (6, 7), CallResult::Cas(false));
        b.get(1, "k", Some("b"), (8, 9));
        assert!(b.check().is_linearizable());

        // A swap whose expectation cannot hold.
        let mut bad = b.clone_b();
        bad.ok(1, "k", cas(Some("a"), "z"), (10, 11), CallResult::Cas(true));
        let detail = assert_not_lin(&bad.check(), "k", 5);
        assert!(
            detail.contains(
                "it swapped, so the register must have held \"a\", but while it was pending it \
                 could only have held \"b\""
            ),
            "{detail}"
        );

        // A failed CAS whose expectation must hold.
        let mut bad = b.clone_b();
        bad.ok(
            1,
            "k",
            cas(Some("b"), "z"),
            (10, 11),
            CallResult::Cas(false),
        );
        let detail = assert_not_lin(&bad.check(), "k", 5);
        assert!(detail.contains("it did not swap"), "{detail}");

        // Concurrent CASes: only one of two identical swaps can win.
        let mut race = B::new();
        race.put(1, "k", "a", (0, 1));
        race.ok(2, "k", cas(Some("a"), "b"), (2, 10), CallResult::Cas(true));
        race.ok(3, "k", cas(Some("a"), "c"), (3, 9), CallResult::Cas(false));
        race.get(4, "k", Some("b"), (11, 12));
        assert!(race.check().is_linearizable());
        race.ok(5, "k", cas(Some("b"), "d"), (13, 14), CallResult::Cas(true));
        race.ok(6, "k", cas(Some("a"), "d"), (13, 14), CallResult::Cas(true));
        assert!(!race.check().is_linearizable());
    }

    #[test]
    fn unknown_cas_applies_only_if_expected_matches() {
        let mut b = B::new();
        b.put(1, "k", "a", (0, 1));
        b.unknown(2, "k", cas(Some("zz"), "b"), 2);
        b.get(1, "k", Some("b"), (10, 11));
        assert!(!b.check().is_linearizable());

        let mut b = B::new();
        b.put(1, "k", "a", (0, 1));
        b.unknown(2, "k", cas(Some("a"), "b"), 2);
        b.get(1, "k", Some("a"), (10, 11));
        b.get(1, "k", Some("b"), (12, 13));
        assert!(b.check().is_linearizable());
    }

    #[test]
    fn delete_semantics() {
        let mut b = B::new();
        b.put(1, "k", "a", (0, 1));
        b.ok(2, "k", Call::Delete, (2, 3), CallResult::Delete);
        b.get(1, "k", None, (4, 5));
        b.ok(1, "k", cas(None, "b"), (6, 7), CallResult::Cas(true));
        b.get(2, "k", Some("b"), (8, 9));
        assert!(b.check().is_linearizable());
        b.get(2, "k", Some("a"), (10, 11));
        let detail = assert_not_lin(&b.check(), "k", 5);
        assert!(detail.contains("could only have held \"b\""), "{detail}");

        // Deleting twice, and deletes racing a read.
        let mut b = B::new();
        b.put(1, "k", "a", (0, 1));
        b.ok(2, "k", Call::Delete, (2, 6), CallResult::Delete);
        b.get(3, "k", Some("a"), (3, 4));
        b.get(3, "k", None, (5, 7));
        b.ok(2, "k", Call::Delete, (8, 9), CallResult::Delete);
        b.get(3, "k", None, (10, 11));
        assert!(b.check().is_linearizable());
        b.unknown(2, "k", Call::Delete, 12);
        b.get(3, "k", Some("a"), (13, 14));
        assert!(!b.check().is_linearizable());
    }

    #[test]
    fn keys_are_independent_and_first_bad_key_is_reported() {
        let mut b = B::new();
        b.put(1, "a", "1", (0, 10));
        b.put(2, "b", "1", (0, 10));
        b.get(3, "a", Some("1"), (11, 12));
        b.get(3, "b", None, (11, 12));
        b.get(3, "c", Some("x"), (11, 12));
        b.get(3, "z", None, (11, 12));
        let v = b.check();
        assert_not_lin(&v, "b", 3);
    }

    #[test]
    fn mismatched_result_is_not_linearizable() {
        let mut h = History::new();
        h.ops.push(Op {
            id: 0,
            client: 1,
            key: "k".into(),
            call: Call::Get,
            invoke_ns: 0,
            outcome: Outcome::Ok {
                complete_ns: 1,
                result: CallResult::Put,
            },
        });
        match check(&h, BUDGET) {
            Verdict::NotLinearizable { detail, .. } => {
                assert!(detail.contains("does not answer the call"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn budget_exhaustion_is_undecided() {
        let mut b = B::new();
        for i in 0..40u64 {
            b.put(i, "k", &format!("v{i}"), (0, 100));
        }
        b.get(99, "k", Some("nope"), (50, 60));
        assert_eq!(
            check(&b.0, 1000),
            Verdict::Undecided {
                key: "k".into(),
                steps: 1000
            }
        );
        // A bad key found later still wins over an undecided one.
        b.get(1, "l", Some("nope"), (0, 1));
        assert!(matches!(
            check(&b.0, 1000),
            Verdict::NotLinearizable { ref key, .. } if key == "l"
        ));
    }

    impl B {
        fn clone_b(&self) -> B {
            B(self.0.clone())
        }
    }
}
