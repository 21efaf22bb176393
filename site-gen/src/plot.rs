//! SVG plots of a series over commits, with plotters.

use collector::query::Point;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Okabe-Ito blue: readable with every kind of colour vision.
const SERIES_COLOUR: RGBColor = RGBColor(0x00, 0x72, 0xb2);
const SIZE: (u32, u32) = (760, 320);
const MAX_X_LABELS: usize = 16;

/// Median per commit (a dot) with its 95% CI as error bars, commits left to right in order.
/// `y_label` names the unit and the good direction.
pub fn series_svg(points: &[Point], y_label: &str) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (y0, y1) = y_range(points);
        let n = points.len();
        // Commits sit at 0, 1, 2 ... with half a step of margin on each side.
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), y0..y1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .light_line_style(WHITE)
            .x_desc("commit (oldest left)")
            .y_desc(y_label)
            .y_label_formatter(&|v| crate::format::value(*v))
            .axis_desc_style(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        // Commit labels under their points; plotters' tick placement would not hit integers.
        let every = n.div_ceil(MAX_X_LABELS).max(1);
        let label_style = TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, p) in points.iter().enumerate().filter(|(i, _)| i % every == 0) {
            let (x, y) = chart.backend_coord(&(i as f64, y0));
            root.draw(&Text::new(
                crate::format::short_sha(&p.commit.sha)[..7].to_owned(),
                (x, y + 6),
                label_style.clone(),
            ))
            .map_err(|e| e.to_string())?;
        }
        let at = |i: usize| i as f64;
        chart
            .draw_series(LineSeries::new(
                points.iter().enumerate().map(|(i, p)| (at(i), p.summary.median)),
                SERIES_COLOUR.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(points.iter().enumerate().map(|(i, p)| {
                ErrorBar::new_vertical(
                    at(i),
                    p.summary.ci_lower,
                    p.summary.median,
                    p.summary.ci_upper,
                    SERIES_COLOUR.filled(),
                    8,
                )
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The value range to show: every interval, with a margin, and never a zero-height axis.
fn y_range(points: &[Point]) -> (f64, f64) {
    let lo = points.iter().map(|p| p.summary.ci_lower).fold(f64::INFINITY, f64::min);
    let hi = points
        .iter()
        .map(|p| p.summary.ci_upper)
        .fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    let pad = if span > 0.0 {
        span * 0.15
    } else {
        (hi.abs() * 0.1).max(1e-6)
    };
    let lower = if lo >= 0.0 { (lo - pad).max(0.0) } else { lo - pad };
    (lower, hi + pad)
}
