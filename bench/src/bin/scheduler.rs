//! Scheduler throughput: pods placed per second (filter + score + choose +
//! assume, every node scored) on clusters of 3 datacenters x 3 zones.
//!
//! `cargo run --release -p faultline-bench --bin scheduler [-- --nodes 1000,5000 --pods 10000]`
#![allow(clippy::disallowed_methods)] // a benchmark measures real time

use std::collections::BTreeMap;
use std::time::Instant;

use clap::Parser;
use faultline_api::{
    labels, Container, Node, NodeCondition, ObjectMeta, OwnerReference, Pod, Quantity,
};
use faultline_scheduler::Cache;

#[derive(Parser)]
#[command(about = "Scheduler throughput: pods per second at N nodes")]
struct Args {
    /// Cluster sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    nodes: Vec<usize>,
    /// Pods to schedule per cluster size.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Deployments the pods belong to.
    #[arg(long, default_value_t = 50)]
    deployments: usize,
    /// Seed of the tiebreak sequence.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

const DATACENTERS: [&str; 3] = ["dc-a", "dc-b", "dc-c"];
const TARGET_NODES: usize = 5000;
const TARGET_PODS_PER_S: f64 = 1000.0;

fn q(text: &str) -> Quantity {
    Quantity::parse(text).expect("benchmark quantities are valid")
}

fn node(i: usize) -> Node {
    let dc = DATACENTERS[i % 3];
    let name = format!("node-{i:05}");
    let mut n = Node::default();
    n.metadata.name = name.clone();
    n.metadata.labels = BTreeMap::from([
        (labels::REGION.to_string(), dc.to_string()),
        (
            labels::ZONE.to_string(),
            format!("{dc}-{}", (i / 3) % 3 + 1),
        ),
        (labels::HOSTNAME.to_string(), name),
    ]);
    n.status.allocatable = BTreeMap::from([
        ("cpu".to_string(), q("16")),
        ("memory".to_string(), q("64Gi")),
        ("pods".to_string(), q("110")),
    ]);
    n.status.capacity = n.status.allocatable.clone();
    n.status.conditions.push(NodeCondition {
        kind: "Ready".into(),
        status: "True".into(),
        ..Default::default()
    });
    n
}

/// Pod `i`, of deployment `i % deployments` (the deployments' ReplicaSets
/// create pods concurrently, so they interleave).
fn pod(i: usize, deployments: usize) -> Pod {
    let d = i % deployments;
    let mut p = Pod {
        metadata: ObjectMeta::named("default", &format!("app-{d}-{i}")),
        ..Default::default()
    };
    p.metadata.uid = format!("pod-uid-{i}");
    p.metadata.labels.insert("app".into(), format!("app-{d}"));
    p.metadata.owner_references.push(OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: format!("app-{d}-rs"),
        uid: format!("rs-uid-{d}"),
        controller: true,
        block_owner_deletion: true,
    });
    let mut c = Container {
        name: "app".into(),
        image: "echo".into(),
        ..Default::default()
    };
    c.resources.requests = BTreeMap::from([
        ("cpu".to_string(), q(&format!("{}m", 100 * (1 + d % 4)))),
        ("memory".to_string(), q(&format!("{}Mi", 128 * (1 + d % 3)))),
    ]);
    p.spec.containers.push(c);
    p
}

/// SplitMix64: the tiebreak sequence from one seed.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Row {
    nodes: usize,
    pods: usize,
    seconds: f64,
    unschedulable: usize,
    /// The largest difference, over deployments, between the pods in its
    /// fullest and emptiest datacenter.
    dc_skew: usize,
}

fn measure(nodes: usize, pods: &[Pod], deployments: usize, seed: u64) -> Row {
    let mut cache = Cache::new();
    for i in 0..nodes {
        cache.upsert_node(node(i));
    }
    let mut rng = seed;
    let mut placed: Vec<Option<String>> = Vec::with_capacity(pods.len());
    let start = Instant::now();
    for p in pods {
        match cache.schedule(p, next(&mut rng)) {
            Ok(n) => {
                cache.assume(p, &n);
                placed.push(Some(n));
            }
            Err(_) => placed.push(None),
        }
    }
    let seconds = start.elapsed().as_secs_f64();

    let mut per_dc = vec![[0usize; 3]; deployments];
    for (i, n) in placed.iter().enumerate() {
        if let Some(n) = n {
            let dc = &cache
                .node(n)
                .expect("placed on a known node")
                .metadata
                .labels[labels::REGION];
            let d = DATACENTERS
                .iter()
                .position(|x| x == dc)
                .expect("a known datacenter");
            per_dc[i % deployments][d] += 1;
        }
    }
    let dc_skew = per_dc
        .iter()
        .map(|c| c.iter().max().unwrap_or(&0) - c.iter().min().unwrap_or(&0))
        .max()
        .unwrap_or(0);
    Row {
        nodes,
        pods: pods.len(),
        seconds,
        unschedulable: placed.iter().filter(|p| p.is_none()).count(),
        dc_skew,
    }
}

fn main() {
    let args = Args::parse();
    assert!(args.deployments > 0, "--deployments must be positive");
    let pods: Vec<Pod> = (0..args.pods).map(|i| pod(i, args.deployments)).collect();
    println!(
        "{} pods of {} deployments (cpu 100-400m, memory 128-384Mi); nodes 16 cpu, 64Gi, 110 pods \
         in 3 datacenters x 3 zones; every feasible node scored",
        args.pods, args.deployments
    );
    println!(
        "{:>6} {:>7} {:>9} {:>9} {:>8} {:>14}",
        "nodes", "pods", "seconds", "pods/s", "unsched", "max dc skew"
    );
    let mut at_target = None;
    for &n in &args.nodes {
        let r = measure(n, &pods, args.deployments, args.seed);
        let rate = r.pods as f64 / r.seconds;
        println!(
            "{:>6} {:>7} {:>9.3} {:>9.0} {:>8} {:>14}",
            r.nodes, r.pods, r.seconds, rate, r.unschedulable, r.dc_skew
        );
        if r.nodes == TARGET_NODES {
            at_target = Some(rate);
        }
    }
    println!("kube-scheduler reference, published: 100-900 pods/s");
    match at_target {
        Some(rate) => println!(
            "target >= {TARGET_PODS_PER_S:.0} pods/s at {TARGET_NODES} nodes: {} ({rate:.0} pods/s)",
            if rate >= TARGET_PODS_PER_S { "met" } else { "NOT met" }
        ),
        None => println!(
            "target >= {TARGET_PODS_PER_S:.0} pods/s at {TARGET_NODES} nodes: not measured (add {TARGET_NODES} to --nodes)"
        ),
    }
}
