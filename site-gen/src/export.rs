//! What the site publishes for machines: the database (compressed), a CSV of every scenario's
//! points, and the per-commit data the compare selector loads.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::model::Model;
use crate::paths::DATABASE;
use crate::{SiteError, format};

/// Publishes the database as `out/bench.sqlite.gz`, the collector's compressed snapshot
/// (the same file `soledad-bench history publish` writes and `history fetch` reads back).
pub fn database(db_path: &Path, out: &Path) -> Result<PathBuf, SiteError> {
    let target = out.join(DATABASE);
    // A connection of our own: the caller's stays free for the pages meanwhile.
    collector::Database::open(db_path)?.export_compressed(&target)?;
    Ok(target)
}

/// A text cell as a spreadsheet will read it: a cell that begins with `=`, `+`, `-`, `@`, a
/// tab or a carriage return is a formula there (a commit subject such as
/// `=HYPERLINK(...)` would run when the file is opened), so it gets a leading apostrophe,
/// which makes spreadsheets read it as text (some then show the apostrophe). Numbers are
/// written as numbers.
fn text_cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// Every point of the series at `indexes` (one scenario's): a line per commit, five columns
/// per series (median, the interval, n, verdict), named by metric and unit (and machine and
/// definition where one scenario has a metric twice).
pub fn scenario_csv(model: &Model, indexes: &[usize]) -> String {
    let mut header = vec!["commit".to_owned(), "commit_time".into(), "subject".into()];
    for &i in indexes {
        let se = &model.series[i].series;
        let twice = indexes
            .iter()
            .filter(|&&o| model.series[o].series.metric == se.metric)
            .count()
            > 1;
        let name = if twice {
            format!(
                "{} [{}] {} {}",
                se.metric, se.unit, se.machine_fingerprint, se.definition_hash
            )
        } else {
            format!("{} [{}]", se.metric, se.unit)
        };
        for column in ["median", "ci_lower", "ci_upper", "n", "verdict"] {
            header.push(text_cell(&format!("{name} {column}")));
        }
    }
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let write =
        |out: &mut csv::Writer<Vec<u8>>, record: &[String]| out.write_record(record).expect("writing CSV to memory");
    write(&mut out, &header);
    // The scenario's commits, in published order.
    let mut commits: Vec<usize> = indexes
        .iter()
        .flat_map(|&i| {
            model.series[i]
                .points
                .iter()
                .filter_map(|p| model.commit_at.get(&p.commit.sha).copied())
        })
        .collect();
    commits.sort_unstable();
    commits.dedup();
    for c in commits {
        let commit = &model.commits[c].commit;
        let mut record = vec![
            commit.sha.clone(),
            format::rfc3339(commit.author_time),
            text_cell(&commit.subject),
        ];
        for &i in indexes {
            match model.point_at_commit(i, c) {
                Some(p) => {
                    let j = model.point_index_at(i, c).expect("a point is there");
                    let v = model.point_verdict(i, j).map(|v| v.verdict.as_str());
                    let sm = &p.summary;
                    record.extend([
                        sm.median.to_string(),
                        sm.ci_lower.to_string(),
                        sm.ci_upper.to_string(),
                        sm.n.to_string(),
                        v.unwrap_or("").to_owned(),
                    ]);
                }
                None => record.extend(std::iter::repeat_n(String::new(), 5)),
            }
        }
        write(&mut out, &record);
    }
    String::from_utf8(out.into_inner().expect("an in-memory writer cannot fail")).expect("CSV of UTF-8 text")
}

/// JSON for a script: no `<`, `>` or `&` at all (written as `\u003c` ...), so that the text
/// means the same inline in HTML as in a file of its own, and the two line separators
/// JavaScript once refused are escaped too.
pub fn script_json(value: &serde_json::Value) -> String {
    serde_json::to_string(value)
        .expect("JSON values serialize")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The series the compare selector knows: `data/series.js`.
pub fn series_js(model: &Model, files: &crate::paths::ScenarioFiles) -> String {
    let many = model.many_machines();
    let list: Vec<serde_json::Value> = model
        .series
        .iter()
        .map(|s| {
            let se = &s.series;
            serde_json::json!({
                "scenario": se.scenario_id,
                "metric": se.metric,
                "unit": se.unit,
                "better": se.direction,
                "machine": if many { se.machine_fingerprint.clone() } else { String::new() },
                "href": files.page(&se.scenario_id),
            })
        })
        .collect();
    let commits: Vec<serde_json::Value> = model
        .commits
        .iter()
        .rev()
        .map(|c| {
            serde_json::json!({
                "sha": c.commit.sha,
                "label": format!("{} {} ({})", format::short_sha(&c.commit.sha), format::truncate(&c.commit.subject, 60), format::day(c.commit.author_time)),
                "file": crate::paths::commit_file(&c.commit.sha).trim_end_matches(".html"),
            })
        })
        .collect();
    format!(
        "window.benchSeries = {};\nwindow.benchCommits = {};\n",
        script_json(&serde_json::Value::Array(list)),
        script_json(&serde_json::Value::Array(commits))
    )
}

/// One commit's points for the compare selector: `data/<sha>.js`. Loaded by adding a script
/// element, which works from disk where `fetch` does not.
pub fn commit_js(model: &Model, commit: usize) -> String {
    let sha = &model.commits[commit].commit.sha;
    let mut values = String::from("[");
    for i in 0..model.series.len() {
        if let Some(p) = model.point_at_commit(i, commit) {
            let s = &p.summary;
            write!(
                values,
                "[{i},{},{},{},{}],",
                json_number(s.median),
                json_number(s.ci_lower),
                json_number(s.ci_upper),
                s.n
            )
            .expect("writing to a string");
        }
    }
    if values.ends_with(',') {
        values.pop();
    }
    values.push(']');
    format!(
        "window.benchData = window.benchData || {{}};\nwindow.benchData[{}] = {values};\n",
        script_json(&serde_json::Value::String(sha.clone()))
    )
}

fn json_number(v: f64) -> String {
    if v.is_finite() { v.to_string() } else { "null".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_and_script_text_cannot_break_out() {
        assert_eq!(text_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(text_cell("plain - text"), "plain - text");
        let j = script_json(&serde_json::json!(["</script><script>alert(1)</script>"]));
        assert!(!j.contains('<') && !j.contains('>') && !j.contains('&'), "{j}");
        let back: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(back[0], "</script><script>alert(1)</script>");
    }
}
