//! Importing criterion's results from `target/criterion`, so that micro-benchmarks (the crypto
//! benches) share the history, the verdicts and the site with the harness's scenarios.
//!
//! Criterion keeps each benchmark in `<root>/<directory_name>/new/`: `benchmark.json` (its
//! id and throughput), `estimates.json` (point estimates with confidence intervals) and
//! `sample.json` (the measured iteration counts and their total times in ns). The raw samples
//! are the per-iteration times `times[i] / iters[i]`, the same statistics then apply as to
//! any run. Without `sample.json`, the median estimate is stored as a single value with its
//! interval. These files are criterion's internal format, read as criterion 0.8 (the workspace's)
//! writes them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::CollectorError;
use crate::record::{
    ImportContext, MetricRecord, ReportedInterval, RunRecord, ScenarioRecord, Source, definition_hash_of,
};
use crate::statistics::verdict::Direction;

const MIB: f64 = (1u64 << 20) as f64;

#[derive(Debug, Clone, Deserialize)]
struct BenchmarkJson {
    group_id: String,
    function_id: Option<String>,
    value_str: Option<String>,
    throughput: Option<Throughput>,
    full_id: String,
    title: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum Throughput {
    Bytes(u64),
    BytesDecimal(u64),
    Elements(u64),
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct Interval {
    confidence_level: f64,
    lower_bound: f64,
    upper_bound: f64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct Estimate {
    confidence_interval: Interval,
    point_estimate: f64,
}

#[derive(Debug, Clone, Deserialize)]
struct EstimatesJson {
    median: Estimate,
}

#[derive(Debug, Clone, Deserialize)]
struct SampleJson {
    iters: Vec<f64>,
    times: Vec<f64>,
}

/// One benchmark read from criterion's directory.
#[derive(Debug, Clone)]
pub struct CriterionBenchmark {
    /// The benchmark's `new/` directory.
    pub dir: PathBuf,
    pub full_id: String,
    /// Per-iteration times in ns, when criterion kept its samples.
    pub samples: Option<Vec<f64>>,
    /// Criterion's estimate of the median per-iteration time, with its interval.
    pub median_ns: f64,
    median_interval: Interval,
    benchmark: BenchmarkJson,
    /// The raw bytes of the files read, for the run's id.
    content: Vec<u8>,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, content: &mut Vec<u8>) -> Result<T, CollectorError> {
    let fail = |message: String| CollectorError::Input {
        path: path.to_owned(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let value = serde_json::from_slice(&bytes).map_err(|e| fail(format!("not criterion's format: {e}")))?;
    content.extend_from_slice(&bytes);
    Ok(value)
}

/// Every benchmark under `root` (criterion's output directory, `target/criterion`), by id.
pub fn read_criterion(root: &Path) -> Result<Vec<CriterionBenchmark>, CollectorError> {
    let fail = |message: String| CollectorError::Input {
        path: root.to_owned(),
        message,
    };
    if !root.is_dir() {
        return Err(fail(
            "not a directory; criterion writes its results to target/criterion (run cargo bench first)".into(),
        ));
    }
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let new = dir.join("new");
        if new.join("benchmark.json").is_file() {
            found.push(read_one(&new)?);
        }
        let entries = std::fs::read_dir(&dir).map_err(|e| CollectorError::Input {
            path: dir.clone(),
            message: format!("cannot list: {e}"),
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            // Criterion's own subdirectories are not benchmarks.
            if ["new", "base", "change", "report"].contains(&name.to_string_lossy().as_ref()) {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    if found.is_empty() {
        return Err(fail(
            "no criterion benchmarks here (expected <id>/new/benchmark.json and estimates.json)".into(),
        ));
    }
    found.sort_by(|a, b| a.full_id.cmp(&b.full_id));
    Ok(found)
}

fn read_one(new: &Path) -> Result<CriterionBenchmark, CollectorError> {
    let mut content = Vec::new();
    let benchmark: BenchmarkJson = read_json(&new.join("benchmark.json"), &mut content)?;
    let estimates: EstimatesJson = read_json(&new.join("estimates.json"), &mut content)?;
    let sample_path = new.join("sample.json");
    let samples = if sample_path.is_file() {
        let s: SampleJson = read_json(&sample_path, &mut content)?;
        let fail = |message: String| CollectorError::Input {
            path: sample_path.clone(),
            message,
        };
        if s.iters.len() != s.times.len() || s.iters.is_empty() {
            return Err(fail(format!(
                "{} iteration counts for {} times; expected as many, at least one",
                s.iters.len(),
                s.times.len()
            )));
        }
        let per_iteration: Vec<f64> = s.iters.iter().zip(&s.times).map(|(i, t)| t / i).collect();
        if let Some(bad) = per_iteration.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(fail(format!("a sample gives {bad} ns per iteration")));
        }
        Some(per_iteration)
    } else {
        None
    };
    Ok(CriterionBenchmark {
        dir: new.to_owned(),
        full_id: benchmark.full_id.clone(),
        samples,
        median_ns: estimates.median.point_estimate,
        median_interval: estimates.median.confidence_interval,
        benchmark,
        content,
    })
}

impl CriterionBenchmark {
    fn scenario(&self) -> ScenarioRecord {
        let b = &self.benchmark;
        let (samples, reported) = match &self.samples {
            Some(s) => (s.clone(), None),
            None => (
                vec![self.median_ns],
                Some(ReportedInterval {
                    lower: self.median_interval.lower_bound,
                    upper: self.median_interval.upper_bound,
                    level: self.median_interval.confidence_level,
                }),
            ),
        };
        let scale = |factor: f64| ReportedInterval {
            // A rate is the inverse of a time: the bounds swap.
            lower: factor / self.median_interval.upper_bound,
            upper: factor / self.median_interval.lower_bound,
            level: self.median_interval.confidence_level,
        };
        let mut metrics = Vec::new();
        let rate = |name: &str, unit: &str, factor: f64| MetricRecord {
            name: name.into(),
            unit: unit.into(),
            direction: Direction::Higher,
            samples: samples.iter().map(|ns| factor / ns).collect(),
            reported: reported.map(|_| scale(factor)),
        };
        match b.throughput {
            Some(Throughput::Bytes(n) | Throughput::BytesDecimal(n)) => {
                metrics.push(rate("throughput_mib_s", "MiB/s", n as f64 * 1e9 / MIB));
            }
            Some(Throughput::Elements(n)) => {
                metrics.push(rate("throughput_elem_s", "elem/s", n as f64 * 1e9));
            }
            None => {}
        }
        metrics.push(MetricRecord {
            name: "time_ns".into(),
            unit: "ns".into(),
            direction: Direction::Lower,
            samples: samples.clone(),
            reported,
        });
        let params = serde_json::json!({
            "group_id": b.group_id,
            "function_id": b.function_id,
            "value_str": b.value_str,
            "throughput": b.throughput.map(|t| match t {
                Throughput::Bytes(n) => serde_json::json!({"Bytes": n}),
                Throughput::BytesDecimal(n) => serde_json::json!({"BytesDecimal": n}),
                Throughput::Elements(n) => serde_json::json!({"Elements": n}),
            }),
        });
        ScenarioRecord {
            id: b.full_id.clone(),
            workload: "criterion".into(),
            workload_version: 1,
            definition_hash: definition_hash_of(&["criterion", &b.full_id, &params.to_string()]),
            description: format!("criterion benchmark {}", b.title.as_deref().unwrap_or(&b.full_id)),
            params,
            fixed_duration: false,
            warmup_rounds: 0,
            rounds: samples.len() as u32,
            budget: None,
            latency_histogram: None,
            metrics,
        }
    }
}

/// The run a set of criterion benchmarks read from `root` becomes. Importing the same results
/// for the same commit and machine again gives the same run id.
pub fn criterion_record(root: &Path, benchmarks: &[CriterionBenchmark], ctx: ImportContext) -> RunRecord {
    let mut content: Vec<&[u8]> = Vec::new();
    for b in benchmarks {
        content.push(b.full_id.as_bytes());
        content.push(&b.content);
    }
    RunRecord::imported(
        Source::Criterion,
        root,
        &content,
        ctx,
        benchmarks.iter().map(CriterionBenchmark::scenario).collect(),
    )
}
