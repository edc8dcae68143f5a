//! Invariant oracles over recorded histories: linearizability, lost writes, watch order.
