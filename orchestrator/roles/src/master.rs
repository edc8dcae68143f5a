//! A master: a store replica and, with a control plane, the API server on
//! that store, the scheduler(s) and the controller manager.
//!
//! Start order (fixed: the simulator's determinism depends on it, since
//! every client draws from the host's random stream when it is made):
//! the API server's store client and the API server, then the schedulers'
//! client and each scheduler, then the controller manager's client and the
//! manager, and last the store replica itself, which the returned future
//! runs.

use std::rc::Rc;
use std::time::Duration;

use faultline_apiserver::ApiServerConfig;
use faultline_client::{Client, ClientConfig};
use faultline_controllers::manager::ManagerConfig;
use faultline_env::tls::TlsClient;
use faultline_env::Env;
use faultline_scheduler::driver::SchedulerConfig;
use faultline_store::client::{ClientConfig as StoreClientConfig, StoreClient};
use faultline_store::server::{serve, ServeError, StoreConfig};
use faultline_store::storage::StorageError;

/// Everything one master runs.
#[derive(Debug, Clone)]
pub struct MasterSpec {
    /// The store replica (its id, port, members, Raft timing, whether it
    /// rejoins an existing cluster).
    pub store: StoreConfig,
    /// What to do when the replica cannot start.
    pub restart: StoreRestart,
    /// The control plane beside the replica; `None` for a store-only
    /// master.
    pub control_plane: Option<ControlPlaneSpec>,
}

impl MasterSpec {
    /// A store-only master that gives up when its replica cannot start.
    pub fn store_only(store: StoreConfig) -> MasterSpec {
        MasterSpec {
            store,
            restart: StoreRestart::Never,
            control_plane: None,
        }
    }
}

/// What happens when the store replica fails to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreRestart {
    /// [`master`] returns the error (a real process exits and its service
    /// manager decides).
    Never,
    /// Retried after `after`, as a service manager would (systemd's
    /// `Restart=on-failure`); a replica whose hard state is gone needs an
    /// operator, so that one error still ends it. The simulator's masters
    /// run this way.
    OnFailure { after: Duration },
}

/// The API server and the components beside it on one master.
#[derive(Debug, Clone)]
pub struct ControlPlaneSpec {
    /// The API server (its port, tokens, observer and test-only bugs).
    pub api: ApiServerConfig,
    /// The store endpoints the API server's store client uses.
    pub store_endpoints: Vec<String>,
    /// Every master's API address, for the scheduler's and the controller
    /// manager's clients.
    pub api_servers: Vec<String>,
    /// How those clients verify the API servers (real mode's HTTPS);
    /// `None` speaks plain HTTP, as in the simulator.
    pub api_tls: Option<TlsClient>,
    /// The schedulers to run, if any.
    pub scheduler: Option<SchedulerSpec>,
    /// The controller manager, if any.
    pub controller_manager: Option<ManagerSpec>,
}

/// Schedulers on one master.
#[derive(Debug, Clone)]
pub struct SchedulerSpec {
    /// Their bearer token (a user in `system:kube-scheduler`).
    pub token: String,
    /// Independently elected schedulers, all claiming the default
    /// scheduler's pods: the first takes Lease `kube-scheduler`, the k-th
    /// `kube-scheduler-k`. More than one races on every binding, which the
    /// API server's compare-and-swap must withstand.
    pub count: u32,
}

/// The controller manager on one master.
#[derive(Debug, Clone)]
pub struct ManagerSpec {
    /// Its bearer token (a user in `system:kube-controller-manager`).
    pub token: String,
    /// Its configuration; `identity` is replaced by the host's name.
    pub config: ManagerConfig,
}

/// Runs a master on `env`: starts its control plane (if any) as tasks of
/// the host, then runs the store replica until it stops.
pub async fn master(env: Env, spec: MasterSpec) -> Result<(), ServeError> {
    if let Some(cp) = spec.control_plane {
        // The API server reaches the store as the replica reaches its
        // peers: with the master's own certificate when the store is TLS.
        let store_tls = spec.store.tls.as_ref().map(|t| t.client.clone());
        start_control_plane(&env, cp, store_tls);
    }
    run_store(env, spec.store, spec.restart).await
}

fn start_control_plane(env: &Env, cp: ControlPlaneSpec, store_tls: Option<TlsClient>) {
    let mut store_cfg = StoreClientConfig::new(cp.store_endpoints);
    store_cfg.tls = store_tls;
    let store = Rc::new(StoreClient::new(env.clone(), store_cfg));
    let (api_env, port) = (env.clone(), cp.api.port);
    env.spawn(async move {
        if let Err(e) = faultline_apiserver::serve(api_env.clone(), cp.api, store).await {
            api_env.trace(format_args!("API server on port {port} stopped: {e}"));
        }
    });
    let me = env.host().to_string();
    if let Some(s) = cp.scheduler {
        let mut cfg = ClientConfig::new(cp.api_servers.clone(), &s.token);
        cfg.tls = cp.api_tls.clone();
        let client = Client::new(env.clone(), cfg);
        for k in 1..=s.count {
            let mut cfg = SchedulerConfig::new(&me);
            if k > 1 {
                cfg.elector.name = format!("kube-scheduler-{k}");
            }
            env.spawn(faultline_scheduler::driver::run(client.clone(), cfg));
        }
    }
    if let Some(m) = cp.controller_manager {
        let mut client_cfg = ClientConfig::new(cp.api_servers, &m.token);
        client_cfg.tls = cp.api_tls;
        let client = Client::new(env.clone(), client_cfg);
        let cfg = ManagerConfig {
            identity: me,
            ..m.config
        };
        env.spawn(faultline_controllers::manager::run(client, cfg));
    }
}

/// Runs the store replica under `restart`.
async fn run_store(env: Env, cfg: StoreConfig, restart: StoreRestart) -> Result<(), ServeError> {
    loop {
        let e = match serve(env.clone(), cfg.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        match (restart, e) {
            (StoreRestart::Never, e) => return Err(e),
            (_, ServeError::Storage(e @ StorageError::HardStateLost { .. })) => {
                env.trace(format_args!("store cannot start, operator needed: {e}"));
                return Err(ServeError::Storage(e));
            }
            (StoreRestart::OnFailure { after }, e) => {
                env.trace(format_args!("store failed to start, retrying: {e}"));
                env.sleep(after).await;
            }
        }
    }
}
