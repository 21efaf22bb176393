//! Bulk reads of the whole history, for the site and other readers of everything: every series with
//! its points on a branch, every verdict, change point, round budget and calibration, each in
//! one query. Reading series one by one would scan `data_points` once per series (its key
//! starts with the run), which at a thousand commits of hundreds of series takes seconds.

use std::collections::HashMap;

use contract::results::BudgetReport;
use rusqlite::{OptionalExtension, params};

use crate::graph::CommitGraph;
use crate::query::{
    CHANGE_POINT_COLUMNS, Commit, Point, SERIES_CALIBRATION_COLUMNS, Series, SeriesCalibration, StoredChangePoint,
    StoredVerdict, change_point_from, commit_from, series_calibration_from, verdict_from,
};
use crate::statistics::Summary;
use crate::statistics::outliers::Outliers;
use crate::{CalibrationKind, CollectorError, Database};

/// How often a series found a known injected cost, by one rule ([`CalibrationKind::Injected`]:
/// the paired rule; [`CalibrationKind::InjectedHistory`]: the history and count rules).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesDetection {
    pub kind: CalibrationKind,
    /// Its `false_regressions` are the comparisons that found the cost.
    pub calibration: SeriesCalibration,
    /// The cost injected, in words.
    pub injected: String,
}

/// What names a series: (machine id, scenario ref, metric).
pub type SeriesKey = (i64, i64, String);

impl Series {
    pub fn key(&self) -> SeriesKey {
        (self.machine_id, self.scenario_ref, self.metric.clone())
    }
}

/// A series and its points, oldest first, as [`Database::points`] gives them.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesHistory {
    pub series: Series,
    pub points: Vec<Point>,
}

/// A scenario definition as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioInfo {
    pub scenario_ref: i64,
    pub scenario_id: String,
    pub definition_hash: String,
    pub workload: String,
    pub workload_version: i64,
    pub description: String,
    /// The parameters, as the harness (or the import) gave them.
    pub params: serde_json::Value,
}

/// How a scenario's rounds were spent in one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundBudget {
    pub run_id: i64,
    pub scenario_ref: i64,
    pub warmup_rounds: i64,
    pub rounds: i64,
    /// The harness's adaptive-rounds decision; `None` for imports and older runs.
    pub budget: Option<BudgetReport>,
}

/// A branch with history runs.
#[derive(Debug, Clone, PartialEq)]
pub struct BranchInfo {
    pub name: String,
    pub runs: i64,
    pub commits: i64,
    /// RFC 3339 start of its latest run.
    pub latest_run: String,
}

fn json_column<T: serde::de::DeserializeOwned>(at: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(at, rusqlite::types::Type::Text, Box::new(e)))
}

/// The small tables, read whole: the large ones (`data_points`, `verdicts`) are then scanned
/// once without joins, which at hundreds of thousands of rows costs a fraction of joining
/// each row in SQLite.
struct Tables {
    machines: HashMap<i64, String>,
    /// scenario_ref: (scenario_id, definition_hash, workload, description, fixed_duration).
    scenarios: HashMap<i64, (String, String, String, String, bool)>,
    /// name: (unit, direction).
    metrics: HashMap<String, (String, String)>,
    /// sha: (commit, commit_time).
    commits: HashMap<String, (Commit, i64)>,
    /// History runs: id to (machine, commit sha, branch, dirty, started_at).
    runs: HashMap<i64, (i64, String, Option<String>, bool, String)>,
}

impl Tables {
    fn load(conn: &rusqlite::Connection) -> Result<Self, CollectorError> {
        let mut machines = HashMap::new();
        let mut stmt = conn.prepare("SELECT id, fingerprint FROM machines")?;
        for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
            let (id, fp) = row?;
            machines.insert(id, fp);
        }
        let mut scenarios = HashMap::new();
        let mut stmt = conn
            .prepare("SELECT id, scenario_id, definition_hash, workload, description, fixed_duration FROM scenarios")?;
        for row in stmt.query_map([], |r| {
            Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        })? {
            let (id, s) = row?;
            scenarios.insert(id, s);
        }
        let mut metrics = HashMap::new();
        let mut stmt = conn.prepare("SELECT name, unit, direction FROM metrics")?;
        for row in stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))? {
            let (name, m) = row?;
            metrics.insert(name, m);
        }
        let mut commits = HashMap::new();
        let mut stmt =
            conn.prepare("SELECT sha, subject, author_name, author_time, depth, commit_time FROM commits")?;
        for row in stmt.query_map([], |r| Ok((commit_from(r, 0)?, r.get::<_, i64>(5)?)))? {
            let (c, time) = row?;
            commits.insert(c.sha.clone(), (c, time));
        }
        let mut runs = HashMap::new();
        let mut stmt = conn.prepare(
            "SELECT id, machine_id, commit_sha, branch, dirty, started_at FROM runs WHERE purpose = 'history'",
        )?;
        for row in stmt.query_map([], |r| {
            Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        })? {
            let (id, run) = row?;
            runs.insert(id, run);
        }
        Ok(Self {
            machines,
            scenarios,
            metrics,
            commits,
            runs,
        })
    }
}

fn missing(what: &str) -> CollectorError {
    CollectorError::Conflict(format!("the database refers to a missing {what}"))
}

impl Database {
    /// Every series with its points, as [`Database::series`] and [`Database::points`] give
    /// them, in one read: with a `branch`, the points on its first-parent chain (series
    /// without any are left out); without, every run's commit.
    pub fn history(&self, branch: Option<&str>) -> Result<Vec<SeriesHistory>, CollectorError> {
        let t = Tables::load(&self.conn)?;
        // (machine, scenario, metric) -> (run, summary) in storage order.
        let mut raw: HashMap<(i64, i64, String), Vec<(i64, Summary)>> = HashMap::new();
        let mut stmt = self.conn.prepare(
            "SELECT run_id, scenario_ref, metric, n, median, ci_lower, ci_upper, ci_level, mean, stddev,
                    outliers_low_severe, outliers_low_mild, outliers_high_mild, outliers_high_severe, mde
             FROM data_points",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let run_id: i64 = r.get(0)?;
            let Some(run) = t.runs.get(&run_id) else { continue };
            let summary = Summary {
                n: r.get::<_, i64>(3)? as usize,
                median: r.get(4)?,
                ci_lower: r.get(5)?,
                ci_upper: r.get(6)?,
                ci_level: r.get(7)?,
                mean: r.get(8)?,
                stddev: r.get(9)?,
                outliers: Outliers {
                    low_severe: r.get::<_, i64>(10)? as usize,
                    low_mild: r.get::<_, i64>(11)? as usize,
                    high_mild: r.get::<_, i64>(12)? as usize,
                    high_severe: r.get::<_, i64>(13)? as usize,
                },
                mde: r.get(14)?,
            };
            let key = (run.0, r.get(1)?, r.get(2)?);
            raw.entry(key).or_default().push((run_id, summary));
        }
        let mut out: Vec<SeriesHistory> = Vec::with_capacity(raw.len());
        for ((machine_id, scenario_ref, metric), mut list) in raw {
            let (scenario_id, definition_hash, workload, description, fixed_duration) =
                t.scenarios.get(&scenario_ref).ok_or_else(|| missing("scenario"))?;
            let (unit, direction) = t.metrics.get(&metric).ok_or_else(|| missing("metric"))?;
            let commit_of = |run_id: &i64| {
                let run = &t.runs[run_id];
                t.commits.get(&run.1).map(|(c, time)| (c, *time, run))
            };
            // Commit order: first-parent depth, commit time, sha; a commit's runs by id.
            list.retain(|(run, _)| commit_of(run).is_some());
            list.sort_by(|(ra, _), (rb, _)| {
                let (ca, ta, _) = commit_of(ra).expect("kept above");
                let (cb, tb, _) = commit_of(rb).expect("kept above");
                (ca.depth, ta, &ca.sha, ra).cmp(&(cb.depth, tb, &cb.sha, rb))
            });
            let mut points: Vec<Point> = Vec::with_capacity(list.len());
            for (run_id, summary) in list {
                let (commit, _, run) = commit_of(&run_id).expect("kept above");
                // One point per commit: its latest run.
                if points.last().is_some_and(|p| p.commit.sha == commit.sha) {
                    points.pop();
                }
                points.push(Point {
                    run_id,
                    commit: commit.clone(),
                    branch: run.2.clone(),
                    dirty: run.3,
                    started_at: run.4.clone(),
                    summary,
                });
            }
            out.push(SeriesHistory {
                series: Series {
                    machine_id,
                    machine_fingerprint: t.machines.get(&machine_id).cloned().ok_or_else(|| missing("machine"))?,
                    scenario_ref,
                    scenario_id: scenario_id.clone(),
                    definition_hash: definition_hash.clone(),
                    workload: workload.clone(),
                    description: description.clone(),
                    fixed_duration: *fixed_duration,
                    metric,
                    unit: unit.clone(),
                    direction: direction.clone(),
                },
                points,
            });
        }
        out.sort_by(|a, b| {
            let (a, b) = (&a.series, &b.series);
            (&a.scenario_id, a.scenario_ref, &a.metric, a.machine_id).cmp(&(
                &b.scenario_id,
                b.scenario_ref,
                &b.metric,
                b.machine_id,
            ))
        });
        let Some(branch) = branch else {
            return Ok(out);
        };
        let graph = CommitGraph::load(&self.conn)?;
        let Some(tip) = graph.tip(branch) else {
            return Ok(Vec::new());
        };
        let chain = graph.chain(tip, Some(branch));
        let position: HashMap<&str, usize> = chain.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
        for h in &mut out {
            h.points.retain(|p| position.contains_key(p.commit.sha.as_str()));
            // Newest first on the chain, so oldest first here.
            h.points
                .sort_by_key(|p| std::cmp::Reverse(position[p.commit.sha.as_str()]));
        }
        out.retain(|h| !h.points.is_empty());
        Ok(out)
    }

    /// Every verdict of every history run, in no particular order.
    pub fn history_verdicts(&self) -> Result<Vec<StoredVerdict>, CollectorError> {
        let t = Tables::load(&self.conn)?;
        let mut stmt = self.conn.prepare(
            "SELECT v.run_id, v.scenario_ref, v.metric, v.baseline_run_id, v.commit_n, v.commit_median, v.baseline_n,
                    v.baseline_median, v.p_value, v.q_value, v.shift, v.shift_ci_lower, v.shift_ci_upper,
                    v.shift_ci_level, v.relative_change, v.relative_ci_lower, v.relative_ci_upper, v.noise_floor,
                    v.threshold, v.alpha, v.gate_verdict, v.verdict, v.change_point_id, v.statistics_version,
                    v.method, b.commit_sha
             FROM verdicts v LEFT JOIN runs b ON b.id = v.baseline_run_id",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        let pair = |a: Option<f64>, b: Option<f64>| a.zip(b);
        while let Some(r) = rows.next()? {
            let run_id: i64 = r.get(0)?;
            if !t.runs.contains_key(&run_id) {
                continue;
            }
            let scenario_ref: i64 = r.get(1)?;
            let metric: String = r.get(2)?;
            let baseline_run_id: Option<i64> = r.get(3)?;
            let (unit, direction) = t.metrics.get(&metric).ok_or_else(|| missing("metric"))?;
            out.push(StoredVerdict {
                run_id,
                scenario_ref,
                scenario_id: t
                    .scenarios
                    .get(&scenario_ref)
                    .map(|s| s.0.clone())
                    .ok_or_else(|| missing("scenario"))?,
                unit: unit.clone(),
                direction: direction.clone(),
                metric,
                baseline_run_id,
                // A paired verdict's baseline is the baseline build's run, not a history run.
                baseline_sha: r.get(25)?,
                commit_n: r.get(4)?,
                commit_median: r.get(5)?,
                baseline_n: r.get(6)?,
                baseline_median: r.get(7)?,
                p_value: r.get(8)?,
                q_value: r.get(9)?,
                shift: r.get(10)?,
                shift_ci: pair(r.get(11)?, r.get(12)?),
                shift_ci_level: r.get(13)?,
                relative_change: r.get(14)?,
                relative_ci: pair(r.get(15)?, r.get(16)?),
                noise_floor: r.get(17)?,
                threshold: r.get(18)?,
                alpha: r.get(19)?,
                gate_verdict: verdict_from(r.get(20)?)?,
                verdict: verdict_from(r.get(21)?)?,
                change_point_id: r.get(22)?,
                statistics_version: r.get(23)?,
                method: crate::query::method_at(r, 24)?,
            });
        }
        Ok(out)
    }

    /// Every change point found over `branch`'s history, by series, oldest first.
    pub fn history_change_points(&self, branch: &str) -> Result<Vec<(SeriesKey, StoredChangePoint)>, CollectorError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT cp.machine_id, cp.scenario_ref, cp.metric, {CHANGE_POINT_COLUMNS}
             FROM change_points cp JOIN commits c ON c.sha = cp.commit_sha
             WHERE cp.branch = ?1
             ORDER BY cp.machine_id, cp.scenario_ref, cp.metric, c.depth, c.commit_time"
        ))?;
        let rows = stmt.query_map([branch], |r| {
            Ok(((r.get(0)?, r.get(1)?, r.get(2)?), change_point_from(r, 3)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The latest A/A calibration of `kind` (history or paired) of every series it
    /// calibrated: each rule has its own false-positive rate.
    pub fn series_calibrations(
        &self,
        kind: CalibrationKind,
    ) -> Result<HashMap<SeriesKey, SeriesCalibration>, CollectorError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT c.machine_id, cs.scenario_ref, cs.metric, {SERIES_CALIBRATION_COLUMNS}
             FROM calibration_series cs JOIN calibrations c ON c.id = cs.calibration_id
             WHERE c.kind = ?1
             ORDER BY c.id"
        ))?;
        let rows = stmt.query_map([kind.as_str()], |r| {
            Ok(((r.get(0)?, r.get(1)?, r.get(2)?), series_calibration_from(r, 3)?))
        })?;
        // Later calibrations replace earlier ones.
        let mut out = HashMap::new();
        for row in rows {
            let (key, calibration) = row?;
            out.insert(key, calibration);
        }
        Ok(out)
    }

    /// The latest injected calibration of every series it measured, by rule (`paired`:
    /// `calibrate --paired --inject-build`; `history`: `calibrate --inject-build`, count
    /// series included), paired first: its `false_regressions` are the comparisons that found
    /// the cost.
    pub fn series_detections(&self) -> Result<HashMap<SeriesKey, Vec<SeriesDetection>>, CollectorError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT c.machine_id, cs.scenario_ref, cs.metric, coalesce(c.injected, ''), c.kind,
                    {SERIES_CALIBRATION_COLUMNS}
             FROM calibration_series cs JOIN calibrations c ON c.id = cs.calibration_id
             WHERE c.kind IN ('injected', 'injected-history')
             ORDER BY c.id"
        ))?;
        let rows = stmt.query_map([], |r| {
            let kind = CalibrationKind::parse(&r.get::<_, String>(4)?).unwrap_or(CalibrationKind::Injected);
            Ok((
                (r.get(0)?, r.get(1)?, r.get(2)?),
                SeriesDetection {
                    kind,
                    calibration: series_calibration_from(r, 5)?,
                    injected: r.get(3)?,
                },
            ))
        })?;
        // Later calibrations of the same rule replace earlier ones.
        let mut latest: HashMap<(SeriesKey, &'static str), SeriesDetection> = HashMap::new();
        for row in rows {
            let (key, detection) = row?;
            latest.insert((key, detection.kind.as_str()), detection);
        }
        let mut out: HashMap<SeriesKey, Vec<SeriesDetection>> = HashMap::new();
        for ((key, _), detection) in latest {
            out.entry(key).or_default().push(detection);
        }
        for list in out.values_mut() {
            list.sort_by_key(|d| d.kind != CalibrationKind::Injected);
        }
        Ok(out)
    }

    /// Every scenario definition, by scenario id then row id.
    pub fn scenarios(&self) -> Result<Vec<ScenarioInfo>, CollectorError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, scenario_id, definition_hash, workload, workload_version, description, params
             FROM scenarios ORDER BY scenario_id, id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ScenarioInfo {
                scenario_ref: r.get(0)?,
                scenario_id: r.get(1)?,
                definition_hash: r.get(2)?,
                workload: r.get(3)?,
                workload_version: r.get(4)?,
                description: r.get(5)?,
                params: json_column(6, &r.get::<_, String>(6)?)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How every scenario of every history run spent its rounds.
    pub fn round_budgets(&self) -> Result<Vec<RoundBudget>, CollectorError> {
        let mut stmt = self.conn.prepare(
            "SELECT rs.run_id, rs.scenario_ref, rs.warmup_rounds, rs.rounds, rs.budget
             FROM run_scenarios rs JOIN runs r ON r.id = rs.run_id
             WHERE r.purpose = 'history'",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RoundBudget {
                run_id: r.get(0)?,
                scenario_ref: r.get(1)?,
                warmup_rounds: r.get(2)?,
                rounds: r.get(3)?,
                budget: r.get::<_, Option<String>>(4)?.map(|t| json_column(4, &t)).transpose()?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The latency histogram of one scenario in one run (HdrHistogram V2 compressed, base64,
    /// microseconds), if its workload records one.
    pub fn latency_histogram(&self, run_id: i64, scenario_ref: i64) -> Result<Option<String>, CollectorError> {
        Ok(self
            .conn
            .query_row(
                "SELECT latency_histogram FROM run_scenarios WHERE run_id = ?1 AND scenario_ref = ?2",
                params![run_id, scenario_ref],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Every branch with history runs, the one with most runs first.
    pub fn branches(&self) -> Result<Vec<BranchInfo>, CollectorError> {
        let mut stmt = self.conn.prepare(
            "SELECT branch, count(*), count(DISTINCT commit_sha), max(started_at) FROM runs
             WHERE purpose = 'history' AND branch IS NOT NULL
             GROUP BY branch ORDER BY count(*) DESC, branch",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(BranchInfo {
                name: r.get(0)?,
                runs: r.get(1)?,
                commits: r.get(2)?,
                latest_run: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The parents of every stored commit, first parent first.
    pub fn commit_parents(&self) -> Result<HashMap<String, Vec<String>>, CollectorError> {
        let mut stmt = self
            .conn
            .prepare("SELECT sha, parent FROM commit_parents ORDER BY sha, position")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for row in rows {
            let (sha, parent) = row?;
            out.entry(sha).or_default().push(parent);
        }
        Ok(out)
    }
}
