//! Real container runtimes behind the kubelet's
//! [`ContainerRuntime`](faultline_kubelet::ContainerRuntime) seam, for
//! `faultline node --runtime process|docker` (the simulator and
//! `--runtime builtin` use the kubelet's built-in runtime):
//!
//! - [`process`]: a container is a program of the machine, run by a
//!   detached [`shim`] (one per container) in its own process group and,
//!   where the machine allows, its own cgroup ([`cgroup`]);
//! - [`docker`]: a container is a Docker Engine container (bollard), each
//!   pod a sandbox with its own network namespace and IP on the node's
//!   bridge;
//! - [`crilog`]: container output on disk in the CRI log format, rotated
//!   at a size cap, and read back into the kubelet's log buffers;
//! - [`procfs`]: what `/proc` says about a process;
//! - [`volumes`]: pods' ConfigMap and Secret volumes on the node's disk,
//!   switched atomically on every change, which containers mount.

pub mod cgroup;
pub mod crilog;
pub mod docker;
pub mod process;
pub mod procfs;
pub mod shim;
pub mod volumes;

pub use cgroup::Cgroups;
pub use docker::DockerRuntime;
pub use process::ProcessRuntime;
pub use volumes::VolumeDirs;

/// Tokio's clock at wall time `wall_ms` (ms since the epoch, in the past):
/// runtimes learn when a container started or ended from files and from
/// Docker as wall times, and the kubelet reasons in tokio's instants.
pub(crate) fn instant_at(env: &faultline_env::Env, wall_ms: u64) -> tokio::time::Instant {
    let ago = std::time::Duration::from_millis(env.wall_ms().saturating_sub(wall_ms));
    env.now().checked_sub(ago).unwrap_or_else(|| env.now())
}
