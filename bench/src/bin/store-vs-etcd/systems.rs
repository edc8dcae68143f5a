//! The two systems: starting each as three local replicas and sending it puts.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, Result};
use faultline_env::Env;
use faultline_store::client::{ClientConfig, StoreClient};

use super::cluster::{free_ports, wait_for, Cluster};
use super::grpc::{pb_bytes, pb_field, Grpc, PbValue};

/// Something that accepts puts.
pub(super) enum Target {
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
    pub(super) fn describe(&self) -> String {
        match self {
            Target::Faultline { leader, .. } | Target::Etcd { leader, .. } => leader.clone(),
        }
    }

    /// One put; returns the store's new revision.
    pub(super) async fn put(&self, key: &[u8], value: &[u8]) -> Result<i64> {
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

pub(super) async fn start_faultline(exe: &Path, dir: &Path) -> Result<(Cluster, Target)> {
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
                .args(["--seed", &id.to_string()])
                // Plain TCP, like the etcd it is measured against.
                .arg("--insecure-plain-http"),
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

pub(super) async fn start_etcd(exe: &Path, dir: &Path) -> Result<(Cluster, Target)> {
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
