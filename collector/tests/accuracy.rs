//! Accuracy on seeded synthetic series with known truth, at the sizes the issue sets. The same
//! simulations, with more trials, are in `examples/accuracy.rs`; the rates they measure are
//! recorded in `docs/statistics.md`.

use collector::statistics::change_point::ChangePointOptions;
use collector::statistics::mann_whitney::mann_whitney_u;
use collector::statistics::summarize;
use collector::statistics::verdict::Policy;
use rand::SeedableRng;
use rand::rngs::StdRng;
use testdata::accuracy::{
    StepTrial, simulate_aa, simulate_confirmed_power, simulate_outliers, simulate_paired, simulate_power,
    simulate_steps,
};
use testdata::noise::NoiseModel;

#[test]
fn a_a_runs_rarely_call_a_regression() {
    // 1000 runs of 100 series, CV 1-5%, a quarter heavy-tailed and a quarter bimodal, a third
    // with run-to-run level noise; every run compared with the one before.
    let r = simulate_aa(1, 1000, 100, 10, &Policy::default());
    assert!(
        r.regressions_per_100_runs() <= 1.0,
        "{} false regressions in {} runs",
        r.false_regressions,
        r.runs
    );
    assert!(r.false_improvements <= 10, "{r:?}");
}

#[test]
fn steps_are_found_at_cv_two_percent() {
    let policy = Policy::default();
    let trial = |step: f64, history: usize| StepTrial {
        step,
        cv: 0.02,
        rounds: 10,
        history,
    };
    let five = simulate_power(2, 2000, &trial(0.05, 0), 0, &policy);
    let three = simulate_power(3, 2000, &trial(0.03, 0), 0, &policy);
    assert!(five >= 0.95, "5% step flagged in {:.1}% of trials", five * 100.0);
    assert!(three >= 0.80, "3% step flagged in {:.1}% of trials", three * 100.0);
    // Behind a history at the same noise, the noise floor holds a 3% step back at the gate;
    // the change point two commits later finds it.
    let cp = ChangePointOptions::default();
    let behind = simulate_power(3, 1000, &trial(0.03, 30), 0, &policy);
    let confirmed = simulate_confirmed_power(6, 500, &trial(0.03, 30), 2, &policy, &cp);
    assert!(behind < 0.5, "{behind}");
    assert!(confirmed >= 0.9, "{confirmed}");
}

#[test]
fn change_points_land_within_one_commit_and_outliers_are_not_shifts() {
    let cp = ChangePointOptions::default();
    for (seed, step) in [(4, 0.05), (7, 0.03)] {
        let r = simulate_steps(seed, 1000, 200, step, 0.02, 10, &cp);
        assert!(
            r.found_rate() >= 0.90,
            "{}% step found within 1 commit in {:.1}%",
            step * 100.0,
            r.found_rate() * 100.0
        );
        assert!(r.trials_with_spurious <= 50, "{r:?}");
    }
    let r = simulate_outliers(5, 1000, 200, 0.10, 0.02, 10, &cp);
    assert_eq!(r.found_within_one, 0, "{r:?}");
    assert!(r.trials_with_spurious <= 50, "{r:?}");
}

#[test]
fn the_minimum_detectable_effect_is_found_four_times_in_five() {
    // At a shift equal to a data point's MDE, the rank test at 5% finds it in about 80% of
    // trials: what the MDE promises, less what estimating the noise from 10 samples and the
    // exact test's discreteness cost (75% with the true noise, 71% with the estimate).
    let mut rng = StdRng::seed_from_u64(8);
    let noise = NoiseModel::normal(0.02);
    let trials = 2000;
    let mut found = 0;
    for _ in 0..trials {
        let base = noise.run(&mut rng, 1.0, 10);
        let mde = summarize(&base).unwrap().mde.unwrap();
        let commit = noise.run(&mut rng, 1.0 + mde, 10);
        found += usize::from(mann_whitney_u(&base, &commit).unwrap().p_value < 0.05);
    }
    let rate = found as f64 / trials as f64;
    assert!((0.65..=0.85).contains(&rate), "{rate}");
}

#[test]
fn paired_comparison_cancels_drift_and_covers_the_true_ratio() {
    // The machine drifts by 5% between rounds, more than twice the builds' own noise; 16
    // rounds, compare's default. Seeded: the same draws every time.
    let same = simulate_paired(9, 400, 1.0, 0.02, 0.05, 16);
    // Either way at most 1% each (alpha of each one-sided family).
    assert!(same.flagged <= 16, "A/A flagged in {} of 400", same.flagged);
    assert!(same.covered >= 370, "CI covered 1.0 in {} of 400", same.covered);
    let slower = simulate_paired(10, 400, 1.03, 0.02, 0.05, 16);
    assert!(slower.flagged >= 360, "3% found in {} of 400", slower.flagged);
    assert!(slower.covered >= 370, "CI covered 1.03 in {} of 400", slower.covered);
}
