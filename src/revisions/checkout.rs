//! The one directory that revisions are checked out into, moved from one commit's tree to the
//! next file by file: only the files that differ are written, so the others keep their
//! modification times and cargo recompiles only the crates a commit changed. Consecutive
//! commits (a backfill, a bisection, `compare HEAD~1` after `compare HEAD~2`) then build in
//! seconds to a minute instead of compiling the whole workspace each time.
//!
//! Written here rather than with libgit2's checkout: libgit2 compares a target directory
//! with the repository's own HEAD and index, not with what this directory holds, so it
//! cannot update it incrementally.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use git2::{Delta, ObjectType, Oid, Repository, Tree, TreeWalkMode, TreeWalkResult};

/// Git's file modes.
const EXECUTABLE: i32 = 0o100755;
const SYMLINK: i32 = 0o120000;
const SUBMODULE: i32 = 0o160000;

/// A checkout directory and the file beside it that names the tree it holds. The file is
/// removed while the directory changes, so an interrupted update is redone from scratch.
pub(super) struct Checkout {
    pub dir: PathBuf,
    state: PathBuf,
}

impl Checkout {
    pub fn new(dir: PathBuf) -> Self {
        let mut state = dir.clone().into_os_string();
        state.push(".tree");
        Self {
            dir,
            state: PathBuf::from(state),
        }
    }

    /// The tree the directory holds, if it is known to be complete.
    fn current<'r>(&self, repo: &'r Repository) -> Option<Tree<'r>> {
        let text = std::fs::read_to_string(&self.state).ok()?;
        let oid = Oid::from_str(text.trim()).ok()?;
        repo.find_tree(oid).ok().filter(|_| self.dir.is_dir())
    }

    /// Makes the directory hold the tree of commit `sha`. Returns how many files were written
    /// or removed.
    pub fn switch_to(&self, repo: &Repository, sha: &str) -> anyhow::Result<usize> {
        let target = repo
            .find_commit(Oid::from_str(sha)?)
            .and_then(|c| c.tree())
            .with_context(|| format!("cannot read the tree of {sha}"))?;
        let current = self.current(repo);
        if current.as_ref().map(Tree::id) == Some(target.id()) {
            return Ok(0);
        }
        match std::fs::remove_file(&self.state) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", self.state.display())),
        }
        let changed = match current {
            Some(current) => self.apply_diff(repo, &current, &target)?,
            None => self.write_all(repo, &target)?,
        };
        std::fs::write(&self.state, target.id().to_string())
            .with_context(|| format!("cannot write {}", self.state.display()))?;
        Ok(changed)
    }

    fn write_all(&self, repo: &Repository, tree: &Tree) -> anyhow::Result<usize> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).with_context(|| format!("cannot clear {}", self.dir.display()))?;
        }
        std::fs::create_dir_all(&self.dir).with_context(|| format!("cannot create {}", self.dir.display()))?;
        let mut entries = Vec::new();
        tree.walk(TreeWalkMode::PreOrder, |parent, entry| {
            if entry.kind() != Some(ObjectType::Tree) {
                let name = entry.name().unwrap_or_default();
                entries.push((format!("{parent}{name}"), entry.id(), entry.filemode()));
            }
            TreeWalkResult::Ok
        })?;
        for (path, id, mode) in &entries {
            self.write(repo, path, *id, *mode)?;
        }
        Ok(entries.len())
    }

    fn apply_diff(&self, repo: &Repository, from: &Tree, to: &Tree) -> anyhow::Result<usize> {
        let diff = repo.diff_tree_to_tree(Some(from), Some(to), None)?;
        let mut changed = 0;
        for delta in diff.deltas() {
            let (old, new) = (delta.old_file(), delta.new_file());
            match delta.status() {
                Delta::Deleted => self.remove(old.path().context("a deleted file without a path")?)?,
                Delta::Added | Delta::Modified | Delta::Typechange => {
                    let path = new.path().context("a changed file without a path")?;
                    self.write(repo, &path.to_string_lossy(), new.id(), i32::from(new.mode()))?;
                }
                other => anyhow::bail!("unexpected change {other:?} between two trees"),
            }
            changed += 1;
        }
        Ok(changed)
    }

    fn write(&self, repo: &Repository, path: &str, id: Oid, mode: i32) -> anyhow::Result<()> {
        let file = self.dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        // A symlink or a directory may stand where a file goes, and the other way round.
        remove_any(&file)?;
        if mode == SUBMODULE {
            // A submodule's commit is not in this repository: its directory stays empty.
            return std::fs::create_dir_all(&file).with_context(|| format!("cannot create {}", file.display()));
        }
        let blob = repo
            .find_blob(id)
            .with_context(|| format!("cannot read {path} ({id})"))?;
        if mode == SYMLINK {
            let target = std::str::from_utf8(blob.content()).with_context(|| format!("symlink {path} is not UTF-8"))?;
            return std::os::unix::fs::symlink(target, &file)
                .with_context(|| format!("cannot create {}", file.display()));
        }
        std::fs::write(&file, blob.content()).with_context(|| format!("cannot write {}", file.display()))?;
        if mode == EXECUTABLE {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot make {} executable", file.display()))?;
        }
        Ok(())
    }

    /// Removes a file and the directories it leaves empty.
    fn remove(&self, path: &Path) -> anyhow::Result<()> {
        let file = self.dir.join(path);
        remove_any(&file)?;
        let mut dir = file.parent();
        while let Some(d) = dir.filter(|d| *d != self.dir) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }
}

fn remove_any(path: &Path) -> anyhow::Result<()> {
    let result = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    result.with_context(|| format!("cannot remove {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(repo: &Repository, files: &[(&str, &str)], removed: &[&str]) -> String {
        let mut index = repo.index().unwrap();
        for (path, content) in files {
            let id = repo.blob(content.as_bytes()).unwrap();
            let mut entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: if path.ends_with(".sh") {
                    EXECUTABLE as u32
                } else {
                    0o100644
                },
                uid: 0,
                gid: 0,
                file_size: content.len() as u32,
                id,
                flags: 0,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            entry.flags = (path.len() as u16) & 0xfff;
            index.add(&entry).unwrap();
        }
        for path in removed {
            index.remove_path(Path::new(path)).unwrap();
        }
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.invalid").unwrap();
        let parents: Vec<git2::Commit> = repo
            .head()
            .ok()
            .and_then(|h| h.peel_to_commit().ok())
            .into_iter()
            .collect();
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, "c", &tree, &parents)
            .unwrap()
            .to_string()
    }

    fn mtime(path: &Path) -> std::time::SystemTime {
        std::fs::metadata(path).unwrap().modified().unwrap()
    }

    #[test]
    fn only_changed_files_are_written() {
        let git_dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(git_dir.path()).unwrap();
        let one = commit(
            &repo,
            &[
                ("a.txt", "a"),
                ("src/b.rs", "b"),
                ("gone/c.txt", "c"),
                ("run.sh", "#!/bin/sh"),
            ],
            &[],
        );
        let two = commit(&repo, &[("src/b.rs", "b2"), ("new.txt", "n")], &["gone/c.txt"]);

        let work = tempfile::tempdir().unwrap();
        let checkout = Checkout::new(work.path().join("checkout"));
        assert_eq!(checkout.switch_to(&repo, &one).unwrap(), 4);
        let dir = &checkout.dir;
        assert_eq!(std::fs::read_to_string(dir.join("src/b.rs")).unwrap(), "b");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(dir.join("run.sh")).unwrap().permissions().mode() & 0o111,
            0o111
        );
        let kept = mtime(&dir.join("a.txt"));
        std::thread::sleep(std::time::Duration::from_millis(20));

        // Three changes: b.rs rewritten, new.txt added, gone/ removed; a.txt untouched.
        assert_eq!(checkout.switch_to(&repo, &two).unwrap(), 3);
        assert_eq!(std::fs::read_to_string(dir.join("src/b.rs")).unwrap(), "b2");
        assert!(dir.join("new.txt").is_file());
        assert!(!dir.join("gone").exists(), "the emptied directory is removed");
        assert_eq!(mtime(&dir.join("a.txt")), kept, "an unchanged file keeps its mtime");
        assert_eq!(checkout.switch_to(&repo, &two).unwrap(), 0);

        // Back again, then an interrupted update (no state file): rewritten whole.
        assert_eq!(checkout.switch_to(&repo, &one).unwrap(), 3);
        assert!(dir.join("gone/c.txt").is_file() && !dir.join("new.txt").exists());
        std::fs::write(dir.join("stray"), "left by an interrupted update").unwrap();
        std::fs::remove_file(&checkout.state).unwrap();
        assert_eq!(checkout.switch_to(&repo, &two).unwrap(), 4);
        assert!(!dir.join("stray").exists());
        assert_eq!(std::fs::read_to_string(dir.join("src/b.rs")).unwrap(), "b2");
    }
}
