//! `faultline master`: one store replica for real, over TCP, with its log and
//! snapshots in a data directory (fsync on every batch).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::rc::Rc;

use clap::Args;
use faultline_apiserver::{ApiServerConfig, Role, Tokens};
use faultline_client::{Client, ClientConfig};
use faultline_store::client::{ClientConfig as StoreClientConfig, StoreClient};
use faultline_store::server::{serve, StoreConfig};

#[derive(Args)]
pub struct MasterArgs {
    /// This replica's id (a key of --members).
    #[arg(long)]
    id: u64,
    /// This replica was a member before (like etcd's
    /// `--initial-cluster-state existing`): an empty data directory means
    /// its data was lost, so it rejoins without voting until a leader has
    /// repaired it. Use it on every start after the cluster's first.
    #[arg(long)]
    rejoin: bool,
    /// Every replica as `ID=HOST:PORT`, comma separated (this one included).
    #[arg(long, value_delimiter = ',', required = true)]
    members: Vec<String>,
    /// Where the write-ahead log, snapshots and hard state live.
    #[arg(long)]
    data_dir: PathBuf,
    /// Address to listen on (the port comes from this replica's member entry).
    #[arg(long, default_value = "0.0.0.0")]
    listen_ip: String,
    /// Raft tick length in milliseconds (heartbeat = 1 tick, election = 10-20).
    #[arg(long, default_value_t = 100)]
    tick_ms: u64,
    /// Seed for this replica's randomness (election timeouts, client
    /// ids); default: from the operating system. Replicas must not share
    /// one.
    #[arg(long)]
    seed: Option<u64>,
    /// Also serve the Kubernetes-style API on this port, and run the
    /// scheduler and controller manager (elected among the masters).
    /// Needs --token-file.
    #[arg(long)]
    api_port: Option<u16>,
    /// Static token file (`token,user,uid,"groups"` per line) naming at
    /// least one user in each of system:kube-scheduler and
    /// system:kube-controller-manager.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Every master's API address, for the scheduler's and controller
    /// manager's clients (default: each member's host with --api-port).
    #[arg(long, value_delimiter = ',')]
    api_servers: Vec<String>,
}

fn parse_members(list: &[String]) -> Result<BTreeMap<u64, String>, String> {
    let mut out = BTreeMap::new();
    for m in list {
        let (id, addr) = m
            .split_once('=')
            .ok_or_else(|| format!("--members entry {m:?} is not ID=HOST:PORT"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("--members entry {m:?}: bad id"))?;
        if id == 0 {
            return Err(format!("--members entry {m:?}: ids start at 1"));
        }
        if !addr.contains(':') {
            return Err(format!("--members entry {m:?}: address needs a port"));
        }
        if out.insert(id, addr.trim().to_string()).is_some() {
            return Err(format!("--members: id {id} appears twice"));
        }
    }
    Ok(out)
}

pub fn run(args: MasterArgs) -> ExitCode {
    let members = match parse_members(&args.members) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(me) = members.get(&args.id) else {
        eprintln!("error: --id {} is not in --members", args.id);
        return ExitCode::from(2);
    };
    let port: u16 = match me.rsplit_once(':').and_then(|(_, p)| p.parse().ok()) {
        Some(p) => p,
        None => {
            eprintln!("error: member {} has a bad port in {me:?}", args.id);
            return ExitCode::from(2);
        }
    };
    let host = format!("m{}", args.id);
    // A given seed is mixed with the replica's name, so replicas started
    // with one seed still draw apart.
    let seed = match args
        .seed
        .map_or_else(faultline_env::real::random_seed, |s| {
            Ok(faultline_env::host_seed(s, &host))
        }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: no seed given and none from /dev/urandom: {e}");
            return ExitCode::from(2);
        }
    };
    let env = match faultline_env::real::env(&host, seed, &args.data_dir, &args.listen_ip) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: data dir {}: {e}", args.data_dir.display());
            return ExitCode::from(2);
        }
    };
    let control_plane = match (args.api_port, &args.token_file) {
        (None, _) => None,
        (Some(_), None) => {
            eprintln!("error: --api-port needs --token-file");
            return ExitCode::from(2);
        }
        (Some(api_port), Some(path)) => {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: --token-file {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            };
            let tokens = match Tokens::parse(&text) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            };
            let (Some(sched), Some(ctl)) = (
                tokens.token_for(&Role::Scheduler),
                tokens.token_for(&Role::Controller),
            ) else {
                eprintln!(
                    "error: {}: needs a user in system:kube-scheduler and one in system:kube-controller-manager",
                    path.display()
                );
                return ExitCode::from(2);
            };
            Some((api_port, tokens, sched, ctl))
        }
    };
    let store_endpoints: Vec<String> = members.values().cloned().collect();
    let api_servers: Vec<String> = match control_plane.as_ref() {
        Some(_) if !args.api_servers.is_empty() => args.api_servers.clone(),
        Some((api_port, ..)) => members
            .values()
            .filter_map(|a| a.rsplit_once(':').map(|(h, _)| format!("{h}:{api_port}")))
            .collect(),
        None => Vec::new(),
    };
    let mut cfg = StoreConfig::new(args.id, port, members);
    cfg.tick = Duration::from_millis(args.tick_ms.max(1));
    cfg.rejoin = args.rejoin;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    eprintln!(
        "faultline master {} serving on {}:{port}",
        args.id, args.listen_ip
    );
    if let Some((api_port, tokens, sched, ctl)) = control_plane {
        let env2 = env.clone();
        local.spawn_local(async move {
            let env = env2;
            let store = Rc::new(StoreClient::new(
                env.clone(),
                StoreClientConfig::new(store_endpoints),
            ));
            let api = ApiServerConfig::new(api_port, tokens);
            let env3 = env.clone();
            env.spawn(async move {
                if let Err(e) = faultline_apiserver::serve(env3, api, store).await {
                    eprintln!("error: API server on port {api_port}: {e}");
                }
            });
            let me = format!("m{}", args.id);
            let sched = Client::new(env.clone(), ClientConfig::new(api_servers.clone(), &sched));
            env.spawn(faultline_scheduler::run(
                sched,
                faultline_scheduler::SchedulerConfig::new(&me),
            ));
            let ctl = Client::new(env.clone(), ClientConfig::new(api_servers, &ctl));
            env.spawn(faultline_controllers::manager::run(
                ctl,
                faultline_controllers::manager::ManagerConfig::new(&me),
            ));
        });
        eprintln!(
            "faultline master {} serving the API on port {api_port}",
            args.id
        );
    }
    match local.block_on(&rt, serve(env, cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
