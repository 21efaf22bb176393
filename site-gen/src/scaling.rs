//! Scaling plots: how a workload's latest numbers move along a grid of its scenarios,
//! against concurrency (the `server.load` grid: throughput and p99 latency against clients)
//! and against payload size (the N x size grids: time against bytes per blob).
//!
//! Grids are found from the scenarios' stored parameters: scenarios of one workload whose
//! parameters differ only in concurrency (or only in count and size) form a line.

use std::collections::BTreeMap;

use plotters::coord::combinators::IntoLogRange;
use plotters::prelude::*;

use crate::format;
use crate::model::Model;
use crate::plot::{BLUE, GREEN, GREY, ORANGE, PURPLE, SKY, VERMILLION, padded, responsive};

/// What varies along a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Axis {
    Concurrency,
    Size,
}

/// One plot: a metric of a workload's grid.
pub struct ScalingPlot {
    pub title: String,
    pub svg: String,
    /// The scenarios drawn.
    pub scenario_refs: Vec<i64>,
}

/// One scenario's place on a line.
struct Member {
    scenario_ref: i64,
    x: f64,
    /// The scenario id, for the legend of the point.
    label: String,
}

/// Parameters that name the line a scenario is on: all but the varying ones.
fn line_key(params: &serde_json::Value, axis: Axis) -> Option<(String, f64)> {
    let map = params.as_object()?;
    let x = match axis {
        Axis::Concurrency => map.get("concurrency")?.as_f64()?,
        Axis::Size => map.get("size")?.as_f64()?,
    };
    let mut rest = map.clone();
    match axis {
        Axis::Concurrency => {
            rest.remove("concurrency");
        }
        Axis::Size => {
            rest.remove("size");
            rest.remove("count");
        }
    }
    Some((serde_json::Value::Object(rest).to_string(), x))
}

/// A line's label: the scenario id without its varying part.
fn line_label(scenario_id: &str, axis: Axis) -> String {
    let parts: Vec<&str> = scenario_id.split('/').skip(1).collect();
    let kept: Vec<&str> = parts
        .into_iter()
        .filter(|p| match axis {
            Axis::Concurrency => !(p.starts_with('c') && p[1..].chars().all(|c| c.is_ascii_digit()) && p.len() > 1),
            Axis::Size => !p.chars().next().is_some_and(|c| c.is_ascii_digit()) || !p.contains('x'),
        })
        .collect();
    if kept.is_empty() { "all".into() } else { kept.join(" ") }
}

/// The metrics plotted along an axis, for a workload.
fn metrics_for(workload: &str, axis: Axis) -> &'static [&'static str] {
    match (workload, axis) {
        ("server.load", Axis::Concurrency) => &["ops_s", "latency_p99_ms"],
        ("server.load", Axis::Size) => &["throughput_mib_s"],
        ("blobs.sync", _) => &["sync_s"],
        ("blobs.list", _) => &["ops_s"],
        (_, Axis::Size) => &["wall_s", "throughput_mib_s"],
        (_, Axis::Concurrency) => &["wall_s"],
    }
}

/// Every scaling plot of the published history.
pub fn plots(model: &Model) -> Vec<ScalingPlot> {
    // (machine, workload, axis) -> line key -> members
    let mut grids: BTreeMap<(i64, String, Axis), BTreeMap<String, Vec<Member>>> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for s in &model.series {
        let se = &s.series;
        if !seen.insert((se.machine_id, se.scenario_ref)) {
            continue;
        }
        let Some(info) = model.scenarios.get(&se.scenario_ref) else {
            continue;
        };
        for axis in [Axis::Concurrency, Axis::Size] {
            if let Some((key, x)) = line_key(&info.params, axis) {
                grids
                    .entry((se.machine_id, se.workload.clone(), axis))
                    .or_default()
                    .entry(key)
                    .or_default()
                    .push(Member {
                        scenario_ref: se.scenario_ref,
                        x,
                        label: se.scenario_id.clone(),
                    });
            }
        }
    }
    let many = model.many_machines();
    let mut out = Vec::new();
    for ((machine, workload, axis), mut lines) in grids {
        lines.retain(|_, members| {
            members.sort_by(|a, b| a.x.total_cmp(&b.x));
            members.dedup_by(|a, b| a.x == b.x);
            members.len() >= 2
        });
        if lines.is_empty() {
            continue;
        }
        for metric in metrics_for(&workload, axis) {
            let mut drawn: Vec<Line> = Vec::new();
            let mut refs = Vec::new();
            let mut unit = String::new();
            let mut direction = String::new();
            for members in lines.values() {
                let mut line = Vec::new();
                for m in members {
                    let Some(i) = model.series_index(machine, m.scenario_ref, metric) else {
                        continue;
                    };
                    let s = &model.series[i];
                    unit.clone_from(&s.series.unit);
                    direction.clone_from(&s.series.direction);
                    let p = &s.latest().summary;
                    line.push((m.x, p.median, p.ci_lower, p.ci_upper));
                    refs.push(m.scenario_ref);
                }
                if line.len() >= 2 {
                    drawn.push((line_label(&members[0].label, axis), line));
                }
            }
            if drawn.is_empty() {
                continue;
            }
            let along = match axis {
                Axis::Concurrency => "concurrency",
                Axis::Size => "bytes per blob",
            };
            let mut title = format!("{workload}: {metric} against {along} (latest point of each scenario)");
            if many && let Some(m) = model.machine(machine) {
                title.push_str(&format!(", machine {}", m.fingerprint));
            }
            let arrow = if direction == "higher" { "↑" } else { "↓" };
            let y_label = format!("{metric} ({unit}), {direction} is better {arrow}");
            let Ok(svg) = draw(&drawn, axis, &y_label, &title) else {
                continue;
            };
            out.push(ScalingPlot {
                title,
                svg,
                scenario_refs: refs,
            });
        }
    }
    out
}

/// A labelled line of points: (x, median, CI lower, CI upper).
type Line = (String, Vec<(f64, f64, f64, f64)>);

const COLOURS: [RGBColor; 7] = [BLUE, VERMILLION, GREEN, ORANGE, PURPLE, SKY, GREY];

fn draw(lines: &[Line], axis: Axis, y_label: &str, title: &str) -> Result<String, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let xs = lines.iter().flat_map(|(_, l)| l.iter().map(|p| p.0));
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    let lo = lines
        .iter()
        .flat_map(|(_, l)| l.iter().map(|p| p.2))
        .fold(f64::INFINITY, f64::min);
    let hi = lines
        .iter()
        .flat_map(|(_, l)| l.iter().map(|p| p.3))
        .fold(f64::NEG_INFINITY, f64::max);
    // From zero when the values are positive: scaling is read as proportions. Room above the
    // lines for the legend, a line of text per line drawn.
    let (y0, y1) = padded(if lo > 0.0 { 0.0 } else { lo }, hi);
    let y1 = y1 + (y1 - y0) * 0.1 * (lines.len() + 1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut builder = ChartBuilder::on(&root);
        builder.margin(12).x_label_area_size(42).y_label_area_size(72);
        macro_rules! finish {
            ($chart:expr, $x_desc:expr, $fmt:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .light_line_style(WHITE)
                    .bold_line_style(RGBColor(0xe4, 0xe4, 0xe4))
                    .x_desc($x_desc)
                    .y_desc(y_label)
                    .x_label_formatter($fmt)
                    .y_label_formatter(&|v| format::value(*v))
                    .axis_desc_style(("sans-serif", 14))
                    .label_style(("sans-serif", 12))
                    .draw()
                    .map_err(|e| err(&e))?;
                for (k, (label, points)) in lines.iter().enumerate() {
                    let colour = COLOURS[k % COLOURS.len()];
                    let style = colour.stroke_width(2);
                    chart
                        .draw_series(LineSeries::new(points.iter().map(|p| (p.0, p.1)), style))
                        .map_err(|e| err(&e))?
                        .label(label.as_str())
                        .legend(move |(x, y)| marker(k, (x + 10, y), colour));
                    chart
                        .draw_series(
                            points
                                .iter()
                                .map(|p| PathElement::new(vec![(p.0, p.2), (p.0, p.3)], colour.stroke_width(1))),
                        )
                        .map_err(|e| err(&e))?;
                    chart
                        .draw_series(
                            points
                                .iter()
                                .map(|p| EmptyElement::at((p.0, p.1)) + marker(k, (0, 0), colour)),
                        )
                        .map_err(|e| err(&e))?;
                }
                chart
                    .configure_series_labels()
                    .border_style(RGBColor(0xbb, 0xbb, 0xbb))
                    .background_style(WHITE.mix(0.9))
                    .label_font(("sans-serif", 12))
                    .position(SeriesLabelPosition::UpperLeft)
                    .draw()
                    .map_err(|e| err(&e))?;
            }};
        }
        match axis {
            Axis::Concurrency => {
                let pad = ((x1 - x0) * 0.05).max(0.5);
                let chart = builder
                    .build_cartesian_2d((x0 - pad)..(x1 + pad), y0..y1)
                    .map_err(|e| err(&e))?;
                // Concurrency is whole: fractional ticks stay unlabelled rather than rounded twice.
                finish!(chart, "concurrent clients or transfers", &|v: &f64| {
                    if (v - v.round()).abs() < 1e-9 {
                        format!("{v:.0}")
                    } else {
                        String::new()
                    }
                });
            }
            Axis::Size => {
                let chart = builder
                    .build_cartesian_2d((x0 / 1.6..x1 * 1.6).log_scale(), y0..y1)
                    .map_err(|e| err(&e))?;
                finish!(chart, "bytes per blob (log scale)", &|v: &f64| format::bytes(*v));
            }
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(responsive(svg, title))
}

/// Marker `k`: a shape per line as well as a colour.
fn marker<DB: DrawingBackend>(k: usize, at: (i32, i32), colour: RGBColor) -> DynElement<'static, DB, (i32, i32)> {
    let (x, y) = at;
    match k % 4 {
        0 => Circle::new((x, y), 4, colour.filled()).into_dyn(),
        1 => TriangleMarker::new((x, y), 5, colour.filled()).into_dyn(),
        2 => Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], colour.filled()).into_dyn(),
        _ => Cross::new((x, y), 4, colour.stroke_width(2)).into_dyn(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_named_without_what_varies() {
        assert_eq!(
            line_label("server.load/upload/10k/c25", Axis::Concurrency),
            "upload 10k"
        );
        assert_eq!(line_label("blobs.upload/100x100k/c1", Axis::Size), "c1");
        assert_eq!(line_label("crypto.encrypt/v1/1x10M", Axis::Size), "v1");
        let p = serde_json::json!({"workload": "blobs.upload", "count": 10, "size": 1000000, "concurrency": 1});
        let (key, x) = line_key(&p, Axis::Size).unwrap();
        assert_eq!(x, 1e6);
        assert!(!key.contains("size") && !key.contains("count"));
        assert!(line_key(&serde_json::json!({"size": "mail", "concurrency": 1}), Axis::Size).is_none());
    }
}
