//! The minimum detectable effect: the smallest relative shift that the commit-vs-baseline rank
//! test would find, at a given noise and sample count, in most trials.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Significance level the MDE assumes (two-sided, before any multiple-comparison control).
pub const MDE_ALPHA: f64 = 0.05;
/// Power the MDE assumes: the shift is found in this share of trials.
pub const MDE_POWER: f64 = 0.80;

/// The MDE of a data point, relative to its median, for a comparison with a baseline of the
/// same size and noise: `(t(1 - alpha/2) + t(power)) * sigma * sqrt(2/n) / sqrt(3/pi) / |median|`
/// with Student quantiles on `2n - 2` degrees of freedom (the small-sample form of the normal
/// formula), `3/pi` the efficiency of the rank test relative to the t-test at normal noise, and
/// `sigma` the samples' standard deviation (heavy tails make it larger, and the MDE with it:
/// the rank test does better than promised there). `None` with fewer than 2 samples or a zero
/// median.
pub fn minimum_detectable_effect(n: usize, stddev: f64, median: f64) -> Option<f64> {
    if n < 2 || median == 0.0 {
        return None;
    }
    let sigma = stddev;
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
        // n = 10: (t(0.975, 18) + t(0.8, 18)) sqrt(2/10) sqrt(pi/3) = (2.1009 + 0.8620) * 0.4472
        // * 1.0233 = 1.3560 standard deviations.
        let a = minimum_detectable_effect(10, 1.0, 100.0).unwrap();
        assert!((a - 0.013_560).abs() < 2e-6, "{a}");
        let b = minimum_detectable_effect(40, 1.0, 100.0).unwrap();
        let c = minimum_detectable_effect(10, 2.0, 100.0).unwrap();
        assert!(b < a / 1.8, "{a} {b}");
        assert!((c / a - 2.0).abs() < 1e-9);
        assert_eq!(minimum_detectable_effect(1, 0.0, 1.0), None);
        assert_eq!(minimum_detectable_effect(2, 0.0, 0.0), None);
    }
}
