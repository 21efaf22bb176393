//! Calibration: A/A runs of one build, compared with each other exactly as a commit is
//! compared with its baseline. Every change they report is false, so their share is the
//! false-positive rate of the verdicts on this machine, per series.

use std::collections::HashMap;

use rusqlite::{Transaction, params};
use statrs::distribution::{Beta, ContinuousCDF};

use contract::Results;
use serde::Serialize;

use crate::analysis::{baseline_and_history, run_series, samples_of, series_points};
use crate::comparison::paired_rows;
use crate::graph::CommitGraph;
use crate::ingest::{IngestOutcome, store_record};
use crate::record::{Purpose, RunRecord, content_uuid};
use crate::statistics::STATISTICS_VERSION;
use crate::statistics::paired::{PairedOptions, STATISTICS_VERSION as PAIRED_STATISTICS_VERSION};
use crate::statistics::verdict::{Policy, Verdict, assess, compare, compare_counted};
use crate::{CollectorError, Database};

/// A calibration to record: its runs, stored already with purpose `calibration`, in the
/// order they ran.
#[derive(Debug, Clone)]
pub struct CalibrationRuns {
    pub uuid: String,
    pub run_ids: Vec<i64>,
    pub scenario_file: String,
    pub started_at: String,
    pub finished_at: String,
}

/// The outcome for one series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesOutcome {
    pub scenario_ref: i64,
    pub scenario_id: String,
    pub metric: String,
    pub comparisons: usize,
    pub false_regressions: usize,
    pub false_improvements: usize,
    pub noisy: usize,
    pub false_positive_rate: f64,
    pub false_positive_upper: f64,
    pub min_p_value: Option<f64>,
}

impl SeriesOutcome {
    fn new(scenario_ref: i64, scenario_id: String, metric: String) -> Self {
        Self {
            scenario_ref,
            scenario_id,
            metric,
            comparisons: 0,
            false_regressions: 0,
            false_improvements: 0,
            noisy: 0,
            false_positive_rate: 0.0,
            false_positive_upper: 1.0,
            min_p_value: None,
        }
    }

    /// Counts one comparison decided as `verdict`, with its p-value if it had one.
    fn record(&mut self, verdict: Verdict, p_value: Option<f64>) {
        self.comparisons += 1;
        match verdict {
            Verdict::Regression => self.false_regressions += 1,
            Verdict::Improvement => self.false_improvements += 1,
            Verdict::Noisy => self.noisy += 1,
            Verdict::Unchanged | Verdict::New => {}
        }
        if let Some(p) = p_value {
            self.min_p_value = Some(self.min_p_value.map_or(p, |m| m.min(p)));
        }
    }

    /// Sets the rate and its bound from `calls`, the comparisons that count against it.
    fn settle(&mut self, calls: usize) {
        self.false_positive_rate = if self.comparisons == 0 {
            0.0
        } else {
            calls as f64 / self.comparisons as f64
        };
        self.false_positive_upper = rate_upper_bound(calls, self.comparisons);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationReport {
    pub calibration_id: i64,
    /// Consecutive pairs of runs compared.
    pub comparisons: usize,
    /// Pairs in which at least one series was called a regression: a build that would have
    /// failed for nothing.
    pub failing_comparisons: usize,
    pub series: Vec<SeriesOutcome>,
}

/// A calibration as it is stored, from a measurement or from another database.
pub(crate) struct StoredCalibration {
    pub uuid: String,
    pub machine_id: i64,
    pub commit_sha: String,
    pub branch: Option<String>,
    pub scenario_file: String,
    pub repetitions: i64,
    pub comparisons: i64,
    pub failing_comparisons: i64,
    pub alpha: f64,
    pub practical_floor: f64,
    pub statistics_version: i64,
    pub started_at: String,
    pub finished_at: String,
    /// Its runs here, in the order they ran.
    pub run_ids: Vec<i64>,
    /// With `scenario_ref` of this database.
    pub series: Vec<SeriesOutcome>,
    pub kind: CalibrationKind,
    /// For an injected calibration, the cost injected into B.
    pub injected: Option<String>,
}

/// What a calibration measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalibrationKind {
    /// Runs of one build, each compared with the one before as a commit with its baseline:
    /// the false-positive rate of the history rule.
    History,
    /// Paired runs of two copies of one build (A B B A ...): the false-positive rate of the
    /// paired rule that per-commit runs with a kept build and `compare` use.
    Paired,
    /// Paired runs of the build (A) against the same code with a known cost injected (B):
    /// the share of comparisons that call the regression, per series (its detection rate),
    /// stored in the columns of false regressions.
    Injected,
    /// Runs of the build with a known cost, alternately without it (A) and with it (B), each
    /// compared with the one before as a commit with its baseline: the detection rate of the
    /// history rule and of the count rule (`calibrate --inject-build` without `--paired`),
    /// stored as for `Injected`.
    InjectedHistory,
}

impl CalibrationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::History => "history",
            Self::Paired => "paired",
            Self::Injected => "injected",
            Self::InjectedHistory => "injected-history",
        }
    }

    /// Whether the calibration measured detection of an injected cost rather than false
    /// positives.
    pub fn is_injected(self) -> bool {
        matches!(self, Self::Injected | Self::InjectedHistory)
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::History, Self::Paired, Self::Injected, Self::InjectedHistory]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Stores a calibration with its runs and series; returns its id.
pub(crate) fn insert_calibration(tx: &Transaction, c: &StoredCalibration) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO calibrations (calibration_uuid, machine_id, commit_sha, branch, scenario_file, repetitions,
                                   comparisons, failing_comparisons, alpha, practical_floor, statistics_version,
                                   started_at, finished_at, kind, injected)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            c.uuid,
            c.machine_id,
            c.commit_sha,
            c.branch,
            c.scenario_file,
            c.repetitions,
            c.comparisons,
            c.failing_comparisons,
            c.alpha,
            c.practical_floor,
            c.statistics_version,
            c.started_at,
            c.finished_at,
            c.kind.as_str(),
            c.injected
        ],
    )?;
    let id = tx.last_insert_rowid();
    for (position, run_id) in c.run_ids.iter().enumerate() {
        tx.execute(
            "INSERT INTO calibration_runs (calibration_id, position, run_id) VALUES (?1, ?2, ?3)",
            params![id, position as i64, run_id],
        )?;
    }
    for o in &c.series {
        tx.execute(
            "INSERT INTO calibration_series (calibration_id, scenario_ref, metric, comparisons, false_regressions,
                                             false_improvements, noisy, false_positive_rate, false_positive_upper,
                                             min_p_value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                id,
                o.scenario_ref,
                o.metric,
                o.comparisons as i64,
                o.false_regressions as i64,
                o.false_improvements as i64,
                o.noisy as i64,
                o.false_positive_rate,
                o.false_positive_upper,
                o.min_p_value
            ],
        )?;
    }
    Ok(id)
}

/// A stored calibration, with the totals of its series.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationSummary {
    pub id: i64,
    pub machine_id: i64,
    pub commit_sha: String,
    pub branch: Option<String>,
    pub scenario_file: String,
    pub repetitions: i64,
    /// Consecutive pairs of runs compared.
    pub comparisons: i64,
    /// Pairs in which some series was called a regression.
    pub failing_comparisons: i64,
    pub alpha: f64,
    pub practical_floor: f64,
    pub started_at: String,
    pub finished_at: String,
    pub series: i64,
    /// Series comparisons made, and how many of them called a (false) change; for an
    /// injected calibration, how many called the regression.
    pub series_comparisons: i64,
    pub false_positives: i64,
    pub kind: CalibrationKind,
    pub injected: Option<String>,
}

impl CalibrationSummary {
    /// False changes per series comparison, over every series.
    pub fn false_positive_rate(&self) -> f64 {
        if self.series_comparisons == 0 {
            0.0
        } else {
            self.false_positives as f64 / self.series_comparisons as f64
        }
    }

    /// One-sided 95% upper bound of [`Self::false_positive_rate`].
    pub fn false_positive_upper(&self) -> f64 {
        rate_upper_bound(self.false_positives as usize, self.series_comparisons as usize)
    }
}

/// One-sided 95% Clopper-Pearson lower bound of a rate observed as `k` of `n` (a detection
/// rate: it is at least this).
pub fn rate_lower_bound(k: usize, n: usize) -> f64 {
    1.0 - rate_upper_bound(n.saturating_sub(k), n)
}

/// One-sided 95% Clopper-Pearson upper bound of a rate observed as `k` of `n`.
pub fn rate_upper_bound(k: usize, n: usize) -> f64 {
    if n == 0 || k >= n {
        return 1.0;
    }
    Beta::new((k + 1) as f64, (n - k) as f64)
        .expect("positive shapes")
        .inverse_cdf(0.95)
}

impl Database {
    /// Every stored calibration, newest first.
    pub fn calibrations(&self) -> Result<Vec<CalibrationSummary>, CollectorError> {
        let mut stmt = self.conn.prepare(
            "SELECT c.id, c.machine_id, c.commit_sha, c.branch, c.scenario_file, c.repetitions, c.comparisons,
                    c.failing_comparisons, c.alpha, c.practical_floor, c.started_at, c.finished_at,
                    count(cs.metric), coalesce(sum(cs.comparisons), 0),
                    coalesce(sum(CASE WHEN c.kind IN ('injected', 'injected-history') THEN cs.false_regressions
                                      ELSE cs.false_regressions + cs.false_improvements END), 0),
                    c.kind, c.injected
             FROM calibrations c LEFT JOIN calibration_series cs ON cs.calibration_id = c.id
             GROUP BY c.id ORDER BY c.id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(CalibrationSummary {
                id: r.get(0)?,
                machine_id: r.get(1)?,
                commit_sha: r.get(2)?,
                branch: r.get(3)?,
                scenario_file: r.get(4)?,
                repetitions: r.get(5)?,
                comparisons: r.get(6)?,
                failing_comparisons: r.get(7)?,
                alpha: r.get(8)?,
                practical_floor: r.get(9)?,
                started_at: r.get(10)?,
                finished_at: r.get(11)?,
                series: r.get(12)?,
                series_comparisons: r.get(13)?,
                false_positives: r.get(14)?,
                kind: CalibrationKind::parse(&r.get::<_, String>(15)?).unwrap_or(CalibrationKind::History),
                injected: r.get(16)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Compares each calibration run with the one before it, series by series, with the
    /// policy and the noise floor the verdicts of that commit would use, and stores the
    /// false-positive rates. One transaction.
    pub fn record_calibration(
        &mut self,
        runs: &CalibrationRuns,
        policy: &Policy,
    ) -> Result<CalibrationReport, CollectorError> {
        self.record_history_rule(runs, None, policy)
    }

    /// Stores runs of a build with a known cost injected into some of them (`with_cost`, one
    /// flag per run, in the order they ran; the cost in words in `cost`), each compared with the
    /// one before it as [`Database::record_calibration`] compares them. A comparison from a
    /// run without the cost to one with it should call a regression, the other way an
    /// improvement: per series, the share that did is its detection rate (stored as the
    /// false regressions, the calls the wrong way as false improvements). Each comparison's
    /// history is the series' own, followed by every run of the calibration without the cost:
    /// what the series moves by when nothing changes, so that a calibration of 11 or more such
    /// runs measures the rules with the spread known (the count rule's, above all) even in a
    /// new database. A series whose history holds real changes has a wider floor than that.
    pub fn record_injected_calibration(
        &mut self,
        runs: &CalibrationRuns,
        with_cost: &[bool],
        cost: &str,
        policy: &Policy,
    ) -> Result<CalibrationReport, CollectorError> {
        if with_cost.len() != runs.run_ids.len() {
            return Err(CollectorError::Conflict(format!(
                "{} runs but {} flags saying which carried the cost",
                runs.run_ids.len(),
                with_cost.len()
            )));
        }
        if !with_cost.windows(2).any(|w| w[0] != w[1]) {
            return Err(CollectorError::Conflict(
                "an injected calibration needs a run with the cost next to one without it".into(),
            ));
        }
        self.record_history_rule(runs, Some((with_cost, cost)), policy)
    }

    fn record_history_rule(
        &mut self,
        runs: &CalibrationRuns,
        injected: Option<(&[bool], &str)>,
        policy: &Policy,
    ) -> Result<CalibrationReport, CollectorError> {
        if runs.run_ids.len() < 2 {
            return Err(CollectorError::Conflict(
                "a calibration needs at least two runs of the same build".into(),
            ));
        }
        let tx = self.conn.transaction()?;
        let graph = CommitGraph::load(&tx)?;
        let mut first: Option<(i64, String, Option<String>)> = None;
        for &id in &runs.run_ids {
            let (machine, sha, branch, purpose): (i64, String, Option<String>, String) = tx
                .query_row(
                    "SELECT machine_id, commit_sha, branch, purpose FROM runs WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .map_err(|_| CollectorError::NoSuchRun(id.to_string()))?;
            if purpose != "calibration" {
                return Err(CollectorError::Conflict(format!(
                    "run {id} is a {purpose} run, not a calibration run"
                )));
            }
            match &first {
                None => first = Some((machine, sha, branch)),
                Some((m, s, _)) if *m == machine && *s == sha => {}
                Some(_) => {
                    return Err(CollectorError::Conflict(
                        "calibration runs must share one machine and one commit".into(),
                    ));
                }
            }
        }
        let (machine_id, commit_sha, branch) = first.expect("at least two runs");
        // The floor a verdict at this commit would use: the history up to and including it.
        let chain = graph.chain(&commit_sha, branch.as_deref());

        let mut outcomes: HashMap<(i64, String), SeriesOutcome> = HashMap::new();
        let mut failing = 0;
        let mut comparisons_made = 0;
        for (i, pair) in runs.run_ids.windows(2).enumerate() {
            // What a comparison should find: nothing in an A/A calibration; where the cost
            // comes in, a regression, where it goes, an improvement. Runs on the same side
            // of an injected calibration are not compared.
            let expected = match injected {
                None => None,
                Some((with_cost, _)) if with_cost[i] == with_cost[i + 1] => continue,
                Some((with_cost, _)) => Some(if with_cost[i + 1] {
                    Verdict::Regression
                } else {
                    Verdict::Improvement
                }),
            };
            comparisons_made += 1;
            let series = run_series(&tx, pair[1])?;
            let mut comparisons = Vec::new();
            for (scenario_ref, metric, direction) in &series {
                let points = series_points(&tx, machine_id, *scenario_ref, metric)?;
                let (_, mut history) = baseline_and_history(&chain, &points);
                if let Some((with_cost, _)) = injected {
                    for (&run, _) in runs.run_ids.iter().zip(with_cost).filter(|(_, c)| !**c) {
                        history.extend(median_of(&tx, run, *scenario_ref, metric)?);
                    }
                }
                let a = samples_of(&tx, pair[0], *scenario_ref, metric)?;
                let b = samples_of(&tx, pair[1], *scenario_ref, metric)?;
                let base = (!a.is_empty()).then_some(a.as_slice());
                // Judged as their verdicts are, so that the rates describe the rule in use.
                comparisons.push(if contract::metrics::is_counted(metric) {
                    compare_counted(metric, base, &b, &history, *direction)
                } else {
                    compare(base, &b, &history, *direction, policy)
                });
            }
            let mut any_regression = false;
            for ((scenario_ref, metric, _), a) in series.iter().zip(assess(comparisons, policy)) {
                let scenario_id: String =
                    tx.query_row("SELECT scenario_id FROM scenarios WHERE id = ?1", [scenario_ref], |r| {
                        r.get(0)
                    })?;
                let o = outcomes
                    .entry((*scenario_ref, metric.clone()))
                    .or_insert_with(|| SeriesOutcome::new(*scenario_ref, scenario_id, metric.clone()));
                if a.verdict == Verdict::New {
                    continue;
                }
                // Recorded as seen from A to B: a found cost is a regression either way.
                let verdict = match (expected, a.verdict) {
                    (Some(Verdict::Improvement), Verdict::Improvement) => Verdict::Regression,
                    (Some(Verdict::Improvement), Verdict::Regression) => Verdict::Improvement,
                    (_, v) => v,
                };
                any_regression |= verdict == Verdict::Regression;
                o.record(verdict, a.comparison.p_value);
            }
            failing += usize::from(any_regression);
        }
        let mut series: Vec<SeriesOutcome> = outcomes.into_values().collect();
        for o in &mut series {
            o.settle(match injected {
                Some(_) => o.false_regressions,
                None => o.false_regressions + o.false_improvements,
            });
        }
        series.sort_by(|a, b| (&a.scenario_id, &a.metric).cmp(&(&b.scenario_id, &b.metric)));

        let calibration_id = insert_calibration(
            &tx,
            &StoredCalibration {
                uuid: runs.uuid.clone(),
                machine_id,
                commit_sha,
                branch,
                scenario_file: runs.scenario_file.clone(),
                repetitions: runs.run_ids.len() as i64,
                comparisons: comparisons_made as i64,
                failing_comparisons: failing as i64,
                alpha: policy.alpha,
                practical_floor: policy.practical_floor,
                statistics_version: STATISTICS_VERSION,
                started_at: runs.started_at.clone(),
                finished_at: runs.finished_at.clone(),
                run_ids: runs.run_ids.clone(),
                series: series.clone(),
                kind: if injected.is_some() {
                    CalibrationKind::InjectedHistory
                } else {
                    CalibrationKind::History
                },
                injected: injected.map(|(_, cost)| cost.to_owned()),
            },
        )?;
        tx.commit()?;
        Ok(CalibrationReport {
            calibration_id,
            comparisons: comparisons_made,
            failing_comparisons: failing,
            series,
        })
    }
}

/// The median of a run's data point of a series, if it has one.
fn median_of(tx: &Transaction, run_id: i64, scenario_ref: i64, metric: &str) -> Result<Option<f64>, CollectorError> {
    use rusqlite::OptionalExtension as _;
    Ok(tx
        .prepare_cached("SELECT median FROM data_points WHERE run_id = ?1 AND scenario_ref = ?2 AND metric = ?3")?
        .query_row(params![run_id, scenario_ref, metric], |r| r.get(0))
        .optional()?)
}

/// Paired calibration runs to record: each pair ran interleaved (A B B A ...), A always this
/// build, B a copy of it or the build with an injected cost.
pub struct PairedCalibration<'a, P> {
    pub pairs: &'a [[Results<P>; 2]],
    pub kind: CalibrationKind,
    /// The cost injected into B, in words (`Injected` only).
    pub injected: Option<String>,
    pub scenario_file: String,
    pub started_at: String,
    pub finished_at: String,
}

impl Database {
    /// Stores paired calibration runs (purpose `calibration`) and, per series, how many of
    /// the pairs called a regression, an improvement, or noise, by the paired rule
    /// (`comparison::paired_rows`). For an injected calibration the regressions are the
    /// detections. One transaction.
    pub fn record_paired_calibration<P: Serialize>(
        &mut self,
        c: &PairedCalibration<P>,
        options: &PairedOptions,
    ) -> Result<CalibrationReport, CollectorError> {
        if c.pairs.is_empty() {
            return Err(CollectorError::Conflict(
                "a paired calibration needs at least one pair".into(),
            ));
        }
        let tx = self.conn.transaction()?;
        let mut run_ids = Vec::new();
        let mut uuids = Vec::new();
        for pair in c.pairs {
            for side in pair {
                let mut record = RunRecord::from_results(side)?;
                record.purpose = Purpose::Calibration;
                uuids.push(record.uuid.clone());
                run_ids.push(match store_record(&tx, &record)? {
                    IngestOutcome::Stored { run_id } | IngestOutcome::AlreadyPresent { run_id } => run_id,
                });
            }
        }
        let (machine_id, commit_sha, branch): (i64, String, Option<String>) = tx.query_row(
            "SELECT machine_id, commit_sha, branch FROM runs WHERE id = ?1",
            [run_ids[0]],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let mut outcomes: HashMap<(String, String, String), SeriesOutcome> = HashMap::new();
        let mut failing = 0;
        for [a, b] in c.pairs {
            let rows = paired_rows(a, b, options);
            failing += usize::from(rows.iter().any(|r| r.is(Verdict::Regression)));
            for row in rows {
                let Some(verdict) = row.verdict else { continue };
                let key = (row.scenario_id.clone(), row.definition_hash.clone(), row.metric.clone());
                let o = outcomes
                    .entry(key)
                    .or_insert_with(|| SeriesOutcome::new(0, row.scenario_id.clone(), row.metric.clone()));
                o.record(verdict, row.p_value);
            }
        }
        let mut series = Vec::with_capacity(outcomes.len());
        for ((scenario_id, hash, _), mut o) in outcomes {
            o.scenario_ref = tx.query_row(
                "SELECT id FROM scenarios WHERE scenario_id = ?1 AND definition_hash = ?2",
                params![scenario_id, hash],
                |r| r.get(0),
            )?;
            // Detections are the regressions; false positives are changes either way.
            o.settle(match c.kind {
                CalibrationKind::Injected => o.false_regressions,
                _ => o.false_regressions + o.false_improvements,
            });
            series.push(o);
        }
        series.sort_by(|a, b| (&a.scenario_id, &a.metric).cmp(&(&b.scenario_id, &b.metric)));
        let parts: Vec<&[u8]> = uuids.iter().map(|u| u.as_bytes()).collect();
        let calibration_id = insert_calibration(
            &tx,
            &StoredCalibration {
                uuid: content_uuid(&parts),
                machine_id,
                commit_sha,
                branch,
                scenario_file: c.scenario_file.clone(),
                repetitions: c.pairs.len() as i64,
                comparisons: c.pairs.len() as i64,
                failing_comparisons: failing as i64,
                alpha: options.alpha,
                practical_floor: options.practical_floor,
                statistics_version: PAIRED_STATISTICS_VERSION,
                started_at: c.started_at.clone(),
                finished_at: c.finished_at.clone(),
                run_ids,
                series: series.clone(),
                kind: c.kind,
                injected: c.injected.clone(),
            },
        )?;
        tx.commit()?;
        Ok(CalibrationReport {
            calibration_id,
            comparisons: c.pairs.len(),
            failing_comparisons: failing,
            series,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bounds_match_clopper_pearson() {
        // scipy.stats.beta.ppf(0.95, 1, 10) == 0.2588655... ("rule of three" ~ 3/n).
        assert!((rate_upper_bound(0, 10) - 0.258_865_5).abs() < 1e-6);
        assert_eq!(rate_upper_bound(3, 3), 1.0);
        assert_eq!(rate_upper_bound(0, 0), 1.0);
    }
}
