//! Helpers of the end-to-end tests: a real git repository in a temp dir, and the real
//! `soledad-bench` and `blobs-server` binaries.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
        std::fs::create_dir_all(&out).unwrap();
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        let mut flags: Vec<(String, String)> = vec![
            ("--scenarios".into(), path(self.path().join("scenarios.toml"))),
            ("--db".into(), path(out.join("bench.sqlite"))),
            ("--site".into(), path(out.join("public"))),
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
        cmd.current_dir(self.path()).arg("run");
        for (flag, value) in flags {
            cmd.arg(flag).arg(value);
        }
        cmd.output().unwrap()
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
