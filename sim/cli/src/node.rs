//! `faultline node`: one worker node for real — the kubelet and the node's
//! service proxy in one process, talking to the masters' API servers over
//! TCP.
//!
//! Containers run in this process on the kubelet's built-in runtime (the
//! same one the simulator uses: the `echo`, `sleep`, `crash` and `exit0`
//! apps), each listening on its own pod IP. On one machine the pod IPs are
//! loopback addresses (`--pod-ip-prefix 127.11` gives `127.11.0.1`, ...):
//! Linux routes all of 127/8 to `lo`, so the other nodes' proxies reach
//! them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

use clap::Args;
use faultline_api::{labels, Quantity};
use faultline_apiserver::{Role, Tokens};
use faultline_client::{Client, ClientConfig};
use faultline_kubelet::{KubeletConfig, SimRuntime};
use faultline_proxy::ProxyConfig;

#[derive(Args)]
pub struct NodeArgs {
    /// The node's name: it registers a Node of this name.
    #[arg(long)]
    name: String,
    /// Every master's API address (`HOST:PORT`), comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    api_servers: Vec<String>,
    /// Static token file (`token,user,uid,"groups"` per line); the node
    /// uses the token of user `system:node:NAME` (group `system:nodes`).
    #[arg(long)]
    token_file: PathBuf,
    /// The node's address: Service ports and the proxy's health check
    /// (port 10256) are served on it, and it is reported as the node's
    /// InternalIP.
    #[arg(long, default_value = "127.0.0.1")]
    listen_ip: String,
    /// Pod IPs are PREFIX.X.Y; give every node its own two-octet prefix
    /// (127.11, 127.12, ... on one machine).
    #[arg(long)]
    pod_ip_prefix: String,
    /// The node's datacenter (its region label; the scheduler spreads
    /// replicas over them). Its zone is DATACENTER-1.
    #[arg(long, default_value = "dc-a")]
    datacenter: String,
    /// Allocatable CPU.
    #[arg(long, default_value = "4")]
    cpu: String,
    /// Allocatable memory.
    #[arg(long, default_value = "8Gi")]
    memory: String,
    /// Most pods the node takes.
    #[arg(long, default_value_t = 110)]
    pods: u32,
    /// Where the node may keep files (the built-in runtime keeps none).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Seed for the node's randomness (container ids, client jitter);
    /// default: from the operating system.
    #[arg(long)]
    seed: Option<u64>,
}

fn usage(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

pub fn run(args: NodeArgs) -> ExitCode {
    let prefix_ok = {
        let octets: Vec<&str> = args.pod_ip_prefix.split('.').collect();
        octets.len() == 2 && octets.iter().all(|o| o.parse::<u8>().is_ok())
    };
    if !prefix_ok {
        return usage(format_args!(
            "--pod-ip-prefix {:?}: expected two octets such as 127.11",
            args.pod_ip_prefix
        ));
    }
    let mut cfg = KubeletConfig::new(&args.name, &args.pod_ip_prefix);
    cfg.address = args.listen_ip.clone();
    cfg.labels
        .insert(labels::REGION.into(), args.datacenter.clone());
    cfg.labels
        .insert(labels::ZONE.into(), format!("{}-1", args.datacenter));
    for (key, value, flag) in [
        ("cpu", args.cpu.clone(), "--cpu"),
        ("memory", args.memory.clone(), "--memory"),
        ("pods", args.pods.to_string(), "--pods"),
    ] {
        match Quantity::parse(&value) {
            Ok(q) => {
                cfg.capacity.insert(key.into(), q);
            }
            Err(e) => return usage(format_args!("{flag} {value:?}: {e}")),
        }
    }
    let text = match std::fs::read_to_string(&args.token_file) {
        Ok(t) => t,
        Err(e) => {
            return usage(format_args!(
                "--token-file {}: {e}",
                args.token_file.display()
            ))
        }
    };
    let tokens = match Tokens::parse(&text) {
        Ok(t) => t,
        Err(e) => return usage(format_args!("{}: {e}", args.token_file.display())),
    };
    let Some(token) = tokens.token_for(&Role::Node(args.name.clone())) else {
        return usage(format_args!(
            "{}: no token for user system:node:{} in group system:nodes",
            args.token_file.display(),
            args.name
        ));
    };
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("faultline-node-{}", args.name)));
    let seed = match args.seed.map_or_else(faultline_env::real::random_seed, Ok) {
        Ok(s) => s,
        Err(e) => {
            return usage(format_args!(
                "no seed given and none from /dev/urandom: {e}"
            ))
        }
    };
    let env = match faultline_env::real::env(&args.name, seed, &data_dir, &args.listen_ip) {
        Ok(e) => e,
        Err(e) => return usage(format_args!("data dir {}: {e}", data_dir.display())),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    eprintln!(
        "faultline node {} on {} (pods on {}.x.y), API servers {}",
        args.name,
        args.listen_ip,
        args.pod_ip_prefix,
        args.api_servers.join(",")
    );
    local.block_on(&rt, async move {
        let client = Client::new(env.clone(), ClientConfig::new(args.api_servers, &token));
        env.spawn(faultline_proxy::run(
            env.clone(),
            client.clone(),
            ProxyConfig::new(&args.name),
        ));
        let runtime = Rc::new(SimRuntime::new(env.clone()));
        faultline_kubelet::run(env, client, runtime, cfg).await;
    });
    ExitCode::SUCCESS
}
