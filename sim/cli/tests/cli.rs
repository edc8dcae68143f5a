//! The `faultline` binary end to end: the run contract, determinism across
//! processes, bad input, and proof that the checkers catch broken stores.

use std::path::Path;

mod common;
use common::{faultline, root};

fn report_dir(name: &str) -> String {
    let dir =
        std::env::temp_dir().join(format!("faultline-cli-test-{}-{name}", std::process::id()));
    dir.display().to_string()
}

/// Runs a scenario; returns (exit code, stdout).
fn run(scenario: &str, seed: u64, extra: &[&str]) -> (i32, String) {
    let seed = seed.to_string();
    let dir = report_dir(&format!("{}-{seed}", scenario.replace('/', "_")));
    let mut args = vec!["sim", "run", scenario, "--seed", &seed, "--report", &dir];
    args.extend_from_slice(extra);
    let out = faultline(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), stdout)
}

fn field<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no `{name}:` line in:\n{stdout}"))
}

const STORE_SCENARIOS: [&str; 5] = [
    "scenarios/store-leader-kill.toml",
    "scenarios/store-minority-partition.toml",
    "scenarios/store-majority-partition.toml",
    "scenarios/store-disk-corruption.toml",
    "scenarios/store-fsync-loss.toml",
];

/// Seed 7 passes and keeps the run contract (the last lines are verdict,
/// seed, trace-hash); a second process replays the same trace; seed 8
/// gives another.
fn passes_and_replays_bit_for_bit(scenario: &str) {
    let (code, a) = run(scenario, 7, &[]);
    assert_eq!(code, 0, "{scenario} seed 7 failed:\n{a}");
    assert_eq!(field(&a, "verdict"), "pass");
    assert_eq!(field(&a, "seed"), "7");
    let tail: Vec<&str> = a.lines().rev().take(3).collect();
    assert!(
        tail[0].starts_with("trace-hash: ") && tail[2].starts_with("verdict: "),
        "{a}"
    );
    let (_, b) = run(scenario, 7, &[]);
    assert_eq!(
        field(&a, "trace-hash"),
        field(&b, "trace-hash"),
        "{scenario}: same seed, different trace"
    );
    let (_, c) = run(scenario, 8, &[]);
    assert_ne!(
        field(&a, "trace-hash"),
        field(&c, "trace-hash"),
        "{scenario}: different seeds, same trace"
    );
}

#[test]
fn store_scenarios_pass_and_replay_bit_for_bit() {
    for scenario in STORE_SCENARIOS {
        passes_and_replays_bit_for_bit(scenario);
    }
}

const CONTROL_PLANE_SCENARIOS: [&str; 6] = [
    "scenarios/deploy-and-scale.toml",
    "scenarios/rolling-update.toml",
    "scenarios/node-crash.toml",
    "scenarios/master-failover.toml",
    "scenarios/unschedulable.toml",
    "scenarios/two-schedulers.toml",
];

#[test]
fn control_plane_scenarios_pass_and_replay_bit_for_bit() {
    for scenario in CONTROL_PLANE_SCENARIOS {
        passes_and_replays_bit_for_bit(scenario);
    }
}

/// The data-plane scenarios short enough for every test run (the
/// 30-minute `datacenter-outage` runs in CI's seed sweep).
const AVAILABILITY_SCENARIOS: [&str; 4] = [
    "scenarios/node-crash-availability.toml",
    "scenarios/control-plane-down.toml",
    "scenarios/rolling-update-under-load.toml",
    "scenarios/datacenter-partition.toml",
];

#[test]
fn availability_scenarios_pass_and_replay_bit_for_bit() {
    for scenario in AVAILABILITY_SCENARIOS {
        passes_and_replays_bit_for_bit(scenario);
    }
}

#[test]
fn availability_checker_reports_an_outage_with_its_time_and_seed() {
    let scenario = "scenarios/single-replica-node-crash.toml";
    caught_within(scenario, 1);
    let (_, out) = run(scenario, 1, &[]);
    assert!(
        out.contains("[FAIL] availability: web:")
            && out.contains("VIOLATED: the error budget ran out at"),
        "{out}"
    );
    assert!(out.contains("unavailable "), "{out}");
}

#[test]
fn checkers_catch_a_pod_bound_twice() {
    caught_within("scenarios/control-plane-bug-unchecked-binding.toml", 3);
}

#[test]
fn turmoil_refuses_control_plane_scenarios() {
    let (code, out) = run(
        "scenarios/deploy-and-scale.toml",
        1,
        &["--backend", "turmoil"],
    );
    assert_eq!(code, 2, "{out}");
}

#[test]
fn summary_json_follows_the_run_contract() {
    let dir = report_dir("summary");
    let out = faultline(&[
        "sim",
        "run",
        "scenarios/store-leader-kill.toml",
        "--seed",
        "3",
        "--report",
        &dir,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = std::fs::read_to_string(Path::new(&dir).join("summary.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in [
        "scenario",
        "seed",
        "verdict",
        "trace_hash",
        "simulated_seconds",
        "wall_seconds",
        "events",
        "faults",
        "invariants",
        "reproduce",
    ] {
        assert!(v.get(key).is_some(), "summary.json lacks {key}: {text}");
    }
    assert_eq!(v["seed"], 3);
    assert_eq!(
        v["reproduce"],
        "faultline sim run scenarios/store-leader-kill.toml --seed 3"
    );
    let invariants = v["invariants"].as_array().unwrap();
    assert_eq!(invariants.len(), 5);
    for i in invariants {
        assert!(
            i.get("name").is_some() && i.get("kind").is_some() && i["holds"] == true,
            "{i}"
        );
    }
    assert!(!v["faults"].as_array().unwrap().is_empty());
    let junit = std::fs::read_to_string(Path::new(&dir).join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).expect("junit.xml is XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("a test suite");
    assert_eq!(
        (suite.attribute("tests"), suite.attribute("failures")),
        (Some("5"), Some("0")),
        "{junit}"
    );
}

/// A deliberately broken store must be caught within a few seeds, and the
/// printed reproduce command must replay the same failing run.
fn caught_within(scenario: &str, seeds: u64) {
    for seed in 1..=seeds {
        let (code, out) = run(scenario, seed, &[]);
        if code == 1 {
            assert_eq!(field(&out, "verdict"), "fail");
            assert!(out.contains("[FAIL]"), "{out}");
            let reproduce = field(&out, "reproduce");
            assert_eq!(
                reproduce,
                format!("faultline sim run {scenario} --seed {seed}")
            );
            let (code2, again) = run(scenario, seed, &[]);
            assert_eq!(code2, 1);
            assert_eq!(field(&out, "trace-hash"), field(&again, "trace-hash"));
            return;
        }
        assert_eq!(code, 0, "{scenario} seed {seed}: unexpected exit\n{out}");
    }
    panic!("{scenario}: the broken store was not caught within {seeds} seeds");
}

#[test]
fn checkers_catch_acknowledging_before_commit() {
    caught_within("scenarios/store-bug-ack-before-commit.toml", 5);
}

#[test]
fn checkers_catch_reads_without_read_index() {
    caught_within("scenarios/store-bug-stale-reads.toml", 5);
}

/// The disk-loss rule (a blank replica does not vote until a leader has
/// repaired it) is what keeps acknowledged writes there: with it broken
/// the checkers catch the loss, and the same faults without the bug (the
/// negative control) lose nothing.
#[test]
fn checkers_catch_a_lost_disk_rejoining_as_a_new_member() {
    let scenario = "scenarios/store-bug-rejoin-as-new.toml";
    caught_within(scenario, 3);
    let text = std::fs::read_to_string(root().join(scenario)).unwrap();
    let control = mistake(
        &mistake(&text, "bugs = [\"rejoin-as-new\"]\n", ""),
        "expect = \"fail\"\n",
        "",
    );
    let path = std::env::temp_dir().join(format!(
        "faultline-control-{}-rejoin.toml",
        std::process::id()
    ));
    std::fs::write(&path, control).unwrap();
    for seed in 1..=2 {
        let (code, out) = run(path.to_str().unwrap(), seed, &[]);
        assert_eq!(
            code, 0,
            "seed {seed}: without the bug nothing is lost\n{out}"
        );
    }
}

#[test]
fn turmoil_backend_reaches_the_same_verdicts() {
    for (scenario, expected) in [
        ("scenarios/store-leader-kill.toml", 0),
        ("scenarios/store-bug-ack-before-commit.toml", 1),
    ] {
        let (engine, e) = run(scenario, 1, &[]);
        let (turmoil, t) = run(scenario, 1, &["--backend", "turmoil"]);
        assert_eq!(engine, expected, "{e}");
        assert_eq!(turmoil, expected, "{t}");
        assert_ne!(field(&e, "trace-hash"), field(&t, "trace-hash"));
        // turmoil replays too.
        let (_, t2) = run(scenario, 1, &["--backend", "turmoil"]);
        assert_eq!(field(&t, "trace-hash"), field(&t2, "trace-hash"));
    }
}

fn bad_scenario(name: &str, text: &str) -> (i32, String) {
    let path =
        std::env::temp_dir().join(format!("faultline-bad-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let out = faultline(&["sim", "run", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.code().unwrap_or(-1),
        stderr.replace(path.to_str().unwrap(), "FILE"),
    )
}

/// A copy of a fixture scenario with one mistake: `from` (which must be in
/// the file) replaced by `to`.
fn mistake(base: &str, from: &str, to: &str) -> String {
    assert!(base.contains(from), "the scenario no longer has {from:?}");
    base.replacen(from, to, 1)
}

#[test]
fn malformed_scenarios_exit_2_naming_file_line_and_field() {
    // Frozen copies, so that editing a shipped scenario's comments does not
    // move the line numbers these cases expect.
    let fixtures = root().join("sim/cli/tests/fixtures");
    let good = std::fs::read_to_string(fixtures.join("store-leader-kill.toml")).unwrap();
    let users = std::fs::read_to_string(fixtures.join("node-crash-availability.toml")).unwrap();
    let store = |from: &str, to: &str| mistake(&good, from, to);
    let cp = |from: &str, to: &str| mistake(&users, from, to);
    let cases: Vec<(&str, String, &[&str])> = vec![
        // Not TOML, or not the shape of a scenario.
        ("toml", store("[cluster]", "[cluster"), &["FILE:"]),
        (
            "duplicate-key",
            store("masters = 3", "masters = 3\nmasters = 5"),
            &["FILE:11:1: cluster.masters: duplicate key"],
        ),
        (
            "type",
            store("masters = 3", "masters = \"three\""),
            &["FILE:10:11: cluster.masters: invalid type"],
        ),
        (
            "negative-seed",
            store("seed = 1", "seed = -1"),
            &["FILE:6:8: seed: invalid value: integer `-1`"],
        ),
        (
            "missing",
            store("duration = \"60s\"\n", ""),
            &["missing field `duration`"],
        ),
        (
            "unknown-field",
            store("rate = 100", "rate = 100\nrat = 3"),
            &[
                "workload.rat: unknown field `rat`",
                "; did you mean `rate`?",
            ],
        ),
        (
            "unknown-field-inline-table",
            store("jitter = \"2ms\"", "jiter = \"2ms\""),
            &[
                "cluster.latency: unknown field `jiter`",
                "did you mean `jitter`?",
            ],
        ),
        (
            "unknown-invariant-field",
            cp("at_least = 0.999", "atleast = 0.999"),
            &["invariant[1].atleast: unknown field", "did you mean `at_least`?"],
        ),
        (
            "kind",
            store(
                "kind = \"leader-kill\"\nfor = \"8s\"",
                "kind = \"meteor\"\nfor = \"8s\"",
            ),
            &["fault[1].kind: unknown variant `meteor`"],
        ),
        (
            "invariant-kind",
            store("kind = \"raft-safety\"", "kind = \"raft-safty\""),
            &[
                "FILE:47:8: invariant[3].kind: unknown variant `raft-safty`",
                "did you mean `raft-safety`?",
            ],
        ),
        (
            "nemesis-kind",
            store("\"master-crash\", \"partition\"]", "\"master-crsh\"]"),
            &[
                "nemesis.kinds: unknown variant `master-crsh`",
                "did you mean `master-crash`?",
            ],
        ),
        (
            "expect",
            store("seed = 1", "seed = 1\nexpect = \"fial\""),
            &["expect: unknown variant `fial`, expected `pass` or `fail`; did you mean `fail`?"],
        ),
        // The run as a whole.
        (
            "duration",
            store("duration = \"60s\"", "duration = \"-5s\""),
            &["FILE:5:12: duration: invalid duration"],
        ),
        (
            "zero-duration",
            store("duration = \"60s\"", "duration = \"0s\""),
            &["FILE:5:12: duration: must be positive"],
        ),
        (
            "no-invariants",
            good[..good.find("[[invariant]]").unwrap()].to_string(),
            &["no [[invariant]]: a scenario must check something"],
        ),
        // The cluster.
        (
            "zero-masters",
            store("masters = 3", "masters = 0"),
            &["FILE:10:11: cluster.masters: 0 masters: use 1 to 9"],
        ),
        (
            "too-many-masters",
            store("masters = 3", "masters = 12"),
            &["FILE:10:11: cluster.masters: 12 masters: use 1 to 9"],
        ),
        (
            "no-datacenters",
            store("[\"dc-a\", \"dc-b\", \"dc-c\"]", "[]"),
            &["FILE:9:15: cluster.datacenters: needs at least one datacenter"],
        ),
        (
            "duplicate-datacenters",
            store("[\"dc-a\", \"dc-b\", \"dc-c\"]", "[\"dc-a\", \"dc-b\", \"dc-a\"]"),
            &["FILE:9:15: cluster.datacenters: names must be unique"],
        ),
        // The store workload.
        (
            "workload-rate",
            store("rate = 100", "rate = 200000"),
            &["FILE:15:8: workload.rate: 200000 is not in (0, 100000]"],
        ),
        (
            "workload-keys",
            store("keys = 8", "keys = 0"),
            &["FILE:16:8: workload.keys: must be at least 1"],
        ),
        // Faults.
        (
            "late-fault",
            store("at = \"40s\"", "at = \"90s\""),
            &["fault (power-loss): at = 1m 30s is not before the end"],
        ),
        (
            "zero-for",
            store("for = \"8s\"", "for = \"0s\""),
            &["FILE:18:1: fault (leader-kill): `for` must be positive"],
        ),
        (
            "target",
            store("target = \"leader\"", "target = \"m7\""),
            &["fault (power-loss).target: unknown target \"m7\""],
        ),
        (
            "datacenter-target",
            store(
                "kind = \"leader-kill\"\nfor = \"5s\"",
                "kind = \"datacenter-outage\"\ntarget = \"dc-z\"\nfor = \"5s\"",
            ),
            &["fault (datacenter-outage).target: needs a datacenter as `target` (dc-a, dc-b, dc-c)"],
        ),
        (
            "node-target",
            cp("target = \"random\"", "target = \"n9\""),
            &["FILE:33:1: fault (node-crash).target: unknown target \"n9\""],
        ),
        (
            "partition-group",
            store(
                "kind = \"leader-kill\"\nfor = \"5s\"",
                "kind = \"partition\"\ngroups = [[\"m1\"], [\"m2\", \"m9\"]]\nfor = \"5s\"",
            ),
            &["fault (partition).groups: unknown host or datacenter \"m9\""],
        ),
        (
            "loss-without-probability",
            store(
                "kind = \"leader-kill\"\nfor = \"5s\"",
                "kind = \"loss\"\nfor = \"5s\"",
            ),
            &["fault (loss): needs `probability`"],
        ),
        (
            "overlapping-faults",
            store(
                "kind = \"leader-kill\"\nfor = \"5s\"",
                "kind = \"master-crash\"\ntarget = \"m1\"\nfor = \"20s\"\n\n[[fault]]\nat = \"30s\"\nkind = \"master-crash\"\ntarget = \"m1\"",
            ),
            &["fault (master-crash): overlaps an earlier master-crash on m1"],
        ),
        // The nemesis.
        (
            "nemesis-no-kinds",
            store(
                "kinds = [\"leader-kill\", \"master-crash\", \"partition\"]",
                "kinds = []",
            ),
            &["FILE:36:9: nemesis.kinds: needs at least one kind"],
        ),
        (
            "nemesis-min-over-max",
            store("min_for = \"1s\"", "min_for = \"9s\""),
            &["nemesis: min_for (9s) must be positive and at most max_for (6s)"],
        ),
        (
            "nemesis-max-masters-down",
            store("max_for = \"6s\"", "max_for = \"6s\"\nmax_masters_down = 4"),
            &["nemesis.max_masters_down: 4 is more than the 3 masters"],
        ),
        // Deployments, users and their invariants.
        (
            "deployment-without-nodes",
            format!("{good}\n[[deployment]]\nname = \"web\"\nreplicas = 2\n"),
            &["deployment (web): a deployment needs worker nodes"],
        ),
        (
            "negative-replicas",
            cp("replicas = 6", "replicas = -2"),
            &["FILE:18:1: deployment (web).replicas: must be >= 0"],
        ),
        (
            "traffic-unknown-service",
            cp("service = \"web\"\nrate", "service = \"api\"\nrate"),
            &["FILE:23:1: traffic (api).service: no [[deployment]] named \"api\""],
        ),
        (
            "traffic-rate",
            cp("rate = 100", "rate = 20000"),
            &["traffic (web).rate: 20000 is not in (0, 10000]"],
        ),
        (
            "election-ticks-zero",
            store("[workload]", "[store]\nelection_ticks = 0\n\n[workload]"),
            &["store.election_ticks: 0: use at least 2"],
        ),
        (
            "store-tick-zero",
            store("[workload]", "[store]\ntick = \"0s\"\n\n[workload]"),
            &["store.tick: must be positive"],
        ),
        (
            "schedulers-zero",
            cp("node_grace = \"20s\"", "node_grace = \"20s\"\nschedulers = 0"),
            &["control_plane.schedulers: must be at least 1"],
        ),
        (
            "probability-on-a-crash",
            store(
                "kind = \"leader-kill\"\nfor = \"8s\"",
                "kind = \"leader-kill\"\nfor = \"8s\"\nprobability = 0.5",
            ),
            &["FILE:22:1: fault (leader-kill).probability: only loss takes `probability`"],
        ),
        (
            "delay-on-power-loss",
            store("target = \"leader\"", "target = \"leader\"\ndelay = \"5ms\""),
            &["fault (power-loss).delay: only latency and disk-slow take `delay`"],
        ),
        (
            "bits-on-power-loss",
            store("target = \"leader\"", "target = \"leader\"\nbits = 4"),
            &["fault (power-loss).bits: only disk-corruption takes `bits`"],
        ),
        (
            "zero-bits",
            store("kind = \"power-loss\"", "kind = \"disk-corruption\"\nbits = 0"),
            &["fault (disk-corruption).bits: must be at least 1"],
        ),
        (
            "at-least-on-linearizable",
            store("kind = \"linearizable\"", "kind = \"linearizable\"\nat_least = 0.9"),
            &["invariant (linearizable).at_least: only availability and static-stability take `at_least`"],
        ),
        (
            "within-on-latency",
            cp("below = \"600ms\"", "below = \"600ms\"\nwithin = \"1m\""),
            &["invariant (latency).within: only converges and deployments-ready take `within`"],
        ),
        (
            "below-on-availability",
            cp("at_least = 0.999", "at_least = 0.999\nbelow = \"1s\""),
            &["invariant (availability).below: only latency takes `below`"],
        ),
        (
            "watch-ordered-without-watcher",
            store("keys = 8", "keys = 8\nwatch = false"),
            &["invariant (watch-ordered): checks the workload's watcher, which `watch = false` turns off"],
        ),
        (
            "availability-without-at-least",
            cp("at_least = 0.999\n", ""),
            &["invariant (availability): needs `at_least`"],
        ),
        (
            "availability-unknown-service",
            cp("service = \"web\"\nat_least", "service = \"api\"\nat_least"),
            &["invariant (availability).service: no [[traffic]] to \"api\""],
        ),
    ];
    let mut kinds = std::collections::BTreeSet::new();
    for (name, text, needles) in cases {
        assert!(kinds.insert(name), "two cases named {name}");
        let (code, stderr) = bad_scenario(name, &text);
        assert_eq!(code, 2, "{name}: {stderr}");
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{name}: expected {needle:?} in {stderr:?}"
            );
        }
        assert!(
            stderr.contains("FILE"),
            "{name}: the file is not named: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
    assert!(kinds.len() >= 18);
    let out = faultline(&["sim", "run", "no/such/file.toml"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sim_check_exits_2_on_a_malformed_file_and_0_on_good_ones() {
    let good = std::fs::read_to_string(root().join("scenarios/store-leader-kill.toml")).unwrap();
    let path = std::env::temp_dir().join(format!(
        "faultline-bad-{}-check-masters.toml",
        std::process::id()
    ));
    std::fs::write(&path, mistake(&good, "masters = 3", "masters = 0")).unwrap();
    let bad = path.to_str().unwrap();
    let out = faultline(&["sim", "check", bad]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{bad}:10:11: cluster.masters")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let goods = [
        "scenarios/store-leader-kill.toml",
        "scenarios/node-crash-availability.toml",
    ];
    let out = faultline(&["sim", "check", goods[0], goods[1]]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for g in goods {
        assert!(stdout.contains(&format!("ok: {g}")), "{stdout}");
    }

    // One bad file among good ones: the good ones are still checked.
    let out = faultline(&["sim", "check", goods[0], bad, goods[1]]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches("ok: ").count(),
        2
    );
}

/// `--shard I/N` over one scenario: the two halves together run each seed
/// exactly once, and a shard that does not exist is bad input.
#[test]
fn explore_shards_cover_each_seed_exactly_once() {
    let mut seen: Vec<u64> = Vec::new();
    for shard in ["1/2", "2/2"] {
        let dir = report_dir(&format!("explore-shard-{}", shard.replace('/', "of")));
        let out = faultline(&[
            "sim",
            "explore",
            "scenarios/store-leader-kill.toml",
            "--seeds",
            "1..6",
            "--jobs",
            "1",
            "--shard",
            shard,
            "--report",
            &dir,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{shard}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let header = stdout
            .lines()
            .find(|l| l.starts_with(&format!("shard {shard}: ")))
            .unwrap_or_else(|| panic!("no shard line in:\n{stdout}"));
        // `  scenarios/store-leader-kill.toml: 3 seed(s): 1, 3, 5`
        let listed: Vec<u64> = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("scenarios/store-leader-kill.toml: "))
            .and_then(|l| l.split_once(": "))
            .map(|(_, seeds)| seeds.split(", ").map(|s| s.parse().unwrap()).collect())
            .unwrap_or_else(|| panic!("no seed list in:\n{stdout}"));
        assert!(
            header.contains(&format!("{} of the 5 runs", listed.len())),
            "{stdout}"
        );
        // The table: one row for the scenario, then the total.
        let row: Vec<&str> = stdout
            .lines()
            .find(|l| l.starts_with("store-leader-kill "))
            .unwrap_or_else(|| panic!("no table row in:\n{stdout}"))
            .split_whitespace()
            .collect();
        let n = listed.len().to_string();
        assert_eq!(row[1..5], ["pass", n.as_str(), n.as_str(), "0"], "{stdout}");
        assert!(stdout.lines().any(|l| l.starts_with("total ")), "{stdout}");
        assert!(stdout.contains("runs per hour"), "{stdout}");
        assert!(!stdout.contains("failing seeds:"), "{stdout}");
        // Every listed seed ran: each run leaves its report.
        for seed in &listed {
            let summary = Path::new(&dir)
                .join(format!("store-leader-kill-seed{seed}"))
                .join("summary.json");
            assert!(summary.exists(), "{shard}: seed {seed} did not run");
        }
        seen.extend(listed);
    }
    seen.sort();
    assert_eq!(seen, [1, 2, 3, 4, 5]);

    for bad in ["3/2", "0/2", "1/0", "2", "a/b"] {
        let out = faultline(&[
            "sim",
            "explore",
            "scenarios/store-leader-kill.toml",
            "--seeds",
            "1..6",
            "--shard",
            bad,
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--shard {bad}: {stderr}");
        assert!(stderr.contains("--shard"), "--shard {bad}: {stderr}");
        assert!(out.stdout.is_empty(), "--shard {bad}: ran anyway");
    }
}

/// A failing sweep ends with the table, then every failing seed with the
/// command that reproduces it and its report folder, and exits 1.
#[test]
fn explore_lists_failing_seeds_with_their_reproduce_command() {
    let good = std::fs::read_to_string(root().join("scenarios/store-leader-kill.toml")).unwrap();
    // A sound store, but claimed to be caught: every seed is a failure
    // ("expected a violation but every invariant held").
    let path = std::env::temp_dir().join(format!(
        "faultline-explore-{}-expect-fail.toml",
        std::process::id()
    ));
    std::fs::write(
        &path,
        mistake(&good, "seed = 1", "seed = 1\nexpect = \"fail\""),
    )
    .unwrap();
    let file = path.to_str().unwrap();
    let dir = report_dir("explore-failing");
    let out = faultline(&[
        "sim",
        "explore",
        file,
        "--seeds",
        "1..4",
        "--jobs",
        "2",
        "--keep-going",
        "--report",
        &dir,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let row: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("store-leader-kill "))
        .unwrap_or_else(|| panic!("no table row in:\n{stdout}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1..5], ["fail", "3", "0", "3"], "{stdout}");
    assert!(
        stdout.contains("expected a violation but every invariant held"),
        "{stdout}"
    );
    let listed: Vec<&str> = stdout
        .split("failing seeds:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no failing seeds in:\n{stdout}"))
        .lines()
        .collect();
    let mut seeds = Vec::new();
    for line in listed {
        let (cmd, report) = line
            .trim()
            .split_once("    report: ")
            .unwrap_or_else(|| panic!("{line}"));
        let seed = cmd
            .strip_prefix(&format!("faultline sim run {file} --seed "))
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!(
            Path::new(report),
            Path::new(&dir).join(format!(
                "{}-seed{seed}",
                path.file_stem().unwrap().to_string_lossy()
            ))
        );
        assert!(Path::new(report).join("summary.json").exists(), "{line}");
        seeds.push(seed.parse::<u64>().unwrap());
    }
    seeds.sort();
    assert_eq!(seeds, [1, 2, 3], "{stdout}");
}

/// `--from`/`--to` keep only the trace lines inside the window (and imply
/// `--trace`); a bad time names its flag.
#[test]
fn trace_window_prints_only_lines_inside_it() {
    let times = |stdout: &str| -> Vec<f64> {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix("trace: "))
            .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
            .collect()
    };
    let scenario = "scenarios/store-leader-kill.toml";
    let (code, all) = run(scenario, 2, &["--trace"]);
    assert_eq!(code, 0, "{all}");
    let all = times(&all);
    assert!(all.iter().any(|&t| t < 10.0) && all.iter().any(|&t| t > 20.0));
    for extra in [
        &["--trace", "--from", "10s", "--to", "20s"][..],
        &["--from", "10s", "--to", "20s"],
    ] {
        let (code, out) = run(scenario, 2, extra);
        assert_eq!(code, 0, "{out}");
        let window = times(&out);
        assert!(!window.is_empty(), "{extra:?}: no trace lines:\n{out}");
        assert!(
            window.iter().all(|t| (10.0..=20.0).contains(t)),
            "{extra:?}: {window:?}"
        );
        let expected: Vec<f64> = all
            .iter()
            .copied()
            .filter(|t| (10.0..=20.0).contains(t))
            .collect();
        assert_eq!(window, expected, "{extra:?}");
        assert_eq!(field(&out, "verdict"), "pass");
    }
    let (_, from) = run(scenario, 2, &["--from", "1m"]);
    let from = times(&from);
    assert!(
        !from.is_empty() && from.iter().all(|&t| t >= 60.0),
        "{from:?}"
    );

    for (args, flag) in [
        (&["--from", "soon"][..], "--from"),
        (&["--trace", "--to=-5s"], "--to"),
        (&["--from", "20s", "--to", "10s"], "--from"),
    ] {
        let mut all = vec!["sim", "run", scenario];
        all.extend_from_slice(args);
        let out = faultline(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn sim_check_accepts_every_shipped_scenario() {
    let mut files: Vec<String> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .map(|e| format!("scenarios/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|f| f.ends_with(".toml"))
        .collect();
    files.sort();
    let mut args = vec!["sim", "check"];
    args.extend(files.iter().map(String::as_str));
    // The files one by one, and the folder, which stands for its files.
    for args in [args, vec!["sim", "check", "scenarios"]] {
        let out = faultline(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.matches("ok: ").count(), files.len(), "{stdout}");
    }
}

/// The scale scenarios are too big for CI's sweeps; they still must load.
#[test]
fn sim_check_accepts_the_scale_scenarios() {
    let out = faultline(&["sim", "check", "scenarios/scale"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("ok: scenarios/scale/scale-1k.toml"),
        "{stdout}"
    );
}

/// `sim shrink` on the known-to-fail nemesis scenario: the schedule the
/// seed drew (14 faults) shrinks to at most a few that still lose
/// acknowledged writes, and the written file replays bit for bit.
#[test]
fn shrink_leaves_a_few_faults_that_still_fail_the_same_way() {
    let out_file =
        std::env::temp_dir().join(format!("faultline-shrunk-{}.toml", std::process::id()));
    let out_path = out_file.display().to_string();
    let out = faultline(&[
        "sim",
        "shrink",
        "scenarios/store-bug-nemesis.toml",
        "--seed",
        "3",
        "--invariant",
        "no-lost-writes",
        "--out",
        &out_path,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = field(&stdout, "shrunk");
    let (left, rest) = line.split_once(" of ").expect("`N of M faults`");
    let left: usize = left.parse().unwrap();
    let drawn: usize = rest.split_whitespace().next().unwrap().parse().unwrap();
    assert!((1..=3).contains(&left), "{line}");
    assert!(drawn > 5, "{line}");
    let text = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(text.matches("[[fault]]").count(), left, "{text}");
    assert!(!text.contains("[nemesis]"), "{text}");
    let (code_a, a) = run(&out_path, 3, &[]);
    let (code_b, b) = run(&out_path, 3, &[]);
    assert_eq!((code_a, code_b), (1, 1), "{a}");
    assert!(a.contains("[FAIL] no-lost-writes"), "{a}");
    assert_eq!(field(&a, "trace-hash"), field(&b, "trace-hash"));
    // A seed that does not violate the invariant asked for is bad input.
    let out = faultline(&[
        "sim",
        "shrink",
        "scenarios/store-leader-kill.toml",
        "--seed",
        "1",
        "--out",
        &out_path,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not fail"));
}

#[test]
fn turmoil_refuses_faults_it_has_no_model_for() {
    let path = std::env::temp_dir().join(format!("faultline-pause-{}.toml", std::process::id()));
    let text = std::fs::read_to_string(root().join("scenarios/store-process-pause.toml")).unwrap();
    std::fs::write(&path, text).unwrap();
    let out = faultline(&["sim", "run", path.to_str().unwrap(), "--backend", "turmoil"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no model for pause"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
