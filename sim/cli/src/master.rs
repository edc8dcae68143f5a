//! `faultline master`: one master for real, over TCP: its store replica
//! (log and snapshots in a data directory, fsync on every batch) and, with
//! `--api-port`, the API server, scheduler and controller manager, wired by
//! `faultline-roles` exactly as the simulator wires them. TLS throughout
//! (the API's HTTPS, the store's mutual TLS) unless `--insecure-plain-http`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use faultline_apiserver::{ApiServerConfig, Role};
use faultline_controllers::manager::ManagerConfig;
use faultline_env::tls::{TlsClient, TlsServer};
use faultline_roles::master::{ManagerSpec, SchedulerSpec};
use faultline_roles::{master, ControlPlaneSpec, MasterSpec, StoreRestart};
use faultline_store::server::{StoreConfig, StoreTls};

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
    /// ids), mixed with the replica's id, so replicas may share one;
    /// default: from the operating system.
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
    /// This master's certificate (PEM, leaf first), signed by the cluster
    /// CA: the API serves HTTPS with it, and the store uses it for mutual
    /// TLS with its peers and clients (so it must name this master's
    /// address and allow both server and client use).
    #[arg(long, requires = "tls_private_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file (PEM).
    #[arg(long, requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// The cluster CA (PEM). The store accepts only peers and clients with
    /// a certificate it signed; a client certificate presented to the API
    /// must chain to it; this master's scheduler and controller manager
    /// verify the API servers with it.
    #[arg(long)]
    cluster_ca_file: Option<PathBuf>,
    /// No TLS: the API over plain HTTP and the store over plain TCP, so
    /// tokens and data cross the network in the clear and any host may
    /// join as a store peer. For a trusted network only.
    #[arg(long, conflicts_with_all = ["tls_cert_file", "tls_private_key_file", "cluster_ca_file"])]
    insecure_plain_http: bool,
    /// Every master's API address, for the scheduler's and controller
    /// manager's clients (default: each member's host with --api-port).
    #[arg(long, value_delimiter = ',')]
    api_servers: Vec<String>,
    /// How long a node's heartbeat may stay unchanged before the node is
    /// marked NotReady/Unknown (kube-controller-manager's flag of this
    /// name).
    #[arg(long, value_name = "T", default_value = "40s", value_parser = crate::parse_time)]
    node_monitor_grace_period: std::time::Duration,
    /// How long a node may stay not ready before its pods are evicted
    /// (Kubernetes' default toleration of the not-ready and unreachable
    /// taints).
    #[arg(long, value_name = "T", default_value = "5m", value_parser = crate::parse_time)]
    pod_eviction_timeout: std::time::Duration,
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

/// A master's TLS, from its flags.
struct MasterTls {
    /// The API's server side: client certificates optional, verified.
    api: TlsServer,
    /// How this master's own components verify the API servers.
    api_client: TlsClient,
    /// The store's mutual TLS.
    store: StoreTls,
}

fn master_tls(args: &MasterArgs) -> Result<Option<MasterTls>, String> {
    if args.insecure_plain_http {
        return Ok(None);
    }
    let (Some(cert), Some(key), Some(ca)) = (
        &args.tls_cert_file,
        &args.tls_private_key_file,
        &args.cluster_ca_file,
    ) else {
        return Err(
            "a master speaks TLS: it needs --tls-cert-file, --tls-private-key-file \
             and --cluster-ca-file (or --insecure-plain-http for no TLS at all)"
                .into(),
        );
    };
    let e = |e: faultline_env::tls::TlsError| e.to_string();
    Ok(Some(MasterTls {
        api: TlsServer::from_files(cert, key, Some(ca), false).map_err(e)?,
        api_client: TlsClient::from_files(ca, None).map_err(e)?,
        store: StoreTls {
            server: TlsServer::from_files(cert, key, Some(ca), true).map_err(e)?,
            client: TlsClient::from_files(ca, Some((cert, key))).map_err(e)?,
        },
    }))
}

pub fn run(args: MasterArgs) -> ExitCode {
    match start(args) {
        Ok(code) => code,
        Err(e) => crate::usage_error(e),
    }
}

fn start(args: MasterArgs) -> Result<ExitCode, String> {
    let members = parse_members(&args.members)?;
    let me = members
        .get(&args.id)
        .ok_or_else(|| format!("--id {} is not in --members", args.id))?;
    let port: u16 = me
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| format!("member {} has a bad port in {me:?}", args.id))?;
    let host = format!("m{}", args.id);
    let env = crate::real_env(&host, args.seed, &args.data_dir, &args.listen_ip)?;
    let store_endpoints: Vec<String> = members.values().cloned().collect();
    let tls = master_tls(&args)?;
    let control_plane = match (args.api_port, &args.token_file) {
        (None, _) => None,
        (Some(_), None) => return Err("--api-port needs --token-file".into()),
        (Some(api_port), Some(path)) => {
            let tokens = crate::read_tokens(path)?;
            let (Some(scheduler), Some(controller)) = (
                tokens.token_for(&Role::Scheduler),
                tokens.token_for(&Role::Controller),
            ) else {
                return Err(format!(
                    "{}: needs a user in system:kube-scheduler and one in system:kube-controller-manager",
                    path.display()
                ));
            };
            let api_servers = if args.api_servers.is_empty() {
                members
                    .values()
                    .filter_map(|a| a.rsplit_once(':').map(|(h, _)| format!("{h}:{api_port}")))
                    .collect()
            } else {
                args.api_servers.clone()
            };
            let mut api = ApiServerConfig::new(api_port, tokens);
            api.tls = tls.as_ref().map(|t| t.api.clone());
            // The kubelets (pods/log) take the master's own certificate,
            // as the store peers do.
            api.kubelet_tls = tls.as_ref().map(|t| t.store.client.clone());
            Some(ControlPlaneSpec {
                api,
                store_endpoints,
                api_servers,
                api_tls: tls.as_ref().map(|t| t.api_client.clone()),
                scheduler: Some(SchedulerSpec {
                    token: scheduler,
                    count: 1,
                }),
                controller_manager: Some(ManagerSpec {
                    token: controller,
                    config: {
                        let mut c = ManagerConfig::new(&host);
                        c.node_lifecycle.grace_ms =
                            args.node_monitor_grace_period.as_millis() as u64;
                        c.node_lifecycle.eviction_timeout_ms =
                            args.pod_eviction_timeout.as_millis() as u64;
                        c
                    },
                }),
            })
        }
    };
    let mut store = StoreConfig::new(args.id, port, members);
    store.tick = Duration::from_millis(args.tick_ms.max(1));
    store.rejoin = args.rejoin;
    store.tls = tls.map(|t| t.store);
    eprintln!(
        "faultline master {} serving on {}:{port}",
        args.id, args.listen_ip
    );
    if let Some(api_port) = args.api_port {
        eprintln!(
            "faultline master {} serving the API on port {api_port}",
            args.id
        );
    }
    let spec = MasterSpec {
        store,
        // A replica that cannot start exits: its service manager (or
        // `faultline up`'s operator) decides what comes next.
        restart: StoreRestart::Never,
        control_plane,
    };
    Ok(
        match faultline_env::real::block_on_local(master(env, spec)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    )
}
