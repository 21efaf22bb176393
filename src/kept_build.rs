//! A kept build: the binaries a per-commit run measured, kept with the commit they were built
//! from, so that the next commit's run can measure them as its paired baseline without
//! building the parent again (`run --keep-build DIR`, then `run --baseline DIR`).
//!
//! DIR holds `soledad-bench` (the client driver), `blobs-server` and `kept.json` (the commit,
//! the compiler, the profile, and the definitions of the scenarios it measured). It is
//! replaced as a whole: the new build is written beside it and renamed into place, so a job
//! killed half-way leaves the old build (in place, or aside, where `load` finds it) or the new
//! one, never a mix.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use contract::results::CommitInfo;
use harness::runner::Build;
use serde::{Deserialize, Serialize};
use site_gen::format::short_sha;

const META: &str = "kept.json";

/// What `kept.json` says of the build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeptMeta {
    pub commit: CommitInfo,
    /// `rustc --version` of the build.
    pub rustc: String,
    /// Cargo profile of the build.
    pub profile: String,
    /// RFC 3339 UTC.
    pub kept_at: String,
    /// The definition hash of each scenario the kept build's own run measured, by scenario
    /// id: a scenario whose definition changed since (a new workload version, new
    /// parameters) is not the same measurement on both sides.
    #[serde(default)]
    pub definitions: std::collections::BTreeMap<String, String>,
}

impl KeptMeta {
    /// What a run's own build is kept with: its commit, compiler and profile, and the
    /// definitions of the scenarios it measured.
    pub fn of<P>(results: &contract::Results<P>) -> Self {
        Self {
            commit: results.commit.clone(),
            rustc: results.machine.machine.rustc.clone(),
            profile: results.machine.machine.profile.clone(),
            kept_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            definitions: results
                .scenarios
                .iter()
                .map(|s| (s.id.clone(), s.definition_hash.clone()))
                .collect(),
        }
    }
}

/// A kept build that can serve as this run's baseline.
#[derive(Debug, Clone)]
pub struct KeptBuild {
    pub meta: KeptMeta,
    pub build: Build,
}

/// What this run is: the kept build must match it to be paired with it.
pub struct ThisRun<'a> {
    pub commit: &'a CommitInfo,
    pub rustc: &'a str,
    pub profile: &'a str,
    /// The repository, to check that the kept commit is an ancestor of this one.
    pub repo: &'a Path,
}

/// Copies `build`'s binaries into `dir` with their commit, replacing what `dir` held.
pub fn keep(dir: &Path, build: &Build, meta: &KeptMeta) -> anyhow::Result<()> {
    let staging = sibling(dir, "keeping")?;
    let old = sibling(dir, "replaced")?;
    for stale in [&staging, &old] {
        if stale.exists() {
            std::fs::remove_dir_all(stale).with_context(|| format!("cannot clear {}", stale.display()))?;
        }
    }
    std::fs::create_dir_all(&staging).with_context(|| format!("cannot create {}", staging.display()))?;
    let kept = Build::in_dir(&staging);
    for (from, to) in [
        (&build.driver_bin, &kept.driver_bin),
        (&build.server_bin, &kept.server_bin),
    ] {
        std::fs::copy(from, to)
            .with_context(|| format!("cannot copy {} into {}", from.display(), staging.display()))?;
    }
    let json = serde_json::to_string_pretty(meta).expect("the kept build's facts serialize");
    std::fs::write(staging.join(META), json).with_context(|| format!("cannot write into {}", staging.display()))?;
    if dir.exists() {
        std::fs::rename(dir, &old).with_context(|| format!("cannot move {} aside", dir.display()))?;
    }
    std::fs::rename(&staging, dir).with_context(|| format!("cannot move {} into place", staging.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| format!("cannot remove {}", old.display()))?;
    }
    Ok(())
}

/// Removes from the kept build's side `a` the scenarios whose definition differs from the one
/// the kept build's own run measured, so that they are not paired (their verdicts come from
/// the history); returns how many. A kept build that recorded no definitions keeps all.
pub fn drop_changed_definitions<P>(a: &mut contract::Results<P>, meta: &KeptMeta) -> usize {
    if meta.definitions.is_empty() {
        return 0;
    }
    let before = a.scenarios.len();
    a.scenarios
        .retain(|s| meta.definitions.get(&s.id) == Some(&s.definition_hash));
    before - a.scenarios.len()
}

/// `dir` with a suffix on its last component, in the same parent (so that renames stay on
/// one file system).
fn sibling(dir: &Path, suffix: &str) -> anyhow::Result<PathBuf> {
    let name = dir
        .file_name()
        .with_context(|| format!("{} names no directory to keep a build in", dir.display()))?;
    Ok(dir.with_file_name(format!("{}.{suffix}", name.to_string_lossy())))
}

/// The kept build in `dir`, if this run can be paired with it; otherwise why not, in words
/// for the run's report and the commit page.
pub fn load(dir: &Path, this: &ThisRun) -> Result<KeptBuild, String> {
    // A job killed between `keep`'s two renames left the previous build aside.
    let aside = sibling(dir, "replaced")
        .ok()
        .filter(|d| !dir.exists() && d.join(META).is_file());
    let dir = aside.as_deref().unwrap_or(dir);
    let shown = dir.display();
    if !dir.exists() {
        return Err(format!(
            "no kept build in {shown} (the first run, or the previous commit's job kept none)"
        ));
    }
    let meta_path = dir.join(META);
    let text = std::fs::read_to_string(&meta_path).map_err(|e| format!("cannot read {}: {e}", meta_path.display()))?;
    let meta: KeptMeta = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a kept build's description: {e}", meta_path.display()))?;
    let build = Build::in_dir(dir);
    for bin in [&build.driver_bin, &build.server_bin] {
        if !bin.is_file() {
            return Err(format!("the kept build in {shown} has no {}", bin.display()));
        }
    }
    let kept = short_sha(&meta.commit.sha);
    if meta.commit.sha == this.commit.sha {
        return Err(format!(
            "the kept build is of this commit ({kept}): a run of it again pairs it with itself"
        ));
    }
    if meta.profile != this.profile {
        return Err(format!(
            "the kept build of {kept} is a {} build and this run measures {}",
            meta.profile, this.profile
        ));
    }
    if meta.rustc != this.rustc {
        return Err(format!(
            "the kept build of {kept} was compiled by {} and this one by {}: the pair would measure the compiler",
            meta.rustc, this.rustc
        ));
    }
    match is_ancestor(this.repo, &meta.commit.sha, &this.commit.sha) {
        Ok(true) => {}
        Ok(false) => {
            return Err(format!(
                "the kept build's commit {kept} is not an ancestor of {}",
                short_sha(&this.commit.sha)
            ));
        }
        Err(e) => return Err(format!("cannot tell whether {kept} is an ancestor of this commit: {e}")),
    }
    Ok(KeptBuild { meta, build })
}

fn is_ancestor(repo: &Path, ancestor: &str, commit: &str) -> Result<bool, String> {
    let git = git2::Repository::discover(repo).map_err(|e| e.message().to_owned())?;
    let oid = |s: &str| git2::Oid::from_str(s).map_err(|e| e.message().to_owned());
    let (ancestor, commit) = (oid(ancestor)?, oid(commit)?);
    if git.find_commit(ancestor).is_err() {
        return Err(format!("{} is not in the repository", short_sha(&ancestor.to_string())));
    }
    git.graph_descendant_of(commit, ancestor)
        .map_err(|e| e.message().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository with a root commit and two children of it; returns their shas.
    fn repo(dir: &Path) -> [String; 3] {
        let git = git2::Repository::init(dir).unwrap();
        let sig = git2::Signature::now("t", "t@example.invalid").unwrap();
        let tree = git.find_tree(git.index().unwrap().write_tree().unwrap()).unwrap();
        let root = git.commit(None, &sig, &sig, "root", &tree, &[]).unwrap();
        let root_commit = git.find_commit(root).unwrap();
        let left = git.commit(None, &sig, &sig, "left", &tree, &[&root_commit]).unwrap();
        let right = git.commit(None, &sig, &sig, "right", &tree, &[&root_commit]).unwrap();
        [root, left, right].map(|o| o.to_string())
    }

    fn commit(sha: &str) -> CommitInfo {
        CommitInfo {
            sha: sha.to_owned(),
            parents: Vec::new(),
            subject: "s".into(),
            author_name: "t".into(),
            author_time: 0,
            commit_time: 0,
            branch: None,
            dirty: false,
            depth: 0,
        }
    }

    fn kept_build_of(dir: &Path, sha: &str) -> Build {
        let bins = dir.join("bins");
        std::fs::create_dir_all(&bins).unwrap();
        let build = Build::in_dir(&bins);
        for bin in [&build.driver_bin, &build.server_bin] {
            let name = bin.file_name().unwrap().to_string_lossy();
            std::fs::write(bin, format!("{name} of {sha}")).unwrap();
        }
        build
    }

    #[test]
    fn a_kept_build_pairs_only_with_a_descendant_built_alike() {
        let tmp = tempfile::tempdir().unwrap();
        let [root, left, right] = repo(&tmp.path().join("repo"));
        let kept = tmp.path().join("kept");
        let meta = |sha: &str| KeptMeta {
            commit: commit(sha),
            rustc: "rustc 1.95.0".into(),
            profile: "release".into(),
            kept_at: "2026-12-07T00:00:00Z".into(),
            definitions: Default::default(),
        };
        let repo_dir = tmp.path().join("repo");
        let this = |c, rustc, profile| ThisRun {
            commit: c,
            rustc,
            profile,
            repo: &repo_dir,
        };
        let (at_root, at_left, at_right) = (&commit(&root), &commit(&left), &commit(&right));

        let missing = load(&kept, &this(at_left, "rustc 1.95.0", "release")).unwrap_err();
        assert!(missing.starts_with("no kept build in"), "{missing}");

        keep(&kept, &kept_build_of(tmp.path(), &root), &meta(&root)).unwrap();
        let paired = load(&kept, &this(at_left, "rustc 1.95.0", "release")).unwrap();
        assert_eq!(paired.meta.commit.sha, root);
        assert_eq!(
            std::fs::read_to_string(&paired.build.driver_bin).unwrap(),
            format!("soledad-bench of {root}")
        );

        let cases = [
            (
                this(at_root, "rustc 1.95.0", "release"),
                "the kept build is of this commit",
            ),
            (
                this(at_left, "rustc 1.96.0", "release"),
                "was compiled by rustc 1.95.0 and this one by rustc 1.96.0",
            ),
            (
                this(at_left, "rustc 1.95.0", "debug"),
                "is a release build and this run measures debug",
            ),
        ];
        for (run, want) in cases {
            let reason = load(&kept, &run).unwrap_err();
            assert!(reason.contains(want), "{reason}");
        }

        // Replaced as a whole by the next keep: a sibling of the left commit is not its
        // descendant.
        keep(&kept, &kept_build_of(tmp.path(), &left), &meta(&left)).unwrap();
        let reason = load(&kept, &this(at_right, "rustc 1.95.0", "release")).unwrap_err();
        assert!(reason.contains("is not an ancestor of"), "{reason}");
        assert!(!tmp.path().join("kept.keeping").exists() && !tmp.path().join("kept.replaced").exists());

        // A job killed between keep's two renames left the build aside: it is found there.
        std::fs::rename(&kept, tmp.path().join("kept.replaced")).unwrap();
        let aside = load(&kept, &this(at_right, "rustc 1.95.0", "release")).unwrap_err();
        assert!(aside.contains("is not an ancestor of"), "{aside}");
        std::fs::rename(tmp.path().join("kept.replaced"), &kept).unwrap();

        std::fs::remove_file(Build::in_dir(&kept).server_bin).unwrap();
        let reason = load(&kept, &this(at_right, "rustc 1.95.0", "release")).unwrap_err();
        assert!(reason.contains("has no") && reason.contains("blobs-server"), "{reason}");
    }
}
