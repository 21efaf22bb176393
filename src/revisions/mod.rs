//! Revisions to benchmark that are not the running build: a commit's tree checked out into
//! the cache's one checkout directory, built once, its binaries kept per commit; or the
//! working tree, built in place. Shared by `compare`, `backfill` and `find`.
//!
//! The default build is cargo's (`cargo.rs`). Commits build in the cache's own cargo
//! directory, seeded with the dependencies the working tree compiled already (`seed.rs`), and
//! the checkout is moved from commit to commit file by file (`checkout.rs`), so that cargo
//! recompiles only what a commit changed.

mod cargo;
mod checkout;
mod failure_log;
mod seed;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use harness::runner::Build;

use self::cargo::{BINARIES, CargoBuild};
use self::checkout::Checkout;

/// A revision of the repository, or its working tree with uncommitted changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revision {
    Commit(String),
    WorkingTree,
}

/// The cache of checkouts and builds, by default `target/soledad-bench` of the repository.
pub struct BuildCache {
    repo: PathBuf,
    root: PathBuf,
    build_cmd: Option<String>,
}

/// Why a revision has no build.
#[derive(Debug, thiserror::Error)]
#[error("{revision} does not build: {reason}")]
pub struct BuildFailure {
    pub revision: String,
    pub reason: String,
}

/// A revision's build, and how it was made (reports say which build each side was).
#[derive(Debug, Clone)]
pub struct Built {
    pub build: Build,
    /// Such as "built by `cargo build --release --locked` in 2m 03s" or "cached build ...".
    pub provenance: String,
}

/// Files a build leaves in its output directory.
const DRIVER: &str = BINARIES[0];
const SERVER: &str = BINARIES[1];
/// Optional `KEY=value` lines: the runtime environment of the build's processes.
const ENV_FILE: &str = "bench.env";
/// How the build was made, one line.
const PROVENANCE: &str = "provenance";
/// Written last: a directory without it is an interrupted build, done again.
const DONE: &str = ".built";

impl BuildCache {
    /// `build_cmd`, when given, is run with `sh -c` in the checkout instead of cargo; it must
    /// leave `soledad-bench` and `blobs-server` (and optionally `bench.env`) in
    /// `$SOLEDAD_BENCH_OUT`.
    pub fn new(repo: &Path, root: Option<PathBuf>, build_cmd: Option<String>) -> anyhow::Result<Self> {
        let git = git2::Repository::discover(repo)
            .map_err(|_| anyhow::anyhow!("{} is not inside a git repository", repo.display()))?;
        let workdir = git
            .workdir()
            .context("a bare repository has no working tree to build")?
            .to_owned();
        let root = root.unwrap_or_else(|| workdir.join("target/soledad-bench"));
        std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
        // Absolute: builds run in other directories and are told where to put their output.
        let root = std::path::absolute(&root).with_context(|| format!("cannot resolve {}", root.display()))?;
        Ok(Self {
            repo: workdir,
            root,
            build_cmd,
        })
    }

    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// Resolves a revision name to a full sha.
    pub fn resolve(&self, rev: &str) -> anyhow::Result<String> {
        let git = git2::Repository::open(&self.repo)?;
        let commit = git
            .revparse_single(rev)
            .and_then(|o| o.peel_to_commit())
            .map_err(|e| anyhow::anyhow!("{rev:?} is not a commit of {}: {}", self.repo.display(), e.message()))?;
        Ok(commit.id().to_string())
    }

    /// The build of a revision: cached for commits, always rebuilt for the working tree
    /// (cargo makes that cheap when nothing changed).
    pub fn build(&self, revision: &Revision) -> anyhow::Result<Result<Built, BuildFailure>> {
        let (key, label) = match revision {
            Revision::Commit(sha) => (sha.clone(), sha[..sha.len().min(10)].to_owned()),
            Revision::WorkingTree => ("working-tree".to_owned(), "the working tree".to_owned()),
        };
        let out = self.root.join("builds").join(&key);
        if matches!(revision, Revision::Commit(_)) && out.join(DONE).is_file() {
            let provenance = std::fs::read_to_string(out.join(PROVENANCE)).unwrap_or_default();
            return Ok(Ok(Built {
                build: load(&out)?,
                provenance: format!("cached build ({})", provenance.trim()),
            }));
        }
        // One build at a time per cache: they share the checkout and cargo's directories.
        let _lock = self.lock()?;
        if out.exists() {
            std::fs::remove_dir_all(&out).with_context(|| format!("cannot clear {}", out.display()))?;
        }
        std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
        let source = match revision {
            Revision::Commit(sha) => {
                let checkout = Checkout::new(self.root.join("checkout"));
                let git = git2::Repository::open(&self.repo)?;
                checkout.switch_to(&git, sha)?;
                checkout.dir
            }
            Revision::WorkingTree => self.repo.clone(),
        };
        let log = out.join("build.log");
        let fail = |reason: &str| BuildFailure {
            revision: label.clone(),
            reason: failure_log::redact(reason, &source, &self.root, &self.repo),
        };
        let started = Instant::now();
        let how = match &self.build_cmd {
            Some(cmd) => {
                eprintln!("building {label} with the build command (log: {})", log.display());
                let log_file = std::fs::File::create(&log)?;
                let status = Command::new("sh")
                    .args(["-c", cmd])
                    .current_dir(&source)
                    .env("SOLEDAD_BENCH_OUT", &out)
                    .stdout(log_file.try_clone()?)
                    .stderr(log_file)
                    .status()
                    .with_context(|| format!("cannot run the build of {label}"))?;
                if !status.success() {
                    return Ok(Err(fail(&format!("{status}; {}", failure_log::log_excerpt(&log)))));
                }
                "the build command".to_owned()
            }
            None => {
                let plan = match cargo::metadata(&source)?.and_then(|meta| cargo::plan(&meta)) {
                    Ok(plan) => plan,
                    Err(missing) => return Ok(Err(fail(&missing))),
                };
                let build = match revision {
                    Revision::Commit(_) => CargoBuild {
                        dir: &source,
                        // Its own directories, whatever the caller's environment says: a
                        // directory shared with the working tree would mix their crates.
                        env: {
                            let dir = self.commit_target_dir()?;
                            vec![("CARGO_TARGET_DIR", dir.clone()), ("CARGO_BUILD_BUILD_DIR", dir)]
                        },
                        locked: true,
                        log: &log,
                        label: &label,
                    },
                    // In place, as the developer builds it: the same target directory.
                    Revision::WorkingTree => CargoBuild {
                        dir: &source,
                        env: Vec::new(),
                        locked: false,
                        log: &log,
                        label: &label,
                    },
                };
                let executables = match build.run(&plan)? {
                    Ok(executables) => executables,
                    Err(reason) => {
                        return Ok(Err(fail(&format!("{reason}; {}", failure_log::log_excerpt(&log)))));
                    }
                };
                for (name, path) in &executables {
                    std::fs::copy(path, out.join(name))
                        .with_context(|| format!("cannot copy {} into {}", path.display(), out.display()))?;
                }
                format!("`{}`", build.describe())
            }
        };
        let provenance = format!(
            "built by {how} in {}, {}",
            humantime::format_duration(std::time::Duration::from_secs(started.elapsed().as_secs())),
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        );
        match load(&out) {
            Ok(build) => {
                std::fs::write(out.join(PROVENANCE), &provenance)?;
                std::fs::write(out.join(DONE), &key)?;
                Ok(Ok(Built { build, provenance }))
            }
            Err(e) => Ok(Err(fail(&format!("{e:#}")))),
        }
    }

    /// The cargo directory of commit builds, seeded with the dependencies the working tree
    /// has compiled since the last build (see `seed.rs`).
    fn commit_target_dir(&self) -> anyhow::Result<PathBuf> {
        let target = self.root.join("target");
        if let Ok(meta) = cargo::metadata(&self.repo)?
            && let Some(working) = cargo::build_directory(&meta)
        {
            let seeded = seed::seed(
                &working.join("release"),
                &target.join("release"),
                &seed::Members::from_metadata(&meta),
            )?;
            if seeded.linked + seeded.copied > 0 {
                eprintln!(
                    "reusing {} compiled dependencies of the working tree ({})",
                    seeded.linked + seeded.copied,
                    working.display()
                );
            }
        }
        Ok(target)
    }

    /// Holds the cache for one build; waits (and says so) while another process builds.
    fn lock(&self) -> anyhow::Result<std::fs::File> {
        let path = self.root.join("lock");
        let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                eprintln!("waiting for another build in {} ...", self.root.display());
                file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        Ok(file)
    }
}

fn load(out: &Path) -> anyhow::Result<Build> {
    let (driver_bin, server_bin) = (out.join(DRIVER), out.join(SERVER));
    for bin in [&driver_bin, &server_bin] {
        if !bin.is_file() {
            bail!("the build left no {}", bin.display());
        }
    }
    let env = match std::fs::read_to_string(out.join(ENV_FILE)) {
        Ok(text) => parse_env(&text).with_context(|| format!("in {}", out.join(ENV_FILE).display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(Build {
        server_bin,
        driver_bin,
        env,
    })
}

fn parse_env(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut env = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .with_context(|| format!("line {}: expected KEY=value", i + 1))?;
        env.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_are_key_value_lines() {
        assert_eq!(
            parse_env("# c\nA=1\n\n B = x y \n").unwrap(),
            [("A".into(), "1".into()), ("B".into(), "x y".into())]
        );
        assert!(parse_env("nonsense").unwrap_err().to_string().contains("line 1"));
    }
}
