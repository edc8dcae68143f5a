//! The sweep report of `faultline sim explore`: `sweep.json` (the data,
//! [`SweepReport`]), `index.html` (a self-contained page: tables, links to
//! the failing runs' reports, and two inline SVG charts) and `junit.xml`
//! (one test case per failing run and per scenario without one).
//!
//! The data comes first: [`write_sweep`] writes `sweep.json` and then
//! draws the page and the JUnit file from it, the same way
//! [`render_sweep_dir`] redraws them later from a `sweep.json` alone.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

mod page;
mod plot;
pub use page::html;

/// A whole sweep (or one shard of it): what ran, how each run ended, and
/// the tally per scenario. Serialized as `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// The `--seeds` argument, e.g. `1..101`.
    pub seeds: String,
    /// `I/N` when this sweep was shard I of N.
    pub shard: Option<String>,
    /// When the sweep started, seconds since the Unix epoch.
    pub started_unix_s: f64,
    /// Wall seconds from the first run started to the last one finished.
    pub elapsed_s: f64,
    /// Runs at a time.
    pub jobs: usize,
    /// Runs this sweep (or shard) had to do; `runs` holds fewer when it
    /// stopped at the first failure.
    pub planned_runs: usize,
    /// `pass` when every planned run ended as expected, else `fail`.
    pub verdict: String,
    /// One per scenario file, in the order they were given.
    pub scenarios: Vec<ScenarioTally>,
    /// Every finished run, scenario by scenario, seed by seed.
    pub runs: Vec<SweepRun>,
}

/// What one scenario's runs came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioTally {
    pub name: String,
    /// The scenario file.
    pub path: String,
    /// What the file expects: `pass` or `fail`.
    pub expect: String,
    /// Runs finished; `passed + failed`.
    pub runs: usize,
    /// Runs that ended as expected.
    pub passed: usize,
    /// Runs that did not.
    pub failed: usize,
    /// Mean wall seconds per finished run (None when none finished).
    pub mean_wall_s: Option<f64>,
}

/// One scenario at one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRun {
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file.
    pub path: String,
    pub seed: u64,
    /// What the file expects: `pass` or `fail`.
    pub expect: String,
    /// The child's exit code: 0 pass, 1 invariant violated, 2 bad input,
    /// anything else a crash; None when a signal killed it.
    pub exit_code: Option<i32>,
    /// True when the run ended as expected (a pass, or a violation in a
    /// scenario that expects one).
    pub ok: bool,
    /// `pass` or `fail` from the run's summary.json; `bad-input` or
    /// `crash` when it wrote none.
    pub verdict: String,
    /// Wall seconds of the child process, start to exit.
    pub wall_seconds: f64,
    /// Names of the invariants the run violated.
    pub failed_invariants: Vec<String>,
    /// Why the run failed (empty for a pass): the violated invariants'
    /// details, or the child's own words when it wrote no summary.
    pub reason: String,
    /// The run's report folder relative to the sweep folder
    /// (`NAME-seedN`); None when the run wrote no summary.json.
    pub report: Option<String>,
    /// The run's page relative to the sweep folder
    /// (`NAME-seedN/index.html`), for the runs whose report was drawn
    /// (failures, expected or not).
    pub page: Option<String>,
    /// The command that replays this run bit for bit.
    pub reproduce: String,
}

impl SweepReport {
    /// The runs that did not end as expected.
    pub fn failing(&self) -> impl Iterator<Item = &SweepRun> {
        self.runs.iter().filter(|r| !r.ok)
    }

    /// Runs per hour of wall time at this sweep's pace.
    pub fn runs_per_hour(&self) -> f64 {
        self.runs.len() as f64 / self.elapsed_s.max(1e-9) * 3600.0
    }
}

/// Writes `sweep.json`, `index.html` and `junit.xml` into `dir`.
pub fn write_sweep(report: &SweepReport, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(dir.join("sweep.json"), json + "\n")
        .with_context(|| format!("writing {}/sweep.json", dir.display()))?;
    render(report, dir)
}

/// Reads `dir/sweep.json` and redraws `index.html` and `junit.xml` from it
/// (what `faultline report DIR` does for a sweep folder).
pub fn render_sweep_dir(dir: &Path) -> anyhow::Result<SweepReport> {
    let path = dir.join("sweep.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let report: SweepReport =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    render(&report, dir)?;
    Ok(report)
}

/// Merges the shards of one sweep (the folders `faultline sim explore
/// --shard I/N --report DIR` wrote, one per shard) into `out`: one
/// `sweep.json`, page and JUnit file over every run, with each run's folder
/// copied from its shard, so `out` stands on its own.
///
/// The shards must have the same `seeds` and the same N, each shard at most
/// once. With every shard present the result is the whole sweep (no
/// `shard`); otherwise `shard` names the ones present, like `1,3/4`.
pub fn merge(shards: &[&Path], out: &Path) -> anyhow::Result<SweepReport> {
    let mut parts = Vec::new();
    for dir in shards {
        let path = dir.join("sweep.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let part: SweepReport =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        parts.push((*dir, part));
    }
    let merged = merge_reports(
        &parts
            .iter()
            .map(|(d, p)| (d.display().to_string(), p))
            .collect::<Vec<_>>(),
    )?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (dir, part) in &parts {
        for run in part.runs.iter() {
            if let Some(folder) = &run.report {
                let from = dir.join(folder);
                if from.is_dir() {
                    copy_dir(&from, &out.join(folder))?;
                }
            }
        }
    }
    write_sweep(&merged, out)?;
    Ok(merged)
}

/// The data side of [`merge`]: `parts` are (where it came from, shard).
fn merge_reports(parts: &[(String, &SweepReport)]) -> anyhow::Result<SweepReport> {
    let Some((first_at, first)) = parts.first() else {
        anyhow::bail!("no shards to merge");
    };
    let shard_of = |at: &str, r: &SweepReport| -> anyhow::Result<(usize, usize)> {
        let s = r.shard.as_deref().ok_or_else(|| {
            anyhow::anyhow!("{at}: a whole sweep, not a shard (it was run without --shard)")
        })?;
        let (i, n) = s
            .split_once('/')
            .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)))
            .ok_or_else(|| anyhow::anyhow!("{at}: shard {s:?} is not I/N"))?;
        Ok((i, n))
    };
    let (_, n) = shard_of(first_at, first)?;
    let mut present = std::collections::BTreeSet::new();
    for (at, r) in parts {
        if r.seeds != first.seeds {
            anyhow::bail!(
                "{at}: seeds {} differ from {first_at}'s {}: not shards of one sweep",
                r.seeds,
                first.seeds
            );
        }
        let (i, m) = shard_of(at, r)?;
        if m != n {
            anyhow::bail!("{at}: shard {i}/{m}, but {first_at} is one of {n} shards");
        }
        if !present.insert(i) {
            anyhow::bail!("{at}: shard {i}/{n} is given twice");
        }
    }
    // Scenarios in the order the shards list them (each shard lists every
    // scenario of the sweep, run or not).
    let mut scenarios: Vec<ScenarioTally> = Vec::new();
    for (_, r) in parts {
        for t in &r.scenarios {
            match scenarios.iter_mut().find(|m| m.path == t.path) {
                Some(m) => {
                    let wall = |t: &ScenarioTally| t.mean_wall_s.unwrap_or(0.0) * t.runs as f64;
                    let total = wall(m) + wall(t);
                    m.runs += t.runs;
                    m.passed += t.passed;
                    m.failed += t.failed;
                    m.mean_wall_s = (m.runs > 0).then(|| total / m.runs as f64);
                }
                None => scenarios.push(t.clone()),
            }
        }
    }
    let order = |path: &str| scenarios.iter().position(|t| t.path == path);
    let mut runs: Vec<SweepRun> = parts.iter().flat_map(|(_, r)| r.runs.clone()).collect();
    runs.sort_by_key(|r| (order(&r.path), r.seed));
    for pair in runs.windows(2) {
        if pair[0].path == pair[1].path && pair[0].seed == pair[1].seed {
            anyhow::bail!(
                "{} seed {} is in two shards: they overlap",
                pair[0].path,
                pair[0].seed
            );
        }
    }
    let start = parts
        .iter()
        .map(|(_, r)| r.started_unix_s)
        .fold(f64::INFINITY, f64::min);
    let end = parts
        .iter()
        .map(|(_, r)| r.started_unix_s + r.elapsed_s)
        .fold(f64::NEG_INFINITY, f64::max);
    let all = present.len() == n && present.iter().copied().eq(1..=n);
    Ok(SweepReport {
        seeds: first.seeds.clone(),
        shard: (!all).then(|| {
            let ids: Vec<String> = present.iter().map(|i| i.to_string()).collect();
            format!("{}/{n}", ids.join(","))
        }),
        started_unix_s: start,
        elapsed_s: end - start,
        jobs: parts.iter().map(|(_, r)| r.jobs).sum(),
        planned_runs: parts.iter().map(|(_, r)| r.planned_runs).sum(),
        verdict: if parts.iter().all(|(_, r)| r.verdict == "pass") {
            "pass".into()
        } else {
            "fail".into()
        },
        scenarios,
        runs,
    })
}

/// Copies a run's report folder (files only; run folders have no
/// subfolders).
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

fn render(report: &SweepReport, dir: &Path) -> anyhow::Result<()> {
    std::fs::write(dir.join("index.html"), html(report)?)
        .with_context(|| format!("writing {}/index.html", dir.display()))?;
    std::fs::write(dir.join("junit.xml"), junit(report))
        .with_context(|| format!("writing {}/junit.xml", dir.display()))?;
    Ok(())
}

/// JUnit XML: one test suite for the sweep; one test case per run that did
/// not end as expected, its failure message naming the violated invariants
/// (or the reason) and the reproduce command; one per scenario with no
/// failing run (skipped when none of its runs finished).
pub fn junit(report: &SweepReport) -> String {
    crate::junit::sweep(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn run(
        scenario: &str,
        seed: u64,
        expect: &str,
        ok: bool,
        failed: &[&str],
    ) -> SweepRun {
        let verdict = if failed.is_empty() { "pass" } else { "fail" };
        let report = format!("{scenario}-seed{seed}");
        SweepRun {
            scenario: scenario.into(),
            path: format!("scenarios/{scenario}.toml"),
            seed,
            expect: expect.into(),
            exit_code: Some(i32::from(verdict == "fail")),
            ok,
            verdict: verdict.into(),
            wall_seconds: 1.0 + seed as f64 / 10.0,
            failed_invariants: failed.iter().map(|s| s.to_string()).collect(),
            reason: if ok {
                String::new()
            } else {
                format!("{} violated: lost \"x\" & <y>", failed.join(", "))
            },
            page: (verdict == "fail").then(|| format!("{report}/index.html")),
            report: Some(report),
            reproduce: format!("faultline sim run scenarios/{scenario}.toml --seed {seed}"),
        }
    }

    pub(super) fn tally(name: &str, expect: &str, runs: &[SweepRun]) -> ScenarioTally {
        let mine: Vec<&SweepRun> = runs.iter().filter(|r| r.scenario == name).collect();
        let passed = mine.iter().filter(|r| r.ok).count();
        ScenarioTally {
            name: name.into(),
            path: format!("scenarios/{name}.toml"),
            expect: expect.into(),
            runs: mine.len(),
            passed,
            failed: mine.len() - passed,
            mean_wall_s: (!mine.is_empty())
                .then(|| mine.iter().map(|r| r.wall_seconds).sum::<f64>() / mine.len() as f64),
        }
    }

    /// Two scenarios pass (one of them by failing as expected), one fails
    /// at seed 2 with a name that needs escaping, one never ran.
    pub(super) fn sample() -> SweepReport {
        let runs = vec![
            run("good", 1, "pass", true, &[]),
            run("good", 2, "pass", true, &[]),
            run("caught", 1, "fail", true, &["no-lost-writes"]),
            run(
                "caught",
                2,
                "fail",
                true,
                &["no-lost-writes", "linearizable"],
            ),
            run("b<a>d&", 1, "pass", true, &[]),
            run("b<a>d&", 2, "pass", false, &["linearizable"]),
        ];
        SweepReport {
            seeds: "1..3".into(),
            shard: None,
            started_unix_s: 1_700_000_000.0,
            elapsed_s: 4.5,
            jobs: 2,
            planned_runs: 8,
            verdict: "fail".into(),
            scenarios: vec![
                tally("good", "pass", &runs),
                tally("caught", "fail", &runs),
                tally("b<a>d&", "pass", &runs),
                tally("never", "pass", &runs),
            ],
            runs,
        }
    }

    /// Checks that `x` is well formed: every tag closed in order, attribute
    /// values quoted, no raw `<` or stray `&` in text or attributes.
    /// Returns the element names in document order.
    fn well_formed(x: &str) -> Vec<String> {
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let mut rest = x;
        if let Some(i) = rest.find("?>") {
            assert!(rest.starts_with("<?xml "), "no XML declaration");
            rest = &rest[i + 2..];
        }
        let check_text = |t: &str| {
            for (i, _) in t.match_indices('&') {
                let ent = &t[i..t[i..].find(';').map_or(t.len(), |j| i + j + 1)];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&apos;"].contains(&ent),
                    "bad entity {ent:?} in {t:?}"
                );
            }
            assert!(t.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'));
        };
        while let Some(open) = rest.find('<') {
            check_text(&rest[..open]);
            let close = rest[open..].find('>').expect("unclosed tag") + open;
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "raw < inside tag {tag:?}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
            } else {
                let self_closing = tag.ends_with('/');
                let body = tag.trim_end_matches('/');
                let (name, attrs) = body.split_once(' ').unwrap_or((body, ""));
                // Attributes: name="value" pairs.
                let mut a = attrs.trim();
                while !a.is_empty() {
                    let (_, v) = a.split_once("=\"").unwrap_or_else(|| panic!("{tag}"));
                    let end = v.find('"').unwrap_or_else(|| panic!("{tag}"));
                    check_text(&v[..end]);
                    a = v[end + 1..].trim_start();
                }
                names.push(name.to_string());
                if !self_closing {
                    stack.push(name.to_string());
                }
            }
            rest = &rest[close + 1..];
        }
        check_text(rest);
        assert!(stack.is_empty(), "unclosed {stack:?}");
        names
    }

    /// Whether an SVG (plotters writes each text on a line of its own)
    /// shows `s`.
    pub(super) fn svg_text(svg: &str, s: &str) -> bool {
        svg.contains(&format!(">\n{s}\n</text>"))
    }

    #[test]
    fn junit_is_well_formed_with_a_case_per_failing_run_and_clean_scenario() {
        let x = junit(&sample());
        let names = well_formed(&x);
        assert_eq!(names.iter().filter(|n| *n == "testsuite").count(), 1);
        // One failing run + "good", "caught" and "never" without failures.
        assert_eq!(names.iter().filter(|n| *n == "testcase").count(), 4);
        assert_eq!(names.iter().filter(|n| *n == "failure").count(), 1);
        assert_eq!(names.iter().filter(|n| *n == "skipped").count(), 1);
        let doc = roxmltree::Document::parse(&x).unwrap();
        let suite = doc.descendants().find(|n| n.has_tag_name("testsuite"));
        let count = |a: &str| suite.unwrap().attribute(a);
        assert_eq!(
            (count("tests"), count("failures"), count("skipped")),
            (Some("4"), Some("1"), Some("1")),
            "{x}"
        );
        assert!(x.contains("name=\"b&lt;a&gt;d&amp; seed 2\""), "{x}");
        assert!(x.contains("message=\"violated: linearizable\""), "{x}");
        assert!(
            x.contains("reproduce: faultline sim run scenarios/b&lt;a&gt;d&amp;.toml --seed 2"),
            "{x}"
        );
        assert!(x.contains("name=\"good (2 seeds)\""), "{x}");
        assert!(x.contains("name=\"caught (2 seeds)\""), "{x}");
        assert!(x.contains("name=\"never (0 seeds)\""), "{x}");
        assert!(!x.contains("good seed"), "{x}");
    }
    #[test]
    fn sweep_json_round_trips_and_redraws() {
        let dir = std::env::temp_dir().join(format!("faultline-sweep-test-{}", std::process::id()));
        let s = sample();
        write_sweep(&s, &dir).unwrap();
        std::fs::remove_file(dir.join("index.html")).unwrap();
        let back = render_sweep_dir(&dir).unwrap();
        assert_eq!(back, s);
        assert!(dir.join("index.html").exists());
        well_formed(&std::fs::read_to_string(dir.join("junit.xml")).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `sample()` cut into shard `k` of 2 (every other run), as
    /// `sim explore --shard` would have written it.
    fn shard(full: &SweepReport, k: usize) -> SweepReport {
        let runs: Vec<SweepRun> = full.runs.iter().skip(k).step_by(2).cloned().collect();
        SweepReport {
            shard: Some(format!("{}/2", k + 1)),
            started_unix_s: full.started_unix_s + k as f64,
            elapsed_s: 3.0,
            jobs: 2,
            planned_runs: 4,
            verdict: if runs.iter().all(|r| r.ok) {
                "pass"
            } else {
                "fail"
            }
            .into(),
            scenarios: full
                .scenarios
                .iter()
                .map(|t| tally(&t.name, &t.expect, &runs))
                .collect(),
            runs,
            ..full.clone()
        }
    }

    #[test]
    fn shards_merge_into_the_whole_sweep() {
        let full = sample();
        let (a, b) = (shard(&full, 0), shard(&full, 1));
        // Given in either order.
        for parts in [[&a, &b], [&b, &a]] {
            let parts: Vec<(String, &SweepReport)> = parts
                .iter()
                .map(|p| (p.shard.clone().unwrap(), *p))
                .collect();
            let m = merge_reports(&parts).unwrap();
            assert_eq!(m.shard, None);
            assert_eq!(
                m.runs, full.runs,
                "every run, scenario by scenario, seed by seed"
            );
            assert_eq!(m.verdict, "fail");
            assert_eq!((m.jobs, m.planned_runs), (4, 8));
            assert_eq!(m.started_unix_s, full.started_unix_s);
            assert_eq!(m.elapsed_s, 4.0, "first start to last end");
            let mut tallies = m.scenarios.clone();
            tallies.sort_by(|x, y| x.path.cmp(&y.path));
            let mut expected = full.scenarios.clone();
            expected.sort_by(|x, y| x.path.cmp(&y.path));
            assert_eq!(tallies, expected);
        }
        // One shard alone is a partial sweep, and says so.
        let m = merge_reports(&[("b".into(), &b)]).unwrap();
        assert_eq!(m.shard.as_deref(), Some("2/2"));
    }

    #[test]
    fn merging_rejects_what_is_not_one_sweeps_shards() {
        let full = sample();
        let (a, b) = (shard(&full, 0), shard(&full, 1));
        let err = |parts: &[(&str, &SweepReport)]| {
            let parts: Vec<(String, &SweepReport)> =
                parts.iter().map(|(n, p)| (n.to_string(), *p)).collect();
            merge_reports(&parts).unwrap_err().to_string()
        };
        assert!(err(&[]).contains("no shards"));
        assert!(err(&[("a", &a), ("a2", &a)]).contains("a2: shard 1/2 is given twice"));
        assert!(err(&[("all", &full)]).contains("all: a whole sweep, not a shard"));
        let other_seeds = SweepReport {
            seeds: "1..5".into(),
            ..b.clone()
        };
        assert!(err(&[("a", &a), ("b", &other_seeds)]).contains("b: seeds 1..5 differ"));
        let of_three = SweepReport {
            shard: Some("2/3".into()),
            ..b.clone()
        };
        assert!(err(&[("a", &a), ("b", &of_three)]).contains("one of 2 shards"));
        let mut overlapping = b.clone();
        overlapping.runs.push(a.runs[0].clone());
        assert!(err(&[("a", &a), ("b", &overlapping)]).contains("seed 1 is in two shards"));
    }
}
