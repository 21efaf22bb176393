//! The minimum detectable effect: the smallest relative shift that the commit-vs-baseline rank
//! test would find, at a given noise and sample count, in most trials.

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::quantile::quantile_of_sorted;

/// Significance level the MDE assumes (two-sided, before any multiple-comparison control).
pub const MDE_ALPHA: f64 = 0.05;
/// Power the MDE assumes: the shift is found in this share of trials.
pub const MDE_POWER: f64 = 0.80;

/// The MDE of a data point, relative to its median, for a comparison with a baseline of the
/// same size and noise: `(t(1 - alpha/2) + t(power)) * sigma * sqrt(2/n) / sqrt(3/pi) / |median|`
/// with Student quantiles on `2n - 2` degrees of freedom (the small-sample form of the normal
/// formula), `3/pi` the efficiency of the rank test relative to the t-test at normal noise, and
/// `sigma` estimated robustly as IQR / 1.349 (the standard deviation when the IQR is zero, as
/// for quantised samples). `None` with fewer than 2 samples or a zero median.
pub fn minimum_detectable_effect(sorted: &[f64], stddev: f64, median: f64) -> Option<f64> {
    let n = sorted.len();
    if n < 2 || median == 0.0 {
        return None;
    }
    let iqr = quantile_of_sorted(sorted, 0.75) - quantile_of_sorted(sorted, 0.25);
    let sigma = if iqr > 0.0 { iqr / 1.349 } else { stddev };
    let t = StudentsT::new(0.0, 1.0, (2 * n - 2) as f64).expect("positive degrees of freedom");
    let z = t.inverse_cdf(1.0 - MDE_ALPHA / 2.0) + t.inverse_cdf(MDE_POWER);
    let efficiency = 3.0 / std::f64::consts::PI;
    Some(z * sigma * (2.0 / n as f64).sqrt() / efficiency.sqrt() / median.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mde_shrinks_with_samples_and_grows_with_noise() {
        let spread = |n: usize, width: f64| -> Vec<f64> {
            (0..n)
                .map(|i| 100.0 + width * (i as f64 / (n - 1) as f64 - 0.5))
                .collect()
        };
        let a = minimum_detectable_effect(&spread(10, 4.0), 1.3, 100.0).unwrap();
        let b = minimum_detectable_effect(&spread(40, 4.0), 1.3, 100.0).unwrap();
        let c = minimum_detectable_effect(&spread(10, 8.0), 2.6, 100.0).unwrap();
        assert!(b < a / 1.8, "{a} {b}");
        assert!((c / a - 2.0).abs() < 1e-9);
        assert_eq!(minimum_detectable_effect(&[1.0], 0.0, 1.0), None);
        assert_eq!(minimum_detectable_effect(&[0.0, 0.0], 0.0, 0.0), None);
        // Quantised samples with a zero IQR fall back to the standard deviation.
        let q = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0];
        assert!(minimum_detectable_effect(&q, 0.33, 1.0).unwrap() > 0.0);
    }
}
