//! Student's two-sample t-test, as the change-point detector uses it to decide whether a split
//! of a series separates two levels.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean and standard deviation of one side of a split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Side {
    pub n: usize,
    pub mean: f64,
    /// Population standard deviation (divides by n), as Otava computes it.
    pub std: f64,
}

impl Side {
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = if n >= 2 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt()
        } else {
            0.0
        };
        Self { n, mean, std }
    }
}

/// Two-sided p-value of Student's equal-variance t-test from the sides' statistics, as
/// `scipy.stats.ttest_ind_from_stats(mean1, std1, n1, mean2, std2, n2)` computes it (the
/// standard deviations are used as given). 1 when there are not at least 3 values in all or
/// nothing varies and the means agree; 0 when nothing varies but the means differ.
pub fn student_t_p_value(a: Side, b: Side) -> f64 {
    if a.n + b.n <= 2 || a.n == 0 || b.n == 0 {
        return 1.0;
    }
    let df = (a.n + b.n - 2) as f64;
    let pooled = ((a.n - 1) as f64 * a.std * a.std + (b.n - 1) as f64 * b.std * b.std) / df;
    let se = (pooled * (1.0 / a.n as f64 + 1.0 / b.n as f64)).sqrt();
    let diff = a.mean - b.mean;
    if se == 0.0 || !se.is_finite() {
        return if diff == 0.0 { 1.0 } else { 0.0 };
    }
    let t = (diff / se).abs();
    let dist = StudentsT::new(0.0, 1.0, df).expect("positive degrees of freedom");
    (2.0 * dist.sf(t)).min(1.0)
}
