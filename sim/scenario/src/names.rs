//! The hosts a scenario implies, and their names: masters `m1`..,
//! worker nodes `n1`.., store clients `c1`.., users `u1`...

use crate::Scenario;

/// Host names of the masters, in order.
pub fn master_names(n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("m{i}")).collect()
}

/// Host names of the worker nodes, in order.
pub fn node_names(s: &Scenario) -> Vec<String> {
    let n = s.cluster.nodes_per_datacenter * s.cluster.datacenters.len() as u32;
    (1..=n).map(|i| format!("n{i}")).collect()
}

/// Host names of the clients, in order.
pub fn client_names(n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("c{i}")).collect()
}

/// One user-traffic client host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficClient {
    /// Index into `Scenario::traffic`.
    pub entry: usize,
    /// Host name: `u1`, `u2`, ... over every `[[traffic]]` entry.
    pub name: String,
    /// The datacenter its users are in.
    pub datacenter: String,
}

/// Every user-traffic client host, in order: each entry's clients placed
/// round robin over the datacenters.
pub fn traffic_clients(s: &Scenario) -> Vec<TrafficClient> {
    let dcs = &s.cluster.datacenters;
    let mut out = Vec::new();
    for (entry, t) in s.traffic.iter().enumerate() {
        let n = t.clients.unwrap_or(dcs.len() as u32);
        for i in 0..n as usize {
            out.push(TrafficClient {
                entry,
                name: format!("u{}", out.len() + 1),
                datacenter: dcs[i % dcs.len()].clone(),
            });
        }
    }
    out
}

/// The datacenter of the i-th (0-based) host of a role: round robin.
pub fn dc_of(s: &Scenario, i: usize) -> String {
    let dcs = &s.cluster.datacenters;
    dcs[i % dcs.len()].clone()
}
