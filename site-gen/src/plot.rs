//! SVG plots of a series over commits, with plotters.

use collector::query::Point;
use plotters::prelude::*;

/// Okabe-Ito blue: readable with every kind of colour vision.
const SERIES_COLOUR: RGBColor = RGBColor(0x00, 0x72, 0xb2);
const SIZE: (u32, u32) = (760, 320);

/// Median per commit with its 95% CI as error bars, commits left to right in order.
/// `y_label` names the unit and the good direction.
pub fn series_svg(points: &[Point], y_label: &str) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (y0, y1) = y_range(points);
        let n = points.len() as u32;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d((0..n).into_segmented(), y0..y1)
            .map_err(|e| e.to_string())?;
        let labels: Vec<String> = points.iter().map(|p| crate::format::short_sha(&p.commit.sha)[..7].to_owned()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(points.len().min(16))
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_desc("commit (oldest left)")
            .y_desc(y_label)
            .y_label_formatter(&|v| crate::format::value(*v))
            .axis_desc_style(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        let at = |i: usize| SegmentValue::CenterOf(i as u32);
        chart
            .draw_series(LineSeries::new(points.iter().enumerate().map(|(i, p)| (at(i), p.summary.median)), SERIES_COLOUR.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(points.iter().enumerate().map(|(i, p)| {
                ErrorBar::new_vertical(at(i), p.summary.ci_lower, p.summary.median, p.summary.ci_upper, SERIES_COLOUR.filled(), 8)
            }))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(points.iter().enumerate().map(|(i, p)| Circle::new((at(i), p.summary.median), 4, SERIES_COLOUR.filled())))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The value range to show: every interval, with a margin, and never a zero-height axis.
fn y_range(points: &[Point]) -> (f64, f64) {
    let lo = points.iter().map(|p| p.summary.ci_lower).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.summary.ci_upper).fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    let pad = if span > 0.0 { span * 0.15 } else { (hi.abs() * 0.1).max(1e-6) };
    let lower = if lo >= 0.0 { (lo - pad).max(0.0) } else { lo - pad };
    (lower, hi + pad)
}
