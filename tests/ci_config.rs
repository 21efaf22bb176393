//! `.gitlab-ci.yml` read as GitLab reads it: the compare job's status handling run in bash
//! with a stand-in `soledad-bench` that exits as told, the bench jobs' artifacts, and which
//! jobs each kind of pipeline gets (`workflow:rules` and the jobs' `rules`, evaluated here:
//! gitlab-ci-local ignores `workflow`).

use std::collections::HashMap;
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
        .find(|line| line.contains("soledad-bench\" compare "))
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
    assert_eq!(pages["resource_group"].as_str(), Some("benchmark-machine"));
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

/// A `rules:if` expression of the forms this pipeline uses, as GitLab evaluates them: clauses
/// joined by `&&`, each `$VAR` (set and not empty), or `$VAR == X` / `$VAR != X` with X a
/// variable or a quoted string. (No crate evaluates GitLab's rules; this subset is all the
/// file uses, and anything else fails the test.)
fn holds(expr: &str, vars: &HashMap<&str, &str>) -> bool {
    let value = |operand: &str| -> Option<String> {
        let operand = operand.trim();
        if let Some(name) = operand.strip_prefix('$') {
            assert!(
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "operand {operand:?} of {expr:?} is outside the subset evaluated here"
            );
            vars.get(name).map(|v| (*v).to_owned())
        } else if let Some(text) = operand.strip_prefix('"').and_then(|o| o.strip_suffix('"')) {
            Some(text.to_owned())
        } else {
            panic!("operand {operand:?} of {expr:?} is outside the subset evaluated here")
        }
    };
    for unsupported in ["||", "=~", "!~", "(", ")"] {
        assert!(
            !expr.contains(unsupported),
            "{expr:?} uses {unsupported}, outside the subset evaluated here"
        );
    }
    expr.split("&&").all(|clause| {
        if let Some((l, r)) = clause.split_once("!=") {
            value(l) != value(r)
        } else if let Some((l, r)) = clause.split_once("==") {
            value(l) == value(r)
        } else {
            value(clause).is_some_and(|v| !v.is_empty())
        }
    })
}

/// The first rule that matches, as GitLab picks it: `Some(true)` to run, `Some(false)` for
/// `when: never`, `None` when none matches.
fn first_rule(rules: &Yaml, vars: &HashMap<&str, &str>) -> Option<bool> {
    rules.as_vec()?.iter().find_map(|rule| {
        let matches = rule["if"].as_str().is_none_or(|e| holds(e, vars));
        matches.then(|| rule["when"].as_str() != Some("never"))
    })
}

/// The jobs a pipeline with these variables has, or `None` when `workflow:rules` creates none.
fn jobs_of(doc: &Yaml, vars: &HashMap<&str, &str>) -> Option<Vec<String>> {
    if !doc["workflow"].is_badvalue() && first_rule(&doc["workflow"]["rules"], vars) != Some(true) {
        return None;
    }
    let mut jobs = Vec::new();
    for (name, job) in doc.as_hash().unwrap() {
        let name = name.as_str().unwrap();
        if name.starts_with('.') || ["stages", "variables", "workflow", "default"].contains(&name) {
            continue;
        }
        let runs = if job["rules"].is_badvalue() {
            // Without rules (or `only`), a job runs in branch and tag pipelines only.
            vars.get("CI_PIPELINE_SOURCE") != Some(&"merge_request_event")
        } else {
            first_rule(&job["rules"], vars) == Some(true)
        };
        if runs {
            jobs.push(name.to_owned());
        }
    }
    Some(jobs)
}

/// One pipeline per push: a merge request's pushes get the merge request's pipeline, with
/// the tests and then `compare`, and no branch pipeline beside it.
#[test]
fn every_push_makes_one_pipeline_and_tests_gate_compare() {
    let doc = pipeline();
    let vars = |pairs: &[(&'static str, &'static str)]| -> HashMap<&str, &str> {
        let mut v: HashMap<&str, &str> = [("CI_DEFAULT_BRANCH", "master")].into();
        v.extend(pairs.iter().copied());
        v
    };
    let push_with_mr = vars(&[
        ("CI_PIPELINE_SOURCE", "push"),
        ("CI_COMMIT_BRANCH", "feature"),
        ("CI_OPEN_MERGE_REQUESTS", "leap/soledad-bench!7"),
    ]);
    assert_eq!(
        jobs_of(&doc, &push_with_mr),
        None,
        "no branch pipeline beside the merge request's"
    );
    let mr = vars(&[
        ("CI_PIPELINE_SOURCE", "merge_request_event"),
        ("CI_PROJECT_ID", "42"),
        ("CI_MERGE_REQUEST_SOURCE_PROJECT_ID", "42"),
    ]);
    assert_eq!(jobs_of(&doc, &mr), Some(vec!["test".to_owned(), "compare".to_owned()]));
    // From a fork the pipeline runs in the fork, which has no benchmark runner: compare
    // would wait for one forever.
    let fork = vars(&[
        ("CI_PIPELINE_SOURCE", "merge_request_event"),
        ("CI_PROJECT_ID", "42"),
        ("CI_MERGE_REQUEST_SOURCE_PROJECT_ID", "77"),
    ]);
    assert_eq!(jobs_of(&doc, &fork), Some(vec!["test".to_owned()]));
    let branch = vars(&[("CI_PIPELINE_SOURCE", "push"), ("CI_COMMIT_BRANCH", "feature")]);
    assert_eq!(jobs_of(&doc, &branch), Some(vec!["test".to_owned()]));
    let master = vars(&[("CI_PIPELINE_SOURCE", "push"), ("CI_COMMIT_BRANCH", "master")]);
    assert_eq!(
        jobs_of(&doc, &master),
        Some(vec!["test".to_owned(), "bench-master".to_owned(), "pages".to_owned()])
    );
    let nightly = vars(&[("CI_PIPELINE_SOURCE", "schedule"), ("CI_COMMIT_BRANCH", "master")]);
    assert_eq!(
        jobs_of(&doc, &nightly),
        Some(vec!["test".to_owned(), "bench-nightly".to_owned(), "pages".to_owned()])
    );
    // compare starts only once the tests passed.
    let needs: Vec<&str> = doc["compare"]["needs"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(needs, ["test"]);
}

/// compare measures the branch against its merge base, not the target's tip: run in a real
/// repository where the target moved on after the branch left it.
#[test]
fn compare_measures_against_the_merge_base() {
    let doc = pipeline();
    let script: Vec<&str> = doc["compare"]["script"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let fetch = script.iter().position(|l| l.starts_with("git fetch")).unwrap();
    let base_line = script
        .iter()
        .find(|l| l.starts_with("base="))
        .expect("compare computes its base");
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.invalid",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    git(&["init", "-q"]);
    git(&["commit", "-q", "--allow-empty", "-m", "where the branch leaves"]);
    let left = git(&["rev-parse", "HEAD"]);
    git(&["checkout", "-q", "-b", "feature"]);
    git(&["commit", "-q", "--allow-empty", "-m", "the merge request"]);
    let head = git(&["rev-parse", "HEAD"]);
    git(&["checkout", "-q", "main"]);
    git(&["commit", "-q", "--allow-empty", "-m", "landed on the target meanwhile"]);
    git(&["checkout", "-q", "feature"]);
    git(&["remote", "add", "origin", dir.path().to_str().unwrap()]);
    let out = Command::new("bash")
        .args(["-e", "-c", &format!("{}\n{base_line}\necho \"$base\"", script[fetch])])
        .current_dir(dir.path())
        .env("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main")
        .env("CI_COMMIT_SHA", &head)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), left);
}

/// Merge requests' code runs on a runner of its own, never where master's jobs keep their
/// build, caches and spool; every job on the benchmark machine takes its turn; and the
/// compiler is pinned in one place, the same for the tests' image and the benchmark jobs.
#[test]
fn merge_requests_cannot_reach_what_master_keeps_and_the_toolchain_is_pinned() {
    let doc = pipeline();
    let tags = |job: &str| -> Vec<String> {
        doc[job]["tags"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(tags(".bench"), ["benchmark"]);
    assert_eq!(tags("pages"), ["benchmark"]);
    assert_eq!(tags("compare"), ["benchmark-mr"]);
    for job in [".bench", "pages", "compare"] {
        assert_eq!(doc[job]["resource_group"].as_str(), Some("benchmark-machine"), "{job}");
    }
    // Master's compiled build lives outside the build directory, in the home of the runner
    // merge requests do not run as.
    let script: Vec<&str> = doc[".bench"]["script"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(
        script[0].starts_with("export CARGO_TARGET_DIR=") && script[0].contains("$HOME/"),
        "{}",
        script[0]
    );
    assert!(
        !doc["compare"]["script"]
            .as_vec()
            .unwrap()
            .iter()
            .filter_map(Yaml::as_str)
            .any(|l| l.contains("CARGO_TARGET_DIR="))
    );

    let rust = doc["variables"]["SOLEDAD_BENCH_RUST"].as_str().unwrap();
    assert_eq!(rust.split('.').count(), 3, "a full version, not a moving one: {rust}");
    assert_eq!(
        doc["test"]["image"].as_str(),
        Some(format!("rust:{rust}-bookworm").as_str())
    );
    for job in [".bench", "compare"] {
        let before = doc[job]["before_script"][0].as_str().unwrap();
        assert!(before.contains("RUSTUP_TOOLCHAIN=\"$SOLEDAD_BENCH_RUST\""), "{job}");
    }
    // The pinned check itself, in bash: a runner on another version installs and selects the
    // pinned one; one on the pinned version is left as it is.
    let before = doc[".bench"]["before_script"][0].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fake = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    };
    fake(
        "rustc",
        "echo \"rustc ${RUSTUP_TOOLCHAIN:-$RUNNER_RUST} (0000 2026-01-01)\"",
    );
    fake("rustup", "echo \"rustup $*\" >> \"$(dirname \"$0\")/calls\"");
    let run = |runner_rust: &str| -> (String, String) {
        let _ = std::fs::remove_file(dir.path().join("calls"));
        let out = Command::new("bash")
            .args(["-e", "-c", before])
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .env("SOLEDAD_BENCH_RUST", rust)
            .env("RUNNER_RUST", runner_rust)
            // As cargo's rustup proxy sets it for this test.
            .env_remove("RUSTUP_TOOLCHAIN")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            std::fs::read_to_string(dir.path().join("calls")).unwrap_or_default(),
        )
    };
    let (version, calls) = run("1.99.0");
    assert_eq!(version, format!("rustc {rust} (0000 2026-01-01)"));
    assert!(calls.contains(&format!("toolchain install {rust}")), "{calls}");
    let (version, calls) = run(rust);
    assert_eq!(version, format!("rustc {rust} (0000 2026-01-01)"));
    assert_eq!(calls, "");
}
