//! The run report as one self-contained HTML page (inline CSS, charts as
//! inline SVG, no scripts, nothing fetched), and two runs side by side.

use std::fmt::Write as _;

use crate::charts::Chart;
use crate::format::pct;
use crate::{esc, Summary};

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

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(title)
    )
}

fn secs(x: f64) -> String {
    if x >= 120.0 {
        format!("{:.0}s ({}m{:02}s)", x, x as u64 / 60, x as u64 % 60)
    } else {
        format!("{x:.1}s")
    }
}

fn badge(verdict: &str) -> String {
    let class = if verdict == "pass" { "pass" } else { "fail" };
    format!(
        "<span class=\"verdict {class}\">{}</span>",
        esc(&verdict.to_uppercase())
    )
}

/// The verdict as the reader should take it: an expected failure that
/// failed is a success of the checker.
fn verdict_note(s: &Summary) -> String {
    match (s.expect.as_str(), s.verdict.as_str()) {
        ("fail", "fail") => {
            " (expected: this scenario proves a checker catches a real problem)".into()
        }
        ("fail", _) => " (UNEXPECTED: this scenario is marked expect = \"fail\")".into(),
        _ => String::new(),
    }
}

fn chart(svg: &str, stem: &str) -> String {
    format!(
        "<div class=\"chart\" id=\"chart-{stem}\">{svg}<div class=\"note\"><a href=\"{stem}.png\">{stem}.png</a></div></div>\n"
    )
}

/// The run report page; `charts` are the SVGs of [`Chart::all`].
pub fn run_page(s: &Summary, charts: &[(Chart, String)]) -> String {
    let mut h = head(&format!("{} seed {} — {}", s.scenario, s.seed, s.verdict));
    let svg = |want: &Chart| -> String {
        charts
            .iter()
            .find(|(c, _)| c == want)
            .map(|(c, svg)| chart(svg, &c.stem(s)))
            .unwrap_or_default()
    };
    let _ = writeln!(
        h,
        "<h1>{} {}</h1><div class=\"note\">{}</div>",
        esc(&s.scenario),
        badge(&s.verdict),
        esc(&verdict_note(s))
    );
    let speed = s.simulated_seconds / s.wall_seconds.max(1e-9);
    let _ = writeln!(
        h,
        "<table class=\"kv\">\
         <tr><th>scenario</th><td>{}</td></tr>\
         <tr><th>seed</th><td>{}</td></tr>\
         <tr><th>verdict</th><td>{}{}</td></tr>\
         <tr><th>simulated</th><td>{}</td></tr>\
         <tr><th>wall time</th><td>{:.2}s ({:.0}x real time), {} events, backend {}</td></tr>\
         <tr><th>trace hash</th><td><code>{}</code></td></tr>\
         <tr><th>reproduce</th><td><code>{}</code></td></tr></table>",
        esc(&s.path),
        s.seed,
        esc(&s.verdict),
        esc(&verdict_note(s)),
        secs(s.simulated_seconds),
        s.wall_seconds,
        speed,
        s.events,
        esc(&s.backend),
        esc(&s.trace_hash),
        esc(&s.reproduce),
    );

    h.push_str("<h2 id=\"invariants\">Invariants</h2>\n<table><tr><th>invariant</th><th>kind</th><th>verdict</th><th>when</th><th>detail</th></tr>\n");
    for i in &s.invariants {
        let (class, word) = if i.holds {
            ("pass", "held")
        } else {
            ("fail", "VIOLATED")
        };
        let when = i.at_s.map(|t| format!("{t:.3}s")).unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{word}</td><td>{when}</td><td>{}</td></tr>",
            esc(&i.name),
            esc(&i.kind),
            esc(&i.detail)
        );
    }
    h.push_str("</table>\n");

    h.push_str("<h2 id=\"faults\">Faults</h2>\n");
    h.push_str(&svg(&Chart::Faults));
    if !s.faults.is_empty() {
        h.push_str("<table><tr><th>kind</th><th>where</th><th>from</th><th>to</th><th>source</th><th>detail</th></tr>\n");
        for f in &s.faults {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.1}s</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.kind),
                esc(&f.target),
                f.start_s,
                f.end_s
                    .map(|e| format!("{e:.1}s"))
                    .unwrap_or_else(|| format!("healed at {:.1}s", s.faulty_phase_s)),
                esc(&f.source),
                esc(&f.detail)
            );
        }
        h.push_str("</table>\n<div class=\"note\">The same schedule as scenario <code>[[fault]]</code> tables: <a href=\"faults.toml\">faults.toml</a>. Everything still broken heals at the end of the faulty phase; the vertical line marks it.</div>\n");
    }

    if !s.services.is_empty() {
        h.push_str("<h2 id=\"services\">Services</h2>\n");
    }
    for (i, svc) in s.services.iter().enumerate() {
        let _ = writeln!(
            h,
            "<h3>{}</h3><table class=\"kv\"><tr><th>requests</th><td>{} ({} succeeded)</td></tr>\
             <tr><th>availability</th><td>{}{}</td></tr>\
             <tr><th>latency</th><td>p50 {:.1} ms, p99 {:.1} ms</td></tr>\
             <tr><th>pods answering</th><td>{}</td></tr></table>",
            esc(&svc.service),
            svc.requests,
            svc.ok,
            pct(svc.availability),
            svc.slo
                .map(|x| format!(" (SLO {})", pct(x)))
                .unwrap_or_default(),
            svc.p50_ms,
            svc.p99_ms,
            svc.pods_answering
        );
        if !svc.by_datacenter.is_empty() {
            h.push_str("<table><tr><th>users in</th><th>requests</th><th>availability</th><th>p99</th></tr>\n");
            for d in &svc.by_datacenter {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1} ms</td></tr>",
                    esc(&d.datacenter),
                    d.requests,
                    pct(d.availability),
                    d.p99_ms
                );
            }
            h.push_str("</table>\n");
        }
        h.push_str(&svg(&Chart::Availability(i)));
        h.push_str(&svg(&Chart::Latency(i)));
        if svc.unavailable.is_empty() {
            h.push_str("<div class=\"note\">No request failed.</div>\n");
        } else {
            h.push_str(
                "<table><tr><th>unavailable</th><th>failed</th><th>faults in force</th></tr>\n",
            );
            for w in svc.unavailable.iter().take(50) {
                let _ = writeln!(
                    h,
                    "<tr><td>{:.1}s – {:.1}s</td><td>{} of {}</td><td>{}</td></tr>",
                    w.start_s,
                    w.end_s,
                    w.failed,
                    w.total,
                    esc(&w.faults.join(", "))
                );
            }
            h.push_str("</table>\n");
            if svc.unavailable.len() > 50 {
                let _ = writeln!(
                    h,
                    "<div class=\"note\">{} more windows in summary.json.</div>",
                    svc.unavailable.len() - 50
                );
            }
        }
    }

    if !s.nodes.is_empty() {
        h.push_str("<h2 id=\"cluster\">Cluster</h2>\n");
        h.push_str(&svg(&Chart::PodsPerNode));
        h.push_str(&svg(&Chart::PodsPerDatacenter));
        h.push_str(&svg(&Chart::Readiness));
    }

    h.push_str("<h2 id=\"control-plane\">Control plane</h2>\n");
    let _ = writeln!(
        h,
        "<div class=\"note\">{} store leader(s) elected.{}</div>",
        s.leaders.len(),
        if s.control_plane_down.is_empty() {
            String::new()
        } else {
            format!(
                " Control plane down (no quorum reachable from the nodes; grey in the API chart): {}.",
                s.control_plane_down
                    .iter()
                    .map(|(a, b)| format!("{a:.1}s – {b:.1}s"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    h.push_str(&svg(&Chart::Leaders));
    h.push_str(&svg(&Chart::Api));
    if charts.iter().any(|(c, _)| *c == Chart::StoreClients) {
        h.push_str("<h2 id=\"store-clients\">Store clients</h2>\n");
        let st = &s.stats;
        let _ = writeln!(
            h,
            "<div class=\"note\">{} operations ok, {} failed, {} unknown (timed out); {} set adds acknowledged, {} lost; {} watch events.</div>",
            st.ops_ok,
            st.ops_failed,
            st.ops_unknown,
            st.set_acknowledged,
            st.set_lost,
            st.watch_events
        );
        h.push_str(&svg(&Chart::StoreClients));
    }
    h.push_str("<h2 id=\"files\">Files</h2><div class=\"note\"><a href=\"summary.json\">summary.json</a> · <a href=\"junit.xml\">junit.xml</a> · <a href=\"faults.toml\">faults.toml</a> · PNG of every chart beside this page</div>\n");
    h.push_str("</body></html>\n");
    h
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
    let mut h = head(&format!("{} vs {}", name(a), name(b)));
    let _ = writeln!(
        h,
        "<h1>Compare</h1><table><tr><th></th><th><a href=\"{}\">A: {}</a></th><th><a href=\"{}\">B: {}</a></th></tr>",
        esc(a_href),
        esc(&name(a)),
        esc(b_href),
        esc(&name(b))
    );
    let mut row = |what: &str, x: String, y: String| {
        let mark = if x != y {
            " style=\"background:#fff6d6\""
        } else {
            ""
        };
        let _ = writeln!(
            h,
            "<tr{mark}><th>{}</th><td>{}</td><td>{}</td></tr>",
            esc(what),
            x,
            y
        );
    };
    row("verdict", badge(&a.verdict), badge(&b.verdict));
    row("scenario file", esc(&a.path), esc(&b.path));
    row(
        "trace hash",
        format!("<code>{}</code>", esc(&a.trace_hash)),
        format!("<code>{}</code>", esc(&b.trace_hash)),
    );
    row(
        "simulated",
        secs(a.simulated_seconds),
        secs(b.simulated_seconds),
    );
    row(
        "wall time",
        format!("{:.2}s", a.wall_seconds),
        format!("{:.2}s", b.wall_seconds),
    );
    row(
        "faults",
        a.faults.len().to_string(),
        b.faults.len().to_string(),
    );
    let mut names: Vec<&str> = a
        .invariants
        .iter()
        .chain(&b.invariants)
        .map(|i| i.name.as_str())
        .collect();
    names.dedup();
    names.sort_unstable();
    names.dedup();
    let inv = |s: &Summary, n: &str| {
        s.invariants
            .iter()
            .find(|i| i.name == n)
            .map(|i| {
                if i.holds {
                    "held".to_string()
                } else {
                    format!("<b>VIOLATED</b>: {}", esc(&i.detail))
                }
            })
            .unwrap_or_else(|| "—".into())
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
    let svc = |s: &Summary, n: &str| {
        s.services
            .iter()
            .find(|x| x.service == n)
            .map(|x| {
                format!(
                    "{} of {} requests, p50 {:.1} ms, p99 {:.1} ms",
                    pct(x.availability),
                    x.requests,
                    x.p50_ms,
                    x.p99_ms
                )
            })
            .unwrap_or_else(|| "—".into())
    };
    for n in svcs {
        row(&format!("service {n}"), svc(a, n), svc(b, n));
    }
    row(
        "store leaders",
        a.leaders.len().to_string(),
        b.leaders.len().to_string(),
    );
    h.push_str("</table>\n");
    for (c, x, y) in charts {
        let title = x.as_ref().map(|_| c.title(a)).unwrap_or_else(|| c.title(b));
        let _ = writeln!(h, "<h3>{}</h3><div class=\"pair\">", esc(&title));
        for svg in [x, y] {
            match svg {
                Some(svg) => {
                    let _ = writeln!(h, "<div class=\"chart\">{svg}</div>");
                }
                None => h.push_str("<div class=\"note\">no such chart in this run</div>\n"),
            }
        }
        h.push_str("</div>\n");
    }
    h.push_str("</body></html>\n");
    h
}
