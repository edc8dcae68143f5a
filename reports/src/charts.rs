//! The charts of a run report, drawn once per backend with plotters: as
//! SVG (inlined in `index.html`) and as PNG files beside it.
//!
//! Text is measured and, in PNGs, drawn with DejaVu Sans compiled into the
//! binary (`fonts/`), so a report renders the same on any machine, with or
//! without system fonts.

use std::path::Path;
use std::sync::Once;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::format::pct;
use crate::{FaultRecord, Summary};

static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
const WIDTH: u32 = 1000;

/// Registers the bundled font with plotters (with `ab_glyph` it knows none
/// of its own); every chart calls it first.
pub(crate) fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the bundled DejaVu Sans is a valid font"));
    });
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e}")
}

/// One chart of a run report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chart {
    /// Every fault as a labelled bar on the time axis.
    Faults,
    /// Success ratio per step of service `i`, SLO line, faults shaded.
    Availability(usize),
    /// p50/p99 latency per step of service `i`.
    Latency(usize),
    /// Pods per node, stacked.
    PodsPerNode,
    /// Pods per datacenter, stacked.
    PodsPerDatacenter,
    /// Node readiness: a heatmap of nodes by time.
    Readiness,
    /// Store leader and term over time.
    Leaders,
    /// API server requests and errors per second.
    Api,
    /// Store clients: operations per second and latency.
    StoreClients,
}

impl Chart {
    /// The charts `s` has data for, in page order.
    pub fn all(s: &Summary) -> Vec<Chart> {
        let mut out = vec![Chart::Faults];
        for i in 0..s.services.len() {
            out.push(Chart::Availability(i));
            out.push(Chart::Latency(i));
        }
        if !s.nodes.is_empty() {
            out.extend([
                Chart::PodsPerNode,
                Chart::PodsPerDatacenter,
                Chart::Readiness,
            ]);
        }
        out.push(Chart::Leaders);
        if !s.api.is_empty() {
            out.push(Chart::Api);
        }
        if s.stats.ops_ok + s.stats.ops_failed + s.stats.ops_unknown > 0 {
            out.push(Chart::StoreClients);
        }
        out
    }

    /// File name without extension, e.g. `availability-web`.
    pub fn stem(&self, s: &Summary) -> String {
        let svc = |i: usize| {
            s.services
                .get(i)
                .map(|x| x.service.replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
                .unwrap_or_default()
        };
        match self {
            Chart::Faults => "faults".into(),
            Chart::Availability(i) => format!("availability-{}", svc(*i)),
            Chart::Latency(i) => format!("latency-{}", svc(*i)),
            Chart::PodsPerNode => "pods-per-node".into(),
            Chart::PodsPerDatacenter => "pods-per-datacenter".into(),
            Chart::Readiness => "node-readiness".into(),
            Chart::Leaders => "store-leaders".into(),
            Chart::Api => "apiserver-requests".into(),
            Chart::StoreClients => "store-clients".into(),
        }
    }

    /// The chart's title.
    pub fn title(&self, s: &Summary) -> String {
        let svc = |i: usize| s.services.get(i).map(|x| x.service.as_str()).unwrap_or("");
        match self {
            Chart::Faults => format!("Faults ({})", s.faults.len()),
            Chart::Availability(i) => format!(
                "Availability of {} (success ratio per {}s)",
                svc(*i),
                s.step_s
            ),
            Chart::Latency(i) => format!(
                "Latency of {} (successful requests, per {}s)",
                svc(*i),
                s.step_s
            ),
            Chart::PodsPerNode => "Pods running per node".into(),
            Chart::PodsPerDatacenter => "Pods running per datacenter".into(),
            Chart::Readiness => "Node readiness (Ready condition in the API)".into(),
            Chart::Leaders => "Store leader and Raft term".into(),
            Chart::Api => "API server requests per second".into(),
            Chart::StoreClients => "Store client operations per second, and latency".into(),
        }
    }

    fn size(&self, s: &Summary) -> (u32, u32) {
        match self {
            Chart::Faults => (WIDTH, 70 + 22 * fault_lanes(s).1.max(1) as u32),
            Chart::Readiness => (WIDTH, 70 + 20 * s.nodes.len().max(1) as u32),
            Chart::StoreClients => (WIDTH, 520),
            Chart::PodsPerNode | Chart::PodsPerDatacenter => (WIDTH, 320),
            _ => (WIDTH, 280),
        }
    }
}

/// The chart as an SVG document.
pub fn svg(s: &Summary, c: &Chart) -> anyhow::Result<String> {
    fonts();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, c.size(s)).into_drawing_area();
        draw(s, c, &root)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// The chart as a PNG file.
pub fn png(s: &Summary, c: &Chart, path: &Path) -> anyhow::Result<()> {
    fonts();
    let root = BitMapBackend::new(path, c.size(s)).into_drawing_area();
    draw(s, c, &root)?;
    root.present()
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}

fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// When a fault ended, for drawing (one lasting to the end of the faulty
/// phase has no end of its own).
fn fault_end(s: &Summary, f: &FaultRecord) -> f64 {
    f.end_s
        .unwrap_or(s.faulty_phase_s)
        .max(f.start_s + s.simulated_seconds / 400.0)
}

fn fault_color(kind: &str) -> RGBColor {
    match kind {
        k if k.contains("partition") || k.contains("isolate") => RGBColor(240, 150, 0),
        k if k.starts_with("disk") || k == "power-loss" => RGBColor(150, 90, 220),
        "loss" | "latency" => RGBColor(0, 160, 170),
        k if k.starts_with("clock") || k == "pause" => RGBColor(90, 120, 200),
        _ => RGBColor(220, 50, 50),
    }
}

/// Faults packed into lanes so none overlaps another in its lane (with
/// room for its label): lane per fault, and the number of lanes.
fn fault_lanes(s: &Summary) -> (Vec<usize>, usize) {
    let t_max = s.simulated_seconds.max(1.0);
    // A label is about 7 px per character on a ~900 px wide plot.
    let secs_per_char = t_max * 7.0 / 900.0;
    let mut ends: Vec<f64> = Vec::new();
    let mut lanes = Vec::new();
    for f in &s.faults {
        let label = label(f).len() as f64 * secs_per_char;
        let end = fault_end(s, f).max(f.start_s + label) + secs_per_char;
        let lane = match ends.iter().position(|&e| e <= f.start_s) {
            Some(l) => l,
            None => {
                ends.push(0.0);
                ends.len() - 1
            }
        };
        ends[lane] = end;
        lanes.push(lane);
    }
    (lanes, ends.len())
}

fn label(f: &FaultRecord) -> String {
    format!("{} {}", f.kind, short(&f.target))
}

fn short(target: &str) -> String {
    match target.split_once(" [") {
        Some((host, _)) => host.to_string(),
        None if target.chars().count() > 28 => {
            format!("{}…", target.chars().take(28).collect::<String>())
        }
        None => target.to_string(),
    }
}

type Plot<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Shades every fault window (and the heal marker) over `y0..y1`.
fn shade_faults<'a, DB: DrawingBackend + 'a>(
    s: &Summary,
    plot: &mut Plot<'a, DB>,
    y0: f64,
    y1: f64,
) -> anyhow::Result<()> {
    for f in &s.faults {
        plot.draw_series(std::iter::once(Rectangle::new(
            [(f.start_s, y0), (fault_end(s, f), y1)],
            fault_color(&f.kind).mix(0.10).filled(),
        )))
        .map_err(err)?;
    }
    plot.draw_series(std::iter::once(PathElement::new(
        vec![(s.faulty_phase_s, y0), (s.faulty_phase_s, y1)],
        BLACK.mix(0.35).stroke_width(1),
    )))
    .map_err(err)?;
    Ok(())
}

/// Splits points with gaps (`None`) into the runs a line can join.
fn runs(points: impl IntoIterator<Item = Option<(f64, f64)>>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for p in points {
        match p {
            Some(p) => out.last_mut().expect("never empty").push(p),
            None if !out.last().expect("never empty").is_empty() => out.push(Vec::new()),
            None => {}
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

fn line<'a, DB: DrawingBackend + 'a>(
    plot: &mut Plot<'a, DB>,
    points: Vec<Option<(f64, f64)>>,
    color: RGBColor,
    name: &str,
) -> anyhow::Result<()> {
    let mut first = true;
    for run in runs(points) {
        let series = plot
            .draw_series(LineSeries::new(run, color.stroke_width(2)))
            .map_err(err)?;
        if std::mem::take(&mut first) {
            series.label(name).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 15, y)], color.stroke_width(2))
            });
        }
    }
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a>(
    plot: &mut Plot<'a, DB>,
    at: SeriesLabelPosition,
) -> anyhow::Result<()> {
    plot.configure_series_labels()
        .position(at)
        .label_font(font(12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(err)
}

/// Tableau 10, the charts' colours.
pub(crate) const TABLEAU: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Series colours: Tableau 10, then two more.
/// The time axis: simulated seconds, or a real run's seconds of real time.
fn time_axis(s: &Summary) -> &'static str {
    if s.backend == "real" {
        "seconds (real time)"
    } else {
        "simulated seconds"
    }
}

fn palette(i: usize) -> RGBColor {
    const MORE: [RGBColor; 2] = [RGBColor(90, 90, 160), RGBColor(200, 160, 60)];
    let n = TABLEAU.len() + MORE.len();
    match i % n {
        k if k < TABLEAU.len() => TABLEAU[k],
        k => MORE[k - TABLEAU.len()],
    }
}

fn base<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    s: &Summary,
    y: std::ops::Range<f64>,
    y_desc: &str,
    x_label: bool,
) -> anyhow::Result<Plot<'a, DB>> {
    let t_max = s.simulated_seconds.max(1.0);
    let mut plot = ChartBuilder::on(area)
        .margin(8)
        .x_label_area_size(if x_label { 34 } else { 20 })
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..t_max, y)
        .map_err(err)?;
    let mut mesh = plot.configure_mesh();
    mesh.y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(font(11))
        .axis_desc_style(font(12))
        .light_line_style(BLACK.mix(0.04));
    if x_label {
        mesh.x_desc(time_axis(s));
    }
    mesh.draw().map_err(err)?;
    Ok(plot)
}

fn draw<DB: DrawingBackend>(
    s: &Summary,
    c: &Chart,
    root: &DrawingArea<DB, Shift>,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let area = root.titled(&c.title(s), font(16)).map_err(err)?;
    match c {
        Chart::Faults => faults(s, &area),
        Chart::Availability(i) => availability(s, *i, &area),
        Chart::Latency(i) => latency(s, *i, &area),
        Chart::PodsPerNode => {
            let series: Vec<(String, Vec<u32>)> = s
                .nodes
                .iter()
                .map(|n| (format!("{} ({})", n.node, n.datacenter), n.pods.clone()))
                .collect();
            stacked(s, &area, &series)
        }
        Chart::PodsPerDatacenter => {
            let mut by_dc: std::collections::BTreeMap<&str, Vec<u32>> = Default::default();
            for n in &s.nodes {
                let sum = by_dc.entry(&n.datacenter).or_default();
                sum.resize(sum.len().max(n.pods.len()), 0);
                for (a, b) in sum.iter_mut().zip(&n.pods) {
                    *a += b;
                }
            }
            let series: Vec<(String, Vec<u32>)> =
                by_dc.into_iter().map(|(d, v)| (d.to_string(), v)).collect();
            stacked(s, &area, &series)
        }
        Chart::Readiness => readiness(s, &area),
        Chart::Leaders => leaders(s, &area),
        Chart::Api => api(s, &area),
        Chart::StoreClients => store_clients(s, &area),
    }
}

fn faults<DB: DrawingBackend>(s: &Summary, area: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
    let (lanes, n) = fault_lanes(s);
    let n = n.max(1) as f64;
    let mut plot = ChartBuilder::on(area)
        .margin(8)
        .x_label_area_size(34)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..s.simulated_seconds.max(1.0), 0f64..n)
        .map_err(err)?;
    plot.configure_mesh()
        .x_desc(time_axis(s))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_labels(0)
        .disable_y_mesh()
        .label_style(font(11))
        .axis_desc_style(font(12))
        .light_line_style(BLACK.mix(0.04))
        .draw()
        .map_err(err)?;
    shade_faults(s, &mut plot, 0.0, 0.0)?;
    if s.faults.is_empty() {
        plot.draw_series(std::iter::once(Text::new(
            "no faults injected",
            (s.simulated_seconds / 2.5, n / 2.0),
            font(13),
        )))
        .map_err(err)?;
    }
    for (f, lane) in s.faults.iter().zip(lanes) {
        let top = n - lane as f64;
        let color = fault_color(&f.kind);
        plot.draw_series(std::iter::once(Rectangle::new(
            [(f.start_s, top - 0.15), (fault_end(s, f), top - 0.85)],
            color.mix(0.55).filled(),
        )))
        .map_err(err)?;
        plot.draw_series(std::iter::once(Text::new(
            label(f),
            (f.start_s, top - 0.28),
            font(11),
        )))
        .map_err(err)?;
    }
    plot.draw_series(std::iter::once(Text::new(
        "heal",
        (s.faulty_phase_s, n * 0.02 + 0.0),
        font(10).color(&BLACK.mix(0.6)),
    )))
    .map_err(err)?;
    Ok(())
}

fn availability<DB: DrawingBackend>(
    s: &Summary,
    i: usize,
    area: &DrawingArea<DB, Shift>,
) -> anyhow::Result<()> {
    let svc = &s.services[i];
    let ratios: Vec<Option<(f64, f64)>> = svc
        .series
        .iter()
        .map(|p| (p.requests > 0).then(|| (p.t_s, p.ok as f64 / p.requests as f64)))
        .collect();
    let lowest = ratios
        .iter()
        .flatten()
        .map(|p| p.1)
        .chain(svc.slo)
        .fold(1.0, f64::min);
    let lo = (lowest - (1.0 - lowest).max(0.002) * 0.25).clamp(0.0, 0.998);
    let mut plot = base(area, s, lo..1.0005, "success ratio", true)?;
    shade_faults(s, &mut plot, lo, 1.0005)?;
    line(&mut plot, ratios, RGBColor(31, 119, 180), "success ratio")?;
    if let Some(slo) = svc.slo {
        let t_max = s.simulated_seconds.max(1.0);
        plot.draw_series(LineSeries::new(
            vec![(0.0, slo), (t_max, slo)],
            RGBColor(200, 0, 0).stroke_width(1),
        ))
        .map_err(err)?
        .label(format!("SLO {}", pct(slo)))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], RGBColor(200, 0, 0)));
    }
    legend(&mut plot, SeriesLabelPosition::LowerLeft)
}

fn latency<DB: DrawingBackend>(
    s: &Summary,
    i: usize,
    area: &DrawingArea<DB, Shift>,
) -> anyhow::Result<()> {
    let svc = &s.services[i];
    let top = svc.series.iter().map(|p| p.p99_ms).fold(1.0, f64::max) * 1.15;
    let mut plot = base(area, s, 0f64..top, "latency ms", true)?;
    shade_faults(s, &mut plot, 0.0, top)?;
    let pts = |f: fn(&crate::ServicePoint) -> f64| -> Vec<Option<(f64, f64)>> {
        svc.series
            .iter()
            .map(|p| (p.ok > 0).then(|| (p.t_s, f(p))))
            .collect()
    };
    line(&mut plot, pts(|p| p.p50_ms), RGBColor(44, 160, 44), "p50")?;
    line(&mut plot, pts(|p| p.p99_ms), RGBColor(230, 120, 0), "p99")?;
    legend(&mut plot, SeriesLabelPosition::UpperRight)
}

fn stacked<DB: DrawingBackend>(
    s: &Summary,
    area: &DrawingArea<DB, Shift>,
    series: &[(String, Vec<u32>)],
) -> anyhow::Result<()> {
    let steps = series.iter().map(|x| x.1.len()).max().unwrap_or(0);
    // Cumulative sums, bottom series first.
    let mut cum: Vec<Vec<f64>> = Vec::new();
    for (_, v) in series {
        let below = cum.last().cloned().unwrap_or_else(|| vec![0.0; steps]);
        cum.push(
            (0..steps)
                .map(|k| below[k] + f64::from(v.get(k).copied().unwrap_or(0)))
                .collect(),
        );
    }
    let top = cum
        .last()
        .map(|c| c.iter().cloned().fold(1.0, f64::max))
        .unwrap_or(1.0)
        * 1.1;
    let mut plot = base(area, s, 0f64..top, "pods", true)?;
    shade_faults(s, &mut plot, 0.0, top)?;
    // Top of the stack first, so each lower band paints over the one above.
    for (i, c) in cum.iter().enumerate().rev() {
        let color = palette(i);
        let pts: Vec<(f64, f64)> = c
            .iter()
            .enumerate()
            .map(|(k, y)| (k as f64 * s.step_s, *y))
            .collect();
        plot.draw_series(AreaSeries::new(pts, 0.0, color.mix(0.75).filled()).border_style(WHITE))
            .map_err(err)?
            .label(series[i].0.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    plot.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(font(10))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(err)
}

fn ready_color(status: &str) -> RGBColor {
    match status {
        "True" => RGBColor(60, 170, 80),
        "False" => RGBColor(215, 50, 40),
        "Unknown" => RGBColor(245, 170, 40),
        "deleted" => RGBColor(90, 90, 90),
        _ => RGBColor(220, 220, 220),
    }
}

fn readiness<DB: DrawingBackend>(s: &Summary, area: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
    let n = s.nodes.len().max(1) as u32;
    let t_max = s.simulated_seconds.max(1.0);
    let names: Vec<String> = s.nodes.iter().map(|x| x.node.clone()).collect();
    let mut plot = ChartBuilder::on(area)
        .margin(8)
        .x_label_area_size(34)
        .y_label_area_size(64)
        // A segmented range holds its end too: n rows are 0..=n-1.
        .build_cartesian_2d(0f64..t_max, (0u32..n - 1).into_segmented())
        .map_err(err)?;
    plot.configure_mesh()
        .x_desc(time_axis(s))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .disable_y_mesh()
        .y_labels(names.len().max(1))
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .label_style(font(11))
        .axis_desc_style(font(12))
        .light_line_style(BLACK.mix(0.04))
        .draw()
        .map_err(err)?;
    for (row, node) in s.nodes.iter().enumerate() {
        let row = row as u32;
        let mut spans: Vec<(f64, f64, &str)> = Vec::new();
        let mut from = (0.0, "none");
        for ch in &node.ready {
            spans.push((from.0, ch.t_s, from.1));
            from = (ch.t_s, ch.status.as_str());
        }
        spans.push((from.0, t_max, from.1));
        plot.draw_series(spans.into_iter().filter(|x| x.1 > x.0).map(|(a, b, st)| {
            Rectangle::new(
                [
                    (a, SegmentValue::Exact(row)),
                    (b, SegmentValue::Exact(row + 1)),
                ],
                ready_color(st).filled(),
            )
        }))
        .map_err(err)?;
    }
    for (name, status) in [
        ("Ready", "True"),
        ("NotReady", "False"),
        ("Unknown", "Unknown"),
        ("not registered", "none"),
    ] {
        let color = ready_color(status);
        plot.draw_series(std::iter::empty::<Rectangle<(f64, SegmentValue<u32>)>>())
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    plot.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(font(11))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(err)
}

fn leaders<DB: DrawingBackend>(s: &Summary, area: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
    let t_max = s.simulated_seconds.max(1.0);
    let top = s.leaders.iter().map(|l| l.term).max().unwrap_or(1) as f64 * 1.2 + 1.0;
    let mut plot = base(area, s, 0f64..top, "term", true)?;
    shade_faults(s, &mut plot, 0.0, top)?;
    let mut hosts: Vec<&str> = s.leaders.iter().map(|l| l.host.as_str()).collect();
    hosts.sort_unstable();
    hosts.dedup();
    let color = |h: &str| palette(hosts.iter().position(|x| *x == h).unwrap_or(0));
    for (k, l) in s.leaders.iter().enumerate() {
        let end = s.leaders.get(k + 1).map(|n| n.t_s).unwrap_or(t_max);
        let c = color(&l.host);
        plot.draw_series(std::iter::once(PathElement::new(
            vec![(l.t_s, l.term as f64), (end, l.term as f64)],
            c.stroke_width(4),
        )))
        .map_err(err)?;
        if let Some(next) = s.leaders.get(k + 1) {
            plot.draw_series(std::iter::once(PathElement::new(
                vec![(end, l.term as f64), (end, next.term as f64)],
                BLACK.mix(0.3).stroke_width(1),
            )))
            .map_err(err)?;
        }
        if s.leaders.len() <= 30 {
            plot.draw_series(std::iter::once(Text::new(
                format!("{} t{}", l.host, l.term),
                (l.t_s, l.term as f64 + top * 0.06),
                font(10),
            )))
            .map_err(err)?;
        }
    }
    for h in &hosts {
        let c = color(h);
        plot.draw_series(std::iter::empty::<PathElement<(f64, f64)>>())
            .map_err(err)?
            .label(format!("leader {h}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], c.stroke_width(4)));
    }
    legend(&mut plot, SeriesLabelPosition::LowerRight)
}

fn api<DB: DrawingBackend>(s: &Summary, area: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
    let per_s = |n: u64| n as f64 / s.step_s.max(1.0);
    let top = s.api.iter().map(|p| per_s(p.requests)).fold(1.0, f64::max) * 1.15;
    let mut plot = base(area, s, 0f64..top, "requests / s", true)?;
    for &(a, b) in &s.control_plane_down {
        plot.draw_series(std::iter::once(Rectangle::new(
            [(a, 0.0), (b, top)],
            BLACK.mix(0.08).filled(),
        )))
        .map_err(err)?;
    }
    shade_faults(s, &mut plot, 0.0, top)?;
    let pts = |f: fn(&crate::ApiPoint) -> u64| -> Vec<Option<(f64, f64)>> {
        s.api.iter().map(|p| Some((p.t_s, per_s(f(p))))).collect()
    };
    line(
        &mut plot,
        pts(|p| p.requests),
        RGBColor(31, 119, 180),
        "all",
    )?;
    line(
        &mut plot,
        pts(|p| p.client_errors),
        RGBColor(240, 150, 0),
        "4xx",
    )?;
    line(
        &mut plot,
        pts(|p| p.server_errors),
        RGBColor(214, 39, 40),
        "5xx / 429",
    )?;
    legend(&mut plot, SeriesLabelPosition::UpperRight)
}

fn store_clients<DB: DrawingBackend>(
    s: &Summary,
    area: &DrawingArea<DB, Shift>,
) -> anyhow::Result<()> {
    let (upper, lower) = area.split_vertically(area.dim_in_pixel().1 * 55 / 100);
    let y_max = s
        .timeline
        .iter()
        .map(|p| (p.ok + p.failed + p.unknown) as f64)
        .fold(10.0, f64::max)
        * 1.2;
    let mut ops = base(&upper, s, 0f64..y_max, "ops / s", false)?;
    shade_faults(s, &mut ops, 0.0, y_max)?;
    let series = |f: fn(&crate::TimelinePoint) -> u64| -> Vec<Option<(f64, f64)>> {
        s.timeline
            .iter()
            .map(|p| Some((p.t_s, f(p) as f64)))
            .collect()
    };
    line(&mut ops, series(|p| p.ok), RGBColor(31, 119, 180), "ok")?;
    line(
        &mut ops,
        series(|p| p.failed),
        RGBColor(214, 39, 40),
        "failed",
    )?;
    line(
        &mut ops,
        series(|p| p.unknown),
        RGBColor(200, 0, 200),
        "unknown (timed out)",
    )?;
    for l in &s.leaders {
        ops.draw_series(std::iter::once(PathElement::new(
            vec![(l.t_s, 0.0), (l.t_s, y_max * 0.8)],
            BLACK.mix(0.4).stroke_width(1),
        )))
        .map_err(err)?;
    }
    legend(&mut ops, SeriesLabelPosition::LowerRight)?;
    let lat_max = s.timeline.iter().map(|p| p.p99_ms).fold(1.0, f64::max) * 1.2;
    let mut lat = base(&lower, s, 0f64..lat_max, "latency ms", true)?;
    shade_faults(s, &mut lat, 0.0, lat_max)?;
    let pts = |f: fn(&crate::TimelinePoint) -> f64| -> Vec<Option<(f64, f64)>> {
        s.timeline
            .iter()
            .map(|p| (p.ok > 0).then(|| (p.t_s, f(p))))
            .collect()
    };
    line(&mut lat, pts(|p| p.p50_ms), RGBColor(44, 160, 44), "p50")?;
    line(&mut lat, pts(|p| p.p99_ms), RGBColor(230, 120, 0), "p99")?;
    legend(&mut lat, SeriesLabelPosition::UpperRight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_split_lines() {
        let r = runs([
            Some((0.0, 1.0)),
            None,
            None,
            Some((2.0, 1.0)),
            Some((3.0, 1.0)),
        ]);
        assert_eq!(r, vec![vec![(0.0, 1.0)], vec![(2.0, 1.0), (3.0, 1.0)]]);
    }
}
