//! SVG plot of a series over commits: plotters draws the axes, the 95% CI band and the line
//! of medians; an overlay drawn here adds what plotters cannot: a marker per commit that
//! links to its page with a `<title>` to hover (commit, subject, date, value), markers whose
//! shape says the verdict, and the change points.

use std::fmt::Write as _;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::render::escape;

/// Okabe-Ito colours: told apart with every kind of colour vision. Markers differ by shape
/// too, and every plot has a legend in words.
pub const BLUE: RGBColor = RGBColor(0x00, 0x72, 0xb2);
pub const SKY: RGBColor = RGBColor(0x56, 0xb4, 0xe9);
pub const VERMILLION: RGBColor = RGBColor(0xd5, 0x5e, 0x00);
pub const GREEN: RGBColor = RGBColor(0x00, 0x9e, 0x73);
pub const ORANGE: RGBColor = RGBColor(0xe6, 0x9f, 0x00);
pub const PURPLE: RGBColor = RGBColor(0xcc, 0x79, 0xa7);
pub const GREY: RGBColor = RGBColor(0x66, 0x66, 0x66);

const SIZE: (u32, u32) = (760, 300);
const MAX_SHA_LABELS: usize = 12;
const MAX_DATE_LABELS: usize = 7;

/// How a point is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Plain,
    /// A triangle.
    Regression,
    /// A diamond.
    Improvement,
    /// A hollow circle.
    Noisy,
}

pub struct PlotPoint {
    pub median: f64,
    pub lower: f64,
    pub upper: f64,
    pub mark: Mark,
    /// Where clicking the point goes (relative).
    pub href: String,
    /// What hovering shows; plain text.
    pub title: String,
    /// Short commit id and day, for the axis.
    pub sha_label: String,
    pub day_label: String,
}

/// A change point: the level shifted between `index - 1` and `index`.
pub struct Shift {
    pub index: usize,
    pub regression: bool,
    /// Such as `+5.2%`.
    pub label: String,
    pub title: String,
}

type Fallible<T> = Result<T, String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The plot's SVG. `y_label` names the unit and the good direction.
pub fn series_svg(points: &[PlotPoint], shifts: &[Shift], y_label: &str) -> Fallible<String> {
    let mut svg = String::new();
    let n = points.len();
    let (y0, y1) = y_range(points);
    let mut overlay = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        // Commits sit at 0, 1, 2 ... with half a step of margin on each side.
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .margin_top(22)
            .x_label_area_size(42)
            .y_label_area_size(72)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), y0..y1)
            .map_err(err)?;
        let by_day = n > MAX_SHA_LABELS;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(0xe4, 0xe4, 0xe4))
            .x_desc(if by_day {
                format!("{n} commits, oldest left (labels: commit day)")
            } else {
                format!("{n} commits, oldest left")
            })
            .y_desc(y_label)
            .y_label_formatter(&|v| crate::format::value(*v))
            .axis_desc_style(("sans-serif", 14))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        // Commit labels under their points; plotters' tick placement would not hit integers.
        let every = n.div_ceil(if by_day { MAX_DATE_LABELS } else { MAX_SHA_LABELS }).max(1);
        let label_style = TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, p) in points.iter().enumerate().filter(|(i, _)| i % every == 0) {
            let (x, y) = chart.backend_coord(&(i as f64, y0));
            let text = if by_day { &p.day_label } else { &p.sha_label };
            root.draw(&Text::new(text.clone(), (x, y + 6), label_style.clone()))
                .map_err(err)?;
        }
        if n > 1 {
            let band: Vec<(f64, f64)> = points
                .iter()
                .enumerate()
                .map(|(i, p)| (i as f64, p.upper))
                .chain(points.iter().enumerate().rev().map(|(i, p)| (i as f64, p.lower)))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(band, SKY.mix(0.35).filled())))
                .map_err(err)?;
        }
        chart
            .draw_series(LineSeries::new(
                points.iter().enumerate().map(|(i, p)| (i as f64, p.median)),
                BLUE.stroke_width(if n > 200 { 1 } else { 2 }),
            ))
            .map_err(err)?;

        let (xs, ys) = chart.plotting_area().get_pixel_range();
        let (top, bottom) = (ys.start, ys.end);
        for s in shifts.iter().filter(|s| s.index > 0 && s.index < n) {
            let (x0, _) = chart.backend_coord(&(s.index as f64 - 0.5, y0));
            let class = if s.regression { "cp reg" } else { "cp imp" };
            let glyph = if s.regression { "▲" } else { "◆" };
            let anchor = if x0 > (xs.start + xs.end) / 2 { "end" } else { "start" };
            let dx = if anchor == "end" { -3 } else { 3 };
            write!(
                overlay,
                r#"<g class="{class}"><title>{}</title><line x1="{x0}" y1="{top}" x2="{x0}" y2="{bottom}"/><text x="{}" y="{}" text-anchor="{anchor}">{glyph} change point {}</text></g>"#,
                escape(&s.title),
                x0 + dx,
                top - 6,
                escape(&s.label)
            )
            .map_err(err)?;
        }
        overlay.push_str(r#"<g class="pts">"#);
        for (i, p) in points.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64, p.median));
            write!(overlay, r#"<a href="{}">"#, escape(&p.href)).map_err(err)?;
            if n == 1 {
                let (_, lo) = chart.backend_coord(&(0.0, p.lower));
                let (_, hi) = chart.backend_coord(&(0.0, p.upper));
                write!(overlay, r#"<line class="bar" x1="{x}" y1="{lo}" x2="{x}" y2="{hi}"/>"#).map_err(err)?;
            }
            let title = escape(&p.title);
            match p.mark {
                Mark::Plain => write!(
                    overlay,
                    r#"<circle class="pt" cx="{x}" cy="{y}" r="{}"><title>{title}</title></circle>"#,
                    if n > 200 { "2" } else { "3" }
                ),
                Mark::Noisy => write!(
                    overlay,
                    r#"<circle class="pt noisy" cx="{x}" cy="{y}" r="3.5"><title>{title}</title></circle>"#
                ),
                Mark::Regression => write!(
                    overlay,
                    r#"<path class="pt reg" d="M{x} {}l5 9h-10z"><title>{title}</title></path>"#,
                    y - 6
                ),
                Mark::Improvement => write!(
                    overlay,
                    r#"<path class="pt imp" d="M{x} {}l5 6l-5 6l-5-6z"><title>{title}</title></path>"#,
                    y - 6
                ),
            }
            .map_err(err)?;
            overlay.push_str("</a>");
        }
        overlay.push_str("</g>");
        root.present().map_err(err)?;
    }
    let end = svg.rfind("</svg>").ok_or("plotters wrote no SVG")?;
    svg.insert_str(end, &overlay);
    Ok(responsive(
        svg,
        &format!("{y_label}, by commit: each commit's median with its 95% interval; each point links to its commit"),
    ))
}

/// Lets the page size the plot (the SVG keeps its viewBox and its aspect ratio) and names it
/// for assistive technology: a plot whose points are links is a group of them (an image
/// would hide them from the keyboard's reader), any other an image.
pub fn responsive(svg: String, label: &str) -> String {
    let Some(start) = svg.find("<svg") else { return svg };
    let Some(end) = svg[start..].find('>') else { return svg };
    let head = &svg[start..start + end];
    let cleaned = strip_attribute(&strip_attribute(head, "width"), "height");
    let role = if svg.contains("<a ") { "group" } else { "img" };
    format!(
        "{}{cleaned} class=\"plot\" role=\"{role}\" aria-label=\"{}\"{}",
        &svg[..start],
        crate::render::escape(label),
        &svg[start + end..]
    )
}

fn strip_attribute(tag: &str, name: &str) -> String {
    let needle = format!(" {name}=\"");
    match tag.find(&needle) {
        Some(at) => {
            let rest = &tag[at + needle.len()..];
            let close = rest.find('"').map_or(rest.len(), |c| c + 1);
            format!("{}{}", &tag[..at], &rest[close..])
        }
        None => tag.to_owned(),
    }
}

/// The value range to show: every interval, with a margin, and never a zero-height axis.
pub fn y_range(points: &[PlotPoint]) -> (f64, f64) {
    let lo = points
        .iter()
        .map(|p| p.lower.min(p.median))
        .fold(f64::INFINITY, f64::min);
    let hi = points
        .iter()
        .map(|p| p.upper.max(p.median))
        .fold(f64::NEG_INFINITY, f64::max);
    padded(lo, hi)
}

/// `[lo, hi]` with 15% of margin, never below zero for positive data, never empty.
pub fn padded(lo: f64, hi: f64) -> (f64, f64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn point(i: usize, median: f64, mark: Mark) -> PlotPoint {
        PlotPoint {
            median,
            lower: median * 0.98,
            upper: median * 1.02,
            mark,
            href: format!("../commits/{i:040x}.html"),
            title: format!("commit {i} <b>"),
            sha_label: format!("{i:07x}"),
            day_label: "2026-11-28".into(),
        }
    }

    #[test]
    fn every_point_links_its_commit_and_says_what_it_is() {
        let points: Vec<PlotPoint> = (0..20)
            .map(|i| {
                let mark = match i {
                    12 => Mark::Regression,
                    15 => Mark::Improvement,
                    3 => Mark::Noisy,
                    _ => Mark::Plain,
                };
                point(i, if i >= 12 { 1.1 } else { 1.0 }, mark)
            })
            .collect();
        let shifts = [Shift {
            index: 12,
            regression: true,
            label: "+10%".into(),
            title: "level shift".into(),
        }];
        let svg = series_svg(&points, &shifts, "s, lower is better").unwrap();
        let markers = svg.matches("class=\"pt\"").count() + svg.matches("class=\"pt ").count();
        assert_eq!(markers, 20);
        assert_eq!(svg.matches("class=\"pt reg\"").count(), 1);
        assert_eq!(svg.matches("class=\"pt imp\"").count(), 1);
        assert_eq!(svg.matches("<a href=\"../commits/").count(), 20);
        assert!(svg.contains("commit 12 &lt;b&gt;"), "titles are escaped");
        assert!(svg.contains("change point +10%"));
        assert!(svg.contains("lower is better"));
        let head = &svg[..svg.find('>').unwrap()];
        assert!(
            head.starts_with("<svg") && head.contains("viewBox") && !head.contains("width="),
            "{head}"
        );
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn one_point_gets_its_interval_as_a_bar() {
        let svg = series_svg(&[point(0, 2.0, Mark::Plain)], &[], "s").unwrap();
        assert_eq!(svg.matches("class=\"bar\"").count(), 1);
        assert_eq!(padded(1.0, 1.0), (0.9, 1.1));
    }
}
