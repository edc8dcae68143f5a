//! Watch-stream checker.
//!
//! A watcher opened a watch on a key prefix starting at revision `R` and
//! received a sequence of events. Given the authoritative list of writes
//! committed under that prefix from `R` on, the stream must:
//!
//! * only carry events under the prefix, at revisions `>= R`;
//! * never go back in revision, and never repeat an event;
//! * deliver the events of one revision (a multi-key transaction) in commit
//!   order;
//! * have no gap: every committed write with revision in
//!   `[R, last received revision]` appears exactly once (a revision is
//!   delivered whole, so a partially delivered last revision is a gap);
//! * carry the committed values.
//!
//! [`check_watch`] reports the first discrepancy in stream order.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What a write did to its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The key was set to `value`.
    Put {
        /// The new value.
        value: String,
    },
    /// The key was deleted.
    Delete,
}

/// One write, as committed or as delivered on a watch stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The store revision that committed the write.
    pub revision: u64,
    /// The key written.
    pub key: String,
    /// What happened to it.
    pub kind: EventKind,
}

impl fmt::Display for WatchEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EventKind::Put { value } => {
                write!(f, "rev {} put {:?} = {:?}", self.revision, self.key, value)
            }
            EventKind::Delete => write!(f, "rev {} delete {:?}", self.revision, self.key),
        }
    }
}

/// Input of [`check_watch`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchCheck {
    /// The watched key prefix (`""` watches everything).
    pub prefix: String,
    /// The revision the watch started at (`R`).
    pub start_revision: u64,
    /// The events the watcher received, in arrival order.
    pub received: Vec<WatchEvent>,
    /// The authoritative committed writes, in commit order (ascending
    /// revision, transaction order within a revision). Entries outside the
    /// prefix, before `R`, or after the last received revision are ignored.
    pub committed: Vec<WatchEvent>,
}

/// The first discrepancy found by [`check_watch`]. `index` is always a
/// position in [`WatchCheck::received`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum WatchViolation {
    /// An event older than the watch's start revision.
    #[error("event #{index} ({event}) precedes the watch start revision {start_revision}")]
    BeforeStart {
        /// Position of the event.
        index: usize,
        /// The event.
        event: WatchEvent,
        /// The watch start revision.
        start_revision: u64,
    },
    /// An event for a key outside the watched prefix.
    #[error("event #{index} ({event}) is outside the watched prefix {prefix:?}")]
    OutsidePrefix {
        /// Position of the event.
        index: usize,
        /// The event.
        event: WatchEvent,
        /// The watched prefix.
        prefix: String,
    },
    /// The same (revision, key) was delivered twice.
    #[error("event #{index} ({event}) duplicates event #{first_index}")]
    Duplicate {
        /// Position of the repeat.
        index: usize,
        /// Position of the first delivery.
        first_index: usize,
        /// The repeated event.
        event: WatchEvent,
    },
    /// The revision went backwards.
    #[error("event #{index} ({event}) goes back from revision {previous}")]
    RevisionDecreased {
        /// Position of the event.
        index: usize,
        /// Revision of the event before it.
        previous: u64,
        /// The event.
        event: WatchEvent,
    },
    /// A committed write was never delivered: it should have arrived at
    /// position `index`, before `next` (`None`: the stream ended first).
    #[error("committed write {missing} was not delivered (expected at event #{index}{})",
        next.as_ref().map(|n| format!(", before {n}")).unwrap_or_else(|| ", the stream ended".to_owned()))]
    Missing {
        /// Position at which it should have arrived.
        index: usize,
        /// The undelivered committed write.
        missing: WatchEvent,
        /// What arrived instead, if anything.
        next: Option<WatchEvent>,
    },
    /// Two events of one revision arrived out of commit order.
    #[error("event #{index} ({event}) arrived before {expected}, which was committed earlier in the same revision")]
    OutOfOrder {
        /// Position of the early event.
        index: usize,
        /// The early event.
        event: WatchEvent,
        /// The event that should have come first.
        expected: WatchEvent,
    },
    /// The event's key and revision match a committed write but its kind or
    /// value differs.
    #[error("event #{index} ({got}) does not match the committed write {expected}")]
    ValueMismatch {
        /// Position of the event.
        index: usize,
        /// The committed write.
        expected: WatchEvent,
        /// What was delivered.
        got: WatchEvent,
    },
    /// An event that matches no committed write.
    #[error("event #{index} ({event}) matches no committed write")]
    Unexpected {
        /// Position of the event.
        index: usize,
        /// The event.
        event: WatchEvent,
    },
}

/// Result of [`check_watch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchVerdict {
    /// Number of events checked before the first violation (all of them if
    /// there is none).
    pub delivered: usize,
    /// Revision of the last received event, if any.
    pub last_revision: Option<u64>,
    /// The first discrepancy, if any.
    pub violation: Option<WatchViolation>,
}

impl WatchVerdict {
    /// Whether the stream is correct.
    pub fn ok(&self) -> bool {
        self.violation.is_none()
    }
}

/// Checks a watch stream against the committed writes; see the module docs.
pub fn check_watch(c: &WatchCheck) -> WatchVerdict {
    let last_revision = c.received.iter().map(|e| e.revision).max();
    let mut expected: Vec<&WatchEvent> = c
        .committed
        .iter()
        .filter(|e| {
            e.key.starts_with(&c.prefix)
                && e.revision >= c.start_revision
                && Some(e.revision) <= last_revision
        })
        .collect();
    // Stable: keeps transaction order within a revision.
    expected.sort_by_key(|e| e.revision);
    let mut committed_at: BTreeMap<(u64, &str), usize> = BTreeMap::new();
    for (pos, e) in expected.iter().enumerate() {
        committed_at
            .entry((e.revision, e.key.as_str()))
            .or_insert(pos);
    }
    let mut first_seen: BTreeMap<(u64, &str), usize> = BTreeMap::new();
    let mut j = 0;
    let verdict = |delivered, violation| WatchVerdict {
        delivered,
        last_revision,
        violation,
    };

    for (index, ev) in c.received.iter().enumerate() {
        let fail = |v: WatchViolation| verdict(index, Some(v));
        if ev.revision < c.start_revision {
            return fail(WatchViolation::BeforeStart {
                index,
                event: ev.clone(),
                start_revision: c.start_revision,
            });
        }
        if !ev.key.starts_with(&c.prefix) {
            return fail(WatchViolation::OutsidePrefix {
                index,
                event: ev.clone(),
                prefix: c.prefix.clone(),
            });
        }
        let id = (ev.revision, ev.key.as_str());
        if let Some(&first_index) = first_seen.get(&id) {
            return fail(WatchViolation::Duplicate {
                index,
                first_index,
                event: ev.clone(),
            });
        }
        first_seen.insert(id, index);
        if let Some(prev) = index.checked_sub(1).map(|p| &c.received[p]) {
            if ev.revision < prev.revision {
                return fail(WatchViolation::RevisionDecreased {
                    index,
                    previous: prev.revision,
                    event: ev.clone(),
                });
            }
        }
        let Some(&want) = expected.get(j) else {
            return fail(WatchViolation::Unexpected {
                index,
                event: ev.clone(),
            });
        };
        if want.revision == ev.revision && want.key == ev.key {
            if want.kind != ev.kind {
                return fail(WatchViolation::ValueMismatch {
                    index,
                    expected: want.clone(),
                    got: ev.clone(),
                });
            }
            j += 1;
            continue;
        }
        let missing = || WatchViolation::Missing {
            index,
            missing: want.clone(),
            next: Some(ev.clone()),
        };
        if want.revision < ev.revision {
            return fail(missing());
        }
        if want.revision == ev.revision && committed_at.contains_key(&id) {
            let arrives_later = c.received[index + 1..]
                .iter()
                .any(|e| e.revision == want.revision && e.key == want.key);
            return fail(if arrives_later {
                WatchViolation::OutOfOrder {
                    index,
                    event: ev.clone(),
                    expected: want.clone(),
                }
            } else {
                missing()
            });
        }
        return fail(WatchViolation::Unexpected {
            index,
            event: ev.clone(),
        });
    }
    if let Some(&want) = expected.get(j) {
        return verdict(
            c.received.len(),
            Some(WatchViolation::Missing {
                index: c.received.len(),
                missing: want.clone(),
                next: None,
            }),
        );
    }
    verdict(c.received.len(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(revision: u64, key: &str, value: &str) -> WatchEvent {
        WatchEvent {
            revision,
            key: key.to_owned(),
            kind: EventKind::Put {
                value: value.to_owned(),
            },
        }
    }

    fn del(revision: u64, key: &str) -> WatchEvent {
        WatchEvent {
            revision,
            key: key.to_owned(),
            kind: EventKind::Delete,
        }
    }

    fn committed() -> Vec<WatchEvent> {
        vec![
            put(3, "other", "x"),
            put(5, "p/a", "1"),
            put(6, "p/b", "2"),
            put(6, "p/c", "3"),
            del(7, "p/a"),
            put(9, "p/a", "4"),
        ]
    }

    fn run(received: Vec<WatchEvent>) -> WatchVerdict {
        check_watch(&WatchCheck {
            prefix: "p/".to_owned(),
            start_revision: 5,
            received,
            committed: committed(),
        })
    }

    #[test]
    fn complete_stream_is_ok() {
        let v = run(committed()[1..].to_vec());
        assert!(v.ok(), "{v:?}");
        assert_eq!((v.delivered, v.last_revision), (5, Some(9)));
    }

    #[test]
    fn prefix_of_stream_is_ok() {
        let v = run(committed()[1..4].to_vec());
        assert!(v.ok(), "{v:?}");
        assert_eq!(v.last_revision, Some(6));
        assert!(run(vec![]).ok());
    }

    #[test]
    fn gap_is_reported() {
        let c = committed();
        let v = run(vec![c[1].clone(), c[2].clone(), c[3].clone(), c[5].clone()]);
        let violation = v.violation.unwrap();
        assert_eq!(
            violation,
            WatchViolation::Missing {
                index: 3,
                missing: del(7, "p/a"),
                next: Some(put(9, "p/a", "4")),
            }
        );
        assert_eq!(
            violation.to_string(),
            "committed write rev 7 delete \"p/a\" was not delivered (expected at event #3, before rev 9 put \"p/a\" = \"4\")"
        );
    }

    #[test]
    fn partial_last_revision_is_a_gap() {
        let c = committed();
        let v = run(vec![c[1].clone(), c[2].clone()]);
        assert_eq!(
            v.violation,
            Some(WatchViolation::Missing {
                index: 2,
                missing: put(6, "p/c", "3"),
                next: None
            })
        );
    }

    #[test]
    fn duplicate_is_reported() {
        let c = committed();
        let v = run(vec![c[1].clone(), c[2].clone(), c[2].clone()]);
        assert!(matches!(
            v.violation,
            Some(WatchViolation::Duplicate {
                index: 2,
                first_index: 1,
                ..
            })
        ));
        assert_eq!(v.delivered, 2);
    }

    #[test]
    fn decreasing_revision_is_reported() {
        let c = committed();
        let v = run(vec![c[1].clone(), c[4].clone(), c[2].clone()]);
        // The first divergence is the skipped revision 6.
        assert!(matches!(
            v.violation,
            Some(WatchViolation::Missing { index: 1, .. })
        ));
        let v = check_watch(&WatchCheck {
            prefix: "p/".to_owned(),
            start_revision: 5,
            received: vec![put(6, "p/b", "2"), put(5, "p/a", "1")],
            committed: vec![put(6, "p/b", "2"), put(5, "p/a", "1")],
        });
        // Committed is sorted by revision, so the first event skips rev 5.
        assert!(matches!(
            v.violation,
            Some(WatchViolation::Missing { index: 0, .. })
        ));
        let v = check_watch(&WatchCheck {
            prefix: "p/".to_owned(),
            start_revision: 5,
            received: vec![put(6, "p/b", "2"), put(5, "p/zz", "1")],
            committed: vec![],
        });
        assert!(matches!(
            v.violation,
            Some(WatchViolation::Unexpected { index: 0, .. })
        ));
        let v = check_watch(&WatchCheck {
            prefix: "p/".to_owned(),
            start_revision: 5,
            received: vec![put(6, "p/b", "2"), put(5, "p/a", "1")],
            committed: vec![put(5, "p/a", "1"), put(6, "p/b", "2")],
        });
        assert!(matches!(
            v.violation,
            Some(WatchViolation::Missing { index: 0, .. })
        ));
    }

    #[test]
    fn revision_going_back_after_matching() {
        // rev 6 then rev 5 again for a key already delivered in rev 6's txn.
        let v = check_watch(&WatchCheck {
            prefix: String::new(),
            start_revision: 1,
            received: vec![put(5, "a", "1"), put(6, "b", "2"), put(5, "c", "3")],
            committed: vec![put(5, "a", "1"), put(6, "b", "2")],
        });
        assert_eq!(
            v.violation,
            Some(WatchViolation::RevisionDecreased {
                index: 2,
                previous: 6,
                event: put(5, "c", "3")
            })
        );
    }

    #[test]
    fn out_of_order_within_revision() {
        let c = committed();
        let v = run(vec![c[1].clone(), c[3].clone(), c[2].clone()]);
        assert_eq!(
            v.violation,
            Some(WatchViolation::OutOfOrder {
                index: 1,
                event: put(6, "p/c", "3"),
                expected: put(6, "p/b", "2"),
            })
        );
        // Same but p/b never arrives: that is a gap.
        let v = run(vec![c[1].clone(), c[3].clone(), c[4].clone()]);
        assert!(matches!(
            v.violation,
            Some(WatchViolation::Missing { index: 1, .. })
        ));
    }

    #[test]
    fn value_mismatch() {
        let c = committed();
        let v = run(vec![
            c[1].clone(),
            c[2].clone(),
            c[3].clone(),
            put(7, "p/a", "x"),
        ]);
        assert_eq!(
            v.violation,
            Some(WatchViolation::ValueMismatch {
                index: 3,
                expected: del(7, "p/a"),
                got: put(7, "p/a", "x"),
            })
        );
    }

    #[test]
    fn outside_prefix_before_start_and_phantoms() {
        let v = run(vec![put(3, "other", "x")]);
        assert!(matches!(
            v.violation,
            Some(WatchViolation::BeforeStart { index: 0, .. })
        ));
        let v = run(vec![put(5, "other", "x")]);
        assert!(matches!(
            v.violation,
            Some(WatchViolation::OutsidePrefix { index: 0, .. })
        ));
        let c = committed();
        let v = run(vec![c[1].clone(), put(5, "p/zz", "9")]);
        assert!(matches!(
            v.violation,
            Some(WatchViolation::Unexpected { index: 1, .. })
        ));
        let v = run(vec![c[1].clone(), put(8, "p/zz", "9")]);
        assert!(matches!(
            v.violation,
            Some(WatchViolation::Missing { index: 1, .. })
        ));
    }
}
