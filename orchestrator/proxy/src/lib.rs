//! The service proxy on every node (kube-proxy's job, as an HTTP/1 proxy):
//! each TCP Service port is served on the node and forwarded to the
//! Service's ready endpoints.
//!
//! Module map:
//! - [`table`] (sans-IO): Services + Endpoints -> which port serves which
//!   Service, its ready endpoints, round robin and passive-health cooldowns;
//! - [`conns`] (sans-IO): a listener's client connections — phases,
//!   header and idle deadlines, which one to shed when full;
//! - `forward`: one request to an endpoint, pooled upstream connections,
//!   the retry rules and the 502/503/504 answers;
//! - `server`: listeners, connection tasks and the `/healthz` endpoint;
//! - this file: [`ProxyConfig`] and [`run`], the driver that follows
//!   Services and Endpoints through informers and opens and closes
//!   listeners as the table says.
//!
//! Behaviour in short:
//! - A Service appearing opens its ports (`nodePort` if set, else `port`)
//!   on the node; disappearing closes them, with their connections. Two
//!   Services claiming one port: the first by (namespace, name) wins and
//!   the conflict is traced. Bind errors are retried with backoff.
//! - Requests go round robin to ready endpoints, skipping those that
//!   recently refused or timed out (for `endpoint_cooldown`) and those
//!   sitting on unanswered requests (for `endpoint_stall_timeout`) — unless
//!   that would skip them all. A failed attempt is retried once on
//!   another endpoint (preferably a proven one on another node) when no
//!   response had arrived and the method is idempotent or nothing was
//!   sent; the first try of an idempotent request is abandoned for the
//!   retry as soon as its endpoint stalls; a pooled connection found dead
//!   does not count against its endpoint. 503 without endpoints, 502 when
//!   the upstream fails, 504 when it times out; every answer of a Service
//!   port carries `x-faultline-node`.
//! - Static stability: state only ever changes on informer events, and the
//!   informers keep their caches while the API servers are unreachable, so
//!   a control-plane outage leaves forwarding as it was.
//! - `GET /healthz` on `healthz_port`: 503 until the informers' first sync
//!   has been applied, then 200 for good — an external load balancer takes
//!   nodes out on it, and a control-plane outage must not take out all.
//! - Bounded everything: header size, body size (413), header and idle
//!   timeouts, connections per listener, idle upstream connections per
//!   endpoint. Garbage gets 400 and a close.
//! - Trace lines only for listener and endpoint-set changes, never per
//!   request.

pub mod conns;
mod forward;
mod server;
pub mod table;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use faultline_api::{Endpoints, Service};
use faultline_client::{Change, Client, Informer, ListParams};
use faultline_env::Env;
use http::HeaderValue;

pub use forward::NODE_HEADER;

use crate::forward::{Forwarder, Pool};
use crate::server::{Handler, ListenerHandle};
use crate::table::{Effect, Table};

/// Kubernetes' kube-proxy health port.
pub const DEFAULT_HEALTHZ_PORT: u16 = 10256;

/// How a node's proxy runs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The node (and host) name, sent back in `x-faultline-node`.
    pub node: String,
    /// Where `GET /healthz` is served.
    pub healthz_port: u16,
    /// Dialing an endpoint (a partitioned one hangs: this bounds it).
    pub connect_timeout: Duration,
    /// Sending a request upstream and reading its whole response.
    pub upstream_timeout: Duration,
    /// A client's request head must arrive within this of its first byte
    /// (of the accept, for a connection's first request); also bounds
    /// reading a request body.
    pub header_read_timeout: Duration,
    /// How long a client connection may sit between requests.
    pub idle_timeout: Duration,
    /// Client connections per listener; a full listener sheds its least
    /// recently active connection for a newcomer.
    pub max_connections: usize,
    /// Largest request head (request line and headers): 431 beyond.
    pub max_header_bytes: usize,
    /// Largest request or response body: 413 (request) or 502 (response)
    /// beyond.
    pub max_body_bytes: usize,
    /// How long an endpoint that refused or timed out is skipped.
    pub endpoint_cooldown: Duration,
    /// An endpoint with requests in flight that has answered none of them
    /// for this long is stalled: skipped by new requests (until it answers,
    /// or they end), and the first try of an idempotent request waiting on
    /// it is abandoned and retried on a healthy endpoint. So a partitioned
    /// endpoint costs this, not `upstream_timeout`. An endpoint that is
    /// slow and otherwise idle looks stalled too: raise this above the
    /// slowest normal response of such services.
    pub endpoint_stall_timeout: Duration,
    /// Idle keep-alive connections kept per endpoint.
    pub pool_max_idle_per_endpoint: usize,
    /// An idle upstream connection older than this is not reused (servers
    /// close idle connections; this stays below common keep-alive limits).
    pub pool_idle_timeout: Duration,
}

impl ProxyConfig {
    /// Defaults for the proxy of `node`.
    pub fn new(node: &str) -> ProxyConfig {
        ProxyConfig {
            node: node.to_string(),
            healthz_port: DEFAULT_HEALTHZ_PORT,
            connect_timeout: Duration::from_millis(300),
            upstream_timeout: Duration::from_secs(2),
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            max_connections: 256,
            max_header_bytes: 16 << 10,
            max_body_bytes: 1 << 20,
            endpoint_cooldown: Duration::from_secs(5),
            endpoint_stall_timeout: Duration::from_millis(500),
            pool_max_idle_per_endpoint: 8,
            pool_idle_timeout: Duration::from_secs(4),
        }
    }

    fn check(&self) {
        assert!(!self.node.is_empty(), "a proxy needs its node's name");
        assert!(self.healthz_port != 0, "healthz_port must be a port");
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("upstream_timeout", self.upstream_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            assert!(!d.is_zero(), "{name} must be positive");
        }
        assert!(self.max_connections > 0, "max_connections must be positive");
        assert!(
            self.max_header_bytes > 0,
            "max_header_bytes must be positive"
        );
    }
}

/// Runs the proxy on this host forever: follows Services and Endpoints
/// (all namespaces) through `client`, serves every TCP Service port and
/// `/healthz`. `client` needs read access to Services and Endpoints (a
/// node's credentials do). Drop the task to stop it: every listener and
/// connection goes with it.
pub async fn run(env: Env, client: Client, cfg: ProxyConfig) {
    cfg.check();
    let cfg = Rc::new(cfg);
    // A host name is always a valid header value; a name that is not gets
    // a placeholder rather than a panic.
    let node = HeaderValue::from_str(&cfg.node).unwrap_or(HeaderValue::from_static("invalid"));
    let services: Informer<Service> =
        Informer::start(client.clone(), None, ListParams::default(), None);
    let endpoints: Informer<Endpoints> = Informer::start(client, None, ListParams::default(), None);
    // Subscribed before the informers' tasks first run: every object of
    // the first list arrives as `Added`.
    let mut services_rx = services.subscribe();
    let mut endpoints_rx = endpoints.subscribe();

    let synced = Rc::new(Cell::new(false));
    let _health = server::open(
        &env,
        &cfg,
        cfg.healthz_port,
        "healthz".to_string(),
        Handler::Health(synced.clone()),
    );
    let mut driver = Driver {
        env: env.clone(),
        cfg: cfg.clone(),
        node,
        table: Table::new(cfg.endpoint_cooldown, cfg.endpoint_stall_timeout),
        listeners: BTreeMap::new(),
        effects: Vec::new(),
    };
    loop {
        // `biased`: no draw from tokio's RNG, and changes before the sync
        // check.
        tokio::select! {
            biased;
            change = services_rx.recv() => {
                driver.service(change.expect("the informer outlives its subscription"));
            }
            change = endpoints_rx.recv() => {
                driver.endpoints(change.expect("the informer outlives its subscription"));
            }
            _ = async { services.wait_synced().await; endpoints.wait_synced().await },
                if !synced.get() => {}
        }
        // The informers announce every object of their first list before
        // they report synced: once both have, drain what they queued and
        // the node is ready.
        if !synced.get() && services.has_synced() && endpoints.has_synced() {
            while let Ok(change) = services_rx.try_recv() {
                driver.service(change);
            }
            while let Ok(change) = endpoints_rx.try_recv() {
                driver.endpoints(change);
            }
            synced.set(true);
            env.trace(format_args!(
                "proxy: synced: {} services, {} ports",
                driver.table.service_count(),
                driver.listeners.len()
            ));
        }
    }
}

/// The routing table and the listeners it calls for.
struct Driver {
    env: Env,
    cfg: Rc<ProxyConfig>,
    node: HeaderValue,
    table: Table<Pool>,
    /// Invariant: one per open port of `table`.
    listeners: BTreeMap<u16, ListenerHandle>,
    effects: Vec<Effect>,
}

impl Driver {
    fn service(&mut self, change: Change<Service>) {
        match change {
            Change::Added(svc) | Change::Modified { new: svc, .. } => {
                self.table.apply_service(&svc, &mut self.effects)
            }
            Change::Deleted(svc) => self.table.delete_service(
                &svc.metadata.namespace,
                &svc.metadata.name,
                &mut self.effects,
            ),
            Change::Resync => {}
        }
        self.act();
    }

    fn endpoints(&mut self, change: Change<Endpoints>) {
        match change {
            Change::Added(ep) | Change::Modified { new: ep, .. } => {
                self.table.apply_endpoints(&ep, &mut self.effects)
            }
            Change::Deleted(ep) => self.table.delete_endpoints(
                &ep.metadata.namespace,
                &ep.metadata.name,
                &mut self.effects,
            ),
            Change::Resync => {}
        }
        self.act();
    }

    /// Opens and closes listeners as the last change requires (right after
    /// each change, so the table and the listeners never disagree), and
    /// traces it.
    fn act(&mut self) {
        for effect in self.effects.drain(..) {
            self.env.trace(format_args!("proxy: {effect}"));
            match effect {
                Effect::Open { port, service } => {
                    let backends = self
                        .table
                        .backends(port)
                        .expect("an opened port has backends");
                    let forwarder = Forwarder::new(
                        self.env.clone(),
                        self.cfg.clone(),
                        backends,
                        self.node.clone(),
                    );
                    let handle = server::open(
                        &self.env,
                        &self.cfg,
                        port,
                        service,
                        Handler::Service(forwarder),
                    );
                    let previous = self.listeners.insert(port, handle);
                    assert!(previous.is_none(), "port {port} opened twice");
                }
                Effect::Close { port, .. } => {
                    let closed = self.listeners.remove(&port);
                    assert!(closed.is_some(), "port {port} closed without being open");
                }
                Effect::Retarget { .. } | Effect::Conflict { .. } | Effect::Endpoints { .. } => {}
            }
        }
        // Cheap next to an informer event (a handful of Services), and the
        // simulator is where a broken invariant must surface.
        self.table.check_invariants();
        assert!(
            self.listeners.keys().copied().eq(self.table.ports()),
            "a listener per open port"
        );
    }
}
