//! `pod-startup`: pod startup latency on `faultline up` (3 masters, 3
//! nodes, real time), created to Ready, for each container runtime, beside
//! Kubernetes' SLO.
//!
//! For each runtime a fresh cluster; `--pods` pods (one container, no
//! readiness probe: Ready once it runs) are created as fast as the API
//! takes them, and a watch records when each is first seen Ready. The
//! latency of a pod is from just before its `POST` to that event, as
//! Kubernetes' pod startup SLI measures it (creation to all containers
//! started, observed via watch; image pulls excluded: nothing is pulled
//! here). Kubernetes' SLO: p99 at most 5 s. The built-in runtime (a task
//! in the node process) is the baseline measured in the same run: the
//! difference is what starting a real program or container costs.
//!
//! The Docker runtime's floor is measured too: the same number of pods
//! started straight through the node's runtime (`DockerRuntime`, no API
//! server, scheduler or kubelet), as many at a time as the cluster's three
//! kubelets start (`--pod-workers` 16 each), all asked for at once. What a
//! pod costs beyond that floor is the orchestrator's.
//!
//! The Docker runtime needs a Docker daemon and a static busybox (an image
//! is built from it, labelled and removed at the end). This benchmark
//! measures real time, so it reads `std::time::Instant` directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use faultline_api::{Container, ObjectMeta, Pod, PodSpec};
use faultline_client::{Client, ListParams, WatchItem};
use faultline_env::Env;

#[path = "../up_cluster.rs"]
mod up_cluster;

#[derive(Parser)]
#[command(
    name = "pod-startup",
    about = "Pod startup latency (created to Ready) on faultline up, per container runtime, beside Kubernetes' 5 s p99 SLO"
)]
struct Args {
    /// Pods per runtime.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Runtimes to measure, comma separated (builtin is the baseline).
    #[arg(long, value_delimiter = ',', default_value = "builtin,process,docker")]
    runtimes: Vec<String>,
    /// Give up on a pod after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// The `faultline` executable (default: next to this one).
    #[arg(long)]
    faultline: Option<PathBuf>,
}

/// Kubernetes' pod startup SLO: p99 at most 5 s.
const SLO: Duration = Duration::from_secs(5);

fn pct(v: &[Duration], p: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The test image for the Docker runtime: busybox alone, removed when
/// dropped.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

fn busybox_image() -> Result<Image> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .context("no busybox (Debian's busybox-static) to build the image from")?;
    let dir = std::env::temp_dir().join(format!("pod-startup-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(busybox, dir.join("busybox"))?;
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
    )?;
    let tag = format!("faultline-bench-busybox:{}", std::process::id());
    let label = format!("faultline.run=bench-{}", std::process::id());
    let out = Command::new("docker")
        .args(["build", "-q", "--label", &label, "-t", &tag])
        .arg(&dir)
        .output()
        .context("docker build")?;
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        bail!("docker build: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(Image(tag))
}

/// A pod of one long-running container for `runtime`.
fn pod(runtime: &str, image: &str, name: &str) -> Pod {
    let container = match runtime {
        "builtin" => Container {
            name: "app".into(),
            image: "sleep".into(),
            ..Default::default()
        },
        _ => Container {
            name: "app".into(),
            image: image.into(),
            command: vec!["sleep".into(), "3600".into()],
            ..Default::default()
        },
    };
    Pod {
        metadata: ObjectMeta::named("default", name),
        spec: PodSpec {
            containers: vec![container],
            termination_grace_period_seconds: Some(0),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Pods the Docker floor starts at once: three nodes' kubelets, 16 pod
/// workers each (`faultline node --pod-workers`).
const FLOOR_AT_ONCE: usize = 48;

/// The Docker runtime alone: `pods` pods (a sandbox and one container
/// each) started [`FLOOR_AT_ONCE`] at a time, all asked for at once; each
/// pod's latency from the start of the batch to its container running.
async fn docker_floor(
    env: &Env,
    image: &str,
    pods: usize,
    scratch: &std::path::Path,
) -> Result<Vec<Duration>> {
    use faultline_kubelet::{ContainerRuntime, ContainerSpec};
    use futures_util::StreamExt as _;
    let run = format!("bench-floor-{}", std::process::id());
    let volumes = faultline_cri::VolumeDirs::new(&scratch.join("floor-pods"));
    let rt = faultline_cri::DockerRuntime::open(env.clone(), "floor", &run, "10.250", volumes)
        .await
        .map_err(anyhow::Error::msg)?;
    let batch = Instant::now();
    let starts = futures_util::stream::iter(0..pods)
        .map(|i| {
            let n = i + 1;
            let spec = ContainerSpec {
                pod_uid: format!("floor-{i}"),
                pod_namespace: "default".into(),
                pod_name: format!("p{i}"),
                container_name: "app".into(),
                image: image.into(),
                command: vec!["sleep".into(), "3600".into()],
                pod_ip: format!("10.250.{}.{}", n / 256, n % 256),
                ..Default::default()
            };
            let rt = &rt;
            async move { rt.start(spec).await.map(|_| batch.elapsed()) }
        })
        .buffer_unordered(FLOOR_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    drop(rt);
    faultline_cri::docker::remove_all(&run)
        .await
        .map_err(anyhow::Error::msg)?;
    starts
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .context("the Docker floor: a start failed")
}

/// Creates the pods and returns each one's created-to-Ready latency.
async fn measure(
    env: &Env,
    client: &Client,
    args: &Args,
    runtime: &str,
    image: &str,
) -> Result<Vec<Duration>> {
    let rv = client
        .list::<Pod>(Some("default"), &ListParams::default())
        .await?
        .metadata
        .resource_version;
    let mut watch = client
        .watch::<Pod>(Some("default"), &ListParams::default(), &rv)
        .await?;
    let created: Rc<RefCell<BTreeMap<String, Instant>>> = Default::default();
    let ready: Rc<RefCell<BTreeMap<String, Duration>>> = Default::default();
    let watcher = {
        let (created, ready) = (created.clone(), ready.clone());
        env.spawn(async move {
            while let Some(item) = watch.next().await {
                let (WatchItem::Added(p) | WatchItem::Modified(p)) = item else {
                    continue;
                };
                let name = p.metadata.name.clone();
                if p.is_ready() && !ready.borrow().contains_key(&name) {
                    if let Some(t) = created.borrow().get(&name) {
                        ready.borrow_mut().insert(name, t.elapsed());
                    }
                }
            }
        })
    };
    for i in 0..args.pods {
        let name = format!("p{i}");
        created.borrow_mut().insert(name.clone(), Instant::now());
        client
            .create(&pod(runtime, image, &name))
            .await
            .with_context(|| format!("creating pod {name}"))?;
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    while ready.borrow().len() < args.pods && Instant::now() < deadline {
        env.sleep(Duration::from_millis(100)).await;
    }
    watcher.abort();
    let got: Vec<Duration> = ready.borrow().values().copied().collect();
    if got.len() < args.pods {
        bail!(
            "{runtime}: only {} of {} pods Ready within {} s",
            got.len(),
            args.pods,
            args.timeout
        );
    }
    Ok(got)
}

fn main() -> ExitCode {
    let args = Args::parse();
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
    let scratch = std::env::temp_dir().join(format!("faultline-pod-bench-{}", std::process::id()));
    let env = faultline_env::real::env("bench", 1, &scratch, "127.0.0.1")?;
    println!(
        "pod-startup: {} pods per runtime on faultline up (3 masters, 3 nodes, HTTPS, fsync on), created to Ready",
        args.pods
    );
    let image = if args.runtimes.iter().any(|r| r == "docker") {
        Some(busybox_image()?)
    } else {
        None
    };
    let mut rows = Vec::new();
    for (slot, runtime) in args.runtimes.iter().enumerate() {
        let (cluster, client) = up_cluster::start(
            &bin,
            "pod-bench",
            3,
            slot as u16,
            &["--runtime", runtime],
            &env,
        )?;
        let image = image.as_ref().map_or("", |i| i.0.as_str());
        let started = Instant::now();
        let got = faultline_env::real::block_on_local(measure(&env, &client, args, runtime, image));
        let took = started.elapsed();
        drop(cluster);
        rows.push((runtime.clone(), got?, took));
        if runtime == "docker" {
            let floor = faultline_env::real::block_on_local(docker_floor(
                &env, image, args.pods, &scratch,
            ))?;
            let all = floor.iter().copied().max().unwrap_or_default();
            rows.push(("floor".into(), floor, all));
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let base = rows
        .iter()
        .find(|r| r.0 == "builtin")
        .map(|r| pct(&r.1, 50.0));
    println!(
        "{:<8} | {:>8} {:>8} {:>8} | {:>10} | {:>9} | SLO p99 <= {} s",
        "runtime",
        "p50 ms",
        "p99 ms",
        "max ms",
        "all Ready",
        "p50/base",
        SLO.as_secs()
    );
    for (runtime, lat, took) in &rows {
        let p99 = pct(lat, 99.0);
        let ratio = base.map_or("-".to_string(), |b| {
            format!(
                "{:.2}",
                pct(lat, 50.0).as_secs_f64() / b.as_secs_f64().max(1e-9)
            )
        });
        println!(
            "{:<8} | {:>8.0} {:>8.0} {:>8.0} | {:>8.1} s | {:>9} | {}",
            runtime,
            pct(lat, 50.0).as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0,
            pct(lat, 100.0).as_secs_f64() * 1000.0,
            took.as_secs_f64(),
            ratio,
            if p99 <= SLO { "met" } else { "MISSED" }
        );
    }
    if rows.iter().any(|r| r.0 == "floor") {
        println!(
            "floor: the Docker runtime alone (no cluster), {FLOOR_AT_ONCE} pods at a time, \
             each a sandbox and a container"
        );
    }
    Ok(())
}
