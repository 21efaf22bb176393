//! Accuracy of the statistics on synthetic series with known truth: how often they call a
//! change that is not there (A/A), how often they find one that is (power), and where change
//! points land. The accuracy tests run these at a size that takes seconds; the `accuracy`
//! example runs them at full size for `docs/statistics.md`.

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use collector::statistics::change_point::{ChangePoint, ChangePointOptions, change_points};
use collector::statistics::noise_floor::HISTORY_POINTS;
use collector::statistics::quantile::median;
use collector::statistics::verdict::{Direction, Policy, Verdict, assess, compare};

use crate::noise::{NoiseModel, realistic_mix};

/// What A/A runs produced: every change they called is false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AaReport {
    pub runs: usize,
    pub series: usize,
    pub false_regressions: usize,
    pub false_improvements: usize,
    /// Runs with at least one false regression: those that would fail a build.
    pub failing_runs: usize,
    pub noisy: usize,
}

impl AaReport {
    /// False regressions per 100 runs.
    pub fn regressions_per_100_runs(&self) -> f64 {
        self.false_regressions as f64 * 100.0 / self.runs as f64
    }
}

/// `runs` consecutive runs of `series` series that never change, each compared with the one
/// before under `policy`, with the noise floor from the 30 points before it (a history of 30
/// points is simulated first). Noise models from [`realistic_mix`]; half of the metrics are
/// lower-is-better.
pub fn simulate_aa(seed: u64, runs: usize, series: usize, rounds: usize, policy: &Policy) -> AaReport {
    let mut rng = StdRng::seed_from_u64(seed);
    let models = realistic_mix(&mut rng, series);
    let levels: Vec<f64> = (0..series).map(|_| rng.random_range(0.01..1000.0)).collect();
    let direction = |s: usize| {
        if s.is_multiple_of(2) {
            Direction::Lower
        } else {
            Direction::Higher
        }
    };
    let mut history: Vec<VecDeque<f64>> = vec![VecDeque::new(); series];
    let mut previous: Vec<Vec<f64>> = Vec::with_capacity(series);
    for s in 0..series {
        let mut last = Vec::new();
        for _ in 0..=HISTORY_POINTS {
            last = models[s].run(&mut rng, levels[s], rounds);
            history[s].push_back(median(&last).expect("samples"));
        }
        previous.push(last);
    }
    let mut report = AaReport {
        runs,
        series,
        ..AaReport::default()
    };
    for _ in 0..runs {
        let mut comparisons = Vec::with_capacity(series);
        let mut current = Vec::with_capacity(series);
        for s in 0..series {
            let samples = models[s].run(&mut rng, levels[s], rounds);
            let h: Vec<f64> = history[s].iter().copied().collect();
            comparisons.push(compare(Some(&previous[s]), &samples, &h, direction(s), policy));
            current.push(samples);
        }
        let mut failed = false;
        for a in assess(comparisons, policy) {
            match a.verdict {
                Verdict::Regression => {
                    report.false_regressions += 1;
                    failed = true;
                }
                Verdict::Improvement => report.false_improvements += 1,
                Verdict::Noisy => report.noisy += 1,
                _ => {}
            }
        }
        report.failing_runs += usize::from(failed);
        for (s, samples) in current.into_iter().enumerate() {
            history[s].push_back(median(&samples).expect("samples"));
            if history[s].len() > HISTORY_POINTS {
                history[s].pop_front();
            }
            previous[s] = samples;
        }
    }
    report
}

/// A step to find: a baseline and a commit of `rounds` samples each at normal noise of `cv`,
/// the commit `step` (relative) worse, after `history` points at the baseline's level (0: a
/// series too young for a noise floor).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepTrial {
    pub step: f64,
    pub cv: f64,
    pub rounds: usize,
    pub history: usize,
}

impl StepTrial {
    /// The history's medians (ending with the baseline's), the baseline and the commit.
    fn draw(&self, rng: &mut StdRng) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let noise = NoiseModel::normal(self.cv);
        let mut medians: Vec<f64> = (0..self.history)
            .map(|_| median(&noise.run(rng, 1.0, self.rounds)).expect("samples"))
            .collect();
        let baseline = noise.run(rng, 1.0, self.rounds);
        medians.push(median(&baseline).expect("samples"));
        let commit = noise.run(rng, 1.0 + self.step, self.rounds);
        (medians, baseline, commit)
    }
}

/// How often the gate calls a [`StepTrial`] a regression. `companions` unchanged series share
/// each run, as in a real run where one commit slows one thing down.
pub fn simulate_power(seed: u64, trials: usize, trial: &StepTrial, companions: usize, policy: &Policy) -> f64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let noise = NoiseModel::normal(trial.cv);
    let mut flagged = 0;
    for _ in 0..trials {
        let (history, baseline, commit) = trial.draw(&mut rng);
        let mut comparisons = vec![compare(Some(&baseline), &commit, &history, Direction::Lower, policy)];
        for _ in 0..companions {
            let b = noise.run(&mut rng, 1.0, trial.rounds);
            let c = noise.run(&mut rng, 1.0, trial.rounds);
            comparisons.push(compare(Some(&b), &c, &history, Direction::Lower, policy));
        }
        flagged += usize::from(assess(comparisons, policy)[0].verdict == Verdict::Regression);
    }
    flagged as f64 / trials as f64
}

/// How often the gate and the change-point pass together flag a [`StepTrial`]: the gate at
/// the step commit, or a change point at it (within one commit) once `after` more commits at
/// the new level are in.
pub fn simulate_confirmed_power(
    seed: u64,
    trials: usize,
    trial: &StepTrial,
    after: usize,
    policy: &Policy,
    options: &ChangePointOptions,
) -> f64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let noise = NoiseModel::normal(trial.cv);
    let mut flagged = 0;
    for _ in 0..trials {
        let (mut medians, baseline, commit) = trial.draw(&mut rng);
        let gate = assess(
            vec![compare(Some(&baseline), &commit, &medians, Direction::Lower, policy)],
            policy,
        )[0]
        .verdict;
        let at = medians.len();
        medians.push(median(&commit).expect("samples"));
        for _ in 0..after {
            let level = 1.0 + trial.step;
            medians.push(median(&noise.run(&mut rng, level, trial.rounds)).expect("samples"));
        }
        let confirmed = change_points(&medians, options)
            .iter()
            .any(|c| c.index.abs_diff(at) <= 1 && c.forward_change() > policy.practical_floor);
        flagged += usize::from(gate == Verdict::Regression || confirmed);
    }
    flagged as f64 / trials as f64
}

/// What change-point detection found on synthetic series.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ChangePointReport {
    pub trials: usize,
    /// Trials where a change point was reported within one commit of the true step.
    pub found_within_one: usize,
    /// Change points reported farther than one commit from the truth (for outlier trials:
    /// any change point at all).
    pub spurious: usize,
    /// Trials with at least one spurious change point.
    pub trials_with_spurious: usize,
}

impl ChangePointReport {
    pub fn found_rate(&self) -> f64 {
        self.found_within_one as f64 / self.trials as f64
    }
}

/// Change-point trials on series of `len` points, each the median of `rounds` samples at
/// normal noise of `cv`: `place` picks a position and `level(i, at)` gives each point's true
/// level; `score` reads what was found.
#[allow(clippy::too_many_arguments)]
fn change_point_trials(
    seed: u64,
    trials: usize,
    len: usize,
    cv: f64,
    rounds: usize,
    options: &ChangePointOptions,
    place: impl Fn(&mut StdRng) -> usize,
    level: impl Fn(usize, usize) -> f64,
    mut score: impl FnMut(&mut ChangePointReport, usize, &[ChangePoint]),
) -> ChangePointReport {
    let mut rng = StdRng::seed_from_u64(seed);
    let noise = NoiseModel::normal(cv);
    let mut report = ChangePointReport {
        trials,
        ..Default::default()
    };
    for _ in 0..trials {
        let at = place(&mut rng);
        let series: Vec<f64> = (0..len)
            .map(|i| median(&noise.run(&mut rng, level(i, at), rounds)).expect("samples"))
            .collect();
        score(&mut report, at, &change_points(&series, options));
    }
    report
}

/// Series of `len` points (medians of `rounds` samples at normal noise of `cv`) with a step of
/// `step` at a random position in the middle 80%.
pub fn simulate_steps(
    seed: u64,
    trials: usize,
    len: usize,
    step: f64,
    cv: f64,
    rounds: usize,
    options: &ChangePointOptions,
) -> ChangePointReport {
    change_point_trials(
        seed,
        trials,
        len,
        cv,
        rounds,
        options,
        |rng| rng.random_range(len / 10..len - len / 10),
        |i, at| if i < at { 1.0 } else { 1.0 + step },
        |report, at, cps| {
            let near = cps.iter().filter(|c| c.index.abs_diff(at) <= 1).count();
            report.found_within_one += usize::from(near > 0);
            let spurious = cps.len() - near.min(1);
            report.spurious += spurious;
            report.trials_with_spurious += usize::from(spurious > 0);
        },
    )
}

/// Series of `len` points with one point off by `outlier` (relative) at a random position,
/// the last ones included. `found_within_one` counts the trials where a change point was
/// reported at the outlier or the point after it (the outlier taken for a shift); `spurious`
/// counts every change point reported, wherever it is.
pub fn simulate_outliers(
    seed: u64,
    trials: usize,
    len: usize,
    outlier: f64,
    cv: f64,
    rounds: usize,
    options: &ChangePointOptions,
) -> ChangePointReport {
    change_point_trials(
        seed,
        trials,
        len,
        cv,
        rounds,
        options,
        |rng| rng.random_range(1..len),
        |i, at| if i == at { 1.0 + outlier } else { 1.0 },
        |report, at, cps| {
            report.found_within_one += usize::from(cps.iter().any(|c| c.index == at || c.index == at + 1));
            report.spurious += cps.len();
            report.trials_with_spurious += usize::from(!cps.is_empty());
        },
    )
}

/// What paired comparisons of interleaved builds gave.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PairedReport {
    pub trials: usize,
    /// Trials whose CI held the true ratio.
    pub covered: usize,
    /// Trials called a regression or an improvement.
    pub flagged: usize,
}

/// Interleaved A/B trials of `rounds` rounds: in each round the machine's state moves both
/// builds by a common factor (standard deviation `drift`), then each gets its own noise at
/// `cv`; B is `ratio` times A.
pub fn simulate_paired(seed: u64, trials: usize, ratio: f64, cv: f64, drift: f64, rounds: usize) -> PairedReport {
    use collector::statistics::paired::{PairedOptions, compare_paired};
    let mut rng = StdRng::seed_from_u64(seed);
    let noise = NoiseModel::normal(cv);
    let mut report = PairedReport {
        trials,
        ..Default::default()
    };
    let options = PairedOptions::default();
    for _ in 0..trials {
        let mut a = Vec::with_capacity(rounds);
        let mut b = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let day = NoiseModel::normal(drift).run(&mut rng, 1.0, 1)[0];
            a.push(noise.run(&mut rng, day, 1)[0]);
            b.push(noise.run(&mut rng, day * ratio, 1)[0]);
        }
        let c = compare_paired(&a, &b, Direction::Lower, &options).expect("positive samples");
        report.covered += usize::from(c.ci_lower <= ratio && ratio <= c.ci_upper);
        report.flagged += usize::from(c.verdict.is_change());
    }
    report
}
