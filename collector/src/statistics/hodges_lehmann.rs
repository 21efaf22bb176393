//! The Hodges-Lehmann shift: how far the commit's samples moved from the baseline's, with the
//! confidence interval that goes with the Mann-Whitney test. It is the median of all pairwise
//! differences, so, like the test, one disturbed round barely moves it.
//!
//! Written here because no maintained crate offers it; checked against R's
//! `wilcox.test(commit, baseline, conf.int = TRUE)` in `collector/tests/reference.rs`.

use statrs::distribution::ContinuousCDF;

use super::mann_whitney::{EXACT_MAX_TOTAL, standard_normal, u_cdf, u_distribution};
use super::quantile::median_of_sorted;
use super::ranks::{midranks, tie_term};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    /// Median of all differences `commit[j] - baseline[i]`, in the metric's unit.
    pub estimate: f64,
    pub ci_lower: f64,
    pub ci_upper: f64,
    /// Actual coverage of the interval (the exact distribution is discrete).
    pub ci_level: f64,
}

/// The shift of `commit` relative to `baseline` with a CI of at least `level` coverage.
/// Without ties and with `m + n <= 50` the interval comes from the exact distribution of U, as
/// R computes it; otherwise its ranks come from the normal approximation with tie and
/// continuity corrections. `None` if either side is empty.
pub fn hodges_lehmann(baseline: &[f64], commit: &[f64], level: f64) -> Option<Shift> {
    let (m, n) = (commit.len(), baseline.len());
    if m == 0 || n == 0 {
        return None;
    }
    let mut diffs = Vec::with_capacity(m * n);
    for y in commit {
        for x in baseline {
            diffs.push(y - x);
        }
    }
    diffs.sort_by(f64::total_cmp);
    let estimate = median_of_sorted(&diffs);
    let alpha = 1.0 - level;
    let mn = m * n;
    let combined: Vec<f64> = commit.iter().chain(baseline).copied().collect();
    let (_, ties) = midranks(&combined);
    // `k`: 1-based rank of the lower bound among the sorted differences; the upper bound is
    // the k-th from the top.
    let (k, achieved) = if ties.is_empty() && m + n <= EXACT_MAX_TOTAL {
        let counts = u_distribution(m, n);
        // R's qwilcox(alpha/2): the smallest q with P(U <= q) >= alpha/2.
        let mut q = 0;
        while u_cdf(&counts, q) < alpha / 2.0 {
            q += 1;
        }
        let k = q.max(1);
        let achieved = 1.0 - 2.0 * u_cdf(&counts, k - 1);
        (k, achieved)
    } else {
        let total = (m + n) as f64;
        let variance = mn as f64 / 12.0 * ((total + 1.0) - tie_term(&ties) / (total * (total - 1.0)));
        let sigma = variance.max(0.0).sqrt();
        let z = standard_normal().inverse_cdf(1.0 - alpha / 2.0);
        let q = (mn as f64 / 2.0 - 0.5 - z * sigma).ceil();
        let k = (q.max(1.0) as usize).min(mn.div_ceil(2));
        let achieved = if sigma > 0.0 {
            1.0 - 2.0 * standard_normal().cdf((k as f64 - 0.5 - mn as f64 / 2.0) / sigma)
        } else {
            0.0
        };
        (k, achieved)
    };
    Some(Shift {
        estimate,
        ci_lower: diffs[k - 1],
        ci_upper: diffs[mn - k],
        ci_level: achieved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_shift_is_estimated_exactly() {
        let base: Vec<f64> = (0..10).map(|i| 100.0 + i as f64).collect();
        let commit: Vec<f64> = base.iter().map(|v| v + 5.0).collect();
        let s = hodges_lehmann(&base, &commit, 0.95).unwrap();
        assert_eq!(s.estimate, 5.0);
        assert!(s.ci_lower < 5.0 && 5.0 < s.ci_upper);
        assert!(s.ci_level >= 0.95);
        assert!(hodges_lehmann(&[], &[1.0], 0.95).is_none());
    }
}
