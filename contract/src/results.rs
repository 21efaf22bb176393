//! Results JSON, version 1: what the harness writes and the collector reads. Documented field
//! by field in `harness/RESULTS.md`; change both together, and bump [`SCHEMA`] for anything a
//! v1 reader would misread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::budget::StopReason;
use crate::metrics::Direction;

/// A results file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ResultsError {
    pub path: PathBuf,
    pub message: String,
}

pub const SCHEMA: &str = "soledad-bench/results/v1";

/// A run's results. `P` is the type of a scenario's parameters: the harness writes its
/// workloads' own (`workloads::Params`), so that a file's bytes stay what they were; readers
/// that only pass them on take them as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results<P = serde_json::Value> {
    pub schema: String,
    pub run: RunInfo,
    pub commit: CommitInfo,
    pub machine: MachineInfo,
    pub scenarios: Vec<ScenarioResult<P>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    /// Unique per harness invocation; ingesting the same id twice is a no-op.
    pub id: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: String,
    /// Version of the soledad-bench that ran the harness.
    pub tool_version: String,
    /// The scenario file, as given on the command line.
    pub scenario_file: String,
    /// Memory sampling interval.
    pub sample_interval_ms: u64,
    /// Seed of the payload generator.
    pub seed: u64,
    /// Seed the scenario order was shuffled with, if it was.
    #[serde(default)]
    pub shuffle_seed: Option<u64>,
    /// The server benchmarked when it was not started by the harness (`--target`); then the
    /// server's process metrics are absent.
    #[serde(default)]
    pub target: Option<String>,
    /// CPU time the harness's memory sampler used, and the measured wall time it sampled
    /// over: their ratio is the sampler's overhead, in cores.
    #[serde(default)]
    pub sampler_cpu_s: f64,
    #[serde(default)]
    pub measured_s: f64,
    /// How the rounds were paired with a baseline build (`run --baseline`): with which
    /// commit's binaries, or why they ran unpaired. Absent when no pairing was asked for.
    /// (Left out when absent, so that files of runs without pairing read and write as before.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairing: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    pub sha: String,
    pub parents: Vec<String>,
    pub subject: String,
    pub author_name: String,
    /// Seconds since the epoch.
    pub author_time: i64,
    pub commit_time: i64,
    /// `None` on a detached HEAD.
    pub branch: Option<String>,
    /// Tracked files differed from the commit when the run started.
    pub dirty: bool,
    /// Commits on the first-parent chain from the root to this one (the root has depth 0):
    /// the position of the commit on its branch, stable forever.
    pub depth: u64,
}

/// The machine a run ran on: its stable facts, and readings of the moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    #[serde(flatten)]
    pub machine: Machine,
    /// Readings that vary between runs on the same machine; recorded, never fingerprinted.
    pub covariates: Covariates,
}

/// The stable facts of a machine: what its fingerprint hashes, so that series never mix
/// machines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub logical_cores: u32,
    pub physical_cores: Option<u32>,
    pub memory_bytes: u64,
    pub kernel: String,
    pub os: String,
    pub arch: String,
    pub rustc: String,
    /// Cargo profile of the measured binaries: `release` or `debug`.
    pub profile: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Covariates {
    /// 1-minute load average when the run started.
    pub load_avg_1m: f64,
    /// Mean current CPU frequency when the run started, in MHz (0 if unknown).
    pub cpu_mhz: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioResult<P = serde_json::Value> {
    /// Such as `blobs.upload/10x100k/c1`.
    pub id: String,
    pub workload: String,
    pub workload_version: u32,
    pub definition_hash: String,
    /// What the scenario measures, in a sentence, for readers of the site.
    pub description: String,
    pub params: P,
    /// The rounds run for a fixed duration and do as much work as they can (`server.load`),
    /// instead of a fixed amount of work: what a round accumulates
    /// (`metrics::accumulates`) then follows its throughput.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fixed_duration: bool,
    pub warmup_rounds: u32,
    /// Measured rounds: every metric has this many samples, in round order, except the
    /// count round's (`metrics::is_counted`), which have one.
    pub rounds: u32,
    /// How the rounds were budgeted and why measuring stopped.
    #[serde(default)]
    pub budget: Option<BudgetReport>,
    pub metrics: BTreeMap<String, MetricSamples>,
    /// Latencies of every operation of every measured round, merged: HdrHistogram V2
    /// compressed, base64, in microseconds (corrected for coordinated omission for
    /// `server.load`). Absent for workloads without per-operation latencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_histogram: Option<String>,
}

/// The adaptive-rounds decision of one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetReport {
    pub min_rounds: u32,
    pub max_rounds: u32,
    pub max_time_s: f64,
    /// Target relative half-width of the headline metric's 95% CI.
    pub target_ci: f64,
    pub headline_metric: String,
    /// Relative half-width reached.
    pub achieved_ci: f64,
    /// For builds run interleaved: the relative half-width of the 95% CI of the headline
    /// metric's paired ratio (geometric mean of the per-round ratios B / A), which is what
    /// the stopping rule and `noisy` then use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired_ci: Option<f64>,
    pub stop_reason: StopReason,
    /// The target was not reached: the point is too noisy to judge small changes by.
    pub noisy: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricSamples {
    pub unit: String,
    pub direction: Direction,
    pub samples: Vec<f64>,
}

impl<P> Results<P> {
    /// Checks what the types cannot: sample counts, finite values.
    pub fn validate(&self) -> Result<(), String> {
        for s in &self.scenarios {
            for (name, m) in &s.metrics {
                // A count-round metric has its one sample; the others one per round.
                let expected = if crate::metrics::is_counted(name) {
                    1
                } else {
                    s.rounds as usize
                };
                if m.samples.len() != expected {
                    return Err(format!(
                        "scenario {}: metric {name} has {} samples for {} rounds{}",
                        s.id,
                        m.samples.len(),
                        s.rounds,
                        if crate::metrics::is_counted(name) {
                            " (a count-round metric has one)"
                        } else {
                            ""
                        }
                    ));
                }
                if let Some(bad) = m.samples.iter().find(|v| !v.is_finite()) {
                    return Err(format!(
                        "scenario {}: metric {name} has a non-finite sample {bad}",
                        s.id
                    ));
                }
            }
        }
        Ok(())
    }
}

impl<P: Serialize + DeserializeOwned> Results<P> {
    /// Reads and checks a results file.
    pub fn load(path: &Path) -> Result<Self, ResultsError> {
        let fail = |message: String| ResultsError {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let value: serde_json::Value = serde_json::from_slice(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA) => {}
            Some(other) => {
                return Err(fail(format!("schema is {other:?}; this version reads {SCHEMA:?}")));
            }
            None => return Err(fail(format!("no \"schema\" field; expected {SCHEMA:?}"))),
        }
        let results: Results<P> = serde_json::from_value(value).map_err(|e| fail(e.to_string()))?;
        results.validate().map_err(fail)?;
        Ok(results)
    }

    /// Writes the file atomically: a reader never sees half of it.
    pub fn save(&self, path: &Path) -> Result<(), ResultsError> {
        let fail = |message: String| ResultsError {
            path: path.to_owned(),
            message,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| fail(format!("cannot write in {}: {e}", dir.display())))?;
        serde_json::to_writer_pretty(&mut tmp, self).map_err(|e| fail(format!("cannot write: {e}")))?;
        tmp.persist(path)
            .map_err(|e| fail(format!("cannot write: {}", e.error)))?;
        Ok(())
    }
}
