//! A run as the store keeps it, whatever it came from: a harness results file, a Bencher
//! Metric Format file, criterion's estimates, or another database being merged.

use contract::Results;
use contract::results::MachineInfo;
pub use contract::results::{CommitInfo, Machine};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::CollectorError;
use crate::statistics::verdict::Direction;

/// Where a run's numbers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Harness,
    Bmf,
    Criterion,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Harness => "harness",
            Self::Bmf => "bmf",
            Self::Criterion => "criterion",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Harness, Self::Bmf, Self::Criterion]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// What a run is for: history (series, verdicts, the site), calibration (A/A runs) or
/// comparison (one side of an interleaved branch comparison). Only history runs enter series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    History,
    Calibration,
    Comparison,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::History => "history",
            Self::Calibration => "calibration",
            Self::Comparison => "comparison",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::History, Self::Calibration, Self::Comparison]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Unique id; storing a record whose uuid is stored already changes nothing.
    pub uuid: String,
    pub source: Source,
    pub purpose: Purpose,
    pub started_at: String,
    pub finished_at: String,
    pub tool_version: String,
    pub scenario_file: String,
    pub sample_interval_ms: u64,
    pub seed: u64,
    pub commit: CommitInfo,
    pub machine: Machine,
    /// Volatile readings of the machine during the run (load, frequency ...), by name.
    pub covariates: Vec<(String, serde_json::Value)>,
    pub scenarios: Vec<ScenarioRecord>,
    /// How a history run's rounds were paired with a baseline build, or why they were not
    /// (`RunInfo::pairing`).
    pub pairing: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioRecord {
    pub id: String,
    pub workload: String,
    pub workload_version: u32,
    pub definition_hash: String,
    pub description: String,
    pub params: serde_json::Value,
    /// Its rounds run for a fixed time, not a fixed amount of work (`server.load`): what they
    /// accumulate follows their throughput and is not judged (`contract::metrics::not_judged`).
    pub fixed_duration: bool,
    pub warmup_rounds: u32,
    pub rounds: u32,
    /// The harness's adaptive-rounds decision, as JSON.
    pub budget: Option<serde_json::Value>,
    /// Every operation latency of every measured round: an HdrHistogram, V2 compressed,
    /// base64.
    pub latency_histogram: Option<String>,
    pub metrics: Vec<MetricRecord>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricRecord {
    pub name: String,
    pub unit: String,
    pub direction: Direction,
    pub samples: Vec<f64>,
    /// An interval reported by the source for a single value (Bencher's lower and upper
    /// values, criterion's CI of the median); kept in the data point, since one sample gives
    /// no interval of its own.
    pub reported: Option<ReportedInterval>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportedInterval {
    pub lower: f64,
    pub upper: f64,
    /// Coverage, 0 when the source does not say.
    pub level: f64,
}

/// Every field of the machine's covariates, whatever the harness records: numbers and text
/// are stored as given, so that new readings need no schema change.
pub fn covariates_of(m: &MachineInfo) -> Vec<(String, serde_json::Value)> {
    match serde_json::to_value(&m.covariates) {
        Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
        _ => Vec::new(),
    }
}

impl RunRecord {
    /// The record of a harness results file.
    pub fn from_results<P: Serialize>(results: &Results<P>) -> Result<Self, CollectorError> {
        results.validate().map_err(CollectorError::Conflict)?;
        let r = &results.run;
        Ok(Self {
            uuid: r.id.clone(),
            source: Source::Harness,
            purpose: Purpose::History,
            started_at: r.started_at.clone(),
            finished_at: r.finished_at.clone(),
            tool_version: r.tool_version.clone(),
            scenario_file: r.scenario_file.clone(),
            sample_interval_ms: r.sample_interval_ms,
            seed: r.seed,
            commit: results.commit.clone(),
            machine: results.machine.machine.clone(),
            covariates: covariates_of(&results.machine),
            pairing: r.pairing.clone(),
            scenarios: results
                .scenarios
                .iter()
                .map(|s| ScenarioRecord {
                    id: s.id.clone(),
                    workload: s.workload.clone(),
                    workload_version: s.workload_version,
                    definition_hash: s.definition_hash.clone(),
                    description: s.description.clone(),
                    params: serde_json::to_value(&s.params).expect("params serialize"),
                    // Results files from before the field lack it; `server.load` is the one
                    // workload that has run for a time.
                    fixed_duration: s.fixed_duration || s.workload == "server.load",
                    warmup_rounds: s.warmup_rounds,
                    rounds: s.rounds,
                    budget: s
                        .budget
                        .as_ref()
                        .map(|b| serde_json::to_value(b).expect("budgets serialize")),
                    latency_histogram: s.latency_histogram.clone(),
                    metrics: s
                        .metrics
                        .iter()
                        .map(|(name, m)| MetricRecord {
                            name: name.clone(),
                            unit: m.unit.clone(),
                            direction: m.direction,
                            samples: m.samples.clone(),
                            reported: None,
                        })
                        .collect(),
                })
                .collect(),
        })
    }

    /// Checks what the types cannot: sample counts, finite values, intervals of single values.
    pub fn validate(&self) -> Result<(), CollectorError> {
        let fail = |s: &ScenarioRecord, m: &MetricRecord, what: String| {
            Err(CollectorError::Conflict(format!(
                "scenario {}: metric {}: {what}",
                s.id, m.name
            )))
        };
        for s in &self.scenarios {
            for m in &s.metrics {
                if m.samples.is_empty() {
                    return fail(s, m, "no samples".into());
                }
                if let Some(bad) = m.samples.iter().find(|v| !v.is_finite()) {
                    return fail(s, m, format!("non-finite sample {bad}"));
                }
                if let Some(r) = m.reported
                    && (m.samples.len() != 1 || !(r.lower.is_finite() && r.upper.is_finite()))
                {
                    return fail(s, m, "a reported interval needs exactly one finite value".into());
                }
            }
        }
        Ok(())
    }
}

/// For which commit, on which machine and when, results of another tool are imported.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportContext {
    pub commit: CommitInfo,
    pub machine: Machine,
    pub covariates: Vec<(String, serde_json::Value)>,
    /// RFC 3339 UTC.
    pub imported_at: String,
}

impl RunRecord {
    /// A run imported from another tool's `content`, read from `from`. Its id hashes the
    /// content with the commit and the machine: importing the same results for the same commit
    /// on the same machine again changes nothing.
    pub fn imported(
        source: Source,
        from: &std::path::Path,
        content: &[&[u8]],
        ctx: ImportContext,
        scenarios: Vec<ScenarioRecord>,
    ) -> Self {
        let fingerprint = crate::fingerprint::fingerprint_of(&ctx.machine);
        let mut parts: Vec<&[u8]> = vec![source.as_str().as_bytes()];
        parts.extend_from_slice(content);
        parts.push(ctx.commit.sha.as_bytes());
        parts.push(fingerprint.as_bytes());
        Self {
            uuid: content_uuid(&parts),
            source,
            purpose: Purpose::History,
            started_at: ctx.imported_at.clone(),
            finished_at: ctx.imported_at,
            tool_version: env!("CARGO_PKG_VERSION").into(),
            scenario_file: from.display().to_string(),
            sample_interval_ms: 0,
            seed: 0,
            commit: ctx.commit,
            machine: ctx.machine,
            covariates: ctx.covariates,
            scenarios,
            pairing: None,
        }
    }
}

/// A stable id from content: importing the same data for the same commit twice is a no-op.
pub fn content_uuid(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let x = hex::encode(&d[..16]);
    format!("{}-{}-{}-{}-{}", &x[..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

/// A definition hash for scenarios that do not come from the harness: 16 hex digits.
pub fn definition_hash_of(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..8])
}
