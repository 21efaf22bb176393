//! `soledad-bench merge`: other databases (runner machines, a downloaded history) into this
//! one.

use std::path::PathBuf;

use collector::Database;

/// Add the runs and calibrations of other databases to this one.
#[derive(clap::Args)]
pub struct MergeArgs {
    /// Databases to merge from; they are only read.
    #[arg(required = true)]
    from: Vec<PathBuf>,
    /// The database to merge into (created if missing).
    #[arg(long, default_value = "bench.sqlite")]
    db: PathBuf,
}

pub fn run(args: MergeArgs) -> anyhow::Result<()> {
    let mut db = Database::open(&args.db)?;
    for from in &args.from {
        let report = db.merge_from(from)?;
        println!(
            "{}: {} runs added, {} calibration runs added, {} already present, {} calibrations added, \
             {} comparisons added, {} build failures added",
            from.display(),
            report.history_runs_added.len(),
            report.calibration_runs_added,
            report.runs_present,
            report.calibrations_added,
            report.comparisons_added,
            report.build_failures_added
        );
        crate::ingest::analyze(&mut db, &report.history_runs_added)?;
    }
    Ok(())
}
