//! `soledad-bench compare REV_A [REV_B]`: builds two revisions (or one and the working tree),
//! runs the scenarios with their rounds interleaved (A B B A ...), and reports the paired
//! verdicts. Exit status: 0 no regression, 1 regression, 2 error.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use collector::Database;
use collector::comparison::{ComparisonRow, sort_by_effect};
use collector::statistics::paired::{DEFAULT_ROUNDS, MIN_ROUNDS, PairedOptions};
use contract::Verdict;
use contract::results::CommitInfo;
use harness::runner::Results;
use harness::runner::RunConfig;
use harness::scenario::ScenarioSet;
use site_gen::format::{p_value, percent, percent_interval, short_sha, value};

use crate::revisions::{BuildCache, Revision};
use crate::run::HarnessArgs;

/// Compare two revisions, or a revision and the working tree, with interleaved rounds.
#[derive(clap::Args)]
pub struct CompareArgs {
    /// The baseline (A): a commit, branch or tag.
    rev_a: String,
    /// Compared with the baseline (B) [default: the working tree, uncommitted changes included].
    rev_b: Option<String>,
    /// Scenario file to run.
    #[arg(long, default_value = "scenarios/smoke.toml")]
    scenarios: PathBuf,
    /// Only the scenarios whose id contains this text.
    #[arg(long)]
    only: Option<String>,
    /// Paired rounds to run at least (the scenario set's budget may run more).
    #[arg(long, default_value_t = DEFAULT_ROUNDS, value_parser = clap::value_parser!(u32).range(MIN_ROUNDS as i64..))]
    rounds: u32,
    /// The benchmark database; the comparison is stored there for the site.
    #[arg(long, default_value = "bench.sqlite")]
    db: PathBuf,
    /// Also write the report as Markdown (for a merge request) to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// List unchanged metrics in the table too.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    builds: BuildArgs,
    #[command(flatten)]
    harness: HarnessArgs,
}

/// Where revisions are checked out and built (shared by `compare`, `backfill` and `find`).
#[derive(clap::Args)]
pub struct BuildArgs {
    /// The git repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Cache of checkouts and builds [default: target/soledad-bench of the repository].
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Build with this shell command in the checkout instead of cargo; it must leave
    /// soledad-bench and blobs-server (and optionally bench.env) in $SOLEDAD_BENCH_OUT.
    #[arg(long)]
    pub build_cmd: Option<String>,
}

impl BuildArgs {
    pub fn cache(&self) -> anyhow::Result<BuildCache> {
        BuildCache::new(&self.repo, self.cache.clone(), self.build_cmd.clone())
    }
}

/// Loads a scenario set, keeps the scenarios matching `only`, and makes every scenario run
/// at least `rounds` measured rounds.
pub fn load_set(path: &std::path::Path, only: Option<&str>, rounds: u32) -> anyhow::Result<ScenarioSet> {
    let mut set = ScenarioSet::load(path)?;
    if let Some(only) = only {
        set.scenarios.retain(|s| s.id().contains(only));
        anyhow::ensure!(
            !set.scenarios.is_empty(),
            "no scenario of {} matches {only:?}",
            path.display()
        );
    }
    for s in &mut set.scenarios {
        s.budget.min_rounds = s.budget.min_rounds.max(rounds);
        s.budget.max_rounds = s.budget.max_rounds.max(s.budget.min_rounds);
    }
    Ok(set)
}

/// The outcome of an interleaved comparison.
pub struct Compared {
    pub label_a: String,
    pub label_b: String,
    /// How each side was built.
    pub provenance: [String; 2],
    pub results: [Results; 2],
    pub rows: Vec<ComparisonRow>,
    pub comparison_id: i64,
    /// Why its verdicts deserve less trust: the machine was overloaded.
    pub overload: Option<String>,
}

/// Runnable tasks per core (the 5-minute load average) above which A/A comparisons on this
/// project's machine called false regressions: 2 of 38 at about 5 per core, none of 43 below
/// 4 (`docs/statistics.md`). The rounds of A and B alternate, but bursts of other work
/// shorter than a pair of rounds hit one side only.
const OVERLOADED_PER_CORE: f64 = 4.0;

/// A warning for a comparison that ended with the machine overloaded: `load_5m` the 5-minute
/// load average, `cores` the cores there are.
fn overload_warning(load_5m: f64, cores: usize) -> Option<String> {
    (load_5m > OVERLOADED_PER_CORE * cores as f64).then(|| {
        format!(
            "the machine was overloaded (load average {load_5m:.1} over the last 5 minutes on {cores} cores): at more than {OVERLOADED_PER_CORE} per core, comparisons of identical builds called false regressions (docs/statistics.md); compare again on a quieter machine before trusting a change"
        )
    })
}

/// The 5-minute load average, where the system tells it.
fn load_5m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Builds both revisions, runs them interleaved, stores and returns the comparison.
pub fn compare(
    cache: &BuildCache,
    set: &ScenarioSet,
    revisions: [(Revision, String); 2],
    config: &RunConfig,
    db: &mut Database,
) -> anyhow::Result<Compared> {
    let mut builds = Vec::new();
    let mut provenance = Vec::new();
    let mut commits = Vec::new();
    for (revision, _) in &revisions {
        let built = cache.build(revision)?.map_err(anyhow::Error::from)?;
        builds.push(built.build);
        provenance.push(built.provenance);
        commits.push(describe(cache, revision)?);
    }
    let machine = harness::machine::describe(harness::binaries::profile());
    let [label_a, label_b] = [0, 1].map(|i| label(&revisions[i].1, &commits[i]));
    eprintln!(
        "comparing {label_a} (A) with {label_b} (B) on {} scenarios",
        set.scenarios.len()
    );
    let commits: [CommitInfo; 2] = commits.try_into().expect("two commits");
    let builds = builds.try_into().expect("two builds");
    let results = harness::runner::run_interleaved(set, commits, machine, config, builds)?;
    let stored = db.record_comparison(
        &results[0],
        &results[1],
        [&label_a, &label_b],
        &PairedOptions::default(),
    )?;
    let mut rows = stored.rows;
    sort_by_effect(&mut rows);
    Ok(Compared {
        label_a,
        label_b,
        provenance: provenance.try_into().expect("two builds"),
        results,
        rows,
        comparison_id: stored.id,
        overload: load_5m().and_then(|load| {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            overload_warning(load, cores)
        }),
    })
}

fn describe(cache: &BuildCache, revision: &Revision) -> anyhow::Result<CommitInfo> {
    Ok(match revision {
        Revision::Commit(sha) => harness::commit::describe(cache.repo(), sha, None)?,
        Revision::WorkingTree => harness::commit::describe_head(cache.repo())?,
    })
}

fn label(name: &str, commit: &CommitInfo) -> String {
    let sha = short_sha(&commit.sha);
    if name == "working tree" {
        format!(
            "working tree ({sha}{})",
            if commit.dirty { ", with uncommitted changes" } else { "" }
        )
    } else if commit.sha.starts_with(name) {
        sha.to_owned()
    } else {
        format!("{name} ({sha})")
    }
}

pub fn main(args: CompareArgs) -> ExitCode {
    match run(args) {
        Ok(regressed) => ExitCode::from(u8::from(regressed)),
        Err(err) if matches!(err.downcast_ref(), Some(harness::HarnessError::Interrupted)) => {
            eprintln!("interrupted: nothing was written");
            ExitCode::from(130)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Returns whether B regressed.
fn run(args: CompareArgs) -> anyhow::Result<bool> {
    let set = load_set(&args.scenarios, args.only.as_deref(), args.rounds)?;
    let cache = args.builds.cache()?;
    let a = Revision::Commit(cache.resolve(&args.rev_a)?);
    let (b, b_name) = match &args.rev_b {
        Some(rev) => (Revision::Commit(cache.resolve(rev)?), rev.clone()),
        None => (Revision::WorkingTree, "working tree".to_owned()),
    };
    let mut db = Database::open(&args.db)?;
    let config = args.harness.config_for_builds()?;
    let c = compare(&cache, &set, [(a, args.rev_a.clone()), (b, b_name)], &config, &mut db)?;
    print!("{}", table(&c, args.all));
    if let Some(w) = &c.overload {
        eprintln!("warning: {w}");
    }
    if let Some(path) = &args.markdown {
        let mut text = markdown([&c.label_a, &c.label_b], [&c.provenance[0], &c.provenance[1]], &c.rows);
        if let Some(w) = &c.overload {
            let _ = writeln!(text, "\n> **Warning:** {w}");
        }
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&json(&c)).expect("JSON values serialize");
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("stored as comparison {} in {}", c.comparison_id, args.db.display());
    Ok(c.rows.iter().any(|r| r.is(Verdict::Regression)))
}

fn change(r: &ComparisonRow) -> String {
    r.change().map_or_else(|| "-".into(), percent)
}

fn interval(r: &ComparisonRow) -> String {
    match (r.ci_lower, r.ci_upper) {
        (Some(lo), Some(hi)) => percent_interval(lo - 1.0, hi - 1.0),
        _ => "-".into(),
    }
}

fn p(r: &ComparisonRow) -> String {
    r.p_value.map_or_else(|| "-".into(), p_value)
}

/// A row's verdict as the reports show it.
fn verdict_shown(r: &ComparisonRow) -> &'static str {
    if r.not_judged() { "not judged" } else { r.verdict_name() }
}

fn counts(rows: &[ComparisonRow]) -> String {
    let n = |v: Option<Verdict>| rows.iter().filter(|r| r.verdict == v).count();
    let unjudged = rows.iter().filter(|r| r.not_judged()).count();
    format!(
        "{} regressions, {} improvements, {} unchanged, {} noisy, {} not comparable{}",
        n(Some(Verdict::Regression)),
        n(Some(Verdict::Improvement)),
        n(Some(Verdict::Unchanged)),
        n(Some(Verdict::Noisy)),
        n(None) - unjudged,
        if unjudged > 0 {
            format!(", {unjudged} not judged (shares of a core, preemptions, totals of fixed-duration rounds)")
        } else {
            String::new()
        }
    )
}

fn table(c: &Compared, all: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "A: {}, {}\nB: {}, {}\n{}\n",
        c.label_a,
        c.provenance[0],
        c.label_b,
        c.provenance[1],
        counts(&c.rows)
    );
    let _ = writeln!(
        out,
        "{:<12} {:<36} {:<26} {:>12} {:>12} {:>8} {:>18} {:>8}",
        "verdict", "scenario", "metric", "A median", "B median", "change", "95% CI", "p"
    );
    for r in c
        .rows
        .iter()
        .filter(|r| all || !matches!(r.verdict, Some(Verdict::Unchanged) | None))
    {
        let _ = writeln!(
            out,
            "{:<12} {:<36} {:<26} {:>12} {:>12} {:>8} {:>18} {:>8}",
            verdict_shown(r),
            r.scenario_id,
            r.metric,
            value(r.median_a),
            value(r.median_b),
            change(r),
            interval(r),
            p(r)
        );
    }
    out
}

/// Text from outside (branch names, subjects) as plain text in a report: Markdown's special
/// characters escaped (`|` too, which would end a table cell), `&` as an entity (an entity
/// reference would render), and GitLab's mentions (`@`) and math (`$`) escaped.
fn md_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            c if "\\`*_{}[]<>()#+-.!|~@$".contains(c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The report as a merge-request comment: the verdict in its heading, which build each side
/// was, the changes in a table, every metric in a collapsed table, and how to read it.
fn markdown(labels: [&str; 2], provenance: [&str; 2], rows: &[ComparisonRow]) -> String {
    let mut out = String::new();
    let regressions = rows.iter().filter(|r| r.is(Verdict::Regression)).count();
    let _ = writeln!(
        out,
        "### Benchmarks: {}\n",
        if regressions > 0 { "regression" } else { "no regression" }
    );
    out.push_str("| | revision | build |\n|---|---|---|\n");
    for (side, (label, provenance)) in ["A", "B"].iter().zip(labels.iter().zip(provenance)) {
        // The provenance is this program's own text, with the build command in a code span.
        let _ = writeln!(out, "| **{side}** | {} | {provenance} |", md_escape(label));
    }
    let _ = writeln!(out, "\n{}.\n", counts(rows));
    let row = |r: &ComparisonRow| {
        format!(
            "| {} | `{}` | `{}` | {} | {} | {} | {} | {} |\n",
            verdict_shown(r),
            r.scenario_id,
            r.metric,
            value(r.median_a),
            value(r.median_b),
            change(r),
            interval(r),
            p(r)
        )
    };
    let head = "| verdict | scenario | metric | A median | B median | change | 95% CI of the change | p |\n|---|---|---|---:|---:|---:|---:|---:|\n";
    let changes: Vec<&ComparisonRow> = rows
        .iter()
        .filter(|r| r.verdict.is_some_and(Verdict::is_change))
        .collect();
    if !changes.is_empty() {
        out.push_str(head);
        changes.iter().for_each(|r| out.push_str(&row(r)));
        out.push('\n');
    }
    let _ = writeln!(out, "<details><summary>All {} metrics</summary>\n", rows.len());
    out.push_str(head);
    rows.iter().for_each(|r| out.push_str(&row(r)));
    out.push_str("\n</details>\n\n");
    let tested = rows.iter().filter(|r| r.p_value.is_some()).count();
    out.push_str(&PairedOptions::default().method(tested).join(" "));
    out.push('\n');
    if rows.iter().any(|r| contract::metrics::is_counted(&r.metric)) {
        use collector::statistics::counts::{COUNT_ABSOLUTE_FLOOR, UNKNOWN_SERVER_SPREAD, UNKNOWN_SPREAD};
        let _ = writeln!(
            out,
            "\nInstruction counts (`client_instructions`, `server_instructions`) have one value per build and no test or interval: B changed when its count moved beyond {}% (client) or {}% (server) and beyond {COUNT_ABSOLUTE_FLOOR} instructions.",
            UNKNOWN_SPREAD * 100.0,
            UNKNOWN_SERVER_SPREAD * 100.0
        );
    }
    out
}

fn json(c: &Compared) -> serde_json::Value {
    serde_json::json!({
        "a": {"label": c.label_a, "commit": c.results[0].commit.sha, "run": c.results[0].run.id, "build": c.provenance[0]},
        "b": {"label": c.label_b, "commit": c.results[1].commit.sha, "run": c.results[1].run.id, "build": c.provenance[1]},
        "comparison_id": c.comparison_id,
        "regression": c.rows.iter().any(|r| r.is(Verdict::Regression)),
        "overload": c.overload,
        "rows": c.rows.iter().map(|r| serde_json::json!({
            "scenario": r.scenario_id,
            "metric": r.metric,
            "unit": r.unit,
            "better": r.direction.as_str(),
            "rounds": r.rounds,
            "median_a": r.median_a,
            "median_b": r.median_b,
            "ratio": r.ratio,
            "ci_lower": r.ci_lower,
            "ci_upper": r.ci_upper,
            "p_value": r.p_value,
            "verdict": r.verdict_name(),
            "note": r.note,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use collector::comparison::{FOLLOWS_THROUGHPUT, SHARE_OF_A_CORE};

    #[test]
    fn an_overloaded_machine_is_named_and_a_busy_one_is_not() {
        // Two cores: 8 runnable tasks is the edge.
        assert_eq!(overload_warning(8.0, 2), None);
        assert_eq!(overload_warning(3.9, 1), None);
        let w = overload_warning(10.2, 2).unwrap();
        assert!(w.contains("load average 10.2") && w.contains("on 2 cores"), "{w}");
        assert!(overload_warning(17.0, 4).is_some());
    }

    fn row(scenario: &str, metric: &str, verdict: &str, ratio: f64) -> ComparisonRow {
        ComparisonRow {
            scenario_id: scenario.into(),
            definition_hash: "0123456789abcdef".into(),
            metric: metric.into(),
            unit: "s".into(),
            direction: contract::Direction::Lower,
            rounds: 10,
            median_a: 1.0,
            median_b: ratio,
            ratio: Some(ratio),
            ci_lower: Some(ratio - 0.01),
            ci_upper: Some(ratio + 0.01),
            ci_level: Some(0.95),
            p_value: Some(0.001),
            verdict: Verdict::parse(verdict),
            note: None,
        }
    }

    /// A total of a fixed-duration round and a share of a core are "not judged", counted
    /// apart from the rows that have no ratio.
    #[test]
    fn unjudged_series_are_not_judged_in_the_reports() {
        let unjudged = ComparisonRow {
            ratio: None,
            ci_lower: None,
            ci_upper: None,
            p_value: None,
            verdict: None,
            note: Some(FOLLOWS_THROUGHPUT.into()),
            ..row("server.load/upload/10k/c10", "server_anon_peak_mib", "", 1.2)
        };
        let zero = ComparisonRow {
            note: Some("a sample is 0".into()),
            ..unjudged.clone()
        };
        let share = ComparisonRow {
            note: Some(SHARE_OF_A_CORE.into()),
            ..row("crypto.encrypt/v2/1x10m", "client_cpu_pct", "", 1.0)
        };
        let rows = [
            unjudged,
            zero,
            row("server.load/upload/10k/c10", "ops_s", "unchanged", 1.0),
            share.clone(),
        ];
        assert_eq!(
            counts(&rows),
            "0 regressions, 0 improvements, 1 unchanged, 0 noisy, 1 not comparable, \
             2 not judged (shares of a core, preemptions, totals of fixed-duration rounds)"
        );
        let text = markdown(["a", "b"], ["x", "y"], &rows);
        assert!(
            text.contains("| not judged | `server.load/upload/10k/c10` | `server_anon_peak_mib` |"),
            "{text}"
        );
        assert!(
            text.contains("| incomparable | `server.load/upload/10k/c10` | `server_anon_peak_mib` |"),
            "{text}"
        );
        assert!(
            text.contains("| not judged | `crypto.encrypt/v2/1x10m` | `client_cpu_pct` |"),
            "{text}"
        );
    }

    /// Rendered by a CommonMark renderer with GitLab's table extension, the report is two
    /// tables of builds and changes, and a collapsed table of every metric; labels from outside
    /// stay text.
    #[test]
    fn the_markdown_report_renders_as_tables() {
        let rows = [
            row("blobs.upload/10x100k/c1", "wall_s", "regression", 1.05),
            row("crypto.encrypt/v1/1x1M", "wall_s", "unchanged", 1.0),
        ];
        let text = markdown(
            ["main (0123456789)", "feat|*x*_y <b> &amp; @all $x$ (abcdef0123)"],
            [
                "cached build (built by `cargo build --release --locked` in 2m)",
                "built by the build command in 1s",
            ],
            &rows,
        );
        let mut options = pulldown_cmark::Options::empty();
        options.insert(pulldown_cmark::Options::ENABLE_TABLES);
        let mut html = String::new();
        pulldown_cmark::html::push_html(&mut html, pulldown_cmark::Parser::new_ext(&text, options));
        assert!(html.starts_with("<h3>Benchmarks: regression</h3>"), "{html}");
        assert_eq!(html.matches("<table>").count(), 3, "{html}");
        // The builds table: two rows of three cells, the label literal (no emphasis, no tag).
        assert!(
            html.contains("<td><strong>B</strong></td><td>feat|*x*_y &lt;b&gt; &amp;amp; @all $x$ (abcdef0123)</td>"),
            "{html}"
        );
        assert!(
            html.contains("<td>cached build (built by <code>cargo build --release --locked</code> in 2m)</td>"),
            "{html}"
        );
        // The changes table holds the regression only; every row has all eight cells.
        let changes = &html[html.find("<th>verdict</th>").unwrap()..html.find("<details>").unwrap()];
        assert_eq!(changes.matches("<tr>").count(), 1, "{changes}");
        assert!(changes.contains("<td>regression</td><td><code>blobs.upload/10x100k/c1</code></td>"));
        for tr in html.split("<tr>").skip(1) {
            let tr = &tr[..tr.find("</tr>").unwrap()];
            let cells = tr.matches("</td>").count() + tr.matches("</th>").count();
            assert!(cells == 3 || cells == 8, "a row of {cells} cells: {tr}");
        }
        assert!(html.contains("<details><summary>All 2 metrics</summary>"), "{html}");
        assert!(html.contains("</details>"));
        // Without count rows, nothing of the count rule; with one, its rule, and no interval.
        assert!(!text.contains("Instruction counts"), "{text}");
        let count = ComparisonRow {
            ci_lower: None,
            ci_upper: None,
            ci_level: None,
            p_value: None,
            unit: "instructions".into(),
            ..row("blobs.upload/10x100k/c1", "client_instructions", "unchanged", 1.001)
        };
        let text = markdown(["a", "b"], ["x", "y"], &[count]);
        assert!(
            text.contains(
                "| unchanged | `blobs.upload/10x100k/c1` | `client_instructions` | 1.000 | 1.001 | +0.1% | - | - |"
            ),
            "{text}"
        );
        assert!(
            text.contains("beyond 10% (client) or 25% (server) and beyond 100000 instructions"),
            "{text}"
        );
    }
}
