//! `faultline`: one binary, many roles.
//!
//! Exit codes: 0 = every invariant held (or the command succeeded),
//! 1 = an invariant was violated, 2 = bad input (scenario, flags, files).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: a simulation allocates and
/// frees many small buffers (HTTP heads, JSON, network segments), and
/// glibc's malloc was a quarter of the profile. Allocation addresses never
/// reach simulated logic, so determinism is unaffected (the replay tests
/// check it).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod explore;
mod master;
mod node;
mod pki;
mod real;
mod report;
mod shrink;
mod up;

#[derive(Parser)]
#[command(
    name = "faultline",
    version,
    about = "Deterministic cluster simulator and chaos-testing framework",
    long_about = "Deterministic cluster simulator and chaos-testing framework.\n\n\
                  Runs a real Raft-replicated store inside a simulated network, clock and disk, \
                  injects faults from a seed, and checks invariants. The same seed replays the \
                  same run, bit for bit. `master`, `node` and `up` run the same orchestrator \
                  for real, over TCP.\n\n\
                  Exit codes: 0 = pass, 1 = an invariant was violated, 2 = bad input."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate scenarios.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Run one store replica (a master) for real, over TCP, with its data on disk.
    Master(master::MasterArgs),
    /// Run one worker node for real: the kubelet (containers from the
    /// built-in apps, programs of this machine or Docker images, each pod
    /// on its own IP) and the node's service proxy.
    Node(node::NodeArgs),
    /// Bring a whole cluster up for real on this machine (masters and
    /// nodes on loopback addresses, one process each) until Ctrl-C.
    Up(up::UpArgs),
    /// Play scenario files against real clusters in Docker containers,
    /// with real faults, judged by the simulator's checkers.
    #[command(subcommand)]
    Real(real::RealCommand),
    // (Its help text is on `ReportArgs`.)
    Report(report::ReportArgs),
    /// The process runtime's container shim (started by `faultline node
    /// --runtime process`, one per container; not for use by hand).
    #[command(hide = true)]
    Shim {
        /// The container's directory.
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    Engine,
    Turmoil,
}

#[derive(Subcommand)]
enum SimCommand {
    /// Run one scenario at one seed and judge its invariants.
    Run {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// Seed (default: the scenario's `seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Folder for the report: index.html, a PNG per chart, summary.json,
        /// junit.xml and faults.toml (default: reports/out/NAME-seedN).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Print the event trace: one `trace:` line per event, starting
        /// with its simulated time in seconds.
        #[arg(long)]
        trace: bool,
        /// Print only trace events at or after this simulated time since the
        /// start of the run, like `90s`, `5m` or `1m30s` (implies --trace).
        #[arg(long, value_name = "T", value_parser = parse_time)]
        from: Option<Duration>,
        /// Print only trace events at or before this simulated time, like
        /// `90s`, `5m` or `1m30s` (implies --trace).
        #[arg(long, value_name = "T", value_parser = parse_time)]
        to: Option<Duration>,
        /// Simulation backend: the event-driven engine, or turmoil (an
        /// independent network model; slower, for small worlds).
        #[arg(long, value_enum, default_value_t = Backend::Engine)]
        backend: Backend,
        /// Write only the machine outputs (summary.json, junit.xml,
        /// faults.toml), not the page and charts; `faultline report DIR`
        /// draws them later from summary.json.
        #[arg(long)]
        no_charts: bool,
    },
    /// Validate scenario files without running them.
    Check {
        /// Scenario files or folders of them.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run scenarios over a range of seeds in parallel processes.
    Explore(explore::ExploreArgs),
    /// Minimise the fault schedule of a failing seed: delta debugging over
    /// its faults, then shorter durations; writes a scenario file with the
    /// smallest schedule that still violates the same invariant.
    Shrink(shrink::ShrinkArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(SimCommand::Run {
            scenario,
            seed,
            report,
            trace,
            from,
            to,
            backend,
            no_charts,
        }) => {
            let window = TraceWindow { from, to };
            if let (Some(f), Some(t)) = (from, to) {
                if f > t {
                    eprintln!(
                        "error: --from {} is after --to {}: the window is empty",
                        humanize(f),
                        humanize(t)
                    );
                    return ExitCode::from(2);
                }
            }
            let trace = (trace || from.is_some() || to.is_some()).then_some(window);
            sim_run(&scenario, seed, report, trace, backend, !no_charts)
        }
        Command::Sim(SimCommand::Check { files }) => sim_check(&files),
        Command::Sim(SimCommand::Explore(args)) => explore::explore(args),
        Command::Sim(SimCommand::Shrink(args)) => shrink::shrink(args),
        Command::Master(args) => master::run(args),
        Command::Node(args) => node::run(args),
        Command::Up(args) => up::run(args),
        Command::Real(cmd) => real::main(cmd),
        Command::Report(args) => report::run(args),
        Command::Shim { dir } => ExitCode::from(faultline_cri::shim::main(&dir) as u8),
    }
}

/// A `--from`/`--to` value: a duration since the start of the run. A bad
/// one is a usage error (exit 2) naming the flag.
fn parse_time(s: &str) -> Result<Duration, String> {
    faultline_runner::scenario::parse_duration(s)
}

fn humanize(d: Duration) -> String {
    faultline_runner::scenario::Dur(d).to_string()
}

/// Which trace lines `--trace` prints: those whose simulated time is in
/// `[from, to]` (either end open when not given).
#[derive(Clone, Copy)]
struct TraceWindow {
    from: Option<Duration>,
    to: Option<Duration>,
}

impl TraceWindow {
    fn contains(&self, t: Duration) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|e| t <= e)
    }
}

/// The simulated time a trace line starts with: `SECONDS.FRACTION host ...`.
fn trace_time(line: &str) -> Option<Duration> {
    let first = line.split_whitespace().next()?;
    let (secs, frac) = first.split_once('.').unwrap_or((first, ""));
    if secs.is_empty()
        || frac.len() > 9
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let nanos = if frac.is_empty() {
        0
    } else {
        frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32)
    };
    Some(Duration::new(secs.parse().ok()?, nanos))
}

/// Prints the trace lines inside `window`. A line without a time of its
/// own (none today) goes with the line before it.
fn print_trace(lines: &[String], window: TraceWindow) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut keep = window.contains(Duration::ZERO);
    for line in lines {
        if let Some(t) = trace_time(line) {
            keep = window.contains(t);
        }
        if keep {
            writeln!(out, "trace: {line}")?;
        }
    }
    out.flush()
}

fn load(path: &Path) -> Result<faultline_runner::Scenario, ExitCode> {
    faultline_runner::Scenario::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn sim_check(paths: &[PathBuf]) -> ExitCode {
    let files = match explore::scenario_files(paths) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut bad = false;
    for f in &files {
        match faultline_runner::Scenario::load(f) {
            Ok(s) => println!("ok: {} ({})", f.display(), s.name),
            Err(e) => {
                eprintln!("error: {e}");
                bad = true;
            }
        }
    }
    if bad {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn sim_run(
    path: &Path,
    seed: Option<u64>,
    report: Option<PathBuf>,
    trace: Option<TraceWindow>,
    backend: Backend,
    charts: bool,
) -> ExitCode {
    let scenario = match load(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if matches!(backend, Backend::Turmoil) && scenario.has_nodes() {
        eprintln!(
            "{}: the turmoil backend runs store scenarios only; this one has worker nodes (cluster.nodes_per_datacenter), run it on the engine",
            path.display()
        );
        return ExitCode::from(2);
    }
    if matches!(backend, Backend::Turmoil) {
        if let Some(why) = faultline_runner::turmoil::unsupported(&scenario) {
            eprintln!("{}: {why}; run it on the engine", path.display());
            return ExitCode::from(2);
        }
    }
    let seed = seed.unwrap_or(scenario.seed);
    let bar = progress_bar(&scenario);
    let opts = faultline_runner::RunOptions {
        seed,
        keep_trace: trace.is_some(),
        path: path.display().to_string(),
        progress: bar.clone().map(|bar| {
            let faulty = scenario.duration.0.as_secs_f64();
            faultline_runner::run::Progress(std::rc::Rc::new(move |t: f64| {
                bar.set_position(t.min(faulty) as u64);
                if t > faulty {
                    bar.set_message("healing, then checking convergence");
                }
            }))
        }),
    };
    println!("scenario: {} ({})", scenario.name, path.display());
    if !scenario.description.is_empty() {
        println!("  {}", scenario.description);
    }
    // The simulation is single-threaded and a panic ends it; nothing it
    // shares is looked at afterwards but the panic itself.
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match backend {
        Backend::Engine => faultline_runner::run_engine(&scenario, &opts),
        Backend::Turmoil => faultline_runner::turmoil::run_turmoil(&scenario, &opts),
    }));
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let outcome = match run {
        Ok(o) => o,
        Err(_) => {
            // A failed assertion inside the simulated cluster: the panic
            // message is on stderr; this is a violation like any other.
            let suffix = if backend == Backend::Turmoil {
                " --backend turmoil"
            } else {
                ""
            };
            println!("invariants:");
            println!("  [FAIL] assertion: a component panicked during the run (see stderr)");
            println!("verdict: fail");
            println!("seed: {seed}");
            println!("trace-hash: none");
            println!(
                "reproduce: faultline sim run {} --seed {seed}{suffix}",
                path.display()
            );
            return ExitCode::from(1);
        }
    };
    let s = &outcome.summary;
    let dir = report.unwrap_or_else(|| {
        let suffix = if backend == Backend::Turmoil {
            "-turmoil"
        } else {
            ""
        };
        PathBuf::from(format!("reports/out/{}-seed{}{suffix}", s.scenario, s.seed))
    });
    if let Some(window) = trace {
        if print_trace(&outcome.trace, window).is_err() {
            // Whoever reads the output stopped (`| head`): keep the report
            // and the exit code, print nothing more.
            return match write_report(s, &dir, charts) {
                Err(_) => ExitCode::from(2),
                Ok(()) if s.passed() => ExitCode::SUCCESS,
                Ok(()) => ExitCode::from(1),
            };
        }
    }
    print_summary(s, scenario.workload.is_some());
    if let Err(e) = write_report(s, &dir, charts) {
        eprintln!("error: cannot write the report: {e:#}");
        return ExitCode::from(2);
    }
    let page = if charts { "index.html" } else { "summary.json" };
    println!("report: {}", dir.join(page).display());
    println!("verdict: {}", s.verdict);
    println!("seed: {}", s.seed);
    println!("trace-hash: {}", s.trace_hash);
    if s.passed() {
        ExitCode::SUCCESS
    } else {
        println!("reproduce: {}", s.reproduce);
        ExitCode::from(1)
    }
}

/// A progress bar over the faulty phase's simulated seconds, on stderr when
/// it is a terminal and the run is long enough to watch (CI logs get
/// nothing: a run ends with its verdict lines anyway).
fn progress_bar(s: &faultline_runner::Scenario) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    let secs = s.duration.0.as_secs();
    if !std::io::stderr().is_terminal() || secs < 120 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(secs);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} simulated {pos}s of {len}s [{bar:30}] {elapsed} wall, ETA {eta} {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    Some(bar)
}

fn write_report(s: &faultline_reports::Summary, dir: &Path, charts: bool) -> anyhow::Result<()> {
    if charts {
        s.write(dir)
    } else {
        s.write_data(dir)
    }
}

fn print_summary(s: &faultline_reports::Summary, has_workload: bool) {
    if s.backend == "real" {
        println!(
            "ran {:.1}s in real time, {} observations read from the containers' logs",
            s.simulated_seconds, s.events
        );
    } else {
        println!(
            "simulated {:.1}s in {:.2}s wall ({:.0}x), {} events",
            s.simulated_seconds,
            s.wall_seconds,
            s.simulated_seconds / s.wall_seconds.max(1e-9),
            s.events
        );
    }
    if has_workload {
        println!(
            "workload: {} ok, {} failed, {} unknown; {} set adds acknowledged; {} watch events; {} leader terms",
            s.stats.ops_ok,
            s.stats.ops_failed,
            s.stats.ops_unknown,
            s.stats.set_acknowledged,
            s.stats.watch_events,
            s.stats.leaders
        );
    } else {
        println!("store: {} leader terms", s.stats.leaders);
    }
    if s.faults.is_empty() {
        println!("faults: none");
    } else {
        println!("faults:");
        for f in &s.faults {
            let end = f
                .end_s
                .map(|e| format!("{e:.1}s"))
                .unwrap_or_else(|| "end".into());
            println!(
                "  {:>7.1}s .. {:>7}  {:<18} {} ({})",
                f.start_s, end, f.kind, f.target, f.source
            );
        }
    }
    for (a, b) in &s.control_plane_down {
        println!("control plane down: {a:.1}s .. {b:.1}s");
    }
    for svc in &s.services {
        let dcs: Vec<String> = svc
            .by_datacenter
            .iter()
            .map(|d| {
                format!(
                    "{} {}",
                    d.datacenter,
                    faultline_runner::checker::judge::slo::pct(d.availability)
                )
            })
            .collect();
        println!(
            "service {}: {} of {} requests ok ({}), p50 {:.1}ms p99 {:.1}ms, {} pods answered",
            svc.service,
            faultline_runner::checker::judge::slo::pct(svc.availability),
            svc.requests,
            dcs.join(", "),
            svc.p50_ms,
            svc.p99_ms,
            svc.pods_answering
        );
        for w in svc.unavailable.iter().take(8) {
            println!(
                "  unavailable {:>7.1}s .. {:>7.1}s  {:>5} of {:>6} failed  during: {}",
                w.start_s,
                w.end_s,
                w.failed,
                w.total,
                if w.faults.is_empty() {
                    "no fault".to_string()
                } else {
                    w.faults.join("; ")
                }
            );
        }
        if svc.unavailable.len() > 8 {
            println!(
                "  ... {} more windows in summary.json",
                svc.unavailable.len() - 8
            );
        }
    }
    println!("invariants:");
    for i in &s.invariants {
        println!(
            "  [{}] {}: {}",
            if i.holds { "ok" } else { "FAIL" },
            i.name,
            i.detail
        );
    }
}

/// A usage or input error of a real-mode command: `error: …` on stderr,
/// exit code 2.
fn usage_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

/// The environment of a real host named `host`: its seed mixed with the
/// name (or from the operating system), its files under `data_dir`, its
/// listeners on `listen_ip`, its trace lines logged on stderr.
fn real_env(
    host: &str,
    seed: Option<u64>,
    data_dir: &Path,
    listen_ip: &str,
) -> Result<faultline_env::Env, String> {
    let seed = faultline_env::real::seed_for(host, seed)
        .map_err(|e| format!("no seed given and none from /dev/urandom: {e}"))?;
    faultline_env::real::env_with_observer(
        host,
        seed,
        data_dir,
        listen_ip,
        std::rc::Rc::new(faultline_env::real::LogObserver),
    )
    .map_err(|e| format!("data dir {}: {e}", data_dir.display()))
}

/// Reads and parses a static token file (`--token-file`).
fn read_tokens(path: &Path) -> Result<faultline_apiserver::Tokens, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--token-file {}: {e}", path.display()))?;
    faultline_apiserver::Tokens::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Checks that `value` (of `flag`) is `count` dot-separated octets, like
/// `example`.
fn check_octets(flag: &str, value: &str, count: usize, example: &str) -> Result<(), String> {
    let octets: Vec<&str> = value.split('.').collect();
    if octets.len() == count && octets.iter().all(|o| o.parse::<u8>().is_ok()) {
        Ok(())
    } else {
        let words = ["", "one octet", "two octets", "three octets"];
        Err(format!(
            "{flag} {value:?}: expected {} such as {example}",
            words[count]
        ))
    }
}
