//! Commits that do not build, recorded by `backfill` so that it does not try them again, and
//! the question whether a commit is benchmarked already.

use rusqlite::{OptionalExtension, params};

use crate::ingest::now;
use crate::{CollectorError, Database};

impl Database {
    /// Records that `sha` does not build, and why (replacing an earlier reason).
    pub fn record_build_failure(&mut self, sha: &str, reason: &str) -> Result<(), CollectorError> {
        self.conn.execute(
            "INSERT INTO build_failures (sha, reason, recorded_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (sha) DO UPDATE SET reason = excluded.reason, recorded_at = excluded.recorded_at",
            params![sha, reason, now()],
        )?;
        Ok(())
    }

    /// Why `sha` did not build, if it was recorded so.
    pub fn build_failure(&self, sha: &str) -> Result<Option<String>, CollectorError> {
        Ok(self
            .conn
            .query_row("SELECT reason FROM build_failures WHERE sha = ?1", [sha], |r| r.get(0))
            .optional()?)
    }

    /// Whether a history run of `sha` with `scenario_file` is stored for the machine with
    /// this fingerprint.
    pub fn has_history_run(&self, sha: &str, fingerprint: &str, scenario_file: &str) -> Result<bool, CollectorError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM runs r JOIN machines m ON m.id = r.machine_id
                 WHERE r.commit_sha = ?1 AND m.fingerprint = ?2 AND r.scenario_file = ?3 AND r.purpose = 'history'
                 LIMIT 1",
                params![sha, fingerprint, scenario_file],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}
