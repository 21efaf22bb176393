//! `soledad-bench site`: regenerates the static site from the database.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use collector::Database;
use site_gen::{SiteOptions, SiteReport};

/// Regenerate the static site from the database.
#[derive(clap::Args)]
pub struct SiteArgs {
    /// The benchmark database.
    #[arg(long, default_value = "bench.sqlite")]
    db: PathBuf,
    /// Directory to write the site into.
    #[arg(long = "out", default_value = "public")]
    out: PathBuf,
    /// Publish the first-parent history of this branch [default: master, else main, else the
    /// branch with the most runs].
    #[arg(long)]
    branch: Option<String>,
    #[command(flatten)]
    links: LinkArgs,
    /// Leave the database out of the site (it is published as bench.sqlite.gz by default).
    #[arg(long)]
    no_database: bool,
}

/// Where the site links to, from the CI's variables when the flags are not given.
#[derive(clap::Args, Default)]
pub struct LinkArgs {
    /// A commit in the repository's web interface, {sha} standing for the commit
    /// [default: $CI_PROJECT_URL/-/commit/{sha} when CI_PROJECT_URL is set].
    #[arg(long, env = "SOLEDAD_BENCH_COMMIT_URL")]
    commit_url: Option<String>,
    /// The absolute URL the site is published at, for the feed's links.
    #[arg(long, env = "CI_PAGES_URL")]
    site_url: Option<String>,
}

impl LinkArgs {
    /// From the environment alone, as `run` has no flags for them.
    fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            commit_url: var("SOLEDAD_BENCH_COMMIT_URL"),
            site_url: var("CI_PAGES_URL"),
        }
    }

    fn options(self, branch: Option<String>) -> SiteOptions {
        let commit_url = self.commit_url.or_else(|| {
            std::env::var("CI_PROJECT_URL")
                .ok()
                .filter(|u| !u.is_empty())
                .map(|u| format!("{}/-/commit/{{sha}}", u.trim_end_matches('/')))
        });
        SiteOptions {
            branch,
            commit_url,
            site_url: self.site_url,
            ..SiteOptions::default()
        }
    }
}

pub fn run(args: SiteArgs) -> anyhow::Result<()> {
    if !args.db.is_file() {
        anyhow::bail!(
            "database {} does not exist; record a run first with `soledad-bench run`",
            args.db.display()
        );
    }
    let mut db = Database::open(&args.db)?;
    let mut options = args.links.options(args.branch);
    options.export_database = !args.no_database;
    let report = write(&mut db, &args.out, &options)?;
    print_report(&report);
    Ok(())
}

fn print_report(report: &SiteReport) {
    println!(
        "site: {} ({} pages, {} plots{}{}, {:.1} s)",
        report.index.display(),
        report.pages,
        report.plots,
        report
            .branch
            .as_ref()
            .map(|b| format!(", branch {b}"))
            .unwrap_or_default(),
        report
            .database
            .as_ref()
            .map(|d| format!(", history in {}", d.display()))
            .unwrap_or_default(),
        report.seconds
    );
}

/// Generates the site, after deciding again what older statistics decided (after an
/// upgrade of the rules), so that every page shows the rules of this binary.
fn write(db: &mut Database, out: &Path, options: &SiteOptions) -> anyhow::Result<SiteReport> {
    // A failure here must not stop a publish: the pages then show what the older rules
    // decided, as they did before.
    match db.redecide_stale() {
        Ok(redecided) if redecided != collector::Redecided::default() => println!(
            "decided again by the statistics now: {} runs, {} branch comparisons",
            redecided.runs, redecided.comparisons
        ),
        Ok(_) => {}
        Err(e) => eprintln!("warning: the site shows verdicts of older statistics: cannot decide them again: {e}"),
    }
    site_gen::generate(db, out, options).with_context(|| format!("cannot generate the site in {}", out.display()))
}

/// The site as `run` regenerates it: `branch` to publish (`None` for the default branch),
/// links from the CI's variables.
pub fn generate(db: &mut Database, out: &Path, branch: Option<String>) -> anyhow::Result<SiteReport> {
    write(db, out, &LinkArgs::from_env().options(branch))
}

/// Fails early, before a long run, if the site cannot be written.
pub fn check_writable(dir: &Path) -> anyhow::Result<()> {
    let fail = |e: std::io::Error| anyhow::anyhow!("cannot write the site to {}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(".soledad-bench-write-check");
    std::fs::write(&probe, b"").map_err(fail)?;
    std::fs::remove_file(&probe).map_err(fail)?;
    Ok(())
}
