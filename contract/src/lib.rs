//! The contract between the pipeline's stages, at the floor of the workspace: what the harness
//! writes and the collector reads (the results format, `results`), what every stage calls a
//! metric (`metrics`: unit, direction, description, display order), what a verdict is
//! (`verdict`), and how a scenario's rounds are budgeted and why measuring stopped (`budget`).
//!
//! Every stage depends on this crate and on nothing of the stages before it, as rustc-perf's
//! `database` and Bencher's `bencher_json` are shared by their tools: the collector reads
//! results files, the site reads the store. Changing anything here changes a contract;
//! `harness/RESULTS.md` documents the format field by field.

pub mod budget;
pub mod metrics;
pub mod results;
pub mod verdict;

pub use budget::{Budget, StopReason};
pub use metrics::{CATALOGUE, Direction, MetricDef};
pub use results::{Results, SCHEMA};
pub use verdict::Verdict;
