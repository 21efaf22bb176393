//! Read access for the site and reports.

use rusqlite::params;

use crate::statistics::Summary;
use crate::{CollectorError, Database};

/// A series: one metric of one scenario definition on one machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub machine_id: i64,
    pub machine_fingerprint: String,
    pub scenario_ref: i64,
    /// Such as `blobs.upload/10x100k/c1`.
    pub scenario_id: String,
    pub definition_hash: String,
    pub workload: String,
    pub description: String,
    pub metric: String,
    pub unit: String,
    /// `lower` or `higher`: which way is better.
    pub direction: String,
}

/// A commit as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    pub sha: String,
    pub subject: String,
    pub author_name: String,
    pub author_time: i64,
    pub depth: i64,
}

/// One data point of a series: the summary of one run at one commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub run_id: i64,
    pub commit: Commit,
    pub branch: Option<String>,
    pub dirty: bool,
    pub started_at: String,
    pub summary: Summary,
}

/// A run with its commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: i64,
    pub uuid: String,
    pub machine_id: i64,
    pub commit: Commit,
    pub branch: Option<String>,
    pub dirty: bool,
    pub started_at: String,
    pub scenario_file: String,
}

/// A machine and its stable facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub id: i64,
    pub fingerprint: String,
    pub cpu_model: String,
    pub logical_cores: i64,
    pub memory_bytes: i64,
    pub kernel: String,
    pub os: String,
    pub rustc: String,
    pub profile: String,
}

fn commit_from(row: &rusqlite::Row, at: usize) -> rusqlite::Result<Commit> {
    Ok(Commit {
        sha: row.get(at)?,
        subject: row.get(at + 1)?,
        author_name: row.get(at + 2)?,
        author_time: row.get(at + 3)?,
        depth: row.get(at + 4)?,
    })
}

impl Database {
    /// Every series with at least one data point, by scenario id, then metric, then machine.
    pub fn series(&self) -> Result<Vec<Series>, CollectorError> {
        let mut stmt = self.conn.prepare(
            "SELECT DISTINCT r.machine_id, m.fingerprint, s.id, s.scenario_id, s.definition_hash, s.workload,
                             s.description, d.metric, mt.unit, mt.direction
             FROM data_points d
             JOIN runs r ON r.id = d.run_id
             JOIN machines m ON m.id = r.machine_id
             JOIN scenarios s ON s.id = d.scenario_ref
             JOIN metrics mt ON mt.name = d.metric
             ORDER BY s.scenario_id, s.id, d.metric, r.machine_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Series {
                machine_id: r.get(0)?,
                machine_fingerprint: r.get(1)?,
                scenario_ref: r.get(2)?,
                scenario_id: r.get(3)?,
                definition_hash: r.get(4)?,
                workload: r.get(5)?,
                description: r.get(6)?,
                metric: r.get(7)?,
                unit: r.get(8)?,
                direction: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The points of a series in commit order (position on the first-parent chain, then
    /// commit time), one per commit: the latest run of each commit. `branch` restricts the
    /// runs to those made on that branch.
    pub fn points(&self, series: &Series, branch: Option<&str>) -> Result<Vec<Point>, CollectorError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.id, c.sha, c.subject, c.author_name, c.author_time, c.depth, r.branch, r.dirty, r.started_at,
                    d.n, d.median, d.ci_lower, d.ci_upper, d.ci_level, d.mean, d.stddev
             FROM data_points d
             JOIN runs r ON r.id = d.run_id
             JOIN commits c ON c.sha = r.commit_sha
             WHERE d.scenario_ref = ?1 AND d.metric = ?2 AND r.machine_id = ?3 AND (?4 IS NULL OR r.branch = ?4)
             ORDER BY c.depth, c.commit_time, c.sha, r.id",
        )?;
        let rows = stmt.query_map(
            params![series.scenario_ref, series.metric, series.machine_id, branch],
            |r| {
                Ok(Point {
                    run_id: r.get(0)?,
                    commit: commit_from(r, 1)?,
                    branch: r.get(6)?,
                    dirty: r.get(7)?,
                    started_at: r.get(8)?,
                    summary: Summary {
                        n: r.get::<_, i64>(9)? as usize,
                        median: r.get(10)?,
                        ci_lower: r.get(11)?,
                        ci_upper: r.get(12)?,
                        ci_level: r.get(13)?,
                        mean: r.get(14)?,
                        stddev: r.get(15)?,
                    },
                })
            },
        )?;
        let mut points: Vec<Point> = Vec::new();
        for p in rows {
            let p = p?;
            match points.last_mut() {
                Some(last) if last.commit.sha == p.commit.sha => *last = p,
                _ => points.push(p),
            }
        }
        Ok(points)
    }

    /// Raw samples of one data point, in round order.
    pub fn samples(&self, run_id: i64, scenario_ref: i64, metric: &str) -> Result<Vec<f64>, CollectorError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT value FROM samples WHERE run_id = ?1 AND scenario_ref = ?2 AND metric = ?3 ORDER BY round",
        )?;
        let rows = stmt.query_map(params![run_id, scenario_ref, metric], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every run, newest commit first.
    pub fn runs(&self) -> Result<Vec<Run>, CollectorError> {
        let mut stmt = self.conn.prepare(
            "SELECT r.id, r.run_uuid, r.machine_id, c.sha, c.subject, c.author_name, c.author_time, c.depth,
                    r.branch, r.dirty, r.started_at, r.scenario_file
             FROM runs r JOIN commits c ON c.sha = r.commit_sha
             ORDER BY c.depth DESC, c.commit_time DESC, r.id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Run {
                id: r.get(0)?,
                uuid: r.get(1)?,
                machine_id: r.get(2)?,
                commit: commit_from(r, 3)?,
                branch: r.get(8)?,
                dirty: r.get(9)?,
                started_at: r.get(10)?,
                scenario_file: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn machines(&self) -> Result<Vec<Machine>, CollectorError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, fingerprint, cpu_model, logical_cores, memory_bytes, kernel, os, rustc, profile FROM machines ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Machine {
                id: r.get(0)?,
                fingerprint: r.get(1)?,
                cpu_model: r.get(2)?,
                logical_cores: r.get(3)?,
                memory_bytes: r.get(4)?,
                kernel: r.get(5)?,
                os: r.get(6)?,
                rustc: r.get(7)?,
                profile: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
