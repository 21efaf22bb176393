//! Group commit: one `syncfs` makes the writes of every upload in flight durable at once.
//!
//! With `durability = "group"`, an upload does not fsync its file and then its directory.
//! It writes its file and hands the link to this thread, which links it after a sync that
//! started after the hand-over and answers after the next sync; so the order that makes a
//! crash safe is the same as with fsyncs (the bytes are durable before the name is, the name
//! before the 200). The thread runs the syncs back to back, and between two syncs it makes
//! the links whose first sync has just finished: fifty uploads in flight share two syncs
//! instead of making a hundred fsyncs. Measured in BENCHMARKS.md.
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
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::fs::disk::{DiskError, Visible, err};

/// How a sync went, sent to every ask it answers (`io::Error` is not `Clone`).
type Outcome = Result<(), (std::io::ErrorKind, String)>;

/// What the sync thread runs for an ask once a sync that started after it has finished.
type Job = Box<dyn FnOnce(&Outcome) -> Step + Send>;

/// After a job: answered, or waiting for the next sync as well.
enum Step {
    Done,
    AfterNextSync(Job),
}

pub struct GroupSync {
    asks: mpsc::Sender<Job>,
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
        let (asks, incoming) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("group-sync".into())
            .spawn(move || {
                let mut failed: Option<(std::io::ErrorKind, String)> = None;
                // Jobs the next sync answers: new asks, and links made since the last sync.
                let mut due: Vec<Job> = Vec::new();
                loop {
                    if due.is_empty() {
                        match incoming.recv() {
                            Ok(job) => due.push(job),
                            // Dropped, and nothing left to answer.
                            Err(_) => break,
                        }
                    }
                    due.extend(incoming.try_iter());
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
                    for job in std::mem::take(&mut due) {
                        // A panicking job drops its answer (its caller gets an error); the
                        // thread must live on for everyone else.
                        match catch_unwind(AssertUnwindSafe(|| job(&outcome))) {
                            Ok(Step::Done) => {}
                            Ok(Step::AfterNextSync(next)) => due.push(next),
                            Err(_) => tracing::error!("a job on the sync thread panicked"),
                        }
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
        // A link that changes nothing is answered after the one sync.
        self.sync_link_sync(|| ((), false)).await?.into_result()
    }

    /// Runs `link` on the sync thread once a sync that started after this call has finished,
    /// then returns its value once the next sync has finished too; or at once if `link`
    /// reports that it changed nothing (`false` beside its value), as when an id is taken.
    /// An error means `link` did not run; a failure of the sync after it comes back beside
    /// its value, for the caller to record what the link changed without acknowledging it.
    ///
    /// This is an upload's "sync, link, sync" in one ask: every link made between two syncs
    /// is covered by the next one, with no trip to the blocking pool and back in between.
    /// `link` must be quick, such as a `linkat`: the next sync waits for it. (A `rename` over
    /// a file frees the old one's blocks, which is not quick for a big file.) It is not run if
    /// the caller has stopped waiting, so that nothing is linked that the caller cannot record.
    pub async fn sync_link_sync<T: Send + 'static>(
        &self,
        link: impl FnOnce() -> (T, bool) + Send + 'static,
    ) -> Result<Visible<T>, DiskError> {
        let (tx, rx) = oneshot::channel::<Result<(T, Outcome), (std::io::ErrorKind, String)>>();
        let job: Job = Box::new(move |outcome| {
            if let Err(e) = outcome {
                let _ = tx.send(Err(e.clone()));
                return Step::Done;
            }
            if tx.is_closed() {
                return Step::Done;
            }
            let (value, changed) = link();
            if !changed {
                let _ = tx.send(Ok((value, Ok(()))));
                return Step::Done;
            }
            Step::AfterNextSync(Box::new(move |outcome| {
                let _ = tx.send(Ok((value, outcome.clone())));
                Step::Done
            }))
        });
        self.asks
            .send(job)
            .map_err(|_| err(&self.root)(std::io::Error::other("the sync thread has stopped")))?;
        let to_error = |(kind, message)| err(&self.root)(std::io::Error::new(kind, message));
        let (value, after) = rx
            .await
            .map_err(|_| err(&self.root)(std::io::Error::other("the sync thread dropped this request")))?
            .map_err(to_error)?;
        Ok(Visible {
            value,
            failed_after: after.err().map(to_error),
        })
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
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    /// A hang guard: a liveness bug fails the test instead of hanging it.
    async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(60), f)
            .await
            .expect("no answer within a minute")
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Event {
        Asked(u32),
        SyncStarted,
        SyncEnded,
        Linked(u32),
        Answered(u32),
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_link_comes_between_two_syncs_that_follow_its_ask() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let record = {
            let log = log.clone();
            move |e| log.lock().unwrap().push(e)
        };
        let in_sync = record.clone();
        let g = Arc::new(
            GroupSync::start_with(dir.path(), move || {
                in_sync(Event::SyncStarted);
                std::thread::sleep(Duration::from_millis(5));
                in_sync(Event::SyncEnded);
                Ok(())
            })
            .unwrap(),
        );
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let (g, record) = (g.clone(), record.clone());
                tokio::spawn(async move {
                    // Spread over several syncs.
                    tokio::time::sleep(Duration::from_millis(u64::from(i % 8) * 3)).await;
                    record(Event::Asked(i));
                    let in_link = record.clone();
                    let value = g
                        .sync_link_sync(move || {
                            in_link(Event::Linked(i));
                            (i * 10, true)
                        })
                        .await
                        .unwrap();
                    record(Event::Answered(i));
                    value
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(
                within(t).await.unwrap().into_result().unwrap(),
                i as u32 * 10,
                "the link's value comes back"
            );
        }
        let log = log.lock().unwrap().clone();
        let at = |e: Event| {
            log.iter()
                .position(|x| *x == e)
                .unwrap_or_else(|| panic!("{e:?} missing"))
        };
        let sync_ended_within = |from: usize, to: usize| {
            // A sync that started after `from` and ended before `to`.
            log[from..to]
                .iter()
                .position(|e| *e == Event::SyncStarted)
                .is_some_and(|s| log[from + s..to].contains(&Event::SyncEnded))
        };
        for i in 0..40 {
            let (asked, linked, answered) = (at(Event::Asked(i)), at(Event::Linked(i)), at(Event::Answered(i)));
            assert!(asked < linked && linked < answered, "{i}: out of order: {log:?}");
            assert!(
                sync_ended_within(asked, linked),
                "{i}: linked with no whole sync after its ask"
            );
            assert!(
                sync_ended_within(linked, answered),
                "{i}: answered with no whole sync after its link"
            );
        }
        let syncs = log.iter().filter(|e| **e == Event::SyncStarted).count();
        assert!(syncs < 40, "{syncs} syncs for 40 links: they were not shared");
    }

    #[tokio::test]
    async fn a_link_that_changed_nothing_is_answered_after_one_sync() {
        let dir = tempfile::tempdir().unwrap();
        let syncs = Arc::new(AtomicU32::new(0));
        let counted = syncs.clone();
        let g = GroupSync::start_with(dir.path(), move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        within(g.sync_link_sync(|| ((), false)))
            .await
            .unwrap()
            .into_result()
            .unwrap();
        assert_eq!(syncs.load(Ordering::SeqCst), 1);
        within(g.sync_link_sync(|| ((), true)))
            .await
            .unwrap()
            .into_result()
            .unwrap();
        assert_eq!(
            syncs.load(Ordering::SeqCst),
            3,
            "a link that placed something waits for another sync"
        );
    }

    #[tokio::test]
    async fn a_failed_sync_before_a_link_means_no_link_and_one_after_it_no_success() {
        let dir = tempfile::tempdir().unwrap();
        for failing_call in [1, 2] {
            let calls = Arc::new(AtomicU32::new(0));
            let counted = calls.clone();
            let g = GroupSync::start_with(dir.path(), move || {
                if counted.fetch_add(1, Ordering::SeqCst) + 1 == failing_call {
                    Err(std::io::Error::other("EIO from the disk"))
                } else {
                    Ok(())
                }
            })
            .unwrap();
            let linked = Arc::new(AtomicU32::new(0));
            let l = linked.clone();
            let answer = within(g.sync_link_sync(move || {
                l.fetch_add(1, Ordering::SeqCst);
                ((), true)
            }))
            .await;
            // After a link, the failure comes with the link's value: the caller records the
            // change but does not acknowledge it.
            let (e, reported_after_the_link) = match answer {
                Err(e) => (e, false),
                Ok(linked) => (linked.failed_after.expect("acknowledged with a failed sync"), true),
            };
            assert_eq!(reported_after_the_link, failing_call == 2, "sync {failing_call} failed");
            assert!(
                e.to_string().contains("EIO from the disk"),
                "sync {failing_call} failed: {e}"
            );
            // Linking after a failed sync would publish bytes that may not be on the disk.
            assert_eq!(
                linked.load(Ordering::SeqCst),
                u32::from(failing_call == 2),
                "sync {failing_call} failed"
            );
        }
    }

    #[tokio::test]
    async fn a_panicking_link_fails_its_own_ask_only() {
        let dir = tempfile::tempdir().unwrap();
        let g = GroupSync::start_with(dir.path(), || Ok(())).unwrap();
        let e = within(g.sync_link_sync(|| -> ((), bool) { panic!("a bug in a link") }))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("dropped this request"), "{e}");
        assert_eq!(
            within(g.sync_link_sync(|| (7, true)))
                .await
                .unwrap()
                .into_result()
                .unwrap(),
            7,
            "the thread lives on"
        );
    }

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
                tokio::spawn(async move { within(g.sync()).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        for t in &doomed {
            t.abort();
        }
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let g = g.clone();
                tokio::spawn(async move { within(g.sync()).await })
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
        within(g.sync()).await.unwrap();
        let e = within(g.sync()).await.unwrap_err();
        assert!(e.to_string().contains("EIO from the disk"), "{e}");
        // The kernel would report the error once; the next syncs would succeed.
        for _ in 0..3 {
            let e = within(g.sync()).await.unwrap_err();
            assert!(e.to_string().contains("an earlier filesystem sync failed"), "{e}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2, "no sync runs after a failure");
    }

    #[tokio::test]
    async fn the_real_syncfs_succeeds_here() {
        let dir = tempfile::tempdir().unwrap();
        let g = GroupSync::start(dir.path()).unwrap();
        std::fs::write(dir.path().join("f"), b"bytes").unwrap();
        within(g.sync()).await.unwrap();
    }

    #[test]
    fn a_missing_root_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = GroupSync::start(&missing).err().expect("no such directory");
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
