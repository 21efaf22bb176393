//! Merging another database into this one: results from several runner machines, or a
//! history downloaded from the published site, become one history.
//!
//! The other file is never modified: a consistent snapshot of it is taken first (`VACUUM
//! INTO`, which also picks up what sits in its write-ahead log), brought to this version's
//! schema, and read from there. Every run is stored like an ingest, by its uuid, so merging the
//! same file twice adds nothing; calibrations follow their runs. All in one transaction.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

use crate::SeriesOutcome;
use crate::calibration::{CalibrationKind, StoredCalibration, insert_calibration};
use crate::ingest::{IngestOutcome, store_record};
use crate::record::{CommitInfo, Machine, MetricRecord, Purpose, ReportedInterval, RunRecord, ScenarioRecord, Source};
use crate::schema::MIGRATIONS;
use crate::statistics::verdict::Direction;
use crate::{CollectorError, Database};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MergeReport {
    /// History runs added (their ids here): they need analysing.
    pub history_runs_added: Vec<i64>,
    pub calibration_runs_added: usize,
    /// Runs the database had already.
    pub runs_present: usize,
    pub calibrations_added: usize,
    pub comparison_runs_added: usize,
    pub comparisons_added: usize,
    /// Commits recorded as not building that were new here (or recorded later there).
    pub build_failures_added: usize,
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> CollectorError {
    CollectorError::Input {
        path: path.to_owned(),
        message: format!("cannot read it as a soledad-bench database: {e}"),
    }
}

impl Database {
    /// Adds every run and calibration of the database at `other` that this one lacks.
    pub fn merge_from(&mut self, other: &Path) -> Result<MergeReport, CollectorError> {
        if !other.is_file() {
            return Err(CollectorError::Input {
                path: other.to_owned(),
                message: "no such file".into(),
            });
        }
        let source =
            Connection::open_with_flags(other, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| corrupt(other, e))?;
        let version: i64 = source
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| corrupt(other, e))?;
        if version > MIGRATIONS.len() as i64 {
            return Err(CollectorError::TooNew {
                path: other.to_owned(),
                found: version,
                known: MIGRATIONS.len() as i64,
            });
        }
        if version == 0 {
            return Err(corrupt(other, "it has no soledad-bench schema"));
        }
        let tmp = tempfile::tempdir().map_err(|e| corrupt(other, e))?;
        let snapshot = tmp.path().join("snapshot.sqlite");
        source
            .execute("VACUUM INTO ?1", [snapshot.to_string_lossy()])
            .map_err(|e| corrupt(other, e))?;
        drop(source);
        let snapshot = Database::open(&snapshot)?;

        let tx = self.conn.transaction()?;
        let mut report = MergeReport::default();
        let mut run_map: HashMap<i64, i64> = HashMap::new();
        let ids: Vec<i64> = snapshot
            .conn
            .prepare("SELECT id FROM runs ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for id in ids {
            let record = read_record(&snapshot.conn, id).map_err(|e| corrupt(other, e))?;
            match store_record(&tx, &record)? {
                IngestOutcome::Stored { run_id } => {
                    match record.purpose {
                        Purpose::History => report.history_runs_added.push(run_id),
                        Purpose::Calibration => report.calibration_runs_added += 1,
                        Purpose::Comparison => report.comparison_runs_added += 1,
                    }
                    run_map.insert(id, run_id);
                }
                IngestOutcome::AlreadyPresent { run_id } => {
                    report.runs_present += 1;
                    run_map.insert(id, run_id);
                }
            }
        }
        report.calibrations_added = merge_calibrations(&snapshot.conn, &tx, &run_map)?;
        report.comparisons_added = crate::comparison::merge_comparisons(&snapshot.conn, &tx, &run_map)?;
        report.build_failures_added = crate::build_failures::merge_build_failures(&snapshot.conn, &tx)?;
        tx.commit()?;
        Ok(report)
    }
}

fn read_record(conn: &Connection, id: i64) -> rusqlite::Result<RunRecord> {
    let (uuid, source, purpose, started_at, finished_at, tool_version, scenario_file): (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
    ) = conn.query_row(
        "SELECT run_uuid, source, purpose, started_at, finished_at, tool_version, scenario_file FROM runs WHERE id = ?1",
        [id],
        |r| r.try_into(),
    )?;
    let (sample_interval_ms, seed, branch, dirty, sha, machine_id): (i64, i64, Option<String>, bool, String, i64) =
        conn.query_row(
            "SELECT sample_interval_ms, seed, branch, dirty, commit_sha, machine_id FROM runs WHERE id = ?1",
            [id],
            |r| r.try_into(),
        )?;
    let pairing: Option<String> = conn.query_row("SELECT pairing FROM runs WHERE id = ?1", [id], |r| r.get(0))?;
    let parents: Vec<String> = conn
        .prepare("SELECT parent FROM commit_parents WHERE sha = ?1 ORDER BY position")?
        .query_map([&sha], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let commit = conn.query_row(
        "SELECT subject, author_name, author_time, commit_time, depth FROM commits WHERE sha = ?1",
        [&sha],
        |r| {
            Ok(CommitInfo {
                sha: sha.clone(),
                parents,
                subject: r.get(0)?,
                author_name: r.get(1)?,
                author_time: r.get(2)?,
                commit_time: r.get(3)?,
                branch,
                dirty,
                depth: r.get::<_, i64>(4)? as u64,
            })
        },
    )?;
    let machine = conn.query_row(
        "SELECT cpu_model, logical_cores, physical_cores, memory_bytes, kernel, os, arch, rustc, profile
         FROM machines WHERE id = ?1",
        [machine_id],
        |r| {
            Ok(Machine {
                cpu_model: r.get(0)?,
                logical_cores: r.get(1)?,
                physical_cores: r.get(2)?,
                memory_bytes: r.get::<_, i64>(3)? as u64,
                kernel: r.get(4)?,
                os: r.get(5)?,
                arch: r.get(6)?,
                rustc: r.get(7)?,
                profile: r.get(8)?,
            })
        },
    )?;
    let covariates = conn
        .prepare("SELECT name, value FROM run_covariates WHERE run_id = ?1 ORDER BY name")?
        .query_map([id], |r| {
            use rusqlite::types::Value as V;
            let value = match r.get::<_, V>(1)? {
                V::Null => serde_json::Value::Null,
                V::Integer(i) => serde_json::json!(i),
                V::Real(f) => serde_json::json!(f),
                V::Text(t) => serde_json::Value::String(t),
                V::Blob(b) => serde_json::Value::String(hex::encode(b)),
            };
            Ok((r.get::<_, String>(0)?, value))
        })?
        .collect::<Result<_, _>>()?;
    let mut scenarios = Vec::new();
    let scenario_rows: Vec<(i64, ScenarioRecord)> = conn
        .prepare(
            "SELECT s.id, s.scenario_id, s.workload, s.workload_version, s.definition_hash, s.description, s.params,
                    rs.warmup_rounds, rs.rounds, rs.budget, rs.latency_histogram, s.fixed_duration
             FROM run_scenarios rs JOIN scenarios s ON s.id = rs.scenario_ref
             WHERE rs.run_id = ?1 ORDER BY s.id",
        )?
        .query_map([id], |r| {
            let params: String = r.get(6)?;
            Ok((
                r.get(0)?,
                ScenarioRecord {
                    id: r.get(1)?,
                    workload: r.get(2)?,
                    workload_version: r.get(3)?,
                    definition_hash: r.get(4)?,
                    description: r.get(5)?,
                    params: serde_json::from_str(&params).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, e.into())
                    })?,
                    fixed_duration: r.get(11)?,
                    warmup_rounds: r.get(7)?,
                    rounds: r.get(8)?,
                    budget: r
                        .get::<_, Option<String>>(9)?
                        .and_then(|b| serde_json::from_str(&b).ok()),
                    latency_histogram: r.get(10)?,
                    metrics: Vec::new(),
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    for (scenario_ref, mut scenario) in scenario_rows {
        let metrics: Vec<(String, String, String, i64, f64, f64, f64)> = conn
            .prepare(
                "SELECT d.metric, m.unit, m.direction, d.n, d.ci_lower, d.ci_upper, d.ci_level
                 FROM data_points d JOIN metrics m ON m.name = d.metric
                 WHERE d.run_id = ?1 AND d.scenario_ref = ?2 ORDER BY d.metric",
            )?
            .query_map(params![id, scenario_ref], |r| r.try_into())?
            .collect::<Result<_, _>>()?;
        for (name, unit, direction, n, lower, upper, level) in metrics {
            let samples: Vec<f64> = conn
                .prepare(
                    "SELECT value FROM samples WHERE run_id = ?1 AND scenario_ref = ?2 AND metric = ?3 ORDER BY round",
                )?
                .query_map(params![id, scenario_ref, name], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            scenario.metrics.push(MetricRecord {
                direction: Direction::parse(&direction).unwrap_or(Direction::Lower),
                unit,
                samples,
                // A single value's interval came from its source, not from samples.
                reported: (n == 1).then_some(ReportedInterval { lower, upper, level }),
                name,
            });
        }
        scenarios.push(scenario);
    }
    Ok(RunRecord {
        uuid,
        source: Source::parse(&source).unwrap_or(Source::Harness),
        purpose: Purpose::parse(&purpose).unwrap_or(Purpose::History),
        started_at,
        finished_at,
        tool_version,
        scenario_file,
        sample_interval_ms: sample_interval_ms as u64,
        seed: seed as u64,
        commit,
        machine,
        covariates,
        scenarios,
        pairing,
    })
}

/// Copies the calibrations this database lacks; returns how many.
fn merge_calibrations(
    from: &Connection,
    tx: &Transaction,
    run_map: &HashMap<i64, i64>,
) -> Result<usize, CollectorError> {
    let ids: Vec<(i64, String)> = from
        .prepare("SELECT id, calibration_uuid FROM calibrations ORDER BY id")?
        .query_map([], |r| r.try_into())?
        .collect::<Result<_, _>>()?;
    let mut added = 0;
    for (id, uuid) in ids {
        let present: Option<i64> = tx
            .query_row(
                "SELECT id FROM calibrations WHERE calibration_uuid = ?1",
                [&uuid],
                |r| r.get(0),
            )
            .optional()?;
        if present.is_some() {
            continue;
        }
        let here = |run: i64| {
            run_map
                .get(&run)
                .copied()
                .ok_or_else(|| CollectorError::Conflict(format!("calibration {uuid} refers to a missing run")))
        };
        let run_ids = from
            .prepare("SELECT run_id FROM calibration_runs WHERE calibration_id = ?1 ORDER BY position")?
            .query_map([id], |r| r.get(0))?
            .map(|r| here(r?))
            .collect::<Result<Vec<i64>, _>>()?;
        let Some(&first_run) = run_ids.first() else {
            continue;
        };
        let machine_id: i64 = tx.query_row("SELECT machine_id FROM runs WHERE id = ?1", [first_run], |r| r.get(0))?;
        // Read with the other database's scenario ids; mapped to this one's below.
        let mut series: Vec<(String, SeriesOutcome)> = from
            .prepare(
                "SELECT s.definition_hash, s.scenario_id, cs.metric, cs.comparisons, cs.false_regressions,
                        cs.false_improvements, cs.noisy, cs.false_positive_rate, cs.false_positive_upper, cs.min_p_value
                 FROM calibration_series cs JOIN scenarios s ON s.id = cs.scenario_ref
                 WHERE cs.calibration_id = ?1",
            )?
            .query_map([id], |r| {
                let count = |i: usize| r.get::<_, i64>(i).map(|v| v as usize);
                Ok((
                    r.get(0)?,
                    SeriesOutcome {
                        scenario_ref: 0,
                        scenario_id: r.get(1)?,
                        metric: r.get(2)?,
                        comparisons: count(3)?,
                        false_regressions: count(4)?,
                        false_improvements: count(5)?,
                        noisy: count(6)?,
                        false_positive_rate: r.get(7)?,
                        false_positive_upper: r.get(8)?,
                        min_p_value: r.get(9)?,
                    },
                ))
            })?
            .collect::<Result<_, _>>()?;
        for (hash, s) in &mut series {
            s.scenario_ref = tx.query_row(
                "SELECT id FROM scenarios WHERE scenario_id = ?1 AND definition_hash = ?2",
                params![s.scenario_id, &*hash],
                |r| r.get(0),
            )?;
        }
        let mut series: Vec<SeriesOutcome> = series.into_iter().map(|(_, s)| s).collect();
        let c = from.query_row(
            "SELECT commit_sha, branch, scenario_file, repetitions, comparisons, failing_comparisons, alpha,
                    practical_floor, statistics_version, started_at, finished_at, kind, injected
             FROM calibrations WHERE id = ?1",
            [id],
            |r| {
                Ok(StoredCalibration {
                    uuid: uuid.clone(),
                    machine_id,
                    commit_sha: r.get(0)?,
                    branch: r.get(1)?,
                    scenario_file: r.get(2)?,
                    repetitions: r.get(3)?,
                    comparisons: r.get(4)?,
                    failing_comparisons: r.get(5)?,
                    alpha: r.get(6)?,
                    practical_floor: r.get(7)?,
                    statistics_version: r.get(8)?,
                    started_at: r.get(9)?,
                    finished_at: r.get(10)?,
                    run_ids: run_ids.clone(),
                    series: std::mem::take(&mut series),
                    kind: CalibrationKind::parse(&r.get::<_, String>(11)?).unwrap_or(CalibrationKind::History),
                    injected: r.get(12)?,
                })
            },
        )?;
        insert_calibration(tx, &c)?;
        added += 1;
    }
    Ok(added)
}
