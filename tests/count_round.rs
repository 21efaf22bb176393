//! The count round through the real `soledad-bench run`: the client driver and the server
//! under Valgrind on loopback, counting only the measured part; and the run without Valgrind.

mod common;

use std::process::{Command, Output};

use common::{Repo, stderr};

const SCENARIOS: &str = r#"
warmup_rounds = 0
rounds = 5
[[scenario]]
workload = "crypto.encrypt"
payloads = ["1x1M", "1x2M"]
[[scenario]]
workload = "blobs.upload"
payloads = ["2x100k"]
concurrency = [1]
[[scenario]]
workload = "server.load"
ops = ["upload"]
sizes = ["1k"]
concurrency = [1]
duration_s = 1
"#;

/// `run` of [`SCENARIOS`] into `name.json`, with `env` added to its environment.
fn run(repo: &Repo, name: &str, env: &[(&str, &str)]) -> (Output, serde_json::Value) {
    let out = repo.out();
    std::fs::create_dir_all(&out).unwrap();
    let results = out.join(format!("{name}.json"));
    let output = Command::new(common::bench_exe())
        .current_dir(repo.path())
        .args(["run", "--scenarios", "count.toml", "--site"])
        .arg(out.join(format!("{name}-site")))
        .arg("--db")
        .arg(out.join(format!("{name}.sqlite")))
        .arg("--results")
        .arg(&results)
        .arg("--server-bin")
        .arg(common::server_exe())
        .arg("--work-dir")
        .arg(out.join("work"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let json = serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap();
    (output, json)
}

/// The one count of `metric` in scenario `id`, if it was counted.
fn count(results: &serde_json::Value, id: &str, metric: &str) -> Option<f64> {
    let scenario = results["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no scenario {id}"));
    let m = scenario["metrics"].get(metric)?;
    let samples = m["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "{id} {metric}: {samples:?}");
    assert_eq!(m["unit"], "instructions");
    Some(samples[0].as_f64().unwrap())
}

fn repo() -> Repo {
    let repo = Repo::new();
    std::fs::write(repo.path().join("count.toml"), SCENARIOS).unwrap();
    repo.commit("c");
    repo
}

#[test]
fn the_count_round_counts_the_measured_part_of_both_processes() {
    assert!(
        harness::count::Valgrind::find().is_ok(),
        "Valgrind is needed for this test: scripts/test installs it"
    );
    let repo = repo();
    let (output, first) = run(&repo, "first", &[]);
    let (_, second) = run(&repo, "second", &[]);
    // The front page puts the four count series (the crypto clients', the upload's client
    // and server) among those without the history to know their spread: two runs are not
    // enough.
    let index = std::fs::read_to_string(repo.out().join("second-site/index.html")).unwrap();
    let classes = common::resolution_classes(&index);
    assert!(
        classes[0].0 == 0 && classes[0].1.contains("with the history"),
        "{classes:?}"
    );
    assert!(
        classes[1].0 == 4 && classes[1].1.contains("less history"),
        "{classes:?}"
    );
    // The run's last line names the counted scenarios: all but the load scenario.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let scenarios = first["scenarios"].as_array().unwrap().len();
    assert!(
        stdout.contains(&format!("; {} were counted too", scenarios - 1)),
        "{stdout}"
    );

    let small = count(&first, "crypto.encrypt/v1/1x1M", "client_instructions").expect("counted");
    let large = count(&first, "crypto.encrypt/v1/1x2M", "client_instructions").expect("counted");
    // Encrypting twice the bytes counts about twice the instructions: the count is the
    // measured part, not the process's start-up or the payload's preparation, which would
    // weigh the same in both.
    assert!(small > 1e6, "{small}");
    assert!((1.8..2.2).contains(&(large / small)), "{small} and {large}");
    // No server in a crypto scenario; both processes in an upload.
    assert_eq!(count(&first, "crypto.encrypt/v1/1x1M", "server_instructions"), None);
    let client = count(&first, "blobs.upload/2x100k/c1", "client_instructions").expect("counted");
    let server = count(&first, "blobs.upload/2x100k/c1", "server_instructions").expect("counted");
    assert!(client > 1e6 && server > 1e4, "{client} {server}");
    // A load scenario runs for a duration, so its count would follow the machine's speed.
    assert_eq!(count(&first, "server.load/upload/1k/c1", "client_instructions"), None);

    // The same build counts the same: a single process to within 0.1% (0.003% measured over
    // `ci.toml`'s crypto). A client and server talking over a socket follow the timing of
    // their exchanges unless they take real-time turns with their data in memory: then to
    // within the issue's targets, 0.1% for a client and 0.5% for a server (measured 0.006%
    // and 0.004% for 100 uploads of 100 KB). Without those pins, measured up to 0.6% for
    // clients and 13% for servers between a quiet and a loaded run; the bounds then, 3% and
    // 50%, still catch a count of something else (start-up, preparation, a lost window).
    let valgrind = harness::count::Valgrind::find().unwrap();
    let pinned = *valgrind.turns() == harness::count::Turns::RealTime && valgrind.in_memory();
    let warnings = stderr(&output).matches("take turns by time slices").count();
    assert_eq!(
        warnings,
        usize::from(*valgrind.turns() != harness::count::Turns::RealTime),
        "{}",
        stderr(&output)
    );
    // The server's count of two small uploads is some 200,000 instructions, where one more
    // body chunk and turn of its loop (4,300, `harness/RESULTS.md`) is 2%: that much is
    // allowed besides.
    let (client_within, server_within) = if pinned { (0.001, 0.005) } else { (0.03, 0.50) };
    for (id, metric, within, slack) in [
        ("crypto.encrypt/v1/1x1M", "client_instructions", 0.001, 0.0),
        ("crypto.encrypt/v1/1x2M", "client_instructions", 0.001, 0.0),
        ("blobs.upload/2x100k/c1", "client_instructions", client_within, 0.0),
        ("blobs.upload/2x100k/c1", "server_instructions", server_within, 4_300.0),
    ] {
        let (a, b) = (count(&first, id, metric).unwrap(), count(&second, id, metric).unwrap());
        assert!((b - a).abs() <= within * a + slack, "{id} {metric}: {a} then {b}");
    }
}

#[test]
fn without_valgrind_the_run_warns_once_and_counts_nothing() {
    let repo = repo();
    // No Valgrind on this PATH (the run needs no other program from it).
    let empty = repo.out().join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let (output, results) = run(&repo, "missing", &[("PATH", empty.to_str().unwrap())]);
    let err = stderr(&output);
    assert_eq!(err.matches("warning: no count round").count(), 1, "{err}");
    assert!(err.contains("install Valgrind"), "{err}");
    assert_eq!(count(&results, "blobs.upload/2x100k/c1", "client_instructions"), None);
    assert!(!String::from_utf8_lossy(&output.stdout).contains("counted too"));
    // Asked not to count: no counts and no warning.
    let (output, results) = run(&repo, "off", &[common::NO_COUNT_ROUND]);
    assert!(!stderr(&output).contains("count round"), "{}", stderr(&output));
    assert_eq!(count(&results, "crypto.encrypt/v1/1x1M", "client_instructions"), None);
}

/// `calibrate --inject-build` without `--paired`: the injected build without the cost (A) and
/// with it (B), rounds interleaved and each side counted, every run compared with the one
/// before by the history and count rules. The workspace's own binaries stand in for an
/// injected build: they carry no cost, so this checks what is measured, recorded and shown;
/// `collector/tests/analysis.rs` checks what the rules find when a cost is there.
#[test]
fn calibrate_with_an_injected_build_counts_both_sides_and_records_detection() {
    assert!(
        harness::count::Valgrind::find().is_ok(),
        "Valgrind is needed for this test: scripts/test installs it"
    );
    let repo = repo();
    // A history run first, so that the site has the series to show the detection beside.
    run(&repo, "first", &[]);
    let db = repo.out().join("first.sqlite");
    let bins = std::path::Path::new(common::bench_exe()).parent().unwrap().to_owned();
    let output = Command::new(common::bench_exe())
        .current_dir(repo.path())
        .args(["calibrate", "--inject-build"])
        .arg(&bins)
        .args([
            "--scenarios",
            "count.toml",
            "--only",
            "blobs.upload",
            "--repetitions",
            "2",
        ])
        .arg("--db")
        .arg(&db)
        .arg("--server-bin")
        .arg(common::server_exe())
        .arg("--work-dir")
        .arg(repo.out().join("work"))
        .env("SOLEDAD_BENCH_INJECTED_REQUEST", "150")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("(SOLEDAD_BENCH_INJECTED_REQUEST=150): 3 comparisons of 4 runs"),
        "{stdout}"
    );
    assert!(stderr(&output).contains("count rounds included"), "{}", stderr(&output));
    // Two repetitions cannot give the count rule a spread: it says so.
    assert!(
        stderr(&output).contains("warning: 2 repetitions give the count rule no spread of its own"),
        "{}",
        stderr(&output)
    );

    let conn = rusqlite::Connection::open(&db).unwrap();
    let (kind, injected, repetitions, comparisons): (String, String, i64, i64) = conn
        .query_row(
            "SELECT kind, injected, repetitions, comparisons FROM calibrations",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (kind.as_str(), injected.as_str(), repetitions, comparisons),
        ("injected-history", "SOLEDAD_BENCH_INJECTED_REQUEST=150", 4, 3)
    );
    // Both sides of both repetitions were counted, client and server.
    let counted: i64 = conn
        .query_row(
            "SELECT count(*) FROM data_points d JOIN calibration_runs c ON c.run_id = d.run_id
             WHERE d.metric IN ('client_instructions', 'server_instructions')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(counted, 8);
    // Every judged series of the upload was compared three times: its counts too. Nothing
    // was injected, and no rule made up a change in a count.
    let rows: Vec<(String, i64, i64)> = conn
        .prepare(
            "SELECT metric, comparisons, false_regressions + false_improvements FROM calibration_series
             WHERE metric LIKE '%instructions' ORDER BY metric",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            ("client_instructions".to_owned(), 3, 0),
            ("server_instructions".to_owned(), 3, 0)
        ]
    );
    let wall: i64 = conn
        .query_row(
            "SELECT comparisons FROM calibration_series WHERE metric = 'wall_s'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(wall, 3);

    // The scenario page shows each series' detection by the unpaired rules.
    let site = repo.out().join("calibrated-site");
    common::render_site(&db, &site);
    let page = std::fs::read_to_string(site.join("scenarios/blobs.upload_2x100k_c1.html")).unwrap();
    assert!(
        page.contains(
            "injected cost found in 0 of 3 unpaired comparisons (≥ 0.0%) with SOLEDAD_BENCH_INJECTED_REQUEST=150"
        ),
        "{page}"
    );
}
