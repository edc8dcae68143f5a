//! Test support for the orchestrator's integration tests: in-simulator
//! clusters whose masters are wired by `faultline-roles` (the same code real
//! mode and the simulator run), their credentials and clients, and small
//! probes of connections.
//!
//! A dev-dependency only. A typical test:
//!
//! ```no_run
//! use faultline_testkit::{Log, Masters};
//! let masters = Masters::api(3).with_scheduler();
//! let log: Log = Default::default();
//! let l = log.clone();
//! faultline_testkit::simulate(7, 60, &masters, move |world| {
//!     world.add_host("user", "dc-a", std::rc::Rc::new(move |env| {
//!         let l = l.clone();
//!         Box::pin(async move { l.borrow_mut().push(env.host().to_string()) })
//!     }));
//! });
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use faultline_apiserver::ApiServerConfig;
use faultline_client::{Client, ClientConfig};
use faultline_controllers::manager::ManagerConfig;
use faultline_engine::{HostId, HostMain, World, WorldConfig};
use faultline_env::{BoxConn, Env};
use faultline_kubelet::{KubeletConfig, SimRuntime};
use faultline_proxy::ProxyConfig;
use faultline_roles::master::{ManagerSpec, SchedulerSpec};
use faultline_roles::{
    start_node, ControlPlaneSpec, Credentials, MasterSpec, NodeSpec, StoreRestart,
};
use faultline_store::client::{ClientConfig as StoreClientConfig, StoreClient};
use faultline_store::server::StoreConfig;
use tokio::io::AsyncReadExt;

/// The store's port on every test master.
pub const STORE_PORT: u16 = 2379;
/// The API server's port on every test master.
pub const API_PORT: u16 = 6443;

/// Lines a test's hosts write and the test reads afterwards.
pub type Log = Rc<RefCell<Vec<String>>>;

/// The test masters: `m1` … `mN`, each a store replica and whatever
/// control plane the test asks for.
#[derive(Clone)]
pub struct Masters {
    /// How many (ids 1..=count).
    pub count: u64,
    /// Tokens of the admin, the scheduler, the controller manager and the
    /// nodes `n1`, `n2`, `n3` (well-known: see [`Credentials::well_known`]).
    pub credentials: Credentials,
    /// An API server on every master.
    pub api: bool,
    /// A scheduler on every master (elected).
    pub scheduler: bool,
    /// A controller manager on every master (elected), configured so.
    pub manager: Option<ManagerConfig>,
    /// Changes each replica's store configuration (Raft timing, snapshots).
    pub tune_store: fn(&mut StoreConfig),
}

impl Masters {
    /// Store replicas only.
    pub fn store(count: u64) -> Masters {
        Masters {
            count,
            credentials: Credentials::well_known(&["n1", "n2", "n3"]),
            api: false,
            scheduler: false,
            manager: None,
            tune_store: |_| {},
        }
    }

    /// Store replicas, each with an API server.
    pub fn api(count: u64) -> Masters {
        Masters {
            api: true,
            ..Masters::store(count)
        }
    }

    /// Also a scheduler on every master.
    pub fn with_scheduler(mut self) -> Masters {
        assert!(self.api, "a scheduler needs the API server");
        self.scheduler = true;
        self
    }

    /// Also a controller manager on every master, with `cfg` (its identity
    /// is the host's name).
    pub fn with_manager(mut self, cfg: ManagerConfig) -> Masters {
        assert!(self.api, "a controller manager needs the API server");
        self.manager = Some(cfg);
        self
    }

    /// Changes each replica's store configuration.
    pub fn tune_store(mut self, tune: fn(&mut StoreConfig)) -> Masters {
        self.tune_store = tune;
        self
    }

    /// The masters' host names.
    pub fn names(&self) -> Vec<String> {
        (1..=self.count).map(|i| format!("m{i}")).collect()
    }

    /// The store's members, by id.
    pub fn store_members(&self) -> BTreeMap<u64, String> {
        (1..=self.count)
            .map(|i| (i, format!("m{i}:{STORE_PORT}")))
            .collect()
    }

    /// Every master's store address.
    pub fn store_endpoints(&self) -> Vec<String> {
        self.store_members().into_values().collect()
    }

    /// Every master's API address.
    pub fn api_servers(&self) -> Vec<String> {
        self.names()
            .iter()
            .map(|m| format!("{m}:{API_PORT}"))
            .collect()
    }

    /// An API client on `env` with `token`, over every master.
    pub fn client(&self, env: &Env, token: &str) -> Client {
        Client::new(env.clone(), ClientConfig::new(self.api_servers(), token))
    }

    /// An admin API client on `env`.
    pub fn admin(&self, env: &Env) -> Client {
        self.client(env, &self.credentials.admin)
    }

    /// A store client on `env`, over every master.
    pub fn store_client(&self, env: &Env) -> Rc<StoreClient> {
        Rc::new(StoreClient::new(
            env.clone(),
            StoreClientConfig::new(self.store_endpoints()),
        ))
    }

    /// What master `id` runs (see `faultline_roles::master`).
    pub fn spec(&self, id: u64) -> MasterSpec {
        let mut store = StoreConfig::new(id, STORE_PORT, self.store_members());
        (self.tune_store)(&mut store);
        let control_plane = self.api.then(|| ControlPlaneSpec {
            api: ApiServerConfig::new(API_PORT, self.credentials.tokens()),
            store_endpoints: self.store_endpoints(),
            api_servers: self.api_servers(),
            api_tls: None,
            scheduler: self.scheduler.then(|| SchedulerSpec {
                token: self.credentials.scheduler.clone(),
                count: 1,
            }),
            controller_manager: self.manager.clone().map(|config| ManagerSpec {
                token: self.credentials.controller.clone(),
                config,
            }),
        });
        MasterSpec {
            store,
            restart: StoreRestart::Never,
            control_plane,
        }
    }

    /// The host main of master `id`. A replica that cannot start fails the
    /// test.
    pub fn host(&self, id: u64) -> HostMain {
        let spec = self.spec(id);
        Rc::new(move |env: Env| {
            let spec = spec.clone();
            Box::pin(async move {
                faultline_roles::master(env, spec)
                    .await
                    .expect("replica starts");
            })
        })
    }

    /// The host main of a worker node `name` (one of `n1`, `n2`, `n3`):
    /// its kubelet (over the simulated runtime) and its service proxy, each
    /// when given, wired by `faultline_roles::start_node`.
    pub fn node(
        &self,
        name: &str,
        kubelet: Option<KubeletConfig>,
        proxy: Option<ProxyConfig>,
    ) -> HostMain {
        let spec = NodeSpec {
            api_servers: self.api_servers(),
            tls: None,
            token: self
                .credentials
                .node(name)
                .unwrap_or_else(|| panic!("no token for node {name}"))
                .to_string(),
            kubelet,
            proxy,
        };
        Rc::new(move |env: Env| {
            let spec = spec.clone();
            Box::pin(async move {
                let runtime = Rc::new(SimRuntime::new(env.clone()));
                start_node(&env, &spec, runtime);
            })
        })
    }

    /// Adds every master to `world` in datacenter `dc`.
    pub fn add_to(&self, world: &World, dc: &str) -> Vec<HostId> {
        (1..=self.count)
            .map(|id| world.add_host(&format!("m{id}"), dc, self.host(id)))
            .collect()
    }
}

/// Runs a world of `masters` (in `dc-a`) plus whatever `hosts` adds, for
/// `secs` simulated seconds at `seed`; returns the trace's text lines.
pub fn simulate(
    seed: u64,
    secs: u64,
    masters: &Masters,
    hosts: impl FnOnce(&World) + 'static,
) -> Vec<String> {
    let masters = masters.clone();
    faultline_engine::run(seed, move || async move {
        let mut cfg = WorldConfig::new(seed);
        cfg.keep_trace = true;
        let world = World::new(cfg);
        masters.add_to(&world, "dc-a");
        hosts(&world);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let lines = world.trace().lines();
        world.shutdown();
        lines
    })
}

/// Environments handed out by [`capture`] hosts, by host name.
pub type Envs = Rc<RefCell<BTreeMap<String, Env>>>;

/// A host that hands its environment to the test and idles: the test body
/// then drives the host through it.
pub fn capture(envs: Envs) -> HostMain {
    Rc::new(move |env: Env| {
        let envs = envs.clone();
        Box::pin(async move {
            envs.borrow_mut().insert(env.host().to_string(), env);
        })
    })
}

/// Retries `f` every 500 ms until it succeeds (an API comes up late).
pub async fn retry<T, E, Fut: Future<Output = Result<T, E>>>(env: &Env, f: impl Fn() -> Fut) -> T {
    loop {
        if let Ok(t) = f().await {
            return t;
        }
        env.sleep(Duration::from_millis(500)).await;
    }
}

/// Connects within `d`, or says why not.
pub async fn try_connect(env: &Env, addr: &str, d: Duration) -> Result<BoxConn, String> {
    match env.timeout(d, env.net().connect(addr)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!("error: {e}")),
        Err(_) => Err("timed out".into()),
    }
}

/// What the peer did within `d`: answered (the first bytes, as text),
/// closed, failed, or nothing.
pub async fn read_within(env: &Env, conn: &mut BoxConn, d: Duration) -> String {
    let mut buf = [0u8; 4096];
    match env.timeout(d, conn.read(&mut buf)).await {
        Ok(Ok(0)) => "closed".into(),
        Ok(Ok(n)) => format!("answered {}", String::from_utf8_lossy(&buf[..n])),
        Ok(Err(e)) => format!("error {}", e.kind()),
        Err(_) => "still open".into(),
    }
}

/// Reads until the peer closes (or `d` passes); returns everything read
/// and whether it closed.
pub async fn read_to_close(env: &Env, conn: &mut BoxConn, d: Duration) -> (String, bool) {
    let mut all = Vec::new();
    let closed = env
        .timeout(d, async {
            let mut buf = [0u8; 4096];
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => all.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await
        .is_ok();
    (String::from_utf8_lossy(&all).into_owned(), closed)
}

/// The trace lines (of any host) containing `needle`.
pub fn trace_lines(world: &World, needle: &str) -> Vec<String> {
    world
        .trace()
        .lines()
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect()
}
