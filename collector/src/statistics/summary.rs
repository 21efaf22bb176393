//! The data point: the summary of one series' samples in one run.

use super::CONFIDENCE;
use super::mde::minimum_detectable_effect;
use super::outliers::{Outliers, tukey};
use super::quantile::{median_ci, median_of_sorted};

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
    /// assumption. Zero when the interval is not known (a single imported value).
    pub ci_level: f64,
    pub mean: f64,
    /// Sample standard deviation (n - 1).
    pub stddev: f64,
    /// Samples beyond Tukey's fences; counted, not dropped.
    pub outliers: Outliers,
    /// Minimum detectable effect relative to the median (see
    /// [`super::mde::minimum_detectable_effect`]); `None` with fewer than 2 samples or a
    /// zero median.
    pub mde: Option<f64>,
}

impl Summary {
    /// Coefficient of variation: stddev / |mean|.
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
        outliers: tukey(&sorted),
        mde: minimum_detectable_effect(n, stddev, median),
    })
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
        assert!((s.cv() - 2.138_089_935_299_395 / 5.0).abs() < 1e-12);
        // Quartiles 4 and 5.5 (numpy): 9 lies beyond the mild fence at 7.75.
        assert_eq!(s.outliers.high_mild, 1);
        assert!(s.mde.unwrap() > 0.0);
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn the_interval_holds_the_median_of_skewed_data() {
        let v = [1.0, 1.0, 1.1, 1.2, 1.2, 1.3, 1.4, 9.0, 50.0, 100.0];
        let s = summarize(&v).unwrap();
        assert!(s.ci_lower <= s.median && s.median <= s.ci_upper);
        assert!(s.relative_ci_half_width() > 0.0);
        assert_eq!(s.outliers.high_severe, 2);
    }
}
