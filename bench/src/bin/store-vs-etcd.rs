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
//! reads `std::time::Instant` directly (see the `allow`s below).

use std::cell::Cell;
use std::fs::File;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use faultline_env::Env;
use faultline_store::client::{ClientConfig, StoreClient};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::TokioIo;

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

// ---------------------------------------------------------------------------
// Child processes and scratch space

/// A temporary directory, removed when dropped.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> Result<Scratch> {
        let path = std::env::temp_dir().join(format!("faultline-bench-{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path).ok();
        }
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Three replicas as child processes: killed (and their data removed) when
/// dropped, also on an error or a panic.
struct Cluster {
    name: &'static str,
    dir: PathBuf,
    children: Vec<(String, Child, PathBuf)>,
}

impl Cluster {
    fn new(name: &'static str, dir: &Path) -> Result<Cluster> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Cluster {
            name,
            dir: dir.to_path_buf(),
            children: Vec::new(),
        })
    }

    /// Starts `cmd` with its output going to `<dir>/<label>.log`.
    fn spawn(&mut self, label: &str, cmd: &mut Command) -> Result<()> {
        let log = self.dir.join(format!("{label}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {label}: {cmd:?}"))?;
        self.children.push((label.to_string(), child, log));
        Ok(())
    }

    /// Fails if any child has exited.
    fn check_alive(&mut self) -> Result<()> {
        for (label, child, _) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                bail!("{} {label} exited early ({status})", self.name);
            }
        }
        Ok(())
    }

    /// CPU time (user + system) the children have used so far, from
    /// `/proc/PID/stat` (assumes the usual 100 clock ticks per second).
    fn cpu_seconds(&self) -> f64 {
        let ticks: u64 = self
            .children
            .iter()
            .filter_map(|(_, child, _)| {
                let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).ok()?;
                // Fields after the parenthesised command name; utime and
                // stime are fields 14 and 15 of the whole line.
                let rest = &stat[stat.rfind(')')? + 2..];
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .sum();
        ticks as f64 / 100.0
    }

    /// The last lines of every child's log, for error messages.
    fn log_tails(&self) -> String {
        let mut out = format!("{} logs (last lines):", self.name);
        for (label, _, log) in &self.children {
            let lines: Vec<String> = File::open(log)
                .map(|f| BufReader::new(f).lines().map_while(Result::ok).collect())
                .unwrap_or_default();
            out.push_str(&format!("\n--- {label} ---"));
            for l in &lines[lines.len().saturating_sub(8)..] {
                out.push('\n');
                out.push_str(l);
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.children {
            let _ = child.kill();
        }
        for (_, child, _) in &mut self.children {
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `n` distinct free TCP ports on 127.0.0.1 (held together while chosen).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()
        .context("choosing free ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Polls `probe` until it yields a value, the children die, or time runs out.
async fn wait_for<T, F, Fut>(cluster: &mut Cluster, what: &str, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    loop {
        cluster
            .check_alive()
            .map_err(|e| e.context(cluster.log_tails()))?;
        if let Ok(Some(v)) = tokio::time::timeout(Duration::from_secs(3), probe()).await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "{what} not ready after {STARTUP_TIMEOUT:?}\n{}",
                cluster.log_tails()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------
// The two systems

/// Something that accepts puts.
enum Target {
    Faultline {
        client: Box<StoreClient>,
        leader: String,
    },
    Etcd {
        grpc: Grpc,
        leader: String,
    },
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Faultline { leader, .. } | Target::Etcd { leader, .. } => leader.clone(),
        }
    }

    /// One put; returns the store's new revision.
    async fn put(&self, key: &[u8], value: &[u8]) -> Result<i64> {
        match self {
            Target::Faultline { client, .. } => Ok(client.put(key, value).await?),
            Target::Etcd { grpc, .. } => {
                let mut msg = Vec::with_capacity(key.len() + value.len() + 8);
                pb_bytes(&mut msg, 1, key);
                pb_bytes(&mut msg, 2, value);
                let resp = grpc.unary("/etcdserverpb.KV/Put", &msg).await?;
                // PutResponse { header: ResponseHeader { revision = 3 } = 1 }
                let header = pb_field(&resp, 1)?.and_then(PbValue::bytes).unwrap_or(&[]);
                let revision = pb_field(header, 3)?.and_then(PbValue::varint).unwrap_or(0);
                Ok(revision as i64)
            }
        }
    }
}

async fn start_faultline(exe: &Path, dir: &Path) -> Result<(Cluster, Target)> {
    let mut cluster = Cluster::new("faultline", dir)?;
    let ports = free_ports(3)?;
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let members = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{}={a}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    for id in 1..=3u64 {
        cluster.spawn(
            &format!("m{id}"),
            Command::new(exe)
                .arg("master")
                .args(["--id", &id.to_string()])
                .args(["--members", &members])
                .arg("--data-dir")
                .arg(dir.join(format!("m{id}")))
                .args(["--listen-ip", "127.0.0.1"])
                .args(["--seed", &id.to_string()]),
        )?;
    }
    let env: Env = faultline_env::real::env("bench", 7, &dir.join("client"), "127.0.0.1")?;
    let mut probe_cfg = ClientConfig::new(addrs.clone());
    probe_cfg.attempt_timeout = Duration::from_millis(500);
    let probe = StoreClient::new(env.clone(), probe_cfg);
    let leader = wait_for(&mut cluster, "faultline leader", || async {
        for i in 0..addrs.len() {
            if let Some(s) = probe.status(i).await {
                if s.is_leader {
                    return Some(i);
                }
            }
        }
        None
    })
    .await?;
    // All replicas, so the client survives a leader change; its first
    // request may land on a follower and follow the redirect, after which
    // (this put, before any measurement) it talks to the leader directly.
    let client = Box::new(StoreClient::new(env, ClientConfig::new(addrs.clone())));
    client
        .put(b"bench/hello", b"")
        .await
        .map_err(|e| anyhow!("first put: {e}\n{}", cluster.log_tails()))?;
    Ok((
        cluster,
        Target::Faultline {
            client,
            leader: format!("m{} ({})", leader + 1, addrs[leader]),
        },
    ))
}

async fn start_etcd(exe: &Path, dir: &Path) -> Result<(Cluster, Target)> {
    let mut cluster = Cluster::new("etcd", dir)?;
    let ports = free_ports(6)?;
    let client_urls: Vec<String> = ports[..3]
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let peer_urls: Vec<String> = ports[3..]
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let initial = peer_urls
        .iter()
        .enumerate()
        .map(|(i, u)| format!("e{}={u}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let token = format!("faultline-bench-{}", std::process::id());
    for i in 0..3 {
        let name = format!("e{}", i + 1);
        cluster.spawn(
            &name,
            Command::new(exe)
                .args(["--name", &name])
                .arg("--data-dir")
                .arg(dir.join(&name))
                .args(["--listen-client-urls", &client_urls[i]])
                .args(["--advertise-client-urls", &client_urls[i]])
                .args(["--listen-peer-urls", &peer_urls[i]])
                .args(["--initial-advertise-peer-urls", &peer_urls[i]])
                .args(["--initial-cluster", &initial])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", &token])
                .args(["--logger", "zap", "--log-outputs", "stderr"])
                .args(["--log-level", "warn"]),
        )?;
    }
    let addrs: Vec<String> = ports[..3]
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    // Healthy = every member answers Status and names the same leader.
    let (leader, leader_idx) = wait_for(&mut cluster, "etcd cluster", || async {
        let mut ids = Vec::new();
        let mut leaders = Vec::new();
        for a in &addrs {
            let (id, leader) = etcd_status(a).await.ok()?;
            ids.push(id);
            leaders.push(leader);
        }
        let l = leaders[0];
        if l == 0 || leaders.iter().any(|x| *x != l) {
            return None;
        }
        let idx = ids.iter().position(|id| *id == l)?;
        Some((l, idx))
    })
    .await?;
    let grpc = Grpc::connect(&addrs[leader_idx]).await?;
    Ok((
        cluster,
        Target::Etcd {
            grpc,
            leader: format!(
                "e{} ({}, member id {leader:x})",
                leader_idx + 1,
                addrs[leader_idx]
            ),
        },
    ))
}

/// A member's (own id, leader id) from `Maintenance/Status`.
async fn etcd_status(addr: &str) -> Result<(u64, u64)> {
    let grpc = Grpc::connect(addr).await?;
    let resp = grpc.unary("/etcdserverpb.Maintenance/Status", &[]).await?;
    // StatusResponse { header: ResponseHeader { member_id = 2 } = 1, leader = 4 }
    let header = pb_field(&resp, 1)?.and_then(PbValue::bytes).unwrap_or(&[]);
    let id = pb_field(header, 2)?.and_then(PbValue::varint).unwrap_or(0);
    let leader = pb_field(&resp, 4)?.and_then(PbValue::varint).unwrap_or(0);
    Ok((id, leader))
}

// ---------------------------------------------------------------------------
// A minimal gRPC client (unary calls over one HTTP/2 connection)

/// Runs hyper's connection task on the current thread's `LocalSet`.
#[derive(Clone, Copy)]
struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
{
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}

struct Grpc {
    send: http2::SendRequest<Full<Bytes>>,
    authority: String,
    conn: tokio::task::JoinHandle<()>,
}

impl Drop for Grpc {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl Grpc {
    async fn connect(addr: &str) -> Result<Grpc> {
        let tcp =
            tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| anyhow!("connecting to {addr}: timed out"))?
                .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)?;
        let (send, conn) = http2::Builder::new(LocalExec)
            .handshake(TokioIo::new(tcp))
            .await
            .with_context(|| format!("HTTP/2 handshake with {addr}"))?;
        let conn = tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
        Ok(Grpc {
            send,
            authority: addr.to_string(),
            conn,
        })
    }

    /// One unary call: `msg` is the encoded request; returns the encoded
    /// response. Fails unless `grpc-status` is 0.
    async fn unary(&self, path: &str, msg: &[u8]) -> Result<Bytes> {
        let mut body = Vec::with_capacity(5 + msg.len());
        body.push(0); // not compressed
        body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        body.extend_from_slice(msg);
        let req = hyper::Request::builder()
            .method(hyper::Method::POST)
            .uri(format!("http://{}{path}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from(body)))?;
        let mut send = self.send.clone();
        let call = async move {
            send.ready().await?;
            let resp = send.send_request(req).await?;
            if resp.status() != hyper::StatusCode::OK {
                bail!("HTTP status {}", resp.status());
            }
            // A "trailers-only" answer carries the status in the headers.
            if let Some(s) = resp.headers().get("grpc-status") {
                check_grpc_status(s, resp.headers().get("grpc-message"))?;
            }
            let collected = resp.into_body().collect().await?;
            let trailers = collected.trailers().cloned().unwrap_or_default();
            let data = collected.to_bytes();
            match trailers.get("grpc-status") {
                Some(s) => check_grpc_status(s, trailers.get("grpc-message"))?,
                None => bail!("no grpc-status trailer"),
            }
            if data.len() < 5 || data[0] != 0 {
                bail!("bad gRPC response frame ({} bytes)", data.len());
            }
            let len = u32::from_be_bytes(data[1..5].try_into().expect("4 bytes")) as usize;
            if data.len() != 5 + len {
                bail!("gRPC frame length {len} but {} bytes", data.len() - 5);
            }
            Ok(data.slice(5..))
        };
        tokio::time::timeout(PUT_TIMEOUT, call)
            .await
            .map_err(|_| anyhow!("{path}: timed out after {PUT_TIMEOUT:?}"))?
    }
}

fn check_grpc_status(
    status: &hyper::header::HeaderValue,
    message: Option<&hyper::header::HeaderValue>,
) -> Result<()> {
    if status.as_bytes() == b"0" {
        return Ok(());
    }
    let message = message
        .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
        .unwrap_or_default();
    bail!(
        "grpc-status {} {message}",
        String::from_utf8_lossy(status.as_bytes())
    )
}

// Protobuf, by hand: just what PutRequest and two responses need.

fn pb_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (wire type 2).
fn pb_bytes(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    pb_varint(out, (u64::from(field) << 3) | 2);
    pb_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

#[derive(Clone, Copy)]
enum PbValue<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> PbValue<'a> {
    fn varint(self) -> Option<u64> {
        match self {
            PbValue::Varint(v) => Some(v),
            _ => None,
        }
    }
    fn bytes(self) -> Option<&'a [u8]> {
        match self {
            PbValue::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

fn pb_read_varint(buf: &mut &[u8]) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf
            .split_first()
            .ok_or_else(|| anyhow!("truncated varint"))?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    bail!("varint too long")
}

/// The last occurrence of `field` in a message (protobuf's rule).
fn pb_field(mut buf: &[u8], field: u32) -> Result<Option<PbValue<'_>>> {
    let mut found = None;
    while !buf.is_empty() {
        let tag = pb_read_varint(&mut buf)?;
        let value = match tag & 7 {
            0 => PbValue::Varint(pb_read_varint(&mut buf)?),
            1 | 5 => {
                let n = if tag & 7 == 1 { 8 } else { 4 };
                if buf.len() < n {
                    bail!("truncated fixed field");
                }
                buf = &buf[n..];
                PbValue::Fixed
            }
            2 => {
                let n = pb_read_varint(&mut buf)? as usize;
                if buf.len() < n {
                    bail!("truncated length-delimited field");
                }
                let (b, rest) = buf.split_at(n);
                buf = rest;
                PbValue::Bytes(b)
            }
            w => bail!("unsupported wire type {w}"),
        };
        if tag >> 3 == u64::from(field) {
            found = Some(value);
        }
    }
    Ok(found)
}

// ---------------------------------------------------------------------------
// Load and statistics

struct Stats {
    writes: usize,
    window: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
    errors: u64,
    first_error: Option<String>,
    /// CPU seconds the three servers used during the phase (warm-up included).
    server_cpu: f64,
}

impl Stats {
    fn per_sec(&self) -> f64 {
        self.writes as f64 / self.window.as_secs_f64()
    }

    /// Server CPU microseconds per write (warm-up writes counted too).
    fn cpu_us_per_write(&self, total_secs: f64) -> f64 {
        let writes = self.per_sec() * total_secs;
        self.server_cpu * 1e6 / writes.max(1.0)
    }

    fn line(&self, system: &str, c: usize, total_secs: f64) -> String {
        let mut s = format!(
            "{system} c={c}: {:.0} writes/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} errors, servers used {:.1} CPU s ({:.0} us/write)",
            self.per_sec(),
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.errors,
            self.server_cpu,
            self.cpu_us_per_write(total_secs),
        );
        if let Some(e) = &self.first_error {
            s.push_str(&format!(" (first: {e})"));
        }
        s
    }
}

/// Seconds of load per phase, warm-up included.
fn total_secs(args: &Args) -> f64 {
    (args.warmup + args.seconds) as f64
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `c` tasks issue sequential puts to distinct keys for `warmup + seconds`;
/// requests issued after the warm-up and answered before the end count.
// A benchmark of real time: it reads the real clock on purpose.
#[allow(clippy::disallowed_methods)]
async fn run_load(
    target: &Target,
    system: &str,
    c: usize,
    args: &Args,
    value: &Rc<[u8]>,
) -> Result<Stats> {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.seconds);
    let errors = Cell::new(0u64);
    let first_error: std::cell::RefCell<Option<String>> = Default::default();
    // The tasks borrow `target`, so they run as futures joined here rather
    // than spawned: the same single thread either way.
    let tasks = (0..c).map(|t| {
        let (errors, first_error) = (&errors, &first_error);
        async move {
            let mut lat = Vec::new();
            let mut n = 0u64;
            loop {
                let issued = Instant::now();
                if issued >= end {
                    break;
                }
                let key = format!("bench/{system}/c{c}/t{t}/{n:010}");
                n += 1;
                match target.put(key.as_bytes(), value).await {
                    Ok(rev) if rev > 0 => {
                        let done = Instant::now();
                        if issued >= measure_from && done <= end {
                            lat.push(done - issued);
                        }
                        if args.slow_ms.is_some_and(|s| done - issued >= Duration::from_millis(s)) {
                            let wall = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .unwrap_or_default();
                            println!(
                                "  slow: {system} c={c} task {t}: {:.1} ms, answered at t+{:.3} s (unix {:.3})",
                                ms(done - issued),
                                (done - start).as_secs_f64(),
                                wall.as_secs_f64()
                            );
                        }
                    }
                    r => {
                        errors.set(errors.get() + 1);
                        let msg = match r {
                            Ok(rev) => format!("bad revision {rev}"),
                            Err(e) => format!("{e:#}"),
                        };
                        first_error.borrow_mut().get_or_insert(msg);
                        if errors.get() > 1000 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            lat
        }
    });
    let per_task = join_all(tasks.collect()).await;
    let mut all: Vec<Duration> = per_task.into_iter().flatten().collect();
    if errors.get() > 1000 {
        bail!(
            "{system} c={c}: too many errors (first: {})",
            first_error.borrow().clone().unwrap_or_default()
        );
    }
    all.sort_unstable();
    Ok(Stats {
        writes: all.len(),
        window: Duration::from_secs(args.seconds),
        p50: percentile(&all, 50.0),
        p99: percentile(&all, 99.0),
        max: all.last().copied().unwrap_or_default(),
        errors: errors.get(),
        first_error: first_error.take(),
        server_cpu: 0.0,
    })
}

/// Polls every future to completion on this task (no `futures` crate).
async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut outs: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futs.iter_mut().zip(outs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outs.into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

struct DiskProbe {
    n: usize,
    p50: Duration,
    p99: Duration,
}

/// What one small write plus `fdatasync` costs on the scratch disk: the
/// floor under any durable write's latency.
// A benchmark of real time: it reads the real clock on purpose.
#[allow(clippy::disallowed_methods)]
fn fsync_probe(path: &Path) -> Result<DiskProbe> {
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let block = [0x5au8; 4096];
    let mut samples = Vec::new();
    let until = Instant::now() + Duration::from_millis(500);
    let mut off = 0u64;
    while Instant::now() < until || samples.len() < 20 {
        let t = Instant::now();
        f.write_all_at(&block, off)?;
        f.sync_data()?;
        samples.push(t.elapsed());
        off += block.len() as u64;
        if samples.len() >= 2000 {
            break;
        }
    }
    drop(f);
    std::fs::remove_file(path).ok();
    samples.sort_unstable();
    Ok(DiskProbe {
        n: samples.len(),
        p50: percentile(&samples, 50.0),
        p99: percentile(&samples, 99.0),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_round_trip() {
        let mut msg = Vec::new();
        pb_bytes(&mut msg, 1, b"key");
        pb_bytes(&mut msg, 2, &[7u8; 300]);
        assert_eq!(&msg[..5], &[0x0a, 3, b'k', b'e', b'y']);
        assert_eq!(&msg[5..8], &[0x12, 0xac, 0x02]);
        assert_eq!(
            pb_field(&msg, 1).unwrap().and_then(PbValue::bytes),
            Some(&b"key"[..])
        );
        assert_eq!(
            pb_field(&msg, 2)
                .unwrap()
                .and_then(PbValue::bytes)
                .map(<[u8]>::len),
            Some(300)
        );
        let mut header = Vec::new();
        pb_varint(&mut header, 3 << 3); // field 3, varint
        pb_varint(&mut header, 123_456);
        let mut resp = Vec::new();
        pb_bytes(&mut resp, 1, &header);
        let h = pb_field(&resp, 1)
            .unwrap()
            .and_then(PbValue::bytes)
            .unwrap();
        assert_eq!(
            pb_field(h, 3).unwrap().and_then(PbValue::varint),
            Some(123_456)
        );
        assert!(pb_field(&[0x0a, 5, 1], 1).is_err());
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&[], 99.0), Duration::ZERO);
    }
}
