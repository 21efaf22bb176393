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
        let dir = File::open(root).map_err(err(root))?;
        let (asks, incoming) = mpsc::channel::<oneshot::Sender<Outcome>>();
        std::thread::Builder::new()
            .name("group-sync".into())
            .spawn(move || {
                while let Ok(first) = incoming.recv() {
                    let mut waiting = vec![first];
                    waiting.extend(incoming.try_iter());
                    let outcome = syncfs(&dir).map_err(|e| (e.kind(), e.to_string()));
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_ask_is_answered_also_when_others_are_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let g = std::sync::Arc::new(GroupSync::start(dir.path()).unwrap());
        // Asks whose tasks are dropped half-way must not block the ones that stay.
        for _ in 0..20 {
            let g = g.clone();
            let t = tokio::spawn(async move { g.sync().await });
            t.abort();
        }
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let g = g.clone();
                tokio::spawn(async move { g.sync().await })
            })
            .collect();
        for t in tasks {
            tokio::time::timeout(std::time::Duration::from_secs(30), t)
                .await
                .expect("an ask was never answered")
                .unwrap()
                .unwrap();
        }
    }

    #[test]
    fn a_missing_root_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = GroupSync::start(&missing).err().expect("no such directory");
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
