use std::collections::BTreeMap;

use faultline_api::{
    labels, Container, Node, NodeCondition, ObjectMeta, OwnerReference, Pod, Quantity,
    ResourceList, Taint, Toleration,
};

use crate::{tolerates, workload_key, Cache, Reason, Resources, Unschedulable};

fn resources(pairs: &[(&str, &str)]) -> ResourceList {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity::parse(v).unwrap()))
        .collect()
}

/// A Ready node in `region`/`zone` with `cpu` and `memory` allocatable.
fn node(name: &str, region: &str, zone: &str, cpu: &str, memory: &str) -> Node {
    let mut n = Node::default();
    n.metadata.name = name.to_string();
    n.metadata.labels = BTreeMap::from([
        (labels::REGION.to_string(), region.to_string()),
        (labels::ZONE.to_string(), zone.to_string()),
        (labels::HOSTNAME.to_string(), name.to_string()),
    ]);
    n.status.allocatable = resources(&[("cpu", cpu), ("memory", memory), ("pods", "110")]);
    n.status.conditions.push(NodeCondition {
        kind: "Ready".into(),
        status: "True".into(),
        ..Default::default()
    });
    n
}

/// A pending pod of ReplicaSet `owner` requesting `cpu` and `memory`.
fn pod(name: &str, owner: &str, cpu: &str, memory: &str) -> Pod {
    let mut p = Pod {
        metadata: ObjectMeta::named("default", name),
        ..Default::default()
    };
    p.metadata.uid = format!("uid-{name}");
    p.metadata.labels.insert("app".into(), owner.into());
    p.metadata.owner_references.push(OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: owner.into(),
        uid: format!("rs-{owner}"),
        controller: true,
        block_owner_deletion: true,
    });
    p.spec.containers.push(Container {
        name: "c".into(),
        image: "echo".into(),
        ..Default::default()
    });
    p.spec.containers[0].resources.requests = resources(&[("cpu", cpu), ("memory", memory)]);
    p
}

fn bound(mut p: Pod, node: &str) -> Pod {
    p.spec.node_name = node.to_string();
    p.status.phase = "Running".into();
    p
}

/// A cache fed `nodes`, in order.
fn cache_of(nodes: impl IntoIterator<Item = Node>) -> Cache {
    let mut c = Cache::new();
    for n in nodes {
        c.upsert_node(n);
    }
    c
}

/// `p` goes to `node` whatever the tiebreak in `0..seeds`.
#[track_caller]
fn always_placed_on(c: &Cache, p: &Pod, node: &str, seeds: u64) {
    for seed in 0..seeds {
        assert_eq!(c.schedule(p, seed).unwrap(), node, "seed {seed}");
    }
}

fn reasons(e: &Unschedulable) -> Vec<(Reason, usize)> {
    e.reasons.iter().map(|(r, n)| (r.clone(), *n)).collect()
}

#[test]
fn a_pod_that_fits_is_placed_and_one_that_does_not_is_refused() {
    let c = cache_of([node("n1", "dc-a", "a1", "2", "4Gi")]);
    assert_eq!(c.schedule(&pod("p", "web", "2", "4Gi"), 0).unwrap(), "n1");

    let e = c.schedule(&pod("p", "web", "2001m", "1Gi"), 0).unwrap_err();
    assert_eq!(reasons(&e), [(Reason::InsufficientCpu, 1)]);
    let e = c.schedule(&pod("p", "web", "3", "5Gi"), 0).unwrap_err();
    assert_eq!(
        reasons(&e),
        [
            (Reason::InsufficientCpu, 1),
            (Reason::InsufficientMemory, 1)
        ]
    );
}

#[test]
fn accounted_pods_take_space_and_pod_slots() {
    let mut n = node("n1", "dc-a", "a1", "1", "1Gi");
    n.status
        .allocatable
        .insert("pods".into(), Quantity::parse("2").unwrap());
    let mut c = cache_of([n]);
    c.upsert_pod(&bound(pod("a", "web", "600m", "100Mi"), "n1"));
    let e = c
        .schedule(&pod("b", "web", "500m", "100Mi"), 0)
        .unwrap_err();
    assert_eq!(reasons(&e), [(Reason::InsufficientCpu, 1)]);
    // Zero-request pods still need a pod slot.
    c.upsert_pod(&bound(pod("c", "web", "0", "0"), "n1"));
    let e = c.schedule(&pod("d", "web", "0", "0"), 0).unwrap_err();
    assert_eq!(reasons(&e), [(Reason::TooManyPods, 1)]);
}

#[test]
fn allocatable_falls_back_to_capacity_and_110_pods() {
    let mut n = node("n1", "dc-a", "a1", "1", "1Gi");
    n.status.capacity = n.status.allocatable.clone();
    n.status.allocatable = resources(&[("cpu", "500m")]);
    let c = cache_of([n]);
    assert_eq!(
        c.allocatable("n1").unwrap(),
        Resources {
            cpu_milli: 500,
            memory_bytes: 1 << 30,
            pods: 110
        }
    );
}

#[test]
fn nodes_that_are_not_ready_or_cordoned_are_filtered() {
    let mut not_ready = node("n1", "dc-a", "a1", "4", "4Gi");
    not_ready.status.conditions[0].status = "Unknown".into();
    let mut cordoned = node("n2", "dc-a", "a1", "4", "4Gi");
    cordoned.spec.unschedulable = true;
    let mut c = cache_of([not_ready, cordoned]);
    let e = c.schedule(&pod("p", "web", "1", "1Gi"), 0).unwrap_err();
    assert_eq!(
        reasons(&e),
        [(Reason::NotReady, 1), (Reason::Unschedulable, 1)]
    );
    c.upsert_node(node("n2", "dc-a", "a1", "4", "4Gi")); // uncordoned
    assert_eq!(c.schedule(&pod("p", "web", "1", "1Gi"), 0).unwrap(), "n2");
}

#[test]
fn taints_must_be_tolerated() {
    let mut n = node("n1", "dc-a", "a1", "4", "4Gi");
    n.spec.taints = vec![
        Taint {
            key: "dedicated".into(),
            value: "db".into(),
            effect: "NoSchedule".into(),
        },
        Taint {
            key: "soft".into(),
            value: String::new(),
            effect: "PreferNoSchedule".into(), // not a filter
        },
    ];
    let c = cache_of([n]);
    let mut p = pod("p", "web", "1", "1Gi");
    let e = c.schedule(&p, 0).unwrap_err();
    assert_eq!(
        reasons(&e),
        [(
            Reason::UntoleratedTaint {
                key: "dedicated".into(),
                value: "db".into()
            },
            1
        )]
    );
    assert_eq!(
        e.to_string(),
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: db}."
    );

    let tol = |key: &str, operator: &str, value: &str, effect: &str| Toleration {
        key: key.into(),
        operator: operator.into(),
        value: value.into(),
        effect: effect.into(),
    };
    for wrong in [
        tol("dedicated", "Equal", "web", ""),
        tol("dedicated", "Exists", "", "NoExecute"),
        tol("other", "Exists", "", ""),
    ] {
        p.spec.tolerations = vec![wrong.clone()];
        assert!(c.schedule(&p, 0).is_err(), "{wrong:?} tolerated");
    }
    for right in [
        tol("dedicated", "Equal", "db", "NoSchedule"),
        tol("dedicated", "", "db", ""),
        tol("dedicated", "Exists", "", ""),
        tol("", "Exists", "", ""),
    ] {
        p.spec.tolerations = vec![right.clone()];
        assert_eq!(
            c.schedule(&p, 0).as_deref(),
            Ok("n1"),
            "{right:?} not tolerated"
        );
    }
    let no_execute = Taint {
        key: "k".into(),
        value: "v".into(),
        effect: "NoExecute".into(),
    };
    assert!(tolerates(&tol("k", "Equal", "v", "NoExecute"), &no_execute));
    assert!(!tolerates(
        &tol("k", "Equal", "v", "NoSchedule"),
        &no_execute
    ));
}

#[test]
fn the_node_selector_must_be_a_subset_of_the_labels() {
    let mut ssd = node("n1", "dc-a", "a1", "4", "4Gi");
    ssd.metadata.labels.insert("disk".into(), "ssd".into());
    let c = cache_of([ssd, node("n2", "dc-a", "a1", "4", "4Gi")]);
    let mut p = pod("p", "web", "1", "1Gi");
    p.spec.node_selector.insert("disk".into(), "ssd".into());
    p.spec
        .node_selector
        .insert(labels::REGION.into(), "dc-a".into());
    always_placed_on(&c, &p, "n1", 20);
    p.spec.node_selector.insert("disk".into(), "hdd".into());
    let e = c.schedule(&p, 0).unwrap_err();
    assert_eq!(reasons(&e), [(Reason::NodeSelectorMismatch, 2)]);
}

/// 3 datacenters x 3 nodes; schedules `replicas` pods of one ReplicaSet,
/// assuming each; returns the pods per datacenter.
fn spread_run(seed: u64, replicas: usize) -> (Cache, BTreeMap<String, usize>, Vec<String>) {
    let mut c = Cache::new();
    for dc in ["dc-a", "dc-b", "dc-c"] {
        for i in 0..3 {
            c.upsert_node(node(
                &format!("{dc}-{i}"),
                dc,
                &format!("{dc}-z{i}"),
                "8",
                "16Gi",
            ));
        }
    }
    let mut per_dc = BTreeMap::new();
    let mut placed = Vec::new();
    let mut rng = seed;
    for r in 0..replicas {
        let p = pod(&format!("web-{r}"), "web", "100m", "128Mi");
        rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let n = c.schedule(&p, rng).unwrap();
        c.assume(&p, &n);
        let dc = c.node(&n).unwrap().metadata.labels[labels::REGION].clone();
        *per_dc.entry(dc).or_insert(0) += 1;
        placed.push(n);
    }
    (c, per_dc, placed)
}

#[test]
fn replicas_spread_across_datacenters_then_nodes() {
    for seed in 0..10 {
        let (_, per_dc, placed) = spread_run(seed, 6);
        assert_eq!(
            per_dc.values().copied().collect::<Vec<_>>(),
            [2, 2, 2],
            "seed {seed}"
        );
        let distinct: std::collections::BTreeSet<_> = placed.iter().collect();
        assert_eq!(distinct.len(), 6, "seed {seed}: {placed:?}");
        // Nine replicas: one per node.
        let (_, _, placed) = spread_run(seed, 9);
        let distinct: std::collections::BTreeSet<_> = placed.iter().collect();
        assert_eq!(distinct.len(), 9, "seed {seed}: {placed:?}");
    }
}

#[test]
fn other_workloads_do_not_count_towards_spreading() {
    let (mut c, _, _) = spread_run(1, 3);
    // A different workload starts afresh: three in a row still go to three
    // datacenters.
    let mut dcs = std::collections::BTreeSet::new();
    for r in 0..3 {
        let p = pod(&format!("db-{r}"), "db", "100m", "128Mi");
        let n = c.schedule(&p, 7 + r).unwrap();
        c.assume(&p, &n);
        dcs.insert(c.node(&n).unwrap().metadata.labels[labels::REGION].clone());
    }
    assert_eq!(dcs.len(), 3);
}

#[test]
fn pods_without_a_controller_spread_by_their_labels() {
    let mut p = pod("x", "web", "100m", "128Mi");
    p.metadata.owner_references.clear();
    assert_eq!(workload_key(&p).as_deref(), Some("labels:default/app=web"));
    p.metadata.labels.clear();
    assert_eq!(workload_key(&p), None);
    assert_eq!(
        workload_key(&pod("x", "web", "1", "1")).as_deref(),
        Some("owner:rs-web")
    );
}

#[test]
fn the_least_allocated_node_wins_among_equally_spread_ones() {
    let mut c = cache_of([
        node("big", "dc-a", "a1", "16", "64Gi"),
        node("small", "dc-a", "a1", "2", "4Gi"),
    ]);
    always_placed_on(&c, &pod("p", "web", "1", "1Gi"), "big", 20);
    // Fill "big" with another workload until "small" has more room left.
    c.upsert_pod(&bound(pod("hog", "batch", "15500m", "63Gi"), "big"));
    always_placed_on(&c, &pod("p", "web", "100m", "100Mi"), "small", 20);
}

#[test]
fn assume_then_forget_releases_and_confirmation_sticks() {
    let mut c = cache_of([node("n1", "dc-a", "a1", "1", "1Gi")]);
    let p = pod("p", "web", "600m", "256Mi");
    let n = c.schedule(&p, 0).unwrap();
    c.assume(&p, &n);
    assert_eq!(c.placement("uid-p"), Some(("n1", true)));
    assert_eq!(c.requested("n1").unwrap().cpu_milli, 600);
    assert!(c.schedule(&pod("q", "web", "600m", "256Mi"), 0).is_err());
    c.forget("uid-p");
    assert_eq!(c.requested("n1").unwrap(), Resources::default());
    assert_eq!(c.workload_pods_on("owner:rs-web", "n1"), 0);
    assert_eq!(c.pod_count(), 0);

    // Assumed, then confirmed by the watch: forget no longer undoes it.
    c.assume(&p, "n1");
    c.upsert_pod(&bound(p.clone(), "n1"));
    assert_eq!(c.placement("uid-p"), Some(("n1", false)));
    c.forget("uid-p");
    assert_eq!(c.requested("n1").unwrap().cpu_milli, 600);
    // A late "pending" event of the same pod changes nothing.
    c.upsert_pod(&p);
    assert_eq!(c.requested("n1").unwrap().cpu_milli, 600);
    // Finishing releases it.
    let mut done = bound(p.clone(), "n1");
    done.status.phase = "Succeeded".into();
    c.upsert_pod(&done);
    assert_eq!(c.requested("n1").unwrap(), Resources::default());
    assert_eq!(c.pod_count(), 0);
}

#[test]
fn double_events_are_idempotent_and_moves_are_accounted() {
    let mut c = cache_of([
        node("n1", "dc-a", "a1", "4", "4Gi"),
        node("n2", "dc-b", "b1", "4", "4Gi"),
    ]);
    let p = bound(pod("p", "web", "1", "1Gi"), "n1");
    c.upsert_pod(&p);
    c.upsert_pod(&p);
    c.upsert_node(node("n1", "dc-a", "a1", "4", "4Gi"));
    assert_eq!(c.requested("n1").unwrap().cpu_milli, 1000);
    assert_eq!(c.requested("n1").unwrap().pods, 1);
    assert_eq!(c.workload_pods_on("owner:rs-web", "n1"), 1);
    assert_eq!(c.pod_count(), 1);

    // The same uid reported on another node moves.
    c.upsert_pod(&bound(pod("p", "web", "1", "1Gi"), "n2"));
    assert_eq!(c.requested("n1").unwrap(), Resources::default());
    assert_eq!(c.requested("n2").unwrap().pods, 1);
    c.remove_pod(&p);
    c.remove_pod(&p);
    assert_eq!(c.requested("n2").unwrap(), Resources::default());
    assert_eq!(c.pod_count(), 0);
}

#[test]
fn pods_bound_to_unknown_nodes_are_kept_until_the_node_arrives() {
    let mut c = Cache::new();
    c.upsert_pod(&bound(pod("p", "web", "1", "1Gi"), "late"));
    assert_eq!(c.node_count(), 0);
    assert_eq!(c.requested("late").unwrap().cpu_milli, 1000);
    c.upsert_node(node("late", "dc-a", "a1", "4", "4Gi"));
    c.upsert_node(node("other", "dc-b", "b1", "1", "4Gi"));
    // The early pod now counts in dc-a: its workload goes to dc-b, although
    // "late" has more room.
    always_placed_on(&c, &pod("q", "web", "1m", "1Mi"), "other", 10);
    c.remove_node("late");
    assert_eq!(c.node_count(), 1);
    assert_eq!(c.requested("late").unwrap().pods, 1);
    c.remove_pod(&pod("p", "web", "1", "1Gi"));
    assert_eq!(c.requested("late"), None);
    assert!(c.node("late").is_none());
}

#[test]
fn the_message_counts_reasons_like_kube_scheduler() {
    let mut c = Cache::new();
    for i in 0..3 {
        let mut n = node(&format!("small-{i}"), "dc-a", "a1", "1", "64Gi");
        n.metadata.labels.insert("accelerator".into(), "gpu".into());
        c.upsert_node(n);
    }
    for i in 0..2 {
        let mut n = node(&format!("down-{i}"), "dc-a", "a1", "16", "64Gi");
        n.status.conditions.clear();
        c.upsert_node(n);
    }
    for i in 0..4 {
        let mut n = node(&format!("gpu-{i}"), "dc-b", "b1", "16", "64Gi");
        n.metadata
            .labels
            .insert("accelerator".into(), "none".into());
        c.upsert_node(n);
    }
    let mut p = pod("p", "web", "2", "1Gi");
    p.spec
        .node_selector
        .insert("accelerator".into(), "gpu".into());
    let e = c.schedule(&p, 0).unwrap_err();
    assert_eq!(e.nodes_total, 9);
    assert_eq!(
        reasons(&e),
        [
            (Reason::NotReady, 2),
            (Reason::NodeSelectorMismatch, 4),
            (Reason::InsufficientCpu, 3),
        ]
    );
    assert_eq!(
        e.to_string(),
        "0/9 nodes are available: 2 node(s) were not ready, 3 Insufficient cpu, \
         4 node(s) didn't match Pod's node affinity/selector."
    );
    assert_eq!(
        Cache::new().schedule(&p, 0).unwrap_err().to_string(),
        "0/0 nodes are available."
    );
}

#[test]
fn a_seed_replays_and_seeds_vary_placements() {
    let run = |seed| spread_run(seed, 9).2;
    assert_eq!(run(42), run(42));
    let firsts: std::collections::BTreeSet<String> = (0..32).map(|s| run(s)[0].clone()).collect();
    assert!(firsts.len() > 3, "tiebreak barely varies: {firsts:?}");

    // The order the cache was fed in does not matter.
    let mut a = Cache::new();
    let mut b = Cache::new();
    let nodes: Vec<Node> = (0..20)
        .map(|i| node(&format!("n{i}"), "dc-a", "a1", "4", "4Gi"))
        .collect();
    for n in &nodes {
        a.upsert_node(n.clone());
    }
    for n in nodes.iter().rev() {
        b.upsert_node(n.clone());
    }
    b.upsert_node(node("gone", "dc-a", "a1", "4", "4Gi"));
    b.remove_node("gone");
    for seed in 0..50 {
        let p = pod(&format!("p{seed}"), "web", "100m", "1Mi");
        let na = a.schedule(&p, seed).unwrap();
        assert_eq!(na, b.schedule(&p, seed).unwrap());
        a.assume(&p, &na);
        b.assume(&p, &na);
    }
}

#[test]
fn relabelling_a_node_moves_its_pods_between_datacenters() {
    let mut c = cache_of([
        node("n1", "dc-a", "a1", "4", "4Gi"),
        node("n2", "dc-b", "b1", "4", "4Gi"),
        node("n3", "dc-b", "b2", "4", "4Gi"),
    ]);
    c.upsert_pod(&bound(pod("p", "web", "100m", "1Mi"), "n1"));
    // dc-a has the replica: the next goes to dc-b.
    let next = c.schedule(&pod("q", "web", "100m", "1Mi"), 3).unwrap();
    assert_ne!(next, "n1");
    // n1 moves to dc-b, and a node joins dc-a: the replica now counts in
    // dc-b, so the next goes to dc-a.
    c.upsert_node(node("n1", "dc-b", "b1", "4", "4Gi"));
    c.upsert_node(node("n4", "dc-a", "a1", "4", "4Gi"));
    always_placed_on(&c, &pod("q", "web", "100m", "1Mi"), "n4", 10);
}
