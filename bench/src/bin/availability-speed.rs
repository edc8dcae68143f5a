//! Simulation speed of the `datacenter-outage` scenario (3 masters, 12
//! nodes, 50 pods, 3 user clients at 200 requests per simulated second, 30
//! simulated minutes, one datacenter down for 5 of them), against a
//! baseline measured in the same run: the same world without user traffic.
//!
//! It then measures the data plane's floor on this engine: a world of the
//! same shape (12 nodes in 3 datacenters, 3 user hosts at the same request
//! rate) whose nodes run nothing but hyper: a forwarder that relays each
//! request over a kept-open connection to an echo server on some node, as
//! the proxy does, with no endpoint tables, health checks or records. Its
//! wall time per simulated second is what the HTTP path alone costs, so
//! with the control plane measured above it bounds the scenario's speed.
//! It prints what a request costs in the scenario beyond that path, and
//! the 300x target's budget per simulated second against what hyper and
//! the control plane already take of it.
//!
//! `cargo run --release -p faultline-bench --bin availability-speed [-- --seeds N --minutes M]`
#![allow(clippy::disallowed_methods)] // a benchmark measures real time

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;

/// The same allocator as the `faultline` binary, so the figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use bytes::Bytes;
use faultline_engine::{HostMain, World, WorldConfig};
use faultline_env::Env;
use faultline_runner::{run_engine, RunOptions, Scenario};
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1::{self as client, SendRequest};
use hyper::server::conn::http1 as server;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rand::Rng;

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
    /// Simulated seconds of each run of the HTTP floor world (the fastest
    /// of 3 runs counts).
    #[arg(long, default_value_t = 300)]
    floor_seconds: u64,
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
            i.kind().name(),
            "availability" | "latency" | "static-stability"
        )
    });
    let nodes = faultline_runner::scenario::node_names(&with).len();
    let rate: f64 = with.traffic.iter().map(|t| t.rate).sum();
    println!(
        "{}: {} masters, {nodes} nodes, {} deployments, users at {rate} requests per simulated second, {} simulated, {} seed(s)",
        with.name,
        with.cluster.masters,
        with.deployments.len(),
        with.duration,
        args.seeds
    );
    println!(
        "{:<16} {:>12} {:>9} {:>14} {:>12} {:>12}  verdicts",
        "run", "simulated s", "wall s", "sim s / wall s", "requests", "events"
    );
    let mut speeds = Vec::new();
    let mut requests_per_sim_second = 0.0;
    for (label, s) in [("without traffic", &without), ("with traffic", &with)] {
        let r = measure(s, args.seeds, &path);
        let speed = r.simulated / r.wall;
        speeds.push(speed);
        requests_per_sim_second = r.requests as f64 / r.simulated;
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
        "{}: {:.0}x real time with traffic (target >= {TARGET:.0}x); the traffic costs {:.0}% of the control plane's speed",
        with.name,
        speeds[1],
        (1.0 - speeds[1] / speeds[0]) * 100.0
    );
    http_floor(
        rate,
        args.floor_seconds,
        speeds[0],
        // Wall time per request that the users add to the scenario.
        (1.0 / speeds[1] - 1.0 / speeds[0]) / requests_per_sim_second,
    );
    Ok(())
}

/// Issue 4's speed target for the scenario, in simulated seconds per wall
/// second.
const TARGET: f64 = 300.0;

/// The echo servers' answer: about the size of the real echo's JSON.
const ANSWER: &[u8] = br#"{"pod":"default/web-5f44579497-vz6n5","node":"n1","image":"echo","method":"GET","path":"/","host":"n1:80","served":1234}"#;

fn datacenter(i: usize) -> &'static str {
    ["dc-a", "dc-b", "dc-c"][i % 3]
}

/// Idle kept-open connections to one address.
type Pool = RefCell<Vec<SendRequest<Empty<Bytes>>>>;

/// A GET to `addr` on a pooled (or new) connection; the answer's body.
async fn get(env: &Env, pool: &Pool, addr: &str) -> Option<Bytes> {
    let mut send = loop {
        match pool.borrow_mut().pop() {
            Some(s) if s.is_ready() => break Some(s),
            Some(_) => continue,
            None => break None,
        }
    };
    if send.is_none() {
        let io = env.net().connect(addr).await.ok()?;
        let (s, conn) = client::handshake(TokioIo::new(io)).await.ok()?;
        env.spawn(async move {
            let _ = conn.await;
        });
        send = Some(s);
    }
    let mut send = send.expect("set above");
    let req = Request::get("/")
        .header("host", addr)
        .body(Empty::new())
        .expect("a valid request");
    let resp = send.send_request(req).await.ok()?;
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    pool.borrow_mut().push(send);
    Some(body)
}

/// Serves HTTP/1.1 on `port`, answering each request with `answer`.
async fn serve<F, Fut>(env: Env, port: u16, answer: F)
where
    F: Fn() -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = Bytes> + 'static,
{
    let mut l = env.net().bind(port).await.expect("bind");
    while let Ok((conn, _)) = l.accept().await {
        let answer = answer.clone();
        env.spawn(async move {
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let answer = answer.clone();
                async move { Ok::<_, Infallible>(Response::new(Full::new(answer().await))) }
            });
            // As the real servers do: no Date header (it reads the wall
            // clock, a cost they do not pay).
            let _ = server::Builder::new()
                .auto_date_header(false)
                .serve_connection(TokioIo::new(conn), service)
                .await;
        });
    }
}

/// A node: an echo server on 8080 and, on 80, a forwarder that relays
/// each request to the echo server of the next node in turn.
fn node(nodes: usize) -> HostMain {
    Rc::new(move |env: Env| {
        Box::pin(async move {
            env.spawn(serve(env.clone(), 8080, || async {
                Bytes::from_static(ANSWER)
            }));
            let pools: Rc<Vec<Pool>> = Rc::new((0..nodes).map(|_| Pool::default()).collect());
            let next = Rc::new(Cell::new(0usize));
            let e2 = env.clone();
            serve(env, 80, move || {
                let (env, pools, next) = (e2.clone(), pools.clone(), next.clone());
                async move {
                    let i = next.get() % pools.len();
                    next.set(i + 1);
                    let addr = format!("n{}:8080", i + 1);
                    get(&env, &pools[i], &addr).await.unwrap_or_default()
                }
            })
            .await;
        })
    })
}

/// A user host: requests at `rate` per simulated second (Poisson), each
/// on its own task under a timeout, round robin over its datacenter's
/// nodes.
fn user(rate: f64, local: Vec<String>, done: Rc<Cell<u64>>) -> HostMain {
    Rc::new(move |env: Env| {
        let (local, done) = (local.clone(), done.clone());
        Box::pin(async move {
            let pools: Rc<Vec<Pool>> = Rc::new(local.iter().map(|_| Pool::default()).collect());
            let local = Rc::new(local);
            let mut turn = 0usize;
            // Arrival times are kept exact and slept until: tokio's timers
            // round up to the millisecond, which would slow the rate.
            let mut next = env.now();
            loop {
                let (env2, pools, local, done) =
                    (env.clone(), pools.clone(), local.clone(), done.clone());
                let i = turn % local.len();
                turn += 1;
                env.spawn(async move {
                    let ok = env2
                        .timeout(Duration::from_secs(1), get(&env2, &pools[i], &local[i]))
                        .await;
                    if matches!(ok, Ok(Some(_))) {
                        done.set(done.get() + 1);
                    }
                });
                let u: f64 = env.rng().random_range(1e-9..1.0);
                next += Duration::from_secs_f64(-u.ln() / rate);
                env.sleep_until(next).await;
            }
        })
    })
}

/// One run of the HTTP floor world for `seconds`: its wall seconds and the
/// requests answered.
fn http_floor_run(rate: f64, seconds: u64) -> (f64, u64) {
    const NODES: usize = 12;
    let done = Rc::new(Cell::new(0u64));
    let d2 = done.clone();
    let wall = Instant::now();
    faultline_engine::run(1, move || async move {
        let mut cfg = WorldConfig::new(1);
        cfg.within.latency = Duration::from_millis(1);
        cfg.between.latency = Duration::from_millis(10);
        cfg.between.jitter = Duration::from_millis(1);
        let w = World::new(cfg);
        for i in 0..NODES {
            w.add_host(&format!("n{}", i + 1), datacenter(i), node(NODES));
        }
        for u in 0..3 {
            let local: Vec<String> = (0..NODES)
                .filter(|i| i % 3 == u)
                .map(|i| format!("n{}:80", i + 1))
                .collect();
            w.add_host(
                &format!("u{u}"),
                datacenter(u),
                user(rate / 3.0, local, d2.clone()),
            );
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        w.shutdown();
    });
    (wall.elapsed().as_secs_f64(), done.get())
}

/// Runs of the HTTP floor world; the fastest counts.
const FLOOR_RUNS: usize = 3;

/// Runs the HTTP floor world and prints what the HTTP path alone costs per
/// simulated second, and the speed it leaves the scenario.
fn http_floor(rate: f64, seconds: u64, control_plane_speed: f64, scenario_per_request: f64) {
    // A floor is a lower bound, and this machine's noise only ever adds
    // time: the fastest of a few runs is the estimate.
    let (wall, answered) = (0..FLOOR_RUNS)
        .map(|_| http_floor_run(rate, seconds))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .expect("at least one run");
    let per_sim_second = wall / seconds as f64;
    let answered = answered as f64 / seconds as f64;
    let floor_per_request = per_sim_second / answered.max(1.0);
    println!(
        "HTTP floor (12 nodes, 3 users, {rate} requests per simulated second, each through a hyper forwarder to a hyper echo server, nothing else; fastest of {FLOOR_RUNS} runs): {answered:.0} answered per simulated second, {:.1} us wall per request, {:.0}x real time",
        floor_per_request * 1e6,
        1.0 / per_sim_second
    );
    println!(
        "in the scenario a request costs {:.1} us wall: {:.1} us beyond hyper's HTTP path (the proxy's table, retries and timeouts, the load balancer's health checks and records, the echo's answer)",
        scenario_per_request * 1e6,
        (scenario_per_request - floor_per_request) * 1e6
    );
    let bound = 1.0 / (1.0 / control_plane_speed + per_sim_second);
    println!(
        "with the control plane as measured above ({control_plane_speed:.0}x alone), the scenario could run at most at {bound:.0}x even if the proxy, the pods and the users cost nothing beyond hyper",
    );
    // The target's budget, in wall milliseconds per simulated second.
    let (budget, http, control) = (
        1e3 / TARGET,
        per_sim_second * 1e3,
        1e3 / control_plane_speed,
    );
    let verdict = if bound >= TARGET {
        String::new()
    } else if http >= budget {
        ": hyper's HTTP path alone exceeds it".to_string()
    } else {
        format!(
            ": out of reach unless the control plane ran {:.1}x faster and the proxy, the pods and the users cost nothing beyond hyper",
            control / (budget - http)
        )
    };
    println!(
        "budget at {TARGET:.0}x: {budget:.2} ms wall per simulated second; hyper's HTTP path takes {http:.2} ms of it, the control plane alone {control:.2} ms{verdict}"
    );
}
