//! Branch comparisons on a real SQLite file: paired verdicts, storage, idempotence, merging.

use std::collections::BTreeMap;

use collector::Database;
use collector::statistics::paired::PairedOptions;
use harness::metrics::Direction;
use harness::results::*;
use workloads::{Params, Size, WorkloadKind};

fn side(run: &str, sha: &str, wall: Vec<f64>, cpu: Vec<f64>) -> Results {
    let params = Params::new(WorkloadKind::BlobsUpload, 10, Size::Fixed(100_000), 1);
    let mut metrics = BTreeMap::new();
    let rounds = wall.len() as u32;
    metrics.insert(
        "wall_s".into(),
        MetricSamples {
            unit: "s".into(),
            direction: Direction::Lower,
            samples: wall.clone(),
        },
    );
    metrics.insert(
        "throughput_mib_s".into(),
        MetricSamples {
            unit: "MiB/s".into(),
            direction: Direction::Higher,
            samples: wall.iter().map(|w| 1.0 / w).collect(),
        },
    );
    metrics.insert(
        "client_cpu_sys_s".into(),
        MetricSamples {
            unit: "s".into(),
            direction: Direction::Lower,
            samples: cpu,
        },
    );
    Results {
        schema: SCHEMA.into(),
        run: RunInfo {
            id: run.into(),
            started_at: "2026-11-27T00:00:00Z".into(),
            finished_at: "2026-11-27T00:01:00Z".into(),
            tool_version: "0.1.0".into(),
            scenario_file: "scenarios/smoke.toml".into(),
            sample_interval_ms: 10,
            seed: 1,
            shuffle_seed: None,
            target: None,
            sampler_cpu_s: 0.0,
            measured_s: 1.0,
        },
        commit: CommitInfo {
            sha: sha.into(),
            parents: vec![],
            subject: sha.into(),
            author_name: "a".into(),
            author_time: 1,
            commit_time: 1,
            branch: Some("main".into()),
            dirty: false,
            depth: 1,
        },
        machine: MachineInfo {
            cpu_model: "cpu".into(),
            logical_cores: 2,
            physical_cores: Some(2),
            memory_bytes: 1 << 34,
            kernel: "k".into(),
            os: "os".into(),
            arch: "x86_64".into(),
            rustc: "rustc".into(),
            profile: "release".into(),
            covariates: Covariates {
                load_avg_1m: 0.1,
                cpu_mhz: 1,
            },
        },
        scenarios: vec![ScenarioResult {
            id: params.scenario_id(),
            workload: "blobs.upload".into(),
            workload_version: 1,
            definition_hash: params.definition_hash(),
            description: params.describe(),
            params,
            warmup_rounds: 1,
            rounds,
            budget: None,
            metrics,
            latency_histogram: None,
        }],
    }
}

#[test]
fn a_slower_build_is_a_regression_and_stays_out_of_the_series() {
    // The machine drifts by 20% over 12 rounds; B is 10% slower round by round.
    let a: Vec<f64> = (0..12)
        .map(|i| 1.0 + 0.02 * i as f64 + 0.003 * (i % 3) as f64)
        .collect();
    let b: Vec<f64> = a
        .iter()
        .enumerate()
        .map(|(i, x)| x * 1.10 * (1.0 + 0.002 * (i % 2) as f64))
        .collect();
    let cpu = vec![0.0; 12];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.sqlite");
    let mut db = Database::open(&path).unwrap();
    let (ra, rb) = (side("ra", "aaa", a, cpu.clone()), side("rb", "bbb", b, cpu));
    let stored = db
        .record_comparison(&ra, &rb, ["main", "feature"], &PairedOptions::default())
        .unwrap();
    let by_metric = |m: &str| stored.rows.iter().find(|r| r.metric == m).unwrap().clone();
    assert_eq!(by_metric("wall_s").verdict, "regression");
    assert!((by_metric("wall_s").ratio.unwrap() - 1.10).abs() < 0.01);
    // Higher is better for throughput, so its drop is a regression too.
    assert_eq!(by_metric("throughput_mib_s").verdict, "regression");
    let zero = by_metric("client_cpu_sys_s");
    assert_eq!(zero.verdict, "incomparable");
    assert!(zero.note.unwrap().contains("positive"));

    // Stored, listed, read back with medians, and recorded once only.
    let again = db
        .record_comparison(&ra, &rb, ["main", "feature"], &PairedOptions::default())
        .unwrap();
    assert_eq!(again.id, stored.id);
    let list = db.comparisons().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].label_a.as_str(), list[0].commit_b.as_str(), list[0].regressions),
        ("main", "bbb", 2)
    );
    let rows = db.comparison_rows(stored.id).unwrap();
    assert_eq!(rows[0].verdict, "regression", "regressions sort first");
    assert!(rows.iter().any(|r| r.metric == "wall_s" && r.median_b > r.median_a));
    // Comparison runs are not history.
    assert!(db.series().unwrap().is_empty());
    assert!(db.runs().unwrap().is_empty());

    // Merging carries the comparison over.
    let mut other = Database::open(&dir.path().join("other.sqlite")).unwrap();
    let report = other.merge_from(&path).unwrap();
    assert_eq!((report.comparison_runs_added, report.comparisons_added), (2, 1));
    assert_eq!(other.comparisons().unwrap()[0].label_b, "feature");
    assert_eq!(
        other.comparison_rows(other.comparisons().unwrap()[0].id).unwrap().len(),
        3
    );
}

#[test]
fn identical_builds_are_unchanged() {
    let a: Vec<f64> = (0..12).map(|i| 1.0 + 0.01 * ((i * 7) % 5) as f64).collect();
    let b: Vec<f64> = a
        .iter()
        .enumerate()
        .map(|(i, x)| x * (1.0 + 0.001 * ((i * 3) % 4) as f64 - 0.0015))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(&dir.path().join("b.sqlite")).unwrap();
    let stored = db
        .record_comparison(
            &side("a", "x", a, vec![1.0; 12]),
            &side("b", "y", b, vec![1.0; 12]),
            ["x", "y"],
            &PairedOptions::default(),
        )
        .unwrap();
    assert!(
        stored
            .rows
            .iter()
            .all(|r| r.verdict != "regression" && r.verdict != "improvement"),
        "{:?}",
        stored.rows
    );
}
