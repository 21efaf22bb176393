//! Statistics of benchmark samples. The prose twin of this module is `docs/statistics.md`;
//! change both together.

use statrs::distribution::{Binomial, DiscreteCDF};

/// Target coverage of confidence intervals.
pub const CONFIDENCE: f64 = 0.95;

/// The summary of one series' samples in one run: a data point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    /// Distribution-free confidence interval of the median (see [`median_ci`]).
    pub ci_lower: f64,
    pub ci_upper: f64,
    /// The interval's actual coverage: at least [`CONFIDENCE`] when there are enough samples
    /// (6 or more), less with fewer, and then reported honestly rather than widened by
    /// assumption.
    pub ci_level: f64,
    pub mean: f64,
    /// Sample standard deviation (n - 1).
    pub stddev: f64,
}

impl Summary {
    /// Coefficient of variation: stddev / mean.
    pub fn cv(&self) -> f64 {
        if self.mean == 0.0 {
            0.0
        } else {
            self.stddev / self.mean.abs()
        }
    }

    /// Half-width of the CI relative to the median.
    pub fn relative_ci_half_width(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.ci_upper - self.ci_lower) / 2.0 / self.median.abs()
        }
    }
}

/// Summarises samples; `None` if there are none or any is not finite.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() || samples.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = median_of_sorted(&sorted);
    let (ci_lower, ci_upper, ci_level) = median_ci(&sorted, CONFIDENCE);
    let mean = sorted.iter().sum::<f64>() / n as f64;
    let stddev = if n > 1 {
        (sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    Some(Summary {
        n,
        median,
        ci_lower,
        ci_upper,
        ci_level,
        mean,
        stddev,
    })
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
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
    fn summary_of_known_values() {
        let s = summarize(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.n, 8);
        assert_eq!(s.median, 4.5);
        assert_eq!(s.mean, 5.0);
        assert!((s.stddev - 2.138_089_935_299_395).abs() < 1e-12);
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[1.0, f64::NAN]).is_none());
    }

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
    fn the_interval_holds_the_median_of_skewed_data() {
        let v = [1.0, 1.0, 1.1, 1.2, 1.2, 1.3, 1.4, 9.0, 50.0, 100.0];
        let s = summarize(&v).unwrap();
        assert!(s.ci_lower <= s.median && s.median <= s.ci_upper);
        assert!(s.relative_ci_half_width() > 0.0);
    }
}
