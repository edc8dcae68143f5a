//! Running one scenario at one seed on the event-driven engine. The phases
//! follow the VOPR: build the world, run the workloads under the fault
//! plan, heal everything, require convergence within a deadline, read the
//! final state; then the checkers judge (`summary.rs`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use faultline_checker::auditor::Findings;
use faultline_checker::ledger::Ledger;
use faultline_checker::raft::RaftMonitor;
use faultline_checker::record::{Clock, Recorder, SharedTrafficLog, TrafficLog};
use faultline_engine::{run as run_world, LinkConfig, SimDisk, World, WorldConfig};
use faultline_faults::control::{control_plane_down, Outages};
use faultline_faults::{Control, FaultDriver};
use faultline_scenario::{dc_of, master_names, node_names, traffic_clients, Scenario};
use tokio::time::Instant;

use crate::hosts::{self, StoreProbeResult};
use crate::observe::ApiLog;
use crate::run::{ClusterObservers, Finished, Observed, RunOptions, RunOutcome};
use crate::world::{self, KubeletBells};

/// The engine's world as the faults see it.
struct EngineControl {
    world: World,
    masters: Vec<String>,
    nodes: Vec<String>,
    users: Vec<String>,
    ledger: Option<Rc<Ledger>>,
    bells: KubeletBells,
    raft: Rc<RefCell<RaftMonitor>>,
    /// Control-plane outages.
    control_plane_down: Outages,
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

    /// Notes whether the control plane can serve the nodes.
    fn observe_control_plane(&mut self, now_ns: u64) {
        let net = self.world.net();
        let down = control_plane_down(
            &self.masters,
            &self.nodes,
            |h| self.world.is_up(self.id(h)),
            |a, b| net.is_blocked(self.id(a), self.id(b)),
        );
        self.control_plane_down.note(down, now_ns);
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
        let host = self.raft.borrow().latest_leader()?;
        self.is_up(&host).then_some(host)
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
        self.raft.borrow().lease_holder(lease)
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
        if self.ledger.is_none() || !self.is_up(host) {
            return false;
        }
        self.bells.bell(host).notify_one();
        true
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

/// The world's link latencies, from the scenario.
fn world_config(s: &Scenario, seed: u64, keep_trace: bool) -> WorldConfig {
    let mut cfg = WorldConfig::new(seed);
    cfg.keep_trace = keep_trace;
    let link = |latency: Duration| LinkConfig {
        latency,
        jitter: s.cluster.latency.jitter.0,
        loss: 0.0,
    };
    cfg.within = link(s.cluster.latency.within.0);
    cfg.between = link(s.cluster.latency.between.0);
    cfg
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
            let world = World::new(world_config(&s, seed, keep));
            if let Some(p) = progress {
                world
                    .trace()
                    .on_progress(Box::new(move |ns| (p.0)(ns as f64 / 1e9)));
            }
            let raft = Rc::new(RefCell::new(RaftMonitor::default()));
            let monitor = raft.clone();
            world
                .trace()
                .on_observation(Box::new(move |host, now, obs| {
                    monitor.borrow_mut().observe(host, now, obs)
                }));
            let start = Instant::now();
            let clock: Clock =
                Rc::new(move || Instant::now().duration_since(start).as_nanos() as u64);
            let rec = Recorder::new(clock.clone());
            let stop = Rc::new(Cell::new(false));
            let api_log = s.has_nodes().then(|| ApiLog::new(clock.clone()));
            for (name, dc, main) in world::hosts(&s, &rec, &stop, api_log.as_ref()) {
                world.add_host(&name, &dc, main);
            }
            let findings: Findings = Default::default();
            let ledger = s.has_nodes().then(|| Rc::new(Ledger::new(clock.clone())));
            let bells = KubeletBells::default();
            let traffic_log: SharedTrafficLog = Rc::new(RefCell::new(TrafficLog::new(&s)));
            if let Some(ledger) = &ledger {
                for (i, n) in node_names(&s).iter().enumerate() {
                    let dc = dc_of(&s, i);
                    let main = world::node_main(&s, i, &dc, ledger.clone(), bells.clone());
                    world.add_host(n, &dc, main);
                }
                world.add_host("user", &dc_of(&s, 0), hosts::user(&s));
                for (name, dc, main) in hosts::users(&s, &traffic_log, &clock, &stop) {
                    world.add_host(&name, &dc, main);
                }
                world.add_host(
                    "auditor",
                    &dc_of(&s, 0),
                    hosts::auditor(&s, findings.clone(), clock.clone()),
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
                bells,
                raft: raft.clone(),
                control_plane_down: Outages::default(),
                inert,
            }));
            let plan = faultline_faults::plan(&s, seed);
            let driver = Rc::new(RefCell::new(FaultDriver::new(plan, seed)));
            let driving = tokio::task::spawn_local(drive_faults(ctl.clone(), driver.clone()));
            tokio::time::sleep(s.duration.0).await;

            // Heal everything still active, then require convergence.
            driving.abort();
            stop.set(true);
            world.note(format_args!("phase heal"));
            driver
                .borrow_mut()
                .heal_all(world.elapsed(), &mut *ctl.borrow_mut());
            let healed_ns = world.elapsed().as_nanos() as u64;
            let control_plane_down = ctl.borrow().control_plane_down.until(healed_ns);
            for i in 0..world.host_count() {
                world.restart(i);
            }
            world.net().unblock_all();
            let result: StoreProbeResult = Default::default();
            world.add_host(
                "probe",
                &dc_of(&s, 0),
                hosts::store_probe(&s, &rec, &result),
            );
            let probe = hosts::cluster_probe_spec(&s);
            let probing = probe.is_some();
            if let Some(spec) = probe {
                world.add_host(
                    "cluster-probe",
                    &dc_of(&s, 0),
                    hosts::cluster_probe(&s, spec, findings.clone()),
                );
            }
            while result.borrow().is_none() || (probing && !findings.borrow().probed) {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            // Let the auditor read the last writes.
            tokio::time::sleep(Duration::from_secs(2)).await;
            world.note(format_args!("phase done"));
            let (converged, final_state) = result.borrow_mut().take().expect("set above");
            let sim_secs = world.elapsed().as_secs_f64();
            world.shutdown();
            let trace = world.trace();
            drop(ctl);
            let observed = Observed {
                rec,
                final_state,
                converged,
                raft: Rc::try_unwrap(raft)
                    .map(RefCell::into_inner)
                    .unwrap_or_else(|rc| rc.borrow().clone()),
                findings,
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
    let summary = crate::summary::summarize(
        scenario,
        opts,
        Finished {
            backend: "engine",
            observed,
            faults: records,
            trace_hash: hash,
            events,
            simulated_seconds: sim_secs,
            wall_seconds,
        },
    );
    RunOutcome {
        summary,
        trace,
        net_hash,
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
