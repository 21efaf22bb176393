//! Commits that do not build, recorded by `backfill` so that it does not try them again, and
//! the question whether a commit is benchmarked already.

use rusqlite::{OptionalExtension, params};

use crate::ingest::now;
use crate::record::CommitInfo;
use crate::{CollectorError, Database};

/// A commit that does not build, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBuildFailure {
    pub sha: String,
    /// `None` for failures recorded before the commit was kept (schema version 5).
    pub subject: Option<String>,
    pub commit_time: Option<i64>,
    pub branch: Option<String>,
    pub reason: String,
    pub recorded_at: i64,
}

const COLUMNS: &str = "sha, subject, commit_time, branch, reason, recorded_at";

fn read_failure(r: &rusqlite::Row) -> rusqlite::Result<StoredBuildFailure> {
    Ok(StoredBuildFailure {
        sha: r.get(0)?,
        subject: r.get(1)?,
        commit_time: r.get(2)?,
        branch: r.get(3)?,
        reason: r.get(4)?,
        recorded_at: r.get(5)?,
    })
}

impl Database {
    /// Records that `commit` does not build, and why (replacing an earlier reason).
    pub fn record_build_failure(&mut self, commit: &CommitInfo, reason: &str) -> Result<(), CollectorError> {
        self.conn.execute(
            "INSERT INTO build_failures (sha, reason, recorded_at, subject, commit_time, branch)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (sha) DO UPDATE SET reason = excluded.reason, recorded_at = excluded.recorded_at,
                 subject = excluded.subject, commit_time = excluded.commit_time, branch = excluded.branch",
            params![
                commit.sha,
                reason,
                now(),
                commit.subject,
                commit.commit_time,
                commit.branch
            ],
        )?;
        Ok(())
    }

    /// Fills in the commit of a failure recorded before it was kept (schema version 5).
    pub fn describe_build_failure(&mut self, commit: &CommitInfo) -> Result<(), CollectorError> {
        self.conn.execute(
            "UPDATE build_failures SET subject = ?2, commit_time = ?3, branch = ?4
             WHERE sha = ?1 AND subject IS NULL",
            params![commit.sha, commit.subject, commit.commit_time, commit.branch],
        )?;
        Ok(())
    }

    /// The `limit` most recent commits of `branch` (or of any branch) that do not build and
    /// have no history run since, newest first by commit time (failures whose commit is
    /// unknown last, by when they were recorded).
    pub fn build_failures(
        &self,
        branch: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredBuildFailure>, CollectorError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM build_failures
             WHERE (?1 IS NULL OR branch = ?1 OR branch IS NULL)
               AND sha NOT IN (SELECT commit_sha FROM runs WHERE purpose = 'history')
             ORDER BY commit_time IS NULL, commit_time DESC, recorded_at DESC, sha LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![branch, limit as i64], read_failure)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Why `sha` did not build, if it was recorded so.
    pub fn build_failure(&self, sha: &str) -> Result<Option<StoredBuildFailure>, CollectorError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM build_failures WHERE sha = ?1"),
                [sha],
                read_failure,
            )
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

/// Copies the failures of another database into this one (the later record of a commit
/// wins) and returns how many were new or newer.
pub(crate) fn merge_build_failures(from: &rusqlite::Connection, tx: &rusqlite::Transaction) -> rusqlite::Result<usize> {
    let mut stmt = from.prepare(&format!("SELECT {COLUMNS} FROM build_failures ORDER BY sha"))?;
    let failures = stmt
        .query_map([], read_failure)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut changed = 0;
    for f in failures {
        changed += tx.execute(
            "INSERT INTO build_failures (sha, subject, commit_time, branch, reason, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (sha) DO UPDATE SET subject = excluded.subject, commit_time = excluded.commit_time,
                 branch = excluded.branch, reason = excluded.reason, recorded_at = excluded.recorded_at
             WHERE excluded.recorded_at > build_failures.recorded_at",
            params![f.sha, f.subject, f.commit_time, f.branch, f.reason, f.recorded_at],
        )?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::schema::MIGRATIONS;

    fn commit(sha: &str, subject: &str, commit_time: i64, branch: &str) -> CommitInfo {
        CommitInfo {
            sha: sha.into(),
            parents: Vec::new(),
            subject: subject.into(),
            author_name: "a".into(),
            author_time: commit_time,
            commit_time,
            branch: Some(branch.into()),
            dirty: false,
            depth: 0,
        }
    }

    fn shas(failures: &[StoredBuildFailure]) -> Vec<&str> {
        failures.iter().map(|f| f.sha.as_str()).collect()
    }

    #[test]
    fn failures_keep_their_commit_and_list_newest_first_across_the_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.sqlite");
        {
            // A file of version 4, with a failure recorded before commits were kept.
            let conn = Connection::open(&path).unwrap();
            for m in &MIGRATIONS[..4] {
                conn.execute_batch(m.sql).unwrap();
            }
            conn.execute_batch(
                "PRAGMA user_version = 4;
                 INSERT INTO build_failures VALUES ('old', 'exit status: 101; error[E0425]', 5000);",
            )
            .unwrap();
        }
        let mut db = Database::open(&path).unwrap();
        db.record_build_failure(&commit("mid", "tidy up", 1000, "master"), "exit status: 1")
            .unwrap();
        db.record_build_failure(&commit("new", "break <it>", 3000, "master"), "first reason")
            .unwrap();
        // A second failure of one commit replaces the first.
        db.record_build_failure(&commit("new", "break <it>", 3000, "master"), "second reason")
            .unwrap();
        db.record_build_failure(&commit("side", "elsewhere", 4000, "feature"), "exit status: 1")
            .unwrap();

        let all = db.build_failures(Some("master"), 10).unwrap();
        let seen: Vec<_> = all
            .iter()
            .map(|f| (f.sha.as_str(), f.subject.as_deref(), f.commit_time, f.reason.as_str()))
            .collect();
        // By commit time; the one recorded without its commit last, whenever recorded.
        assert_eq!(
            seen,
            [
                ("new", Some("break <it>"), Some(3000), "second reason"),
                ("mid", Some("tidy up"), Some(1000), "exit status: 1"),
                ("old", None, None, "exit status: 101; error[E0425]"),
            ]
        );
        assert_eq!(
            shas(&db.build_failures(None, 10).unwrap()),
            ["side", "new", "mid", "old"]
        );
        assert_eq!(db.build_failures(Some("master"), 1).unwrap().len(), 1);

        // Backfill fills in the commit of the old row, and only of rows without one.
        db.describe_build_failure(&commit("old", "ancient", 10, "master"))
            .unwrap();
        db.describe_build_failure(&commit("mid", "rewritten", 10, "master"))
            .unwrap();
        let old = db.build_failure("old").unwrap().unwrap();
        assert_eq!((old.subject.as_deref(), old.commit_time), (Some("ancient"), Some(10)));
        assert_eq!(
            db.build_failure("mid").unwrap().unwrap().subject.as_deref(),
            Some("tidy up")
        );

        // A commit benchmarked since (the build was fixed, or failed for a passing reason) is
        // no gap in the history.
        db.conn
            .execute_batch(
                "INSERT INTO machines VALUES (1, 'fp', 'cpu', 2, 2, 1024, 'k', 'os', 'x86_64', 'rustc', 'release');
                 INSERT INTO commits VALUES ('new', 'break <it>', 'a', 3000, 3000, 0);
                 INSERT INTO runs (id, run_uuid, machine_id, commit_sha, branch, dirty, started_at, finished_at,
                     tool_version, scenario_file, sample_interval_ms, seed, load_avg_1m, cpu_mhz, ingested_at)
                 VALUES (1, 'u1', 1, 'new', 'master', 0, 't0', 't1', '0.1.0', 'f.toml', 10, 1, 0.5, 2000, 1);",
            )
            .unwrap();
        assert_eq!(shas(&db.build_failures(Some("master"), 10).unwrap()), ["mid", "old"]);
    }

    #[test]
    fn a_merge_copies_failures_and_the_later_record_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut here = Database::open(&dir.path().join("here.sqlite")).unwrap();
        let mut there = Database::open(&dir.path().join("there.sqlite")).unwrap();
        here.record_build_failure(&commit("a", "one", 1, "master"), "here")
            .unwrap();
        there
            .record_build_failure(&commit("b", "two", 2, "master"), "there")
            .unwrap();
        // Recorded there later than here: its reason wins.
        there
            .record_build_failure(&commit("a", "one", 1, "master"), "there, later")
            .unwrap();
        there
            .conn
            .execute(
                "UPDATE build_failures SET recorded_at = recorded_at + 60 WHERE sha = 'a'",
                [],
            )
            .unwrap();
        drop(there);
        let report = here.merge_from(&dir.path().join("there.sqlite")).unwrap();
        assert_eq!(report.build_failures_added, 2);
        let reasons: Vec<_> = here
            .build_failures(None, 10)
            .unwrap()
            .into_iter()
            .map(|f| (f.sha, f.reason))
            .collect();
        assert_eq!(
            reasons,
            [("b".into(), "there".into()), ("a".into(), "there, later".into())]
        );
        // Merging again changes nothing.
        assert_eq!(
            here.merge_from(&dir.path().join("there.sqlite"))
                .unwrap()
                .build_failures_added,
            0
        );
    }
}
