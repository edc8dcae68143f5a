//! The replicated etcd-like store: MVCC state machine, durable log, server and client.
//!
//! Layers (bottom up):
//! - [`codec`]: checksummed records (disk files and network frames) and the
//!   postcard helpers;
//! - [`storage`]: the durable Raft log (WAL segments, snapshots, hard state)
//!   over [`faultline_env::Disk`], with crash and corruption recovery;
//! - [`ops`]: the API types (etcd v3 semantics) and the [`ops::Command`]
//!   carried in Raft entries;
//! - [`mvcc`]: the deterministic state machine applied from the log.
//!
//! - [`proto`]: the wire protocol (checksummed frames, one port for peers
//!   and clients);
//! - [`server`]: a replica, the async shell around Raft and the state
//!   machine;
//! - [`client`]: leader-finding, deduplicating, retrying client.

pub mod client;
pub mod codec;
pub mod mvcc;
pub mod ops;
pub mod proto;
pub mod server;
pub mod storage;
