//! How a run recovered from each of its faults, read off its summary: what
//! `faultline report --compare` puts side by side for a simulated and a
//! real run of one schedule.

use crate::{FaultRecord, Summary};

/// What followed `f` in run `s`: a store leader elected while it lasted
/// (how long after it started), whether the users of each service saw
/// failures meanwhile (the unavailable windows that overlap it), and, for
/// each node it hit, how long until that node was `Ready` again after the
/// fault healed.
pub fn recovery(s: &Summary, f: &FaultRecord) -> String {
    let end = f.end_s.unwrap_or(s.simulated_seconds);
    let mut parts = Vec::new();
    if let Some(l) = s
        .leaders
        .iter()
        .find(|l| l.t_s >= f.start_s && l.t_s <= end)
    {
        parts.push(format!(
            "new store leader {} after {:.1}s",
            l.host,
            l.t_s - f.start_s
        ));
    }
    for svc in &s.services {
        let failed: f64 = svc
            .unavailable
            .iter()
            .filter(|w| w.start_s < end && w.end_s > f.start_s)
            .map(|w| w.end_s.min(end + 60.0) - w.start_s.max(f.start_s))
            .sum();
        if failed > 0.0 {
            parts.push(format!("{}: unavailable {failed:.0}s", svc.service));
        } else {
            parts.push(format!("{}: served throughout", svc.service));
        }
    }
    for n in s.nodes.iter().filter(|n| hits(&f.target, &n.node)) {
        let down = n
            .ready
            .iter()
            .find(|r| r.t_s >= f.start_s && r.status != "True");
        let back = n.ready.iter().find(|r| r.t_s >= end && r.status == "True");
        match (down, back) {
            (Some(d), Some(b)) => parts.push(format!(
                "{} NotReady after {:.1}s, Ready {:.1}s after it returned",
                n.node,
                d.t_s - f.start_s,
                b.t_s - end
            )),
            (None, _) => parts.push(format!("{} never marked NotReady", n.node)),
            (Some(_), None) => parts.push(format!("{} not Ready again", n.node)),
        }
    }
    if parts.is_empty() {
        "—".into()
    } else {
        parts.join("; ")
    }
}

/// Whether a fault's target (`n3`, `{m1,n2} | rest`, ...) names `host`.
fn hits(target: &str, host: &str) -> bool {
    target
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
        .any(|w| w == host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LeaderChange, NodeTimeline, ReadyChange, ServiceReport, UnavailableWindow};

    #[test]
    fn a_fault_is_followed_by_its_leader_its_users_and_its_nodes() {
        let s = Summary {
            simulated_seconds: 100.0,
            leaders: vec![
                LeaderChange {
                    t_s: 1.0,
                    term: 2,
                    host: "m1".into(),
                },
                LeaderChange {
                    t_s: 41.5,
                    term: 3,
                    host: "m2".into(),
                },
            ],
            services: vec![ServiceReport {
                service: "web".into(),
                unavailable: vec![UnavailableWindow {
                    start_s: 45.0,
                    end_s: 47.0,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            nodes: vec![NodeTimeline {
                node: "n3".into(),
                ready: vec![
                    ReadyChange {
                        t_s: 2.0,
                        status: "True".into(),
                    },
                    ReadyChange {
                        t_s: 57.0,
                        status: "Unknown".into(),
                    },
                    ReadyChange {
                        t_s: 82.5,
                        status: "True".into(),
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let crash = FaultRecord {
            kind: "node-crash".into(),
            target: "n3".into(),
            start_s: 45.0,
            end_s: Some(80.0),
            ..Default::default()
        };
        assert_eq!(
            recovery(&s, &crash),
            "web: unavailable 2s; n3 NotReady after 12.0s, Ready 2.5s after it returned"
        );
        let kill = FaultRecord {
            kind: "leader-kill".into(),
            target: "m1".into(),
            start_s: 40.0,
            end_s: Some(42.0),
            ..Default::default()
        };
        assert_eq!(
            recovery(&s, &kill),
            "new store leader m2 after 1.5s; web: served throughout"
        );
        assert!(!hits("{m1,n2} | rest", "n"));
        assert!(hits("{m1,n2} | rest", "n2"));
    }
}
