//! A `faultline up` cluster for the real-mode tests: started on ports,
//! node addresses and a directory of its own (derived from the test
//! process's id, so a cluster left over by another run, or one a person
//! runs, cannot answer for this one), stopped when dropped.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

pub mod kubectl;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Up {
    child: Child,
    /// The cluster's directory (data, pki, tokens, kubeconfig, logs).
    pub dir: PathBuf,
    /// The first API server's port (HTTPS).
    pub api: u16,
    /// The first store replica's port (mutual TLS).
    pub store: u16,
    /// The nodes' addresses are `{node_net}.1`, `.2`, ...
    pub node_net: String,
    /// Node i's pods get addresses 127.(pod_octet + i).x.y.
    pub pod_octet: u32,
    /// The admin's bearer token, as `up` printed it.
    pub admin: String,
    /// What `up` printed until the cluster was ready.
    pub printed: Vec<String>,
}

impl Up {
    /// Starts `faultline up` with `nodes` nodes; `slot` (0, 1, ...) keeps
    /// the clusters of different tests in one process apart. Returns once
    /// `up` says the cluster is ready.
    pub fn start(tag: &str, nodes: u32, slot: u16) -> Up {
        Up::start_with(tag, nodes, slot, &[])
    }

    /// [`Up::start`] with more arguments for `up` (`--runtime process`).
    pub fn start_with(tag: &str, nodes: u32, slot: u16, extra: &[&str]) -> Up {
        let pid = std::process::id();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{tag}-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        let base = 20000 + (pid % 20000) as u16 + 200 * slot;
        let (api, store) = (base + 200, base + 300);
        let node_net = format!("127.{}.{}", 1 + slot, 2 + pid % 250);
        let pod_octet = 100 + pid % 50 + 50 * u32::from(slot);
        let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .arg("up")
            .arg("--dir")
            .arg(&dir)
            .args([
                "--nodes",
                &nodes.to_string(),
                "--api-port",
                &api.to_string(),
                "--store-port",
                &store.to_string(),
                "--node-net",
                &node_net,
                "--pod-octet",
                &pod_octet.to_string(),
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("faultline up starts");
        let stdout = child.stdout.take().expect("piped");
        let mut up = Up {
            child,
            dir,
            api,
            store,
            node_net,
            pod_octet,
            admin: String::new(),
            printed: Vec::new(),
        };
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.expect("up's output is text");
            if let Some(rest) = line.strip_prefix("admin token: ") {
                up.admin = rest.split(' ').next().unwrap_or_default().to_string();
            }
            up.printed.push(line.clone());
            if line.starts_with("Ctrl-C stops the cluster") {
                break;
            }
        }
        assert!(
            !up.admin.is_empty() && up.printed.iter().any(|l| l.starts_with("Ctrl-C")),
            "up printed no admin token: {:?}",
            up.printed
        );
        up
    }
}

/// Sends SIGTERM to `faultline up` (which stops its cluster) and reaps it.
impl Drop for Up {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
