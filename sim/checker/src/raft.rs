//! The global Raft safety monitor, fed by the replicas' [`Observation`]s
//! as they happen: at most one leader per term, and every replica applies
//! the same entry at each index (committed entries never change). The
//! `raft-safety` invariant reads its violations.

use std::collections::BTreeMap;

use faultline_env::Observation;

/// Checks Raft's global safety properties as replicas report them, and
/// remembers who led which term and who holds each leader-election lease
/// (the faults resolve `leader` and `controller-manager` targets with it).
#[derive(Debug, Clone, Default)]
pub struct RaftMonitor {
    /// (group, term) -> (leader host, when it won, ns).
    leaders: BTreeMap<(u64, u64), (String, u64)>,
    /// (group, index) -> (term, digest, first host that applied it).
    applied: BTreeMap<(u64, u64), (u64, u64, String)>,
    /// Leader-election lease -> (holder host, transitions, since ns).
    leases: BTreeMap<String, (String, u64, u64)>,
    violations: Vec<String>,
}

impl RaftMonitor {
    /// Notes an observation by `host` at `now_ns`; returns the violation it
    /// reveals, if any.
    pub fn observe(&mut self, host: &str, now_ns: u64, obs: &Observation) -> Option<String> {
        let violation = match *obs {
            Observation::LeaseAcquired {
                ref lease,
                transitions,
            } => {
                self.leases
                    .insert(lease.clone(), (host.to_string(), transitions, now_ns));
                None
            }
            // The container ledger's (see `ledger.rs`).
            Observation::ContainerStarted { .. } | Observation::ContainerEnded { .. } => None,
            Observation::RaftLeader { group, node, term } => {
                match self.leaders.get(&(group, term)) {
                    Some((other, _)) if other != host => Some(format!(
                        "two leaders in term {term} of raft group {group}: {other} and {host} (node {node})"
                    )),
                    Some(_) => None,
                    None => {
                        self.leaders
                            .insert((group, term), (host.to_string(), now_ns));
                        None
                    }
                }
            }
            Observation::RaftApplied {
                group,
                node: _,
                index,
                term,
                digest,
            } => match self.applied.get(&(group, index)) {
                Some((t, d, other)) if (*t, *d) != (term, digest) => Some(format!(
                    "committed entry {index} of raft group {group} differs: {other} applied term {t} digest {d:016x}, {host} applied term {term} digest {digest:016x}"
                )),
                Some(_) => None,
                None => {
                    self.applied
                        .insert((group, index), (term, digest, host.to_string()));
                    None
                }
            },
        };
        if let Some(v) = &violation {
            self.violations.push(v.clone());
        }
        violation
    }

    /// Safety violations seen, in order.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// (group, term, leader host, elected at ns), in (group, term) order.
    pub fn leaders(&self) -> Vec<(u64, u64, String, u64)> {
        self.leaders
            .iter()
            .map(|(&(group, term), (host, at))| (group, term, host.clone(), *at))
            .collect()
    }

    /// The host that leads the latest term seen (of the highest group).
    pub fn latest_leader(&self) -> Option<String> {
        self.leaders
            .iter()
            .next_back()
            .map(|(_, (host, _))| host.clone())
    }

    /// The host that last acquired a leader-election lease.
    pub fn lease_holder(&self, lease: &str) -> Option<String> {
        self.leases.get(lease).map(|(h, _, _)| h.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_catches_two_leaders_and_divergent_entries() {
        let mut m = RaftMonitor::default();
        let lead = |node, term| Observation::RaftLeader {
            group: 1,
            node,
            term,
        };
        assert!(m.observe("m1", 0, &lead(1, 3)).is_none());
        assert!(m.observe("m1", 1, &lead(1, 3)).is_none());
        assert!(m.observe("m2", 2, &lead(2, 4)).is_none());
        assert!(m.observe("m2", 3, &lead(2, 3)).is_some());
        let applied = |term, digest| Observation::RaftApplied {
            group: 1,
            node: 1,
            index: 7,
            term,
            digest,
        };
        assert!(m.observe("m1", 4, &applied(3, 42)).is_none());
        assert!(m.observe("m2", 5, &applied(3, 42)).is_none());
        assert!(m.observe("m3", 6, &applied(3, 43)).is_some());
        assert_eq!(m.violations.len(), 2);
    }
}
