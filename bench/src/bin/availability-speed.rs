//! Simulation speed of the `datacenter-outage` scenario (3 masters, 12
//! nodes, 50 pods, 3 user clients at 200 requests per simulated second, 30
//! simulated minutes, one datacenter down for 5 of them), against a
//! baseline measured in the same run: the same world without user traffic.
//!
//! `cargo run --release -p faultline-bench --bin availability-speed [-- --seeds N --minutes M]`
#![allow(clippy::disallowed_methods)] // a benchmark measures real time

use std::path::PathBuf;

use clap::Parser;

/// The same allocator as the `faultline` binary, so the figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use faultline_sim::{run_engine, RunOptions, Scenario};

#[derive(Parser)]
#[command(
    about = "Simulated seconds per wall second of datacenter-outage, with and without traffic"
)]
struct Args {
    /// The scenario to measure.
    #[arg(long, default_value = "scenarios/datacenter-outage.toml")]
    scenario: PathBuf,
    /// Seeds to run (1..=N).
    #[arg(long, default_value_t = 2)]
    seeds: u64,
    /// Override the simulated duration (minutes); default: the file's.
    #[arg(long)]
    minutes: Option<u64>,
}

struct Row {
    simulated: f64,
    wall: f64,
    requests: u64,
    events: u64,
    verdicts: Vec<String>,
}

fn measure(s: &Scenario, seeds: u64, path: &str) -> Row {
    let mut row = Row {
        simulated: 0.0,
        wall: 0.0,
        requests: 0,
        events: 0,
        verdicts: Vec::new(),
    };
    for seed in 1..=seeds {
        let out = run_engine(
            s,
            &RunOptions {
                seed,
                keep_trace: false,
                path: path.into(),
                progress: None,
            },
        );
        let sum = out.summary;
        row.simulated += sum.simulated_seconds;
        row.wall += sum.wall_seconds;
        row.events += sum.events;
        row.requests += sum.services.iter().map(|s| s.requests).sum::<u64>();
        for i in sum.invariants.iter().filter(|i| !i.holds) {
            eprintln!("seed {seed}: {} violated: {}", i.name, i.detail);
        }
        row.verdicts.push(sum.verdict);
    }
    row
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut text = std::fs::read_to_string(&args.scenario)?;
    if let Some(m) = args.minutes {
        let start = text.find("duration = ").expect("a duration line");
        let end = start + text[start..].find('\n').expect("a line end");
        text.replace_range(start..end, &format!("duration = \"{m}m\""));
    }
    let path = args.scenario.display().to_string();
    let with = Scenario::parse(&text, &path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut without = with.clone();
    without.traffic.clear();
    without.invariants.retain(|i| {
        !matches!(
            i.get_ref().kind.name(),
            "availability" | "latency" | "static-stability"
        )
    });
    let nodes = faultline_sim::scenario::node_names(&with).len();
    let rate: f64 = with.traffic.iter().map(|t| t.get_ref().rate).sum();
    println!(
        "{}: {} masters, {nodes} nodes, {} deployments, users at {rate} requests per simulated second, {} simulated, {} seed(s)",
        with.name,
        with.cluster.masters.get_ref(),
        with.deployments.len(),
        with.duration.get_ref(),
        args.seeds
    );
    println!(
        "{:<16} {:>12} {:>9} {:>14} {:>12} {:>12}  verdicts",
        "run", "simulated s", "wall s", "sim s / wall s", "requests", "events"
    );
    let mut speeds = Vec::new();
    for (label, s) in [("without traffic", &without), ("with traffic", &with)] {
        let r = measure(s, args.seeds, &path);
        let speed = r.simulated / r.wall;
        speeds.push(speed);
        println!(
            "{label:<16} {:>12.1} {:>9.2} {:>14.0} {:>12} {:>12}  {}",
            r.simulated,
            r.wall,
            speed,
            r.requests,
            r.events,
            r.verdicts.join(",")
        );
    }
    println!(
        "{}: {:.0}x real time with traffic (target >= 300x); the traffic costs {:.0}% of the control plane's speed",
        with.name,
        speeds[1],
        (1.0 - speeds[1] / speeds[0]) * 100.0
    );
    Ok(())
}
