//! `soledad-bench check`: the verdicts of a run, as a table for people, Markdown for a merge
//! request comment, or JSON; the exit status says whether a regression was found.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use collector::query::{Run, StoredVerdict};
use collector::statistics::STATISTICS_VERSION;
use collector::statistics::verdict::Verdict;
use collector::{AnalysisOptions, Database, Method};
use site_gen::format::{p_value, percent, percent_interval, share, short_sha, value};

/// Exit status when the run has a regression (1 is for errors).
pub const REGRESSION_EXIT: u8 = 3;

/// Print the verdicts of a run: exits with status 3 if a series regressed.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// The run: its number, its id (or a unique prefix of it), or `latest` (the last stored).
    #[arg(long, default_value = "latest")]
    run: String,
    /// The benchmark database.
    #[arg(long, default_value = "bench.sqlite")]
    db: PathBuf,
    /// `table` for a terminal, `markdown` for a merge request comment, `json` for tools.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// List unchanged series too (the table lists only the others by default).
    #[arg(long)]
    all: bool,
    /// Decide the verdicts again with this soledad-bench's statistics, paired ones from the
    /// raw samples of both sides.
    #[arg(long)]
    recompute: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Table,
    Markdown,
    Json,
}

pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    if !args.db.is_file() {
        anyhow::bail!(
            "database {} does not exist; record a run first with `soledad-bench run`",
            args.db.display()
        );
    }
    let mut db = Database::open(&args.db)?;
    let run = db.find_run(&args.run)?;
    let mut verdicts = db.verdicts(run.id)?;
    // Verdicts of older statistics, or a pairing decided by an older paired rule.
    let stale = verdicts.iter().any(|v| v.statistics_version < STATISTICS_VERSION)
        || db
            .pairing_statistics_version(run.id)?
            .is_some_and(|v| v < collector::statistics::paired::STATISTICS_VERSION);
    if args.recompute || stale || verdicts.is_empty() {
        let options = AnalysisOptions {
            redecide_pairs: true,
            ..AnalysisOptions::default()
        };
        db.analyze_run(run.id, &options)?;
        verdicts = db.verdicts(run.id)?;
    }
    let text = match args.format {
        Format::Table => table(&run, &verdicts, args.all),
        Format::Markdown => markdown(&run, &verdicts),
        Format::Json => serde_json::to_string_pretty(&json(&run, &verdicts))? + "\n",
    };
    print!("{text}");
    Ok(if verdicts.iter().any(|v| v.verdict == Verdict::Regression) {
        ExitCode::from(REGRESSION_EXIT)
    } else {
        ExitCode::SUCCESS
    })
}

/// "1 regression, 2 improvements, 30 unchanged" over the verdicts there are.
pub fn summary(verdicts: &[StoredVerdict]) -> String {
    let mut parts = Vec::new();
    for kind in Verdict::ALL {
        let n = verdicts.iter().filter(|v| v.verdict == kind).count();
        if n > 0 {
            let name = match (kind, n) {
                (Verdict::Regression, 1) => "regression".to_owned(),
                (Verdict::Improvement, 1) => "improvement".to_owned(),
                (Verdict::Regression | Verdict::Improvement, _) => format!("{}s", kind.as_str()),
                _ => kind.as_str().to_owned(),
            };
            parts.push(format!("{n} {name}"));
        }
    }
    if parts.is_empty() {
        "no series".into()
    } else {
        parts.join(", ")
    }
}

fn change(v: &StoredVerdict) -> String {
    match (v.relative_change, v.baseline_median) {
        (Some(r), _) => percent(r),
        (None, Some(_)) => "from 0".into(),
        (None, None) => "-".into(),
    }
}

fn ci(v: &StoredVerdict) -> String {
    v.relative_ci
        .map_or_else(|| "-".into(), |(lo, hi)| percent_interval(lo, hi))
}

fn q(v: &StoredVerdict) -> String {
    v.q_value.map_or_else(|| "-".into(), p_value)
}

fn floor(v: &StoredVerdict) -> String {
    share(v.threshold)
}

fn with_unit(x: f64, unit: &str) -> String {
    format!("{} {unit}", value(x))
}

fn label(v: &StoredVerdict) -> String {
    match v.change_point_id {
        Some(_) if v.gate_verdict != v.verdict => format!("{} (change point)", v.verdict.as_str()),
        _ => v.verdict.as_str().to_owned(),
    }
}

/// Which run, at which commit, against which baseline; `code` quotes names (Markdown).
fn heading(run: &Run, verdicts: &[StoredVerdict], code: bool) -> String {
    let q = |s: &str| if code { format!("`{s}`") } else { s.to_owned() };
    let baseline = verdicts.iter().find_map(|v| v.baseline_sha.as_deref()).map_or_else(
        || "no baseline (no earlier commit of its branch was measured)".into(),
        |s| format!("baseline {}", q(short_sha(s))),
    );
    format!(
        "run {} at {} ({}){}, {}",
        run.id,
        q(short_sha(&run.commit.sha)),
        run.commit.subject,
        run.branch.as_ref().map(|b| format!(" on {}", q(b))).unwrap_or_default(),
        baseline
    )
}

const COLUMNS: [&str; 9] = [
    "verdict", "scenario", "metric", "baseline", "commit", "change", "95% CI", "q", "floor",
];

/// One verdict's cells, in [`COLUMNS`] order.
fn cells(v: &StoredVerdict) -> [String; 9] {
    [
        label(v),
        v.scenario_id.clone(),
        v.metric.clone(),
        v.baseline_median.map_or_else(|| "-".into(), |b| with_unit(b, &v.unit)),
        with_unit(v.commit_median, &v.unit),
        change(v),
        ci(v),
        q(v),
        floor(v),
    ]
}

fn table(run: &Run, verdicts: &[StoredVerdict], all: bool) -> String {
    let mut out = String::new();
    writeln!(out, "{}", heading(run, verdicts, false)).unwrap();
    let header = COLUMNS;
    let rows: Vec<[String; 9]> = verdicts
        .iter()
        .filter(|v| all || v.verdict != Verdict::Unchanged)
        .map(cells)
        .collect();
    if !rows.is_empty() {
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate() {
                let pad = widths[i] - c.chars().count();
                l.push_str(c);
                if i + 1 < cells.len() {
                    l.push_str(&" ".repeat(pad + 2));
                }
            }
            l
        };
        writeln!(out, "{}", line(header.to_vec())).unwrap();
        for r in &rows {
            writeln!(out, "{}", line(r.iter().map(String::as_str).collect())).unwrap();
        }
    }
    let hidden = verdicts.len() - rows.len();
    write!(out, "{} series: {}", verdicts.len(), summary(verdicts)).unwrap();
    if hidden > 0 {
        write!(out, " ({hidden} unchanged not listed; --all lists them)").unwrap();
    }
    out.push('\n');
    out
}

fn markdown(run: &Run, verdicts: &[StoredVerdict]) -> String {
    let mut out = String::new();
    let regressions = verdicts.iter().filter(|v| v.verdict == Verdict::Regression).count();
    writeln!(
        out,
        "### Benchmarks: {}\n",
        if regressions > 0 {
            format!("**{}**", summary(verdicts))
        } else {
            summary(verdicts)
        }
    )
    .unwrap();
    writeln!(out, "Benchmark {}.\n", heading(run, verdicts, true)).unwrap();
    let paired: Vec<&StoredVerdict> = verdicts.iter().filter(|v| v.method == Method::Paired).collect();
    let history: Vec<&StoredVerdict> = verdicts.iter().filter(|v| v.method == Method::History).collect();
    if let Some(first) = paired.first() {
        writeln!(
            out,
            "{} series were decided by rounds paired with the previous commit's binaries in this job ({}): \
             a change is called when the one-sided t-test of the per-round ratios (Benjamini-Hochberg across them) \
             is under {} and the ratio moves more than 1%.\n",
            paired.len(),
            run.pairing.as_deref().unwrap_or("paired"),
            first.alpha
        )
        .unwrap();
    } else if let Some(note) = run.pairing.as_deref() {
        writeln!(out, "Rounds: {note}.\n").unwrap();
    }
    if let Some(first) = history.first() {
        writeln!(
            out,
            "A change of the {} series decided against the history is called when its rank-test q-value \
             (Benjamini-Hochberg across them) is under {} and the shift exceeds both the series' noise floor and 1%.\n",
            history.len(),
            first.alpha
        )
        .unwrap();
    }
    let header = format!("| {} |\n|{}\n", COLUMNS.join(" | "), "---|".repeat(COLUMNS.len()));
    let header = header.as_str();
    let row = |v: &StoredVerdict| {
        let mut c = cells(v);
        if v.verdict == Verdict::Regression {
            c[0] = format!("**{}**", c[0]);
        }
        c[1] = format!("`{}`", c[1]);
        c[2] = format!("`{}`", c[2]);
        format!("| {} |\n", c.join(" | "))
    };
    let (changes, rest): (Vec<&StoredVerdict>, Vec<&StoredVerdict>) =
        verdicts.iter().partition(|v| v.verdict.is_change());
    if !changes.is_empty() {
        out.push_str(header);
        for v in changes {
            out.push_str(&row(v));
        }
        out.push('\n');
    }
    if !rest.is_empty() {
        writeln!(
            out,
            "<details><summary>{} other series ({})</summary>\n",
            rest.len(),
            summary(&rest.iter().map(|v| (*v).clone()).collect::<Vec<_>>())
        )
        .unwrap();
        out.push_str(header);
        for v in rest {
            out.push_str(&row(v));
        }
        out.push_str("\n</details>\n");
    }
    out
}

fn json(run: &Run, verdicts: &[StoredVerdict]) -> serde_json::Value {
    serde_json::json!({
        "run": {
            "id": run.id,
            "uuid": run.uuid,
            "commit": run.commit.sha,
            "subject": run.commit.subject,
            "branch": run.branch,
        },
        "summary": summary(verdicts),
        "verdicts": verdicts.iter().map(|v| serde_json::json!({
            "scenario": v.scenario_id,
            "metric": v.metric,
            "unit": v.unit,
            "better": v.direction,
            "verdict": v.verdict.as_str(),
            "gate_verdict": v.gate_verdict.as_str(),
            "change_point": v.change_point_id,
            "baseline_commit": v.baseline_sha,
            "baseline_median": v.baseline_median,
            "commit_median": v.commit_median,
            "relative_change": v.relative_change,
            "relative_ci": v.relative_ci.map(|(a, b)| [a, b]),
            "p_value": v.p_value,
            "q_value": v.q_value,
            "noise_floor": v.noise_floor,
            "threshold": v.threshold,
        })).collect::<Vec<_>>(),
    })
}
