//! The kubelet's decisions about one pod, as pure functions: which
//! containers to remove, stop, start and adopt, when CrashLoopBackOff lets
//! an exited container restart, and the pod status to write.
//!
//! Sans-IO, like the controllers' `reconcile` functions and the scheduler's
//! `Cache`: nothing here calls the container runtime or the API, reads a
//! clock, spawns a task or draws randomness. Time arrives as values (`now`
//! on tokio's clock for backoff and probing, the wall clock as an RFC 3339
//! string for the status' timestamps), and what the kubelet remembers
//! between passes (readiness per container id, backoff per container, the
//! pods it deleted for good) is passed in; changes to it come back as part
//! of the decision. The shell in [`crate::kubelet`] drives one pod like this:
//!
//! ```text
//! match plan_pod(pod, containers, finalized) {
//!     PodPlan::Delete { remove, delete } => remove each container;
//!         if delete: DELETE the pod (grace 0, uid precondition), and remember
//!         it finalised on success, NotFound or Conflict
//!     PodPlan::Stop(ids) => stop each container
//!     PodPlan::Run => {
//!         let mut sync = PodSync::new(pod, containers, now);
//!         while let Some(step) = sync.next_step(&ready, &backoff) {
//!             remember step.backoff;
//!             step.adopt: ready[id] = adopt.ready; spawn a prober from adopt.probe_from
//!             step.start: remove the replaced container; start a new one;
//!                 on success ready[new id] = false and spawn a prober (if probed)
//!             sync.record(outcome, &ready);
//!         }
//!         if let Some(status) = sync.status(host_ip, pod_ip, &wall_now) { PUT it }
//!     }
//! }
//! ```
//!
//! One container at a time, because the runtime's calls await, and the
//! probers run meanwhile and change the readiness table: each container's
//! step, and the readiness its status reports, see the table as it is after
//! the previous container's calls, which is what the kubelet has always
//! done (and so what the simulator's recorded traces expect).
//!
//! Rules:
//! - **Deletion.** A pod with a `deletionTimestamp` has every container
//!   removed, then is deleted from the API with grace period 0 and its uid
//!   as precondition, unless this kubelet already finalised it (the API
//!   accepted the delete, or answered NotFound or Conflict: the pod is gone,
//!   or a new one took its name). Its containers are removed on every pass
//!   regardless.
//! - **Terminal pods** (`Succeeded`, `Failed`) never run again: their
//!   running containers are stopped, exited ones left, the status left
//!   alone.
//! - **The current container** of a spec is the one with that name and the
//!   highest attempt (the last of equals, in the runtime's start order).
//! - **Starting.** No container yet: start one at attempt *restart count
//!   the API recorded + 1*, or 0 when the API recorded none (so a kubelet
//!   restart keeps counting where the API left off). Running: nothing.
//!   Exited: restart at *attempt + 1*, replacing (removing) the exited one,
//!   when `restartPolicy` is `Always` (also when empty) or `OnFailure` and
//!   the exit code is not 0, and CrashLoopBackOff allows; otherwise it
//!   stays exited.
//! - **CrashLoopBackOff**, per (pod uid, container name): the first restart
//!   is immediate and the next may come [`INITIAL_BACKOFF`] later; every
//!   restart doubles the wait, up to [`MAX_BACKOFF`]. Simplified: the wait
//!   is never reset (Kubernetes resets it after ten minutes of running).
//! - **Adoption.** A running container with a readiness probe that the
//!   readiness table does not know (the kubelet restarted, the container
//!   did not) is adopted: it keeps the readiness the API last recorded for
//!   that container id, and is probed as if it had started
//!   `initialDelaySeconds` ago, so probing resumes at once.
//! - **A started container** with a readiness probe is recorded not ready
//!   and probed from `now`; a failed start is reported waiting, with no id
//!   and restart count 0.
//! - **Container status**: `running` or `waiting`, the attempt as restart
//!   count, ready when running and either unprobed or ready in the table.
//! - **Phase**: `Failed` when `restartPolicy` is `Never` and a container
//!   exited non-zero; else `Succeeded` when there are containers and all
//!   exited 0 for good; else `Running` when all run; else `Pending`.
//! - **Conditions**: `Initialized` and `PodScheduled` are `True`;
//!   `ContainersReady` and `Ready` are `True` exactly when every container
//!   runs and is ready. A condition's `lastTransitionTime` becomes the wall
//!   clock passed in only when its status changes; `startTime` is set once.
//!   Other conditions are kept as the pod has them.
//! - **Written only when changed**: [`PodSync::status`] returns a status
//!   only when it differs from the pod's.

use std::collections::BTreeMap;
use std::time::Duration;

use faultline_api::{Container, ContainerStatus, ContainerStatusState, Pod, PodStatus, Probe};
use tokio::time::Instant;

use crate::runtime::{ContainerId, ContainerInfo, ContainerState};

/// The wait after a container's first restart.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);

/// Longest CrashLoopBackOff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The readiness the probers last saw, by container id. An id is present
/// from the moment the kubelet starts probing the container until its
/// prober sees it gone.
pub type Readiness = BTreeMap<String, bool>;

/// Which container a [`Backoff`] is about: (pod uid, container name).
pub type BackoffKey = (String, String);

/// CrashLoopBackOff of one container of one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The container may not restart before this instant.
    pub until: Instant,
    /// The wait that ends at `until` (shown in the waiting message).
    pub wait: Duration,
    /// The wait that the next restart sets (doubled after it, at most
    /// [`MAX_BACKOFF`]).
    pub delay: Duration,
}

/// What to do with a pod as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodPlan {
    /// The pod is being deleted: remove these containers, in this order,
    /// then, when `delete` is true, delete the pod from the API for good.
    Delete {
        remove: Vec<ContainerId>,
        delete: bool,
    },
    /// The pod is terminal: stop these running containers, in this order.
    Stop(Vec<ContainerId>),
    /// Keep the pod running: go through its containers with a [`PodSync`].
    Run,
}

/// Decides what kind of pass `pod` gets. `containers` are the runtime's
/// containers of this pod, in the runtime's order; `finalized` says whether
/// this kubelet already deleted the pod for good.
pub fn plan_pod(pod: &Pod, containers: &[&ContainerInfo], finalized: bool) -> PodPlan {
    if pod.metadata.deletion_timestamp.is_some() {
        return PodPlan::Delete {
            remove: containers.iter().map(|c| c.id.clone()).collect(),
            delete: !finalized,
        };
    }
    if pod.is_terminal() {
        return PodPlan::Stop(
            containers
                .iter()
                .filter(|c| c.state.is_running())
                .map(|c| c.id.clone())
                .collect(),
        );
    }
    PodPlan::Run
}

/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// How long a container of `pod` has between SIGTERM and SIGKILL: its
/// `terminationGracePeriodSeconds` (30 s when unset, none when negative).
pub fn grace_period(pod: &Pod) -> Duration {
    match pod.spec.termination_grace_period_seconds {
        None => DEFAULT_GRACE,
        Some(s) => Duration::from_secs(s.max(0) as u64),
    }
}

/// The pod's `restartPolicy`, `Always` when empty.
pub fn restart_policy(pod: &Pod) -> &str {
    match pod.spec.restart_policy.as_str() {
        "" => "Always",
        p => p,
    }
}

/// Adopt a running container the kubelet is not probing yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopt {
    pub id: ContainerId,
    /// Its readiness until the prober says otherwise: what the API recorded.
    pub ready: bool,
    /// When the container counts as started for its prober.
    pub probe_from: Instant,
}

/// Start a container for the step's spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The restart count the new container carries (CRI's `attempt`).
    pub attempt: u32,
    /// The exited container it replaces, to remove first.
    pub replaces: Option<ContainerId>,
    /// When the spec has a readiness probe: record the new container not
    /// ready and probe it as started at this instant.
    pub probe_from: Option<Instant>,
}

/// What to do for one container spec of a running pod. `adopt` and `start`
/// never both hold; in the shell the adoption, then the start, happen in
/// this order.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStep<'a> {
    /// The container spec this step is about.
    pub spec: &'a Container,
    /// The backoff to remember for this container (set when a restart is
    /// due), before anything else happens.
    pub backoff: Option<(BackoffKey, Backoff)>,
    pub adopt: Option<Adopt>,
    pub start: Option<Start>,
}

impl<'a> ContainerStep<'a> {
    /// The probe a prober spawned for this step runs.
    pub fn probe(&self) -> Option<&'a Probe> {
        self.spec.readiness_probe.as_ref()
    }
}

/// What came of a step's [`Start`], as the shell reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// The step asked for no start.
    NotAsked,
    /// The runtime started the container under this id.
    Started(ContainerId),
    /// The runtime refused; the container waits, with Kubernetes' reason
    /// (see [`RuntimeError::waiting_reason`]) and the error as message.
    ///
    /// [`RuntimeError::waiting_reason`]: crate::runtime::RuntimeError::waiting_reason
    Failed {
        reason: &'static str,
        message: String,
    },
}

/// The step planned and not yet recorded.
#[derive(Debug)]
struct Pending<'c> {
    latest: Option<&'c ContainerInfo>,
    start: Option<u32>,
    /// The latest instance exited and will restart after this back-off.
    backing_off: Option<Duration>,
}

/// One pass over a running pod's containers, in spec order: for each, a
/// [`PodSync::next_step`] then a [`PodSync::record`]; at the end,
/// [`PodSync::status`].
#[derive(Debug)]
pub struct PodSync<'a, 'c> {
    pod: &'a Pod,
    containers: &'c [&'c ContainerInfo],
    policy: &'a str,
    now: Instant,
    /// Index of the next container spec to plan.
    next: usize,
    /// Invariant: `Some` exactly between a `next_step` and its `record`.
    pending: Option<Pending<'c>>,
    statuses: Vec<ContainerStatus>,
    all_running: bool,
    all_ready: bool,
    /// The wall clock at `now` (ms since the epoch), to date a terminated
    /// instance's start and end; `None` leaves them out.
    wall_ms: Option<u64>,
    /// Containers that exited 0 and will not restart.
    exited_ok: usize,
    /// A container exited non-zero and will not restart.
    failed: bool,
}

impl<'a, 'c> PodSync<'a, 'c> {
    /// A pass over `pod` (neither being deleted nor terminal: see
    /// [`plan_pod`]), whose containers in the runtime are `containers`,
    /// at `now` on tokio's clock.
    pub fn new(pod: &'a Pod, containers: &'c [&'c ContainerInfo], now: Instant) -> PodSync<'a, 'c> {
        assert!(
            pod.metadata.deletion_timestamp.is_none() && !pod.is_terminal(),
            "only pods that keep running are synced container by container"
        );
        PodSync {
            pod,
            containers,
            policy: restart_policy(pod),
            now,
            next: 0,
            pending: None,
            statuses: Vec::new(),
            all_running: true,
            all_ready: true,
            wall_ms: None,
            exited_ok: 0,
            failed: false,
        }
    }

    /// Dates terminated instances (`startedAt`, `finishedAt`) with the
    /// wall clock, `wall_ms` at this pass' `now`.
    pub fn with_wall_clock(mut self, wall_ms: u64) -> Self {
        self.wall_ms = Some(wall_ms);
        self
    }

    /// The end of instance `c` (exited with `code`): as the pod's status
    /// recorded it, when it did (so the times, converted once, never
    /// change), else dated now from the instance's clock readings.
    fn ended(&self, c: &ContainerInfo, code: i32) -> ContainerStatusState {
        let recorded = self.pod.status.container_statuses.iter().find_map(|s| {
            [&s.state, &s.last_state].into_iter().find(|st| {
                st.terminated
                    .as_ref()
                    .is_some_and(|t| t.container_id == c.id.as_str())
            })
        });
        if let Some(st) = recorded {
            return st.clone();
        }
        let mut ended = ContainerStatusState::terminated(c.id.as_str(), code);
        if let Some(t) = ended.terminated.as_mut() {
            if let Some(reason) = &c.exit_reason {
                t.reason = reason.clone();
            }
            t.message = c.exit_message.clone();
        }
        if let (Some(wall), Some(t), ContainerState::Exited { at, .. }) =
            (self.wall_ms, ended.terminated.as_mut(), c.state)
        {
            let wall_at = |i: Instant| {
                let ago = self.now.saturating_duration_since(i).as_millis() as u64;
                faultline_api::time::rfc3339(wall.saturating_sub(ago))
            };
            t.started_at = Some(wall_at(c.started_at));
            t.finished_at = Some(wall_at(at));
        }
        ended
    }

    /// Plans the next container spec, or `None` once all are done.
    /// `ready` and `backoff` are the kubelet's tables as they are now; the
    /// step's `backoff` must be stored before the next call.
    pub fn next_step(
        &mut self,
        ready: &Readiness,
        backoff: &BTreeMap<BackoffKey, Backoff>,
    ) -> Option<ContainerStep<'a>> {
        assert!(
            self.pending.is_none(),
            "the previous step's outcome is recorded first"
        );
        let pod = self.pod;
        let spec = pod.spec.containers.get(self.next)?;
        self.next += 1;
        let now = self.now;
        let latest = self
            .containers
            .iter()
            .copied()
            .filter(|c| c.container_name == spec.name)
            .max_by_key(|c| c.attempt);
        let recorded = pod
            .status
            .container_statuses
            .iter()
            .find(|s| s.name == spec.name)
            .map(|s| s.restart_count.max(0) as u32);
        let key = (pod.metadata.uid.clone(), spec.name.clone());
        let mut remember = None;
        let mut backing_off = None;
        let attempt = match latest {
            None => Some(recorded.map(|n| n + 1).unwrap_or(0)),
            Some(c) if c.state.is_running() => None,
            Some(c) => {
                let code = c.state.exit_code().unwrap_or(1);
                let again = match self.policy {
                    "Always" => true,
                    "OnFailure" => code != 0,
                    _ => false,
                };
                if !again {
                    if code == 0 {
                        self.exited_ok += 1;
                    } else {
                        self.failed = true;
                    }
                    None
                } else {
                    let b = backoff.get(&key).copied().unwrap_or(Backoff {
                        until: now,
                        wait: Duration::ZERO,
                        delay: INITIAL_BACKOFF,
                    });
                    if now >= b.until {
                        let next = Backoff {
                            until: now + b.delay,
                            wait: b.delay,
                            delay: (b.delay * 2).min(MAX_BACKOFF),
                        };
                        remember = Some((key, next));
                        Some(c.attempt + 1)
                    } else {
                        backing_off = Some(b.wait);
                        None
                    }
                }
            }
        };
        let adopt = match (attempt, latest, &spec.readiness_probe) {
            (None, Some(c), Some(p))
                if c.state.is_running() && !ready.contains_key(c.id.as_str()) =>
            {
                let was_ready = pod
                    .status
                    .container_statuses
                    .iter()
                    .any(|s| s.name == spec.name && s.container_id == c.id.as_str() && s.ready);
                let delay = Duration::from_secs(p.initial_delay_seconds.max(0) as u64);
                Some(Adopt {
                    id: c.id.clone(),
                    ready: was_ready,
                    probe_from: now.checked_sub(delay).unwrap_or(now),
                })
            }
            _ => None,
        };
        let start = attempt.map(|attempt| Start {
            attempt,
            replaces: latest.map(|c| c.id.clone()),
            probe_from: spec.readiness_probe.as_ref().map(|_| now),
        });
        self.pending = Some(Pending {
            latest,
            start: attempt,
            backing_off,
        });
        Some(ContainerStep {
            spec,
            backoff: remember,
            adopt,
            start,
        })
    }

    /// Records what came of the last step: `outcome` of its start, and
    /// `ready`, the readiness table as it is now (after the step's
    /// adoption and start), which the container's status reports.
    pub fn record(&mut self, outcome: StartOutcome, ready: &Readiness) {
        let pending = self.pending.take().expect("record follows next_step, once");
        let pod = self.pod;
        let spec = &pod.spec.containers[self.next - 1];
        // The end of the latest instance, when it has ended.
        let ended = pending
            .latest
            .and_then(|c| Some(self.ended(c, c.state.exit_code()?)));
        let (id, state, last_state, attempt) = match (pending.start, outcome) {
            (None, StartOutcome::NotAsked) => match pending.latest {
                Some(c) if c.state.is_running() => {
                    // Still the same instance: its last state stays what
                    // it was when it started.
                    let last = pod
                        .status
                        .container_statuses
                        .iter()
                        .find(|s| s.name == spec.name && s.container_id == c.id.as_str())
                        .map(|s| s.last_state.clone())
                        .unwrap_or_default();
                    (
                        c.id.to_string(),
                        ContainerStatusState::running(),
                        last,
                        c.attempt,
                    )
                }
                Some(c) => {
                    let ended = ended.unwrap_or_default();
                    let state = match pending.backing_off {
                        Some(wait) => ContainerStatusState::waiting_because(
                            "CrashLoopBackOff",
                            format!(
                                "back-off {} restarting failed container={} pod={}_{}({})",
                                humantime::format_duration(wait),
                                spec.name,
                                pod.metadata.name,
                                pod.metadata.namespace,
                                pod.metadata.uid
                            ),
                        ),
                        None => ended.clone(),
                    };
                    let last = if pending.backing_off.is_some() {
                        ended
                    } else {
                        Default::default()
                    };
                    (c.id.to_string(), state, last, c.attempt)
                }
                None => Default::default(),
            },
            (Some(attempt), StartOutcome::Started(id)) => (
                id.as_str().to_string(),
                ContainerStatusState::running(),
                ended.unwrap_or_default(),
                attempt,
            ),
            // Not a restart: the count stays that of the last instance.
            (Some(_), StartOutcome::Failed { reason, message }) => (
                String::new(),
                ContainerStatusState::waiting_because(reason, message),
                ended.unwrap_or_default(),
                pending.latest.map_or(0, |c| c.attempt),
            ),
            (planned, got) => panic!("planned start {planned:?}, but the outcome is {got:?}"),
        };
        let running = state.running.is_some();
        let ready =
            running && (spec.readiness_probe.is_none() || ready.get(&id).copied().unwrap_or(false));
        self.all_running &= running;
        self.all_ready &= ready;
        self.statuses.push(ContainerStatus {
            name: spec.name.clone(),
            ready,
            restart_count: attempt as i32,
            image: spec.image.clone(),
            container_id: id,
            state,
            last_state,
        });
    }

    /// The pod's status after the pass, or `None` when it equals the
    /// pod's. `host_ip` is the node's address, `pod_ip` the pod's, and
    /// `wall_now` the wall clock (RFC 3339) for `startTime` and condition
    /// transitions.
    pub fn status(self, host_ip: &str, pod_ip: &str, wall_now: &str) -> Option<PodStatus> {
        assert!(
            self.pending.is_none() && self.next == self.pod.spec.containers.len(),
            "every container spec was planned and recorded"
        );
        let pod = self.pod;
        let n = pod.spec.containers.len();
        let phase = if self.failed && self.policy == "Never" {
            "Failed"
        } else if self.exited_ok == n && n > 0 {
            "Succeeded"
        } else if self.all_running {
            "Running"
        } else {
            "Pending"
        };
        // A running container's start time: as reported before while it is
        // the same container, else now (when this kubelet first saw it run).
        let mut statuses = self.statuses;
        for c in &mut statuses {
            let Some(running) = &mut c.state.running else {
                continue;
            };
            let before = pod
                .status
                .container_statuses
                .iter()
                .find(|p| p.name == c.name && p.container_id == c.container_id)
                .and_then(|p| p.state.running.as_ref())
                .and_then(|r| r.started_at.clone());
            running.started_at = before.or_else(|| Some(wall_now.to_string()));
        }
        // The new status is built on a pod that carries nothing else, so a
        // pass that changes nothing copies no spec or metadata.
        let mut next = Pod {
            status: PodStatus {
                phase: phase.into(),
                conditions: pod.status.conditions.clone(),
                host_ip: host_ip.to_string(),
                pod_ip: pod_ip.to_string(),
                pod_ips: match pod_ip {
                    "" => Vec::new(),
                    ip => vec![faultline_api::PodIp { ip: ip.to_string() }],
                },
                start_time: pod
                    .status
                    .start_time
                    .clone()
                    .or_else(|| Some(wall_now.to_string())),
                container_statuses: statuses,
                reason: String::new(),
                message: String::new(),
            },
            ..Default::default()
        };
        let ready = if self.all_ready && self.all_running {
            "True"
        } else {
            "False"
        };
        for kind in ["Initialized", "PodScheduled"] {
            next.set_condition(kind, "True", "", "");
        }
        for kind in ["ContainersReady", "Ready"] {
            let changed = next.condition(kind) != Some(ready);
            next.set_condition(kind, ready, "", "");
            if changed {
                if let Some(c) = next.status.conditions.iter_mut().find(|c| c.kind == kind) {
                    c.last_transition_time = Some(wall_now.to_string());
                }
            }
        }
        (next.status != pod.status).then_some(next.status)
    }
}

#[cfg(test)]
mod tests {
    use faultline_api::{ContainerStatus, ObjectMeta, PodCondition};

    use super::*;

    const W1: &str = "2024-01-01T00:00:01Z";
    const W2: &str = "2024-01-01T00:00:02Z";
    const W3: &str = "2024-01-01T00:00:03Z";

    /// A base instant far enough from the clock's origin to subtract
    /// initial delays from.
    fn t0() -> Instant {
        Instant::now() + Duration::from_secs(3_600)
    }

    fn spec(name: &str, probed: bool) -> Container {
        Container {
            name: name.into(),
            image: "echo".into(),
            readiness_probe: probed.then(|| Probe {
                initial_delay_seconds: 5,
                period_seconds: 1,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(policy: &str, containers: Vec<Container>) -> Pod {
        let mut p = Pod {
            metadata: ObjectMeta {
                uid: "uid-p".into(),
                ..ObjectMeta::named("default", "p")
            },
            ..Default::default()
        };
        p.spec.node_name = "n1".into();
        p.spec.restart_policy = policy.into();
        p.spec.containers = containers;
        p
    }

    fn container(name: &str, attempt: u32, state: ContainerState) -> ContainerInfo {
        ContainerInfo {
            id: ContainerId::new(format!("{name}-{attempt}")),
            pod_uid: "uid-p".into(),
            pod_namespace: "default".into(),
            pod_name: "p".into(),
            container_name: name.into(),
            image: "echo".into(),
            pod_ip: "10.1.0.1".into(),
            state,
            started_at: t0(),
            attempt,
            exit_reason: None,
            exit_message: String::new(),
        }
    }

    fn running(name: &str, attempt: u32) -> ContainerInfo {
        container(name, attempt, ContainerState::Running)
    }

    fn exited(name: &str, attempt: u32, code: i32) -> ContainerInfo {
        container(name, attempt, ContainerState::Exited { code, at: t0() })
    }

    fn key(name: &str) -> BackoffKey {
        ("uid-p".into(), name.into())
    }

    /// The kubelet's tables, as the shell keeps them.
    #[derive(Default)]
    struct Tables {
        ready: Readiness,
        backoff: BTreeMap<BackoffKey, Backoff>,
    }

    /// Drives a pass the way the shell does: every start succeeds as
    /// `new-<name>`, and the tables change as the shell changes them.
    fn pass<'a>(
        pod: &'a Pod,
        containers: &[&ContainerInfo],
        now: Instant,
        t: &mut Tables,
        wall: &str,
    ) -> (Vec<ContainerStep<'a>>, Option<PodStatus>) {
        let mut sync = PodSync::new(pod, containers, now);
        let mut steps = Vec::new();
        while let Some(step) = sync.next_step(&t.ready, &t.backoff) {
            if let Some((k, b)) = step.backoff.clone() {
                t.backoff.insert(k, b);
            }
            if let Some(a) = &step.adopt {
                t.ready.insert(a.id.as_str().into(), a.ready);
            }
            let outcome = match &step.start {
                None => StartOutcome::NotAsked,
                Some(s) => {
                    let id = ContainerId::new(format!("new-{}", step.spec.name));
                    if s.probe_from.is_some() {
                        t.ready.insert(id.as_str().into(), false);
                    }
                    StartOutcome::Started(id)
                }
            };
            sync.record(outcome, &t.ready);
            steps.push(step);
        }
        (steps, sync.status("192.0.2.1", "10.1.0.1", wall))
    }

    fn condition<'s>(status: &'s PodStatus, kind: &str) -> &'s PodCondition {
        status
            .conditions
            .iter()
            .find(|c| c.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} in {status:?}"))
    }

    #[test]
    fn a_deleting_pod_loses_its_containers_and_is_deleted_once() {
        let mut p = pod("Always", vec![spec("a", false), spec("b", false)]);
        p.metadata.deletion_timestamp = Some(W1.into());
        let (a, b) = (running("a", 0), exited("b", 2, 1));
        let ids = vec![a.id.clone(), b.id.clone()];
        assert_eq!(
            plan_pod(&p, &[&a, &b], false),
            PodPlan::Delete {
                remove: ids.clone(),
                delete: true
            }
        );
        // Finalised: the containers are still removed, the pod not deleted again.
        assert_eq!(
            plan_pod(&p, &[&a, &b], true),
            PodPlan::Delete {
                remove: ids,
                delete: false
            }
        );
        // Deletion wins over a terminal phase.
        p.status.phase = "Succeeded".into();
        assert!(matches!(
            plan_pod(&p, &[], false),
            PodPlan::Delete { delete: true, .. }
        ));
    }

    #[test]
    fn a_terminal_pod_has_its_running_containers_stopped() {
        for phase in ["Succeeded", "Failed"] {
            let mut p = pod("Never", vec![spec("a", false), spec("b", false)]);
            p.status.phase = phase.into();
            let (a, b) = (exited("a", 0, 0), running("b", 0));
            assert_eq!(
                plan_pod(&p, &[&a, &b], false),
                PodPlan::Stop(vec![b.id.clone()])
            );
        }
        let p = pod("Never", vec![spec("a", false)]);
        assert_eq!(plan_pod(&p, &[], false), PodPlan::Run);
    }

    #[test]
    fn a_new_pod_starts_every_container_and_runs() {
        let p = pod("", vec![spec("a", false), spec("b", false)]);
        let now = t0();
        let (steps, status) = pass(&p, &[], now, &mut Tables::default(), W1);
        let starts: Vec<_> = steps.iter().map(|s| s.start.clone()).collect();
        let fresh = Start {
            attempt: 0,
            replaces: None,
            probe_from: None,
        };
        assert_eq!(starts, vec![Some(fresh.clone()), Some(fresh)]);
        assert_eq!(steps[1].spec.name, "b", "in spec order");
        let st = status.expect("a new pod gets a status");
        assert_eq!(st.phase, "Running");
        assert_eq!(
            (st.host_ip.as_str(), st.pod_ip.as_str()),
            ("192.0.2.1", "10.1.0.1")
        );
        assert_eq!(st.start_time.as_deref(), Some(W1));
        let ids: Vec<_> = st
            .container_statuses
            .iter()
            .map(|c| c.container_id.as_str())
            .collect();
        assert_eq!(ids, ["new-a", "new-b"]);
        assert!(st
            .container_statuses
            .iter()
            .all(|c| c.ready && c.state.name() == "running"));
        for kind in ["Initialized", "PodScheduled", "ContainersReady", "Ready"] {
            assert_eq!(condition(&st, kind).status, "True", "{kind}");
        }
    }

    #[test]
    fn the_restart_count_continues_where_the_api_left_off() {
        let mut p = pod("Always", vec![spec("a", false)]);
        p.status.container_statuses.push(ContainerStatus {
            name: "a".into(),
            restart_count: 3,
            ..Default::default()
        });
        let (steps, status) = pass(&p, &[], t0(), &mut Tables::default(), W1);
        assert_eq!(steps[0].start.as_ref().map(|s| s.attempt), Some(4));
        assert_eq!(status.unwrap().container_statuses[0].restart_count, 4);
    }

    #[test]
    fn the_latest_attempt_is_the_current_container() {
        let p = pod("Always", vec![spec("a", false)]);
        let (old, cur) = (exited("a", 0, 1), running("a", 1));
        let (steps, status) = pass(&p, &[&cur, &old], t0(), &mut Tables::default(), W1);
        assert_eq!(
            (steps[0].start.clone(), steps[0].adopt.clone()),
            (None, None)
        );
        let c = &status.unwrap().container_statuses[0];
        assert_eq!((c.container_id.as_str(), c.restart_count), ("a-1", 1));
    }

    #[test]
    fn always_restarts_every_exit() {
        for code in [0, 1] {
            let p = pod("Always", vec![spec("a", false)]);
            let old = exited("a", 2, code);
            let (steps, status) = pass(&p, &[&old], t0(), &mut Tables::default(), W1);
            assert_eq!(
                steps[0].start,
                Some(Start {
                    attempt: 3,
                    replaces: Some(old.id.clone()),
                    probe_from: None
                })
            );
            assert_eq!(status.unwrap().phase, "Running");
        }
    }

    #[test]
    fn a_terminated_instance_is_dated_once() {
        // `b` still runs, so the pod is not terminal and keeps syncing.
        let p = pod("Never", vec![spec("a", false), spec("b", false)]);
        let runs = running("b", 0);
        let mut done = exited("a", 0, 0);
        done.state = ContainerState::Exited {
            code: 0,
            at: t0() + Duration::from_secs(5),
        };
        let wall = 1_800_000_000_000;
        let status = |p: &Pod, now: Instant, wall: u64| {
            let containers = [&done, &runs];
            let mut sync = PodSync::new(p, &containers, now).with_wall_clock(wall);
            while sync
                .next_step(&Readiness::new(), &BTreeMap::new())
                .is_some()
            {
                sync.record(StartOutcome::NotAsked, &Readiness::new());
            }
            sync.status("192.0.2.1", "10.1.0.1", W1)
        };
        let st = status(&p, t0() + Duration::from_secs(10), wall).unwrap();
        let t = st.container_statuses[0].state.terminated.clone().unwrap();
        let at = |ms| Some(faultline_api::time::rfc3339(ms));
        assert_eq!(t.started_at, at(wall - 10_000));
        assert_eq!(t.finished_at, at(wall - 5_000));
        // A later pass, its clocks a little apart: nothing to write.
        let mut recorded = p.clone();
        recorded.status = st;
        assert_eq!(
            status(&recorded, t0() + Duration::from_secs(20), wall + 10_700),
            None
        );
    }

    #[test]
    fn on_failure_restarts_only_failures() {
        let p = pod("OnFailure", vec![spec("a", false)]);
        let failed = exited("a", 0, 2);
        let (steps, _) = pass(&p, &[&failed], t0(), &mut Tables::default(), W1);
        assert_eq!(steps[0].start.as_ref().map(|s| s.attempt), Some(1));
        let done = exited("a", 0, 0);
        let (steps, status) = pass(&p, &[&done], t0(), &mut Tables::default(), W1);
        assert_eq!(steps[0].start, None);
        let st = status.unwrap();
        assert_eq!(st.phase, "Succeeded");
        let c = &st.container_statuses[0];
        assert_eq!((c.state.name(), c.ready), ("terminated", false));
        let t = c.state.terminated.as_ref().unwrap();
        assert_eq!((t.exit_code, t.reason.as_str()), (0, "Completed"));
        assert!(c.last_state.is_unknown(), "it never restarted");
        assert_eq!(condition(&st, "Ready").status, "False");
    }

    #[test]
    fn never_restarts_and_fails_or_succeeds() {
        let p = pod("Never", vec![spec("a", false), spec("b", false)]);
        let phase = |a: &ContainerInfo, b: &ContainerInfo| {
            let (steps, status) = pass(&p, &[a, b], t0(), &mut Tables::default(), W1);
            assert!(steps
                .iter()
                .all(|s| s.start.is_none() && s.backoff.is_none()));
            status.unwrap().phase
        };
        assert_eq!(phase(&exited("a", 0, 0), &exited("b", 0, 0)), "Succeeded");
        assert_eq!(phase(&exited("a", 0, 0), &exited("b", 0, 1)), "Failed");
        assert_eq!(phase(&running("a", 0), &exited("b", 0, 1)), "Failed");
        // One done, one still running: neither all running nor all done.
        assert_eq!(phase(&exited("a", 0, 0), &running("b", 0)), "Pending");
        assert_eq!(phase(&running("a", 0), &running("b", 0)), "Running");
    }

    #[test]
    fn crash_loop_backoff_doubles_up_to_five_minutes() {
        let p = pod("Always", vec![spec("a", false)]);
        let mut t = Tables::default();
        let mut now = t0();
        let mut attempt = 0;
        for wait in [10, 20, 40, 80, 160, 300, 300] {
            let wait = Duration::from_secs(wait);
            let crashed = exited("a", attempt, 1);
            let (steps, _) = pass(&p, &[&crashed], now, &mut t, W1);
            assert_eq!(
                steps[0].start.as_ref().map(|s| s.attempt),
                Some(attempt + 1)
            );
            assert_eq!(
                steps[0].backoff,
                Some((
                    key("a"),
                    Backoff {
                        until: now + wait,
                        wait,
                        delay: (wait * 2).min(MAX_BACKOFF)
                    }
                ))
            );
            attempt += 1;
            // The new one crashes at once: no restart until the wait is over.
            let crashed = exited("a", attempt, 1);
            let early = now + wait - Duration::from_millis(1);
            let (steps, status) = pass(&p, &[&crashed], early, &mut t, W1);
            assert_eq!(
                (steps[0].start.clone(), steps[0].backoff.clone()),
                (None, None)
            );
            let st = status.unwrap();
            assert_eq!(st.phase, "Pending");
            // kubectl shows CrashLoopBackOff, and the crash as last state.
            let c = &st.container_statuses[0];
            let w = c.state.waiting.as_ref().expect("waiting");
            assert_eq!(w.reason, "CrashLoopBackOff");
            assert_eq!(
                w.message,
                format!(
                    "back-off {} restarting failed container=a pod=p_default(uid-p)",
                    humantime::format_duration(wait)
                )
            );
            let t = c.last_state.terminated.as_ref().expect("last state");
            assert_eq!(
                (t.exit_code, t.container_id.as_str()),
                (1, crashed.id.as_str())
            );
            now += wait;
        }
    }

    #[test]
    fn adoption_keeps_the_readiness_the_api_recorded() {
        let mut p = pod("Always", vec![spec("a", true)]);
        let c = running("a", 0);
        let recorded = |id: &str, ready: bool| ContainerStatus {
            name: "a".into(),
            container_id: id.into(),
            ready,
            ..Default::default()
        };
        p.status.container_statuses = vec![recorded("a-0", true)];
        let now = t0();
        let mut t = Tables::default();
        let (steps, status) = pass(&p, &[&c], now, &mut t, W1);
        assert_eq!(
            steps[0].adopt,
            Some(Adopt {
                id: c.id.clone(),
                ready: true,
                probe_from: now - Duration::from_secs(5)
            })
        );
        assert_eq!(steps[0].start, None);
        assert_eq!(t.ready.get("a-0"), Some(&true));
        assert!(status.unwrap().container_statuses[0].ready);
        // Known now: not adopted again.
        let (steps, _) = pass(&p, &[&c], now, &mut t, W1);
        assert_eq!(steps[0].adopt, None);
        // What the API recorded about another container does not count.
        p.status.container_statuses = vec![recorded("a-old", true)];
        let (steps, _) = pass(&p, &[&c], now, &mut Tables::default(), W1);
        assert_eq!(steps[0].adopt.as_ref().map(|a| a.ready), Some(false));
        // Unprobed containers are never adopted; exited ones neither.
        let q = pod("Always", vec![spec("a", false)]);
        let (steps, _) = pass(&q, &[&c], now, &mut Tables::default(), W1);
        assert_eq!(steps[0].adopt, None);
        let gone = exited("a", 0, 0);
        let r = pod("Never", vec![spec("a", true)]);
        let (steps, _) = pass(&r, &[&gone], now, &mut Tables::default(), W1);
        assert_eq!(steps[0].adopt, None);
    }

    #[test]
    fn a_started_probed_container_is_not_ready_until_probed() {
        let p = pod("Always", vec![spec("a", true)]);
        let now = t0();
        let mut t = Tables::default();
        let (steps, status) = pass(&p, &[], now, &mut t, W1);
        assert_eq!(
            steps[0].start.as_ref().and_then(|s| s.probe_from),
            Some(now)
        );
        let st = status.unwrap();
        assert_eq!(st.phase, "Running");
        assert!(!st.container_statuses[0].ready);
        assert_eq!(condition(&st, "ContainersReady").status, "False");
        assert_eq!(t.ready.get("new-a"), Some(&false));
    }

    #[test]
    fn a_failed_start_leaves_the_container_waiting() {
        let p = pod("Always", vec![spec("a", false)]);
        let old = exited("a", 4, 1);
        let containers = [&old];
        let mut sync = PodSync::new(&p, &containers, t0());
        let step = sync.next_step(&Readiness::new(), &BTreeMap::new()).unwrap();
        assert_eq!(step.start.map(|s| s.attempt), Some(5));
        sync.record(
            StartOutcome::Failed {
                reason: "ErrImageNeverPull",
                message: "no such image".into(),
            },
            &Readiness::new(),
        );
        assert!(sync
            .next_step(&Readiness::new(), &BTreeMap::new())
            .is_none());
        let st = sync.status("192.0.2.1", "10.1.0.1", W1).unwrap();
        assert_eq!(st.phase, "Pending");
        let c = &st.container_statuses[0];
        assert_eq!(
            (
                c.container_id.as_str(),
                c.state.name(),
                c.restart_count,
                c.ready
            ),
            ("", "waiting", 4, false)
        );
        let w = c.state.waiting.as_ref().unwrap();
        assert_eq!(
            (w.reason.as_str(), w.message.as_str()),
            ("ErrImageNeverPull", "no such image")
        );
        let t = c.last_state.terminated.as_ref().unwrap();
        assert_eq!((t.exit_code, t.reason.as_str()), (1, "Error"));
    }

    #[test]
    fn transition_times_change_only_on_a_change() {
        let mut p = pod("Always", vec![spec("a", true)]);
        p.status.conditions.push(PodCondition {
            kind: "PodScheduled".into(),
            status: "True".into(),
            last_transition_time: Some("scheduled".into()),
            ..Default::default()
        });
        let c = running("a", 0);
        let mut t = Tables::default();
        t.ready.insert("a-0".into(), false);
        let (_, status) = pass(&p, &[&c], t0(), &mut t, W1);
        p.status = status.unwrap();
        for kind in ["ContainersReady", "Ready"] {
            let c = condition(&p.status, kind);
            assert_eq!(
                (c.status.as_str(), c.last_transition_time.as_deref()),
                ("False", Some(W1))
            );
        }
        assert_eq!(
            condition(&p.status, "Initialized").last_transition_time,
            None
        );
        let scheduled = condition(&p.status, "PodScheduled");
        assert_eq!(scheduled.last_transition_time.as_deref(), Some("scheduled"));
        // Nothing changed: nothing to write, whatever the time.
        assert_eq!(pass(&p, &[&c], t0(), &mut t, W2).1, None);
        // The probe passes: both conditions flip, at the new time.
        t.ready.insert("a-0".into(), true);
        let (_, status) = pass(&p, &[&c], t0(), &mut t, W3);
        p.status = status.unwrap();
        for kind in ["ContainersReady", "Ready"] {
            let c = condition(&p.status, kind);
            assert_eq!(
                (c.status.as_str(), c.last_transition_time.as_deref()),
                ("True", Some(W3))
            );
        }
        assert_eq!(p.status.start_time.as_deref(), Some(W1), "set once");
        assert_eq!(pass(&p, &[&c], t0(), &mut t, W3).1, None);
    }

    #[test]
    fn each_step_sees_the_tables_as_they_are_then() {
        // Two probed containers the kubelet already knows; between the
        // steps a prober marks `b` ready and forgets `a`.
        let p = pod("Always", vec![spec("a", true), spec("b", true)]);
        let (a, b) = (running("a", 0), running("b", 0));
        let containers = [&a, &b];
        let mut ready = Readiness::from([("a-0".into(), true), ("b-0".into(), false)]);
        let mut sync = PodSync::new(&p, &containers, t0());
        let step = sync.next_step(&ready, &BTreeMap::new()).unwrap();
        assert_eq!(step.adopt, None);
        sync.record(StartOutcome::NotAsked, &ready);
        ready.insert("b-0".into(), true);
        ready.remove("a-0");
        let step = sync.next_step(&ready, &BTreeMap::new()).unwrap();
        assert_eq!(step.adopt, None);
        sync.record(StartOutcome::NotAsked, &ready);
        let st = sync.status("192.0.2.1", "10.1.0.1", W1).unwrap();
        let readiness: Vec<bool> = st.container_statuses.iter().map(|c| c.ready).collect();
        assert_eq!(
            readiness,
            [true, true],
            "a as recorded in its step, b as in its own"
        );
    }

    #[test]
    #[should_panic(expected = "planned start None")]
    fn an_outcome_for_a_start_not_asked_for_is_a_bug() {
        let p = pod("Always", vec![spec("a", false)]);
        let c = running("a", 0);
        let containers = [&c];
        let mut sync = PodSync::new(&p, &containers, t0());
        sync.next_step(&Readiness::new(), &BTreeMap::new()).unwrap();
        sync.record(
            StartOutcome::Started(ContainerId::new("x")),
            &Readiness::new(),
        );
    }
}
