//! The pages: what each shows, and how their data is gathered from the database.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use collector::Database;
use collector::query::{Point, Series};
use serde::Serialize;
use tera::{Context, Tera};

use crate::format::{self, short_sha};
use crate::{SiteError, SiteReport, plot, write};

const STYLE: &str = include_str!("../static/style.css");
const TEMPLATES: [(&str, &str); 3] = [
    ("base.html", include_str!("../templates/base.html")),
    ("index.html", include_str!("../templates/index.html")),
    ("scenario.html", include_str!("../templates/scenario.html")),
];
const SCENARIO_DIR: &str = "scenarios";

/// What to publish.
#[derive(Debug, Clone)]
pub struct SiteOptions {
    pub title: String,
    /// Only runs made on this branch; `None` for all runs.
    pub branch: Option<String>,
}

impl Default for SiteOptions {
    fn default() -> Self {
        Self {
            title: "Soledad blobs benchmarks".into(),
            branch: None,
        }
    }
}

#[derive(Serialize)]
struct IndexRow {
    scenario_id: String,
    href: String,
    metric: String,
    unit: String,
    direction: String,
    arrow: &'static str,
    median: String,
    ci: String,
    n: usize,
    points: usize,
}

#[derive(Serialize)]
struct Group {
    workload: String,
    rows: Vec<IndexRow>,
}

#[derive(Serialize)]
struct LatestRun {
    short_sha: String,
    subject: String,
    date: String,
    branch: Option<String>,
    dirty: bool,
}

#[derive(Serialize)]
struct PointRow {
    short_sha: String,
    subject: String,
    date: String,
    median: String,
    ci: String,
    n: usize,
}

#[derive(Serialize)]
struct Plot {
    anchor: String,
    metric: String,
    unit: String,
    direction: String,
    note: Option<String>,
    svg: String,
    points: Vec<PointRow>,
}

fn templates() -> Result<Tera, SiteError> {
    let mut tera = Tera::default();
    // Templates ending in .html are autoescaped: text from git and scenario files is never
    // interpreted as markup.
    tera.add_raw_templates(TEMPLATES).map_err(|e| SiteError::Template {
        template: "(loading)".into(),
        message: e.to_string(),
    })?;
    Ok(tera)
}

fn render(tera: &Tera, template: &str, ctx: &Context) -> Result<String, SiteError> {
    tera.render(template, ctx).map_err(|e| SiteError::Template {
        template: template.into(),
        message: format!("{e:?}"),
    })
}

/// File name of a scenario's page.
fn scenario_file(scenario_id: &str) -> String {
    format!("{}.html", scenario_id.replace('/', "_"))
}

/// Display order of metrics: the workload's headline numbers first.
fn metric_rank(name: &str) -> (usize, &str) {
    const FIRST: [&str; 5] = [
        "wall_s",
        "throughput_mib_s",
        "ops_s",
        "latency_p50_ms",
        "latency_p99_ms",
    ];
    (FIRST.iter().position(|m| *m == name).unwrap_or(FIRST.len()), name)
}

fn arrow(direction: &str) -> &'static str {
    if direction == "higher" { "↑" } else { "↓" }
}

pub fn generate(db: &Database, out: &Path, options: &SiteOptions) -> Result<SiteReport, SiteError> {
    let tera = templates()?;
    let runs = db.runs()?;
    let machines = db.machines()?;
    let mut by_scenario: BTreeMap<String, Vec<(Series, Vec<Point>)>> = BTreeMap::new();
    for series in db.series()? {
        let points = db.points(&series, options.branch.as_deref())?;
        if !points.is_empty() {
            by_scenario
                .entry(series.scenario_id.clone())
                .or_default()
                .push((series, points));
        }
    }
    for list in by_scenario.values_mut() {
        list.sort_by(|a, b| {
            metric_rank(&a.0.metric)
                .cmp(&metric_rank(&b.0.metric))
                .then(a.0.machine_id.cmp(&b.0.machine_id))
        });
    }

    let generated_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let base = |root: &str| {
        let mut ctx = Context::new();
        ctx.insert("site_title", &options.title);
        ctx.insert("root", root);
        ctx.insert("generated_at", &generated_at);
        ctx.insert("version", env!("CARGO_PKG_VERSION"));
        ctx.insert("run_count", &runs.len());
        ctx
    };

    let scenario_dir = out.join(SCENARIO_DIR);
    if scenario_dir.is_dir() {
        std::fs::remove_dir_all(&scenario_dir).map_err(|source| SiteError::Write {
            path: scenario_dir.clone(),
            source,
        })?;
    }
    let mut plots_written = 0;
    let mut groups: BTreeMap<String, Vec<IndexRow>> = BTreeMap::new();
    for (scenario_id, list) in &by_scenario {
        let file = scenario_file(scenario_id);
        let mut plots = Vec::new();
        for (series, points) in list {
            let direction = format!("{} is better", series.direction);
            let svg = plot::series_svg(points, &format!("{} ({direction})", series.unit)).map_err(|message| {
                SiteError::Plot {
                    series: format!("{scenario_id} {}", series.metric),
                    message,
                }
            })?;
            let machine_note = (machines.len() > 1).then(|| format!("machine {}", series.machine_fingerprint));
            let old_definition = list
                .iter()
                .any(|(s, _)| s.metric == series.metric && s.definition_hash != series.definition_hash);
            let note = match (machine_note, old_definition) {
                (m, true) => Some(format!(
                    "{}definition {} (the scenario changed; series with other definitions are shown separately)",
                    m.map(|m| m + ", ").unwrap_or_default(),
                    series.definition_hash
                )),
                (m, false) => m,
            };
            plots.push(Plot {
                anchor: format!("{}-{}-{}", series.metric, series.machine_id, series.definition_hash),
                metric: series.metric.clone(),
                unit: series.unit.clone(),
                direction: series.direction.clone(),
                note,
                svg,
                points: points
                    .iter()
                    .map(|p| PointRow {
                        short_sha: short_sha(&p.commit.sha).to_owned(),
                        subject: p.commit.subject.clone(),
                        date: format::date(p.commit.author_time),
                        median: format::value(p.summary.median),
                        ci: format::interval(p.summary.ci_lower, p.summary.ci_upper),
                        n: p.summary.n,
                    })
                    .collect(),
            });
            plots_written += 1;
            let last = points.last().expect("empty series are skipped");
            groups.entry(series.workload.clone()).or_default().push(IndexRow {
                scenario_id: scenario_id.clone(),
                href: format!("{SCENARIO_DIR}/{file}"),
                metric: series.metric.clone(),
                unit: series.unit.clone(),
                direction: series.direction.clone(),
                arrow: arrow(&series.direction),
                median: format::value(last.summary.median),
                ci: format::interval(last.summary.ci_lower, last.summary.ci_upper),
                n: last.summary.n,
                points: points.len(),
            });
        }
        let (first, _) = &list[0];
        let mut ctx = base("../");
        ctx.insert("scenario_id", scenario_id);
        ctx.insert("workload", &first.workload);
        ctx.insert("description", &first.description);
        ctx.insert("plots", &plots);
        write(&scenario_dir.join(&file), &render(&tera, "scenario.html", &ctx)?)?;
    }

    let mut ctx = base("");
    let groups: Vec<Group> = groups
        .into_iter()
        .map(|(workload, rows)| Group { workload, rows })
        .collect();
    ctx.insert("groups", &groups);
    let latest = runs.first().map(|r| LatestRun {
        short_sha: short_sha(&r.commit.sha).to_owned(),
        subject: r.commit.subject.clone(),
        date: format::date(r.commit.author_time),
        branch: r.branch.clone(),
        dirty: r.dirty,
    });
    ctx.insert("latest", &latest);
    let index = out.join("index.html");
    write(&index, &render(&tera, "index.html", &ctx)?)?;
    write(&out.join("style.css"), STYLE)?;
    Ok(SiteReport {
        index,
        pages: by_scenario.len() + 1,
        plots: plots_written,
    })
}
