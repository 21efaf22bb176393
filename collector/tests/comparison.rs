//! Branch comparisons on a real SQLite file: paired verdicts, storage, idempotence, merging.

mod common;

use collector::comparison::ComparisonKind;
use collector::statistics::paired::PairedOptions;
use collector::statistics::verdict::{Direction, Verdict};
use collector::{CalibrationKind, Database, Method, PairedCalibration};
use contract::Results;

fn side(run: &str, sha: &str, wall: Vec<f64>, cpu: Vec<f64>) -> Results {
    let mut r = common::harness_results(
        run,
        common::commit(sha, &[], 1, Some("main")),
        &[
            ("wall_s", "s", Direction::Lower, wall.clone()),
            (
                "throughput_mib_s",
                "MiB/s",
                Direction::Higher,
                wall.iter().map(|w| 1.0 / w).collect(),
            ),
            ("client_cpu_sys_s", "s", Direction::Lower, cpu),
        ],
    );
    r.commit.subject = sha.into();
    r
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
    assert_eq!(by_metric("wall_s").verdict_name(), "regression");
    assert!((by_metric("wall_s").ratio.unwrap() - 1.10).abs() < 0.01);
    // Higher is better for throughput, so its drop is a regression too.
    assert_eq!(by_metric("throughput_mib_s").verdict_name(), "regression");
    let zero = by_metric("client_cpu_sys_s");
    assert_eq!(zero.verdict_name(), "incomparable");
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
    assert_eq!(rows[0].verdict_name(), "regression", "regressions sort first");
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
            .all(|r| !r.verdict.is_some_and(contract::Verdict::is_change)),
        "{:?}",
        stored.rows
    );
}

/// The two one-sided families: a metric where higher is better regresses when it falls and
/// improves when it rises, and each row keeps the adjusted p-value of its change's direction.
#[test]
fn regressions_and_improvements_follow_each_metric_direction() {
    let n = 12;
    let base: Vec<f64> = (0..n).map(|i| 1.0 + 0.01 * (i % 4) as f64).collect();
    let jitter = |i: usize| 1.0 + 0.002 * (i % 3) as f64;
    let mut a = common::harness_results(
        "a",
        common::commit("aaa", &[], 1, Some("main")),
        &[
            ("wall_s", "s", Direction::Lower, base.clone()),
            ("throughput_mib_s", "MiB/s", Direction::Higher, base.clone()),
            ("ops_s", "ops/s", Direction::Higher, base.clone()),
        ],
    );
    let mut b = a.clone();
    b.run.id = "b".into();
    b.commit.sha = "bbb".into();
    let m = &mut b.scenarios[0].metrics;
    // Time up 10% (worse), throughput down 10% (worse), operations up 10% (better).
    for (name, factor) in [("wall_s", 1.10), ("throughput_mib_s", 0.90), ("ops_s", 1.10)] {
        let s = &mut m.get_mut(name).unwrap().samples;
        for (i, v) in s.iter_mut().enumerate() {
            *v *= factor * jitter(i);
        }
    }
    a.scenarios[0].rounds = n as u32;
    let rows = collector::comparison::paired_rows(&a, &b, &PairedOptions::default());
    let row = |name: &str| rows.iter().find(|r| r.metric == name).unwrap();
    assert_eq!(row("wall_s").verdict_name(), "regression");
    assert_eq!(
        row("throughput_mib_s").verdict_name(),
        "regression",
        "lower throughput is worse"
    );
    assert_eq!(
        row("ops_s").verdict_name(),
        "improvement",
        "more operations per second is better"
    );
    for name in ["wall_s", "throughput_mib_s", "ops_s"] {
        let p = row(name).p_value.unwrap();
        assert!(p < 1e-6, "{name}: the p-value of its change's direction, {p}");
    }
}

/// In a fixed-duration round (`server.load`) B did 10% more operations, and its server held
/// 10% more memory for them: the paired rounds judge the throughput and leave what a round
/// accumulates unjudged, and so does the history; the same memory in a fixed-work scenario is
/// a regression.
#[test]
fn fixed_duration_rounds_judge_throughput_not_what_it_accumulated() {
    let n = 12;
    let base: Vec<f64> = (0..n).map(|i| 40.0 + 0.4 * (i % 4) as f64).collect();
    let jitter = |i: usize| 1.0 + 0.002 * (i % 3) as f64;
    let mut a = common::harness_results(
        "a",
        common::commit("aaa", &[], 1, Some("main")),
        &[
            ("ops_s", "ops/s", Direction::Higher, base.clone()),
            ("server_anon_peak_mib", "MiB", Direction::Lower, base.clone()),
            ("latency_p99_ms", "ms", Direction::Lower, base.clone()),
        ],
    );
    a.scenarios[0].fixed_duration = true;
    let mut b = a.clone();
    b.run.id = "b".into();
    b.commit.sha = "bbb".into();
    for name in ["ops_s", "server_anon_peak_mib"] {
        let s = &mut b.scenarios[0].metrics.get_mut(name).unwrap().samples;
        for (i, v) in s.iter_mut().enumerate() {
            *v *= 1.10 * jitter(i);
        }
    }
    let rows = collector::comparison::paired_rows(&a, &b, &PairedOptions::default());
    let row = |name: &str| rows.iter().find(|r| r.metric == name).unwrap().clone();
    assert_eq!(row("ops_s").verdict_name(), "improvement");
    assert_eq!(row("latency_p99_ms").verdict_name(), "unchanged");
    let memory = row("server_anon_peak_mib");
    assert_eq!(memory.verdict, None);
    assert_eq!((memory.ratio, memory.p_value), (None, None));
    assert_eq!(memory.note.as_deref(), Some(collector::comparison::FOLLOWS_THROUGHPUT));
    assert!(
        (memory.median_b / memory.median_a - 1.10).abs() < 0.01,
        "its medians are still shown"
    );

    // In a paired per-commit run the history does not judge it either (a quieter machine
    // does more work per round); the throughput's verdict stays paired.
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(&dir.path().join("b.sqlite")).unwrap();
    let mut parent = a.clone();
    parent.run.id = "parent".into();
    parent.commit = common::commit("aaa", &[], 0, Some("main"));
    let id = db.ingest(&parent).unwrap().run_id();
    db.analyze_run(id, &Default::default()).unwrap();
    let mut kept = a.clone();
    kept.commit = common::commit("aaa", &[], 0, Some("main"));
    let mut this = b.clone();
    this.commit = common::commit("bbb", &["aaa"], 1, Some("main"));
    let (run, _) = db
        .record_paired_run(&kept, &this, ["aaa", "bbb"], &PairedOptions::default())
        .unwrap();
    db.analyze_run(run, &Default::default()).unwrap();
    let verdicts = db.verdicts(run).unwrap();
    let of = |m: &str| verdicts.iter().find(|v| v.metric == m).map(|v| v.method);
    assert_eq!(of("ops_s"), Some(Method::Paired));
    assert_eq!(of("latency_p99_ms"), Some(Method::Paired));
    assert_eq!(of("server_anon_peak_mib"), None);

    a.scenarios[0].fixed_duration = false;
    b.scenarios[0].fixed_duration = false;
    let rows = collector::comparison::paired_rows(&a, &b, &PairedOptions::default());
    let memory = rows.iter().find(|r| r.metric == "server_anon_peak_mib").unwrap();
    assert_eq!(memory.verdict_name(), "regression", "fixed work: more memory is worse");
}

#[test]
fn counts_are_compared_by_their_one_value_per_build() {
    let wall: Vec<f64> = (0..8).map(|i| 1.0 + 0.01 * (i % 3) as f64).collect();
    let with_count = |run: &str, count: f64| {
        let mut r = side(run, run, wall.clone(), vec![0.1; 8]);
        r.scenarios[0].metrics.insert(
            "server_instructions".into(),
            contract::results::MetricSamples {
                unit: "instructions".into(),
                direction: Direction::Lower,
                samples: vec![count],
            },
        );
        r.validate().unwrap();
        r
    };
    let a = with_count("a", 1e8);
    let verdict = |count: f64| {
        let rows = collector::comparison::paired_rows(&a, &with_count("b", count), &PairedOptions::default());
        let row = rows.into_iter().find(|r| r.metric == "server_instructions").unwrap();
        assert_eq!(row.rounds, 1);
        (row.verdict_name(), row.ratio.unwrap())
    };
    // No paired test for one value a side: beyond the widest spread the same build showed,
    // a change; within half a percent, none; between, the data cannot tell.
    // (A server count follows the machine's load: up to 25% is not yet a change.)
    assert_eq!(verdict(1.3e8).0, "regression");
    assert_eq!(verdict(0.7e8).0, "improvement");
    assert_eq!(verdict(1.2e8).0, "noisy");
    let (same, ratio) = verdict(1.001e8);
    assert_eq!(same, "unchanged");
    assert!((ratio - 1.001).abs() < 1e-9);

    // Stored and read back as it was decided, without an interval it does not have.
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(&dir.path().join("c.sqlite")).unwrap();
    let stored = db
        .record_comparison(&a, &with_count("b", 1.3e8), ["a", "b"], &PairedOptions::default())
        .unwrap();
    let row = db
        .comparison_rows(stored.id)
        .unwrap()
        .into_iter()
        .find(|r| r.metric == "server_instructions")
        .unwrap();
    assert_eq!(
        (row.verdict_name(), row.ci_lower, row.p_value),
        ("regression", None, None)
    );
    assert!(row.note.unwrap().contains("counted once per build"));
    // Deciding the comparison again leaves the count row as it was decided.
    let rows = db.redecide_comparison(stored.id).unwrap();
    assert!(
        rows.iter()
            .any(|r| r.1 == "server_instructions" && r.2 == Verdict::Regression),
        "{rows:?}"
    );
    let again = db
        .comparison_rows(stored.id)
        .unwrap()
        .into_iter()
        .find(|r| r.metric == "server_instructions")
        .unwrap();
    assert!((again.ratio.unwrap() - 1.3).abs() < 1e-9);
    assert!(again.note.unwrap().contains("counted once per build"));
}

/// After an upgrade of the rules, everything an older rule decided is decided again once,
/// from the raw samples: a branch comparison, a run's pairing, a run's verdicts. Nothing
/// current is touched, and a second call finds nothing to do.
#[test]
fn what_older_statistics_decided_is_decided_again_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.sqlite");
    let mut db = Database::open(&path).unwrap();
    let flat = |level: f64| -> Vec<f64> { (0..12).map(|i| level * (1.0 + 0.002 * (i % 3) as f64)).collect() };
    let slower = |v: Vec<f64>| -> Vec<f64> { v.iter().map(|x| x * 1.10).collect() };
    let branch = db
        .record_comparison(
            &side("ba", "b1", flat(1.0), vec![1.0; 12]),
            &side("bb", "b2", slower(flat(1.0)), vec![1.0; 12]),
            ["main", "feature"],
            &PairedOptions::default(),
        )
        .unwrap();
    let mut parent = side("parent", "aaa", flat(1.0), vec![1.0; 12]);
    parent.commit = common::commit("aaa", &[], 0, Some("main"));
    let parent_id = db.ingest(&parent).unwrap().run_id();
    db.analyze_run(parent_id, &Default::default()).unwrap();
    let mut ra = side("kept", "aaa", flat(1.0), vec![1.0; 12]);
    ra.commit = common::commit("aaa", &[], 0, Some("main"));
    let mut rb = side("this", "bbb", slower(flat(1.0)), vec![1.0; 12]);
    rb.commit = common::commit("bbb", &["aaa"], 1, Some("main"));
    let (run_b, pairing) = db
        .record_paired_run(&ra, &rb, ["aaa", "bbb"], &PairedOptions::default())
        .unwrap();
    db.analyze_run(run_b, &Default::default()).unwrap();
    assert_eq!(
        db.redecide_stale().unwrap(),
        collector::Redecided::default(),
        "all current"
    );

    // An older rule's rows: the branch comparison and the pairing said "unchanged", and so
    // did the run's verdicts.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "UPDATE comparison_results SET verdict = 'unchanged' WHERE metric = 'wall_s';
         UPDATE comparisons SET statistics_version = 2;
         UPDATE verdicts SET verdict = 'unchanged', statistics_version = 0 WHERE metric = 'wall_s';",
    )
    .unwrap();
    let verdict_of = |db: &Database, comparison: i64| {
        db.comparison_rows(comparison)
            .unwrap()
            .into_iter()
            .find(|r| r.metric == "wall_s")
            .unwrap()
            .verdict_name()
            .to_owned()
    };
    assert_eq!(verdict_of(&db, branch.id), "unchanged");
    let redecided = db.redecide_stale().unwrap();
    // The parent's verdicts were stale too (it has no baseline: "incomparable", recomputed).
    assert_eq!(
        redecided,
        collector::Redecided {
            comparisons: 1,
            runs: 2
        }
    );
    assert_eq!(verdict_of(&db, branch.id), "regression");
    assert_eq!(verdict_of(&db, pairing.id), "regression");
    let wall = db
        .verdicts(run_b)
        .unwrap()
        .into_iter()
        .find(|v| v.metric == "wall_s")
        .unwrap();
    assert_eq!((wall.verdict, wall.method), (Verdict::Regression, Method::Paired));
    let versions: (i64, i64) = conn
        .query_row(
            "SELECT (SELECT MIN(statistics_version) FROM comparisons),
                    (SELECT MIN(statistics_version) FROM verdicts)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        versions,
        (
            collector::statistics::paired::STATISTICS_VERSION,
            collector::statistics::STATISTICS_VERSION
        )
    );
    assert_eq!(db.redecide_stale().unwrap(), collector::Redecided::default());

    // What a newer binary decided is not undone by this one.
    conn.execute_batch(
        "UPDATE comparisons SET statistics_version = statistics_version + 1;
         UPDATE verdicts SET statistics_version = statistics_version + 1;",
    )
    .unwrap();
    assert_eq!(db.redecide_stale().unwrap(), collector::Redecided::default());
}

#[test]
fn a_paired_run_decides_its_commits_verdicts_and_survives_a_merge() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.sqlite");
    let mut db = Database::open(&path).unwrap();
    let flat = |level: f64| -> Vec<f64> { (0..12).map(|i| level * (1.0 + 0.002 * (i % 3) as f64)).collect() };
    // The parent's own job ran when the machine was 10% slower than it is now.
    let mut parent = side("parent", "aaa", flat(1.10), vec![0.0; 12]);
    parent.commit = common::commit("aaa", &[], 0, Some("main"));
    let id = db.ingest(&parent).unwrap().run_id();
    db.analyze_run(id, &Default::default()).unwrap();

    // This commit is 10% slower than the parent's kept build measured beside it, which the
    // history (at the same level as this commit) cannot see.
    let a = flat(1.0);
    let b: Vec<f64> = a.iter().map(|x| x * 1.10).collect();
    let mut ra = side("kept", "aaa", a, vec![0.0; 12]);
    ra.commit = common::commit("aaa", &[], 0, Some("main"));
    let mut rb = side("this", "bbb", b, vec![0.0; 12]);
    rb.commit = common::commit("bbb", &["aaa"], 1, Some("main"));
    rb.run.pairing = Some("paired with aaa's binaries".into());
    let (run_b, stored) = db
        .record_paired_run(&ra, &rb, ["aaa", "bbb"], &PairedOptions::default())
        .unwrap();
    db.analyze_run(run_b, &Default::default()).unwrap();

    let check = |db: &Database| {
        let run = db.runs().unwrap().into_iter().find(|r| r.commit.sha == "bbb").unwrap();
        assert_eq!(run.pairing.as_deref(), Some("paired with aaa's binaries"));
        assert_eq!(run.paired_with.as_deref(), Some("aaa"));
        let verdicts = db.verdicts(run.id).unwrap();
        let of = |m: &str| verdicts.iter().find(|v| v.metric == m).unwrap().clone();
        let wall = of("wall_s");
        assert_eq!((wall.verdict, wall.method), (Verdict::Regression, Method::Paired));
        assert_eq!(wall.baseline_sha.as_deref(), Some("aaa"));
        assert!((wall.baseline_median.unwrap() - 1.002).abs() < 1e-9, "{wall:?}");
        assert!((wall.relative_change.unwrap() - 0.10).abs() < 1e-9);
        assert_eq!(of("throughput_mib_s").verdict, Verdict::Regression);
        // A zero has no ratio: that series falls back to the history.
        assert_eq!(of("client_cpu_sys_s").method, Method::History);
        // The series hold one point per commit, each the commit's own.
        let series = db.series().unwrap();
        let wall_series = series.iter().find(|s| s.metric == "wall_s").unwrap();
        let points = db.points(wall_series, Some("main")).unwrap();
        assert_eq!(points.len(), 2);
        // Branch comparisons are listed as such; this one is the run's pairing.
        let list = db.comparisons().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].kind, ComparisonKind::Baseline);
    };
    check(&db);
    assert_eq!(stored.rows.iter().filter(|r| r.is(Verdict::Regression)).count(), 2);

    // Rows an older paired rule decided (here: written over to say "unchanged") are read back
    // by an ordinary analysis, and decided again from the raw samples when asked
    // (`check --recompute`).
    let conn = rusqlite::Connection::open(&path).unwrap();
    let stale = conn
        .execute(
            "UPDATE comparison_results SET verdict = 'unchanged', ratio = 1.0, ci_lower = 0.99, ci_upper = 1.01,
                    p_value = 0.9 WHERE metric = 'wall_s'",
            [],
        )
        .unwrap();
    assert_eq!(stale, 1);
    let wall = |db: &Database| {
        db.verdicts(run_b)
            .unwrap()
            .into_iter()
            .find(|v| v.metric == "wall_s")
            .unwrap()
            .verdict
    };
    db.analyze_run(run_b, &Default::default()).unwrap();
    assert_eq!(wall(&db), Verdict::Unchanged, "the stored row was read back");
    let redecide = collector::AnalysisOptions {
        redecide_pairs: true,
        ..Default::default()
    };
    db.analyze_run(run_b, &redecide).unwrap();
    check(&db);
    let (ratio, verdict): (f64, String) = conn
        .query_row(
            "SELECT ratio, verdict FROM comparison_results WHERE metric = 'wall_s'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        (ratio - 1.10).abs() < 1e-9 && verdict == "regression",
        "{ratio} {verdict}"
    );
    // The same for a stored comparison asked by its id: its regressions come first.
    let rows = db.redecide_comparison(stored.id).unwrap();
    assert_eq!(rows[0].2, Verdict::Regression, "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r.2 == Verdict::Regression).count(), 2);

    // A merged copy of the history keeps the pairing, and its analysis decides alike.
    let mut other = Database::open(&dir.path().join("other.sqlite")).unwrap();
    let report = other.merge_from(&path).unwrap();
    assert_eq!(report.history_runs_added.len(), 2);
    other
        .analyze_runs(&report.history_runs_added, &Default::default())
        .unwrap();
    check(&other);
}

#[test]
fn paired_calibrations_measure_false_positives_and_detections_apart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.sqlite");
    let mut db = Database::open(&path).unwrap();
    // Drifting rounds; B is A round by round (A/A) or 10% slower (an injected cost).
    let a: Vec<f64> = (0..8).map(|i| 1.0 + 0.03 * i as f64 + 0.002 * (i % 3) as f64).collect();
    let copy: Vec<f64> = a
        .iter()
        .enumerate()
        .map(|(i, x)| x * (1.0 + 0.001 * (i % 2) as f64))
        .collect();
    let slower: Vec<f64> = copy.iter().map(|x| x * 1.10).collect();
    let pairs = |tag: &str, b: &[f64]| -> Vec<[Results; 2]> {
        (0..3)
            .map(|i| {
                [
                    side(&format!("{tag}-a{i}"), "aaa", a.clone(), vec![0.0; 8]),
                    side(&format!("{tag}-b{i}"), "aaa", b.to_vec(), vec![0.0; 8]),
                ]
            })
            .collect()
    };
    let record = |db: &mut Database, pairs: &[[Results; 2]], kind, injected: Option<&str>| {
        db.record_paired_calibration(
            &PairedCalibration {
                pairs,
                kind,
                injected: injected.map(str::to_owned),
                scenario_file: "scenarios/smoke.toml".into(),
                started_at: "2026-12-07T00:00:00Z".into(),
                finished_at: "2026-12-07T00:10:00Z".into(),
            },
            &PairedOptions::default(),
        )
        .unwrap()
    };
    let aa = record(&mut db, &pairs("aa", &copy), CalibrationKind::Paired, None);
    let ab = record(
        &mut db,
        &pairs("ab", &slower),
        CalibrationKind::Injected,
        Some("SOLEDAD_BENCH_INJECTED_CRYPTO=1250"),
    );
    let of = |r: &collector::CalibrationReport, m: &str| r.series.iter().find(|s| s.metric == m).unwrap().clone();
    for m in ["wall_s", "throughput_mib_s"] {
        assert_eq!((of(&aa, m).comparisons, of(&aa, m).false_regressions), (3, 0), "{m}");
        assert_eq!(
            (of(&ab, m).false_regressions, of(&ab, m).false_positive_rate),
            (3, 1.0),
            "{m}"
        );
    }
    // A zero has no ratio: not a comparison either way.
    assert!(aa.series.iter().all(|s| s.metric != "client_cpu_sys_s"));
    assert_eq!((aa.failing_comparisons, ab.failing_comparisons), (0, 3));

    let check = |db: &Database| {
        let list = db.calibrations().unwrap();
        let kinds: Vec<_> = list.iter().map(|c| (c.kind, c.injected.clone())).collect();
        assert_eq!(
            kinds,
            [
                (
                    CalibrationKind::Injected,
                    Some("SOLEDAD_BENCH_INJECTED_CRYPTO=1250".to_owned())
                ),
                (CalibrationKind::Paired, None)
            ]
        );
        // The series' A/A rate is the paired A/A calibration's, though the injected one is
        // newer: a detection is not a false positive.
        let rates = db.series_calibrations(CalibrationKind::Paired).unwrap();
        assert!(!rates.is_empty());
        assert!(rates.values().all(|c| c.false_positive_rate == 0.0), "{rates:?}");
        // The history rule's rate is its own: no history calibration here.
        assert!(db.series_calibrations(CalibrationKind::History).unwrap().is_empty());
    };
    check(&db);
    let mut other = Database::open(&dir.path().join("other.sqlite")).unwrap();
    let report = other.merge_from(&path).unwrap();
    assert_eq!(report.calibrations_added, 2);
    check(&other);
}

#[test]
fn a_latency_shift_under_half_a_millisecond_is_not_a_change() {
    // The server ping's p99 of an A/A comparison: 0.3 ms on A, 0.6 ms on B in every pair.
    let ping = |level: f64| -> Vec<f64> { (0..16).map(|i| level * (1.0 + 0.03 * (i % 4) as f64)).collect() };
    let tail = |level: f64| -> Vec<f64> { (0..16).map(|i| level * (1.0 + 0.01 * (i % 3) as f64)).collect() };
    let results = |run: &str, sha: &str, ping_ms: f64, p99_ms: f64| {
        common::harness_results(
            run,
            common::commit(sha, &[], 1, Some("main")),
            &[
                ("server_ping_p99_ms", "ms", Direction::Lower, ping(ping_ms)),
                ("latency_p99_ms", "ms", Direction::Lower, tail(p99_ms)),
                ("wall_s", "s", Direction::Lower, tail(0.0003)),
            ],
        )
    };
    let a = results("a", "aaa", 0.3, 10.0);
    let b = results("b", "bbb", 0.6, 12.0);
    let rows = collector::comparison::paired_rows(&a, &b, &PairedOptions::default());
    let verdict = |m: &str| rows.iter().find(|r| r.metric == m).unwrap().verdict;
    // Doubled, but by 0.3 ms: the whole interval of the shift is under the floor.
    assert_eq!(verdict("server_ping_p99_ms"), Some(Verdict::Unchanged));
    // 2 ms more of a 10 ms tail is a change.
    assert_eq!(verdict("latency_p99_ms"), Some(Verdict::Regression));
    // Seconds are not held to it, however small.
    let b = results("b2", "ccc", 0.3, 10.0);
    let mut b = b;
    for s in &mut b.scenarios {
        let wall = s.metrics.get_mut("wall_s").unwrap();
        wall.samples.iter_mut().for_each(|x| *x *= 1.5);
    }
    let rows = collector::comparison::paired_rows(&a, &b, &PairedOptions::default());
    let wall = rows.iter().find(|r| r.metric == "wall_s").unwrap();
    assert_eq!(wall.verdict, Some(Verdict::Regression));
}

/// A share of a core that paired statistics version 3 tested (ratio, verdict, a place in the
/// family) is, decided again, shown without a verdict and left out of the family.
#[test]
fn a_share_of_a_core_an_older_rule_judged_is_unjudged_when_decided_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.sqlite");
    let mut db = Database::open(&path).unwrap();
    let flat: Vec<f64> = (0..12).map(|i| 1.0 + 0.002 * (i % 3) as f64).collect();
    let with_share = |run: &str, sha: &str, share: f64| {
        let mut r = side(run, sha, flat.clone(), vec![1.0; 12]);
        r.scenarios[0].metrics.insert(
            "client_cpu_pct".into(),
            contract::results::MetricSamples {
                unit: "%".into(),
                direction: Direction::Lower,
                samples: flat.iter().map(|x| x * share).collect(),
            },
        );
        r
    };
    let c = db
        .record_comparison(
            &with_share("a", "a1", 90.0),
            &with_share("b", "b1", 99.0),
            ["main", "feature"],
            &PairedOptions::default(),
        )
        .unwrap();
    let share = |db: &Database| {
        db.comparison_rows(c.id)
            .unwrap()
            .into_iter()
            .find(|r| r.metric == "client_cpu_pct")
            .unwrap()
    };
    assert!(share(&db).not_judged(), "{:?}", share(&db));
    // As version 3 stored it.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "UPDATE comparison_results SET ratio = 1.1, verdict = 'regression', p_value = 0.001, note = NULL
           WHERE metric = 'client_cpu_pct';
         UPDATE comparisons SET statistics_version = 3;",
    )
    .unwrap();
    assert_eq!(share(&db).verdict_name(), "regression");
    assert_eq!(db.redecide_stale().unwrap().comparisons, 1);
    let row = share(&db);
    assert!(row.not_judged(), "{row:?}");
    assert_eq!((row.ratio, row.p_value), (None, None));
    assert_eq!(row.note.as_deref(), Some(contract::metrics::SHARE_OF_A_CORE));
    let wall = db
        .comparison_rows(c.id)
        .unwrap()
        .into_iter()
        .find(|r| r.metric == "wall_s")
        .unwrap();
    assert_eq!(wall.verdict_name(), "unchanged", "the others are decided as before");
}
