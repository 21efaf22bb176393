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

/// `[lower, upper]` with the same precision as [`value`].
pub fn interval(lower: f64, upper: f64) -> String {
    format!("{} – {}", value(lower), value(upper))
}

/// A commit time as a UTC date and time.
pub fn date(epoch_seconds: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(epoch_seconds.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.replacen('T', " ", 1).trim_end_matches('Z').to_owned() + " UTC"
}

pub fn short_sha(sha: &str) -> &str {
    &sha[..sha.len().min(10)]
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
        assert_eq!(date(0), "1970-01-01 00:00:00 UTC");
    }
}
