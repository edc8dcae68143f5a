//! The container ledger: every container started anywhere, by pod uid and
//! container name, from a wrapper around each node's runtime. The
//! `single-container` invariant: a second running container for a pod uid
//! and container name while the first still runs (a crash ends a host's
//! containers). The report's pods-per-node chart reads it too.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use faultline_env::{Env, Observation};
use faultline_kubelet::{
    ContainerId, ContainerInfo, ContainerRuntime, ContainerSpec, ExecOutput, LogBuffer,
    RuntimeError, SimRuntime, VolumeFiles, VolumeRuntime,
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
        let started = Started {
            namespace: &spec.pod_namespace,
            pod: &spec.pod_name,
            uid: &spec.pod_uid,
            container: &spec.container_name,
            id: id.as_str(),
        };
        self.record_start(host, started, (self.clock)());
    }

    fn record_start(&self, host: &str, c: Started<'_>, now: u64) {
        let key = (c.uid.to_string(), c.container.to_string());
        let mut all = self.instances.borrow_mut();
        let list = all.entry(key).or_default();
        if let Some(other) = list.iter().find(|i| i.ended.is_none()) {
            self.violations.borrow_mut().push((
                now,
                format!(
                    "pod {}/{} (uid {}) container {}: started on {host} while still running on {} ({})",
                    c.namespace, c.pod, c.uid, c.container, other.host, other.id
                ),
            ));
        }
        list.push(Instance {
            host: host.to_string(),
            pod: c.pod.to_string(),
            id: c.id.to_string(),
            started: now,
            ended: None,
        });
        *self.started.borrow_mut() += 1;
    }

    /// What a real node's [`ReportingRuntime`] reported (read back from its
    /// log by `faultline real run`), at `at_ns` on the ledger's clock.
    pub fn observe(&self, host: &str, at_ns: u64, o: &Observation) {
        match o {
            Observation::ContainerStarted {
                namespace,
                pod,
                pod_uid,
                container,
                id,
            } => {
                let c = Started {
                    namespace,
                    pod,
                    uid: pod_uid,
                    container,
                    id,
                };
                self.record_start(host, c, at_ns)
            }
            Observation::ContainerEnded { id } => self.end(id, Some(at_ns)),
            _ => {}
        }
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

/// A container start as the ledger records it.
struct Started<'a> {
    namespace: &'a str,
    pod: &'a str,
    uid: &'a str,
    container: &'a str,
    id: &'a str,
}

/// A real node's runtime that reports what it starts and what ends as
/// observations ([`Observation::ContainerStarted`], `ContainerEnded`): a
/// real run's nodes live in other processes, so their ledger entries
/// travel through their logs (`faultline_env::real::ObservationLog`).
pub struct ReportingRuntime<R> {
    inner: R,
    env: Env,
    /// Containers reported started and not yet ended.
    live: RefCell<BTreeSet<String>>,
}

impl<R: ContainerRuntime> ReportingRuntime<R> {
    /// `inner`, reporting on `env`.
    pub fn new(inner: R, env: Env) -> ReportingRuntime<R> {
        ReportingRuntime {
            inner,
            env,
            live: RefCell::new(BTreeSet::new()),
        }
    }

    fn ended(&self, id: &str) {
        if self.live.borrow_mut().remove(id) {
            self.env
                .observe(Observation::ContainerEnded { id: id.to_string() });
        }
    }
}

/// `VolumeRuntime` by handing every call to the wrapped runtime
/// (`self.inner`): the ledger's wrappers watch containers, not volumes.
macro_rules! volumes_of_inner {
    (impl $(<$g:ident: $b:path>)? for $ty:ty) => {
        #[async_trait(?Send)]
        impl$(<$g: $b>)? VolumeRuntime for $ty {
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
    };
}

volumes_of_inner!(impl<R: ContainerRuntime> for ReportingRuntime<R>);

#[async_trait(?Send)]
impl<R: ContainerRuntime> ContainerRuntime for ReportingRuntime<R> {
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, RuntimeError> {
        let s = spec.clone();
        let id = self.inner.start(spec).await?;
        self.live.borrow_mut().insert(id.as_str().to_string());
        self.env.observe(Observation::ContainerStarted {
            namespace: s.pod_namespace,
            pod: s.pod_name,
            pod_uid: s.pod_uid,
            container: s.container_name,
            id: id.as_str().to_string(),
        });
        Ok(id)
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        let r = self.inner.stop(id, grace).await;
        self.ended(id.as_str());
        r
    }

    async fn list(&self) -> Vec<ContainerInfo> {
        let list = self.inner.list().await;
        for c in &list {
            if !c.state.is_running() {
                self.ended(c.id.as_str());
            }
        }
        list
    }

    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let r = self.inner.remove(id).await;
        self.ended(id.as_str());
        r
    }

    async fn log(&self, id: &ContainerId) -> Result<Rc<LogBuffer>, RuntimeError> {
        self.inner.log(id).await
    }

    async fn exec(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        self.inner.exec(id, command, timeout).await
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

volumes_of_inner!(impl for LedgerRuntime);

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
