//! What older statistics decided, decided again by the statistics now.
//!
//! Verdicts and comparisons record the version of the rule that decided them. After an
//! upgrade changes a rule, `check` decides one run again when it reads it; the site shows
//! every run and comparison, so it brings them all up to date first
//! ([`Database::redecide_stale`]): its verdicts and comparisons are then all decided by the
//! rules of the binary that generated it.

use crate::statistics::STATISTICS_VERSION;
use crate::statistics::paired;
use crate::{AnalysisOptions, CollectorError, Database};

/// What [`Database::redecide_stale`] decided again.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Redecided {
    /// Branch comparisons decided again by the paired rule.
    pub comparisons: usize,
    /// Runs whose verdicts (and pairing with a baseline build, if any) were decided again.
    pub runs: usize,
}

impl Database {
    /// Decides again, from the raw samples, every run whose verdicts or pairing an older
    /// rule decided and every branch comparison an older paired rule decided. Cheap when
    /// nothing is stale (two queries), so callers may run it before every read. What a newer
    /// binary decided is left alone: an older one, reading the history a newer one wrote,
    /// must not undo its rules.
    pub fn redecide_stale(&mut self) -> Result<Redecided, CollectorError> {
        let runs: Vec<i64> = {
            let mut stmt = self.conn.prepare(
                "SELECT run_id FROM verdicts WHERE statistics_version < ?1
                 UNION SELECT run_b FROM comparisons WHERE kind = 'baseline' AND statistics_version < ?2
                 ORDER BY 1",
            )?;
            stmt.query_map([STATISTICS_VERSION, paired::STATISTICS_VERSION], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        if !runs.is_empty() {
            let options = AnalysisOptions {
                redecide_pairs: true,
                ..AnalysisOptions::default()
            };
            self.analyze_runs(&runs, &options)?;
        }
        let comparisons: Vec<i64> = {
            let mut stmt = self.conn.prepare(
                "SELECT id FROM comparisons WHERE kind != 'baseline' AND statistics_version < ?1 ORDER BY id",
            )?;
            stmt.query_map([paired::STATISTICS_VERSION], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for &id in &comparisons {
            self.redecide_comparison(id)?;
        }
        Ok(Redecided {
            comparisons: comparisons.len(),
            runs: runs.len(),
        })
    }
}
