//! What storing and analysing a long history costs: synthetic runs of many series over many
//! commits, stored and analysed one by one as CI does, then all re-analysed at once as after
//! a backfill or a merge. The numbers are recorded in `docs/statistics.md`.
//!
//! ```sh
//! cargo run --release -p collector --example history -- [COMMITS] [SERIES]   # default 300 30
//! ```

use std::time::Instant;

use collector::record::{CommitInfo, Machine, MetricRecord, Purpose, RunRecord, ScenarioRecord, Source};
use collector::statistics::verdict::Direction;
use collector::{AnalysisOptions, Database};
use rand::SeedableRng;
use rand::rngs::StdRng;
use testdata::noise::NoiseModel;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let commits = args.first().copied().unwrap_or(300);
    let series = args.get(1).copied().unwrap_or(30);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut db = Database::open(&dir.path().join("history.sqlite")).expect("a database");
    let mut rng = StdRng::seed_from_u64(1);
    let noise = NoiseModel::normal(0.02);
    let machine = Machine {
        cpu_model: "Synthetic CPU".into(),
        logical_cores: 2,
        physical_cores: Some(2),
        memory_bytes: 8 << 30,
        kernel: "6.1".into(),
        os: "Linux".into(),
        arch: "x86_64".into(),
        rustc: "rustc 1.95.0".into(),
        profile: "release".into(),
    };
    let options = AnalysisOptions::default();
    let mut ids = Vec::new();
    let mut slowest = 0.0f64;
    let started = Instant::now();
    for c in 0..commits {
        // Every series steps up by 5% two thirds of the way through.
        let level = if c >= commits * 2 / 3 { 1.05 } else { 1.0 };
        let record = RunRecord {
            uuid: format!("run-{c}"),
            source: Source::Harness,
            purpose: Purpose::History,
            started_at: "2026-11-28T00:00:00Z".into(),
            finished_at: "2026-11-28T00:01:00Z".into(),
            tool_version: "0.1.0".into(),
            scenario_file: "synthetic".into(),
            pairing: None,
            sample_interval_ms: 10,
            seed: 1,
            commit: CommitInfo {
                sha: format!("{c:040x}"),
                parents: if c == 0 {
                    vec![]
                } else {
                    vec![format!("{:040x}", c - 1)]
                },
                subject: format!("commit {c}"),
                author_name: "A. Developer".into(),
                author_time: c as i64,
                commit_time: c as i64,
                branch: Some("main".into()),
                dirty: false,
                depth: c as u64,
            },
            machine: machine.clone(),
            covariates: vec![],
            scenarios: vec![ScenarioRecord {
                id: "synthetic/1".into(),
                workload: "synthetic".into(),
                workload_version: 1,
                definition_hash: "0000000000000001".into(),
                description: "synthetic series".into(),
                params: serde_json::json!({}),
                fixed_duration: false,
                warmup_rounds: 0,
                rounds: 10,
                budget: None,
                latency_histogram: None,
                metrics: (0..series)
                    .map(|s| MetricRecord {
                        name: format!("metric_{s}"),
                        unit: "s".into(),
                        direction: Direction::Lower,
                        samples: noise.run(&mut rng, level, 10),
                        reported: None,
                    })
                    .collect(),
            }],
        };
        let t = Instant::now();
        let id = db.ingest_record(&record).expect("stored").run_id();
        db.analyze_run(id, &options).expect("analysed");
        slowest = slowest.max(t.elapsed().as_secs_f64());
        ids.push(id);
    }
    let sequential = started.elapsed().as_secs_f64();
    let t = Instant::now();
    let report = db.analyze_runs(&ids, &options).expect("analysed");
    let batch = t.elapsed().as_secs_f64();
    println!(
        "{commits} commits x {series} series (10 samples each): stored and analysed one by one in {sequential:.1} s \
         ({:.1} ms per run on average, {:.1} ms for the slowest); all {} runs re-analysed at once in {batch:.1} s; \
         {} change points",
        sequential * 1000.0 / commits as f64,
        slowest * 1000.0,
        report.runs.len(),
        report.change_points
    );
}
