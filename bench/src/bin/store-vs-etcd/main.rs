//! `store-vs-etcd`: the Faultline store against etcd, side by side, on this
//! machine, in one run.
//!
//! Both systems run as three real replicas on 127.0.0.1 with their logs
//! fsynced before any acknowledgement (Faultline: `faultline master`, which
//! `fdatasync`s each Raft batch; etcd 3.4: its default WAL fsync). The same
//! load drives both: puts of `--value-size`-byte values to distinct keys, at
//! each `--concurrency` (N tasks, each issuing sequential puts), for
//! `--seconds` after `--warmup`. Every request's latency is recorded.
//!
//! Clients, chosen to be comparable:
//! - Faultline: one shared `StoreClient` (one TCP connection to the leader,
//!   requests multiplexed by id), which follows the leader's redirect during
//!   the warm-up and then talks to the leader directly;
//! - etcd: a minimal gRPC client over one HTTP/2 connection (requests
//!   multiplexed as streams), sent to the leader found with
//!   `Maintenance/Status`, so neither system pays a forwarding hop.
//!
//! This is a benchmark measuring real time, so unlike the orchestrator it
//! reads `std::time::Instant` directly (see the `allow`s in `load.rs`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

use cluster::Scratch;
use load::{fsync_probe, ms, run_load, total_secs, Stats};
use systems::{start_etcd, start_faultline};

mod cluster;
mod grpc;
mod load;
mod systems;

#[derive(Parser)]
#[command(
    name = "store-vs-etcd",
    about = "Write throughput and latency of the Faultline store against etcd, 3 replicas each on 127.0.0.1"
)]
struct Args {
    /// Measured seconds per system and concurrency.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up seconds before each measurement (not recorded).
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Concurrency levels (tasks issuing sequential puts), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    concurrency: Vec<usize>,
    /// Bytes per value.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// The `faultline` executable (default: next to this one).
    #[arg(long)]
    faultline: Option<PathBuf>,
    /// The `etcd` executable.
    #[arg(long, default_value = "etcd")]
    etcd: PathBuf,
    /// Which systems to measure.
    #[arg(long, value_enum, default_value = "both")]
    systems: Systems,
    /// Print every request slower than this many milliseconds, with its
    /// wall-clock time (to line up with server logs or `strace -tt`).
    #[arg(long)]
    slow_ms: Option<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Systems {
    Both,
    Faultline,
    Etcd,
}

/// Longest a cluster may take to elect a leader and become writable.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one put may take before it counts as an error.
const PUT_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args = Args::parse();
    if args.seconds == 0 || args.concurrency.is_empty() || args.concurrency.contains(&0) {
        eprintln!("error: --seconds and every --concurrency must be at least 1");
        return ExitCode::from(2);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    match local.block_on(&rt, run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let scratch = Scratch::new()?;
    println!(
        "store-vs-etcd: {} B values, concurrency {:?}, {} s warm-up + {} s measured each, 3 replicas on 127.0.0.1",
        args.value_size, args.concurrency, args.warmup, args.seconds
    );
    let disk = fsync_probe(&scratch.path.join("fsync-probe"))?;
    println!(
        "disk: 4 KiB write + fdatasync in {}: p50 {:.2} ms, p99 {:.2} ms ({} samples)",
        scratch.path.display(),
        ms(disk.p50),
        ms(disk.p99),
        disk.n
    );
    let value: Rc<[u8]> = (0..args.value_size)
        .map(|i| b'a' + (i % 26) as u8)
        .collect::<Vec<u8>>()
        .into();
    let mut results: Vec<(&'static str, usize, Stats)> = Vec::new();

    if args.systems != Systems::Etcd {
        let exe = match &args.faultline {
            Some(p) => p.clone(),
            None => std::env::current_exe()
                .context("locating this executable")?
                .with_file_name("faultline"),
        };
        if !exe.exists() {
            bail!(
                "faultline executable not found at {} (build it: cargo build --release --bin faultline, or pass --faultline)",
                exe.display()
            );
        }
        let (cluster, target) = start_faultline(&exe, &scratch.path.join("faultline")).await?;
        println!("faultline: leader is {}", target.describe());
        for &c in &args.concurrency {
            let cpu = cluster.cpu_seconds();
            let mut stats = run_load(&target, "faultline", c, &args, &value)
                .await
                .map_err(|e| e.context(cluster.log_tails()))?;
            stats.server_cpu = cluster.cpu_seconds() - cpu;
            println!("  {}", stats.line("faultline", c, total_secs(&args)));
            results.push(("faultline", c, stats));
        }
        drop(cluster);
    }

    if args.systems != Systems::Faultline {
        let (cluster, target) = start_etcd(&args.etcd, &scratch.path.join("etcd")).await?;
        println!("etcd: leader is {}", target.describe());
        for &c in &args.concurrency {
            let cpu = cluster.cpu_seconds();
            let mut stats = run_load(&target, "etcd", c, &args, &value)
                .await
                .map_err(|e| e.context(cluster.log_tails()))?;
            stats.server_cpu = cluster.cpu_seconds() - cpu;
            println!("  {}", stats.line("etcd", c, total_secs(&args)));
            results.push(("etcd", c, stats));
        }
        drop(cluster);
    }

    print_table(&results, &args);
    Ok(())
}

fn print_table(results: &[(&'static str, usize, Stats)], args: &Args) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Results: {} B puts to distinct keys, {} s measured per row, 3 replicas on 127.0.0.1, fsync on",
        args.value_size, args.seconds
    );
    let _ = writeln!(
        out,
        "{:<10} {:>5} {:>10} {:>9} {:>9} {:>9} {:>7} {:>12}",
        "system", "conc", "writes/s", "p50 ms", "p99 ms", "max ms", "errors", "cpu us/write"
    );
    for (system, c, s) in results {
        let _ = writeln!(
            out,
            "{:<10} {:>5} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>12.0}",
            system,
            c,
            s.per_sec(),
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            s.errors,
            s.cpu_us_per_write(total_secs(args)),
        );
    }
    for &c in &args.concurrency {
        let find = |name: &str| {
            results
                .iter()
                .find(|(s, cc, _)| *s == name && *cc == c)
                .map(|(_, _, st)| st)
        };
        if let (Some(f), Some(e)) = (find("faultline"), find("etcd")) {
            let tput = f.per_sec() / e.per_sec().max(f64::MIN_POSITIVE);
            let p99 = ms(f.p99) / ms(e.p99).max(f64::MIN_POSITIVE);
            let _ = writeln!(
                out,
                "concurrency {c:>2}: throughput ratio {tput:.2}x (target >= 1.0), p99 ratio {p99:.2} (target <= 1.0)  [faultline/etcd]",
            );
        }
    }
}
