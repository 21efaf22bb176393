//! The collector: a SQLite store of benchmark history, and the statistics over it.
//!
//! Raw samples are kept beside the summaries so that history can be re-analysed when the
//! statistics improve. The schema is documented in `collector/schema.md`; the statistics in
//! `docs/statistics.md`.

mod analysis;
pub mod bmf;
mod build_failures;
pub mod bulk;
mod calibration;
pub mod comparison;
pub mod criterion;
mod db;
mod fingerprint;
mod graph;
mod ingest;
mod merge;
pub mod query;
pub mod record;
mod schema;
mod snapshot;
mod stale;
pub mod statistics;

pub use analysis::{AnalysisOptions, AnalysisReport, Method};
pub use build_failures::StoredBuildFailure;
pub use calibration::{
    CalibrationKind, CalibrationReport, CalibrationRuns, CalibrationSummary, PairedCalibration, SeriesOutcome,
    rate_lower_bound, rate_upper_bound,
};
pub use db::{CollectorError, Database};
pub use fingerprint::fingerprint;
pub use ingest::IngestOutcome;
pub use merge::MergeReport;
pub use stale::Redecided;
