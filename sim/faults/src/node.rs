//! Worker-node faults: a node crashes, is cut off, or has its kubelet and
//! proxy restarted. Targets: a node, a datacenter (its every node up),
//! `random`, or `pod:DEPLOYMENT` (a node running one of its pods).

use faultline_scenario::IsolateFrom;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use crate::{Control, Undo};

/// The nodes a target hits, among those up.
fn hit(ctl: &dyn Control, target: Option<&str>, rng: &mut ChaCha8Rng) -> Vec<String> {
    let nodes: Vec<String> = ctl.nodes().into_iter().filter(|n| ctl.is_up(n)).collect();
    match target.unwrap_or("random") {
        "random" => nodes.choose(rng).cloned().into_iter().collect(),
        t if t.starts_with("pod:") => {
            let running = ctl.nodes_running(&t["pod:".len()..]);
            running
                .iter()
                .filter(|n| ctl.is_up(n))
                .collect::<Vec<_>>()
                .choose(rng)
                .map(|n| n.to_string())
                .into_iter()
                .collect()
        }
        t if nodes.iter().any(|n| n == t) => vec![t.to_string()],
        dc => nodes
            .iter()
            .filter(|n| ctl.datacenter(n) == dc)
            .cloned()
            .collect(),
    }
}

fn described(hit: &[String]) -> String {
    if hit.is_empty() {
        "nobody (no node up)".into()
    } else {
        hit.join(",")
    }
}

/// `node-crash`.
pub fn crash(
    ctl: &mut dyn Control,
    target: Option<&str>,
    rng: &mut ChaCha8Rng,
    undo: &mut Vec<Undo>,
) -> String {
    let hit = hit(ctl, target, rng);
    for n in &hit {
        ctl.crash(n, false);
        undo.push(Undo::Restart(n.clone()));
    }
    described(&hit)
}

/// `node-isolate`: both ways, from the masters or from every other host.
pub fn isolate(
    ctl: &mut dyn Control,
    target: Option<&str>,
    from: IsolateFrom,
    rng: &mut ChaCha8Rng,
    undo: &mut Vec<Undo>,
) -> String {
    let hit = hit(ctl, target, rng);
    for n in &hit {
        let others = match from {
            IsolateFrom::All => ctl.hosts().into_iter().filter(|h| h != n).collect(),
            IsolateFrom::Masters => ctl.masters(),
        };
        for m in others {
            ctl.block(n, &m);
            ctl.block(&m, n);
            undo.push(Undo::Unblock(n.clone(), m.clone()));
            undo.push(Undo::Unblock(m.clone(), n.clone()));
        }
    }
    described(&hit)
}

/// `kubelet-restart`: instantaneous, nothing to heal.
pub fn restart_kubelet(
    ctl: &mut dyn Control,
    target: Option<&str>,
    rng: &mut ChaCha8Rng,
) -> String {
    let hit = hit(ctl, target, rng);
    for n in &hit {
        ctl.restart_kubelet(n);
    }
    described(&hit)
}
