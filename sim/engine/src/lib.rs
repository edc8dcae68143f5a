//! The event-driven deterministic world Faultline runs the orchestrator in.
//!
//! - [`world`]: hosts as crashable task groups, placed in datacenters, and
//!   [`run`], the deterministic runtime (current thread, paused clock, seeded
//!   tokio RNG);
//! - [`net`]: TCP-like simulated streams with latency, jitter, loss,
//!   partitions and hold/release;
//! - [`disk`]: a disk that survives crashes and can lose unsynced writes,
//!   tear writes, flip bits, fill up, fail or go slow;
//! - [`trace`]: the hashed event trace and the Raft safety monitor.
//!
//! Why not turmoil alone: it advances in fixed ticks and polls every host
//! each tick, so its cost grows with hosts and with simulated time even when
//! nothing happens. Here idle time is skipped: tokio's paused clock jumps
//! straight to the next timer. turmoil remains a second backend
//! (`faultline-runner`'s `turmoil` module) as an independent network model.

// tokio's scheduler and `select!` draw from an internal RNG that is only
// seedable with `--cfg tokio_unstable` (see .cargo/config.toml). Without it,
// the same seed would not reproduce the same run.
#[cfg(not(tokio_unstable))]
compile_error!(
    "faultline-engine needs `--cfg tokio_unstable` (set in .cargo/config.toml; \
     a RUSTFLAGS environment variable overrides it — add `--cfg tokio_unstable` there too)"
);

pub mod disk;
pub mod net;
pub mod trace;
pub mod world;

pub use disk::{DiskFaults, SimDisk};
pub use net::{HostId, LinkConfig, SimNet};
pub use trace::Trace;
pub use world::{run, HostMain, World, WorldConfig};
