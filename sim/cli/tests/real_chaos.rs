//! `faultline real`: scenario files played against real clusters in Docker
//! containers, with real faults, judged by the simulator's checkers.
//!
//! They need the Docker daemon and root (packet filter rules are set in the
//! containers' network namespaces); without them they say so and pass,
//! unless `FAULTLINE_REQUIRE_DOCKER=1` (as CI sets it).
#![allow(clippy::disallowed_methods)] // real processes, real time

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{faultline, root};

/// The tests here look at everything labelled `faultline.real` on the
/// machine: one at a time.
static DOCKER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    DOCKER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether this machine can do real runs (or the test must fail saying why).
fn can_run_real(test: &str) -> bool {
    let required = std::env::var("FAULTLINE_REQUIRE_DOCKER").as_deref() == Ok("1");
    let docker = Command::new("docker")
        .args(["info", "-f", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if docker && root {
        return true;
    }
    assert!(
        !required,
        "FAULTLINE_REQUIRE_DOCKER=1 but docker answers: {docker}, root: {root}"
    );
    eprintln!("{test}: no Docker daemon or not root: skipped");
    false
}

/// What real runs left on the machine: containers, networks, images.
fn leftovers() -> String {
    let mut out = String::new();
    for args in [
        &[
            "ps",
            "-a",
            "--filter",
            "label=faultline.real",
            "--format",
            "{{.Names}}",
        ][..],
        &[
            "network",
            "ls",
            "--filter",
            "label=faultline.real",
            "--format",
            "{{.Name}}",
        ],
        &[
            "images",
            "--filter",
            "label=faultline.real",
            "--format",
            "{{.Repository}}:{{.Tag}}",
        ],
    ] {
        let o = Command::new("docker").args(args).output().expect("docker");
        out.push_str(&String::from_utf8_lossy(&o.stdout));
    }
    out
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn every_fault_kind_runs_for_real_or_is_refused_before_anything_starts() {
    let _docker = one_at_a_time();
    let out = faultline(&["real", "kinds"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    let real: Vec<&str> = listed
        .lines()
        .filter(|l| l.contains(" real: "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let refused: Vec<&str> = listed
        .lines()
        .filter(|l| l.contains(" refused: "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    eprintln!("real: {real:?}\nrefused: {refused:?}");
    assert_eq!(
        real.len() + refused.len(),
        listed.lines().count(),
        "{listed}"
    );
    for kind in [
        "master-crash",
        "leader-kill",
        "node-crash",
        "datacenter-outage",
        "controller-leader-kill",
        "pause",
        "kubelet-restart",
        "partition",
        "partition-one-way",
        "node-isolate",
        "datacenter-partition",
        "loss",
        "disk-loss",
    ] {
        assert!(real.contains(&kind), "{kind} runs for real: {listed}");
    }
    for kind in [
        "power-loss",
        "disk-corruption",
        "disk-full",
        "disk-eio",
        "disk-slow",
        "clock-skew",
        "clock-jump",
    ] {
        assert!(refused.contains(&kind), "{kind} is refused: {listed}");
    }

    // A scenario with a refused kind (here only drawn by its nemesis) is
    // refused with exit 2 naming it, before anything is created.
    let dir = std::env::temp_dir().join(format!("faultline-real-refused-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("refused.toml");
    let scenario = std::fs::read_to_string(root().join("scenarios/real/master-failover.toml"))
        .unwrap()
        + "\n[nemesis]\nevery = \"10s\"\nkinds = [\"master-crash\", \"clock-skew\"]\n";
    std::fs::write(&file, scenario).unwrap();
    let before = leftovers();
    let out = faultline(&["real", "run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fault kind `clock-skew` cannot be done for real")
            && err.contains("wall clock"),
        "{err}"
    );
    assert!(!err.contains("master-crash"), "{err}");
    if can_run_real("refusal") {
        assert_eq!(leftovers(), before, "a refused run creates nothing");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `faultline real run ARGS`, checks it left nothing behind, and
/// returns its output.
fn real_run(args: &[&str]) -> std::process::Output {
    let mut all = vec!["real", "run"];
    all.extend_from_slice(args);
    let started = Instant::now();
    let out = faultline(&all);
    eprintln!(
        "faultline {} ({:.0}s):\n{}",
        all.join(" "),
        started.elapsed().as_secs_f64(),
        text(&out)
    );
    out
}

/// The real runs, one after another (each stands up three masters and
/// three nodes: two at once would share two cores).
#[test]
fn real_runs_pass_bite_and_leave_nothing_behind() {
    let _docker = one_at_a_time();
    if !can_run_real("real runs") {
        return;
    }
    let reports =
        std::env::temp_dir().join(format!("faultline-real-reports-{}", std::process::id()));
    let report = |name: &str| reports.join(name).display().to_string();

    // A node container killed under user load and started again.
    let out = real_run(&[
        "scenarios/real/node-crash.toml",
        "--no-charts",
        "--report",
        &report("node-crash"),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("node-crash         n"),
        "a node was crashed: {t}"
    );
    assert!(t.contains("[ok] availability"), "{t}");
    assert!(
        t.contains("trace-hash: none (a real run is not bit-reproducible)"),
        "{t}"
    );
    // The user waited for every node before applying the deployment, so
    // the crash took a share of the pods, not all or none of them.
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(reports.join("node-crash/summary.json")).unwrap(),
    )
    .unwrap();
    for n in summary["nodes"].as_array().unwrap() {
        let before_fault = n["pods"][40].as_u64().unwrap();
        assert!(before_fault > 0, "pods spread over every node: {n}");
    }
    assert_eq!(leftovers(), "", "the run removed everything");

    // The store leader killed, then a master partitioned away, during a
    // rollout.
    let out = real_run(&[
        "scenarios/real/master-failover.toml",
        "--no-charts",
        "--report",
        &report("master-failover"),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("[ok] no-lost-writes"), "{t}");
    assert!(t.contains("partition          {m"), "{t}");
    assert_eq!(leftovers(), "", "the run removed everything");

    // Every other kind a real run does, one after another: each done
    // without error (else `faults-done` fails the run), and the cluster
    // serves through them and converges.
    let out = real_run(&[
        "scenarios/real/fault-tour.toml",
        "--no-charts",
        "--report",
        &report("fault-tour"),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for kind in [
        "pause",
        "kubelet-restart",
        "node-isolate",
        "disk-loss",
        "loss",
        "controller-leader-kill",
        "datacenter-partition",
        "datacenter-outage",
    ] {
        assert!(t.contains(&format!("  {kind} ")), "{kind} was done: {t}");
    }
    assert_eq!(leftovers(), "", "the run removed everything");

    // A deliberate bug: the checker bites, on the right invariant. Kept,
    // then removed by `faultline real clean` as leftovers of a run that
    // is over.
    let out = real_run(&[
        "scenarios/real/bug-unchecked-binding.toml",
        "--no-charts",
        "--keep",
        "--report",
        &report("bug"),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("[FAIL] single-binding"), "{t}");
    assert!(t.contains("[ok] no-overcommit"), "{t}");
    assert!(
        t.contains(
            "reproduce: faultline real run scenarios/real/bug-unchecked-binding.toml --seed 1"
        ),
        "{t}"
    );
    assert_ne!(leftovers(), "", "--keep kept the containers");
    let out = faultline(&["real", "clean"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("removed 6 containers, 1 networks, 1 images"),
        "{}",
        text(&out)
    );
    assert_eq!(leftovers(), "");

    // Ctrl-C in the middle of a run removes everything too.
    let child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "real",
            "run",
            "scenarios/real/node-crash.toml",
            "--no-charts",
        ])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("faultline real run");
    let deadline = Instant::now() + Duration::from_secs(120);
    while leftovers().lines().count() < 6 + 1 + 1 {
        assert!(Instant::now() < deadline, "the run never stood up");
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().expect("waiting for the run");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(text(&out).contains("interrupted"), "{}", text(&out));
    assert_eq!(leftovers(), "", "Ctrl-C removed everything");
    let _ = std::fs::remove_dir_all(&reports);
}

/// Seed 266685 of the fault tour, simulated, once found the controller
/// manager's leader keeping its lease through a datacenter partition (its
/// renewal hung until the partition healed, then landed), acting on caches
/// that stood still meanwhile: it marked the nodes that had heartbeated all
/// along as unknown and evicted their pods. A renewal must now succeed
/// within the renew deadline or the leader steps down.
#[test]
fn a_cut_off_leader_steps_down_before_acting_on_a_stale_view() {
    let out = faultline(&[
        "sim",
        "run",
        "scenarios/real/fault-tour.toml",
        "--seed",
        "266685",
        "--no-charts",
        "--report",
        &std::env::temp_dir()
            .join(format!("faultline-tour-266685-{}", std::process::id()))
            .display()
            .to_string(),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("[ok] converges"), "{t}");
}
