//! The `faultline` binary end to end: the run contract, determinism across
//! processes, bad input, and proof that the checkers catch broken stores.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("running faultline")
}

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
    assert!(junit.contains("tests=\"5\" failures=\"0\""), "{junit}");
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

#[test]
fn malformed_scenarios_exit_2_naming_file_line_and_field() {
    let good = std::fs::read_to_string(root().join("scenarios/store-leader-kill.toml")).unwrap();
    let cases = [
        (
            "type",
            good.replace("masters = 3", "masters = \"three\""),
            "FILE:10:11: cluster.masters: invalid type",
        ),
        (
            "kind",
            good.replace(
                "kind = \"leader-kill\"\nfor = \"8s\"",
                "kind = \"meteor\"\nfor = \"8s\"",
            ),
            "fault[1].kind: unknown variant `meteor`",
        ),
        (
            "unknown-field",
            good.replace("rate = 100", "rate = 100\nrat = 3"),
            "unknown field",
        ),
        (
            "duration",
            good.replace("duration = \"60s\"", "duration = \"-5s\""),
            "invalid duration",
        ),
        (
            "late-fault",
            good.replace("at = \"40s\"", "at = \"90s\""),
            "not before the end",
        ),
        (
            "target",
            good.replace("target = \"leader\"", "target = \"m7\""),
            "unknown target \"m7\"",
        ),
        ("toml", good.replace("[cluster]", "[cluster"), "FILE:"),
        (
            "missing",
            good.replace("duration = \"60s\"\n", ""),
            "duration",
        ),
    ];
    for (name, text, needle) in cases {
        let (code, stderr) = bad_scenario(name, &text);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{name}: expected {needle:?} in {stderr:?}"
        );
        assert!(
            stderr.contains("FILE"),
            "{name}: the file is not named: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
    let out = faultline(&["sim", "run", "no/such/file.toml"]);
    assert_eq!(out.status.code(), Some(2));
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
    let out = faultline(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
