//! `soledad-bench import`: results from other tools, stored as runs of the current commit:
//! Bencher Metric Format files, and criterion's `target/criterion`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use collector::bmf::MeasureUnits;
use collector::criterion::{criterion_record, read_criterion};
use collector::record::{ImportContext, RunRecord, covariates_of};
use collector::statistics::verdict::Direction;
use collector::{Database, IngestOutcome};

use crate::run::Checkout;

/// Store results from other tools as runs of the current commit.
#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    what: ImportWhat,
}

#[derive(clap::Subcommand)]
enum ImportWhat {
    /// Bencher Metric Format JSON files, each stored as one run.
    Bmf {
        /// BMF files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Unit and direction of a measure the database does not know yet, such as
        /// `latency_ms=ms:lower` (repeat for several).
        #[arg(long = "measure", value_parser = parse_measure)]
        measures: Vec<(String, String, Direction)>,
        #[command(flatten)]
        target: Target,
    },
    /// Criterion's results (the `new` estimates and samples of every benchmark), stored as
    /// one run.
    Criterion {
        /// Criterion's output directory.
        #[arg(default_value = "target/criterion")]
        dir: PathBuf,
        #[command(flatten)]
        target: Target,
    },
}

/// Where the imported runs go, and what they are runs of.
#[derive(clap::Args)]
struct Target {
    /// The benchmark database (created if missing).
    #[arg(long, default_value = "bench.sqlite")]
    db: PathBuf,
    /// Cargo profile the measured code was built with (`cargo bench` uses `release`'s
    /// settings); part of the machine's fingerprint.
    #[arg(long, default_value = "release")]
    profile: String,
    #[command(flatten)]
    checkout: Checkout,
}

fn parse_measure(s: &str) -> Result<(String, String, Direction), String> {
    let bad = || format!("{s:?}: expected NAME=UNIT:lower or NAME=UNIT:higher");
    let (name, rest) = s.split_once('=').ok_or_else(bad)?;
    let (unit, direction) = rest.rsplit_once(':').ok_or_else(bad)?;
    let direction = Direction::parse(direction).ok_or_else(bad)?;
    if name.is_empty() || unit.is_empty() {
        return Err(bad());
    }
    Ok((name.to_owned(), unit.to_owned(), direction))
}

impl Target {
    fn context(&self) -> anyhow::Result<ImportContext> {
        let commit = self.checkout.describe()?;
        let machine = harness::machine::describe(&self.profile);
        Ok(ImportContext {
            commit: commit.clone(),
            machine: machine.machine.clone(),
            covariates: covariates_of(&machine),
            imported_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        })
    }
}

pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    match args.what {
        ImportWhat::Bmf {
            files,
            measures,
            target,
        } => {
            let ctx = target.context()?;
            let mut db = Database::open(&target.db)?;
            let units = MeasureUnits {
                overrides: measures
                    .into_iter()
                    .map(|(name, unit, d)| (name, (unit, d)))
                    .collect::<BTreeMap<_, _>>(),
            };
            // Everything is read and checked before anything is stored.
            let records = files
                .iter()
                .map(|f| {
                    let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
                    Ok(db.bmf_record(f, &text, ctx.clone(), &units)?)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let labels: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            store(&mut db, &labels, records)
        }
        ImportWhat::Criterion { dir, target } => {
            let ctx = target.context()?;
            let benchmarks = read_criterion(&dir)?;
            let record = criterion_record(&dir, &benchmarks, ctx);
            let mut db = Database::open(&target.db)?;
            store(
                &mut db,
                &[format!("{} ({} benchmarks)", dir.display(), benchmarks.len())],
                vec![record],
            )
        }
    }
}

/// Stores records, decides the verdicts of the new ones, and says what happened.
fn store(db: &mut Database, labels: &[String], records: Vec<RunRecord>) -> anyhow::Result<()> {
    let mut stored = Vec::new();
    for (label, record) in labels.iter().zip(&records) {
        match db.ingest_record(record)? {
            IngestOutcome::Stored { run_id } => {
                println!("{label}: stored as run {run_id}");
                stored.push(run_id);
            }
            IngestOutcome::AlreadyPresent { run_id } => {
                println!("{label}: already stored as run {run_id}")
            }
        }
    }
    crate::ingest::analyze(db, &stored)
}
