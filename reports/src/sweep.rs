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
use maud::{html, Markup, PreEscaped};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};

use crate::format::{hms, utc};

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

const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
.pass{color:#1a7f37}.fail{color:#c62828}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
tr.bad td{background:#fdecea}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}dd{margin:0}
code{background:#f4f4f4;padding:.1em .3em;border-radius:3px;word-break:break-all}
svg{max-width:100%;height:auto}
.muted{color:#666}
";

/// The sweep's page: one self-contained HTML document.
pub fn html(report: &SweepReport) -> anyhow::Result<String> {
    let failing: Vec<&SweepRun> = report.failing().collect();
    let expected: Vec<&SweepRun> = report
        .runs
        .iter()
        .filter(|r| r.ok && r.verdict == "fail")
        .collect();
    let verdict = report.verdict.as_str();
    let class = if verdict == "pass" { "pass" } else { "fail" };
    let invariants = invariant_svg(report)?;
    let wall = if report.runs.is_empty() {
        None
    } else {
        Some(wall_svg(report)?)
    };
    let body = html! {
        h1 { "Sweep: " span class=(class) { (verdict.to_uppercase()) } }
        (facts(report, &failing, class))

        h2 { "Scenarios" }
        table {
            tr {
                th { "scenario" } th { "file" } th { "expect" } th { "runs" }
                th { "passed" } th { "failed" } th { "mean wall" }
            }
            @for t in &report.scenarios {
                tr class=[(t.failed > 0).then_some("bad")] {
                    td { (t.name) }
                    td { code { (t.path) } }
                    td { (t.expect) }
                    td class="n" { (t.runs) }
                    td class="n" { (t.passed) }
                    td class="n" { (t.failed) }
                    td class="n" {
                        @match t.mean_wall_s {
                            Some(s) => (format_args!("{s:.2} s")),
                            None => "-",
                        }
                    }
                }
            }
        }

        h2 { "Failing seeds (" (failing.len()) ")" }
        @if failing.is_empty() {
            p class="pass" { "Every run ended as expected." }
        } @else {
            (run_table(&failing))
        }
        @if !expected.is_empty() {
            details {
                summary {
                    "Expected failures (" (expected.len()) "): "
                    "scenarios that must be caught, and were"
                }
                (run_table(&expected))
            }
        }

        h2 { "Invariants that failed" }
        @match &invariants {
            Some(svg) => {
                p class="muted" {
                    "Runs in which each invariant was violated: "
                    span style={ "color:" (css(FAILED_COLOR)) } { (SQUARE) }
                    " failed, not as expected; "
                    span style={ "color:" (css(EXPECTED_COLOR)) } { (SQUARE) }
                    " expected failures (" code { "expect = \"fail\"" } ")."
                }
                (PreEscaped(svg))
            }
            None => p { "No invariant failed." },
        }

        h2 { "Wall time per seed" }
        @match &wall {
            None => p { "No run finished." },
            Some(svg) => {
                p class="muted" {
                    "Wall seconds of each run, one colour per scenario; "
                    span style={ "color:" (css(FAILED_COLOR)) } { (CROSS) }
                    " marks a run that did not end as expected."
                }
                // The legend is on the page: inside the plot it would
                // cover points.
                p {
                    @for (k, t) in report.scenarios.iter().enumerate() {
                        span style={ "color:" (css(PALETTE[k % PALETTE.len()])) } { (DOT) }
                        " " (t.name) " " span class="muted" { "(" (t.path) ")" } " " (NBSP) " "
                    }
                }
                (PreEscaped(svg))
            }
        }
    };
    Ok(crate::html::page(
        &format!("Sweep {} — {}", report.seeds, verdict.to_uppercase()),
        CSS,
        "width=device-width, initial-scale=1",
        body,
    ))
}

// The marks in the page's legends, as character references.
const SQUARE: PreEscaped<&str> = PreEscaped("&#9632;");
const CROSS: PreEscaped<&str> = PreEscaped("&#10005;");
const DOT: PreEscaped<&str> = PreEscaped("&#9679;");
const NBSP: PreEscaped<&str> = PreEscaped("&nbsp;");

/// The sweep at a glance: seeds, shard, runs, wall time, verdict.
fn facts(report: &SweepReport, failing: &[&SweepRun], class: &str) -> Markup {
    let finished = report.runs.len();
    let per_run = report.runs.iter().map(|r| r.wall_seconds).sum::<f64>() / finished.max(1) as f64;
    html! {
        dl {
            dt { "seeds" } dd { code { (report.seeds) } }
            dt { "shard" } dd { (report.shard.as_deref().unwrap_or("none (every run)")) }
            dt { "runs" }
            dd {
                (finished) " finished"
                @if finished < report.planned_runs {
                    (format_args!(
                        " of {} planned ({} not started: the sweep stopped at the first failure)",
                        report.planned_runs,
                        report.planned_runs - finished
                    ))
                }
            }
            dt { "passed" } dd { (finished - failing.len()) " (as expected)" }
            dt { "failed" }
            dd {
                span class=(if failing.is_empty() { "pass" } else { "fail" }) { (failing.len()) }
                " (not as expected)"
            }
            dt { "wall time" }
            dd {
                (hms(report.elapsed_s))
                (format_args!(" ({} at a time, {per_run:.2} s per run)", report.jobs))
            }
            dt { "runs per hour" } dd { (format_args!("{:.0}", report.runs_per_hour())) }
            dt { "started" } dd { (utc(report.started_unix_s)) }
            dt { "verdict" } dd { span class=(class) { (report.verdict) } }
        }
    }
}

/// A table of runs: scenario, seed, how it ended, its report and the
/// command that replays it.
fn run_table(runs: &[&SweepRun]) -> Markup {
    html! {
        table {
            tr {
                th { "scenario" } th { "seed" } th { "exit" } th { "invariants violated / reason" }
                th { "wall" } th { "report" } th { "reproduce" }
            }
            @for r in runs {
                tr {
                    td { (r.scenario) }
                    td class="n" { (r.seed) }
                    td class="n" {
                        @match r.exit_code {
                            Some(c) => (c),
                            None => "signal",
                        }
                    }
                    td {
                        @if r.failed_invariants.is_empty() {
                            (text(&r.reason))
                        } @else {
                            (r.failed_invariants.join(", "))
                            br;
                            span class="muted" { (text(&r.reason)) }
                        }
                    }
                    td class="n" { (format_args!("{:.2} s", r.wall_seconds)) }
                    td {
                        @match (&r.page, &r.report) {
                            (Some(page), _) => a href=(page) { (page) },
                            (None, Some(dir)) => { code { (dir) } " (data only)" },
                            (None, None) => "none (the run ended early)",
                        }
                    }
                    td { code { (r.reproduce) } }
                }
            }
        }
    }
}

/// A child's own words as a page shows them: without terminal colour
/// codes or other control characters (tabs and line ends stay).
fn text(s: &str) -> String {
    strip_ansi_escapes::strip_str(s)
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect()
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plotting the sweep: {e}")
}

const FAILED_COLOR: RGBColor = RGBColor(200, 40, 40);
const EXPECTED_COLOR: RGBColor = RGBColor(240, 150, 40);

/// One colour per scenario in the wall-time chart (Tableau 10 without its
/// red, which marks failures).
const PALETTE: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn css(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// Violations per invariant name: (name, in runs that failed not as
/// expected, in expected failures), most violated first.
fn invariant_counts(report: &SweepReport) -> Vec<(String, u32, u32)> {
    let mut counts: std::collections::BTreeMap<&str, (u32, u32)> = Default::default();
    for r in &report.runs {
        for name in &r.failed_invariants {
            let c = counts.entry(name).or_default();
            if r.ok {
                c.1 += 1;
            } else {
                c.0 += 1;
            }
        }
    }
    let mut out: Vec<(String, u32, u32)> = counts
        .into_iter()
        .map(|(n, (bad, expected))| (n.to_string(), bad, expected))
        .collect();
    out.sort_by(|a, b| (b.1 + b.2).cmp(&(a.1 + a.2)).then(a.0.cmp(&b.0)));
    out
}

/// A horizontal bar per violated invariant, most violated on top, stacked:
/// runs that failed not as expected, then expected failures (the page
/// carries the legend: inside the plot it would cover the longest bar).
/// None when no invariant failed.
fn invariant_svg(report: &SweepReport) -> anyhow::Result<Option<String>> {
    let counts = invariant_counts(report);
    if counts.is_empty() {
        return Ok(None);
    }
    let rows = counts.len() as f64;
    let max = counts.iter().map(|c| c.1 + c.2).max().unwrap_or(1);
    let name_chars = counts.iter().map(|c| c.0.chars().count()).max();
    let label_w = (name_chars.unwrap_or(8) as u32 * 7 + 20).min(400);
    let height = 80 + 32 * counts.len() as u32;
    // Row i (most violated first) is the band [rows - i - 1, rows - i] of
    // the y axis, so the first row is on top.
    let center = |i: usize| rows - i as f64 - 0.5;
    crate::charts::fonts();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(label_w)
            .build_cartesian_2d(0f64..f64::from(max + max.div_ceil(8)), 0f64..rows)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("runs violating it")
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .x_labels(max.min(10) as usize + 1)
            .x_label_formatter(&|x| {
                if x.fract().abs() < 1e-9 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(err)?;
        let bar = |i: usize, from: u32, to: u32, color: RGBColor| {
            Rectangle::new(
                [
                    (f64::from(from), center(i) - 0.35),
                    (f64::from(to), center(i) + 0.35),
                ],
                color.filled(),
            )
        };
        chart
            .draw_series(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.1 > 0)
                    .map(|(i, c)| bar(i, 0, c.1, FAILED_COLOR)),
            )
            .map_err(err)?;
        chart
            .draw_series(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.2 > 0)
                    .map(|(i, c)| bar(i, c.1, c.1 + c.2, EXPECTED_COLOR)),
            )
            .map_err(err)?;
        let style = |h: HPos| {
            ("sans-serif", 13)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(h, VPos::Center))
        };
        chart
            .draw_series(counts.iter().enumerate().map(|(i, c)| {
                Text::new(
                    format!(" {}", c.1 + c.2),
                    (f64::from(c.1 + c.2), center(i)),
                    style(HPos::Left),
                )
            }))
            .map_err(err)?;
        // The names go left of the plot, in pixels: a mesh label would
        // land wherever the axis puts its ticks, not on the bars.
        for (i, c) in counts.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(0.0, center(i)));
            root.draw(&Text::new(c.0.clone(), (x - 8, y), style(HPos::Right)))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(Some(svg))
}

/// Wall seconds of each run by seed, one colour per scenario (the page
/// carries the legend); a cross marks a run that did not end as expected.
fn wall_svg(report: &SweepReport) -> anyhow::Result<String> {
    let seed_min = report.runs.iter().map(|r| r.seed).min().unwrap_or(0) as f64;
    let seed_max = report.runs.iter().map(|r| r.seed).max().unwrap_or(0) as f64;
    let pad = ((seed_max - seed_min) * 0.03).max(0.5);
    let wall_max = report
        .runs
        .iter()
        .map(|r| r.wall_seconds)
        .fold(0.1, f64::max)
        * 1.15;
    crate::charts::fonts();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(seed_min - pad..seed_max + pad, 0f64..wall_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seed")
            .y_desc("wall seconds")
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .x_label_formatter(&|x| {
                if x.fract().abs() < 1e-9 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            })
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for (k, t) in report.scenarios.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let mut pts: Vec<(f64, f64, bool)> = report
                .runs
                .iter()
                .filter(|r| r.path == t.path)
                .map(|r| (r.seed as f64, r.wall_seconds, r.ok))
                .collect();
            if pts.is_empty() {
                continue;
            }
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, p.1)),
                    color.mix(0.5).stroke_width(1),
                ))
                .map_err(err)?;
            chart
                .draw_series(
                    pts.iter()
                        .map(|p| Circle::new((p.0, p.1), 3, color.filled())),
                )
                .map_err(err)?;
            chart
                .draw_series(
                    pts.iter()
                        .filter(|p| !p.2)
                        .map(|p| Cross::new((p.0, p.1), 6, FAILED_COLOR.stroke_width(2))),
                )
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(scenario: &str, seed: u64, expect: &str, ok: bool, failed: &[&str]) -> SweepRun {
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

    fn tally(name: &str, expect: &str, runs: &[SweepRun]) -> ScenarioTally {
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
    fn sample() -> SweepReport {
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
    fn svg_text(svg: &str, s: &str) -> bool {
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
    fn page_escapes_and_links_the_failing_seed_with_its_reproduce_command() {
        let h = html(&sample()).unwrap();
        assert!(h.starts_with("<!DOCTYPE html>"));
        assert!(!h.contains("b<a>d&"), "unescaped scenario name");
        assert!(
            h.contains("<a href=\"b&lt;a&gt;d&amp;-seed2/index.html\">"),
            "no link to the failing run"
        );
        assert!(
            h.contains("<code>faultline sim run scenarios/b&lt;a&gt;d&amp;.toml --seed 2</code>")
        );
        assert!(h.contains("lost &quot;x&quot; &amp; &lt;y&gt;"));
        // Self-contained: no scripts, nothing fetched.
        assert!(!h.contains("<script"));
        assert!(!h.contains("src=\"http"));
        assert!(!h.contains("<link"));
        // The histogram names both invariants; the wall chart's legend
        // every scenario, in its colour.
        let svgs = h.matches("<svg").count();
        assert_eq!(svgs, 2, "two charts");
        for s in ["no-lost-writes", "linearizable"] {
            assert!(svg_text(&h, s), "histogram lacks {s}");
        }
        for s in ["good", "caught", "b&lt;a&gt;d&amp;", "never"] {
            assert!(
                h.contains(&format!("&#9679;</span> {s} ")),
                "legend lacks {s}"
            );
        }
        assert!(h.contains("Sweep: <span class=\"fail\">FAIL</span>"));
        assert!(h.contains("6 finished of 8 planned"));
        assert!(h.contains("2023-11-14 22:13:20 UTC"));
    }

    #[test]
    fn a_childs_colour_codes_stay_off_the_page() {
        let mut s = sample();
        let r = s.runs.iter_mut().find(|r| !r.ok).unwrap();
        r.failed_invariants.clear();
        r.reason = "\u{1b}[31mERROR\u{1b}[0m the cluster\u{7} panicked".into();
        let h = html(&s).unwrap();
        assert!(h.contains("<td>ERROR the cluster panicked</td>"), "{h}");
    }

    #[test]
    fn a_clean_sweep_says_no_invariant_failed() {
        let mut s = sample();
        s.runs.retain(|r| r.failed_invariants.is_empty());
        s.verdict = "pass".into();
        let h = html(&s).unwrap();
        assert!(h.contains("No invariant failed."));
        assert!(h.contains("Every run ended as expected."));
        assert_eq!(h.matches("<svg").count(), 1);
    }

    #[test]
    fn one_violated_invariant_gets_one_bar() {
        let mut s = sample();
        s.runs.retain(|r| r.scenario != "caught");
        let svg = invariant_svg(&s).unwrap().expect("a chart");
        assert!(svg_text(&svg, "linearizable"), "{svg}");
        assert!(!svg.contains("no-lost-writes"), "{svg}");
    }

    #[test]
    fn invariants_are_counted_per_run_split_by_expectation() {
        assert_eq!(
            invariant_counts(&sample()),
            [
                ("linearizable".to_string(), 1, 1),
                ("no-lost-writes".to_string(), 0, 2)
            ]
        );
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
