//! Helpers of the end-to-end tests: a real git repository in a temp dir, and the real
//! `soledad-bench` and `blobs-server` binaries.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Turns the count round (Valgrind) off in the commands the helpers build: it is tested on
/// its own (`count_round.rs`), and would add seconds to every run of the others.
pub const NO_COUNT_ROUND: (&str, &str) = ("SOLEDAD_BENCH_NO_COUNT_ROUND", "1");

/// A scenario set small enough to run in about a second.
pub const TINY_SCENARIOS: &str = r#"
description = "tiny set for tests"
warmup_rounds = 0
rounds = 5

[[scenario]]
workload = "blobs.upload"
payloads = ["3x10k"]
concurrency = [2]

[[scenario]]
workload = "blobs.download"
payloads = ["3x10k"]
concurrency = [2]
"#;

pub fn bench_exe() -> &'static str {
    env!("CARGO_BIN_EXE_soledad-bench")
}

/// The `blobs-server` that `cargo test --workspace` builds beside `soledad-bench`.
pub fn server_exe() -> PathBuf {
    let path = Path::new(bench_exe()).with_file_name("blobs-server");
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}

/// A git repository with one commit per call to [`Repo::commit`].
pub struct Repo {
    pub dir: tempfile::TempDir,
    repo: git2::Repository,
}

impl Repo {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head("main");
        let repo = git2::Repository::init_opts(dir.path(), &opts).unwrap();
        std::fs::write(dir.path().join("scenarios.toml"), TINY_SCENARIOS).unwrap();
        std::fs::write(dir.path().join(".gitignore"), "/out/\n").unwrap();
        Self { dir, repo }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Commits every file in the work tree; returns the sha.
    pub fn commit(&self, subject: &str) -> String {
        std::fs::write(self.path().join("CHANGES"), subject).unwrap();
        let mut index = self.repo.index().unwrap();
        index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
        index.write().unwrap();
        let tree = self.repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("Test Author", "author@example.invalid").unwrap();
        let parents: Vec<git2::Commit> = self
            .repo
            .head()
            .ok()
            .and_then(|h| h.peel_to_commit().ok())
            .into_iter()
            .collect();
        let parent_refs: Vec<&git2::Commit> = parents.iter().collect();
        self.repo
            .commit(Some("HEAD"), &sig, &sig, subject, &tree, &parent_refs)
            .unwrap()
            .to_string()
    }

    pub fn out(&self) -> PathBuf {
        self.path().join("out")
    }

    /// `soledad-bench run` on this repository, with everything it writes under `out/`.
    /// `overrides` replace the defaults of the flags they name.
    pub fn bench_run(&self, overrides: &[(&str, &str)]) -> Output {
        let out = self.out();
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        let mut all = vec![
            ("--db".to_owned(), path(out.join("bench.sqlite"))),
            ("--site".to_owned(), path(out.join("public"))),
        ];
        all.extend(overrides.iter().map(|(f, v)| ((*f).to_owned(), (*v).to_owned())));
        let all: Vec<(&str, &str)> = all.iter().map(|(f, v)| (f.as_str(), v.as_str())).collect();
        self.bench_cmd("run", &all)
    }

    /// A subcommand that runs the harness (`run`, `calibrate`) on this repository with the
    /// tiny scenario set, the workspace's server and a work directory under `out/`;
    /// `overrides` replace those defaults or add flags.
    pub fn bench_cmd(&self, subcommand: &str, overrides: &[(&str, &str)]) -> Output {
        let out = self.out();
        std::fs::create_dir_all(&out).unwrap();
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        let mut flags: Vec<(String, String)> = vec![
            ("--scenarios".into(), path(self.path().join("scenarios.toml"))),
            ("--server-bin".into(), path(server_exe())),
            ("--work-dir".into(), path(out.join("work"))),
        ];
        for (flag, value) in overrides {
            match flags.iter_mut().find(|(f, _)| f == flag) {
                Some(existing) => existing.1 = (*value).to_owned(),
                None => flags.push(((*flag).to_owned(), (*value).to_owned())),
            }
        }
        let mut cmd = Command::new(bench_exe());
        cmd.current_dir(self.path())
            .arg(subcommand)
            .env(NO_COUNT_ROUND.0, NO_COUNT_ROUND.1);
        for (flag, value) in flags {
            cmd.arg(flag).arg(value);
        }
        cmd.output().unwrap()
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A results file as the harness writes it, for one commit: scenario
/// `blobs.upload/3x10k/c2` with `wall_s` samples and the matching `throughput_mib_s`.
pub fn results_json(run: &str, sha: &str, parents: &[&str], depth: u64, wall: &[f64]) -> serde_json::Value {
    serde_json::json!({
        "schema": "soledad-bench/results/v1",
        "run": {
            "id": run,
            "started_at": "2026-11-27T00:00:00Z",
            "finished_at": "2026-11-27T00:01:00Z",
            "tool_version": "0.1.0",
            "scenario_file": "scenarios/test.toml",
            "sample_interval_ms": 10,
            "seed": 1337
        },
        "commit": {
            "sha": sha,
            "parents": parents,
            "subject": format!("commit {sha}"),
            "author_name": "A. Developer",
            "author_time": 1_700_000_000 + depth,
            "commit_time": 1_700_000_000 + depth,
            "branch": "main",
            "dirty": false,
            "depth": depth
        },
        "machine": {
            "cpu_model": "Test CPU",
            "logical_cores": 2,
            "physical_cores": 2,
            "memory_bytes": 25769803776u64,
            "kernel": "6.1",
            "os": "Linux",
            "arch": "x86_64",
            "rustc": "rustc 1.95.0",
            "profile": "release",
            "covariates": {"load_avg_1m": 0.5, "cpu_mhz": 2000}
        },
        "scenarios": [{
            "id": "blobs.upload/3x10k/c2",
            "workload": "blobs.upload",
            "workload_version": 1,
            "definition_hash": "0123456789abcdef",
            "description": "uploads 3 blobs of 10 kB, 2 at a time",
            "params": {"workload": "blobs.upload", "count": 3, "size": 10000, "concurrency": 2},
            "warmup_rounds": 0,
            "rounds": wall.len(),
            "metrics": {
                "wall_s": {"unit": "s", "direction": "lower", "samples": wall},
                "throughput_mib_s": {
                    "unit": "MiB/s",
                    "direction": "higher",
                    "samples": wall.iter().map(|w| 0.0286 / w).collect::<Vec<f64>>()
                }
            }
        }]
    })
}

/// `soledad-bench` with these arguments.
pub fn bench(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(bench_exe())
        .args(args)
        .env(NO_COUNT_ROUND.0, NO_COUNT_ROUND.1)
        .output()
        .unwrap()
}

/// `soledad-bench site` of the database at `db` into `out`, which must succeed; its output.
pub fn render_site(db: &Path, out: &Path) -> Output {
    let output = bench(&[
        "site".as_ref(),
        "--db".as_ref(),
        db.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    output
}

/// Pids of live processes whose command line mentions `needle` (zombies count as gone).
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmdline).contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

/// The front page's classes of what this runner can judge (`id="resolution"`), in order:
/// how many series each holds, and its words.
pub fn resolution_classes(index_html: &str) -> Vec<(usize, String)> {
    let section = index_html
        .split("id=\"resolution\"")
        .nth(1)
        .expect("the front page has the resolution classes")
        .split("</p>")
        .next()
        .unwrap();
    section
        .split("<span class=\"num\">")
        .skip(1)
        .map(|c| {
            let (n, words) = c.split_once("</span>").unwrap();
            (n.parse().unwrap(), words.trim().to_owned())
        })
        .collect()
}
