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
//! - [`procfs`]: what `/proc` says about a process.

pub mod cgroup;
pub mod crilog;
pub mod docker;
pub mod process;
pub mod procfs;
pub mod shim;

pub use cgroup::Cgroups;
pub use docker::DockerRuntime;
pub use process::ProcessRuntime;
