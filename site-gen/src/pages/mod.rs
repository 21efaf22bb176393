//! The pages, and what they share: the base context, links, and verdict rows.

mod commit;
mod compare;
mod index;
mod machines;
mod methodology;
mod scenario;
mod series;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use collector::Method;
use collector::query::StoredVerdict;
use collector::statistics::verdict::Verdict;
use serde::Serialize;
use tera::{Context, Tera};

use crate::effects::{Effect, mark_of};
use crate::format::{self, percent, percent_interval, share};
use crate::model::Model;
use crate::paths::{self, COMMITS, COMPARE, DATA, SCENARIOS, ScenarioFiles};
use crate::render::{self, render, write};
use crate::{SiteError, SiteOptions, export, feed};

const STYLE: &str = include_str!("../../static/style.css");
const SCRIPT: &str = include_str!("../../static/site.js");

/// The generation in progress.
pub struct Site<'a> {
    pub model: &'a Model,
    pub options: &'a SiteOptions,
    pub out: &'a Path,
    pub tera: Tera,
    pub files: ScenarioFiles,
    pub generated_at: String,
    pub many_machines: bool,
    /// The anchor of each series' plot on its scenario page.
    anchors: Vec<String>,
    pages: AtomicUsize,
    /// Every file written, so that those of an earlier generation can be pruned.
    written: Mutex<HashSet<PathBuf>>,
}

/// How noisy a series is, as the all-series and the scenario pages show it.
#[derive(Serialize)]
pub struct Noise {
    /// Of its latest point.
    pub cv: String,
    pub mde: String,
    /// From history, as its latest verdict used it.
    pub floor: String,
    pub false_positives: String,
    /// How often a known injected cost was found, by each rule calibrated: `2 of 10 pairs
    /// (≥ 4%) with ...; 9 of 9 unpaired comparisons (≥ 72%) with ...`.
    pub detection: Option<String>,
}

/// A verdict as the commit and compare pages show it.
#[derive(Serialize, Clone)]
pub struct VerdictRow {
    pub verdict: &'static str,
    /// The gate said otherwise; a change point at this commit re-labelled it.
    pub relabelled: bool,
    pub gate_verdict: &'static str,
    pub scenario_id: String,
    pub href: String,
    pub metric: String,
    pub unit: String,
    pub direction: String,
    pub arrow: &'static str,
    pub machine: Option<String>,
    pub baseline: String,
    pub baseline_ci: String,
    pub commit: String,
    pub commit_ci: String,
    pub n: String,
    pub change: String,
    pub change_ci: String,
    pub shift: String,
    pub shift_ci: String,
    pub p: String,
    pub q: String,
    pub threshold: String,
    pub noise_floor: String,
    pub false_positives: String,
    /// The size of the change, for sorting.
    pub effect: f64,
    /// Relative change and its interval, for the compare pages' plot.
    #[serde(skip)]
    pub relative: Option<(f64, f64, f64)>,
}

impl VerdictRow {
    /// The row in the compare pages' plot, when it has a change with an interval.
    pub fn plotted(&self) -> Option<Effect> {
        let (change, lower, upper) = self.relative?;
        Some(Effect {
            label: format!("{} {}", self.scenario_id, self.metric),
            href: self.href.clone(),
            change,
            lower,
            upper,
            higher_is_better: self.direction == "higher",
            mark: mark_of(self.verdict),
            title: format!(
                "{} {}: {} {} ({})",
                self.scenario_id, self.metric, self.change, self.change_ci, self.verdict
            ),
        })
    }
}

/// A verdict's relative change, `–` without one.
pub fn change_text(verdict: Option<&StoredVerdict>) -> String {
    verdict
        .and_then(|v| v.relative_change)
        .map(percent)
        .unwrap_or_else(|| "–".into())
}

/// The interval of a verdict's relative change, empty without one.
pub fn change_ci_text(verdict: Option<&StoredVerdict>) -> String {
    verdict
        .and_then(|v| v.relative_ci)
        .map(|(lo, hi)| percent_interval(lo, hi))
        .unwrap_or_default()
}

pub fn arrow(direction: &str) -> &'static str {
    if direction == "higher" { "↑" } else { "↓" }
}

/// Regressions, improvements, noisy, new, unchanged; then the largest change first.
pub fn effect_order(a: &VerdictRow, b: &VerdictRow) -> std::cmp::Ordering {
    let rank = |v: &str| Verdict::ALL.iter().position(|k| k.as_str() == v).unwrap_or(9);
    rank(a.verdict)
        .cmp(&rank(b.verdict))
        .then(b.effect.total_cmp(&a.effect))
        .then(a.scenario_id.cmp(&b.scenario_id))
}

impl<'a> Site<'a> {
    fn new(model: &'a Model, out: &'a Path, options: &'a SiteOptions) -> Result<Self, SiteError> {
        Ok(Self {
            model,
            options,
            out,
            tera: render::templates()?,
            files: ScenarioFiles::new(model.series.iter().map(|s| s.series.scenario_id.as_str())),
            generated_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            many_machines: model.many_machines(),
            anchors: anchors(model),
            pages: AtomicUsize::new(0),
            written: Mutex::new(HashSet::new()),
        })
    }

    /// The context every page starts from; `root` leads from the page to the site's root.
    pub fn base(&self, root: &str, title: &str) -> Context {
        let mut ctx = Context::new();
        ctx.insert("site_title", &self.options.title);
        ctx.insert("page_title", title);
        ctx.insert("root", root);
        ctx.insert("generated_at", &self.generated_at);
        ctx.insert("version", env!("CARGO_PKG_VERSION"));
        ctx.insert("run_count", &self.model.run_count);
        ctx.insert("branch", &self.model.branch);
        ctx.insert("has_database", &self.options.export_database);
        ctx.insert("database", paths::DATABASE);
        ctx.insert("feed", paths::FEED);
        ctx
    }

    /// Renders a page to `path` (from the root).
    pub fn page(&self, path: &str, template: &str, ctx: &Context) -> Result<(), SiteError> {
        self.file(path, render(&self.tera, template, ctx)?)?;
        self.pages.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes a file at `path` (from the root), remembered as part of this generation.
    pub fn file(&self, path: &str, contents: impl AsRef<[u8]>) -> Result<(), SiteError> {
        let path = self.out.join(path);
        write(&path, contents)?;
        self.written.lock().expect("not poisoned").insert(path);
        Ok(())
    }

    /// The page of a published commit, from `root`.
    pub fn commit_href(&self, root: &str, sha: &str) -> Option<String> {
        self.model
            .commit(sha)
            .map(|_| format!("{root}{COMMITS}/{}", paths::commit_file(sha)))
    }

    /// The commit in the repository's web interface.
    pub fn commit_url(&self, sha: &str) -> Option<String> {
        self.options.commit_url.as_ref().map(|t| t.replace("{sha}", sha))
    }

    pub fn scenario_href(&self, root: &str, scenario_id: &str) -> String {
        format!("{root}{}", self.files.page(scenario_id))
    }

    /// The anchor of a series' plot on its scenario page.
    pub fn series_anchor(&self, index: usize) -> &str {
        &self.anchors[index]
    }

    pub fn machine_label(&self, machine_id: i64) -> Option<String> {
        self.many_machines
            .then(|| self.model.machine(machine_id).map(|m| m.fingerprint.clone()))
            .flatten()
    }

    /// The noise of series `index`, whose latest point and verdict are given.
    pub fn noise(&self, index: usize, latest: &collector::query::Point, verdict: Option<&StoredVerdict>) -> Noise {
        Noise {
            cv: share(latest.summary.cv()),
            mde: latest.summary.mde.map(share).unwrap_or_else(|| "–".into()),
            floor: verdict
                .and_then(|v| v.noise_floor)
                .map(share)
                .unwrap_or_else(|| "–".into()),
            false_positives: self.false_positives(Some(index), verdict.map(|v| v.method)),
            detection: self.detection(index),
        }
    }

    /// How often series `index` found a known injected cost, per rule calibrated (see
    /// [`Noise::detection`]).
    fn detection(&self, index: usize) -> Option<String> {
        let texts: Vec<String> = self.model.series[index]
            .detections
            .iter()
            .map(|d| {
                let c = &d.calibration;
                let lower = collector::rate_lower_bound(c.false_regressions as usize, c.comparisons as usize);
                let compared = match d.kind {
                    collector::CalibrationKind::Injected => "pairs",
                    _ => "unpaired comparisons",
                };
                format!(
                    "{} of {} {compared} (≥ {}) with {}",
                    c.false_regressions,
                    c.comparisons,
                    share(lower),
                    d.injected
                )
            })
            .collect();
        (!texts.is_empty()).then(|| texts.join("; "))
    }

    /// The measured A/A false-positive rate of a series under the rule that decided a
    /// verdict (`method`; the history rule without one): `0 of 12 (≤ 22%)`. A series that has
    /// only the other rule's calibration shows that one, named (", paired" or ", history"),
    /// never mixed in unnamed.
    pub fn false_positives(&self, index: Option<usize>, method: Option<Method>) -> String {
        let Some(s) = index.map(|i| &self.model.series[i]) else {
            return "not calibrated".into();
        };
        let paired = method == Some(Method::Paired);
        let (own, other, other_name) = if paired {
            (&s.paired_calibration, &s.calibration, "history")
        } else {
            (&s.calibration, &s.paired_calibration, "paired")
        };
        let text = |c: &collector::query::SeriesCalibration| {
            format!(
                "{} of {} (≤ {})",
                c.false_regressions + c.false_improvements,
                c.comparisons,
                share(c.false_positive_upper)
            )
        };
        match (own, other) {
            (Some(c), _) => text(c),
            (None, Some(c)) => format!("{}, {other_name}", text(c)),
            (None, None) => "not calibrated".into(),
        }
    }

    pub fn verdict_row(&self, v: &StoredVerdict, root: &str) -> VerdictRow {
        let model = self.model;
        let index = model.series_of(v);
        let point = |sha: Option<&str>| index.zip(sha).and_then(|(i, sha)| model.point(i, sha));
        let commit_sha = model.runs.get(&v.run_id).map(|r| r.commit.sha.as_str());
        let with_ci = |median: Option<f64>, p: Option<&collector::query::Point>| match (median, p) {
            (Some(m), Some(p)) => (
                format!("{} {}", format::value(m), v.unit),
                format::interval(p.summary.ci_lower, p.summary.ci_upper),
            ),
            (Some(m), None) => (format!("{} {}", format::value(m), v.unit), String::new()),
            (None, _) => ("–".into(), String::new()),
        };
        // A paired verdict's baseline is the kept build's side of the same run, not the
        // baseline commit's point: that point's interval is not this median's.
        let baseline_point = match v.method {
            Method::Paired => None,
            _ => point(v.baseline_sha.as_deref()),
        };
        let (baseline, baseline_ci) = with_ci(v.baseline_median, baseline_point);
        let (commit, commit_ci) = with_ci(Some(v.commit_median), point(commit_sha));
        let href = match index {
            Some(i) => format!("{}#{}", self.scenario_href(root, &v.scenario_id), self.series_anchor(i)),
            None => self.scenario_href(root, &v.scenario_id),
        };
        let machine = model.runs.get(&v.run_id).and_then(|r| self.machine_label(r.machine_id));
        VerdictRow {
            verdict: v.verdict.as_str(),
            relabelled: v.verdict != v.gate_verdict,
            gate_verdict: v.gate_verdict.as_str(),
            scenario_id: v.scenario_id.clone(),
            href,
            metric: v.metric.clone(),
            unit: v.unit.clone(),
            direction: v.direction.clone(),
            arrow: arrow(&v.direction),
            machine,
            baseline,
            baseline_ci,
            commit,
            commit_ci,
            n: match v.baseline_n {
                Some(b) => format!("{b} / {}", v.commit_n),
                None => v.commit_n.to_string(),
            },
            change: match (v.relative_change, v.baseline_median) {
                (Some(r), _) => percent(r),
                (None, Some(_)) => "from 0".into(),
                (None, None) => "new".into(),
            },
            change_ci: v
                .relative_ci
                .map(|(lo, hi)| percent_interval(lo, hi))
                .unwrap_or_default(),
            shift: v
                .shift
                .map(|s| format!("{}{} {}", if s > 0.0 { "+" } else { "" }, format::value(s), v.unit))
                .unwrap_or_else(|| "–".into()),
            shift_ci: v
                .shift_ci
                .map(|(lo, hi)| format!("[{}, {}]", format::value(lo), format::value(hi)))
                .unwrap_or_default(),
            p: v.p_value.map(format::p_value).unwrap_or_else(|| "–".into()),
            q: v.q_value.map(format::p_value).unwrap_or_else(|| "–".into()),
            threshold: share(v.threshold),
            noise_floor: v.noise_floor.map(share).unwrap_or_else(|| "–".into()),
            false_positives: self.false_positives(index, Some(v.method)),
            effect: v.relative_change.map_or(0.0, f64::abs),
            relative: v.relative_change.zip(v.relative_ci).map(|(c, (lo, hi))| (c, lo, hi)),
        }
    }

    /// The `<tr>` elements of verdict rows.
    pub fn rows_html(&self, rows: &[&VerdictRow]) -> Result<String, SiteError> {
        let mut ctx = Context::new();
        ctx.insert("rows", rows);
        ctx.insert("many_machines", &self.many_machines);
        render(&self.tera, "verdict_rows.html", &ctx)
    }

    /// The statistics a commit's verdicts used, in words, with the numbers of this run.
    pub fn verdict_method(&self, verdicts: &[&StoredVerdict]) -> Vec<String> {
        let by = |m: Method| verdicts.iter().filter(|v| v.method == m).copied().collect::<Vec<_>>();
        let (history, paired, counted) = (by(Method::History), by(Method::Paired), by(Method::Count));
        let mut out = Vec::new();
        if let Some(first) = paired.first() {
            out.push(format!(
                "{} series were decided by paired rounds: the previous benchmarked commit's binaries ran in the same job, rounds interleaved with this commit's (A B B A ...), so that the machine's drift hits both alike.",
                paired.len()
            ));
            out.push(format!(
                "The change is the geometric mean of the per-round ratios with its interval (Student's t on their logarithms); p is one-sided in the direction of the change, adjusted by Benjamini-Hochberg across the run's paired series, regressions and improvements each a family. A change needs p under {} and more than {}; unchanged needs the whole interval within that floor.",
                first.alpha,
                share(first.threshold)
            ));
        }
        if let Some(first) = history.first() {
            let floor = history.iter().map(|v| v.threshold).fold(f64::INFINITY, f64::min);
            out.push(format!(
                "{}Each commit's raw samples are compared with those of its baseline (the previous benchmarked commit of the branch, on the same machine) by the two-sided Mann-Whitney U test.",
                if paired.is_empty() { String::new() } else { format!("The other {} series were decided against the history. ", history.len()) }
            ));
            out.push(format!(
                "p-values are adjusted by Benjamini-Hochberg across those {} series (q); a change needs q under {}.",
                history.len(),
                first.alpha
            ));
            out.push(format!(
                "The shift is the Hodges-Lehmann estimate with its confidence interval; relative to the baseline's median it must exceed the series' noise floor from history and the practical floor ({} here at the least).",
                if floor.is_finite() { share(floor) } else { "1%".into() }
            ));
        }
        if !counted.is_empty() {
            out.push(format!(
                "{} instruction-count series (one count under Valgrind per run) change when the count moves beyond 0.5%, 100,000 instructions and the series' own spread in history.",
                counted.len()
            ));
        }
        out.push("Unchanged: a change that large is ruled out by the interval. Noisy: the data cannot tell. A change point confirmed by later history can re-label a commit's verdict (marked \"cp\").".into());
        out.push(
            "The A/A column is the false-positive rate measured by running one build against itself on this machine."
                .into(),
        );
        out
    }
}

/// Anchors of the series' plots: the metric, with the machine and the definition only where
/// a scenario page has that metric more than once.
fn anchors(model: &Model) -> Vec<String> {
    let mut count: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
    for s in &model.series {
        *count.entry((&s.series.scenario_id, &s.series.metric)).or_default() += 1;
    }
    model
        .series
        .iter()
        .map(|s| {
            let s = &s.series;
            if count[&(s.scenario_id.as_str(), s.metric.as_str())] == 1 {
                paths::anchor(&[&s.metric])
            } else {
                paths::anchor(&[&s.metric, &s.machine_id.to_string(), &s.definition_hash])
            }
        })
        .collect()
}

/// Removes the files of an earlier generation that this one did not write again: pages of
/// commits or scenarios that are gone. (Overwriting and pruning costs a fraction of deleting
/// thousands of files first.)
fn prune(out: &Path, written: &HashSet<PathBuf>) -> Result<(), SiteError> {
    fn walk(dir: &Path, written: &HashSet<PathBuf>) -> Result<(), SiteError> {
        let fail = |source| SiteError::Write {
            path: dir.to_owned(),
            source,
        };
        for entry in std::fs::read_dir(dir).map_err(fail)? {
            let path = entry.map_err(fail)?.path();
            if path.is_dir() {
                walk(&path, written)?;
            } else if !written.contains(&path) {
                std::fs::remove_file(&path).map_err(|source| SiteError::Write { path, source })?;
            }
        }
        Ok(())
    }
    for dir in [SCENARIOS, COMMITS, COMPARE, DATA] {
        let path = out.join(dir);
        if path.is_dir() {
            walk(&path, written)?;
        }
    }
    Ok(())
}

/// Writes every page; returns (pages, plots).
pub fn write_all(model: &Model, out: &Path, options: &SiteOptions) -> Result<(usize, usize), SiteError> {
    let site = Site::new(model, out, options)?;
    site.file("style.css", STYLE)?;
    site.file("site.js", SCRIPT)?;
    index::write(&site)?;
    series::write(&site)?;
    let plots = scenario::write_all(&site)?;
    commit::write_all(&site)?;
    compare::write_all(&site)?;
    machines::write(&site)?;
    methodology::write(&site)?;
    feed::write(&site)?;
    site.file(&format!("{DATA}/series.js"), export::series_js(model, &site.files))?;
    let commits: Vec<usize> = (0..model.commits.len()).collect();
    render::each(&commits, |&c| {
        let file = paths::commit_file(&model.commits[c].commit.sha).replace(".html", ".js");
        site.file(&format!("{DATA}/{file}"), export::commit_js(model, c))
    })?;
    prune(out, &site.written.lock().expect("not poisoned"))?;
    Ok((site.pages.load(Ordering::Relaxed), plots))
}
