//! Criterion's results, Bencher Metric Format, and merging databases, on real files.

mod common;

use std::path::{Path, PathBuf};

use collector::bmf::{MeasureUnits, parse_bmf};
use collector::criterion::{criterion_record, read_criterion};
use collector::record::{CommitInfo, ImportContext, Machine, Purpose};
use collector::statistics::verdict::{Direction, Verdict};
use collector::{AnalysisOptions, CalibrationRuns, Database, IngestOutcome};
use common::{around, commit, count, machine, run};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn ctx(commit: CommitInfo) -> ImportContext {
    ImportContext {
        commit,
        machine: machine(),
        covariates: vec![],
        imported_at: "2026-11-27T00:00:00Z".into(),
    }
}

fn series_named(db: &Database, scenario: &str, metric: &str) -> collector::query::Series {
    db.series()
        .unwrap()
        .into_iter()
        .find(|s| s.scenario_id == scenario && s.metric == metric)
        .unwrap_or_else(|| panic!("no series {scenario} {metric}"))
}

#[test]
fn criterion_results_join_the_history() {
    let root = fixture("criterion");
    let benches = read_criterion(&root).unwrap();
    let ids: Vec<&str> = benches.iter().map(|b| b.full_id.as_str()).collect();
    assert_eq!(ids, ["encrypt/aes-256-gcm/1MiB", "preamble/parse"]);
    // Per-iteration times from sample.json: times[i] / iters[i].
    let samples = benches[0].samples.as_ref().unwrap();
    assert_eq!(samples.len(), 10);
    assert!((samples[0] - 1_842_341.5 / 3.0).abs() < 1e-6);
    assert!(benches[1].samples.is_none());

    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(&dir.path().join("b.sqlite")).unwrap();
    let c0 = commit("c0", &[], 0, Some("main"));
    let record = criterion_record(&root, &benches, ctx(c0.clone()));
    let run_id = db.ingest_record(&record).unwrap().run_id();
    assert!(matches!(
        db.ingest_record(&criterion_record(
            &root,
            &benches,
            ImportContext {
                imported_at: "later".into(),
                ..ctx(c0)
            }
        )),
        Ok(IngestOutcome::AlreadyPresent { .. })
    ));

    let time = series_named(&db, "encrypt/aes-256-gcm/1MiB", "time_ns");
    assert_eq!((time.unit.as_str(), time.direction.as_str()), ("ns", "lower"));
    let point = &db.points(&time, None).unwrap()[0];
    assert_eq!(point.summary.n, 10);
    // The fixture's median estimate is the median of its per-iteration times.
    assert!((point.summary.median - 614_164.583_333_333_4).abs() < 1e-6);
    let rate = series_named(&db, "encrypt/aes-256-gcm/1MiB", "throughput_mib_s");
    let rate_point = &db.points(&rate, None).unwrap()[0];
    assert!((rate_point.summary.median - 1e9 / 614_164.583_333_333_4).abs() < 1e-3);
    // Without samples: criterion's median estimate and its interval.
    let parse = series_named(&db, "preamble/parse", "time_ns");
    let p = db.points(&parse, None).unwrap()[0].summary;
    assert_eq!(
        (p.n, p.median, p.ci_lower, p.ci_upper, p.ci_level),
        (1, 810.7, 806.3, 813.2, 0.95)
    );

    // A later commit, 20% slower, is a regression of the crypto bench like of any series.
    let slower = dir.path().join("slower");
    copy_tree(&root, &slower);
    let sample_json = slower.join("encrypt/aes-256-gcm/1MiB/new/sample.json");
    let text = std::fs::read_to_string(&sample_json).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for t in v["times"].as_array_mut().unwrap() {
        *t = serde_json::json!(t.as_f64().unwrap() * 1.2);
    }
    std::fs::write(&sample_json, v.to_string()).unwrap();
    let benches = read_criterion(&slower).unwrap();
    let c1 = commit("c1", &["c0"], 1, Some("main"));
    let r1 = db
        .ingest_record(&criterion_record(&slower, &benches, ctx(c1)))
        .unwrap()
        .run_id();
    db.analyze_runs(&[run_id, r1], &AnalysisOptions::default()).unwrap();
    let verdicts = db.verdicts(r1).unwrap();
    let of = |scenario: &str, metric: &str| {
        verdicts
            .iter()
            .find(|v| v.scenario_id == scenario && v.metric == metric)
            .unwrap()
            .verdict
    };
    assert_eq!(of("encrypt/aes-256-gcm/1MiB", "time_ns"), Verdict::Regression);
    assert_eq!(of("encrypt/aes-256-gcm/1MiB", "throughput_mib_s"), Verdict::Regression);
    // The same single estimate on both sides: unchanged, though without samples.
    assert_eq!(of("preamble/parse", "time_ns"), Verdict::Unchanged);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn criterion_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_criterion(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no criterion benchmarks"), "{err}");
    let err = read_criterion(&dir.path().join("missing")).unwrap_err().to_string();
    assert!(err.contains("run cargo bench first"), "{err}");
    let new = dir.path().join("g/f/new");
    std::fs::create_dir_all(&new).unwrap();
    std::fs::write(new.join("benchmark.json"), r#"{"group_id": "g"}"#).unwrap();
    let err = read_criterion(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("g/f/new/benchmark.json") && err.contains("full_id"),
        "{err}"
    );
}

#[test]
fn bmf_round_trips_and_refuses_what_it_cannot_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(&dir.path().join("a.sqlite")).unwrap();
    let id = db
        .ingest_record(&run("r0", commit("c0", &[], 0, Some("main")), around(2.0, 0.02, 10, 1)))
        .unwrap()
        .run_id();
    let exported = db.export_bmf(id).unwrap();
    let point = &exported["s/1"]["wall_s"];
    let wall = db.points(&series_named(&db, "s/1", "wall_s"), None).unwrap()[0].summary;
    assert_eq!(point["value"].as_f64().unwrap(), wall.median);
    assert_eq!(point["lower_value"].as_f64().unwrap(), wall.ci_lower);
    assert_eq!(point["upper_value"].as_f64().unwrap(), wall.ci_upper);

    // Into another database: `wall_s` is in the harness's catalogue, `rate` nowhere.
    let mut renamed = exported.clone();
    let measures = renamed["s/1"].as_object_mut().unwrap();
    let rate = measures.remove("throughput").unwrap();
    measures.insert("rate".into(), rate);
    let text = renamed.to_string();
    let path = dir.path().join("export.json");
    let mut other = Database::open(&dir.path().join("b.sqlite")).unwrap();
    let c = commit("c0", &[], 0, Some("main"));
    let err = other
        .bmf_record(&path, &text, ctx(c.clone()), &MeasureUnits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("measure \"rate\" has no known unit") && err.contains("--measure"),
        "{err}"
    );
    let mut units = MeasureUnits::default();
    units
        .overrides
        .insert("rate".into(), ("MiB/s".into(), Direction::Higher));
    let record = other.bmf_record(&path, &text, ctx(c.clone()), &units).unwrap();
    other.ingest_record(&record).unwrap();
    let again = other.bmf_record(&path, &text, ctx(c), &units).unwrap();
    assert!(matches!(
        other.ingest_record(&again).unwrap(),
        IngestOutcome::AlreadyPresent { .. }
    ));
    let imported = other.points(&series_named(&other, "s/1", "wall_s"), None).unwrap()[0].summary;
    assert_eq!((imported.n, imported.median), (1, wall.median));
    assert_eq!((imported.ci_lower, imported.ci_upper), (wall.ci_lower, wall.ci_upper));

    for (bad, expected) in [
        (
            "{\"a\": {\"latency\": {\"value\": \"fast\"}}}",
            "\"value\" must be a finite number",
        ),
        (
            "{\"a\": {\"latency\": {\"value\": 1, \"lower_value\": 2}}}",
            "lower_value <= value",
        ),
        ("{\"a\": {\"latency\": {\"valeu\": 1}}}", "unknown field \"valeu\""),
        ("[1, 2]", "expected an object of benchmarks"),
        ("{\"a\": \n {\"latency\": }}", "not JSON: expected value at line 2"),
    ] {
        let err = parse_bmf(Path::new("bad.json"), bad).unwrap_err().to_string();
        assert!(err.starts_with("bad.json: ") && err.contains(expected), "{err}");
    }
    // Bencher's own measures are known.
    let bmf = r#"{"encrypt": {"latency": {"value": 88.0, "lower_value": 87.0, "upper_value": 90.0}}}"#;
    let r = other
        .bmf_record(
            Path::new("l.json"),
            bmf,
            ctx(commit("c1", &["c0"], 1, None)),
            &MeasureUnits::default(),
        )
        .unwrap();
    assert_eq!(r.scenarios[0].metrics[0].unit, "ns");
}

#[test]
fn merging_databases_keeps_machines_apart_and_adds_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let a_path = dir.path().join("a.sqlite");
    let b_path = dir.path().join("b.sqlite");
    let mut a = Database::open(&a_path).unwrap();
    let mut b = Database::open(&b_path).unwrap();
    let other_machine = Machine {
        cpu_model: "Other CPU".into(),
        ..machine()
    };
    for i in 0..3u64 {
        let parents: Vec<String> = (i > 0).then(|| format!("c{}", i - 1)).into_iter().collect();
        let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
        let c = commit(&format!("c{i}"), &parents, i, Some("main"));
        a.ingest_record(&run(&format!("a{i}"), c.clone(), around(1.0, 0.02, 10, i)))
            .unwrap();
        let mut r = run(&format!("b{i}"), c, around(3.0, 0.02, 10, i + 10));
        r.machine = other_machine.clone();
        b.ingest_record(&r).unwrap();
    }
    // A calibration on the other machine travels with its runs.
    let mut cal_ids = Vec::new();
    for i in 0..2 {
        let mut r = run(
            &format!("aa{i}"),
            commit("c2", &["c1"], 2, Some("main")),
            around(3.0, 0.02, 10, i),
        );
        r.machine = other_machine.clone();
        r.purpose = Purpose::Calibration;
        cal_ids.push(b.ingest_record(&r).unwrap().run_id());
    }
    b.record_calibration(
        &CalibrationRuns {
            uuid: "cal".into(),
            run_ids: cal_ids,
            scenario_file: "f".into(),
            started_at: "t0".into(),
            finished_at: "t1".into(),
        },
        &AnalysisOptions::default().policy,
    )
    .unwrap();
    // `b` stays open: part of what it holds may still be in its write-ahead log.
    let report = a.merge_from(&b_path).unwrap();
    assert_eq!(report.history_runs_added.len(), 3);
    assert_eq!(report.calibration_runs_added, 2);
    assert_eq!(report.calibrations_added, 1);
    a.analyze_runs(&report.history_runs_added, &AnalysisOptions::default())
        .unwrap();
    assert_eq!(a.machines().unwrap().len(), 2);
    let walls: Vec<_> = a
        .series()
        .unwrap()
        .into_iter()
        .filter(|s| s.metric == "wall_s")
        .collect();
    assert_eq!(walls.len(), 2, "one series per machine");
    for s in &walls {
        let points = a.points(s, Some("main")).unwrap();
        assert_eq!(points.len(), 3);
        let level = points[0].summary.median;
        assert!(points.iter().all(|p| (p.summary.median / level - 1.0).abs() < 0.05));
    }
    assert!(a.calibration(&walls[1]).unwrap().is_some());
    let again = a.merge_from(&b_path).unwrap();
    assert_eq!(
        (
            again.history_runs_added.len(),
            again.runs_present,
            again.calibrations_added
        ),
        (0, 5, 0)
    );
    drop(a);
    drop(b);
    assert_eq!(count(&a_path, "runs"), 8);
    assert_eq!(count(&b_path, "runs"), 5, "the other file is not modified");

    let mut a = Database::open(&a_path).unwrap();
    let junk = dir.path().join("junk.sqlite");
    std::fs::write(&junk, "not a database at all, but long enough to look like a header").unwrap();
    let err = a.merge_from(&junk).unwrap_err().to_string();
    assert!(
        err.contains("junk.sqlite") && err.contains("soledad-bench database"),
        "{err}"
    );
    let err = a.merge_from(&dir.path().join("none.sqlite")).unwrap_err().to_string();
    assert!(err.contains("no such file"), "{err}");
    let newer = dir.path().join("newer.sqlite");
    rusqlite::Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = a.merge_from(&newer).unwrap_err().to_string();
    assert!(err.contains("schema version 99"), "{err}");
}
