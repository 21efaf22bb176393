//! Development only: seeded benchmark data with known truth, never product code. The
//! collector's accuracy tests and example measure how often the statistics get `noise`'s
//! series right (`accuracy`); the site's tests and its benchmark render `history`, a
//! realistic history stored through the collector's real ingest and analysis.

pub mod accuracy;
pub mod history;
pub mod noise;
