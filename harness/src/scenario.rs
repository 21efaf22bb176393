//! Scenario files: which workloads to run with which parameter grids and round budgets.
//! The format is documented in `scenarios/README.md`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use workloads::{Params, WorkloadKind, parse_size};

/// Fewer measured rounds than this cannot give a useful confidence interval.
pub const MIN_ROUNDS: u32 = 5;
const DEFAULT_ROUNDS: u32 = 10;
const DEFAULT_WARMUP: u32 = 1;

/// A mistake in a scenario file, located as precisely as the file allows.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", location(path, *line, *column))]
pub struct ScenarioError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

fn location(path: &Path, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", path.display()),
        (Some(l), None) => format!("{}:{l}", path.display()),
        _ => path.display().to_string(),
    }
}

/// A scenario to run: the workload's parameters and its round budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedScenario {
    pub params: Params,
    pub warmup_rounds: u32,
    pub rounds: u32,
}

impl PlannedScenario {
    pub fn id(&self) -> String {
        self.params.scenario_id()
    }
}

/// A parsed and validated scenario file.
#[derive(Debug, Clone)]
pub struct ScenarioSet {
    pub path: PathBuf,
    pub description: Option<String>,
    pub scenarios: Vec<PlannedScenario>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    description: Option<String>,
    warmup_rounds: Option<Spanned<u32>>,
    rounds: Option<Spanned<u32>>,
    #[serde(default, rename = "scenario")]
    scenarios: Vec<Spanned<ScenarioToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioToml {
    workload: WorkloadKind,
    payloads: Spanned<Vec<Payload>>,
    concurrency: Spanned<Vec<Spanned<u32>>>,
    warmup_rounds: Option<Spanned<u32>>,
    rounds: Option<Spanned<u32>>,
}

/// `COUNTxSIZE`, such as `10x100k`.
struct Payload {
    count: u32,
    size: u64,
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_payload(&text).map_err(serde::de::Error::custom)
    }
}

fn parse_payload(text: &str) -> Result<Payload, String> {
    let bad = || {
        format!("invalid payload {text:?}: expected COUNTxSIZE such as \"10x100k\" or \"1x10M\"")
    };
    let (count, size) = text.split_once('x').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let size = parse_size(size).map_err(|e| format!("invalid payload {text:?}: {e}"))?;
    if count == 0 {
        return Err(format!(
            "invalid payload {text:?}: the count must be at least 1"
        ));
    }
    Ok(Payload { count, size })
}

impl ScenarioSet {
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            path: path.to_owned(),
            line: None,
            column: None,
            message: format!("cannot read scenario file: {e}"),
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ScenarioError> {
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, column) = line_col(text, span.start);
            ScenarioError {
                path: path.to_owned(),
                line: Some(line),
                column: Some(column),
                message,
            }
        };
        let file: FileToml = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => at(span, e.message().trim().to_owned()),
            None => ScenarioError {
                path: path.to_owned(),
                line: None,
                column: None,
                message: e.message().trim().to_owned(),
            },
        })?;
        if file.scenarios.is_empty() {
            return Err(ScenarioError {
                path: path.to_owned(),
                line: None,
                column: None,
                message: "no [[scenario]] tables: a scenario file must define at least one".into(),
            });
        }
        let rounds_of = |v: &Option<Spanned<u32>>, field: &str, default: u32, min: u32| match v {
            None => Ok(default),
            Some(s) if *s.get_ref() >= min => Ok(*s.get_ref()),
            Some(s) => Err(at(
                s.span(),
                format!(
                    "field `{field}`: must be at least {min}, got {}",
                    s.get_ref()
                ),
            )),
        };
        let default_warmup = rounds_of(&file.warmup_rounds, "warmup_rounds", DEFAULT_WARMUP, 0)?;
        let default_rounds = rounds_of(&file.rounds, "rounds", DEFAULT_ROUNDS, MIN_ROUNDS)?;

        let mut scenarios: Vec<PlannedScenario> = Vec::new();
        for entry in &file.scenarios {
            let s = entry.get_ref();
            let warmup_rounds = rounds_of(&s.warmup_rounds, "warmup_rounds", default_warmup, 0)?;
            let rounds = rounds_of(&s.rounds, "rounds", default_rounds, MIN_ROUNDS)?;
            if s.payloads.get_ref().is_empty() {
                return Err(at(
                    s.payloads.span(),
                    "field `payloads`: list at least one COUNTxSIZE".into(),
                ));
            }
            if s.concurrency.get_ref().is_empty() {
                return Err(at(
                    s.concurrency.span(),
                    "field `concurrency`: list at least one level".into(),
                ));
            }
            for payload in s.payloads.get_ref() {
                for c in s.concurrency.get_ref() {
                    if *c.get_ref() == 0 {
                        return Err(at(
                            c.span(),
                            "field `concurrency`: levels must be at least 1".into(),
                        ));
                    }
                    let planned = PlannedScenario {
                        params: Params {
                            workload: s.workload,
                            count: payload.count,
                            size: payload.size,
                            concurrency: *c.get_ref(),
                        },
                        warmup_rounds,
                        rounds,
                    };
                    if scenarios.iter().any(|p| p.id() == planned.id()) {
                        return Err(at(
                            entry.span(),
                            format!("scenario {} is defined twice", planned.id()),
                        ));
                    }
                    scenarios.push(planned);
                }
            }
        }
        Ok(Self {
            path: path.to_owned(),
            description: file.description,
            scenarios,
        })
    }

    /// Measured plus warm-up rounds over all scenarios.
    pub fn total_rounds(&self) -> u64 {
        self.scenarios
            .iter()
            .map(|s| (s.warmup_rounds + s.rounds) as u64)
            .sum()
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ScenarioSet, ScenarioError> {
        ScenarioSet::parse(Path::new("set.toml"), text)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn expands_the_grid_in_order() {
        let set = parse(
            r#"
description = "demo"
rounds = 6
[[scenario]]
workload = "blobs.upload"
payloads = ["10x100k", "1x1M"]
concurrency = [1, 10]
[[scenario]]
workload = "blobs.download"
payloads = ["10x100k"]
concurrency = [4]
warmup_rounds = 0
rounds = 7
"#,
        )
        .unwrap();
        let ids: Vec<_> = set.scenarios.iter().map(|s| s.id()).collect();
        assert_eq!(
            ids,
            [
                "blobs.upload/10x100k/c1",
                "blobs.upload/10x100k/c10",
                "blobs.upload/1x1M/c1",
                "blobs.upload/1x1M/c10",
                "blobs.download/10x100k/c4"
            ]
        );
        assert_eq!(set.scenarios[0].rounds, 6);
        assert_eq!(set.scenarios[0].warmup_rounds, 1);
        assert_eq!(
            (set.scenarios[4].warmup_rounds, set.scenarios[4].rounds),
            (0, 7)
        );
        assert_eq!(set.total_rounds(), 4 * 7 + 7);
    }

    #[test]
    fn every_mistake_names_file_line_and_field() {
        let base = "[[scenario]]\nworkload = \"blobs.upload\"\npayloads = [\"10x100k\"]\nconcurrency = [1]\n";
        assert_eq!(parse(base).unwrap().scenarios.len(), 1);

        let e = err(&base.replace("blobs.upload", "blobs.uplod"));
        assert!(e.starts_with("set.toml:2:"), "{e}");
        assert!(
            e.contains("blobs.uplod") && e.contains("blobs.upload"),
            "{e}"
        );

        let e = err(&base.replace("10x100k", "10y100k"));
        assert!(e.starts_with("set.toml:3:"), "{e}");
        assert!(e.contains("COUNTxSIZE"), "{e}");

        let e = err(&base.replace("10x100k", "0x100k"));
        assert!(
            e.starts_with("set.toml:3:") && e.contains("at least 1"),
            "{e}"
        );

        let e = err(&format!("{base}speed = 3\n"));
        assert!(e.starts_with("set.toml:"), "{e}");
        assert!(e.contains("unknown field `speed`"), "{e}");

        let e = err(&format!("rounds = 2\n{base}"));
        assert!(
            e.starts_with("set.toml:1:")
                && e.contains("field `rounds`")
                && e.contains("at least 5"),
            "{e}"
        );

        let e = err(&base.replace("[1]", "[]"));
        assert!(
            e.starts_with("set.toml:4:") && e.contains("field `concurrency`"),
            "{e}"
        );

        let e = err(&base.replace("[1]", "[0]"));
        assert!(
            e.starts_with("set.toml:4:") && e.contains("at least 1"),
            "{e}"
        );

        let e = err(&base.replace("[1]", "[\"one\"]"));
        assert!(e.starts_with("set.toml:4:"), "{e}");

        let e = err(&format!("{base}{base}"));
        assert!(
            e.starts_with("set.toml:5:") && e.contains("defined twice"),
            "{e}"
        );

        let e = err("description = \"nothing\"\n");
        assert!(e.contains("no [[scenario]]"), "{e}");

        let e = err("[[scenario]\n");
        assert!(e.starts_with("set.toml:1:"), "{e}");

        let e = err(&base.replace("payloads = [\"10x100k\"]\n", ""));
        assert!(e.contains("missing field `payloads`"), "{e}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = ScenarioSet::load(Path::new("/nonexistent/x.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/x.toml: cannot read scenario file"),
            "{e}"
        );
    }
}
