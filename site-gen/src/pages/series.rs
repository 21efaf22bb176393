//! The all-series page: every series in one table, grouped by workload, with filters, and
//! the latest commits with their counts of verdicts.

use std::collections::BTreeMap;

use collector::statistics::counts::{COUNT_ABSOLUTE_FLOOR, COUNT_FLOOR, UNKNOWN_SERVER_SPREAD, UNKNOWN_SPREAD};
use collector::statistics::noise_floor::MIN_CHANGES;
use collector::statistics::verdict::Verdict;
use serde::Serialize;

use super::{Noise, Site, VerdictRow, arrow, change_ci_text, change_text, effect_order};
use crate::SiteError;
use crate::format::{self, short_sha};
use crate::model::UNJUDGED;
use crate::paths::{self, COMPARE, SERIES_PAGE};
use crate::sparkline::sparkline;

/// Points in a sparkline.
const SPARK_POINTS: usize = 60;
/// Commits listed under "latest commits".
const LATEST_COMMITS: usize = 12;
/// Changes listed per commit there.
const CHANGES_PER_COMMIT: usize = 6;

#[derive(Serialize)]
struct Row {
    scenario_id: String,
    href: String,
    metric: String,
    unit: String,
    direction: String,
    arrow: &'static str,
    machine: Option<String>,
    median: String,
    ci: String,
    change: String,
    change_ci: String,
    verdict: &'static str,
    relabelled: bool,
    verdict_commit: String,
    sparkline: String,
    #[serde(flatten)]
    noise: Noise,
    points: usize,
}

#[derive(Serialize)]
struct Group {
    workload: String,
    anchor: String,
    scenarios: usize,
    rows: Vec<Row>,
}

#[derive(Serialize)]
struct LatestCommit {
    short_sha: String,
    href: String,
    subject: String,
    date: String,
    compare: Option<String>,
    regressions: usize,
    improvements: usize,
    noisy: usize,
    series: usize,
    changes: Vec<VerdictRow>,
    more: usize,
}

#[derive(Serialize)]
pub struct BuildFailure {
    short_sha: String,
    subject: Option<String>,
    date: String,
    reason: String,
}

pub fn write(site: &Site) -> Result<(), SiteError> {
    let model = site.model;
    let mut groups: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let mut metrics: Vec<&str> = Vec::new();
    for (i, s) in model.series.iter().enumerate() {
        let se = &s.series;
        let latest = s.latest();
        let verdict = s.verdicts.last().copied().flatten().map(|v| &model.verdicts[v]);
        let kind = s.label(verdict);
        let start = s.points.len().saturating_sub(SPARK_POINTS);
        let trend: Vec<f64> = s.points[start..].iter().map(|p| p.summary.median).collect();
        groups.entry(se.workload.clone()).or_default().push(Row {
            scenario_id: se.scenario_id.clone(),
            href: format!("{}#{}", site.scenario_href("", &se.scenario_id), site.series_anchor(i)),
            metric: se.metric.clone(),
            unit: se.unit.clone(),
            direction: se.direction.clone(),
            arrow: arrow(&se.direction),
            machine: site.machine_label(se.machine_id),
            median: format::value(latest.summary.median),
            ci: format::interval(latest.summary.ci_lower, latest.summary.ci_upper),
            change: change_text(verdict),
            change_ci: change_ci_text(verdict),
            verdict: kind,
            relabelled: verdict.is_some_and(|v| v.verdict != v.gate_verdict),
            verdict_commit: short_sha(&latest.commit.sha).to_owned(),
            sparkline: sparkline(
                &trend,
                kind,
                &format!("{} over the last {} commits", se.metric, trend.len()),
            ),
            noise: site.noise(i, latest, verdict),
            points: s.points.len(),
        });
        if !metrics.contains(&se.metric.as_str()) {
            metrics.push(&se.metric);
        }
    }
    metrics.sort_by_key(|m| model.metrics.rank(m));
    let groups: Vec<Group> = groups
        .into_iter()
        .map(|(workload, rows)| {
            let mut ids: Vec<&str> = rows.iter().map(|r| r.scenario_id.as_str()).collect();
            ids.dedup();
            Group {
                anchor: paths::anchor(&["w", &workload]),
                scenarios: ids.len(),
                workload,
                rows,
            }
        })
        .collect();

    let latest: Vec<LatestCommit> = model
        .commits
        .iter()
        .rev()
        .take(LATEST_COMMITS)
        .map(|c| {
            let mut changes: Vec<VerdictRow> = c
                .verdicts
                .iter()
                .map(|&v| &model.verdicts[v])
                .filter(|v| v.verdict.is_change())
                .map(|v| site.verdict_row(v, ""))
                .collect();
            changes.sort_by(effect_order);
            let more = changes.len().saturating_sub(CHANGES_PER_COMMIT);
            changes.truncate(CHANGES_PER_COMMIT);
            LatestCommit {
                short_sha: short_sha(&c.commit.sha).to_owned(),
                href: site.commit_href("", &c.commit.sha).unwrap_or_default(),
                subject: c.commit.subject.clone(),
                date: format::date(c.commit.author_time),
                compare: c.baseline.as_ref().map(|b| paths::compare_commits(b, &c.commit.sha)),
                regressions: c.count(model, Verdict::Regression),
                improvements: c.count(model, Verdict::Improvement),
                noisy: c.count(model, Verdict::Noisy),
                series: c.verdicts.len(),
                changes,
                more,
            }
        })
        .collect();

    let mut ctx = site.base("", "All series");
    ctx.insert("groups", &groups);
    ctx.insert("metrics", &metrics);
    let labels: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).chain([UNJUDGED]).collect();
    ctx.insert("verdicts", &labels);
    ctx.insert("latest", &latest);
    ctx.insert("series_count", &model.series.len());
    ctx.insert("commit_count", &model.commits.len());
    ctx.insert("many_machines", &site.many_machines);
    ctx.insert("compare_index", &format!("{COMPARE}/index.html"));
    let regressions = model
        .series
        .iter()
        .filter(|s| {
            s.verdicts
                .last()
                .copied()
                .flatten()
                .is_some_and(|v| model.verdicts[v].verdict == Verdict::Regression)
        })
        .count();
    ctx.insert("latest_regressions", &regressions);
    ctx.insert("resolution", &resolution(model));
    site.page(SERIES_PAGE, "series.html", &ctx)
}

/// A class of series by the smallest change they can judge.
#[derive(Serialize)]
pub struct Resolution {
    what: String,
    series: usize,
}

/// How many series this runner can judge at which size of change: the instruction counts
/// (deterministic: with enough history judged beyond their own spread and 0.5%, before that
/// only beyond the spread assumed for any count), then the others by their latest point's
/// MDE. It says up front what a "noisy" verdict means here, instead of leaving it in a column.
pub fn resolution(model: &crate::model::Model) -> Vec<Resolution> {
    // (what, MDE above, MDE at most)
    let classes = [
        ("series that find a change of 2% (MDE ≤ 2%)", f64::NEG_INFINITY, 0.02),
        ("series that find 5% (MDE 2-5%)", 0.02, 0.05),
        ("series that find 10% (MDE 5-10%)", 0.05, 0.10),
        ("series that need more than 10% (MDE > 10%)", 0.10, f64::INFINITY),
    ];
    // A series whose scenario has a newer definition on the same machine (a workload's
    // version changed) is no longer measured: it judges nothing today, however long its
    // history.
    let newest = model.most_recent_by(|s| {
        (
            s.series.machine_id,
            s.series.scenario_id.as_str(),
            s.series.metric.as_str(),
        )
    });
    let mut current = vec![false; model.series.len()];
    for &i in newest.values() {
        current[i] = true;
    }
    let series = || {
        model
            .series
            .iter()
            .enumerate()
            .filter(|(i, _)| current[*i])
            .map(|(_, s)| s)
    };
    let counted = |s: &&crate::model::SeriesData| contract::metrics::is_counted(&s.series.metric);
    let unjudged = |s: &&crate::model::SeriesData| s.not_judged().is_some();
    let measured = || series().filter(|s| !counted(s) && !unjudged(s));
    // A count's latest verdict has a noise floor once its series has the history for one:
    // from then on its own spread sets the bar, before that the spread assumed for any count.
    let own_spread = |s: &&crate::model::SeriesData| {
        let latest = s.verdicts.len().checked_sub(1);
        latest
            .and_then(|j| s.verdicts[j])
            .is_some_and(|v| model.verdicts[v].noise_floor.is_some())
    };
    let mut out = vec![
        Resolution {
            what: format!(
                "instruction counts (one count per run under Valgrind) with the history to know their spread: a change beyond that spread, {} and {} instructions",
                format::share(COUNT_FLOOR),
                format::thousands(COUNT_ABSOLUTE_FLOOR as u64)
            ),
            series: series().filter(counted).filter(own_spread).count(),
        },
        Resolution {
            what: format!(
                "instruction counts with less history (their spread is known once {} runs are behind them): only a change beyond {} for a client, {} for a server",
                MIN_CHANGES + 1,
                format::share(UNKNOWN_SPREAD),
                format::share(UNKNOWN_SERVER_SPREAD)
            ),
            series: series().filter(counted).filter(|s| !own_spread(s)).count(),
        },
    ];
    for (what, above, at_most) in classes {
        out.push(Resolution {
            what: what.into(),
            series: measured()
                .filter(|s| s.latest().summary.mde.is_some_and(|m| m > above && m <= at_most))
                .count(),
        });
    }
    out.push(Resolution {
        what: "series without an MDE (too few samples, or a zero median)".into(),
        series: measured().filter(|s| s.latest().summary.mde.is_none()).count(),
    });
    out.push(Resolution {
        what: "series shown and never judged: shares of a core, preemptions, and totals of fixed-duration rounds (they follow the throughput)".into(),
        series: series().filter(unjudged).count(),
    });
    out.push(Resolution {
        what: "series of an earlier definition of their scenario, no longer measured".into(),
        series: current.iter().filter(|c| !**c).count(),
    });
    out
}

/// The commits that did not build, newest first (the front page lists them).
pub fn build_failures(model: &crate::model::Model) -> Vec<BuildFailure> {
    model
        .build_failures
        .iter()
        .map(|f| BuildFailure {
            short_sha: short_sha(&f.sha).to_owned(),
            subject: f.subject.clone(),
            date: format::date(f.commit_time.unwrap_or(f.recorded_at)),
            reason: f.reason.clone(),
        })
        .collect()
}
