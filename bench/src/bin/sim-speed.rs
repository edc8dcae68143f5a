//! Simulation speed: simulated seconds per wall second for the 3-master
//! store scenario under ~100 client operations per simulated second, on the
//! event-driven engine and on the turmoil backend, side by side in one run.
//!
//! `cargo run --release -p faultline-bench --bin sim-speed [-- --seconds N --rate R]`
#![allow(clippy::disallowed_methods)] // a benchmark measures real time

use clap::Parser;

/// The same allocator as the `faultline` binary, so the figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use faultline_sim::{run_engine, turmoil_backend::run_turmoil, RunOptions, Scenario};

#[derive(Parser)]
#[command(about = "Simulated seconds per wall second: engine vs turmoil")]
struct Args {
    /// Simulated seconds per run.
    #[arg(long, default_value_t = 300)]
    seconds: u64,
    /// Client operations per simulated second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seeds to average over.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Also run with the leader-kill fault schedule.
    #[arg(long)]
    with_faults: bool,
    /// Run only this backend (for profiling); the default runs both.
    #[arg(long, value_parser = ["engine", "turmoil"])]
    only: Option<String>,
}

fn scenario(seconds: u64, rate: f64, faults: bool) -> Scenario {
    let mut text = format!(
        r#"
name = "sim-speed"
duration = "{seconds}s"
[cluster]
datacenters = ["dc-a", "dc-b", "dc-c"]
masters = 3
latency = {{ within = "1ms", between = "10ms", jitter = "2ms" }}
[workload]
clients = 3
rate = {rate}
keys = 8
[[invariant]]
kind = "linearizable"
[[invariant]]
kind = "no-lost-writes"
[[invariant]]
kind = "converges"
"#
    );
    if faults {
        text.push_str(
            r#"
[nemesis]
every = "10s"
kinds = ["leader-kill", "master-crash", "partition"]
"#,
        );
    }
    Scenario::parse(&text, "sim-speed").expect("the benchmark scenario is valid")
}

struct Row {
    backend: &'static str,
    simulated: f64,
    wall: f64,
    ops: u64,
    verdicts: Vec<String>,
}

fn measure(backend: &'static str, s: &Scenario, seeds: u64) -> Row {
    let mut row = Row {
        backend,
        simulated: 0.0,
        wall: 0.0,
        ops: 0,
        verdicts: Vec::new(),
    };
    for seed in 1..=seeds {
        let opts = RunOptions {
            seed,
            keep_trace: false,
            path: "sim-speed".into(),
            progress: None,
        };
        let out = match backend {
            "engine" => run_engine(s, &opts),
            _ => run_turmoil(s, &opts),
        };
        let sum = out.summary;
        row.simulated += sum.simulated_seconds;
        row.wall += sum.wall_seconds;
        row.ops += sum.stats.ops_ok + sum.stats.ops_failed + sum.stats.ops_unknown;
        row.verdicts.push(sum.verdict);
    }
    row
}

fn main() {
    let args = Args::parse();
    let s = scenario(args.seconds, args.rate, args.with_faults);
    println!(
        "3 masters in 3 datacenters, 3 clients at {} ops per simulated second, {} simulated seconds, {} seed(s){}",
        args.rate,
        args.seconds,
        args.seeds,
        if args.with_faults { ", with a nemesis" } else { "" }
    );
    let rows: Vec<Row> = ["engine", "turmoil"]
        .into_iter()
        .filter(|b| args.only.as_deref().is_none_or(|o| o == *b))
        .map(|b| measure(b, &s, args.seeds))
        .collect();
    println!(
        "{:<8} {:>12} {:>10} {:>14} {:>12}  verdicts",
        "backend", "simulated s", "wall s", "sim s / wall s", "ops / sim s"
    );
    for r in &rows {
        println!(
            "{:<8} {:>12.1} {:>10.2} {:>14.0} {:>12.1}  {}",
            r.backend,
            r.simulated,
            r.wall,
            r.simulated / r.wall,
            r.ops as f64 / r.simulated,
            r.verdicts.join(",")
        );
    }
    if rows.len() < 2 {
        return;
    }
    let engine = rows[0].simulated / rows[0].wall;
    let turmoil = rows[1].simulated / rows[1].wall;
    println!(
        "engine: {engine:.0}x real time (target >= 1000x); turmoil: {turmoil:.0}x; engine/turmoil speed ratio {:.1}x",
        engine / turmoil
    );
}
