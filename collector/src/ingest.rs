//! Ingesting a results file: all of it in one transaction, or nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use harness::results::Results;
use rusqlite::{OptionalExtension, Transaction, params};

use crate::statistics::summarize;
use crate::{CollectorError, Database, fingerprint};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// The run was stored under this id.
    Stored { run_id: i64 },
    /// A run with the same id was already stored; nothing changed.
    AlreadyPresent { run_id: i64 },
}

impl Database {
    /// Stores a run with its commit, machine, raw samples and data points.
    pub fn ingest(&mut self, results: &Results) -> Result<IngestOutcome, CollectorError> {
        results.validate().map_err(CollectorError::Conflict)?;
        let tx = self.conn.transaction()?;
        if let Some(run_id) = tx
            .query_row("SELECT id FROM runs WHERE run_uuid = ?1", [&results.run.id], |r| {
                r.get(0)
            })
            .optional()?
        {
            return Ok(IngestOutcome::AlreadyPresent { run_id });
        }
        let machine_id = upsert_machine(&tx, results)?;
        upsert_commit(&tx, results)?;
        let run_id = insert_run(&tx, results, machine_id)?;
        for scenario in &results.scenarios {
            let params = serde_json::to_string(&scenario.params).expect("params serialize");
            tx.execute(
                "INSERT INTO scenarios (scenario_id, definition_hash, workload, workload_version, description, params)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (scenario_id, definition_hash) DO NOTHING",
                params![
                    scenario.id,
                    scenario.definition_hash,
                    scenario.workload,
                    scenario.workload_version,
                    scenario.description,
                    params
                ],
            )?;
            let scenario_ref: i64 = tx.query_row(
                "SELECT id FROM scenarios WHERE scenario_id = ?1 AND definition_hash = ?2",
                params![scenario.id, scenario.definition_hash],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO run_scenarios (run_id, scenario_ref, warmup_rounds, rounds) VALUES (?1, ?2, ?3, ?4)",
                params![run_id, scenario_ref, scenario.warmup_rounds, scenario.rounds],
            )?;
            for (name, metric) in &scenario.metrics {
                upsert_metric(&tx, name, &metric.unit, metric.direction.as_str())?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO samples (run_id, scenario_ref, metric, round, value) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for (round, value) in metric.samples.iter().enumerate() {
                    insert.execute(params![run_id, scenario_ref, name, round as i64, value])?;
                }
                if let Some(s) = summarize(&metric.samples) {
                    tx.execute(
                        "INSERT INTO data_points (run_id, scenario_ref, metric, n, median, ci_lower, ci_upper, ci_level, mean, stddev)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        params![run_id, scenario_ref, name, s.n as i64, s.median, s.ci_lower, s.ci_upper, s.ci_level, s.mean, s.stddev],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(IngestOutcome::Stored { run_id })
    }
}

fn upsert_machine(tx: &Transaction, results: &Results) -> Result<i64, CollectorError> {
    let m = &results.machine;
    let fp = fingerprint(m);
    tx.execute(
        "INSERT INTO machines (fingerprint, cpu_model, logical_cores, physical_cores, memory_bytes, kernel, os, arch, rustc, profile)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (fingerprint) DO NOTHING",
        params![fp, m.cpu_model, m.logical_cores, m.physical_cores, m.memory_bytes as i64, m.kernel, m.os, m.arch, m.rustc, m.profile],
    )?;
    Ok(tx.query_row("SELECT id FROM machines WHERE fingerprint = ?1", [&fp], |r| r.get(0))?)
}

fn upsert_commit(tx: &Transaction, results: &Results) -> Result<(), CollectorError> {
    let c = &results.commit;
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

fn insert_run(tx: &Transaction, results: &Results, machine_id: i64) -> Result<i64, CollectorError> {
    let r = &results.run;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    tx.execute(
        "INSERT INTO runs (run_uuid, machine_id, commit_sha, branch, dirty, started_at, finished_at, tool_version,
                           scenario_file, sample_interval_ms, seed, load_avg_1m, cpu_mhz, ingested_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            r.id,
            machine_id,
            results.commit.sha,
            results.commit.branch,
            results.commit.dirty,
            r.started_at,
            r.finished_at,
            r.tool_version,
            r.scenario_file,
            r.sample_interval_ms as i64,
            // SQLite integers are signed; the seed's bits are kept.
            r.seed as i64,
            results.machine.covariates.load_avg_1m,
            results.machine.covariates.cpu_mhz as i64,
            now
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

fn upsert_metric(tx: &Transaction, name: &str, unit: &str, direction: &str) -> Result<(), CollectorError> {
    let existing: Option<(String, String)> = tx
        .query_row("SELECT unit, direction FROM metrics WHERE name = ?1", [name], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    match existing {
        None => {
            tx.execute(
                "INSERT INTO metrics (name, unit, direction) VALUES (?1, ?2, ?3)",
                params![name, unit, direction],
            )?;
            Ok(())
        }
        Some((u, d)) if u == unit && d == direction => Ok(()),
        Some((u, d)) => Err(CollectorError::Conflict(format!(
            "metric {name} is stored as {u} ({d} is better) but these results say {unit} ({direction} is better); rename the metric when its meaning changes"
        ))),
    }
}
