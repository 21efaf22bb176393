//! Sparklines: the trend of a series in a table cell. Hand-written rather than plotters: a
//! polyline and a dot, a few hundred bytes, where a plotters chart brings axes, margins and a
//! background to take away again.

use std::fmt::Write as _;

const WIDTH: f64 = 110.0;
const HEIGHT: f64 = 26.0;
const PAD: f64 = 3.0;

/// The last `values` as a line, the latest as a dot of `latest_class` (a CSS class saying the
/// verdict). Values are scaled to their own range: a sparkline shows shape, not size.
pub fn sparkline(values: &[f64], latest_class: &str, label: &str) -> String {
    let mut svg = format!(
        r#"<svg class="spark" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{}">"#,
        crate::render::escape(label)
    );
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        svg.push_str("</svg>");
        return svg;
    }
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let n = finite.len();
    let x = |i: usize| {
        if n == 1 {
            WIDTH / 2.0
        } else {
            PAD + (WIDTH - 2.0 * PAD) * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| {
        if hi > lo {
            HEIGHT - PAD - (HEIGHT - 2.0 * PAD) * (v - lo) / span
        } else {
            HEIGHT / 2.0
        }
    };
    if n > 1 {
        svg.push_str(r#"<polyline points=""#);
        for (i, v) in finite.iter().enumerate() {
            write!(svg, "{:.1},{:.1} ", x(i), y(*v)).expect("writing to a string");
        }
        svg.push_str(r#""/>"#);
    }
    write!(
        svg,
        r#"<circle class="{}" cx="{:.1}" cy="{:.1}" r="2.8"/></svg>"#,
        crate::render::escape(latest_class),
        x(n - 1),
        y(finite[n - 1])
    )
    .expect("writing to a string");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_value_is_a_dot_at_the_right_end() {
        let svg = sparkline(&[1.0, 2.0, 3.0], "regression", "trend");
        assert!(svg.contains("<polyline"));
        assert!(
            svg.contains(r#"<circle class="regression" cx="107.0" cy="3.0""#),
            "{svg}"
        );
        let flat = sparkline(&[5.0], "unchanged", "t");
        assert!(!flat.contains("<polyline") && flat.contains("cx=\"55.0\" cy=\"13.0\""));
        assert!(sparkline(&[], "x", "t").ends_with("</svg>"));
    }
}
