//! Simulation speed: simulated seconds per wall second for the 3-master
//! store scenario under ~100 client operations per simulated second, on the
//! event-driven engine and on the turmoil backend, side by side in one run.
//!
//! It then measures the engine's own floor: a world of the same shape (3
//! servers, 3 clients, the same latencies) whose hosts do nothing but
//! exchange small request/response messages, each under a timeout, as the
//! store's RPCs do. Its wall time per event, times the store scenario's
//! events per simulated second, bounds how fast any store could run on
//! this engine and this CPU, whatever its own code costs.
//!
//! `cargo run --release -p faultline-bench --bin sim-speed [-- --seconds N --rate R]`
#![allow(clippy::disallowed_methods)] // a benchmark measures real time

use clap::Parser;

/// The same allocator as the `faultline` binary, so the figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::{Duration, Instant};

use faultline_engine::{HostMain, World, WorldConfig};
use faultline_env::Env;
use faultline_runner::{run_engine, turmoil::run_turmoil, RunOptions, Scenario};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    events: u64,
    verdicts: Vec<String>,
}

fn measure(backend: &'static str, s: &Scenario, seeds: u64) -> Row {
    let mut row = Row {
        backend,
        simulated: 0.0,
        wall: 0.0,
        ops: 0,
        events: 0,
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
        row.events += sum.events;
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
    if let Some(engine) = rows.iter().find(|r| r.backend == "engine") {
        floor(engine, args.seconds);
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

/// Bytes per message in the floor world (a small store request).
const FLOOR_MESSAGE: usize = 64;

/// A server that answers every message with one of the same size.
fn echo_server() -> HostMain {
    std::rc::Rc::new(|env: Env| {
        Box::pin(async move {
            let mut l = env.net().bind(7).await.expect("bind");
            while let Ok((mut conn, _)) = l.accept().await {
                env.spawn(async move {
                    let mut buf = [0u8; FLOOR_MESSAGE];
                    while conn.read_exact(&mut buf).await.is_ok() {
                        if conn.write_all(&buf).await.is_err() {
                            break;
                        }
                    }
                });
            }
        })
    })
}

/// A client that keeps a connection to each server and, on each, sends a
/// request every `every` (plus the round trip), each under a timeout.
fn pinger(every: Duration) -> HostMain {
    std::rc::Rc::new(move |env: Env| {
        Box::pin(async move {
            for s in ["s1:7", "s2:7", "s3:7"] {
                let mut c = match env.net().connect(s).await {
                    Ok(c) => c,
                    Err(e) => panic!("floor world: connect {s}: {e}"),
                };
                let e2 = env.clone();
                env.spawn(async move {
                    let mut buf = [0u8; FLOOR_MESSAGE];
                    loop {
                        e2.sleep(every).await;
                        let round = async {
                            c.write_all(&buf).await?;
                            c.read_exact(&mut buf).await
                        };
                        let _ = e2.timeout(Duration::from_millis(500), round).await;
                    }
                });
            }
            std::future::pending::<()>().await;
        })
    })
}

/// Runs the floor world for `seconds` and prints its wall time per event
/// against the store scenario's.
fn floor(store: &Row, seconds: u64) {
    let store_density = store.events as f64 / store.simulated;
    let store_us = store.wall * 1e6 / store.events as f64;
    let wall = Instant::now();
    let events = faultline_engine::run(1, || async move {
        let mut cfg = WorldConfig::new(1);
        cfg.within.latency = Duration::from_millis(1);
        cfg.between.latency = Duration::from_millis(10);
        cfg.between.jitter = Duration::from_millis(2);
        let w = World::new(cfg);
        for (s, dc) in [("s1", "dc-a"), ("s2", "dc-b"), ("s3", "dc-c")] {
            w.add_host(s, dc, echo_server());
        }
        for (c, dc) in [("c1", "dc-a"), ("c2", "dc-b"), ("c3", "dc-c")] {
            w.add_host(c, dc, pinger(Duration::from_millis(5)));
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        w.shutdown();
        w.trace().events()
    });
    let wall = wall.elapsed().as_secs_f64();
    let floor_us = wall * 1e6 / events as f64;
    println!(
        "engine floor (3 servers, 3 clients, {FLOOR_MESSAGE}-byte round trips under a timeout, no other work): {:.0} events per simulated second, {:.2} us wall per event ({:.0}x real time)",
        events as f64 / seconds as f64,
        floor_us,
        seconds as f64 / wall
    );
    println!(
        "store scenario on the engine: {store_density:.0} events per simulated second, {store_us:.2} us wall per event; at the floor's cost per event it would run at {:.0}x, which bounds this engine on this CPU for this scenario",
        1e6 / (store_density * floor_us)
    );
}
