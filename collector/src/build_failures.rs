//! Commits that do not build, recorded by `backfill` so that it does not try them again, and
//! the question whether a commit is benchmarked already.

use rusqlite::{OptionalExtension, params};

use crate::ingest::now;
use crate::record::CommitRecord;
use crate::{CollectorError, Database};

/// A commit that does not build, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBuildFailure {
    pub sha: String,
    /// `None` for failures recorded before the subject was kept (schema version 5).
    pub subject: Option<String>,
    pub commit_time: Option<i64>,
    pub reason: String,
    pub recorded_at: i64,
}

impl Database {
    /// Records that `commit` does not build, and why (replacing an earlier reason).
    pub fn record_build_failure(&mut self, commit: &CommitRecord, reason: &str) -> Result<(), CollectorError> {
        self.conn.execute(
            "INSERT INTO build_failures (sha, reason, recorded_at, subject, commit_time)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (sha) DO UPDATE SET reason = excluded.reason, recorded_at = excluded.recorded_at,
                 subject = excluded.subject, commit_time = excluded.commit_time",
            params![commit.sha, reason, now(), commit.subject, commit.commit_time],
        )?;
        Ok(())
    }

    /// The `limit` most recent commits that do not build, newest first (by commit time, or by
    /// when they were recorded if that is unknown).
    pub fn build_failures(&self, limit: usize) -> Result<Vec<StoredBuildFailure>, CollectorError> {
        let mut stmt = self.conn.prepare(
            "SELECT sha, subject, commit_time, reason, recorded_at FROM build_failures
             ORDER BY COALESCE(commit_time, recorded_at) DESC, sha LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(StoredBuildFailure {
                sha: r.get(0)?,
                subject: r.get(1)?,
                commit_time: r.get(2)?,
                reason: r.get(3)?,
                recorded_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
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

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::schema::MIGRATIONS;

    fn commit(sha: &str, subject: &str, commit_time: i64) -> CommitRecord {
        CommitRecord {
            sha: sha.into(),
            parents: Vec::new(),
            subject: subject.into(),
            author_name: "a".into(),
            author_time: commit_time,
            commit_time,
            branch: None,
            dirty: false,
            depth: 0,
        }
    }

    #[test]
    fn failures_keep_their_commit_and_list_newest_first_across_the_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.sqlite");
        {
            // A file of version 4, with a failure recorded before subjects were kept.
            let conn = Connection::open(&path).unwrap();
            for m in &MIGRATIONS[..4] {
                conn.execute_batch(m.sql).unwrap();
            }
            conn.execute_batch(
                "PRAGMA user_version = 4;
                 INSERT INTO build_failures VALUES ('old', 'exit status: 101; error[E0425]', 500);",
            )
            .unwrap();
        }
        let mut db = Database::open(&path).unwrap();
        db.record_build_failure(&commit("mid", "tidy up", 1000), "exit status: 1")
            .unwrap();
        db.record_build_failure(&commit("new", "break <it>", 3000), "first reason")
            .unwrap();
        // A second failure of one commit replaces the first.
        db.record_build_failure(&commit("new", "break <it>", 3000), "second reason")
            .unwrap();

        let all = db.build_failures(10).unwrap();
        let seen: Vec<_> = all
            .iter()
            .map(|f| (f.sha.as_str(), f.subject.as_deref(), f.commit_time, f.reason.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("new", Some("break <it>"), Some(3000), "second reason"),
                ("mid", Some("tidy up"), Some(1000), "exit status: 1"),
                ("old", None, None, "exit status: 101; error[E0425]"),
            ]
        );
        assert_eq!(all[2].recorded_at, 500);
        assert_eq!(db.build_failures(1).unwrap().len(), 1);
        assert_eq!(
            db.build_failure("old").unwrap().as_deref(),
            Some("exit status: 101; error[E0425]")
        );
    }
}
