//! The collector's commands on real files: check, export and import, merge, calibrate, and
//! an ingest killed half-way.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Repo, bench, results_json, stderr};

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn write_json(path: &Path, v: &serde_json::Value) {
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

fn count(db: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Two commits, the second 20% slower: `check` says so in every format and exits with 3.
#[test]
fn check_reports_the_verdicts_and_fails_on_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.sqlite");
    let f0 = dir.path().join("r0.json");
    let f1 = dir.path().join("r1.json");
    let base = [
        0.100, 0.101, 0.099, 0.1005, 0.0995, 0.1002, 0.0998, 0.1001, 0.0999, 0.1003,
    ];
    let slow: Vec<f64> = base.iter().map(|v| v * 1.2).collect();
    write_json(&f0, &results_json("run-0", "c0", &[], 0, &base));
    write_json(&f1, &results_json("run-1", "c1", &["c0"], 1, &slow));
    let out = bench(&[os("ingest"), f0.as_os_str(), f1.as_os_str(), os("--db"), db.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("run 1: 2 new") && text.contains("run 2: 2 regressions"),
        "{text}"
    );

    let out = bench(&[os("check"), os("--db"), db.as_os_str()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(
        table.starts_with("run 2 at c1 (commit c1) on main, baseline c0"),
        "{table}"
    );
    let row = table.lines().find(|l| l.contains("wall_s")).expect("a wall_s row");
    assert!(row.starts_with("regression") && row.contains("+20.0%"), "{row}");
    assert!(table.contains("2 series: 2 regressions"), "{table}");

    let out = bench(&[os("check"), os("--db"), db.as_os_str(), os("--format"), os("markdown")]);
    assert_eq!(out.status.code(), Some(3));
    let md = stdout(&out);
    assert!(md.starts_with("### Benchmarks: **2 regressions**"), "{md}");
    assert!(
        md.contains("| **regression** | `blobs.upload/3x10k/c2` | `wall_s` |"),
        "{md}"
    );

    let out = bench(&[
        os("check"),
        os("--db"),
        db.as_os_str(),
        os("--format"),
        os("json"),
        os("--run"),
        os("1"),
    ]);
    assert_eq!(out.status.code(), Some(0), "the first run has nothing to regress from");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["run"]["commit"], "c0");
    assert!(
        json["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["verdict"] == "new")
    );

    let out = bench(&[os("check"), os("--db"), db.as_os_str(), os("--run"), os("nope")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no run nope"), "{}", stderr(&out));
    let out = bench(&[os("check"), os("--db"), dir.path().join("none.sqlite").as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn export_import_and_merge_between_databases() {
    let repo = Repo::new();
    repo.commit("first");
    let dir = repo.out();
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("a.sqlite");
    let f0 = dir.join("r0.json");
    write_json(
        &f0,
        &results_json("run-0", "c0", &[], 0, &[0.1, 0.11, 0.09, 0.1, 0.105]),
    );
    assert!(
        bench(&[os("ingest"), f0.as_os_str(), os("--db"), a.as_os_str()])
            .status
            .success()
    );

    // BMF out of `a` and into `b`, as a run of the repository's commit.
    let bmf = dir.join("run.bmf.json");
    let out = bench(&[os("export"), os("--db"), a.as_os_str(), os("--out"), bmf.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let exported: serde_json::Value = serde_json::from_slice(&std::fs::read(&bmf).unwrap()).unwrap();
    assert_eq!(exported["blobs.upload/3x10k/c2"]["wall_s"]["value"], 0.1);
    let b = dir.join("b.sqlite");
    let import = |extra: &[&OsStr]| {
        let mut args = vec![
            os("import"),
            os("bmf"),
            bmf.as_os_str(),
            os("--db"),
            b.as_os_str(),
            os("--repo"),
            repo.path().as_os_str(),
        ];
        args.extend_from_slice(extra);
        bench(&args)
    };
    let out = import(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("stored as run 1"), "{}", stdout(&out));
    assert!(stdout(&import(&[])).contains("already stored as run 1"));
    let out = bench(&[
        os("import"),
        os("bmf"),
        f0.as_os_str(),
        os("--db"),
        b.as_os_str(),
        os("--repo"),
        repo.path().as_os_str(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("r0.json"), "{}", stderr(&out));
    let out = import(&[os("--measure"), os("wall_s=seconds")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("expected NAME=UNIT:lower"), "{}", stderr(&out));

    // Criterion's results of the crypto benches.
    let criterion = Path::new(env!("CARGO_MANIFEST_DIR")).join("collector/tests/fixtures/criterion");
    let out = bench(&[
        os("import"),
        os("criterion"),
        criterion.as_os_str(),
        os("--db"),
        b.as_os_str(),
        os("--repo"),
        repo.path().as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("(2 benchmarks): stored as run 2"),
        "{}",
        stdout(&out)
    );
    assert_eq!(count(&b, "SELECT count(*) FROM runs WHERE source = 'criterion'"), 1);

    // Merge `b` into `a`: three runs, twice.
    let out = bench(&[os("merge"), b.as_os_str(), os("--db"), a.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 runs added"), "{}", stdout(&out));
    let out = bench(&[os("merge"), b.as_os_str(), os("--db"), a.as_os_str()]);
    assert!(
        stdout(&out).contains("0 runs added, 0 calibration runs added, 2 already present"),
        "{}",
        stdout(&out)
    );
    assert_eq!(count(&a, "SELECT count(*) FROM runs"), 3);
    assert_eq!(
        count(&a, "SELECT count(*) FROM verdicts"),
        count(&a, "SELECT count(*) FROM data_points")
    );
}

#[test]
fn calibrate_runs_the_same_build_and_stores_false_positive_rates() {
    let repo = Repo::new();
    repo.commit("only commit");
    let db = repo.out().join("bench.sqlite");
    let out = repo.bench_cmd("calibrate", &[("--repetitions", "3"), ("--db", db.to_str().unwrap())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("calibration 1: 2 A/A comparisons of"), "{text}");
    assert!(text.contains("blobs.upload/3x10k/c2 wall_s"), "{text}");
    assert_eq!(count(&db, "SELECT count(*) FROM runs WHERE purpose = 'calibration'"), 3);
    assert_eq!(count(&db, "SELECT count(*) FROM calibration_runs"), 3);
    assert_eq!(
        count(&db, "SELECT min(comparisons) FROM calibration_series"),
        2,
        "every series compared twice"
    );
    // A/A runs are not history: there is nothing to check.
    let out = bench(&[os("check"), os("--db"), db.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no run latest"), "{}", stderr(&out));
    let out = repo.bench_cmd("calibrate", &[("--repetitions", "1"), ("--db", db.to_str().unwrap())]);
    assert!(!out.status.success());
    let out = repo.bench_cmd("calibrate", &[("--rounds", "2"), ("--db", db.to_str().unwrap())]);
    assert!(stderr(&out).contains("at least 5 rounds"), "{}", stderr(&out));
    let out = repo.bench_cmd("calibrate", &[("--only", "crypto."), ("--db", db.to_str().unwrap())]);
    assert!(
        stderr(&out).contains("no scenario of") && stderr(&out).contains("matches --only crypto."),
        "{}",
        stderr(&out)
    );
}

/// An ingest killed in the middle of its transaction leaves nothing: the database reads as
/// if it never started, and the same file goes in whole afterwards.
#[test]
fn a_killed_ingest_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.sqlite");
    let small = dir.path().join("small.json");
    write_json(
        &small,
        &results_json("small", "c0", &[], 0, &[1.0, 1.1, 0.9, 1.0, 1.05]),
    );
    assert!(
        bench(&[os("ingest"), small.as_os_str(), os("--db"), db.as_os_str()])
            .status
            .success()
    );
    // Big enough that SQLite spills the open transaction to the write-ahead log long before
    // it commits: 300 scenarios of 2 metrics of 2000 samples.
    let mut big = results_json("big", "c1", &["c0"], 1, &vec![1.0; 2000]);
    let template = big["scenarios"][0].clone();
    let scenarios: Vec<serde_json::Value> = (0..300)
        .map(|i| {
            let mut s = template.clone();
            s["id"] = format!("blobs.upload/{}x10k/c2", i + 1).into();
            s["definition_hash"] = format!("{:016x}", i + 1).into();
            s["params"]["count"] = (i + 1).into();
            s
        })
        .collect();
    big["scenarios"] = scenarios.into();
    let big_file = dir.path().join("big.json");
    write_json(&big_file, &big);
    let wal = dir.path().join("b.sqlite-wal");

    let wal_before = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let mut child = Command::new(common::bench_exe())
        .args([os("ingest"), big_file.as_os_str(), os("--db"), db.as_os_str()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the ingest finished before it could be killed; make the file bigger"
        );
        assert!(Instant::now() < deadline, "the ingest never wrote to the log");
        let grown = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        if grown > wal_before + (4 << 20) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM runs"), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM samples"), 10);
    assert_eq!(count(&db, "SELECT count(*) FROM scenarios"), 1);
    let out = bench(&[os("ingest"), big_file.as_os_str(), os("--db"), db.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(&db, "SELECT count(*) FROM samples"), 10 + 300 * 2 * 2000);
}

/// `scripts/test`, the README's test command, on a machine where what the tests need is
/// missing and cannot be installed (no apt-get): one clear line naming what is missing, and
/// a failure, before any test runs.
#[test]
fn the_test_command_names_what_it_cannot_install() {
    let bin = tempfile::tempdir().unwrap();
    // A PATH with what the script itself uses, and neither the packages nor apt-get.
    for tool in ["bash", "dirname", "id", "mktemp", "rm", "cat"] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} is not installed"));
        std::os::unix::fs::symlink(found, bin.path().join(tool)).unwrap();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test");
    let out = Command::new(bin.path().join("bash"))
        .arg(&script)
        .env_clear()
        .env("PATH", bin.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("cannot install ") && err.contains("chromium strace") && err.contains("no apt-get"),
        "{err}"
    );
}

/// `find` on a series no rule judges (a total of a fixed-duration scenario, here the load's
/// server CPU seconds, or a share of a core) says so at once, before it builds anything.
#[test]
fn find_refuses_a_series_no_rule_judges() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("load.toml");
    std::fs::write(
        &scenarios,
        "[[scenario]]\nworkload = \"server.load\"\nops = [\"upload\"]\nsizes = [\"1k\"]\nconcurrency = [2]\nduration_s = 1\n",
    )
    .unwrap();
    // `find` on one metric of the load scenario: it fails before it builds anything.
    let refused = |metric: &str| {
        let out = bench(&[
            os("find"),
            os("HEAD~1"),
            os("HEAD"),
            os("--scenario"),
            os("server.load/upload/1k/c2"),
            os("--metric"),
            os(metric),
            os("--scenarios"),
            scenarios.as_os_str(),
            os("--repo"),
            dir.path().as_os_str(),
        ]);
        assert!(!out.status.success());
        stderr(&out)
    };
    let err = refused("server_cpu_user_s");
    assert!(
        err.contains("server_cpu_user_s of server.load/upload/1k/c2 is accumulated over a fixed-duration round")
            && err.contains("such as ops_s"),
        "{err}"
    );
    // A share of a core has no better direction, in any scenario.
    let err = refused("server_cpu_pct");
    assert!(
        err.contains("server_cpu_pct of server.load/upload/1k/c2 is a share of a core"),
        "{err}"
    );
}

/// The front page's classes of what this runner can judge: a count series with 11 runs
/// behind it is judged by its own spread, one with fewer only beyond the spread assumed for
/// any count, and a series of a superseded definition (a workload's version changed) is
/// counted apart, as no longer measured.
#[test]
fn the_front_page_says_which_counts_know_their_spread_and_sets_retired_series_apart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.sqlite");
    let mut files = Vec::new();
    for i in 0..15u64 {
        let parents: Vec<String> = (i > 0).then(|| format!("c{}", i - 1)).into_iter().collect();
        let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
        let wall: Vec<f64> = (0..10).map(|k| 0.1 + 0.0001 * k as f64).collect();
        let mut r = results_json(&format!("run-{i}"), &format!("c{i}"), &parents, i, &wall);
        let s = &mut r["scenarios"][0];
        // The last three commits measure a new version of the workload: a new definition.
        if i >= 12 {
            s["workload_version"] = 2.into();
            s["definition_hash"] = "fedcba9876543210".into();
        }
        s["metrics"]["client_instructions"] = serde_json::json!({
            "unit": "instructions", "direction": "lower", "samples": [1e9 + (i % 2) as f64 * 1e5]
        });
        let file = dir.path().join(format!("r{i}.json"));
        write_json(&file, &r);
        files.push(file);
    }
    let classes = |files: &[std::path::PathBuf]| {
        let mut args = vec![os("ingest")];
        args.extend(files.iter().map(|f| f.as_os_str()));
        args.extend([os("--db"), db.as_os_str()]);
        let out = bench(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let site = dir.path().join("site");
        let out = bench(&[os("site"), os("--db"), db.as_os_str(), os("--out"), site.as_os_str()]);
        assert!(out.status.success(), "{}", stderr(&out));
        let index = std::fs::read_to_string(site.join("index.html")).unwrap();
        let classes = common::resolution_classes(&index);
        let class = |words: &str| -> usize {
            let found = classes.iter().find(|(_, w)| w.contains(words));
            found.unwrap_or_else(|| panic!("no class {words:?} in {classes:?}")).0
        };
        assert!(
            classes.iter().any(|(_, w)| w.contains("100,000 instructions")),
            "{classes:?}"
        );
        [
            class("instruction counts (one count per run under Valgrind) with the history"),
            class("instruction counts with less history"),
            class("no longer measured"),
        ]
    };
    // Twelve runs of version 1: the count's latest verdict has 11 points behind it.
    assert_eq!(classes(&files[..12]), [1, 0, 0]);
    // Then three of version 2: version 1's three series (wall time, throughput, count) are
    // no longer measured, and version 2's count has 3 runs.
    assert_eq!(classes(&files[12..]), [0, 1, 3]);
}
