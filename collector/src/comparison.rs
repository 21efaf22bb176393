//! Comparisons: two builds run interleaved (A B B A ...) on one machine, and the paired
//! verdict of every metric they share. A branch comparison (`compare`) is stored as two runs
//! with purpose `comparison`, which never enter a series. A per-commit run paired with a
//! baseline build (`run --baseline`) is stored as a history run (B) and a `comparison` run of
//! the baseline (A): its rows decide the history run's verdicts (`analysis.rs`).

use std::collections::HashMap;

use contract::Results;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::ingest::{IngestOutcome, store_record};
use crate::query::direction_at;
use crate::record::{Purpose, RunRecord, content_uuid};
use crate::statistics::counts::{COUNT_ABSOLUTE_FLOOR, count_verdict, unknown_spread};
use crate::statistics::fdr::benjamini_hochberg;
use crate::statistics::paired::{PairedError, PairedOptions, STATISTICS_VERSION, compare_paired, paired_verdict};
use crate::statistics::verdict::{Direction, Verdict};
use crate::{CollectorError, Database};

/// The paired verdict of one metric of one scenario: B against A.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonRow {
    pub scenario_id: String,
    pub definition_hash: String,
    pub metric: String,
    pub unit: String,
    pub direction: Direction,
    pub rounds: usize,
    pub median_a: f64,
    pub median_b: f64,
    /// Geometric mean of the per-round ratios B / A, with its CI; absent when the metric
    /// could not be compared (see `note`).
    pub ratio: Option<f64>,
    pub ci_lower: Option<f64>,
    pub ci_upper: Option<f64>,
    pub ci_level: Option<f64>,
    /// The one-sided p-value in the direction of the change, adjusted (Benjamini-Hochberg)
    /// across the comparison's metrics (`paired.rs`).
    pub p_value: Option<f64>,
    /// `None` when the metric could not be compared (see `note`); never `New`.
    pub verdict: Option<Verdict>,
    pub note: Option<String>,
}

/// How an incomparable row's verdict is stored and shown.
pub const INCOMPARABLE: &str = "incomparable";

impl ComparisonRow {
    /// Relative change of B against A (0.03 is 3% larger).
    pub fn change(&self) -> Option<f64> {
        self.ratio.map(|r| r - 1.0)
    }

    /// The verdict as stored and shown: `regression` ... or `incomparable`.
    pub fn verdict_name(&self) -> &'static str {
        self.verdict.map_or(INCOMPARABLE, Verdict::as_str)
    }

    pub fn is(&self, verdict: Verdict) -> bool {
        self.verdict == Some(verdict)
    }

    /// A series no rule judges (`contract::metrics::not_judged`), apart from the rows that had
    /// no ratio to judge.
    pub fn not_judged(&self) -> bool {
        self.verdict.is_none()
            && self
                .note
                .as_deref()
                .is_some_and(|n| contract::metrics::NOT_JUDGED.contains(&n))
    }
}

/// A stored comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonSummary {
    pub id: i64,
    pub uuid: String,
    pub machine_id: i64,
    pub label_a: String,
    pub label_b: String,
    pub commit_a: String,
    pub commit_b: String,
    pub scenario_file: String,
    pub started_at: String,
    pub finished_at: String,
    pub regressions: usize,
    pub improvements: usize,
    /// The paired statistics that decided it (`paired::STATISTICS_VERSION` of its time).
    pub statistics_version: i64,
    pub kind: ComparisonKind,
}

/// What a comparison was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComparisonKind {
    /// Two revisions compared on demand (`compare`).
    Branch,
    /// A per-commit run (B, a history run) paired with the previous benchmarked commit's
    /// binaries (A).
    Baseline,
}

impl ComparisonKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Branch => "branch",
            Self::Baseline => "baseline",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Branch, Self::Baseline].into_iter().find(|k| k.as_str() == s)
    }
}

fn median(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

pub use contract::metrics::{FOLLOWS_THROUGHPUT, PREEMPTIONS, SHARE_OF_A_CORE};

/// Paired verdicts of every metric that A and B measured for the same scenario definition.
/// The one-sided p-values that B is worse are adjusted across all of them (Benjamini-Hochberg)
/// as one family, those that B is better as another; a row keeps the adjusted p-value of the
/// direction its ratio points to.
pub fn paired_rows<P>(a: &Results<P>, b: &Results<P>, options: &PairedOptions) -> Vec<ComparisonRow> {
    let mut rows = Vec::new();
    let mut tested: Vec<(usize, &[f64], &[f64])> = Vec::new();
    for sa in &a.scenarios {
        let Some(sb) = b
            .scenarios
            .iter()
            .find(|s| s.id == sa.id && s.definition_hash == sa.definition_hash)
        else {
            continue;
        };
        for (name, ma) in &sa.metrics {
            let Some(mb) = sb.metrics.get(name) else { continue };
            let direction = ma.direction;
            let mut row = ComparisonRow {
                scenario_id: sa.id.clone(),
                definition_hash: sa.definition_hash.clone(),
                metric: name.clone(),
                unit: ma.unit.clone(),
                direction,
                rounds: ma.samples.len().min(mb.samples.len()),
                median_a: median(&ma.samples),
                median_b: median(&mb.samples),
                ratio: None,
                ci_lower: None,
                ci_upper: None,
                ci_level: None,
                p_value: None,
                verdict: None,
                note: None,
            };
            if contract::metrics::is_counted(name) {
                count_row(&mut row);
                rows.push(row);
                continue;
            }
            if let Some(why) = contract::metrics::not_judged(name, sa.fixed_duration) {
                // Left out of the paired verdicts and of their family, as the history rule
                // leaves it out of its verdicts.
                row.note = Some(why.into());
                rows.push(row);
                continue;
            }
            tested.push((rows.len(), ma.samples.as_slice(), mb.samples.as_slice()));
            rows.push(row);
        }
    }
    decide(&mut rows, &tested, options);
    rows
}

/// Smallest shift of a latency (a metric in milliseconds) a paired verdict calls a change:
/// under half a millisecond, a probe's tail on a shared machine moves with the scheduler's
/// wake-ups, not with the code. An A/A comparison of the smoke set called a 0.3 ms rise of
/// the server ping's p99 (0.33 to 0.64 ms, in 14 of 16 pairs) a regression
/// (`docs/statistics.md`). Like the counts' absolute floor, it is a practical bound, not a
/// statistical one.
pub const LATENCY_ABSOLUTE_FLOOR_MS: f64 = 0.5;

/// Holds a latency's verdict to [`LATENCY_ABSOLUTE_FLOOR_MS`]: unchanged when the whole
/// interval of its shift lies within the floor, noisy when a change was called for a shift
/// (of the medians) under it.
fn latency_floor(row: &mut ComparisonRow) {
    let (Some(verdict), Some(lo), Some(hi)) = (row.verdict, row.ci_lower, row.ci_upper) else {
        return;
    };
    if row.unit != "ms" {
        return;
    }
    let shift = |ratio: f64| ((ratio - 1.0) * row.median_a).abs();
    if shift(lo) <= LATENCY_ABSOLUTE_FLOOR_MS && shift(hi) <= LATENCY_ABSOLUTE_FLOOR_MS {
        row.verdict = Some(Verdict::Unchanged);
    } else if verdict.is_change() && (row.median_b - row.median_a).abs() < LATENCY_ABSOLUTE_FLOOR_MS {
        row.verdict = Some(Verdict::Noisy);
    }
}

/// Tests each of `tested` (a row's index with its A and B samples, round by round) by the
/// paired rule: its ratio, interval and verdict, its one-sided p-value adjusted by
/// Benjamini-Hochberg across all of them (B worse one family, B better another; a row keeps
/// the adjusted p-value of the direction its ratio points to). A row the rule cannot test
/// (a zero, too few rounds) gets a note instead.
fn decide(rows: &mut [ComparisonRow], tested: &[(usize, &[f64], &[f64])], options: &PairedOptions) {
    // (row, direction, p worse, p better) of every tested row.
    let mut tests: Vec<(usize, Direction, f64, f64)> = Vec::new();
    for &(i, a, b) in tested {
        let row = &mut rows[i];
        let direction = row.direction;
        match compare_paired(a, b, direction, options) {
            Ok(c) => {
                row.ratio = Some(c.ratio);
                row.ci_lower = Some(c.ci_lower);
                row.ci_upper = Some(c.ci_upper);
                row.ci_level = Some(c.ci_level);
                row.verdict = Some(c.verdict);
                row.note = None;
                if let Some(t) = c.test {
                    tests.push((i, direction, t.p_worse(direction), t.p_better(direction)));
                }
            }
            Err(e @ PairedError::NotPositive { .. }) => {
                row.note = Some(format!("{e} (a metric that can be zero has no ratio)"));
            }
            Err(e) => row.note = Some(e.to_string()),
        }
    }
    let worse = benjamini_hochberg(&tests.iter().map(|t| t.2).collect::<Vec<_>>());
    let better = benjamini_hochberg(&tests.iter().map(|t| t.3).collect::<Vec<_>>());
    for (((i, direction, _, _), q_worse), q_better) in tests.iter().zip(worse).zip(better) {
        let row = &mut rows[*i];
        let ratio = row.ratio.unwrap_or(1.0);
        let points_worse = match direction {
            Direction::Lower => ratio > 1.0,
            Direction::Higher => ratio < 1.0,
        };
        row.p_value = Some(if points_worse { q_worse } else { q_better });
        row.verdict = Some(paired_verdict(
            ratio,
            row.ci_lower.unwrap_or(0.0),
            row.ci_upper.unwrap_or(f64::MAX),
            Some(q_worse),
            Some(q_better),
            *direction,
            options,
        ));
    }
    for &(i, _, _) in tested {
        latency_floor(&mut rows[i]);
    }
}

/// A count-round metric's row: one value per build, no test; B changed when the ratio moves
/// beyond the largest spread counts show between identical builds (`counts`).
fn count_row(row: &mut ComparisonRow) {
    if !(row.median_a > 0.0 && row.median_b.is_finite()) {
        row.note = Some(format!("A counted {}; a ratio needs a positive count", row.median_a));
        return;
    }
    let ratio = row.median_b / row.median_a;
    let unknown = unknown_spread(&row.metric);
    let (threshold, verdict) = count_verdict(row.median_a, row.median_b, None, unknown, row.direction);
    // No interval: one value a side says nothing of its spread.
    row.ratio = Some(ratio);
    row.verdict = Some(verdict);
    row.note = Some(format!(
        "counted once per build under Valgrind: a change beyond ±{}% and {} instructions is called",
        threshold * 100.0,
        COUNT_ABSOLUTE_FLOOR
    ));
}

/// What recording a comparison stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredComparison {
    pub id: i64,
    pub rows: Vec<ComparisonRow>,
}

impl Database {
    /// Stores both runs of an interleaved comparison and their paired verdicts, in one
    /// transaction. Recording the same pair of runs again changes nothing.
    pub fn record_comparison<P: Serialize>(
        &mut self,
        a: &Results<P>,
        b: &Results<P>,
        labels: [&str; 2],
        options: &PairedOptions,
    ) -> Result<StoredComparison, CollectorError> {
        let tx = self.conn.transaction()?;
        let stored = store_pair(
            &tx,
            [a, b],
            Purpose::Comparison,
            labels,
            ComparisonKind::Branch,
            options,
        )?;
        tx.commit()?;
        Ok(stored)
    }

    /// Stores a per-commit run paired with a baseline build, in one transaction: the commit's
    /// results `b` as a history run (the series keep the commit's own values), the baseline's
    /// `a` as a comparison run, and their paired verdicts as a `baseline` comparison, from
    /// which the history run's verdicts are decided. Returns the history run's id with the
    /// comparison. Storing the same pair again changes nothing.
    pub fn record_paired_run<P: Serialize>(
        &mut self,
        a: &Results<P>,
        b: &Results<P>,
        labels: [&str; 2],
        options: &PairedOptions,
    ) -> Result<(i64, StoredComparison), CollectorError> {
        let tx = self.conn.transaction()?;
        let stored = store_pair(&tx, [a, b], Purpose::History, labels, ComparisonKind::Baseline, options)?;
        let run_b: i64 = tx.query_row("SELECT run_b FROM comparisons WHERE id = ?1", [stored.id], |r| r.get(0))?;
        tx.commit()?;
        Ok((run_b, stored))
    }
}

/// Stores both runs of a pair (A as a comparison run, B with `purpose_b`) and their paired
/// verdicts. A pair stored already is left as it is.
fn store_pair<P: Serialize>(
    tx: &Transaction,
    [a, b]: [&Results<P>; 2],
    purpose_b: Purpose,
    labels: [&str; 2],
    kind: ComparisonKind,
    options: &PairedOptions,
) -> Result<StoredComparison, CollectorError> {
    let rows = paired_rows(a, b, options);
    let uuid = content_uuid(&[a.run.id.as_bytes(), b.run.id.as_bytes()]);
    if let Some(id) = tx
        .query_row("SELECT id FROM comparisons WHERE uuid = ?1", [&uuid], |r| r.get(0))
        .optional()?
    {
        return Ok(StoredComparison { id, rows });
    }
    let mut run_ids = [0i64; 2];
    for ((slot, results), purpose) in run_ids.iter_mut().zip([a, b]).zip([Purpose::Comparison, purpose_b]) {
        let mut record = RunRecord::from_results(results)?;
        record.purpose = purpose;
        *slot = match store_record(tx, &record)? {
            IngestOutcome::Stored { run_id } | IngestOutcome::AlreadyPresent { run_id } => run_id,
        };
    }
    let machine_id: i64 = tx.query_row("SELECT machine_id FROM runs WHERE id = ?1", [run_ids[0]], |r| r.get(0))?;
    tx.execute(
        "INSERT INTO comparisons (uuid, machine_id, run_a, run_b, label_a, label_b, scenario_file, started_at,
                                  finished_at, statistics_version, kind)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            uuid,
            machine_id,
            run_ids[0],
            run_ids[1],
            labels[0],
            labels[1],
            a.run.scenario_file,
            a.run.started_at,
            b.run.finished_at,
            STATISTICS_VERSION,
            kind.as_str()
        ],
    )?;
    let id = tx.last_insert_rowid();
    insert_rows(tx, id, &rows)?;
    Ok(StoredComparison { id, rows })
}

impl Database {
    /// Every stored comparison, newest first.
    pub fn comparisons(&self) -> Result<Vec<ComparisonSummary>, CollectorError> {
        let mut stmt = self.conn.prepare(
            "SELECT c.id, c.uuid, c.machine_id, c.label_a, c.label_b, ra.commit_sha, rb.commit_sha, c.scenario_file,
                    c.started_at, c.finished_at,
                    (SELECT count(*) FROM comparison_results WHERE comparison_id = c.id AND verdict = 'regression'),
                    (SELECT count(*) FROM comparison_results WHERE comparison_id = c.id AND verdict = 'improvement'),
                    c.statistics_version, c.kind
             FROM comparisons c JOIN runs ra ON ra.id = c.run_a JOIN runs rb ON rb.id = c.run_b
             ORDER BY c.id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ComparisonSummary {
                id: r.get(0)?,
                uuid: r.get(1)?,
                machine_id: r.get(2)?,
                label_a: r.get(3)?,
                label_b: r.get(4)?,
                commit_a: r.get(5)?,
                commit_b: r.get(6)?,
                scenario_file: r.get(7)?,
                started_at: r.get(8)?,
                finished_at: r.get(9)?,
                regressions: r.get::<_, i64>(10)? as usize,
                improvements: r.get::<_, i64>(11)? as usize,
                statistics_version: r.get(12)?,
                kind: ComparisonKind::parse(&r.get::<_, String>(13)?).unwrap_or(ComparisonKind::Branch),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The rows of one comparison, largest change first.
    pub fn comparison_rows(&self, comparison_id: i64) -> Result<Vec<ComparisonRow>, CollectorError> {
        let mut rows = stored_rows(&self.conn, comparison_id)?;
        sort_by_effect(&mut rows);
        Ok(rows)
    }
}

/// The stored rows of a comparison, with the medians of its two runs.
fn stored_rows(conn: &Connection, comparison_id: i64) -> Result<Vec<ComparisonRow>, CollectorError> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.scenario_id, s.definition_hash, cr.metric, m.unit, m.direction, cr.rounds,
                (SELECT median FROM data_points WHERE run_id = c.run_a AND scenario_ref = cr.scenario_ref AND metric = cr.metric),
                (SELECT median FROM data_points WHERE run_id = c.run_b AND scenario_ref = cr.scenario_ref AND metric = cr.metric),
                cr.ratio, cr.ci_lower, cr.ci_upper, cr.ci_level, cr.p_value, cr.verdict, cr.note
         FROM comparison_results cr
         JOIN comparisons c ON c.id = cr.comparison_id
         JOIN scenarios s ON s.id = cr.scenario_ref
         JOIN metrics m ON m.name = cr.metric
         WHERE cr.comparison_id = ?1",
    )?;
    let rows = stmt
        .query_map([comparison_id], |r| {
            let verdict: String = r.get(13)?;
            Ok(ComparisonRow {
                scenario_id: r.get(0)?,
                definition_hash: r.get(1)?,
                metric: r.get(2)?,
                unit: r.get(3)?,
                direction: direction_at(r, 4)?,
                rounds: r.get::<_, i64>(5)? as usize,
                median_a: r.get::<_, Option<f64>>(6)?.unwrap_or(f64::NAN),
                median_b: r.get::<_, Option<f64>>(7)?.unwrap_or(f64::NAN),
                ratio: r.get(8)?,
                ci_lower: r.get(9)?,
                ci_upper: r.get(10)?,
                ci_level: r.get(11)?,
                p_value: r.get(12)?,
                // The schema allows the verdicts and `incomparable` only.
                verdict: Verdict::parse(&verdict),
                note: r.get(14)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Regressions first, then improvements, then the rest; within each, the largest change
/// first.
pub fn sort_by_effect(rows: &mut [ComparisonRow]) {
    let rank = |v: Option<Verdict>| match v {
        Some(Verdict::Regression) => 0,
        Some(Verdict::Improvement) => 1,
        Some(Verdict::Noisy) => 2,
        Some(Verdict::Unchanged) => 3,
        _ => 4,
    };
    rows.sort_by(|x, y| {
        let size = |r: &ComparisonRow| r.change().map_or(0.0, f64::abs);
        rank(x.verdict).cmp(&rank(y.verdict)).then(size(y).total_cmp(&size(x)))
    });
}

/// Decides the tested rows of run B's paired comparison with its baseline build again, from
/// the raw samples of both runs, by the paired rule as it is now, and stores the result: an
/// analysis of the run (`check --recompute`, or one after a change of the statistics)
/// re-decides its paired verdicts instead of reading back what an older rule decided. The
/// rows the rule did not test (counts, totals of fixed-duration rounds, zeros) stay as
/// stored, and so does the family of the Benjamini-Hochberg adjustment: the rows tested.
pub(crate) fn redecide_baseline_pair(
    tx: &Transaction,
    run_b: i64,
    options: &PairedOptions,
) -> Result<(), CollectorError> {
    let id: Option<i64> = tx
        .query_row(
            "SELECT id FROM comparisons WHERE run_b = ?1 AND kind = 'baseline'",
            [run_b],
            |r| r.get(0),
        )
        .optional()?;
    match id {
        Some(id) => redecide(tx, id, options),
        None => Ok(()),
    }
}

impl Database {
    /// The paired statistics version that decided run B's pairing with a baseline build, if
    /// the run has one: `check` decides the pairing again when it is not the current one.
    pub fn pairing_statistics_version(&self, run_b: i64) -> Result<Option<i64>, CollectorError> {
        Ok(self
            .conn
            .query_row(
                "SELECT statistics_version FROM comparisons WHERE run_b = ?1 AND kind = 'baseline'",
                [run_b],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Decides a stored comparison (a branch comparison or a run's pairing) again from its
    /// two runs' raw samples by the paired rule as it is now, as `check --recompute` does
    /// for a run's pairing; returns its decided rows (scenario, metric, verdict), regressions
    /// first.
    pub fn redecide_comparison(
        &mut self,
        comparison_id: i64,
    ) -> Result<Vec<(String, String, Verdict)>, CollectorError> {
        let tx = self.conn.transaction()?;
        redecide(&tx, comparison_id, &PairedOptions::default())?;
        let mut rows: Vec<(String, String, Verdict)> = {
            let mut stmt = tx.prepare(
                "SELECT s.scenario_id, cr.metric, cr.verdict FROM comparison_results cr
                 JOIN scenarios s ON s.id = cr.scenario_ref WHERE cr.comparison_id = ?1",
            )?;
            let all: Vec<(String, String, String)> = stmt
                .query_map([comparison_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            all.into_iter()
                .filter_map(|(s, m, v)| Verdict::parse(&v).map(|v| (s, m, v)))
                .collect()
        };
        tx.commit()?;
        rows.sort_by(|a, b| a.2.cmp(&b.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
        Ok(rows)
    }
}

/// Decides the tested rows of comparison `comparison_id` again (see
/// [`redecide_baseline_pair`]).
fn redecide(tx: &Transaction, comparison_id: i64, options: &PairedOptions) -> Result<(), CollectorError> {
    let (run_a, run_b): (i64, i64) = tx.query_row(
        "SELECT run_a, run_b FROM comparisons WHERE id = ?1",
        [comparison_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut stmt = tx.prepare_cached(
        "SELECT cr.scenario_ref, cr.metric, m.direction, m.unit, s.fixed_duration FROM comparison_results cr
         JOIN metrics m ON m.name = cr.metric JOIN scenarios s ON s.id = cr.scenario_ref
         WHERE cr.comparison_id = ?1 AND cr.ratio IS NOT NULL ORDER BY cr.scenario_ref, cr.metric",
    )?;
    let keys: Vec<(i64, String, Direction, String, bool)> = stmt
        .query_map([comparison_id], |r| {
            Ok((r.get(0)?, r.get(1)?, direction_at(r, 2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<Vec<(i64, String, Direction, String, bool)>, _>>()?
        .into_iter()
        // A count row has a ratio too, of one value per side: it is not the paired rule's.
        .filter(|(_, metric, ..)| !contract::metrics::is_counted(metric))
        .collect();
    let mut samples = tx.prepare_cached(
        "SELECT value FROM samples WHERE run_id = ?1 AND scenario_ref = ?2 AND metric = ?3 ORDER BY round",
    )?;
    let mut read = |run: i64, scenario_ref: i64, metric: &str| -> Result<Vec<f64>, CollectorError> {
        Ok(samples
            .query_map(params![run, scenario_ref, metric], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    };
    let mut rows = Vec::with_capacity(keys.len());
    let mut sides = Vec::with_capacity(keys.len());
    for (scenario_ref, metric, direction, unit, fixed_duration) in &keys {
        let (a, b) = (read(run_a, *scenario_ref, metric)?, read(run_b, *scenario_ref, metric)?);
        rows.push(ComparisonRow {
            scenario_id: String::new(),
            definition_hash: String::new(),
            metric: metric.clone(),
            unit: unit.clone(),
            direction: *direction,
            rounds: a.len().min(b.len()),
            median_a: median(&a),
            median_b: median(&b),
            ratio: None,
            ci_lower: None,
            ci_upper: None,
            ci_level: None,
            p_value: None,
            verdict: None,
            // Tested by an older rule, judged by none now: its ratio and verdict go, and it
            // leaves the family.
            note: contract::metrics::not_judged(metric, *fixed_duration).map(str::to_owned),
        });
        sides.push((a, b));
    }
    let tested: Vec<(usize, &[f64], &[f64])> = sides
        .iter()
        .enumerate()
        .filter(|(i, _)| rows[*i].note.is_none())
        .map(|(i, (a, b))| (i, a.as_slice(), b.as_slice()))
        .collect();
    decide(&mut rows, &tested, options);
    let mut update = tx.prepare_cached(
        "UPDATE comparison_results SET ratio = ?4, ci_lower = ?5, ci_upper = ?6, ci_level = ?7, p_value = ?8,
                verdict = ?9, note = ?10
         WHERE comparison_id = ?1 AND scenario_ref = ?2 AND metric = ?3",
    )?;
    for ((scenario_ref, metric, ..), r) in keys.iter().zip(&rows) {
        update.execute(params![
            comparison_id,
            scenario_ref,
            metric,
            r.ratio,
            r.ci_lower,
            r.ci_upper,
            r.ci_level,
            r.p_value,
            r.verdict_name(),
            r.note
        ])?;
    }
    tx.execute(
        "UPDATE comparisons SET statistics_version = ?2 WHERE id = ?1",
        params![comparison_id, STATISTICS_VERSION],
    )?;
    Ok(())
}

fn insert_rows(tx: &Transaction, comparison_id: i64, rows: &[ComparisonRow]) -> Result<(), CollectorError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO comparison_results (comparison_id, scenario_ref, metric, rounds, ratio, ci_lower, ci_upper,
                                         ci_level, p_value, verdict, note)
         VALUES (?1, (SELECT id FROM scenarios WHERE scenario_id = ?2 AND definition_hash = ?3), ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for r in rows {
        insert.execute(params![
            comparison_id,
            r.scenario_id,
            r.definition_hash,
            r.metric,
            r.rounds as i64,
            r.ratio,
            r.ci_lower,
            r.ci_upper,
            r.ci_level,
            r.p_value,
            r.verdict_name(),
            r.note
        ])?;
    }
    Ok(())
}

/// Copies the comparisons of another database whose runs were merged (`run_map` maps its
/// run ids to this one's). Returns how many were added.
pub(crate) fn merge_comparisons(
    from: &Connection,
    tx: &Transaction,
    run_map: &HashMap<i64, i64>,
) -> Result<usize, CollectorError> {
    let mut stmt = from.prepare(
        "SELECT id, uuid, run_a, run_b, label_a, label_b, scenario_file, started_at, finished_at, statistics_version, kind
         FROM comparisons ORDER BY id",
    )?;
    type Row = (
        i64,
        String,
        i64,
        i64,
        String,
        String,
        String,
        String,
        String,
        i64,
        String,
    );
    let list: Vec<Row> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut added = 0;
    for (id, uuid, run_a, run_b, label_a, label_b, file, started, finished, version, kind) in list {
        if tx
            .query_row("SELECT 1 FROM comparisons WHERE uuid = ?1", [&uuid], |_| Ok(()))
            .optional()?
            .is_some()
        {
            continue;
        }
        let here = |run: i64| {
            run_map
                .get(&run)
                .copied()
                .ok_or_else(|| CollectorError::Conflict(format!("comparison {uuid} refers to a missing run")))
        };
        let (a, b) = (here(run_a)?, here(run_b)?);
        let machine_id: i64 = tx.query_row("SELECT machine_id FROM runs WHERE id = ?1", [a], |r| r.get(0))?;
        tx.execute(
            "INSERT INTO comparisons (uuid, machine_id, run_a, run_b, label_a, label_b, scenario_file, started_at,
                                      finished_at, statistics_version, kind)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                uuid, machine_id, a, b, label_a, label_b, file, started, finished, version, kind
            ],
        )?;
        let new_id = tx.last_insert_rowid();
        let rows = stored_rows(from, id)?;
        insert_rows(tx, new_id, &rows)?;
        added += 1;
    }
    Ok(added)
}
