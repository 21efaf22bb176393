//! Order statistics: medians, quantiles, and the distribution-free CI of the median.

use statrs::distribution::{Binomial, DiscreteCDF};

/// The median of sorted values (the mean of the two middle ones for an even count).
pub fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    debug_assert!(n > 0);
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The median of values in any order; `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(median_of_sorted(&sorted))
}

/// The `q`-quantile of sorted values by linear interpolation between order statistics
/// (Hyndman and Fan's type 7, the default of R and numpy).
pub fn quantile_of_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    debug_assert!(n > 0 && (0.0..=1.0).contains(&q));
    let h = (n - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Confidence interval of the median from order statistics, valid whatever the distribution:
/// `[x(k), x(n+1-k)]` with the largest `k` whose coverage `1 - 2 P(B <= k - 1)`,
/// `B ~ Binomial(n, 1/2)`, is at least `level`. With too few samples for `level` it returns
/// the full range and its smaller actual coverage. Returns `(lower, upper, coverage)`.
pub fn median_ci(sorted: &[f64], level: f64) -> (f64, f64, f64) {
    let n = sorted.len();
    if n == 1 {
        return (sorted[0], sorted[0], 0.0);
    }
    let b = Binomial::new(0.5, n as u64).expect("p = 0.5 is valid");
    let coverage = |k: usize| 1.0 - 2.0 * b.cdf(k as u64 - 1);
    let mut k = 1;
    while k < n / 2 && coverage(k + 1) >= level {
        k += 1;
    }
    (sorted[k - 1], sorted[n - k], coverage(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_ci_matches_binomial_tables() {
        // n = 10: [x(2), x(9)] covers 1 - 2 * P(B <= 1) = 1 - 2 * 11/1024 = 0.978515625.
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let (lo, hi, level) = median_ci(&v, 0.95);
        assert_eq!((lo, hi), (2.0, 9.0));
        assert!((level - 0.978_515_625).abs() < 1e-12);
        // n = 20: [x(6), x(15)] covers 1 - 2 * P(B <= 5) = 0.9586105346679688.
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        let (lo, hi, level) = median_ci(&v, 0.95);
        assert_eq!((lo, hi), (6.0, 15.0));
        assert!((level - 0.958_610_534_667_968_8).abs() < 1e-12);
        // n = 5 cannot reach 95%: the full range, with its 93.75% coverage.
        let v: Vec<f64> = (1..=5).map(f64::from).collect();
        let (lo, hi, level) = median_ci(&v, 0.95);
        assert_eq!((lo, hi), (1.0, 5.0));
        assert!((level - 0.9375).abs() < 1e-12);
        // n = 6 just can: [x(1), x(6)] covers 1 - 2/64.
        let v: Vec<f64> = (1..=6).map(f64::from).collect();
        let (lo, hi, level) = median_ci(&v, 0.95);
        assert_eq!((lo, hi), (1.0, 6.0));
        assert!((level - 0.968_75).abs() < 1e-12);
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        // numpy.percentile([1, 2, 4, 7, 11], [25, 50, 90]) == [2.0, 4.0, 9.4]
        let v = [1.0, 2.0, 4.0, 7.0, 11.0];
        assert_eq!(quantile_of_sorted(&v, 0.25), 2.0);
        assert_eq!(quantile_of_sorted(&v, 0.5), 4.0);
        assert!((quantile_of_sorted(&v, 0.9) - 9.4).abs() < 1e-12);
        assert_eq!(quantile_of_sorted(&[3.0], 0.75), 3.0);
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
