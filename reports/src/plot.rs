//! The run timeline as SVG (plotters): client operations per second (ok,
//! failed, unknown) above, latency p50/p99 below, fault windows shaded and
//! labelled, store leader changes as vertical lines.
//!
//! SVG needs no fonts at render time (the viewer draws the text), so the
//! report builds anywhere.

use plotters::prelude::*;

use crate::Summary;

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 560;

fn fault_color(kind: &str) -> RGBColor {
    match kind {
        k if k.contains("partition") => RGBColor(255, 160, 0),
        k if k.starts_with("disk") || k == "power-loss" => RGBColor(150, 90, 220),
        k if k == "loss" || k == "latency" => RGBColor(0, 170, 170),
        _ => RGBColor(230, 60, 60),
    }
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plotting the timeline: {e}")
}

/// Renders the timeline of `s` as an SVG document.
pub fn timeline_svg(s: &Summary) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let title = format!(
            "{} — seed {} — {} — trace {}",
            s.scenario,
            s.seed,
            s.verdict.to_uppercase(),
            s.trace_hash
        );
        let root = root.titled(&title, ("sans-serif", 18)).map_err(err)?;
        let (top, bottom) = root.split_vertically(HEIGHT * 55 / 100);
        let t_max = s.simulated_seconds.max(1.0);

        // Operations per second.
        let y_max = s
            .timeline
            .iter()
            .map(|p| (p.ok + p.failed + p.unknown) as f64)
            .fold(10.0, f64::max)
            * 1.25;
        let mut ops = ChartBuilder::on(&top)
            .margin(10)
            .x_label_area_size(20)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..t_max, 0f64..y_max)
            .map_err(err)?;
        ops.configure_mesh()
            .y_desc("client ops / s")
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        // Fault windows, stacked in lanes so overlapping ones stay readable.
        let lanes = 4usize;
        for (i, f) in s.faults.iter().enumerate() {
            let end = f.end_s.unwrap_or(s.faulty_phase_s).max(f.start_s + 0.2);
            let lane = (i % lanes) as f64;
            let band = y_max / (lanes as f64 * 4.0);
            let y0 = y_max - band * (lane + 1.0);
            let color = fault_color(&f.kind);
            ops.draw_series(std::iter::once(Rectangle::new(
                [(f.start_s, 0.0), (end, y_max)],
                color.mix(0.08).filled(),
            )))
            .map_err(err)?;
            ops.draw_series(std::iter::once(Rectangle::new(
                [(f.start_s, y0), (end, y0 + band * 0.8)],
                color.mix(0.6).filled(),
            )))
            .map_err(err)?;
            let label = format!("{} {}", f.kind, short(&f.target));
            ops.draw_series(std::iter::once(Text::new(
                label,
                (f.start_s, y0 + band * 0.75),
                ("sans-serif", 11).into_font().color(&BLACK),
            )))
            .map_err(err)?;
        }
        let series = |f: fn(&crate::TimelinePoint) -> u64| -> Vec<(f64, f64)> {
            s.timeline.iter().map(|p| (p.t_s, f(p) as f64)).collect()
        };
        ops.draw_series(LineSeries::new(series(|p| p.ok), BLUE.stroke_width(2)))
            .map_err(err)?
            .label("ok")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLUE.stroke_width(2)));
        ops.draw_series(LineSeries::new(series(|p| p.failed), RED.stroke_width(2)))
            .map_err(err)?
            .label("failed")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], RED.stroke_width(2)));
        ops.draw_series(LineSeries::new(
            series(|p| p.unknown),
            MAGENTA.stroke_width(2),
        ))
        .map_err(err)?
        .label("unknown (timed out)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], MAGENTA.stroke_width(2)));
        for l in &s.leaders {
            ops.draw_series(std::iter::once(PathElement::new(
                vec![(l.t_s, 0.0), (l.t_s, y_max * 0.7)],
                BLACK.mix(0.5).stroke_width(1),
            )))
            .map_err(err)?;
            ops.draw_series(std::iter::once(Text::new(
                format!("{} t{}", l.host, l.term),
                (l.t_s, y_max * 0.7),
                ("sans-serif", 10).into_font().color(&BLACK.mix(0.7)),
            )))
            .map_err(err)?;
        }
        ops.configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(err)?;

        // Latency.
        let lat_max = s.timeline.iter().map(|p| p.p99_ms).fold(1.0, f64::max) * 1.2;
        let mut lat = ChartBuilder::on(&bottom)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..t_max, 0f64..lat_max)
            .map_err(err)?;
        lat.configure_mesh()
            .x_desc("simulated seconds")
            .y_desc("latency ms")
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for f in &s.faults {
            let end = f.end_s.unwrap_or(s.faulty_phase_s).max(f.start_s + 0.2);
            lat.draw_series(std::iter::once(Rectangle::new(
                [(f.start_s, 0.0), (end, lat_max)],
                fault_color(&f.kind).mix(0.08).filled(),
            )))
            .map_err(err)?;
        }
        let pts = |f: fn(&crate::TimelinePoint) -> f64| -> Vec<(f64, f64)> {
            s.timeline
                .iter()
                .filter(|p| p.ok > 0)
                .map(|p| (p.t_s, f(p)))
                .collect()
        };
        lat.draw_series(LineSeries::new(pts(|p| p.p50_ms), GREEN.stroke_width(2)))
            .map_err(err)?
            .label("p50")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], GREEN.stroke_width(2)));
        lat.draw_series(LineSeries::new(
            pts(|p| p.p99_ms),
            RGBColor(200, 120, 0).stroke_width(2),
        ))
        .map_err(err)?
        .label("p99")
        .legend(|(x, y)| {
            PathElement::new(
                vec![(x, y), (x + 15, y)],
                RGBColor(200, 120, 0).stroke_width(2),
            )
        });
        lat.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

fn short(target: &str) -> String {
    match target.split_once(" [") {
        Some((host, _)) => host.to_string(),
        None if target.len() > 24 => format!("{}…", &target[..target.floor_char_boundary(24)]),
        None => target.to_string(),
    }
}
