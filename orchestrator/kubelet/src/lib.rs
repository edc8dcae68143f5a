//! The node agent's runtime side: what runs a pod's containers on a node and
//! how the node checks them.
//!
//! - [`runtime`]: the [`ContainerRuntime`] seam (CRI-like: start, stop,
//!   list, remove) and [`SimRuntime`], whose containers are tasks on the
//!   node's host, so a host crash kills them and forgets them;
//! - [`apps`]: the built-in applications an image name selects (`echo`,
//!   `crash`, `sleep`, `exit0`);
//! - [`envvars`]: a container's environment (`env`, `envFrom`, the
//!   downward API, ConfigMap and Secret keys) and `$(VAR)` expansion;
//! - [`volumes`]: a pod's ConfigMap and Secret volumes as files, and
//!   where its containers mount them;
//! - [`logs`]: a container's output ([`LogBuffer`]) and how `kubectl logs`
//!   reads it ([`LogOptions`]);
//! - [`probe`]: one readiness or liveness probe (HTTP GET or TCP connect against the pod
//!   IP) and [`ProbeState`], the success/failure threshold machine.
//!
//! The kubelet's sync loop (API-facing) sits on top: it decides what should
//! run from the pods bound to its node, and reconciles the runtime's
//! [`ContainerRuntime::list`] against them. The runtime keeps no state that
//! survives a crash; after a restart the kubelet rebuilds from the API.
//!
//! - [`sync`]: the sync loop's decisions about one pod as pure functions
//!   (what to remove, stop, start and adopt, CrashLoopBackOff, the status
//!   to write);
//! - [`kubelet`]: the async shell that executes them against the runtime
//!   and the API, registers the node and renews its lease;
//! - [`server`]: the kubelet's HTTP server (port 10250), which serves
//!   container output to the API server.

pub mod apps;
pub mod envvars;
pub mod kubelet;
pub mod logs;
pub mod probe;
pub mod runtime;
pub mod server;
pub mod sync;
pub mod volumes;

pub use apps::App;
pub use kubelet::{run, KubeletConfig};
pub use logs::LogBuffer;
pub use probe::{probe, ProbeResult, ProbeState};
pub use runtime::{
    ContainerId, ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState, ExecOutput,
    RuntimeError, SimRuntime, VolumeRuntime,
};
pub use volumes::{Mount, VolumeFile, VolumeFiles};
