//! The compare pages' plot: one row per series, its change with the confidence interval as a
//! whisker, oriented so that worse is always to the right (the sign of higher-is-better
//! metrics is flipped), marker shapes by verdict as on the series plots.
//!
//! Written by hand rather than with plotters: every row is a labelled link with its own
//! `<title>`, which plotters' backends cannot emit, and the rest is a few lines and texts.

use std::fmt::Write as _;

use crate::format::percent;
use crate::plot::Mark;
use crate::render::escape;

/// At most this many rows are drawn (the table lists them all).
pub const MAX_ROWS: usize = 40;

const WIDTH: f64 = 760.0;
const LABEL_WIDTH: f64 = 300.0;
const ROW: f64 = 18.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 34.0;
const RIGHT: f64 = 16.0;

pub struct Effect {
    /// Scenario and metric, plain text.
    pub label: String,
    /// Where the row goes (relative).
    pub href: String,
    /// Relative change of B against A and its interval, as fractions (0.05 is +5%).
    pub change: f64,
    pub lower: f64,
    pub upper: f64,
    /// Whether higher values are better: then the row is mirrored, worse stays right.
    pub higher_is_better: bool,
    pub mark: Mark,
    /// What hovering shows; plain text.
    pub title: String,
}

/// The plot's SVG, or `None` when no row has a change to draw.
pub fn effects_svg(effects: &[Effect]) -> Option<String> {
    let rows: Vec<&Effect> = effects
        .iter()
        .filter(|e| e.change.is_finite() && e.lower.is_finite() && e.upper.is_finite())
        .take(MAX_ROWS)
        .collect();
    if rows.is_empty() {
        return None;
    }
    let oriented = |e: &Effect| {
        if e.higher_is_better {
            (-e.change, -e.upper, -e.lower)
        } else {
            (e.change, e.lower, e.upper)
        }
    };
    let extent = rows
        .iter()
        .map(|e| {
            let (c, lo, hi) = oriented(e);
            c.abs().max(lo.abs()).max(hi.abs())
        })
        .fold(0.01f64, f64::max)
        .min(4.0)
        * 1.1;
    let height = TOP + ROW * rows.len() as f64 + BOTTOM;
    let (x0, x1) = (LABEL_WIDTH, WIDTH - RIGHT);
    let x = |v: f64| x0 + (v.clamp(-extent, extent) + extent) / (2.0 * extent) * (x1 - x0);
    let mut svg = String::new();
    let w = &mut svg;
    let _ = write!(
        w,
        r##"<svg viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg" class="plot effects" role="group" aria-label="Changes of B against A with their 95% confidence intervals; each row links to its series"><title>Changes of B against A with their 95% confidence intervals</title><rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#fff"/>"##
    );
    // Grid: zero, and a few round values on each side.
    let step = nice_step(extent);
    let mut v = -(extent / step).floor() * step;
    while v <= extent + 1e-12 {
        let gx = x(v);
        let class = if v.abs() < 1e-12 { "zero" } else { "grid" };
        let _ = write!(
            w,
            r#"<line class="{class}" x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{:.1}"/><text class="tick" x="{gx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            height - BOTTOM,
            height - BOTTOM + 13.0,
            if v.abs() < 1e-12 { "0".to_owned() } else { percent(v) }
        );
        v += step;
    }
    let _ = write!(
        w,
        r#"<text class="axis" x="{:.1}" y="{:.1}" text-anchor="middle">← better · change of B against A · worse →</text><text class="axis" x="{x0}" y="16">{} series, largest changes first</text>"#,
        (x0 + x1) / 2.0,
        height - 4.0,
        rows.len()
    );
    for (i, e) in rows.iter().enumerate() {
        let y = TOP + ROW * i as f64 + ROW / 2.0;
        let (c, lo, hi) = oriented(e);
        let (cx, lx, hx) = (x(c), x(lo), x(hi));
        let title = escape(&e.title);
        let _ = write!(
            w,
            r#"<a href="{}"><g class="row"><title>{title}</title><text class="label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text><line class="whisker" x1="{lx:.1}" y1="{y:.1}" x2="{hx:.1}" y2="{y:.1}"/>"#,
            escape(&e.href),
            x0 - 8.0,
            y + 4.0,
            escape(&crate::format::truncate(&e.label, 44))
        );
        let _ = match e.mark {
            Mark::Regression => write!(w, r#"<path class="pt reg" d="M{cx:.1} {:.1}l5 9h-10z"/>"#, y - 5.0),
            Mark::Improvement => write!(
                w,
                r#"<path class="pt imp" d="M{cx:.1} {:.1}l5 6l-5 6l-5-6z"/>"#,
                y - 6.0
            ),
            Mark::Noisy => write!(w, r#"<circle class="pt noisy" cx="{cx:.1}" cy="{y:.1}" r="3.5"/>"#),
            Mark::Plain => write!(w, r#"<circle class="pt" cx="{cx:.1}" cy="{y:.1}" r="3"/>"#),
        };
        w.push_str("</g></a>");
    }
    w.push_str("</svg>");
    Some(svg)
}

/// A round grid step for an axis reaching `extent` on each side: three or four lines a side.
fn nice_step(extent: f64) -> f64 {
    let raw = extent / 3.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// The marker of a verdict, by its name.
pub fn mark_of(verdict: &str) -> Mark {
    match verdict {
        "regression" => Mark::Regression,
        "improvement" => Mark::Improvement,
        "noisy" => Mark::Noisy,
        _ => Mark::Plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effect(change: f64, higher_is_better: bool, mark: Mark) -> Effect {
        Effect {
            label: "blobs.upload/10x1M/c1 <wall_s>".into(),
            href: "../scenarios/x.html#wall_s".into(),
            change,
            lower: change - 0.01,
            upper: change + 0.01,
            higher_is_better,
            mark,
            title: "a <b> title".into(),
        }
    }

    #[test]
    fn worse_is_right_whatever_the_direction() {
        let svg = effects_svg(&[
            effect(0.10, false, Mark::Regression),
            effect(-0.10, true, Mark::Regression),
            effect(f64::NAN, false, Mark::Plain),
        ])
        .unwrap();
        // Both regressions sit right of the zero line.
        let zero: f64 = svg
            .split(r#"class="zero" x1=""#)
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let xs: Vec<f64> = svg
            .split(r#"<path class="pt reg" d="M"#)
            .skip(1)
            .map(|s| s.split(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(xs.len(), 2, "the NaN row is left out");
        assert!(xs.iter().all(|&x| x > zero), "{xs:?} vs {zero}");
        assert!(svg.contains("&lt;wall_s&gt;") && svg.contains("a &lt;b&gt; title"));
        assert!(!svg.contains("<b>"));
        assert!(effects_svg(&[effect(f64::NAN, false, Mark::Plain)]).is_none());
    }

    #[test]
    fn grid_steps_are_round() {
        for (extent, step) in [(0.11, 0.05), (0.3, 0.1), (1.2, 0.5)] {
            assert!(
                (nice_step(extent) - step).abs() < 1e-9,
                "{extent}: {}",
                nice_step(extent)
            );
        }
    }
}
