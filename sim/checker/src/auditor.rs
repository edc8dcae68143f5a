//! The auditor: reads the store's history of pods and nodes from revision
//! 1 for the `single-binding` and `no-overcommit` invariants, and the
//! nodes' readiness for the report. [`ClusterFindings`] also holds what the
//! cluster probe (`probe.rs`) finds after healing.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use faultline_api::{Node, Pod};
use faultline_env::Env;
use faultline_store::client::{prefix_end, StoreClient};
use faultline_store::ops::{EventKind, StoreError};

use crate::record::Clock;

/// What the control-plane observers found.
#[derive(Default)]
pub struct ClusterFindings {
    /// (simulated ns, what) for each pod bound twice.
    pub double_bindings: Vec<(u64, String)>,
    /// (simulated ns, what) each time a node became over-committed.
    pub overcommits: Vec<(u64, String)>,
    /// Why the auditor could not see the whole history, if it could not.
    pub auditor_errors: Vec<String>,
    /// Pods ever bound, and binding writes seen.
    pub pods_bound: u64,
    /// The last store revision the auditor read.
    pub last_revision: i64,
    /// `deployments-ready` after healing.
    pub ready: Option<Result<Duration, String>>,
    /// `pending-explained` at the end.
    pub pending: Option<Result<String, String>>,
    /// The cluster probe has finished.
    pub probed: bool,
    /// Per node: its `Ready` condition each time the auditor saw it
    /// change (simulated ns, `True`/`False`/`Unknown`/`deleted`).
    pub readiness: BTreeMap<String, Vec<(u64, String)>>,
}

impl ClusterFindings {
    fn note_ready(&mut self, node: &str, at: u64, status: &str) {
        let changes = self.readiness.entry(node.to_string()).or_default();
        if changes.last().is_none_or(|(_, s)| s != status) {
            changes.push((at, status.to_string()));
        }
    }
}

/// The findings, shared by the auditor, the probe and the run.
pub type Findings = Rc<RefCell<ClusterFindings>>;

#[derive(Default)]
struct NodeUse {
    allocatable: (i64, i64, i64),
    /// uid -> (cpu milli, memory bytes)
    pods: BTreeMap<String, (i64, i64)>,
    over: bool,
}

/// The auditor: watches `/registry/` in the store from revision 1, every
/// write exactly once and in order, and flags a pod bound twice (or
/// re-bound) and a node whose bound pods request more than it can
/// allocate; it also notes each node's readiness as it changes.
pub async fn audit(env: Env, store: Rc<StoreClient>, findings: Findings, clock: Clock) {
    let prefix = b"/registry/".to_vec();
    let mut bound: BTreeMap<String, String> = BTreeMap::new();
    let mut nodes: BTreeMap<String, NodeUse> = BTreeMap::new();
    let mut next = 1i64;
    loop {
        let Some(mut w) = store.watch(&prefix, &prefix_end(&prefix), next).await else {
            env.sleep(Duration::from_millis(500)).await;
            continue;
        };
        loop {
            match w.next().await {
                None => break,
                Some(Err(StoreError::Compacted { compact_revision })) => {
                    findings.borrow_mut().auditor_errors.push(format!(
                        "the auditor lost history: revision {next} compacted (at {compact_revision})"
                    ));
                    return;
                }
                Some(Err(_)) => break,
                Some(Ok(events)) => {
                    for ev in events {
                        next = ev.kv.mod_revision + 1;
                        let key = String::from_utf8_lossy(&ev.kv.key).into_owned();
                        let mut f = findings.borrow_mut();
                        f.last_revision = ev.kv.mod_revision;
                        if let Some(name) = key.strip_prefix("/registry/nodes/") {
                            let u = nodes.entry(name.to_string()).or_default();
                            if ev.kind == EventKind::Delete {
                                f.note_ready(name, clock(), "deleted");
                            }
                            if ev.kind == EventKind::Put {
                                if let Ok(n) = serde_json::from_slice::<Node>(&ev.kv.value) {
                                    let ready = match n.ready_status() {
                                        "" => "Unknown",
                                        s => s,
                                    };
                                    f.note_ready(name, clock(), ready);
                                    let q =
                                        |k: &str, milli: bool| {
                                            n.status
                                                .allocatable
                                                .get(k)
                                                .map(|q| {
                                                    if milli {
                                                        q.milli_value()
                                                    } else {
                                                        q.value()
                                                    }
                                                })
                                                .unwrap_or(i64::MAX)
                                        };
                                    u.allocatable =
                                        (q("cpu", true), q("memory", false), q("pods", false));
                                }
                            }
                            continue;
                        }
                        if !key.starts_with("/registry/pods/") {
                            continue;
                        }
                        let at = clock();
                        if ev.kind == EventKind::Delete {
                            let uid = ev
                                .prev_kv
                                .as_ref()
                                .and_then(|kv| serde_json::from_slice::<Pod>(&kv.value).ok())
                                .map(|p| p.metadata.uid);
                            if let Some(uid) = uid {
                                for u in nodes.values_mut() {
                                    u.pods.remove(&uid);
                                }
                            }
                            continue;
                        }
                        let Ok(p) = serde_json::from_slice::<Pod>(&ev.kv.value) else {
                            f.auditor_errors.push(format!("{key}: undecodable pod"));
                            continue;
                        };
                        let uid = p.metadata.uid.clone();
                        let node = p.spec.node_name.clone();
                        if !node.is_empty() {
                            match bound.get(&uid) {
                                None => {
                                    bound.insert(uid.clone(), node.clone());
                                    f.pods_bound += 1;
                                }
                                Some(first) if *first != node => {
                                    f.double_bindings.push((
                                        at,
                                        format!(
                                            "pod {} (uid {uid}) bound to {first}, then re-bound to {node} at revision {}",
                                            key.trim_start_matches("/registry/pods/"),
                                            ev.kv.mod_revision
                                        ),
                                    ));
                                }
                                Some(_) => {}
                            }
                            let u = nodes.entry(node.clone()).or_default();
                            if p.is_terminal() {
                                u.pods.remove(&uid);
                            } else {
                                u.pods
                                    .insert(uid.clone(), (p.request("cpu"), p.request("memory")));
                            }
                            let cpu: i64 = u.pods.values().map(|x| x.0).sum();
                            let mem: i64 = u.pods.values().map(|x| x.1).sum();
                            let count = u.pods.len() as i64;
                            let (ac, am, ap) = u.allocatable;
                            let over = (ac > 0 && cpu > ac)
                                || (am > 0 && mem > am)
                                || (ap > 0 && count > ap);
                            if over && !u.over && ac > 0 {
                                f.overcommits.push((
                                    at,
                                    format!(
                                        "node {node} over-committed at revision {}: {count} pods request cpu {cpu}m of {ac}m, memory {mem} of {am}",
                                        ev.kv.mod_revision
                                    ),
                                ));
                            }
                            u.over = over;
                        }
                    }
                }
            }
        }
        env.sleep(Duration::from_millis(200)).await;
    }
}
