//! A commit's page: every verdict of its runs, with effect sizes and intervals, and the way
//! to its parent, its compare page and the repository. The compare page of the commit
//! against its baseline shows the same verdicts side by side, sorted by effect: both are
//! written from one set of rows.

use collector::statistics::verdict::Verdict;
use serde::Serialize;

use super::{Site, VerdictRow, effect_order};
use crate::SiteError;
use crate::format::{self, short_sha};
use crate::paths::{self, COMMITS};
use crate::render::each;

#[derive(Serialize)]
struct Link {
    short_sha: String,
    href: Option<String>,
    subject: Option<String>,
}

#[derive(Serialize)]
struct RunInfo {
    machine: String,
    started_at: String,
    scenario_file: String,
    source: String,
    branch: Option<String>,
    dirty: bool,
    covariates: String,
    /// The commit whose binaries ran paired with this run's rounds.
    paired_with: Option<Link>,
    /// How the rounds were paired, or why they were not.
    pairing: Option<String>,
}

#[derive(Serialize)]
struct VerdictGroup {
    verdict: &'static str,
    title: &'static str,
    count: usize,
    /// Its rows' HTML.
    rows: String,
}

pub fn write_all(site: &Site) -> Result<(), SiteError> {
    let indexes: Vec<usize> = (0..site.model.commits.len()).collect();
    each(&indexes, |&i| write_one(site, i))
}

fn link(site: &Site, root: &str, sha: &str) -> Link {
    Link {
        short_sha: short_sha(sha).to_owned(),
        href: site.commit_href(root, sha),
        subject: site.model.commit(sha).map(|c| c.commit.subject.clone()),
    }
}

fn write_one(site: &Site, index: usize) -> Result<(), SiteError> {
    let model = site.model;
    let c = &model.commits[index];
    let sha = &c.commit.sha;
    let root = "../";
    let verdicts: Vec<_> = c.verdicts.iter().map(|&v| &model.verdicts[v]).collect();
    // Rows for both pages, in the compare page's order (by verdict, then the largest change
    // first), rendered once per verdict group: the commit page shows the groups, the compare
    // page all of them in a row. Rendering is most of the site's generation time.
    let mut rows: Vec<VerdictRow> = verdicts.iter().map(|v| site.verdict_row(v, root)).collect();
    rows.sort_by(effect_order);
    let mut groups = Vec::new();
    for kind in Verdict::ALL {
        let members: Vec<&VerdictRow> = rows.iter().filter(|r| r.verdict == kind.as_str()).collect();
        if members.is_empty() {
            continue;
        }
        groups.push(VerdictGroup {
            verdict: kind.as_str(),
            title: match kind {
                Verdict::Regression => "Regressions",
                Verdict::Improvement => "Improvements",
                Verdict::Noisy => "Noisy: the data cannot tell",
                Verdict::New => "New series (no baseline)",
                Verdict::Unchanged => "Unchanged",
            },
            count: members.len(),
            rows: site.rows_html(&members)?,
        });
    }
    let runs: Vec<RunInfo> = c
        .runs
        .iter()
        .filter_map(|id| model.runs.get(id))
        .map(|r| RunInfo {
            machine: model
                .machine(r.machine_id)
                .map(|m| format!("{} ({})", m.fingerprint, m.cpu_model))
                .unwrap_or_default(),
            started_at: r.started_at.clone(),
            scenario_file: r.scenario_file.clone(),
            source: r.source.clone(),
            branch: r.branch.clone(),
            dirty: r.dirty,
            paired_with: r.paired_with.as_deref().map(|b| link(site, root, b)),
            pairing: r.pairing.clone(),
            covariates: model
                .covariates
                .get(&r.id)
                .map(|list| {
                    list.iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
        })
        .collect();
    let parents: Vec<Link> = model
        .parents
        .get(sha)
        .map(|ps| ps.iter().map(|p| link(site, root, p)).collect())
        .unwrap_or_default();
    let count = |k| c.count(model, k);

    let mut ctx = site.base(root, &format!("{} {}", short_sha(sha), c.commit.subject));
    ctx.insert("sha", sha);
    ctx.insert("short_sha", short_sha(sha));
    ctx.insert("subject", &c.commit.subject);
    ctx.insert("author", &c.commit.author_name);
    ctx.insert("date", &format::date(c.commit.author_time));
    ctx.insert("repository", &site.commit_url(sha));
    ctx.insert("parents", &parents);
    ctx.insert("baseline", &c.baseline.as_ref().map(|b| link(site, root, b)));
    ctx.insert(
        "compare",
        &c.baseline
            .as_ref()
            .map(|b| format!("{root}{}", paths::compare_commits(b, sha))),
    );
    ctx.insert(
        "previous",
        &c.previous.map(|p| link(site, root, &model.commits[p].commit.sha)),
    );
    ctx.insert("next", &c.next.map(|n| link(site, root, &model.commits[n].commit.sha)));
    ctx.insert("runs", &runs);
    ctx.insert("groups", &groups);
    ctx.insert("series", &verdicts.len());
    ctx.insert("regressions", &count(Verdict::Regression));
    ctx.insert("improvements", &count(Verdict::Improvement));
    ctx.insert("noisy", &count(Verdict::Noisy));
    ctx.insert("unchanged", &count(Verdict::Unchanged));
    ctx.insert("new", &count(Verdict::New));
    ctx.insert("method", &site.verdict_method(&verdicts));
    ctx.insert("many_machines", &site.many_machines);
    site.page(&format!("{COMMITS}/{}", paths::commit_file(sha)), "commit.html", &ctx)?;

    let Some(base) = c.baseline.as_deref() else {
        return Ok(());
    };
    let mut ctx = site.base(root, &format!("{} against {}", short_sha(sha), short_sha(base)));
    ctx.insert("a", &super::compare::side(site, root, base));
    ctx.insert("b", &super::compare::side(site, root, sha));
    ctx.insert("rows", &groups.iter().map(|g| g.rows.as_str()).collect::<String>());
    ctx.insert("series", &rows.len());
    let plotted: Vec<_> = rows.iter().filter_map(VerdictRow::plotted).collect();
    ctx.insert("effects", &crate::effects::effects_svg(&plotted));
    ctx.insert("regressions", &count(Verdict::Regression));
    ctx.insert("improvements", &count(Verdict::Improvement));
    ctx.insert("noisy", &count(Verdict::Noisy));
    ctx.insert("method", &site.verdict_method(&verdicts));
    ctx.insert("many_machines", &site.many_machines);
    site.page(&paths::compare_commits(base, sha), "compare.html", &ctx)
}
