//! The sweep report of `faultline sim explore` end to end: one short sweep
//! over a scenario that must be caught and one that must pass, then
//! `sweep.json`, `index.html`, `junit.xml` and the run reports checked.

use std::path::Path;

mod common;
use common::faultline;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Sweeps both scenarios over seeds 1 and 2 into `dir`, with `extra`
/// arguments (jobs, shard).
fn explore(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "sim",
        "explore",
        "scenarios/store-bug-nemesis.toml",
        "scenarios/store-leader-kill.toml",
        "--seeds",
        "1..3",
        "--keep-going",
        "--report",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    faultline(&args)
}

/// `sweep.json`'s runs, checked to be every run of [`explore`], scenario by
/// scenario, seed by seed.
fn all_runs(json: &serde_json::Value) -> &Vec<serde_json::Value> {
    let runs = json["runs"].as_array().unwrap();
    let keys: Vec<(&str, u64)> = runs
        .iter()
        .map(|r| (r["scenario"].as_str().unwrap(), r["seed"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [
            ("store-bug-nemesis", 1),
            ("store-bug-nemesis", 2),
            ("store-leader-kill", 1),
            ("store-leader-kill", 2)
        ]
    );
    runs
}

/// Both scenarios end as expected at seeds 1 and 2 (store-bug-nemesis
/// expects a violation and gets one), so the sweep passes; the expected
/// failures still get their reports drawn and linked.
#[test]
fn sweep_writes_json_page_and_junit() {
    let dir = std::env::temp_dir().join(format!("faultline-sweep-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = explore(&dir, &["--jobs", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "sweep report: {}",
            dir.join("index.html").display()
        )),
        "{stdout}"
    );
    // Not a terminal: plain progress lines, no bar.
    assert!(
        stdout.contains("progress: 4/4 seeds done, 0 failed"),
        "{stdout}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");

    // sweep.json
    let json: serde_json::Value = serde_json::from_str(&read(&dir.join("sweep.json"))).unwrap();
    assert_eq!(json["seeds"], "1..3");
    assert_eq!(json["shard"], serde_json::Value::Null);
    assert_eq!(json["jobs"], 2);
    assert_eq!(json["planned_runs"], 4);
    assert_eq!(json["verdict"], "pass");
    let scenarios = json["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["store-bug-nemesis", "store-leader-kill"]);
    assert_eq!(scenarios[0]["expect"], "fail");
    for s in scenarios {
        assert_eq!(
            (&s["runs"], &s["passed"], &s["failed"]),
            (&2.into(), &2.into(), &0.into())
        );
        assert!(s["mean_wall_s"].as_f64().unwrap() > 0.0);
    }
    let runs = all_runs(&json);
    for r in runs {
        let name = format!(
            "{}-seed{}",
            r["scenario"].as_str().unwrap(),
            r["seed"].as_u64().unwrap()
        );
        let run_dir = dir.join(&name);
        assert_eq!(r["ok"], true, "{r}");
        assert!(r["wall_seconds"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r["report"], name.as_str(), "{r}");
        assert!(run_dir.join("summary.json").exists(), "{name}: no summary");
        assert!(
            r["reproduce"]
                .as_str()
                .unwrap()
                .starts_with("faultline sim run scenarios/"),
            "{r}"
        );
        if r["scenario"] == "store-bug-nemesis" {
            // Caught, as it must be: the run's report was drawn.
            assert_eq!(
                (&r["exit_code"], &r["verdict"]),
                (&1.into(), &"fail".into())
            );
            assert!(
                !r["failed_invariants"].as_array().unwrap().is_empty(),
                "{r}"
            );
            assert_eq!(r["page"], format!("{name}/index.html").as_str(), "{r}");
            assert!(
                run_dir.join("index.html").exists(),
                "{name}: report not drawn"
            );
        } else {
            // Children write data only: no page for a clean pass.
            assert_eq!(
                (&r["exit_code"], &r["verdict"]),
                (&0.into(), &"pass".into())
            );
            assert_eq!(r["page"], serde_json::Value::Null, "{r}");
            assert!(!run_dir.join("index.html").exists(), "{name}: page drawn");
        }
    }

    // index.html
    let html = read(&dir.join("index.html"));
    assert!(
        html.contains("Sweep: <span class=\"pass\">PASS</span>"),
        "{html}"
    );
    assert!(html.contains("Every run ended as expected."));
    assert!(html.contains("<a href=\"store-bug-nemesis-seed1/index.html\">"));
    assert!(html.contains("faultline sim run scenarios/store-bug-nemesis.toml --seed 2"));
    assert_eq!(html.matches("<svg").count(), 2, "histogram and wall chart");
    assert!(!html.contains("<script"));

    // junit.xml: no failing run, so one test case per scenario.
    let junit = read(&dir.join("junit.xml"));
    assert!(junit.starts_with("<?xml"));
    assert_eq!(junit.matches("<testsuite ").count(), 1, "{junit}");
    assert_eq!(junit.matches("<testcase ").count(), 2, "{junit}");
    // Parsed, not matched: the writer self-closes a test case with nothing
    // inside (`<testcase .../>`) and orders the counts its own way.
    let doc = roxmltree::Document::parse(&junit).expect("junit.xml is well-formed XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 2, "{junit}");
    assert!(
        cases.iter().all(|c| !c.children().any(|n| n.is_element())),
        "passing cases are empty: {junit}"
    );
    assert!(!junit.contains("<failure"), "{junit}");
    assert!(
        junit.contains("name=\"store-bug-nemesis (2 seeds)\""),
        "{junit}"
    );
    assert!(
        junit.contains("name=\"store-leader-kill (2 seeds)\""),
        "{junit}"
    );
    assert_eq!(
        (suite.attribute("tests"), suite.attribute("failures")),
        (Some("2"), Some("0")),
        "{junit}"
    );

    let _ = std::fs::remove_dir_all(&dir);
}

/// Two shards of one sweep, merged by `faultline report --merge`: one
/// report over every run, with the runs' folders copied along.
#[test]
fn shards_merge_into_one_report() {
    let base = std::env::temp_dir().join(format!("faultline-sweep-shards-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let shard = |i: usize| {
        let dir = base.join(format!("shard{i}"));
        let out = explore(&dir, &["--jobs", "1", "--shard", &format!("{i}/2")]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        dir
    };
    let (a, b) = (shard(1), shard(2));
    let merged = base.join("merged");
    let out = faultline(&[
        "report",
        "--merge",
        merged.to_str().unwrap(),
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stdout.contains("merged 2 shard(s): 4 runs, 0 failed, verdict pass"),
        "{stdout}"
    );
    let json: serde_json::Value = serde_json::from_str(&read(&merged.join("sweep.json"))).unwrap();
    assert_eq!(json["shard"], serde_json::Value::Null);
    assert_eq!(json["planned_runs"], 4);
    let runs = all_runs(&json);
    for r in runs {
        let folder = merged.join(r["report"].as_str().unwrap());
        assert!(folder.join("summary.json").exists(), "{}", folder.display());
        if let Some(page) = r["page"].as_str() {
            assert!(merged.join(page).exists(), "{page}");
        }
    }
    assert!(read(&merged.join("index.html")).contains("none (every run)"));
    roxmltree::Document::parse(&read(&merged.join("junit.xml"))).unwrap();

    // The same shard twice is refused, naming it.
    let out = faultline(&[
        "report",
        "--merge",
        merged.to_str().unwrap(),
        a.to_str().unwrap(),
        a.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shard 1/2 is given twice"));
    std::fs::remove_dir_all(&base).unwrap();
}
