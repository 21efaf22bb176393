//! The verdict of a commit on a series: did it change against its baseline (the previous point
//! of the branch on the same machine), and which way?
//!
//! A **regression** or **improvement** needs all three:
//! 1. the Mann-Whitney p-value of the raw samples, adjusted by Benjamini-Hochberg across the
//!    run's series, under `alpha`;
//! 2. a Hodges-Lehmann shift, relative to the baseline's median, larger than the series'
//!    noise floor from history (Q3 + 3 IQR of consecutive relative changes), when known;
//! 3. and larger than the practical floor (1%): smaller changes are not worth anyone's time.
//!
//! Otherwise the commit is **unchanged** when the shift's confidence interval lies within
//! those floors (a change large enough to matter is ruled out), and **noisy** when it does not
//! (the data cannot tell). A series without a baseline is **new**. Which way is worse depends
//! on the metric: time regresses up, throughput regresses down.

use super::CONFIDENCE;
use super::counts::{COUNT_FLOOR, count_verdict, unknown_spread};
use super::fdr::benjamini_hochberg;
use super::hodges_lehmann::{Shift, hodges_lehmann};
use super::mann_whitney::mann_whitney_u;
use super::noise_floor::{NoiseFloor, noise_floor};
use super::quantile::median;

pub use contract::{Direction, Verdict};

/// The decision rule's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// False discovery rate across a run's series.
    pub alpha: f64,
    /// Smallest relative change worth reporting.
    pub practical_floor: f64,
    /// Fewer samples than this on either side: no rank test, only the medians are compared.
    pub min_samples: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            practical_floor: 0.01,
            min_samples: 3,
        }
    }
}

/// A commit's samples measured against its baseline's, before the run-wide adjustment.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub direction: Direction,
    pub commit_n: usize,
    pub commit_median: f64,
    /// `None` for a new series.
    pub baseline: Option<BaselineStats>,
    /// Two-sided Mann-Whitney p-value; `None` without a baseline or with too few samples.
    pub p_value: Option<f64>,
    /// Hodges-Lehmann shift in the metric's unit, with its CI.
    pub shift: Option<Shift>,
    /// The shift relative to the baseline's median (the change of the medians when there is no
    /// rank test); infinite when the baseline's median is 0 and the commit's is not.
    pub relative: Option<RelativeShift>,
    /// The series' noise floor from the points before the commit, if there are enough.
    pub noise_floor: Option<NoiseFloor>,
    /// For a count-round series (one deterministic value per run, judged by `counts`), the
    /// spread assumed while it has no history; `None` for the others.
    pub count_spread: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineStats {
    pub n: usize,
    pub median: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelativeShift {
    pub estimate: f64,
    /// CI bounds; equal to the estimate when there is no rank test.
    pub ci_lower: f64,
    pub ci_upper: f64,
}

/// A comparison decided in the context of its run.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub comparison: Comparison,
    /// Benjamini-Hochberg adjusted p-value.
    pub q_value: Option<f64>,
    /// The relative change the shift had to exceed: the larger of the noise and practical
    /// floors.
    pub threshold: f64,
    pub verdict: Verdict,
}

/// Measures a commit's samples against its baseline's. `history` is the series' points
/// (medians) before the commit, oldest first, ending with the baseline's; it gives the noise
/// floor. `baseline` is `None` for a new series.
pub fn compare(
    baseline: Option<&[f64]>,
    commit: &[f64],
    history: &[f64],
    direction: Direction,
    policy: &Policy,
) -> Comparison {
    let commit_median = median(commit).unwrap_or(f64::NAN);
    let mut out = Comparison {
        direction,
        commit_n: commit.len(),
        commit_median,
        baseline: None,
        p_value: None,
        shift: None,
        relative: None,
        noise_floor: noise_floor(history),
        count_spread: None,
    };
    let Some(baseline) = baseline.filter(|b| !b.is_empty() && !commit.is_empty()) else {
        return out;
    };
    let base_median = median(baseline).expect("not empty");
    out.baseline = Some(BaselineStats {
        n: baseline.len(),
        median: base_median,
    });
    let relative = |v: f64| {
        if base_median != 0.0 {
            v / base_median.abs()
        } else if v == 0.0 {
            0.0
        } else {
            v.signum() * f64::INFINITY
        }
    };
    if baseline.len() >= policy.min_samples && commit.len() >= policy.min_samples {
        let test = mann_whitney_u(baseline, commit).expect("both sides have samples");
        let shift = hodges_lehmann(baseline, commit, CONFIDENCE).expect("both sides have samples");
        out.p_value = Some(test.p_value);
        out.relative = Some(RelativeShift {
            estimate: relative(shift.estimate),
            ci_lower: relative(shift.ci_lower),
            ci_upper: relative(shift.ci_upper),
        });
        out.shift = Some(shift);
    } else {
        let change = relative(commit_median - base_median);
        out.relative = Some(RelativeShift {
            estimate: change,
            ci_lower: change,
            ci_upper: change,
        });
    }
    out
}

/// Measures a count-round series' value against its baseline's (see `counts`); `history` as
/// for [`compare`].
pub fn compare_counted(
    metric: &str,
    baseline: Option<&[f64]>,
    commit: &[f64],
    history: &[f64],
    direction: Direction,
) -> Comparison {
    // Not a rank test: with one value per side, `compare` takes the change of the medians.
    let policy = Policy {
        min_samples: usize::MAX,
        ..Policy::default()
    };
    Comparison {
        count_spread: Some(unknown_spread(metric)),
        ..compare(baseline, commit, history, direction, &policy)
    }
}

/// Decides every comparison of one run together: their p-values are adjusted across the run
/// by Benjamini-Hochberg before the floors apply.
pub fn assess(comparisons: Vec<Comparison>, policy: &Policy) -> Vec<Assessment> {
    let tested: Vec<usize> = (0..comparisons.len())
        .filter(|&i| comparisons[i].p_value.is_some())
        .collect();
    let p: Vec<f64> = tested
        .iter()
        .map(|&i| comparisons[i].p_value.expect("filtered"))
        .collect();
    let q = benjamini_hochberg(&p);
    let mut q_of = vec![None; comparisons.len()];
    for (k, &i) in tested.iter().enumerate() {
        q_of[i] = Some(q[k]);
    }
    comparisons
        .into_iter()
        .zip(q_of)
        .map(|(comparison, q_value)| decide(comparison, q_value, policy))
        .collect()
}

fn decide(comparison: Comparison, q_value: Option<f64>, policy: &Policy) -> Assessment {
    if let Some(unknown) = comparison.count_spread {
        let (threshold, verdict) = match &comparison.baseline {
            Some(base) => count_verdict(
                base.median,
                comparison.commit_median,
                comparison.noise_floor.as_ref(),
                unknown,
                comparison.direction,
            ),
            None => (COUNT_FLOOR, Verdict::New),
        };
        return Assessment {
            comparison,
            q_value,
            threshold,
            verdict,
        };
    }
    let floor = comparison.noise_floor.map(|f| f.threshold);
    let threshold = floor.unwrap_or(0.0).max(policy.practical_floor);
    let verdict = match (&comparison.baseline, comparison.relative) {
        (None, _) | (_, None) => Verdict::New,
        (Some(_), Some(rel)) => {
            let within = rel.ci_lower >= -threshold && rel.ci_upper <= threshold;
            let beyond = rel.estimate.abs() > threshold;
            match q_value {
                Some(q) if q < policy.alpha && beyond => comparison.direction.judge(rel.estimate > 0.0),
                Some(_) if within => Verdict::Unchanged,
                Some(_) => Verdict::Noisy,
                // No rank test (a single imported value per side): only the history can say
                // whether the change of the medians stands out.
                None if within => Verdict::Unchanged,
                None if floor.is_some() && beyond => comparison.direction.judge(rel.estimate > 0.0),
                None => Verdict::Noisy,
            }
        }
    };
    Assessment {
        comparison,
        q_value,
        threshold,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn around(level: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| level * (1.0 + 0.002 * ((i * 7 % n) as f64 - n as f64 / 2.0) / n as f64))
            .collect()
    }

    #[test]
    fn direction_decides_which_way_is_a_regression() {
        let policy = Policy::default();
        let base = around(100.0, 10);
        let slower = around(110.0, 10);
        let time = compare(Some(&base), &slower, &[], Direction::Lower, &policy);
        let rate = compare(Some(&base), &slower, &[], Direction::Higher, &policy);
        let a = assess(vec![time, rate], &policy);
        assert_eq!(a[0].verdict, Verdict::Regression);
        assert_eq!(a[1].verdict, Verdict::Improvement);
        assert!((a[0].comparison.relative.unwrap().estimate - 0.10).abs() < 0.002);
    }

    #[test]
    fn small_or_unresolved_changes_are_not_flagged() {
        let policy = Policy::default();
        let base = around(100.0, 10);
        // A 0.5% shift is below the practical floor: unchanged, its CI well inside 1%.
        let tiny = around(100.5, 10);
        // Wide noise: the CI straddles the floor, so the data cannot tell.
        let wide: Vec<f64> = (0..10).map(|i| 100.0 + if i % 2 == 0 { 8.0 } else { -8.0 }).collect();
        let new = compare(None, &tiny, &[], Direction::Lower, &policy);
        let a = assess(
            vec![
                compare(Some(&base), &tiny, &[], Direction::Lower, &policy),
                compare(Some(&base), &wide, &[], Direction::Lower, &policy),
                new,
            ],
            &policy,
        );
        assert_eq!(a[0].verdict, Verdict::Unchanged);
        assert_eq!(a[1].verdict, Verdict::Noisy);
        assert_eq!(a[2].verdict, Verdict::New);
        assert_eq!(a[2].q_value, None);
    }

    #[test]
    fn the_noise_floor_raises_the_bar() {
        let policy = Policy::default();
        let base = around(100.0, 10);
        let up = around(104.0, 10);
        // History alternating by 5%: the floor is far above 4%.
        let history: Vec<f64> = (0..31).map(|i| if i % 2 == 0 { 100.0 } else { 105.0 }).collect();
        let a = assess(
            vec![compare(Some(&base), &up, &history, Direction::Lower, &policy)],
            &policy,
        );
        assert!(a[0].threshold > 0.05);
        assert_ne!(a[0].verdict, Verdict::Regression);
        // Single imported values: judged by the history alone.
        let quiet: Vec<f64> = (0..31).map(|i| 100.0 + (i % 3) as f64 * 0.1).collect();
        let a = assess(
            vec![
                compare(Some(&[100.0]), &[110.0], &quiet, Direction::Lower, &policy),
                compare(Some(&[100.0]), &[110.0], &[], Direction::Lower, &policy),
            ],
            &policy,
        );
        assert_eq!(a[0].verdict, Verdict::Regression);
        assert_eq!(a[1].verdict, Verdict::Noisy);
    }

    #[test]
    fn count_series_are_judged_without_a_test() {
        let policy = Policy::default();
        let steady: Vec<f64> = (0..31).map(|i| 1e8 + (i % 2) as f64 * 1e4).collect();
        let a = assess(
            vec![
                compare_counted(
                    "client_instructions",
                    Some(&[1e8]),
                    &[1.01e8],
                    &steady,
                    Direction::Lower,
                ),
                compare_counted("client_instructions", Some(&[1e8]), &[1.01e8], &[], Direction::Lower),
                compare_counted("client_instructions", Some(&[1e8]), &[1.0001e8], &[], Direction::Lower),
                compare_counted("client_instructions", None, &[1e8], &[], Direction::Lower),
            ],
            &policy,
        );
        let verdicts: Vec<Verdict> = a.iter().map(|a| a.verdict).collect();
        assert_eq!(
            verdicts,
            [Verdict::Regression, Verdict::Noisy, Verdict::Unchanged, Verdict::New]
        );
        assert!(a.iter().all(|a| a.q_value.is_none()));
    }

    #[test]
    fn zero_baselines_do_not_divide_by_zero() {
        let policy = Policy::default();
        let zeros = [0.0; 10];
        let some: Vec<f64> = (0..10).map(|i| 1.0 + i as f64 * 0.01).collect();
        let a = assess(
            vec![
                compare(Some(&zeros), &zeros, &[], Direction::Lower, &policy),
                compare(Some(&zeros), &some, &[], Direction::Lower, &policy),
            ],
            &policy,
        );
        assert_eq!(a[0].verdict, Verdict::Unchanged);
        assert_eq!(a[1].verdict, Verdict::Regression);
        assert!(a[1].comparison.relative.unwrap().estimate.is_infinite());
    }
}
