//! A scenario's page: one plot per metric over commits, the grid it belongs to, the round
//! budget of its latest run, and its data.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use collector::statistics::verdict::Verdict;
use serde::Serialize;

use super::{Noise, Site, arrow, change_ci_text, change_text};
use crate::format::{self, percent, share, short_sha, truncate};
use crate::paths::SCENARIOS;
use crate::plot::{Mark, PlotPoint, Shift, series_svg};
use crate::render::each;
use crate::scaling::{self, ScalingPlot};
use crate::{SiteError, export};

#[derive(Serialize)]
struct PointRow {
    short_sha: String,
    href: String,
    subject: String,
    date: String,
    median: String,
    ci: String,
    n: usize,
    cv: String,
    outliers: usize,
    verdict: &'static str,
    change: String,
}

#[derive(Serialize)]
struct ChangePointRow {
    short_sha: String,
    href: Option<String>,
    kind: &'static str,
    change: String,
    before: String,
    after: String,
    p: String,
    points: String,
}

#[derive(Serialize)]
struct PlotSection {
    anchor: String,
    metric: String,
    unit: String,
    direction: String,
    arrow: &'static str,
    about: Option<String>,
    note: Option<String>,
    median: String,
    ci: String,
    verdict: &'static str,
    relabelled: bool,
    change: String,
    change_ci: String,
    #[serde(flatten)]
    noise: Noise,
    svg: String,
    points: Vec<PointRow>,
    total_points: usize,
    change_points: Vec<ChangePointRow>,
}

#[derive(Serialize)]
struct Param {
    name: String,
    value: String,
}

#[derive(Serialize)]
struct Budget {
    short_sha: String,
    rounds: i64,
    warmup: i64,
    limits: String,
    headline: String,
    achieved: String,
    target: String,
    stop: String,
    noisy: bool,
}

#[derive(Serialize)]
struct Scaling<'a> {
    title: &'a str,
    svg: &'a str,
}

pub fn write_all(site: &Site) -> Result<usize, SiteError> {
    let model = site.model;
    let mut by_scenario: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in model.series.iter().enumerate() {
        by_scenario.entry(&s.series.scenario_id).or_default().push(i);
    }
    let scaling = scaling::plots(model);
    let plots = AtomicUsize::new(0);
    let scenarios: Vec<(&str, Vec<usize>)> = by_scenario.into_iter().collect();
    each(&scenarios, |(id, series)| {
        let n = write_one(site, id, series, &scaling)?;
        plots.fetch_add(n, Ordering::Relaxed);
        Ok(())
    })?;
    Ok(plots.into_inner())
}

fn point_title(site: &Site, index: usize, j: usize) -> String {
    let s = &site.model.series[index];
    let p = &s.points[j];
    let mut t = format!(
        "{} · {}\n{}\nmedian {} {} [{}], n = {}",
        short_sha(&p.commit.sha),
        format::date(p.commit.author_time),
        truncate(&p.commit.subject, 90),
        format::value(p.summary.median),
        s.series.unit,
        format::interval(p.summary.ci_lower, p.summary.ci_upper),
        p.summary.n
    );
    if let Some(v) = s.verdicts[j].map(|v| &site.model.verdicts[v]) {
        t.push_str(&format!("\n{}", v.verdict.as_str()));
        if let Some(c) = v.relative_change {
            t.push_str(&format!(" {}", percent(c)));
        }
    }
    t
}

fn write_one(site: &Site, scenario_id: &str, series: &[usize], scaling: &[ScalingPlot]) -> Result<usize, SiteError> {
    let model = site.model;
    let root = "../";
    let mut sections = Vec::new();
    for &i in series {
        let s = &model.series[i];
        let se = &s.series;
        let points: Vec<PlotPoint> = s
            .points
            .iter()
            .enumerate()
            .map(|(j, p)| {
                let verdict = s.verdicts[j].map(|v| model.verdicts[v].verdict);
                PlotPoint {
                    median: p.summary.median,
                    lower: p.summary.ci_lower,
                    upper: p.summary.ci_upper,
                    mark: match verdict {
                        Some(Verdict::Regression) => Mark::Regression,
                        Some(Verdict::Improvement) => Mark::Improvement,
                        Some(Verdict::Noisy) => Mark::Noisy,
                        _ => Mark::Plain,
                    },
                    href: site.commit_href(root, &p.commit.sha).unwrap_or_default(),
                    title: point_title(site, i, j),
                    sha_label: p.commit.sha.chars().take(7).collect(),
                    day_label: format::day(p.commit.author_time),
                }
            })
            .collect();
        let at = |sha: &str| s.points.iter().position(|p| p.commit.sha == sha);
        let shifts: Vec<Shift> = s
            .change_points
            .iter()
            .filter_map(|cp| {
                Some(Shift {
                    index: at(&cp.commit_sha)?,
                    regression: cp.kind == Verdict::Regression,
                    label: percent(cp.relative_change),
                    title: format!(
                        "change point ({}) at {}: level {} → {} {} ({}), t-test p = {}",
                        cp.kind.as_str(),
                        short_sha(&cp.commit_sha),
                        format::value(cp.mean_before),
                        format::value(cp.mean_after),
                        se.unit,
                        percent(cp.relative_change),
                        format::p_value(cp.p_value)
                    ),
                })
            })
            .collect();
        let y_label = format!(
            "{} ({}), {} is better {}",
            se.metric,
            se.unit,
            se.direction,
            arrow(&se.direction)
        );
        let svg = series_svg(&points, &shifts, &y_label).map_err(|message| SiteError::Plot {
            series: format!("{scenario_id} {}", se.metric),
            message,
        })?;

        let latest = s.latest();
        let verdict = s.verdicts.last().copied().flatten().map(|v| &model.verdicts[v]);
        let mut notes = Vec::new();
        if let Some(why) = s.not_judged() {
            notes.push(why.to_owned());
        }
        if let Some(m) = site.machine_label(se.machine_id) {
            notes.push(format!("machine {m}"));
        }
        if series.iter().any(|&o| {
            model.series[o].series.metric == se.metric && model.series[o].series.definition_hash != se.definition_hash
        }) {
            notes.push(format!(
                "definition {} (the scenario changed; each definition is its own series)",
                se.definition_hash
            ));
        }
        let table: Vec<PointRow> = s
            .points
            .iter()
            .zip(&s.verdicts)
            .rev()
            .take(site.options.table_points)
            .map(|(p, v)| {
                let v = v.map(|v| &model.verdicts[v]);
                PointRow {
                    short_sha: short_sha(&p.commit.sha).to_owned(),
                    href: site.commit_href(root, &p.commit.sha).unwrap_or_default(),
                    subject: p.commit.subject.clone(),
                    date: format::date(p.commit.author_time),
                    median: format::value(p.summary.median),
                    ci: format::interval(p.summary.ci_lower, p.summary.ci_upper),
                    n: p.summary.n,
                    cv: share(p.summary.cv()),
                    outliers: p.summary.outliers.low_severe
                        + p.summary.outliers.low_mild
                        + p.summary.outliers.high_mild
                        + p.summary.outliers.high_severe,
                    verdict: s.label(v),
                    change: v.and_then(|v| v.relative_change).map(percent).unwrap_or_default(),
                }
            })
            .collect();
        let change_points = s
            .change_points
            .iter()
            .rev()
            .map(|cp| ChangePointRow {
                short_sha: short_sha(&cp.commit_sha).to_owned(),
                href: site.commit_href(root, &cp.commit_sha),
                kind: cp.kind.as_str(),
                change: percent(cp.relative_change),
                before: format::value(cp.mean_before),
                after: format::value(cp.mean_after),
                p: format::p_value(cp.p_value),
                points: format!("{} | {}", cp.points_before, cp.points_after),
            })
            .collect();
        sections.push(PlotSection {
            anchor: site.series_anchor(i).to_owned(),
            metric: se.metric.clone(),
            unit: se.unit.clone(),
            direction: se.direction.clone(),
            arrow: arrow(&se.direction),
            about: site.model.metrics.about(&se.metric).map(str::to_owned),
            note: (!notes.is_empty()).then(|| notes.join("; ")),
            median: format::value(latest.summary.median),
            ci: format::interval(latest.summary.ci_lower, latest.summary.ci_upper),
            verdict: s.label(verdict),
            relabelled: verdict.is_some_and(|v| v.verdict != v.gate_verdict),
            change: change_text(verdict),
            change_ci: change_ci_text(verdict),
            noise: site.noise(i, latest, verdict),
            svg,
            total_points: s.points.len(),
            points: table,
            change_points,
        });
    }

    // The definition of the latest point.
    let newest = series
        .iter()
        .copied()
        .max_by_key(|&i| {
            let p = model.series[i].latest();
            (p.commit.depth, p.run_id)
        })
        .expect("a scenario has series");
    let first = &model.series[newest].series;
    let info = model.scenarios.get(&first.scenario_ref);
    let params: Vec<Param> = info
        .and_then(|i| i.params.as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| Param {
                    name: k.clone(),
                    value: match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    let latest = model.series[newest].latest();
    let budget = model.budgets.get(&(latest.run_id, first.scenario_ref)).map(|b| {
        let report = b.budget.as_ref();
        Budget {
            short_sha: short_sha(&latest.commit.sha).to_owned(),
            rounds: b.rounds,
            warmup: b.warmup_rounds,
            limits: report.map_or_else(String::new, |r| {
                format!("{}–{} rounds, {} s", r.min_rounds, r.max_rounds, r.max_time_s)
            }),
            headline: report.map_or_else(String::new, |r| r.headline_metric.clone()),
            // A paired run stopped on its ratio's interval, which `noisy` then describes.
            achieved: report.map_or_else(String::new, |r| match r.paired_ci {
                Some(ci) => format!("±{} (paired ratio)", share(ci)),
                None if r.achieved_ci < 0.0 => "unknown".into(),
                None => format!("±{}", share(r.achieved_ci)),
            }),
            target: report.map_or_else(String::new, |r| format!("±{}", share(r.target_ci))),
            stop: report.map_or_else(String::new, |r| r.stop_reason.as_str().replace('_', " ")),
            noisy: report.is_some_and(|r| r.noisy),
        }
    });
    let refs: Vec<i64> = series.iter().map(|&i| model.series[i].series.scenario_ref).collect();
    let grids: Vec<Scaling> = scaling
        .iter()
        .filter(|p| p.scenario_refs.iter().any(|r| refs.contains(r)))
        .map(|p| Scaling {
            title: &p.title,
            svg: &p.svg,
        })
        .collect();
    let stem = site.files.stem(scenario_id).unwrap_or("_unknown");
    site.file(&format!("{SCENARIOS}/{stem}.csv"), export::scenario_csv(model, series))?;

    let mut ctx = site.base(root, scenario_id);
    ctx.insert("scenario_id", scenario_id);
    ctx.insert("workload", &first.workload);
    ctx.insert("workload_anchor", &crate::paths::anchor(&["w", &first.workload]));
    ctx.insert("description", &first.description);
    ctx.insert("definition_hash", &first.definition_hash);
    ctx.insert("params", &params);
    ctx.insert("budget", &budget);
    ctx.insert("grids", &grids);
    ctx.insert("plots", &sections);
    ctx.insert("csv", &format!("{stem}.csv"));
    site.page(&format!("{SCENARIOS}/{stem}.html"), "scenario.html", &ctx)?;
    Ok(sections.len())
}
