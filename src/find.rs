//! `soledad-bench find GOOD BAD`: names the first commit between two where a change of one
//! metric of one scenario appears, by bisecting the first-parent chain with interleaved
//! comparisons against GOOD.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use collector::Database;
use collector::comparison::ComparisonRow;
use collector::statistics::paired::{DEFAULT_ROUNDS, MIN_ROUNDS};
use contract::Verdict;
use git2::Repository;

use crate::backfill::first_parent_commits;
use crate::compare::{BuildArgs, compare, load_set};
use crate::revisions::Revision;
use crate::run::HarnessArgs;

/// Find the first commit where a change between GOOD and BAD appears.
#[derive(clap::Args)]
pub struct FindArgs {
    /// A commit without the change.
    good: String,
    /// A later commit with it (on GOOD's first-parent descendants).
    bad: String,
    /// The scenario that changed (an id such as blobs.upload/10x100k/c1).
    #[arg(long)]
    scenario: String,
    /// The metric that changed [default: the scenario's headline metric].
    #[arg(long)]
    metric: Option<String>,
    /// Scenario file that defines the scenario.
    #[arg(long, default_value = "scenarios/smoke.toml")]
    scenarios: PathBuf,
    /// Paired rounds per comparison.
    #[arg(long, default_value_t = DEFAULT_ROUNDS, value_parser = clap::value_parser!(u32).range(MIN_ROUNDS as i64..))]
    rounds: u32,
    /// The benchmark database (the comparisons are stored there).
    #[arg(long, default_value = "bench.sqlite")]
    db: PathBuf,
    #[command(flatten)]
    builds: BuildArgs,
    #[command(flatten)]
    harness: HarnessArgs,
}

/// Whether a commit shows the change, judged from its comparison with GOOD: a verdict in
/// the change's direction says yes, `unchanged` says no, and otherwise the commit goes with
/// whichever level, GOOD's or BAD's, its ratio is nearer to (in log scale).
fn has_change(row: &ComparisonRow, change: &ComparisonRow) -> bool {
    let (Some(ratio), Some(target)) = (row.ratio, change.ratio) else {
        return false;
    };
    if row.verdict == change.verdict {
        return true;
    }
    if row.is(Verdict::Unchanged) {
        return false;
    }
    (ratio.ln() - target.ln()).abs() < ratio.ln().abs()
}

fn pick(rows: &[ComparisonRow], scenario: &str, metric: &str) -> anyhow::Result<ComparisonRow> {
    rows.iter()
        .find(|r| r.scenario_id == scenario && r.metric == metric)
        .cloned()
        .with_context(|| format!("the comparison has no metric {metric} of scenario {scenario}"))
}

pub fn run(args: FindArgs) -> anyhow::Result<()> {
    let set = load_set(&args.scenarios, Some(&args.scenario), args.rounds)?;
    let planned = set
        .scenarios
        .iter()
        .find(|s| s.id() == args.scenario)
        .with_context(|| {
            format!(
                "{} defines no scenario {} (only ids that contain it)",
                args.scenarios.display(),
                args.scenario
            )
        })?;
    let metric = args
        .metric
        .clone()
        .unwrap_or_else(|| planned.params.workload.headline_metric().to_owned());
    if let Some(why) = contract::metrics::not_judged(&metric, !planned.params.workload.fixed_work()) {
        bail!(
            "{metric} of {} is {why} (docs/statistics.md, \"Series no rule judges\"); look for the \
             change in a rate, a latency or CPU seconds, such as {}",
            args.scenario,
            planned.params.workload.headline_metric()
        );
    }
    let mut set = set.clone();
    set.scenarios.retain(|s| s.id() == args.scenario);
    let cache = args.builds.cache()?;
    let good = cache.resolve(&args.good)?;
    let bad = cache.resolve(&args.bad)?;
    let repo = Repository::open(cache.repo())?;
    // The candidates: commits after GOOD up to BAD, oldest first.
    let mut chain: Vec<String> = first_parent_commits(&repo, &format!("{good}..{bad}"))?
        .into_iter()
        .map(|(sha, _)| sha)
        .collect();
    if chain.last() != Some(&bad) {
        bail!("{} is not a first-parent descendant of {}", args.bad, args.good);
    }
    let mut db = Database::open(&args.db)?;
    let mut config = args.harness.config_for_builds()?;
    // The count round answers only for the count metrics; for the others it is time lost.
    if !contract::metrics::is_counted(&metric) {
        config.valgrind = None;
    } else if config.valgrind.is_none() {
        bail!("{metric} comes from the count round, which needs Valgrind (and no --no-count-round)");
    } else if !planned.count_round {
        bail!(
            "{metric} comes from the count round, which {} turns off for {}",
            args.scenarios.display(),
            args.scenario
        );
    }
    let mut compare_with_good = |sha: &str| -> anyhow::Result<Result<ComparisonRow, String>> {
        match cache.build(&Revision::Commit(sha.to_owned()))? {
            Err(failure) => Ok(Err(failure.to_string())),
            Ok(_) => {
                let c = compare(
                    &cache,
                    &set,
                    [
                        (Revision::Commit(good.clone()), args.good.clone()),
                        (Revision::Commit(sha.to_owned()), sha[..10].to_owned()),
                    ],
                    &config,
                    &mut db,
                )?;
                Ok(Ok(pick(&c.rows, &args.scenario, &metric)?))
            }
        }
    };
    let change = compare_with_good(&bad)?.map_err(|e| anyhow::anyhow!(e))?;
    if !change.verdict.is_some_and(Verdict::is_change) {
        bail!(
            "{metric} of {} is {} between {} and {} (B/A {}): no confirmed change to find",
            args.scenario,
            change.verdict_name(),
            args.good,
            args.bad,
            change.ratio.map_or("-".into(), |r| format!("{r:.3}"))
        );
    }
    eprintln!(
        "{metric} of {}: {} of {:+.1}% at {}",
        args.scenario,
        change.verdict_name(),
        (change.ratio.unwrap_or(1.0) - 1.0) * 100.0,
        &bad[..10]
    );
    // Invariant: GOOD (before chain[lo]) lacks the change, chain[hi] has it.
    let (mut lo, mut hi) = (0usize, chain.len() - 1);
    let mut unbuildable = Vec::new();
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let sha = chain[mid].clone();
        match compare_with_good(&sha)? {
            Err(reason) => {
                eprintln!("{}: skipped: {reason}", &sha[..10]);
                unbuildable.push(sha);
                chain.remove(mid);
                hi -= 1;
            }
            Ok(row) => {
                let changed = has_change(&row, &change);
                eprintln!(
                    "{}: {} {:+.1}% -> {}",
                    &sha[..10],
                    row.verdict_name(),
                    (row.ratio.unwrap_or(1.0) - 1.0) * 100.0,
                    if changed { "has the change" } else { "does not" }
                );
                if changed {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
        }
    }
    let first = &chain[hi];
    let commit = repo.find_commit(git2::Oid::from_str(first)?)?;
    println!(
        "first commit with the change: {} {}",
        first,
        String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default())
    );
    if !unbuildable.is_empty() {
        println!(
            "(commits that do not build, so the change may be in one of them: {})",
            unbuildable.join(", ")
        );
    }
    Ok(())
}
