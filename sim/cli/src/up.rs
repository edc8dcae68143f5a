//! `faultline up`: a whole cluster for real on this machine, in one
//! command. It starts `faultline master` (store replica, API server,
//! scheduler, controller manager) and `faultline node` (kubelet and service
//! proxy) processes on loopback addresses, waits until the API answers and
//! every node is Ready, prints how to reach it, and stops them all on
//! Ctrl-C (or SIGTERM).
//!
//! Everything lives in one directory: the masters' data (so a second `up`
//! on the same directory restarts the same cluster, its masters rejoining),
//! the token file, the cluster CA and the masters' certificates (`pki/`:
//! the API serves HTTPS unless `--insecure-plain-http`), a kubeconfig for
//! `kubectl`, and a log per process. Keys, tokens and the kubeconfig are
//! readable by their owner only.
#![allow(clippy::disallowed_methods)] // real mode: real time, real sockets

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use faultline_api::Node;
use faultline_client::{Client, ClientConfig, ListParams};
use faultline_env::tls::TlsClient;
use http::Method;

use crate::node::RuntimeKind;
use crate::usage_error as fail;

#[derive(Args)]
pub struct UpArgs {
    /// Masters (store replicas with an API server each).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=7))]
    masters: u16,
    /// Worker nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(0..=200))]
    nodes: u16,
    /// Datacenters the nodes are spread over, round robin (dc-a, dc-b, ...).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=26))]
    datacenters: u16,
    /// Directory for the masters' data, the token file and the logs.
    #[arg(long, default_value = "faultline-cluster")]
    dir: PathBuf,
    /// Master i serves the API on API_PORT + i - 1 (on 127.0.0.1).
    #[arg(long, default_value_t = 6443)]
    api_port: u16,
    /// Master i's store (Raft peers and clients) listens on
    /// STORE_PORT + i - 1 (on 127.0.0.1).
    #[arg(long, default_value_t = 2380)]
    store_port: u16,
    /// Node i listens on NODE_NET.i (Service ports, the proxy's health
    /// check on 10256).
    #[arg(long, default_value = "127.0.1")]
    node_net: String,
    /// Node i's pods get 127.(POD_OCTET+i).x.y (10.(POD_OCTET+i).x.y with
    /// the docker runtime: the subnet of the node's bridge network).
    #[arg(long, default_value_t = 10)]
    pod_octet: u8,
    /// How long to wait for the API and the nodes, in seconds.
    #[arg(long, default_value_t = 60)]
    wait: u64,
    /// Serve the API over plain HTTP instead of HTTPS (no certificates,
    /// tokens in the clear; the kubeconfig then needs no CA).
    #[arg(long)]
    insecure_plain_http: bool,
    /// What runs the nodes' containers (see `faultline node --help`).
    /// Stopping the cluster stops them all.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Builtin)]
    runtime: RuntimeKind,
    /// Passed to every master (see `faultline master --help`).
    #[arg(long, value_name = "T", default_value = "40s", value_parser = crate::parse_time)]
    node_monitor_grace_period: Duration,
    /// Passed to every master (see `faultline master --help`).
    #[arg(long, value_name = "T", default_value = "5m", value_parser = crate::parse_time)]
    pod_eviction_timeout: Duration,
}

/// One child process and where its output goes.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

/// The cluster's processes, where the nodes' process runtimes keep their
/// containers, and the Docker run id of the nodes' Docker containers; all
/// stopped (killed and reaped, containers and networks removed) when
/// dropped.
struct Procs(Vec<Proc>, Vec<PathBuf>, Option<String>);

impl Drop for Procs {
    fn drop(&mut self) {
        for p in &mut self.0 {
            let _ = p.child.kill();
        }
        for p in &mut self.0 {
            let _ = p.child.wait();
        }
        let killed: usize = self
            .1
            .iter()
            .map(|root| faultline_cri::process::kill_all(root))
            .sum();
        if killed > 0 {
            println!("stopped {killed} container(s)");
        }
        if let Some(run) = &self.2 {
            let removed = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(faultline_cri::docker::remove_all(run)));
            match removed {
                Ok(0) => {}
                Ok(n) => println!("removed {n} Docker container(s) of run {run}"),
                Err(e) => eprintln!(
                    "could not remove the Docker containers of run {run} ({e}): \
                     docker rm -f $(docker ps -aq --filter label={}={run})",
                    faultline_cri::docker::LABEL_RUN
                ),
            }
        }
    }
}

/// A fresh random token (from the OS), hex.
fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The token file: reused when the directory has one, else written with a
/// token per role and per node. Returns the admin token.
fn tokens(path: &Path, nodes: u16) -> Result<String, String> {
    let named = |e: std::io::Error| format!("{}: {e}", path.display());
    if !path.exists() {
        let mut text = String::new();
        let mut add = |user: &str, uid: usize, group: &str| -> std::io::Result<()> {
            text.push_str(&format!("{},{user},{uid},\"{group}\"\n", random_token()?));
            Ok(())
        };
        add("admin", 1, "system:masters").map_err(named)?;
        add("system:kube-scheduler", 2, "system:kube-scheduler").map_err(named)?;
        add(
            "system:kube-controller-manager",
            3,
            "system:kube-controller-manager",
        )
        .map_err(named)?;
        for i in 1..=nodes {
            add(
                &format!("system:node:n{i}"),
                100 + i as usize,
                "system:nodes",
            )
            .map_err(named)?;
        }
        crate::pki::write_private(path, text.as_bytes())?;
    }
    let text = fs::read_to_string(path).map_err(named)?;
    let tokens = faultline_apiserver::Tokens::parse(&text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    for i in 1..=nodes {
        let role = faultline_apiserver::Role::Node(format!("n{i}"));
        if tokens.token_for(&role).is_none() {
            return Err(format!(
                "{}: no token for node n{i} (the file is from a smaller cluster: remove it, or the directory)",
                path.display()
            ));
        }
    }
    tokens
        .token_for(&faultline_apiserver::Role::Admin)
        .ok_or_else(|| format!("{}: no user in system:masters", path.display()))
}

/// Writes a kubeconfig (in JSON, which kubectl reads as the YAML it is a
/// subset of): a cluster and a context per API server, the first current,
/// all with the admin token; readable by its owner only (it holds a token).
fn write_kubeconfig(
    path: &Path,
    api_servers: &[String],
    pki: Option<&crate::pki::Pki>,
    admin: &str,
) -> Result<(), String> {
    let ca = pki.map(|p| fs::canonicalize(&p.ca).unwrap_or_else(|_| p.ca.clone()));
    let name = |i: usize| {
        if i == 0 {
            "faultline".to_string()
        } else {
            format!("faultline-m{}", i + 1)
        }
    };
    let clusters: Vec<_> = api_servers
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut cluster = serde_json::json!({
                "server": format!("{}://{a}", if ca.is_some() { "https" } else { "http" }),
            });
            if let Some(ca) = &ca {
                cluster["certificate-authority"] = ca.display().to_string().into();
            }
            serde_json::json!({"name": name(i), "cluster": cluster})
        })
        .collect();
    let contexts: Vec<_> = (0..api_servers.len())
        .map(|i| serde_json::json!({"name": name(i), "context": {"cluster": name(i), "user": "admin"}}))
        .collect();
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": clusters,
        "contexts": contexts,
        "current-context": "faultline",
        "users": [{"name": "admin", "user": {"token": admin}}],
        "preferences": {},
    });
    let text = serde_json::to_string_pretty(&config).expect("JSON values serialise");
    crate::pki::write_private(path, text.as_bytes())
}

/// Starts `faultline ARGS`, its output into `log`.
fn spawn(name: &str, args: &[String], log: PathBuf) -> Result<Proc, String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this executable: {e}"))?;
    let out = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("starting {name}: {e}"))?;
    Ok(Proc {
        name: name.to_string(),
        child,
        log,
    })
}

/// Whether the API answers `/readyz`, and how many nodes are Ready, asked
/// with the project's own client (as every component asks).
async fn cluster_state(c: &Client) -> (bool, usize) {
    let api_up = c.request(Method::GET, "/readyz", None).await.is_ok();
    let ready = match c.list::<Node>(None, &ListParams::default()).await {
        Ok(list) => list.items.iter().filter(|n| n.is_ready()).count(),
        Err(_) => 0,
    };
    (api_up, ready)
}

/// Reports processes that have exited; true if any has.
fn check_exits(procs: &mut Procs) -> bool {
    let mut any = false;
    for p in &mut procs.0 {
        if let Ok(Some(status)) = p.child.try_wait() {
            eprintln!("{} exited ({status}); see {}", p.name, p.log.display());
            any = true;
        }
    }
    any
}

pub fn run(args: UpArgs) -> ExitCode {
    if let Err(e) = crate::check_octets("--node-net", &args.node_net, 3, "127.0.1") {
        return fail(e);
    }
    if u16::from(args.pod_octet) + args.nodes > 255 {
        return fail(format_args!(
            "--pod-octet {} with {} nodes: pod addresses 127.(POD_OCTET+i).x.y run past .255",
            args.pod_octet, args.nodes
        ));
    }
    let last_port = |base: u16, n: u16| base.checked_add(n - 1);
    let (Some(_), Some(_)) = (
        last_port(args.api_port, args.masters),
        last_port(args.store_port, args.masters),
    ) else {
        return fail("--api-port or --store-port: the masters' ports run past 65535");
    };
    if let Err(e) = fs::create_dir_all(&args.dir) {
        return fail(format_args!("{}: {e}", args.dir.display()));
    }
    let token_file = args.dir.join("tokens.csv");
    let admin = match tokens(&token_file, args.nodes) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let store_members: Vec<String> = (1..=args.masters)
        .map(|i| format!("{i}=127.0.0.1:{}", args.store_port + i - 1))
        .collect();
    let api_servers: Vec<String> = (1..=args.masters)
        .map(|i| format!("127.0.0.1:{}", args.api_port + i - 1))
        .collect();
    let pki = if args.insecure_plain_http {
        None
    } else {
        let ips = vec!["127.0.0.1".to_string(); args.masters as usize];
        let node_ips: Vec<String> = (1..=args.nodes)
            .map(|i| format!("{}.{i}", args.node_net))
            .collect();
        match crate::pki::ensure(&args.dir.join("pki"), &ips, &node_ips) {
            Ok(p) => Some(p),
            Err(e) => return fail(e),
        }
    };
    let path = |p: &Path| p.display().to_string();
    let run_id = match args.runtime {
        RuntimeKind::Docker => match random_token() {
            Ok(t) => Some(t[..12].to_string()),
            Err(e) => return fail(format_args!("/dev/urandom: {e}")),
        },
        _ => None,
    };
    if run_id.is_some() {
        let built = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| {
                rt.block_on(async {
                    let docker = faultline_cri::docker::connect().await?;
                    faultline_cri::docker::ensure_pause_image(&docker).await
                })
            });
        if let Err(e) = built {
            return fail(e);
        }
    }
    let mut procs = Procs(Vec::new(), Vec::new(), run_id.clone());
    for i in 1..=args.masters {
        let data = args.dir.join(format!("m{i}"));
        // A master that has data was a member before: it restarts with
        // `--rejoin`, which also makes a lost data directory safe.
        let rejoin = fs::read_dir(&data).is_ok_and(|mut d| d.next().is_some());
        let mut a = vec![
            "master".to_string(),
            "--id".into(),
            i.to_string(),
            "--members".into(),
            store_members.join(","),
            "--data-dir".into(),
            path(&data),
            "--listen-ip".into(),
            "127.0.0.1".into(),
            "--api-port".into(),
            (args.api_port + i - 1).to_string(),
            "--token-file".into(),
            path(&token_file),
            "--api-servers".into(),
            api_servers.join(","),
            "--node-monitor-grace-period".into(),
            format!("{}ms", args.node_monitor_grace_period.as_millis()),
            "--pod-eviction-timeout".into(),
            format!("{}ms", args.pod_eviction_timeout.as_millis()),
        ];
        if rejoin {
            a.push("--rejoin".into());
        }
        match &pki {
            None => a.push("--insecure-plain-http".into()),
            Some(pki) => {
                let id = &pki.masters[i as usize - 1];
                a.extend([
                    "--tls-cert-file".into(),
                    path(&id.cert),
                    "--tls-private-key-file".into(),
                    path(&id.key),
                    "--cluster-ca-file".into(),
                    path(&pki.ca),
                ]);
            }
        }
        match spawn(
            &format!("master m{i}"),
            &a,
            args.dir.join(format!("m{i}.log")),
        ) {
            Ok(p) => procs.0.push(p),
            Err(e) => return fail(e),
        }
    }
    // Pods on loopback addresses, but Docker's on bridge networks, which
    // need addresses a bridge can carry.
    let pod_net = if args.runtime == RuntimeKind::Docker {
        "10"
    } else {
        "127"
    };
    for i in 1..=args.nodes {
        let dc = format!("dc-{}", (b'a' + ((i - 1) % args.datacenters) as u8) as char);
        let mut a = vec![
            "node".to_string(),
            "--name".into(),
            format!("n{i}"),
            "--api-servers".into(),
            api_servers.join(","),
            "--token-file".into(),
            path(&token_file),
            "--listen-ip".into(),
            format!("{}.{i}", args.node_net),
            "--pod-ip-prefix".into(),
            format!("{pod_net}.{}", u16::from(args.pod_octet) + i),
            "--datacenter".into(),
            dc,
            "--data-dir".into(),
            path(&args.dir.join(format!("n{i}"))),
            "--runtime".into(),
            args.runtime.name().into(),
        ];
        if args.runtime == RuntimeKind::Process {
            procs
                .1
                .push(args.dir.join(format!("n{i}")).join("containers"));
        }
        if let Some(run) = &run_id {
            a.extend(["--docker-run-id".into(), run.clone()]);
        }
        match &pki {
            None => a.push("--insecure-plain-http".into()),
            Some(pki) => {
                let id = &pki.nodes[i as usize - 1];
                a.extend([
                    "--cluster-ca-file".into(),
                    path(&pki.ca),
                    "--tls-cert-file".into(),
                    path(&id.cert),
                    "--tls-private-key-file".into(),
                    path(&id.key),
                ]);
            }
        }
        match spawn(
            &format!("node n{i}"),
            &a,
            args.dir.join(format!("n{i}.log")),
        ) {
            Ok(p) => procs.0.push(p),
            Err(e) => return fail(e),
        }
    }
    // Wait for the API, then for every node to be Ready.
    let env = match crate::real_env("up", None, &args.dir.join("up"), "127.0.0.1") {
        Ok(env) => env,
        Err(e) => return fail(e),
    };
    let api = &api_servers[0];
    let mut client_cfg = ClientConfig::new(vec![api.clone()], &admin);
    client_cfg.request_timeout = Duration::from_secs(5);
    if let Some(pki) = &pki {
        match TlsClient::from_files(&pki.ca, None) {
            Ok(tls) => client_cfg.tls = Some(tls),
            Err(e) => return fail(e),
        }
    }
    let waited = faultline_env::real::block_on_local(async {
        let c = Client::new(env.clone(), client_cfg);
        let deadline = Instant::now() + Duration::from_secs(args.wait);
        loop {
            if check_exits(&mut procs) {
                return Err("a process of the cluster exited while it came up".to_string());
            }
            let (api_up, ready) = cluster_state(&c).await;
            if api_up && ready >= args.nodes as usize {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the cluster did not come up within {} s (API ready: {api_up}); logs in {}",
                    args.wait,
                    args.dir.display()
                ));
            }
            env.sleep(Duration::from_millis(250)).await;
        }
    });
    if let Err(e) = waited {
        return fail(e);
    }
    println!(
        "cluster up: {} master(s), {} node(s) ({} runtime) in {}",
        args.masters,
        args.nodes,
        args.runtime.name(),
        args.dir.display()
    );
    let scheme = if pki.is_some() { "https" } else { "http" };
    println!(
        "API servers: {}",
        api_servers
            .iter()
            .map(|a| format!("{scheme}://{a}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let kubeconfig = args.dir.join("kubeconfig");
    if let Err(e) = write_kubeconfig(&kubeconfig, &api_servers, pki.as_ref(), &admin) {
        return fail(e);
    }
    let abs = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    println!("export KUBECONFIG={}", abs(&kubeconfig).display());
    println!(
        "admin token: {admin} (every token is in {})",
        token_file.display()
    );
    if args.nodes > 0 {
        println!(
            "nodes: {} serve every Service port (a Service's pods answer there)",
            (1..=args.nodes)
                .map(|i| format!("n{i}={}.{i}", args.node_net))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    match &pki {
        Some(pki) => println!(
            "try: kubectl get nodes, or curl --cacert {} -H 'Authorization: Bearer {admin}' https://{api}/api/v1/nodes",
            abs(&pki.ca).display()
        ),
        None => println!("try: curl -H 'Authorization: Bearer {admin}' http://{api}/api/v1/nodes"),
    }
    println!(
        "Ctrl-C stops the cluster (its data stays in {}).",
        args.dir.display()
    );
    let _ = std::io::stdout().flush();
    // Serve until a signal; report processes that die meanwhile.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = tick.tick() => {
                    check_exits(&mut procs);
                    procs.0.retain_mut(|p| !matches!(p.child.try_wait(), Ok(Some(_))));
                }
            }
        }
    });
    println!("stopping the cluster");
    drop(procs);
    ExitCode::SUCCESS
}
