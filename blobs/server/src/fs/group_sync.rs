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
//! so a sync takes as long as the busiest writer on the filesystem makes it. Measured on a
//! disk that `dd` was writing 3 GB to: 49-52 ms per `syncfs` at the median and up to 0.95 s,
//! where 50 uploads' own fsyncs took 19-27 ms (BENCHMARKS.md). `durability = "group"` takes
//! that price, for a data directory on a filesystem of its own. The default, `auto`
//! ([`Adapt`]), shares the syncs only while they are quick: once the syncs' moving mean
//! exceeds [`SLOW_SYNC`] the uploads fsync their own files, and a probe sync every
//! [`PROBE_EVERY`] tells when the mean is under [`QUICK_SYNC`] again.
//!
//! The syncs run on a thread of their own, not on a request's task, so that a request that
//! is cancelled (its client gone) cannot leave the others waiting for a sync nobody runs.
//!
//! A failed sync fails every later one too, until the server is restarted. The kernel
//! reports a writeback error to a descriptor once: an upload whose pages failed to write
//! during one sync may be waiting for the next, which would then succeed and acknowledge
//! lost bytes. (PostgreSQL stops for the same reason after a failed fsync.) With `auto`,
//! every ask waiting then fails the same way, and later uploads fsync their own files: an
//! fsync reports the errors of its own file's pages, so no upload after the failure can be
//! acknowledged on the strength of the failed sync.

use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

/// Syncs slower than this on the moving mean mean that something else is writing to the
/// filesystem: an upload then waits for two or three such syncs, longer than for an fsync of
/// its own (19-27 ms for 50 in parallel beside a 3 GB writer, whose syncs took 49-52 ms at
/// the median, BENCHMARKS.md), and each sync forces that writer's data out. Quiet, a sync of
/// 50 small uploads took 1.1-1.8 ms here; under the uploads' own load on a machine with every
/// core busy, some took 10.6-12.3 ms (the ones logged), probably waiting for a core as much as
/// for the disk, which fsyncs of each upload's own would not shorten: they cost more CPU.
pub const SLOW_SYNC: Duration = Duration::from_millis(25);

/// The moving mean under which the uploads share the syncs again: below [`SLOW_SYNC`], so
/// that syncs near the line do not switch the uploads back and forth (a single threshold of
/// 10 ms did, 5 times in the first 2 s of the uploads' own load, 27 times in the whole test).
pub const QUICK_SYNC: Duration = Duration::from_millis(10);

/// How often `auto` tries a sync while the uploads fsync their own files, to learn when the
/// syncs are quick again. Rare enough that the probes force little of another writer's data
/// out early.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// When the uploads share the syncs (`durability = "auto"`), by the moving mean of the syncs'
/// times (an upload's or a probe's, each weighing a quarter): from the start, and again once
/// the mean is under `quick`; no longer once it is over `slow`, nor ever after a failed sync.
/// A single sync of more than 4 times `slow` switches at once.
#[derive(Debug, Clone, Copy)]
pub struct Adapt {
    pub slow: Duration,
    pub quick: Duration,
    pub probe_every: Duration,
}

impl Default for Adapt {
    fn default() -> Self {
        Self {
            slow: SLOW_SYNC,
            quick: QUICK_SYNC,
            probe_every: PROBE_EVERY,
        }
    }
}

pub struct GroupSync {
    asks: mpsc::Sender<Job>,
    root: std::path::PathBuf,
    /// Whether uploads should share the syncs now: always without [`Adapt`].
    shared: Arc<AtomicBool>,
}

impl GroupSync {
    /// Starts the sync thread for the filesystem that holds `root`, sharing its syncs always
    /// (`durability = "group"`) or with `adapt` only while they are quick (`auto`). The thread
    /// ends when the `GroupSync` is dropped.
    pub fn start(root: &Path, adapt: Option<Adapt>) -> Result<Self, DiskError> {
        check_kernel().map_err(err(root))?;
        let dir = File::open(root).map_err(err(root))?;
        let synced_root = root.to_owned();
        Self::start_with(root, adapt, move || {
            let generation = crate::fs::disk::sync_starting();
            syncfs(&dir)?;
            // The directories made for uploads before this sync are durable now.
            crate::fs::disk::filesystem_synced(&synced_root, generation);
            Ok(())
        })
    }

    /// Whether an upload should hand its link to the group now, instead of fsyncing its own
    /// file and directory ([`Adapt`]).
    pub fn shared(&self) -> bool {
        self.shared.load(Ordering::Relaxed)
    }

    /// As [`start`](Self::start), with `sync` in place of `syncfs` (for tests).
    fn start_with(
        root: &Path,
        adapt: Option<Adapt>,
        mut sync: impl FnMut() -> std::io::Result<()> + Send + 'static,
    ) -> Result<Self, DiskError> {
        let (asks, incoming) = mpsc::channel::<Job>();
        let shared = Arc::new(AtomicBool::new(true));
        let shared_now = shared.clone();
        std::thread::Builder::new()
            .name("group-sync".into())
            .spawn(move || {
                let mut failed: Option<(std::io::ErrorKind, String)> = None;
                // Jobs the next sync answers: new asks, and links made since the last sync.
                let mut due: Vec<Job> = Vec::new();
                // The syncs' moving mean, in seconds (`Adapt`).
                let mut mean = 0.0_f64;
                loop {
                    if due.is_empty() {
                        // While the uploads fsync their own files, nobody asks: a sync with
                        // nothing due is the probe that tells when syncs are quick again.
                        let probe = adapt.filter(|_| failed.is_none() && !shared_now.load(Ordering::Relaxed));
                        let next = match probe {
                            Some(a) => match incoming.recv_timeout(a.probe_every) {
                                Ok(job) => Some(job),
                                Err(mpsc::RecvTimeoutError::Timeout) => None,
                                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                            },
                            None => match incoming.recv() {
                                Ok(job) => Some(job),
                                // Dropped, and nothing left to answer.
                                Err(_) => break,
                            },
                        };
                        due.extend(next);
                    }
                    due.extend(incoming.try_iter());
                    let started = Instant::now();
                    let outcome = match &failed {
                        Some((kind, message)) => Err((
                            *kind,
                            format!("an earlier filesystem sync failed ({message}); restart the server once the disk is checked"),
                        )),
                        None => sync().map_err(|e| (e.kind(), e.to_string())),
                    };
                    if let (Err(e), None) = (&outcome, &failed) {
                        if adapt.is_some() {
                            tracing::error!(error = %e.1, "a filesystem sync failed: the uploads waiting for it fail, later ones fsync their own files");
                        } else {
                            tracing::error!(error = %e.1, "a filesystem sync failed: no upload is acknowledged until a restart");
                        }
                        failed = Some(e.clone());
                    }
                    if let Some(a) = adapt {
                        let took = started.elapsed().as_secs_f64();
                        mean = 0.75 * mean + 0.25 * took;
                        let was = shared_now.load(Ordering::Relaxed);
                        let now = outcome.is_ok()
                            && if was {
                                mean <= a.slow.as_secs_f64()
                            } else {
                                mean < a.quick.as_secs_f64()
                            };
                        if now != was {
                            shared_now.store(now, Ordering::Relaxed);
                            let (sync_ms, mean_ms) = (took * 1e3, mean * 1e3);
                            if now {
                                tracing::info!(sync_ms, mean_ms, "filesystem syncs are quick again: uploads share them");
                            } else if outcome.is_ok() {
                                tracing::info!(sync_ms, mean_ms, "filesystem syncs are slow: uploads fsync their own files for now");
                            }
                        }
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
            shared,
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
            GroupSync::start_with(dir.path(), None, move || {
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
        let g = GroupSync::start_with(dir.path(), None, move || {
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
            let g = GroupSync::start_with(dir.path(), None, move || {
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
        let g = GroupSync::start_with(dir.path(), None, || Ok(())).unwrap();
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
            GroupSync::start_with(dir.path(), None, move || {
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
        let g = GroupSync::start_with(dir.path(), None, move || match counted.fetch_add(1, Ordering::SeqCst) {
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

    /// A sync whose duration the test sets, counting its calls.
    fn timed_sync(calls: &Arc<AtomicU32>, ms: &Arc<AtomicU32>) -> impl FnMut() -> std::io::Result<()> + Send + 'static {
        let (calls, ms) = (calls.clone(), ms.clone());
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(ms.load(Ordering::SeqCst).into()));
            Ok(())
        }
    }

    /// Polls `done` for up to 10 s.
    async fn eventually(done: impl Fn() -> bool) -> bool {
        for _ in 0..1000 {
            if done() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        done()
    }

    #[tokio::test]
    async fn auto_shares_the_syncs_while_they_are_quick_and_probes_while_they_are_slow() {
        let dir = tempfile::tempdir().unwrap();
        let (calls, ms) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        // Wide margins: a loaded machine oversleeps the timed syncs by milliseconds.
        let adapt = Adapt {
            slow: Duration::from_millis(40),
            quick: Duration::from_millis(5),
            probe_every: Duration::from_millis(50),
        };
        let g = GroupSync::start_with(dir.path(), Some(adapt), timed_sync(&calls, &ms)).unwrap();
        assert!(g.shared(), "shared from the start");
        within(g.sync()).await.unwrap();
        assert!(g.shared(), "a quick sync keeps it shared");
        // Idle and quick: no sync runs without an ask.
        let before = calls.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(calls.load(Ordering::SeqCst), before, "no probes while shared");

        // Syncs near the line move the mean, not the uploads: 12 ms is over `quick`, under
        // `slow`.
        ms.store(12, Ordering::SeqCst);
        for _ in 0..8 {
            within(g.sync()).await.unwrap();
        }
        assert!(g.shared(), "syncs between quick and slow keep it shared");
        ms.store(200, Ordering::SeqCst);
        within(g.sync()).await.unwrap();
        assert!(!g.shared(), "a slow sync: uploads fsync their own files");
        // Slow and idle: probes, each slow, keep it unshared.
        let before = calls.load(Ordering::SeqCst);
        assert!(
            eventually(|| calls.load(Ordering::SeqCst) >= before + 2).await,
            "probes run while nobody asks"
        );
        assert!(!g.shared(), "slow probes keep it unshared");
        // Probes between quick and slow do not share them again either.
        ms.store(12, Ordering::SeqCst);
        let before = calls.load(Ordering::SeqCst);
        assert!(eventually(|| calls.load(Ordering::SeqCst) >= before + 12).await);
        assert!(!g.shared(), "a mean over `quick` keeps it unshared");

        ms.store(0, Ordering::SeqCst);
        assert!(eventually(|| g.shared()).await, "a quick probe shares the syncs again");
        let before = calls.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            calls.load(Ordering::SeqCst) <= before + 1,
            "the probes stop once shared"
        );
    }

    #[tokio::test]
    async fn auto_after_a_failed_sync_fails_the_waiting_asks_and_never_shares_again() {
        let dir = tempfile::tempdir().unwrap();
        let calls = Arc::new(AtomicU32::new(0));
        let counted = calls.clone();
        let adapt = Adapt {
            slow: Duration::from_secs(1),
            quick: Duration::from_millis(500),
            probe_every: Duration::from_millis(20),
        };
        let g = GroupSync::start_with(dir.path(), Some(adapt), move || {
            match counted.fetch_add(1, Ordering::SeqCst) {
                1 => Err(std::io::Error::other("EIO from the disk")),
                _ => Ok(()),
            }
        })
        .unwrap();
        within(g.sync()).await.unwrap();
        let e = within(g.sync()).await.unwrap_err();
        assert!(e.to_string().contains("EIO from the disk"), "{e}");
        assert!(!g.shared(), "after a failure uploads fsync their own files");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "no probe after a failure");
        assert!(!g.shared());
        // An ask that raced the switch is refused, never answered by a later sync.
        let e = within(g.sync()).await.unwrap_err();
        assert!(e.to_string().contains("an earlier filesystem sync failed"), "{e}");
    }

    #[tokio::test]
    async fn group_shares_the_syncs_however_slow_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let (calls, ms) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(60)));
        let g = GroupSync::start_with(dir.path(), None, timed_sync(&calls, &ms)).unwrap();
        within(g.sync()).await.unwrap();
        assert!(g.shared());
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "no probes");
    }

    #[tokio::test]
    async fn the_real_syncfs_succeeds_here() {
        let dir = tempfile::tempdir().unwrap();
        let g = GroupSync::start(dir.path(), None).unwrap();
        std::fs::write(dir.path().join("f"), b"bytes").unwrap();
        within(g.sync()).await.unwrap();
    }

    #[test]
    fn a_missing_root_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = GroupSync::start(&missing, None).err().expect("no such directory");
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
