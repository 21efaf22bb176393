//! `soledad-bench run`: the main job. Benchmarks the checked-out commit, stores the run and
//! regenerates the site.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use collector::{Database, IngestOutcome};
use harness::runner::RunConfig;
use harness::scenario::ScenarioSet;

/// Benchmark the current commit: run the scenarios, store the results, regenerate the site.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Scenario file to run.
    #[arg(long, default_value = "scenarios/smoke.toml")]
    scenarios: PathBuf,
    /// The benchmark database (created if missing).
    #[arg(long, default_value = "bench.sqlite")]
    db: PathBuf,
    /// Directory to write the site into.
    #[arg(long, default_value = "public")]
    site: PathBuf,
    /// Where to write the results JSON [default: results/<run id>.json beside the database].
    #[arg(long)]
    results: Option<PathBuf>,
    /// The git checkout being benchmarked.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Branch to record when HEAD is detached, as in CI.
    #[arg(long, env = "CI_COMMIT_BRANCH")]
    branch: Option<String>,
    /// The blobs-server binary to measure [default: built from this workspace].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Memory sampling interval, in milliseconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    sample_interval_ms: u64,
    /// Seed of the payload generator.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Where servers and clients keep their data during the run; it should be on the storage
    /// being measured [default: the system's temporary directory].
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    // Everything that can be checked is checked before the long part.
    let set = ScenarioSet::load(&args.scenarios)?;
    let mut commit = harness::commit::describe_head(&args.repo)?;
    if commit.branch.is_none() {
        commit.branch = args.branch.clone();
    }
    crate::site::check_writable(&args.site)?;
    let mut db = Database::open(&args.db)?;
    let results_path = args
        .results
        .clone()
        .unwrap_or_else(|| default_results_dir(&args.db));
    let server_bin = harness::binaries::server_binary(args.server_bin.as_deref())?;
    let config = RunConfig {
        server_bin,
        driver_bin: std::env::current_exe().context("cannot find the soledad-bench executable")?,
        sample_interval: Duration::from_millis(args.sample_interval_ms),
        seed: args.seed,
        work_root: args
            .work_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
            .join("soledad-bench"),
        progress: true,
    };

    eprintln!(
        "benchmarking {} ({}) with {} scenarios from {}",
        &commit.sha[..10],
        commit.subject,
        set.scenarios.len(),
        set.path.display()
    );
    let machine = harness::machine::describe(harness::binaries::profile());
    let results = harness::runner::run(&set, commit, machine, &config)?;

    let results_file = if args.results.is_some() {
        results_path
    } else {
        results_path.join(format!("{}.json", results.run.id))
    };
    results.save(&results_file)?;
    let run_id = match db.ingest(&results)? {
        IngestOutcome::Stored { run_id } | IngestOutcome::AlreadyPresent { run_id } => run_id,
    };
    let report = crate::site::generate(&db, &args.site, None)?;
    println!("results:  {}", results_file.display());
    println!("database: {} (run {run_id})", args.db.display());
    println!("site:     {}", report.index.display());
    Ok(())
}

fn default_results_dir(db: &Path) -> PathBuf {
    db.parent().unwrap_or(Path::new("")).join("results")
}
