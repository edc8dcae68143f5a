//! What rendering the report adds to a run: the `datacenter-outage`
//! scenario (30 simulated minutes, 12 nodes, user traffic) is simulated,
//! then its report is written twice over: the machine outputs alone
//! (summary.json, junit.xml, faults.toml), and the page with every chart as
//! SVG and PNG. Prints each as a share of the run's own wall time (the
//! issue's budget: at most 10%).
//!
//! `cargo run --release -p faultline-bench --bin report-overhead [-- --seeds N]`
#![allow(clippy::disallowed_methods)] // a benchmark measures real time

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use faultline_runner::{run_engine, RunOptions, Scenario};

/// The same allocator as the `faultline` binary, so the figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Wall time of rendering a run report, against the run itself")]
struct Args {
    /// The scenario to measure.
    #[arg(long, default_value = "scenarios/datacenter-outage.toml")]
    scenario: PathBuf,
    /// Seeds to run (1..=N).
    #[arg(long, default_value_t = 2)]
    seeds: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenario = Scenario::load(&args.scenario).map_err(|e| anyhow::anyhow!("{e}"))?;
    let out =
        std::env::temp_dir().join(format!("faultline-report-overhead-{}", std::process::id()));
    println!(
        "{:>5}  {:>10}  {:>9}  {:>10}  {:>10}  {:>9}",
        "seed", "simulated", "run wall", "data files", "page+PNGs", "overhead"
    );
    let (mut run_total, mut render_total) = (0.0, 0.0);
    for seed in 1..=args.seeds {
        let opts = RunOptions {
            seed,
            keep_trace: false,
            path: args.scenario.display().to_string(),
            progress: None,
        };
        let t = Instant::now();
        let s = run_engine(&scenario, &opts).summary;
        let run = t.elapsed().as_secs_f64();
        let dir = out.join(format!("seed{seed}"));
        let t = Instant::now();
        s.write_data(&dir)?;
        let data = t.elapsed().as_secs_f64();
        let t = Instant::now();
        s.render(&dir)?;
        let render = t.elapsed().as_secs_f64();
        run_total += run;
        render_total += data + render;
        println!(
            "{seed:>5}  {:>9.0}s  {run:>8.2}s  {data:>9.3}s  {render:>9.3}s  {:>8.2}%",
            s.simulated_seconds,
            (data + render) / run * 100.0
        );
    }
    println!(
        "report overhead: {:.2}% of the run's wall time (budget 10%)",
        render_total / run_total * 100.0
    );
    let _ = std::fs::remove_dir_all(&out);
    Ok(())
}
