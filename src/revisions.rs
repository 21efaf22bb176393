//! Revisions to benchmark that are not the running build: a commit's tree checked out into a
//! cached directory, built once, its binaries kept. Shared by `compare`, `backfill` and
//! `find`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use harness::runner::Build;

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

/// Files a build leaves in its output directory.
const DRIVER: &str = "soledad-bench";
const SERVER: &str = "blobs-server";
/// Optional `KEY=value` lines: the runtime environment of the build's processes.
const ENV_FILE: &str = "bench.env";
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

    /// The commit's tree, exported into `worktrees/<sha>` (once).
    pub fn checkout(&self, sha: &str) -> anyhow::Result<PathBuf> {
        let dir = self.root.join("worktrees").join(sha);
        if dir.join(DONE).is_file() {
            return Ok(dir);
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let git = git2::Repository::open(&self.repo)?;
        let tree = git.find_commit(git2::Oid::from_str(sha)?)?.tree()?;
        let mut checkout = git2::build::CheckoutBuilder::new();
        checkout.target_dir(&dir).force().recreate_missing(true);
        git.checkout_tree(tree.as_object(), Some(&mut checkout))
            .with_context(|| format!("cannot check {sha} out into {}", dir.display()))?;
        std::fs::write(dir.join(DONE), sha)?;
        Ok(dir)
    }

    /// The build of a revision: cached for commits, always rebuilt for the working tree
    /// (cargo makes that cheap when nothing changed).
    pub fn build(&self, revision: &Revision) -> anyhow::Result<Result<Build, BuildFailure>> {
        let (source, key, label) = match revision {
            Revision::Commit(sha) => (self.checkout(sha)?, sha.clone(), sha[..sha.len().min(10)].to_owned()),
            Revision::WorkingTree => (
                self.repo.clone(),
                "working-tree".to_owned(),
                "the working tree".to_owned(),
            ),
        };
        let out = self.root.join("builds").join(&key);
        if matches!(revision, Revision::Commit(_)) && out.join(DONE).is_file() {
            return Ok(Ok(load(&out)?));
        }
        if out.exists() {
            std::fs::remove_dir_all(&out).with_context(|| format!("cannot clear {}", out.display()))?;
        }
        std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
        eprintln!("building {label} ...");
        let log = out.join("build.log");
        let log_file = std::fs::File::create(&log)?;
        let status = match &self.build_cmd {
            Some(cmd) => Command::new("sh")
                .args(["-c", cmd])
                .current_dir(&source)
                .env("SOLEDAD_BENCH_OUT", &out)
                .stdout(log_file.try_clone()?)
                .stderr(log_file)
                .status(),
            None => Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                .args(["build", "--release", "--bins", "--locked"])
                .current_dir(&source)
                // One target directory for every revision: dependencies are compiled once.
                .env("CARGO_TARGET_DIR", self.root.join("target"))
                .stdout(log_file.try_clone()?)
                .stderr(log_file)
                .status(),
        }
        .with_context(|| format!("cannot run the build of {label}"))?;
        if !status.success() {
            return Ok(Err(BuildFailure {
                revision: label,
                reason: format!("{status}; {}", self.redact(&source, &log_tail(&log))),
            }));
        }
        if self.build_cmd.is_none() {
            for bin in [DRIVER, SERVER] {
                let built = self.root.join("target/release").join(bin);
                std::fs::copy(&built, out.join(bin))
                    .with_context(|| format!("the build has no {}", built.display()))?;
            }
        }
        match load(&out) {
            Ok(build) => {
                std::fs::write(out.join(DONE), &key)?;
                Ok(Ok(build))
            }
            Err(e) => Ok(Err(BuildFailure {
                revision: label,
                reason: self.redact(&source, &format!("{e:#}")),
            })),
        }
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

/// Lines of a failed build's output kept as its reason (the site shows them).
const EXCERPT_LINES: usize = 15;
/// And at most this many bytes of them.
const EXCERPT_BYTES: usize = 4000;

impl BuildCache {
    /// The build's output without the paths of this machine: the site publishes it.
    fn redact(&self, source: &Path, text: &str) -> String {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".cargo")));
        redact_paths(
            text,
            &[
                (Some(source.to_owned()), "."),
                (Some(self.root.clone()), "<build cache>"),
                (Some(self.repo.clone()), "<repository>"),
                (cargo_home, "$CARGO_HOME"),
                (home, "~"),
            ],
        )
    }
}

/// Replaces each path prefix by its placeholder, the first that matches winning (so list the
/// longer paths first). Only whole paths match: `/home/ann` is taken out of `/home/ann/x`
/// and `/home/ann.` (the end of a sentence), not out of `/home/anne`, `/home/ann.bak` or
/// `/mnt/home/ann`. Relative paths are made absolute first.
fn redact_paths(text: &str, paths: &[(Option<PathBuf>, &str)]) -> String {
    // A character that can be part of a file name (as far as logs go).
    let in_name = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '+' | '~' | '@' | '%');
    let mut out = text.to_owned();
    for (path, placeholder) in paths {
        let Some(path) = path.as_ref().and_then(|p| std::path::absolute(p).ok()) else {
            continue;
        };
        let Some(path) = path.to_str().map(|p| p.trim_end_matches('/')) else {
            continue;
        };
        if path.is_empty() {
            continue;
        }
        let mut redacted = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(path) {
            let (before, after) = (&rest[..at], &rest[at + path.len()..]);
            let starts = before
                .chars()
                .last()
                .or_else(|| redacted.chars().last())
                .is_none_or(|c| !in_name(c) && !matches!(c, '/' | '.'));
            let mut next = after.chars();
            let ends = match next.next() {
                None => true,
                Some('.') => !next.next().is_some_and(in_name),
                Some(c) => !in_name(c),
            };
            redacted.push_str(before);
            redacted.push_str(if starts && ends { placeholder } else { path });
            rest = after;
        }
        redacted.push_str(rest);
        out = redacted;
    }
    out
}

fn log_tail(path: &Path) -> String {
    build_log_excerpt(&std::fs::read_to_string(path).unwrap_or_default())
}

/// What says why a build failed: its first error and what follows it, then its last lines
/// (cargo's summary); without an error line, the last lines alone. The end of a log is
/// usually only "could not compile", the first error is the cause.
fn build_log_excerpt(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let first_error = lines.iter().position(|l| l.starts_with("error"));
    let tail = lines.len().saturating_sub(3);
    let mut kept: Vec<&str> = match first_error {
        Some(at) if at + EXCERPT_LINES < tail => {
            let mut kept = lines[at..at + EXCERPT_LINES].to_vec();
            kept.push("...");
            kept.extend(&lines[tail..]);
            kept
        }
        Some(at) => lines[at..].to_vec(),
        None => lines[lines.len().saturating_sub(EXCERPT_LINES)..].to_vec(),
    };
    let mut bytes = 0;
    kept.retain(|l| {
        bytes += l.len() + 1;
        bytes <= EXCERPT_BYTES
    });
    kept.join("\n")
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

    #[test]
    fn the_paths_of_the_build_machine_are_taken_out_of_a_build_log() {
        let log = "error: failed to run custom build command for `x v0.1.0 (/srv/cache/worktrees/abc/x)`\n\
                   --> /home/ann/.cargo/registry/src/y-1.0/src/lib.rs:3:1\n\
                   note: /home/anne/file and /home/ann/notes, /srv/repo/Cargo.toml\n\
                   in /home/ann. /home/ann.bak /mnt/home/ann/x [/home/ann]\t/home/ann";
        let paths = [
            (Some(PathBuf::from("/srv/cache/worktrees/abc")), "."),
            (Some(PathBuf::from("/srv/cache/")), "<build cache>"),
            (Some(PathBuf::from("/srv/repo")), "<repository>"),
            (None, "$NOTHING"),
            (Some(PathBuf::from("/home/ann/.cargo")), "$CARGO_HOME"),
            (Some(PathBuf::from("/home/ann")), "~"),
        ];
        assert_eq!(
            redact_paths(log, &paths),
            "error: failed to run custom build command for `x v0.1.0 (./x)`\n\
             --> $CARGO_HOME/registry/src/y-1.0/src/lib.rs:3:1\n\
             note: /home/anne/file and ~/notes, <repository>/Cargo.toml\n\
             in ~. /home/ann.bak /mnt/home/ann/x [~]\t~"
        );
    }

    #[test]
    fn a_build_log_is_cut_to_its_first_error_and_its_end() {
        let mut log = String::from("   Compiling a v0.1.0\n   Compiling b v0.1.0\n\n");
        log.push_str("error[E0425]: cannot find value `x` in this scope\n --> src/lib.rs:1:1\n");
        for i in 0..30 {
            log.push_str(&format!("  | detail {i}\n"));
        }
        log.push_str("error: could not compile `b` (lib) due to 1 previous error\n");
        let excerpt = build_log_excerpt(&log);
        let lines: Vec<&str> = excerpt.lines().collect();
        assert_eq!(lines[0], "error[E0425]: cannot find value `x` in this scope");
        assert_eq!(lines.len(), EXCERPT_LINES + 4, "{excerpt}");
        assert_eq!(lines[EXCERPT_LINES], "...");
        assert_eq!(
            lines.last(),
            Some(&"error: could not compile `b` (lib) due to 1 previous error")
        );
        // Short logs whole from their error; without one, the last lines.
        assert_eq!(build_log_excerpt("x\nerror: e\ny\n"), "error: e\ny");
        assert_eq!(build_log_excerpt("a\n\nb\n"), "a\nb");
        // Bounded in bytes too.
        let long = vec!["y".repeat(900); 20].join("\n");
        assert!(build_log_excerpt(&long).len() <= EXCERPT_BYTES);
    }
}
