//! Jepsen's set workload: no acknowledged write may be lost.
//!
//! Clients add unique elements (each add is a put of a fresh key). Every add
//! is either acknowledged, known to have failed, or of unknown outcome. At
//! the end one complete read returns every element present. The store is
//! correct when every acknowledged element is present and every present
//! element was at least attempted; unknown adds may go either way (those that
//! made it are counted as *recovered*).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Input of [`check_set`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetCheck {
    /// Elements whose add was acknowledged.
    pub acknowledged: BTreeSet<String>,
    /// Elements whose add has an unknown outcome (timed out, connection lost).
    pub unknown: BTreeSet<String>,
    /// The elements returned by the final complete read.
    pub final_read: BTreeSet<String>,
}

/// Result of [`check_set`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetVerdict {
    /// Acknowledged elements absent from the final read (sorted).
    pub lost: Vec<String>,
    /// Elements in the final read that were never attempted, neither
    /// acknowledged nor unknown (sorted).
    pub unexpected: Vec<String>,
    /// Number of unknown-outcome elements present in the final read
    /// (elements both acknowledged and unknown count as acknowledged).
    pub recovered: usize,
}

impl SetVerdict {
    /// Whether nothing was lost and nothing unexpected appeared.
    pub fn ok(&self) -> bool {
        self.lost.is_empty() && self.unexpected.is_empty()
    }
}

/// Compares the final read against the adds that were acknowledged or of
/// unknown outcome.
pub fn check_set(c: &SetCheck) -> SetVerdict {
    let lost = c.acknowledged.difference(&c.final_read).cloned().collect();
    let unexpected = c
        .final_read
        .iter()
        .filter(|e| !c.acknowledged.contains(*e) && !c.unknown.contains(*e))
        .cloned()
        .collect();
    let recovered = c
        .unknown
        .iter()
        .filter(|e| c.final_read.contains(*e) && !c.acknowledged.contains(*e))
        .count();
    SetVerdict {
        lost,
        unexpected,
        recovered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn all_present() {
        let v = check_set(&SetCheck {
            acknowledged: set(&["a", "b"]),
            unknown: set(&["c", "d"]),
            final_read: set(&["a", "b", "c"]),
        });
        assert!(v.ok());
        assert_eq!(v.recovered, 1);
    }

    #[test]
    fn lost_and_unexpected() {
        let v = check_set(&SetCheck {
            acknowledged: set(&["a", "b", "e"]),
            unknown: set(&["c"]),
            final_read: set(&["b", "c", "z", "y"]),
        });
        assert!(!v.ok());
        assert_eq!(v.lost, vec!["a", "e"]);
        assert_eq!(v.unexpected, vec!["y", "z"]);
        assert_eq!(v.recovered, 1);
    }

    #[test]
    fn empty() {
        assert!(check_set(&SetCheck::default()).ok());
    }
}
