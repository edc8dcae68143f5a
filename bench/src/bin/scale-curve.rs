//! The cost curve: wall seconds per simulated second and peak memory of
//! one world at several sizes, and the fitted exponent of cost against
//! nodes.
//!
//! Each size is 3 masters in 3 datacenters, N nodes, a deployment of 10
//! `sleep` pods per node created at the start, no faults, the same
//! simulated duration for every size (60 s by default: the pods' creation,
//! scheduling and start, then steady kubelet status, leases and watches),
//! then the convergence probe (every pod Ready) that gives the verdict.
//! Each size runs in a child process of this benchmark, so its peak
//! resident memory (`VmHWM`) is its own. The exponent is the slope of a
//! least-squares line through (log nodes, log wall seconds per simulated
//! second): 1.0 is cost growing as the cluster does.
//!
//! `cargo run --release -p faultline-bench --bin scale-curve [-- --nodes 100,300,1000,3000,5000 --seconds 60]`
#![allow(clippy::disallowed_methods)] // a benchmark measures real time

use std::process::Command;

use clap::Parser;
use faultline_runner::{run_engine, RunOptions, Scenario};

/// The same allocator as the `faultline` binary, so the figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Wall seconds per simulated second and peak memory against cluster size")]
struct Args {
    /// Cluster sizes (nodes; rounded up to a multiple of 3 datacenters).
    #[arg(long, value_delimiter = ',', default_value = "100,300,1000,3000,5000")]
    nodes: Vec<usize>,
    /// Simulated seconds per size.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Pods per node.
    #[arg(long, default_value_t = 10)]
    pods_per_node: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Internal: run one size in this process and print its result line.
    #[arg(long, hide = true)]
    one: Option<usize>,
}

/// The world of `nodes` nodes.
fn scenario(nodes: usize, pods_per_node: usize, seconds: u64) -> Scenario {
    let per_dc = nodes.div_ceil(3);
    let text = format!(
        r#"name = "scale-curve-{n}"
description = "cost curve: {n} nodes, {pods} sleep pods"
duration = "{seconds}s"

[cluster]
datacenters = ["dc-a", "dc-b", "dc-c"]
masters = 3
nodes_per_datacenter = {per_dc}

[[deployment]]
name = "sleepers"
image = "sleep"
replicas = {pods}

[[invariant]]
kind = "converges"
within = "300s"
"#,
        n = per_dc * 3,
        pods = per_dc * 3 * pods_per_node,
    );
    Scenario::parse(&text, "scale-curve").expect("a valid generated scenario")
}

/// Peak resident memory of this process, in MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs one size here and prints `result NODES PODS SIM WALL EVENTS PEAK VERDICT`.
fn one(args: &Args, nodes: usize) {
    let s = scenario(nodes, args.pods_per_node, args.seconds);
    let out = run_engine(
        &s,
        &RunOptions {
            seed: args.seed,
            keep_trace: false,
            path: "scale-curve".into(),
            progress: None,
        },
    );
    let sum = out.summary;
    let pods: i32 = s.deployments.iter().map(|d| d.replicas).sum();
    println!(
        "result {} {} {:.3} {:.3} {} {:.0} {}",
        faultline_runner::scenario::node_names(&s).len(),
        pods,
        sum.simulated_seconds,
        sum.wall_seconds,
        sum.events,
        peak_mib(),
        sum.verdict
    );
}

struct Row {
    nodes: f64,
    per_sim_s: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(n) = args.one {
        one(&args, n);
        return Ok(());
    }
    let me = std::env::current_exe()?;
    println!(
        "3 masters in 3 datacenters, {} pods per node, {} simulated seconds per size, seed {}",
        args.pods_per_node, args.seconds, args.seed
    );
    println!(
        "{:>6} {:>7} {:>11} {:>8} {:>15} {:>10} {:>9} {:>9}  verdict",
        "nodes",
        "pods",
        "simulated s",
        "wall s",
        "wall s / sim s",
        "sim speed",
        "events",
        "peak MiB"
    );
    let mut rows = Vec::new();
    for &n in &args.nodes {
        let out = Command::new(&me)
            .args([
                "--one",
                &n.to_string(),
                "--seconds",
                &args.seconds.to_string(),
                "--pods-per-node",
                &args.pods_per_node.to_string(),
                "--seed",
                &args.seed.to_string(),
            ])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(line) = text.lines().find_map(|l| l.strip_prefix("result ")) else {
            anyhow::bail!(
                "the run of {n} nodes printed no result (exit {:?}): {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let f: Vec<&str> = line.split(' ').collect();
        let num = |i: usize| f[i].parse::<f64>().unwrap_or(f64::NAN);
        let (nodes, pods, sim, wall, events, peak) =
            (num(0), num(1), num(2), num(3), num(4), num(5));
        let per = wall / sim;
        println!(
            "{nodes:>6} {pods:>7} {sim:>11.1} {wall:>8.1} {per:>15.4} {:>9.1}x {events:>9} {peak:>9.0}  {}",
            sim / wall,
            f[6]
        );
        rows.push(Row {
            nodes,
            per_sim_s: per,
        });
    }
    if rows.len() >= 2 {
        // Least squares through (ln nodes, ln cost).
        let xs: Vec<f64> = rows.iter().map(|r| r.nodes.ln()).collect();
        let ys: Vec<f64> = rows.iter().map(|r| r.per_sim_s.ln()).collect();
        let k = xs.len() as f64;
        let (mx, my) = (xs.iter().sum::<f64>() / k, ys.iter().sum::<f64>() / k);
        let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
        let slope = sxy / sxx;
        println!(
            "fitted exponent of wall time per simulated second against nodes: {slope:.2} (target: at most 1.2)"
        );
        for w in rows.windows(2) {
            let e = (w[1].per_sim_s / w[0].per_sim_s).ln() / (w[1].nodes / w[0].nodes).ln();
            println!(
                "  {:>5} -> {:>5} nodes: exponent {e:.2}",
                w[0].nodes, w[1].nodes
            );
        }
    }
    Ok(())
}
