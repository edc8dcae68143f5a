//! The one place that assembles each role of the orchestrator from a spec
//! and an [`Env`](faultline_env::Env):
//!
//! - [`master`]: a store replica and, with a control plane, the API server,
//!   the scheduler(s) and the controller manager, each elected where
//!   needed;
//! - [`node`]: a worker node's processes, the kubelet over a container
//!   runtime and the node's service proxy;
//! - [`credentials`]: the bearer tokens of a cluster's roles, and the API
//!   server's token table built from them.
//!
//! Real mode (`faultline master`, `faultline node`), the simulator and every
//! in-simulator test harness call these functions; a real master and a
//! simulated one differ only in their `Env` and their spec. The order in
//! which a role creates its clients and spawns its tasks is part of the
//! simulator's determinism (constructors draw from the host's random
//! stream), so it is fixed here, once.

pub mod credentials;
pub mod master;
pub mod node;

pub use credentials::Credentials;
pub use master::{master, ControlPlaneSpec, MasterSpec, StoreRestart};
pub use node::{start_node, NodeSpec};
