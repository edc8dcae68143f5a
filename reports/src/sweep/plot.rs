//! The sweep's two charts, as SVG for its page: the violated invariants
//! and the wall time of each run.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::SweepReport;
use crate::charts::TABLEAU;

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plotting the sweep: {e}")
}

pub(super) const FAILED_COLOR: RGBColor = RGBColor(200, 40, 40);
pub(super) const EXPECTED_COLOR: RGBColor = RGBColor(240, 150, 40);

/// One colour per scenario in the wall-time chart: Tableau 10 without its
/// red, which marks failures.
pub(super) fn palette(i: usize) -> RGBColor {
    const RED: usize = 3;
    let colours: Vec<RGBColor> = TABLEAU
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != RED)
        .map(|(_, c)| *c)
        .collect();
    colours[i % colours.len()]
}

pub(super) fn css(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// Violations per invariant name: (name, in runs that failed not as
/// expected, in expected failures), most violated first.
pub(super) fn invariant_counts(report: &SweepReport) -> Vec<(String, u32, u32)> {
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
pub(super) fn invariant_svg(report: &SweepReport) -> anyhow::Result<Option<String>> {
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
pub(super) fn wall_svg(report: &SweepReport) -> anyhow::Result<String> {
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
            let color = palette(k);
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
    use super::super::tests::{sample, svg_text};
    use super::*;

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
}
