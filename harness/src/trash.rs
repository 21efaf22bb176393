//! Deferred deletion of finished scenarios' and rounds' data.
//!
//! Deleting many small files keeps the filesystem busy long after `unlink` returns. On this
//! project's machine (ext4 mounted with online `discard`), small fsynced writes ran 2.2 to 6
//! times slower for most of the 20 seconds after 20,000 small files were deleted, and
//! `incoming.deliver` right after `server.load` took 2 to 4 times as long in its first
//! rounds as it does alone, recovering only over the next 30 (`scenarios/README.md`,
//! "Between rounds and scenarios"). Waiting for the disk to recover was tried: it had not
//! after 15 s, too long to spend after every scenario. So the small files of finished rounds
//! and scenarios are moved aside instead and deleted when the process ends, after its last
//! measurement (also after the last of several runs, as `backfill` and `calibrate` make).
//! Large files are few and free whole extents, so they are deleted at once, which keeps the
//! disk space held back small; past a cap, everything is deleted at once again.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Files at least this large are deleted right away. What slows the disk down is the
/// number of files deleted, not their bytes; at 256 KiB, the 100 kB blobs of a `ci.toml` run
/// filled the 4 GiB cap before its end.
const LARGE_FILE: u64 = 64 * 1024;

pub struct Trash {
    dir: tempfile::TempDir,
    state: Mutex<State>,
    cap_bytes: u64,
}

struct State {
    /// Disk space (allocated blocks) of what is held back.
    kept_bytes: u64,
    next: u64,
}

impl Trash {
    /// An empty trash directory in `work_root` (created if missing), deleted with everything
    /// in it on drop.
    pub fn new(work_root: &Path, cap_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(work_root)?;
        Ok(Self {
            dir: tempfile::Builder::new().prefix("trash-").tempdir_in(work_root)?,
            state: Mutex::new(State { kept_bytes: 0, next: 0 }),
            cap_bytes,
        })
    }

    /// Disk space held back for deletion at the end.
    pub fn kept_bytes(&self) -> u64 {
        self.state().kept_bytes
    }

    /// Disposes of a directory that is no longer needed: its large files now, its small ones
    /// at the end, or all of it now if keeping the small ones would pass the cap, or if it
    /// cannot be moved (another filesystem, an unreadable entry). Errors only if the
    /// directory could be neither moved nor deleted.
    pub fn discard(&self, dir: &Path) -> std::io::Result<()> {
        let mut state = self.state();
        let moved = delete_large_files(dir).and_then(|small| {
            if state.kept_bytes + small > self.cap_bytes {
                return Ok(false);
            }
            let to = self.dir.path().join(state.next.to_string());
            std::fs::rename(dir, &to)?;
            state.next += 1;
            state.kept_bytes += small;
            Ok(true)
        });
        match moved {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => std::fs::remove_dir_all(dir),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Trash {
    fn drop(&mut self) {
        let kept = self.kept_bytes();
        if kept > 0 {
            // This can take a while; say why the process has not ended yet.
            eprintln!("removing {} MiB of finished scenarios' small files", kept >> 20);
        }
        // The `TempDir` field deletes the directory next.
    }
}

/// Deletes every file of at least [`LARGE_FILE`] bytes below `dir`; returns the disk space
/// (allocated blocks, which small files round up) of the files left. Symbolic links are
/// not followed. Hand-written: a dozen lines, where a directory-walking crate would be a new
/// dependency.
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
                let meta = entry.metadata()?;
                if meta.len() >= LARGE_FILE {
                    std::fs::remove_file(entry.path())?;
                } else {
                    left += meta.blocks() * 512;
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
    fn small_files_wait_for_the_end_and_large_ones_go_at_once() {
        let root = tempfile::tempdir().unwrap();
        let trash = Trash::new(root.path(), 1 << 30).unwrap();
        let trash_dir = trash.dir.path().to_owned();
        let dir = scenario_dir(root.path(), "scenario-a");
        trash.discard(&dir).unwrap();
        assert!(!dir.exists(), "the scenario directory is moved away");
        // Two small files hold at least a block each.
        assert!(trash.kept_bytes() >= 2 * 512, "{}", trash.kept_bytes());
        let kept = trash_dir.join("0/data");
        assert_eq!(std::fs::read(kept.join("shard/small-2")).unwrap(), vec![2u8; 3000]);
        assert!(!kept.join("large").exists(), "large files are deleted right away");
        drop(trash);
        assert!(!trash_dir.exists(), "everything goes at the end");
    }

    #[test]
    fn past_the_cap_a_directory_is_deleted_at_once() {
        let root = tempfile::tempdir().unwrap();
        let first = scenario_dir(root.path(), "a");
        // Room for exactly one such directory.
        let one = {
            let probe = Trash::new(&root.path().join("probe"), u64::MAX).unwrap();
            probe.discard(&scenario_dir(root.path(), "p")).unwrap();
            probe.kept_bytes()
        };
        let trash = Trash::new(root.path(), one).unwrap();
        trash.discard(&first).unwrap();
        let second = scenario_dir(root.path(), "b");
        trash.discard(&second).unwrap();
        assert!(!second.exists());
        assert_eq!(trash.kept_bytes(), one, "the second directory was not kept");
        assert!(!trash.dir.path().join("1").exists());
    }

    #[test]
    fn a_directory_that_cannot_be_moved_is_deleted_instead() {
        let root = tempfile::tempdir().unwrap();
        let trash = Trash::new(root.path(), 1 << 30).unwrap();
        let dir = scenario_dir(root.path(), "a");
        // The rename target is taken by a non-empty directory: the move fails.
        std::fs::create_dir_all(trash.dir.path().join("0/occupied")).unwrap();
        trash.discard(&dir).unwrap();
        assert!(!dir.exists());
        assert_eq!(trash.kept_bytes(), 0);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let trash = Trash::new(root.path(), 1 << 30).unwrap();
        let err = trash.discard(&root.path().join("gone")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
