//! `api-tls`: the API server's throughput and latency over HTTPS, beside
//! the same run over plain HTTP, beside Kubernetes' API call SLOs.
//!
//! Each transport gets its own `faultline up` cluster (3 masters on
//! 127.0.0.1, fsync on, 1 node), and the same load: for each operation
//! and each `--concurrency` C, C tasks issue sequential requests for
//! `--seconds` (after a warm-up), every latency recorded:
//!
//! - `create`: `POST` a Lease (a plain object no controller reacts to, so
//!   only the API and the store work);
//! - `get`: `GET` one of the Leases created;
//! - `list`: a `GET` of the `--list-size` Leases of one namespace;
//! - `watch`: C watches open on one namespace while one writer creates
//!   Leases; the figure is each event's delivery time from the start of
//!   its create, and events delivered per second across the watchers.
//!
//! Kubernetes' SLOs (sig-scalability): p99 at most 1 s for single-object
//! calls (mutating and read-only), 5 s for namespace-scoped lists (30 s
//! cluster-wide); watch has no official SLO. This is a benchmark measuring real time, so it reads
//! `std::time::Instant` directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use faultline_api::{Lease, ObjectMeta};
use faultline_client::{Client, ListParams, WatchItem};
use faultline_env::Env;

#[path = "../up_cluster.rs"]
mod up_cluster;

#[derive(Parser)]
#[command(
    name = "api-tls",
    about = "API throughput and p99 over HTTPS and over plain HTTP (3 masters on 127.0.0.1), beside Kubernetes' SLOs"
)]
struct Args {
    /// Measured seconds per operation, concurrency and transport.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Warm-up seconds before each measurement (not recorded).
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Concurrency levels, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Objects in the listed collection.
    #[arg(long, default_value_t = 1000)]
    list_size: usize,
    /// The `faultline` executable (default: next to this one).
    #[arg(long)]
    faultline: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Create,
    Get,
    List,
    Watch,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Get => "get",
            Op::List => "list",
            Op::Watch => "watch",
        }
    }
    /// Kubernetes' p99 objective for the call, if it has one.
    fn slo(self) -> Option<Duration> {
        match self {
            Op::Create | Op::Get => Some(Duration::from_secs(1)),
            Op::List => Some(Duration::from_secs(5)),
            Op::Watch => None,
        }
    }
}

/// Latencies of one measurement, and how many failed.
#[derive(Default)]
struct Sample {
    ok: Vec<Duration>,
    errors: usize,
    secs: f64,
}

impl Sample {
    fn per_sec(&self) -> f64 {
        self.ok.len() as f64 / self.secs
    }
    fn pct(&self, p: f64) -> Duration {
        let mut v = self.ok.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn lease(ns: &str, name: String) -> Lease {
    Lease {
        metadata: ObjectMeta::named(ns, &name),
        ..Default::default()
    }
}

/// Creates namespace `ns` if it is not there.
async fn namespace(c: &Client, ns: &str) -> Result<()> {
    let obj = faultline_api::Namespace {
        metadata: ObjectMeta::named("", ns),
        ..Default::default()
    };
    match c.create(&obj).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(409) => Ok(()),
        Err(e) => bail!("creating namespace {ns}: {e}"),
    }
}

/// Runs `one` from `c` tasks for the warm-up and then the measured time.
async fn drive<F, Fut>(env: &Env, args: &Args, c: usize, one: F) -> Sample
where
    F: Fn(usize, u64) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = bool>,
{
    let sample = Rc::new(RefCell::new(Sample::default()));
    let warm_end = Instant::now() + Duration::from_secs(args.warmup);
    let end = warm_end + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for task in 0..c {
        let one = one.clone();
        let sample = sample.clone();
        tasks.push(env.spawn(async move {
            let mut i = 0u64;
            while Instant::now() < end {
                let t = Instant::now();
                let ok = one(task, i).await;
                i += 1;
                if t >= warm_end && Instant::now() <= end {
                    let mut s = sample.borrow_mut();
                    match ok {
                        true => s.ok.push(t.elapsed()),
                        false => s.errors += 1,
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut s = sample.take();
    s.secs = args.seconds as f64;
    s
}

/// C watchers on one namespace, one writer: delivery latencies.
async fn watch_load(env: &Env, client: &Client, args: &Args, c: usize, round: usize) -> Sample {
    let ns = format!("bench-watch-{round}");
    if namespace(client, &ns).await.is_err() {
        return Sample::default();
    }
    let started: Rc<RefCell<BTreeMap<String, Instant>>> = Default::default();
    let sample = Rc::new(RefCell::new(Sample::default()));
    let rv = match client
        .list::<Lease>(Some(&ns), &ListParams::default())
        .await
    {
        Ok(l) => l.metadata.resource_version,
        Err(_) => return Sample::default(),
    };
    let warm_end = Instant::now() + Duration::from_secs(args.warmup);
    let end = warm_end + Duration::from_secs(args.seconds);
    let mut watchers = Vec::new();
    for _ in 0..c {
        let Ok(mut w) = client
            .watch::<Lease>(Some(&ns), &ListParams::default(), &rv)
            .await
        else {
            sample.borrow_mut().errors += 1;
            continue;
        };
        let (started, sample) = (started.clone(), sample.clone());
        watchers.push(env.spawn(async move {
            while Instant::now() < end + Duration::from_secs(2) {
                let Some(WatchItem::Added(l)) = w.next().await else {
                    continue;
                };
                let at = started.borrow().get(&l.metadata.name).copied();
                if let Some(t) = at.filter(|t| *t >= warm_end && *t <= end) {
                    sample.borrow_mut().ok.push(t.elapsed());
                }
            }
        }));
    }
    let mut i = 0u64;
    while Instant::now() < end {
        let name = format!("w{i}");
        started.borrow_mut().insert(name.clone(), Instant::now());
        let _ = client.create(&lease(&ns, name)).await;
        i += 1;
    }
    env.sleep(Duration::from_secs(2)).await;
    for w in watchers {
        w.abort();
    }
    let mut s = sample.take();
    s.secs = args.seconds as f64;
    s
}

async fn measure(env: &Env, client: &Client, args: &Args) -> Result<Vec<(Op, usize, Sample)>> {
    namespace(client, "bench").await?;
    namespace(client, "bench-list").await?;
    for i in 0..args.list_size {
        let l = lease("bench-list", format!("l{i}"));
        if let Err(e) = client.create(&l).await {
            if e.code() != Some(409) {
                bail!("preparing the listed collection: {e}");
            }
        }
    }
    let mut out = Vec::new();
    for (round, &c) in args.concurrency.iter().enumerate() {
        let cl = client.clone();
        let create = drive(env, args, c, move |task, i| {
            let cl = cl.clone();
            async move {
                let name = format!("c{round}-{task}-{i}");
                cl.create(&lease("bench", name)).await.is_ok()
            }
        })
        .await;
        out.push((Op::Create, c, create));
        let cl = client.clone();
        let n = args.list_size as u64;
        let get = drive(env, args, c, move |task, i| {
            let cl = cl.clone();
            async move {
                let name = format!("l{}", (task as u64 * 7919 + i) % n);
                cl.get::<Lease>("bench-list", &name).await.is_ok()
            }
        })
        .await;
        out.push((Op::Get, c, get));
        let cl = client.clone();
        let want = args.list_size;
        let list = drive(env, args, c, move |_, _| {
            let cl = cl.clone();
            async move {
                cl.list::<Lease>(Some("bench-list"), &ListParams::default())
                    .await
                    .is_ok_and(|l| l.items.len() == want)
            }
        })
        .await;
        out.push((Op::List, c, list));
        out.push((Op::Watch, c, watch_load(env, client, args, c, round).await));
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.seconds == 0 || args.concurrency.is_empty() || args.concurrency.contains(&0) {
        eprintln!("error: --seconds and every --concurrency must be at least 1");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    let bin = up_cluster::faultline_exe(args.faultline.as_ref())?;
    let scratch = std::env::temp_dir().join(format!("faultline-api-bench-{}", std::process::id()));
    let env = faultline_env::real::env("bench", 1, &scratch, "127.0.0.1")?;
    println!(
        "api-tls: 3 masters on 127.0.0.1 (fsync on), concurrency {:?}, {} s warm-up + {} s measured each; list = {} Leases in one namespace",
        args.concurrency, args.warmup, args.seconds, args.list_size
    );
    let mut results = BTreeMap::new();
    for (slot, tls) in [(0u16, true), (1, false)] {
        let extra: &[&str] = if tls { &[] } else { &["--insecure-plain-http"] };
        let (cluster, client) = up_cluster::start(&bin, "api-bench", 1, slot, extra, &env)?;
        let got = faultline_env::real::block_on_local(measure(&env, &client, args));
        drop(cluster);
        results.insert(tls, got?);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    println!(
        "{:<7} {:>4} | {:>9} {:>8} {:>8} {:>4} | {:>9} {:>8} {:>8} {:>4} | {:>9} | SLO p99",
        "op",
        "conc",
        "TLS /s",
        "p50 ms",
        "p99 ms",
        "err",
        "plain /s",
        "p50 ms",
        "p99 ms",
        "err",
        "TLS/plain"
    );
    let (tls, plain) = (&results[&true], &results[&false]);
    for ((op, c, t), (_, _, p)) in tls.iter().zip(plain) {
        let slo = match op.slo() {
            Some(d) => format!(
                "<= {} ms: {}",
                d.as_millis(),
                if t.pct(99.0) <= d { "met" } else { "MISSED" }
            ),
            None => "none (Kubernetes has no watch SLO)".into(),
        };
        println!(
            "{:<7} {:>4} | {:>9.0} {:>8.2} {:>8.2} {:>4} | {:>9.0} {:>8.2} {:>8.2} {:>4} | {:>9.2} | {slo}",
            op.name(),
            c,
            t.per_sec(),
            ms(t.pct(50.0)),
            ms(t.pct(99.0)),
            t.errors,
            p.per_sec(),
            ms(p.pct(50.0)),
            ms(p.pct(99.0)),
            p.errors,
            t.per_sec() / p.per_sec().max(f64::MIN_POSITIVE),
        );
    }
    Ok(())
}
