//! `soledad-bench run`: the main job. Benchmarks the checked-out commit, stores the run,
//! decides its verdicts and regenerates the site.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use collector::{AnalysisOptions, Database};
use contract::results::CommitInfo;
use contract::results::MachineInfo;
use harness::HarnessError;
use harness::runner::{Build, ExternalServer, Precision, Results, RunConfig};
use harness::scenario::ScenarioSet;
use harness::trash::Trash;
use site_gen::format::short_sha;

use crate::kept_build::{self, KeptBuild, KeptMeta, ThisRun};

/// How a paired run's baseline side begins its `pairing`, so that its results file is never
/// taken for a run of its own commit (`ingest` refuses it).
pub(crate) const BASELINE_SIDE: &str = "baseline side of run";
use collector::statistics::counts::{UNKNOWN_SERVER_SPREAD, UNKNOWN_SPREAD};
use collector::statistics::noise_floor::MIN_CHANGES;
use collector::statistics::paired::PairedOptions;

/// Most disk space that finished rounds' and scenarios' small files may hold until the
/// process ends (see `harness::trash`).
const TRASH_CAP: u64 = 4 << 30;

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
    /// Benchmark this already running server (a loopback URL) instead of starting one per
    /// scenario. Its process is not measured: server-side metrics are absent.
    #[arg(long, requires = "target_user")]
    target: Option<String>,
    /// User on the --target server; the token comes from SOLEDAD_BENCH_TARGET_TOKEN.
    #[arg(long)]
    target_user: Option<String>,
    #[arg(long, env = "SOLEDAD_BENCH_TARGET_TOKEN", hide_env_values = true)]
    target_token: Option<String>,
    /// The --target server's services listener (a loopback URL), for the incoming.*
    /// workloads; the MX's service token comes from SOLEDAD_BENCH_TARGET_SERVICE_TOKEN.
    #[arg(long, requires = "target")]
    target_services: Option<String>,
    #[arg(long, env = "SOLEDAD_BENCH_TARGET_SERVICE_TOKEN", hide_env_values = true)]
    target_service_token: Option<String>,
    /// Run the scenarios in an order shuffled with this seed.
    #[arg(long)]
    shuffle: Option<u64>,
    /// Pair the rounds with the kept build in this directory (the previous benchmarked
    /// commit's binaries, left by `--keep-build`): rounds interleave A B B A, and the commit's
    /// timed verdicts come from the paired ratios. Each side gets half of a scenario's time
    /// cap (fixed-duration rounds, as in server.load, take twice as long). Without a usable
    /// kept build, or when it fails, the rounds run unpaired and the run says why.
    #[arg(long, conflicts_with = "target")]
    baseline: Option<PathBuf>,
    /// After the run, keep this run's binaries in this directory for the next commit's
    /// `--baseline` (replacing what it held).
    #[arg(long)]
    keep_build: Option<PathBuf>,
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

/// How the harness runs scenarios (shared by `run` and `calibrate`).
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
    /// Skip the count round: the extra round per scenario that counts the client's and the
    /// server's instructions under Valgrind (`client_instructions`, `server_instructions`).
    /// Without Valgrind installed it is skipped anyway, with a warning.
    #[arg(long, env = "SOLEDAD_BENCH_NO_COUNT_ROUND", value_parser = clap::builder::BoolishValueParser::new())]
    no_count_round: bool,
}

impl HarnessArgs {
    /// The run configuration, with Ctrl-C stopping the run. Call it once per process.
    pub fn config(&self, target: Option<ExternalServer>, shuffle_seed: Option<u64>) -> anyhow::Result<RunConfig> {
        let server_bin = match &target {
            Some(_) => PathBuf::new(),
            None => harness::binaries::server_binary(self.server_bin.as_deref())?,
        };
        self.config_with(server_bin, target, shuffle_seed)
    }

    /// The run configuration for runs whose binaries come from builds of revisions
    /// (`compare`, `backfill`, `find`): this workspace's server is not looked for.
    pub fn config_for_builds(&self) -> anyhow::Result<RunConfig> {
        self.config_with(PathBuf::new(), None, None)
    }

    fn config_with(
        &self,
        server_bin: PathBuf,
        target: Option<ExternalServer>,
        shuffle_seed: Option<u64>,
    ) -> anyhow::Result<RunConfig> {
        let interrupted = Arc::new(AtomicBool::new(false));
        let flag = interrupted.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)).context("cannot install the Ctrl-C handler")?;
        let work_root = self
            .work_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
            .join("soledad-bench");
        let trash = Trash::new(&work_root, TRASH_CAP)
            .with_context(|| format!("cannot create a directory in {}", work_root.display()))?;
        // Scenarios work inside the process's trash directory, so that a killed run's data is
        // found and deleted by the next run (see `harness::trash`).
        let work_root = trash.live_dir();
        Ok(RunConfig {
            server_bin,
            driver_bin: std::env::current_exe().context("cannot find the soledad-bench executable")?,
            sample_interval: Duration::from_millis(self.sample_interval_ms),
            seed: self.seed,
            shuffle_seed,
            work_root,
            progress: true,
            target,
            precision: Arc::new(MedianCi),
            interrupted,
            trash: Arc::new(trash),
            valgrind: self.valgrind(),
        })
    }
}

impl HarnessArgs {
    /// The Valgrind the count round uses, unless it is turned off or missing (said once).
    fn valgrind(&self) -> Option<harness::count::Valgrind> {
        if self.no_count_round {
            return None;
        }
        match harness::count::Valgrind::find() {
            Ok(v) => {
                if let harness::count::Turns::TimeSliced { why } = v.turns() {
                    eprintln!(
                        "warning: the count round's processes take turns by time slices ({why}): \
                         server counts then follow how the socket splits the data (up to 6% \
                         apart between identical runs, harness/RESULTS.md)"
                    );
                } else if !v.in_memory() {
                    eprintln!(
                        "warning: the count round keeps its data on disk (/dev/shm is not a memory \
                         filesystem with 2 GiB free; in a container, --shm-size): server counts \
                         then spread more (up to 1% apart, harness/RESULTS.md)"
                    );
                }
                Some(v)
            }
            Err(e) => {
                eprintln!(
                    "warning: no count round ({e}); install Valgrind for the client_instructions and server_instructions series"
                );
                None
            }
        }
    }
}

/// The collector's confidence interval decides when a scenario has enough rounds.
struct MedianCi;

impl Precision for MedianCi {
    fn relative_ci_half_width(&self, samples: &[f64]) -> Option<f64> {
        collector::statistics::summarize(samples).map(|s| s.relative_ci_half_width())
    }

    /// The paired comparison's own interval, so that a paired scenario stops once its verdict
    /// could call a change of the target's size. Needs the paired statistics' minimum rounds.
    fn paired_relative_ci_half_width(&self, a: &[f64], b: &[f64]) -> Option<f64> {
        use collector::statistics::paired::{PairedOptions, compare_paired};
        let c = compare_paired(a, b, contract::Direction::Lower, &PairedOptions::default()).ok()?;
        Some((c.ci_upper / c.ratio - 1.0).max(1.0 - c.ci_lower / c.ratio))
    }
}

/// Benchmark traffic stays on this machine: only `http://127.0.0.1:PORT` URLs are driven.
pub(crate) fn check_loopback(server: &str) -> anyhow::Result<()> {
    workloads::loopback::check(server).map_err(anyhow::Error::msg)
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    // Everything that can be checked is checked before the long part.
    let mut set = ScenarioSet::load(&args.scenarios)?;
    if let Some(seed) = args.shuffle {
        set.shuffle(seed);
    }
    let commit = args.checkout.describe()?;
    crate::site::check_writable(&args.site)?;
    let mut db = Database::open(&args.db)?;
    let target = match (&args.target, &args.target_user) {
        (Some(url), Some(user)) => {
            check_loopback(url)?;
            let token = args
                .target_token
                .clone()
                .context("--target needs SOLEDAD_BENCH_TARGET_TOKEN")?;
            let services = match &args.target_services {
                Some(services) => {
                    check_loopback(services)?;
                    let token = args
                        .target_service_token
                        .clone()
                        .context("--target-services needs SOLEDAD_BENCH_TARGET_SERVICE_TOKEN")?;
                    Some((services.trim_end_matches('/').to_owned(), token))
                }
                None => {
                    if let Some(s) = set.scenarios.iter().find(|s| s.params.workload.needs_services()) {
                        bail!(
                            "scenario {} delivers mail through the server's services listener: give the --target server's with --target-services (and SOLEDAD_BENCH_TARGET_SERVICE_TOKEN)",
                            s.id()
                        );
                    }
                    None
                }
            };
            Some(ExternalServer {
                url: url.trim_end_matches('/').to_owned(),
                user: user.clone(),
                token,
                services,
            })
        }
        _ => None,
    };
    let config = args.harness.config(target, args.shuffle)?;
    let machine = harness::machine::describe(harness::binaries::profile());
    let own = config.build();
    let this = ThisRun {
        commit: &commit,
        rustc: &machine.machine.rustc,
        profile: &machine.machine.profile,
        repo: &args.checkout.repo,
    };
    let kept = args.baseline.as_deref().map(|dir| kept_build::load(dir, &this));

    eprintln!(
        "benchmarking {} ({}) with {} scenarios from {}",
        &commit.sha[..10],
        commit.subject,
        set.scenarios.len(),
        set.path.display()
    );
    let paired = match kept {
        None => None,
        Some(Err(reason)) => Some(Err(reason)),
        Some(Ok(kept)) => Some(run_paired(kept, &set, &commit, &machine, &config, &own)?),
    };
    let (results, baseline) = match paired {
        None => (harness::runner::run(&set, commit, machine, &config)?, None),
        Some(Ok([a, b])) => (b, Some(a)),
        Some(Err(reason)) => {
            eprintln!("warning: unpaired rounds: {reason}");
            let mut results = harness::runner::run(&set, commit, machine, &config)?;
            results.run.pairing = Some(format!("unpaired: {reason}"));
            (results, None)
        }
    };

    let results_file = match &args.results {
        Some(path) => path.clone(),
        None => default_results_dir(&args.db).join(format!("{}.json", results.run.id)),
    };
    results.save(&results_file)?;
    let run_id = match &baseline {
        Some(a) => {
            a.save(&results_file.with_extension("baseline.json"))?;
            let labels = [short_sha(&a.commit.sha), short_sha(&results.commit.sha)];
            db.record_paired_run(a, &results, labels, &PairedOptions::default())?.0
        }
        None => db.ingest(&results)?.run_id(),
    };
    db.analyze_run(run_id, &AnalysisOptions::default())?;
    if let Some(dir) = &args.keep_build {
        kept_build::keep(dir, &own, &KeptMeta::of(&results)).with_context(|| {
            format!(
                "the run is stored, but its build could not be kept in {}",
                dir.display()
            )
        })?;
        println!(
            "kept:     this build in {} for the next run's --baseline",
            dir.display()
        );
    }
    let verdicts = db.verdicts(run_id)?;
    // The site publishes the branch just benchmarked, so that this run is on it.
    let report = crate::site::generate(&mut db, &args.site, results.commit.branch.clone())?;
    println!("results:  {}", results_file.display());
    println!("database: {} (run {run_id})", args.db.display());
    println!(
        "verdicts: {} (details: soledad-bench check --db {})",
        crate::check::summary(&verdicts),
        args.db.display()
    );
    println!("site:     {}", report.index.display());
    println!("target:   {}", target_summary(&results));
    Ok(())
}

/// How many scenarios reached their CI target, and where to look when few did. On a shared
/// machine most timed series end noisy; the counted ones are still judged, so the line says
/// how many those are rather than leaving "noisy" as the last word.
fn target_summary(results: &harness::runner::Results) -> String {
    let budgets: Vec<_> = results.scenarios.iter().filter_map(|s| s.budget.as_ref()).collect();
    let reached = budgets.iter().filter(|b| !b.noisy).count();
    let paired = if budgets.iter().any(|b| b.paired_ci.is_some()) {
        "paired "
    } else {
        ""
    };
    let mut line = format!(
        "{reached} of {} scenarios reached their {paired}CI target on their headline number",
        budgets.len()
    );
    if reached < budgets.len() {
        line.push_str("; the rest are marked noisy (`soledad-bench noise` tells how steady this machine is)");
    }
    let counted = results
        .scenarios
        .iter()
        .filter(|s| s.metrics.keys().any(|m| contract::metrics::is_counted(m)))
        .count();
    if counted > 0 {
        line.push_str(&format!(
            "; {counted} were counted too: a noisy machine barely moves their instruction \
             counts, which are judged by their own spread once {} runs are behind them, before that \
             only beyond {}% for a client and {}% for a server (the site's front page says \
             what each series can judge)",
            MIN_CHANGES + 1,
            UNKNOWN_SPREAD * 100.0,
            UNKNOWN_SERVER_SPREAD * 100.0
        ));
    }
    line
}

/// The rounds of this commit paired with the kept build's, both sides' results with their
/// `pairing`; `Ok(Err(why))` when the kept build failed where this one works (a workload or
/// an option an old driver does not know), so that this commit is measured alone all the
/// same and its build kept: the next commit does not meet the same failure.
fn run_paired(
    kept: KeptBuild,
    set: &ScenarioSet,
    commit: &CommitInfo,
    machine: &MachineInfo,
    config: &RunConfig,
    own: &Build,
) -> anyhow::Result<Result<[Results; 2], String>> {
    let note = format!(
        "paired with {}'s binaries, kept {}",
        short_sha(&kept.meta.commit.sha),
        kept.meta.kept_at
    );
    eprintln!("rounds {note}");
    let (_copies, builds) = driver_copies([kept.build, own.clone()])?;
    let paired = harness::runner::run_paired(
        &paired_set(set.clone()),
        [kept.meta.commit.clone(), commit.clone()],
        machine.clone(),
        config,
        builds,
    );
    let [mut a, mut b] = match paired {
        Ok(pair) => pair,
        Err(HarnessError::Interrupted) => return Err(HarnessError::Interrupted.into()),
        Err(e) => {
            return Ok(Err(format!(
                "the kept build of {} failed: {e}",
                short_sha(&kept.meta.commit.sha)
            )));
        }
    };
    let note = match kept_build::drop_changed_definitions(&mut a, &kept.meta) {
        0 => note,
        n => format!("{note}; {n} scenarios unpaired, their definition changed since"),
    };
    let note = match set.scenarios.iter().filter(|s| !s.paired).count() {
        0 => note,
        n => format!("{note}; {n} scenarios measured alone (paired = false), judged by their history"),
    };
    a.run.pairing = Some(format!("{BASELINE_SIDE} {}: {note}", b.run.id));
    b.run.pairing = Some(note);
    Ok(Ok([a, b]))
}

/// The two builds of a paired run with their drivers copied into a fresh directory, one
/// after the other (the directory lives as long as the returned guard). How many pages a
/// driver faults in depends on how its executable sits in the page cache: started from the
/// harness's own executable (mapped by the harness already), this commit's drivers took
/// 1.6-32% fewer minor page faults than the kept copy of the same binary, which the pairs
/// called an improvement. Copied alike, they differed by 0.5% at most (docs/statistics.md).
fn driver_copies(mut builds: [Build; 2]) -> anyhow::Result<(tempfile::TempDir, [Build; 2])> {
    let dir = tempfile::Builder::new()
        .prefix("soledad-bench-drivers-")
        .tempdir()
        .context("cannot make a directory for copies of the drivers")?;
    for (build, name) in builds.iter_mut().zip(["a", "b"]) {
        let to = dir.path().join(name);
        std::fs::copy(&build.driver_bin, &to)
            .with_context(|| format!("cannot copy {} to {}", build.driver_bin.display(), to.display()))?;
        build.driver_bin = to;
    }
    Ok((dir, builds))
}

/// A scenario set for paired rounds: enough rounds for the paired statistics, and each side
/// half of the time cap, so that scenarios capped by time take as long as unpaired (those of
/// fixed-duration rounds take twice as long, unless marked `paired = false`, which run
/// alone on their own budget; `docs/statistics.md` has the measured total).
pub(crate) fn paired_set(mut set: ScenarioSet) -> ScenarioSet {
    let least = collector::statistics::paired::MIN_ROUNDS as u32;
    for s in set.scenarios.iter_mut().filter(|s| s.paired) {
        s.budget.min_rounds = s.budget.min_rounds.max(least);
        s.budget.max_rounds = s.budget.max_rounds.max(s.budget.min_rounds);
        s.budget.max_time /= 2;
    }
    set
}

fn default_results_dir(db: &Path) -> PathBuf {
    db.parent().unwrap_or(Path::new("")).join("results")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both sides run copies, neither of them the file they came from, with its bytes and its
    /// permission to run.
    #[test]
    fn both_drivers_of_a_pair_run_from_copies_made_alike() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let build = |name: &str| {
            let driver = dir.path().join(name);
            std::fs::write(&driver, format!("#!/bin/sh\necho {name}\n")).unwrap();
            std::fs::set_permissions(&driver, std::fs::Permissions::from_mode(0o755)).unwrap();
            Build {
                server_bin: dir.path().join("blobs-server"),
                driver_bin: driver,
                env: Vec::new(),
            }
        };
        let (copies, [a, b]) = driver_copies([build("kept"), build("own")]).unwrap();
        for (side, from) in [(&a, "kept"), (&b, "own")] {
            assert_eq!(side.driver_bin.parent(), Some(copies.path()));
            assert_ne!(side.driver_bin, dir.path().join(from));
            assert_eq!(
                std::fs::read_to_string(&side.driver_bin).unwrap(),
                format!("#!/bin/sh\necho {from}\n")
            );
            let mode = std::fs::metadata(&side.driver_bin).unwrap().permissions().mode();
            assert_eq!(mode & 0o111, 0o111, "still executable");
            assert_eq!(
                side.server_bin,
                dir.path().join("blobs-server"),
                "servers are not copied"
            );
        }
        let path = a.driver_bin.clone();
        drop(copies);
        assert!(!path.exists(), "the copies go with their guard");
    }
}
