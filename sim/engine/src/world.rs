//! The world: hosts placed in datacenters, each a group of tasks started
//! from a factory, over one simulated network, each with a disk that
//! survives its crashes.
//!
//! A host's tasks all run on the one root `LocalSet`; `Env::spawn` records
//! each in the host's [`TaskSet`], so a crash aborts every task the host
//! started. Components therefore spawn only through `Env::spawn` (clippy
//! forbids `tokio::spawn`; a host-local hyper executor must use the Env).
//! Restarting runs the factory again with a fresh environment.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use faultline_env::{host_seed, Clock, Env, TaskSet};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::task::{JoinHandle, LocalSet};
use tokio::time::Instant;

use crate::disk::SimDisk;
use crate::net::{HostId, HostNetView, LinkConfig, SimNet};
use crate::trace::Trace;

/// What a host runs: called with a fresh [`Env`] at start and at every
/// restart.
pub type HostMain = Rc<dyn Fn(Env) -> Pin<Box<dyn Future<Output = ()>>>>;

/// How to build a world.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    pub seed: u64,
    /// Link within a datacenter.
    pub within: LinkConfig,
    /// Link between datacenters.
    pub between: LinkConfig,
    /// Wall clock at simulated time zero, ms since the Unix epoch.
    pub epoch_ms: u64,
    /// Keep the trace as text (for `--trace`), not only its hash.
    pub keep_trace: bool,
}

impl WorldConfig {
    /// Defaults: 1 ms within a datacenter, 20 ms between, epoch 2026-01-01.
    pub fn new(seed: u64) -> WorldConfig {
        WorldConfig {
            seed,
            within: LinkConfig::latency(Duration::from_millis(1)),
            between: LinkConfig::latency(Duration::from_millis(20)),
            epoch_ms: 1_767_225_600_000,
            keep_trace: false,
        }
    }
}

struct HostSlot {
    name: String,
    dc: String,
    main: HostMain,
    disk: Rc<SimDisk>,
    driver: Option<JoinHandle<()>>,
    /// Every task the current incarnation spawned.
    tasks: Rc<TaskSet>,
    incarnation: u64,
    skew_ms: Rc<Cell<i64>>,
}

/// The simulated world. Cheap to clone; lives on one thread.
#[derive(Clone)]
pub struct World {
    inner: Rc<WorldInner>,
}

struct WorldInner {
    config: WorldConfig,
    start: Instant,
    net: Rc<SimNet>,
    trace: Rc<Trace>,
    hosts: RefCell<Vec<HostSlot>>,
}

/// A host's clock: tokio's (simulated) monotonic time, and a wall clock
/// derived from it that faults can skew.
struct SimClock {
    start: Instant,
    epoch_ms: u64,
    skew_ms: Rc<Cell<i64>>,
}

impl Clock for SimClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_ms(&self) -> u64 {
        let elapsed = Instant::now().duration_since(self.start).as_millis() as i64;
        (self.epoch_ms as i64 + elapsed + self.skew_ms.get()).max(0) as u64
    }
}

impl World {
    /// Creates an empty world. Must be called inside [`run`] (it reads the
    /// paused clock).
    pub fn new(config: WorldConfig) -> World {
        let start = Instant::now();
        let trace = Rc::new(Trace::new(start, config.keep_trace));
        let net = Rc::new(SimNet::new(
            ChaCha8Rng::seed_from_u64(host_seed(config.seed, "#network")),
            trace.clone(),
            config.within,
            config.between,
        ));
        World {
            inner: Rc::new(WorldInner {
                config,
                start,
                net,
                trace,
                hosts: RefCell::new(Vec::new()),
            }),
        }
    }

    /// The run seed.
    pub fn seed(&self) -> u64 {
        self.inner.config.seed
    }

    /// The network (for faults).
    pub fn net(&self) -> &Rc<SimNet> {
        &self.inner.net
    }

    /// The trace.
    pub fn trace(&self) -> &Rc<Trace> {
        &self.inner.trace
    }

    /// Simulated time since the world began.
    pub fn elapsed(&self) -> Duration {
        Instant::now().duration_since(self.inner.start)
    }

    /// Adds a host in datacenter `dc` and starts it.
    pub fn add_host(&self, name: &str, dc: &str, main: HostMain) -> HostId {
        let id = self.inner.net.add_host(name, dc);
        let disk = Rc::new(SimDisk::new(
            name,
            ChaCha8Rng::seed_from_u64(host_seed(self.seed(), &format!("{name}#disk"))),
            self.inner.trace.clone(),
        ));
        self.inner.hosts.borrow_mut().push(HostSlot {
            name: name.to_string(),
            dc: dc.to_string(),
            main,
            disk,
            driver: None,
            tasks: Rc::new(TaskSet::default()),
            incarnation: 0,
            skew_ms: Rc::new(Cell::new(0)),
        });
        self.start(id);
        id
    }

    fn start(&self, id: HostId) {
        let (env, main, name) = {
            let mut hosts = self.inner.hosts.borrow_mut();
            let slot = &mut hosts[id];
            slot.incarnation += 1;
            let seed = host_seed(self.seed(), &format!("{}#{}", slot.name, slot.incarnation));
            let net = Rc::new(HostNetView {
                net: self.inner.net.clone(),
                host: id,
                incarnation: self.inner.net.incarnation(id),
            });
            let clock = Rc::new(SimClock {
                start: self.inner.start,
                epoch_ms: self.inner.config.epoch_ms,
                skew_ms: slot.skew_ms.clone(),
            });
            // A fresh task set per incarnation: a crash aborts exactly the
            // tasks this incarnation spawned.
            slot.tasks = Rc::new(TaskSet::default());
            let env = Env::new(
                &slot.name,
                seed,
                net,
                slot.disk.clone(),
                clock,
                self.inner.trace.clone(),
            )
            .with_tasks(slot.tasks.clone());
            (env, slot.main.clone(), slot.name.clone())
        };
        self.inner.trace.line(&name, format_args!("host start"));
        let fut = main(env);
        let tasks = self.inner.hosts.borrow()[id].tasks.clone();
        // The host's main task; everything it spawns goes through
        // `Env::spawn` and lands in the host's task set. (A nested
        // `LocalSet` per host would catch stray `spawn_local`s too, but
        // measured ~1.5x slower: every wake-up crossed two schedulers.)
        let driver = tokio::task::spawn_local(faultline_env::Gated::new(tasks, async move {
            fut.await;
            std::future::pending::<()>().await
        }));
        self.inner.hosts.borrow_mut()[id].driver = Some(driver);
    }

    /// Crashes a host: every task it runs is dropped and its connections
    /// close. With `power_loss`, its disk also loses unsynced writes.
    pub fn crash(&self, id: HostId, power_loss: bool) {
        let (driver, disk, name, tasks) = {
            let mut hosts = self.inner.hosts.borrow_mut();
            let slot = &mut hosts[id];
            (
                slot.driver.take(),
                slot.disk.clone(),
                slot.name.clone(),
                slot.tasks.clone(),
            )
        };
        let Some(driver) = driver else {
            return;
        };
        self.inner
            .trace
            .line(&name, format_args!("host crash power_loss={power_loss}"));
        driver.abort();
        tasks.abort_all();
        self.inner.net.host_down(id);
        if power_loss {
            disk.power_loss();
        }
    }

    /// Freezes a running host: none of its tasks runs, no timer of its
    /// fires, it reads and sends nothing, until [`World::resume`]. Its
    /// connections stay open (peers see silence, not a reset).
    pub fn pause(&self, id: HostId) {
        let hosts = self.inner.hosts.borrow();
        if hosts[id].driver.is_some() && !hosts[id].tasks.is_paused() {
            hosts[id].tasks.pause();
            self.inner
                .trace
                .line(&hosts[id].name, format_args!("host pause"));
        }
    }

    /// Thaws a paused host: its tasks run again, with whatever state they
    /// had, and timers that expired meanwhile fire at once.
    pub fn resume(&self, id: HostId) {
        let hosts = self.inner.hosts.borrow();
        if hosts[id].tasks.is_paused() {
            self.inner
                .trace
                .line(&hosts[id].name, format_args!("host resume"));
            let tasks = hosts[id].tasks.clone();
            drop(hosts);
            tasks.resume();
        }
    }

    /// True while the host is paused.
    pub fn is_paused(&self, id: HostId) -> bool {
        self.inner.hosts.borrow()[id].tasks.is_paused()
    }

    /// Restarts a crashed host (no-op if it is up).
    pub fn restart(&self, id: HostId) {
        if self.is_up(id) {
            return;
        }
        self.inner.net.host_up(id);
        self.start(id);
    }

    /// True when the host is running.
    pub fn is_up(&self, id: HostId) -> bool {
        self.inner.hosts.borrow()[id].driver.is_some()
    }

    /// The host's disk.
    pub fn disk(&self, id: HostId) -> Rc<SimDisk> {
        self.inner.hosts.borrow()[id].disk.clone()
    }

    /// Looks a host up by name.
    pub fn host(&self, name: &str) -> Option<HostId> {
        self.inner.net.host_id(name)
    }

    /// The host's name.
    pub fn name(&self, id: HostId) -> String {
        self.inner.hosts.borrow()[id].name.clone()
    }

    /// The host's datacenter.
    pub fn datacenter(&self, id: HostId) -> String {
        self.inner.hosts.borrow()[id].dc.clone()
    }

    /// Number of hosts.
    pub fn host_count(&self) -> usize {
        self.inner.hosts.borrow().len()
    }

    /// Shifts a host's wall clock by `skew_ms` from true time.
    pub fn set_clock_skew(&self, id: HostId, skew_ms: i64) {
        let hosts = self.inner.hosts.borrow();
        hosts[id].skew_ms.set(skew_ms);
        self.inner
            .trace
            .line(&hosts[id].name, format_args!("clock skew {skew_ms}ms"));
    }

    /// Cuts `a` and `b` off from each other in both directions.
    pub fn partition(&self, a: HostId, b: HostId) {
        self.inner.net.block(a, b);
        self.inner.net.block(b, a);
    }

    /// Restores both directions between `a` and `b`.
    pub fn repair(&self, a: HostId, b: HostId) {
        self.inner.net.unblock(a, b);
        self.inner.net.unblock(b, a);
    }

    /// Appends a line to the trace on behalf of the world (faults, phases).
    pub fn note(&self, args: std::fmt::Arguments<'_>) {
        self.inner.trace.line("world", args);
    }

    /// Stops every host (end of run), so their tasks are dropped before the
    /// runtime shuts down.
    pub fn shutdown(&self) {
        for slot in self.inner.hosts.borrow_mut().iter_mut() {
            if let Some(d) = slot.driver.take() {
                d.abort();
            }
            slot.tasks.abort_all();
        }
    }
}

/// Runs `f` on a fresh deterministic runtime: current-thread, paused clock
/// (idle time jumps to the next timer), tokio's internal RNG seeded from
/// `seed`. A panic in any task aborts the whole run (and panics here).
pub fn run<F, Fut, T>(seed: u64, f: F) -> T
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .rng_seed(tokio::runtime::RngSeed::from_bytes(&seed.to_le_bytes()))
        // An assertion that fails inside any host's task is a bug the run
        // must report with its seed, not a task that silently disappears.
        .unhandled_panic(tokio::runtime::UnhandledPanic::ShutdownRuntime)
        .build()
        .expect("building the simulation runtime");
    let mut local = LocalSet::new();
    local.unhandled_panic(tokio::runtime::UnhandledPanic::ShutdownRuntime);
    local.block_on(&rt, f())
}
