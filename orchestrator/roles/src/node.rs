//! A worker node: the kubelet over a container runtime, and the node's
//! service proxy (kube-proxy's place), as one process with the node's
//! credentials.

use std::rc::Rc;

use faultline_client::{Client, ClientConfig};
use faultline_env::tls::TlsClient;
use faultline_env::Env;
use faultline_kubelet::{ContainerRuntime, KubeletConfig};
use faultline_proxy::ProxyConfig;

/// Everything one node's process runs.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Every master's API address.
    pub api_servers: Vec<String>,
    /// The node's bearer token (user `system:node:NAME`).
    pub token: String,
    /// How the node verifies the API servers (real mode's HTTPS); `None`
    /// speaks plain HTTP, as in the simulator.
    pub tls: Option<TlsClient>,
    /// The kubelet, if this node runs pods.
    pub kubelet: Option<KubeletConfig>,
    /// The service proxy, if this node serves Service ports.
    pub proxy: Option<ProxyConfig>,
}

/// Starts the node's process on `env`: its API client, then the service
/// proxy, then the kubelet over `runtime`, as tasks of `env` (to stop them,
/// give it a process of its own with [`Env::process`] and abort that).
/// Returns at once.
///
/// The runtime is passed in rather than made here because it outlives the
/// process: containers keep running across a kubelet restart, and the new
/// kubelet adopts them.
pub fn start_node(env: &Env, spec: &NodeSpec, runtime: Rc<dyn ContainerRuntime>) {
    let mut cfg = ClientConfig::new(spec.api_servers.clone(), &spec.token);
    cfg.tls = spec.tls.clone();
    let client = Client::new(env.clone(), cfg);
    if let Some(p) = &spec.proxy {
        env.spawn(faultline_proxy::run(env.clone(), client.clone(), p.clone()));
    }
    if let Some(k) = &spec.kubelet {
        env.spawn(faultline_kubelet::run(
            env.clone(),
            client,
            runtime,
            k.clone(),
        ));
    }
}
