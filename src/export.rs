//! `soledad-bench export`: a run's data points in Bencher Metric Format.

use std::path::PathBuf;

use anyhow::Context as _;
use collector::Database;

/// Write a run's data points as Bencher Metric Format JSON.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// The run: its number, its id (or a unique prefix of it), or `latest`.
    #[arg(long, default_value = "latest")]
    run: String,
    /// The benchmark database.
    #[arg(long, default_value = "bench.sqlite")]
    db: PathBuf,
    /// File to write [default: standard output].
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    if !args.db.is_file() {
        anyhow::bail!("database {} does not exist", args.db.display());
    }
    let db = Database::open(&args.db)?;
    let run = db.find_run(&args.run)?;
    let text = serde_json::to_string_pretty(&db.export_bmf(run.id)?)? + "\n";
    match &args.out {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}
