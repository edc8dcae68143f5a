//! The turmoil backend: the same hosts, workload, faults and checkers on
//! turmoil 0.7's independent network model (its hosts, `turmoil::net`
//! streams, crash/bounce and partitions), as a differential check of the
//! engine. Verdicts must agree; trace hashes differ by backend.
//!
//! turmoil advances in fixed ticks and polls every host each tick, so it is
//! slower; it suits the small store worlds.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use faultline_engine::{SimDisk, Trace};
use faultline_env::{host_seed, BoxConn, Clock, Env, Listener, Net, Observer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use faultline_checker::raft::RaftMonitor;
use faultline_checker::record::{FinalState, Recorder};
use faultline_faults::{Control, FaultDriver};
use faultline_scenario::Scenario;

use crate::hosts::{store_probe, StoreProbeResult};
use crate::run::{Finished, Observed, RunOptions, RunOutcome};
use crate::world::hosts;

/// Wall clock at simulated time zero (2026-01-01), as on the engine.
const EPOCH_MS: u64 = 1_767_225_600_000;
const TICK: Duration = Duration::from_millis(1);

struct TurmoilNet;

#[async_trait(?Send)]
impl Net for TurmoilNet {
    async fn connect(&self, addr: &str) -> io::Result<BoxConn> {
        let s = turmoil::net::TcpStream::connect(addr).await?;
        Ok(Box::pin(s))
    }

    async fn bind(&self, port: u16) -> io::Result<Box<dyn Listener>> {
        let l = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
        Ok(Box::new(TurmoilListener(l)))
    }
}

struct TurmoilListener(turmoil::net::TcpListener);

#[async_trait(?Send)]
impl Listener for TurmoilListener {
    async fn accept(&mut self) -> io::Result<(BoxConn, String)> {
        let (s, peer) = self.0.accept().await?;
        Ok((Box::pin(s), peer.to_string()))
    }
}

struct TurmoilClock;

impl Clock for TurmoilClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_ms(&self) -> u64 {
        EPOCH_MS + turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64
    }
}

/// What the backend knows about its hosts.
struct Hosts {
    names: Vec<String>,
    dcs: BTreeMap<String, String>,
    disks: BTreeMap<String, Rc<SimDisk>>,
    trace: Rc<Trace>,
    raft: Rc<RefCell<RaftMonitor>>,
    /// Latency within and between datacenters.
    base: (Duration, Duration),
}

struct TurmoilControl<'s, 'a> {
    sim: RefCell<&'s mut turmoil::Sim<'a>>,
    hosts: &'s Hosts,
}

impl<'s, 'a> TurmoilControl<'s, 'a> {
    fn new(sim: &'s mut turmoil::Sim<'a>, hosts: &'s Hosts) -> Self {
        TurmoilControl {
            sim: RefCell::new(sim),
            hosts,
        }
    }
}

impl Control for TurmoilControl<'_, '_> {
    fn masters(&self) -> Vec<String> {
        self.hosts
            .names
            .iter()
            .filter(|n| n.starts_with('m'))
            .cloned()
            .collect()
    }
    fn hosts(&self) -> Vec<String> {
        self.hosts.names.clone()
    }
    fn datacenter(&self, host: &str) -> String {
        self.hosts.dcs.get(host).cloned().unwrap_or_default()
    }
    fn leader(&self) -> Option<String> {
        let leaders = self.hosts.raft.borrow().leaders();
        let (_, _, host, _) = leaders.iter().max_by_key(|(g, t, _, _)| (*g, *t))?;
        Some(host.clone())
    }
    fn is_up(&self, host: &str) -> bool {
        self.sim.borrow_mut().is_host_running(host)
    }
    fn crash(&mut self, host: &str, power_loss: bool) {
        self.hosts
            .trace
            .line(host, format_args!("host crash power_loss={power_loss}"));
        self.sim.get_mut().crash(host);
        if power_loss {
            self.hosts.disks[host].power_loss();
        }
    }
    fn restart(&mut self, host: &str) {
        if !self.sim.borrow_mut().is_host_running(host) {
            self.hosts.trace.line(host, format_args!("host start"));
            self.sim.get_mut().bounce(host);
        }
    }
    fn block(&mut self, from: &str, to: &str) {
        self.sim.get_mut().partition_oneway(from, to);
    }
    fn unblock(&mut self, from: &str, to: &str) {
        self.sim.get_mut().repair_oneway(from, to);
    }
    fn degrade(&mut self, from: &str, to: &str, loss: f64, extra: Duration, _jitter: Duration) {
        // Jitter: refused up front (see `unsupported`).
        let base = self.base_latency(from, to);
        self.sim.get_mut().set_link_latency(from, to, base + extra);
        self.sim.get_mut().set_link_fail_rate(from, to, loss);
    }
    fn restore(&mut self, from: &str, to: &str) {
        let base = self.base_latency(from, to);
        self.sim.get_mut().set_link_latency(from, to, base);
        self.sim.get_mut().set_link_fail_rate(from, to, 0.0);
    }
    fn disk(&self, host: &str) -> Rc<SimDisk> {
        self.hosts.disks[host].clone()
    }
    fn note(&self, line: &str) {
        self.hosts.trace.line("world", format_args!("{line}"));
    }
}

impl TurmoilControl<'_, '_> {
    fn base_latency(&self, a: &str, b: &str) -> Duration {
        if self.datacenter(a) == self.datacenter(b) {
            self.hosts.base.0
        } else {
            self.hosts.base.1
        }
    }
}

/// Runs `scenario` on turmoil.
/// Why this backend cannot run `scenario` faithfully, if it cannot: fault
/// kinds and fields turmoil has no model for (a host pause, a host's wall
/// clock, per-link jitter, worker nodes).
pub fn unsupported(scenario: &Scenario) -> Option<String> {
    use crate::scenario::{FaultKind, FaultSpec};
    let mut kinds: Vec<FaultKind> = scenario.faults.iter().map(|f| f.kind()).collect();
    if let Some(n) = &scenario.nemesis {
        kinds.extend(n.kinds.iter().copied());
    }
    if let Some(k) = kinds.iter().find(|k| {
        matches!(
            k,
            FaultKind::Pause
                | FaultKind::ClockSkew
                | FaultKind::ClockJump
                | FaultKind::KubeletRestart
                | FaultKind::DiskLoss
        )
    }) {
        return Some(format!(
            "the turmoil backend has no model for {} faults",
            k.name()
        ));
    }
    if scenario
        .faults
        .iter()
        .any(|f| matches!(&f.spec, FaultSpec::Latency(l) if l.jitter.is_some()))
    {
        return Some("the turmoil backend has no per-link jitter".into());
    }
    None
}

pub fn run_turmoil(scenario: &Scenario, opts: &RunOptions) -> RunOutcome {
    #[allow(clippy::disallowed_methods)] // wall time of the whole run, outside the simulation
    let wall = std::time::Instant::now();
    let s = scenario;
    let seed = opts.seed;
    let duration = s.duration.0;
    let within = s.cluster.latency.within.0;
    let between = s.cluster.latency.between.0;
    let jitter = s.cluster.latency.jitter.0;
    let mut sim = turmoil::Builder::new()
        .simulation_duration(duration + Duration::from_secs(600))
        .tick_duration(TICK)
        .epoch(UNIX_EPOCH + Duration::from_millis(EPOCH_MS))
        .rng_seed(seed)
        .min_message_latency(within)
        .max_message_latency(within + jitter)
        .build();

    // The trace's clock is the simulation's elapsed time, published by the
    // step loop (hosts run on their own runtimes, so no shared Instant).
    let now_ns = Rc::new(Cell::new(0u64));
    let clock = now_ns.clone();
    let trace = Rc::new(Trace::with_clock(
        Box::new(move || {
            turmoil::sim_elapsed()
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(clock.get())
        }),
        opts.keep_trace,
    ));
    let raft = Rc::new(RefCell::new(RaftMonitor::default()));
    let monitor = raft.clone();
    trace.on_observation(Box::new(move |host, now, obs| {
        monitor.borrow_mut().observe(host, now, obs)
    }));
    let rec_clock = now_ns.clone();
    let rec = Recorder::new(Rc::new(move || {
        turmoil::sim_elapsed()
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(rec_clock.get())
    }));
    let stop = Rc::new(Cell::new(false));
    let mut disks: BTreeMap<String, Rc<SimDisk>> = BTreeMap::new();
    let mut names = Vec::new();
    let mut dcs = BTreeMap::new();
    let mut add =
        |sim: &mut turmoil::Sim<'_>, name: String, dc: String, main: faultline_engine::HostMain| {
            let disk = Rc::new(SimDisk::new(
                &name,
                ChaCha8Rng::seed_from_u64(host_seed(seed, &format!("{name}#disk"))),
                trace.clone(),
            ));
            disks.insert(name.clone(), disk.clone());
            names.push(name.clone());
            dcs.insert(name.clone(), dc);
            let incarnation = Rc::new(Cell::new(0u64));
            let observer: Rc<dyn Observer> = trace.clone();
            let host = name.clone();
            sim.host(name.as_str(), move || {
                incarnation.set(incarnation.get() + 1);
                let env = Env::new(
                    &host,
                    host_seed(seed, &format!("{host}#{}", incarnation.get())),
                    Rc::new(TurmoilNet),
                    disk.clone(),
                    Rc::new(TurmoilClock),
                    observer.clone(),
                );
                let fut = main(env);
                async move {
                    fut.await;
                    std::future::pending::<()>().await;
                    Ok(())
                }
            });
        };
    for (name, dc, main) in hosts(s, &rec, &stop, None) {
        add(&mut sim, name, dc, main);
    }
    for a in &names {
        for b in &names {
            if a != b && dcs[a] != dcs[b] {
                sim.set_link_latency(a.as_str(), b.as_str(), between);
            }
        }
    }

    let hosts = Hosts {
        names,
        dcs,
        disks,
        trace: trace.clone(),
        raft: raft.clone(),
        base: (within, between),
    };
    let mut driver = FaultDriver::new(faultline_faults::plan(s, seed), seed);
    let mut failure: Option<String> = None;
    let step = |sim: &mut turmoil::Sim<'_>, failure: &mut Option<String>| {
        now_ns.set(sim.elapsed().as_nanos() as u64);
        if let Err(e) = sim.step() {
            failure.get_or_insert_with(|| format!("turmoil: {e}"));
        }
    };
    while sim.elapsed() < duration && failure.is_none() {
        let now = sim.elapsed();
        driver.advance(now, &mut TurmoilControl::new(&mut sim, &hosts));
        step(&mut sim, &mut failure);
    }
    stop.set(true);
    trace.line("world", format_args!("phase heal"));
    {
        let now = sim.elapsed();
        let mut ctl = TurmoilControl::new(&mut sim, &hosts);
        driver.heal_all(now, &mut ctl);
        for n in &hosts.names {
            ctl.restart(n);
        }
        for a in &hosts.names {
            for b in &hosts.names {
                if a != b {
                    ctl.unblock(a, b);
                }
            }
        }
    }
    let result: StoreProbeResult = Default::default();
    let probe = store_probe(s, &rec, &result);
    let probe_disk = Rc::new(SimDisk::new(
        "probe",
        ChaCha8Rng::seed_from_u64(seed),
        trace.clone(),
    ));
    let observer: Rc<dyn Observer> = trace.clone();
    let env_seed = host_seed(seed, "probe#1");
    sim.client("probe", {
        let env = Env::new(
            "probe",
            env_seed,
            Rc::new(TurmoilNet),
            probe_disk,
            Rc::new(TurmoilClock),
            observer,
        );
        let fut = probe(env);
        async move {
            fut.await;
            Ok(())
        }
    });
    let limit = sim.elapsed() + Duration::from_secs(300);
    while result.borrow().is_none() && failure.is_none() && sim.elapsed() < limit {
        step(&mut sim, &mut failure);
    }
    trace.line("world", format_args!("phase done"));
    let (converged, final_state) = result.borrow_mut().take().unwrap_or_else(|| {
        (
            Err(failure
                .clone()
                .unwrap_or_else(|| "the probe did not finish".into())),
            FinalState {
                error: Some("the probe did not finish".into()),
                ..Default::default()
            },
        )
    });
    let sim_secs = sim.elapsed().as_secs_f64();
    drop(sim);
    let observed = Observed {
        rec,
        final_state,
        converged,
        raft: raft.borrow().clone(),
        findings: Default::default(),
        traffic: Default::default(),
        control_plane_down: Vec::new(),
        cluster: None,
    };
    let wall_seconds = wall.elapsed().as_secs_f64();
    let summary = crate::summary::summarize(
        s,
        opts,
        Finished {
            backend: "turmoil",
            observed,
            faults: driver.records().to_vec(),
            trace_hash: trace.hash(),
            events: trace.events(),
            simulated_seconds: sim_secs,
            wall_seconds,
        },
    );
    RunOutcome {
        summary,
        trace: trace.lines(),
        net_hash: trace.net_hash(),
    }
}
