//! The sweep's page: the facts, the scenarios, the failing and the
//! expected failing runs, and the two charts of [`super::plot`].

use maud::{html, Markup, PreEscaped};

use super::plot::{css, invariant_svg, palette, wall_svg, EXPECTED_COLOR, FAILED_COLOR};
use super::{SweepReport, SweepRun};
use crate::format::{hms, utc};

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
                        span style={ "color:" (css(palette(k))) } { (DOT) }
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

#[cfg(test)]
mod tests {
    use super::super::tests::{sample, svg_text};
    use super::*;

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
}
