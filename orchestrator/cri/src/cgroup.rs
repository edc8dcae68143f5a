//! CPU and memory limits for the process runtime's containers, with
//! cgroup v2: a cgroup per container under one per node
//! (`/sys/fs/cgroup/faultline-NODE/ID`), its `memory.max` and `cpu.max`
//! from the container's `resources.limits`.
//!
//! Where the machine has no cgroup v2 hierarchy at `/sys/fs/cgroup` with
//! the `cpu` and `memory` controllers delegated to us (a cgroup v1 or
//! hybrid host, or a container without a writable cgroup namespace),
//! [`Cgroups::detect`] says why, the node prints it once, and containers
//! run without limits: the scheduler still counts their requests.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use faultline_api::ResourceRequirements;
use serde::{Deserialize, Serialize};

const ROOT: &str = "/sys/fs/cgroup";

/// The node's cgroup, under which each container gets one.
#[derive(Debug, Clone)]
pub struct Cgroups {
    parent: PathBuf,
}

/// One container's cgroup and its limits (what the shim creates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgroupSpec {
    pub path: PathBuf,
    /// `memory.max` in bytes.
    pub memory_max: Option<i64>,
    /// `cpu.max`: this many microseconds per 100 ms period.
    pub cpu_quota_us: Option<i64>,
}

const CPU_PERIOD_US: i64 = 100_000;

impl Cgroups {
    /// The node's cgroup, created with the `cpu` and `memory` controllers
    /// enabled for its children; an error saying why when this machine
    /// cannot give them.
    pub fn detect(node: &str) -> Result<Cgroups, String> {
        let root = Path::new(ROOT);
        let controllers = fs::read_to_string(root.join("cgroup.controllers")).map_err(|e| {
            format!(
                "no cgroup v2 hierarchy at {ROOT} ({e}): this machine mounts cgroup v1 or a hybrid"
            )
        })?;
        for want in ["cpu", "memory"] {
            if !controllers.split_whitespace().any(|c| c == want) {
                return Err(format!(
                    "the {want} controller is not available at {ROOT} (it offers: {})",
                    controllers.trim()
                ));
            }
        }
        let enable = |dir: &Path| -> io::Result<()> {
            fs::write(dir.join("cgroup.subtree_control"), "+cpu +memory")
        };
        let named = |what: &str, e: io::Error| format!("{what}: {e}");
        let parent = root.join(format!("faultline-{node}"));
        fs::create_dir_all(&parent).map_err(|e| named(&parent.display().to_string(), e))?;
        // The root's subtree may already have them (writing again is
        // harmless); a non-root cgroup with processes of its own refuses,
        // which is the case of a container without cgroup delegation.
        enable(root).map_err(|e| named(&format!("enabling cpu and memory in {ROOT}"), e))?;
        enable(&parent).map_err(|e| {
            named(
                &format!("enabling cpu and memory in {}", parent.display()),
                e,
            )
        })?;
        Ok(Cgroups { parent })
    }

    /// The cgroup of container `id` with the limits of `resources`.
    pub fn spec(&self, id: &str, resources: &ResourceRequirements) -> CgroupSpec {
        CgroupSpec {
            path: self.parent.join(id),
            memory_max: resources.limits.get("memory").map(|q| q.value()),
            cpu_quota_us: resources
                .limits
                .get("cpu")
                .map(|q| (q.milli_value() * CPU_PERIOD_US / 1000).max(1000)),
        }
    }
}

impl CgroupSpec {
    /// Creates the cgroup and writes its limits.
    pub fn create(&self) -> io::Result<()> {
        fs::create_dir_all(&self.path)?;
        if let Some(bytes) = self.memory_max {
            fs::write(self.path.join("memory.max"), bytes.to_string())?;
            // No swap: over its limit, the container is OOM-killed as
            // Kubernetes' are.
            let _ = fs::write(self.path.join("memory.swap.max"), "0");
        }
        if let Some(quota) = self.cpu_quota_us {
            fs::write(
                self.path.join("cpu.max"),
                format!("{quota} {CPU_PERIOD_US}"),
            )?;
        }
        Ok(())
    }

    /// True when the kernel OOM-killed a process of this cgroup.
    pub fn oom_killed(&self) -> bool {
        fs::read_to_string(self.path.join("memory.events"))
            .ok()
            .and_then(|events| {
                events
                    .lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
            .is_some_and(|n| n > 0)
    }

    /// Removes the cgroup (once its processes are gone).
    pub fn remove(&self) {
        let _ = fs::remove_dir(&self.path);
    }
}
