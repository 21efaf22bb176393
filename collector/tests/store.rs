//! The collector on real SQLite files.

mod common;

use collector::statistics::verdict::Direction;
use collector::{Database, IngestOutcome};
use contract::Results;

fn results(run: &str, sha: &str, depth: u64, wall: &[f64]) -> Results {
    common::harness_results(
        run,
        common::commit(sha, &[], depth, Some("main")),
        &[
            ("wall_s", "s", Direction::Lower, wall.to_vec()),
            (
                "throughput_mib_s",
                "MiB/s",
                Direction::Higher,
                wall.iter().map(|w| 1.0 / w).collect(),
            ),
        ],
    )
}

fn count(db_path: &std::path::Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(db_path).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn ingest_keeps_raw_samples_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.sqlite");
    let mut db = Database::open(&path).unwrap();
    let r = results("run-1", "aaa", 5, &[1.0, 1.1, 0.9, 1.0, 1.2, 1.05]);
    assert!(matches!(db.ingest(&r).unwrap(), IngestOutcome::Stored { .. }));
    assert!(matches!(db.ingest(&r).unwrap(), IngestOutcome::AlreadyPresent { .. }));
    drop(db);
    assert_eq!(count(&path, "runs"), 1);
    assert_eq!(count(&path, "samples"), 12);
    assert_eq!(count(&path, "data_points"), 2);

    let db = Database::open(&path).unwrap();
    let series = db.series().unwrap();
    assert_eq!(series.len(), 2);
    let wall = series.iter().find(|s| s.metric == "wall_s").unwrap();
    assert_eq!((wall.unit.as_str(), wall.direction.as_str()), ("s", "lower"));
    let points = db.points(wall, None).unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].summary.median, 1.025);
    assert_eq!(
        db.samples(points[0].run_id, wall.scenario_ref, "wall_s").unwrap(),
        vec![1.0, 1.1, 0.9, 1.0, 1.2, 1.05]
    );
}

#[test]
fn series_follow_commit_order_not_ingest_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(&dir.path().join("b.sqlite")).unwrap();
    // Ingested newest first, as a backfill would.
    db.ingest(&results("r3", "ccc", 9, &[3.0; 5])).unwrap();
    db.ingest(&results("r1", "aaa", 2, &[1.0; 5])).unwrap();
    db.ingest(&results("r2", "bbb", 4, &[2.0; 5])).unwrap();
    // A re-run of bbb replaces its point.
    db.ingest(&results("r2b", "bbb", 4, &[2.5; 5])).unwrap();
    let wall = db.series().unwrap().into_iter().find(|s| s.metric == "wall_s").unwrap();
    let points = db.points(&wall, Some("main")).unwrap();
    let shas: Vec<_> = points.iter().map(|p| p.commit.sha.as_str()).collect();
    assert_eq!(shas, ["aaa", "bbb", "ccc"]);
    assert_eq!(points[1].summary.median, 2.5);
    assert!(db.points(&wall, Some("other")).unwrap().is_empty());
    assert_eq!(db.runs().unwrap()[0].commit.sha, "ccc");
}

#[test]
fn a_failed_ingest_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.sqlite");
    let mut db = Database::open(&path).unwrap();
    db.ingest(&results("ok", "aaa", 1, &[1.0; 5])).unwrap();
    // Same metric name with another unit: refused after the run row was written.
    let mut bad = results("bad", "bbb", 2, &[1.0; 5]);
    bad.scenarios[0].metrics.get_mut("wall_s").unwrap().unit = "ms".into();
    let err = db.ingest(&bad).unwrap_err().to_string();
    assert!(err.contains("metric wall_s is stored as s"), "{err}");
    drop(db);
    assert_eq!(count(&path, "runs"), 1);
    assert_eq!(count(&path, "commits"), 1);
    assert_eq!(count(&path, "samples"), 10);
}

#[test]
fn bad_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.sqlite");
    std::fs::write(
        &junk,
        b"this is not a database, just some text that is long enough to have a header",
    )
    .unwrap();
    let err = Database::open(&junk).err().unwrap().to_string();
    assert!(err.contains(&junk.display().to_string()), "{err}");
    let missing_dir = dir.path().join("nope/b.sqlite");
    let err = Database::open(&missing_dir).err().unwrap().to_string();
    assert!(err.contains("does not exist"), "{err}");
    // A database from a newer soledad-bench is not touched.
    let newer = dir.path().join("newer.sqlite");
    rusqlite::Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = Database::open(&newer).err().unwrap().to_string();
    assert!(err.contains("schema version 99"), "{err}");
}

#[test]
fn a_failure_after_samples_were_written_rolls_everything_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.sqlite");
    let mut db = Database::open(&path).unwrap();
    db.ingest(&results("ok", "aaa", 1, &[1.0; 5])).unwrap();
    // Two scenarios: the first is stored in full (run, commit, machine, samples, data points)
    // before the second's metric conflicts with the database.
    let mut bad = results("bad", "bbb", 2, &[2.0; 5]);
    let mut second = bad.scenarios[0].clone();
    second.id = "blobs.upload/1x1k/c1".into();
    second.definition_hash = "ffffffffffffffff".into();
    second.metrics.get_mut("throughput_mib_s").unwrap().direction = Direction::Lower;
    bad.scenarios.push(second);
    let err = db.ingest(&bad).unwrap_err().to_string();
    assert!(
        err.contains("metric throughput_mib_s is stored as MiB/s (higher is better)"),
        "{err}"
    );
    drop(db);
    for (table, expected) in [
        ("runs", 1),
        ("commits", 1),
        ("commit_parents", 0),
        ("scenarios", 1),
        ("run_scenarios", 1),
        ("samples", 10),
        ("data_points", 2),
        ("run_covariates", 2),
    ] {
        assert_eq!(count(&path, table), expected, "{table}");
    }
    // The same file, fixed, goes in whole afterwards.
    let mut db = Database::open(&path).unwrap();
    let fixed = results("bad", "bbb", 2, &[2.0; 5]);
    assert!(matches!(db.ingest(&fixed).unwrap(), IngestOutcome::Stored { .. }));
}

#[test]
fn the_round_budget_and_latency_histogram_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.sqlite");
    let mut db = Database::open(&path).unwrap();
    let mut r = results("run-h", "aaa", 1, &[1.0, 1.1, 0.9, 1.0, 1.05]);
    r.scenarios[0].budget = Some(contract::results::BudgetReport {
        min_rounds: 5,
        max_rounds: 30,
        max_time_s: 120.0,
        target_ci: 0.02,
        headline_metric: "wall_s".into(),
        achieved_ci: 0.05,
        paired_ci: None,
        stop_reason: contract::StopReason::MaxRounds,
        noisy: true,
    });
    r.scenarios[0].latency_histogram = Some("HISTFAAAAB54nJNpmSzMwMDAxAABzFCaEUoz2X+AMIKZAMQDBfA=".into());
    db.ingest(&r).unwrap();
    drop(db);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (budget, histogram): (String, String) = conn
        .query_row("SELECT budget, latency_histogram FROM run_scenarios", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let budget: serde_json::Value = serde_json::from_str(&budget).unwrap();
    assert_eq!(budget["stop_reason"], "max_rounds");
    assert_eq!(budget["noisy"], true);
    assert!(histogram.starts_with("HISTF"));
}

/// A results file the harness wrote before the results types moved to the `contract` crate
/// is stored as any other: every scenario, metric and sample.
#[test]
fn a_results_file_from_before_the_contract_crate_ingests_unchanged() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contract/tests/fixtures/results-v1.json");
    let results = contract::Results::<serde_json::Value>::load(&fixture).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.sqlite");
    let mut db = Database::open(&path).unwrap();
    assert!(matches!(db.ingest(&results).unwrap(), IngestOutcome::Stored { .. }));
    let samples: usize = results
        .scenarios
        .iter()
        .map(|s| s.metrics.values().map(|m| m.samples.len()).sum::<usize>())
        .sum();
    drop(db);
    assert_eq!(count(&path, "samples"), samples as i64);
    assert_eq!(count(&path, "run_scenarios"), 2);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (params, budget): (String, String) = conn
        .query_row(
            "SELECT s.params, rs.budget FROM scenarios s JOIN run_scenarios rs ON rs.scenario_ref = s.id
             WHERE s.scenario_id = 'blobs.upload/3x10k/c2'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        params,
        r#"{"concurrency":2,"count":3,"size":10000,"workload":"blobs.upload"}"#
    );
    assert!(budget.contains(r#""stop_reason":"max_rounds""#), "{budget}");
}
