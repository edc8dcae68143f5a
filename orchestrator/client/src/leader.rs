//! Leader election through a Lease, as client-go does it, plus fencing.
//!
//! Candidates race to write themselves into the Lease's `holderIdentity`
//! with a compare-and-swap on its resourceVersion; the holder renews it
//! every `retry_period`. A lease counts as expired when its record has not
//! changed for `lease_duration` *as observed on the candidate's own
//! monotonic clock* (client-go's rule: immune to clock skew between hosts).
//!
//! Timing alone cannot stop a paused or partitioned old leader from acting
//! after a new one took over, so the leader's work runs with a
//! [`Fence`]: every mutating request carries the holder and transition count
//! it was elected with, and the API server checks them against the lease,
//! in the same store transaction as the write. A deposed leader's writes
//! fail with 409.

use std::future::Future;
use std::time::Duration;

use faultline_api::{Lease, LeaseSpec, ObjectMeta};
use tokio::time::Instant;

use crate::client::{ApiError, Client};

/// Election tunables (client-go's defaults).
#[derive(Debug, Clone)]
pub struct ElectorConfig {
    pub namespace: String,
    pub name: String,
    /// This candidate (the host name, say).
    pub identity: String,
    pub lease_duration: Duration,
    /// A leader that could not renew for this long steps down.
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl ElectorConfig {
    pub fn new(namespace: &str, name: &str, identity: &str) -> ElectorConfig {
        ElectorConfig {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// The header value that fences a leader's writes:
/// `namespace/name=holder/transitions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence(pub String);

impl Fence {
    fn of(lease: &Lease) -> Fence {
        Fence(format!(
            "{}/{}={}",
            lease.metadata.namespace,
            lease.metadata.name,
            fence_value(lease)
        ))
    }
}

/// What the API server stores for a lease's current holder.
pub fn fence_value(lease: &Lease) -> String {
    format!(
        "{}/{}",
        lease.spec.holder_identity.as_deref().unwrap_or(""),
        lease.spec.lease_transitions.unwrap_or(0)
    )
}

/// Runs work only while leading.
pub struct Elector {
    client: Client,
    cfg: ElectorConfig,
}

impl Elector {
    pub fn new(client: Client, cfg: ElectorConfig) -> Elector {
        Elector { client, cfg }
    }

    /// Forever: acquire the lease, run `work` with a fenced client while
    /// holding it, and abort `work` the moment leadership is lost.
    pub async fn run<F, Fut>(self, work: F)
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = ()> + 'static,
    {
        let env = self.client.env().clone();
        loop {
            let (lease, fence) = self.acquire().await;
            env.observe(faultline_env::Observation::LeaseAcquired {
                lease: format!("{}/{}", self.cfg.namespace, self.cfg.name),
                transitions: lease.spec.lease_transitions.unwrap_or(0) as u64,
            });
            env.trace(format_args!(
                "leader {}/{}: {} acquired ({})",
                self.cfg.namespace, self.cfg.name, self.cfg.identity, fence.0
            ));
            let task = env.spawn(work(self.client.fenced(&fence.0)));
            self.keep(lease).await;
            task.abort();
            env.trace(format_args!(
                "leader {}/{}: {} lost the lease",
                self.cfg.namespace, self.cfg.name, self.cfg.identity
            ));
        }
    }

    fn now_micro(&self) -> String {
        faultline_api::time::rfc3339_micros(self.client.env().wall_ms())
    }

    /// Waits until this candidate holds the lease.
    async fn acquire(&self) -> (Lease, Fence) {
        let env = self.client.env().clone();
        let c = &self.cfg;
        // The record last seen and when (our clock) it last changed.
        let mut observed: Option<(String, Instant)> = None;
        loop {
            match self.client.get::<Lease>(&c.namespace, &c.name).await {
                Err(e) if e.is_not_found() => {
                    let lease = Lease {
                        metadata: ObjectMeta::named(&c.namespace, &c.name),
                        spec: LeaseSpec {
                            holder_identity: Some(c.identity.clone()),
                            lease_duration_seconds: Some(c.lease_duration.as_secs() as i32),
                            acquire_time: Some(self.now_micro()),
                            renew_time: Some(self.now_micro()),
                            lease_transitions: Some(0),
                        },
                        ..Default::default()
                    };
                    if let Ok(l) = self.client.create(&lease).await {
                        let f = Fence::of(&l);
                        return (l, f);
                    }
                }
                Err(_) => {}
                Ok(l) => {
                    let record = format!("{:?}/{:?}", l.spec.holder_identity, l.spec.renew_time);
                    let now = env.now();
                    let since = match &observed {
                        Some((r, at)) if *r == record => *at,
                        _ => {
                            observed = Some((record, now));
                            now
                        }
                    };
                    let mine = l.spec.holder_identity.as_deref() == Some(c.identity.as_str());
                    let free = l.spec.holder_identity.as_deref().unwrap_or("").is_empty();
                    let duration = l
                        .spec
                        .lease_duration_seconds
                        .map(|s| Duration::from_secs(s.max(1) as u64))
                        .unwrap_or(c.lease_duration);
                    if mine || free || now >= since + duration {
                        let mut next = l.clone();
                        if !mine {
                            next.spec.lease_transitions =
                                Some(l.spec.lease_transitions.unwrap_or(0) + 1);
                            next.spec.acquire_time = Some(self.now_micro());
                        }
                        next.spec.holder_identity = Some(c.identity.clone());
                        next.spec.renew_time = Some(self.now_micro());
                        next.spec.lease_duration_seconds = Some(c.lease_duration.as_secs() as i32);
                        if let Ok(l) = self.client.update(&next).await {
                            let f = Fence::of(&l);
                            return (l, f);
                        }
                    }
                }
            }
            env.sleep(c.retry_period).await;
        }
    }

    /// Renews until it cannot; returns when leadership is lost.
    ///
    /// Every renewal must succeed within the renew deadline, counted from
    /// the last one that did, as client-go bounds each attempt with
    /// `RenewDeadline`: a renewal that hangs (the API server's store cut
    /// off from its quorum) and lands later would otherwise keep a leader
    /// whose caches stood still all that time, and let it act on them.
    async fn keep(&self, mut lease: Lease) {
        let env = self.client.env().clone();
        let mut renewed = env.now();
        loop {
            env.sleep(self.cfg.retry_period).await;
            let mut next = lease.clone();
            next.spec.renew_time = Some(self.now_micro());
            let left = (renewed + self.cfg.renew_deadline).saturating_duration_since(env.now());
            let Ok(result) = env.timeout(left, self.client.update(&next)).await else {
                return;
            };
            match result {
                Ok(l) => {
                    lease = l;
                    renewed = env.now();
                    continue;
                }
                Err(ApiError::Status(s)) if s.code == 409 || s.code == 404 => {
                    // Someone else wrote the lease: re-read it (within
                    // the deadline too).
                    let left =
                        (renewed + self.cfg.renew_deadline).saturating_duration_since(env.now());
                    let read = self
                        .client
                        .get::<Lease>(&self.cfg.namespace, &self.cfg.name);
                    let Ok(read) = env.timeout(left, read).await else {
                        return;
                    };
                    match read {
                        Ok(l) if Fence::of(&l) == Fence::of(&lease) => lease = l,
                        Ok(_) => return,
                        Err(e) if e.is_not_found() => return,
                        Err(_) => {}
                    }
                }
                Err(_) => {}
            }
            if env.now() >= renewed + self.cfg.renew_deadline {
                return;
            }
        }
    }
}
