//! Bencher Metric Format (BMF): the JSON Bencher reads and writes,
//! `{"benchmark": {"measure": {"value": v, "lower_value": l, "upper_value": u}}}`.
//!
//! Export writes a run's data points: the benchmark is the scenario id, the measure the
//! metric, the value the median and the bounds its confidence interval. Import stores a BMF
//! file as a run of its own, one sample per measure, the bounds kept as the data point's
//! interval. BMF carries no units or directions: they come from the database's metrics, the
//! metric catalogue, Bencher's built-in measures, or the caller.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value, json};

use crate::record::{
    ImportContext, MetricRecord, ReportedInterval, RunRecord, ScenarioRecord, Source, definition_hash_of,
};
use crate::statistics::verdict::Direction;
use crate::{CollectorError, Database};

/// One measure of one benchmark.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BmfMetric {
    pub value: f64,
    pub lower_value: Option<f64>,
    pub upper_value: Option<f64>,
}

/// Benchmark name to measure name to metric, in name order.
pub type Bmf = BTreeMap<String, BTreeMap<String, BmfMetric>>;

/// Bencher's built-in measures: (slug, unit, direction).
const BENCHER_MEASURES: &[(&str, &str, Direction)] = &[
    ("latency", "ns", Direction::Lower),
    ("throughput", "ops/s", Direction::Higher),
    ("build-time", "s", Direction::Lower),
    ("file-size", "B", Direction::Lower),
    ("instructions", "instructions", Direction::Lower),
    ("cycles", "cycles", Direction::Lower),
    ("estimated-cycles", "cycles", Direction::Lower),
];

/// How to store the measures of an imported file.
#[derive(Debug, Clone, Default)]
pub struct MeasureUnits {
    /// Given by the caller, first: measure name to (unit, direction).
    pub overrides: BTreeMap<String, (String, Direction)>,
}

/// Parses a BMF document; errors name the file and the benchmark, measure and field.
pub fn parse_bmf(path: &Path, text: &str) -> Result<Bmf, CollectorError> {
    let fail = |message: String| CollectorError::Input {
        path: path.to_owned(),
        message,
    };
    let doc: Value = serde_json::from_str(text).map_err(|e| fail(format!("not JSON: {e}")))?;
    let Value::Object(benchmarks) = doc else {
        return Err(fail(
            "expected an object of benchmarks, {\"name\": {\"measure\": {\"value\": ...}}}".into(),
        ));
    };
    if benchmarks.is_empty() {
        return Err(fail("no benchmarks in the file".into()));
    }
    let mut out = Bmf::new();
    for (name, measures) in benchmarks {
        let Value::Object(measures) = measures else {
            return Err(fail(format!(
                "benchmark {name:?}: expected an object of measures, got {measures}"
            )));
        };
        let mut metrics = BTreeMap::new();
        for (measure, fields) in measures {
            let at = format!("benchmark {name:?}, measure {measure:?}");
            let Value::Object(fields) = fields else {
                return Err(fail(format!("{at}: expected {{\"value\": number}}, got {fields}")));
            };
            let number = |key: &str| -> Result<Option<f64>, CollectorError> {
                match fields.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => v
                        .as_f64()
                        .filter(|x| x.is_finite())
                        .map(Some)
                        .ok_or_else(|| fail(format!("{at}: {key:?} must be a finite number, got {v}"))),
                }
            };
            if let Some(unknown) = fields
                .keys()
                .find(|k| !["value", "lower_value", "upper_value"].contains(&k.as_str()))
            {
                return Err(fail(format!(
                    "{at}: unknown field {unknown:?}; BMF has value, lower_value and upper_value"
                )));
            }
            let value = number("value")?.ok_or_else(|| fail(format!("{at}: no \"value\"")))?;
            let metric = BmfMetric {
                value,
                lower_value: number("lower_value")?,
                upper_value: number("upper_value")?,
            };
            if metric.lower_value.is_some_and(|l| l > value) || metric.upper_value.is_some_and(|u| u < value) {
                return Err(fail(format!("{at}: lower_value <= value <= upper_value does not hold")));
            }
            metrics.insert(measure, metric);
        }
        if metrics.is_empty() {
            return Err(fail(format!("benchmark {name:?}: no measures")));
        }
        out.insert(name, metrics);
    }
    Ok(out)
}

impl Database {
    /// A run's data points as BMF.
    pub fn export_bmf(&self, run_id: i64) -> Result<Value, CollectorError> {
        let mut stmt = self.conn.prepare(
            "SELECT s.scenario_id, s.definition_hash, d.metric, d.median, d.ci_lower, d.ci_upper
             FROM data_points d JOIN scenarios s ON s.id = d.scenario_ref
             WHERE d.run_id = ?1 ORDER BY s.scenario_id, s.definition_hash, d.metric",
        )?;
        let rows = stmt.query_map([run_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, f64>(3)?,
                r.get::<_, f64>(4)?,
                r.get::<_, f64>(5)?,
            ))
        })?;
        let mut out = Map::new();
        let mut hashes: BTreeMap<String, String> = BTreeMap::new();
        for row in rows {
            let (scenario, hash, metric, median, lower, upper) = row?;
            // One run measures one definition of a scenario; should it hold two, the second
            // is told apart by its hash rather than overwriting the first.
            let key = match hashes.get(&scenario) {
                Some(h) if *h != hash => format!("{scenario}#{hash}"),
                _ => {
                    hashes.insert(scenario.clone(), hash);
                    scenario
                }
            };
            let entry = out.entry(key).or_insert_with(|| Value::Object(Map::new()));
            entry.as_object_mut().expect("an object").insert(
                metric,
                json!({"value": median, "lower_value": lower, "upper_value": upper}),
            );
        }
        if out.is_empty() {
            return Err(CollectorError::NoSuchRun(format!(
                "{run_id} (or it has no data points)"
            )));
        }
        Ok(Value::Object(out))
    }

    /// The unit and direction to store an imported measure with.
    fn measure_unit(&self, measure: &str, units: &MeasureUnits) -> Result<Option<(String, Direction)>, CollectorError> {
        if let Some(u) = units.overrides.get(measure) {
            return Ok(Some(u.clone()));
        }
        let stored: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT unit, direction FROM metrics WHERE name = ?1",
                params![measure],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((unit, direction)) = stored {
            return Ok(Direction::parse(&direction).map(|d| (unit, d)));
        }
        if let Some(m) = contract::metrics::lookup(measure) {
            let d = Direction::parse(m.direction.as_str()).expect("two directions");
            return Ok(Some((m.unit.to_owned(), d)));
        }
        Ok(BENCHER_MEASURES
            .iter()
            .find(|(slug, _, _)| *slug == measure)
            .map(|(_, unit, d)| ((*unit).to_owned(), *d)))
    }

    /// The run a BMF file becomes. Importing the same file for the same commit and machine
    /// again gives the same run id, so it is stored once.
    pub fn bmf_record(
        &self,
        path: &Path,
        text: &str,
        ctx: ImportContext,
        units: &MeasureUnits,
    ) -> Result<RunRecord, CollectorError> {
        let bmf = parse_bmf(path, text)?;
        let mut scenarios = Vec::new();
        for (name, measures) in &bmf {
            let mut metrics = Vec::new();
            for (measure, m) in measures {
                let (unit, direction) = self
                    .measure_unit(measure, units)?
                    .ok_or_else(|| CollectorError::Input {
                        path: path.to_owned(),
                        message: format!(
                            "benchmark {name:?}: measure {measure:?} has no known unit and direction; \
                             give them as --measure {measure}=UNIT:lower or --measure {measure}=UNIT:higher"
                        ),
                    })?;
                let reported = (m.lower_value.is_some() || m.upper_value.is_some()).then(|| ReportedInterval {
                    lower: m.lower_value.unwrap_or(m.value),
                    upper: m.upper_value.unwrap_or(m.value),
                    level: 0.0,
                });
                metrics.push(MetricRecord {
                    name: measure.clone(),
                    unit,
                    direction,
                    samples: vec![m.value],
                    reported,
                });
            }
            scenarios.push(ScenarioRecord {
                id: name.clone(),
                workload: "bmf".into(),
                workload_version: 1,
                definition_hash: definition_hash_of(&["bmf", name]),
                description: format!("{name}, imported from Bencher Metric Format"),
                params: json!({ "benchmark": name }),
                fixed_duration: false,
                warmup_rounds: 0,
                rounds: 1,
                budget: None,
                latency_histogram: None,
                metrics,
            });
        }
        Ok(RunRecord::imported(
            Source::Bmf,
            path,
            &[text.as_bytes()],
            ctx,
            scenarios,
        ))
    }
}
