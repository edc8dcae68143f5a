//! Recorded client histories of the etcd-like key-value store.
//!
//! A [`History`] is the list of every operation a simulated client issued:
//! the call, the simulated time it was invoked at, and its [`Outcome`]. The
//! recorder calls [`History::invoke`] when a client sends a request (the op
//! starts out [`Outcome::Unknown`]) and [`History::complete`] when the
//! response arrives. An op that never gets a response simply stays
//! `Unknown`: it may or may not have taken effect, at any time after its
//! invocation.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identifies one simulated client (a sequential process).
pub type ClientId = u64;

/// One operation issued by a client against a single key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Unique id of the operation within its history.
    pub id: u64,
    /// The client that issued it.
    pub client: ClientId,
    /// The key it operates on.
    pub key: String,
    /// What was asked.
    pub call: Call,
    /// Simulated time (ns) at which the request was sent.
    pub invoke_ns: u64,
    /// What came of it.
    pub outcome: Outcome,
}

impl Op {
    /// Simulated completion time, or `None` when the outcome is unknown
    /// (the op completes at +infinity).
    pub fn complete_ns(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Ok { complete_ns, .. } | Outcome::Fail { complete_ns } => Some(complete_ns),
            Outcome::Unknown => None,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "op #{} (client {}) {} on {:?}",
            self.id, self.client, self.call, self.key
        )?;
        match &self.outcome {
            Outcome::Ok {
                complete_ns,
                result,
            } => write!(
                f,
                " -> {} [invoked {} ns, completed {} ns]",
                result, self.invoke_ns, complete_ns
            ),
            Outcome::Fail { complete_ns } => write!(
                f,
                " -> failed [invoked {} ns, completed {} ns]",
                self.invoke_ns, complete_ns
            ),
            Outcome::Unknown => write!(
                f,
                " -> unknown [invoked {} ns, never completed]",
                self.invoke_ns
            ),
        }
    }
}

/// The request a client made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// Read the key's current value.
    Get,
    /// Set the key to `value`.
    Put {
        /// The value written.
        value: String,
    },
    /// Remove the key.
    Delete,
    /// Compare-and-set: if the current value equals `expected` (`None`
    /// meaning "the key is absent") set it to `new`, else change nothing.
    Cas {
        /// The value the key must hold for the swap to happen (`None`: absent).
        expected: Option<String>,
        /// The value written when the comparison succeeds.
        new: String,
    },
}

impl Call {
    /// Whether the call may change the register (everything but `Get`).
    pub fn is_write(&self) -> bool {
        !matches!(self, Call::Get)
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Get => write!(f, "Get"),
            Call::Put { value } => write!(f, "Put({value:?})"),
            Call::Delete => write!(f, "Delete"),
            Call::Cas { expected, new } => {
                write!(f, "Cas({} -> {new:?})", DisplayValue(expected.as_deref()))
            }
        }
    }
}

/// What became of an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The operation definitely took effect (for a `Get`: returned `result`).
    Ok {
        /// Simulated time (ns) at which the response was received.
        complete_ns: u64,
        /// The response.
        result: CallResult,
    },
    /// The operation definitely did not take effect (e.g. it was rejected
    /// before reaching the leader). Checkers ignore such operations.
    Fail {
        /// Simulated time (ns) at which the rejection was received.
        complete_ns: u64,
    },
    /// Timed out or the connection was lost: the operation may or may not
    /// have taken effect, at any time after its invocation (it completes at
    /// +infinity).
    Unknown,
}

/// The response to a successful call; its variant must match the [`Call`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallResult {
    /// The value read (`None`: the key was absent).
    Get(Option<String>),
    /// The put was applied.
    Put,
    /// The delete was applied.
    Delete,
    /// Whether the compare-and-set swapped.
    Cas(bool),
}

impl CallResult {
    /// Whether this is the kind of result `call` produces.
    pub fn matches(&self, call: &Call) -> bool {
        matches!(
            (call, self),
            (Call::Get, CallResult::Get(_))
                | (Call::Put { .. }, CallResult::Put)
                | (Call::Delete, CallResult::Delete)
                | (Call::Cas { .. }, CallResult::Cas(_))
        )
    }
}

impl fmt::Display for CallResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallResult::Get(v) => write!(f, "{}", DisplayValue(v.as_deref())),
            CallResult::Put | CallResult::Delete => write!(f, "ok"),
            CallResult::Cas(true) => write!(f, "swapped"),
            CallResult::Cas(false) => write!(f, "not swapped"),
        }
    }
}

/// Renders a register value: a quoted string, or `<absent>`.
pub(crate) struct DisplayValue<'a>(pub Option<&'a str>);

impl fmt::Display for DisplayValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v:?}"),
            None => write!(f, "<absent>"),
        }
    }
}

/// Why [`History::complete`] refused an outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// No operation with this id was invoked.
    #[error("no operation with id {0}")]
    NoSuchOp(u64),
    /// The operation already has a definite outcome.
    #[error("operation {0} already completed")]
    AlreadyCompleted(u64),
    /// The completion time precedes the invocation time.
    #[error(
        "operation {id} completed at {complete_ns} ns, before its invocation at {invoke_ns} ns"
    )]
    CompletedBeforeInvoke {
        /// The operation.
        id: u64,
        /// Its invocation time.
        invoke_ns: u64,
        /// The offending completion time.
        complete_ns: u64,
    },
    /// The result's variant does not match the call (e.g. a `Get` answered
    /// with `CallResult::Put`).
    #[error("operation {id}: result {result:?} does not answer call {call:?}")]
    ResultMismatch {
        /// The operation.
        id: u64,
        /// Its call.
        call: Call,
        /// The offending result.
        result: CallResult,
    },
}

/// Every operation issued by the clients of one simulation run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The operations, in invocation order when recorded with
    /// [`History::invoke`].
    pub ops: Vec<Op>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of recorded operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no operation was recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Records that `client` sent `call` on `key` at `invoke_ns`; returns the
    /// new op's id (one more than the last op's id). The op's outcome is
    /// [`Outcome::Unknown`] until [`History::complete`] is called.
    pub fn invoke(
        &mut self,
        client: ClientId,
        key: impl Into<String>,
        call: Call,
        invoke_ns: u64,
    ) -> u64 {
        let id = self.ops.last().map_or(0, |op| op.id + 1);
        self.ops.push(Op {
            id,
            client,
            key: key.into(),
            call,
            invoke_ns,
            outcome: Outcome::Unknown,
        });
        id
    }

    /// Records the outcome of op `id`. Completing with
    /// [`Outcome::Unknown`] (an explicit time-out) leaves the op unknown.
    pub fn complete(&mut self, id: u64, outcome: Outcome) -> Result<(), HistoryError> {
        let op = self.get_mut(id).ok_or(HistoryError::NoSuchOp(id))?;
        if op.outcome != Outcome::Unknown {
            return Err(HistoryError::AlreadyCompleted(id));
        }
        match &outcome {
            Outcome::Ok {
                complete_ns,
                result,
            } => {
                if !result.matches(&op.call) {
                    return Err(HistoryError::ResultMismatch {
                        id,
                        call: op.call.clone(),
                        result: result.clone(),
                    });
                }
                check_times(op, *complete_ns)?;
            }
            Outcome::Fail { complete_ns } => check_times(op, *complete_ns)?,
            Outcome::Unknown => {}
        }
        op.outcome = outcome;
        Ok(())
    }

    /// The op with id `id`, if any.
    pub fn get(&self, id: u64) -> Option<&Op> {
        match usize::try_from(id).ok().and_then(|i| self.ops.get(i)) {
            Some(op) if op.id == id => Some(op),
            _ => self.ops.iter().rev().find(|op| op.id == id),
        }
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Op> {
        let fast = usize::try_from(id)
            .ok()
            .filter(|&i| self.ops.get(i).is_some_and(|op| op.id == id));
        match fast {
            Some(i) => self.ops.get_mut(i),
            None => self.ops.iter_mut().rev().find(|op| op.id == id),
        }
    }
}

fn check_times(op: &Op, complete_ns: u64) -> Result<(), HistoryError> {
    if complete_ns < op.invoke_ns {
        return Err(HistoryError::CompletedBeforeInvoke {
            id: op.id,
            invoke_ns: op.invoke_ns,
            complete_ns,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_and_complete() {
        let mut h = History::new();
        let a = h.invoke(1, "k", Call::Put { value: "v".into() }, 10);
        let b = h.invoke(2, "k", Call::Get, 12);
        assert_eq!((a, b), (0, 1));
        h.complete(
            a,
            Outcome::Ok {
                complete_ns: 20,
                result: CallResult::Put,
            },
        )
        .unwrap();
        assert_eq!(
            h.complete(a, Outcome::Fail { complete_ns: 30 }),
            Err(HistoryError::AlreadyCompleted(a))
        );
        assert!(matches!(
            h.complete(
                b,
                Outcome::Ok {
                    complete_ns: 30,
                    result: CallResult::Put
                }
            ),
            Err(HistoryError::ResultMismatch { .. })
        ));
        assert!(matches!(
            h.complete(b, Outcome::Fail { complete_ns: 5 }),
            Err(HistoryError::CompletedBeforeInvoke { .. })
        ));
        assert_eq!(
            h.complete(7, Outcome::Unknown),
            Err(HistoryError::NoSuchOp(7))
        );
        assert_eq!(h.get(b).unwrap().outcome, Outcome::Unknown);
        assert_eq!(h.get(a).unwrap().complete_ns(), Some(20));
        assert_eq!(h.len(), 2);

        let json = serde_json::to_string(&h).unwrap();
        let back: History = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        assert_eq!(
            h.ops[0].to_string(),
            "op #0 (client 1) Put(\"v\") on \"k\" -> ok [invoked 10 ns, completed 20 ns]"
        );
    }
}
