//! What the faults need from a backend: the engine and turmoil each
//! implement it over their own world.

use std::rc::Rc;
use std::time::Duration;

use faultline_engine::SimDisk;

/// What the fault driver needs from a backend.
pub trait Control {
    /// Master host names, in order.
    fn masters(&self) -> Vec<String>;
    /// Every host name.
    fn hosts(&self) -> Vec<String>;
    /// The host that holds a leader-election lease (`kube-system/NAME`).
    fn lease_holder(&self, lease: &str) -> Option<String> {
        let _ = lease;
        None
    }
    /// Worker node host names, in order (none without a control plane).
    fn nodes(&self) -> Vec<String> {
        Vec::new()
    }
    /// User-traffic client hosts (they live in a datacenter's network, so
    /// a datacenter partition cuts them off with it, but they are users,
    /// not machines of the cluster: an outage does not crash them).
    fn users(&self) -> Vec<String> {
        Vec::new()
    }
    /// Nodes running a pod of deployment `name` right now.
    fn nodes_running(&self, name: &str) -> Vec<String> {
        let _ = name;
        Vec::new()
    }
    /// The datacenter of a host.
    fn datacenter(&self, host: &str) -> String;
    /// The master that leads the highest term seen, if it is up.
    fn leader(&self) -> Option<String>;
    fn is_up(&self, host: &str) -> bool;
    fn crash(&mut self, host: &str, power_loss: bool);
    fn restart(&mut self, host: &str);
    /// Drops everything on the directed link.
    fn block(&mut self, from: &str, to: &str);
    fn unblock(&mut self, from: &str, to: &str);
    /// Degrades a directed link (loss probability, extra latency, extra
    /// jitter).
    fn degrade(&mut self, from: &str, to: &str, loss: f64, extra: Duration, jitter: Duration);
    /// Freezes a running host (see `World::pause`); false if the backend
    /// cannot.
    fn pause(&mut self, host: &str) -> bool {
        let _ = host;
        false
    }
    fn resume(&mut self, host: &str) {
        let _ = host;
    }
    /// Sets how far a host's wall clock is off; false if the backend cannot.
    fn set_clock_offset(&mut self, host: &str, offset_ms: i64) -> bool {
        let _ = (host, offset_ms);
        false
    }
    /// Restarts a node's kubelet and proxy processes; false if the backend
    /// cannot or the node is down.
    fn restart_kubelet(&mut self, host: &str) -> bool {
        let _ = host;
        false
    }
    fn restore(&mut self, from: &str, to: &str);
    fn disk(&self, host: &str) -> Rc<SimDisk>;
    /// Everything on `host`'s disk is gone (it is down: `disk-loss` crashed
    /// it first). A simulated disk is wiped; a real run replaces the
    /// master's container by an empty one.
    fn lose_disk(&mut self, host: &str) {
        self.disk(host).wipe()
    }
    /// Appends a line to the trace.
    fn note(&self, line: &str);
}

/// Whether the control plane cannot serve the nodes: fewer than a quorum
/// of masters up and reachable both ways from at least one node (`false`
/// without nodes). Every backend's `Control` asks this after each fault,
/// for the `static-stability` invariant.
pub fn control_plane_down(
    masters: &[String],
    nodes: &[String],
    up: impl Fn(&str) -> bool,
    blocked: impl Fn(&str, &str) -> bool,
) -> bool {
    if nodes.is_empty() {
        return false;
    }
    let serving = masters
        .iter()
        .filter(|m| up(m) && nodes.iter().any(|n| !blocked(m, n) && !blocked(n, m)))
        .count();
    serving < masters.len() / 2 + 1
}

/// Control-plane outages as they are noticed: (start ns, end ns once it is
/// back).
#[derive(Debug, Default)]
pub struct Outages(Vec<(u64, Option<u64>)>);

impl Outages {
    /// Notes whether the control plane is down at `now_ns`.
    pub fn note(&mut self, down: bool, now_ns: u64) {
        match self.0.last_mut() {
            Some((_, end @ None)) if !down => *end = Some(now_ns),
            Some((_, None)) => {}
            _ if down => self.0.push((now_ns, None)),
            _ => {}
        }
    }

    /// Every outage, one still going ending at `end_ns`.
    pub fn until(&self, end_ns: u64) -> Vec<(u64, u64)> {
        self.0
            .iter()
            .map(|&(a, b)| (a, b.unwrap_or(end_ns)))
            .collect()
    }
}
