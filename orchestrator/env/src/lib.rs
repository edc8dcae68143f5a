//! The environment seam: everything time-, randomness-, network- or
//! disk-dependent that an orchestrator component touches goes through an
//! [`Env`], so one code path runs both in the deterministic simulator and for
//! real.
//!
//! - time: `tokio::time` (paused and driven by the simulator's runtime) plus a
//!   wall clock ([`Clock::wall_ms`]) the simulator can skew;
//! - randomness: one seeded ChaCha stream per host ([`Env::rng`]), derived from
//!   the run seed and the host name by [`host_seed`];
//! - network: byte streams between `host:port` addresses ([`Net`]);
//! - disk: a small file API ([`Disk`]) whose simulated implementation can lose
//!   unsynced writes, tear writes, flip bits, fill up or fail;
//! - tasks: [`Env::spawn`] spawns onto the *current host's* task set, so a
//!   simulated host crash drops every task it started;
//! - observation: [`Observer`] receives trace lines and structured safety
//!   observations (who led which term, what was committed where); the
//!   simulator hashes and checks them, real mode logs or ignores them.
//!
//! Components never call `Instant::now`, `SystemTime::now`, a thread RNG,
//! `tokio::spawn` or threads directly; `clippy.toml` enforces it.

use std::cell::{RefCell, RefMut};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub mod real;
pub mod tls;

/// A bidirectional byte stream (a TCP connection, or its simulated twin).
pub trait Conn: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Conn for T {}

/// An owned, type-erased connection.
pub type BoxConn = Pin<Box<dyn Conn>>;

/// The network as a component sees it: dial an address, listen on a port.
///
/// Addresses are `host:port` strings; in the simulator `host` is a host name,
/// for real it is anything `tokio::net` resolves.
#[async_trait(?Send)]
pub trait Net {
    /// Opens a connection. May hang (a partitioned or dead peer): callers
    /// always wrap it in a timeout.
    async fn connect(&self, addr: &str) -> io::Result<BoxConn>;
    /// Listens on `port` of this host.
    async fn bind(&self, port: u16) -> io::Result<Box<dyn Listener>>;
    /// Listens on `port` of an extra address this host owns (a pod IP);
    /// connections to `ip:port` reach this host from then on.
    async fn bind_ip(&self, ip: &str, port: u16) -> io::Result<Box<dyn Listener>> {
        let _ = port;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("this network cannot give a host the extra address {ip}"),
        ))
    }
}

/// A listening socket.
#[async_trait(?Send)]
pub trait Listener {
    /// Waits for the next inbound connection; returns it and the peer address.
    async fn accept(&mut self) -> io::Result<(BoxConn, String)>;
}

/// A small flat file API: names are relative paths such as `wal/0001.log`.
///
/// Durability contract (the one a careful POSIX program relies on):
/// `write_at` and `set_len` are not durable until `sync` of the same file
/// returns; `rename` and `remove` are atomic and durable once they return.
/// Errors a caller must handle: `NotFound`, `StorageFull` (ENOSPC) and any
/// other error as an I/O failure (EIO).
#[async_trait(?Send)]
pub trait Disk {
    /// Reads a whole file.
    async fn read(&self, path: &str) -> io::Result<Vec<u8>>;
    /// Writes `data` at `offset`, creating the file and extending it if needed.
    async fn write_at(&self, path: &str, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Truncates or extends a file (creating it if needed).
    async fn set_len(&self, path: &str, len: u64) -> io::Result<()>;
    /// Makes every earlier write to `path` durable.
    async fn sync(&self, path: &str) -> io::Result<()>;
    /// Atomically and durably replaces `to` with `from`.
    async fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Durably removes a file; removing a missing file is not an error.
    async fn remove(&self, path: &str) -> io::Result<()>;
    /// Lists every file, sorted by name.
    async fn list(&self) -> io::Result<Vec<String>>;
    /// The current length of a file.
    async fn len(&self, path: &str) -> io::Result<u64>;
}

/// Time as a component sees it.
pub trait Clock {
    /// Monotonic time (tokio's clock: paused and advanced by the simulator).
    fn now(&self) -> Instant;
    /// Wall-clock time in milliseconds since the Unix epoch. The simulator
    /// derives it from simulated time and can skew it per host.
    fn wall_ms(&self) -> u64;
}

/// A structured observation the simulator checks globally (one leader per
/// term, committed entries never change). Real mode ignores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// `node` became leader of raft `group` in `term`.
    RaftLeader { group: u64, node: u64, term: u64 },
    /// `node` applied the committed entry `index` of `term` whose payload
    /// hashes to `digest`.
    RaftApplied {
        group: u64,
        node: u64,
        index: u64,
        term: u64,
        digest: u64,
    },
    /// This host's component now holds the leader-election `lease`
    /// (`namespace/name`) for the `transitions`-th time.
    LeaseAcquired { lease: String, transitions: u64 },
    /// A container runtime of this host started container `id` of pod
    /// `namespace/name` (uid `pod_uid`). Real nodes report these (the
    /// simulator's container ledger wraps its runtimes directly).
    ContainerStarted {
        namespace: String,
        pod: String,
        pod_uid: String,
        container: String,
        id: String,
    },
    /// Container `id` of this host ended (exited, stopped or removed).
    ContainerEnded { id: String },
}

/// Receives trace lines and observations from a host.
pub trait Observer {
    /// Appends a line to the event trace (the simulator hashes it).
    fn trace(&self, host: &str, line: fmt::Arguments<'_>);
    /// Reports a structured observation.
    fn observe(&self, host: &str, observation: Observation);
}

/// An observer that drops everything (real mode without tracing).
pub struct NullObserver;

impl Observer for NullObserver {
    fn trace(&self, _host: &str, _line: fmt::Arguments<'_>) {}
    fn observe(&self, _host: &str, _observation: Observation) {}
}

/// The environment of one host: cheap to clone, not `Send` (everything a host
/// runs lives on one thread, as in the simulator).
#[derive(Clone)]
pub struct Env {
    host: Rc<str>,
    net: Rc<dyn Net>,
    disk: Rc<dyn Disk>,
    clock: Rc<dyn Clock>,
    observer: Rc<dyn Observer>,
    rng: Rc<RefCell<ChaCha8Rng>>,
    tasks: Option<Rc<TaskSet>>,
}

/// The tasks one host incarnation (or one process on it) has spawned, so
/// that a simulated crash can abort every one of them, and a pause can
/// freeze them.
///
/// A set may have a parent (a process inside a host, see
/// [`Env::process`]): aborting the parent aborts the child's tasks too,
/// and pausing the parent freezes them.
#[derive(Default)]
pub struct TaskSet {
    handles: RefCell<Vec<tokio::task::AbortHandle>>,
    parent: Option<Rc<TaskSet>>,
    children: RefCell<Vec<std::rc::Weak<TaskSet>>>,
    paused: std::cell::Cell<bool>,
    /// Tasks that were woken while the host was paused.
    parked: RefCell<Vec<std::task::Waker>>,
}

impl TaskSet {
    fn register(&self, handle: tokio::task::AbortHandle) {
        let mut handles = self.handles.borrow_mut();
        // Forget finished tasks now and then so the list stays short.
        if handles.len() >= 64 && handles.len().is_power_of_two() {
            handles.retain(|h| !h.is_finished());
        }
        handles.push(handle);
    }

    /// A set for one process inside this one.
    pub fn child(self: &Rc<Self>) -> Rc<TaskSet> {
        let child = Rc::new(TaskSet {
            parent: Some(self.clone()),
            ..TaskSet::default()
        });
        let mut children = self.children.borrow_mut();
        children.retain(|c| c.strong_count() > 0);
        children.push(Rc::downgrade(&child));
        child
    }

    /// Aborts every task (a crash), a child set's too. Each is dropped the
    /// next time the runtime looks at it, before simulated time moves on.
    pub fn abort_all(&self) {
        for h in self.handles.borrow_mut().drain(..) {
            h.abort();
        }
        for c in self.children.borrow_mut().drain(..) {
            if let Some(c) = c.upgrade() {
                c.abort_all();
            }
        }
    }

    fn root(&self) -> &TaskSet {
        match &self.parent {
            Some(p) => p.root(),
            None => self,
        }
    }

    /// Freezes every task of the host: none is polled until [`resume`],
    /// whatever wakes it meanwhile (timers, data arriving).
    ///
    /// [`resume`]: TaskSet::resume
    pub fn pause(&self) {
        self.root().paused.set(true);
    }

    /// Thaws a paused host: every task woken meanwhile runs again.
    pub fn resume(&self) {
        let root = self.root();
        root.paused.set(false);
        for w in root.parked.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// True while the host is paused.
    pub fn is_paused(&self) -> bool {
        self.root().paused.get()
    }
}

/// A task of a [`TaskSet`]: not polled while its host is paused.
pub struct Gated<F> {
    fut: Pin<Box<F>>,
    tasks: Rc<TaskSet>,
}

impl<F: Future> Gated<F> {
    pub fn new(tasks: Rc<TaskSet>, fut: F) -> Gated<F> {
        Gated {
            fut: Box::pin(fut),
            tasks,
        }
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        if self.tasks.is_paused() {
            self.tasks
                .root()
                .parked
                .borrow_mut()
                .push(cx.waker().clone());
            return std::task::Poll::Pending;
        }
        self.fut.as_mut().poll(cx)
    }
}

impl Env {
    /// Assembles an environment from its parts. `seed` seeds this host's
    /// random stream (see [`host_seed`]).
    pub fn new(
        host: &str,
        seed: u64,
        net: Rc<dyn Net>,
        disk: Rc<dyn Disk>,
        clock: Rc<dyn Clock>,
        observer: Rc<dyn Observer>,
    ) -> Env {
        Env {
            host: host.into(),
            net,
            disk,
            clock,
            observer,
            rng: Rc::new(RefCell::new(ChaCha8Rng::seed_from_u64(seed))),
            tasks: None,
        }
    }

    /// Registers every task this environment (and its clones) spawns in
    /// `tasks`, so the simulator can crash the host by aborting them.
    pub fn with_tasks(mut self, tasks: Rc<TaskSet>) -> Env {
        self.tasks = Some(tasks);
        self
    }

    /// The host's name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The network.
    pub fn net(&self) -> &dyn Net {
        &*self.net
    }

    /// The host's disk (in the simulator it survives the host's crashes).
    pub fn disk(&self) -> &dyn Disk {
        &*self.disk
    }

    /// A shared handle to the host's disk.
    pub fn disk_rc(&self) -> Rc<dyn Disk> {
        self.disk.clone()
    }

    /// Monotonic now.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Wall-clock milliseconds since the Unix epoch (skewable in simulation).
    pub fn wall_ms(&self) -> u64 {
        self.clock.wall_ms()
    }

    /// Sleeps for `d` of (possibly simulated) time.
    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await
    }

    /// Sleeps until `deadline`.
    pub async fn sleep_until(&self, deadline: Instant) {
        tokio::time::sleep_until(deadline).await
    }

    /// Runs `fut` with a deadline: every RPC goes through this, because a
    /// lost message is never resent.
    pub async fn timeout<F: Future>(
        &self,
        d: Duration,
        fut: F,
    ) -> Result<F::Output, tokio::time::error::Elapsed> {
        tokio::time::timeout(d, fut).await
    }

    /// The host's random stream. Do not hold the borrow across an `.await`.
    pub fn rng(&self) -> RefMut<'_, ChaCha8Rng> {
        self.rng.borrow_mut()
    }

    /// Spawns a task on this host: when the simulator crashes the host, the
    /// task is dropped with it. Components spawn only through here.
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        match &self.tasks {
            Some(tasks) => {
                let handle = tokio::task::spawn_local(Gated::new(tasks.clone(), fut));
                tasks.register(handle.abort_handle());
                handle
            }
            None => tokio::task::spawn_local(fut),
        }
    }

    /// An environment for one process of this host (a kubelet beside its
    /// containers, say): what it spawns can be aborted on its own with the
    /// returned set ([`TaskSet::abort_all`], a process restart), and still
    /// dies and freezes with the host. Without a task set (real mode) the
    /// process gets a set of its own, so a real node can restart its
    /// kubelet the same way.
    pub fn process(&self) -> (Env, Rc<TaskSet>) {
        let set = match &self.tasks {
            Some(t) => t.child(),
            None => Rc::new(TaskSet::default()),
        };
        let mut env = self.clone();
        env.tasks = Some(set.clone());
        (env, set)
    }

    /// Appends a line to the event trace.
    pub fn trace(&self, line: fmt::Arguments<'_>) {
        self.observer.trace(&self.host, line)
    }

    /// Reports a structured observation to the simulator's checkers.
    pub fn observe(&self, observation: Observation) {
        self.observer.observe(&self.host, observation)
    }
}

/// Derives a host's seed from the run seed and the host's name, so adding a
/// host does not shift every other host's random stream.
pub fn host_seed(run_seed: u64, host: &str) -> u64 {
    let mut bytes = Vec::with_capacity(8 + host.len());
    bytes.extend_from_slice(&run_seed.to_le_bytes());
    bytes.extend_from_slice(host.as_bytes());
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_seeds_differ_by_host_and_run() {
        assert_eq!(host_seed(1, "m1"), host_seed(1, "m1"));
        assert_ne!(host_seed(1, "m1"), host_seed(1, "m2"));
        assert_ne!(host_seed(1, "m1"), host_seed(2, "m1"));
    }
}
