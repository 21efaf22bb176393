//! Numbers and dates as the site shows them.

use std::time::{Duration, UNIX_EPOCH};

/// Four significant digits, without exponent notation for everyday magnitudes.
pub fn value(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 6) as usize;
    format!("{v:.decimals$}")
}

/// A whole number with its thousands grouped: `100,000`. (Five lines; a formatting crate
/// for one constant on one page would weigh more.)
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// `[lower, upper]` with the same precision as [`value`].
pub fn interval(lower: f64, upper: f64) -> String {
    format!("{} – {}", value(lower), value(upper))
}

/// A relative change with its sign: `+3.2%`, `−0.4%` (a true minus sign).
pub fn percent(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let p = v * 100.0;
    let digits = if p.abs() >= 100.0 { 0 } else { 1 };
    let text = format!("{:.digits$}%", p.abs());
    if text.trim_start_matches(['0', '.', '%']).is_empty() {
        return format!("±{text}");
    }
    format!("{}{text}", if p < 0.0 { "−" } else { "+" })
}

/// An unsigned share: `2.0%`.
pub fn share(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let p = v * 100.0;
    if p != 0.0 && p.abs() < 0.1 {
        format!("{p:.2}%")
    } else {
        format!("{p:.1}%")
    }
}

/// A relative interval: `[+1.0%, +5.3%]`.
pub fn percent_interval(lower: f64, upper: f64) -> String {
    format!("[{}, {}]", percent(lower), percent(upper))
}

/// A p-value: three decimals, or exponent notation when small.
pub fn p_value(p: f64) -> String {
    if !p.is_finite() {
        "–".into()
    } else if p < 0.001 {
        format!("{p:.1e}")
    } else {
        format!("{p:.3}")
    }
}

/// A commit time as a UTC date and time.
pub fn date(epoch_seconds: i64) -> String {
    let s = rfc3339(epoch_seconds);
    s.replacen('T', " ", 1).trim_end_matches('Z')[..16].to_owned() + " UTC"
}

/// A commit time as a UTC day.
pub fn day(epoch_seconds: i64) -> String {
    rfc3339(epoch_seconds)[..10].to_owned()
}

/// Seconds since the epoch as RFC 3339 UTC (Atom's dates).
pub fn rfc3339(epoch_seconds: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(epoch_seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn short_sha(sha: &str) -> &str {
    sha.get(..10).unwrap_or(sha)
}

/// At most `max` characters, with an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Bytes as a reader says them: `10 kB`, `1 MB` (powers of 1000, as scenario ids).
pub fn bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b;
    let mut unit = 0;
    while v.abs() >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    let text = format!("{v:.1}");
    format!("{} {}", text.trim_end_matches(".0"), UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_four_significant_digits() {
        assert_eq!(value(1234.5678), "1235");
        assert_eq!(value(12.345678), "12.35");
        assert_eq!(value(0.0123456), "0.01235");
        assert_eq!(value(0.0), "0");
        assert_eq!(date(0), "1970-01-01 00:00 UTC");
        assert_eq!(day(86_400 * 365), "1971-01-01");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(0), "0");
    }

    #[test]
    fn changes_carry_their_sign() {
        assert_eq!(percent(0.032), "+3.2%");
        assert_eq!(percent(-0.004), "−0.4%");
        assert_eq!(percent(0.0), "±0.0%");
        assert_eq!(percent(-0.0001), "±0.0%");
        assert_eq!(percent(1.5), "+150%");
        assert_eq!(percent_interval(-0.01, 0.02), "[−1.0%, +2.0%]");
        assert_eq!(share(0.0004), "0.04%");
        assert_eq!(p_value(0.0004), "4.0e-4");
        assert_eq!(p_value(0.25), "0.250");
    }

    #[test]
    fn text_and_sizes() {
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("äbc", 3), "äbc");
        assert_eq!(bytes(10_000.0), "10 kB");
        assert_eq!(bytes(1_500_000.0), "1.5 MB");
        assert_eq!(bytes(512.0), "512 B");
    }
}
