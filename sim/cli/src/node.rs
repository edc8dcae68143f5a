//! `faultline node`: one worker node for real — the kubelet and the node's
//! service proxy in one process, talking to the masters' API servers over
//! TCP. The kubelet serves its containers' output to the API servers on
//! port 10250 (HTTPS, clients verified against the cluster CA).
//!
//! Containers run on the runtime `--runtime` names: `builtin` runs them in
//! this process (the simulator's runtime: the `echo`, `sleep`, `crash` and
//! `exit0` apps); `process` runs the container's command as a program of
//! this machine, under a shim that outlives the node process (see
//! `faultline_cri::process`). Each pod listens on its own pod IP. On one
//! machine the pod IPs are loopback addresses (`--pod-ip-prefix 127.11`
//! gives `127.11.0.1`, ...): Linux routes all of 127/8 to `lo`, so the
//! other nodes' proxies reach them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

use clap::Args;
use faultline_api::{labels, Quantity};
use faultline_apiserver::Role;
use faultline_env::tls::{TlsClient, TlsServer};
use faultline_kubelet::{ContainerRuntime, KubeletConfig, SimRuntime};
use faultline_proxy::ProxyConfig;
use faultline_roles::{start_node, NodeSpec};

/// What runs a node's containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// The built-in apps (`echo`, `sleep`, `crash`, `exit0`), as tasks of
    /// the node process, as in the simulator.
    Builtin,
    /// The container's command and args as a program of this machine, one
    /// shim per container (they keep running across a node restart).
    Process,
    /// Docker Engine containers of locally present images, each pod in
    /// its own network namespace on the node's bridge network (the pod IP
    /// prefix is its subnet: give one that is free, such as 10.11).
    Docker,
}

impl RuntimeKind {
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Builtin => "builtin",
            RuntimeKind::Process => "process",
            RuntimeKind::Docker => "docker",
        }
    }
}

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
    /// The cluster CA (PEM) the API servers' certificates must chain to:
    /// the node speaks HTTPS to them.
    #[arg(long, required_unless_present = "insecure_plain_http")]
    cluster_ca_file: Option<PathBuf>,
    /// The kubelet's serving certificate (PEM), for the address
    /// --listen-ip: the API servers read container output from it
    /// (`kubectl logs`). Only clients with a client certificate from the
    /// cluster CA (the masters') are served.
    #[arg(
        long,
        requires = "tls_private_key_file",
        required_unless_present = "insecure_plain_http"
    )]
    tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file (PEM).
    #[arg(long, requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// Speak plain HTTP to the API servers (they run with
    /// --insecure-plain-http), and serve the kubelet's port without TLS.
    #[arg(long, conflicts_with_all = ["cluster_ca_file", "tls_cert_file", "tls_private_key_file"])]
    insecure_plain_http: bool,
    /// The kubelet serves container output on this port of --listen-ip
    /// (Kubernetes' 10250); 0 serves nothing, and `kubectl logs` then
    /// fails for this node's pods.
    #[arg(long, default_value_t = faultline_kubelet::server::KUBELET_PORT)]
    kubelet_port: u16,
    /// How many pods the kubelet works on at once (starting containers,
    /// writing status), so a pod whose containers are slow to start does
    /// not hold up the others; 1 works through them one after another.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pod_workers: u16,
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
    /// What runs the containers.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Builtin)]
    runtime: RuntimeKind,
    /// The docker runtime labels what it creates with this run id
    /// (`faultline.run=ID`): a restarted node adopts the containers of its
    /// run, and `faultline up` removes a run's containers and networks when
    /// it stops.
    #[arg(long, default_value = "default")]
    docker_run_id: String,
    /// Where the node keeps its files: the process runtime's containers
    /// (`containers/ID`: their output, pids and exit codes), which a
    /// restarted node adopts (default: TMPDIR/faultline-node-NAME).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Seed for the node's randomness (container ids, client jitter),
    /// mixed with the node's name; default: from the operating system.
    #[arg(long)]
    seed: Option<u64>,
}

pub fn run(args: NodeArgs) -> ExitCode {
    match start(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => crate::usage_error(e),
    }
}

fn start(args: NodeArgs) -> Result<(), String> {
    crate::check_octets("--pod-ip-prefix", &args.pod_ip_prefix, 2, "127.11")?;
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
        let q = Quantity::parse(&value).map_err(|e| format!("{flag} {value:?}: {e}"))?;
        cfg.capacity.insert(key.into(), q);
    }
    let tokens = crate::read_tokens(&args.token_file)?;
    let token = tokens
        .token_for(&Role::Node(args.name.clone()))
        .ok_or_else(|| {
            format!(
                "{}: no token for user system:node:{} in group system:nodes",
                args.token_file.display(),
                args.name
            )
        })?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("faultline-node-{}", args.name)));
    let env = crate::real_env(&args.name, args.seed, &data_dir, &args.listen_ip)?;
    eprintln!(
        "faultline node {} on {} (pods on {}.x.y), API servers {}",
        args.name,
        args.listen_ip,
        args.pod_ip_prefix,
        args.api_servers.join(",")
    );
    let tls = match &args.cluster_ca_file {
        Some(ca) => Some(TlsClient::from_files(ca, None).map_err(|e| e.to_string())?),
        None => None,
    };
    cfg.port = args.kubelet_port;
    cfg.pod_workers = usize::from(args.pod_workers);
    cfg.events = true;
    cfg.tls = match (
        &args.tls_cert_file,
        &args.tls_private_key_file,
        &args.cluster_ca_file,
    ) {
        (Some(cert), Some(key), Some(ca)) => {
            Some(TlsServer::from_files(cert, key, Some(ca), true).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let spec = NodeSpec {
        api_servers: args.api_servers,
        token,
        tls,
        kubelet: Some(cfg),
        proxy: Some(ProxyConfig::new(&args.name)),
    };
    let kind = args.runtime;
    let node = args.name.clone();
    let run_id = args.docker_run_id.clone();
    let prefix = args.pod_ip_prefix.clone();
    faultline_env::real::block_on_local(async move {
        let runtime: Rc<dyn ContainerRuntime> = match kind {
            RuntimeKind::Builtin => Rc::new(SimRuntime::new(env.clone())),
            RuntimeKind::Process => Rc::new(process_runtime(&env, &node, &data_dir)?),
            RuntimeKind::Docker => {
                let volumes = faultline_cri::VolumeDirs::new(&data_dir.join("pods"));
                let rt = faultline_cri::DockerRuntime::open(
                    env.clone(),
                    &node,
                    &run_id,
                    &prefix,
                    volumes,
                )
                .await?;
                if rt.count() > 0 {
                    eprintln!(
                        "faultline node {node}: adopted {} Docker containers",
                        rt.count()
                    );
                }
                Rc::new(rt)
            }
        };
        start_node(&env, &spec, runtime);
        // The node runs until the process is stopped.
        std::future::pending::<()>().await;
        Ok::<(), String>(())
    })
}

/// The process runtime under `DATA_DIR/containers` (pods' volumes under
/// `DATA_DIR/pods`), adopting what runs
/// there, with cgroup limits where this machine has cgroup v2.
fn process_runtime(
    env: &faultline_env::Env,
    node: &str,
    data_dir: &std::path::Path,
) -> Result<faultline_cri::ProcessRuntime, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let cgroups = match faultline_cri::Cgroups::detect(node) {
        Ok(c) => Some(c),
        Err(why) => {
            eprintln!("faultline node {node}: {why}; containers run without CPU and memory limits");
            None
        }
    };
    let root = data_dir.join("containers");
    let rt = faultline_cri::ProcessRuntime::open(
        env.clone(),
        &root,
        faultline_cri::VolumeDirs::new(&data_dir.join("pods")),
        vec![exe.display().to_string(), "shim".into()],
        cgroups,
    )
    .map_err(|e| format!("{}: {e}", root.display()))?;
    let adopted = rt.count();
    if adopted > 0 {
        eprintln!(
            "faultline node {node}: adopted {adopted} containers from {}",
            root.display()
        );
    }
    Ok(rt)
}
