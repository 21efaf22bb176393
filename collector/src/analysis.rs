//! Analysis of stored runs: each commit's verdicts against its baseline, change points over
//! each series' history, and the re-labelling that ties them together. The statistics are in
//! `statistics/`; this is where they meet the database.

use std::collections::{BTreeSet, HashMap};

use rusqlite::{OptionalExtension, Transaction, params};

use crate::graph::CommitGraph;
use crate::ingest::now;
use crate::statistics::STATISTICS_VERSION;
use crate::statistics::change_point::{ChangePointOptions, change_points};
use crate::statistics::noise_floor::HISTORY_POINTS;
use crate::statistics::verdict::{Assessment, Comparison, Direction, Policy, assess, compare, compare_counted};
use crate::{CollectorError, Database};

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AnalysisOptions {
    pub policy: Policy,
    pub change_points: ChangePointOptions,
}

/// What an analysis did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnalysisReport {
    /// Runs whose verdicts were (re)computed: those asked for, and later runs whose baseline
    /// they now are (a backfilled commit becomes the baseline of the next one).
    pub runs: Vec<i64>,
    pub verdicts: usize,
    /// Change points now stored for the series analysed.
    pub change_points: usize,
    /// Verdicts re-labelled by a confirmed change point.
    pub relabelled: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct RunKey {
    pub machine_id: i64,
    pub commit_sha: String,
    pub branch: Option<String>,
}

pub(crate) fn load_run(tx: &Transaction, run_id: i64) -> Result<RunKey, CollectorError> {
    let row: Option<(i64, String, Option<String>, String)> = tx
        .query_row(
            "SELECT machine_id, commit_sha, branch, purpose FROM runs WHERE id = ?1",
            [run_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    match row {
        None => Err(CollectorError::NoSuchRun(run_id.to_string())),
        Some((_, _, _, purpose)) if purpose != "history" => Err(CollectorError::Conflict(format!(
            "run {run_id} is a {purpose} run; only history runs get verdicts"
        ))),
        Some((machine_id, commit_sha, branch, _)) => Ok(RunKey {
            machine_id,
            commit_sha,
            branch,
        }),
    }
}

/// The history points of one series on one machine: for each commit, its latest run and that
/// run's median.
pub(crate) fn series_points(
    tx: &Transaction,
    machine_id: i64,
    scenario_ref: i64,
    metric: &str,
) -> Result<SeriesPoints, CollectorError> {
    let mut stmt = tx.prepare_cached(
        "SELECT r.commit_sha, r.id, d.median FROM data_points d JOIN runs r ON r.id = d.run_id
         WHERE r.machine_id = ?1 AND d.scenario_ref = ?2 AND d.metric = ?3 AND r.purpose = 'history'
         ORDER BY r.id",
    )?;
    let rows = stmt.query_map(params![machine_id, scenario_ref, metric], |r| {
        Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?)))
    })?;
    let mut out = HashMap::new();
    for row in rows {
        let (sha, point) = row?;
        out.insert(sha, point);
    }
    Ok(out)
}

pub(crate) fn samples_of(
    tx: &Transaction,
    run_id: i64,
    scenario_ref: i64,
    metric: &str,
) -> Result<Vec<f64>, CollectorError> {
    let mut stmt = tx.prepare_cached(
        "SELECT value FROM samples WHERE run_id = ?1 AND scenario_ref = ?2 AND metric = ?3 ORDER BY round",
    )?;
    let rows = stmt.query_map(params![run_id, scenario_ref, metric], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The series a run measured: (scenario_ref, metric, direction).
pub(crate) fn run_series(tx: &Transaction, run_id: i64) -> Result<Vec<(i64, String, Direction)>, CollectorError> {
    let mut stmt = tx.prepare_cached(
        "SELECT d.scenario_ref, d.metric, mt.direction FROM data_points d JOIN metrics mt ON mt.name = d.metric
         WHERE d.run_id = ?1 ORDER BY d.scenario_ref, d.metric",
    )?;
    let rows = stmt.query_map([run_id], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (scenario_ref, metric, direction) = row?;
        let direction = Direction::parse(&direction)
            .ok_or_else(|| CollectorError::Conflict(format!("metric {metric} has direction {direction:?}")))?;
        out.push((scenario_ref, metric, direction));
    }
    Ok(out)
}

/// A series' history points: commit sha to (its latest run, that run's median).
pub(crate) type SeriesPoints = HashMap<String, (i64, f64)>;

/// Series points read once per analysis: the history does not change while it runs. Keyed by
/// (machine, scenario, metric).
#[derive(Default)]
struct PointCache(HashMap<(i64, i64, String), SeriesPoints>);

impl PointCache {
    fn get(
        &mut self,
        tx: &Transaction,
        machine_id: i64,
        scenario_ref: i64,
        metric: &str,
    ) -> Result<&SeriesPoints, CollectorError> {
        let key = (machine_id, scenario_ref, metric.to_owned());
        if !self.0.contains_key(&key) {
            let points = series_points(tx, machine_id, scenario_ref, metric)?;
            self.0.insert(key.clone(), points);
        }
        Ok(&self.0[&key])
    }
}

/// The baseline run of a series at a commit (the nearest earlier point on its chain) and the
/// medians of up to 30 points before the commit, oldest first.
pub(crate) fn baseline_and_history(chain_before: &[String], points: &SeriesPoints) -> (Option<i64>, Vec<f64>) {
    let mut baseline = None;
    let mut history = Vec::new();
    for sha in chain_before {
        if let Some(&(run_id, median)) = points.get(sha) {
            baseline.get_or_insert(run_id);
            history.push(median);
            if history.len() == HISTORY_POINTS {
                break;
            }
        }
    }
    history.reverse();
    (baseline, history)
}

impl Database {
    /// Computes and stores the verdicts of a run, then the change points of its series over
    /// its branch's history, re-labelling verdicts at confirmed shifts. One transaction.
    pub fn analyze_run(&mut self, run_id: i64, options: &AnalysisOptions) -> Result<AnalysisReport, CollectorError> {
        self.analyze_runs(&[run_id], options)
    }

    /// [`Database::analyze_run`] for several runs at once, detecting each series' change
    /// points only once.
    pub fn analyze_runs(
        &mut self,
        run_ids: &[i64],
        options: &AnalysisOptions,
    ) -> Result<AnalysisReport, CollectorError> {
        let tx = self.conn.transaction()?;
        let graph = CommitGraph::load(&tx)?;
        let mut todo: BTreeSet<i64> = run_ids.iter().copied().collect();
        let mut loaded = std::collections::BTreeMap::new();
        for &run_id in run_ids {
            let run = load_run(&tx, run_id)?;
            todo.extend(affected_runs(&tx, &graph, run_id, &run)?);
            loaded.insert(run_id, run);
        }
        let mut report = AnalysisReport::default();
        let mut cache = PointCache::default();
        for &run_id in &todo {
            report.verdicts += compute_verdicts(&tx, &graph, &mut cache, run_id, &options.policy)?;
        }
        report.runs = todo.into_iter().collect();
        // Every run whose verdicts were recomputed lost its change-point labels, including
        // affected runs on other branches (a backfill on main moves a feature branch's
        // baseline): the change points of each of their (series, branch) are found again.
        let mut done = BTreeSet::new();
        for &run_id in &report.runs {
            let run = match loaded.remove(&run_id) {
                Some(run) => run,
                None => load_run(&tx, run_id)?,
            };
            for (scenario_ref, metric, direction) in run_series(&tx, run_id)? {
                let key = (run.machine_id, scenario_ref, metric.clone(), run.branch.clone());
                if !done.insert(key) {
                    continue;
                }
                let (found, relabelled) =
                    detect_change_points(&tx, &graph, &mut cache, &run, scenario_ref, &metric, direction, options)?;
                report.change_points += found;
                report.relabelled += relabelled;
            }
        }
        tx.commit()?;
        Ok(report)
    }
}

/// Later runs on the same machine whose baseline this run now is: their nearest earlier
/// point was older than this run's commit, or was another run of this commit.
fn affected_runs(tx: &Transaction, graph: &CommitGraph, run_id: i64, run: &RunKey) -> Result<Vec<i64>, CollectorError> {
    let Some(depth) = graph.depth(&run.commit_sha) else {
        return Ok(Vec::new());
    };
    let mut stmt = tx.prepare_cached(
        "SELECT DISTINCT r.id, r.commit_sha, r.branch FROM verdicts v
         JOIN runs r ON r.id = v.run_id JOIN commits c ON c.sha = r.commit_sha
         LEFT JOIN runs b ON b.id = v.baseline_run_id LEFT JOIN commits bc ON bc.sha = b.commit_sha
         WHERE r.machine_id = ?1 AND r.id <> ?2 AND r.purpose = 'history' AND c.depth > ?3
           AND (bc.depth IS NULL OR bc.depth < ?3 OR (b.commit_sha = ?4 AND b.id <> ?2))
           AND EXISTS (SELECT 1 FROM data_points d
                       WHERE d.run_id = ?2 AND d.scenario_ref = v.scenario_ref AND d.metric = v.metric)",
    )?;
    let rows = stmt.query_map(params![run.machine_id, run_id, depth, run.commit_sha], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, sha, branch) = row?;
        if graph
            .chain(&sha, branch.as_deref())
            .iter()
            .take_while(|c| graph.depth(c).is_some_and(|d| d >= depth))
            .any(|c| *c == run.commit_sha)
        {
            out.push(id);
        }
    }
    Ok(out)
}

/// Replaces a run's verdicts; returns how many were stored.
fn compute_verdicts(
    tx: &Transaction,
    graph: &CommitGraph,
    cache: &mut PointCache,
    run_id: i64,
    policy: &Policy,
) -> Result<usize, CollectorError> {
    let run = load_run(tx, run_id)?;
    let chain = graph.chain(&run.commit_sha, run.branch.as_deref());
    let before = chain.get(1..).unwrap_or_default();
    let mut comparisons: Vec<Comparison> = Vec::new();
    let mut keys = Vec::new();
    for (scenario_ref, metric, direction) in run_series(tx, run_id)? {
        let points = cache.get(tx, run.machine_id, scenario_ref, &metric)?;
        let (baseline, history) = baseline_and_history(before, points);
        let commit = samples_of(tx, run_id, scenario_ref, &metric)?;
        let base = baseline.map(|b| samples_of(tx, b, scenario_ref, &metric)).transpose()?;
        comparisons.push(if contract::metrics::is_counted(&metric) {
            compare_counted(&metric, base.as_deref(), &commit, &history, direction)
        } else {
            compare(base.as_deref(), &commit, &history, direction, policy)
        });
        keys.push((scenario_ref, metric, baseline));
    }
    let assessments = assess(comparisons, policy);
    tx.execute("DELETE FROM verdicts WHERE run_id = ?1", [run_id])?;
    let computed_at = now();
    for ((scenario_ref, metric, baseline), a) in keys.iter().zip(&assessments) {
        insert_verdict(tx, run_id, *scenario_ref, metric, *baseline, a, policy, computed_at)?;
    }
    Ok(assessments.len())
}

/// SQLite keeps infinities, but a reader of the schema expects a number or nothing.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

#[allow(clippy::too_many_arguments)]
fn insert_verdict(
    tx: &Transaction,
    run_id: i64,
    scenario_ref: i64,
    metric: &str,
    baseline: Option<i64>,
    a: &Assessment,
    policy: &Policy,
    computed_at: i64,
) -> Result<(), CollectorError> {
    let c = &a.comparison;
    let rel = c.relative;
    tx.prepare_cached(
        "INSERT INTO verdicts (run_id, scenario_ref, metric, baseline_run_id, commit_n, commit_median,
                               baseline_n, baseline_median, p_value, q_value, shift, shift_ci_lower, shift_ci_upper,
                               shift_ci_level, relative_change, relative_ci_lower, relative_ci_upper, noise_floor,
                               noise_floor_changes, threshold, alpha, gate_verdict, verdict, change_point_id,
                               statistics_version, computed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                 ?21, ?22, ?22, NULL, ?23, ?24)",
    )?
    .execute(params![
        run_id,
        scenario_ref,
        metric,
        baseline,
        c.commit_n as i64,
        c.commit_median,
        c.baseline.map(|b| b.n as i64),
        c.baseline.map(|b| b.median),
        c.p_value,
        a.q_value,
        c.shift.map(|s| s.estimate),
        c.shift.map(|s| s.ci_lower),
        c.shift.map(|s| s.ci_upper),
        c.shift.map(|s| s.ci_level),
        rel.and_then(|r| finite(r.estimate)),
        rel.and_then(|r| finite(r.ci_lower)),
        rel.and_then(|r| finite(r.ci_upper)),
        c.noise_floor.map(|f| f.threshold),
        c.noise_floor.map(|f| f.changes as i64),
        a.threshold,
        policy.alpha,
        a.verdict.as_str(),
        STATISTICS_VERSION,
        computed_at,
    ])?;
    Ok(())
}

/// Detects the change points of one series over the history of the run's branch (the chain
/// of the run's own commit when it has no branch), replaces the stored ones, and re-labels
/// the verdicts at those that are confirmed and larger than the practical floor. Returns
/// (change points stored, verdicts re-labelled).
#[allow(clippy::too_many_arguments)]
fn detect_change_points(
    tx: &Transaction,
    graph: &CommitGraph,
    cache: &mut PointCache,
    run: &RunKey,
    scenario_ref: i64,
    metric: &str,
    direction: Direction,
    options: &AnalysisOptions,
) -> Result<(usize, usize), CollectorError> {
    let branch_key = run.branch.clone().unwrap_or_default();
    let chain = match run.branch.as_deref().and_then(|b| graph.tip(b).map(|t| (b, t))) {
        Some((b, tip)) => graph.chain(tip, Some(b)),
        None => graph.chain(&run.commit_sha, None),
    };
    let points = cache.get(tx, run.machine_id, scenario_ref, metric)?;
    let ordered: Vec<(&str, f64)> = chain
        .iter()
        .rev()
        .filter_map(|sha| points.get(sha).map(|&(_, median)| (sha.as_str(), median)))
        .collect();
    let values: Vec<f64> = ordered.iter().map(|(_, m)| *m).collect();
    let found = change_points(&values, &options.change_points);

    let key = params![run.machine_id, scenario_ref, metric, branch_key];
    tx.execute(
        "UPDATE verdicts SET verdict = gate_verdict, change_point_id = NULL
         WHERE change_point_id IN (SELECT id FROM change_points
                                   WHERE machine_id = ?1 AND scenario_ref = ?2 AND metric = ?3 AND branch = ?4)",
        key,
    )?;
    tx.execute(
        "DELETE FROM change_points WHERE machine_id = ?1 AND scenario_ref = ?2 AND metric = ?3 AND branch = ?4",
        key,
    )?;
    let detected_at = now();
    let mut relabelled = 0;
    for cp in &found {
        let change = cp.forward_change();
        let kind = direction.judge(change > 0.0);
        tx.execute(
            "INSERT INTO change_points (machine_id, scenario_ref, metric, branch, commit_sha, previous_sha,
                                        points_before, points_after, mean_before, mean_after, stddev_before,
                                        stddev_after, relative_change, p_value, kind, detected_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                run.machine_id,
                scenario_ref,
                metric,
                branch_key,
                ordered[cp.index].0,
                ordered[cp.index - 1].0,
                cp.before.n as i64,
                cp.after.n as i64,
                cp.before.mean,
                cp.after.mean,
                cp.before.std,
                cp.after.std,
                change,
                cp.p_value,
                kind.as_str(),
                detected_at
            ],
        )?;
        let id = tx.last_insert_rowid();
        if change.abs() > options.policy.practical_floor {
            relabelled += tx.execute(
                "UPDATE verdicts SET verdict = ?1, change_point_id = ?2
                 WHERE scenario_ref = ?3 AND metric = ?4
                   AND run_id IN (SELECT id FROM runs WHERE machine_id = ?5 AND commit_sha = ?6 AND purpose = 'history')",
                params![kind.as_str(), id, scenario_ref, metric, run.machine_id, ordered[cp.index].0],
            )?;
        }
    }
    Ok((found.len(), relabelled))
}
