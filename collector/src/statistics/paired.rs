//! Paired comparison of two builds run interleaved (A B B A ...): each round pairs one run of
//! A with one of B under the same machine state, so the machine's drift cancels in their
//! ratio. This is what branch comparison uses.
//!
//! The per-round log ratios `ln(b / a)` are tested with the Wilcoxon signed-rank test, and
//! the geometric-mean ratio `exp(mean ln(b / a))` gets a bootstrap CI: rounds resampled with
//! replacement, seeded so that the same data gives the same interval. With a dozen rounds the
//! plain percentile interval is too narrow (it covers about 91% for a nominal 95%), so it is
//! Hesterberg's *expanded* percentile interval: the percentiles are taken at the tail
//! `Phi(-sqrt(n/(n-1)) t(1 - alpha/2, n-1))` instead of `alpha/2`.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::CONFIDENCE;
use super::mann_whitney::standard_normal;
use super::quantile::quantile_of_sorted;
use super::signed_rank::{SignedRank, signed_rank};
use super::verdict::{Direction, Verdict};

/// Fewer rounds than this cannot give a signed-rank p-value below 0.05.
pub const MIN_ROUNDS: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedOptions {
    /// Significance level of the signed-rank test.
    pub alpha: f64,
    /// Smallest relative change worth reporting.
    pub practical_floor: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Coverage of the ratio's CI.
    pub confidence: f64,
    /// Seed of the bootstrap.
    pub seed: u64,
}

impl Default for PairedOptions {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            practical_floor: 0.01,
            resamples: 10_000,
            confidence: CONFIDENCE,
            seed: 0x5eed_abba,
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
    /// The signed-rank test of the log ratios; `None` when every round gave equal values.
    pub test: Option<SignedRank>,
    /// B against A: a regression means B is worse, whichever way the metric is better.
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

/// The verdict of a paired comparison from its ratio, the ratio's CI and the p-value, which
/// may be one adjusted for multiple comparisons (Benjamini-Hochberg across a comparison's
/// series): a change needs the p-value under alpha and a ratio beyond the practical floor;
/// unchanged needs the whole CI within the floor; anything else is noisy.
pub fn paired_verdict(
    ratio: f64,
    ci_lower: f64,
    ci_upper: f64,
    p_value: Option<f64>,
    direction: Direction,
    options: &PairedOptions,
) -> Verdict {
    let floor = options.practical_floor;
    let significant = p_value.is_some_and(|p| p < options.alpha);
    if significant && (ratio - 1.0).abs() > floor {
        match (direction, ratio > 1.0) {
            (Direction::Lower, true) | (Direction::Higher, false) => Verdict::Regression,
            _ => Verdict::Improvement,
        }
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
    let n = logs.len();
    let mean = |v: &mut dyn Iterator<Item = f64>| v.sum::<f64>() / n as f64;
    let ratio = mean(&mut logs.iter().copied()).exp();
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut boot: Vec<f64> = (0..options.resamples)
        .map(|_| mean(&mut (0..n).map(|_| logs[rng.random_range(0..n)])))
        .collect();
    boot.sort_by(f64::total_cmp);
    let nf = n as f64;
    let t = StudentsT::new(0.0, 1.0, nf - 1.0).expect("at least 6 rounds");
    let widened = (nf / (nf - 1.0)).sqrt() * t.inverse_cdf(1.0 - (1.0 - options.confidence) / 2.0);
    let tail = standard_normal().cdf(-widened);
    let ci_lower = quantile_of_sorted(&boot, tail).exp();
    let ci_upper = quantile_of_sorted(&boot, 1.0 - tail).exp();
    let test = signed_rank(&logs);
    let verdict = paired_verdict(ratio, ci_lower, ci_upper, test.map(|t| t.p_value), direction, options);
    Ok(PairedComparison {
        rounds: n,
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
        let same = compare_paired(&a, &a, Direction::Higher, &o).unwrap();
        assert_eq!(same.verdict, Verdict::Unchanged);
        assert!(same.test.is_none());
        // The same data and seed give the same interval.
        assert_eq!(compare_paired(&a, &b, Direction::Lower, &o).unwrap(), c);
    }
}
