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
//!
//! A process killed before its end (SIGKILL, a crash) leaves its trash behind, and the
//! scenario it was running: scenarios work in the trash's `live` directory, so that one
//! directory holds all a process leaves. Each trash directory holds a lock file that its
//! process keeps locked, so the next trash made in the same work directory can tell a dead
//! process's trash from a live one's (two runs may share a work directory) and takes the
//! dead one's over, to delete it at its own end, not at its start, where deleting would slow
//! the measurements down. A directory taken over is treated as a discarded one: its large
//! files go at once, its small ones count against the cap.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Files at least this large are deleted right away. What slows the disk down is the
/// number of files deleted, not their bytes; at 256 KiB, the 100 kB blobs of a `ci.toml` run
/// filled the 4 GiB cap before its end.
const LARGE_FILE: u64 = 64 * 1024;

/// Name prefix of trash directories in a work directory.
const PREFIX: &str = "trash-";
/// Name prefix of a trash directory being made, before it is locked and renamed.
const STAGING_PREFIX: &str = ".new-trash-";
/// The lock file in each trash directory, locked for as long as its process lives.
const LOCK_FILE: &str = ".lock";
/// Where the process's scenarios work, inside its trash directory.
const LIVE_DIR: &str = "live";

pub struct Trash {
    dir: PathBuf,
    /// Held (locked) until the trash is deleted.
    _lock: std::fs::File,
    state: Mutex<State>,
    cap_bytes: u64,
    /// Trash directories of dead processes taken over.
    adopted: usize,
}

struct State {
    /// Disk space (allocated blocks) of what is held back.
    kept_bytes: u64,
    next: u64,
}

impl Trash {
    /// An empty trash directory in `work_root` (created if missing), deleted with everything
    /// in it on drop. Trash directories that dead processes left in `work_root` are moved
    /// into it, to be deleted with it.
    pub fn new(work_root: &Path, cap_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(work_root)?;
        // Made under another name and renamed once locked, so that every `trash-*` directory
        // another process sees already has its lock taken.
        let staging = tempfile::Builder::new().prefix(STAGING_PREFIX).tempdir_in(work_root)?;
        let lock = std::fs::File::create(staging.path().join(LOCK_FILE))?;
        lock.lock()?;
        std::fs::create_dir(staging.path().join(LIVE_DIR))?;
        let name = staging
            .path()
            .file_name()
            .expect("a temp dir has a name")
            .to_string_lossy();
        let dir = work_root.join(name.replacen(STAGING_PREFIX, PREFIX, 1));
        std::fs::rename(staging.keep(), &dir)?;
        let mut trash = Self {
            dir,
            _lock: lock,
            state: Mutex::new(State { kept_bytes: 0, next: 0 }),
            cap_bytes,
            adopted: 0,
        };
        trash.adopted = trash.adopt_stale(work_root);
        Ok(trash)
    }

    /// Moves into this trash every trash directory in `work_root` whose lock is free, that
    /// is, whose process has ended without deleting it, as [`discard`](Self::discard) does.
    /// Returns how many were kept for the end (the others were deleted at once).
    fn adopt_stale(&self, work_root: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(work_root) else {
            return 0;
        };
        let mut taken = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            // Also a staging directory whose process died before renaming it.
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_trash = name.starts_with(PREFIX) || name.starts_with(STAGING_PREFIX);
            if !is_trash || path == self.dir {
                continue;
            }
            // No lock file: made by a version without locks, or not ours; left alone.
            let Ok(lock) = std::fs::File::open(path.join(LOCK_FILE)) else {
                continue;
            };
            if lock.try_lock().is_err() {
                continue; // its process is alive, or another one is taking it over
            }
            if let Ok(true) = self.keep_or_delete(&path) {
                taken += 1;
            }
        }
        taken
    }

    /// Where this process's scenarios and rounds should make their directories: inside the
    /// trash directory, so that a killed process leaves them where the next one finds them.
    pub fn live_dir(&self) -> PathBuf {
        self.dir.join(LIVE_DIR)
    }

    /// Trash directories of dead processes this one took over.
    pub fn adopted(&self) -> usize {
        self.adopted
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
        self.keep_or_delete(dir).map(|_| ())
    }

    /// [`discard`](Self::discard), saying whether the directory was kept for the end.
    fn keep_or_delete(&self, dir: &Path) -> std::io::Result<bool> {
        let mut state = self.state();
        let moved = delete_large_files(dir).and_then(|small| {
            if state.kept_bytes + small > self.cap_bytes {
                return Ok(false);
            }
            let to = self.dir.join(state.next.to_string());
            std::fs::rename(dir, &to)?;
            state.next += 1;
            state.kept_bytes += small;
            Ok(true)
        });
        match moved {
            Ok(true) => Ok(true),
            Ok(false) | Err(_) => std::fs::remove_dir_all(dir).map(|()| false),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Trash {
    fn drop(&mut self) {
        let kept = self.kept_bytes();
        // This can take a while; say why the process has not ended yet.
        if kept > 0 {
            eprintln!("removing {} MiB of finished scenarios' small files", kept >> 20);
        }
        if self.adopted > 0 {
            eprintln!("removing {} trash directories left by ended runs", self.adopted);
        }
        if remove_in_parallel(&self.dir).is_err() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Threads that delete the trash at the end. Unlinking small files waits on the filesystem's
/// journal more than on the CPU, so more threads than cores still help. On this project's
/// 2-core machine, 25,000 files of 10 KiB in four directories took 2.5-2.8 s with
/// `std::fs::remove_dir_all` and 1.4 s with this function (twice each, after a sync).
const DELETION_THREADS: usize = 4;

/// Deletes `dir` and everything in it, reading directories and unlinking files on
/// [`DELETION_THREADS`] threads.
fn remove_in_parallel(dir: &Path) -> std::io::Result<()> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(DELETION_THREADS)
        .build()
        .map_err(std::io::Error::other)?;
    pool.install(|| {
        remove_dir_all::RemoverBuilder::new()
            .parallel()
            .build()
            .remove_dir_all(dir)
    })
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
        let trash_dir = trash.dir.to_owned();
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
        assert!(!trash.dir.join("1").exists());
    }

    #[test]
    fn a_directory_that_cannot_be_moved_is_deleted_instead() {
        let root = tempfile::tempdir().unwrap();
        let trash = Trash::new(root.path(), 1 << 30).unwrap();
        let dir = scenario_dir(root.path(), "a");
        // The rename target is taken by a non-empty directory: the move fails.
        std::fs::create_dir_all(trash.dir.join("0/occupied")).unwrap();
        trash.discard(&dir).unwrap();
        assert!(!dir.exists());
        assert_eq!(trash.kept_bytes(), 0);
    }

    #[test]
    fn a_dead_process_s_trash_is_taken_over_and_a_live_one_is_not() {
        let root = tempfile::tempdir().unwrap();
        // What a killed run leaves: a trash directory whose lock nobody holds.
        let dead = scenario_dir(root.path(), "trash-dead");
        std::fs::write(dead.join(LOCK_FILE), b"").unwrap();
        let dead_live = scenario_dir(&dead.join(LIVE_DIR), "scenario-x");
        // A run killed while it made its trash directory, once its lock file existed.
        let staged = root.path().join(".new-trash-killed");
        std::fs::create_dir(&staged).unwrap();
        std::fs::write(staged.join(LOCK_FILE), b"").unwrap();
        // One made by a version without lock files is not touched.
        let unlocked = scenario_dir(root.path(), "trash-old");
        let live = Trash::new(root.path(), 1 << 30).unwrap();
        let live_dir = live.dir.clone();
        assert_eq!(live.adopted(), 2);
        assert!(!dead.exists(), "the dead run's trash was moved");
        assert!(!staged.exists(), "the dead run's staging directory was moved");
        let taken = (0..2)
            .map(|n| live_dir.join(n.to_string()))
            .find(|d| d.join("data/shard/small-1").exists())
            .expect("the dead run's files are in the taker's trash");
        assert!(!taken.join("data/large").exists(), "its large files went at once");
        assert!(live.kept_bytes() >= 2 * 512, "its small files count against the cap");
        assert!(!dead_live.exists());
        assert!(live.live_dir().is_dir() && live.live_dir().starts_with(&live_dir));

        let other = Trash::new(root.path(), 1 << 30).unwrap();
        assert_eq!(other.adopted(), 0, "a live process's trash is left alone");
        assert!(live_dir.exists() && unlocked.exists());
        drop(live);
        assert!(
            !live_dir.exists(),
            "the taken-over trash goes with the one that took it"
        );
        drop(other);
        assert!(unlocked.exists());
        let left: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("trash-old")],
            "no staging directory is left"
        );
    }

    #[test]
    fn a_dead_process_s_trash_past_the_cap_is_deleted_at_once() {
        let root = tempfile::tempdir().unwrap();
        let dead = scenario_dir(root.path(), "trash-dead");
        std::fs::write(dead.join(LOCK_FILE), b"").unwrap();
        let trash = Trash::new(root.path(), 512).unwrap();
        assert!(!dead.exists());
        assert_eq!((trash.adopted(), trash.kept_bytes()), (0, 0));
        assert!(!trash.dir.join("0").exists());
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let trash = Trash::new(root.path(), 1 << 30).unwrap();
        let err = trash.discard(&root.path().join("gone")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
