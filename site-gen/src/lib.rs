//! The static benchmark site, generated from the collector's SQLite file.
//!
//! Only static files come out: HTML with the SVG plots inline, one stylesheet, one small
//! script (filters, sorting, the compare selector; every page reads without it), an Atom feed
//! of regressions, per-commit data files for the compare selector, a CSV per scenario, and
//! the database itself, compressed, as `bench.sqlite.gz` at the root. Links are relative, so
//! the site works under any sub-path and opened straight from disk; nothing is fetched from
//! elsewhere.

mod effects;
mod export;
mod feed;
pub mod format;
mod headlines;
mod model;
mod pages;
mod paths;
mod plot;
mod render;
mod scaling;
mod sparkline;
mod then;

use std::path::{Path, PathBuf};
use std::time::Instant;

pub use paths::DATABASE;

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error(transparent)]
    Collector(#[from] collector::CollectorError),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("template {template} failed: {message}")]
    Template { template: String, message: String },
    #[error("plot of {series} failed: {message}")]
    Plot { series: String, message: String },
    #[error("{option}: {message}")]
    Option { option: &'static str, message: String },
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct SiteOptions {
    pub title: String,
    /// The branch whose first-parent history is published; `None` for the default branch:
    /// `master`, else `main`, else the branch with the most runs (every run when no run names
    /// a branch).
    pub branch: Option<String>,
    /// A commit in the repository's web interface, `{sha}` standing for the commit, such as
    /// `https://0xacab.org/leap/soledad-bench/-/commit/{sha}`. Commit pages link it.
    pub commit_url: Option<String>,
    /// The absolute URL the site is published at, for the feed's links (feed readers resolve
    /// relative ones against the feed's own URL without it).
    pub site_url: Option<String>,
    /// Publish the database as `bench.sqlite.gz`.
    pub export_database: bool,
    /// Rows of the data table under each plot (the newest); the scenario's CSV has them all.
    pub table_points: usize,
}

impl Default for SiteOptions {
    fn default() -> Self {
        Self {
            title: "Soledad blobs benchmarks".into(),
            branch: None,
            commit_url: None,
            site_url: None,
            export_database: true,
            table_points: 30,
        }
    }
}

impl SiteOptions {
    fn check(&self) -> Result<(), SiteError> {
        let web = |option: &'static str, url: &str| {
            if url.starts_with("https://") || url.starts_with("http://") {
                Ok(())
            } else {
                Err(SiteError::Option {
                    option,
                    message: format!("{url:?} is not an http(s) URL"),
                })
            }
        };
        if let Some(url) = &self.commit_url {
            web("commit URL", url)?;
            if !url.contains("{sha}") {
                return Err(SiteError::Option {
                    option: "commit URL",
                    message: format!("{url:?} has no {{sha}} to put the commit in"),
                });
            }
        }
        if let Some(url) = &self.site_url {
            web("site URL", url)?;
        }
        Ok(())
    }
}

/// What was generated.
#[derive(Debug, Clone)]
pub struct SiteReport {
    pub index: PathBuf,
    /// HTML pages.
    pub pages: usize,
    /// Plots over commits (scaling plots not counted).
    pub plots: usize,
    /// The published branch.
    pub branch: Option<String>,
    /// The compressed database, when exported.
    pub database: Option<PathBuf>,
    pub seconds: f64,
}

/// Writes the whole site into `out`, replacing the pages of an earlier generation.
pub fn generate(db: &collector::Database, out: &Path, options: &SiteOptions) -> Result<SiteReport, SiteError> {
    options.check()?;
    let started = Instant::now();
    let db_path = db.path().to_owned();
    std::thread::scope(|scope| {
        // The export is one long sequential job (copy, compress) on a connection of its own:
        // it runs beside the reading of the model and the pages.
        let export = options.export_database.then(|| {
            std::fs::create_dir_all(out).map_err(|source| SiteError::Write {
                path: out.to_owned(),
                source,
            })?;
            Ok::<_, SiteError>(scope.spawn(|| export::database(&db_path, out)))
        });
        let export = export.transpose()?;
        let pages = model::Model::load(db, options).and_then(|model| {
            let (pages, plots) = pages::write_all(&model, out, options)?;
            Ok((pages, plots, model.branch))
        });
        let database = match export {
            Some(job) => Some(job.join().expect("the export thread does not panic")?),
            None => None,
        };
        let (pages, plots, branch) = pages?;
        Ok(SiteReport {
            index: out.join("index.html"),
            pages,
            plots,
            branch,
            database,
            seconds: started.elapsed().as_secs_f64(),
        })
    })
}
