//! Resolving targets named by role: a master (`leader`, `follower`,
//! `random`, or by name) and the holder of a control-plane component's
//! leader-election lease.

use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use crate::Control;

/// Resolves a master target (`leader`, `follower`, `random`, a name).
pub(crate) fn pick_master(
    ctl: &dyn Control,
    target: Option<&str>,
    rng: &mut ChaCha8Rng,
) -> Option<String> {
    let up: Vec<String> = ctl.masters().into_iter().filter(|m| ctl.is_up(m)).collect();
    match target.unwrap_or("random") {
        "leader" => ctl.leader().or_else(|| up.choose(rng).cloned()),
        "follower" => {
            let leader = ctl.leader();
            let f: Vec<String> = up
                .iter()
                .filter(|m| Some(*m) != leader.as_ref())
                .cloned()
                .collect();
            f.choose(rng).cloned()
        }
        "random" => up.choose(rng).cloned(),
        name => Some(name.to_string()),
    }
}

/// The leader-election lease of a control-plane component named in a
/// target: `scheduler`, else the controller manager's.
pub(crate) fn election_lease(component: &str) -> &'static str {
    match component {
        "scheduler" => "kube-system/kube-scheduler",
        _ => "kube-system/kube-controller-manager",
    }
}
