//! The node-side runtime inside the simulator: containers on a node host,
//! clients on another, a paused clock and a fixed seed per test.
//!
//! - `echo`: the echo server answers, names its pod, survives bad input;
//! - `lifecycle`: exit codes and times, stop/remove, host crashes;
//! - `probes`: readiness probes against running and silent containers.

mod echo;
mod lifecycle;
mod probes;

use std::rc::Rc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use bytes::Bytes;
use faultline_api::ContainerPort;
use faultline_engine::{HostId, World, WorldConfig};
use faultline_env::Env;
use faultline_kubelet::{ContainerSpec, SimRuntime};
pub use faultline_testkit::{capture, read_within, try_connect, Envs};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// A world with a node `n1` (running a [`SimRuntime`]) and a client host
/// `c1`, both in `dc-a`. The test body (the root task) drives both through
/// their environments.
pub struct Cluster {
    pub world: World,
    pub node_id: HostId,
    pub client_id: HostId,
    pub node: Env,
    pub client: Env,
    pub runtime: Rc<SimRuntime>,
}

impl Cluster {
    /// Builds the world; call inside `faultline_engine::run`.
    pub async fn new(seed: u64) -> Cluster {
        let world = World::new(WorldConfig::new(seed));
        let envs: Envs = Rc::default();
        let node_id = world.add_host("n1", "dc-a", capture(envs.clone()));
        let client_id = world.add_host("c1", "dc-a", capture(envs.clone()));
        // Let both hosts' main tasks run once.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let node = envs.borrow()["n1"].clone();
        let client = envs.borrow()["c1"].clone();
        let runtime = Rc::new(SimRuntime::new(node.clone()));
        Cluster {
            world,
            node_id,
            client_id,
            node,
            client,
            runtime,
        }
    }
}

/// A container spec for pod `default/<pod>` with uid `uid-<pod>`.
pub fn spec(
    pod: &str,
    image: &str,
    args: &[&str],
    pod_ip: &str,
    ports: &[(&str, i32)],
) -> ContainerSpec {
    ContainerSpec {
        pod_uid: format!("uid-{pod}"),
        pod_namespace: "default".into(),
        pod_name: pod.into(),
        container_name: "main".into(),
        image: image.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        pod_ip: pod_ip.into(),
        ports: ports
            .iter()
            .map(|(name, port)| ContainerPort {
                name: name.to_string(),
                container_port: *port,
                ..ContainerPort::default()
            })
            .collect(),
        ..ContainerSpec::default()
    }
}

/// What a GET returned.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub pod_header: Option<String>,
    pub body: String,
}

/// One GET over a fresh connection, everything within 5 simulated seconds.
pub async fn get(env: &Env, addr: &str, path: &str) -> anyhow::Result<Answer> {
    env.timeout(Duration::from_secs(5), get_inner(env, addr, path))
        .await
        .map_err(|_| anyhow!("GET {addr}{path} timed out"))?
}

async fn get_inner(env: &Env, addr: &str, path: &str) -> anyhow::Result<Answer> {
    let conn = env.net().connect(addr).await.context("connect")?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
        .await
        .context("handshake")?;
    let driver = env.spawn(async move {
        let _ = connection.await;
    });
    let req = http::Request::get(path)
        .header(http::header::HOST, addr)
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await.context("request")?;
    let status = resp.status().as_u16();
    let pod_header = resp
        .headers()
        .get("x-pod")
        .map(|v| v.to_str().unwrap_or("?").to_string());
    let body = resp.into_body().collect().await.context("body")?.to_bytes();
    driver.abort();
    Ok(Answer {
        status,
        pod_header,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
