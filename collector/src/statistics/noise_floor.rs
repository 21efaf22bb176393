//! The noise floor of a series: how much its points move from one commit to the next when
//! nothing changed. A rank test on one run's samples sees only the noise within that run;
//! runs on different days also differ by the machine's state, which only history shows.
//! This is rustc-perf's significance threshold.

use super::quantile::median_of_sorted;

/// Points of history the floor looks at: the last 30, as rustc-perf does.
pub const HISTORY_POINTS: usize = 30;
/// Fewer consecutive changes than this give quartiles too rough to trust; the floor is then
/// unknown and only the practical floor applies.
pub const MIN_CHANGES: usize = 10;
/// The fence: Q3 + 3 IQR.
pub const IQR_FACTOR: f64 = 3.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseFloor {
    /// The relative change a commit must exceed to stand out of the series' own noise.
    pub threshold: f64,
    pub q1: f64,
    pub q3: f64,
    /// Consecutive changes the quartiles were computed from.
    pub changes: usize,
}

/// The floor from the points (data point medians) before the commit, oldest first; only the
/// last [`HISTORY_POINTS`] are used. The consecutive relative changes `|x[i+1] - x[i]| / |x[i]|`
/// (skipping a zero `x[i]`) are sorted; Q1 and Q3 are the medians of their lower and upper
/// halves (the middle value of an odd count belongs to neither); the threshold is
/// `Q3 + 3 (Q3 - Q1)`. `None` with fewer than [`MIN_CHANGES`] changes.
pub fn noise_floor(history: &[f64]) -> Option<NoiseFloor> {
    let recent = &history[history.len().saturating_sub(HISTORY_POINTS)..];
    let mut changes: Vec<f64> = recent
        .windows(2)
        .filter(|w| w[0] != 0.0)
        .map(|w| ((w[1] - w[0]) / w[0]).abs())
        .collect();
    if changes.len() < MIN_CHANGES {
        return None;
    }
    changes.sort_by(f64::total_cmp);
    let half = changes.len() / 2;
    let q1 = median_of_sorted(&changes[..half]);
    let q3 = median_of_sorted(&changes[changes.len() - half..]);
    Some(NoiseFloor {
        threshold: q3 + IQR_FACTOR * (q3 - q1),
        q1,
        q3,
        changes: changes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_q3_plus_three_iqr_of_relative_changes() {
        // Alternating 100 and 101 then back: changes are 1% and 0.990099...% alternately.
        let mut h = Vec::new();
        for i in 0..12 {
            h.push(if i % 2 == 0 { 100.0 } else { 101.0 });
        }
        let f = noise_floor(&h).unwrap();
        assert_eq!(f.changes, 11);
        let up = 0.01;
        let down = 1.0 / 101.0;
        // 11 changes: 5 downs, 6 ups sorted; lower half = 5 smallest (downs), upper half = 5
        // largest (ups).
        assert!((f.q1 - down).abs() < 1e-15 && (f.q3 - up).abs() < 1e-15);
        assert!((f.threshold - (up + 3.0 * (up - down))).abs() < 1e-15);
        assert!(noise_floor(&h[..10]).is_none());
        // Only the last 30 points count.
        let mut long = vec![1000.0, 1.0, 1000.0];
        long.extend(std::iter::repeat_n(50.0, 30));
        assert_eq!(noise_floor(&long).unwrap().threshold, 0.0);
    }
}
