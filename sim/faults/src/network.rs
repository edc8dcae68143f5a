//! Network faults: partitions (of the masters by role, of a datacenter, or
//! of named groups), and lossy or slow links around a host or datacenter.

use std::time::Duration;

use faultline_scenario::fault::{Latency, Partition};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::targets::pick_master;
use crate::{Control, Undo};

/// `datacenter-partition`: the datacenter's masters, nodes and users are
/// cut off from everyone else, both ways.
pub fn datacenter(ctl: &mut dyn Control, target: Option<&str>, undo: &mut Vec<Undo>) -> String {
    let dc = target.unwrap_or_default();
    let members: Vec<String> = ctl
        .masters()
        .into_iter()
        .chain(ctl.nodes())
        .chain(ctl.users())
        .collect();
    let (inside, outside): (Vec<String>, Vec<String>) =
        members.into_iter().partition(|h| ctl.datacenter(h) == dc);
    for a in &inside {
        for b in &outside {
            for (x, y) in [(a, b), (b, a)] {
                ctl.block(x, y);
                undo.push(Undo::Unblock(x.clone(), y.clone()));
            }
        }
    }
    format!("{{{}}} | rest", inside.join(","))
}

/// `partition` and `partition-one-way`: every group is cut off from every
/// other (one way: only what the first group sends is dropped).
pub fn partition(
    ctl: &mut dyn Control,
    p: &Partition,
    one_way: bool,
    rng: &mut ChaCha8Rng,
    undo: &mut Vec<Undo>,
) -> String {
    let groups = match &p.groups {
        Some(named) => named_groups(ctl, named),
        None => master_groups(ctl, p.target.as_deref(), rng),
    };
    for (i, a) in groups.iter().enumerate() {
        for (j, b) in groups.iter().enumerate() {
            if i == j || (one_way && i != 0) {
                continue;
            }
            for x in a {
                for y in b {
                    ctl.block(x, y);
                    undo.push(Undo::Unblock(x.clone(), y.clone()));
                }
            }
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|g| format!("{{{}}}", g.join(",")))
        .collect();
    parts.join(if one_way { " -/-> " } else { " | " })
}

/// Splits the masters into groups for a partition target.
fn master_groups(
    ctl: &dyn Control,
    target: Option<&str>,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<String>> {
    let masters = ctl.masters();
    let n = masters.len();
    let target = target.unwrap_or("random");
    let dcs: Vec<String> = masters.iter().map(|m| ctl.datacenter(m)).collect();
    match target {
        "majority" => {
            // Nobody keeps a majority: groups of at most (n-1)/2.
            let size = ((n - 1) / 2).max(1);
            let mut shuffled = masters.clone();
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, rng.random_range(0..=i));
            }
            shuffled.chunks(size).map(|c| c.to_vec()).collect()
        }
        "minority" | "leader" | "random" | "follower" => {
            let leader = ctl.leader();
            let minority_size = ((n - 1) / 2).max(1);
            let mut rest = masters.clone();
            let mut minority = Vec::new();
            let seed_member = match target {
                "leader" => leader.clone(),
                "follower" => rest.iter().find(|m| Some(*m) != leader.as_ref()).cloned(),
                "minority" => {
                    // Half the time the leader is on the small side: the
                    // interesting case for stale reads and lost writes.
                    if rng.random_bool(0.5) {
                        leader.clone()
                    } else {
                        None
                    }
                }
                _ => None,
            };
            if let Some(s) = seed_member {
                rest.retain(|m| *m != s);
                minority.push(s);
            }
            let wanted = if target == "leader" { 1 } else { minority_size };
            while minority.len() < wanted && !rest.is_empty() {
                let i = rng.random_range(0..rest.len());
                minority.push(rest.remove(i));
            }
            vec![minority, rest]
        }
        name if dcs.iter().any(|d| d == name) => {
            let (inside, outside): (Vec<String>, Vec<String>) =
                masters.into_iter().partition(|m| ctl.datacenter(m) == name);
            vec![inside, outside]
        }
        host => {
            let rest: Vec<String> = masters.iter().filter(|m| *m != host).cloned().collect();
            vec![vec![host.to_string()], rest]
        }
    }
}

/// Resolves named partition groups: each name is a host or a datacenter
/// (every host in it).
fn named_groups(ctl: &dyn Control, named: &[Vec<String>]) -> Vec<Vec<String>> {
    let hosts = ctl.hosts();
    named
        .iter()
        .map(|g| {
            let mut out: Vec<String> = Vec::new();
            for name in g {
                if hosts.contains(name) {
                    out.push(name.clone());
                } else {
                    out.extend(hosts.iter().filter(|h| ctl.datacenter(h) == *name).cloned());
                }
            }
            out.dedup();
            out
        })
        .collect()
}

/// `loss` (a `loss` probability) and `latency` (its delay and jitter):
/// every link of a master or of a datacenter's hosts, both ways.
pub fn degrade(
    ctl: &mut dyn Control,
    target: Option<&str>,
    loss: f64,
    latency: Option<&Latency>,
    rng: &mut ChaCha8Rng,
    undo: &mut Vec<Undo>,
) -> String {
    let hosts: Vec<String> = match target {
        Some(t) if ctl.masters().iter().any(|m| m == t) => vec![t.to_string()],
        Some(t) if ctl.hosts().iter().any(|h| ctl.datacenter(h) == t) => ctl
            .hosts()
            .into_iter()
            .filter(|h| ctl.datacenter(h) == t)
            .collect(),
        t => pick_master(ctl, t, rng).into_iter().collect(),
    };
    let (extra, jitter) = latency
        .map(|l| (l.delay.0, l.jitter.map(|j| j.0).unwrap_or_default()))
        .unwrap_or((Duration::ZERO, Duration::ZERO));
    for h in &hosts {
        for other in ctl.hosts() {
            if other != *h {
                ctl.degrade(h, &other, loss, extra, jitter);
                ctl.degrade(&other, h, loss, extra, jitter);
                undo.push(Undo::Restore(h.clone(), other.clone()));
                undo.push(Undo::Restore(other.clone(), h.clone()));
            }
        }
    }
    hosts.join(",")
}
