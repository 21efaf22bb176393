use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::schema::MIGRATIONS;

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("cannot open database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error(
        "database {path} has schema version {found}, newer than this soledad-bench knows ({known}); upgrade soledad-bench"
    )]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("results conflict with the database: {0}")]
    Conflict(String),
    /// A file to import or merge is not what it should be.
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    #[error("no run {0} in the database")]
    NoSuchRun(String),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// The benchmark history: one SQLite file (no SQLCipher key: the history is public).
pub struct Database {
    pub(crate) conn: Connection,
    path: PathBuf,
}

impl Database {
    /// Opens or creates the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, CollectorError> {
        let open_err = |message: String| CollectorError::Open {
            path: path.to_owned(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(open_err(format!("directory {} does not exist", dir.display())));
        }
        let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
            .map_err(|e| open_err(e.to_string()))?;
        // A file that is not SQLite fails here, on its first read.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_err(format!("{e} (is it a soledad-bench database?)")))?;
        let mut db = Self {
            conn,
            path: path.to_owned(),
        };
        db.migrate()?;
        Ok(db)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&mut self) -> Result<(), CollectorError> {
        let known = MIGRATIONS.len() as i64;
        let version: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > known {
            return Err(CollectorError::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(migration.sql)?;
            if let Some(step) = migration.then {
                step(&tx)?;
            }
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Schema version in use.
    pub fn schema_version(&self) -> Result<i64, CollectorError> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_file_is_migrated_with_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0].sql).unwrap();
            conn.execute_batch(
                "PRAGMA user_version = 1;
                 INSERT INTO machines VALUES (1, 'fp', 'cpu', 2, 2, 1024, 'k', 'os', 'x86_64', 'rustc', 'release');
                 INSERT INTO commits VALUES ('aaa', 's', 'a', 1, 1, 0);
                 INSERT INTO runs VALUES (1, 'u1', 1, 'aaa', 'main', 0, 't0', 't1', '0.1.0', 'f.toml', 10, 1, 0.5, 2000, 1);
                 INSERT INTO scenarios VALUES (1, 's/1', 'h', 'w', 1, 'd', '{}');
                 INSERT INTO metrics VALUES ('wall_s', 's', 'lower');
                 INSERT INTO run_scenarios VALUES (1, 1, 0, 10);",
            )
            .unwrap();
            let samples = [1.0, 1.0, 1.01, 0.99, 1.02, 1.0, 0.98, 1.0, 1.01, 9.0];
            for (i, v) in samples.iter().enumerate() {
                conn.execute(
                    "INSERT INTO samples VALUES (1, 1, 'wall_s', ?1, ?2)",
                    rusqlite::params![i as i64, v],
                )
                .unwrap();
            }
            conn.execute_batch(
                "INSERT INTO data_points VALUES (1, 1, 'wall_s', 10, 1.0, 0.99, 1.01, 0.978, 1.801, 2.53);",
            )
            .unwrap();
        }
        let db = Database::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let (severe, mde, source, purpose): (i64, Option<f64>, String, String) = db
            .conn
            .query_row(
                "SELECT d.outliers_high_severe, d.mde, r.source, r.purpose
                 FROM data_points d JOIN runs r ON r.id = d.run_id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(severe, 1, "the 9.0 sample is counted from the raw samples");
        assert!(mde.unwrap() > 0.0);
        assert_eq!((source.as_str(), purpose.as_str()), ("harness", "history"));
        let covariates = db.covariates(1).unwrap();
        assert_eq!(covariates.len(), 2);
        assert_eq!(covariates[0].0, "cpu_mhz");
        assert_eq!(covariates[0].1, rusqlite::types::Value::Integer(2000));
        // The points read back whole.
        let series = db.series().unwrap();
        assert_eq!(db.points(&series[0], None).unwrap()[0].summary.outliers.high_severe, 1);
        // Migration 6 describes the metrics the catalogue knows.
        let metrics = db.metrics().unwrap();
        assert_eq!(metrics[0].name, "wall_s");
        assert_eq!(metrics[0].rank, Some(0));
        assert_eq!(
            metrics[0].description.as_deref(),
            contract::metrics::lookup("wall_s").map(|m| m.description)
        );
    }

    #[test]
    fn a_version_5_file_gains_metric_descriptions_and_comparison_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v5.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            for m in &MIGRATIONS[..5] {
                conn.execute_batch(m.sql).unwrap();
            }
            conn.execute_batch(
                "PRAGMA user_version = 5;
                 INSERT INTO metrics (name, unit, direction) VALUES ('wall_s', 's', 'lower'), ('mine', 'ms', 'lower'),
                                                                   ('throughput_mib_s', 'MiB/s', 'higher');
                 INSERT INTO machines VALUES (1, 'fp', 'cpu', 2, 2, 1024, 'k', 'os', 'x86_64', 'rustc', 'release');
                 INSERT INTO commits VALUES ('aaa', 's', 'a', 1, 1, 0);
                 INSERT INTO runs (id, run_uuid, machine_id, commit_sha, branch, dirty, started_at, finished_at,
                                   tool_version, scenario_file, sample_interval_ms, seed, load_avg_1m, cpu_mhz,
                                   ingested_at, purpose)
                      VALUES (1, 'u1', 1, 'aaa', 'main', 0, 't0', 't1', '0.1.0', 'f.toml', 10, 1, 0.5, 2000, 1, 'comparison');
                 INSERT INTO comparisons (uuid, machine_id, run_a, run_b, label_a, label_b, scenario_file, started_at, finished_at)
                      VALUES ('c1', 1, 1, 1, 'a', 'b', 'f.toml', 't0', 't1');",
            )
            .unwrap();
        }
        let db = Database::open(&path).unwrap();
        let metrics = db.metrics().unwrap();
        let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            ["wall_s", "throughput_mib_s", "mine"],
            "catalogue order, then others"
        );
        assert!(metrics[1].description.is_some() && metrics[2].description.is_none());
        assert_eq!(db.comparisons().unwrap()[0].statistics_version, 1);
    }

    /// The scenarios stored before version 8 ran for a time exactly when they had a duration.
    #[test]
    fn a_version_7_file_learns_which_scenarios_ran_for_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v7.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            for m in &MIGRATIONS[..7] {
                conn.execute_batch(m.sql).unwrap();
            }
            conn.execute_batch(
                r#"PRAGMA user_version = 7;
                 INSERT INTO scenarios VALUES
                   (1, 'server.load/download/10k/c25', 'h1', 'server.load', 1, 'd',
                    '{"workload":"server.load","count":0,"size":10240,"concurrency":25,"op":"download","duration_s":3}'),
                   (2, 'blobs.upload/10x100k/c1', 'h2', 'blobs.upload', 1, 'd',
                    '{"workload":"blobs.upload","count":10,"size":100000,"concurrency":1}'),
                   (3, 'bench', 'h3', 'criterion', 1, 'd', '{"Bytes":1}'),
                   (4, 'server.load/upload/1k/c2', 'h4', 'server.load', 1, 'd',
                    '{"workload":"server.load","count":0,"size":1024,"concurrency":2,"op":"upload"}');"#,
            )
            .unwrap();
        }
        let db = Database::open(&path).unwrap();
        let fixed: Vec<(String, bool)> = db
            .conn
            .prepare("SELECT scenario_id, fixed_duration FROM scenarios ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            fixed,
            [
                ("server.load/download/10k/c25".to_owned(), true),
                ("blobs.upload/10x100k/c1".to_owned(), false),
                ("bench".to_owned(), false),
                ("server.load/upload/1k/c2".to_owned(), true)
            ]
        );
    }

    /// Version 9 rebuilds the check on a calibration's kind: the kinds stored keep their
    /// values and the calibrations their series, and `injected-history` is now allowed.
    #[test]
    fn a_version_8_file_keeps_its_calibrations_and_takes_the_new_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v8.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            for m in &MIGRATIONS[..8] {
                conn.execute_batch(m.sql).unwrap();
            }
            conn.execute_batch(
                "PRAGMA user_version = 8;
                 INSERT INTO machines VALUES (1, 'fp', 'cpu', 2, 2, 1024, 'k', 'os', 'x86_64', 'rustc', 'release');
                 INSERT INTO commits VALUES ('aaa', 's', 'a', 1, 1, 0);
                 INSERT INTO scenarios (id, scenario_id, definition_hash, workload, workload_version, description, params)
                      VALUES (1, 's/1', 'h', 'w', 1, 'd', '{}');
                 INSERT INTO metrics (name, unit, direction) VALUES ('wall_s', 's', 'lower');
                 INSERT INTO calibrations (id, calibration_uuid, machine_id, commit_sha, scenario_file, repetitions,
                                           comparisons, failing_comparisons, alpha, practical_floor,
                                           statistics_version, started_at, finished_at, kind, injected)
                      VALUES (1, 'c1', 1, 'aaa', 'f.toml', 3, 2, 0, 0.05, 0.01, 1, 't0', 't1', 'history', NULL),
                             (2, 'c2', 1, 'aaa', 'f.toml', 2, 2, 0, 0.05, 0.01, 1, 't0', 't1', 'paired', NULL),
                             (3, 'c3', 1, 'aaa', 'f.toml', 2, 2, 1, 0.05, 0.01, 1, 't0', 't1', 'injected', 'X=1');
                 INSERT INTO calibration_series (calibration_id, scenario_ref, metric, comparisons, false_regressions,
                                                 false_improvements, noisy, false_positive_rate, false_positive_upper)
                      VALUES (3, 1, 'wall_s', 2, 1, 0, 1, 0.5, 0.97);",
            )
            .unwrap();
        }
        let db = Database::open(&path).unwrap();
        let kinds: Vec<(String, Option<String>, i64)> = db
            .conn
            .prepare("SELECT kind, injected, (SELECT count(*) FROM calibration_series WHERE calibration_id = c.id) FROM calibrations c ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            kinds,
            [
                ("history".to_owned(), None, 0),
                ("paired".to_owned(), None, 0),
                ("injected".to_owned(), Some("X=1".to_owned()), 1)
            ]
        );
        let insert = |kind: &str| {
            db.conn.execute(
                "INSERT INTO calibrations (calibration_uuid, machine_id, commit_sha, scenario_file, repetitions,
                                           comparisons, failing_comparisons, alpha, practical_floor,
                                           statistics_version, started_at, finished_at, kind)
                 VALUES (?1, 1, 'aaa', 'f.toml', 2, 1, 0, 0.05, 0.01, 1, 't0', 't1', ?1)",
                [kind],
            )
        };
        insert("injected-history").unwrap();
        assert!(insert("made-up").is_err(), "the kind is still checked");
    }
}
