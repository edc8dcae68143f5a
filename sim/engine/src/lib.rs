//! The event-driven deterministic world: hosts, simulated network and disk, trace.
