//! Why no node fits a pod, counted per reason as kube-scheduler reports it.

use std::collections::BTreeMap;
use std::fmt;

/// Why a node was filtered out for a pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// The node's `Ready` condition is not `True`.
    NotReady,
    /// The node is cordoned (`spec.unschedulable`).
    Unschedulable,
    /// The node has a `NoSchedule`/`NoExecute` taint the pod does not
    /// tolerate (the first such taint).
    UntoleratedTaint {
        /// The taint's key.
        key: String,
        /// The taint's value.
        value: String,
    },
    /// The node's labels do not include the pod's `spec.nodeSelector`.
    NodeSelectorMismatch,
    /// Not enough cpu left for the pod's request.
    InsufficientCpu,
    /// Not enough memory left for the pod's request.
    InsufficientMemory,
    /// The node already runs as many pods as it allows.
    TooManyPods,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotReady => f.write_str("node(s) were not ready"),
            Reason::Unschedulable => f.write_str("node(s) were unschedulable"),
            Reason::UntoleratedTaint { key, value } => {
                write!(f, "node(s) had untolerated taint {{{key}: {value}}}")
            }
            Reason::NodeSelectorMismatch => {
                f.write_str("node(s) didn't match Pod's node affinity/selector")
            }
            Reason::InsufficientCpu => f.write_str("Insufficient cpu"),
            Reason::InsufficientMemory => f.write_str("Insufficient memory"),
            Reason::TooManyPods => f.write_str("Too many pods"),
        }
    }
}

/// No node fits the pod. The driver records it on the pod
/// (`PodScheduled=False`, reason `Unschedulable`, this message) and retries
/// when the cluster changes; nothing about the pod itself is wrong.
///
/// The message reads like kube-scheduler's: `0/9 nodes are available: 2
/// node(s) were not ready, 3 Insufficient cpu, 4 node(s) didn't match Pod's
/// node affinity/selector.` Its `"count reason"` parts are sorted as
/// strings, as kube-scheduler sorts them. A node can count under several
/// resource reasons at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    /// The nodes considered (every node the cache holds).
    pub nodes_total: usize,
    /// How many nodes each reason filtered out.
    pub reasons: BTreeMap<Reason, usize>,
}

impl fmt::Display for Unschedulable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes are available", self.nodes_total)?;
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        parts.sort();
        if parts.is_empty() {
            f.write_str(".")
        } else {
            write!(f, ": {}.", parts.join(", "))
        }
    }
}

impl std::error::Error for Unschedulable {}
