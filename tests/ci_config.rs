//! `.gitlab-ci.yml` read as GitLab reads it: the compare job's status handling run in bash
//! with a stand-in `soledad-bench` that exits as told, and the bench jobs' artifacts.

use std::path::Path;
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn pipeline() -> Yaml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".gitlab-ci.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

/// The compare job's script line that runs `compare`, run with `compare` exiting `status`;
/// returns the job's exit status.
fn compare_job_status(status: i32, fail_on_regression: bool) -> i32 {
    let doc = pipeline();
    let script = doc["compare"]["script"].as_vec().expect("compare has a script");
    let block = script
        .iter()
        .filter_map(Yaml::as_str)
        .find(|line| line.contains("compare \"origin/"))
        .expect("a script line runs compare");
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("soledad-bench");
    std::fs::write(&fake, format!("#!/bin/sh\nexit {status}\n")).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = Command::new("bash")
        .args(["-e", "-c", block])
        .env("bin", dir.path())
        .env("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main")
        .env("CI_COMMIT_SHA", "0".repeat(40))
        .env("SOLEDAD_BENCH_SCENARIOS", "scenarios/ci.toml")
        .env(
            "SOLEDAD_BENCH_FAIL_ON_REGRESSION",
            if fail_on_regression { "true" } else { "false" },
        )
        .output()
        .unwrap();
    out.status.code().unwrap()
}

#[test]
fn compare_fails_the_job_on_every_status_but_its_two_answers() {
    assert_eq!(compare_job_status(0, true), 0);
    assert_eq!(
        compare_job_status(1, false),
        0,
        "a regression is reported, not fatal, unless asked"
    );
    assert_eq!(compare_job_status(1, true), 1);
    // An error, a panic, an interrupt, an out-of-memory kill: no report, so no green job.
    for status in [2, 101, 130, 137] {
        assert_eq!(compare_job_status(status, false), status, "compare exiting {status}");
    }
}

#[test]
fn a_failed_bench_job_keeps_its_logs_and_results() {
    let doc = pipeline();
    assert_eq!(doc[".bench"]["artifacts"]["when"].as_str(), Some("always"));
    for job in ["bench-master", "bench-nightly"] {
        assert_eq!(doc[job]["extends"].as_str(), Some(".bench"), "{job}");
    }
}

#[test]
fn outdated_pushes_free_the_runner_and_bench_jobs_always_finish() {
    let doc = pipeline();
    for job in ["test", "compare"] {
        assert_eq!(doc[job]["interruptible"].as_bool(), Some(true), "{job}");
    }
    for job in [".bench", "pages"] {
        assert_eq!(doc[job]["interruptible"].as_bool(), Some(false), "{job}");
    }
    // The full set with a cold build is near GitLab's default hour.
    let timeout = doc["bench-nightly"]["timeout"]
        .as_str()
        .expect("the nightly job has a timeout");
    assert_eq!(timeout, "2h");
}

/// Publishing takes turns on the benchmark machine and gathers the spool first; the behaviour
/// itself (overlapping pipelines publish every run) is `.ci/pipeline-test`'s and
/// `tests/history.rs`'s.
#[test]
fn pages_jobs_take_turns_and_gather_before_they_publish() {
    let doc = pipeline();
    let pages = &doc["pages"];
    assert_eq!(pages["resource_group"].as_str(), Some("published-history"));
    assert_eq!(pages["tags"].as_vec().map(Vec::len), Some(1));
    assert_eq!(pages["tags"][0].as_str(), Some("benchmark"), "where the spool is");
    let script: Vec<&str> = pages["script"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let gather = script
        .iter()
        .position(|l| l.contains("history gather"))
        .expect("pages gathers");
    let site = script
        .iter()
        .position(|l| l.contains(" site --db"))
        .expect("pages builds the site");
    assert!(gather < site, "the site is built from what was gathered");
    assert!(script[gather].contains("--spool"));
    let paths = doc[".bench"]["artifacts"]["paths"].as_vec().unwrap();
    assert!(
        paths.iter().any(|p| p.as_str() == Some("bench-bin/")),
        "pages runs the bench job's build"
    );
}
