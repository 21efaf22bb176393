//! The BlobManager: local store first, server second.
//!
//! Writes go to the local store and are uploaded by a transfer; reads come from the local
//! store or are downloaded by a transfer. Transfers run under the [`Scheduler`] (N at once,
//! by priority with aging), retry by the [`RetryPolicy`], and share the global bandwidth
//! limits. How a sync decides what to move is in `sync.rs`; the transfers themselves are in
//! `upload.rs` and `download.rs`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blobs_crypto::BlobSecret;
use blobs_crypto::open::SchemePolicy;
use tokio::sync::broadcast;

use crate::events::{Direction, Event};
use crate::remote::{Flag, Remote};
use crate::retry::RetryPolicy;
use crate::scheduler::{Permit, Scheduler, Ticket};
use crate::store::{BlobState, ContentInfo, LocalStore, Priority, StoreError, SyncStatus, now_ms};
use crate::throttle::Throttle;
use crate::{ClientError, check_name};

/// The format new blobs are uploaded in. Both are always read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlobFormat {
    /// Soledad's format, for servers and clients that only know it.
    V1,
    /// Chunked, padded, resumable (`blobs/crypto/FORMAT.md`).
    #[default]
    V2,
}

/// How the manager behaves; the defaults suit a desktop client.
#[derive(Debug, Clone)]
pub struct Config {
    /// Transfers at once (plus one slot for urgent on-demand gets).
    pub concurrency: usize,
    pub retry: RetryPolicy,
    /// Downloads that fail verification this often make the blob unusable.
    pub max_verify_failures: u32,
    /// A waiting transfer gains one priority level per this much waiting.
    pub aging: Duration,
    pub format: BlobFormat,
    /// Namespaces whose blobs may be encrypted by a third party (the incoming box).
    pub external_namespaces: Vec<String>,
    /// Global upload and download limits, bytes per second.
    pub limit_up: Option<u64>,
    pub limit_down: Option<u64>,
    /// A download persists its progress after this many bytes (and when interrupted).
    pub checkpoint_every: u64,
    /// Progress events come at most once per this many bytes of a transfer.
    pub progress_every: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            concurrency: 3,
            retry: RetryPolicy::default(),
            max_verify_failures: 3,
            aging: Duration::from_secs(10),
            format: BlobFormat::V2,
            external_namespaces: vec!["MX".to_owned()],
            limit_up: None,
            limit_down: None,
            checkpoint_every: 1 << 20,
            progress_every: 256 << 10,
        }
    }
}

/// What a sync pass did. A failing blob does not stop the others; it is listed here.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Blobs uploaded or downloaded (or found already on the server after a crash).
    pub transferred: usize,
    /// Plaintext bytes moved.
    pub bytes: u64,
    /// How long each successful transfer took, in completion order.
    pub transfer_times: Vec<Duration>,
    pub failed: Vec<(String, ClientError)>,
    /// Blobs deleted on the server on behalf of this device.
    pub deleted: usize,
    /// Blobs removed here because they were deleted on the server.
    pub removed: usize,
}

/// Options of a put.
#[derive(Debug, Clone, Copy, Default)]
pub struct PutOptions {
    pub priority: Priority,
    /// Keep on this device only: never uploaded.
    pub local_only: bool,
    /// Replace an existing blob (a draft) instead of refusing: locally and, when uploaded,
    /// atomically on the server.
    pub replace: bool,
    /// Upload now and wait for it (`put`), or leave it for the next sync (`stage`).
    pub upload: bool,
}

/// Encrypts, stores and syncs one user's blobs.
#[derive(Clone)]
pub struct BlobManager {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Arc<dyn LocalStore>,
    pub remote: Remote,
    pub secret: BlobSecret,
    pub config: Config,
    pub scheduler: Arc<Scheduler>,
    pub up: Throttle,
    pub down: Throttle,
    pub events: broadcast::Sender<Event>,
    /// One transfer (or delete) per blob at a time.
    locks: BlobLocks,
}

type BlobLocks = Mutex<HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>>;

/// Holds a blob's lock; frees its map entry when nobody else wants it.
pub(crate) struct BlobGuard {
    inner: Arc<Inner>,
    key: (String, String),
    lock: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for BlobGuard {
    fn drop(&mut self) {
        self.lock = None;
        let mut locks = self.inner.locks.lock().unwrap_or_else(|e| e.into_inner());
        if locks.get(&self.key).is_some_and(|l| Arc::strong_count(l) == 1) {
            locks.remove(&self.key);
        }
    }
}

const EVENT_BUFFER: usize = 4096;

impl BlobManager {
    /// A manager with the default [`Config`] but `concurrency` transfers at once.
    pub fn new(store: Arc<dyn LocalStore>, remote: Remote, secret: BlobSecret, concurrency: usize) -> Self {
        Self::with_config(
            store,
            remote,
            secret,
            Config {
                concurrency,
                ..Config::default()
            },
        )
    }

    pub fn with_config(store: Arc<dyn LocalStore>, remote: Remote, secret: BlobSecret, config: Config) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Self {
            inner: Arc::new(Inner {
                scheduler: Scheduler::new(config.concurrency, config.aging),
                up: Throttle::new(config.limit_up),
                down: Throttle::new(config.limit_down),
                store,
                remote,
                secret,
                config,
                events,
                locks: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn store(&self) -> &Arc<dyn LocalStore> {
        &self.inner.store
    }

    pub fn remote(&self) -> &Remote {
        &self.inner.remote
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Changes the global bandwidth limits (bytes per second, `None` for none); transfers
    /// in flight follow at once.
    pub fn set_limits(&self, up: Option<u64>, down: Option<u64>) {
        self.inner.up.set_rate(up);
        self.inner.down.set_rate(down);
    }

    pub fn limits(&self) -> (Option<u64>, Option<u64>) {
        (self.inner.up.rate(), self.inner.down.rate())
    }

    /// Changes how many transfers run at once.
    pub fn set_concurrency(&self, n: usize) {
        self.inner.scheduler.set_limit(n);
    }

    pub(crate) fn emit(&self, event: Event) {
        // No subscriber is fine.
        let _ = self.inner.events.send(event);
    }

    /// Runs blocking store work off the event loop.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn LocalStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ClientError> {
        let store = self.inner.store.clone();
        Ok(tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .expect("store work does not panic")?)
    }

    pub(crate) async fn lock_blob(&self, namespace: &str, id: &str) -> BlobGuard {
        let key = (namespace.to_owned(), id.to_owned());
        let lock = {
            let mut locks = self.inner.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(key.clone()).or_default().clone()
        };
        BlobGuard {
            inner: self.inner.clone(),
            key,
            lock: Some(lock.lock_owned().await),
        }
    }

    pub(crate) fn policy(&self, namespace: &str) -> SchemePolicy {
        if self.inner.config.external_namespaces.iter().any(|n| n == namespace) {
            SchemePolicy::AllowExternal
        } else {
            SchemePolicy::SymkeyOnly
        }
    }

    /// The `Instant` a transfer queued at `queued_at_ms` started waiting.
    pub(crate) fn since(queued_at_ms: u64) -> Instant {
        let waited = Duration::from_millis(now_ms().saturating_sub(queued_at_ms));
        Instant::now().checked_sub(waited).unwrap_or_else(Instant::now)
    }

    /// What a transfer attempt starts with: its slot first (the ticket's, or one by the
    /// blob's queued priority and waiting time), then the blob's lock, then the blob's state
    /// and content as they are under that lock. In this order because a transfer waiting for
    /// its turn must not hold the blob, or an urgent get of the same blob would wait behind
    /// the whole queue.
    pub(crate) async fn slot_then_blob(
        &self,
        namespace: &str,
        id: &str,
        ticket: Option<Ticket>,
    ) -> Result<(Permit, BlobGuard, Option<BlobState>, Option<ContentInfo>), ClientError> {
        let permit = match ticket {
            Some(t) => t.wait().await,
            None => {
                let (ns, owned) = (namespace.to_owned(), id.to_owned());
                let queued = self.blocking(move |store| store.state(&ns, &owned)).await?;
                let (priority, at) = queued.map_or((Default::default(), 0), |s| (s.priority, s.queued_at_ms));
                self.inner.scheduler.acquire(priority, Self::since(at)).await
            }
        };
        let guard = self.lock_blob(namespace, id).await;
        let (ns, owned) = (namespace.to_owned(), id.to_owned());
        let (state, content) = self
            .blocking(move |store| Ok((store.state(&ns, &owned)?, store.content(&ns, &owned)?)))
            .await?;
        Ok((permit, guard, state, content))
    }

    // ----- writing -----

    /// Stores a blob locally as pending upload, without contacting the server.
    pub async fn stage(&self, namespace: &str, id: &str, data: Vec<u8>) -> Result<(), ClientError> {
        let len = data.len() as u64;
        self.put_reader(namespace, id, std::io::Cursor::new(data), len, PutOptions::default())
            .await
            .map(|_| ())
    }

    /// Stores a blob locally and uploads it (at medium priority).
    pub async fn put(&self, namespace: &str, id: &str, data: Vec<u8>) -> Result<(), ClientError> {
        let len = data.len() as u64;
        let opts = PutOptions {
            upload: true,
            ..PutOptions::default()
        };
        self.put_reader(namespace, id, std::io::Cursor::new(data), len, opts)
            .await
            .map(|_| ())
    }

    /// Replaces a draft: the local copy at once, the server's copy atomically when uploaded
    /// (only if the server still has the version this device last saw).
    pub async fn replace(&self, namespace: &str, id: &str, data: Vec<u8>) -> Result<(), ClientError> {
        let len = data.len() as u64;
        let opts = PutOptions {
            upload: true,
            replace: true,
            ..PutOptions::default()
        };
        self.put_reader(namespace, id, std::io::Cursor::new(data), len, opts)
            .await
            .map(|_| ())
    }

    /// Stores a blob of `len` bytes read from `source` (in bounded memory) and, as `opts`
    /// says, uploads it. The local write is atomic: a crash leaves no trace of it.
    pub async fn put_reader(
        &self,
        namespace: &str,
        id: &str,
        source: impl Read + Send + 'static,
        len: u64,
        opts: PutOptions,
    ) -> Result<u64, ClientError> {
        check_name("namespace", namespace)?;
        check_name("blob id", id)?;
        let _guard = self.lock_blob(namespace, id).await;
        let status = if opts.local_only {
            SyncStatus::LocalOnly
        } else {
            SyncStatus::PendingUpload
        };
        let (ns, owned) = (namespace.to_owned(), id.to_owned());
        let written = self
            .blocking(move |store| {
                let old = store.state(&ns, &owned)?;
                let has_content = store.content(&ns, &owned)?.is_some();
                if !opts.replace
                    && (has_content || old.as_ref().is_some_and(|s| s.status == SyncStatus::PendingDownload))
                {
                    return Err(StoreError::Exists {
                        namespace: ns,
                        id: owned,
                    });
                }
                let mut state = BlobState::new(&ns, &owned, status, opts.priority);
                if let Some(old) = &old {
                    // A replaced draft keeps what the server had, for If-Match.
                    state.remote_etag = old.remote_etag.clone();
                }
                state.replace = opts.replace;
                let mut writer = store.new_content(&ns, &owned)?;
                let mut source = source;
                let mut buf = vec![0u8; 256 * 1024];
                let mut total = 0u64;
                loop {
                    let n = match source.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            writer.discard()?;
                            return Err(StoreError::Io {
                                path: format!("input of blob {ns}/{owned}"),
                                source: e,
                            });
                        }
                    };
                    writer.write(&buf[..n])?;
                    total += n as u64;
                }
                if total != len {
                    writer.discard()?;
                    return Err(StoreError::Io {
                        path: format!("input of blob {ns}/{owned}"),
                        source: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("expected {len} bytes, got {total}"),
                        ),
                    });
                }
                writer.commit(&state)?;
                Ok(total)
            })
            .await?;
        drop(_guard);
        if opts.upload && !opts.local_only {
            self.upload(namespace, id).await?;
        }
        Ok(written)
    }

    /// Stores a file's contents as a blob (see [`BlobManager::put_reader`]).
    pub async fn put_file(
        &self,
        namespace: &str,
        id: &str,
        path: &std::path::Path,
        opts: PutOptions,
    ) -> Result<u64, ClientError> {
        let input = |source| ClientError::Input {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(input)?;
        let len = file.metadata().map_err(input)?.len();
        self.put_reader(namespace, id, file, len, opts).await
    }

    /// Changes the priority of a blob's pending transfer.
    pub async fn set_priority(&self, namespace: &str, id: &str, priority: Priority) -> Result<(), ClientError> {
        let (ns, owned) = (namespace.to_owned(), id.to_owned());
        self.blocking(move |store| {
            let mut s = store.state(&ns, &owned)?.ok_or(StoreError::Missing {
                namespace: ns.clone(),
                id: owned.clone(),
            })?;
            s.priority = priority;
            store.put_state(&s)
        })
        .await
    }

    // ----- reading -----

    /// A blob's plaintext, from the local store or else downloaded at high priority.
    pub async fn get(&self, namespace: &str, id: &str) -> Result<Vec<u8>, ClientError> {
        self.get_with(namespace, id, Priority::High).await
    }

    /// As [`BlobManager::get`] at `priority`; [`Priority::Urgent`] overtakes all queued work.
    pub async fn get_with(&self, namespace: &str, id: &str, priority: Priority) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::new();
        self.ensure_local(namespace, id, priority).await?;
        let (ns, owned) = (namespace.to_owned(), id.to_owned());
        let data = self
            .blocking(move |store| crate::store::read_all(store, &ns, &owned))
            .await?;
        match data {
            Some(d) => out.extend(d),
            None => return Err(ClientError::NotLocal(id.to_owned())),
        }
        Ok(out)
    }

    /// Streams a blob's plaintext into `sink` (in bounded memory), downloading it first if
    /// needed; returns the bytes written.
    pub async fn get_to<W: Write + Send + 'static>(
        &self,
        namespace: &str,
        id: &str,
        sink: W,
        priority: Priority,
    ) -> Result<(u64, W), ClientError> {
        self.ensure_local(namespace, id, priority).await?;
        let (ns, owned) = (namespace.to_owned(), id.to_owned());
        let result = tokio::task::spawn_blocking({
            let store = self.inner.store.clone();
            move || -> Result<(u64, W), ClientError> {
                let mut sink = sink;
                let mut reader = store
                    .open_content(&ns, &owned)?
                    .ok_or_else(|| ClientError::NotLocal(owned.clone()))?;
                let mut n = 0u64;
                while let Some(chunk) = reader.next_chunk()? {
                    sink.write_all(&chunk).map_err(|source| ClientError::Input {
                        path: "output".into(),
                        source,
                    })?;
                    n += chunk.len() as u64;
                }
                sink.flush().map_err(|source| ClientError::Input {
                    path: "output".into(),
                    source,
                })?;
                Ok((n, sink))
            }
        })
        .await
        .expect("reading does not panic")?;
        Ok(result)
    }

    /// Makes sure the blob's content is in the local store.
    async fn ensure_local(&self, namespace: &str, id: &str, priority: Priority) -> Result<(), ClientError> {
        check_name("namespace", namespace)?;
        check_name("blob id", id)?;
        let (ns, owned) = (namespace.to_owned(), id.to_owned());
        let (content, state) = self
            .blocking(move |store| Ok((store.content(&ns, &owned)?, store.state(&ns, &owned)?)))
            .await?;
        if content.is_some() {
            return Ok(());
        }
        match &state {
            Some(s)
                if s.status == SyncStatus::FailedDownload && s.failure == Some(crate::FailureKind::Verification) =>
            {
                return Err(ClientError::Unusable(id.to_owned()));
            }
            Some(s) if s.status == SyncStatus::PendingDelete => return Err(ClientError::NotFound(id.to_owned())),
            _ => {}
        }
        // Queue (or re-prioritise) the download, then run it now.
        let (ns, owned) = (namespace.to_owned(), id.to_owned());
        self.blocking(move |store| {
            let s = match store.state(&ns, &owned)? {
                Some(s) if s.status == SyncStatus::PendingDownload => BlobState {
                    priority: s.priority.max(priority),
                    ..s
                },
                Some(s) => BlobState {
                    priority: priority.max(s.priority),
                    ..s.requeued(SyncStatus::PendingDownload)
                },
                None => BlobState::new(&ns, &owned, SyncStatus::PendingDownload, priority),
            };
            store.put_state(&s)
        })
        .await?;
        self.download(namespace, id).await.map(|_| ())
    }

    /// The blob's sync state.
    pub async fn state(&self, namespace: &str, id: &str) -> Result<Option<BlobState>, ClientError> {
        let (ns, owned) = (namespace.to_owned(), id.to_owned());
        self.blocking(move |store| store.state(&ns, &owned)).await
    }

    /// States of the blobs in `namespace` (all if `None`), optionally of one status.
    pub async fn states(
        &self,
        namespace: Option<&str>,
        status: Option<SyncStatus>,
    ) -> Result<Vec<BlobState>, ClientError> {
        let ns = namespace.map(str::to_owned);
        self.blocking(move |store| store.states(ns.as_deref(), status)).await
    }

    /// Ids in `namespace` whose content is on this device.
    pub async fn local_list(&self, namespace: &str) -> Result<Vec<String>, ClientError> {
        let ns = namespace.to_owned();
        self.blocking(move |store| {
            let mut ids = Vec::new();
            for s in store.states(Some(&ns), None)? {
                if store.content(&ns, &s.id)?.is_some() {
                    ids.push(s.id);
                }
            }
            ids.sort();
            Ok(ids)
        })
        .await
    }

    // ----- the server side -----

    /// Ids on the server in `namespace`.
    pub async fn remote_list(&self, namespace: &str) -> Result<Vec<String>, ClientError> {
        self.inner.remote.list(namespace).await
    }

    pub async fn flags(&self, namespace: &str, id: &str) -> Result<Vec<Flag>, ClientError> {
        self.inner.remote.flags(namespace, id).await
    }

    pub async fn set_flags(
        &self,
        namespace: &str,
        id: &str,
        flags: &[Flag],
        expect: Option<&[Flag]>,
    ) -> Result<(), ClientError> {
        self.inner.remote.set_flags(namespace, id, flags, expect).await
    }

    /// Deletes a blob here and on the server. The local copy goes at once; if the server
    /// cannot be reached the blob stays PENDING_DELETE and the next sync deletes it there.
    pub async fn delete(&self, namespace: &str, id: &str) -> Result<(), ClientError> {
        check_name("namespace", namespace)?;
        check_name("blob id", id)?;
        let _guard = self.lock_blob(namespace, id).await;
        let (ns, owned) = (namespace.to_owned(), id.to_owned());
        let local_only = self
            .blocking(move |store| {
                let old = store.state(&ns, &owned)?;
                if old.as_ref().is_some_and(|s| s.status == SyncStatus::LocalOnly) {
                    store.remove_content(&ns, &owned, None)?;
                    return Ok(true);
                }
                let priority = old.map(|s| s.priority).unwrap_or_default();
                let pending = BlobState::new(&ns, &owned, SyncStatus::PendingDelete, priority);
                store.remove_content(&ns, &owned, Some(&pending))?;
                Ok(false)
            })
            .await?;
        if local_only {
            return Ok(());
        }
        self.delete_remote(namespace, id).await
    }

    /// One attempt to delete a PENDING_DELETE blob on the server.
    pub(crate) async fn delete_remote(&self, namespace: &str, id: &str) -> Result<(), ClientError> {
        match self.inner.remote.delete(namespace, id).await {
            Ok(()) | Err(ClientError::NotFound(_)) => {
                let (ns, owned) = (namespace.to_owned(), id.to_owned());
                self.blocking(move |store| {
                    // Only if nothing new was written meanwhile.
                    match store.state(&ns, &owned)? {
                        Some(s) if s.status == SyncStatus::PendingDelete => store.remove_content(&ns, &owned, None),
                        _ => Ok(()),
                    }
                })
                .await
            }
            Err(e) => {
                let (ns, owned, msg) = (namespace.to_owned(), id.to_owned(), e.to_string());
                self.blocking(move |store| {
                    if let Some(mut s) = store.state(&ns, &owned)?
                        && s.status == SyncStatus::PendingDelete
                    {
                        s.attempts += 1;
                        s.last_error = Some(msg);
                        store.put_state(&s)?;
                    }
                    Ok(())
                })
                .await?;
                Err(e)
            }
        }
    }

    /// After a failed attempt that no answer of the server settled: a retryable error with
    /// attempts left is told to the application and recorded, and the pause before the next
    /// attempt is waited out with the blob released (`true`: try again). Otherwise the blob
    /// goes to `failed`, marked as a transport failure (the next sync tries again) or a
    /// refusal (`false`: the caller returns the error).
    pub(crate) async fn retry_or_give_up(
        &self,
        (namespace, id): (&str, &str),
        (direction, failed): (Direction, SyncStatus),
        attempt: u32,
        error: &ClientError,
        guard: BlobGuard,
    ) -> Result<bool, ClientError> {
        let retryable = error.class() == crate::ErrorClass::Retry;
        if !(retryable && self.inner.config.retry.should_retry(attempt)) {
            let kind = if retryable {
                crate::FailureKind::Transport
            } else {
                crate::FailureKind::Refused
            };
            self.fail(namespace, id, direction, (failed, kind), error, attempt)
                .await?;
            return Ok(false);
        }
        let delay = self.inner.config.retry.delay(attempt, error.retry_after());
        self.emit(Event::TransferFailed {
            namespace: namespace.to_owned(),
            id: id.to_owned(),
            direction,
            attempt,
            error: error.to_string(),
            retry_in: Some(delay),
        });
        let (ns, owned, msg) = (namespace.to_owned(), id.to_owned(), error.to_string());
        self.blocking(move |store| {
            if let Some(mut s) = store.state(&ns, &owned)? {
                s.attempts = attempt;
                s.last_error = Some(msg);
                store.put_state(&s)?;
            }
            Ok(())
        })
        .await?;
        drop(guard);
        tokio::time::sleep(delay).await;
        Ok(true)
    }

    /// Emits a failure and records it in the blob's state.
    pub(crate) async fn fail(
        &self,
        namespace: &str,
        id: &str,
        direction: Direction,
        (status, kind): (SyncStatus, crate::FailureKind),
        error: &ClientError,
        attempts: u32,
    ) -> Result<(), ClientError> {
        self.emit(Event::TransferFailed {
            namespace: namespace.to_owned(),
            id: id.to_owned(),
            direction,
            attempt: attempts,
            error: error.to_string(),
            retry_in: None,
        });
        let (ns, owned, msg) = (namespace.to_owned(), id.to_owned(), error.to_string());
        self.blocking(move |store| {
            if let Some(mut s) = store.state(&ns, &owned)? {
                s.status = status;
                s.failure = Some(kind);
                s.last_error = Some(msg);
                s.attempts = attempts;
                store.put_state(&s)?;
            }
            Ok(())
        })
        .await
    }
}

impl BlobManager {
    /// Removes a blob's local copy and state without touching the server.
    pub async fn forget_local(&self, namespace: &str, id: &str) -> Result<(), ClientError> {
        check_name("namespace", namespace)?;
        check_name("blob id", id)?;
        let _guard = self.lock_blob(namespace, id).await;
        let (ns, owned) = (namespace.to_owned(), id.to_owned());
        self.blocking(move |store| store.remove_content(&ns, &owned, None))
            .await
    }
}
