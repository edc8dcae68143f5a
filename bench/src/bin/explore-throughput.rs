//! Seed-sweep throughput: how many seeds of `datacenter-outage` (3 masters,
//! 12 nodes, 50 pods, users at 200 requests per simulated second, 30
//! simulated minutes) this machine judges per hour, and what that suggests
//! for a 16-core CI runner.
//!
//! `cargo run --release -p faultline-bench --bin explore-throughput [-- --seeds K --jobs J]`
//!
//! Seeds `1..=K` are shared out to `J` worker threads, each running one
//! simulation after another. A simulation is single-threaded (a
//! current-thread tokio runtime with a paused clock, built by every
//! `run_engine` call on the calling thread, and no process-wide state), so
//! separate threads run separate worlds side by side; each thread gets its
//! own copy of the scenario. `faultline sim explore` runs each seed in a
//! child process instead, which adds a process start and the report files
//! per run: small next to a 30-minute simulation.
//!
//! On a shared machine the threads wait for cores, and wall time alone
//! undersells the simulator. On Linux each run's CPU time is measured too
//! (`/proc/thread-self/schedstat`), and a second extrapolation is printed
//! from it.
#![allow(clippy::disallowed_methods)] // a benchmark measures real time and runs worker threads

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::Parser;

/// The same allocator as the `faultline` binary, so the figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use faultline_runner::{run_engine, RunOptions, Scenario};

/// The runner the extrapolation is for.
const RUNNER_CORES: usize = 16;

/// Worker threads get the stack a main thread usually has: a simulation
/// polls deeply nested futures.
const STACK: usize = 8 << 20;

#[derive(Parser)]
#[command(
    about = "Seeds per hour of datacenter-outage on this machine, and extrapolated to 16 cores"
)]
struct Args {
    /// The scenario to sweep.
    #[arg(long, default_value = "scenarios/datacenter-outage.toml")]
    scenario: PathBuf,
    /// Seeds to run (1..=K).
    #[arg(long, default_value_t = 4)]
    seeds: u64,
    /// Worker threads, one simulation at a time each (default: the cores
    /// available).
    #[arg(long)]
    jobs: Option<usize>,
}

/// One seed's run.
struct SeedRun {
    seed: u64,
    worker: usize,
    simulated: f64,
    wall: f64,
    /// CPU time of the run's thread, where the platform reports it.
    cpu: Option<f64>,
    events: u64,
    verdict: String,
    trace_hash: String,
}

/// CPU time the calling thread has used so far (Linux).
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

// A scenario crosses into the worker threads: it must stay plain data.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Scenario>();
};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.seeds >= 1, "--seeds must be at least 1");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let jobs = args.jobs.unwrap_or(cores).clamp(1, args.seeds as usize);
    let path = args.scenario.display().to_string();
    let text = std::fs::read_to_string(&args.scenario)?;
    let scenario = Scenario::parse(&text, &path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let nodes = faultline_runner::scenario::node_names(&scenario).len();
    println!(
        "{}: {} masters, {nodes} nodes, {} simulated per seed; seeds 1..={} on {jobs} worker thread(s), {cores} core(s) available",
        scenario.name,
        scenario.cluster.masters,
        scenario.duration,
        args.seeds,
    );

    let next = Arc::new(AtomicU64::new(1));
    let runs = Arc::new(Mutex::new(Vec::<SeedRun>::new()));
    let start = Instant::now();
    let mut workers = Vec::new();
    for worker in 1..=jobs {
        let (scenario, next, runs, path) =
            (scenario.clone(), next.clone(), runs.clone(), path.clone());
        let last = args.seeds;
        let handle = std::thread::Builder::new()
            .name(format!("sweep-{worker}"))
            .stack_size(STACK)
            .spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed > last {
                    return;
                }
                let opts = RunOptions {
                    seed,
                    keep_trace: false,
                    path: path.clone(),
                    progress: None,
                };
                let began = Instant::now();
                let cpu_before = thread_cpu_seconds();
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_engine(&scenario, &opts)
                }));
                let wall = began.elapsed().as_secs_f64();
                let cpu = cpu_before.zip(thread_cpu_seconds()).map(|(a, b)| b - a);
                let run = match outcome {
                    Ok(out) => {
                        let s = out.summary;
                        for i in s.invariants.iter().filter(|i| !i.holds) {
                            eprintln!("seed {seed}: {} violated: {}", i.name, i.detail);
                        }
                        SeedRun {
                            seed,
                            worker,
                            simulated: s.simulated_seconds,
                            wall,
                            cpu,
                            events: s.events,
                            verdict: s.verdict,
                            trace_hash: s.trace_hash,
                        }
                    }
                    // The panic message is on stderr already.
                    Err(_) => SeedRun {
                        seed,
                        worker,
                        simulated: 0.0,
                        wall,
                        cpu,
                        events: 0,
                        verdict: "panic".into(),
                        trace_hash: "none".into(),
                    },
                };
                runs.lock().expect("no worker panics holding it").push(run);
            })?;
        workers.push(handle);
    }
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("a worker thread died"))?;
    }
    let total = start.elapsed().as_secs_f64();
    let mut runs = std::mem::take(&mut *runs.lock().expect("workers are done"));
    runs.sort_by_key(|r| r.seed);

    let fmt_cpu = |c: Option<f64>| c.map_or("-".to_string(), |c| format!("{c:.2}"));
    println!(
        "{:>5} {:>7} {:>12} {:>9} {:>9} {:>14} {:>10}  {:<8} trace-hash",
        "seed", "thread", "simulated s", "wall s", "cpu s", "sim s / wall s", "events", "verdict"
    );
    for r in &runs {
        println!(
            "{:>5} {:>7} {:>12.1} {:>9.2} {:>9} {:>14.0} {:>10}  {:<8} {}",
            r.seed,
            r.worker,
            r.simulated,
            r.wall,
            fmt_cpu(r.cpu),
            r.simulated / r.wall.max(1e-9),
            r.events,
            r.verdict,
            r.trace_hash
        );
    }
    let seeds = runs.len() as f64;
    let busy: f64 = runs.iter().map(|r| r.wall).sum();
    let per_hour = seeds / total.max(1e-9) * 3600.0;
    println!(
        "{} seeds in {total:.1}s wall; a run took {:.1}s wall on average, {:.2} runs in flight on average",
        runs.len(),
        busy / seeds,
        busy / total.max(1e-9)
    );
    println!("throughput: {per_hour:.0} seeds per hour at {jobs} job(s) on this machine");
    let used = jobs.min(cores);
    println!(
        "extrapolation (not measured): ~{:.0} seeds per hour on a {RUNNER_CORES}-core runner ({per_hour:.0} x {RUNNER_CORES} / {used} core(s) used), if throughput scales linearly with cores of this speed",
        per_hour * RUNNER_CORES as f64 / used as f64
    );
    let cpu: Option<f64> = runs.iter().map(|r| r.cpu).sum();
    if let Some(cpu) = cpu.filter(|c| *c > 0.0) {
        let per_cpu_hour = seeds / cpu * 3600.0;
        println!(
            "cpu: {:.1}s per seed; the runs were on a core {:.0}% of their wall time{}",
            cpu / seeds,
            cpu / busy.max(1e-9) * 100.0,
            if cpu / busy.max(1e-9) < 0.9 {
                " (the machine is shared: the wall-time figures undersell it)"
            } else {
                ""
            }
        );
        println!(
            "extrapolation from cpu time (not measured): ~{:.0} seeds per hour on {RUNNER_CORES} cores of this speed with nothing else running ({per_cpu_hour:.0} seeds per core-hour x {RUNNER_CORES})",
            per_cpu_hour * RUNNER_CORES as f64
        );
    }
    if runs.iter().any(|r| r.verdict != "pass") {
        println!("note: some seeds did not pass (see stderr); their timing still counts");
    }
    Ok(())
}
