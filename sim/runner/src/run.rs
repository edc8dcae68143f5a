//! Running one scenario at one seed on the event-driven engine, and judging
//! the invariants. The phases follow the VOPR: build the world, run the
//! workload under faults, heal everything, require convergence within a
//! deadline, read the final state, check.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use faultline_checker::{linearizable, set, watch};
use faultline_engine::{run as run_world, HostMain, LinkConfig, SimDisk, World, WorldConfig};
use faultline_env::Env;
use faultline_reports::{
    FaultRecord, InvariantResult, LeaderChange, NodeTimeline, ReadyChange, RunStats, Summary,
    TimelinePoint,
};
use faultline_roles::{MasterSpec, StoreRestart};
use faultline_store::server::{Bugs, StoreConfig};
use tokio::time::Instant;

use crate::cluster::{self, Findings, Ledger};
use crate::faults::{self, Control, FaultDriver};
use crate::observe::ApiLog;
use crate::scenario::{
    client_names, master_names, node_names, traffic_clients, Bug, InvariantKind, InvariantSpec,
    Scenario,
};
use crate::traffic::{self, SharedTrafficLog, TrafficLog};
use crate::workload::{
    self, FinalState, Recorder, Sample, SampleOutcome, SharedRecorder, WorkloadSpec,
};

/// The store's client/peer port on every master.
pub const STORE_PORT: u16 = 2379;

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub seed: u64,
    /// Keep the trace's text lines (for `--trace`).
    pub keep_trace: bool,
    /// The scenario path as the user gave it (for the reproduce command).
    pub path: String,
    /// Told the simulated time as the run goes (a progress bar).
    pub progress: Option<Progress>,
}

/// See [`RunOptions::progress`]: called with simulated seconds.
#[derive(Clone)]
pub struct Progress(pub Rc<dyn Fn(f64)>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// A finished run.
pub struct RunOutcome {
    pub summary: Summary,
    pub trace: Vec<String>,
    /// [`faultline_engine::Trace::net_hash`]: the network traffic alone.
    pub net_hash: u64,
}

/// The store configuration of master `i` (1-based).
pub fn store_config(s: &Scenario, i: u64) -> StoreConfig {
    let masters = master_names(s.cluster.masters);
    let members: BTreeMap<u64, String> = masters
        .iter()
        .enumerate()
        .map(|(j, m)| (j as u64 + 1, format!("{m}:{STORE_PORT}")))
        .collect();
    let mut cfg = StoreConfig::new(i, STORE_PORT, members);
    cfg.tick = s.store.tick.0;
    cfg.election_ticks = s.store.election_ticks;
    cfg.snapshot_every = s.store.snapshot_every;
    cfg.keep_revisions = s.store.keep_revisions;
    cfg.request_timeout = Duration::from_secs(3);
    cfg.bugs = Bugs {
        ack_before_commit: s.has_bug(Bug::AckBeforeCommit),
        stale_reads: s.has_bug(Bug::StaleReads),
        rejoin_as_new: s.has_bug(Bug::RejoinAsNew),
    };
    cfg
}

/// How a simulated master's store restarts when it cannot start: as a
/// service manager would (systemd's `Restart=on-failure`), every second; a
/// replica whose hard state is gone needs an operator and stays down.
pub const STORE_RESTART: StoreRestart = StoreRestart::OnFailure {
    after: Duration::from_secs(1),
};

/// The host main of a master.
///
/// After its first start a master rejoins an existing cluster, as an
/// operator switches etcd to `initial-cluster-state = existing` once the
/// cluster is up: an empty disk then means lost data.
pub fn master_host(spec: MasterSpec) -> HostMain {
    let started = Rc::new(Cell::new(false));
    Rc::new(move |env: Env| {
        let mut spec = spec.clone();
        spec.store.rejoin = started.replace(true);
        Box::pin(async move {
            // Its errors are in the trace; the host just stops.
            let _ = faultline_roles::master(env, spec).await;
        })
    })
}

/// Store endpoints of every master.
pub fn endpoints(s: &Scenario) -> Vec<String> {
    master_names(s.cluster.masters)
        .into_iter()
        .map(|m| format!("{m}:{STORE_PORT}"))
        .collect()
}

/// Datacenter of the i-th (0-based) host of a role: round robin.
pub fn dc_of(s: &Scenario, i: usize) -> String {
    let dcs = &s.cluster.datacenters;
    dcs[i % dcs.len()].clone()
}

/// Every host of a run but the probe: masters, clients and the watcher.
pub fn hosts(
    s: &Scenario,
    rec: &SharedRecorder,
    stop: &Rc<Cell<bool>>,
    api: Option<&Rc<ApiLog>>,
) -> Vec<(String, String, HostMain)> {
    let mut out = Vec::new();
    for (i, m) in master_names(s.cluster.masters).iter().enumerate() {
        let store = store_config(s, i as u64 + 1);
        let main = if cluster::enabled(s) {
            cluster::master_main(s, store, api.map(|a| a.observer()))
        } else {
            master_host(MasterSpec {
                store,
                restart: STORE_RESTART,
                control_plane: None,
            })
        };
        out.push((m.clone(), dc_of(s, i), main));
    }
    if let Some(w) = &s.workload {
        let n = w.clients;
        let spec = Rc::new(WorkloadSpec {
            endpoints: endpoints(s),
            rate_per_client: w.rate / f64::from(n),
            keys: w.keys,
            mix: w.mix.clone(),
            stop: stop.clone(),
            spread_reads: w.spread_reads,
        });
        for (i, c) in client_names(n).iter().enumerate() {
            let (spec, rec) = (spec.clone(), rec.clone());
            let idx = i as u32 + 1;
            let main: HostMain = Rc::new(move |env| {
                Box::pin(workload::client_loop(env, idx, spec.clone(), rec.clone()))
            });
            out.push((c.clone(), dc_of(s, i), main));
        }
        if w.watch {
            let (eps, rec) = (endpoints(s), rec.clone());
            let main: HostMain =
                Rc::new(move |env| Box::pin(workload::watcher_loop(env, eps.clone(), rec.clone())));
            out.push(("watcher".to_string(), dc_of(s, 0), main));
        }
    }
    out
}

/// Where the probe leaves its findings.
pub type ProbeResult = Rc<RefCell<Option<(Result<Duration, String>, FinalState)>>>;

/// The probe host, started once everything is healed: waits for the
/// replicas to converge, then reads the final state.
pub fn probe_main(s: &Scenario, rec: &SharedRecorder, result: &ProbeResult) -> HostMain {
    let within = s
        .invariant(InvariantKind::Converges)
        .and_then(|i| i.within())
        .unwrap_or(Duration::from_secs(60));
    let (eps, rec, result) = (endpoints(s), rec.clone(), result.clone());
    let keys = s.workload.as_ref().map(|w| w.keys).unwrap_or(0);
    let generations =
        (s.duration.0.as_secs_f64() / workload::KEY_GENERATION.as_secs_f64()).ceil() as u64;
    let has_workload = s.workload.is_some();
    Rc::new(move |env: Env| {
        let (eps, rec, result) = (eps.clone(), rec.clone(), result.clone());
        Box::pin(async move {
            let converged = workload::await_convergence(env.clone(), eps.clone(), within).await;
            let fin = if has_workload {
                workload::final_reads(env, eps, keys, generations, rec).await
            } else {
                FinalState::default()
            };
            *result.borrow_mut() = Some((converged, fin));
        })
    })
}

struct EngineControl {
    world: World,
    masters: Vec<String>,
    nodes: Vec<String>,
    users: Vec<String>,
    ledger: Option<Rc<Ledger>>,
    /// Control-plane outages: (start ns, end ns once it is back).
    control_plane_down: Vec<(u64, Option<u64>)>,
    /// Faults are planned, drawn and recorded but change nothing (tests
    /// compare such a run with the real one to prove a fault has effect).
    inert: bool,
}

impl EngineControl {
    fn id(&self, host: &str) -> usize {
        self.world
            .host(host)
            .unwrap_or_else(|| panic!("validated host {host} exists"))
    }

    /// Notes whether the control plane can serve the nodes: a quorum of
    /// masters up, each reachable both ways from at least one node.
    fn observe_control_plane(&mut self, now_ns: u64) {
        if self.nodes.is_empty() {
            return;
        }
        let net = self.world.net();
        let serving = self
            .masters
            .iter()
            .filter(|m| {
                let m = self.id(m);
                self.world.is_up(m)
                    && self.nodes.iter().any(|n| {
                        let n = self.id(n);
                        !net.is_blocked(m, n) && !net.is_blocked(n, m)
                    })
            })
            .count();
        let down = serving < self.masters.len() / 2 + 1;
        match self.control_plane_down.last_mut() {
            Some((_, end @ None)) if !down => *end = Some(now_ns),
            Some((_, None)) => {}
            _ if down => self.control_plane_down.push((now_ns, None)),
            _ => {}
        }
    }
}

impl Control for EngineControl {
    fn masters(&self) -> Vec<String> {
        self.masters.clone()
    }
    fn users(&self) -> Vec<String> {
        self.users.clone()
    }
    fn nodes_running(&self, name: &str) -> Vec<String> {
        self.ledger
            .as_ref()
            .map(|l| l.hosts_running(name))
            .unwrap_or_default()
    }
    fn hosts(&self) -> Vec<String> {
        (0..self.world.host_count())
            .map(|i| self.world.name(i))
            .collect()
    }
    fn datacenter(&self, host: &str) -> String {
        self.world.datacenter(self.id(host))
    }
    fn leader(&self) -> Option<String> {
        let leaders = self.world.trace().leaders();
        let (_, _, host, _) = leaders.iter().max_by_key(|(g, t, _, _)| (*g, *t))?;
        self.is_up(host).then(|| host.clone())
    }
    fn is_up(&self, host: &str) -> bool {
        self.world.is_up(self.id(host))
    }
    fn crash(&mut self, host: &str, power_loss: bool) {
        if self.inert {
            return;
        }
        self.world.crash(self.id(host), power_loss);
        if let Some(l) = &self.ledger {
            l.host_down(host);
        }
    }
    fn nodes(&self) -> Vec<String> {
        self.nodes.clone()
    }
    fn lease_holder(&self, lease: &str) -> Option<String> {
        self.world.trace().lease_holder(lease)
    }
    fn restart(&mut self, host: &str) {
        if self.inert {
            return;
        }
        self.world.restart(self.id(host))
    }
    fn block(&mut self, from: &str, to: &str) {
        if self.inert {
            return;
        }
        self.world.net().block(self.id(from), self.id(to))
    }
    fn unblock(&mut self, from: &str, to: &str) {
        if self.inert {
            return;
        }
        self.world.net().unblock(self.id(from), self.id(to))
    }
    fn degrade(&mut self, from: &str, to: &str, loss: f64, extra: Duration, jitter: Duration) {
        if self.inert {
            return;
        }
        let (a, b) = (self.id(from), self.id(to));
        let base = self.world.net().link(a, b);
        self.world.net().set_link(
            a,
            b,
            LinkConfig {
                latency: base.latency + extra,
                jitter: base.jitter + jitter,
                loss: loss.max(base.loss),
            },
        )
    }
    fn pause(&mut self, host: &str) -> bool {
        if self.inert {
            return true;
        }
        self.world.pause(self.id(host));
        true
    }
    fn resume(&mut self, host: &str) {
        if self.inert {
            return;
        }
        self.world.resume(self.id(host))
    }
    fn set_clock_offset(&mut self, host: &str, offset_ms: i64) -> bool {
        if self.inert {
            return true;
        }
        self.world.set_clock_skew(self.id(host), offset_ms);
        true
    }
    fn restart_kubelet(&mut self, host: &str) -> bool {
        if self.inert {
            return true;
        }
        match &self.ledger {
            Some(l) if self.is_up(host) => {
                l.kubelet_bell(host).notify_one();
                true
            }
            _ => false,
        }
    }
    fn restore(&mut self, from: &str, to: &str) {
        if self.inert {
            return;
        }
        self.world.net().reset_link(self.id(from), self.id(to))
    }
    fn disk(&self, host: &str) -> Rc<SimDisk> {
        if self.inert {
            // A copy: the same files and random stream, so corruption
            // picks the same bits and the trace reads the same, but the
            // host's real disk is untouched.
            return Rc::new(self.world.disk(self.id(host)).fork());
        }
        self.world.disk(self.id(host))
    }
    fn note(&self, line: &str) {
        self.world.note(format_args!("{line}"))
    }
}

/// Applies the fault plan as simulated time passes.
async fn drive_faults(ctl: Rc<RefCell<EngineControl>>, driver: Rc<RefCell<FaultDriver>>) {
    let start = Instant::now();
    loop {
        let Some(next) = driver.borrow().next_time() else {
            return;
        };
        tokio::time::sleep_until(start + next).await;
        let mut c = ctl.borrow_mut();
        driver.borrow_mut().advance(next, &mut *c);
        c.observe_control_plane(next.as_nanos() as u64);
    }
}

/// Everything the checkers need after a run.
pub struct Observed {
    pub rec: SharedRecorder,
    pub final_state: FinalState,
    pub converged: Result<Duration, String>,
    pub violations: Vec<String>,
    /// (group, term, host, elected at ns), in term order.
    pub leaders: Vec<(u64, u64, String, u64)>,
    /// What the control-plane observers found.
    pub findings: Findings,
    /// Container overlaps (simulated ns, what) and containers started.
    pub containers: (Vec<(u64, String)>, u64),
    /// User requests.
    pub traffic: SharedTrafficLog,
    /// Control-plane outages (start ns, end ns).
    pub control_plane_down: Vec<(u64, u64)>,
    /// The cluster's observers, for the report's time series.
    pub cluster: Option<ClusterObservers>,
}

/// What the report's cluster charts are drawn from.
pub struct ClusterObservers {
    pub api: Rc<ApiLog>,
    pub ledger: Rc<Ledger>,
    /// (node, datacenter)
    pub nodes: Vec<(String, String)>,
}

/// Runs `scenario` on the event-driven engine.
pub fn run_engine(scenario: &Scenario, opts: &RunOptions) -> RunOutcome {
    run_engine_faults(scenario, opts, false)
}

/// Runs `scenario` with inert faults: every fault is planned, drawn and
/// written to the trace exactly as in [`run_engine`], but crashes nothing,
/// cuts nothing, damages a scratch disk. A fault kind whose real run has
/// the same trace hash as its inert run did nothing: the fault catalogue's
/// tests use this to prove no kind is silently a no-op.
pub fn run_engine_inert_faults(scenario: &Scenario, opts: &RunOptions) -> RunOutcome {
    run_engine_faults(scenario, opts, true)
}

fn run_engine_faults(scenario: &Scenario, opts: &RunOptions, inert: bool) -> RunOutcome {
    #[allow(clippy::disallowed_methods)] // wall time of the whole run, outside the simulation
    let wall = std::time::Instant::now();
    let s = scenario.clone();
    let seed = opts.seed;
    let keep = opts.keep_trace;
    let progress = opts.progress.clone();
    let (observed, records, (hash, net_hash), events, trace, sim_secs) =
        run_world(seed, move || async move {
            let mut cfg = WorldConfig::new(seed);
            cfg.keep_trace = keep;
            cfg.within = LinkConfig {
                latency: s.cluster.latency.within.0,
                jitter: s.cluster.latency.jitter.0,
                loss: 0.0,
            };
            cfg.between = LinkConfig {
                latency: s.cluster.latency.between.0,
                jitter: s.cluster.latency.jitter.0,
                loss: 0.0,
            };
            let world = World::new(cfg);
            if let Some(p) = progress {
                world
                    .trace()
                    .on_progress(Box::new(move |ns| (p.0)(ns as f64 / 1e9)));
            }
            let start = Instant::now();
            let rec = Recorder::new(Rc::new(move || {
                Instant::now().duration_since(start).as_nanos() as u64
            }));
            let stop = Rc::new(Cell::new(false));
            let clock: cluster::Clock =
                Rc::new(move || Instant::now().duration_since(start).as_nanos() as u64);
            let api_log = cluster::enabled(&s).then(|| ApiLog::new(clock.clone()));
            for (name, dc, main) in hosts(&s, &rec, &stop, api_log.as_ref()) {
                world.add_host(&name, &dc, main);
            }
            let findings: Findings = Default::default();
            let ledger = cluster::enabled(&s).then(|| Rc::new(Ledger::new(clock.clone())));
            let traffic_log: SharedTrafficLog = Rc::new(RefCell::new(TrafficLog::new(&s)));
            if let Some(ledger) = &ledger {
                for (i, n) in node_names(&s).iter().enumerate() {
                    let dc = dc_of(&s, i);
                    world.add_host(n, &dc, cluster::node_main(&s, i, &dc, ledger.clone()));
                }
                world.add_host("user", &dc_of(&s, 0), cluster::user_main(&s));
                for (name, dc, main) in traffic::hosts(&s, &traffic_log, &clock, &stop) {
                    world.add_host(&name, &dc, main);
                }
                world.add_host(
                    "auditor",
                    &dc_of(&s, 0),
                    cluster::auditor_main(&s, findings.clone(), clock.clone()),
                );
            }
            let ctl = Rc::new(RefCell::new(EngineControl {
                world: world.clone(),
                masters: master_names(s.cluster.masters),
                nodes: if ledger.is_some() {
                    node_names(&s)
                } else {
                    Vec::new()
                },
                users: traffic_clients(&s).into_iter().map(|c| c.name).collect(),
                ledger: ledger.clone(),
                control_plane_down: Vec::new(),
                inert,
            }));
            let driver = Rc::new(RefCell::new(FaultDriver::new(faults::plan(&s, seed), seed)));
            let driving = tokio::task::spawn_local(drive_faults(ctl.clone(), driver.clone()));
            let duration = s.duration.0;
            tokio::time::sleep(duration).await;

            // Heal everything still active, then require convergence.
            driving.abort();
            stop.set(true);
            world.note(format_args!("phase heal"));
            driver
                .borrow_mut()
                .heal_all(world.elapsed(), &mut *ctl.borrow_mut());
            let healed_ns = world.elapsed().as_nanos() as u64;
            let control_plane_down: Vec<(u64, u64)> = ctl
                .borrow()
                .control_plane_down
                .iter()
                .map(|&(a, b)| (a, b.unwrap_or(healed_ns)))
                .collect();
            for i in 0..world.host_count() {
                world.restart(i);
            }
            world.net().unblock_all();
            let result: ProbeResult = Default::default();
            world.add_host("probe", &dc_of(&s, 0), probe_main(&s, &rec, &result));
            // `converges` in a cluster also means nodes Ready, deployments at
            // their desired ready replicas and endpoints equal to ready pods.
            let converges = cluster::enabled(&s)
                .then(|| s.invariant(InvariantKind::Converges))
                .flatten();
            let spec = cluster::ProbeSpec {
                ready: s
                    .invariant(InvariantKind::DeploymentsReady)
                    .or(converges)
                    .map(|i| {
                        let only = match &i.spec {
                            InvariantSpec::DeploymentsReady(d) => d.deployments.clone(),
                            _ => None,
                        };
                        (i.within().unwrap_or(Duration::from_secs(120)), only)
                    }),
                endpoints: converges.is_some(),
                pending: s.invariant(InvariantKind::PendingExplained).is_some(),
            };
            let probing = spec.ready.is_some() || spec.pending;
            if probing {
                world.add_host(
                    "cluster-probe",
                    &dc_of(&s, 0),
                    cluster::cluster_probe_main(&s, spec, findings.clone()),
                );
            }
            while result.borrow().is_none() || (probing && !findings.borrow().probed) {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            // Let the auditor read the last writes.
            tokio::time::sleep(Duration::from_secs(2)).await;
            world.note(format_args!("phase done"));
            let (converged, final_state) = result.borrow_mut().take().expect("set above");
            let violations = world.trace().violations();
            let leaders = world.trace().leaders();
            let sim_secs = world.elapsed().as_secs_f64();
            world.shutdown();
            let trace = world.trace();
            let containers = ledger
                .as_ref()
                .map(|l| (l.violations.borrow().clone(), *l.started.borrow()))
                .unwrap_or_default();
            let observed = Observed {
                rec,
                final_state,
                converged,
                violations,
                leaders,
                findings,
                containers,
                traffic: traffic_log,
                control_plane_down,
                cluster: ledger.zip(api_log).map(|(ledger, api)| ClusterObservers {
                    api,
                    ledger,
                    nodes: node_names(&s)
                        .into_iter()
                        .enumerate()
                        .map(|(i, n)| (n, dc_of(&s, i)))
                        .collect(),
                }),
            };
            let records = driver.borrow().records().to_vec();
            (
                observed,
                records,
                (trace.hash(), trace.net_hash()),
                trace.events(),
                trace.lines(),
                sim_secs,
            )
        });
    let wall_seconds = wall.elapsed().as_secs_f64();
    let summary = judge(
        scenario,
        opts,
        "engine",
        observed,
        records,
        hash,
        events,
        sim_secs,
        wall_seconds,
    );
    RunOutcome {
        summary,
        trace,
        net_hash,
    }
}

/// Runs every invariant's checker and assembles the summary.
#[allow(clippy::too_many_arguments)]
pub fn judge(
    s: &Scenario,
    opts: &RunOptions,
    backend: &str,
    observed: Observed,
    faults: Vec<FaultRecord>,
    hash: u64,
    events: u64,
    simulated_seconds: f64,
    wall_seconds: f64,
) -> Summary {
    let rec = observed.rec.borrow();
    let mut results = Vec::new();
    let mut set_lost = 0;
    let healed_s = s.duration.0.as_secs_f64();
    for inv in &s.invariants {
        let kind = inv.kind().name().to_string();
        let name = inv.display_name().to_string();
        // When a violated invariant broke, where its checker can tell.
        let mut at_ns: Option<u64> = None;
        let (holds, detail) = match inv.kind() {
            InvariantKind::Linearizable => match linearizable::check(&rec.history, 2_000_000) {
                linearizable::Verdict::Linearizable => (
                    true,
                    format!("{} register operations linearizable", rec.history.ops.len()),
                ),
                linearizable::Verdict::NotLinearizable { key, detail, .. } => {
                    (false, format!("key {key}: {detail}"))
                }
                linearizable::Verdict::Undecided { key, steps } => (
                    false,
                    format!("undecided: key {key} exhausted the search budget after {steps} steps"),
                ),
            },
            InvariantKind::NoLostWrites => {
                if let Some(e) = &observed.final_state.error {
                    (false, e.clone())
                } else {
                    let verdict = set::check_set(&set::SetCheck {
                        acknowledged: rec.set_acknowledged.clone(),
                        unknown: rec.set_unknown.clone(),
                        final_read: observed
                            .final_state
                            .set
                            .iter()
                            .map(|(_, k, _)| k.clone())
                            .collect(),
                    });
                    set_lost = verdict.lost.len() as u64;
                    if verdict.ok() {
                        (
                            true,
                            format!(
                                "{} acknowledged adds all present ({} of {} unknown ones too)",
                                rec.set_acknowledged.len(),
                                verdict.recovered,
                                rec.set_unknown.len()
                            ),
                        )
                    } else {
                        let mut lost = verdict.lost.clone();
                        lost.truncate(5);
                        (
                            false,
                            format!(
                                "{} acknowledged writes lost (e.g. {}), {} unexpected",
                                verdict.lost.len(),
                                lost.join(", "),
                                verdict.unexpected.len()
                            ),
                        )
                    }
                }
            }
            InvariantKind::RaftSafety => {
                if observed.violations.is_empty() {
                    (
                        true,
                        format!(
                            "{} leader terms, no safety violation",
                            observed.leaders.len()
                        ),
                    )
                } else {
                    // One broken entry is usually followed by every later
                    // one: name the first few and count the rest.
                    let v = &observed.violations;
                    let more = match v.len() {
                        n if n > 3 => format!("; and {} more", n - 3),
                        _ => String::new(),
                    };
                    (false, format!("{}{more}", v[..v.len().min(3)].join("; ")))
                }
            }
            InvariantKind::Converges => {
                let cluster =
                    crate::cluster::enabled(s).then(|| observed.findings.borrow().ready.clone());
                match (&observed.converged, cluster) {
                    (Err(e), _) => (false, e.clone()),
                    (Ok(_), Some(Some(Err(e)))) => (false, e),
                    (Ok(_), Some(None)) => (false, "the cluster probe did not finish".into()),
                    (Ok(_), Some(Some(Ok(d)))) => (
                        true,
                        format!(
                            "store replicas agreed; every node Ready, every deployment at its desired ready replicas and every service's endpoints equal to its ready pods {:.1}s after healing",
                            d.as_secs_f64()
                        ),
                    ),
                    (Ok(d), None) => (
                        true,
                        format!("replicas agreed {:.1}s after healing", d.as_secs_f64()),
                    ),
                }
            }
            InvariantKind::Availability => {
                let InvariantSpec::Availability(a) = &inv.spec else {
                    unreachable!("the kind's settings")
                };
                let (holds, detail, at) = crate::slo::availability(a, &observed.traffic.borrow());
                at_ns = at;
                (holds, detail)
            }
            InvariantKind::Latency => {
                let InvariantSpec::Latency(l) = &inv.spec else {
                    unreachable!("the kind's settings")
                };
                crate::slo::latency(l, &observed.traffic.borrow())
            }
            InvariantKind::StaticStability => {
                let InvariantSpec::StaticStability(st) = &inv.spec else {
                    unreachable!("the kind's settings")
                };
                let (holds, detail, at) = crate::slo::static_stability(
                    st,
                    &observed.traffic.borrow(),
                    &observed.control_plane_down,
                );
                at_ns = at;
                (holds, detail)
            }
            InvariantKind::DeploymentsReady => match &observed.findings.borrow().ready {
                Some(Ok(d)) => (
                    true,
                    format!(
                        "every node Ready and every deployment at its desired ready replicas {:.1}s after healing",
                        d.as_secs_f64()
                    ),
                ),
                Some(Err(e)) => (false, e.clone()),
                None => (false, "the cluster probe did not finish".into()),
            },
            InvariantKind::SingleBinding => {
                let f = observed.findings.borrow();
                match (f.double_bindings.first(), f.auditor_errors.first()) {
                    (Some((at, what)), _) => (
                        false,
                        format!(
                            "at {:.3}s: {what} ({} in all)",
                            *at as f64 / 1e9,
                            f.double_bindings.len()
                        ),
                    ),
                    (None, Some(e)) => (false, e.clone()),
                    (None, None) => (
                        true,
                        format!(
                            "{} pods bound, each once (store history to revision {})",
                            f.pods_bound, f.last_revision
                        ),
                    ),
                }
            }
            InvariantKind::NoOvercommit => {
                let f = observed.findings.borrow();
                match (f.overcommits.first(), f.auditor_errors.first()) {
                    (Some((at, what)), _) => {
                        (false, format!("at {:.3}s: {what}", *at as f64 / 1e9))
                    }
                    (None, Some(e)) => (false, e.clone()),
                    (None, None) => (
                        true,
                        "no node's bound pods ever requested more than it allocates".into(),
                    ),
                }
            }
            InvariantKind::PendingExplained => match &observed.findings.borrow().pending {
                Some(Ok(d)) => (true, d.clone()),
                Some(Err(e)) => (false, e.clone()),
                None => (false, "the cluster probe did not finish".into()),
            },
            InvariantKind::SingleContainer => match observed.containers.0.first() {
                Some((at, what)) => (false, format!("at {:.3}s: {what}", *at as f64 / 1e9)),
                None => (
                    true,
                    format!(
                        "{} containers started, never two at once for one pod and container",
                        observed.containers.1
                    ),
                ),
            },
            InvariantKind::WatchOrdered => {
                let committed: Vec<watch::WatchEvent> = {
                    let mut c: Vec<_> = observed
                        .final_state
                        .set
                        .iter()
                        .map(|(rev, k, v)| watch::WatchEvent {
                            revision: *rev,
                            key: k.clone(),
                            kind: watch::EventKind::Put { value: v.clone() },
                        })
                        .collect();
                    c.sort_by(|a, b| (a.revision, &a.key).cmp(&(b.revision, &b.key)));
                    c
                };
                let mut bad = None;
                let mut total = 0;
                for seg in &rec.watch {
                    total += seg.received.len();
                    let v = watch::check_watch(&watch::WatchCheck {
                        prefix: workload::SET_PREFIX.to_string(),
                        start_revision: seg.start_revision,
                        received: seg.received.clone(),
                        committed: committed.clone(),
                    });
                    if let (Some(violation), None) = (&v.violation, &bad) {
                        bad = Some(format!(
                            "watch from revision {}: {violation}",
                            seg.start_revision
                        ));
                    }
                }
                match bad {
                    None if observed.final_state.error.is_none() => (
                        true,
                        format!(
                            "{total} events in {} segment(s), in order, no gap",
                            rec.watch.len()
                        ),
                    ),
                    None => (
                        false,
                        observed.final_state.error.clone().unwrap_or_default(),
                    ),
                    Some(b) => (false, b),
                }
            }
        };
        if !holds && at_ns.is_none() {
            let f = observed.findings.borrow();
            at_ns = match inv.kind() {
                InvariantKind::SingleBinding => f.double_bindings.first().map(|x| x.0),
                InvariantKind::NoOvercommit => f.overcommits.first().map(|x| x.0),
                InvariantKind::SingleContainer => observed.containers.0.first().map(|x| x.0),
                // Judged at the deadline after healing.
                InvariantKind::Converges | InvariantKind::DeploymentsReady => {
                    let within = inv.within().map(|d| d.as_secs_f64()).unwrap_or(
                        if inv.kind() == InvariantKind::Converges && !crate::cluster::enabled(s) {
                            60.0
                        } else {
                            120.0
                        },
                    );
                    Some(((healed_s + within).min(simulated_seconds) * 1e9) as u64)
                }
                _ => None,
            };
        }
        results.push(InvariantResult {
            name,
            kind,
            holds,
            detail,
            at_s: at_ns.map(|ns| ns as f64 / 1e9),
        });
    }
    let passed = results.iter().all(|r| r.holds);
    let step = crate::observe::step_seconds(simulated_seconds);
    let services = crate::slo::reports(
        s,
        &observed.traffic.borrow(),
        &faults,
        step,
        simulated_seconds,
    );
    let nodes = observed
        .cluster
        .as_ref()
        .map(|c| {
            let names: Vec<String> = c.nodes.iter().map(|(n, _)| n.clone()).collect();
            let end_ns = (simulated_seconds * 1e9) as u64;
            let pods = c.ledger.pods_per_host(&names, step * 1_000_000_000, end_ns);
            let f = observed.findings.borrow();
            c.nodes
                .iter()
                .zip(pods)
                .map(|((node, dc), pods)| NodeTimeline {
                    node: node.clone(),
                    datacenter: dc.clone(),
                    pods,
                    ready: f
                        .readiness
                        .get(node)
                        .into_iter()
                        .flatten()
                        .map(|(at, status)| ReadyChange {
                            t_s: *at as f64 / 1e9,
                            status: status.clone(),
                        })
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    let api = observed
        .cluster
        .as_ref()
        .map(|c| c.api.series(step, simulated_seconds))
        .unwrap_or_default();
    let fault_schedule = faults::schedule::plan_toml(&faults::plan(s, opts.seed));
    Summary {
        scenario: s.name.clone(),
        path: opts.path.clone(),
        seed: opts.seed,
        verdict: if passed { "pass" } else { "fail" }.into(),
        expect: format!("{:?}", s.expect).to_lowercase(),
        backend: backend.into(),
        trace_hash: format!("{hash:016x}"),
        simulated_seconds,
        wall_seconds,
        events,
        faults,
        invariants: results,
        reproduce: reproduce_command(&opts.path, opts.seed, backend),
        stats: RunStats {
            ops_ok: rec.ops_ok,
            ops_failed: rec.ops_failed,
            ops_unknown: rec.ops_unknown,
            set_acknowledged: rec.set_acknowledged.len() as u64,
            set_lost,
            watch_events: rec.watch.iter().map(|s| s.received.len() as u64).sum(),
            leaders: observed.leaders.len() as u64,
            converged_after_s: observed.converged.as_ref().ok().map(|d| d.as_secs_f64()),
        },
        faulty_phase_s: s.duration.0.as_secs_f64(),
        timeline: if rec.samples.is_empty() {
            traffic_timeline(&observed.traffic.borrow(), simulated_seconds)
        } else {
            timeline(&rec.samples, simulated_seconds)
        },
        services,
        control_plane_down: observed
            .control_plane_down
            .iter()
            .map(|&(a, b)| (a as f64 / 1e9, b as f64 / 1e9))
            .collect(),
        leaders: observed
            .leaders
            .iter()
            .map(|(_, term, host, at)| LeaderChange {
                t_s: *at as f64 / 1e9,
                term: *term,
                host: host.clone(),
            })
            .collect(),
        step_s: step as f64,
        nodes,
        api,
        fault_schedule,
    }
}

/// User requests as store-client samples, for the timeline.
fn traffic_timeline(log: &TrafficLog, seconds: f64) -> Vec<TimelinePoint> {
    let samples: Vec<Sample> = log
        .requests
        .iter()
        .map(|r| Sample {
            invoke_ns: r.sent_ns,
            complete_ns: Some(r.done_ns),
            outcome: if r.outcome == traffic::Outcome::Ok {
                SampleOutcome::Ok
            } else {
                SampleOutcome::Failed
            },
        })
        .collect();
    timeline(&samples, seconds)
}

/// Buckets client operations by simulated second.
fn timeline(samples: &[Sample], seconds: f64) -> Vec<TimelinePoint> {
    let n = seconds.ceil().max(1.0) as usize;
    let mut points: Vec<TimelinePoint> = (0..n)
        .map(|i| TimelinePoint {
            t_s: i as f64,
            ..Default::default()
        })
        .collect();
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); n];
    let sec = |ns: u64| ((ns / 1_000_000_000) as usize).min(n - 1);
    for smp in samples {
        match (smp.outcome, smp.complete_ns) {
            (SampleOutcome::Ok, Some(done)) => {
                points[sec(done)].ok += 1;
                latencies[sec(done)].push(done.saturating_sub(smp.invoke_ns));
            }
            (SampleOutcome::Failed, Some(done)) => points[sec(done)].failed += 1,
            _ => points[sec(smp.invoke_ns)].unknown += 1,
        }
    }
    for (p, l) in points.iter_mut().zip(latencies) {
        if let Some((p50, p99)) = crate::observe::p50_p99_ms(l) {
            (p.p50_ms, p.p99_ms) = (p50, p99);
        }
    }
    points
}

/// The command that replays a run.
pub fn reproduce_command(path: &str, seed: u64, backend: &str) -> String {
    if backend == "engine" {
        format!("faultline sim run {path} --seed {seed}")
    } else {
        format!("faultline sim run {path} --seed {seed} --backend {backend}")
    }
}
