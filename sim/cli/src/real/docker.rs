//! The Docker side of a real run: the run's image (this very `faultline`
//! binary and the libraries it links, `FROM scratch`), its private network,
//! a container per master and node, and everything removed again.
//!
//! Everything created carries the label `faultline.real` (the run id) and
//! `faultline.real.pid` (the pid of the `faultline real run` that made it),
//! so `faultline real clean` finds what a killed run left behind without
//! touching a run still going, nor anything Faultline did not create.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)] // bollard's HashMaps; real mode

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder,
};
use bollard::Docker;

/// The run id of everything a real run creates.
pub const LABEL_RUN: &str = "faultline.real";
/// The pid of the `faultline real run` process that created it.
pub const LABEL_PID: &str = "faultline.real.pid";

/// Where the scenario file is in every container.
pub const SCENARIO_IN_CONTAINER: &str = "/scenario.toml";

/// How a host's container was made: its address, the scenario mounted,
/// its arguments.
#[derive(Clone)]
struct Made {
    ip: String,
    scenario: PathBuf,
    args: Vec<String>,
}

/// One run's Docker objects.
pub struct RunDocker {
    pub docker: Docker,
    pub run: String,
    pub image: String,
    pub network: String,
    /// The host side of the network's bridge (`flr-RUN`).
    pub bridge: String,
    /// How each host's container was made, to make it again (`disk-loss`).
    made: RefCell<BTreeMap<String, Made>>,
    /// The network's first three octets (a /24).
    pub net24: String,
}

fn labels(run: &str) -> HashMap<String, String> {
    let mut l = HashMap::new();
    l.insert(LABEL_RUN.to_string(), run.to_string());
    l.insert(LABEL_PID.to_string(), std::process::id().to_string());
    l
}

fn run_filter(run: Option<&str>) -> HashMap<String, Vec<String>> {
    let mut f = HashMap::new();
    let label = match run {
        Some(r) => format!("{LABEL_RUN}={r}"),
        None => LABEL_RUN.to_string(),
    };
    f.insert("label".to_string(), vec![label]);
    f
}

/// The files of the run's image: this program and what `ldd` says it
/// links (the dynamic loader among them), each at its own path.
fn image_files() -> Result<Vec<(PathBuf, Vec<u8>)>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let out = std::process::Command::new("ldd")
        .arg(&exe)
        .output()
        .map_err(|e| format!("running ldd on {}: {e}", exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut files = vec![(
        PathBuf::from("faultline"),
        std::fs::read(&exe).map_err(|e| format!("reading {}: {e}", exe.display()))?,
    )];
    for line in text.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`; `linux-vdso.so.1` has no file.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            continue;
        };
        let bytes = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
        files.push((PathBuf::from(path.trim_start_matches('/')), bytes));
    }
    Ok(files)
}

/// /24s for the run's network that no Docker network uses and no route of
/// this machine covers (the pods' 10.x prefixes never meet them), best
/// first.
async fn free_subnets(docker: &Docker) -> Result<Vec<String>, String> {
    let nets = docker
        .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
        .await
        .map_err(|e| format!("docker: listing networks: {e}"))?;
    let used: Vec<String> = nets
        .iter()
        .filter_map(|n| n.ipam.as_ref()?.config.clone())
        .flatten()
        .filter_map(|c| c.subnet)
        .collect();
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let free: Vec<String> = (0..=255u32)
        .filter(|third| {
            let net24 = format!("172.29.{third}");
            let taken = used.iter().any(|u| {
                u.starts_with(&format!("{net24}.")) || u == "172.29.0.0/16" || u == "172.16.0.0/12"
            });
            // /proc/net/route holds destinations as little-endian hex.
            let hex = format!("{:02X}{:02X}{:02X}{:02X}", 0, third, 29, 172);
            !taken && !routes.contains(&hex)
        })
        .map(|third| format!("172.29.{third}"))
        .collect();
    if free.is_empty() {
        return Err("no free /24 in 172.29.0.0/16 for the run's network".into());
    }
    Ok(free)
}

impl RunDocker {
    /// Builds the run's image and creates its network.
    pub async fn create(run: &str) -> Result<RunDocker, String> {
        let docker = faultline_cri::docker::connect().await?;
        let image = format!("faultline-real:{run}");
        build_image(&docker, run, &image).await?;
        let network = format!("faultline-real-{run}");
        let bridge: String = format!("flr-{run}").chars().take(15).collect();
        let mut made = RunDocker {
            docker,
            run: run.to_string(),
            image,
            network,
            bridge,
            net24: String::new(),
            made: RefCell::new(BTreeMap::new()),
        };
        let candidates = match free_subnets(&made.docker).await {
            Ok(c) => c,
            Err(e) => {
                let _ = made.remove_all().await;
                return Err(e);
            }
        };
        // Another run may take a subnet between the listing and the
        // creation: then the next one.
        let mut last = String::new();
        for net24 in candidates.into_iter().take(8) {
            match made
                .docker
                .create_network(made.network_request(&net24))
                .await
            {
                Ok(_) => {
                    made.net24 = net24;
                    return Ok(made);
                }
                Err(e) => {
                    last = format!(
                        "docker: creating network {} ({net24}.0/24): {e}",
                        made.network
                    )
                }
            }
        }
        let _ = made.remove_all().await;
        Err(last)
    }

    fn network_request(&self, net24: &str) -> NetworkCreateRequest {
        let mut options = HashMap::new();
        options.insert(
            "com.docker.network.bridge.name".to_string(),
            self.bridge.clone(),
        );
        NetworkCreateRequest {
            name: self.network.clone(),
            driver: Some("bridge".into()),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(format!("{net24}.0/24")),
                    gateway: Some(format!("{net24}.1")),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            options: Some(options),
            labels: Some(labels(&self.run)),
            ..Default::default()
        }
    }

    /// The container of `host`.
    pub fn container(&self, host: &str) -> String {
        format!("faultline-real-{}-{host}", self.run)
    }

    /// Creates and starts `host`'s container at `ip`, running `faultline
    /// ARGS` with the scenario file mounted.
    pub async fn start_host(
        &self,
        host: &str,
        ip: &str,
        scenario: &Path,
        args: Vec<String>,
    ) -> Result<(), String> {
        let made = Made {
            ip: ip.to_string(),
            scenario: scenario.to_path_buf(),
            args: args.clone(),
        };
        self.made.borrow_mut().insert(host.to_string(), made);
        self.create_host(host, ip, scenario, args).await?;
        self.start(host).await
    }

    /// Replaces `host`'s container by a new one, not started, made as the
    /// first was plus `extra` arguments: everything it had on disk is gone.
    pub async fn replace(&self, host: &str, extra: &[&str]) -> Result<(), String> {
        let Some(Made {
            ip,
            scenario,
            mut args,
        }) = self.made.borrow().get(host).cloned()
        else {
            return Err(format!("{host}: no container of this run"));
        };
        args.extend(extra.iter().map(|a| a.to_string()));
        let name = self.container(host);
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        self.docker
            .remove_container(&name, Some(options))
            .await
            .map_err(|e| format!("docker: removing {name}: {e}"))?;
        self.create_host(host, &ip, &scenario, args).await
    }

    async fn create_host(
        &self,
        host: &str,
        ip: &str,
        scenario: &Path,
        args: Vec<String>,
    ) -> Result<(), String> {
        let mut endpoints = HashMap::new();
        endpoints.insert(
            self.network.clone(),
            EndpointSettings {
                ipam_config: Some(EndpointIpamConfig {
                    ipv4_address: Some(ip.to_string()),
                    ..Default::default()
                }),
                aliases: Some(vec![host.to_string()]),
                ..Default::default()
            },
        );
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            hostname: Some(host.to_string()),
            cmd: Some(args),
            labels: Some(labels(&self.run)),
            host_config: Some(HostConfig {
                network_mode: Some(self.network.clone()),
                binds: Some(vec![format!(
                    "{}:{SCENARIO_IN_CONTAINER}:ro",
                    scenario.display()
                )]),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(endpoints),
            }),
            ..Default::default()
        };
        let name = self.container(host);
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| format!("docker: creating {name}: {e}"))?;
        Ok(())
    }

    /// Starts `host`'s container (again).
    pub async fn start(&self, host: &str) -> Result<(), String> {
        let name = self.container(host);
        self.docker
            .start_container(&name, None)
            .await
            .map_err(|e| format!("docker: starting {name}: {e}"))
    }

    /// Sends `signal` to `host`'s container's first process.
    pub async fn kill(&self, host: &str, signal: &str) -> Result<(), String> {
        let name = self.container(host);
        let options = KillContainerOptionsBuilder::default()
            .signal(signal)
            .build();
        self.docker
            .kill_container(&name, Some(options))
            .await
            .map_err(|e| format!("docker: {signal} to {name}: {e}"))
    }

    /// Freezes `host`'s container (the cgroup freezer).
    pub async fn pause(&self, host: &str) -> Result<(), String> {
        let name = self.container(host);
        self.docker
            .pause_container(&name)
            .await
            .map_err(|e| format!("docker: pausing {name}: {e}"))
    }

    /// Thaws `host`'s container.
    pub async fn unpause(&self, host: &str) -> Result<(), String> {
        let name = self.container(host);
        self.docker
            .unpause_container(&name)
            .await
            .map_err(|e| format!("docker: unpausing {name}: {e}"))
    }

    /// The pid of `host`'s container's first process, if it runs.
    pub async fn pid(&self, host: &str) -> Option<i64> {
        let c = self
            .docker
            .inspect_container(&self.container(host), None)
            .await
            .ok()?;
        let state = c.state?;
        (state.running == Some(true)).then_some(state.pid?)
    }

    /// Whether `host`'s container runs (and is not frozen).
    pub async fn running(&self, host: &str) -> bool {
        match self
            .docker
            .inspect_container(&self.container(host), None)
            .await
        {
            Ok(c) => c
                .state
                .is_some_and(|s| s.running == Some(true) && s.paused != Some(true)),
            Err(_) => false,
        }
    }

    /// Removes the run's containers, network and image.
    pub async fn remove_all(&self) -> Result<Leftovers, String> {
        remove(&self.docker, Some(&self.run)).await
    }
}

async fn build_image(docker: &Docker, run: &str, image: &str) -> Result<(), String> {
    let files = image_files()?;
    let dockerfile = "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/faultline\"]\n";
    let mut context: Vec<(PathBuf, &[u8], u32)> =
        vec![("Dockerfile".into(), dockerfile.as_bytes(), 0o644)];
    for (path, bytes) in &files {
        context.push((Path::new("rootfs").join(path), bytes, 0o755));
    }
    faultline_cri::docker::build_image(docker, image, &labels(run), &context).await
}

/// What a removal found.
#[derive(Debug, Default)]
pub struct Leftovers {
    pub containers: usize,
    pub networks: usize,
    pub images: usize,
}

/// Whether process `pid` runs.
fn alive(pid: &str) -> bool {
    Path::new("/proc").join(pid).exists()
}

/// What carries `filters`' labels: containers (all, running or not),
/// networks and images, each as (id, labels).
struct Labelled {
    containers: Vec<(String, HashMap<String, String>)>,
    networks: Vec<(String, HashMap<String, String>)>,
    images: Vec<(String, HashMap<String, String>)>,
}

async fn labelled(docker: &Docker, run: Option<&str>) -> Result<Labelled, String> {
    let filters = run_filter(run);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| format!("docker: listing containers: {e}"))?
        .into_iter()
        .filter_map(|c| Some((c.id?, c.labels.unwrap_or_default())))
        .collect();
    let options = ListNetworksOptionsBuilder::default()
        .filters(&filters)
        .build();
    let networks = docker
        .list_networks(Some(options))
        .await
        .map_err(|e| format!("docker: listing networks: {e}"))?
        .into_iter()
        .filter_map(|n| Some((n.id?, n.labels.unwrap_or_default())))
        .collect();
    let options = ListImagesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let images = docker
        .list_images(Some(options))
        .await
        .map_err(|e| format!("docker: listing images: {e}"))?
        .into_iter()
        .map(|i| (i.id, i.labels))
        .collect();
    Ok(Labelled {
        containers,
        networks,
        images,
    })
}

/// Removes what run `run` created so far.
pub async fn remove_run(run: &str) -> Result<Leftovers, String> {
    let docker = faultline_cri::docker::connect().await?;
    remove(&docker, Some(run)).await
}

/// Removes what real runs created whose `faultline real run` is no longer
/// running (every run's with `all`).
pub async fn clean(all: bool) -> Result<Leftovers, String> {
    let docker = faultline_cri::docker::connect().await?;
    let found = labelled(&docker, None).await?;
    let mut runs: BTreeMap<String, bool> = BTreeMap::new();
    for (_, l) in found
        .containers
        .iter()
        .chain(&found.networks)
        .chain(&found.images)
    {
        if let Some(run) = l.get(LABEL_RUN) {
            let dead = l.get(LABEL_PID).is_none_or(|p| !alive(p));
            *runs.entry(run.clone()).or_insert(false) |= dead || all;
        }
    }
    let mut total = Leftovers::default();
    for (run, remove_it) in runs {
        if remove_it {
            let l = remove(&docker, Some(&run)).await?;
            total.containers += l.containers;
            total.networks += l.networks;
            total.images += l.images;
        }
    }
    Ok(total)
}

async fn remove(docker: &Docker, run: Option<&str>) -> Result<Leftovers, String> {
    let found = labelled(docker, run).await?;
    let mut out = Leftovers::default();
    for (c, _) in &found.containers {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        // Unpause first: a frozen container is slow to kill.
        let _ = docker.unpause_container(c).await;
        docker
            .remove_container(c, Some(options))
            .await
            .map_err(|e| format!("docker: removing container {c}: {e}"))?;
        out.containers += 1;
    }
    for (id, _) in &found.networks {
        docker
            .remove_network(id)
            .await
            .map_err(|e| format!("docker: removing network {id}: {e}"))?;
        out.networks += 1;
    }
    for (id, _) in &found.images {
        let options = RemoveImageOptionsBuilder::default().force(true).build();
        docker
            .remove_image(id, Some(options), None)
            .await
            .map_err(|e| format!("docker: removing image {id}: {e}"))?;
        out.images += 1;
    }
    Ok(out)
}
