//! The process runtime: a container is a program of this machine, run by
//! a shim ([`crate::shim`]) with the container's command, arguments,
//! environment and working directory.
//!
//! Each container has a directory `ROOT/ID` the shim and the runtime
//! share (config, pids, exit code, output). Nothing else is kept: a node
//! process that restarts opens the same root, finds the containers still
//! running (their shims detached from it) and adopts them, so the kubelet
//! keeps them, same pids, and kills only what it no longer wants.
//!
//! Networking: a container binds its pod's IP, which the kubelet hands out
//! from the node's prefix; on one machine these are loopback addresses
//! (Linux routes all of 127/8 to `lo`), so every node's proxy reaches
//! every pod. Programs find the address in `$(POD_IP)` (the downward API,
//! `fieldRef: status.podIP`); a program that binds `0.0.0.0` shares the
//! machine's ports with everything else (no network namespace: this
//! runtime needs no privileges). The Docker runtime gives each pod its
//! own network namespace.
//!
//! The image names nothing here (the program comes from the machine, found
//! on the node's `PATH`): it is reported back as given.
//!
//! Volumes: a container that mounts volumes runs in a mount namespace of
//! its own, where each volume's directory ([`VolumeDirs`]) is bind-mounted
//! (read-only) at its `mountPath`; the rest of the file system is the
//! machine's. That takes root: on a node that is not root, such a
//! container is refused with a message saying so. A `mountPath` that does
//! not exist on the machine is created there (an empty directory, left
//! behind, as systemd's `BindPaths=` does), since a process container has
//! no root file system of its own to create it in.
#![allow(clippy::disallowed_methods)] // real mode: real processes

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use faultline_env::Env;
use faultline_kubelet::logs::DEFAULT_LOG_CAPACITY;
use faultline_kubelet::{
    ContainerId, ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState, ExecOutput,
    LogBuffer, RuntimeError,
};
use rand::RngCore;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cgroup::Cgroups;
use crate::crilog::{Tail, DEFAULT_MAX_FILE};
use crate::procfs;
use crate::shim::{self, BindMount, Exit, Meta, Pids, ShimConfig, Status};
use crate::volumes::VolumeDirs;

/// How often a container's files are looked at (output, exit).
const POLL: Duration = Duration::from_millis(200);
/// How long the shim may take to say the program started.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `remove` waits for a killed container to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

struct Entry {
    /// Start order.
    seq: u64,
    dir: PathBuf,
    meta: Meta,
    /// `None` for a program that never started.
    pids: Option<Pids>,
    started_at: Instant,
    status: Rc<RefCell<Status>>,
    /// A stop was asked for (its SIGKILL timer runs).
    stopping: bool,
    log: Rc<LogBuffer>,
    watcher: Option<JoinHandle<()>>,
}

/// The process runtime (see the module docs).
pub struct ProcessRuntime {
    env: Env,
    root: PathBuf,
    volumes: VolumeDirs,
    /// The shim's command line, to which the container's directory is
    /// appended (`faultline shim`).
    shim: Vec<String>,
    cgroups: Option<Cgroups>,
    log_max_bytes: u64,
    next_seq: Cell<u64>,
    table: RefCell<BTreeMap<ContainerId, Entry>>,
}

/// The node's `PATH` (programs are found on it unless the container sets
/// its own).
fn node_path() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
}

impl ProcessRuntime {
    /// Opens the runtime whose containers live under `root`, adopting the
    /// ones already there, with pods' volumes in `volumes`. `shim` is the
    /// command that runs a shim (the container's directory is appended);
    /// `cgroups`, when the machine has them, enforces limits.
    pub fn open(
        env: Env,
        root: &Path,
        volumes: VolumeDirs,
        shim: Vec<String>,
        cgroups: Option<Cgroups>,
    ) -> io::Result<ProcessRuntime> {
        fs::create_dir_all(root)?;
        let rt = ProcessRuntime {
            env,
            root: root.to_path_buf(),
            volumes,
            shim,
            cgroups,
            log_max_bytes: DEFAULT_MAX_FILE,
            next_seq: Cell::new(1),
            table: RefCell::new(BTreeMap::new()),
        };
        rt.adopt()?;
        Ok(rt)
    }

    /// How many containers it holds (running or exited).
    pub fn count(&self) -> usize {
        self.table.borrow().len()
    }

    /// Sets the size at which a container's log rotates (it keeps one
    /// rotated file: at most twice this on disk).
    pub fn with_log_max_bytes(mut self, bytes: u64) -> ProcessRuntime {
        self.log_max_bytes = bytes;
        self
    }

    /// Loads the containers found under the root, oldest first.
    fn adopt(&self) -> io::Result<()> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.root)?.flatten() {
            let dir = entry.path();
            if !dir.is_dir() {
                continue;
            }
            let id = ContainerId::new(entry.file_name().to_string_lossy().to_string());
            let config: Option<ShimConfig> = shim::read_json(&dir, shim::CONFIG).unwrap_or(None);
            let pids: Option<Pids> = shim::read_json(&dir, shim::STATE).unwrap_or(None);
            let exit: Option<Exit> = shim::read_json(&dir, shim::EXIT).unwrap_or(None);
            match (config, pids, exit) {
                (Some(config), pids, exit) if pids.is_some() || exit.is_some() => {
                    found.push((config.meta, id, dir, pids));
                }
                // Interrupted while starting: the program never ran, or
                // nothing says which program it is.
                (_, pids, _) => {
                    if let Some(p) = pids {
                        signal_group(&p, libc::SIGKILL);
                    }
                    eprintln!(
                        "process runtime: removing {} (its container never finished starting)",
                        dir.display()
                    );
                    let _ = fs::remove_dir_all(&dir);
                }
            }
        }
        found.sort_by(|a, b| (a.0.created_wall_ms, &a.1).cmp(&(b.0.created_wall_ms, &b.1)));
        for (meta, id, dir, pids) in found {
            let started_wall = pids.map_or(meta.created_wall_ms, |p| p.started_wall_ms);
            self.env.trace(format_args!(
                "container {id} adopted pod={}/{} container={} pid={}",
                meta.pod_namespace,
                meta.pod_name,
                meta.container_name,
                pids.map_or(0, |p| p.program.pid)
            ));
            self.insert(id, dir, meta, pids, started_wall);
        }
        Ok(())
    }

    /// Adds a container to the table and starts its watcher.
    fn insert(
        &self,
        id: ContainerId,
        dir: PathBuf,
        meta: Meta,
        pids: Option<Pids>,
        started_wall: u64,
    ) {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        let status = Rc::new(RefCell::new(Status::running()));
        let log = Rc::new(LogBuffer::new(DEFAULT_LOG_CAPACITY));
        let watcher = self.env.spawn(watch(
            self.env.clone(),
            id.clone(),
            dir.clone(),
            pids,
            status.clone(),
            log.clone(),
        ));
        self.table.borrow_mut().insert(
            id,
            Entry {
                seq,
                dir,
                meta,
                pids,
                started_at: crate::instant_at(&self.env, started_wall),
                status,
                stopping: false,
                log,
                watcher: Some(watcher),
            },
        );
    }

    /// A fresh container id: 16 hex digits from the node's randomness.
    fn new_id(&self) -> ContainerId {
        let n = self.env.rng().next_u64();
        ContainerId::new(format!("{n:016x}"))
    }

    /// Runs the shim for `dir` and waits for its one line.
    async fn run_shim(&self, dir: &Path) -> Result<String, String> {
        let err = fs::File::create(dir.join(shim::SHIM_ERR)).map_err(|e| e.to_string())?;
        let (program, args) = self.shim.split_first().ok_or("no shim command")?;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run the shim {program:?}: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        let read = reader.read_line(&mut line);
        let answer = self.env.timeout(HANDSHAKE_TIMEOUT, read).await;
        // The shim's first process exits at once (it forks the one that
        // stays): reap it.
        let _ = child.wait().await;
        match answer {
            Ok(Ok(_)) if !line.is_empty() => Ok(line.trim_end().to_string()),
            Ok(Ok(_)) => {
                let said = fs::read_to_string(dir.join(shim::SHIM_ERR)).unwrap_or_default();
                Err(format!("the shim ended without a word: {}", said.trim()))
            }
            Ok(Err(e)) => Err(format!("reading the shim: {e}")),
            Err(_) => Err(format!(
                "the shim did not answer within {}s",
                HANDSHAKE_TIMEOUT.as_secs()
            )),
        }
    }
}

/// Signals the program's process group, if the program (or anything of
/// its group) still runs.
fn signal_group(pids: &Pids, sig: i32) {
    let pgid = pids.program.pid;
    if pids.program.alive() || !procfs::group_members(pgid).is_empty() {
        // SAFETY: a plain system call on a group this runtime started.
        unsafe { libc::kill(-pgid, sig) };
    }
}

/// What the container's files say about its end, if it has ended.
fn ended(dir: &Path, pids: Option<&Pids>) -> Option<Exit> {
    if let Ok(Some(exit)) = shim::read_json::<Exit>(dir, shim::EXIT) {
        return Some(exit);
    }
    let pids = pids?;
    if pids.shim.alive() || pids.program.alive() {
        return None;
    }
    // The shim may have written its file just now.
    if let Ok(Some(exit)) = shim::read_json::<Exit>(dir, shim::EXIT) {
        return Some(exit);
    }
    // Both gone without a word (the shim was killed): what Kubernetes
    // reports for a container whose end nobody saw.
    Some(Exit {
        code: 137,
        reason: Some("ContainerStatusUnknown".into()),
        message: "the container's shim ended before it could record the exit code".into(),
        finished_wall_ms: 0,
    })
}

/// Follows one container: its output into `log`, its end into `status`.
async fn watch(
    env: Env,
    id: ContainerId,
    dir: PathBuf,
    pids: Option<Pids>,
    status: Rc<RefCell<Status>>,
    log: Rc<LogBuffer>,
) {
    let mut tail = Tail::new(&dir.join(shim::LOG));
    loop {
        let _ = tail.poll(&log);
        if let Some(exit) = ended(&dir, pids.as_ref()) {
            let _ = tail.poll(&log);
            log.close();
            let wall = if exit.finished_wall_ms == 0 {
                env.wall_ms()
            } else {
                exit.finished_wall_ms
            };
            let at = crate::instant_at(&env, wall);
            *status.borrow_mut() = Status {
                state: ContainerState::Exited {
                    code: exit.code,
                    at,
                },
                reason: exit.reason,
                message: exit.message,
            };
            env.trace(format_args!("container {id} exited code={}", exit.code));
            return;
        }
        env.sleep(POLL).await;
    }
}

crate::volumes::volume_runtime!(ProcessRuntime);

#[async_trait(?Send)]
impl ContainerRuntime for ProcessRuntime {
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, RuntimeError> {
        let argv: Vec<String> = spec.command.iter().chain(&spec.args).cloned().collect();
        if argv.is_empty() {
            return Err(RuntimeError::BadSpec {
                message: format!(
                    "container {:?} has no command: the process runtime runs the container's \
                     command and args (the image {:?} names no program here)",
                    spec.container_name, spec.image
                ),
            });
        }
        let cwd = if spec.working_dir.is_empty() {
            PathBuf::from("/")
        } else {
            PathBuf::from(&spec.working_dir)
        };
        if !cwd.is_dir() {
            return Err(RuntimeError::BadSpec {
                message: format!(
                    "working directory {:?} does not exist on this node",
                    spec.working_dir
                ),
            });
        }
        let mut mounts = Vec::new();
        for m in &spec.mounts {
            mounts.push(BindMount {
                source: self.volumes.source(&spec.pod_uid, &m.volume)?,
                target: PathBuf::from(&m.path),
                read_only: m.read_only,
            });
        }
        // SAFETY: a plain system call.
        if !mounts.is_empty() && unsafe { libc::geteuid() } != 0 {
            return Err(RuntimeError::BadSpec {
                message: format!(
                    "container {:?} mounts volumes, which the process runtime does only when its \
                     node runs as root (each such container gets a mount namespace of its own); \
                     run the node as root, or use the docker runtime",
                    spec.container_name
                ),
            });
        }
        let mut env = spec.env.clone();
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.insert(0, ("PATH".into(), node_path()));
        }
        if !env.iter().any(|(k, _)| k == "HOSTNAME") {
            env.insert(0, ("HOSTNAME".into(), spec.pod_name.clone()));
        }
        let id = self.new_id();
        let dir = self.root.join(id.as_str());
        let failed = |what: &str, e: &dyn std::fmt::Display| RuntimeError::Failed {
            message: format!("{what} {}: {e}", dir.display()),
        };
        fs::create_dir_all(&dir).map_err(|e| failed("cannot create", &e))?;
        let meta = Meta {
            pod_uid: spec.pod_uid.clone(),
            pod_namespace: spec.pod_namespace.clone(),
            pod_name: spec.pod_name.clone(),
            container_name: spec.container_name.clone(),
            image: spec.image.clone(),
            pod_ip: spec.pod_ip.clone(),
            attempt: spec.attempt,
            created_wall_ms: self.env.wall_ms(),
        };
        let config = ShimConfig {
            argv,
            env,
            cwd,
            log_max_bytes: self.log_max_bytes,
            cgroup: self
                .cgroups
                .as_ref()
                .map(|c| c.spec(id.as_str(), &spec.resources)),
            mounts,
            meta: meta.clone(),
        };
        shim::write_json(&dir, shim::CONFIG, &config).map_err(|e| failed("cannot write", &e))?;
        let answer = match self.run_shim(&dir).await {
            Ok(a) => a,
            Err(message) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(RuntimeError::Failed { message });
            }
        };
        let pids: Option<Pids> = if answer.starts_with("started ") {
            match shim::read_json(&dir, shim::STATE) {
                Ok(Some(p)) => Some(p),
                other => {
                    let _ = fs::remove_dir_all(&dir);
                    return Err(RuntimeError::Failed {
                        message: format!(
                            "the shim started the program but left no state: {other:?}"
                        ),
                    });
                }
            }
        } else if answer == "exited" {
            None
        } else {
            let _ = fs::remove_dir_all(&dir);
            let message = answer.strip_prefix("error ").unwrap_or(&answer).to_string();
            return Err(RuntimeError::Failed { message });
        };
        self.env.trace(format_args!(
            "container {id} started pod={}/{} container={} pid={}",
            spec.pod_namespace,
            spec.pod_name,
            spec.container_name,
            pids.map_or(0, |p| p.program.pid)
        ));
        let started = pids.map_or(meta.created_wall_ms, |p| p.started_wall_ms);
        self.insert(id.clone(), dir, meta, pids, started);
        Ok(id)
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        let (pids, status) = {
            let mut table = self.table.borrow_mut();
            let entry = table
                .get_mut(id)
                .ok_or_else(|| RuntimeError::NotFound { id: id.clone() })?;
            let running = entry.status.borrow().state.is_running();
            // A stop already under way keeps its deadline, unless this
            // one kills at once.
            if !running || (entry.stopping && !grace.is_zero()) {
                return Ok(());
            }
            entry.stopping = true;
            (entry.pids, entry.status.clone())
        };
        let Some(pids) = pids else { return Ok(()) };
        if grace.is_zero() {
            signal_group(&pids, libc::SIGKILL);
            return Ok(());
        }
        signal_group(&pids, libc::SIGTERM);
        self.env.trace(format_args!(
            "container {id} asked to stop (SIGTERM), killed after {}s",
            grace.as_secs()
        ));
        let env = self.env.clone();
        self.env.spawn(async move {
            env.sleep(grace).await;
            if status.borrow().state.is_running() {
                signal_group(&pids, libc::SIGKILL);
            }
        });
        Ok(())
    }

    async fn list(&self) -> Vec<ContainerInfo> {
        let table = self.table.borrow();
        let mut rows: Vec<(u64, ContainerInfo)> = table
            .iter()
            .map(|(id, e)| {
                let info = e.meta.info(id, e.started_at, &e.status.borrow());
                (e.seq, info)
            })
            .collect();
        rows.sort_by_key(|(seq, _)| *seq);
        rows.into_iter().map(|(_, info)| info).collect()
    }

    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.stop(id, Duration::ZERO).await?;
        let (dir, pids, status) = {
            let table = self.table.borrow();
            let e = table
                .get(id)
                .ok_or_else(|| RuntimeError::NotFound { id: id.clone() })?;
            (e.dir.clone(), e.pids, e.status.clone())
        };
        // Wait for the end to be recorded (the shim reaps the program and
        // the rest of its group first), so its ports are free.
        let deadline = self.env.now() + REAP_TIMEOUT;
        while status.borrow().state.is_running()
            && ended(&dir, pids.as_ref()).is_none()
            && self.env.now() < deadline
        {
            self.env.sleep(Duration::from_millis(20)).await;
        }
        let entry = self.table.borrow_mut().remove(id);
        if let Some(mut e) = entry {
            if let Some(w) = e.watcher.take() {
                w.abort();
            }
            e.log.close();
        }
        fs::remove_dir_all(&dir).map_err(|e| RuntimeError::Failed {
            message: format!("cannot remove {}: {e}", dir.display()),
        })?;
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

    /// Runs `command` as the container's programs run: its environment and
    /// working directory, in a process group of its own (killed whole when
    /// the time is up).
    async fn exec(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let (dir, pids) = self
            .table
            .borrow()
            .get(id)
            .filter(|e| e.status.borrow().state.is_running())
            .map(|e| (e.dir.clone(), e.pids))
            .ok_or_else(|| RuntimeError::NotFound { id: id.clone() })?;
        let config: ShimConfig = shim::read_json(&dir, shim::CONFIG)
            .ok()
            .flatten()
            .ok_or_else(|| RuntimeError::Failed {
                message: format!("{}: no readable {}", dir.display(), shim::CONFIG),
            })?;
        let (program, args) = command.split_first().ok_or_else(|| RuntimeError::BadSpec {
            message: "exec: no command".into(),
        })?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if config.mounts.is_empty() {
            cmd.current_dir(&config.cwd);
        } else {
            // The command sees the container's mounts: it joins the
            // program's mount namespace (and then enters the working
            // directory there).
            let pid = pids.map_or(0, |p| p.program.pid);
            let ns = fs::File::open(format!("/proc/{pid}/ns/mnt")).map_err(|e| {
                RuntimeError::Failed {
                    message: format!("exec: the container's mount namespace: {e}"),
                }
            })?;
            let cwd =
                std::ffi::CString::new(config.cwd.as_os_str().as_encoded_bytes()).map_err(|e| {
                    RuntimeError::BadSpec {
                        message: format!("working directory: {e}"),
                    }
                })?;
            // SAFETY: between fork and exec, only system calls on data
            // prepared before the fork.
            unsafe {
                cmd.pre_exec(move || {
                    use std::os::fd::AsRawFd;
                    if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS) != 0
                        || libc::chdir(cwd.as_ptr()) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                })
            };
        }
        let child = cmd.spawn();
        let child = match child {
            Ok(c) => c,
            // Not there, not executable: the command failed, as a shell
            // says it (127/126).
            Err(e) => {
                let code = if e.kind() == io::ErrorKind::NotFound {
                    127
                } else {
                    126
                };
                return Ok(ExecOutput {
                    code: Some(code),
                    output: format!("exec: {program:?}: {e}"),
                });
            }
        };
        let pgid = child.id().map(|p| p as i32);
        match self.env.timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                truncate(&mut text, EXEC_OUTPUT_MAX);
                Ok(ExecOutput {
                    code: Some(out.status.code().unwrap_or(137)),
                    output: text,
                })
            }
            Ok(Err(e)) => Err(RuntimeError::Failed {
                message: format!("exec {program:?}: {e}"),
            }),
            Err(_) => {
                if let Some(pgid) = pgid {
                    // SAFETY: the group of the command just started.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                }
                Ok(ExecOutput {
                    code: None,
                    output: String::new(),
                })
            }
        }
    }
}

/// The most an exec probe's output is kept (for its event).
pub(crate) const EXEC_OUTPUT_MAX: usize = 4 << 10;

/// Cuts `text` to at most `max` bytes, on a character boundary.
pub(crate) fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// Kills every container under `root` and removes them (`faultline up`
/// on its way out: a stopped cluster leaves no process behind). Returns
/// how many were still running.
pub fn kill_all(root: &Path) -> usize {
    let Ok(dirs) = fs::read_dir(root) else {
        return 0;
    };
    let mut killed = 0;
    let mut pending = Vec::new();
    for entry in dirs.flatten() {
        let dir = entry.path();
        if let Ok(Some(pids)) = shim::read_json::<Pids>(&dir, shim::STATE) {
            if pids.program.alive() || pids.shim.alive() {
                killed += 1;
            }
            signal_group(&pids, libc::SIGKILL);
            pending.push((dir, pids));
        } else {
            let _ = fs::remove_dir_all(&dir);
        }
    }
    // Let the shims record the end and remove their cgroups.
    let deadline = std::time::Instant::now() + REAP_TIMEOUT;
    for (dir, pids) in pending {
        while pids.shim.alive() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = fs::remove_dir_all(&dir);
    }
    let _ = fs::remove_dir(root);
    killed
}
