//! The run report: `faultline sim run` writes a page, charts and machine
//! outputs for a passing and a failing run; `faultline report` redraws
//! them and compares two runs.

use std::path::{Path, PathBuf};

mod common;
use common::faultline;

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "faultline-report-test-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `scenario` at `seed` into a fresh report folder; returns the folder
/// and the exit code.
fn run(scenario: &str, seed: u64, name: &str) -> (PathBuf, i32) {
    let dir = fresh_dir(name);
    let out = faultline(&[
        "sim",
        "run",
        scenario,
        "--seed",
        &seed.to_string(),
        "--report",
        dir.to_str().unwrap(),
    ]);
    (dir, out.status.code().unwrap_or(-1))
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
}

/// The invariants of a summary.json: (name, holds).
fn invariants(dir: &Path) -> Vec<(String, bool)> {
    let v: serde_json::Value = serde_json::from_str(&read(dir, "summary.json")).unwrap();
    v["invariants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["holds"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Checks the JUnit file parses as XML and has one test case per
/// invariant, failing exactly where the invariant was violated, each
/// failure carrying the reproduce command.
fn check_junit(dir: &Path, reproduce: &str) {
    let xml = read(dir, "junit.xml");
    let doc = roxmltree::Document::parse(&xml).expect("junit.xml is well-formed XML");
    let cases: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let invs = invariants(dir);
    assert_eq!(cases.len(), invs.len(), "one test case per invariant");
    for (case, (name, holds)) in cases.iter().zip(&invs) {
        assert_eq!(case.attribute("name"), Some(name.as_str()));
        let failure = case.children().find(|n| n.has_tag_name("failure"));
        assert_eq!(failure.is_none(), *holds, "{name}");
        if let Some(f) = failure {
            assert!(f.text().unwrap_or("").contains(reproduce), "{name}");
        }
    }
}

fn check_page(dir: &Path) -> String {
    let html = read(dir, "index.html");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    for fetch in ["src=", "href=\"http", "url(", "@import"] {
        assert!(!html.contains(fetch), "the page fetches nothing ({fetch})");
    }
    assert!(!html.contains("<script"), "no scripts");
    assert!(html.contains("<svg"), "charts inline as SVG");
    html
}

#[test]
fn a_failing_run_report_names_the_violated_invariant_and_the_reproduce_command() {
    let (dir, code) = run("scenarios/single-replica-node-crash.toml", 1, "fail");
    assert_eq!(code, 1, "the scenario is expected to fail");
    let html = check_page(&dir);
    let reproduce = "faultline sim run scenarios/single-replica-node-crash.toml --seed 1";
    assert!(html.contains(reproduce));
    let violated: Vec<String> = invariants(&dir)
        .into_iter()
        .filter(|(_, holds)| !holds)
        .map(|(n, _)| n)
        .collect();
    assert!(!violated.is_empty());
    for name in &violated {
        assert!(
            html.contains(&format!("<td>{name}</td>")) && html.contains("VIOLATED"),
            "the page names {name} as violated"
        );
    }
    check_junit(&dir, reproduce);
    for png in [
        "faults.png",
        "availability-web.png",
        "latency-web.png",
        "pods-per-node.png",
        "pods-per-datacenter.png",
        "node-readiness.png",
        "store-leaders.png",
        "apiserver-requests.png",
    ] {
        let bytes = std::fs::read(dir.join(png)).unwrap_or_else(|e| panic!("{png}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{png} is a PNG");
    }
    let faults = read(&dir, "faults.toml");
    assert!(faults.contains("[[fault]]") && faults.contains("kind = \"node-crash\""));
}

#[test]
fn a_passing_run_report_lists_every_invariant_as_held() {
    let (dir, code) = run("scenarios/store-leader-kill.toml", 1, "pass");
    assert_eq!(code, 0);
    let html = check_page(&dir);
    let invs = invariants(&dir);
    assert!(invs.iter().all(|(_, holds)| *holds));
    assert_eq!(html.matches(">held</td>").count(), invs.len());
    assert!(!html.contains("VIOLATED"));
    check_junit(&dir, "unused: nothing fails");
    assert!(dir.join("store-clients.png").exists());

    // Redrawn from summary.json alone.
    for f in ["index.html", "store-clients.png"] {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    let out = faultline(&["report", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(check_page(&dir), html, "the same page again");
    assert!(dir.join("store-clients.png").exists());

    // Side by side with a different seed.
    let (other, _) = run("scenarios/store-leader-kill.toml", 2, "pass2");
    let cmp = fresh_dir("compare");
    let out = faultline(&[
        "report",
        "--compare",
        dir.to_str().unwrap(),
        other.to_str().unwrap(),
        "--out",
        cmp.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = check_page(&cmp);
    assert!(page.contains("store-leader-kill seed 1") && page.contains("store-leader-kill seed 2"));

    // A folder without data is bad input.
    let out = faultline(&["report", cmp.join("nothing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no summary.json or sweep.json"));
}
