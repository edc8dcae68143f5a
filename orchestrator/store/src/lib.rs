//! The replicated etcd-like store: MVCC state machine, durable log, server and client.
