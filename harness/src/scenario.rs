//! Scenario files: which workloads to run with which parameter grids and round budgets.
//! The format is documented in `scenarios/README.md`.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use contract::budget::{Budget, MIN_ROUNDS};

use serde::Deserialize;
use toml::Spanned;
use workloads::spec::Key;
use workloads::{
    BlobFormat, Op, Params, ServerBackendKind, Size, StoreBackend, SyncDirection, WorkloadKind, parse_size,
};

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
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedScenario {
    pub params: Params,
    pub budget: Budget,
    /// Whether the scenario gets a count round when Valgrind is there (`count_round`, on by
    /// default for workloads that do a fixed amount of work, and only for those).
    pub count_round: bool,
    /// Whether a per-commit run paired with a kept build (`run --baseline`) pairs its rounds
    /// (`paired`, on by default); off, it runs the commit's build alone and is judged by its
    /// history, for scenarios whose pairing costs more than it gains (fixed-duration rounds
    /// that pairing doubles). `compare` pairs every scenario.
    pub paired: bool,
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

/// Round-budget keys, allowed at the top of the file and in each scenario. (Repeated in both
/// structs below rather than flattened: serde cannot deny unknown keys around a flatten.)
#[derive(Default)]
struct BudgetToml {
    warmup_rounds: Option<Spanned<u32>>,
    rounds: Option<Spanned<u32>>,
    min_rounds: Option<Spanned<u32>>,
    max_rounds: Option<Spanned<u32>>,
    max_time_s: Option<Spanned<f64>>,
    target_ci: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    description: Option<String>,
    warmup_rounds: Option<Spanned<u32>>,
    rounds: Option<Spanned<u32>>,
    min_rounds: Option<Spanned<u32>>,
    max_rounds: Option<Spanned<u32>>,
    max_time_s: Option<Spanned<f64>>,
    target_ci: Option<Spanned<f64>>,
    count_round: Option<Spanned<bool>>,
    paired: Option<Spanned<bool>>,
    #[serde(default, rename = "scenario")]
    scenarios: Vec<Spanned<ScenarioToml>>,
}

type List<T> = Option<Spanned<Vec<Spanned<T>>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioToml {
    workload: Spanned<WorkloadKind>,
    payloads: List<Payload>,
    sizes: List<SizeText>,
    concurrency: List<u32>,
    formats: List<BlobFormat>,
    stores: List<StoreBackend>,
    backends: List<ServerBackendKind>,
    directions: List<SyncDirection>,
    ops: List<Op>,
    duration_s: Option<Spanned<u32>>,
    warmup_rounds: Option<Spanned<u32>>,
    rounds: Option<Spanned<u32>>,
    min_rounds: Option<Spanned<u32>>,
    max_rounds: Option<Spanned<u32>>,
    max_time_s: Option<Spanned<f64>>,
    target_ci: Option<Spanned<f64>>,
    count_round: Option<Spanned<bool>>,
    paired: Option<Spanned<bool>>,
}

macro_rules! budget_of {
    ($t:expr) => {
        BudgetToml {
            warmup_rounds: $t.warmup_rounds.clone(),
            rounds: $t.rounds.clone(),
            min_rounds: $t.min_rounds.clone(),
            max_rounds: $t.max_rounds.clone(),
            max_time_s: $t.max_time_s.clone(),
            target_ci: $t.target_ci.clone(),
        }
    };
}

/// `COUNTxSIZE`, such as `10x100k` or `100xmail`.
#[derive(Clone, Copy)]
struct Payload {
    count: u32,
    size: Size,
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_payload(&text).map_err(serde::de::Error::custom)
    }
}

fn parse_payload(text: &str) -> Result<Payload, String> {
    let bad =
        || format!("invalid payload {text:?}: expected COUNTxSIZE such as \"10x100k\", \"1x10M\" or \"100xmail\"");
    let (count, size) = text.split_once('x').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let size = parse_size(size).map_err(|e| format!("invalid payload {text:?}: {e}"))?;
    if count == 0 {
        return Err(format!("invalid payload {text:?}: the count must be at least 1"));
    }
    Ok(Payload { count, size })
}

/// A blob size on its own, such as `10k`.
#[derive(Clone, Copy)]
struct SizeText(Size);

impl<'de> Deserialize<'de> for SizeText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_size(&text).map(SizeText).map_err(serde::de::Error::custom)
    }
}

struct Parser<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Parser<'_> {
    fn at(&self, span: Range<usize>, message: String) -> ScenarioError {
        let (line, column) = line_col(self.text, span.start);
        ScenarioError {
            path: self.path.to_owned(),
            line: Some(line),
            column: Some(column),
            message,
        }
    }

    fn budget(&self, t: &BudgetToml, inherited: &Budget) -> Result<Budget, ScenarioError> {
        let mut b = inherited.clone();
        let check_u32 = |v: &Spanned<u32>, field: &str, min: u32| {
            if *v.get_ref() >= min {
                Ok(*v.get_ref())
            } else {
                Err(self.at(
                    v.span(),
                    format!("field `{field}`: must be at least {min}, got {}", v.get_ref()),
                ))
            }
        };
        if let Some(v) = &t.warmup_rounds {
            b.warmup_rounds = *v.get_ref();
        }
        if let Some(v) = &t.rounds {
            if t.min_rounds.is_some() || t.max_rounds.is_some() {
                return Err(self.at(
                    v.span(),
                    "field `rounds`: give either `rounds` (fixed) or `min_rounds`/`max_rounds`".into(),
                ));
            }
            let n = check_u32(v, "rounds", MIN_ROUNDS)?;
            b.min_rounds = n;
            b.max_rounds = n;
        }
        if let Some(v) = &t.min_rounds {
            b.min_rounds = check_u32(v, "min_rounds", MIN_ROUNDS)?;
            b.max_rounds = b.max_rounds.max(b.min_rounds);
        }
        if let Some(v) = &t.max_rounds {
            b.max_rounds = check_u32(v, "max_rounds", b.min_rounds)?;
        }
        if let Some(v) = &t.max_time_s {
            let s = *v.get_ref();
            if !(s > 0.0 && s.is_finite()) {
                return Err(self.at(
                    v.span(),
                    format!("field `max_time_s`: must be a positive number of seconds, got {s}"),
                ));
            }
            b.max_time = Duration::from_secs_f64(s);
        }
        if let Some(v) = &t.target_ci {
            let c = *v.get_ref();
            if !(c > 0.0 && c < 1.0) {
                return Err(self.at(
                    v.span(),
                    format!("field `target_ci`: must be a fraction between 0 and 1 (0.02 is 2%), got {c}"),
                ));
            }
            b.target_ci = c;
        }
        Ok(b)
    }

    /// The values of a grid key, after checking that the workload takes it.
    fn values<T: Copy>(
        &self,
        list: &List<T>,
        key: Key,
        field: &str,
        workload: WorkloadKind,
        scenario_span: &Range<usize>,
        default: T,
    ) -> Result<Vec<T>, ScenarioError> {
        match (list, key) {
            (Some(l), Key::No) => Err(self.at(
                l.span(),
                format!("field `{field}` does not apply to workload {workload}"),
            )),
            (None, Key::Required) => Err(self.at(
                scenario_span.clone(),
                format!("workload {workload} needs the field `{field}`"),
            )),
            (None, _) => Ok(vec![default]),
            (Some(l), _) if l.get_ref().is_empty() => {
                Err(self.at(l.span(), format!("field `{field}`: list at least one value")))
            }
            (Some(l), _) => Ok(l.get_ref().iter().map(|v| *v.get_ref()).collect()),
        }
    }
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
        let p = Parser { path, text };
        let file: FileToml = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => p.at(span, e.message().trim().to_owned()),
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
        let file_budget = p.budget(&budget_of!(file), &Budget::default())?;
        let mut scenarios: Vec<PlannedScenario> = Vec::new();
        for entry in &file.scenarios {
            let s = entry.get_ref();
            let span = entry.span();
            let w = *s.workload.get_ref();
            let shape = w.spec().shape;
            let budget = p.budget(&budget_of!(s), &file_budget)?;
            let count_round = match (&s.count_round, w.fixed_work()) {
                (Some(c), false) if *c.get_ref() => {
                    return Err(p.at(
                        c.span(),
                        format!(
                            "field `count_round`: {} runs for a duration, so its instruction count would follow the machine's speed; it has no count round",
                            w.name()
                        ),
                    ));
                }
                (Some(c), _) => *c.get_ref(),
                (None, fixed) => fixed && file.count_round.as_ref().is_none_or(|c| *c.get_ref()),
            };
            let paired = s.paired.as_ref().or(file.paired.as_ref()).is_none_or(|p| *p.get_ref());

            let concurrency = p.values(&s.concurrency, shape.concurrency, "concurrency", w, &span, 1)?;
            if let Some(l) = &s.concurrency
                && let Some(zero) = l.get_ref().iter().find(|c| *c.get_ref() == 0)
            {
                return Err(p.at(zero.span(), "field `concurrency`: levels must be at least 1".into()));
            }
            let formats = p.values(&s.formats, shape.formats, "formats", w, &span, BlobFormat::V1)?;
            let stores = p.values(&s.stores, shape.stores, "stores", w, &span, StoreBackend::Sqlcipher)?;
            let backends = p.values(&s.backends, shape.backends, "backends", w, &span, ServerBackendKind::Fs)?;
            let directions = p.values(
                &s.directions,
                shape.directions,
                "directions",
                w,
                &span,
                SyncDirection::Up,
            )?;
            let ops = p.values(&s.ops, shape.ops, "ops", w, &span, Op::Write)?;
            if let Some(l) = &s.ops
                && let Some(bad) = l.get_ref().iter().find(|o| !shape.allowed_ops.contains(o.get_ref()))
            {
                let allowed: Vec<String> = shape.allowed_ops.iter().map(|o| o.name()).collect();
                return Err(p.at(
                    bad.span(),
                    format!("field `ops`: workload {w} runs {}", allowed.join(" or ")),
                ));
            }
            let payloads: Vec<Payload> = if shape.sizes == Key::Required {
                p.values(
                    &s.payloads,
                    Key::No,
                    "payloads",
                    w,
                    &span,
                    Payload {
                        count: 0,
                        size: Size::Fixed(0),
                    },
                )?;
                let sizes = p.values(&s.sizes, Key::Required, "sizes", w, &span, SizeText(Size::Fixed(0)))?;
                if let Some(l) = &s.sizes
                    && let Some(mail) = l.get_ref().iter().find(|v| !matches!(v.get_ref().0, Size::Fixed(_)))
                {
                    return Err(p.at(mail.span(), format!("field `sizes`: workload {w} needs fixed sizes")));
                }
                sizes.into_iter().map(|s| Payload { count: 0, size: s.0 }).collect()
            } else {
                p.values(&s.sizes, Key::No, "sizes", w, &span, SizeText(Size::Fixed(0)))?;
                p.values(
                    &s.payloads,
                    Key::Required,
                    "payloads",
                    w,
                    &span,
                    Payload {
                        count: 0,
                        size: Size::Fixed(0),
                    },
                )?
            };
            let duration = match (&s.duration_s, shape.duration_s) {
                (Some(d), Key::No) => {
                    return Err(p.at(d.span(), format!("field `duration_s` does not apply to workload {w}")));
                }
                (Some(d), _) if *d.get_ref() == 0 => {
                    return Err(p.at(d.span(), "field `duration_s`: must be at least 1 second".into()));
                }
                (Some(d), _) => Some(*d.get_ref()),
                (None, Key::No) => None,
                (None, _) => Some(10),
            };

            let on = |key: Key| key != Key::No;
            for &op in &ops {
                for &direction in &directions {
                    for &format in &formats {
                        for &store in &stores {
                            for &backend in &backends {
                                for payload in &payloads {
                                    for &c in &concurrency {
                                        let params = Params {
                                            format: on(shape.formats).then_some(format),
                                            store: on(shape.stores).then_some(store),
                                            backend: (on(shape.backends)
                                                && !(shape.implicit_fs_backend && backend == ServerBackendKind::Fs))
                                                .then_some(backend),
                                            direction: on(shape.directions).then_some(direction),
                                            op: on(shape.ops).then_some(op),
                                            duration_s: duration,
                                            ..Params::new(w, payload.count, payload.size, c)
                                        };
                                        let planned = PlannedScenario {
                                            params,
                                            budget: budget.clone(),
                                            count_round,
                                            paired,
                                        };
                                        if scenarios.iter().any(|p| p.id() == planned.id()) {
                                            return Err(p.at(
                                                span.clone(),
                                                format!("scenario {} is defined twice", planned.id()),
                                            ));
                                        }
                                        scenarios.push(planned);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(Self {
            path: path.to_owned(),
            description: file.description,
            scenarios,
        })
    }

    /// The most rounds (warm-up included) the set can take.
    pub fn max_rounds(&self) -> u64 {
        self.scenarios
            .iter()
            .map(|s| (s.budget.warmup_rounds + s.budget.max_rounds) as u64)
            .sum()
    }

    /// Reorders the scenarios deterministically: drift over a long run then hits every
    /// scenario alike instead of always the last ones.
    pub fn shuffle(&mut self, seed: u64) {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        self.scenarios.shuffle(&mut rand::rngs::SmallRng::seed_from_u64(seed));
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
mod tests;
