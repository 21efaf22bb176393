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
use crate::statistics::noise_floor::noise_floor;
use crate::statistics::paired::PairedOptions;
use crate::statistics::verdict::{
    Assessment, BaselineStats, Comparison, Direction, Policy, RelativeShift, Verdict, assess, compare, compare_counted,
};
use crate::{CollectorError, Database};

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AnalysisOptions {
    pub policy: Policy,
    pub change_points: ChangePointOptions,
    /// Decide the paired comparison of each run asked for again from its raw samples (by the
    /// paired rule as it is now) before its verdicts are computed, instead of reading back
    /// the rows stored when it was ingested: what `check` asks for with `--recompute`, and
    /// when the run's verdicts or its pairing were decided by older statistics.
    pub redecide_pairs: bool,
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

/// The series a run measured that are judged: (scenario_ref, metric, direction).
pub(crate) fn run_series(tx: &Transaction, run_id: i64) -> Result<Vec<(i64, String, Direction)>, CollectorError> {
    Ok(all_run_series(tx, run_id)?
        .into_iter()
        .filter(|s| s.3)
        .map(|(scenario_ref, metric, direction, _)| (scenario_ref, metric, direction))
        .collect())
}

/// The series a run measured that no rule judges: (scenario_ref, metric).
fn unjudged_series(tx: &Transaction, run_id: i64) -> Result<Vec<(i64, String)>, CollectorError> {
    Ok(all_run_series(tx, run_id)?
        .into_iter()
        .filter(|s| !s.3)
        .map(|(scenario_ref, metric, ..)| (scenario_ref, metric))
        .collect())
}

/// Every series a run measured: (scenario_ref, metric, direction, judged).
fn all_run_series(tx: &Transaction, run_id: i64) -> Result<Vec<(i64, String, Direction, bool)>, CollectorError> {
    let mut stmt = tx.prepare_cached(
        "SELECT d.scenario_ref, d.metric, mt.direction, s.fixed_duration
         FROM data_points d JOIN metrics mt ON mt.name = d.metric JOIN scenarios s ON s.id = d.scenario_ref
         WHERE d.run_id = ?1 ORDER BY d.scenario_ref, d.metric",
    )?;
    let rows = stmt.query_map([run_id], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, bool>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (scenario_ref, metric, direction, fixed_duration) = row?;
        // Shown on the site, never judged: no verdict, no change point, no calibration.
        let judged = contract::metrics::not_judged(&metric, fixed_duration).is_none();
        let direction = Direction::parse(&direction)
            .ok_or_else(|| CollectorError::Conflict(format!("metric {metric} has direction {direction:?}")))?;
        out.push((scenario_ref, metric, direction, judged));
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
        if options.redecide_pairs {
            for &run_id in run_ids {
                crate::comparison::redecide_baseline_pair(&tx, run_id, &PairedOptions::default())?;
            }
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
            // Change points an older rule found on a series no rule judges now go (their
            // verdicts went with the run's, above).
            for (scenario_ref, metric) in unjudged_series(&tx, run_id)? {
                tx.execute(
                    "UPDATE verdicts SET verdict = gate_verdict, change_point_id = NULL
                     WHERE change_point_id IN (SELECT id FROM change_points
                                               WHERE machine_id = ?1 AND scenario_ref = ?2 AND metric = ?3)",
                    params![run.machine_id, scenario_ref, metric],
                )?;
                tx.execute(
                    "DELETE FROM change_points WHERE machine_id = ?1 AND scenario_ref = ?2 AND metric = ?3",
                    params![run.machine_id, scenario_ref, metric],
                )?;
            }
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
    let mut paired = paired_verdicts(tx, run_id)?;
    let mut comparisons: Vec<Comparison> = Vec::new();
    let mut keys = Vec::new();
    let mut decided = Vec::new();
    for (scenario_ref, metric, direction) in run_series(tx, run_id)? {
        let points = cache.get(tx, run.machine_id, scenario_ref, &metric)?;
        let (baseline, history) = baseline_and_history(before, points);
        let counted = contract::metrics::is_counted(&metric);
        // A metric the paired rounds decided keeps that verdict; one they could not (a zero
        // sample, too few rounds) and the count series are judged against the history.
        if !counted && let Some(p) = paired.remove(&(scenario_ref, metric.clone())) {
            decided.push((scenario_ref, metric, p.paired_with(direction, &history)));
            continue;
        }
        let commit = samples_of(tx, run_id, scenario_ref, &metric)?;
        let base = baseline.map(|b| samples_of(tx, b, scenario_ref, &metric)).transpose()?;
        comparisons.push(if counted {
            compare_counted(&metric, base.as_deref(), &commit, &history, direction)
        } else {
            compare(base.as_deref(), &commit, &history, direction, policy)
        });
        keys.push((
            scenario_ref,
            metric,
            baseline,
            if counted { Method::Count } else { Method::History },
        ));
    }
    let assessments = assess(comparisons, policy);
    tx.execute("DELETE FROM verdicts WHERE run_id = ?1", [run_id])?;
    let computed_at = now();
    let stored = assessments.len() + decided.len();
    for ((scenario_ref, metric, baseline, method), a) in keys.iter().zip(&assessments) {
        let how = How {
            baseline: *baseline,
            method: *method,
            alpha: policy.alpha,
        };
        insert_verdict(tx, run_id, *scenario_ref, metric, &how, a, computed_at)?;
    }
    for (scenario_ref, metric, (how, a)) in &decided {
        insert_verdict(tx, run_id, *scenario_ref, metric, how, a, computed_at)?;
    }
    Ok(stored)
}

/// Which rule decided a verdict (`verdicts.method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The run's samples against the previous point's (`statistics::verdict`).
    History,
    /// The run's rounds paired with a baseline build's in the same run (`statistics::paired`).
    Paired,
    /// A count-round value against the previous point's (`statistics::counts`).
    Count,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::History => "history",
            Self::Paired => "paired",
            Self::Count => "count",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::History, Self::Paired, Self::Count]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// What a verdict was measured against, and by which rule.
struct How {
    baseline: Option<i64>,
    method: Method,
    alpha: f64,
}

/// A row of the run's paired comparison with a baseline build.
struct PairedRow {
    baseline_run: i64,
    rounds: i64,
    median_a: f64,
    median_b: f64,
    ratio: f64,
    ci: (f64, f64),
    p_value: Option<f64>,
    verdict: Verdict,
}

impl PairedRow {
    /// The row as a verdict: the change is the ratio's, the threshold the practical floor.
    /// The history's noise floor is kept for readers; the paired rule does not need it, as
    /// the baseline ran beside the commit.
    fn paired_with(self, direction: Direction, history: &[f64]) -> (How, Assessment) {
        let options = PairedOptions::default();
        let comparison = Comparison {
            direction,
            commit_n: self.rounds as usize,
            commit_median: self.median_b,
            baseline: Some(BaselineStats {
                n: self.rounds as usize,
                median: self.median_a,
            }),
            p_value: self.p_value,
            shift: None,
            relative: Some(RelativeShift {
                estimate: self.ratio - 1.0,
                ci_lower: self.ci.0 - 1.0,
                ci_upper: self.ci.1 - 1.0,
            }),
            noise_floor: noise_floor(history),
            count_spread: None,
        };
        let how = How {
            baseline: Some(self.baseline_run),
            method: Method::Paired,
            alpha: options.alpha,
        };
        let assessment = Assessment {
            comparison,
            q_value: self.p_value,
            threshold: options.practical_floor,
            verdict: self.verdict,
        };
        (how, assessment)
    }
}

/// The decided rows of the run's paired comparison with a baseline build, if it has one.
fn paired_verdicts(tx: &Transaction, run_id: i64) -> Result<HashMap<(i64, String), PairedRow>, CollectorError> {
    let mut stmt = tx.prepare_cached(
        "SELECT cr.scenario_ref, cr.metric, c.run_a, cr.rounds, da.median, db.median, cr.ratio, cr.ci_lower,
                cr.ci_upper, cr.p_value, cr.verdict
         FROM comparisons c JOIN comparison_results cr ON cr.comparison_id = c.id
         JOIN data_points da ON da.run_id = c.run_a AND da.scenario_ref = cr.scenario_ref AND da.metric = cr.metric
         JOIN data_points db ON db.run_id = c.run_b AND db.scenario_ref = cr.scenario_ref AND db.metric = cr.metric
         WHERE c.run_b = ?1 AND c.kind = 'baseline' AND cr.ratio IS NOT NULL AND cr.ci_lower IS NOT NULL",
    )?;
    let rows = stmt.query_map([run_id], |r| {
        Ok((
            (r.get::<_, i64>(0)?, r.get::<_, String>(1)?),
            r.get::<_, String>(10)?,
            PairedRow {
                baseline_run: r.get(2)?,
                rounds: r.get(3)?,
                median_a: r.get(4)?,
                median_b: r.get(5)?,
                ratio: r.get(6)?,
                ci: (r.get(7)?, r.get(8)?),
                p_value: r.get(9)?,
                verdict: Verdict::Noisy,
            },
        ))
    })?;
    let mut out = HashMap::new();
    for row in rows {
        let (key, verdict, mut row) = row?;
        // `incomparable` rows have no ratio and are not read.
        if let Some(v) = Verdict::parse(&verdict) {
            row.verdict = v;
            out.insert(key, row);
        }
    }
    Ok(out)
}

/// SQLite keeps infinities, but a reader of the schema expects a number or nothing.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn insert_verdict(
    tx: &Transaction,
    run_id: i64,
    scenario_ref: i64,
    metric: &str,
    how: &How,
    a: &Assessment,
    computed_at: i64,
) -> Result<(), CollectorError> {
    let c = &a.comparison;
    let rel = c.relative;
    tx.prepare_cached(
        "INSERT INTO verdicts (run_id, scenario_ref, metric, baseline_run_id, commit_n, commit_median,
                               baseline_n, baseline_median, p_value, q_value, shift, shift_ci_lower, shift_ci_upper,
                               shift_ci_level, relative_change, relative_ci_lower, relative_ci_upper, noise_floor,
                               noise_floor_changes, threshold, alpha, gate_verdict, verdict, change_point_id,
                               statistics_version, computed_at, method)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                 ?21, ?22, ?22, NULL, ?23, ?24, ?25)",
    )?
    .execute(params![
        run_id,
        scenario_ref,
        metric,
        how.baseline,
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
        how.alpha,
        a.verdict.as_str(),
        STATISTICS_VERSION,
        computed_at,
        how.method.as_str(),
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
