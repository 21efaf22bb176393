//! Read access for the site and reports. Calibration runs never appear here: they are A/A
//! measurements, not history.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use crate::graph::CommitGraph;
use crate::statistics::Summary;
use crate::statistics::outliers::Outliers;
use crate::statistics::verdict::{Direction, Verdict};
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
    /// Its scenario's rounds run for a fixed time (`contract::metrics::not_judged`).
    pub fixed_duration: bool,
}

/// A metric as stored: what it is, for readers of the store.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricInfo {
    pub name: String,
    pub unit: String,
    pub direction: Direction,
    /// What it measures, in a sentence; `None` for metrics of other tools.
    pub description: Option<String>,
    /// Display order, headline numbers first; `None` (after the others) for metrics of other
    /// tools.
    pub rank: Option<i64>,
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
    /// `harness`, `bmf` or `criterion`.
    pub source: String,
    /// How its rounds were paired with a baseline build, or why they were not (`run
    /// --baseline`); `None` when no pairing was asked for.
    pub pairing: Option<String>,
    /// The commit whose binaries its rounds were paired with, when they were.
    pub paired_with: Option<String>,
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

/// A verdict as stored, with what it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVerdict {
    pub run_id: i64,
    pub scenario_ref: i64,
    pub scenario_id: String,
    pub metric: String,
    pub unit: String,
    pub direction: String,
    /// The run the commit was compared with; `None` for a new series.
    pub baseline_run_id: Option<i64>,
    pub baseline_sha: Option<String>,
    pub commit_n: i64,
    pub commit_median: f64,
    pub baseline_n: Option<i64>,
    pub baseline_median: Option<f64>,
    pub p_value: Option<f64>,
    pub q_value: Option<f64>,
    /// Hodges-Lehmann shift in the metric's unit and its CI.
    pub shift: Option<f64>,
    pub shift_ci: Option<(f64, f64)>,
    pub shift_ci_level: Option<f64>,
    /// The shift relative to the baseline's median, and its CI.
    pub relative_change: Option<f64>,
    pub relative_ci: Option<(f64, f64)>,
    pub noise_floor: Option<f64>,
    pub threshold: f64,
    pub alpha: f64,
    /// What the per-commit gate decided.
    pub gate_verdict: Verdict,
    /// The verdict now: the gate's, or a change point's that re-labelled it.
    pub verdict: Verdict,
    pub change_point_id: Option<i64>,
    pub statistics_version: i64,
    /// Which rule decided it: against the history, paired with a baseline build in the same
    /// run, or a count against the history.
    pub method: crate::Method,
}

/// A change point as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChangePoint {
    pub id: i64,
    pub branch: String,
    pub commit_sha: String,
    pub previous_sha: String,
    pub points_before: i64,
    pub points_after: i64,
    pub mean_before: f64,
    pub mean_after: f64,
    pub relative_change: f64,
    pub p_value: f64,
    /// `regression` or `improvement`, by the metric's direction.
    pub kind: Verdict,
}

/// The latest A/A calibration of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesCalibration {
    pub calibration_id: i64,
    pub comparisons: i64,
    pub false_regressions: i64,
    pub false_improvements: i64,
    pub noisy: i64,
    pub false_positive_rate: f64,
    /// One-sided 95% upper bound of the rate (Clopper-Pearson).
    pub false_positive_upper: f64,
    pub finished_at: String,
}

pub(crate) fn commit_from(row: &rusqlite::Row, at: usize) -> rusqlite::Result<Commit> {
    Ok(Commit {
        sha: row.get(at)?,
        subject: row.get(at + 1)?,
        author_name: row.get(at + 2)?,
        author_time: row.get(at + 3)?,
        depth: row.get(at + 4)?,
    })
}

/// A point from `POINT_COLUMNS` read at column `at`.
pub(crate) fn point_from(r: &rusqlite::Row, at: usize) -> rusqlite::Result<Point> {
    Ok(Point {
        run_id: r.get(at)?,
        commit: commit_from(r, at + 1)?,
        branch: r.get(at + 6)?,
        dirty: r.get(at + 7)?,
        started_at: r.get(at + 8)?,
        summary: Summary {
            n: r.get::<_, i64>(at + 9)? as usize,
            median: r.get(at + 10)?,
            ci_lower: r.get(at + 11)?,
            ci_upper: r.get(at + 12)?,
            ci_level: r.get(at + 13)?,
            mean: r.get(at + 14)?,
            stddev: r.get(at + 15)?,
            outliers: Outliers {
                low_severe: r.get::<_, i64>(at + 16)? as usize,
                low_mild: r.get::<_, i64>(at + 17)? as usize,
                high_mild: r.get::<_, i64>(at + 18)? as usize,
                high_severe: r.get::<_, i64>(at + 19)? as usize,
            },
            mde: r.get(at + 20)?,
        },
    })
}

/// The columns [`point_from`] reads, over `data_points d`, `runs r` and `commits c`.
pub(crate) const POINT_COLUMNS: &str =
    "r.id, c.sha, c.subject, c.author_name, c.author_time, c.depth, r.branch, r.dirty, r.started_at,
     d.n, d.median, d.ci_lower, d.ci_upper, d.ci_level, d.mean, d.stddev,
     d.outliers_low_severe, d.outliers_low_mild, d.outliers_high_mild, d.outliers_high_severe, d.mde";

/// The columns [`change_point_from`] reads, over `change_points cp`.
pub(crate) const CHANGE_POINT_COLUMNS: &str =
    "cp.id, cp.branch, cp.commit_sha, cp.previous_sha, cp.points_before, cp.points_after,
     cp.mean_before, cp.mean_after, cp.relative_change, cp.p_value, cp.kind";

pub(crate) fn change_point_from(r: &rusqlite::Row, at: usize) -> rusqlite::Result<StoredChangePoint> {
    Ok(StoredChangePoint {
        id: r.get(at)?,
        branch: r.get(at + 1)?,
        commit_sha: r.get(at + 2)?,
        previous_sha: r.get(at + 3)?,
        points_before: r.get(at + 4)?,
        points_after: r.get(at + 5)?,
        mean_before: r.get(at + 6)?,
        mean_after: r.get(at + 7)?,
        relative_change: r.get(at + 8)?,
        p_value: r.get(at + 9)?,
        kind: verdict_from(r.get(at + 10)?)?,
    })
}

/// The columns [`series_calibration_from`] reads, over `calibration_series cs` and
/// `calibrations c`.
pub(crate) const SERIES_CALIBRATION_COLUMNS: &str = "cs.calibration_id, cs.comparisons, cs.false_regressions,
     cs.false_improvements, cs.noisy, cs.false_positive_rate, cs.false_positive_upper, c.finished_at";

pub(crate) fn series_calibration_from(r: &rusqlite::Row, at: usize) -> rusqlite::Result<SeriesCalibration> {
    Ok(SeriesCalibration {
        calibration_id: r.get(at)?,
        comparisons: r.get(at + 1)?,
        false_regressions: r.get(at + 2)?,
        false_improvements: r.get(at + 3)?,
        noisy: r.get(at + 4)?,
        false_positive_rate: r.get(at + 5)?,
        false_positive_upper: r.get(at + 6)?,
        finished_at: r.get(at + 7)?,
    })
}

pub(crate) fn verdict_from(s: String) -> rusqlite::Result<Verdict> {
    Verdict::parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown verdict {s:?}").into(),
        )
    })
}

const RUN_COLUMNS: &str = "r.id, r.run_uuid, r.machine_id, c.sha, c.subject, c.author_name, c.author_time, c.depth,
                           r.branch, r.dirty, r.started_at, r.scenario_file, r.source, r.pairing,
                           (SELECT ra.commit_sha FROM comparisons cm JOIN runs ra ON ra.id = cm.run_a
                            WHERE cm.run_b = r.id AND cm.kind = 'baseline')";

fn run_from(r: &rusqlite::Row) -> rusqlite::Result<Run> {
    Ok(Run {
        id: r.get(0)?,
        uuid: r.get(1)?,
        machine_id: r.get(2)?,
        commit: commit_from(r, 3)?,
        branch: r.get(8)?,
        dirty: r.get(9)?,
        started_at: r.get(10)?,
        scenario_file: r.get(11)?,
        source: r.get(12)?,
        pairing: r.get(13)?,
        paired_with: r.get(14)?,
    })
}

pub(crate) const VERDICT_SELECT: &str =
    "SELECT v.run_id, v.scenario_ref, s.scenario_id, v.metric, mt.unit, mt.direction,
            v.baseline_run_id, b.commit_sha, v.commit_n, v.commit_median, v.baseline_n, v.baseline_median,
            v.p_value, v.q_value, v.shift, v.shift_ci_lower, v.shift_ci_upper, v.shift_ci_level,
            v.relative_change, v.relative_ci_lower, v.relative_ci_upper, v.noise_floor, v.threshold, v.alpha,
            v.gate_verdict, v.verdict, v.change_point_id, v.statistics_version, v.method
     FROM verdicts v
     JOIN scenarios s ON s.id = v.scenario_ref
     JOIN metrics mt ON mt.name = v.metric
     LEFT JOIN runs b ON b.id = v.baseline_run_id";

pub(crate) fn verdict_from_row(r: &rusqlite::Row) -> rusqlite::Result<StoredVerdict> {
    let pair = |a: Option<f64>, b: Option<f64>| a.zip(b);
    Ok(StoredVerdict {
        run_id: r.get(0)?,
        scenario_ref: r.get(1)?,
        scenario_id: r.get(2)?,
        metric: r.get(3)?,
        unit: r.get(4)?,
        direction: r.get(5)?,
        baseline_run_id: r.get(6)?,
        baseline_sha: r.get(7)?,
        commit_n: r.get(8)?,
        commit_median: r.get(9)?,
        baseline_n: r.get(10)?,
        baseline_median: r.get(11)?,
        p_value: r.get(12)?,
        q_value: r.get(13)?,
        shift: r.get(14)?,
        shift_ci: pair(r.get(15)?, r.get(16)?),
        shift_ci_level: r.get(17)?,
        relative_change: r.get(18)?,
        relative_ci: pair(r.get(19)?, r.get(20)?),
        noise_floor: r.get(21)?,
        threshold: r.get(22)?,
        alpha: r.get(23)?,
        gate_verdict: verdict_from(r.get(24)?)?,
        verdict: verdict_from(r.get(25)?)?,
        change_point_id: r.get(26)?,
        statistics_version: r.get(27)?,
        method: method_at(r, 28)?,
    })
}

/// A `verdicts.method` column (as the schema checks).
pub(crate) fn method_at(r: &rusqlite::Row, i: usize) -> rusqlite::Result<crate::Method> {
    let text: String = r.get(i)?;
    crate::Method::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, format!("method {text:?}").into())
    })
}

/// A `direction` column (`lower` or `higher`, as the schema checks).
pub(crate) fn direction_at(r: &rusqlite::Row, i: usize) -> rusqlite::Result<Direction> {
    let text: String = r.get(i)?;
    Direction::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, format!("direction {text:?}").into())
    })
}

impl Database {
    /// Every stored metric, in display order.
    pub fn metrics(&self) -> Result<Vec<MetricInfo>, CollectorError> {
        let mut stmt = self.conn.prepare(
            "SELECT name, unit, direction, description, display_rank FROM metrics
             ORDER BY display_rank IS NULL, display_rank, name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(MetricInfo {
                name: r.get(0)?,
                unit: r.get(1)?,
                direction: direction_at(r, 2)?,
                description: r.get(3)?,
                rank: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every series with at least one data point, by scenario id, then metric, then machine.
    pub fn series(&self) -> Result<Vec<Series>, CollectorError> {
        let mut stmt = self.conn.prepare(
            "SELECT DISTINCT r.machine_id, m.fingerprint, s.id, s.scenario_id, s.definition_hash, s.workload,
                             s.description, d.metric, mt.unit, mt.direction, s.fixed_duration
             FROM data_points d
             JOIN runs r ON r.id = d.run_id
             JOIN machines m ON m.id = r.machine_id
             JOIN scenarios s ON s.id = d.scenario_ref
             JOIN metrics mt ON mt.name = d.metric
             WHERE r.purpose = 'history'
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
                fixed_duration: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The points of a series, oldest first, one per commit (its latest run).
    ///
    /// With a `branch`, the points are those on the branch's first-parent chain, from its
    /// deepest benchmarked commit back (see `graph.rs`): runs of those commits count whatever
    /// branch they were made on, and commits merged in from other branches are left out.
    /// Without, every run's commit is shown, ordered by first-parent depth, then commit time.
    pub fn points(&self, series: &Series, branch: Option<&str>) -> Result<Vec<Point>, CollectorError> {
        let all = self.all_points(series)?;
        let Some(branch) = branch else {
            return Ok(all);
        };
        let graph = CommitGraph::load(&self.conn)?;
        let Some(tip) = graph.tip(branch) else {
            return Ok(Vec::new());
        };
        let chain = graph.chain(tip, Some(branch));
        let mut by_sha: HashMap<String, Point> = all.into_iter().map(|p| (p.commit.sha.clone(), p)).collect();
        Ok(chain.iter().rev().filter_map(|sha| by_sha.remove(sha)).collect())
    }

    fn all_points(&self, series: &Series) -> Result<Vec<Point>, CollectorError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {POINT_COLUMNS}
             FROM data_points d
             JOIN runs r ON r.id = d.run_id
             JOIN commits c ON c.sha = r.commit_sha
             WHERE d.scenario_ref = ?1 AND d.metric = ?2 AND r.machine_id = ?3 AND r.purpose = 'history'
             ORDER BY c.depth, c.commit_time, c.sha, r.id"
        ))?;
        let rows = stmt.query_map(params![series.scenario_ref, series.metric, series.machine_id], |r| {
            point_from(r, 0)
        })?;
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
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN commits c ON c.sha = r.commit_sha
             WHERE r.purpose = 'history'
             ORDER BY c.depth DESC, c.commit_time DESC, r.id DESC"
        ))?;
        let rows = stmt.query_map([], run_from)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The uuids of every run stored, whatever its purpose: what a merge carries over.
    pub fn run_uuids(&self) -> Result<std::collections::BTreeSet<String>, CollectorError> {
        let mut stmt = self.conn.prepare("SELECT run_uuid FROM runs")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A run by its row id, its uuid, a unique prefix of its uuid, or `latest` (the last one
    /// stored).
    pub fn find_run(&self, key: &str) -> Result<Run, CollectorError> {
        let query = |condition: &str, param: &dyn rusqlite::ToSql| -> Result<Vec<Run>, CollectorError> {
            let mut stmt = self.conn.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs r JOIN commits c ON c.sha = r.commit_sha
                 WHERE r.purpose = 'history' AND {condition} ORDER BY r.id DESC LIMIT 2"
            ))?;
            let rows = stmt.query_map([param], run_from)?;
            Ok(rows.collect::<Result<_, _>>()?)
        };
        let found = if key == "latest" {
            query("1 = ?1", &1)?
        } else if let Ok(id) = key.parse::<i64>() {
            query("r.id = ?1", &id)?
        } else {
            let exact = query("r.run_uuid = ?1", &key)?;
            if exact.is_empty() {
                query("r.run_uuid LIKE ?1 || '%'", &key)?
            } else {
                exact
            }
        };
        match found.as_slice() {
            [] => Err(CollectorError::NoSuchRun(key.to_owned())),
            [run] => Ok(run.clone()),
            [run, ..] if key == "latest" => Ok(run.clone()),
            _ => Err(CollectorError::NoSuchRun(format!(
                "{key} (the prefix matches several runs)"
            ))),
        }
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

    /// A run's covariates: the machine's volatile readings, by name.
    pub fn covariates(&self, run_id: i64) -> Result<Vec<(String, rusqlite::types::Value)>, CollectorError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, value FROM run_covariates WHERE run_id = ?1 ORDER BY name")?;
        let rows = stmt.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The stored verdicts of a run, regressions first, then by scenario and metric.
    pub fn verdicts(&self, run_id: i64) -> Result<Vec<StoredVerdict>, CollectorError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{VERDICT_SELECT} WHERE v.run_id = ?1"))?;
        let rows = stmt.query_map([run_id], verdict_from_row)?;
        let mut out: Vec<StoredVerdict> = rows.collect::<Result<_, _>>()?;
        out.sort_by(|a, b| (a.verdict, &a.scenario_id, &a.metric).cmp(&(b.verdict, &b.scenario_id, &b.metric)));
        Ok(out)
    }

    /// The change points of a series found over `branch`'s history, oldest first.
    pub fn change_points(&self, series: &Series, branch: &str) -> Result<Vec<StoredChangePoint>, CollectorError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CHANGE_POINT_COLUMNS}
             FROM change_points cp JOIN commits c ON c.sha = cp.commit_sha
             WHERE cp.machine_id = ?1 AND cp.scenario_ref = ?2 AND cp.metric = ?3 AND cp.branch = ?4
             ORDER BY c.depth, c.commit_time"
        ))?;
        let rows = stmt.query_map(
            params![series.machine_id, series.scenario_ref, series.metric, branch],
            |r| change_point_from(r, 0),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The latest A/A calibration of a series on its machine, if any.
    pub fn calibration(&self, series: &Series) -> Result<Option<SeriesCalibration>, CollectorError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {SERIES_CALIBRATION_COLUMNS}
                     FROM calibration_series cs JOIN calibrations c ON c.id = cs.calibration_id
                     WHERE c.machine_id = ?1 AND cs.scenario_ref = ?2 AND cs.metric = ?3
                       AND c.kind IN ('history', 'paired')
                     ORDER BY c.id DESC LIMIT 1"
                ),
                params![series.machine_id, series.scenario_ref, series.metric],
                |r| series_calibration_from(r, 0),
            )
            .optional()?)
    }
}
