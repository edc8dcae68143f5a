//! The container runtime seam the kubelet drives, and the simulated runtime.
//!
//! [`ContainerRuntime`] is a small CRI: start a container from a
//! [`ContainerSpec`], stop it, list what exists, remove it. The kubelet
//! never asks the runtime to remember pods; it compares
//! [`ContainerRuntime::list`] against the pods bound to its node.
//!
//! [`SimRuntime`] runs each container as a task spawned with
//! [`Env::spawn`] on the node's host, so a host crash kills every container.
//! Its table lives in memory: after a crash it is gone with the process,
//! as a real node loses its containers when it loses power.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use faultline_api::{Container, ContainerPort, Pod, ResourceRequirements};
use faultline_env::Env;
use rand::RngCore;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::apps::{self, App};
use crate::logs::{LogBuffer, DEFAULT_LOG_CAPACITY};
use crate::volumes::{Mount, VolumeFiles};

/// The exit code a container reports when the runtime stopped it (128 +
/// SIGKILL: [`SimRuntime`] stops without a grace period).
pub const EXIT_CODE_KILLED: i32 = 137;

/// Identifies one container (one start of one container of one pod).
///
/// Ids are unique within one runtime incarnation and, with overwhelming
/// likelihood, across restarts of the node: they combine a prefix of the pod
/// uid, a boot tag drawn from the host's seeded random stream and a counter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerId(String);

impl ContainerId {
    /// Wraps an id read back from somewhere else (a pod's status).
    pub fn new(id: impl Into<String>) -> ContainerId {
        ContainerId(id.into())
    }

    /// The id as text (what a pod status' `containerID` would carry).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything the runtime needs to start one container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSpec {
    pub pod_uid: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub container_name: String,
    /// Selects the application (see [`App::parse`]), e.g. `echo:v2`.
    pub image: String,
    /// The program and its arguments (`$(VAR)` already expanded); the
    /// built-in runtime's apps take only `args`.
    pub command: Vec<String>,
    pub args: Vec<String>,
    /// The environment, in definition order (see [`crate::envvars`]).
    pub env: Vec<(String, String)>,
    pub working_dir: String,
    /// The pod's IP: servers listen on `pod_ip:containerPort`.
    pub pod_ip: String,
    pub ports: Vec<ContainerPort>,
    /// Requests and limits (real runtimes enforce the limits).
    pub resources: ResourceRequirements,
    /// The pod's volumes this container sees (each written first with
    /// [`ContainerRuntime::write_volume`]).
    pub mounts: Vec<Mount>,
    /// How many times the kubelet started this container of this pod
    /// before (its restart count); reported back unchanged, as CRI's
    /// `metadata.attempt`.
    pub attempt: u32,
}

impl ContainerSpec {
    /// The spec for `container` of `pod`, listening on `pod_ip`.
    pub fn from_pod(pod: &Pod, container: &Container, pod_ip: &str, attempt: u32) -> ContainerSpec {
        ContainerSpec {
            pod_uid: pod.metadata.uid.clone(),
            pod_namespace: pod.metadata.namespace.clone(),
            pod_name: pod.metadata.name.clone(),
            container_name: container.name.clone(),
            image: container.image.clone(),
            command: container.command.clone(),
            args: container.args.clone(),
            env: Vec::new(),
            working_dir: container.working_dir.clone(),
            pod_ip: pod_ip.to_string(),
            ports: container.ports.clone(),
            resources: container.resources.clone(),
            mounts: crate::volumes::mounts(pod, container),
            attempt,
        }
    }
}

impl ContainerSpec {
    /// Sets the environment and expands `$(VAR)` in the command and
    /// arguments with it, as Kubernetes does.
    pub fn with_env(mut self, env: Vec<(String, String)>) -> ContainerSpec {
        let vars: BTreeMap<String, String> = env.iter().cloned().collect();
        for part in self.command.iter_mut().chain(self.args.iter_mut()) {
            *part = crate::envvars::expand(part, &vars);
        }
        self.env = env;
        self
    }
}

/// Whether a container still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Running,
    /// The application ended with `code` at `at` (tokio's clock), or the
    /// runtime stopped it ([`EXIT_CODE_KILLED`]).
    Exited {
        code: i32,
        at: Instant,
    },
}

impl ContainerState {
    /// True while the application runs.
    pub fn is_running(&self) -> bool {
        matches!(self, ContainerState::Running)
    }

    /// The exit code, once exited.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            ContainerState::Running => None,
            ContainerState::Exited { code, .. } => Some(*code),
        }
    }

    /// Kubernetes' reason for a terminated container: `Completed` for exit
    /// code 0, `Error` otherwise; `None` while running.
    pub fn reason(&self) -> Option<&'static str> {
        match self.exit_code()? {
            0 => Some("Completed"),
            _ => Some("Error"),
        }
    }
}

/// What [`ContainerRuntime::list`] reports about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: ContainerId,
    pub pod_uid: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub container_name: String,
    pub image: String,
    pub pod_ip: String,
    pub state: ContainerState,
    /// When the container started (tokio's clock).
    pub started_at: Instant,
    /// The spec's [`ContainerSpec::attempt`].
    pub attempt: u32,
    /// Why it ended, when the runtime knows better than its exit code
    /// (`OOMKilled`, `StartError`); `None` gives Kubernetes' `Completed`
    /// or `Error`.
    pub exit_reason: Option<String>,
    /// What the runtime has to say about the end (the `exec` error of a
    /// command that could not start); empty when nothing.
    pub exit_message: String,
}

/// Why the runtime refused a request. The kubelet sees these and reports
/// them on the pod (Kubernetes' `CreateContainerError`-style waiting
/// reasons); none is a bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The image names no built-in application. Permanent until the pod
    /// spec changes.
    #[error("unknown image {image:?}: this runtime runs only {known}")]
    UnknownImage { image: String, known: String },
    /// An argument the application does not understand or cannot parse.
    /// Permanent until the pod spec changes.
    #[error("image {image:?} cannot take argument {arg:?}: {reason}")]
    BadArgument {
        image: String,
        arg: String,
        reason: String,
    },
    /// A container port outside 1..=65535. Permanent until the spec changes.
    #[error("container port {port} is outside 1..=65535")]
    BadPort { port: i32 },
    /// The application serves on the pod IP, but the spec carries none.
    /// The kubelet must assign the pod an IP first.
    #[error("image {image:?} listens on the pod IP, but the container spec has none")]
    NoPodIp { image: String },
    /// Listening failed, typically because the address is in use (another
    /// container of the pod, or one not yet stopped). Retry after a backoff.
    #[error("cannot listen on {addr}: {message}")]
    Listen {
        addr: String,
        kind: io::ErrorKind,
        message: String,
    },
    /// No container with this id (removed, or it belonged to an earlier
    /// incarnation of the node). Treat it as gone.
    #[error("no container {id} on this node")]
    NotFound { id: ContainerId },
    /// The image is not on the node, and nothing pulls images here (there
    /// is no registry): build or load it on the node first.
    #[error("image {image:?} is not present on this node (nothing is pulled; build or load it there first): {message}")]
    ImageNotPresent { image: String, message: String },
    /// The container spec cannot be run by this runtime as it stands (no
    /// command for the process runtime, a volume it cannot mount).
    /// Permanent until the pod spec changes.
    #[error("{message}")]
    BadSpec { message: String },
    /// The runtime itself failed (its daemon unreachable, a file it could
    /// not write). Retried after a back-off.
    #[error("container runtime: {message}")]
    Failed { message: String },
}

impl RuntimeError {
    /// Kubernetes' reason for a container that waits because of this
    /// error (`kubectl get pods` shows it as the pod's status).
    pub fn waiting_reason(&self) -> &'static str {
        match self {
            // Not on the node, and nothing will fetch it (there is no
            // registry): Kubernetes' word for an image that is not present
            // under `imagePullPolicy: Never`.
            RuntimeError::UnknownImage { .. } | RuntimeError::ImageNotPresent { .. } => {
                "ErrImageNeverPull"
            }
            RuntimeError::BadArgument { .. }
            | RuntimeError::BadPort { .. }
            | RuntimeError::NoPodIp { .. }
            | RuntimeError::NotFound { .. }
            | RuntimeError::BadSpec { .. } => "CreateContainerError",
            RuntimeError::Listen { .. } | RuntimeError::Failed { .. } => "RunContainerError",
        }
    }
}

/// The CRI-like seam between the kubelet and whatever runs containers.
///
/// Not `Send`: everything a host runs lives on one thread.
#[async_trait(?Send)]
pub trait ContainerRuntime: VolumeRuntime {
    /// Starts a container and returns its id once it runs (its servers, if
    /// any, already listen).
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, RuntimeError>;
    /// Stops a container: asks it to end (SIGTERM) and kills it once
    /// `grace` has passed (SIGKILL; at once when `grace` is zero). It is
    /// kept, exited, until removed. Stopping an exited container, or one
    /// already stopping, does nothing. May return before the container has
    /// ended: [`ContainerRuntime::list`] shows when it has. ([`SimRuntime`]'s
    /// applications have no shutdown to run: they end at once, whatever
    /// the grace, and their ports are free when this returns.)
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError>;
    /// Every container this runtime knows, running or exited, in start
    /// order.
    async fn list(&self) -> Vec<ContainerInfo>;
    /// Kills the container if it runs (no grace), forgets it and frees
    /// what it held (its ports among them) before returning.
    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError>;
    /// The container's output (stdout and stderr), while the runtime keeps
    /// the container; closed once it exited.
    async fn log(&self, id: &ContainerId) -> Result<Rc<LogBuffer>, RuntimeError>;
    /// Runs `command` in the running container (an `exec` probe), killing
    /// it after `timeout`. Runtimes that cannot (the built-in apps run no
    /// programs) say so.
    async fn exec(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let _ = (id, command, timeout);
        Err(RuntimeError::BadSpec {
            message: "this runtime runs no commands in its containers (exec): the built-in apps \
                      are not programs; use an httpGet or tcpSocket probe"
                .into(),
        })
    }
}

/// The volume side of the runtime: a pod's volumes are directories its
/// containers mount ([`ContainerSpec::mounts`]). The kubelet writes each
/// before the containers that mount it start, writes it again whenever its
/// files change (containers see the change: a mount shows the directory,
/// not a copy), and removes a pod's volumes once the pod is gone.
#[async_trait(?Send)]
pub trait VolumeRuntime {
    /// Makes volume `volume` of pod `pod_uid` hold exactly `files`,
    /// replacing what it held at once (a program never sees half of an
    /// update); true when anything changed.
    async fn write_volume(
        &self,
        pod_uid: &str,
        volume: &str,
        files: &VolumeFiles,
    ) -> Result<bool, RuntimeError>;
    /// The uids of the pods with volumes here.
    async fn volume_pods(&self) -> Vec<String>;
    /// Removes every volume of pod `pod_uid`.
    async fn remove_volumes(&self, pod_uid: &str) -> Result<(), RuntimeError>;
}

/// How a command run in a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its exit code; `None` when it ran out of time and was killed.
    pub code: Option<i32>,
    /// What it wrote (stdout then stderr), cut to a few KiB.
    pub output: String,
}

/// One row of the runtime's table.
struct Entry {
    /// Start order.
    seq: u64,
    spec: ContainerSpec,
    started_at: Instant,
    /// Written by the container's task when the application ends, and by
    /// `stop`.
    state: Rc<RefCell<ContainerState>>,
    /// The container's task; `None` once stopped.
    task: Option<JoinHandle<()>>,
    /// What the application wrote.
    log: Rc<LogBuffer>,
}

impl Entry {
    fn info(&self, id: &ContainerId) -> ContainerInfo {
        ContainerInfo {
            id: id.clone(),
            pod_uid: self.spec.pod_uid.clone(),
            pod_namespace: self.spec.pod_namespace.clone(),
            pod_name: self.spec.pod_name.clone(),
            container_name: self.spec.container_name.clone(),
            image: self.spec.image.clone(),
            pod_ip: self.spec.pod_ip.clone(),
            state: *self.state.borrow(),
            started_at: self.started_at,
            attempt: self.spec.attempt,
            exit_reason: None,
            exit_message: String::new(),
        }
    }
}

/// The simulated container runtime: containers are tasks on the node's host
/// running a built-in application ([`App`]).
pub struct SimRuntime {
    env: Env,
    /// Distinguishes this incarnation's container ids from earlier ones.
    boot: u32,
    next_seq: Cell<u64>,
    table: RefCell<BTreeMap<ContainerId, Entry>>,
    /// Volumes by pod uid and name: kept in memory (the built-in apps read
    /// no files), so a test can see what a real runtime would have written.
    volumes: RefCell<BTreeMap<String, BTreeMap<String, VolumeFiles>>>,
}

impl SimRuntime {
    /// A runtime with no containers. Draws one number from the host's
    /// random stream (the boot tag in container ids).
    pub fn new(env: Env) -> SimRuntime {
        let boot = env.rng().next_u32();
        SimRuntime {
            env,
            boot,
            next_seq: Cell::new(1),
            table: RefCell::new(BTreeMap::new()),
            volumes: RefCell::new(BTreeMap::new()),
        }
    }

    /// The files of volume `volume` of pod `pod_uid`, as last written.
    pub fn volume(&self, pod_uid: &str, volume: &str) -> Option<VolumeFiles> {
        self.volumes.borrow().get(pod_uid)?.get(volume).cloned()
    }

    fn next_id(&self, pod_uid: &str) -> (u64, ContainerId) {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        let prefix: String = pod_uid.chars().take(8).collect();
        let prefix = if prefix.is_empty() { "nouid" } else { &prefix };
        let id = ContainerId(format!("{prefix}-{:08x}-{seq}", self.boot));
        (seq, id)
    }
}

#[async_trait(?Send)]
impl VolumeRuntime for SimRuntime {
    async fn write_volume(
        &self,
        pod_uid: &str,
        volume: &str,
        files: &VolumeFiles,
    ) -> Result<bool, RuntimeError> {
        let mut volumes = self.volumes.borrow_mut();
        let pod = volumes.entry(pod_uid.to_string()).or_default();
        if pod.get(volume) == Some(files) {
            return Ok(false);
        }
        pod.insert(volume.to_string(), files.clone());
        Ok(true)
    }

    async fn volume_pods(&self) -> Vec<String> {
        self.volumes.borrow().keys().cloned().collect()
    }

    async fn remove_volumes(&self, pod_uid: &str) -> Result<(), RuntimeError> {
        self.volumes.borrow_mut().remove(pod_uid);
        Ok(())
    }
}

#[async_trait(?Send)]
impl ContainerRuntime for SimRuntime {
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, RuntimeError> {
        let app = App::parse(&spec.image, &spec.args)?;
        if let Some(m) = spec
            .mounts
            .iter()
            .find(|m| self.volume(&spec.pod_uid, &m.volume).is_none())
        {
            return Err(RuntimeError::BadSpec {
                message: format!("volume {:?} was never written on this node", m.volume),
            });
        }
        let log = Rc::new(LogBuffer::new(DEFAULT_LOG_CAPACITY));
        // Servers bind here, before the id exists, so a port clash is an
        // error of `start` rather than a container that dies at once.
        let running = apps::launch(&self.env, &spec, &app, log.clone()).await?;
        let (seq, id) = self.next_id(&spec.pod_uid);
        let started_at = self.env.now();
        let state = Rc::new(RefCell::new(ContainerState::Running));
        let task = {
            let env = self.env.clone();
            let state = state.clone();
            let id = id.clone();
            let log = log.clone();
            self.env.spawn(async move {
                let code = running.await;
                *state.borrow_mut() = ContainerState::Exited {
                    code,
                    at: env.now(),
                };
                log.close();
                env.trace(format_args!("container {id} exited code={code}"));
            })
        };
        self.env.trace(format_args!(
            "container {id} started pod={}/{} container={} image={}",
            spec.pod_namespace, spec.pod_name, spec.container_name, spec.image
        ));
        let previous = self.table.borrow_mut().insert(
            id.clone(),
            Entry {
                seq,
                spec,
                started_at,
                state,
                task: Some(task),
                log,
            },
        );
        assert!(previous.is_none(), "container ids are never reused");
        Ok(id)
    }

    async fn stop(&self, id: &ContainerId, _grace: Duration) -> Result<(), RuntimeError> {
        let (task, state, log) = {
            let mut table = self.table.borrow_mut();
            let entry = table
                .get_mut(id)
                .ok_or_else(|| RuntimeError::NotFound { id: id.clone() })?;
            (entry.task.take(), entry.state.clone(), entry.log.clone())
        };
        let Some(task) = task else {
            return Ok(());
        };
        task.abort();
        // The task is dropped (and with it the application's listeners)
        // before the handle resolves, so the ports are free when we return.
        let _ = task.await;
        let running = state.borrow().is_running();
        if running {
            *state.borrow_mut() = ContainerState::Exited {
                code: EXIT_CODE_KILLED,
                at: self.env.now(),
            };
            self.env.trace(format_args!("container {id} stopped"));
        }
        log.close();
        Ok(())
    }

    async fn list(&self) -> Vec<ContainerInfo> {
        let table = self.table.borrow();
        let mut rows: Vec<(u64, ContainerInfo)> = table
            .iter()
            .map(|(id, entry)| (entry.seq, entry.info(id)))
            .collect();
        rows.sort_by_key(|(seq, _)| *seq);
        rows.into_iter().map(|(_, info)| info).collect()
    }

    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.stop(id, Duration::ZERO).await?;
        self.table.borrow_mut().remove(id);
        self.env.trace(format_args!("container {id} removed"));
        Ok(())
    }

    async fn log(&self, id: &ContainerId) -> Result<Rc<LogBuffer>, RuntimeError> {
        self.table
            .borrow()
            .get(id)
            .map(|e| e.log.clone())
            .ok_or_else(|| RuntimeError::NotFound { id: id.clone() })
    }
}
