//! `soledad-bench backfill [RANGE]`: benchmarks historical commits, so that a series starts
//! before the benchmarks did. Each commit is checked out and built in the cache; a commit
//! that does not build is recorded and skipped; commits already stored on this machine are
//! not run again unless asked, so an interrupted backfill resumes where it stopped.

use std::path::PathBuf;

use anyhow::Context as _;
use collector::{AnalysisOptions, Database};
use git2::{Repository, Sort};

use crate::compare::{BuildArgs, load_set};
use crate::revisions::Revision;
use crate::run::HarnessArgs;

/// Benchmark historical commits (oldest first, or in bisection order).
#[derive(clap::Args)]
pub struct BackfillArgs {
    /// Commits to benchmark: `A..B` (the first-parent history from B back to, not including, A),
    /// or a single revision and its whole first-parent history [default: HEAD].
    range: Option<String>,
    /// Only commits made at or after this date (YYYY-MM-DD, UTC).
    #[arg(long)]
    since: Option<String>,
    /// Only every Nth commit of the range (always including the newest).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    every: u32,
    /// At most this many commits (the order decides which).
    #[arg(long)]
    max_commits: Option<usize>,
    /// `oldest` first, or `bisect`: the ends, then the middle, then the quarters ..., so that
    /// an interrupted backfill already covers the range evenly.
    #[arg(long, value_enum, default_value_t = Order::Oldest)]
    order: Order,
    /// Run commits again even if they are stored or failed to build.
    #[arg(long)]
    force: bool,
    /// Branch the commits are recorded on.
    #[arg(long, default_value = "master")]
    branch: String,
    /// Scenario file to run.
    #[arg(long, default_value = "scenarios/smoke.toml")]
    scenarios: PathBuf,
    /// The benchmark database.
    #[arg(long, default_value = "bench.sqlite")]
    db: PathBuf,
    /// Directory to write the site into when done (none if absent).
    #[arg(long)]
    site: Option<PathBuf>,
    #[command(flatten)]
    builds: BuildArgs,
    #[command(flatten)]
    harness: HarnessArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Order {
    Oldest,
    Bisect,
}

/// The commits of a range, oldest first, on the first-parent chain.
pub fn first_parent_commits(repo: &Repository, range: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
    walk.simplify_first_parent()?;
    match range.split_once("..") {
        Some((from, to)) => {
            let to = if to.is_empty() { "HEAD" } else { to };
            walk.push(
                repo.revparse_single(to)
                    .with_context(|| format!("{to:?} is not a revision"))?
                    .peel_to_commit()?
                    .id(),
            )?;
            walk.hide(
                repo.revparse_single(from)
                    .with_context(|| format!("{from:?} is not a revision"))?
                    .peel_to_commit()?
                    .id(),
            )?;
        }
        None => walk.push(
            repo.revparse_single(range)
                .with_context(|| format!("{range:?} is not a revision"))?
                .peel_to_commit()?
                .id(),
        )?,
    }
    let mut out = Vec::new();
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        out.push((commit.id().to_string(), commit.time().seconds()));
    }
    Ok(out)
}

/// Indices in bisection order: both ends, then midpoints of the gaps, widest first.
fn bisection_order(n: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let mut order = vec![n - 1];
    if n > 1 {
        order.push(0);
    }
    let mut gaps = std::collections::VecDeque::from([(0usize, n - 1)]);
    while let Some((lo, hi)) = gaps.pop_front() {
        if hi - lo < 2 {
            continue;
        }
        let mid = lo + (hi - lo) / 2;
        order.push(mid);
        gaps.push_back((lo, mid));
        gaps.push_back((mid, hi));
    }
    order
}

fn parse_date(text: &str) -> anyhow::Result<i64> {
    let t = humantime::parse_rfc3339_weak(&format!("{text} 00:00:00"))
        .with_context(|| format!("--since {text:?}: expected a date such as 2026-01-31"))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0))
}

pub fn run(args: BackfillArgs) -> anyhow::Result<()> {
    let set = load_set(&args.scenarios, None, 0)?;
    let cache = args.builds.cache()?;
    let repo = Repository::open(cache.repo())?;
    let mut commits = first_parent_commits(&repo, args.range.as_deref().unwrap_or("HEAD"))?;
    if let Some(since) = &args.since {
        let since = parse_date(since)?;
        commits.retain(|(_, t)| *t >= since);
    }
    if args.every > 1 {
        let n = commits.len();
        let every = args.every as usize;
        commits = commits
            .into_iter()
            .enumerate()
            .filter(|(i, _)| (n - 1 - i) % every == 0)
            .map(|(_, c)| c)
            .collect();
    }
    let mut order: Vec<usize> = match args.order {
        Order::Oldest => (0..commits.len()).collect(),
        Order::Bisect => bisection_order(commits.len()),
    };
    if let Some(max) = args.max_commits {
        order.truncate(max);
    }
    let mut db = Database::open(&args.db)?;
    let config = args.harness.config_for_builds()?;
    let machine = harness::machine::describe(harness::binaries::profile());
    let fingerprint = collector::fingerprint(&machine);
    let scenario_file = set.path.display().to_string();
    let (mut ran, mut stored, mut broken) = (0, 0, 0);
    let describe = |sha: &str| harness::commit::describe(cache.repo(), sha, Some(args.branch.clone()));
    eprintln!("backfilling {} commits from {}", order.len(), scenario_file);
    for (done, &i) in order.iter().enumerate() {
        let sha = &commits[i].0;
        let short = &sha[..10];
        if !args.force {
            if db.has_history_run(sha, &fingerprint, &scenario_file)? {
                eprintln!("[{}/{}] {short}: stored already", done + 1, order.len());
                stored += 1;
                continue;
            }
            if let Some(failure) = db.build_failure(sha)? {
                eprintln!(
                    "[{}/{}] {short}: skipped, it did not build: {}",
                    done + 1,
                    order.len(),
                    failure.reason
                );
                if failure.subject.is_none() {
                    // Recorded before the commit was kept: the site can show it now.
                    db.describe_build_failure(&describe(sha)?)?;
                }
                broken += 1;
                continue;
            }
        }
        let build = match cache.build(&Revision::Commit(sha.clone()))? {
            Ok(built) => built.build,
            Err(failure) => {
                eprintln!("[{}/{}] {short}: skipped: {failure}", done + 1, order.len());
                db.record_build_failure(&describe(sha)?, &failure.reason)?;
                broken += 1;
                continue;
            }
        };
        eprintln!("[{}/{}] {short}: benchmarking", done + 1, order.len());
        let commit = describe(sha)?;
        let machine = harness::machine::describe(harness::binaries::profile());
        let results = harness::runner::run_build(&set, commit, machine, &config, build)?;
        let run_id = db.ingest(&results)?.run_id();
        db.analyze_run(run_id, &AnalysisOptions::default())?;
        ran += 1;
    }
    println!("backfill: {ran} commits benchmarked, {stored} stored already, {broken} do not build");
    if let Some(site) = &args.site {
        let report = crate::site::generate(&mut db, site, None)?;
        println!("site: {}", report.index.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bisection_covers_the_range_evenly() {
        assert_eq!(bisection_order(0), Vec::<usize>::new());
        assert_eq!(bisection_order(1), [0]);
        assert_eq!(bisection_order(2), [1, 0]);
        let order = bisection_order(9);
        assert_eq!(&order[..3], &[8, 0, 4]);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..9).collect::<Vec<_>>());
    }

    #[test]
    fn dates_parse() {
        assert_eq!(parse_date("1970-01-02").unwrap(), 86_400);
        assert!(parse_date("yesterday").unwrap_err().to_string().contains("--since"));
    }
}
