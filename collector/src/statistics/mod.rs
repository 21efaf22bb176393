//! Statistics of benchmark samples: what a data point says, whether a commit changed a series,
//! where a series' level shifted, and how two interleaved builds compare.
//!
//! The prose twin of this module is `docs/statistics.md`; change both together. One concept
//! per file:
//!
//! - [`summary`]: the data point (median and its CI, mean, stddev, CV, outliers, MDE).
//! - [`quantile`]: order statistics shared by the others.
//! - [`outliers`]: Tukey fences, reported and never dropped.
//! - [`mde`]: the minimum detectable effect at a data point's noise.
//! - [`ranks`]: mid-ranks and tie groups for the rank tests.
//! - [`mann_whitney`]: the rank test of a commit's samples against its baseline's.
//! - [`hodges_lehmann`]: the shift between them, with its CI.
//! - [`fdr`]: Benjamini-Hochberg across the series of a run.
//! - [`noise_floor`]: how much a series moves from commit to commit by itself.
//! - [`verdict`]: the policy that turns all of the above into a verdict.
//! - [`counts`]: the verdict of count-round series (instructions), which have no rounds.
//! - [`t_test`], [`change_point`]: E-divisive means with a t-test over a series' history.
//! - [`paired`]: paired comparison of two builds run interleaved.
//!
//! How often these statistics get seeded series with known truth right is measured by the
//! development-only `testdata` crate (`testdata::accuracy`).
//!
//! The distributions come from statrs. No crate offers the rank tests with exact small-sample
//! distributions, the Hodges-Lehmann interval, or E-divisive, so those are written here and
//! checked against reference values computed by scipy, R and Otava (`collector/tests/fixtures`).

pub mod change_point;
pub mod counts;
pub mod fdr;
pub mod hodges_lehmann;
pub mod mann_whitney;
pub mod mde;
pub mod noise_floor;
pub mod outliers;
pub mod paired;
pub mod quantile;
pub mod ranks;
pub mod summary;
pub mod t_test;
pub mod verdict;

pub use quantile::median_ci;
pub use summary::{Summary, summarize};

/// Target coverage of confidence intervals.
pub const CONFIDENCE: f64 = 0.95;

/// Version of the statistics, stored with every verdict so that a later version can tell
/// which rows it must recompute: 2 leaves the series `contract::metrics::not_judged` names
/// (shares of a core, preemptions, totals of fixed-duration rounds) without a verdict.
pub const STATISTICS_VERSION: i64 = 2;
