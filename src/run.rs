//! `soledad-bench run`: the main job. Benchmarks the checked-out commit, stores the run,
//! decides its verdicts and regenerates the site.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use collector::{AnalysisOptions, Database};
use harness::results::CommitInfo;
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
    #[command(flatten)]
    checkout: Checkout,
    #[command(flatten)]
    harness: HarnessArgs,
}

/// Which commit is benchmarked.
#[derive(clap::Args)]
pub struct Checkout {
    /// The git checkout being benchmarked.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Branch to record when HEAD is detached, as in CI.
    #[arg(long, env = "CI_COMMIT_BRANCH")]
    branch: Option<String>,
}

impl Checkout {
    /// HEAD of the checkout, with the branch given when it is detached.
    pub fn describe(&self) -> anyhow::Result<CommitInfo> {
        let mut commit = harness::commit::describe_head(&self.repo)?;
        if commit.branch.is_none() {
            commit.branch = self.branch.clone();
        }
        Ok(commit)
    }
}

/// How the harness runs scenarios.
#[derive(clap::Args)]
pub struct HarnessArgs {
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

impl HarnessArgs {
    pub fn config(&self) -> anyhow::Result<RunConfig> {
        Ok(RunConfig {
            server_bin: harness::binaries::server_binary(self.server_bin.as_deref())?,
            driver_bin: std::env::current_exe()
                .context("cannot find the soledad-bench executable")?,
            sample_interval: Duration::from_millis(self.sample_interval_ms),
            seed: self.seed,
            work_root: self
                .work_dir
                .clone()
                .unwrap_or_else(std::env::temp_dir)
                .join("soledad-bench"),
            progress: true,
        })
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    // Everything that can be checked is checked before the long part.
    let set = ScenarioSet::load(&args.scenarios)?;
    let commit = args.checkout.describe()?;
    crate::site::check_writable(&args.site)?;
    let mut db = Database::open(&args.db)?;
    let results_path = args
        .results
        .clone()
        .unwrap_or_else(|| default_results_dir(&args.db));
    let config = args.harness.config()?;

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
    let run_id = db.ingest(&results)?.run_id();
    db.analyze_run(run_id, &AnalysisOptions::default())?;
    let verdicts = db.verdicts(run_id)?;
    let report = crate::site::generate(&db, &args.site, None)?;
    println!("results:  {}", results_file.display());
    println!("database: {} (run {run_id})", args.db.display());
    println!(
        "verdicts: {} (details: soledad-bench check --db {})",
        crate::check::summary(&verdicts),
        args.db.display()
    );
    println!("site:     {}", report.index.display());
    Ok(())
}

fn default_results_dir(db: &Path) -> PathBuf {
    db.parent().unwrap_or(Path::new("")).join("results")
}
