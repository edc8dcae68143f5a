//! The proxy inside the simulator: three masters (store + API server), a
//! node `n1` running the proxy, pod hosts `p1` and `p2` whose echo
//! containers are the endpoints, and client hosts `c1` and `c2`. The test
//! writes Services and Endpoints itself (no controller manager), so it
//! decides exactly which addresses are ready; `e2e` runs the real pipeline
//! instead. Every test is one world with a fixed seed.
//!
//! - `forwarding`: round robin, dead and partitioned endpoints, retries,
//!   pooled connections, 503, listeners opening and closing, port
//!   conflicts;
//! - `abuse`: garbage, stalled and idle clients, connection floods, big
//!   bodies;
//! - `stability`: the control plane down, `/healthz`;
//! - `load`: a simulated minute at 200 requests per second;
//! - `e2e`: kubelet, controller manager and proxy together, and the same
//!   seed giving the same trace.

mod abuse;
mod e2e;
mod forwarding;
mod load;
mod stability;

use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use faultline_api::{
    ContainerPort, EndpointAddress, EndpointPort, EndpointSubset, Endpoints, IntOrString,
    ObjectMeta, Resource, Service, ServicePort,
};
use faultline_client::Client;
use faultline_engine::{HostId, World, WorldConfig};
use faultline_env::Env;
use faultline_kubelet::{ContainerId, ContainerRuntime, ContainerSpec, SimRuntime};
use faultline_proxy::ProxyConfig;
use faultline_testkit::Masters;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::task::JoinHandle;

pub use faultline_testkit::{capture, read_to_close, read_within, trace_lines, try_connect, Envs};

/// Three masters, a store replica and an API server each (no controller
/// manager: the tests write Endpoints themselves).
pub fn masters() -> Masters {
    Masters::api(3)
}

/// The service port every test serves on `n1`.
pub const PORT: u16 = 80;
/// Where the test's echo pods listen.
pub const POD_PORT: u16 = 8080;
/// The Service address as clients use it.
pub const ADDR: &str = "n1:80";

/// The hosts whose containers are the endpoints.
pub const POD_HOSTS: [&str; 2] = ["p1", "p2"];

/// A world with masters, the proxy node `n1`, the pod hosts `p1` and `p2`
/// and the client hosts `c1`, `c2` and `user`, all in `dc-a`. The test
/// body (the root task) drives the capture hosts through their
/// environments.
pub struct Cluster {
    pub world: World,
    pub masters: Vec<HostId>,
    pub node: HostId,
    /// The pod hosts' environments and container runtimes, by host name.
    pub pods: BTreeMap<String, (Env, Rc<SimRuntime>)>,
    pub client: Env,
    pub other: Env,
    /// An admin client on host `user`.
    pub admin: Client,
}

impl Cluster {
    /// Builds the world; call inside `faultline_engine::run`.
    pub async fn new(seed: u64, cfg: ProxyConfig) -> Cluster {
        Cluster::build(seed, cfg, true).await
    }

    /// Like [`Cluster::new`]; without masters when `masters` is false (add
    /// them later with [`Cluster::add_masters`]).
    pub async fn build(seed: u64, cfg: ProxyConfig, with_masters: bool) -> Cluster {
        let mut wc = WorldConfig::new(seed);
        wc.keep_trace = true;
        let world = World::new(wc);
        let envs: Envs = Rc::default();
        let ids = if with_masters {
            add_masters(&world)
        } else {
            Vec::new()
        };
        let node = world.add_host("n1", "dc-a", masters().node("n1", None, Some(cfg)));
        for host in POD_HOSTS.into_iter().chain(["c1", "c2", "user"]) {
            world.add_host(host, "dc-a", capture(envs.clone()));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        let env = |name: &str| envs.borrow()[name].clone();
        let pods = POD_HOSTS
            .iter()
            .map(|h| {
                let e = env(h);
                (h.to_string(), (e.clone(), Rc::new(SimRuntime::new(e))))
            })
            .collect();
        Cluster {
            masters: ids,
            node,
            pods,
            client: env("c1"),
            other: env("c2"),
            admin: masters().admin(&env("user")),
            world,
        }
    }

    pub fn add_masters(&mut self) {
        self.masters = add_masters(&self.world);
    }

    /// The environment of pod host `host`.
    pub fn pod_env(&self, host: &str) -> Env {
        self.pods[host].0.clone()
    }

    /// Stops a container on `host`: its port is closed from now on.
    pub async fn stop_pod(&self, host: &str, id: &ContainerId) {
        self.pods[host]
            .1
            .stop(id, std::time::Duration::ZERO)
            .await
            .expect("stops");
    }

    /// Starts an echo pod `name` listening on `ip:8080` on `host`.
    pub async fn start_pod(&self, host: &str, name: &str, ip: &str) -> ContainerId {
        let spec = ContainerSpec {
            pod_uid: format!("uid-{name}"),
            pod_namespace: "default".into(),
            pod_name: name.into(),
            container_name: "main".into(),
            image: "echo".into(),
            args: Vec::new(),
            pod_ip: ip.into(),
            ports: vec![ContainerPort {
                name: "http".into(),
                container_port: i32::from(POD_PORT),
                ..ContainerPort::default()
            }],
            ..ContainerSpec::default()
        };
        self.pods[host].1.start(spec).await.expect("echo starts")
    }

    /// Creates or replaces `obj`, retrying while the API comes up.
    pub async fn apply<T: Resource>(&self, obj: &T) {
        let env = self.admin.env().clone();
        let deadline = env.now() + Duration::from_secs(60);
        loop {
            let done = match self.admin.create(obj).await {
                Ok(_) => true,
                Err(e) if e.is_already_exists() => {
                    let meta = obj.meta();
                    match self.admin.get::<T>(&meta.namespace, &meta.name).await {
                        Ok(current) => {
                            let mut next = obj.clone();
                            next.meta_mut().resource_version =
                                current.meta().resource_version.clone();
                            self.admin.update(&next).await.is_ok()
                        }
                        Err(_) => false,
                    }
                }
                Err(_) => false,
            };
            if done {
                return;
            }
            assert!(env.now() < deadline, "the API never accepted {obj:?}");
            env.sleep(Duration::from_millis(500)).await;
        }
    }

    /// Deletes `ns/name` of kind `T`, retrying while the API is unsure.
    pub async fn delete<T: Resource>(&self, ns: &str, name: &str) {
        let env = self.admin.env().clone();
        loop {
            match self.admin.delete::<T>(ns, name, &Default::default()).await {
                Ok(_) => return,
                Err(e) if e.is_not_found() => return,
                Err(_) => env.sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// Service `default/<name>` on `port`, forwarding to `target`.
    pub async fn service(&self, name: &str, port: u16, target: u16) {
        self.apply(&service("default", name, port, target)).await;
    }

    /// Endpoints `default/<name>`: `ready` and `not_ready` pod IPs, all on
    /// port 8080 (port name `http`).
    pub async fn endpoints(&self, name: &str, ready: &[&str], not_ready: &[&str]) {
        self.apply(&endpoints("default", name, ready, not_ready))
            .await;
    }

    /// Endpoints `default/<name>` of ready pods given as (IP, node).
    pub async fn endpoints_on(&self, name: &str, ready: &[(&str, &str)]) {
        let ips: Vec<&str> = ready.iter().map(|(ip, _)| *ip).collect();
        let mut ep = endpoints("default", name, &ips, &[]);
        for (a, (_, node)) in ep.subsets[0].addresses.iter_mut().zip(ready) {
            a.node_name = Some(node.to_string());
        }
        self.apply(&ep).await;
    }

    /// Waits until `n1:<port>` answers a GET with `status`.
    pub async fn until_status(&self, port: u16, status: u16) {
        let addr = format!("n1:{port}");
        let env = self.client.clone();
        eventually(&env, Duration::from_secs(60), || async {
            matches!(get(&env, &addr, "/").await, Ok(a) if a.status == status)
        })
        .await
        .unwrap_or_else(|_| panic!("{addr} never answered {status}"));
    }
}

fn add_masters(world: &World) -> Vec<HostId> {
    masters().add_to(world, "dc-a")
}

/// Service `ns/name`: one TCP port `http` on `port` forwarding to `target`.
pub fn service(ns: &str, name: &str, port: u16, target: u16) -> Service {
    let mut s = Service {
        metadata: ObjectMeta::named(ns, name),
        ..Default::default()
    };
    s.spec.selector = [("app".to_string(), name.to_string())].into();
    s.spec.ports = vec![ServicePort {
        name: "http".into(),
        protocol: "TCP".into(),
        port: i32::from(port),
        target_port: Some(IntOrString::Int(i32::from(target))),
        ..Default::default()
    }];
    s
}

/// Endpoints `ns/name` with the given ready and not-ready IPs on 8080.
pub fn endpoints(ns: &str, name: &str, ready: &[&str], not_ready: &[&str]) -> Endpoints {
    let address = |ip: &&str| EndpointAddress {
        ip: ip.to_string(),
        ..Default::default()
    };
    Endpoints {
        metadata: ObjectMeta::named(ns, name),
        subsets: vec![EndpointSubset {
            addresses: ready.iter().map(address).collect(),
            not_ready_addresses: not_ready.iter().map(address).collect(),
            ports: vec![EndpointPort {
                name: "http".into(),
                port: i32::from(POD_PORT),
                protocol: "TCP".into(),
            }],
        }],
        ..Default::default()
    }
}

/// Polls `cond` every 100 ms until it holds, for at most `within`.
pub async fn eventually<F, Fut>(env: &Env, within: Duration, cond: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = env.now() + within;
    while env.now() < deadline {
        if cond().await {
            return Ok(());
        }
        env.sleep(Duration::from_millis(100)).await;
    }
    bail!("condition not met within {within:?}")
}

/// What an HTTP exchange returned.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// `x-pod`: the echo pod that answered.
    pub pod: Option<String>,
    /// `x-faultline-node`: the proxy that forwarded.
    pub node: Option<String>,
    pub body: String,
}

fn header(resp: &http::response::Parts, name: &str) -> Option<String> {
    resp.headers
        .get(name)
        .map(|v| v.to_str().unwrap_or("?").to_string())
}

/// One GET over a fresh connection, within 5 simulated seconds.
pub async fn get(env: &Env, addr: &str, path: &str) -> anyhow::Result<Answer> {
    request(env, addr, Method::GET, path, Bytes::new()).await
}

/// One request over a fresh connection, within 5 simulated seconds.
pub async fn request(
    env: &Env,
    addr: &str,
    method: Method,
    path: &str,
    body: Bytes,
) -> anyhow::Result<Answer> {
    let what = format!("{method} {addr}{path}");
    env.timeout(Duration::from_secs(5), async {
        let mut conn = KeepAlive::connect(env, addr).await?;
        conn.send(addr, method, path, body).await
    })
    .await
    .map_err(|_| anyhow!("{what} timed out"))?
}

/// A client keep-alive connection.
pub struct KeepAlive {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl KeepAlive {
    pub async fn connect(env: &Env, addr: &str) -> anyhow::Result<KeepAlive> {
        let conn = env.net().connect(addr).await.context("connect")?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
            .await
            .context("handshake")?;
        let driver = env.spawn(async move {
            let _ = connection.await;
        });
        Ok(KeepAlive { sender, driver })
    }

    /// One exchange on this connection (no timeout: wrap it).
    pub async fn send(
        &mut self,
        addr: &str,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<Answer> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, addr)
            .body(Full::new(body))?;
        self.sender.ready().await.context("ready")?;
        let resp = self.sender.send_request(req).await.context("request")?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.context("body")?.to_bytes();
        Ok(Answer {
            status: parts.status.as_u16(),
            pod: header(&parts, "x-pod"),
            node: header(&parts, "x-faultline-node"),
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// How many answers came from each pod.
pub fn tally(answers: &[Answer]) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for a in answers {
        *t.entry(
            a.pod
                .clone()
                .unwrap_or_else(|| format!("status {}", a.status)),
        )
        .or_default() += 1;
    }
    t
}
