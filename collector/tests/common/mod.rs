//! Runs to store, built from the collector's own record types.

#![allow(dead_code)]

use collector::record::{CommitInfo, Machine, MetricRecord, Purpose, RunRecord, ScenarioRecord, Source};
use collector::statistics::verdict::Direction;

pub fn machine() -> Machine {
    Machine {
        cpu_model: "Test CPU".into(),
        logical_cores: 2,
        physical_cores: Some(2),
        memory_bytes: 24 << 30,
        kernel: "6.1".into(),
        os: "Linux".into(),
        arch: "x86_64".into(),
        rustc: "rustc 1.95.0".into(),
        profile: "release".into(),
    }
}

/// A commit at `depth` on the first-parent chain, with its parents.
pub fn commit(sha: &str, parents: &[&str], depth: u64, branch: Option<&str>) -> CommitInfo {
    CommitInfo {
        sha: sha.into(),
        parents: parents.iter().map(|p| (*p).to_owned()).collect(),
        subject: format!("commit {sha}"),
        author_name: "A. Developer".into(),
        author_time: 1_700_000_000 + depth as i64,
        commit_time: 1_700_000_000 + depth as i64,
        branch: branch.map(str::to_owned),
        dirty: false,
        depth,
    }
}

/// Samples around `level`, deterministic, with a relative spread of about `spread`.
pub fn around(level: f64, spread: f64, n: usize, salt: u64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let x = ((i as u64 * 7919 + salt * 104_729) % 1000) as f64 / 1000.0 - 0.5;
            level * (1.0 + spread * x)
        })
        .collect()
}

/// A run of scenario `s/1` measuring `wall_s` (lower is better) and `throughput` (higher).
pub fn run(uuid: &str, commit: CommitInfo, wall: Vec<f64>) -> RunRecord {
    let throughput = wall.iter().map(|w| 100.0 / w).collect();
    RunRecord {
        uuid: uuid.into(),
        source: Source::Harness,
        purpose: Purpose::History,
        started_at: "2026-11-27T00:00:00Z".into(),
        finished_at: "2026-11-27T00:01:00Z".into(),
        tool_version: "0.1.0".into(),
        scenario_file: "scenarios/test.toml".into(),
        pairing: None,
        sample_interval_ms: 10,
        seed: 1,
        commit,
        machine: machine(),
        covariates: vec![
            ("load_avg_1m".into(), serde_json::json!(0.25)),
            ("cpu_mhz".into(), serde_json::json!(2400)),
        ],
        scenarios: vec![ScenarioRecord {
            id: "s/1".into(),
            workload: "test".into(),
            workload_version: 1,
            definition_hash: "00000000000000aa".into(),
            description: "a test scenario".into(),
            params: serde_json::json!({"n": 1}),
            fixed_duration: false,
            warmup_rounds: 0,
            rounds: wall.len() as u32,
            budget: None,
            latency_histogram: None,
            metrics: vec![
                metric("wall_s", "s", Direction::Lower, wall),
                metric("throughput", "MiB/s", Direction::Higher, throughput),
            ],
        }],
    }
}

pub fn metric(name: &str, unit: &str, direction: Direction, samples: Vec<f64>) -> MetricRecord {
    MetricRecord {
        name: name.into(),
        unit: unit.into(),
        direction,
        samples,
        reported: None,
    }
}

pub fn count(path: &std::path::Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// Results as the harness writes them: scenario `blobs.upload/10x100k/c1` of `commit`, with
/// these metrics (name, unit, direction, samples), on the test machine.
pub fn harness_results(
    run: &str,
    commit: CommitInfo,
    metrics: &[(&str, &str, Direction, Vec<f64>)],
) -> contract::Results {
    use contract::results::{Covariates, MachineInfo, MetricSamples, RunInfo, ScenarioResult};
    let rounds = metrics.first().map_or(0, |m| m.3.len() as u32);
    contract::Results {
        schema: contract::SCHEMA.into(),
        run: RunInfo {
            id: run.into(),
            started_at: "2026-11-27T00:00:00Z".into(),
            finished_at: "2026-11-27T00:01:00Z".into(),
            tool_version: "0.1.0".into(),
            scenario_file: "scenarios/smoke.toml".into(),
            sample_interval_ms: 10,
            seed: u64::MAX,
            shuffle_seed: None,
            target: None,
            sampler_cpu_s: 0.0,
            measured_s: 1.0,
            pairing: None,
        },
        commit,
        machine: MachineInfo {
            machine: machine(),
            covariates: Covariates {
                load_avg_1m: 0.5,
                cpu_mhz: 2000,
            },
        },
        scenarios: vec![ScenarioResult {
            id: "blobs.upload/10x100k/c1".into(),
            workload: "blobs.upload".into(),
            workload_version: 1,
            // As the harness hashes these parameters.
            definition_hash: "0a239c4659efbfde".into(),
            description: "A client stores, encrypts and uploads 10 blobs of 100,000 bytes through the BlobManager, one at a time.".into(),
            params: serde_json::json!({"workload": "blobs.upload", "count": 10, "size": 100000, "concurrency": 1}),
            fixed_duration: false,
            warmup_rounds: 1,
            rounds,
            budget: None,
            metrics: metrics
                .iter()
                .map(|(name, unit, direction, samples)| {
                    let m = MetricSamples {
                        unit: (*unit).into(),
                        direction: *direction,
                        samples: samples.clone(),
                    };
                    ((*name).to_owned(), m)
                })
                .collect(),
            latency_histogram: None,
        }],
    }
}
