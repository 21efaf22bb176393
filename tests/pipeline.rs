//! The main job end to end: real git repository, real server and drivers, real SQLite file,
//! real site.

mod common;

use std::process::Command;

use common::{Repo, stderr};

fn count_runs(db: &std::path::Path) -> i64 {
    if !db.exists() {
        return 0;
    }
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0)).unwrap()
}

#[test]
fn two_commits_become_two_points_per_series_in_commit_order() {
    let repo = Repo::new();
    let first = repo.commit("first commit");
    let out = repo.bench_run(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("database:") && stdout.contains("site:"), "{stdout}");
    // The count of scenarios that reached their target agrees with the results file.
    let results_dir = repo.out().join("results");
    let file = std::fs::read_dir(&results_dir).unwrap().next().unwrap().unwrap().path();
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let scenarios = results["scenarios"].as_array().unwrap();
    let reached = scenarios.iter().filter(|s| s["budget"]["noisy"] == false).count();
    let line = format!(
        "target:   {reached} of {} scenarios reached their CI target on their headline number",
        scenarios.len()
    );
    assert!(stdout.contains(&line), "{line:?} not in {stdout}");

    let second = repo.commit("second commit");
    let out = repo.bench_run(&[]);
    assert!(out.status.success(), "{}", stderr(&out));

    let db = repo.out().join("bench.sqlite");
    assert_eq!(count_runs(&db), 2);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let samples: i64 = conn
        .query_row("SELECT count(*) FROM samples", [], |r| r.get(0))
        .unwrap();
    assert!(samples >= 2 * 2 * 5 * 10, "raw samples are kept ({samples})");

    let site = repo.out().join("public");
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    // The front page says what this runner can judge: every series is in one class.
    let lead = index.split(" series in all").next().unwrap();
    let series: usize = lead.rsplit(", ").next().unwrap().parse().unwrap();
    let resolution = common::resolution_classes(&index);
    let section = format!("{resolution:?}");
    let classes: Vec<usize> = resolution.iter().map(|(n, _)| *n).collect();
    assert_eq!(classes.len(), 9, "{section}");
    assert_eq!(classes.iter().sum::<usize>(), series, "{section}");
    // The shares of a core and the preemptions, of the client and the server in each of the
    // two scenarios.
    assert!(section.contains("never judged"), "{section}");
    assert_eq!(classes[7], 8, "{section}");
    // Two runs of one definition: nothing superseded.
    assert_eq!(classes[8], 0, "{section}");
    assert!(section.contains("instruction counts"));
    assert!(index.contains("blobs.upload/3x10k/c2") && index.contains("blobs.download/3x10k/c2"));
    let page = std::fs::read_to_string(site.join("scenarios/blobs.upload_3x10k_c2.html")).unwrap();
    let required = [
        "wall_s",
        "throughput_mib_s",
        "client_cpu_user_s",
        "client_cpu_sys_s",
        "server_cpu_user_s",
        "server_cpu_sys_s",
        "client_anon_peak_mib",
        "server_anon_peak_mib",
    ];
    for metric in required {
        assert!(page.contains(&format!("<h2>{metric} ")), "no plot of {metric}");
    }
    // Every plot over commits (scaling plots aside) has exactly two points, a linked marker
    // per commit.
    let plots: Vec<&str> = page
        .split("<svg")
        .skip(1)
        .map(|plot| &plot[..plot.find("</svg>").unwrap()])
        .filter(|svg| svg.contains("class=\"pts\""))
        .collect();
    assert!(plots.len() >= required.len());
    for plot in &plots {
        let markers = plot.matches("class=\"pt\"").count() + plot.matches("class=\"pt ").count();
        assert_eq!(markers, 2, "a plot without two points");
    }
    // Commit order: oldest first along the axis, newest first in the point tables.
    let (a, b) = (&first[..7], &second[..7]);
    for plot in &plots {
        let (pa, pb) = (
            plot.find(a).expect("first commit labelled"),
            plot.find(b).expect("second commit labelled"),
        );
        assert!(pa < pb, "commits out of order in a plot");
    }
    let table_a = page.find(&format!("<code>{}</code>", &first[..10])).unwrap();
    let table_b = page.find(&format!("<code>{}</code>", &second[..10])).unwrap();
    assert!(table_b < table_a, "the point tables list the newest first");
}

#[test]
fn bad_input_gives_one_clear_error_and_stores_nothing() {
    let repo = Repo::new();
    repo.commit("only commit");
    let db = repo.out().join("bench.sqlite");

    let out = repo.bench_run(&[("--scenarios", "/nonexistent/set.toml")]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/set.toml: cannot read scenario file"),
        "{}",
        stderr(&out)
    );

    let bad = repo.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[scenario]]\nworkload = \"blobs.upload\"\npayloads = [\"ten\"]\nconcurrency = [1]\n",
    )
    .unwrap();
    let out = repo.bench_run(&[("--scenarios", bad.to_str().unwrap())]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("{}:3:", bad.display())),
        "{}",
        stderr(&out)
    );

    let file = repo.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = repo.bench_run(&[("--site", file.join("site").to_str().unwrap())]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot write the site to"), "{}", stderr(&out));

    let out = repo.bench_run(&[("--server-bin", "/bin/false")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("the server failed to start"), "{}", stderr(&out));

    // A server that starts but then refuses every upload: the run fails mid-way.
    let fake = repo.path().join("fake-server");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'listening on http://127.0.0.1:9'\necho 'services on http://127.0.0.1:9'\nexec sleep 30\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = repo.bench_run(&[("--server-bin", fake.to_str().unwrap())]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("scenario blobs.upload/3x10k/c2, round 0"),
        "{}",
        stderr(&out)
    );

    assert_eq!(count_runs(&db), 0, "a run that did not finish was stored");
    assert!(
        !repo.out().join("results").exists(),
        "a results file was written for a failed run"
    );
}

#[test]
fn outside_a_git_repository_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), common::TINY_SCENARIOS).unwrap();
    let out = Command::new(common::bench_exe())
        .current_dir(dir.path())
        .args(["run", "--scenarios", "s.toml", "--server-bin"])
        .arg(common::server_exe())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not inside a git repository"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("bench.sqlite").exists());
}

#[test]
fn ingest_is_idempotent_and_site_regenerates() {
    let repo = Repo::new();
    repo.commit("c1");
    let results = repo.out().join("r.json");
    let out = repo.bench_run(&[("--results", results.to_str().unwrap())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let db2 = repo.out().join("other.sqlite");
    for expected in ["stored as run 1", "already stored as run 1"] {
        let out = Command::new(common::bench_exe())
            .arg("ingest")
            .arg(&results)
            .arg("--db")
            .arg(&db2)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains(expected));
    }
    assert_eq!(count_runs(&db2), 1);
    let site2 = repo.out().join("site2");
    let out = Command::new(common::bench_exe())
        .arg("site")
        .arg("--db")
        .arg(&db2)
        .arg("--out")
        .arg(&site2)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(site2.join("scenarios/blobs.download_3x10k_c2.html").is_file());

    let junk = repo.out().join("junk.json");
    std::fs::write(&junk, r#"{"schema": "something/else"}"#).unwrap();
    let out = Command::new(common::bench_exe())
        .arg("ingest")
        .arg(&junk)
        .arg("--db")
        .arg(&db2)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("junk.json") && stderr(&out).contains("soledad-bench/results/v1"),
        "{}",
        stderr(&out)
    );
}
