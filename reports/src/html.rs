//! The run report as one self-contained HTML page (inline CSS, charts as
//! inline SVG, no scripts, nothing fetched), and two runs side by side.
//!
//! The pages are maud templates: every value spliced in is escaped, and
//! only the charts' SVG and the CSS go in as they are.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::charts::Chart;
use crate::format::pct;
use crate::Summary;

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1060px;padding:16px 20px;color:#1d2329;background:#fff}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #d8dee4;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
td,th{border:1px solid #d8dee4;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f7}
table.kv th{width:170px}
code,pre{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:12.5px;background:#f3f5f7;border-radius:4px}
code{padding:1px 4px}pre{padding:8px;overflow-x:auto}
.verdict{display:inline-block;padding:3px 12px;border-radius:12px;font-weight:600;color:#fff;font-size:14px;vertical-align:middle}
.pass{background:#2c8a3e}.fail{background:#c62828}
td.pass,td.fail{color:#fff;font-weight:600;text-align:center}
.note{color:#57606a;font-size:13px}
.chart svg{max-width:100%;height:auto;display:block;margin:6px 0}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.pair .chart svg{width:100%}
";

/// A whole page (the sweep's too): `<!DOCTYPE html>`, a head with
/// `title`, the `viewport` meta tag and `style`, and `body`.
pub(crate) fn page(title: &str, style: &str, viewport: &str, body: Markup) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content=(viewport);
                title { (title) }
                style { (PreEscaped(style)) }
            }
            body { (body) }
        }
    };
    page.into_string() + "\n"
}

/// A page of this module, in its style.
fn run_style_page(title: &str, body: Markup) -> String {
    page(title, STYLE, "width=device-width,initial-scale=1", body)
}

fn secs(x: f64) -> String {
    if x >= 120.0 {
        format!("{:.0}s ({}m{:02}s)", x, x as u64 / 60, x as u64 % 60)
    } else {
        format!("{x:.1}s")
    }
}

fn badge(verdict: &str) -> Markup {
    let class = if verdict == "pass" { "pass" } else { "fail" };
    html! { span class={ "verdict " (class) } { (verdict.to_uppercase()) } }
}

/// The verdict as the reader should take it: an expected failure that
/// failed is a success of the checker.
fn verdict_note(s: &Summary) -> &'static str {
    match (s.expect.as_str(), s.verdict.as_str()) {
        ("fail", "fail") => " (expected: this scenario proves a checker catches a real problem)",
        ("fail", _) => " (UNEXPECTED: this scenario is marked expect = \"fail\")",
        _ => "",
    }
}

/// An inline SVG chart, with a link to its PNG.
fn chart(svg: &str, stem: &str) -> Markup {
    let png = format!("{stem}.png");
    html! {
        div class="chart" id={ "chart-" (stem) } {
            (PreEscaped(svg))
            div class="note" { a href=(png) { (png) } }
        }
    }
}

/// The run report page; `charts` are the SVGs of [`Chart::all`].
pub fn run_page(s: &Summary, charts: &[(Chart, String)]) -> String {
    let svg = |want: &Chart| -> Markup {
        match charts.iter().find(|(c, _)| c == want) {
            Some((c, svg)) => chart(svg, &c.stem(s)),
            None => html! {},
        }
    };
    let note = verdict_note(s);
    let speed = s.simulated_seconds / s.wall_seconds.max(1e-9);
    let body = html! {
        h1 { (s.scenario) " " (badge(&s.verdict)) }
        div class="note" { (note) }
        table class="kv" {
            tr { th { "scenario" } td { (s.path) } }
            tr { th { "seed" } td { (s.seed) } }
            tr { th { "verdict" } td { (s.verdict) (note) } }
            @if s.backend == "real" {
                tr {
                    th { "ran" }
                    td {
                        (secs(s.simulated_seconds)) " of real time against containers, "
                        (s.events) " observations read from their logs, backend real"
                    }
                }
            } @else {
                tr { th { "simulated" } td { (secs(s.simulated_seconds)) } }
                tr {
                    th { "wall time" }
                    td {
                        (format_args!("{:.2}s ({speed:.0}x real time), ", s.wall_seconds))
                        (s.events) " events, backend " (s.backend)
                    }
                }
            }
            tr { th { "trace hash" } td { code { (s.trace_hash) } } }
            tr { th { "reproduce" } td { code { (s.reproduce) } } }
        }

        h2 id="invariants" { "Invariants" }
        table {
            tr { th { "invariant" } th { "kind" } th { "verdict" } th { "when" } th { "detail" } }
            @for i in &s.invariants {
                @let (class, word) = if i.holds { ("pass", "held") } else { ("fail", "VIOLATED") };
                tr {
                    td { (i.name) }
                    td { (i.kind) }
                    td class=(class) { (word) }
                    td { @if let Some(t) = i.at_s { (format_args!("{t:.3}s")) } }
                    td { (i.detail) }
                }
            }
        }

        h2 id="faults" { "Faults" }
        (svg(&Chart::Faults))
        @if !s.faults.is_empty() {
            table {
                tr {
                    th { "kind" } th { "where" } th { "from" } th { "to" }
                    th { "source" } th { "detail" }
                }
                @for f in &s.faults {
                    tr {
                        td { (f.kind) }
                        td { (f.target) }
                        td { (format_args!("{:.1}s", f.start_s)) }
                        td {
                            @match f.end_s {
                                Some(e) => (format_args!("{e:.1}s")),
                                None => (format_args!("healed at {:.1}s", s.faulty_phase_s)),
                            }
                        }
                        td { (f.source) }
                        td { (f.detail) }
                    }
                }
            }
            div class="note" {
                "The same schedule as scenario " code { "[[fault]]" } " tables: "
                a href="faults.toml" { "faults.toml" }
                ". Everything still broken heals at the end of the faulty phase; \
                 the vertical line marks it."
            }
        }

        @if !s.services.is_empty() {
            h2 id="services" { "Services" }
        }
        @for (i, svc) in s.services.iter().enumerate() {
            (service(svc))
            (svg(&Chart::Availability(i)))
            (svg(&Chart::Latency(i)))
            (unavailable(svc))
        }

        @if !s.nodes.is_empty() {
            h2 id="cluster" { "Cluster" }
            (svg(&Chart::PodsPerNode))
            (svg(&Chart::PodsPerDatacenter))
            (svg(&Chart::Readiness))
        }

        h2 id="control-plane" { "Control plane" }
        div class="note" {
            (s.leaders.len()) " store leader(s) elected."
            @if !s.control_plane_down.is_empty() {
                " Control plane down (no quorum reachable from the nodes; grey in the API chart): "
                (s.control_plane_down
                    .iter()
                    .map(|(a, b)| format!("{a:.1}s – {b:.1}s"))
                    .collect::<Vec<_>>()
                    .join(", "))
                "."
            }
        }
        (svg(&Chart::Leaders))
        (svg(&Chart::Api))
        @if charts.iter().any(|(c, _)| *c == Chart::StoreClients) {
            @let st = &s.stats;
            h2 id="store-clients" { "Store clients" }
            div class="note" {
                (st.ops_ok) " operations ok, " (st.ops_failed) " failed, "
                (st.ops_unknown) " unknown (timed out); "
                (st.set_acknowledged) " set adds acknowledged, " (st.set_lost) " lost; "
                (st.watch_events) " watch events."
            }
            (svg(&Chart::StoreClients))
        }
        h2 id="files" { "Files" }
        div class="note" {
            a href="summary.json" { "summary.json" } " · "
            a href="junit.xml" { "junit.xml" } " · "
            a href="faults.toml" { "faults.toml" }
            " · PNG of every chart beside this page"
        }
    };
    run_style_page(
        &format!("{} seed {} — {}", s.scenario, s.seed, s.verdict),
        body,
    )
}

/// A service's figures: requests, availability, latency, and availability
/// by the users' datacenter.
fn service(svc: &crate::ServiceReport) -> Markup {
    html! {
        h3 { (svc.service) }
        table class="kv" {
            tr { th { "requests" } td { (svc.requests) " (" (svc.ok) " succeeded)" } }
            tr {
                th { "availability" }
                td {
                    (pct(svc.availability))
                    @if let Some(x) = svc.slo { " (SLO " (pct(x)) ")" }
                }
            }
            tr {
                th { "latency" }
                td { (format_args!("p50 {:.1} ms, p99 {:.1} ms", svc.p50_ms, svc.p99_ms)) }
            }
            tr { th { "pods answering" } td { (svc.pods_answering) } }
        }
        @if !svc.by_datacenter.is_empty() {
            table {
                tr { th { "users in" } th { "requests" } th { "availability" } th { "p99" } }
                @for d in &svc.by_datacenter {
                    tr {
                        td { (d.datacenter) }
                        td { (d.requests) }
                        td { (pct(d.availability)) }
                        td { (format_args!("{:.1} ms", d.p99_ms)) }
                    }
                }
            }
        }
    }
}

/// The windows in which a service's requests failed (the first 50).
fn unavailable(svc: &crate::ServiceReport) -> Markup {
    const SHOWN: usize = 50;
    html! {
        @if svc.unavailable.is_empty() {
            div class="note" { "No request failed." }
        } @else {
            table {
                tr { th { "unavailable" } th { "failed" } th { "faults in force" } }
                @for w in svc.unavailable.iter().take(SHOWN) {
                    tr {
                        td { (format_args!("{:.1}s – {:.1}s", w.start_s, w.end_s)) }
                        td { (format_args!("{} of {}", w.failed, w.total)) }
                        td { (w.faults.join(", ")) }
                    }
                }
            }
            @if svc.unavailable.len() > SHOWN {
                div class="note" {
                    (svc.unavailable.len() - SHOWN) " more windows in summary.json."
                }
            }
        }
    }
}

/// Two runs side by side (`faultline report --compare A B`); `a_href`
/// and `b_href` lead to their own pages.
pub fn compare_page(
    a: &Summary,
    b: &Summary,
    a_href: &str,
    b_href: &str,
    charts: &[(Chart, Option<String>, Option<String>)],
) -> String {
    let name = |s: &Summary| format!("{} seed {}", s.scenario, s.seed);
    // (what, A's cell, B's cell): a row is marked where they differ.
    let mut rows: Vec<(String, Markup, Markup)> = Vec::new();
    let mut row = |what: &str, x: Markup, y: Markup| rows.push((what.to_string(), x, y));
    let text = |x: &dyn std::fmt::Display| html! { (maud::display(x)) };
    row("verdict", badge(&a.verdict), badge(&b.verdict));
    row("scenario file", text(&a.path), text(&b.path));
    row(
        "trace hash",
        html! { code { (a.trace_hash) } },
        html! { code { (b.trace_hash) } },
    );
    row(
        "simulated",
        text(&secs(a.simulated_seconds)),
        text(&secs(b.simulated_seconds)),
    );
    row(
        "wall time",
        text(&format_args!("{:.2}s", a.wall_seconds)),
        text(&format_args!("{:.2}s", b.wall_seconds)),
    );
    row("faults", text(&a.faults.len()), text(&b.faults.len()));
    let mut names: Vec<&str> = a
        .invariants
        .iter()
        .chain(&b.invariants)
        .map(|i| i.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    let inv = |s: &Summary, n: &str| match s.invariants.iter().find(|i| i.name == n) {
        Some(i) if i.holds => html! { "held" },
        Some(i) => html! { b { "VIOLATED" } ": " (i.detail) },
        None => html! { "—" },
    };
    for n in names {
        row(&format!("invariant {n}"), inv(a, n), inv(b, n));
    }
    let mut svcs: Vec<&str> = a
        .services
        .iter()
        .chain(&b.services)
        .map(|x| x.service.as_str())
        .collect();
    svcs.sort_unstable();
    svcs.dedup();
    let svc = |s: &Summary, n: &str| match s.services.iter().find(|x| x.service == n) {
        Some(x) => html! {
            (pct(x.availability))
            " of " (x.requests) " requests, "
            (format_args!("p50 {:.1} ms, p99 {:.1} ms", x.p50_ms, x.p99_ms))
        },
        None => html! { "—" },
    };
    for n in svcs {
        row(&format!("service {n}"), svc(a, n), svc(b, n));
    }
    row(
        "store leaders",
        text(&a.leaders.len()),
        text(&b.leaders.len()),
    );
    // Fault by fault (one seed draws one schedule, simulated or real):
    // what it hit and how the run recovered.
    let fault = |s: &Summary, i: usize| match s.faults.get(i) {
        Some(f) => html! {
            (format_args!("{:.1}s {} {}", f.start_s, f.kind, f.target)) br;
            (crate::recovery::recovery(s, f))
        },
        None => html! { "—" },
    };
    for i in 0..a.faults.len().max(b.faults.len()) {
        row(&format!("fault {}", i + 1), fault(a, i), fault(b, i));
    }
    let converged = |s: &Summary| match s.stats.converged_after_s {
        Some(t) => format!("{t:.1}s after healing"),
        None => "—".into(),
    };
    row("store converged", text(&converged(a)), text(&converged(b)));
    let body = html! {
        h1 { "Compare" }
        table {
            tr {
                th {}
                th { a href=(a_href) { "A: " (name(a)) } }
                th { a href=(b_href) { "B: " (name(b)) } }
            }
            @for (what, x, y) in &rows {
                tr style=[(x.0 != y.0).then_some("background:#fff6d6")] {
                    th { (what) }
                    td { (x) }
                    td { (y) }
                }
            }
        }
        @for (c, x, y) in charts {
            h3 { (x.as_ref().map_or_else(|| c.title(b), |_| c.title(a))) }
            div class="pair" {
                @for svg in [x, y] {
                    @match svg {
                        Some(svg) => div class="chart" { (PreEscaped(svg)) },
                        None => div class="note" { "no such chart in this run" },
                    }
                }
            }
        }
    };
    run_style_page(&format!("{} vs {}", name(a), name(b)), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InvariantResult;

    #[test]
    fn text_is_escaped_and_charts_are_inlined_as_they_are() {
        let s = Summary {
            scenario: "a<b>&\"c\"".into(),
            seed: 7,
            verdict: "fail".into(),
            expect: "fail".into(),
            invariants: vec![InvariantResult {
                name: "x<y".into(),
                kind: "k".into(),
                holds: false,
                detail: "lost <3> & \"more\"".into(),
                at_s: Some(1.5),
            }],
            ..Default::default()
        };
        let svg = "<svg width=\"1\"><text>a &amp; b</text></svg>".to_string();
        let h = run_page(&s, &[(Chart::Faults, svg.clone())]);
        assert!(
            h.starts_with("<!DOCTYPE html><html lang=\"en\"><head>"),
            "{h}"
        );
        assert!(h.ends_with("</body></html>\n"));
        assert!(h.contains("<title>a&lt;b&gt;&amp;&quot;c&quot; seed 7 — fail</title>"));
        assert!(h.contains(
            "<h1>a&lt;b&gt;&amp;&quot;c&quot; <span class=\"verdict fail\">FAIL</span></h1>"
        ));
        assert!(h.contains("<td>x&lt;y</td>"));
        assert!(h.contains("<td class=\"fail\">VIOLATED</td><td>1.500s</td>"));
        assert!(h.contains("<td>lost &lt;3&gt; &amp; &quot;more&quot;</td>"));
        assert!(h.contains(&format!(
            "<div class=\"chart\" id=\"chart-faults\">{svg}<div class=\"note\">\
             <a href=\"faults.png\">faults.png</a></div></div>"
        )));
        assert!(h.contains("(expected: this scenario proves a checker catches a real problem)"));
    }
}
