//! `soledad-bench calibrate`: A/A runs. The same build runs the scenario set several times;
//! each run is compared with the one before exactly as a commit with its baseline, so every
//! change called is a false positive. The rate per series is stored beside the verdicts.

use std::path::PathBuf;

use anyhow::Context as _;
use collector::record::{Purpose, RunRecord, content_uuid};
use collector::{AnalysisOptions, CalibrationRuns, Database};
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
    let config = args.harness.config(None, None)?;
    if let Some(dir) = &args.results_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    eprintln!(
        "calibrating on {} ({}): {} runs of {} scenarios from {}",
        &commit.sha[..10],
        commit.subject,
        args.repetitions,
        set.scenarios.len(),
        set.path.display()
    );
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut run_ids = Vec::new();
    let mut uuids = Vec::new();
    for i in 0..args.repetitions {
        eprintln!("A/A run {}/{}", i + 1, args.repetitions);
        // Volatile readings are taken afresh for every run; the fingerprint stays the same.
        let machine = harness::machine::describe(harness::binaries::profile());
        let results = harness::runner::run(&set, commit.clone(), machine, &config)?;
        if let Some(dir) = &args.results_dir {
            results.save(&dir.join(format!("{}.json", results.run.id)))?;
        }
        let mut record = RunRecord::from_results(&results)?;
        record.purpose = Purpose::Calibration;
        uuids.push(record.uuid.clone());
        run_ids.push(db.ingest_record(&record)?.run_id());
    }
    let finished_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let parts: Vec<&[u8]> = uuids.iter().map(|u| u.as_bytes()).collect();
    let report = db.record_calibration(
        &CalibrationRuns {
            uuid: content_uuid(&parts),
            run_ids,
            scenario_file: set.path.display().to_string(),
            started_at,
            finished_at,
        },
        &AnalysisOptions::default().policy,
    )?;

    let width = report
        .series
        .iter()
        .map(|s| s.scenario_id.len() + s.metric.len() + 1)
        .max()
        .unwrap_or(6);
    println!(
        "{:<width$}  comparisons  regressions  improvements  noisy  false positives  95% upper",
        "series"
    );
    for s in &report.series {
        println!(
            "{:<width$}  {:>11}  {:>11}  {:>12}  {:>5}  {:>14.1}%  {:>8.1}%",
            format!("{} {}", s.scenario_id, s.metric),
            s.comparisons,
            s.false_regressions,
            s.false_improvements,
            s.noisy,
            s.false_positive_rate * 100.0,
            s.false_positive_upper * 100.0
        );
    }
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
