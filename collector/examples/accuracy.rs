//! The accuracy of the statistics at full size, on seeded synthetic series with known truth:
//! the numbers recorded in `docs/statistics.md`.
//!
//! ```sh
//! cargo run --release -p collector --example accuracy            # full size
//! cargo run --release -p collector --example accuracy -- --quick # what the tests run
//! ```

use std::time::Instant;

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

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mut policy = Policy::default();
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--alpha") {
        policy.alpha = args[i + 1].parse().expect("--alpha takes a number");
    }
    let cp = ChangePointOptions::default();
    let (aa_runs, power_trials, cp_trials) = if quick { (200, 400, 100) } else { (1000, 2000, 1000) };
    println!(
        "policy: alpha {} (Benjamini-Hochberg across a run), practical floor {}",
        policy.alpha, policy.practical_floor
    );

    let seed: u64 = args
        .iter()
        .position(|a| a == "--seed")
        .map_or(1, |i| args[i + 1].parse().expect("--seed takes a number"));
    let t = Instant::now();
    let aa = simulate_aa(seed, aa_runs, 100, 10, &policy);
    println!(
        "A/A: {} runs x {} series, 10 samples per side: {} false regressions ({:.2} per 100 runs), \
         {} false improvements, {} runs with a false regression, {:.1}% noisy  [{:.1} s]",
        aa.runs,
        aa.series,
        aa.false_regressions,
        aa.regressions_per_100_runs(),
        aa.false_improvements,
        aa.failing_runs,
        aa.noisy as f64 * 100.0 / (aa.runs * aa.series) as f64,
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    for (history, companions, label) in [
        (0, 0, "series alone, no history yet (practical floor only)"),
        (
            30,
            0,
            "series alone, after 30 points at the same noise (noise floor applies)",
        ),
        (0, 99, "with 99 unchanged series in the run, no history"),
    ] {
        let trial = |step: f64, history: usize| StepTrial {
            step,
            cv: 0.02,
            rounds: 10,
            history,
        };
        let five = simulate_power(2, power_trials, &trial(0.05, history), companions, &policy);
        let three = simulate_power(3, power_trials, &trial(0.03, history), companions, &policy);
        println!(
            "power at CV 2%, 10 samples per side, {label}: 5% step {:.1}%, 3% step {:.1}%",
            five * 100.0,
            three * 100.0
        );
    }
    for (step, after) in [(0.05, 2), (0.03, 2), (0.03, 5)] {
        let trial = StepTrial {
            step,
            cv: 0.02,
            rounds: 10,
            history: 30,
        };
        let p = simulate_confirmed_power(6, power_trials / 4, &trial, after, &policy, &cp);
        println!(
            "power at CV 2%, after 30 points, gate or change point confirmed {after} commits later: \
             {:.0}% step {:.1}%",
            step * 100.0,
            p * 100.0
        );
    }
    println!("  [{:.1} s]", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let mut rng = StdRng::seed_from_u64(8);
    let noise = NoiseModel::normal(0.02);
    let mut found = 0;
    for _ in 0..power_trials {
        let base = noise.run(&mut rng, 1.0, 10);
        let mde = summarize(&base).and_then(|s| s.mde).expect("10 samples");
        let commit = noise.run(&mut rng, 1.0 + mde, 10);
        found += usize::from(mann_whitney_u(&base, &commit).is_some_and(|t| t.p_value < 0.05));
    }
    println!(
        "MDE: a shift equal to the baseline's MDE (CV 2%, 10 samples) found by the rank test at 5% \
         in {:.1}% of trials (promised: 80%)",
        found as f64 * 100.0 / power_trials as f64
    );
    for rounds in [8, 12, 16] {
        let same = simulate_paired(9, power_trials, 1.0, 0.02, 0.05, rounds);
        let slower = simulate_paired(10, power_trials, 1.03, 0.02, 0.05, rounds);
        let slower5 = simulate_paired(11, power_trials, 1.05, 0.02, 0.05, rounds);
        let pct = |n: usize| n as f64 * 100.0 / power_trials as f64;
        println!(
            "paired, {rounds} interleaved rounds, CV 2%, 5% drift between rounds: A/A flagged in {:.1}%, \
             CI covers 1 in {:.1}%; 3% slower flagged in {:.1}%, CI covers 1.03 in {:.1}%; 5% slower flagged in {:.1}%",
            pct(same.flagged),
            pct(same.covered),
            pct(slower.flagged),
            pct(slower.covered),
            pct(slower5.flagged)
        );
    }
    println!("  [{:.1} s]", t.elapsed().as_secs_f64());

    let t = Instant::now();
    for step in [0.05, 0.03, 0.02] {
        let r = simulate_steps(4, cp_trials, 200, step, 0.02, 10, &cp);
        println!(
            "change points, {:.0}% step in 200 points (medians of 10 samples at CV 2%): found within \
             1 commit in {:.1}% of trials; {} spurious change points in {} trials",
            step * 100.0,
            r.found_rate() * 100.0,
            r.spurious,
            r.trials_with_spurious
        );
    }
    let r = simulate_outliers(5, cp_trials, 200, 0.10, 0.02, 10, &cp);
    println!(
        "change points, one point off by 10% in 200: reported as a change point in {} of {} trials \
         ({} change points elsewhere)",
        r.found_within_one, r.trials, r.spurious
    );
    println!("  [{:.1} s]", t.elapsed().as_secs_f64());
}
