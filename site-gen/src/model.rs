//! Everything the site shows, read from the database once, through the collector's read
//! API, and indexed for the pages.

use std::collections::{BTreeSet, HashMap};

use collector::bulk::{RoundBudget, ScenarioInfo, SeriesDetection, SeriesKey};
use collector::comparison::{ComparisonKind, ComparisonRow, ComparisonSummary};
use collector::query::{Commit, Machine, Point, Run, Series, SeriesCalibration, StoredChangePoint, StoredVerdict};
use collector::statistics::verdict::Verdict;
use collector::{CalibrationKind, CalibrationSummary, Database, StoredBuildFailure};

use crate::{SiteError, SiteOptions};

const NONE: u32 = u32::MAX;
/// Commits that do not build, listed on the front page.
const BUILD_FAILURES_SHOWN: usize = 12;

/// One published series.
pub struct SeriesData {
    pub series: Series,
    /// Oldest first, on the published branch.
    pub points: Vec<Point>,
    /// The verdict of each point's run on this series: an index into [`Model::verdicts`].
    pub verdicts: Vec<Option<usize>>,
    pub change_points: Vec<StoredChangePoint>,
    /// The latest A/A calibration of the history rule, and of the paired rule: a verdict's
    /// false-positive rate is that of the rule that decided it.
    pub calibration: Option<SeriesCalibration>,
    pub paired_calibration: Option<SeriesCalibration>,
    /// The latest injected calibration of the series by each rule that has one, paired first.
    pub detections: Vec<SeriesDetection>,
}

impl SeriesData {
    pub fn latest(&self) -> &Point {
        self.points.last().expect("published series have points")
    }

    /// Why no rule judges this series, if none does (`contract::metrics::not_judged`).
    pub fn not_judged(&self) -> Option<&'static str> {
        contract::metrics::not_judged(&self.series.metric, self.series.fixed_duration)
    }

    /// A point's verdict as the pages show it: its own, or `unjudged` for a series no rule
    /// judges, or `new` for one without a baseline.
    pub fn label(&self, verdict: Option<&StoredVerdict>) -> &'static str {
        match verdict {
            Some(v) => v.verdict.as_str(),
            None if self.not_judged().is_some() => UNJUDGED,
            None => "new",
        }
    }
}

/// The label of a series no rule judges.
pub const UNJUDGED: &str = "unjudged";

/// A benchmarked commit of the published history.
pub struct CommitData {
    pub commit: Commit,
    /// Its runs whose points are published (one per machine, the latest), by machine.
    pub runs: Vec<i64>,
    /// The commit its verdicts compared with (the previous point of its series).
    pub baseline: Option<String>,
    /// Neighbours in the published history.
    pub previous: Option<usize>,
    pub next: Option<usize>,
    /// Indexes into [`Model::verdicts`] of its runs' verdicts.
    pub verdicts: Vec<usize>,
}

impl CommitData {
    pub fn count(&self, model: &Model, kind: Verdict) -> usize {
        self.verdicts
            .iter()
            .filter(|&&v| model.verdicts[v].verdict == kind)
            .count()
    }
}

pub struct Model {
    /// The branch whose first-parent history is published; `None` for every run.
    pub branch: Option<String>,
    /// Ordered by workload, scenario, definition, metric (headline numbers first), machine.
    pub series: Vec<SeriesData>,
    pub scenarios: HashMap<i64, ScenarioInfo>,
    /// Oldest first.
    pub commits: Vec<CommitData>,
    pub commit_at: HashMap<String, usize>,
    pub verdicts: Vec<StoredVerdict>,
    pub machines: Vec<Machine>,
    pub runs: HashMap<i64, Run>,
    /// Every history run, on any branch.
    pub run_count: usize,
    pub budgets: HashMap<(i64, i64), RoundBudget>,
    pub calibrations: Vec<CalibrationSummary>,
    pub comparisons: Vec<(ComparisonSummary, Vec<ComparisonRow>)>,
    pub parents: HashMap<String, Vec<String>>,
    /// The covariates of the runs shown, as text, by name.
    pub covariates: HashMap<i64, Vec<(String, String)>>,
    /// The most recent commits that do not build, newest first.
    pub build_failures: Vec<StoredBuildFailure>,
    pub metrics: Metrics,
    /// Per series, per commit (index into `commits`): the index of its point there, or
    /// `NONE`.
    point_index: Vec<Vec<u32>>,
    series_at: HashMap<SeriesKey, usize>,
}

/// What the store says of its metrics: display order and descriptions.
#[derive(Debug, Default)]
pub struct Metrics {
    rank: HashMap<String, i64>,
    about: HashMap<String, String>,
}

impl Metrics {
    pub fn load(db: &Database) -> Result<Self, SiteError> {
        let mut metrics = Self::default();
        for m in db.metrics()? {
            if let Some(rank) = m.rank {
                metrics.rank.insert(m.name.clone(), rank);
            }
            if let Some(about) = m.description {
                metrics.about.insert(m.name, about);
            }
        }
        Ok(metrics)
    }

    /// Position of a metric in display order: the stored rank (headline numbers first),
    /// then metrics without one by name.
    pub fn rank<'a>(&self, name: &'a str) -> (i64, &'a str) {
        (self.rank.get(name).copied().unwrap_or(i64::MAX), name)
    }

    /// What the metric measures, in a sentence.
    pub fn about(&self, name: &str) -> Option<&str> {
        self.about.get(name).map(String::as_str)
    }
}

/// The branch to publish when none is asked for: `master`, else `main`, else the branch with
/// the most runs; `None` when no run names a branch.
pub fn default_branch(db: &Database) -> Result<Option<String>, SiteError> {
    let branches = db.branches()?;
    for wanted in ["master", "main"] {
        if branches.iter().any(|b| b.name == wanted) {
            return Ok(Some(wanted.to_owned()));
        }
    }
    Ok(branches.first().map(|b| b.name.clone()))
}

impl Model {
    pub fn load(db: &Database, options: &SiteOptions) -> Result<Self, SiteError> {
        let branch = match &options.branch {
            Some(b) => Some(b.clone()),
            None => default_branch(db)?,
        };
        // The two large reads, each a scan of its table, side by side on two connections.
        let (history, all_verdicts) = std::thread::scope(|scope| {
            let path = db.path().to_owned();
            let verdicts = scope.spawn(move || -> Result<Vec<StoredVerdict>, SiteError> {
                Ok(Database::open(&path)?.history_verdicts()?)
            });
            let history = db.history(branch.as_deref());
            (history, verdicts.join().expect("reading verdicts does not panic"))
        });
        let (history, all_verdicts) = (history?, all_verdicts?);
        let metrics = Metrics::load(db)?;
        let change_points: HashMap<SeriesKey, Vec<StoredChangePoint>> = match &branch {
            Some(b) => {
                let mut map: HashMap<SeriesKey, Vec<StoredChangePoint>> = HashMap::new();
                for (key, cp) in db.history_change_points(b)? {
                    map.entry(key).or_default().push(cp);
                }
                map
            }
            None => HashMap::new(),
        };
        let mut calibrations = db.series_calibrations(CalibrationKind::History)?;
        let mut paired_calibrations = db.series_calibrations(CalibrationKind::Paired)?;
        let mut detections = db.series_detections()?;

        // The runs shown: per commit, the run of each point.
        let mut commit_runs: HashMap<String, BTreeSet<i64>> = HashMap::new();
        let mut commits: HashMap<String, Commit> = HashMap::new();
        for h in &history {
            for p in &h.points {
                commit_runs.entry(p.commit.sha.clone()).or_default().insert(p.run_id);
                commits.entry(p.commit.sha.clone()).or_insert_with(|| p.commit.clone());
            }
        }
        let shown: BTreeSet<i64> = commit_runs.values().flatten().copied().collect();
        let verdicts: Vec<StoredVerdict> = all_verdicts.into_iter().filter(|v| shown.contains(&v.run_id)).collect();
        let verdict_at: HashMap<(i64, i64, &str), usize> = verdicts
            .iter()
            .enumerate()
            .map(|(i, v)| ((v.run_id, v.scenario_ref, v.metric.as_str()), i))
            .collect();

        let mut series: Vec<SeriesData> = history
            .into_iter()
            .map(|h| {
                let key = h.series.key();
                let verdicts = h
                    .points
                    .iter()
                    .map(|p| verdict_at.get(&(p.run_id, key.1, key.2.as_str())).copied())
                    .collect();
                SeriesData {
                    change_points: change_points.get(&key).cloned().unwrap_or_default(),
                    calibration: calibrations.remove(&key),
                    paired_calibration: paired_calibrations.remove(&key),
                    detections: detections.remove(&key).unwrap_or_default(),
                    series: h.series,
                    points: h.points,
                    verdicts,
                }
            })
            .collect();
        series.sort_by(|a, b| {
            let (a, b) = (&a.series, &b.series);
            (
                &a.workload,
                &a.scenario_id,
                a.scenario_ref,
                metrics.rank(&a.metric),
                a.machine_id,
            )
                .cmp(&(
                    &b.workload,
                    &b.scenario_id,
                    b.scenario_ref,
                    metrics.rank(&b.metric),
                    b.machine_id,
                ))
        });
        let series_at = series.iter().enumerate().map(|(i, s)| (s.series.key(), i)).collect();
        let mut ordered: Vec<Commit> = commits.into_values().collect();
        ordered.sort_by(|a, b| (a.depth, a.author_time, &a.sha).cmp(&(b.depth, b.author_time, &b.sha)));
        let all_runs = db.runs()?;
        let run_count = all_runs.len();
        let runs: HashMap<i64, Run> = all_runs
            .into_iter()
            .filter(|r| shown.contains(&r.id))
            .map(|r| (r.id, r))
            .collect();
        let mut by_run: HashMap<i64, Vec<usize>> = HashMap::new();
        for (i, v) in verdicts.iter().enumerate() {
            by_run.entry(v.run_id).or_default().push(i);
        }
        let n = ordered.len();
        let commits: Vec<CommitData> = ordered
            .into_iter()
            .enumerate()
            .map(|(i, commit)| {
                let mut run_ids: Vec<i64> = commit_runs
                    .remove(&commit.sha)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                run_ids.sort_by_key(|id| (runs.get(id).map(|r| r.machine_id), *id));
                let mut mine: Vec<usize> = run_ids
                    .iter()
                    .flat_map(|r| by_run.remove(r).unwrap_or_default())
                    .collect();
                mine.sort_by(|&a, &b| {
                    let (a, b) = (&verdicts[a], &verdicts[b]);
                    (a.verdict, &a.scenario_id, metrics.rank(&a.metric), a.run_id).cmp(&(
                        b.verdict,
                        &b.scenario_id,
                        metrics.rank(&b.metric),
                        b.run_id,
                    ))
                });
                // The baseline most of its verdicts used.
                let mut votes: HashMap<&str, usize> = HashMap::new();
                for &v in &mine {
                    if let Some(b) = verdicts[v].baseline_sha.as_deref() {
                        *votes.entry(b).or_default() += 1;
                    }
                }
                let baseline = votes
                    .into_iter()
                    .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
                    .map(|(sha, _)| sha.to_owned());
                CommitData {
                    commit,
                    runs: run_ids,
                    baseline,
                    previous: i.checked_sub(1),
                    next: (i + 1 < n).then_some(i + 1),
                    verdicts: mine,
                }
            })
            .collect();
        let commit_at: HashMap<String, usize> = commits
            .iter()
            .enumerate()
            .map(|(i, c)| (c.commit.sha.clone(), i))
            .collect();
        let point_index = series
            .iter()
            .map(|s| {
                let mut index = vec![NONE; commits.len()];
                for (j, p) in s.points.iter().enumerate() {
                    index[commit_at[&p.commit.sha]] = j as u32;
                }
                index
            })
            .collect();

        let scenarios = db.scenarios()?.into_iter().map(|s| (s.scenario_ref, s)).collect();
        let budgets = db
            .round_budgets()?
            .into_iter()
            .filter(|b| shown.contains(&b.run_id))
            .map(|b| ((b.run_id, b.scenario_ref), b))
            .collect();
        let mut covariates = HashMap::new();
        for &run in &shown {
            let list = db
                .covariates(run)?
                .into_iter()
                .map(|(name, value)| (name, covariate_text(value)))
                .collect();
            covariates.insert(run, list);
        }
        let mut comparisons = Vec::new();
        // A per-commit run's pairing with its baseline build is shown as its commit's verdicts.
        for c in db
            .comparisons()?
            .into_iter()
            .filter(|c| c.kind == ComparisonKind::Branch)
        {
            let rows = db.comparison_rows(c.id)?;
            comparisons.push((c, rows));
        }
        let build_failures = db.build_failures(branch.as_deref(), BUILD_FAILURES_SHOWN)?;
        Ok(Self {
            build_failures,
            metrics,
            branch,
            series,
            scenarios,
            commits,
            commit_at,
            verdicts,
            machines: db.machines()?,
            runs,
            run_count,
            budgets,
            // The pages show false-positive rates; an injected calibration measures detection.
            calibrations: db
                .calibrations()?
                .into_iter()
                .filter(|c| !c.kind.is_injected())
                .collect(),
            comparisons,
            parents: db.commit_parents()?,
            covariates,
            point_index,
            series_at,
        })
    }

    /// The point of series `index` at a commit.
    pub fn point(&self, index: usize, sha: &str) -> Option<&Point> {
        self.point_at_commit(index, *self.commit_at.get(sha)?)
    }

    /// The point of series `index` at commit `commit` (an index into `commits`).
    pub fn point_at_commit(&self, index: usize, commit: usize) -> Option<&Point> {
        match self.point_index[index][commit] {
            NONE => None,
            j => Some(&self.series[index].points[j as usize]),
        }
    }

    /// The index of series `index`'s point at commit `commit`.
    pub fn point_index_at(&self, index: usize, commit: usize) -> Option<usize> {
        match self.point_index[index][commit] {
            NONE => None,
            j => Some(j as usize),
        }
    }

    /// How recent series `index` is: the published commit of its latest point, then its
    /// length. Of two definitions of one scenario's metric, the more recent is the current.
    pub fn recency(&self, index: usize) -> (usize, usize) {
        let s = &self.series[index];
        let at = self.commit_at.get(&s.latest().commit.sha).copied().unwrap_or(0);
        (at, s.points.len())
    }

    /// For each key `key` gives a series, the most recent series with it ([`Self::recency`];
    /// the first of equals).
    pub fn most_recent_by<'m, K: std::hash::Hash + Eq>(
        &'m self,
        key: impl Fn(&'m SeriesData) -> K,
    ) -> HashMap<K, usize> {
        let mut chosen: HashMap<K, usize> = HashMap::new();
        for (i, s) in self.series.iter().enumerate() {
            let j = chosen.entry(key(s)).or_insert(i);
            if self.recency(i) > self.recency(*j) {
                *j = i;
            }
        }
        chosen
    }

    /// The verdict of series `index` at its point `j`.
    pub fn point_verdict(&self, index: usize, j: usize) -> Option<&StoredVerdict> {
        self.series[index].verdicts[j].map(|v| &self.verdicts[v])
    }

    /// The series a verdict is about, by index into [`Model::series`].
    pub fn series_of(&self, v: &StoredVerdict) -> Option<usize> {
        let machine = self.runs.get(&v.run_id)?.machine_id;
        self.series_index(machine, v.scenario_ref, &v.metric)
    }

    pub fn series_index(&self, machine_id: i64, scenario_ref: i64, metric: &str) -> Option<usize> {
        self.series_at
            .get(&(machine_id, scenario_ref, metric.to_owned()))
            .copied()
    }

    pub fn commit(&self, sha: &str) -> Option<&CommitData> {
        self.commit_at.get(sha).map(|&i| &self.commits[i])
    }

    pub fn machine(&self, id: i64) -> Option<&Machine> {
        self.machines.iter().find(|m| m.id == id)
    }

    /// Whether pages should say which machine a series is on.
    pub fn many_machines(&self) -> bool {
        let mut ids = self.series.iter().map(|s| s.series.machine_id);
        let first = ids.next();
        ids.any(|id| Some(id) != first)
    }
}

fn covariate_text(value: rusqlite::types::Value) -> String {
    use rusqlite::types::Value;
    match value {
        Value::Null => "–".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => crate::format::value(r),
        Value::Text(t) => t,
        Value::Blob(b) => format!("{} bytes", b.len()),
    }
}
