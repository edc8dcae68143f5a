//! A `faultline up` cluster for the real-mode benchmarks (`api-tls`,
//! `pod-startup`): started on ports, addresses and a directory of its own
//! (from the process id and a slot), stopped and removed when dropped.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use faultline_client::{Client, ClientConfig};
use faultline_env::tls::TlsClient;
use faultline_env::Env;

/// The `faultline` executable: `given`, or the one next to this benchmark.
pub fn faultline_exe(given: Option<&PathBuf>) -> Result<PathBuf> {
    match given {
        Some(p) => Ok(p.clone()),
        None => Ok(std::env::current_exe()?
            .parent()
            .context("the executable's folder")?
            .join("faultline")),
    }
}

/// A `faultline up` cluster, stopped (SIGTERM) and removed when dropped.
pub struct Cluster {
    child: Child,
    pub dir: PathBuf,
    /// Node i's address is `{node_net}.i`.
    pub node_net: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `faultline up` with `nodes` nodes and `extra` arguments (HTTPS
/// unless they say `--insecure-plain-http`); returns it with an admin
/// client once it is ready. `slot` keeps clusters of one run apart.
pub fn start(
    bin: &Path,
    tag: &str,
    nodes: u16,
    slot: u16,
    extra: &[&str],
    env: &Env,
) -> Result<(Cluster, Client)> {
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("faultline-{tag}-{pid}-{slot}"));
    let _ = std::fs::remove_dir_all(&dir);
    let base = 30000 + (pid % 10000) as u16 + 20 * slot;
    let api = base;
    let node_net = format!("127.0.{}", 200 + slot);
    let tls = !extra.contains(&"--insecure-plain-http");
    let mut child = Command::new(bin)
        .arg("up")
        .arg("--dir")
        .arg(&dir)
        .args([
            "--nodes",
            &nodes.to_string(),
            "--api-port",
            &api.to_string(),
        ])
        .args(["--store-port", &(base + 10).to_string()])
        .args(["--node-net", &node_net])
        .args(["--pod-octet", &(200 + slot * 10).to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let out = child.stdout.take().expect("piped");
    let cluster = Cluster {
        child,
        dir: dir.clone(),
        node_net,
    };
    let mut admin = String::new();
    let mut ready = false;
    for line in std::io::BufReader::new(out).lines() {
        let line = line?;
        if let Some(rest) = line.strip_prefix("admin token: ") {
            admin = rest.split(' ').next().unwrap_or_default().to_string();
        }
        if line.starts_with("Ctrl-C stops the cluster") {
            ready = true;
            break;
        }
    }
    if !ready || admin.is_empty() {
        bail!("faultline up did not come up; logs in {}", dir.display());
    }
    let servers = (0..3).map(|i| format!("127.0.0.1:{}", api + i)).collect();
    let mut cfg = ClientConfig::new(servers, &admin);
    cfg.request_timeout = Duration::from_secs(30);
    if tls {
        cfg.tls = Some(TlsClient::from_files(&dir.join("pki/ca.crt"), None)?);
    }
    Ok((cluster, Client::new(env.clone(), cfg)))
}
