//! Every fault kind has an effect: each is run for real and inert (planned,
//! drawn and traced identically, but changing nothing) at the same seed; a
//! kind that is silently a no-op gives both runs the same network traffic
//! (the trace's net hash).

use faultline_runner::scenario::FaultKind;
use faultline_runner::{run_engine, run_engine_inert_faults, RunOptions, Scenario};

/// A store-only world: three masters in three datacenters and a client
/// workload.
const STORE: &str = r#"
name = "fault-effect-store"
duration = "30s"
[cluster]
datacenters = ["dc-a", "dc-b", "dc-c"]
masters = 3
[workload]
rate = 50
[[invariant]]
kind = "raft-safety"
"#;

/// A small cluster: two datacenters, four nodes, a served deployment and
/// users.
const CLUSTER: &str = r#"
name = "fault-effect-cluster"
duration = "100s"
[cluster]
datacenters = ["dc-a", "dc-b"]
masters = 3
nodes_per_datacenter = 2
[[deployment]]
name = "web"
replicas = 4
port = 80
[[traffic]]
service = "web"
rate = 20
[[invariant]]
kind = "single-binding"
"#;

/// (kind, world, the `[[fault]]` table)
fn cases() -> Vec<(FaultKind, &'static str, &'static str)> {
    use FaultKind::*;
    vec![
        (MasterCrash, STORE, "at = \"10s\"\nkind = \"master-crash\"\ntarget = \"m1\"\nfor = \"5s\""),
        (LeaderKill, STORE, "at = \"10s\"\nkind = \"leader-kill\"\nfor = \"5s\""),
        (PowerLoss, STORE, "at = \"10s\"\nkind = \"power-loss\"\ntarget = \"m2\"\nfor = \"5s\""),
        (Partition, STORE, "at = \"10s\"\nkind = \"partition\"\ntarget = \"leader\"\nfor = \"5s\""),
        (Partition, STORE, "at = \"10s\"\nkind = \"partition\"\ngroups = [[\"m1\"], [\"m2\", \"m3\"]]\nfor = \"5s\""),
        (PartitionOneWay, STORE, "at = \"10s\"\nkind = \"partition-one-way\"\ntarget = \"leader\"\nfor = \"5s\""),
        (Loss, STORE, "at = \"10s\"\nkind = \"loss\"\ntarget = \"m1\"\nprobability = 0.2\nfor = \"10s\""),
        (Latency, STORE, "at = \"10s\"\nkind = \"latency\"\ntarget = \"m1\"\ndelay = \"50ms\"\njitter = \"20ms\"\nfor = \"10s\""),
        (DiskCorruption, STORE, "at = \"10s\"\nkind = \"disk-corruption\"\ntarget = \"m1\"\nbits = 2"),
        (DiskFull, STORE, "at = \"10s\"\nkind = \"disk-full\"\ntarget = \"leader\"\nfor = \"5s\""),
        (DiskEio, STORE, "at = \"10s\"\nkind = \"disk-eio\"\ntarget = \"leader\"\nfor = \"5s\""),
        (DiskSlow, STORE, "at = \"10s\"\nkind = \"disk-slow\"\ntarget = \"leader\"\ndelay = \"50ms\"\nfor = \"5s\""),
        (DiskLoss, STORE, "at = \"10s\"\nkind = \"disk-loss\"\ntarget = \"leader\"\nfor = \"5s\""),
        (Pause, STORE, "at = \"10s\"\nkind = \"pause\"\ntarget = \"leader\"\nfor = \"5s\""),
        (NodeCrash, CLUSTER, "at = \"50s\"\nkind = \"node-crash\"\ntarget = \"n1\"\nfor = \"20s\""),
        (NodeIsolate, CLUSTER, "at = \"50s\"\nkind = \"node-isolate\"\ntarget = \"n1\"\nfor = \"20s\""),
        (NodeIsolate, CLUSTER, "at = \"50s\"\nkind = \"node-isolate\"\ntarget = \"n1\"\nfrom = \"all\"\nfor = \"20s\""),
        (ControllerLeaderKill, CLUSTER, "at = \"50s\"\nkind = \"controller-leader-kill\"\nfor = \"20s\""),
        (DatacenterOutage, CLUSTER, "at = \"50s\"\nkind = \"datacenter-outage\"\ntarget = \"dc-b\"\nfor = \"20s\""),
        (DatacenterPartition, CLUSTER, "at = \"50s\"\nkind = \"datacenter-partition\"\ntarget = \"dc-b\"\nfor = \"20s\""),
        (KubeletRestart, CLUSTER, "at = \"50s\"\nkind = \"kubelet-restart\"\ntarget = \"n1\""),
        (Pause, CLUSTER, "at = \"50s\"\nkind = \"pause\"\ntarget = \"n2\"\nfor = \"20s\""),
        // A node's skewed or jumped clock changes nothing the network sees
        // (the node controller times leases by when it saw them renewed, as
        // Kubernetes does; only the timestamps' text differs, never their
        // length), so both are aimed at the controller manager, whose own
        // clock does matter.
        (ClockSkew, CLUSTER, "at = \"50s\"\nkind = \"clock-skew\"\ntarget = \"controller-manager\"\noffset = \"2m\"\nfor = \"30s\""),
        (ClockJump, CLUSTER, "at = \"50s\"\nkind = \"clock-jump\"\ntarget = \"controller-manager\"\noffset = \"2m\""),
    ]
}

#[test]
fn every_fault_kind_changes_the_run() {
    let cases = cases();
    for kind in FaultKind::ALL {
        assert!(
            cases.iter().any(|(k, _, _)| k == kind),
            "{} has no effect test",
            kind.name()
        );
    }
    let mut inert_kinds = Vec::new();
    for (kind, world, fault) in cases {
        let text = format!("{world}\n[[fault]]\n{fault}\n");
        let s = Scenario::parse(&text, kind.name()).unwrap_or_else(|e| panic!("{e}"));
        let opts = RunOptions {
            seed: 7,
            keep_trace: false,
            path: format!("{}.toml", kind.name()),
            progress: None,
        };
        let real_run = run_engine(&s, &opts);
        let inert_run = run_engine_inert_faults(&s, &opts);
        let (real, inert) = (&real_run.summary, &inert_run.summary);
        assert_eq!(real.faults.len(), 1, "{}: {:?}", kind.name(), real.faults);
        assert!(
            !real.faults[0].target.starts_with("nobody"),
            "{} hit nobody: {:?}",
            kind.name(),
            real.faults[0]
        );
        assert_eq!(
            real.faults[0].target,
            inert.faults[0].target,
            "{}: the inert run must draw the same fault",
            kind.name()
        );
        // The network traffic, not the text lines (those name the fault in
        // both runs, and crashes and pauses only in the real one).
        if real_run.net_hash == inert_run.net_hash {
            inert_kinds.push(format!("{} ({fault:?})", kind.name()));
        }
    }
    assert!(
        inert_kinds.is_empty(),
        "these faults changed nothing: {inert_kinds:#?}"
    );
}

/// The nemesis respects its bounds: with at most one master down and one
/// datacenter at a time, overlapping faults never exceed them; unbounded,
/// they may.
#[test]
fn the_nemesis_keeps_its_bounds() {
    let text = |extra: &str| {
        format!(
            r#"
name = "nemesis-bounds"
duration = "30m"
[cluster]
datacenters = ["dc-a", "dc-b", "dc-c"]
masters = 5
nodes_per_datacenter = 2
[nemesis]
every = "20s"
min_for = "10s"
max_for = "60s"
kinds = ["master-crash", "partition", "datacenter-outage", "node-crash", "power-loss"]
weights = {{ master-crash = 3 }}
{extra}
[[invariant]]
kind = "single-binding"
"#
        )
    };
    let bounded = Scenario::parse(&text("overlap = true"), "bounded").unwrap();
    let unbounded = Scenario::parse(&text("mode = \"unbounded\""), "unbounded").unwrap();
    let most = |s: &Scenario| {
        let plan = faultline_runner::faults::plan(s, 3);
        assert!(plan.len() > 20, "{} faults drawn", plan.len());
        // The most masters-affecting faults in force at any fault's start.
        plan.iter()
            .map(|f| {
                plan.iter()
                    .filter(|g| g.start <= f.start && g.end.is_none_or(|e| e > f.start))
                    .filter(|g| {
                        !matches!(g.kind(), FaultKind::NodeCrash | FaultKind::DatacenterOutage)
                    })
                    .count()
            })
            .max()
            .unwrap()
    };
    // Bounded: 5 masters -> at most 2 down; a partition of a minority
    // already counts 2, so at most 2 master faults overlap.
    assert!(most(&bounded) <= 2, "bounded overlap: {}", most(&bounded));
    assert!(
        most(&unbounded) > 2,
        "unbounded overlap: {}",
        most(&unbounded)
    );
    let plan = faultline_runner::faults::plan(&bounded, 3);
    for f in &plan {
        let dcs = plan
            .iter()
            .filter(|g| g.kind() == FaultKind::DatacenterOutage)
            .filter(|g| g.start < f.end.unwrap() && g.end.unwrap() > f.start)
            .count();
        if f.kind() == FaultKind::DatacenterOutage {
            assert_eq!(dcs, 1, "two datacenter outages overlap in {plan:#?}");
        }
    }
    let crashes = plan
        .iter()
        .filter(|f| f.kind() == FaultKind::MasterCrash)
        .count();
    let partitions = plan
        .iter()
        .filter(|f| f.kind() == FaultKind::Partition)
        .count();
    assert!(
        crashes > partitions,
        "weights: {crashes} crashes, {partitions} partitions"
    );
}
