//! The static benchmark site, generated from the collector's SQLite file.
//!
//! Only static files come out: HTML with the SVG plots inline, and one stylesheet. Links are
//! relative, so the site works under any sub-path and opened straight from disk.

pub mod format;
mod pages;
mod plot;

use std::path::{Path, PathBuf};

pub use pages::SiteOptions;

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
}

/// What was generated.
#[derive(Debug, Clone)]
pub struct SiteReport {
    pub index: PathBuf,
    pub pages: usize,
    pub plots: usize,
}

/// Writes the whole site into `out`, replacing pages of an earlier generation.
pub fn generate(db: &collector::Database, out: &Path, options: &SiteOptions) -> Result<SiteReport, SiteError> {
    pages::generate(db, out, options)
}

/// Writes one file, creating its directory.
fn write(path: &Path, contents: &str) -> Result<(), SiteError> {
    let fail = |source| SiteError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    std::fs::write(path, contents).map_err(fail)
}
