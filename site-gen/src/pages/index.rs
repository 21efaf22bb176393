//! The front page, a report for a public reader: what this runner can judge, the changes that
//! mattered lately, each workload family's headline numbers as small plots with their latest
//! value and verdict in words, and Soledad's own 2017 numbers beside ours. The table of every
//! series has a page of its own (`series.rs`), so that this one stays small.

use std::collections::HashMap;

use collector::statistics::verdict::Verdict;
use serde::Serialize;

use super::Site;
use crate::SiteError;
use crate::format::{self, percent, percent_interval, short_sha};
use crate::headlines::{self, FAMILIES, Family};
use crate::model::Model;
use crate::paths::{self, COMPARE, SERIES_PAGE};
use crate::sparkline::sparkline;
use crate::then::{self, FIGURES};

/// Commits a summary plot spans.
const PLOT_POINTS: usize = 30;
/// Commits with regressions or improvements listed, newest first.
const COMMITS_SHOWN: usize = 6;
/// Their changes listed, the largest first.
const CHANGES_PER_COMMIT: usize = 3;
/// Commits searched for them.
const CHANGES_WITHIN: usize = 30;

/// One number of a tile: a metric's latest value with its change and verdict in words.
#[derive(Serialize)]
struct Number {
    metric: String,
    href: String,
    value: String,
    unit: String,
    change: String,
    verdict: &'static str,
    words: String,
}

/// A scenario of a family: its headline metric as a plot, then its other numbers.
#[derive(Serialize)]
struct Tile {
    scenario: String,
    scenario_id: String,
    href: String,
    plot: String,
    numbers: Vec<Number>,
}

#[derive(Serialize)]
struct FamilyView {
    title: String,
    about: String,
    workload: String,
    anchor: String,
    all_series: String,
    tiles: Vec<Tile>,
}

/// A recent commit with regressions or improvements, in plain language: its largest changes
/// and how many more it has.
#[derive(Serialize)]
struct ChangedCommit {
    short_sha: String,
    href: String,
    subject: String,
    date: String,
    compare: Option<String>,
    regressions: usize,
    improvements: usize,
    changes: Vec<Change>,
    more: usize,
}

#[derive(Serialize)]
struct Change {
    verdict: &'static str,
    sentence: String,
    change_ci: String,
    href: String,
}

#[derive(Serialize)]
struct ThenNow {
    what: String,
    href: String,
    then: String,
    now: String,
    unit: &'static str,
    better: bool,
    comparison: String,
    source: usize,
}

#[derive(Serialize)]
struct SourceView {
    number: usize,
    name: &'static str,
    method: &'static str,
}

pub fn write(site: &Site) -> Result<(), SiteError> {
    let model = site.model;
    let chosen = chosen_series(model);
    let families = families(site, &chosen);
    let (then_now, sources, unmatched) = then_and_now(site, &chosen);
    let at_latest = |kind| model.commits.last().map_or(0, |c| c.count(model, kind));
    let (regressions, improvements) = (at_latest(Verdict::Regression), at_latest(Verdict::Improvement));
    let noisy = at_latest(Verdict::Noisy);

    let mut ctx = site.base("", "");
    ctx.insert("series_count", &model.series.len());
    ctx.insert("commit_count", &model.commits.len());
    ctx.insert(
        "latest",
        &model.commits.last().map(|c| short_sha(&c.commit.sha).to_owned()),
    );
    ctx.insert(
        "latest_href",
        &model.commits.last().and_then(|c| site.commit_href("", &c.commit.sha)),
    );
    ctx.insert("latest_regressions", &regressions);
    ctx.insert("latest_improvements", &improvements);
    ctx.insert("latest_noisy", &noisy);
    ctx.insert("families", &families);
    ctx.insert("changes", &changes(site));
    ctx.insert("changes_within", &CHANGES_WITHIN.min(model.commits.len()));
    ctx.insert("then_now", &then_now);
    ctx.insert("sources", &sources);
    ctx.insert("unmatched", &unmatched);
    ctx.insert("resolution", &super::series::resolution(model));
    ctx.insert("series_page", SERIES_PAGE);
    ctx.insert("compare_index", &format!("{COMPARE}/index.html"));
    ctx.insert("build_failures", &super::series::build_failures(model));
    site.page("index.html", "index.html", &ctx)
}

/// The series shown for each (scenario, metric): on a site of several machines, the one
/// measured most recently (the runner CI uses now), then the longest.
fn chosen_series(model: &Model) -> HashMap<(&str, &str), usize> {
    model.most_recent_by(|s| (s.series.scenario_id.as_str(), s.series.metric.as_str()))
}

/// The verdict of a series' latest point, if it has one.
fn latest_verdict(model: &Model, index: usize) -> Option<&collector::query::StoredVerdict> {
    model.series[index]
        .verdicts
        .last()
        .copied()
        .flatten()
        .map(|v| &model.verdicts[v])
}

fn number(site: &Site, index: usize) -> Number {
    let model = site.model;
    let s = &model.series[index];
    let latest = s.latest();
    let verdict = latest_verdict(model, index);
    Number {
        metric: headlines::metric_words(&s.series.metric).to_owned(),
        href: format!(
            "{}#{}",
            site.scenario_href("", &s.series.scenario_id),
            site.series_anchor(index)
        ),
        value: format::value(latest.summary.median),
        unit: s.series.unit.clone(),
        change: verdict.and_then(|v| v.relative_change).map(percent).unwrap_or_default(),
        verdict: s.label(verdict),
        words: match s.not_judged() {
            // It follows the throughput, or is a share of a core: no verdict to put in words.
            Some(_) => "not judged".into(),
            None => headlines::verdict_words(verdict, latest.summary.mde),
        },
    }
}

/// The plot of a series' recent medians, with a text alternative that gives its numbers.
fn plot(site: &Site, index: usize, scenario: &str) -> String {
    let s = &site.model.series[index];
    let start = s.points.len().saturating_sub(PLOT_POINTS);
    let values: Vec<f64> = s.points[start..].iter().map(|p| p.summary.median).collect();
    let (lo, hi) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    let unit = &s.series.unit;
    let label = format!(
        "{} of {scenario} over the last {} commits: from {} to {} {unit}, between {} and {} {unit}",
        headlines::metric_words(&s.series.metric),
        values.len(),
        format::value(values[0]),
        format::value(values[values.len() - 1]),
        format::value(lo),
        format::value(hi),
    );
    let kind = s.label(latest_verdict(site.model, index));
    sparkline(&values, kind, &label)
}

/// Every family with series, known families first in their order, then the others by name
/// with their first metric.
fn families(site: &Site, chosen: &HashMap<(&str, &str), usize>) -> Vec<FamilyView> {
    let model = site.model;
    // Scenarios by workload, in the model's order.
    let mut scenarios: Vec<(&str, Vec<&str>)> = Vec::new();
    for s in &model.series {
        let (workload, id) = (s.series.workload.as_str(), s.series.scenario_id.as_str());
        match scenarios.iter_mut().find(|(w, _)| *w == workload) {
            Some((_, ids)) if !ids.contains(&id) => ids.push(id),
            Some(_) => {}
            None => scenarios.push((workload, vec![id])),
        }
    }
    let known = |w: &str| FAMILIES.iter().position(|f| f.workload == w).unwrap_or(FAMILIES.len());
    scenarios.sort_by(|a, b| known(a.0).cmp(&known(b.0)).then(a.0.cmp(b.0)));
    for (_, ids) in &mut scenarios {
        ids.sort_by_key(|id| headlines::natural_key(id));
    }
    scenarios
        .into_iter()
        .filter_map(|(workload, ids)| {
            let family = headlines::family(workload);
            let tiles: Vec<Tile> = ids.iter().filter_map(|&id| tile(site, chosen, family, id)).collect();
            (!tiles.is_empty()).then(|| FamilyView {
                title: family.map_or(workload, |f| f.title).to_owned(),
                about: family.map_or("", |f| f.about).to_owned(),
                workload: workload.to_owned(),
                anchor: paths::anchor(&["s", workload]),
                all_series: format!("{SERIES_PAGE}#{}", paths::anchor(&["w", workload])),
                tiles,
            })
        })
        .collect()
}

fn tile(site: &Site, chosen: &HashMap<(&str, &str), usize>, family: Option<&Family>, id: &str) -> Option<Tile> {
    let model = site.model;
    let series: Vec<usize> = match family {
        Some(f) => f
            .metrics
            .iter()
            .filter_map(|m| chosen.get(&(id, *m)).copied())
            .collect(),
        // An unknown workload: its first metric in display order.
        None => chosen
            .iter()
            .filter(|((s, _), _)| *s == id)
            .map(|(_, &i)| i)
            .min_by_key(|&i| model.metrics.rank(&model.series[i].series.metric))
            .into_iter()
            .collect(),
    };
    let &first = series.first()?;
    let scenario = headlines::scenario_words(id);
    Some(Tile {
        plot: plot(site, first, &scenario),
        href: site.scenario_href("", id),
        scenario_id: id.to_owned(),
        scenario,
        numbers: series.iter().map(|&i| number(site, i)).collect(),
    })
}

/// The latest commits with regressions or improvements, newest first, each with its largest
/// changes (regressions first).
fn changes(site: &Site) -> Vec<ChangedCommit> {
    let model = site.model;
    let mut out = Vec::new();
    for c in model.commits.iter().rev().take(CHANGES_WITHIN) {
        let mut found: Vec<_> = c
            .verdicts
            .iter()
            .map(|&v| &model.verdicts[v])
            .filter(|v| v.verdict.is_change())
            .collect();
        if found.is_empty() {
            continue;
        }
        let size = |v: &collector::query::StoredVerdict| v.relative_change.map_or(0.0, f64::abs);
        found.sort_by(|a, b| a.verdict.cmp(&b.verdict).then(size(b).total_cmp(&size(a))));
        let more = found.len().saturating_sub(CHANGES_PER_COMMIT);
        let changes = found
            .iter()
            .take(CHANGES_PER_COMMIT)
            .map(|v| {
                let workload = v.scenario_id.split('/').next().unwrap_or("");
                let family = headlines::family(workload).map_or(workload, |f| f.title);
                let worse = v.verdict == Verdict::Regression;
                let how = match v.relative_change {
                    Some(r) => format!("{} ({})", percent(r), if worse { "worse" } else { "better" }),
                    None => (if worse { "worse" } else { "better" }).into(),
                };
                Change {
                    verdict: v.verdict.as_str(),
                    sentence: format!(
                        "{family}, {}: {} {how}",
                        headlines::scenario_words(&v.scenario_id),
                        headlines::metric_words(&v.metric)
                    ),
                    change_ci: v
                        .relative_ci
                        .map(|(lo, hi)| percent_interval(lo, hi))
                        .unwrap_or_default(),
                    href: site.verdict_row(v, "").href,
                }
            })
            .collect();
        out.push(ChangedCommit {
            short_sha: short_sha(&c.commit.sha).to_owned(),
            href: site.commit_href("", &c.commit.sha).unwrap_or_default(),
            subject: format::truncate(&c.commit.subject, 100),
            date: format::day(c.commit.author_time),
            compare: c.baseline.as_ref().map(|b| paths::compare_commits(b, &c.commit.sha)),
            regressions: c.count(model, Verdict::Regression),
            improvements: c.count(model, Verdict::Improvement),
            changes,
            more,
        });
        if out.len() == COMMITS_SHOWN {
            break;
        }
    }
    out
}

/// Soledad's figures that a series here answers, the sources they come from (numbered in
/// order of first use), and how many figures no series answers.
fn then_and_now(site: &Site, chosen: &HashMap<(&str, &str), usize>) -> (Vec<ThenNow>, Vec<SourceView>, usize) {
    let model = site.model;
    let mut rows = Vec::new();
    let mut sources: Vec<&then::Source> = Vec::new();
    let mut unmatched = 0;
    for f in FIGURES {
        let Some(&i) = chosen.get(&(f.scenario_id, f.metric)) else {
            unmatched += 1;
            continue;
        };
        let ours = model.series[i].latest().summary.median * f.scale;
        let times = f.times_better(ours);
        let source = match sources.iter().position(|s| std::ptr::eq(*s, f.source)) {
            Some(k) => k,
            None => {
                sources.push(f.source);
                sources.len() - 1
            }
        };
        let comparison = match (times.is_finite() && times > 0.0, f.higher_is_better, times >= 1.0) {
            (false, _, _) => "–".into(),
            (true, false, true) => format!("{}× faster", ratio(times)),
            (true, false, false) => format!("{}× slower", ratio(1.0 / times)),
            (true, true, true) => format!("{}× higher", ratio(times)),
            (true, true, false) => format!("{}× lower", ratio(1.0 / times)),
        };
        rows.push(ThenNow {
            what: f.what.to_owned(),
            href: format!("{}#{}", site.scenario_href("", f.scenario_id), site.series_anchor(i)),
            then: match f.then_spread {
                // As published.
                Some(sd) => format!("{} ± {sd}", f.then),
                None => f.then.to_string(),
            },
            now: format::value(ours),
            unit: f.unit,
            better: times >= 1.0,
            comparison,
            source: source + 1,
        });
    }
    let sources = sources
        .into_iter()
        .enumerate()
        .map(|(k, s)| SourceView {
            number: k + 1,
            name: s.name,
            method: s.method,
        })
        .collect();
    (rows, sources, unmatched)
}

/// A ratio to two or three significant digits: `1.3`, `16.8`, `760`.
fn ratio(x: f64) -> String {
    match x {
        x if x >= 100.0 => format!("{x:.0}"),
        x if x >= 10.0 => format!("{x:.1}"),
        x => format!("{x:.2}"),
    }
}
