//! The Docker runtime: a container is a Docker Engine container, driven
//! through the Engine API over its Unix socket (bollard).
//!
//! Each pod gets a sandbox, as Kubernetes' dockershim did: a pause
//! container holding the pod's network namespace, attached to the node's
//! bridge network with the pod IP the kubelet handed out (the network's
//! subnet is the node's pod prefix, `PREFIX.0.0/16`, its gateway
//! `PREFIX.255.254`, on the machine's side of the bridge, so every
//! node's proxy reaches every pod). The pod's containers join that
//! namespace: they share the IP and reach each other on `localhost`, and
//! a program that binds `0.0.0.0` works.
//!
//! Everything created is labelled: `faultline.run` (the run id, which
//! `faultline up` removes everything by when it stops), `faultline.node`,
//! and Kubernetes' own `io.kubernetes.pod.uid`, `.pod.name`,
//! `.pod.namespace` and `io.kubernetes.container.name`, so a restarted
//! node finds its containers and adopts them. Output goes to Docker's
//! `json-file` log, capped (10 MiB, two files) like the process runtime's.
//!
//! Images are never pulled (there is no registry): an image that is not on
//! the machine leaves the pod waiting with `ErrImageNeverPull`.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)] // bollard's HashMaps; real mode

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, HostConfigLogConfig,
    Ipam, IpamConfig, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bollard::Docker;
use faultline_env::Env;
use faultline_kubelet::logs::{Stream, DEFAULT_LOG_CAPACITY};
use faultline_kubelet::{
    ContainerId, ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState, ExecOutput,
    LogBuffer, RuntimeError,
};
use futures_util::StreamExt;

use crate::shim::{Meta, Status};
use crate::volumes::VolumeDirs;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Labels on everything this runtime creates.
pub const LABEL_RUN: &str = "faultline.run";
pub const LABEL_NODE: &str = "faultline.node";
const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
const LABEL_CONTAINER: &str = "io.kubernetes.container.name";
const LABEL_ATTEMPT: &str = "faultline.attempt";
const LABEL_POD_IP: &str = "faultline.pod-ip";
/// The container name of a pod's sandbox (dockershim's).
const SANDBOX: &str = "POD";

/// The pause image: `busybox sleep`, built on the machine from a static
/// busybox when it is not there.
pub const PAUSE_IMAGE: &str = "faultline-pause:1";
/// Where a static busybox is looked for (Debian's `busybox-static`).
const BUSYBOX: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];

/// How often the runtime asks Docker what runs.
const POLL: Duration = Duration::from_millis(500);

struct Entry {
    seq: u64,
    meta: Meta,
    started_at: Instant,
    status: Rc<RefCell<Status>>,
    stopping: bool,
    log: Rc<LogBuffer>,
    tail: Option<JoinHandle<()>>,
}

/// The Docker runtime of one node (see the module docs).
pub struct DockerRuntime {
    env: Env,
    docker: Docker,
    node: String,
    run: String,
    network: String,
    volumes: VolumeDirs,
    next_seq: Cell<u64>,
    table: RefCell<BTreeMap<ContainerId, Entry>>,
    /// Pod uid → its sandbox (pause) container id.
    sandboxes: RefCell<BTreeMap<String, String>>,
    /// When Docker was last asked what runs.
    refreshed: Cell<Option<Instant>>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Failed {
        message: format!("docker: {what}: {e}"),
    }
}

fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn labels_filter(run: &str, node: &str) -> HashMap<String, Vec<String>> {
    let mut f = HashMap::new();
    f.insert(
        "label".to_string(),
        vec![format!("{LABEL_RUN}={run}"), format!("{LABEL_NODE}={node}")],
    );
    f
}

/// Milliseconds since the epoch of Docker's RFC 3339 time.
fn docker_time(text: Option<&str>) -> Option<u64> {
    let t = text?;
    if t.starts_with("0001-") {
        return None;
    }
    faultline_api::time::parse_ms(t)
}

impl DockerRuntime {
    /// Connects to the Docker daemon, makes sure the node's network
    /// (`PREFIX.0.0/16`) and the pause image exist, and adopts the node's
    /// containers of run `run`. Pods' volumes live in `volumes` (on this
    /// machine: the daemon bind-mounts them).
    pub async fn open(
        env: Env,
        node: &str,
        run: &str,
        pod_ip_prefix: &str,
        volumes: VolumeDirs,
    ) -> Result<DockerRuntime, String> {
        let docker = connect().await?;
        let rt = DockerRuntime {
            env,
            docker,
            node: node.to_string(),
            run: run.to_string(),
            network: format!("faultline-{run}-{node}"),
            volumes,
            next_seq: Cell::new(1),
            table: RefCell::new(BTreeMap::new()),
            sandboxes: RefCell::new(BTreeMap::new()),
            refreshed: Cell::new(None),
        };
        rt.ensure_network(pod_ip_prefix).await?;
        rt.ensure_pause_image().await?;
        rt.adopt().await?;
        Ok(rt)
    }

    /// How many containers it holds (running or exited).
    pub fn count(&self) -> usize {
        self.table.borrow().len()
    }

    fn labels(&self) -> HashMap<String, String> {
        let mut l = HashMap::new();
        l.insert(LABEL_RUN.to_string(), self.run.clone());
        l.insert(LABEL_NODE.to_string(), self.node.clone());
        l
    }

    async fn ensure_network(&self, prefix: &str) -> Result<(), String> {
        let subnet = format!("{prefix}.0.0/16");
        match self.docker.inspect_network(&self.network, None).await {
            Ok(n) => {
                let has = n
                    .ipam
                    .and_then(|i| i.config)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.subnet.as_deref() == Some(subnet.as_str()));
                return if has {
                    Ok(())
                } else {
                    Err(format!(
                        "docker network {} exists without subnet {subnet}: remove it",
                        self.network
                    ))
                };
            }
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(format!("docker: inspecting network {}: {e}", self.network)),
        }
        let req = NetworkCreateRequest {
            name: self.network.clone(),
            driver: Some("bridge".into()),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.clone()),
                    gateway: Some(format!("{prefix}.255.254")),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(self.labels()),
            ..Default::default()
        };
        self.docker
            .create_network(req)
            .await
            .map_err(|e| format!("docker: creating network {} ({subnet}): {e}", self.network))?;
        Ok(())
    }

    async fn ensure_pause_image(&self) -> Result<(), String> {
        ensure_pause_image(&self.docker).await
    }
}

/// Builds the pause image from the machine's static busybox unless Docker
/// has it. (`faultline up` builds it once before starting its nodes, which
/// would otherwise all build it at once.)
pub async fn ensure_pause_image(docker: &Docker) -> Result<(), String> {
    if docker.inspect_image(PAUSE_IMAGE).await.is_ok() {
        return Ok(());
    }
    let busybox = BUSYBOX
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or_else(|| {
            format!(
                "the pause image {PAUSE_IMAGE} is not here and no busybox to build it from \
                 ({}): install Debian's busybox-static",
                BUSYBOX.join(", ")
            )
        })?;
    if has_interpreter(&busybox) {
        return Err(format!(
            "the busybox at {} is dynamically linked: the pause image needs a static one \
             (Debian's busybox-static)",
            BUSYBOX.join(" or ")
        ));
    }
    let dockerfile = "FROM scratch\nCOPY busybox /bin/busybox\n\
                      ENTRYPOINT [\"/bin/busybox\", \"sleep\", \"2147483647\"]\n";
    let mut labels = HashMap::new();
    labels.insert(LABEL_RUN.to_string(), "pause".to_string());
    build_image(
        docker,
        PAUSE_IMAGE,
        &labels,
        &[
            ("Dockerfile".into(), dockerfile.as_bytes(), 0o644),
            ("busybox".into(), busybox.as_slice(), 0o755),
        ],
    )
    .await
}

/// Builds image `tag` with `labels` from a context of `files` (path in the
/// context, contents, mode), a `Dockerfile` among them.
pub async fn build_image(
    docker: &Docker,
    tag: &str,
    labels: &HashMap<String, String>,
    files: &[(std::path::PathBuf, &[u8], u32)],
) -> Result<(), String> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, bytes, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(*mode);
        h.set_cksum();
        tar.append_data(&mut h, name, *bytes)
            .map_err(|e| format!("building {tag}'s context: {e}"))?;
    }
    let context = tar
        .into_inner()
        .map_err(|e| format!("building {tag}'s context: {e}"))?;
    let options = BuildImageOptionsBuilder::default()
        .t(tag)
        .rm(true)
        .labels(labels)
        .build();
    let mut out = docker.build_image(
        options,
        None,
        Some(bollard::body_full(bytes::Bytes::from(context))),
    );
    while let Some(step) = out.next().await {
        let info = step.map_err(|e| format!("docker: building {tag}: {e}"))?;
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            return Err(format!("docker: building {tag}: {err}"));
        }
    }
    Ok(())
}

impl DockerRuntime {
    /// Loads the node's containers (this run's) from Docker.
    async fn adopt(&self) -> Result<(), String> {
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&labels_filter(&self.run, &self.node))
            .build();
        let mut found = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| format!("docker: listing containers: {e}"))?;
        found.sort_by_key(|c| c.created.unwrap_or(0));
        for c in found {
            let (Some(id), Some(labels)) = (c.id, c.labels) else {
                continue;
            };
            let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
            if get(LABEL_CONTAINER) == SANDBOX {
                self.sandboxes.borrow_mut().insert(get(LABEL_POD_UID), id);
                continue;
            }
            let id = ContainerId::new(id);
            let status = self.inspect_status(&id).await;
            self.env.trace(format_args!(
                "container {id} adopted pod={}/{} container={}",
                get(LABEL_POD_NAMESPACE),
                get(LABEL_POD_NAME),
                get(LABEL_CONTAINER)
            ));
            let started = status.1;
            self.insert(
                id,
                Entry {
                    seq: 0,
                    meta: Meta {
                        pod_uid: get(LABEL_POD_UID),
                        pod_namespace: get(LABEL_POD_NAMESPACE),
                        pod_name: get(LABEL_POD_NAME),
                        container_name: get(LABEL_CONTAINER),
                        image: c.image.unwrap_or_default(),
                        pod_ip: get(LABEL_POD_IP),
                        attempt: get(LABEL_ATTEMPT).parse().unwrap_or(0),
                        created_wall_ms: 0,
                    },
                    started_at: crate::instant_at(
                        &self.env,
                        started.unwrap_or_else(|| self.env.wall_ms()),
                    ),
                    status: Rc::new(RefCell::new(status.0)),
                    stopping: false,
                    log: Rc::new(LogBuffer::new(DEFAULT_LOG_CAPACITY)),
                    tail: None,
                },
            );
        }
        Ok(())
    }

    /// Adds a container and starts following its output; the first one
    /// also starts the poller that notices when containers end.
    fn insert(&self, id: ContainerId, mut entry: Entry) {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        entry.seq = seq;
        entry.tail = Some(self.env.spawn(follow_logs(
            self.docker.clone(),
            id.clone(),
            entry.log.clone(),
        )));
        self.table.borrow_mut().insert(id, entry);
    }

    /// The container's status as Docker tells it, and when it started.
    async fn inspect_status(&self, id: &ContainerId) -> (Status, Option<u64>) {
        let state = match self.docker.inspect_container(id.as_str(), None).await {
            Ok(c) => c.state.unwrap_or_default(),
            Err(e) => {
                let gone = Status {
                    state: ContainerState::Exited {
                        code: 137,
                        at: self.env.now(),
                    },
                    reason: Some("ContainerStatusUnknown".into()),
                    message: format!("docker: {e}"),
                };
                return (gone, None);
            }
        };
        let started = docker_time(state.started_at.as_deref());
        if state.running == Some(true) {
            return (Status::running(), started);
        }
        let error = state.error.unwrap_or_default();
        let finished =
            docker_time(state.finished_at.as_deref()).unwrap_or_else(|| self.env.wall_ms());
        let (code, reason) = if !error.is_empty() {
            (128, Some("StartError".to_string()))
        } else if state.oom_killed == Some(true) {
            (
                state.exit_code.unwrap_or(137) as i32,
                Some("OOMKilled".to_string()),
            )
        } else {
            (state.exit_code.unwrap_or(0) as i32, None)
        };
        let exited = Status {
            state: ContainerState::Exited {
                code,
                at: crate::instant_at(&self.env, finished),
            },
            reason,
            message: error,
        };
        (exited, started)
    }

    /// Brings the table's running containers up to date with Docker: one
    /// list call, and an inspect for each that ended.
    async fn refresh(&self) {
        let running_here: Vec<ContainerId> = self
            .table
            .borrow()
            .iter()
            .filter(|(_, e)| e.status.borrow().state.is_running())
            .map(|(id, _)| id.clone())
            .collect();
        if running_here.is_empty() {
            return;
        }
        let options = ListContainersOptionsBuilder::default()
            .filters(&labels_filter(&self.run, &self.node))
            .build();
        let Ok(running) = self.docker.list_containers(Some(options)).await else {
            return;
        };
        let running: Vec<String> = running.into_iter().filter_map(|c| c.id).collect();
        for id in running_here {
            if running.iter().any(|r| r == id.as_str()) {
                continue;
            }
            let (status, _) = self.inspect_status(&id).await;
            if !status.state.is_running() {
                if let Some(e) = self.table.borrow().get(&id) {
                    self.env.trace(format_args!(
                        "container {id} exited code={}",
                        status.state.exit_code().unwrap_or(0)
                    ));
                    *e.status.borrow_mut() = status;
                }
            }
        }
    }

    /// The pod's sandbox, created (with the pod IP) and started when it
    /// has none.
    async fn sandbox(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let known = self.sandboxes.borrow().get(&spec.pod_uid).cloned();
        if let Some(id) = known {
            match self.docker.inspect_container(&id, None).await {
                Ok(c) if c.state.as_ref().and_then(|s| s.running) == Some(true) => return Ok(id),
                _ => {
                    let _ = self.remove_forced(&id).await;
                    self.sandboxes.borrow_mut().remove(&spec.pod_uid);
                }
            }
        }
        let mut labels = self.labels();
        labels.insert(LABEL_POD_UID.into(), spec.pod_uid.clone());
        labels.insert(LABEL_POD_NAME.into(), spec.pod_name.clone());
        labels.insert(LABEL_POD_NAMESPACE.into(), spec.pod_namespace.clone());
        labels.insert(LABEL_CONTAINER.into(), SANDBOX.into());
        labels.insert(LABEL_POD_IP.into(), spec.pod_ip.clone());
        let mut endpoints = HashMap::new();
        endpoints.insert(
            self.network.clone(),
            EndpointSettings {
                ipam_config: Some(EndpointIpamConfig {
                    ipv4_address: Some(spec.pod_ip.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        let body = ContainerCreateBody {
            image: Some(PAUSE_IMAGE.into()),
            hostname: Some(spec.pod_name.chars().take(63).collect()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some(self.network.clone()),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(endpoints),
            }),
            ..Default::default()
        };
        let name = format!(
            "k8s_POD_{}_{}_{}_0",
            spec.pod_name, spec.pod_namespace, spec.pod_uid
        );
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let id = match self.docker.create_container(Some(options), body).await {
            Ok(r) => r.id,
            // Left over from a start that did not finish: replace it.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => {
                let _ = self.remove_forced(&name).await;
                return Err(failed(
                    "creating the pod sandbox",
                    "a stale one was in the way; retrying",
                ));
            }
            Err(e) => return Err(failed("creating the pod sandbox", e)),
        };
        if let Err(e) = self.docker.start_container(&id, None).await {
            let _ = self.remove_forced(&id).await;
            return Err(failed(
                &format!("starting the pod sandbox on {}", spec.pod_ip),
                e,
            ));
        }
        self.sandboxes
            .borrow_mut()
            .insert(spec.pod_uid.clone(), id.clone());
        Ok(id)
    }

    async fn remove_forced(&self, id: &str) -> Result<(), bollard::errors::Error> {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Err(e) if !not_found(&e) => Err(e),
            _ => Ok(()),
        }
    }
}

/// True for a dynamically linked ELF program (one with a `PT_INTERP`
/// header: it needs a loader and libraries a `FROM scratch` image lacks).
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
    };
    // 64-bit little-endian ELF only (what this runtime runs on).
    if elf.get(..6) != Some(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(size), Some(count)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..count).any(|i| u32_at(phoff + i * size) == Some(PT_INTERP))
}

/// Follows a container's output into `log` until it ends.
async fn follow_logs(docker: Docker, id: ContainerId, log: Rc<LogBuffer>) {
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .build();
    let mut out = docker.logs(id.as_str(), Some(options));
    while let Some(Ok(chunk)) = out.next().await {
        let (stream, bytes) = match chunk {
            bollard::container::LogOutput::StdErr { message } => (Stream::Stderr, message),
            bollard::container::LogOutput::StdOut { message }
            | bollard::container::LogOutput::Console { message } => (Stream::Stdout, message),
            bollard::container::LogOutput::StdIn { .. } => continue,
        };
        for line in String::from_utf8_lossy(&bytes).lines() {
            let (at, text) = line.split_once(' ').unwrap_or((line, ""));
            let at = faultline_api::time::parse_ms(at).unwrap_or(0);
            log.write(at, stream, text);
        }
    }
    log.close();
}

crate::volumes::volume_runtime!(DockerRuntime);

#[async_trait(?Send)]
impl ContainerRuntime for DockerRuntime {
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, RuntimeError> {
        if let Err(e) = self.docker.inspect_image(&spec.image).await {
            return Err(if not_found(&e) {
                RuntimeError::ImageNotPresent {
                    image: spec.image.clone(),
                    message: format!("`docker image ls` on node {} does not list it", self.node),
                }
            } else {
                failed(&format!("inspecting image {:?}", spec.image), e)
            });
        }
        let mut binds = Vec::new();
        for m in &spec.mounts {
            let source = self.volumes.source(&spec.pod_uid, &m.volume)?;
            // The daemon needs an absolute path.
            let source = std::fs::canonicalize(&source).map_err(|e| RuntimeError::Failed {
                message: format!("volume {:?}: {}: {e}", m.volume, source.display()),
            })?;
            let mode = if m.read_only { ":ro" } else { "" };
            binds.push(format!("{}:{}{mode}", source.display(), m.path));
        }
        let sandbox = self.sandbox(&spec).await?;
        let mut labels = self.labels();
        labels.insert(LABEL_POD_UID.into(), spec.pod_uid.clone());
        labels.insert(LABEL_POD_NAME.into(), spec.pod_name.clone());
        labels.insert(LABEL_POD_NAMESPACE.into(), spec.pod_namespace.clone());
        labels.insert(LABEL_CONTAINER.into(), spec.container_name.clone());
        labels.insert(LABEL_ATTEMPT.into(), spec.attempt.to_string());
        labels.insert(LABEL_POD_IP.into(), spec.pod_ip.clone());
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !spec.env.iter().any(|(k, _)| k == "HOSTNAME") {
            env.push(format!("HOSTNAME={}", spec.pod_name));
        }
        let mut log_opts = HashMap::new();
        log_opts.insert("max-size".to_string(), "10m".to_string());
        log_opts.insert("max-file".to_string(), "2".to_string());
        let limits = &spec.resources.limits;
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: (!spec.command.is_empty()).then(|| spec.command.clone()),
            cmd: (!spec.args.is_empty()).then(|| spec.args.clone()),
            env: Some(env),
            working_dir: (!spec.working_dir.is_empty()).then(|| spec.working_dir.clone()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some(format!("container:{sandbox}")),
                binds: (!binds.is_empty()).then_some(binds),
                memory: limits.get("memory").map(|q| q.value()),
                nano_cpus: limits.get("cpu").map(|q| q.milli_value() * 1_000_000),
                log_config: Some(HostConfigLogConfig {
                    typ: Some("json-file".into()),
                    config: Some(log_opts),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = format!(
            "k8s_{}_{}_{}_{}_{}",
            spec.container_name, spec.pod_name, spec.pod_namespace, spec.pod_uid, spec.attempt
        );
        let _ = self.remove_forced(&name).await;
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let id = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError { message, .. } => {
                    RuntimeError::BadSpec {
                        message: format!("docker refused the container: {message}"),
                    }
                }
                e => failed("creating the container", e),
            })?
            .id;
        let id = ContainerId::new(id);
        // A program that cannot start (not in the image, say) leaves the
        // container created with the error: it counts as started and
        // exited at once, as in Kubernetes (`StartError`, exit code 128).
        let _ = self.docker.start_container(id.as_str(), None).await;
        let (status, started) = self.inspect_status(&id).await;
        self.env.trace(format_args!(
            "container {id} started pod={}/{} container={} image={}",
            spec.pod_namespace, spec.pod_name, spec.container_name, spec.image
        ));
        self.insert(
            id.clone(),
            Entry {
                seq: 0,
                meta: Meta {
                    pod_uid: spec.pod_uid,
                    pod_namespace: spec.pod_namespace,
                    pod_name: spec.pod_name,
                    container_name: spec.container_name,
                    image: spec.image,
                    pod_ip: spec.pod_ip,
                    attempt: spec.attempt,
                    created_wall_ms: 0,
                },
                started_at: crate::instant_at(
                    &self.env,
                    started.unwrap_or_else(|| self.env.wall_ms()),
                ),
                status: Rc::new(RefCell::new(status)),
                stopping: false,
                log: Rc::new(LogBuffer::new(DEFAULT_LOG_CAPACITY)),
                tail: None,
            },
        );
        Ok(id)
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        {
            let mut table = self.table.borrow_mut();
            let e = table
                .get_mut(id)
                .ok_or_else(|| RuntimeError::NotFound { id: id.clone() })?;
            if !e.status.borrow().state.is_running() || (e.stopping && !grace.is_zero()) {
                return Ok(());
            }
            e.stopping = true;
        }
        // `docker stop` waits out the grace period: in the background, so
        // the kubelet's pass goes on; the poller sees the end.
        let docker = self.docker.clone();
        let id = id.clone();
        let secs = grace.as_secs().min(i32::MAX as u64) as i32;
        self.env.spawn(async move {
            let options = StopContainerOptionsBuilder::default().t(secs).build();
            let _ = docker.stop_container(id.as_str(), Some(options)).await;
        });
        Ok(())
    }

    async fn list(&self) -> Vec<ContainerInfo> {
        self.refresh_every_poll().await;
        let table = self.table.borrow();
        let mut rows: Vec<(u64, ContainerInfo)> = table
            .iter()
            .map(|(id, e)| {
                let info = e.meta.info(id, e.started_at, &e.status.borrow());
                (e.seq, info)
            })
            .collect();
        rows.sort_by_key(|(seq, _)| *seq);
        rows.into_iter().map(|(_, i)| i).collect()
    }

    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        if !self.table.borrow().contains_key(id) {
            return Err(RuntimeError::NotFound { id: id.clone() });
        }
        self.remove_forced(id.as_str())
            .await
            .map_err(|e| failed(&format!("removing container {id}"), e))?;
        let entry = self.table.borrow_mut().remove(id);
        let Some(mut entry) = entry else {
            return Ok(());
        };
        if let Some(t) = entry.tail.take() {
            t.abort();
        }
        entry.log.close();
        self.env.trace(format_args!("container {id} removed"));
        // The pod's last container gone: its sandbox goes too.
        let others = self
            .table
            .borrow()
            .values()
            .any(|e| e.meta.pod_uid == entry.meta.pod_uid);
        if !others {
            let sandbox = self.sandboxes.borrow_mut().remove(&entry.meta.pod_uid);
            if let Some(s) = sandbox {
                self.remove_forced(&s)
                    .await
                    .map_err(|e| failed("removing the pod sandbox", e))?;
            }
        }
        Ok(())
    }

    async fn log(&self, id: &ContainerId) -> Result<Rc<LogBuffer>, RuntimeError> {
        self.table
            .borrow()
            .get(id)
            .map(|e| e.log.clone())
            .ok_or_else(|| RuntimeError::NotFound { id: id.clone() })
    }

    /// `docker exec`; a command still running when the time is up is left
    /// to end on its own (Docker has no call to kill an exec), as
    /// Kubernetes' dockershim did.
    async fn exec(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        match self.env.timeout(timeout, self.run_exec(id, command)).await {
            Ok(result) => result,
            Err(_) => Ok(ExecOutput {
                code: None,
                output: String::new(),
            }),
        }
    }
}

impl DockerRuntime {
    /// `docker exec`: runs `command` in container `id`, collecting its
    /// output, and asks for its exit code once the output ends.
    async fn run_exec(
        &self,
        id: &ContainerId,
        command: &[String],
    ) -> Result<ExecOutput, RuntimeError> {
        let options = bollard::exec::CreateExecOptions {
            cmd: Some(command.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = self
            .docker
            .create_exec(id.as_str(), options)
            .await
            .map_err(|e| failed(&format!("exec in {id}"), e))?;
        let started = self
            .docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| failed(&format!("exec in {id}"), e))?;
        let mut output = String::new();
        if let bollard::exec::StartExecResults::Attached {
            output: mut out, ..
        } = started
        {
            while let Some(Ok(chunk)) = out.next().await {
                if output.len() < crate::process::EXEC_OUTPUT_MAX {
                    output.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
                }
            }
        }
        crate::process::truncate(&mut output, crate::process::EXEC_OUTPUT_MAX);
        let inspected = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| failed(&format!("exec in {id}"), e))?;
        Ok(ExecOutput {
            code: Some(inspected.exit_code.unwrap_or(126) as i32),
            output,
        })
    }

    /// [`DockerRuntime::refresh`], at most once per [`POLL`]: `list` is
    /// called by every prober and every sync pass.
    async fn refresh_every_poll(&self) {
        let now = self.env.now();
        if self
            .refreshed
            .get()
            .is_none_or(|t| now.duration_since(t) >= POLL)
        {
            self.refreshed.set(Some(now));
            self.refresh().await;
        }
    }
}

/// A client of the machine's Docker daemon (its Unix socket), speaking
/// the newest API version both know.
pub async fn connect() -> Result<Docker, String> {
    Docker::connect_with_unix_defaults()
        .map_err(|e| format!("cannot reach the Docker daemon: {e}"))?
        .negotiate_version()
        .await
        .map_err(|e| format!("cannot reach the Docker daemon at /var/run/docker.sock: {e}"))
}

/// Removes every container and network of run `run` (`faultline up` on
/// its way out). Returns how many containers there were.
pub async fn remove_all(run: &str) -> Result<usize, String> {
    let docker = connect().await?;
    let mut filters = HashMap::new();
    filters.insert("label".to_string(), vec![format!("{LABEL_RUN}={run}")]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| e.to_string())?;
    let n = containers.len();
    for c in containers.into_iter().filter_map(|c| c.id) {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        let _ = docker.remove_container(&c, Some(options)).await;
    }
    let options = ListNetworksOptionsBuilder::default()
        .filters(&filters)
        .build();
    for net in docker
        .list_networks(Some(options))
        .await
        .map_err(|e| e.to_string())?
    {
        if let Some(id) = net.id {
            docker
                .remove_network(&id)
                .await
                .map_err(|e| format!("removing network {}: {e}", net.name.unwrap_or(id.clone())))?;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamically_linked_program_is_told_from_a_static_one() {
        let sh = std::fs::read("/bin/sh").expect("/bin/sh");
        assert!(has_interpreter(&sh), "/bin/sh is dynamically linked");
        assert!(!has_interpreter(b"#!/bin/sh\necho not an ELF file\n"));
        if let Some(bb) = BUSYBOX.iter().find_map(|p| std::fs::read(p).ok()) {
            // Debian's busybox-static, as CI installs it.
            assert!(!has_interpreter(&bb), "busybox is static");
        }
    }
}
