//! `soledad-bench ingest`: stores results files in the database and decides their verdicts.

use std::path::PathBuf;

use collector::{AnalysisOptions, Database, IngestOutcome};
use contract::Results;

/// Store results files (written by `run`) in the database.
#[derive(clap::Args)]
pub struct IngestArgs {
    /// Results JSON files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The benchmark database (created if missing).
    #[arg(long, default_value = "bench.sqlite")]
    db: PathBuf,
}

pub fn run(args: IngestArgs) -> anyhow::Result<()> {
    // Read everything first: one bad file stores nothing.
    let all = args
        .files
        .iter()
        .map(|f| Results::<serde_json::Value>::load(f).map(|r| (f, r)))
        .collect::<Result<Vec<_>, _>>()?;
    for (file, results) in &all {
        if results
            .run
            .pairing
            .as_deref()
            .is_some_and(|p| p.starts_with(crate::run::BASELINE_SIDE))
        {
            anyhow::bail!(
                "{} is the kept build's side of a paired run ({}), not a run of its commit; ingest the run's own file",
                file.display(),
                results.run.pairing.as_deref().unwrap_or_default()
            );
        }
    }
    let mut db = Database::open(&args.db)?;
    let mut stored = Vec::new();
    for (file, results) in all {
        match db.ingest(&results)? {
            IngestOutcome::Stored { run_id } => {
                println!("{}: stored as run {run_id}", file.display());
                stored.push(run_id);
            }
            IngestOutcome::AlreadyPresent { run_id } => {
                println!("{}: already stored as run {run_id}", file.display())
            }
        }
    }
    analyze(&mut db, &stored)
}

/// Decides the verdicts of newly stored runs (and of later runs they are now the baseline
/// of), and the change points of their series; says what was found.
pub fn analyze(db: &mut Database, runs: &[i64]) -> anyhow::Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let report = db.analyze_runs(runs, &AnalysisOptions::default())?;
    for &run_id in runs {
        println!("run {run_id}: {}", crate::check::summary(&db.verdicts(run_id)?));
    }
    if report.runs.len() > runs.len() {
        println!(
            "re-decided {} later runs whose baseline these runs now are",
            report.runs.len() - runs.len()
        );
    }
    Ok(())
}
