//! The one directory that revisions are checked out into, moved from one commit's tree to the
//! next file by file: only the files that differ are written, so the others keep their
//! modification times and cargo recompiles only the crates a commit changed. Consecutive
//! commits (a backfill, a bisection, `compare HEAD~1` after `compare HEAD~2`) then build in
//! seconds to a minute instead of compiling the whole workspace each time.
//!
//! Written here rather than with libgit2's checkout: libgit2 compares a target directory
//! with the repository's own HEAD and index, not with what this directory holds, so it
//! cannot update it incrementally.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
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
        // What a build changed in the directory (a build script, a build command, cargo
        // updating a lock file) must not carry over into the next commit: a directory that no
        // longer holds its recorded tree exactly is written anew.
        let current = self
            .current(repo)
            .filter(|tree| self.holds(repo, tree).unwrap_or(false));
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

    /// Whether the directory holds exactly `tree`: every file with its content and kind, and
    /// nothing else.
    fn holds(&self, repo: &Repository, tree: &Tree) -> anyhow::Result<bool> {
        let mut expected = std::collections::HashSet::new();
        let mut same = true;
        tree.walk(TreeWalkMode::PreOrder, |parent, entry| {
            if entry.kind() == Some(ObjectType::Tree) || !same {
                return TreeWalkResult::Ok;
            }
            let path = self.dir.join(parent).join(OsStr::from_bytes(entry.name_bytes()));
            same = match entry.filemode() {
                SUBMODULE => path.is_dir(),
                SYMLINK => std::fs::read_link(&path)
                    .ok()
                    .zip(repo.find_blob(entry.id()).ok())
                    .is_some_and(|(link, blob)| link.as_os_str().as_bytes() == blob.content()),
                _ => {
                    path.symlink_metadata().is_ok_and(|m| m.is_file())
                        && Oid::hash_file(ObjectType::Blob, &path).is_ok_and(|id| id == entry.id())
                }
            };
            expected.insert(path);
            TreeWalkResult::Ok
        })?;
        Ok(same && only_these(&self.dir, &expected)?)
    }

    fn write_all(&self, repo: &Repository, tree: &Tree) -> anyhow::Result<usize> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).with_context(|| format!("cannot clear {}", self.dir.display()))?;
        }
        std::fs::create_dir_all(&self.dir).with_context(|| format!("cannot create {}", self.dir.display()))?;
        let mut entries = Vec::new();
        tree.walk(TreeWalkMode::PreOrder, |parent, entry| {
            if entry.kind() != Some(ObjectType::Tree) {
                let path = Path::new(parent).join(OsStr::from_bytes(entry.name_bytes()));
                entries.push((path, entry.id(), entry.filemode()));
            }
            TreeWalkResult::Ok
        })?;
        for (path, id, mode) in &entries {
            self.write(repo, path, *id, *mode)?;
        }
        Ok(entries.len())
    }

    /// Deletions first, deepest first, then additions and changes: a directory that became a
    /// file or a symbolic link is emptied before it is replaced, and nothing is ever removed
    /// through a link that a change just made.
    fn apply_diff(&self, repo: &Repository, from: &Tree, to: &Tree) -> anyhow::Result<usize> {
        let diff = repo.diff_tree_to_tree(Some(from), Some(to), None)?;
        let mut deleted = Vec::new();
        let mut written = Vec::new();
        for delta in diff.deltas() {
            let (old, new) = (delta.old_file(), delta.new_file());
            match delta.status() {
                Delta::Deleted => deleted.push(old.path().context("a deleted file without a path")?.to_owned()),
                Delta::Added | Delta::Modified | Delta::Typechange => {
                    let path = new.path().context("a changed file without a path")?.to_owned();
                    written.push((path, new.id(), i32::from(new.mode())));
                }
                other => anyhow::bail!("unexpected change {other:?} between two trees"),
            }
        }
        deleted.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for path in &deleted {
            self.remove(path)?;
        }
        for (path, id, mode) in &written {
            self.write(repo, path, *id, *mode)?;
        }
        Ok(deleted.len() + written.len())
    }

    fn write(&self, repo: &Repository, path: &Path, id: Oid, mode: i32) -> anyhow::Result<()> {
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
            .with_context(|| format!("cannot read {} ({id})", path.display()))?;
        if mode == SYMLINK {
            let target = OsStr::from_bytes(blob.content());
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

/// Whether `dir` holds no file, link or submodule directory outside `expected` (directories
/// on the way to them excepted).
fn only_these(dir: &Path, expected: &std::collections::HashSet<PathBuf>) -> anyhow::Result<bool> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if expected.contains(&path) {
            continue;
        }
        let meta = path.symlink_metadata()?;
        if !meta.is_dir() || !only_these(&path, expected)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Removes whatever is at `path`, if anything; a path through a file ("not a directory") has
/// nothing to remove.
fn remove_any(path: &Path) -> anyhow::Result<()> {
    let result = match std::fs::symlink_metadata(path) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(());
        }
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
        for path in removed {
            index.remove_path(Path::new(path)).unwrap();
        }
        for (path, content) in files {
            let id = repo.blob(content.as_bytes()).unwrap();
            // `name@` is a symbolic link to its content.
            let (path, mode) = match path.strip_suffix('@') {
                Some(link) => (link, SYMLINK as u32),
                None if path.ends_with(".sh") => (*path, EXECUTABLE as u32),
                None => (*path, 0o100644),
            };
            let mut entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode,
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

        // A build that edited a file, or left one, is undone by the next switch.
        std::fs::write(dir.join("a.txt"), "edited by a build").unwrap();
        assert_eq!(checkout.switch_to(&repo, &two).unwrap(), 4, "rewritten whole");
        assert_eq!(std::fs::read_to_string(dir.join("a.txt")).unwrap(), "a");
        std::fs::write(dir.join("src/generated.rs"), "left by a build").unwrap();
        checkout.switch_to(&repo, &two).unwrap();
        assert!(!dir.join("src/generated.rs").exists());
    }

    #[test]
    fn a_directory_can_become_a_file_or_a_link() {
        let git_dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(git_dir.path()).unwrap();
        let one = commit(
            &repo,
            &[
                ("web/x.txt", "x"),
                ("web/deep/y.txt", "y"),
                ("assets/x.txt", "kept"),
                ("lib/z.txt", "z"),
            ],
            &[],
        );
        // web becomes a link to assets; lib becomes a file.
        let two = commit(
            &repo,
            &[("web@", "assets"), ("lib", "now a file")],
            &["web/x.txt", "web/deep/y.txt", "lib/z.txt"],
        );
        let work = tempfile::tempdir().unwrap();
        let checkout = Checkout::new(work.path().join("checkout"));
        checkout.switch_to(&repo, &one).unwrap();
        checkout.switch_to(&repo, &two).unwrap();
        let dir = &checkout.dir;
        assert_eq!(std::fs::read_link(dir.join("web")).unwrap(), Path::new("assets"));
        assert_eq!(
            std::fs::read_to_string(dir.join("assets/x.txt")).unwrap(),
            "kept",
            "nothing removed through the new link"
        );
        assert_eq!(std::fs::read_to_string(dir.join("lib")).unwrap(), "now a file");
        assert!(checkout.holds(&repo, &checkout.current(&repo).unwrap()).unwrap());
        // And back.
        checkout.switch_to(&repo, &one).unwrap();
        assert!(dir.join("web").symlink_metadata().unwrap().is_dir());
        assert_eq!(std::fs::read_to_string(dir.join("web/deep/y.txt")).unwrap(), "y");
        assert_eq!(std::fs::read_to_string(dir.join("lib/z.txt")).unwrap(), "z");
    }
}
