//! The node lifecycle controller: notices nodes that stopped heartbeating,
//! taints them and evicts their pods.
//!
//! Modelled on Kubernetes' `pkg/controller/nodelifecycle` (with taint-based
//! eviction):
//!
//! - **Health.** A node's heartbeat is its Lease in `kube-node-lease`
//!   (`spec.renewTime`) together with its Ready condition's
//!   `lastHeartbeatTime`. Like Kubernetes, the controller does not compare
//!   those time stamps with its own clock: it remembers, in
//!   [`NodeLifecycleState`], when *it* last saw either of them change, and
//!   a node whose heartbeat has not changed for longer than
//!   [`NodeLifecycleConfig::grace_ms`] gets its Ready condition set to
//!   `Unknown` (reason `NodeStatusUnknown`, "Kubelet stopped posting node
//!   status."). This keeps the verdict independent of clock skew between
//!   the kubelet and the controller. After a controller restart every node
//!   gets a full grace period from its first observation, as in
//!   Kubernetes.
//! - **Taints** follow the Ready condition: `Unknown` gives
//!   `node.kubernetes.io/unreachable`, `False` gives
//!   `node.kubernetes.io/not-ready`, each as `NoSchedule` and `NoExecute`;
//!   `True` removes them (the kubelet itself sets Ready back to `True`).
//! - **Pods** on a node that is not ready get their Ready condition set to
//!   `False` (Kubernetes' `MarkPodsNotReady`), so Services stop routing to
//!   them. Once the node has been not ready for longer than
//!   [`NodeLifecycleConfig::eviction_timeout_ms`] (counted from the Ready
//!   condition's `lastTransitionTime`, so the timer survives a controller
//!   restart) its pods are evicted: a [`Action::Delete`], which the API
//!   server turns into a graceful deletion, plus an Event. Pods that
//!   tolerate the `NoExecute` taint stay.
//! - **Disruption.** Nodes are grouped into zones by
//!   `topology.kubernetes.io/zone`. When every zone is fully disrupted (no
//!   ready node at all: most likely the controller's own network is cut)
//!   nothing is evicted and the `NoExecute` taints are withheld. A zone in
//!   partial disruption (more than 2 and at least
//!   [`NodeLifecycleConfig::unhealthy_zone_percent`] of its nodes not
//!   ready) evicts nothing either (Kubernetes' behaviour for small
//!   clusters). Evictions are capped at
//!   [`NodeLifecycleConfig::evictions_per_reconcile_max`] per call.
//!
//! At most one write per node per call: when the Ready condition changes
//! (`UpdateStatus`), the taints follow on the next call (`Update`), so the
//! two never race on the same `resourceVersion`.
//!
//! Simplified: only the Ready condition is managed (Kubernetes also sets
//! MemoryPressure and friends to Unknown); no per-node token-bucket
//! eviction rate, no `tolerationSeconds`.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use faultline_api::{labels, Lease, Node, NodeCondition, Pod, Taint, Toleration};

use crate::util::parse_time_ms;
use crate::{format_time_ms, Action, EventRecord, Object, EVENT_NORMAL};

/// Taint key for nodes whose Ready condition is `Unknown`.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint key for nodes whose Ready condition is `False`.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The namespace of node heartbeat leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Timing and rate limits of the node lifecycle controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLifecycleConfig {
    /// How long a heartbeat may stay unchanged before the node is `Unknown`
    /// (Kubernetes' `node-monitor-grace-period`, 40 s).
    pub grace_ms: u64,
    /// How long a node may be not ready before its pods are evicted (the
    /// default 300 s toleration of the unreachable/not-ready taints).
    pub eviction_timeout_ms: u64,
    /// Most pods evicted per call.
    pub evictions_per_reconcile_max: usize,
    /// A zone with more than 2 and at least this percentage of nodes not
    /// ready is in partial disruption (Kubernetes' 55%).
    pub unhealthy_zone_percent: u32,
    /// How often the driver should call [`reconcile`] (Kubernetes'
    /// `node-monitor-period`, 5 s). Not used by [`reconcile`] itself.
    pub monitor_period_ms: u64,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        NodeLifecycleConfig {
            grace_ms: 40_000,
            eviction_timeout_ms: 300_000,
            evictions_per_reconcile_max: 10,
            unhealthy_zone_percent: 55,
            monitor_period_ms: 5_000,
        }
    }
}

/// What the controller remembers between calls: when it last saw each
/// node's heartbeat change, and since when each node has been not ready.
/// Losing it (a restart) is safe: heartbeats get a fresh grace period and
/// not-ready times are recovered from the Ready condition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeLifecycleState {
    nodes: BTreeMap<String, NodeHealth>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeHealth {
    /// Lease `renewTime` and Ready `lastHeartbeatTime` as last seen.
    probe: (Option<String>, Option<String>),
    /// When `probe` was last seen to change (controller clock).
    probe_ms: u64,
    not_ready_since_ms: Option<u64>,
}

impl NodeLifecycleState {
    /// Since when `node` has been not ready, as far as the controller knows.
    pub fn not_ready_since_ms(&self, node: &str) -> Option<u64> {
        self.nodes.get(node).and_then(|h| h.not_ready_since_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ZoneState {
    Normal,
    PartialDisruption,
    FullDisruption,
}

/// Checks every node once. `leases` are the node leases (namespace
/// [`LEASE_NAMESPACE`], named like the nodes; others are ignored), `pods`
/// all pods of the cluster. Call it every
/// [`NodeLifecycleConfig::monitor_period_ms`] with the same `state`.
///
/// Actions: per node (by name) at most one node write and its Event, the
/// pods' Ready=False status updates, then the evictions (Delete + Event).
///
/// The objects may be owned or shared (`Rc` from an informer's
/// `list_shared`): this runs every period over every pod of the cluster.
pub fn reconcile<N: Borrow<Node>, L: Borrow<Lease>, P: Borrow<Pod>>(
    nodes: &[N],
    leases: &[L],
    pods: &[P],
    now_ms: u64,
    cfg: &NodeLifecycleConfig,
    state: &mut NodeLifecycleState,
) -> Vec<Action> {
    let mut nodes: Vec<&Node> = nodes.iter().map(Borrow::borrow).collect();
    nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    state
        .nodes
        .retain(|name, _| nodes.iter().any(|n| &n.metadata.name == name));
    let leases: BTreeMap<&str, &Lease> = leases
        .iter()
        .map(Borrow::borrow)
        .filter(|l| l.metadata.namespace.is_empty() || l.metadata.namespace == LEASE_NAMESPACE)
        .map(|l| (l.metadata.name.as_str(), l))
        .collect();

    let mut out = Vec::new();
    // Pass 1: heartbeats and the Ready condition.
    let mut readiness: Vec<(&Node, String, bool)> = Vec::new(); // (node, Ready status, status written)
    for &node in &nodes {
        let name = node.metadata.name.as_str();
        let ready_cond = node.status.conditions.iter().find(|c| c.kind == "Ready");
        let probe = (
            leases.get(name).and_then(|l| l.spec.renew_time.clone()),
            ready_cond.and_then(|c| c.last_heartbeat_time.clone()),
        );
        let health = state.nodes.entry(name.to_string()).or_insert(NodeHealth {
            probe: probe.clone(),
            probe_ms: now_ms,
            not_ready_since_ms: None,
        });
        if health.probe != probe {
            health.probe = probe;
            health.probe_ms = now_ms;
        }
        let stale = now_ms > health.probe_ms + cfg.grace_ms;
        let mut ready = node.ready_status().to_string();
        let mut written = false;
        if stale && ready != "Unknown" {
            out.extend(mark_unknown(node, now_ms));
            ready = "Unknown".into();
            written = true;
            health.not_ready_since_ms = Some(now_ms);
        } else if ready == "True" {
            health.not_ready_since_ms = None;
        } else if health.not_ready_since_ms.is_none() && !ready.is_empty() {
            let since = ready_cond
                .and_then(|c| c.last_transition_time.as_deref())
                .and_then(parse_time_ms)
                .filter(|t| *t <= now_ms)
                .unwrap_or(now_ms);
            health.not_ready_since_ms = Some(since);
        }
        readiness.push((node, ready, written));
    }

    // Zones and disruption.
    let mut zones: BTreeMap<&str, (usize, usize)> = BTreeMap::new(); // (ready, not ready)
    for (node, ready, _) in &readiness {
        let zone = node
            .metadata
            .labels
            .get(labels::ZONE)
            .map_or("", String::as_str);
        let e = zones.entry(zone).or_default();
        if ready == "True" {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    let zone_state = |zone: &str| -> ZoneState {
        let (ready, not_ready) = zones.get(zone).copied().unwrap_or_default();
        if ready == 0 && not_ready > 0 {
            ZoneState::FullDisruption
        } else if not_ready > 2
            && not_ready * 100 >= cfg.unhealthy_zone_percent as usize * (ready + not_ready)
        {
            ZoneState::PartialDisruption
        } else {
            ZoneState::Normal
        }
    };
    let all_fully_disrupted = !zones.is_empty()
        && zones
            .keys()
            .all(|z| zone_state(z) == ZoneState::FullDisruption);

    // Pass 2: taints, pod readiness, evictions.
    let mut evictions = Vec::new();
    for (node, ready, written) in &readiness {
        let name = node.metadata.name.as_str();
        if !written {
            if let Some(updated) = with_taints(node, ready, !all_fully_disrupted) {
                out.push(Action::Update(Object::Node(updated)));
            }
        }
        if ready == "True" || ready.is_empty() {
            continue;
        }
        let zone = node
            .metadata
            .labels
            .get(labels::ZONE)
            .map_or("", String::as_str);
        let since = state.nodes[name].not_ready_since_ms.unwrap_or(now_ms);
        let evict = !all_fully_disrupted
            && zone_state(zone) != ZoneState::PartialDisruption
            && now_ms >= since + cfg.eviction_timeout_ms;
        let taint_key = if ready == "False" {
            TAINT_NOT_READY
        } else {
            TAINT_UNREACHABLE
        };
        let mut on_node: Vec<&Pod> = pods
            .iter()
            .map(Borrow::borrow)
            .filter(|p| p.spec.node_name == name)
            .collect();
        on_node.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        for pod in on_node {
            let evictable = evict
                && pod.metadata.deletion_timestamp.is_none()
                && !pod
                    .spec
                    .tolerations
                    .iter()
                    .any(|t| tolerates(t, taint_key, "NoExecute"));
            if evictable {
                evictions.push(pod);
            } else if pod.is_ready() {
                let mut p = pod.clone();
                let c = p
                    .status
                    .conditions
                    .iter_mut()
                    .find(|c| c.kind == "Ready")
                    .expect("a ready pod has a Ready condition");
                c.status = "False".into();
                c.last_transition_time = Some(format_time_ms(now_ms));
                out.push(Action::UpdateStatus(Object::Pod(p)));
            }
        }
    }
    for pod in evictions.into_iter().take(cfg.evictions_per_reconcile_max) {
        out.push(Action::delete(pod));
        out.push(Action::Event(EventRecord::new(
            pod,
            EVENT_NORMAL,
            "TaintManagerEviction",
            format!(
                "Marking for deletion Pod {}/{}",
                pod.metadata.namespace, pod.metadata.name
            ),
        )));
    }
    out
}

/// The status update that sets `node`'s Ready condition to Unknown, and
/// its Event.
fn mark_unknown(node: &Node, now_ms: u64) -> [Action; 2] {
    let mut n = node.clone();
    let stamp = Some(format_time_ms(now_ms));
    match n.status.conditions.iter_mut().find(|c| c.kind == "Ready") {
        Some(c) => {
            c.status = "Unknown".into();
            c.reason = "NodeStatusUnknown".into();
            c.message = "Kubelet stopped posting node status.".into();
            c.last_transition_time = stamp;
        }
        None => n.status.conditions.push(NodeCondition {
            kind: "Ready".into(),
            status: "Unknown".into(),
            reason: "NodeStatusNeverUpdated".into(),
            message: "Kubelet never posted node status.".into(),
            last_transition_time: stamp,
            last_heartbeat_time: None,
        }),
    }
    let event = EventRecord::new(
        node,
        EVENT_NORMAL,
        "NodeNotReady",
        format!("Node {} status is now: NodeNotReady", node.metadata.name),
    );
    [Action::UpdateStatus(Object::Node(n)), Action::Event(event)]
}

/// `node` with the lifecycle taints its Ready status calls for, or `None`
/// when they are already right. Other taints keep their place.
fn with_taints(node: &Node, ready: &str, no_execute: bool) -> Option<Node> {
    let key = match ready {
        "Unknown" => Some(TAINT_UNREACHABLE),
        "False" => Some(TAINT_NOT_READY),
        _ => None,
    };
    let mut taints: Vec<Taint> = node
        .spec
        .taints
        .iter()
        .filter(|t| t.key != TAINT_UNREACHABLE && t.key != TAINT_NOT_READY)
        .cloned()
        .collect();
    if let Some(key) = key {
        let effects: &[&str] = if no_execute {
            &["NoSchedule", "NoExecute"]
        } else {
            &["NoSchedule"]
        };
        for effect in effects {
            taints.push(Taint {
                key: key.into(),
                value: String::new(),
                effect: effect.to_string(),
            });
        }
    }
    let mut current = node.spec.taints.clone();
    let mut wanted = taints.clone();
    current.sort_by(|a, b| (&a.key, &a.effect).cmp(&(&b.key, &b.effect)));
    wanted.sort_by(|a, b| (&a.key, &a.effect).cmp(&(&b.key, &b.effect)));
    if current == wanted {
        return None;
    }
    let mut n = node.clone();
    n.spec.taints = taints;
    Some(n)
}

/// Kubernetes' `Toleration.ToleratesTaint` for a taint without a value.
fn tolerates(t: &Toleration, key: &str, effect: &str) -> bool {
    if !t.effect.is_empty() && t.effect != effect {
        return false;
    }
    match t.operator.as_str() {
        "Exists" => t.key.is_empty() || t.key == key,
        "" | "Equal" => t.key == key && t.value.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use faultline_api::{ObjectMeta, PodCondition};

    use super::*;
    use crate::replicaset::tests::NOW;

    /// A small cluster: nodes with leases and pods, and the controller's
    /// state, advanced by calling [`Cluster::tick`].
    struct Cluster {
        now: u64,
        nodes: Vec<Node>,
        leases: Vec<Lease>,
        pods: Vec<Pod>,
        cfg: NodeLifecycleConfig,
        state: NodeLifecycleState,
    }

    impl Cluster {
        fn new(names: &[(&str, &str)], pods_per_node: usize) -> Cluster {
            let mut c = Cluster {
                now: NOW,
                nodes: vec![],
                leases: vec![],
                pods: vec![],
                cfg: NodeLifecycleConfig::default(),
                state: NodeLifecycleState::default(),
            };
            for (name, zone) in names {
                let mut n = Node {
                    metadata: ObjectMeta {
                        name: name.to_string(),
                        uid: format!("uid-{name}"),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                n.metadata
                    .labels
                    .insert(labels::ZONE.into(), zone.to_string());
                n.status.conditions.push(NodeCondition {
                    kind: "Ready".into(),
                    status: "True".into(),
                    last_heartbeat_time: Some(format_time_ms(NOW)),
                    last_transition_time: Some(format_time_ms(NOW - 1_000_000)),
                    ..Default::default()
                });
                c.nodes.push(n);
                let mut l = Lease {
                    metadata: ObjectMeta::named(LEASE_NAMESPACE, name),
                    ..Default::default()
                };
                l.spec.renew_time = Some(format_time_ms(NOW));
                c.leases.push(l);
                for i in 0..pods_per_node {
                    let mut p = Pod {
                        metadata: ObjectMeta {
                            uid: format!("uid-{name}-p{i}"),
                            ..ObjectMeta::named("default", &format!("{name}-p{i}"))
                        },
                        ..Default::default()
                    };
                    p.spec.node_name = name.to_string();
                    p.status.phase = "Running".into();
                    p.status.conditions.push(PodCondition {
                        kind: "Ready".into(),
                        status: "True".into(),
                        ..Default::default()
                    });
                    c.pods.push(p);
                }
            }
            c
        }

        /// Renews the leases of `alive` nodes, advances time by `dt`, runs
        /// the controller and applies node writes and evictions.
        fn tick(&mut self, alive: &[&str], dt: u64) -> Vec<Action> {
            self.now += dt;
            for l in &mut self.leases {
                if alive.contains(&l.metadata.name.as_str()) {
                    l.spec.renew_time = Some(format_time_ms(self.now));
                }
            }
            let out = reconcile(
                &self.nodes,
                &self.leases,
                &self.pods,
                self.now,
                &self.cfg,
                &mut self.state,
            );
            for a in &out {
                match a {
                    Action::UpdateStatus(Object::Node(n)) | Action::Update(Object::Node(n)) => {
                        let i = self
                            .nodes
                            .iter()
                            .position(|x| x.metadata.name == n.metadata.name)
                            .unwrap();
                        self.nodes[i] = n.clone();
                    }
                    Action::UpdateStatus(Object::Pod(p)) => {
                        let i = self
                            .pods
                            .iter()
                            .position(|x| x.metadata.uid == p.metadata.uid)
                            .unwrap();
                        self.pods[i] = p.clone();
                    }
                    Action::Delete { uid, .. } => {
                        let p = self
                            .pods
                            .iter_mut()
                            .find(|p| &p.metadata.uid == uid)
                            .unwrap();
                        p.metadata.deletion_timestamp = Some(format_time_ms(self.now));
                    }
                    Action::Event(_) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            out
        }

        /// The kubelet of `name` posts Ready=True again.
        fn kubelet_ready(&mut self, name: &str) {
            let n = self
                .nodes
                .iter_mut()
                .find(|n| n.metadata.name == name)
                .unwrap();
            let c = n
                .status
                .conditions
                .iter_mut()
                .find(|c| c.kind == "Ready")
                .unwrap();
            c.status = "True".into();
            c.reason = "KubeletReady".into();
            c.last_heartbeat_time = Some(format_time_ms(self.now));
            c.last_transition_time = Some(format_time_ms(self.now));
        }

        fn node(&self, name: &str) -> &Node {
            self.nodes.iter().find(|n| n.metadata.name == name).unwrap()
        }

        fn taints(&self, name: &str) -> Vec<(String, String)> {
            self.node(name)
                .spec
                .taints
                .iter()
                .map(|t| (t.key.clone(), t.effect.clone()))
                .collect()
        }

        fn evicted(&self) -> Vec<&str> {
            self.pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_some())
                .map(|p| p.metadata.name.as_str())
                .collect()
        }
    }

    fn deletes(out: &[Action]) -> usize {
        out.iter()
            .filter(|a| matches!(a, Action::Delete { .. }))
            .count()
    }

    const ALL: &[&str] = &["a", "b", "c"];
    const AB: &[&str] = &["a", "b"];

    #[test]
    fn healthy_nodes_need_nothing() {
        let mut c = Cluster::new(&[("a", "z1"), ("b", "z1"), ("c", "z1")], 1);
        for _ in 0..100 {
            assert_eq!(c.tick(ALL, 5_000), vec![]);
        }
    }

    #[test]
    fn a_silent_node_becomes_unknown_after_the_grace_period_then_tainted() {
        let mut c = Cluster::new(&[("a", "z1"), ("b", "z1"), ("c", "z1")], 1);
        c.tick(ALL, 5_000);
        // c stops renewing at NOW+5s; 40s later it is still within grace.
        for _ in 0..8 {
            assert_eq!(c.tick(AB, 5_000), vec![]);
        }
        let out = c.tick(AB, 5_000);
        let cond = c.node("c").status.conditions[0].clone();
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_str()),
            ("Unknown", "NodeStatusUnknown")
        );
        assert_eq!(cond.message, "Kubelet stopped posting node status.");
        assert_eq!(
            cond.last_heartbeat_time,
            Some(format_time_ms(NOW)),
            "heartbeat kept"
        );
        assert_eq!(cond.last_transition_time, Some(format_time_ms(c.now)));
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::Event(e) if e.reason == "NodeNotReady")));
        assert!(c.taints("c").is_empty(), "taints follow on the next call");
        // Its pod is marked not ready in the same call.
        assert!(!c.pods[2].is_ready());
        c.tick(AB, 5_000);
        assert_eq!(
            c.taints("c"),
            [
                (TAINT_UNREACHABLE.into(), "NoSchedule".into()),
                (TAINT_UNREACHABLE.into(), "NoExecute".into())
            ]
        );
        assert!(c.taints("a").is_empty());
    }

    #[test]
    fn pods_are_evicted_after_the_timeout_and_recovery_clears_taints() {
        let mut c = Cluster::new(&[("a", "z1"), ("b", "z1"), ("c", "z1")], 2);
        let mut tolerant = c.pods[5].clone();
        tolerant.metadata.name = "c-tolerant".into();
        tolerant.metadata.uid = "uid-tolerant".into();
        tolerant.spec.tolerations.push(Toleration {
            key: TAINT_UNREACHABLE.into(),
            operator: "Exists".into(),
            effect: "NoExecute".into(),
            ..Default::default()
        });
        c.pods.push(tolerant);
        let mut went_unknown = 0;
        let mut evicted_at = 0;
        for _ in 0..100 {
            c.tick(AB, 5_000);
            if went_unknown == 0 && c.node("c").ready_status() == "Unknown" {
                went_unknown = c.now;
            }
            if !c.evicted().is_empty() {
                evicted_at = c.now;
                break;
            }
        }
        assert!(went_unknown > 0);
        assert_eq!(
            evicted_at - went_unknown,
            300_000,
            "eviction after exactly the timeout"
        );
        assert_eq!(c.evicted(), ["c-p0", "c-p1"], "the tolerant pod stays");
        // No double eviction of pods already being deleted.
        assert_eq!(deletes(&c.tick(AB, 5_000)), 0);

        // c comes back: lease renews, kubelet posts Ready.
        c.tick(ALL, 5_000);
        assert!(
            !c.taints("c").is_empty(),
            "the kubelet has not posted Ready yet"
        );
        c.kubelet_ready("c");
        c.tick(ALL, 5_000);
        assert!(c.taints("c").is_empty());
        assert_eq!(c.state.not_ready_since_ms("c"), None);
    }

    #[test]
    fn full_disruption_evicts_nothing() {
        let mut c = Cluster::new(&[("a", "z1"), ("b", "z2")], 1);
        c.tick(&["a", "b"], 5_000);
        let mut unknown = false;
        for _ in 0..200 {
            let out = c.tick(&[], 5_000);
            assert_eq!(deletes(&out), 0);
            unknown |= c.nodes.iter().all(|n| n.ready_status() == "Unknown");
        }
        assert!(unknown);
        for n in ["a", "b"] {
            assert_eq!(
                c.taints(n),
                [(TAINT_UNREACHABLE.into(), "NoSchedule".into())],
                "NoExecute withheld"
            );
        }
        // One node recovers: the other zone is now just an outage, and its
        // long-overdue pods go.
        c.kubelet_ready("a");
        c.tick(&["a"], 5_000);
        let out = c.tick(&["a"], 5_000);
        assert_eq!(c.evicted(), ["b-p0"], "{out:?}");
    }

    #[test]
    fn partial_disruption_of_a_zone_evicts_nothing_there() {
        let names = [
            ("a", "z1"),
            ("b", "z1"),
            ("c", "z1"),
            ("d", "z1"),
            ("e", "z2"),
        ];
        let mut c = Cluster::new(&names, 1);
        for _ in 0..200 {
            assert_eq!(deletes(&c.tick(&["a", "e"], 5_000)), 0, "3 of 4 down in z1");
        }
    }

    #[test]
    fn evictions_are_rate_limited() {
        let mut c = Cluster::new(&[("a", "z1"), ("b", "z1"), ("c", "z1")], 25);
        let mut per_call = vec![];
        for _ in 0..200 {
            let n = deletes(&c.tick(AB, 5_000));
            if n > 0 {
                per_call.push(n);
            }
        }
        assert_eq!(per_call, [10, 10, 5]);
    }

    #[test]
    fn a_restarted_controller_keeps_the_eviction_clock() {
        let mut c = Cluster::new(&[("a", "z1"), ("b", "z1"), ("c", "z1")], 1);
        c.tick(ALL, 5_000);
        for _ in 0..20 {
            c.tick(AB, 5_000);
        }
        let since = c.state.not_ready_since_ms("c").unwrap();
        c.state = NodeLifecycleState::default();
        c.tick(AB, 5_000);
        assert_eq!(c.state.not_ready_since_ms("c"), Some(since));
        while c.evicted().is_empty() {
            c.tick(AB, 5_000);
        }
        assert_eq!(c.now, since + 300_000);
    }

    #[test]
    fn a_kubelet_reporting_not_ready_gets_the_not_ready_taint() {
        let mut c = Cluster::new(&[("a", "z1"), ("b", "z1")], 0);
        let cond = &mut c.nodes[1].status.conditions[0];
        cond.status = "False".into();
        cond.last_transition_time = Some(format_time_ms(NOW));
        c.tick(&["a", "b"], 5_000);
        assert_eq!(
            c.taints("b"),
            [
                (TAINT_NOT_READY.into(), "NoSchedule".into()),
                (TAINT_NOT_READY.into(), "NoExecute".into())
            ]
        );
        assert_eq!(c.state.not_ready_since_ms("b"), Some(NOW));
    }

    #[test]
    fn skewed_lease_clocks_do_not_matter() {
        let mut c = Cluster::new(&[("a", "z1"), ("b", "z1")], 0);
        for _ in 0..50 {
            // b's kubelet clock runs an hour behind but keeps renewing.
            c.tick(&["a"], 5_000);
            let l = &mut c.leases[1];
            l.spec.renew_time = Some(format_time_ms(c.now - 3_600_000));
        }
        assert_eq!(c.node("b").ready_status(), "True");
    }
}
