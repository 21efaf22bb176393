//! `incoming.process`: the client's side of the mail pipeline (Soledad's legacy-vs-blobs
//! test, blobs half). N mails are delivered into the incoming box first, untimed; the
//! measured part runs the client's `IncomingBox` until every one is processed: reserved
//! (PENDING → PROCESSING), downloaded, saved by a consumer into the client's local store,
//! marked PROCESSED and deleted from the box. Then it checks that all N were saved.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use blobs_client::{BlobManager, Consumer, IncomingBox, IncomingConfig};
use futures::future::BoxFuture;

use crate::incoming_deliver::{Mx, mails};

use crate::{Context, Latencies, Leftovers, Params, Prepared, Work, WorkloadError, manager};
use crate::spec::{Extra, Key, Shape, Spec};

/// `incoming.process`'s contract with the harness.
pub(crate) const SPEC: Spec = Spec {
    name: "incoming.process",
    // 2: the manager (its SQLite store and connections) is dropped after the measured part,
    // as a mail client keeps it open; closing it checkpoints its write-ahead log (0 or 580 pages
    // in `blobs.sync`), which varied inside the round.
    version: 2,
    needs_server: true,
    needs_services: true,
    headline_metric: "wall_s",
    shape: // The incoming box takes one item at a time.
    Shape {
        concurrency: Key::No,
        ..Shape::BASE
    },
    extras: &[Extra::Throughput],
    describe: |params, w| {
        format!(
            "A client's incoming box processes {} delivered mails of {}, one after another: reserve, download, save into the local store, mark processed, delete.",
            params.count, w.each
        )
    },
    prepare: |params, ctx| Box::pin(async move { Ok(Prepared::new(Process::prepare(params, ctx).await?.run())) }),
};

/// Where the consumer saves the mails it takes out of the box.
const MAILBOX: &str = "inbox";
/// Deliveries in flight while the fixture is set up (not measured).
const FIXTURE_CONCURRENCY: usize = 8;
/// Bound on the passes that empty a box of earlier scenarios' mails before a round.
const MAX_DRAIN_PASSES: usize = 1000;

/// Saves each message into the local store, as a mail client keeps what it received; it
/// is then queued for upload under the client's own key, as Soledad's pipeline did.
struct SaveLocally {
    manager: BlobManager,
    saved: AtomicU64,
    bytes: AtomicU64,
    /// When the previous message was saved (or the run started): the box takes one message
    /// at a time, so the time from one save to the next is what one message costs.
    last: Mutex<Instant>,
    latencies: Mutex<Latencies>,
}

impl Consumer for SaveLocally {
    fn consume<'a>(&'a self, id: &'a str, payload: &'a [u8]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.manager
                .stage(MAILBOX, id, payload.to_vec())
                .await
                .map_err(|e| format!("cannot save it locally: {e}"))?;
            self.saved.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
            let now = Instant::now();
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            self.latencies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(now - *last);
            *last = now;
            Ok(())
        })
    }
}

pub struct Process {
    inbox: IncomingBox,
    consumer: Arc<SaveLocally>,
    count: u64,
}

impl Process {
    pub(crate) async fn prepare(params: &Params, ctx: &Context) -> Result<Self, WorkloadError> {
        let manager = manager(ctx, "client.db", params.concurrency)?;
        let consumer = Arc::new(SaveLocally {
            manager: manager.clone(),
            saved: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            last: Mutex::new(Instant::now()),
            latencies: Mutex::new(Latencies::new()),
        });
        let mut inbox = IncomingBox::new(manager, IncomingConfig::default());
        inbox.add_consumer(consumer.clone());
        // A box shared with earlier scenarios (a `--target` server keeps what
        // incoming.deliver left) is emptied first, unmeasured, so that a round processes
        // and counts only its own mails.
        for _ in 0..MAX_DRAIN_PASSES {
            let report = inbox.run_once().await?;
            if report.processed.is_empty() && report.failed.is_empty() {
                break;
            }
        }
        consumer.saved.store(0, Ordering::Relaxed);
        consumer.bytes.store(0, Ordering::Relaxed);
        *consumer.latencies.lock().unwrap_or_else(|e| e.into_inner()) = Latencies::new();
        Mx::new(ctx)?
            .deliver_all(mails(params, ctx), FIXTURE_CONCURRENCY)
            .await?;
        Ok(Self {
            inbox,
            consumer,
            count: params.count as u64,
        })
    }

    pub(crate) async fn run(self) -> Result<Work, WorkloadError> {
        *self.consumer.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let mut processed = 0u64;
        while processed < self.count {
            let report = self.inbox.run_once().await?;
            if let Some((id, why)) = report.failed.first() {
                return Err(WorkloadError::Transfers {
                    failed: report.failed.len(),
                    total: self.count as usize,
                    first: format!("{id}: {why}"),
                });
            }
            if report.processed.is_empty() {
                return Err(WorkloadError::Invalid(format!(
                    "the incoming box found nothing more to process after {processed} of {} mails ({} skipped)",
                    self.count,
                    report.skipped.len()
                )));
            }
            processed += report.processed.len() as u64;
        }
        let saved = self.consumer.saved.load(Ordering::Relaxed);
        if processed != self.count || saved != self.count {
            return Err(WorkloadError::Invalid(format!(
                "{} mails were delivered, but the incoming box processed {processed} and the consumer saved {saved}",
                self.count
            )));
        }
        let latencies = std::mem::take(&mut *self.consumer.latencies.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(Work {
            bytes: self.consumer.bytes.load(Ordering::Relaxed),
            ops: saved,
            errors: 0,
            latencies: Some(latencies),
            leftovers: Leftovers::new((self.inbox, self.consumer)),
        })
    }
}
