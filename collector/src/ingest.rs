//! Ingesting a run: all of it in one transaction, or nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use contract::Results;
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::fingerprint::fingerprint_of;
use crate::record::{CommitInfo, MetricRecord, RunRecord};
use crate::statistics::{Summary, summarize};
use crate::{CollectorError, Database};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// The run was stored under this id.
    Stored { run_id: i64 },
    /// A run with the same id was already stored; nothing changed.
    AlreadyPresent { run_id: i64 },
}

impl IngestOutcome {
    pub fn run_id(self) -> i64 {
        match self {
            Self::Stored { run_id } | Self::AlreadyPresent { run_id } => run_id,
        }
    }
}

impl Database {
    /// Stores a harness run with its commit, machine, covariates, raw samples and data points.
    pub fn ingest<P: Serialize>(&mut self, results: &Results<P>) -> Result<IngestOutcome, CollectorError> {
        self.ingest_record(&RunRecord::from_results(results)?)
    }

    /// Stores a run from any source, in one transaction: an error leaves nothing behind.
    pub fn ingest_record(&mut self, record: &RunRecord) -> Result<IngestOutcome, CollectorError> {
        let tx = self.conn.transaction()?;
        let outcome = store_record(&tx, record)?;
        tx.commit()?;
        Ok(outcome)
    }
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Stores a record inside the caller's transaction.
pub(crate) fn store_record(tx: &Transaction, record: &RunRecord) -> Result<IngestOutcome, CollectorError> {
    record.validate()?;
    if let Some(run_id) = tx
        .query_row("SELECT id FROM runs WHERE run_uuid = ?1", [&record.uuid], |r| r.get(0))
        .optional()?
    {
        return Ok(IngestOutcome::AlreadyPresent { run_id });
    }
    let machine_id = upsert_machine(tx, record)?;
    upsert_commit(tx, &record.commit)?;
    let run_id = insert_run(tx, record, machine_id)?;
    for scenario in &record.scenarios {
        let params = serde_json::to_string(&scenario.params).expect("JSON values serialize");
        tx.execute(
            "INSERT INTO scenarios (scenario_id, definition_hash, workload, workload_version, description, params, fixed_duration)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (scenario_id, definition_hash) DO NOTHING",
            params![
                scenario.id,
                scenario.definition_hash,
                scenario.workload,
                scenario.workload_version,
                scenario.description,
                params,
                scenario.fixed_duration
            ],
        )?;
        let scenario_ref: i64 = tx.query_row(
            "SELECT id FROM scenarios WHERE scenario_id = ?1 AND definition_hash = ?2",
            params![scenario.id, scenario.definition_hash],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO run_scenarios (run_id, scenario_ref, warmup_rounds, rounds, budget, latency_histogram)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                run_id,
                scenario_ref,
                scenario.warmup_rounds,
                scenario.rounds,
                scenario.budget.as_ref().map(|b| b.to_string()),
                scenario.latency_histogram
            ],
        )?;
        for metric in &scenario.metrics {
            upsert_metric(tx, metric)?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO samples (run_id, scenario_ref, metric, round, value) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (round, value) in metric.samples.iter().enumerate() {
                insert.execute(params![run_id, scenario_ref, metric.name, round as i64, value])?;
            }
            let mut summary = summarize(&metric.samples).expect("validated: finite samples");
            if let Some(r) = metric.reported {
                summary.ci_lower = r.lower;
                summary.ci_upper = r.upper;
                summary.ci_level = r.level;
            }
            insert_data_point(tx, run_id, scenario_ref, &metric.name, &summary)?;
        }
    }
    Ok(IngestOutcome::Stored { run_id })
}

fn insert_data_point(
    tx: &Transaction,
    run_id: i64,
    scenario_ref: i64,
    metric: &str,
    s: &Summary,
) -> rusqlite::Result<()> {
    let o = outlier_counts(s);
    tx.prepare_cached(
        "INSERT INTO data_points (run_id, scenario_ref, metric, n, median, ci_lower, ci_upper, ci_level, mean, stddev,
                                  outliers_low_severe, outliers_low_mild, outliers_high_mild, outliers_high_severe, mde)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        run_id,
        scenario_ref,
        metric,
        s.n as i64,
        s.median,
        s.ci_lower,
        s.ci_upper,
        s.ci_level,
        s.mean,
        s.stddev,
        o.0,
        o.1,
        o.2,
        o.3,
        s.mde
    ])?;
    Ok(())
}

/// The outlier counts as stored: low severe, low mild, high mild, high severe.
fn outlier_counts(s: &Summary) -> (i64, i64, i64, i64) {
    let o = s.outliers;
    (
        o.low_severe as i64,
        o.low_mild as i64,
        o.high_mild as i64,
        o.high_severe as i64,
    )
}

/// Migration 2's data step: the outlier counts and MDE of every stored data point, from its
/// raw samples. The median, CI, mean and stddev are unchanged by definition, and an
/// interval stored for a single imported value is kept.
pub(crate) fn recompute_all_data_points(tx: &Transaction) -> rusqlite::Result<()> {
    let keys: Vec<(i64, i64, String)> = tx
        .prepare("SELECT run_id, scenario_ref, metric FROM data_points")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut samples =
        tx.prepare("SELECT value FROM samples WHERE run_id = ?1 AND scenario_ref = ?2 AND metric = ?3 ORDER BY round")?;
    let mut update = tx.prepare(
        "UPDATE data_points SET outliers_low_severe = ?4, outliers_low_mild = ?5, outliers_high_mild = ?6,
                                outliers_high_severe = ?7, mde = ?8
         WHERE run_id = ?1 AND scenario_ref = ?2 AND metric = ?3",
    )?;
    for (run_id, scenario_ref, metric) in keys {
        let values: Vec<f64> = samples
            .query_map(params![run_id, scenario_ref, metric], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if let Some(s) = summarize(&values) {
            let o = outlier_counts(&s);
            update.execute(params![run_id, scenario_ref, metric, o.0, o.1, o.2, o.3, s.mde])?;
        }
    }
    Ok(())
}

fn upsert_machine(tx: &Transaction, record: &RunRecord) -> Result<i64, CollectorError> {
    let m = &record.machine;
    let fp = fingerprint_of(m);
    tx.execute(
        "INSERT INTO machines (fingerprint, cpu_model, logical_cores, physical_cores, memory_bytes, kernel, os, arch, rustc, profile)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (fingerprint) DO NOTHING",
        params![fp, m.cpu_model, m.logical_cores, m.physical_cores, m.memory_bytes as i64, m.kernel, m.os, m.arch, m.rustc, m.profile],
    )?;
    Ok(tx.query_row("SELECT id FROM machines WHERE fingerprint = ?1", [&fp], |r| r.get(0))?)
}

/// Stores a commit the first time it is seen. A commit is immutable: its sha names its
/// content, parents included, so a second sighting changes nothing.
fn upsert_commit(tx: &Transaction, c: &CommitInfo) -> Result<(), CollectorError> {
    let inserted = tx.execute(
        "INSERT INTO commits (sha, subject, author_name, author_time, commit_time, depth)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (sha) DO NOTHING",
        params![
            c.sha,
            c.subject,
            c.author_name,
            c.author_time,
            c.commit_time,
            c.depth as i64
        ],
    )?;
    if inserted == 1 {
        for (position, parent) in c.parents.iter().enumerate() {
            tx.execute(
                "INSERT INTO commit_parents (sha, position, parent) VALUES (?1, ?2, ?3)",
                params![c.sha, position as i64, parent],
            )?;
        }
    }
    Ok(())
}

fn insert_run(tx: &Transaction, r: &RunRecord, machine_id: i64) -> Result<i64, CollectorError> {
    let number = |name: &str| {
        r.covariates
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_f64())
            .unwrap_or(0.0)
    };
    tx.execute(
        "INSERT INTO runs (run_uuid, machine_id, commit_sha, branch, dirty, started_at, finished_at, tool_version,
                           scenario_file, sample_interval_ms, seed, load_avg_1m, cpu_mhz, ingested_at, source, purpose,
                           pairing)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        params![
            r.uuid,
            machine_id,
            r.commit.sha,
            r.commit.branch,
            r.commit.dirty,
            r.started_at,
            r.finished_at,
            r.tool_version,
            r.scenario_file,
            r.sample_interval_ms as i64,
            // SQLite integers are signed; the seed's bits are kept.
            r.seed as i64,
            number("load_avg_1m"),
            number("cpu_mhz") as i64,
            now(),
            r.source.as_str(),
            r.purpose.as_str(),
            r.pairing,
        ],
    )?;
    let run_id = tx.last_insert_rowid();
    let mut insert = tx.prepare_cached("INSERT INTO run_covariates (run_id, name, value) VALUES (?1, ?2, ?3)")?;
    for (name, value) in &r.covariates {
        insert.execute(params![run_id, name, json_to_sql(value)])?;
    }
    Ok(run_id)
}

/// A covariate as SQLite stores it: numbers as numbers, text as text, anything else as JSON.
fn json_to_sql(v: &serde_json::Value) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Integer(i64::from(*b)),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Text(s.clone()),
        other => Value::Text(other.to_string()),
    }
}

/// What the catalogue says of a metric stored with this unit: its description and display
/// rank. Imported metrics of another unit than the catalogue's are not described.
fn catalogued(name: &str, unit: &str) -> (Option<&'static str>, Option<i64>) {
    match contract::metrics::lookup(name).filter(|def| def.unit == unit) {
        Some(def) => (Some(def.description), Some(contract::metrics::rank(name) as i64)),
        None => (None, None),
    }
}

/// The description and rank of every stored metric the catalogue knows (migration 6).
pub(crate) fn describe_all_metrics(tx: &Transaction) -> rusqlite::Result<()> {
    let metrics: Vec<(String, String)> = tx
        .prepare("SELECT name, unit FROM metrics")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (name, unit) in metrics {
        let (description, rank) = catalogued(&name, &unit);
        tx.execute(
            "UPDATE metrics SET description = ?2, display_rank = ?3 WHERE name = ?1",
            params![name, description, rank],
        )?;
    }
    Ok(())
}

fn upsert_metric(tx: &Transaction, m: &MetricRecord) -> Result<(), CollectorError> {
    let direction = m.direction.as_str();
    let (description, rank) = catalogued(&m.name, &m.unit);
    let existing: Option<(String, String)> = tx
        .query_row("SELECT unit, direction FROM metrics WHERE name = ?1", [&m.name], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    match existing {
        None => {
            tx.execute(
                "INSERT INTO metrics (name, unit, direction, description, display_rank) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![m.name, m.unit, direction, description, rank],
            )?;
            Ok(())
        }
        Some((u, d)) if u == m.unit && d == direction => {
            // The ingesting version's catalogue describes it (a newer one may say it better).
            if description.is_some() {
                tx.execute(
                    "UPDATE metrics SET description = ?2, display_rank = ?3 WHERE name = ?1",
                    params![m.name, description, rank],
                )?;
            }
            Ok(())
        }
        Some((u, d)) => Err(CollectorError::Conflict(format!(
            "metric {} is stored as {u} ({d} is better) but these results say {} ({direction} is better); rename the metric when its meaning changes",
            m.name, m.unit
        ))),
    }
}
