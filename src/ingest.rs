//! `soledad-bench ingest`: stores results files in the database.

use std::path::PathBuf;

use collector::{Database, IngestOutcome};
use harness::results::Results;

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
        .map(|f| Results::load(f).map(|r| (f, r)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut db = Database::open(&args.db)?;
    for (file, results) in all {
        match db.ingest(&results)? {
            IngestOutcome::Stored { run_id } => {
                println!("{}: stored as run {run_id}", file.display())
            }
            IngestOutcome::AlreadyPresent { run_id } => {
                println!("{}: already stored as run {run_id}", file.display())
            }
        }
    }
    Ok(())
}
