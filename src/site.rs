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
    /// Publish only runs made on this branch (default: all runs).
    #[arg(long)]
    branch: Option<String>,
}

pub fn run(args: SiteArgs) -> anyhow::Result<()> {
    if !args.db.is_file() {
        anyhow::bail!(
            "database {} does not exist; record a run first with `soledad-bench run`",
            args.db.display()
        );
    }
    let db = Database::open(&args.db)?;
    let report = generate(&db, &args.out, args.branch)?;
    println!(
        "site: {} ({} pages, {} plots)",
        report.index.display(),
        report.pages,
        report.plots
    );
    Ok(())
}

pub fn generate(db: &Database, out: &Path, branch: Option<String>) -> anyhow::Result<SiteReport> {
    let options = SiteOptions {
        branch,
        ..SiteOptions::default()
    };
    site_gen::generate(db, out, &options).with_context(|| format!("cannot generate the site in {}", out.display()))
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
