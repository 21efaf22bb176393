//! The incoming box: messages a trusted service (the MX) delivered into the user's `MX`
//! namespace, flagged PENDING, waiting for this user's clients to process them.
//!
//! Each round takes items oldest first and, for each:
//! 1. reserves it atomically: flags PENDING → PROCESSING with compare-and-set, so of two
//!    devices only one gets it (upstream overwrote the flags, so both could);
//! 2. downloads it (external scheme allowed only in this namespace);
//! 3. hands it to every consumer; each returns only once it saved what it keeps;
//! 4. marks it PROCESSED (only now: upstream marked it before saving) and deletes it;
//!    or, if a consumer failed, marks it FAILED, to be tried again after a backoff until
//!    the attempt limit.
//!
//! A device that crashes while an item is PROCESSING leaves it reserved; the server reads a
//! PROCESSING flag older than its processing timeout as PENDING again, so another round
//! (here or elsewhere) takes it over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::remote::{Flag, ListOptions, Order};
use crate::retry::RetryPolicy;
use crate::{BlobManager, ClientError};

/// Something the application does with each delivered item.
pub trait Consumer: Send + Sync + 'static {
    /// Processes one item and saves the result durably; `Ok` only once it is saved.
    fn consume<'a>(&'a self, id: &'a str, payload: &'a [u8]) -> BoxFuture<'a, Result<(), String>>;
}

#[derive(Debug, Clone)]
pub struct IncomingConfig {
    pub namespace: String,
    /// Items taken per round.
    pub batch: usize,
    /// Backoff between failed attempts of one item, and their limit.
    pub retry: RetryPolicy,
    /// Delete items once processed (as upstream did); otherwise they stay, flagged PROCESSED.
    pub delete_processed: bool,
}

impl Default for IncomingConfig {
    fn default() -> Self {
        Self {
            namespace: "MX".to_owned(),
            batch: 100,
            retry: RetryPolicy {
                max_attempts: 5,
                base: Duration::from_secs(30),
                cap: Duration::from_secs(3600),
            },
            delete_processed: true,
        }
    }
}

/// What a round did.
#[derive(Debug, Default)]
pub struct IncomingReport {
    /// Items processed and marked PROCESSED, in the order they were taken.
    pub processed: Vec<String>,
    /// Items another device reserved first.
    pub skipped: Vec<String>,
    /// Items whose consumers failed: marked FAILED (retried later unless `gave_up`).
    pub failed: Vec<(String, String)>,
    /// Items that failed their last allowed attempt.
    pub gave_up: Vec<String>,
}

/// Failed attempts of one item, kept in memory: a restart gives every FAILED item a fresh
/// budget, which bounds retries per process lifetime.
#[derive(Debug, Clone, Copy)]
struct Attempts {
    failures: u32,
    next: Instant,
}

pub struct IncomingBox {
    manager: BlobManager,
    config: IncomingConfig,
    consumers: Vec<Arc<dyn Consumer>>,
    attempts: Mutex<HashMap<String, Attempts>>,
}

impl IncomingBox {
    pub fn new(manager: BlobManager, config: IncomingConfig) -> Self {
        Self {
            manager,
            config,
            consumers: Vec::new(),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    pub fn add_consumer(&mut self, consumer: Arc<dyn Consumer>) {
        self.consumers.push(consumer);
    }

    fn attempts(&self) -> std::sync::MutexGuard<'_, HashMap<String, Attempts>> {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One round: every PENDING item (oldest first), then the FAILED items whose backoff has
    /// passed. With no consumer there is nothing to do.
    pub async fn run_once(&self) -> Result<IncomingReport, ClientError> {
        let mut report = IncomingReport::default();
        if self.consumers.is_empty() {
            return Ok(report);
        }
        let remote = self.manager.remote();
        let ns = &self.config.namespace;
        let listing = |flag| ListOptions {
            order: Order::OldestFirst,
            filter_flag: Some(flag),
            page: Some(self.config.batch.clamp(1, 1000)),
            max: Some(self.config.batch),
            ..ListOptions::default()
        };
        let pending = remote.list_with(ns, &listing(Flag::Pending)).await?;
        for id in pending {
            self.take(&id, Flag::Pending, &mut report).await?;
        }
        let now = Instant::now();
        let failed = remote.list_with(ns, &listing(Flag::Failed)).await?;
        for id in failed {
            let due = match self.attempts().get(&id) {
                None => true,
                Some(a) => a.failures < self.config.retry.max_attempts && a.next <= now,
            };
            if due {
                self.take(&id, Flag::Failed, &mut report).await?;
            }
        }
        Ok(report)
    }

    /// Runs rounds every `interval` until `stop` resolves.
    pub async fn run(&self, interval: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "incoming box round failed");
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Reserves, fetches, consumes and settles one item.
    async fn take(&self, id: &str, from: Flag, report: &mut IncomingReport) -> Result<(), ClientError> {
        let ns = &self.config.namespace;
        let remote = self.manager.remote();
        match remote.set_flags(ns, id, &[Flag::Processing], Some(&[from])).await {
            Ok(()) => {}
            Err(ClientError::FlagsConflict { .. } | ClientError::NotFound(_)) => {
                report.skipped.push(id.to_owned());
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        let outcome = match self.manager.get(ns, id).await {
            Ok(payload) => self.consume(id, &payload).await,
            Err(e) => Err(format!("cannot fetch it: {e}")),
        };
        match outcome {
            Ok(()) => {
                // Every consumer saved it: now, and only now, it is processed.
                match remote
                    .set_flags(ns, id, &[Flag::Processed], Some(&[Flag::Processing]))
                    .await
                {
                    Ok(()) => {}
                    Err(ClientError::FlagsConflict { .. }) => {
                        // Our reservation expired and another device took the item over;
                        // consumers must tolerate seeing it twice.
                        tracing::warn!(id, "incoming item was taken over while being processed");
                    }
                    Err(e) => return Err(e),
                }
                self.attempts().remove(id);
                if self.config.delete_processed {
                    self.manager.delete(ns, id).await?;
                } else {
                    // Keep no local copy of a processed item.
                    self.manager.forget_local(ns, id).await?;
                }
                report.processed.push(id.to_owned());
            }
            Err(why) => {
                let failures = {
                    let mut attempts = self.attempts();
                    let a = attempts.entry(id.to_owned()).or_insert(Attempts {
                        failures: 0,
                        next: Instant::now(),
                    });
                    a.failures += 1;
                    a.next = Instant::now() + self.config.retry.pause(a.failures);
                    a.failures
                };
                match remote
                    .set_flags(ns, id, &[Flag::Failed], Some(&[Flag::Processing]))
                    .await
                {
                    Ok(()) | Err(ClientError::FlagsConflict { .. }) => {}
                    Err(e) => return Err(e),
                }
                if !self.config.retry.should_retry(failures) {
                    report.gave_up.push(id.to_owned());
                }
                report.failed.push((id.to_owned(), why));
            }
        }
        Ok(())
    }

    async fn consume(&self, id: &str, payload: &[u8]) -> Result<(), String> {
        for c in &self.consumers {
            c.consume(id, payload).await?;
        }
        Ok(())
    }
}
