//! `soledad-bench calibrate`: A/A runs. The same build runs the scenario set several times;
//! each run is compared with the one before exactly as a commit with its baseline, so every
//! change called is a false positive. The rate per series is stored beside the verdicts.
//!
//! `--paired` measures the paired rule instead (per-commit runs with a kept build, `compare`):
//! each repetition runs two copies of this build interleaved. `--inject-build DIR` runs the
//! build in DIR, made with the `injected-cost` feature (`docs/statistics.md`), on both sides,
//! the cost injected into B only, and counts how often each series calls the regression it
//! causes: its detection rate. With `--paired`, by the paired rule; without, by the rules a
//! commit's run is judged by against its history, the count round's instruction counts
//! among them.

use std::path::PathBuf;

use anyhow::Context as _;
use collector::record::{Purpose, RunRecord, content_uuid};
use collector::statistics::paired::PairedOptions;
use collector::{
    AnalysisOptions, CalibrationKind, CalibrationReport, CalibrationRuns, Database, PairedCalibration, SeriesOutcome,
    rate_lower_bound,
};
use harness::runner::Build;
use harness::scenario::{MIN_ROUNDS, ScenarioSet};

use crate::run::{Checkout, HarnessArgs};

/// Measure how often the verdicts are wrong on this machine: run the same build repeatedly
/// (A/A) and compare each run with the one before.
#[derive(clap::Args)]
pub struct CalibrateArgs {
    /// Scenario file to run.
    #[arg(long, default_value = "scenarios/smoke.toml")]
    scenarios: PathBuf,
    /// How many times to run the set; each run after the first is one A/A comparison, so more
    /// repetitions give a sharper rate (11 give 10 comparisons per series).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=1000))]
    repetitions: u32,
    /// Calibrate only the scenarios whose id contains this text (repeat for several).
    #[arg(long = "only", value_name = "TEXT")]
    only: Vec<String>,
    /// Measure exactly this many rounds per scenario instead of the set's adaptive budget (at
    /// least 5): fewer make a quicker calibration, of a noisier gate than the set's runs get.
    #[arg(long)]
    rounds: Option<u32>,
    /// The benchmark database (created if missing).
    #[arg(long, default_value = "bench.sqlite")]
    db: PathBuf,
    /// Keep each run's results JSON in this directory.
    #[arg(long)]
    results_dir: Option<PathBuf>,
    /// Calibrate the paired rule: each repetition runs this build against a copy of itself,
    /// rounds interleaved as per-commit runs with `--baseline` run them (no count round).
    #[arg(long)]
    paired: bool,
    /// Measure detection instead of false positives: both sides run the build in this
    /// directory (`soledad-bench` and `blobs-server`, built with the `injected-cost` feature),
    /// A without the cost and B with the cost SOLEDAD_BENCH_INJECTED_CRYPTO and
    /// SOLEDAD_BENCH_INJECTED_REQUEST set. With --paired, each series' share of pairs calling
    /// the regression is its detection rate. Without, each repetition runs A and B (rounds
    /// interleaved, each with its count round), every run is compared with the one before by
    /// the history and count rules, their history followed by all the A runs (11 repetitions
    /// give the count rule its spread in a new database), and a series' share of comparisons
    /// calling the change (a regression from A to B, an improvement back) is its detection
    /// rate.
    #[arg(long)]
    inject_build: Option<PathBuf>,
    #[command(flatten)]
    checkout: Checkout,
    #[command(flatten)]
    harness: HarnessArgs,
}

pub fn run(args: CalibrateArgs) -> anyhow::Result<()> {
    let mut set = ScenarioSet::load(&args.scenarios)?;
    if !args.only.is_empty() {
        set.scenarios
            .retain(|s| args.only.iter().any(|o| s.id().contains(o.as_str())));
        anyhow::ensure!(
            !set.scenarios.is_empty(),
            "no scenario of {} matches --only {}",
            set.path.display(),
            args.only.join(", ")
        );
    }
    if let Some(rounds) = args.rounds {
        anyhow::ensure!(
            rounds >= MIN_ROUNDS,
            "--rounds {rounds}: at least {MIN_ROUNDS} rounds are needed for a confidence interval"
        );
        for s in &mut set.scenarios {
            s.budget.min_rounds = rounds;
            s.budget.max_rounds = rounds;
        }
    }
    let commit = args.checkout.describe()?;
    let mut db = Database::open(&args.db)?;
    let mut config = args.harness.config(None, None)?;
    if args.paired {
        // Counts need no pairing, and a paired calibration measures the timed series.
        config.valgrind = None;
        // Every scenario paired, `paired = false` ones too: what pairing would find in them
        // is what a calibration is for.
        let mut set = set;
        for s in &mut set.scenarios {
            s.paired = true;
        }
        return paired(&args, crate::run::paired_set(set), commit, &config, &mut db);
    }
    if let Some(dir) = &args.inject_build {
        return injected_history(&args, dir, &set, commit, &config, &mut db);
    }
    let mut runs = StoredRuns::start(args.results_dir.as_deref())?;
    eprintln!(
        "calibrating on {} ({}): {} runs of {} scenarios from {}",
        &commit.sha[..10],
        commit.subject,
        args.repetitions,
        set.scenarios.len(),
        set.path.display()
    );
    for i in 0..args.repetitions {
        eprintln!("A/A run {}/{}", i + 1, args.repetitions);
        // Volatile readings are taken afresh for every run; the fingerprint stays the same.
        let machine = harness::machine::describe(harness::binaries::profile());
        let results = harness::runner::run(&set, commit.clone(), machine, &config)?;
        runs.add(&mut db, &results, "")?;
    }
    let report = db.record_calibration(&runs.finish(&set), &AnalysisOptions::default().policy)?;

    print_series(&report, "comparisons", "false positives", "95% upper", |s| {
        s.false_positive_upper
    });
    let total: usize = report.series.iter().map(|s| s.comparisons).sum();
    let wrong: usize = report
        .series
        .iter()
        .map(|s| s.false_regressions + s.false_improvements)
        .sum();
    println!(
        "calibration {}: {} A/A comparisons of {} series; {} of {} series comparisons called a change \
         ({:.2}%); {} of {} runs would have failed on a false regression (95% upper bound {:.0}%)",
        report.calibration_id,
        report.comparisons,
        report.series.len(),
        wrong,
        total,
        if total == 0 {
            0.0
        } else {
            wrong as f64 * 100.0 / total as f64
        },
        report.failing_comparisons,
        report.comparisons,
        collector::rate_upper_bound(report.failing_comparisons, report.comparisons) * 100.0
    );
    println!("database: {}", args.db.display());
    Ok(())
}

/// `--inject-build` without `--paired`: repetitions of the injected build without the cost
/// (A) and with it (B), rounds interleaved, count rounds included; every run compared with the
/// one before by the history and count rules, recorded as an `injected-history` calibration.
fn injected_history(
    args: &CalibrateArgs,
    dir: &std::path::Path,
    set: &ScenarioSet,
    commit: contract::results::CommitInfo,
    config: &harness::runner::RunConfig,
    db: &mut Database,
) -> anyhow::Result<()> {
    let (builds, cost) = injected_builds(dir)?;
    let mut runs = StoredRuns::start(args.results_dir.as_deref())?;
    eprintln!(
        "calibrating detection on {} ({}): {} runs without and {} with {cost}, of {} scenarios from {}{}",
        &commit.sha[..10],
        commit.subject,
        args.repetitions,
        args.repetitions,
        set.scenarios.len(),
        set.path.display(),
        if config.valgrind.is_some() {
            ", count rounds included"
        } else {
            ""
        }
    );
    // The count rule's floor needs this many points; fewer A runs leave count series without
    // a spread of their own unless the database's history gives them one.
    let floor_points = collector::statistics::noise_floor::MIN_CHANGES as u32 + 1;
    if config.valgrind.is_some() && args.repetitions < floor_points {
        eprintln!(
            "warning: {} repetitions give the count rule no spread of its own (it needs {floor_points} runs \
             without the cost): count series without that much history in {} are judged against the \
             spread assumed for any count, and read as noisy, not as missed",
            args.repetitions,
            args.db.display()
        );
    }
    let mut with_cost = Vec::new();
    for i in 0..args.repetitions {
        eprintln!("A and B {}/{}", i + 1, args.repetitions);
        let machine = harness::machine::describe(harness::binaries::profile());
        let pair =
            harness::runner::run_interleaved(set, [commit.clone(), commit.clone()], machine, config, builds.clone())?;
        for (side, results) in [".a", ".b"].into_iter().zip(&pair) {
            runs.add(db, results, side)?;
            with_cost.push(side == ".b");
        }
    }
    let report =
        db.record_injected_calibration(&runs.finish(set), &with_cost, &cost, &AnalysisOptions::default().policy)?;
    print_series(&report, "comparisons", "detected", "95% bound", |s| {
        rate_lower_bound(s.false_regressions, s.comparisons)
    });
    let every = report
        .series
        .iter()
        .filter(|s| s.comparisons > 0 && s.false_regressions == s.comparisons)
        .count();
    println!(
        "calibration {} ({cost}): {} comparisons of {} runs; {} of {} series found the cost in every one",
        report.calibration_id,
        report.comparisons,
        with_cost.len(),
        every,
        report.series.len()
    );
    println!("database: {}", args.db.display());
    Ok(())
}

/// The runs of a calibration by the history rule, stored (purpose `calibration`) as each
/// finishes, and their results files kept in `--results-dir` if given.
struct StoredRuns<'a> {
    results_dir: Option<&'a std::path::Path>,
    started_at: String,
    run_ids: Vec<i64>,
    uuids: Vec<String>,
}

impl<'a> StoredRuns<'a> {
    /// Starts the clock; the results directory is made now, not after the first run.
    fn start(results_dir: Option<&'a std::path::Path>) -> anyhow::Result<Self> {
        if let Some(dir) = results_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(Self {
            results_dir,
            started_at: now(),
            run_ids: Vec::new(),
            uuids: Vec::new(),
        })
    }

    /// Keeps `results` (as `RUN_ID{suffix}.json`) and stores it.
    fn add(&mut self, db: &mut Database, results: &harness::runner::Results, suffix: &str) -> anyhow::Result<()> {
        if let Some(dir) = self.results_dir {
            results.save(&dir.join(format!("{}{suffix}.json", results.run.id)))?;
        }
        let mut record = RunRecord::from_results(results)?;
        record.purpose = Purpose::Calibration;
        self.uuids.push(record.uuid.clone());
        self.run_ids.push(db.ingest_record(&record)?.run_id());
        Ok(())
    }

    /// The runs, in the order they ran, as a calibration of `set` that ends now.
    fn finish(self, set: &ScenarioSet) -> CalibrationRuns {
        let parts: Vec<&[u8]> = self.uuids.iter().map(|u| u.as_bytes()).collect();
        CalibrationRuns {
            uuid: content_uuid(&parts),
            run_ids: self.run_ids,
            scenario_file: set.path.display().to_string(),
            started_at: self.started_at,
            finished_at: now(),
        }
    }
}

/// The time now, as calibrations record it (RFC 3339, UTC).
fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// The variables that size the injected cost (`blobs_crypto::injected_cost`).
const INJECTED_ENV: [&str; 2] = ["SOLEDAD_BENCH_INJECTED_CRYPTO", "SOLEDAD_BENCH_INJECTED_REQUEST"];

/// The injected build in `dir` twice: A without the cost, B with the cost the environment
/// sets (in words). One binary on both sides, so that the cost is all that differs: a build
/// of other features or in another directory differs in layout too, which moves page faults
/// and memory by a few percent (measured, `docs/statistics.md`).
fn injected_builds(dir: &std::path::Path) -> anyhow::Result<([Build; 2], String)> {
    let build = Build::in_dir(dir);
    for bin in [&build.driver_bin, &build.server_bin] {
        anyhow::ensure!(bin.is_file(), "--inject-build {}: no {}", dir.display(), bin.display());
    }
    let cost: Vec<String> = INJECTED_ENV
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
        .collect();
    anyhow::ensure!(
        !cost.is_empty(),
        "--inject-build: set SOLEDAD_BENCH_INJECTED_CRYPTO and/or SOLEDAD_BENCH_INJECTED_REQUEST to the cost to inject"
    );
    let without = Build {
        env: INJECTED_ENV.iter().map(|k| ((*k).to_owned(), "0".to_owned())).collect(),
        ..build.clone()
    };
    Ok(([without, build], cost.join(", ")))
}

/// `--paired`: repetitions of this build against a copy of itself, or against the injected
/// build, recorded as a paired calibration.
fn paired(
    args: &CalibrateArgs,
    set: ScenarioSet,
    commit: contract::results::CommitInfo,
    config: &harness::runner::RunConfig,
    db: &mut Database,
) -> anyhow::Result<()> {
    let own = config.build();
    let (builds, kind, injected) = match &args.inject_build {
        Some(dir) => {
            let (builds, cost) = injected_builds(dir)?;
            (builds, CalibrationKind::Injected, Some(cost))
        }
        None => ([own.clone(), own], CalibrationKind::Paired, None),
    };
    eprintln!(
        "calibrating the paired rule on {} ({}): {} pairs of {} scenarios from {}, B {}",
        &commit.sha[..10],
        commit.subject,
        args.repetitions,
        set.scenarios.len(),
        set.path.display(),
        injected
            .as_deref()
            .map_or("a copy of A".to_owned(), |c| format!("with {c}"))
    );
    let started_at = now();
    let mut pairs = Vec::new();
    for i in 0..args.repetitions {
        eprintln!("pair {}/{}", i + 1, args.repetitions);
        let machine = harness::machine::describe(harness::binaries::profile());
        let pair =
            harness::runner::run_paired(&set, [commit.clone(), commit.clone()], machine, config, builds.clone())?;
        if let Some(dir) = &args.results_dir {
            for (side, r) in ["a", "b"].iter().zip(&pair) {
                r.save(&dir.join(format!("{}.{side}.json", r.run.id)))?;
            }
        }
        pairs.push(pair);
    }
    let finished_at = now();
    let report = db.record_paired_calibration(
        &PairedCalibration {
            pairs: &pairs,
            kind,
            injected: injected.clone(),
            scenario_file: set.path.display().to_string(),
            started_at,
            finished_at,
        },
        &PairedOptions::default(),
    )?;
    if injected.is_some() {
        // A detection rate's lower bound: how sure it is to be at least this.
        print_series(&report, "pairs", "detected", "95% bound", |s| {
            rate_lower_bound(s.false_regressions, s.comparisons)
        });
    } else {
        print_series(&report, "pairs", "false positives", "95% bound", |s| {
            s.false_positive_upper
        });
    }
    let detected = report.series.iter().filter(|s| s.false_regressions > 0).count();
    match &injected {
        Some(cost) => println!(
            "calibration {} ({cost}): {} pairs; {} of {} series called the regression at least once",
            report.calibration_id,
            report.comparisons,
            detected,
            report.series.len()
        ),
        None => println!(
            "calibration {}: {} paired A/A comparisons of {} series; {} would have failed on a false regression",
            report.calibration_id,
            report.comparisons,
            report.series.len(),
            report.failing_comparisons
        ),
    }
    println!("database: {}", args.db.display());
    Ok(())
}

/// The table of a calibration's series: how each comparison was called, the rate, and the
/// 95% bound `bound` gives.
fn print_series(
    report: &CalibrationReport,
    compared: &str,
    rate: &str,
    bound_label: &str,
    bound: impl Fn(&SeriesOutcome) -> f64,
) {
    let width = report
        .series
        .iter()
        .map(|s| s.scenario_id.len() + s.metric.len() + 1)
        .max()
        .unwrap_or(6);
    let n = compared.len();
    println!(
        "{:<width$}  {compared}  regressions  improvements  noisy  {rate:>15}  {bound_label}",
        "series"
    );
    for s in &report.series {
        println!(
            "{:<width$}  {:>n$}  {:>11}  {:>12}  {:>5}  {:>14.1}%  {:>8.1}%",
            format!("{} {}", s.scenario_id, s.metric),
            s.comparisons,
            s.false_regressions,
            s.false_improvements,
            s.noisy,
            s.false_positive_rate * 100.0,
            bound(s) * 100.0
        );
    }
}
