//! Paired comparison of two builds run interleaved (A B B A ...): each round pairs one run of
//! A with one of B under the same machine state, so the machine's drift cancels in their
//! ratio. This is what branch comparison uses.
//!
//! The per-round log ratios `d = ln(b / a)` have a mean that is the log of the geometric-mean
//! ratio `exp(mean d)`. Student's t with `n - 1` degrees of freedom gives its confidence
//! interval and two one-sided p-values: that B is larger than A, and that it is smaller. A
//! regression is asked of the p-value in the metric's worse direction, an improvement of the
//! other; each is a family of its own across a comparison's metrics (`comparison.rs`), so that
//! identical builds are called a regression with probability at most `alpha`.
//!
//! Why Student's t and not the Wilcoxon signed-rank test (used before): with `n` rounds the
//! signed-rank test cannot give a p-value under `2 / 2^n` (0.002 for 10 rounds), while the
//! Benjamini-Hochberg bar for one changed metric among a comparison's hundreds is far lower, so
//! a real change went unseen unless dozens of metrics moved together; and duplicated metrics
//! (four latency quantiles of a single operation) all reached that same smallest p-value at
//! once, which is how they passed the bar when they should not have. The t-test's p-values are
//! continuous. Its level holds for identical builds because the interleaving makes A and B
//! exchangeable within a round: each `d` is symmetric about 0, and for symmetric data the
//! t-test is exact under normality and conservative with heavier tails.

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::CONFIDENCE;
use super::verdict::{Direction, Verdict};

/// Fewer rounds than this give too rough an estimate of the rounds' spread.
pub const MIN_ROUNDS: usize = 6;

/// Version of these statistics, stored with every comparison: 1 was the signed-rank test at
/// 0.05 with a bootstrap interval; 2 this test; 3 adds the latencies' absolute floor
/// (`comparison::LATENCY_ABSOLUTE_FLOOR_MS`); 4 leaves shares of a core and preemptions out of
/// the family (`contract::metrics::not_judged`).
pub const STATISTICS_VERSION: i64 = 4;

/// Paired rounds a comparison runs unless told otherwise: at 2% noise per round, 16 rounds
/// find a 3% change in 93% of trials and a 5% change in all (12 rounds: 80% and 99.8%; see
/// `docs/statistics.md`).
pub const DEFAULT_ROUNDS: u32 = 16;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedOptions {
    /// Significance level of each one-sided family (regressions, improvements): the most
    /// often identical builds are called a regression, whatever the number of metrics.
    pub alpha: f64,
    /// Smallest relative change worth reporting.
    pub practical_floor: f64,
    /// Coverage of the ratio's CI.
    pub confidence: f64,
}

impl Default for PairedOptions {
    fn default() -> Self {
        Self {
            alpha: 0.01,
            practical_floor: 0.01,
            confidence: CONFIDENCE,
        }
    }
}

impl PairedOptions {
    /// How the comparison decides, in sentences for readers (the site and the Markdown
    /// report); `metrics` is the size of the comparison's families.
    pub fn method(&self, metrics: usize) -> Vec<String> {
        vec![
            "The two builds ran on one machine in interleaved rounds (A B B A ...), so each round pairs an A with a B under the same machine state.".to_owned(),
            "The change is the geometric mean of the per-round ratios B/A, with a confidence interval from Student's t on their logarithms.".to_owned(),
            format!(
                "p is the one-sided t-test in the direction of the change, adjusted by Benjamini-Hochberg across the comparison's {metrics} metrics, regressions and improvements each a family of their own."
            ),
            format!(
                "B is a regression or improvement when that p is under {} and the change exceeds {}%; unchanged when the interval lies within 1 ± {}%; noisy otherwise. Identical builds are called a regression in at most {}% of comparisons. At least {MIN_ROUNDS} rounds are needed.",
                self.alpha,
                self.practical_floor * 100.0,
                self.practical_floor * 100.0,
                self.alpha * 100.0
            ),
        ]
    }
}

/// The t-test of the per-round log ratios.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedTest {
    /// `mean / (sd / sqrt(n))`; infinite when every round gave the same non-zero ratio.
    pub t: f64,
    pub df: f64,
    /// One-sided p-value that B is larger than A.
    pub p_larger: f64,
    /// One-sided p-value that B is smaller than A.
    pub p_smaller: f64,
}

impl PairedTest {
    /// The p-value that B is worse than A, for a metric where `direction` is better.
    pub fn p_worse(&self, direction: Direction) -> f64 {
        match direction {
            Direction::Lower => self.p_larger,
            Direction::Higher => self.p_smaller,
        }
    }

    /// The p-value that B is better than A.
    pub fn p_better(&self, direction: Direction) -> f64 {
        match direction {
            Direction::Lower => self.p_smaller,
            Direction::Higher => self.p_larger,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PairedComparison {
    pub rounds: usize,
    /// Geometric mean of b / a over the rounds: 1.03 means B is 3% larger than A.
    pub ratio: f64,
    pub ci_lower: f64,
    pub ci_upper: f64,
    pub ci_level: f64,
    /// `None` when every round gave equal values on both sides.
    pub test: Option<PairedTest>,
    /// B against A, from the unadjusted p-values (a comparison of many metrics adjusts them
    /// and decides again with [`paired_verdict`]).
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PairedError {
    #[error("A has {a} rounds and B has {b}; paired rounds need the same number")]
    Unpaired { a: usize, b: usize },
    #[error("{rounds} rounds are too few for a paired comparison; at least {MIN_ROUNDS} are needed")]
    TooFewRounds { rounds: usize },
    #[error("round {round}: {side} is {value}; ratios need positive finite values")]
    NotPositive {
        round: usize,
        side: &'static str,
        value: f64,
    },
}

/// Rounds a paired comparison needs for its ratio's CI (at `confidence`) to be within
/// `target` either way, when the per-round log ratios spread with standard deviation
/// `sd_log`: the smallest `n` with `t(n - 1) sd / sqrt(n) <= ln(1 + target)`, and never fewer
/// than [`MIN_ROUNDS`]. `None` beyond 100,000 rounds.
pub fn rounds_for_target(sd_log: f64, target: f64, confidence: f64) -> Option<usize> {
    let goal = (1.0 + target).ln();
    let quantile = 1.0 - (1.0 - confidence) / 2.0;
    (MIN_ROUNDS..=100_000).find(|&n| {
        let t = StudentsT::new(0.0, 1.0, (n - 1) as f64).expect("at least 6 rounds");
        t.inverse_cdf(quantile) * sd_log / (n as f64).sqrt() <= goal
    })
}

/// The verdict of a paired comparison from its ratio, the ratio's CI and the one-sided
/// p-values that B is worse and that it is better (adjusted for multiple comparisons, or not):
/// a change needs its p-value under alpha and a ratio beyond the practical floor that way;
/// unchanged needs the whole CI within the floor; anything else is noisy.
pub fn paired_verdict(
    ratio: f64,
    ci_lower: f64,
    ci_upper: f64,
    p_worse: Option<f64>,
    p_better: Option<f64>,
    direction: Direction,
    options: &PairedOptions,
) -> Verdict {
    let floor = options.practical_floor;
    let larger = ratio > 1.0 + floor;
    let smaller = ratio < 1.0 - floor;
    let (worse, better) = match direction {
        Direction::Lower => (larger, smaller),
        Direction::Higher => (smaller, larger),
    };
    let significant = |p: Option<f64>| p.is_some_and(|p| p < options.alpha);
    if worse && significant(p_worse) {
        Verdict::Regression
    } else if better && significant(p_better) {
        Verdict::Improvement
    } else if ci_lower >= 1.0 - floor && ci_upper <= 1.0 + floor {
        Verdict::Unchanged
    } else {
        Verdict::Noisy
    }
}

/// Compares B against A from per-round paired samples (`a[i]` and `b[i]` from round `i`).
pub fn compare_paired(
    a: &[f64],
    b: &[f64],
    direction: Direction,
    options: &PairedOptions,
) -> Result<PairedComparison, PairedError> {
    if a.len() != b.len() {
        return Err(PairedError::Unpaired { a: a.len(), b: b.len() });
    }
    if a.len() < MIN_ROUNDS {
        return Err(PairedError::TooFewRounds { rounds: a.len() });
    }
    for (round, (&x, &y)) in a.iter().zip(b).enumerate() {
        for (side, value) in [("A", x), ("B", y)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(PairedError::NotPositive { round, side, value });
            }
        }
    }
    let logs: Vec<f64> = a.iter().zip(b).map(|(x, y)| (y / x).ln()).collect();
    let n = logs.len() as f64;
    // Equal ratios have no spread, exactly (a mean computed from them may be off by a bit).
    let (mean, sd) = if logs.iter().all(|d| *d == logs[0]) {
        (logs[0], 0.0)
    } else {
        let mean = logs.iter().sum::<f64>() / n;
        (
            mean,
            (logs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt(),
        )
    };
    let se = sd / n.sqrt();
    let df = n - 1.0;
    let t_dist = StudentsT::new(0.0, 1.0, df).expect("at least 6 rounds");
    let half_width = t_dist.inverse_cdf(1.0 - (1.0 - options.confidence) / 2.0) * se;
    let test = if se > 0.0 {
        let t = mean / se;
        Some(PairedTest {
            t,
            df,
            p_larger: t_dist.sf(t),
            p_smaller: t_dist.cdf(t),
        })
    } else if mean != 0.0 {
        // Every round gave the same ratio, not 1: a difference without spread, such as a
        // count that changed by the same amount in every round.
        let larger = mean > 0.0;
        Some(PairedTest {
            t: mean.signum() * f64::INFINITY,
            df,
            p_larger: if larger { 0.0 } else { 1.0 },
            p_smaller: if larger { 1.0 } else { 0.0 },
        })
    } else {
        None
    };
    let (ci_lower, ci_upper) = ((mean - half_width).exp(), (mean + half_width).exp());
    let ratio = mean.exp();
    let verdict = paired_verdict(
        ratio,
        ci_lower,
        ci_upper,
        test.map(|t| t.p_worse(direction)),
        test.map(|t| t.p_better(direction)),
        direction,
        options,
    );
    Ok(PairedComparison {
        rounds: logs.len(),
        ratio,
        ci_lower,
        ci_upper,
        ci_level: options.confidence,
        test,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_for_a_target_follow_the_spread() {
        // No spread: the minimum. 2% per round for ±2%: about (2.1 x 2/2)^2 plus the t's
        // heavier tail at few rounds.
        assert_eq!(rounds_for_target(0.0, 0.02, 0.95), Some(MIN_ROUNDS));
        let n = rounds_for_target(0.02, 0.02, 0.95).unwrap();
        assert!((6..=8).contains(&n), "{n}");
        // Twice the spread, four times the rounds (roughly, as the t's tail thins).
        let m = rounds_for_target(0.04, 0.02, 0.95).unwrap();
        assert!((15..=20).contains(&m), "{m}");
        assert_eq!(rounds_for_target(10.0, 0.001, 0.95), None);
    }

    #[test]
    fn bad_input_is_refused_clearly() {
        let o = PairedOptions::default();
        let ten = [1.0; 10];
        assert_eq!(
            compare_paired(&ten, &[1.0; 9], Direction::Lower, &o),
            Err(PairedError::Unpaired { a: 10, b: 9 })
        );
        assert_eq!(
            compare_paired(&[1.0; 3], &[1.0; 3], Direction::Lower, &o),
            Err(PairedError::TooFewRounds { rounds: 3 })
        );
        let mut zero = ten;
        zero[4] = 0.0;
        let err = compare_paired(&ten, &zero, Direction::Lower, &o).unwrap_err();
        assert_eq!(err.to_string(), "round 4: B is 0; ratios need positive finite values");
    }

    #[test]
    fn identical_builds_are_unchanged_and_drift_cancels() {
        let o = PairedOptions::default();
        // The machine drifts by 30% over the rounds; B is A plus 5%, round by round.
        let a: Vec<f64> = (0..12).map(|i| 1.0 + 0.03 * i as f64).collect();
        let b: Vec<f64> = a
            .iter()
            .enumerate()
            .map(|(i, x)| x * 1.05 * (1.0 + 0.001 * (i % 3) as f64))
            .collect();
        let c = compare_paired(&a, &b, Direction::Lower, &o).unwrap();
        assert_eq!(c.verdict, Verdict::Regression);
        assert!((c.ratio - 1.051).abs() < 0.001, "{}", c.ratio);
        assert!(c.ci_lower > 1.04 && c.ci_upper < 1.06);
        // Where higher is better, the same data is an improvement.
        assert_eq!(
            compare_paired(&a, &b, Direction::Higher, &o).unwrap().verdict,
            Verdict::Improvement
        );
        let same = compare_paired(&a, &a, Direction::Higher, &o).unwrap();
        assert_eq!(same.verdict, Verdict::Unchanged);
        assert!(same.test.is_none());
    }

    #[test]
    fn the_t_test_matches_a_hand_computation() {
        // Log ratios 0.1, 0.0, 0.2, 0.1, 0.05, 0.15: mean 0.1, sd sqrt(0.025 / 5) = 0.0707.
        let d = [0.1, 0.0, 0.2, 0.1, 0.05, 0.15];
        let a = [1.0; 6];
        let b: Vec<f64> = d.iter().map(|x: &f64| x.exp()).collect();
        let c = compare_paired(&a, &b, Direction::Lower, &PairedOptions::default()).unwrap();
        let t = c.test.unwrap();
        assert!((t.t - 0.1 / (0.005f64.sqrt() / 6f64.sqrt())).abs() < 1e-9, "{}", t.t);
        // scipy.stats.ttest_1samp(d, 0, alternative="greater").pvalue (scipy 1.16)
        assert!((t.p_larger - 0.008_981_442_3).abs() < 1e-9, "{}", t.p_larger);
        assert!((t.p_larger + t.p_smaller - 1.0).abs() < 1e-12);
        // 95% CI of the mean: 0.1 -+ 2.5706 * 0.028868.
        assert!((c.ci_lower.ln() - (0.1 - 2.570_582 * 0.028_867_5)).abs() < 1e-5);
        assert_eq!(c.verdict, Verdict::Regression);
    }

    #[test]
    fn a_difference_without_spread_is_certain() {
        let a = [100.0; 8];
        let b = [102.0; 8];
        let c = compare_paired(&a, &b, Direction::Lower, &PairedOptions::default()).unwrap();
        assert_eq!(c.test.unwrap().p_larger, 0.0);
        assert_eq!(c.verdict, Verdict::Regression);
        assert_eq!((c.ci_lower, c.ci_upper), (c.ratio, c.ratio));
        // Below the practical floor it is unchanged, however certain.
        let c = compare_paired(&a, &[100.5; 8], Direction::Lower, &PairedOptions::default()).unwrap();
        assert_eq!(c.verdict, Verdict::Unchanged);
    }
}
