//! The container ledger: every container started anywhere, by pod uid and
//! container name, from a wrapper around each node's runtime. The
//! `single-container` invariant: a second running container for a pod uid
//! and container name while the first still runs (a crash ends a host's
//! containers). The report's pods-per-node chart reads it too.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use faultline_kubelet::{
    ContainerId, ContainerInfo, ContainerRuntime, ContainerSpec, LogBuffer, RuntimeError,
    SimRuntime, VolumeFiles, VolumeRuntime,
};

use crate::record::Clock;

/// One container instance as the ledger saw it.
#[derive(Debug, Clone)]
struct Instance {
    host: String,
    pod: String,
    id: String,
    started: u64,
    ended: Option<u64>,
}

/// Every container started anywhere, by (pod uid, container name).
pub struct Ledger {
    clock: Clock,
    instances: RefCell<BTreeMap<(String, String), Vec<Instance>>>,
    /// (simulated ns, what) for each overlap.
    pub violations: RefCell<Vec<(u64, String)>>,
    /// Containers started.
    pub started: RefCell<u64>,
}

impl Ledger {
    /// An empty ledger timed by `clock`.
    pub fn new(clock: Clock) -> Ledger {
        Ledger {
            clock,
            instances: RefCell::new(BTreeMap::new()),
            violations: RefCell::new(Vec::new()),
            started: RefCell::new(0),
        }
    }

    fn start(&self, host: &str, spec: &ContainerSpec, id: &ContainerId) {
        let now = (self.clock)();
        let key = (spec.pod_uid.clone(), spec.container_name.clone());
        let mut all = self.instances.borrow_mut();
        let list = all.entry(key).or_default();
        if let Some(other) = list.iter().find(|i| i.ended.is_none()) {
            self.violations.borrow_mut().push((
                now,
                format!(
                    "pod {}/{} (uid {}) container {}: started on {host} while still running on {} ({})",
                    spec.pod_namespace, spec.pod_name, spec.pod_uid, spec.container_name, other.host, other.id
                ),
            ));
        }
        list.push(Instance {
            host: host.to_string(),
            pod: spec.pod_name.clone(),
            id: id.as_str().to_string(),
            started: now,
            ended: None,
        });
        *self.started.borrow_mut() += 1;
    }

    fn end(&self, id: &str, at: Option<u64>) {
        let now = at.unwrap_or_else(|| (self.clock)());
        for list in self.instances.borrow_mut().values_mut() {
            for i in list.iter_mut().filter(|i| i.id == id && i.ended.is_none()) {
                i.ended = Some(now.max(i.started));
            }
        }
    }

    /// The hosts running a container of a pod named `{prefix}-...` (a pod
    /// of that deployment), in name order.
    pub fn hosts_running(&self, prefix: &str) -> Vec<String> {
        let want = format!("{prefix}-");
        let hosts: std::collections::BTreeSet<String> = self
            .instances
            .borrow()
            .values()
            .flatten()
            .filter(|i| i.ended.is_none() && i.pod.starts_with(&want))
            .map(|i| i.host.clone())
            .collect();
        hosts.into_iter().collect()
    }

    /// Per host of `hosts`: the pods with a container running on it at
    /// the start of each `step_ns`, up to `end_ns`.
    pub fn pods_per_host(&self, hosts: &[String], step_ns: u64, end_ns: u64) -> Vec<Vec<u32>> {
        let steps = end_ns.div_ceil(step_ns).max(1) as usize;
        let mut out = vec![vec![0u32; steps]; hosts.len()];
        let index: BTreeMap<&str, usize> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), i))
            .collect();
        // A pod counts once per step however many containers it runs.
        let mut spans: BTreeMap<(usize, &str), Vec<(u64, u64)>> = BTreeMap::new();
        let all = self.instances.borrow();
        for ((uid, _), list) in all.iter() {
            for i in list {
                if let Some(&h) = index.get(i.host.as_str()) {
                    let end = i.ended.unwrap_or(u64::MAX);
                    spans
                        .entry((h, uid.as_str()))
                        .or_default()
                        .push((i.started, end));
                }
            }
        }
        for ((h, _), spans) in spans {
            for (k, count) in out[h].iter_mut().enumerate() {
                let t = k as u64 * step_ns;
                if spans.iter().any(|&(a, b)| a <= t && t < b) {
                    *count += 1;
                }
            }
        }
        out
    }

    /// A host crashed: everything it ran is dead.
    pub fn host_down(&self, host: &str) {
        let now = (self.clock)();
        for list in self.instances.borrow_mut().values_mut() {
            for i in list
                .iter_mut()
                .filter(|i| i.host == host && i.ended.is_none())
            {
                i.ended = Some(now);
            }
        }
    }
}

/// A runtime that tells the ledger what it starts and what stops.
pub struct LedgerRuntime {
    inner: SimRuntime,
    ledger: Rc<Ledger>,
    host: String,
}

impl LedgerRuntime {
    /// The simulated runtime of `host`, reporting to `ledger`.
    pub fn new(inner: SimRuntime, ledger: Rc<Ledger>, host: &str) -> LedgerRuntime {
        LedgerRuntime {
            inner,
            ledger,
            host: host.to_string(),
        }
    }
}

#[async_trait(?Send)]
impl VolumeRuntime for LedgerRuntime {
    async fn write_volume(
        &self,
        pod_uid: &str,
        volume: &str,
        files: &VolumeFiles,
    ) -> Result<bool, RuntimeError> {
        self.inner.write_volume(pod_uid, volume, files).await
    }

    async fn volume_pods(&self) -> Vec<String> {
        self.inner.volume_pods().await
    }

    async fn remove_volumes(&self, pod_uid: &str) -> Result<(), RuntimeError> {
        self.inner.remove_volumes(pod_uid).await
    }
}

#[async_trait(?Send)]
impl ContainerRuntime for LedgerRuntime {
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, RuntimeError> {
        let s = spec.clone();
        let id = self.inner.start(spec).await?;
        self.ledger.start(&self.host, &s, &id);
        Ok(id)
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        let r = self.inner.stop(id, grace).await;
        self.ledger.end(id.as_str(), None);
        r
    }

    async fn list(&self) -> Vec<ContainerInfo> {
        let list = self.inner.list().await;
        for c in &list {
            if !c.state.is_running() {
                self.ledger.end(c.id.as_str(), None);
            }
        }
        list
    }

    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let r = self.inner.remove(id).await;
        self.ledger.end(id.as_str(), None);
        r
    }

    async fn log(&self, id: &ContainerId) -> Result<Rc<LogBuffer>, RuntimeError> {
        self.inner.log(id).await
    }
}
