//! `soledad-bench noise`: how steady is this machine? Two fixed kernels run in alternating
//! short rounds: one that stays in the core's registers and one that streams a 10 MB buffer
//! through memory, as the scenarios' 10 MB payloads do. Each is summarised as a scenario's
//! headline metric is (median, distribution-free 95% CI), and the rounds a CI target would
//! need at that noise are extrapolated. On a shared host the two often differ: the core runs
//! steadily while memory bandwidth, shared with other tenants, swings in streaks of seconds,
//! and a scenario that moves its payload through memory then needs far more rounds to reach
//! 2% than a per-commit budget has.
//!
//! The kernels are hand-written because their point is to be nothing but arithmetic or
//! nothing but copying; a benchmark crate's own statistics would not be the harness's.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use collector::statistics::paired::rounds_for_target as rounds_for_target_paired;
use collector::statistics::quantile::{median, quantile_of_sorted};
use collector::statistics::{CONFIDENCE, summarize};
use harness::scenario::MIN_ROUNDS;
use serde::Serialize;
use site_gen::format::share;

/// The memory kernel's buffer: the size of the scenarios' 10 MB payloads, beyond a core's
/// private caches (the shared last-level cache may hold part of it, as it may of a payload).
const MEMORY_BYTES: usize = 10_000_000;

/// Measure how steady this machine is: alternate a CPU-bound and a memory-bound kernel in
/// short rounds and say how many rounds a CI target needs at that noise.
#[derive(clap::Args)]
pub struct NoiseArgs {
    /// How long to measure, in seconds (both kernels share it).
    #[arg(long, default_value_t = 10.0, value_parser = positive_seconds)]
    seconds: f64,
    /// Length of one round, in milliseconds; the kernels are sized to it at the start.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    round_ms: u64,
    /// The CI half-width to extrapolate the rounds for, relative to the median (as a scenario
    /// file's `target_ci`).
    #[arg(long, default_value_t = 0.02, value_parser = fraction)]
    target_ci: f64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!(
            "expected a number of seconds above 0 and at most 3600, got {s:?}"
        )),
    }
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!("expected a fraction between 0 and 1 (0.02 for 2%), got {s:?}")),
    }
}

#[derive(Debug, Serialize)]
struct KernelReport {
    kernel: &'static str,
    rounds: usize,
    median_ms: f64,
    cv: f64,
    /// 90th over 10th percentile of the round times: a step between two speeds shows here
    /// even when the CV looks moderate.
    p90_over_p10: f64,
    /// Relative half-width of the median's 95% CI after all rounds.
    ci: f64,
    /// Rounds the target would need, extrapolated from `ci` (a CI narrows as 1/sqrt(n)).
    rounds_for_target: usize,
    /// The same rounds seen as a paired comparison does: the ratios of adjacent rounds
    /// (1st/2nd, 3rd/4th, ...), which cancel the machine's state that both shared.
    paired: PairedNoise,
}

/// How noisy a paired comparison of this kernel with itself would be.
#[derive(Debug, Serialize)]
struct PairedNoise {
    pairs: usize,
    /// CV of the adjacent-round ratios.
    ratio_cv: f64,
    /// CV of the median of 5 adjacent ratios, over consecutive groups of 5 pairs; beside it,
    /// the CV of the median of 5 single rounds, which is what an unpaired estimate gets.
    median_of_5_ratios_cv: Option<f64>,
    median_of_5_rounds_cv: Option<f64>,
    /// Pairs a comparison needs for its ratio's 95% CI to be within the target (Student's t
    /// on the log ratios, as `compare` decides); `None` beyond 100,000.
    pairs_for_target: Option<usize>,
}

#[derive(Debug, Serialize)]
struct NoiseReport {
    round_ms: u64,
    target_ci: f64,
    kernels: Vec<KernelReport>,
}

/// A unit of work of a kernel, repeated `reps` times per round.
trait Kernel {
    fn name(&self) -> &'static str;
    fn run(&mut self, reps: u64);
}

/// A chain of dependent multiply-adds: the result of each feeds the next, so it runs at
/// the core's speed and never leaves the core (registers and its L1 cache).
struct Cpu;

impl Kernel for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn run(&mut self, reps: u64) {
        let mut x = 1u64;
        for _ in 0..reps * 100_000 {
            x = black_box(x)
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
        }
        black_box(x);
    }
}

/// Copies of a 10 MB buffer into another: bound by memory bandwidth.
struct Memory {
    from: Vec<u8>,
    to: Vec<u8>,
}

impl Kernel for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn run(&mut self, reps: u64) {
        for _ in 0..reps {
            self.to.copy_from_slice(black_box(&self.from));
            black_box(&mut self.to);
        }
    }
}

/// Repetitions of one unit that fill a round of `round`, from the unit's median time over
/// a quarter of a second (at least 5 tries), so that one slow or fast moment does not set
/// the length of every round.
fn size_round(kernel: &mut dyn Kernel, round: Duration) -> u64 {
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < 5 || (start.elapsed() < Duration::from_millis(250) && times.len() < 1000) {
        let t = Instant::now();
        kernel.run(1);
        times.push(t.elapsed().as_secs_f64());
    }
    let unit = median(&times).unwrap_or(1e-9).max(1e-9);
    (round.as_secs_f64() / unit).round().max(1.0) as u64
}

/// Rounds needed to reach `target` given the CI `achieved` after `n` rounds: the CI's width
/// shrinks as 1/sqrt(n), so n (achieved/target)^2, and never fewer than a scenario's minimum.
/// A lower bound where the noise comes in streaks longer than a round: neighbouring rounds
/// then agree more than independent ones would, and the interval is narrower than it should be.
fn rounds_for_target(n: usize, achieved: f64, target: f64) -> usize {
    let needed = (n as f64 * (achieved / target).powi(2)).ceil();
    (needed as usize).max(MIN_ROUNDS as usize)
}

/// Coefficient of variation of the summary's sample standard deviation; `None` under 2 values.
fn cv(values: &[f64]) -> Option<f64> {
    summarize(values).filter(|s| s.n >= 2).map(|s| s.cv())
}

/// Medians of consecutive groups of `k` values (a last, partial group is left out).
fn medians_of(values: &[f64], k: usize) -> Vec<f64> {
    values.chunks_exact(k).filter_map(median).collect()
}

fn paired_noise(samples_ms: &[f64], target: f64) -> PairedNoise {
    let ratios: Vec<f64> = samples_ms
        .chunks_exact(2)
        .filter(|p| p[0] > 0.0 && p[1] > 0.0)
        .map(|p| p[1] / p[0])
        .collect();
    let logs: Vec<f64> = ratios.iter().map(|r| r.ln()).collect();
    let sd_log = summarize(&logs).filter(|s| s.n >= 2).map(|s| s.stddev);
    PairedNoise {
        pairs: ratios.len(),
        ratio_cv: cv(&ratios).unwrap_or(f64::NAN),
        median_of_5_ratios_cv: cv(&medians_of(&ratios, 5)),
        median_of_5_rounds_cv: cv(&medians_of(samples_ms, 5)),
        pairs_for_target: sd_log.and_then(|sd| rounds_for_target_paired(sd, target, CONFIDENCE)),
    }
}

fn report(kernel: &'static str, samples_ms: &[f64], target: f64) -> anyhow::Result<KernelReport> {
    let s = summarize(samples_ms).with_context(|| format!("the {kernel} kernel recorded no usable round"))?;
    let mut sorted = samples_ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let ci = s.relative_ci_half_width();
    Ok(KernelReport {
        kernel,
        rounds: s.n,
        median_ms: s.median,
        cv: s.cv(),
        p90_over_p10: quantile_of_sorted(&sorted, 0.9) / quantile_of_sorted(&sorted, 0.1),
        ci,
        rounds_for_target: rounds_for_target(s.n, ci, target),
        paired: paired_noise(samples_ms, target),
    })
}

pub fn run(args: NoiseArgs) -> anyhow::Result<()> {
    let round = Duration::from_millis(args.round_ms);
    let mut kernels: Vec<Box<dyn Kernel>> = vec![
        Box::new(Cpu),
        // Filled, so that every page is faulted in before the first round.
        Box::new(Memory {
            from: vec![7; MEMORY_BYTES],
            to: vec![1; MEMORY_BYTES],
        }),
    ];
    let reps: Vec<u64> = kernels.iter_mut().map(|k| size_round(k.as_mut(), round)).collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); kernels.len()];
    let budget = Duration::from_secs_f64(args.seconds);
    let start = Instant::now();
    // Alternating, so that both kernels see the same stretches of the machine's state.
    while start.elapsed() < budget || samples.iter().any(|s| s.len() < MIN_ROUNDS as usize) {
        for ((kernel, reps), samples) in kernels.iter_mut().zip(&reps).zip(&mut samples) {
            let t = Instant::now();
            kernel.run(*reps);
            samples.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let report = NoiseReport {
        round_ms: args.round_ms,
        target_ci: args.target_ci,
        kernels: kernels
            .iter()
            .zip(&samples)
            .map(|(k, s)| report(k.name(), s, args.target_ci))
            .collect::<anyhow::Result<_>>()?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{:<8} {:>7} {:>10} {:>7} {:>8} {:>13} {:>16}",
        "kernel",
        "rounds",
        "median ms",
        "CV",
        "p90/p10",
        "CI of median",
        format!("rounds for ±{}", share(args.target_ci))
    );
    for k in &report.kernels {
        println!(
            "{:<8} {:>7} {:>10.3} {:>6.1}% {:>8.2} {:>12.1}% {:>16}",
            k.kernel,
            k.rounds,
            k.median_ms,
            k.cv * 100.0,
            k.p90_over_p10,
            k.ci * 100.0,
            k.rounds_for_target
        );
    }
    let percent = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.1}%", v * 100.0));
    println!();
    println!("paired, as compare measures: ratios of adjacent rounds");
    println!(
        "{:<8} {:>7} {:>9} {:>15} {:>15} {:>15}",
        "kernel",
        "pairs",
        "ratio CV",
        "median-5 pairs",
        "median-5 rounds",
        format!("pairs for ±{}", share(args.target_ci))
    );
    for k in &report.kernels {
        let p = &k.paired;
        println!(
            "{:<8} {:>7} {:>9} {:>15} {:>15} {:>15}",
            k.kernel,
            p.pairs,
            percent(Some(p.ratio_cv)),
            percent(p.median_of_5_ratios_cv),
            percent(p.median_of_5_rounds_cv),
            p.pairs_for_target.map_or("over 100000".to_owned(), |n| n.to_string())
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_scale_with_the_square_of_the_ci_ratio() {
        assert_eq!(rounds_for_target(20, 0.04, 0.02), 80);
        assert_eq!(rounds_for_target(100, 0.02, 0.02), 100);
        // Already well under the target: a scenario still runs its minimum.
        assert_eq!(rounds_for_target(100, 0.001, 0.02), MIN_ROUNDS as usize);
    }

    #[test]
    fn pairs_cancel_a_step_that_both_rounds_of_a_pair_share() {
        // The machine runs at 1x for 10 rounds and at 1.5x for 10, with 1% jitter: single
        // rounds spread widely, pairs (within one step) hardly at all.
        let samples: Vec<f64> = (0..20)
            .map(|i| (if i < 10 { 1.0 } else { 1.5 }) * (1.0 + 0.01 * ((i % 3) as f64 - 1.0)))
            .collect();
        let p = paired_noise(&samples, 0.02);
        assert_eq!(p.pairs, 10);
        assert!(p.ratio_cv < 0.02, "{p:?}");
        assert!(p.median_of_5_rounds_cv.unwrap() > 0.2, "{p:?}");
        assert!(p.median_of_5_ratios_cv.unwrap() < 0.02, "{p:?}");
        assert_eq!(p.pairs_for_target, Some(collector::statistics::paired::MIN_ROUNDS));
        assert_eq!(cv(&[1.0]), None);
        assert_eq!(medians_of(&[1.0, 2.0, 3.0, 9.0, 9.0, 7.0], 5), vec![3.0]);
    }

    #[test]
    fn a_round_is_sized_to_the_requested_length() {
        // The unit of the CPU kernel takes well under 10 ms anywhere this runs, so a round of
        // 10 ms needs more than one repetition; and a longer round needs more.
        let short = size_round(&mut Cpu, Duration::from_millis(10));
        let long = size_round(&mut Cpu, Duration::from_millis(100));
        assert!(short > 1, "{short}");
        assert!(long > short * 3, "{long} vs {short}");
    }
}
