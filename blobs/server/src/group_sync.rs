//! Group commit: one `syncfs` makes the writes of every upload in flight durable at once.
//!
//! With `durability = "group"`, an upload does not fsync its file and then its directory.
//! It writes its file, asks for a filesystem sync, links the file into place, and asks for
//! another; each ask is answered by a `syncfs(2)` that started after the ask, so the order
//! that makes a crash safe is the same as with fsyncs (the bytes are durable before the name
//! is, the name before the 200). One thread runs the syncs back to back and answers every
//! ask that arrived during the previous one with the next, so that fifty uploads in flight
//! share two syncs instead of making a hundred fsyncs. Measured in BENCHMARKS.md.
//!
//! The price: `syncfs` flushes everything dirty on the filesystem, also other programs' data,
//! so this mode is for a data directory on a filesystem of its own.
//!
//! The syncs run on a thread of their own, not on a request's task, so that a request that
//! is cancelled (its client gone) cannot leave the others waiting for a sync nobody runs.
//!
//! A failed sync fails every later one too, until the server is restarted. The kernel
//! reports a writeback error to a descriptor once: an upload whose pages failed to write
//! during one sync may be waiting for the next, which would then succeed and acknowledge
//! lost bytes. (PostgreSQL stops for the same reason after a failed fsync.)

use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::disk::{DiskError, err};

/// How a sync went, sent to every ask it answers (`io::Error` is not `Clone`).
type Outcome = Result<(), (std::io::ErrorKind, String)>;

pub struct GroupSync {
    asks: mpsc::Sender<oneshot::Sender<Outcome>>,
    root: std::path::PathBuf,
}

impl GroupSync {
    /// Starts the sync thread for the filesystem that holds `root`. The thread ends when the
    /// `GroupSync` is dropped.
    pub fn start(root: &Path) -> Result<Self, DiskError> {
        check_kernel().map_err(err(root))?;
        let dir = File::open(root).map_err(err(root))?;
        Self::start_with(root, move || syncfs(&dir))
    }

    /// As [`start`](Self::start), with `sync` in place of `syncfs` (for tests).
    fn start_with(
        root: &Path,
        mut sync: impl FnMut() -> std::io::Result<()> + Send + 'static,
    ) -> Result<Self, DiskError> {
        let (asks, incoming) = mpsc::channel::<oneshot::Sender<Outcome>>();
        std::thread::Builder::new()
            .name("group-sync".into())
            .spawn(move || {
                let mut failed: Option<(std::io::ErrorKind, String)> = None;
                while let Ok(first) = incoming.recv() {
                    let mut waiting = vec![first];
                    waiting.extend(incoming.try_iter());
                    let outcome = match &failed {
                        Some((kind, message)) => Err((
                            *kind,
                            format!("an earlier filesystem sync failed ({message}); restart the server once the disk is checked"),
                        )),
                        None => sync().map_err(|e| (e.kind(), e.to_string())),
                    };
                    if let (Err(e), None) = (&outcome, &failed) {
                        tracing::error!(error = %e.1, "a filesystem sync failed: no upload is acknowledged until a restart");
                        failed = Some(e.clone());
                    }
                    for w in waiting {
                        let _ = w.send(outcome.clone());
                    }
                }
            })
            .map_err(err(root))?;
        Ok(Self {
            asks,
            root: root.to_owned(),
        })
    }

    /// Returns once a filesystem sync that started after this call has finished: everything
    /// written before the call is then durable.
    pub async fn sync(&self) -> Result<(), DiskError> {
        let gone = || err(&self.root)(std::io::Error::other("the sync thread has stopped"));
        let (tx, rx) = oneshot::channel();
        self.asks.send(tx).map_err(|_| gone())?;
        rx.await
            .map_err(|_| gone())?
            .map_err(|(kind, message)| err(&self.root)(std::io::Error::new(kind, message)))
    }
}

/// `syncfs` reports writeback errors only since Linux 5.8; before, it returned success
/// after a failed write, which would acknowledge lost bytes.
fn check_kernel() -> std::io::Result<()> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if version < (5, 8) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!(
                "durability = \"group\" needs Linux 5.8 or later (syncfs reports write errors only since); this is {}",
                release.trim()
            ),
        ));
    }
    Ok(())
}

/// `syncfs(2)`: std has no wrapper. Since Linux 5.8 it reports writeback errors of the whole
/// filesystem, which is what makes it usable for durability.
fn syncfs(dir: &File) -> std::io::Result<()> {
    // SAFETY: the descriptor is open for the duration of the call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn asks_share_syncs_and_cancelled_ones_do_not_block_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let syncs = Arc::new(AtomicU32::new(0));
        let counted = syncs.clone();
        let g = Arc::new(
            GroupSync::start_with(dir.path(), move || {
                counted.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
                Ok(())
            })
            .unwrap(),
        );
        // Tasks aborted while their ask waits for a sync.
        let doomed: Vec<_> = (0..20)
            .map(|_| {
                let g = g.clone();
                tokio::spawn(async move { g.sync().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        for t in &doomed {
            t.abort();
        }
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let g = g.clone();
                tokio::spawn(async move { g.sync().await })
            })
            .collect();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("an ask was never answered")
                .unwrap()
                .unwrap();
        }
        // 70 asks, a few syncs (about three; a slow host spreads the asks over more), not 70.
        let n = syncs.load(Ordering::SeqCst);
        assert!((1..=10).contains(&n), "{n} syncs for 70 asks");
    }

    #[tokio::test]
    async fn after_a_failed_sync_every_later_ask_fails() {
        let dir = tempfile::tempdir().unwrap();
        let calls = Arc::new(AtomicU32::new(0));
        let counted = calls.clone();
        let g = GroupSync::start_with(dir.path(), move || match counted.fetch_add(1, Ordering::SeqCst) {
            1 => Err(std::io::Error::other("EIO from the disk")),
            _ => Ok(()),
        })
        .unwrap();
        g.sync().await.unwrap();
        let e = g.sync().await.unwrap_err();
        assert!(e.to_string().contains("EIO from the disk"), "{e}");
        // The kernel would report the error once; the next syncs would succeed.
        for _ in 0..3 {
            let e = g.sync().await.unwrap_err();
            assert!(e.to_string().contains("an earlier filesystem sync failed"), "{e}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2, "no sync runs after a failure");
    }

    #[tokio::test]
    async fn the_real_syncfs_succeeds_here() {
        let dir = tempfile::tempdir().unwrap();
        let g = GroupSync::start(dir.path()).unwrap();
        std::fs::write(dir.path().join("f"), b"bytes").unwrap();
        g.sync().await.unwrap();
    }

    #[test]
    fn a_missing_root_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = GroupSync::start(&missing).err().expect("no such directory");
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
