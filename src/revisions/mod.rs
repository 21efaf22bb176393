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

use self::cargo::CargoBuild;
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

// Files a build leaves in its output directory: its binaries (`Build::in_dir`, the names
// of `cargo::BINARIES`), and:
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
        let builds = self.root.join("builds");
        match revision {
            Revision::Commit(sha) => {
                let out = builds.join(sha);
                if let Some(built) = cached(&out)? {
                    return Ok(Ok(built));
                }
                // One build at a time per cache: they share the checkout and cargo's
                // directories. Another process may have built this commit meanwhile.
                let _lock = self.lock()?;
                if let Some(built) = cached(&out)? {
                    return Ok(Ok(built));
                }
                let checkout = Checkout::new(self.root.join("checkout"));
                checkout.switch_to(&git2::Repository::open(&self.repo)?, sha)?;
                self.build_into(&out, &checkout.dir, sha, &sha[..sha.len().min(10)], true)
            }
            Revision::WorkingTree => {
                let _lock = self.lock()?;
                // Built aside, then kept under a name from its binaries' content: a comparison
                // still running from an earlier build of the working tree keeps its binaries.
                let staging = builds.join("working-tree.building");
                let built = match self.build_into(&staging, &self.repo, "working-tree", "the working tree", false)? {
                    Ok(built) => built,
                    Err(failure) => return Ok(Err(failure)),
                };
                let out = builds.join(format!("working-tree-{}", content_key(&built.build)?));
                if out.join(DONE).is_file() {
                    std::fs::remove_dir_all(&staging).with_context(|| format!("cannot clear {}", staging.display()))?;
                } else {
                    if out.exists() {
                        std::fs::remove_dir_all(&out).with_context(|| format!("cannot clear {}", out.display()))?;
                    }
                    std::fs::rename(&staging, &out).with_context(|| format!("cannot move {}", staging.display()))?;
                }
                // Marks it used now; those unused for a week are removed.
                std::fs::write(out.join(DONE), "working-tree")?;
                remove_stale_working_trees(&builds, &out);
                Ok(Ok(Built {
                    build: load(&out)?,
                    provenance: built.provenance,
                }))
            }
        }
    }

    /// Builds the tree at `source` into `out`, which is cleared first.
    fn build_into(
        &self,
        out: &Path,
        source: &Path,
        key: &str,
        label: &str,
        commit: bool,
    ) -> anyhow::Result<Result<Built, BuildFailure>> {
        if out.exists() {
            std::fs::remove_dir_all(out).with_context(|| format!("cannot clear {}", out.display()))?;
        }
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let log = out.join("build.log");
        let fail = |reason: &str| BuildFailure {
            revision: label.to_owned(),
            reason: failure_log::redact(reason, source, &self.root, &self.repo),
        };
        let started = Instant::now();
        let how = match &self.build_cmd {
            Some(cmd) => {
                eprintln!("building {label} with the build command (log: {})", log.display());
                let log_file = std::fs::File::create(&log)?;
                let status = Command::new("sh")
                    .args(["-c", cmd])
                    .current_dir(source)
                    .env("SOLEDAD_BENCH_OUT", out)
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
                let meta = match cargo::metadata(source)? {
                    Ok(meta) => meta,
                    Err(reason) => return Ok(Err(fail(&reason))),
                };
                let plan = match cargo::plan(&meta) {
                    Ok(plan) => plan,
                    Err(missing) => return Ok(Err(fail(&missing))),
                };
                let build = if commit {
                    // Its own directories, whatever the caller's environment says: a directory
                    // shared with the working tree would mix their crates.
                    let dir = self.commit_target_dir(&meta)?;
                    CargoBuild {
                        dir: source,
                        env: vec![("CARGO_TARGET_DIR", dir.clone()), ("CARGO_BUILD_BUILD_DIR", dir)],
                        locked: true,
                        log: &log,
                        label,
                    }
                } else {
                    // In place, as the developer builds it: the same target directory.
                    CargoBuild {
                        dir: source,
                        env: Vec::new(),
                        locked: false,
                        log: &log,
                        label,
                    }
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
        match load(out) {
            Ok(build) => {
                std::fs::write(out.join(PROVENANCE), &provenance)?;
                std::fs::write(out.join(DONE), key)?;
                Ok(Ok(Built { build, provenance }))
            }
            Err(e) => Ok(Err(fail(&format!("{e:#}")))),
        }
    }

    /// The cargo directory of commit builds, seeded with the dependencies the working tree
    /// has compiled since the last build (see `seed.rs`). `commit` is the metadata of the
    /// commit to build: its own packages are never brought over either.
    fn commit_target_dir(&self, commit: &serde_json::Value) -> anyhow::Result<PathBuf> {
        let target = self.root.join("target");
        if let Ok(meta) = cargo::metadata(&self.repo)?
            && let Some(working) = cargo::build_directory(&meta)
        {
            let lock = std::fs::read_to_string(self.repo.join("Cargo.lock")).unwrap_or_default();
            let outside = seed::Outside::new(&lock, &[&meta, commit]);
            let seeded = seed::seed(&working.join("release"), &target.join("release"), &outside);
            if seeded.units > 0 {
                eprintln!(
                    "reusing {} compiled dependencies of the working tree ({})",
                    seeded.units,
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

/// A finished build of `out`, if there is one.
fn cached(out: &Path) -> anyhow::Result<Option<Built>> {
    if !out.join(DONE).is_file() {
        return Ok(None);
    }
    let provenance = std::fs::read_to_string(out.join(PROVENANCE)).unwrap_or_default();
    Ok(Some(Built {
        build: load(out)?,
        provenance: if provenance.trim().is_empty() {
            "cached build".to_owned()
        } else {
            format!("cached build ({})", provenance.trim())
        },
    }))
}

/// 16 hex digits of a hash of a build's two binaries.
fn content_key(build: &Build) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for bin in [&build.driver_bin, &build.server_bin] {
        let bytes = std::fs::read(bin).with_context(|| format!("cannot read {}", bin.display()))?;
        hash.update(&bytes);
    }
    Ok(hex::encode(&hash.finalize()[..8]))
}

/// How long a build of the working tree is kept unused.
const WORKING_TREE_KEPT: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Removes the builds of the working tree other than `keep` that were not used for a week
/// (their `.built` is rewritten at each use), and the per-commit checkouts of earlier
/// versions of this cache.
fn remove_stale_working_trees(builds: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(builds) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let stale = entry.file_name().to_string_lossy().starts_with("working-tree")
            && path != keep
            && std::fs::metadata(path.join(DONE))
                .and_then(|m| m.modified())
                .map_or(true, |t| t.elapsed().unwrap_or_default() > WORKING_TREE_KEPT);
        if stale {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
    let _ = std::fs::remove_dir_all(builds.with_file_name("worktrees"));
}

fn load(out: &Path) -> anyhow::Result<Build> {
    let Build {
        driver_bin, server_bin, ..
    } = Build::in_dir(out);
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
