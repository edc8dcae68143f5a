//! The container shim of the process runtime: `faultline shim DIR`, one
//! per container, as containerd runs one shim per container.
//!
//! The shim detaches from the node (fork, new session), so a container
//! outlives its kubelet: a node process that crashes or restarts finds its
//! containers still running and adopts them. It starts the program in its
//! own process group (and cgroup, where the machine has cgroup v2),
//! writes its output to a size-capped, rotated log in the CRI format, waits
//! for it, kills whatever the program left in its process group, and
//! records the exit code. The node talks to it through files in `DIR`:
//!
//! - `config.json` ([`ShimConfig`]): what to run, written by the runtime;
//! - `state.json` ([`Pids`]): the shim's and the program's pids, written
//!   once the program runs;
//! - `exit.json` ([`Exit`]): how it ended, written last;
//! - `log` and `log.1`: its output ([`crate::crilog`]);
//! - `shim.err`: what the shim itself has to say when it fails.
//!
//! On its standard output the shim tells the runtime one line, then
//! closes it: `started PID`, `exited` (the program could not be started:
//! `exit.json` says why) or `error MESSAGE`.
//!
//! This is a separate program, not driven by the simulator: it uses
//! threads and the system clock like any program of the real world.
#![allow(clippy::disallowed_methods)]

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use faultline_kubelet::logs::Stream;
use serde::{Deserialize, Serialize};

use crate::cgroup::CgroupSpec;
use crate::crilog::{record, LineCutter, RotatingLog};
use crate::procfs;

/// What the shim runs (`config.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// The whole environment, in order.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// The log rotates at this size.
    pub log_max_bytes: u64,
    /// The cgroup to run in, with its limits; `None` runs without one.
    pub cgroup: Option<CgroupSpec>,
    /// Volumes to bind-mount, in a mount namespace of the container's own
    /// (none: the machine's namespace).
    #[serde(default)]
    pub mounts: Vec<BindMount>,
    /// Who the container is, read back when a kubelet adopts it.
    pub meta: Meta,
}

/// A directory of the machine shown at another path in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

/// Gives this process a mount namespace of its own (private: nothing
/// mounted here reaches the machine's) with `mounts` bound in it; the
/// program started next inherits it. Must run before any thread starts.
fn mount_volumes(mounts: &[BindMount]) -> Result<(), String> {
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_encoded_bytes()).map_err(|e| format!("{}: {e}", p.display()))
    };
    let sys = |what: &str, r: libc::c_int| {
        if r == 0 {
            Ok(())
        } else {
            Err(format!("{what}: {}", io::Error::last_os_error()))
        }
    };
    let none = std::ptr::null();
    // SAFETY: plain system calls on NUL-terminated strings that outlive
    // them.
    unsafe {
        sys("unshare(CLONE_NEWNS)", libc::unshare(libc::CLONE_NEWNS))?;
        let root = c(Path::new("/"))?;
        sys(
            "making / private",
            libc::mount(
                none,
                root.as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                none.cast(),
            ),
        )?;
        for m in mounts {
            fs::create_dir_all(&m.target)
                .map_err(|e| format!("cannot create {}: {e}", m.target.display()))?;
            let (source, target) = (c(&m.source)?, c(&m.target)?);
            let what = format!("mounting {} at {}", m.source.display(), m.target.display());
            sys(
                &what,
                libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    none,
                    libc::MS_BIND,
                    none.cast(),
                ),
            )?;
            if m.read_only {
                let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
                sys(
                    &format!("{what} read-only"),
                    libc::mount(none, target.as_ptr(), none, flags, none.cast()),
                )?;
            }
        }
    }
    Ok(())
}

/// The container's identity, as the kubelet knows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Meta {
    pub pod_uid: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub container_name: String,
    pub image: String,
    pub pod_ip: String,
    pub attempt: u32,
    /// When the runtime created it (ms since the epoch).
    pub created_wall_ms: u64,
}

impl Meta {
    /// The kubelet's row for container `id` described by this, in `status`,
    /// started at `started_at` (both runtimes report through this).
    pub fn info(
        &self,
        id: &faultline_kubelet::ContainerId,
        started_at: tokio::time::Instant,
        status: &Status,
    ) -> faultline_kubelet::ContainerInfo {
        faultline_kubelet::ContainerInfo {
            id: id.clone(),
            pod_uid: self.pod_uid.clone(),
            pod_namespace: self.pod_namespace.clone(),
            pod_name: self.pod_name.clone(),
            container_name: self.container_name.clone(),
            image: self.image.clone(),
            pod_ip: self.pod_ip.clone(),
            state: status.state,
            started_at,
            attempt: self.attempt,
            exit_reason: status.reason.clone(),
            exit_message: status.message.clone(),
        }
    }
}

/// Where a container stands, as a runtime last saw it.
#[derive(Debug, Clone)]
pub struct Status {
    pub state: faultline_kubelet::ContainerState,
    /// `OOMKilled`, `StartError`, ...: see [`Exit::reason`].
    pub reason: Option<String>,
    pub message: String,
}

impl Status {
    pub fn running() -> Status {
        Status {
            state: faultline_kubelet::ContainerState::Running,
            reason: None,
            message: String::new(),
        }
    }
}

/// A process, told apart from a later one with the same pid by its start
/// time (`/proc/PID/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pid {
    pub pid: i32,
    pub start: u64,
}

impl Pid {
    /// True while this process (not a later one with its pid) lives.
    pub fn alive(&self) -> bool {
        procfs::start_time(self.pid) == Some(self.start)
    }
}

/// The shim's and the program's processes (`state.json`). The program
/// leads its process group (its pgid is its pid).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Pids {
    pub shim: Pid,
    pub program: Pid,
    /// When the program started (ms since the epoch).
    pub started_wall_ms: u64,
}

/// How the program ended (`exit.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exit {
    /// Its exit code, or 128 + the signal that killed it.
    pub code: i32,
    /// `OOMKilled`, `StartError`; `None` for Kubernetes' `Completed` or
    /// `Error` by the code.
    pub reason: Option<String>,
    pub message: String,
    pub finished_wall_ms: u64,
}

pub const CONFIG: &str = "config.json";
pub const STATE: &str = "state.json";
pub const EXIT: &str = "exit.json";
pub const LOG: &str = "log";
pub const SHIM_ERR: &str = "shim.err";

/// The exit code of a program that could not be started (containerd's).
pub const EXIT_CODE_START_ERROR: i32 = 128;

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Writes `value` as JSON to `dir/name` so readers see all of it or none
/// (a temporary file renamed into place).
pub fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(value)?)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(name))
}

/// Reads `dir/name` as JSON; `Ok(None)` when it does not exist.
pub fn read_json<T: for<'de> Deserialize<'de>>(dir: &Path, name: &str) -> io::Result<Option<T>> {
    match fs::read(dir.join(name)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {e}"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs the shim for the container in `dir`; returns the process' exit
/// code (the shim's, not the program's).
pub fn main(dir: &Path) -> i32 {
    let config: ShimConfig = match read_json(dir, CONFIG) {
        Ok(Some(c)) => c,
        Ok(None) => return handshake_error(&format!("{}: no {CONFIG}", dir.display())),
        Err(e) => return handshake_error(&format!("{}: {e}", dir.display())),
    };
    // Detach: the parent returns at once (the runtime reaps it), the child
    // carries on in a session of its own, so signals for the node's
    // terminal or process group never reach it.
    // SAFETY: no other thread exists yet in this process.
    match unsafe { libc::fork() } {
        -1 => return handshake_error(&format!("fork: {}", io::Error::last_os_error())),
        0 => {}
        _ => return 0,
    }
    // SAFETY: plain system call.
    unsafe { libc::setsid() };
    match run(dir, &config) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shim {}: {e}", dir.display());
            1
        }
    }
}

fn handshake_error(message: &str) -> i32 {
    let one_line = message.replace('\n', " ");
    let _ = writeln!(io::stdout(), "error {one_line}");
    1
}

/// Ends the handshake: the runtime has its answer; the shim's standard
/// output is `/dev/null` from now on.
fn handshake(line: &str) {
    let mut out = io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: both descriptors are open.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

fn run(dir: &Path, config: &ShimConfig) -> io::Result<()> {
    let log = Arc::new(Mutex::new(RotatingLog::open(
        &dir.join(LOG),
        config.log_max_bytes,
    )?));
    let cgroup = match &config.cgroup {
        Some(spec) => match spec.create() {
            Ok(()) => Some(spec),
            Err(e) => {
                let message = format!("cannot set up cgroup {}: {e}", spec.path.display());
                return start_failed(dir, "StartError", &message);
            }
        },
        None => None,
    };
    let Some((program, args)) = config.argv.split_first() else {
        return start_failed(dir, "StartError", "no command to run");
    };
    if !config.mounts.is_empty() {
        if let Err(e) = mount_volumes(&config.mounts) {
            if let Some(cg) = cgroup {
                cg.remove();
            }
            return start_failed(dir, "StartError", &format!("cannot mount volumes: {e}"));
        }
    }
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(config.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&config.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(cg) = cgroup {
        let procs = CString::new(cg.path.join("cgroup.procs").as_os_str().as_encoded_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: between fork and exec only system calls on data prepared
        // before the fork (this process has no other thread yet).
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
                libc::close(fd);
                if ok {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            })
        };
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let message = if e.kind() == io::ErrorKind::NotFound && !program.contains('/') {
                format!("exec: {program:?}: executable file not found in $PATH")
            } else {
                format!("exec: {program:?}: {e}")
            };
            if let Some(cg) = cgroup {
                cg.remove();
            }
            return start_failed(dir, "StartError", &message);
        }
    };
    let pid = child.id() as i32;
    let pids = Pids {
        shim: Pid {
            pid: std::process::id() as i32,
            start: procfs::start_time(std::process::id() as i32).unwrap_or(0),
        },
        program: Pid {
            pid,
            start: procfs::start_time(pid).unwrap_or(0),
        },
        started_wall_ms: wall_ms(),
    };
    write_json(dir, STATE, &pids)?;
    // From here the shim only waits: the runtime stops the program by
    // signalling its process group, never the shim.
    // SAFETY: setting signal dispositions of this process.
    unsafe {
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE] {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    handshake(&format!("started {pid}"));
    let (done_tx, done_rx) = mpsc::channel();
    let streams = [
        (
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            Stream::Stdout,
        ),
        (
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            Stream::Stderr,
        ),
    ];
    for (pipe, stream) in streams {
        let Some(pipe) = pipe else { continue };
        let log = log.clone();
        let done = done_tx.clone();
        std::thread::spawn(move || {
            copy_output(pipe, stream, &log);
            let _ = done.send(());
        });
    }
    drop(done_tx);
    let status = child.wait()?;
    // The program's children die with it, as in a container whose init
    // ended.
    // SAFETY: signals the program's own process group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    // Whatever escaped the group may hold the pipes open: wait a little
    // for the output, not forever.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    let oom = cgroup.is_some_and(|cg| cg.oom_killed());
    if let Some(cg) = cgroup {
        cg.remove();
    }
    let exit = Exit {
        code,
        reason: oom.then(|| "OOMKilled".to_string()),
        message: String::new(),
        finished_wall_ms: wall_ms(),
    };
    write_json(dir, EXIT, &exit)
}

/// Records a program that never ran (as containerd does: exit code 128,
/// reason `StartError`) and tells the runtime.
fn start_failed(dir: &Path, reason: &str, message: &str) -> io::Result<()> {
    let exit = Exit {
        code: EXIT_CODE_START_ERROR,
        reason: Some(reason.into()),
        message: message.into(),
        finished_wall_ms: wall_ms(),
    };
    write_json(dir, EXIT, &exit)?;
    handshake("exited");
    Ok(())
}

/// Copies one of the program's streams into the log, a record per line.
fn copy_output(mut pipe: Box<dyn Read + Send>, stream: Stream, log: &Mutex<RotatingLog>) {
    let mut cutter = LineCutter::default();
    let mut buf = vec![0u8; 64 << 10];
    let mut emit = |text: &[u8], full: bool| {
        let now = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
        let rec = record(&now, stream, full, text);
        if let Ok(mut log) = log.lock() {
            // A full disk loses output, never the program.
            let _ = log.write(&rec);
        }
    };
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => cutter.feed(&buf[..n], &mut emit),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    cutter.finish(&mut emit);
}
