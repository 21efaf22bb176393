//! A per-commit run paired with the previous commit's kept build (`run --baseline DIR
//! --keep-build DIR`), end to end: real binaries kept by one run and measured by the next,
//! a real git repository, a real SQLite file and the generated site.

mod common;

use std::path::Path;

use common::{Repo, stderr};

fn load_results(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `run` with a kept build in out/kept, results in out/<name>.json.
fn paired_run(repo: &Repo, name: &str) -> std::process::Output {
    let out = repo.out();
    let results = out.join(format!("{name}.json"));
    let kept = out.join("kept");
    repo.bench_run(&[
        ("--results", results.to_str().unwrap()),
        ("--baseline", kept.to_str().unwrap()),
        ("--keep-build", kept.to_str().unwrap()),
    ])
}

/// Which rule decided each scenario's `wall_s` verdict in the history run of `sha`.
fn wall_methods(db: &rusqlite::Connection, sha: &str) -> Vec<(String, String)> {
    db.prepare(
        "SELECT s.scenario_id, v.method FROM verdicts v JOIN scenarios s ON s.id = v.scenario_ref
         JOIN runs r ON r.id = v.run_id WHERE r.commit_sha = ?1 AND r.purpose = 'history' AND v.metric = 'wall_s'
         ORDER BY 1",
    )
    .unwrap()
    .query_map([sha], |r| Ok((r.get(0)?, r.get(1)?)))
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn kept_sha(repo: &Repo) -> String {
    let meta = load_results(&repo.out().join("kept/kept.json"));
    meta["commit"]["sha"].as_str().unwrap().to_owned()
}

#[test]
fn a_commit_is_paired_with_its_parents_kept_build_and_says_so() {
    let repo = Repo::new();
    let first = repo.commit("first");

    // The first run has nothing kept: it runs unpaired, says why, and keeps its own build.
    let out = paired_run(&repo, "first");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: unpaired rounds: no kept build in"),
        "{}",
        stderr(&out)
    );
    let r1 = load_results(&repo.out().join("first.json"));
    let pairing = r1["run"]["pairing"].as_str().unwrap();
    assert!(pairing.starts_with("unpaired: no kept build in"), "{pairing}");
    assert!(!repo.out().join("first.baseline.json").exists());
    assert_eq!(kept_sha(&repo), first);
    assert!(repo.out().join("kept/soledad-bench").is_file());
    assert!(repo.out().join("kept/blobs-server").is_file());

    // The second commit's rounds interleave with the first's kept binaries.
    let second = repo.commit("second");
    let out = paired_run(&repo, "second");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("rounds paired with {}", &first[..10])),
        "{}",
        stderr(&out)
    );
    let b = load_results(&repo.out().join("second.json"));
    let a = load_results(&repo.out().join("second.baseline.json"));
    assert_eq!(b["commit"]["sha"], second.as_str());
    assert_eq!(a["commit"]["sha"], first.as_str());
    assert!(
        b["run"]["pairing"]
            .as_str()
            .unwrap()
            .starts_with(&format!("paired with {}", &first[..10]))
    );
    // Both sides ran the same rounds of every scenario, at least the paired statistics' 6,
    // and the stopping rule watched the paired ratio's interval.
    for (sa, sb) in a["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["scenarios"].as_array().unwrap())
    {
        assert_eq!(sa["id"], sb["id"]);
        assert_eq!(sa["rounds"], sb["rounds"]);
        assert!(sb["rounds"].as_u64().unwrap() >= 6, "{}", sb["rounds"]);
        assert!(sb["budget"]["paired_ci"].as_f64().is_some(), "{}", sb["budget"]);
    }
    // The next commit will be paired with this one.
    assert_eq!(kept_sha(&repo), second);
    // The kept build's side is not a run of its commit: ingest refuses it.
    let other_db = repo.out().join("other.sqlite");
    let refused = common::bench(&[
        "ingest".as_ref(),
        "--db".as_ref(),
        other_db.as_os_str(),
        repo.out().join("second.baseline.json").as_os_str(),
    ]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("is the kept build's side of a paired run"),
        "{}",
        stderr(&refused)
    );
    // The merge-request style report says how the verdicts were decided.
    let db_path = repo.out().join("bench.sqlite");
    let report = common::bench(&[
        "check".as_ref(),
        "--db".as_ref(),
        db_path.as_os_str(),
        "--format".as_ref(),
        "markdown".as_ref(),
    ]);
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(
        text.contains(
            "series were decided by rounds paired with the previous commit's binaries in this job (paired with"
        ),
        "{text}"
    );

    let db = rusqlite::Connection::open(repo.out().join("bench.sqlite")).unwrap();
    // The commit's run is a history run; the baseline's side is a comparison run, so the
    // series hold one point per commit, each the commit's own values.
    let purposes: Vec<(String, String)> = db
        .prepare("SELECT commit_sha, purpose FROM runs ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        purposes,
        [
            (first.clone(), "history".to_owned()),
            (first.clone(), "comparison".to_owned()),
            (second.clone(), "history".to_owned())
        ]
    );
    let (run_b, run_a): (i64, i64) = db
        .query_row(
            "SELECT run_b, run_a FROM comparisons WHERE kind = 'baseline'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let history_run: i64 = db
        .query_row(
            "SELECT id FROM runs WHERE commit_sha = ?1 AND purpose = 'history'",
            [&second],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(run_b, history_run);
    // Timed metrics are decided by the pairs: the baseline is the kept build's side of this
    // run, and its median is that side's.
    let wall = "SELECT v.method, v.baseline_run_id, v.baseline_median, v.commit_n, d.median
                FROM verdicts v JOIN scenarios s ON s.id = v.scenario_ref
                JOIN data_points d ON d.run_id = v.baseline_run_id AND d.scenario_ref = v.scenario_ref AND d.metric = v.metric
                WHERE v.run_id = ?1 AND v.metric = 'wall_s' AND s.scenario_id LIKE 'blobs.upload/%'";
    let (method, baseline, baseline_median, n, side_a_median): (String, i64, f64, i64, f64) = db
        .query_row(wall, [history_run], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap();
    assert_eq!((method.as_str(), baseline), ("paired", run_a));
    assert_eq!(baseline_median, side_a_median);
    assert!(n >= 6);
    let paired: i64 = db
        .query_row(
            "SELECT count(*) FROM verdicts WHERE run_id = ?1 AND method = 'paired'",
            [history_run],
            |r| r.get(0),
        )
        .unwrap();
    let all: i64 = db
        .query_row("SELECT count(*) FROM verdicts WHERE run_id = ?1", [history_run], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(paired > 20 && paired <= all, "{paired} of {all}");
    // The first commit's verdicts are its own: new series, decided by nothing paired.
    let first_methods: i64 = db
        .query_row(
            "SELECT count(*) FROM verdicts v JOIN runs r ON r.id = v.run_id
             WHERE r.commit_sha = ?1 AND v.method <> 'history'",
            [&first],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(first_methods, 0);

    // The commit pages say how each run's rounds ran.
    let page = |sha: &str| std::fs::read_to_string(repo.out().join(format!("public/commits/{sha}.html"))).unwrap();
    let second_page = page(&second);
    assert!(second_page.contains("rounds paired with"), "{second_page}");
    assert!(second_page.contains(&format!("commits/{first}.html")));
    assert!(second_page.contains("series were decided by paired rounds"));
    let first_page = page(&first);
    assert!(first_page.contains("unpaired: no kept build in"), "{first_page}");
    assert!(first_page.contains("its verdicts come from the history"));

    // A scenario whose definition changed since the kept build's run is not paired.
    let third = repo.commit("third");
    let meta_path = repo.out().join("kept/kept.json");
    let mut meta = load_results(&meta_path);
    assert_eq!(meta["definitions"].as_object().unwrap().len(), 2, "{meta}");
    meta["definitions"]["blobs.upload/3x10k/c2"] = "0000000000000000".into();
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    let out = paired_run(&repo, "third");
    assert!(out.status.success(), "{}", stderr(&out));
    let pairing = load_results(&repo.out().join("third.json"))["run"]["pairing"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        pairing.ends_with("; 1 scenarios unpaired, their definition changed since"),
        "{pairing}"
    );
    assert_eq!(
        wall_methods(&db, &third),
        [
            ("blobs.download/3x10k/c2".to_owned(), "paired".to_owned()),
            ("blobs.upload/3x10k/c2".to_owned(), "history".to_owned())
        ]
    );

    // A scenario marked `paired = false` runs the commit's build alone, on its own budget,
    // and is judged by its history; the other is still paired.
    let fourth = repo.commit("fourth");
    let alone = repo.out().join("alone.toml");
    let text = common::TINY_SCENARIOS.replace(
        "workload = \"blobs.download\"",
        "workload = \"blobs.download\"\npaired = false",
    );
    assert!(text.contains("paired = false"));
    std::fs::write(&alone, text).unwrap();
    let out = repo.bench_run(&[
        ("--scenarios", alone.to_str().unwrap()),
        ("--results", repo.out().join("fourth.json").to_str().unwrap()),
        ("--baseline", repo.out().join("kept").to_str().unwrap()),
        ("--keep-build", repo.out().join("kept").to_str().unwrap()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let b = load_results(&repo.out().join("fourth.json"));
    let a = load_results(&repo.out().join("fourth.baseline.json"));
    let ids = |r: &serde_json::Value| -> Vec<String> {
        r["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&b), ["blobs.upload/3x10k/c2", "blobs.download/3x10k/c2"]);
    assert_eq!(ids(&a), ["blobs.upload/3x10k/c2"], "the kept build did not run it");
    let download = &b["scenarios"][1];
    assert_eq!(download["rounds"], 5, "its own budget, not the paired minimum");
    assert!(download["budget"]["paired_ci"].is_null(), "{}", download["budget"]);
    assert!(
        b["run"]["pairing"]
            .as_str()
            .unwrap()
            .ends_with("; 1 scenarios measured alone (paired = false), judged by their history"),
        "{}",
        b["run"]["pairing"]
    );
    assert_eq!(
        wall_methods(&db, &fourth),
        [
            ("blobs.download/3x10k/c2".to_owned(), "history".to_owned()),
            ("blobs.upload/3x10k/c2".to_owned(), "paired".to_owned())
        ]
    );

    // After an upgrade of the paired rule, the site decides the pairings an older rule
    // decided again before it shows them.
    let before_upgrade = wall_methods(&db, &second);
    let stale = db.execute("UPDATE comparisons SET statistics_version = 1", []).unwrap();
    assert_eq!(stale, 3, "the pairings of the second, third and fourth runs");
    let out = common::render_site(&db_path, &repo.out().join("site"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("decided again by the statistics now: 3 runs, 0 branch comparisons"),
        "{stdout}"
    );
    let oldest: i64 = db
        .query_row("SELECT MIN(statistics_version) FROM comparisons", [], |r| r.get(0))
        .unwrap();
    assert_eq!(oldest, collector::statistics::paired::STATISTICS_VERSION);
    assert_eq!(wall_methods(&db, &second), before_upgrade);
}

#[test]
fn a_rerun_of_the_kept_commit_and_a_broken_kept_build_run_unpaired() {
    let repo = Repo::new();
    let sha = repo.commit("only");
    let out = paired_run(&repo, "once");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(kept_sha(&repo), sha);

    // The same commit again (a retried job): its kept build would pair it with itself.
    let out = paired_run(&repo, "again");
    assert!(out.status.success(), "{}", stderr(&out));
    let pairing = load_results(&repo.out().join("again.json"))["run"]["pairing"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pairing.contains("the kept build is of this commit"), "{pairing}");

    // A kept build whose description is damaged is named, and the run goes on unpaired.
    repo.commit("next");
    std::fs::write(repo.out().join("kept/kept.json"), "{ not json").unwrap();
    let out = paired_run(&repo, "damaged");
    assert!(out.status.success(), "{}", stderr(&out));
    let pairing = load_results(&repo.out().join("damaged.json"))["run"]["pairing"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        pairing.contains("kept.json is not a kept build's description"),
        "{pairing}"
    );
    assert!(!repo.out().join("damaged.baseline.json").exists());
    // It was replaced by this run's build.
    assert_ne!(kept_sha(&repo), sha);

    // A kept build that fails where this one works (an old driver meeting a workload it does
    // not know) costs the pairing, not the run, and is replaced.
    let failing = repo.commit("after a failing kept build");
    let driver = repo.out().join("kept/soledad-bench");
    std::fs::write(&driver, "#!/bin/sh\necho 'no such workload' >&2\nexit 3\n").unwrap();
    let out = paired_run(&repo, "failed");
    assert!(out.status.success(), "{}", stderr(&out));
    let pairing = load_results(&repo.out().join("failed.json"))["run"]["pairing"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        pairing.starts_with("unpaired: the kept build of") && pairing.contains("failed"),
        "{pairing}"
    );
    assert_eq!(kept_sha(&repo), failing);
}

#[test]
fn calibrate_paired_records_the_paired_rule_and_an_injected_build() {
    let repo = Repo::new();
    repo.commit("only");
    // A history run first, so that the site has series to show the calibrations beside.
    let out = repo.bench_run(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let db = repo.out().join("bench.sqlite");
    let db_arg = db.to_str().unwrap();
    let switch = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(common::bench_exe());
        cmd.current_dir(repo.path())
            .env(common::NO_COUNT_ROUND.0, common::NO_COUNT_ROUND.1)
            .args(["calibrate", "--paired", "--repetitions", "2", "--db", db_arg])
            .args(["--scenarios", "scenarios.toml", "--server-bin"])
            .arg(common::server_exe())
            .arg("--work-dir")
            .arg(repo.out().join("work"))
            .args(extra);
        cmd
    };
    let out = switch(&[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 paired A/A comparisons of"), "{stdout}");

    // An injected build needs its binaries and a cost; the workspace's own binaries stand in
    // for one here (they carry no cost: this checks what is recorded, not what is found).
    let bins = std::path::Path::new(common::bench_exe()).parent().unwrap().to_owned();
    let out = switch(&["--inject-build", bins.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("set SOLEDAD_BENCH_INJECTED_CRYPTO"),
        "{}",
        stderr(&out)
    );
    let out = switch(&["--inject-build", repo.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("no ") && stderr(&out).contains("soledad-bench"),
        "{}",
        stderr(&out)
    );
    let out = switch(&["--inject-build", bins.to_str().unwrap()])
        .env("SOLEDAD_BENCH_INJECTED_REQUEST", "150")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(SOLEDAD_BENCH_INJECTED_REQUEST=150): 2 pairs"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: Vec<(String, Option<String>, i64, i64)> = conn
        .prepare("SELECT kind, injected, repetitions, (SELECT count(*) FROM calibration_runs WHERE calibration_id = c.id) FROM calibrations c ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            ("paired".to_owned(), None, 2, 4),
            (
                "injected".to_owned(),
                Some("SOLEDAD_BENCH_INJECTED_REQUEST=150".to_owned()),
                2,
                4
            )
        ]
    );
    // Every timed series of both scenarios was compared in each pair.
    let series: i64 = conn
        .query_row(
            "SELECT count(*) FROM calibration_series WHERE calibration_id = 1 AND comparisons = 2 AND metric = 'wall_s'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(series, 2);

    // The scenario page shows each series' detection beside its false positives.
    let site = repo.out().join("site");
    common::render_site(&db, &site);
    let page = std::fs::read_to_string(site.join("scenarios/blobs.upload_3x10k_c2.html")).unwrap();
    assert!(page.contains("injected cost found in "), "{page}");
    assert!(page.contains(" of 2 pairs (≥ ") && page.contains("with SOLEDAD_BENCH_INJECTED_REQUEST=150"));
    // The A/A column is the paired A/A calibration's (2 pairs), not the injected one's, and
    // says it is the paired rule's: the series' verdict here came from its history.
    assert!(page.contains(" of 2 (≤ ") && page.contains("), paired"), "{page}");
}
