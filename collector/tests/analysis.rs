//! Verdicts, commit-graph order, change points and calibration on real SQLite files.

mod common;

use collector::record::Purpose;
use collector::statistics::verdict::{Direction, Verdict};
use collector::{AnalysisOptions, CalibrationRuns, Database};
use common::{around, commit, count, run};

fn wall_series(db: &Database) -> collector::query::Series {
    db.series().unwrap().into_iter().find(|s| s.metric == "wall_s").unwrap()
}

fn verdict_of(db: &Database, run_id: i64, metric: &str) -> collector::query::StoredVerdict {
    db.verdicts(run_id)
        .unwrap()
        .into_iter()
        .find(|v| v.metric == metric)
        .unwrap()
}

#[test]
fn verdicts_follow_each_metric_direction() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(&dir.path().join("b.sqlite")).unwrap();
    let opts = AnalysisOptions::default();
    let c0 = commit("c0", &[], 0, Some("main"));
    let c1 = commit("c1", &["c0"], 1, Some("main"));
    let c2 = commit("c2", &["c1"], 2, Some("main"));
    let r0 = db
        .ingest_record(&run("r0", c0, around(1.0, 0.01, 10, 1)))
        .unwrap()
        .run_id();
    let r1 = db
        .ingest_record(&run("r1", c1, around(1.1, 0.01, 10, 2)))
        .unwrap()
        .run_id();
    let r2 = db
        .ingest_record(&run("r2", c2, around(1.0, 0.01, 10, 3)))
        .unwrap()
        .run_id();
    for r in [r0, r1, r2] {
        db.analyze_run(r, &opts).unwrap();
    }
    assert_eq!(verdict_of(&db, r0, "wall_s").verdict, Verdict::New);
    // Slower: more seconds (lower is better) and less throughput (higher is better).
    let slow = verdict_of(&db, r1, "wall_s");
    assert_eq!(slow.verdict, Verdict::Regression);
    assert_eq!(slow.baseline_sha.as_deref(), Some("c0"));
    assert!((slow.relative_change.unwrap() - 0.10).abs() < 0.01);
    assert!(slow.q_value.unwrap() < 0.05);
    assert_eq!(verdict_of(&db, r1, "throughput").verdict, Verdict::Regression);
    assert_eq!(verdict_of(&db, r2, "wall_s").verdict, Verdict::Improvement);
    assert_eq!(verdict_of(&db, r2, "throughput").verdict, Verdict::Improvement);
    // Analysing again replaces, never duplicates.
    db.analyze_run(r2, &opts).unwrap();
    assert_eq!(db.verdicts(r2).unwrap().len(), 2);
    assert_eq!(db.find_run("latest").unwrap().id, r2);
    assert_eq!(db.find_run("r1").unwrap().id, r1);
    assert!(db.find_run("nope").is_err());
}

/// ```text
/// main:    m0 - m1 ------- m2 - m3      (m2 merges f2)
///                 \       /
/// feature:         f1 - f2
/// ```
/// f1 and m2 have the same first-parent depth, and so do f2 and m3.
#[test]
fn merges_and_backfills_keep_the_first_parent_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(&dir.path().join("b.sqlite")).unwrap();
    let opts = AnalysisOptions::default();
    let m0 = commit("m0", &[], 0, Some("main"));
    let m1 = commit("m1", &["m0"], 1, Some("main"));
    let f1 = commit("f1", &["m1"], 2, Some("feature"));
    let f2 = commit("f2", &["f1"], 3, Some("feature"));
    let m2 = commit("m2", &["m1", "f2"], 2, Some("main"));
    let m3 = commit("m3", &["m2"], 3, Some("main"));
    // Stored out of order, as a backfill would: the newest first, m1 last.
    let mut ids = std::collections::HashMap::new();
    for (uuid, c, level) in [
        ("run-m3", m3, 1.0),
        ("run-f2", f2, 1.5),
        ("run-m0", m0, 1.0),
        ("run-m2", m2, 1.0),
        ("run-f1", f1, 1.5),
        ("run-m1", m1, 1.0),
    ] {
        let id = db
            .ingest_record(&run(uuid, c, around(level, 0.01, 10, uuid.len() as u64)))
            .unwrap()
            .run_id();
        db.analyze_run(id, &opts).unwrap();
        ids.insert(uuid, id);
    }
    let wall = wall_series(&db);
    let shas = |branch: &str| -> Vec<String> {
        db.points(&wall, Some(branch))
            .unwrap()
            .into_iter()
            .map(|p| p.commit.sha)
            .collect()
    };
    assert_eq!(shas("main"), ["m0", "m1", "m2", "m3"]);
    assert_eq!(shas("feature"), ["m0", "m1", "f1", "f2"]);
    // Baselines: the merge against its first parent, the feature against its fork point, and
    // m2 re-analysed once m1 was backfilled (it had been compared with m0).
    let baseline = |run: &str| verdict_of(&db, ids[run], "wall_s").baseline_sha;
    assert_eq!(baseline("run-m2").as_deref(), Some("m1"));
    assert_eq!(baseline("run-m3").as_deref(), Some("m2"));
    assert_eq!(baseline("run-f1").as_deref(), Some("m1"));
    assert_eq!(baseline("run-f2").as_deref(), Some("f1"));
    assert_eq!(baseline("run-m0"), None);
    // The feature branch is 50% slower; main never changed.
    assert_eq!(verdict_of(&db, ids["run-f1"], "wall_s").verdict, Verdict::Regression);
    for run in ["run-m1", "run-m2", "run-m3"] {
        assert_eq!(verdict_of(&db, ids[run], "wall_s").verdict, Verdict::Unchanged, "{run}");
    }
}

#[test]
fn a_confirmed_change_point_relabels_the_verdict_the_gate_let_pass() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(&dir.path().join("b.sqlite")).unwrap();
    let opts = AnalysisOptions::default();
    // A series that alternates by +-3% from commit to commit, so its noise floor is about 7%;
    // from commit 30 on, its level is 8% higher. Commit 30 is only 1.7% above commit 29, which
    // the gate lets pass; the change point over the history finds the shift there.
    let level = |i: u64| (if i < 30 { 1.0 } else { 1.08 }) * if i % 2 == 1 { 1.03 } else { 0.97 };
    let mut ids = Vec::new();
    for i in 0..38u64 {
        let parents: Vec<String> = (i > 0).then(|| format!("c{}", i - 1)).into_iter().collect();
        let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
        let c = commit(&format!("c{i}"), &parents, i, Some("main"));
        let id = db
            .ingest_record(&run(&format!("r{i}"), c, around(level(i), 0.002, 10, i)))
            .unwrap()
            .run_id();
        db.analyze_run(id, &opts).unwrap();
        ids.push(id);
    }
    let v = verdict_of(&db, ids[30], "wall_s");
    assert_ne!(v.gate_verdict, Verdict::Regression, "{v:?}");
    assert!(v.noise_floor.unwrap() > 0.05, "{v:?}");
    assert_eq!(v.verdict, Verdict::Regression, "{v:?}");
    let cps = db.change_points(&wall_series(&db), "main").unwrap();
    assert_eq!(cps.len(), 1, "{cps:?}");
    assert_eq!(cps[0].commit_sha, "c30");
    assert_eq!(cps[0].previous_sha, "c29");
    assert_eq!(cps[0].kind, Verdict::Regression);
    assert_eq!(v.change_point_id, Some(cps[0].id));
    // Throughput fell at the same commit: the same change point, the other direction.
    let t = verdict_of(&db, ids[30], "throughput");
    assert_eq!(t.verdict, Verdict::Regression);
    // Every other verdict is the gate's.
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| *i != 30) {
        let v = verdict_of(&db, *id, "wall_s");
        assert_eq!(v.verdict, v.gate_verdict, "commit {i}");
    }
}

#[test]
fn calibration_runs_stay_out_of_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.sqlite");
    let mut db = Database::open(&path).unwrap();
    let c = commit("c0", &[], 0, Some("main"));
    db.ingest_record(&run("history", c.clone(), around(1.0, 0.02, 10, 9)))
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..4 {
        let mut r = run(&format!("aa-{i}"), c.clone(), around(1.0, 0.02, 10, i));
        r.purpose = Purpose::Calibration;
        ids.push(db.ingest_record(&r).unwrap().run_id());
    }
    let report = db
        .record_calibration(
            &CalibrationRuns {
                uuid: "cal-1".into(),
                run_ids: ids.clone(),
                scenario_file: "scenarios/test.toml".into(),
                started_at: "2026-11-27T00:00:00Z".into(),
                finished_at: "2026-11-27T00:05:00Z".into(),
            },
            &AnalysisOptions::default().policy,
        )
        .unwrap();
    assert_eq!(report.comparisons, 3);
    assert_eq!(report.failing_comparisons, 0);
    assert_eq!(report.series.len(), 2);
    for s in &report.series {
        assert_eq!(s.comparisons, 3);
        assert_eq!(s.false_positive_rate, 0.0);
        assert!((s.false_positive_upper - 0.631_596).abs() < 1e-5, "{s:?}");
    }
    // Only the history run is history.
    assert_eq!(db.runs().unwrap().len(), 1);
    let wall = wall_series(&db);
    assert_eq!(db.points(&wall, None).unwrap().len(), 1);
    let cal = db.calibration(&wall).unwrap().unwrap();
    assert_eq!((cal.comparisons, cal.false_regressions), (3, 0));
    assert!(db.analyze_run(ids[0], &AnalysisOptions::default()).is_err());
    drop(db);
    assert_eq!(count(&path, "calibration_runs"), 4);
    assert_eq!(count(&path, "calibration_series"), 2);
}

/// An injected calibration (`calibrate --inject-build` without `--paired`): runs alternately
/// without (A) and with (B) a cost of 5% of wall time and 1% of the client's instructions,
/// each compared with the one before. The count rule finds 1% only once the A runs give it
/// the series' spread (11 of them); a comparison back from B to A that calls an improvement
/// found the cost too.
#[test]
fn injected_calibrations_measure_detection_by_the_history_and_count_rules() {
    fn calibrate(db: &mut Database, name: &str, pairs: u64) -> collector::CalibrationReport {
        let c = commit("c0", &[], 0, Some("main"));
        let (mut ids, mut with_cost) = (Vec::new(), Vec::new());
        for i in 0..pairs {
            for cost in [false, true] {
                let level = if cost { 1.05 } else { 1.0 };
                let mut r = run(
                    &format!("{name}-{i}-{cost}"),
                    c.clone(),
                    around(level, 0.02, 10, 2 * i + u64::from(cost)),
                );
                // The A runs' counts move by up to 0.02%; the cost adds 1%.
                let count = 1e8 * (1.0 + 0.0002 * (i % 2) as f64) * if cost { 1.01 } else { 1.0 };
                r.scenarios[0].metrics.push(collector::record::MetricRecord {
                    name: "client_instructions".into(),
                    unit: "instructions".into(),
                    direction: Direction::Lower,
                    samples: vec![count],
                    reported: None,
                });
                r.purpose = Purpose::Calibration;
                ids.push(db.ingest_record(&r).unwrap().run_id());
                with_cost.push(cost);
            }
        }
        db.record_injected_calibration(
            &CalibrationRuns {
                uuid: name.into(),
                run_ids: ids,
                scenario_file: "scenarios/test.toml".into(),
                started_at: "2026-12-07T00:00:00Z".into(),
                finished_at: "2026-12-07T00:05:00Z".into(),
            },
            &with_cost,
            "SOLEDAD_BENCH_INJECTED_CRYPTO=250",
            &AnalysisOptions::default().policy,
        )
        .unwrap()
    }
    let of = |report: &collector::CalibrationReport, metric: &str| {
        let s = report.series.iter().find(|s| s.metric == metric).unwrap().clone();
        (s.comparisons, s.false_regressions, s.false_improvements, s.noisy)
    };
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(&dir.path().join("b.sqlite")).unwrap();
    // One history run, so that the series exist.
    db.ingest_record(&run(
        "history",
        commit("c0", &[], 0, Some("main")),
        around(1.0, 0.02, 10, 99),
    ))
    .unwrap();

    // Three A runs: no spread known, so 1% is within what a count may move by itself.
    let few = calibrate(&mut db, "few", 3);
    assert_eq!(few.comparisons, 5);
    assert_eq!(of(&few, "client_instructions"), (5, 0, 0, 5));
    // The wall time's 5% stands out of 2% rounds in every comparison, both ways.
    assert_eq!(of(&few, "wall_s"), (5, 5, 0, 0));
    assert_eq!(of(&few, "throughput"), (5, 5, 0, 0));
    assert_eq!(few.failing_comparisons, 5);

    // Eleven: the count rule knows the spread (0.02%) and finds 1% every time.
    let known = calibrate(&mut db, "known", 11);
    assert_eq!(of(&known, "client_instructions"), (21, 21, 0, 0));
    let counted = known.series.iter().find(|s| s.metric == "client_instructions").unwrap();
    assert_eq!(counted.false_positive_rate, 1.0);
    assert!(collector::rate_lower_bound(21, 21) > 0.86);

    // Stored as a detection, not as false positives; the latest per series and rule.
    let summaries = db.calibrations().unwrap();
    assert!(
        summaries
            .iter()
            .all(|c| c.kind == collector::CalibrationKind::InjectedHistory)
    );
    assert_eq!(
        summaries[0].injected.as_deref(),
        Some("SOLEDAD_BENCH_INJECTED_CRYPTO=250")
    );
    assert!(
        db.series_calibrations(collector::CalibrationKind::History)
            .unwrap()
            .is_empty()
    );
    // Its total counts the calls that found the cost: 21 for each of the three series.
    assert_eq!(summaries[0].false_positives, 63);
    // Nor is it the series' A/A calibration.
    assert_eq!(db.calibration(&wall_series(&db)).unwrap(), None);
    let detections = db.series_detections().unwrap();
    let found: Vec<_> = detections
        .iter()
        .filter(|(key, _)| key.2 == "client_instructions")
        .flat_map(|(_, list)| list)
        .collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, collector::CalibrationKind::InjectedHistory);
    assert_eq!(
        (found[0].calibration.comparisons, found[0].calibration.false_regressions),
        (21, 21)
    );

    // Runs all on one side compare nothing.
    let err = db
        .record_injected_calibration(
            &CalibrationRuns {
                uuid: "one-side".into(),
                run_ids: vec![1, 2],
                scenario_file: "scenarios/test.toml".into(),
                started_at: "2026-12-07T00:00:00Z".into(),
                finished_at: "2026-12-07T00:05:00Z".into(),
            },
            &[true, true],
            "SOLEDAD_BENCH_INJECTED_CRYPTO=250",
            &AnalysisOptions::default().policy,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("a run with the cost next to one without it"),
        "{err}"
    );
}

#[test]
fn a_backfill_on_main_keeps_a_feature_branch_change_point_labelled() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(&dir.path().join("b.sqlite")).unwrap();
    // Main alternates by +-3% around 1.0 (noise floor about 7%); a feature branch forks at
    // c29 and runs 8% slower from its first commit, c30: a shift the gate lets pass and the
    // change point finds. c29 gets its history run only later, as a backfill on main; until
    // then only a calibration run knows the commit, which keeps the chain whole.
    fn ingest(db: &mut Database, i: u64) -> i64 {
        let level = (if i < 30 { 1.0 } else { 1.08 }) * if i % 2 == 1 { 1.03 } else { 0.97 };
        let parents: Vec<String> = (i > 0).then(|| format!("c{}", i - 1)).into_iter().collect();
        let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
        let branch = if i < 30 { "main" } else { "feature" };
        let c = commit(&format!("c{i}"), &parents, i, Some(branch));
        let id = db
            .ingest_record(&run(&format!("r{i}"), c, around(level, 0.002, 10, i)))
            .unwrap()
            .run_id();
        db.analyze_run(id, &AnalysisOptions::default()).unwrap();
        id
    }
    let mut calibration = run(
        "cal-29",
        commit("c29", &["c28"], 29, Some("main")),
        around(1.0, 0.002, 10, 1),
    );
    calibration.purpose = Purpose::Calibration;
    db.ingest_record(&calibration).unwrap();
    let mut c30 = 0;
    for i in (0..38u64).filter(|&i| i != 29) {
        let id = ingest(&mut db, i);
        if i == 30 {
            c30 = id;
        }
    }
    let v = verdict_of(&db, c30, "wall_s");
    let cps = db.change_points(&wall_series(&db), "feature").unwrap();
    assert_eq!(v.verdict, Verdict::Regression, "{v:?}");
    assert_eq!(cps.len(), 1, "{cps:?}");
    assert_eq!(v.change_point_id, Some(cps[0].id));
    assert_eq!(cps[0].previous_sha, "c28");

    // The backfill of c29 (on main) gives c30 a new baseline and recomputes its verdicts;
    // the feature branch's change point is found again, now against c29.
    ingest(&mut db, 29);
    let v = verdict_of(&db, c30, "wall_s");
    let cps = db.change_points(&wall_series(&db), "feature").unwrap();
    assert_eq!(v.baseline_sha.as_deref(), Some("c29"));
    assert_eq!(cps.len(), 1, "{cps:?}");
    assert_eq!(cps[0].commit_sha, "c30");
    assert_eq!(cps[0].previous_sha, "c29");
    assert_eq!(v.verdict, Verdict::Regression, "{v:?}");
    assert_eq!(v.change_point_id, Some(cps[0].id));
}

#[test]
fn count_series_are_judged_by_their_spread_not_a_rank_test() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(&dir.path().join("b.sqlite")).unwrap();
    let opts = AnalysisOptions::default();
    // Twelve commits whose count moves by at most 0.02%, then one that adds 1%.
    let counts: Vec<f64> = (0..12)
        .map(|i| 1e9 * (1.0 + 0.0002 * (i % 2) as f64))
        .chain([1.01e9])
        .collect();
    let mut runs = Vec::new();
    for (i, &count) in counts.iter().enumerate() {
        let parents: Vec<String> = (i > 0).then(|| format!("c{}", i - 1)).into_iter().collect();
        let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
        let c = commit(&format!("c{i}"), &parents, i as u64, Some("main"));
        let mut record = run(&format!("r{i}"), c, around(1.0, 0.05, 10, i as u64));
        record.scenarios[0].metrics.push(collector::record::MetricRecord {
            name: "client_instructions".into(),
            unit: "instructions".into(),
            direction: Direction::Lower,
            samples: vec![count],
            reported: None,
        });
        let id = db.ingest_record(&record).unwrap().run_id();
        db.analyze_run(id, &opts).unwrap();
        runs.push(id);
    }
    let first = verdict_of(&db, runs[0], "client_instructions");
    assert_eq!(first.verdict, Verdict::New);
    // One value a side and no history yet: a 0.02% move is no change.
    assert_eq!(
        verdict_of(&db, runs[1], "client_instructions").verdict,
        Verdict::Unchanged
    );
    // With history, the 1% step stands far out of the series' own 0.02%: a regression,
    // without a rank test or a q-value.
    let step = verdict_of(&db, runs[12], "client_instructions");
    assert_eq!(step.verdict, Verdict::Regression, "{step:?}");
    assert!((step.relative_change.unwrap() - 0.01).abs() < 0.001);
    assert_eq!(step.q_value, None);
    // The timed series of the same runs, 5% noise and no change, is not called changed.
    assert!(!verdict_of(&db, runs[12], "wall_s").verdict.is_change());
}

/// A share of a core is shown and never judged, and so is a total of a fixed-duration round
/// (a quieter machine does more work per round); the same total of a fixed-work round is
/// judged, and so is the fixed-duration round's throughput.
#[test]
fn series_no_rule_judges_get_no_verdict_and_no_change_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(&dir.path().join("b.sqlite")).unwrap();
    let opts = AnalysisOptions::default();
    let mut runs = Vec::new();
    // Eight commits at one level, then eight where everything is 20% higher: a change point.
    for i in 0..16u64 {
        let parents: Vec<String> = (i > 0).then(|| format!("c{}", i - 1)).into_iter().collect();
        let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
        let c = commit(&format!("c{i}"), &parents, i, Some("main"));
        let level = if i < 8 { 1.0 } else { 1.2 };
        let mut r = run(&format!("r{i}"), c, around(level, 0.01, 10, i));
        let mut load = r.scenarios[0].clone();
        (load.id, load.definition_hash, load.fixed_duration) = ("load/1".into(), "00000000000000bb".into(), true);
        for s in [&mut r.scenarios[0], &mut load] {
            s.metrics = vec![
                common::metric("ops_s", "ops/s", Direction::Higher, around(100.0 * level, 0.01, 10, i)),
                common::metric("server_cpu_user_s", "s", Direction::Lower, around(level, 0.01, 10, i)),
                common::metric(
                    "client_cpu_pct",
                    "%",
                    Direction::Lower,
                    around(90.0 * level, 0.01, 10, i),
                ),
            ];
        }
        r.scenarios.push(load);
        let id = db.ingest_record(&r).unwrap().run_id();
        db.analyze_run(id, &opts).unwrap();
        runs.push(id);
    }
    let judged = |run: i64| -> Vec<(String, String, Verdict)> {
        let mut v: Vec<_> = db
            .verdicts(run)
            .unwrap()
            .into_iter()
            .map(|v| (v.scenario_id, v.metric, v.verdict))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        judged(runs[8]),
        [
            ("load/1".into(), "ops_s".into(), Verdict::Improvement),
            ("s/1".into(), "ops_s".into(), Verdict::Improvement),
            ("s/1".into(), "server_cpu_user_s".into(), Verdict::Regression),
        ]
    );
    // Change points: on the judged series that moved, on no other.
    for series in db.series().unwrap() {
        let judged = series.metric == "ops_s" || (series.scenario_id == "s/1" && series.metric == "server_cpu_user_s");
        let found = db.change_points(&series, "main").unwrap();
        assert_eq!(!found.is_empty(), judged, "{} {}", series.scenario_id, series.metric);
    }
    // A database an older rule analysed has a change point on a series no rule judges now,
    // and verdicts of its version: deciding again removes it.
    let path = dir.path().join("b.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "INSERT INTO change_points (machine_id, scenario_ref, metric, branch, commit_sha, previous_sha,
                                    points_before, points_after, mean_before, mean_after, stddev_before,
                                    stddev_after, relative_change, p_value, kind, detected_at)
         SELECT 1, id, 'server_cpu_user_s', 'main', 'c8', 'c7', 8, 8, 1.0, 1.2, 0.01, 0.01, 0.2, 0.001,
                'regression', 0 FROM scenarios WHERE scenario_id = 'load/1';
         UPDATE verdicts SET statistics_version = 1;",
    )
    .unwrap();
    let on_load_cpu = |conn: &rusqlite::Connection| -> i64 {
        conn.query_row(
            "SELECT count(*) FROM change_points cp JOIN scenarios s ON s.id = cp.scenario_ref
             WHERE s.scenario_id = 'load/1' AND cp.metric = 'server_cpu_user_s'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(on_load_cpu(&conn), 1);
    assert_eq!(db.redecide_stale().unwrap().runs, 16);
    assert_eq!(on_load_cpu(&conn), 0, "the older rule's change point is gone");

    // The unjudged series are kept and shown all the same.
    assert_eq!(
        db.series()
            .unwrap()
            .iter()
            .filter(|s| s.metric == "client_cpu_pct" || s.metric == "server_cpu_user_s")
            .count(),
        4
    );
}
