//! Deferred deletion of finished scenarios' data.
//!
//! Deleting many small files keeps the filesystem busy long after `unlink` returns: on this
//! project's machine (ext4 mounted with online `discard`), small durable writes ran 2.5 to 6
//! times slower for tens of seconds after 20,000 small files were deleted, and
//! `incoming.deliver` run right after `server.load` took 2.3 times its usual time in its
//! first rounds, slowly recovering over 30 (`scenarios/README.md`). Waiting for the disk to
//! recover after each scenario would cost more than the whole time budget, so finished
//! scenarios' small files are moved aside instead and deleted when the run ends, after the
//! last measurement. Large files are few and free whole extents, so they are deleted at
//! once, which keeps the disk space held back small; past a cap, everything is deleted at
//! once again.

use std::path::{Path, PathBuf};

/// Files at least this large are deleted right away.
const LARGE_FILE: u64 = 256 * 1024;

pub struct Trash {
    dir: tempfile::TempDir,
    kept_bytes: u64,
    cap_bytes: u64,
    next: u64,
}

impl Trash {
    /// An empty trash directory in `work_root`, deleted with everything in it on drop.
    pub fn new(work_root: &Path, cap_bytes: u64) -> std::io::Result<Self> {
        Ok(Self {
            dir: tempfile::Builder::new().prefix("trash-").tempdir_in(work_root)?,
            kept_bytes: 0,
            cap_bytes,
            next: 0,
        })
    }

    /// Bytes held back for deletion at the end.
    pub fn kept_bytes(&self) -> u64 {
        self.kept_bytes
    }

    /// Disposes of a finished scenario's directory: its large files now, its small ones at
    /// the end, or all of it now if keeping the small ones would pass the cap. `dir` must
    /// be on the same filesystem as the trash (both live in the work root).
    pub fn discard(&mut self, dir: &Path) -> std::io::Result<()> {
        let small = delete_large_files(dir)?;
        if self.kept_bytes + small > self.cap_bytes {
            return std::fs::remove_dir_all(dir);
        }
        let to = self.dir.path().join(self.next.to_string());
        self.next += 1;
        std::fs::rename(dir, &to)?;
        self.kept_bytes += small;
        Ok(())
    }
}

/// Deletes every file of at least [`LARGE_FILE`] bytes below `dir`; returns the bytes left.
/// Hand-written: a dozen lines, where a directory-walking crate would be a new dependency.
fn delete_large_files(dir: &Path) -> std::io::Result<u64> {
    let mut left = 0;
    let mut pending: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                let len = entry.metadata()?.len();
                if len >= LARGE_FILE {
                    std::fs::remove_file(entry.path())?;
                } else {
                    left += len;
                }
            }
        }
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario_dir(root: &Path, name: &str) -> PathBuf {
        let d = root.join(name);
        std::fs::create_dir_all(d.join("data/shard")).unwrap();
        std::fs::write(d.join("data/shard/small-1"), vec![1u8; 1000]).unwrap();
        std::fs::write(d.join("data/shard/small-2"), vec![2u8; 3000]).unwrap();
        std::fs::write(d.join("data/large"), vec![3u8; LARGE_FILE as usize]).unwrap();
        d
    }

    #[test]
    fn small_files_wait_for_the_end_of_the_run_and_large_ones_go_at_once() {
        let root = tempfile::tempdir().unwrap();
        let mut trash = Trash::new(root.path(), 1 << 30).unwrap();
        let trash_dir = trash.dir.path().to_owned();
        let dir = scenario_dir(root.path(), "scenario-a");
        trash.discard(&dir).unwrap();
        assert!(!dir.exists(), "the scenario directory is moved away");
        assert_eq!(trash.kept_bytes(), 4000);
        let kept = trash_dir.join("0/data");
        assert_eq!(std::fs::read(kept.join("shard/small-2")).unwrap(), vec![2u8; 3000]);
        assert!(!kept.join("large").exists(), "large files are deleted right away");
        drop(trash);
        assert!(!trash_dir.exists(), "everything goes when the run ends");
    }

    #[test]
    fn past_the_cap_a_directory_is_deleted_at_once() {
        let root = tempfile::tempdir().unwrap();
        let mut trash = Trash::new(root.path(), 5000).unwrap();
        trash.discard(&scenario_dir(root.path(), "a")).unwrap();
        let second = scenario_dir(root.path(), "b");
        trash.discard(&second).unwrap();
        assert!(!second.exists());
        assert_eq!(trash.kept_bytes(), 4000, "the second directory was not kept");
        assert!(!trash.dir.path().join("1").exists());
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let mut trash = Trash::new(root.path(), 1 << 30).unwrap();
        let err = trash.discard(&root.path().join("gone")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
