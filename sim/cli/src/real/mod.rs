//! `faultline real`: a scenario file played against a real cluster.
//!
//! `faultline real run SCENARIO` stands the scenario's cluster up in
//! Docker (a container per master and per node, each with its own address
//! and host name on a private network of the run's), runs the scenario's
//! workloads from this process (the user who applies the deployments, the
//! users of the services behind their load balancer, the store clients,
//! the auditor of the store's history), drives the faults the seed draws
//! for real (`control.rs`), heals, and judges with the simulator's own
//! checkers (`faultline_runner::summary`). The masters and nodes in the
//! containers are built by the very functions that build the simulator's
//! (`faultline_runner::world::master_spec`, `node_spec`), from the same
//! scenario file mounted into them; they report what the checkers need
//! (Raft leaders and applied entries, lease holders, containers started and
//! ended) as observation lines in their logs, which this process follows.
//!
//! - [`docker`]: the run's image, network and containers, and their removal;
//! - [`netns`]: rules and routes inside the containers' network namespaces;
//! - [`control`]: the faults, done for real;
//! - [`support`]: which fault kinds can be done for real, and why not.

mod control;
pub mod docker;
mod netns;
pub mod support;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::{Args, Subcommand};
use faultline_checker::ledger::{Ledger, ReportingRuntime};
use faultline_checker::raft::RaftMonitor;
use faultline_checker::record::{Clock, Recorder, SharedTrafficLog, TrafficLog};
use faultline_env::real::{ObservationLog, RealNet};
use faultline_env::{Env, NullObserver};
use faultline_faults::FaultDriver;
use faultline_kubelet::SimRuntime;
use faultline_reports::{InvariantResult, Summary};
use faultline_runner::checker;
use faultline_runner::hosts;
use faultline_runner::observe::ApiLog;
use faultline_runner::run::{ClusterObservers, Finished, Observed, RunOptions};
use faultline_runner::scenario::{dc_of, master_names, node_names, traffic_clients, Scenario};
use faultline_runner::world;
use futures_util::StreamExt;

use control::RealControl;
use docker::RunDocker;

#[derive(Subcommand)]
pub enum RealCommand {
    /// Play a scenario file against a real cluster in Docker containers (a
    /// container per master and per node on a private network), with its
    /// faults done for real (containers killed, frozen, cut off by packet
    /// filter rules), judged by the simulator's checkers. Needs root and
    /// the Docker daemon; everything it creates is removed at the end, on
    /// failure and on Ctrl-C. Fault kinds that cannot be done for real are
    /// refused before anything starts (exit 2; `faultline real kinds`
    /// lists them). Exit codes: 0 = every invariant held, 1 = one was
    /// violated (or a fault could not be done), 2 = bad input or no Docker.
    Run(RunArgs),
    /// Remove what real runs left behind (containers, networks and images
    /// labelled `faultline.real`) whose `faultline real run` is no longer
    /// running.
    Clean {
        /// Remove every real run's, also of runs still going.
        #[arg(long)]
        all: bool,
    },
    /// List every fault kind and how a real run does it, or why it cannot.
    Kinds,
    /// A master inside a real run's container (not for use by hand).
    #[command(hide = true)]
    Master(AgentArgs),
    /// A worker node inside a real run's container (not for use by hand).
    #[command(hide = true)]
    Node(AgentArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// The scenario file (TOML): the same files `faultline sim run` takes.
    scenario: PathBuf,
    /// Seed of the fault schedule (default: the scenario's `seed`). The
    /// schedule replays; the run itself does not (real time, real network).
    #[arg(long)]
    seed: Option<u64>,
    /// Folder for the report (default: reports/out/NAME-seedN-real).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Leave the containers, network and image for inspection (the next
    /// real run, or `faultline real clean`, removes them).
    #[arg(long)]
    keep: bool,
    /// Write only summary.json, junit.xml and faults.toml.
    #[arg(long)]
    no_charts: bool,
}

#[derive(Args)]
pub struct AgentArgs {
    #[arg(long)]
    scenario: PathBuf,
    /// 1-based for masters, 0-based for nodes (as the simulator counts).
    #[arg(long)]
    index: usize,
    #[arg(long)]
    seed: u64,
    /// The container's own address: its servers listen there (a node's
    /// pods listen on their own addresses on the same ports).
    #[arg(long)]
    listen_ip: String,
    /// Rejoin the cluster even on an empty disk (the container that
    /// replaced one whose disk was lost).
    #[arg(long)]
    rejoin: bool,
}

pub fn main(cmd: RealCommand) -> ExitCode {
    match cmd {
        RealCommand::Run(args) => run(args),
        RealCommand::Clean { all } => faultline_env::real::block_on_local(async move {
            match docker::clean(all).await {
                Ok(l) => {
                    println!(
                        "removed {} containers, {} networks, {} images",
                        l.containers, l.networks, l.images
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => crate::usage_error(e),
            }
        }),
        RealCommand::Kinds => {
            let netem = netns::has_netem();
            for (kind, how) in support::table(netem) {
                match how {
                    Ok(m) => println!("{kind:<24} real: {m}"),
                    Err(why) => println!("{kind:<24} refused: {why}"),
                }
            }
            ExitCode::SUCCESS
        }
        RealCommand::Master(args) => agent_master(args),
        RealCommand::Node(args) => agent_node(args),
    }
}

/// The first address of masters, nodes and users on the run's /24.
const MASTER_BASE: usize = 10;
const NODE_BASE: usize = 20;
const USER_BASE: usize = 200;

fn run(args: RunArgs) -> ExitCode {
    let s = match crate::load(&args.scenario) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let seed = args.seed.unwrap_or(s.seed);
    let plan = faultline_faults::plan(&s, seed);
    let refused = support::refusals(&s, &plan, netns::has_netem());
    if !refused.is_empty() {
        for r in &refused {
            eprintln!("error: {}: {r}", args.scenario.display());
        }
        return ExitCode::from(2);
    }
    if let Err(e) = netns::check_tools() {
        return crate::usage_error(e);
    }
    let path = match std::fs::canonicalize(&args.scenario) {
        Ok(p) => p,
        Err(e) => return crate::usage_error(format!("{}: {e}", args.scenario.display())),
    };
    let run_id = match faultline_env::real::random_seed() {
        Ok(r) => format!("{:08x}", r as u32),
        Err(e) => return crate::usage_error(format!("no run id from /dev/urandom: {e}")),
    };
    println!("scenario: {} ({})", s.name, args.scenario.display());
    if !s.description.is_empty() {
        println!("  {}", s.description);
    }
    println!(
        "real run {run_id}: {} masters and {} nodes in Docker containers; the fault schedule \
         replays from the seed, the run does not (real time, real network: no trace hash)",
        s.cluster.masters,
        node_names(&s).len()
    );
    let opts = RunOptions {
        seed,
        keep_trace: false,
        path: args.scenario.display().to_string(),
        progress: None,
    };
    let keep = args.keep;
    let scenario = s.clone();
    let outcome = faultline_env::real::block_on_local(async move {
        let s = scenario;
        match docker::clean(false).await {
            Ok(l) if l.containers + l.networks + l.images > 0 => eprintln!(
                "faultline real: removed what an earlier run left: {} containers, {} networks, {} images",
                l.containers, l.networks, l.images
            ),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
        // Ctrl-C and SIGTERM from here on end the run and clean up.
        use tokio::signal::unix::{signal, SignalKind};
        let catch = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| format!("cannot catch {name}: {e}"))
        };
        let (mut sigint, mut sigterm) = (
            catch(SignalKind::interrupt(), "SIGINT")?,
            catch(SignalKind::terminate(), "SIGTERM")?,
        );
        let interrupted = async move {
            tokio::select! {
                _ = sigint.recv() => {}
                _ = sigterm.recv() => {}
            }
        };
        tokio::pin!(interrupted);
        let docker = tokio::select! {
            d = RunDocker::create(&run_id) => Rc::new(d?),
            _ = &mut interrupted => {
                let _ = docker::remove_run(&run_id).await;
                return Ok(None);
            }
        };
        let result = tokio::select! {
            r = phases(&s, &path, docker.clone(), &opts) => Some(r),
            _ = &mut interrupted => None,
        };
        let interrupted = result.is_none();
        if keep && !interrupted {
            eprintln!(
                "faultline real: kept run {run_id}'s containers (docker ps -a --filter label={}={run_id}); \
                 `faultline real clean` removes them",
                docker::LABEL_RUN
            );
        } else {
            match docker.remove_all().await {
                Ok(l) => eprintln!(
                    "faultline real: removed {} containers, {} network, {} image of run {run_id}",
                    l.containers, l.networks, l.images
                ),
                Err(e) => eprintln!("faultline real: cleaning up run {run_id}: {e}"),
            }
        }
        match result {
            Some(r) => r.map(Some),
            None => Ok(None),
        }
    });
    let summary = match outcome {
        Ok(Some(summary)) => summary,
        Ok(None) => {
            eprintln!("faultline real: interrupted");
            return ExitCode::from(130);
        }
        Err(e) => return crate::usage_error(e),
    };
    let dir = args.report.unwrap_or_else(|| {
        PathBuf::from(format!(
            "reports/out/{}-seed{}-real",
            summary.scenario, summary.seed
        ))
    });
    crate::print_summary(&summary, s.workload.is_some());
    if let Err(e) = crate::write_report(&summary, &dir, !args.no_charts) {
        return crate::usage_error(format!("cannot write the report: {e:#}"));
    }
    let page = if args.no_charts {
        "summary.json"
    } else {
        "index.html"
    };
    println!("report: {}", dir.join(page).display());
    println!("verdict: {}", summary.verdict);
    println!("seed: {}", summary.seed);
    println!("trace-hash: {}", summary.trace_hash);
    if summary.passed() {
        ExitCode::SUCCESS
    } else {
        println!("reproduce: {}", summary.reproduce);
        ExitCode::from(1)
    }
}

/// The run's hosts and their addresses.
struct Layout {
    masters: Vec<String>,
    nodes: Vec<String>,
    users: Vec<String>,
    addrs: BTreeMap<String, String>,
    datacenters: BTreeMap<String, String>,
}

fn layout(s: &Scenario, net24: &str) -> Layout {
    let masters = master_names(s.cluster.masters);
    let nodes = node_names(s);
    let users: Vec<String> = traffic_clients(s).into_iter().map(|c| c.name).collect();
    let mut addrs = BTreeMap::new();
    let mut datacenters = BTreeMap::new();
    for (i, m) in masters.iter().enumerate() {
        addrs.insert(m.clone(), format!("{net24}.{}", MASTER_BASE + i));
        datacenters.insert(m.clone(), dc_of(s, i));
    }
    for (i, n) in nodes.iter().enumerate() {
        addrs.insert(n.clone(), format!("{net24}.{}", NODE_BASE + i));
        datacenters.insert(n.clone(), dc_of(s, i));
    }
    for c in traffic_clients(s) {
        addrs.insert(
            c.name.clone(),
            format!(
                "{net24}.{}",
                USER_BASE + addrs.len() - masters.len() - nodes.len()
            ),
        );
        datacenters.insert(c.name, c.datacenter);
    }
    Layout {
        masters,
        nodes,
        users,
        addrs,
        datacenters,
    }
}

/// Adds `ip` to the run's bridge on this machine (a user's own source
/// address, so faults can cut it off like any host).
async fn add_bridge_address(bridge: &str, ip: &str) -> Result<(), String> {
    let out = tokio::process::Command::new("ip")
        .args(["addr", "add", &format!("{ip}/24"), "dev", bridge])
        .output()
        .await
        .map_err(|e| format!("ip addr add {ip} dev {bridge}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip addr add {ip} dev {bridge}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Everything a real run does between creating its network and removing
/// it: containers, workloads, faults, healing, probes, the verdict.
async fn phases(
    s: &Scenario,
    scenario: &Path,
    docker: Rc<RunDocker>,
    opts: &RunOptions,
) -> Result<Summary, String> {
    #[allow(clippy::disallowed_methods)] // real mode: wall time is the run's time
    let wall = std::time::Instant::now();
    let seed = opts.seed;
    let origin_ms = faultline_env::Clock::wall_ms(&faultline_env::real::RealClock);
    let start = tokio::time::Instant::now();
    let clock: Clock = Rc::new(move || start.elapsed().as_nanos() as u64);
    let lay = layout(s, &docker.net24);
    let seed_arg = seed.to_string();
    let agent = |role: &str, index: usize, ip: &str| -> Vec<String> {
        [
            "real",
            role,
            "--scenario",
            docker::SCENARIO_IN_CONTAINER,
            "--index",
            &index.to_string(),
            "--seed",
            &seed_arg,
            "--listen-ip",
            ip,
        ]
        .map(String::from)
        .to_vec()
    };
    for (i, m) in lay.masters.iter().enumerate() {
        let ip = &lay.addrs[m];
        docker
            .start_host(m, ip, scenario, agent("master", i + 1, ip))
            .await?;
    }
    for (i, n) in lay.nodes.iter().enumerate() {
        let ip = &lay.addrs[n];
        docker
            .start_host(n, ip, scenario, agent("node", i, ip))
            .await?;
    }
    for u in &lay.users {
        add_bridge_address(&docker.bridge, &lay.addrs[u]).await?;
    }
    let raft = Rc::new(RefCell::new(RaftMonitor::default()));
    let ledger = Rc::new(Ledger::new(clock.clone()));
    let ctl = Rc::new(RefCell::new(RealControl::new(
        docker.clone(),
        lay.addrs.clone(),
        lay.datacenters.clone(),
        lay.masters.clone(),
        lay.nodes.clone(),
        lay.users.clone(),
        raft.clone(),
        ledger.clone(),
    )));
    for n in &lay.nodes {
        RealControl::network_up(&ctl, n).await?;
    }
    let observed_count = Rc::new(Cell::new(0u64));
    let stop_following = Rc::new(Cell::new(false));
    for h in lay.masters.iter().chain(&lay.nodes) {
        tokio::task::spawn_local(follow(
            docker.clone(),
            h.clone(),
            Sink {
                raft: raft.clone(),
                ledger: ledger.clone(),
                origin_ms,
                count: observed_count.clone(),
            },
            stop_following.clone(),
        ));
    }

    // This process's hosts, each with an environment of its own that
    // reaches the containers by their scenario names.
    let scratch = std::env::temp_dir().join(format!("faultline-real-{}", docker.run));
    let names: BTreeMap<String, String> = lay.addrs.clone();
    let env_for = |name: &str, source: Option<&String>| -> Result<Env, String> {
        let mut net = RealNet::new("0.0.0.0").with_names(names.clone());
        if let Some(ip) = source {
            let ip: IpAddr = ip.parse().map_err(|e| format!("{ip}: {e}"))?;
            net = net.with_source(ip);
        }
        faultline_env::real::env_with_net(
            name,
            faultline_env::host_seed(seed, name),
            &scratch.join(name),
            net,
            Rc::new(NullObserver),
        )
        .map_err(|e| format!("{}: {e}", scratch.display()))
    };
    let rec = Recorder::new(clock.clone());
    let stop = Rc::new(Cell::new(false));
    let findings: checker::auditor::Findings = Default::default();
    let traffic_log: SharedTrafficLog = Rc::new(RefCell::new(TrafficLog::new(s)));
    let spawn = |main: faultline_engine::HostMain, env: Env| {
        tokio::task::spawn_local(main(env));
    };
    for (name, _, main) in world::hosts(s, &rec, &stop, None) {
        if !lay.masters.contains(&name) {
            spawn(main, env_for(&name, None)?);
        }
    }
    if s.has_nodes() {
        let limit = Duration::from_secs(60);
        spawn(
            hosts::user_once_nodes_ready(s, limit),
            env_for("user", None)?,
        );
        for (name, _, main) in hosts::users(s, &traffic_log, &clock, &stop) {
            spawn(main, env_for(&name, lay.addrs.get(&name))?);
        }
        spawn(
            hosts::auditor(s, findings.clone(), clock.clone()),
            env_for("auditor", None)?,
        );
    }

    // The faulty phase.
    let plan = faultline_faults::plan(s, seed);
    let driver = Rc::new(RefCell::new(FaultDriver::new(plan, seed)));
    let driving = tokio::task::spawn_local(drive_faults(ctl.clone(), driver.clone(), start));
    tokio::time::sleep(s.duration.0).await;
    driving.abort();
    stop.set(true);
    eprintln!("faultline real: healing");
    driver
        .borrow_mut()
        .heal_all(start.elapsed(), &mut *ctl.borrow_mut());
    RealControl::apply(&ctl).await;
    let healed_ns = clock();
    let control_plane_down = ctl.borrow().outages.until(healed_ns);
    // Whatever still is not running (a crash without `for`) starts again.
    for h in lay.masters.iter().chain(&lay.nodes) {
        if !docker.running(h).await {
            let _ = docker.unpause(h).await;
            if !docker.running(h).await {
                docker.start(h).await?;
                RealControl::network_up(&ctl, h).await?;
            }
        }
    }

    // Convergence, then the final reads.
    let result: hosts::StoreProbeResult = Default::default();
    spawn(
        hosts::store_probe(s, &rec, &result),
        env_for("probe", None)?,
    );
    let probe = hosts::cluster_probe_spec(s);
    let probing = probe.is_some();
    if let Some(spec) = probe {
        spawn(
            hosts::cluster_probe(s, spec, findings.clone()),
            env_for("cluster-probe", None)?,
        );
    }
    while result.borrow().is_none() || (probing && !findings.borrow().probed) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Let the auditor and the log followers read the last of it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_following.set(true);
    let (converged, final_state) = result.borrow_mut().take().expect("set above");
    let elapsed = start.elapsed().as_secs_f64();
    let errors = std::mem::take(&mut ctl.borrow_mut().errors);
    let records = driver.borrow().records().to_vec();
    let observed = Observed {
        rec,
        final_state,
        converged,
        raft: raft.borrow().clone(),
        findings,
        traffic: traffic_log,
        control_plane_down,
        cluster: s.has_nodes().then(|| ClusterObservers {
            // The API servers run in the containers: no per-request log.
            api: ApiLog::new(clock.clone()),
            ledger,
            nodes: lay
                .nodes
                .iter()
                .map(|n| (n.clone(), lay.datacenters[n].clone()))
                .collect(),
        }),
    };
    let mut summary = faultline_runner::summary::summarize(
        s,
        opts,
        Finished {
            backend: "real",
            observed,
            faults: records,
            trace_hash: 0,
            events: observed_count.get(),
            simulated_seconds: elapsed,
            wall_seconds: wall.elapsed().as_secs_f64(),
        },
    );
    summary.trace_hash = "none (a real run is not bit-reproducible)".into();
    // The API servers' requests are counted in their containers, not
    // here: no chart rather than one of zeros.
    summary.api.clear();
    if !errors.is_empty() {
        summary.invariants.push(InvariantResult {
            name: "faults-done".into(),
            kind: "faults-done".into(),
            holds: false,
            detail: format!(
                "{} fault actions failed for real: {}",
                errors.len(),
                errors.join("; ")
            ),
            at_s: None,
        });
        summary.verdict = "fail".into();
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(summary)
}

/// Plays the fault plan in real time.
async fn drive_faults(
    ctl: Rc<RefCell<RealControl>>,
    driver: Rc<RefCell<FaultDriver>>,
    start: tokio::time::Instant,
) {
    loop {
        let Some(next) = driver.borrow().next_time() else {
            return;
        };
        tokio::time::sleep_until(start + next).await;
        {
            let mut c = ctl.borrow_mut();
            driver.borrow_mut().advance(next, &mut *c);
            c.observe_control_plane(next.as_nanos() as u64);
        }
        RealControl::apply(&ctl).await;
    }
}

/// Where a container's observations go.
struct Sink {
    raft: Rc<RefCell<RaftMonitor>>,
    ledger: Rc<Ledger>,
    /// The run's start, wall-clock ms (observations carry wall time).
    origin_ms: u64,
    count: Rc<Cell<u64>>,
}

impl Sink {
    fn line(&self, line: &str) {
        let Some((ms, host, o)) = faultline_env::real::parse_observation(line) else {
            return;
        };
        let at_ns = ms.saturating_sub(self.origin_ms) * 1_000_000;
        self.count.set(self.count.get() + 1);
        match o {
            faultline_env::Observation::ContainerStarted { .. }
            | faultline_env::Observation::ContainerEnded { .. } => {
                self.ledger.observe(&host, at_ns, &o)
            }
            _ => {
                self.raft.borrow_mut().observe(&host, at_ns, &o);
            }
        }
    }
}

/// Follows `host`'s container log across its restarts, handing every
/// observation line to `sink` once.
async fn follow(docker: Rc<RunDocker>, host: String, sink: Sink, stop: Rc<Cell<bool>>) {
    use bollard::query_parameters::LogsOptionsBuilder;
    let name = docker.container(&host);
    // Lines are told apart by their wall-clock ms: after a reopen (from
    // the second the last one was read in), those already seen are
    // skipped.
    let mut last_ms = 0u64;
    let mut seen_at_last: Vec<String> = Vec::new();
    while !stop.get() {
        let options = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .since((last_ms / 1000) as i32)
            .build();
        let mut out = docker.docker.logs(&name, Some(options));
        while let Some(Ok(chunk)) = out.next().await {
            let bytes = chunk.into_bytes();
            for line in String::from_utf8_lossy(&bytes).lines() {
                let ms = line
                    .split_once(' ')
                    .and_then(|(t, _)| t.split_once('.'))
                    .and_then(|(s, m)| Some(s.parse::<u64>().ok()? * 1000 + m.parse::<u64>().ok()?))
                    .unwrap_or(0);
                if ms < last_ms || (ms == last_ms && seen_at_last.iter().any(|l| l == line)) {
                    continue;
                }
                if ms > last_ms {
                    last_ms = ms;
                    seen_at_last.clear();
                }
                seen_at_last.push(line.to_string());
                sink.line(line);
            }
            if stop.get() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The environment of a master or node in its container: files under
/// `/data`, servers on its own address, observations in its log.
fn agent_env(name: &str, args: &AgentArgs) -> Result<Env, ExitCode> {
    faultline_env::real::env_with_observer(
        name,
        faultline_env::host_seed(args.seed, name),
        Path::new(DATA),
        &args.listen_ip,
        Rc::new(ObservationLog),
    )
    .map_err(|e| crate::usage_error(format!("{DATA}: {e}")))
}

/// Where a container keeps its files.
const DATA: &str = "/data";

/// `faultline real master`: master `index` of the scenario, as the
/// simulator builds it, for real (data under /data, observations logged).
fn agent_master(args: AgentArgs) -> ExitCode {
    let s = match crate::load(&args.scenario) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(name) = master_names(s.cluster.masters)
        .get(args.index.wrapping_sub(1))
        .cloned()
    else {
        return crate::usage_error(format!("--index {}: no such master", args.index));
    };
    let mut spec = world::master_spec(&s, args.index as u64, None);
    let data = Path::new(DATA);
    // As the simulator's masters do after their first start (and an
    // operator once the cluster is up): rejoin; an empty disk then means
    // lost data.
    let marker = data.join(".faultline-started");
    spec.store.rejoin = args.rejoin || marker.exists();
    if let Err(e) = std::fs::create_dir_all(data).and_then(|()| std::fs::write(&marker, b"")) {
        return crate::usage_error(format!("{}: {e}", marker.display()));
    }
    let env = match agent_env(&name, &args) {
        Ok(env) => env,
        Err(code) => return code,
    };
    match faultline_env::real::block_on_local(faultline_roles::master(env, spec)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: master {name}: {e}");
            ExitCode::from(1)
        }
    }
}

/// `faultline real node`: worker node `index` of the scenario, as the
/// simulator builds it, over the built-in runtime whose containers it
/// reports; SIGUSR1 restarts its kubelet and proxy over the same runtime
/// (the `kubelet-restart` fault), as the simulator's node does.
fn agent_node(args: AgentArgs) -> ExitCode {
    let s = match crate::load(&args.scenario) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(name) = node_names(&s).get(args.index).cloned() else {
        return crate::usage_error(format!("--index {}: no such node", args.index));
    };
    let dc = dc_of(&s, args.index);
    let spec = world::node_spec(&s, args.index, &name, &dc);
    let env = match agent_env(&name, &args) {
        Ok(env) => env,
        Err(code) => return code,
    };
    let probe = format!("{}.255.254:0", world::pod_prefix(args.index));
    let result = faultline_env::real::block_on_local(async move {
        let mut restart =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
                .map_err(|e| format!("cannot catch SIGUSR1: {e}"))?;
        // The run sets up the pod network from outside once the container
        // runs: wait for it (an address of the pods' range can be bound).
        let mut waited = 0;
        #[allow(clippy::disallowed_methods)] // real mode: a real socket
        while std::net::TcpListener::bind(&probe).is_err() {
            waited += 1;
            if waited > 600 {
                return Err(format!("no pod network: cannot bind {probe} after 60s"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let runtime = Rc::new(ReportingRuntime::new(
            SimRuntime::new(env.clone()),
            env.clone(),
        ));
        loop {
            let (penv, process) = env.process();
            faultline_roles::start_node(&penv, &spec, runtime.clone());
            restart.recv().await;
            process.abort_all();
            env.trace(format_args!("kubelet restart"));
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: node {name}: {e}");
            ExitCode::from(1)
        }
    }
}
