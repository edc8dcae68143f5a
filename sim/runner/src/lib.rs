//! Scenarios, faults, workloads and the runner that judges a seed.
