//! Compare pages: every stored branch comparison, sorted by effect with the statistics used,
//! and an index of every comparison with a selector for any two commits. (The page of each
//! commit against its baseline is written with the commit's page, from the same rows.)

use collector::comparison::{ComparisonRow, ComparisonSummary};
use collector::statistics::paired::{PairedOptions, STATISTICS_VERSION};
use collector::statistics::verdict::Verdict;
use contract::Direction;
use serde::Serialize;

use super::{Site, arrow};
use crate::SiteError;
use crate::effects::{Effect, effects_svg, mark_of};
use crate::format::{self, percent, percent_interval, short_sha};
use crate::paths::{self, COMPARE};
use crate::render::each;

#[derive(Serialize)]
pub struct Side {
    short_sha: String,
    href: Option<String>,
    subject: String,
    date: String,
    repository: Option<String>,
}

#[derive(Serialize)]
struct PairedRow {
    verdict: String,
    scenario_id: String,
    href: Option<String>,
    metric: String,
    unit: String,
    direction: String,
    arrow: &'static str,
    rounds: usize,
    median_a: String,
    median_b: String,
    change: String,
    change_ci: String,
    p: String,
    note: Option<String>,
}

#[derive(Serialize)]
struct CommitPair {
    href: String,
    a: String,
    b: String,
    subject: String,
    date: String,
    regressions: usize,
    improvements: usize,
    series: usize,
}

#[derive(Serialize)]
struct BranchPair {
    href: String,
    label_a: String,
    label_b: String,
    machine: String,
    finished_at: String,
    regressions: usize,
    improvements: usize,
}

/// The file of a branch comparison, from the root.
fn branch_file(c: &ComparisonSummary) -> String {
    format!("{COMPARE}/branch-{}.html", paths::slug(&c.uuid))
}

pub fn side(site: &Site, root: &str, sha: &str) -> Side {
    let commit = site.model.commit(sha);
    Side {
        short_sha: short_sha(sha).to_owned(),
        href: site.commit_href(root, sha),
        subject: commit.map(|c| c.commit.subject.clone()).unwrap_or_default(),
        date: commit.map(|c| format::date(c.commit.author_time)).unwrap_or_default(),
        repository: site.commit_url(sha),
    }
}

pub fn write_all(site: &Site) -> Result<(), SiteError> {
    let model = site.model;
    let with_baseline: Vec<usize> = (0..model.commits.len())
        .filter(|&i| model.commits[i].baseline.is_some())
        .collect();
    each(&model.comparisons, |(c, rows)| branch_pair(site, c, rows))?;
    index(site, &with_baseline)
}

fn paired_row(site: &Site, root: &str, r: &ComparisonRow) -> PairedRow {
    PairedRow {
        verdict: if r.not_judged() {
            crate::model::UNJUDGED.to_owned()
        } else {
            r.verdict_name().to_owned()
        },
        scenario_id: r.scenario_id.clone(),
        href: site
            .files
            .stem(&r.scenario_id)
            .map(|_| site.scenario_href(root, &r.scenario_id)),
        metric: r.metric.clone(),
        unit: r.unit.clone(),
        direction: r.direction.as_str().to_owned(),
        arrow: arrow(r.direction.as_str()),
        rounds: r.rounds,
        median_a: format::value(r.median_a),
        median_b: format::value(r.median_b),
        change: r.change().map(percent).unwrap_or_else(|| "–".into()),
        change_ci: match (r.ci_lower, r.ci_upper) {
            (Some(lo), Some(hi)) => percent_interval(lo - 1.0, hi - 1.0),
            _ => String::new(),
        },
        p: r.p_value.map(format::p_value).unwrap_or_else(|| "–".into()),
        note: r.note.clone(),
    }
}

fn branch_pair(site: &Site, c: &ComparisonSummary, rows: &[ComparisonRow]) -> Result<(), SiteError> {
    let root = "../";
    let tested = rows.iter().filter(|r| r.p_value.is_some()).count();
    let method = if c.statistics_version == STATISTICS_VERSION {
        PairedOptions::default().method(tested)
    } else {
        // Stored by an earlier version of the statistics: say what decided it then.
        vec![format!(
            "Decided by version {} of the paired statistics: the Wilcoxon signed-rank test of the per-round log ratios at 0.05, adjusted by Benjamini-Hochberg, with a bootstrap interval of the geometric-mean ratio.",
            c.statistics_version
        )]
    };
    let table: Vec<PairedRow> = rows.iter().map(|r| paired_row(site, root, r)).collect();
    let plotted: Vec<Effect> = rows
        .iter()
        .zip(&table)
        .filter_map(|(r, t)| {
            Some(Effect {
                label: format!("{} {}", r.scenario_id, r.metric),
                href: t.href.clone().unwrap_or_else(|| "#cmp-table".into()),
                change: r.change()?,
                lower: r.ci_lower? - 1.0,
                upper: r.ci_upper? - 1.0,
                higher_is_better: r.direction == Direction::Higher,
                mark: mark_of(r.verdict_name()),
                title: format!(
                    "{} {}: {} {} ({})",
                    r.scenario_id,
                    r.metric,
                    t.change,
                    t.change_ci,
                    r.verdict_name()
                ),
            })
        })
        .collect();
    let mut ctx = site.base(root, &format!("{} against {}", c.label_b, c.label_a));
    ctx.insert(
        "comparison",
        &BranchPair {
            href: String::new(),
            label_a: c.label_a.clone(),
            label_b: c.label_b.clone(),
            machine: site
                .model
                .machine(c.machine_id)
                .map(|m| format!("{} ({})", m.fingerprint, m.cpu_model))
                .unwrap_or_default(),
            finished_at: c.finished_at.clone(),
            regressions: c.regressions,
            improvements: c.improvements,
        },
    );
    ctx.insert("a", &side(site, root, &c.commit_a));
    ctx.insert("b", &side(site, root, &c.commit_b));
    ctx.insert("scenario_file", &c.scenario_file);
    ctx.insert("rows", &table);
    ctx.insert("effects", &effects_svg(&plotted));
    ctx.insert("method", &method);
    site.page(&branch_file(c), "branch_compare.html", &ctx)
}

fn index(site: &Site, with_baseline: &[usize]) -> Result<(), SiteError> {
    let model = site.model;
    let root = "../";
    let pairs: Vec<CommitPair> = with_baseline
        .iter()
        .rev()
        .map(|&i| {
            let c = &model.commits[i];
            let base = c.baseline.as_deref().expect("filtered");
            CommitPair {
                href: format!("{root}{}", paths::compare_commits(base, &c.commit.sha)),
                a: short_sha(base).to_owned(),
                b: short_sha(&c.commit.sha).to_owned(),
                subject: c.commit.subject.clone(),
                date: format::date(c.commit.author_time),
                regressions: c.count(model, Verdict::Regression),
                improvements: c.count(model, Verdict::Improvement),
                series: c.verdicts.len(),
            }
        })
        .collect();
    let branches: Vec<BranchPair> = model
        .comparisons
        .iter()
        .map(|(c, _)| BranchPair {
            href: format!("{root}{}", branch_file(c)),
            label_a: c.label_a.clone(),
            label_b: c.label_b.clone(),
            machine: model
                .machine(c.machine_id)
                .map(|m| m.fingerprint.clone())
                .unwrap_or_default(),
            finished_at: c.finished_at.clone(),
            regressions: c.regressions,
            improvements: c.improvements,
        })
        .collect();
    let mut ctx = site.base(root, "Compare");
    ctx.insert("pairs", &pairs);
    ctx.insert("branches", &branches);
    ctx.insert("commit_count", &model.commits.len());
    site.page(&format!("{COMPARE}/index.html"), "compare_index.html", &ctx)
}
