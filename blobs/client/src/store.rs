//! What the BlobManager needs from a local store, whichever store it is (SQLCipher, encrypted
//! files). Calls block; the manager runs them on tokio's blocking pool so that the event
//! loop stays responsive.
//!
//! Every blob is keyed by (namespace, blob id). A store keeps, per blob, its [`BlobState`]
//! and optionally its plaintext content, and at most one resumable download in progress.
//!
//! Content is never written in place. A writer fills a stage that nothing refers to; its
//! `commit` makes the content and the new state visible together, in one atomic step, so a
//! crash leaves either the old blob or the new one, never a half-written or zero-filled one.
//! Stages that were never committed are removed when the store is opened again; download
//! stages survive up to their last `checkpoint`, which is how a download resumes after a
//! restart.

use serde::{Deserialize, Serialize};

/// Where a blob stands with respect to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncStatus {
    /// The server holds this content.
    Synced = 1,
    /// Local content waits to be uploaded.
    PendingUpload = 2,
    /// The server has a blob this device lacks.
    PendingDownload = 3,
    /// Uploading failed for good (attempts exhausted, or the server holds another blob
    /// under this id); the next sync tries again.
    FailedUpload = 4,
    /// Downloading failed. After repeated verification failures the blob is unusable: the
    /// next sync leaves it alone unless the server's copy changes.
    FailedDownload = 5,
    /// Deleted locally; the server's copy is still to be deleted.
    PendingDelete = 6,
    /// Kept on this device only; never uploaded.
    LocalOnly = 7,
    /// The server refused the upload for lack of quota.
    QuotaExceeded = 8,
}

impl SyncStatus {
    pub const ALL: [SyncStatus; 8] = [
        SyncStatus::Synced,
        SyncStatus::PendingUpload,
        SyncStatus::PendingDownload,
        SyncStatus::FailedUpload,
        SyncStatus::FailedDownload,
        SyncStatus::PendingDelete,
        SyncStatus::LocalOnly,
        SyncStatus::QuotaExceeded,
    ];

    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as i64 == code)
    }

    /// The upper-case name, as Soledad spells it.
    pub fn name(self) -> &'static str {
        match self {
            SyncStatus::Synced => "SYNCED",
            SyncStatus::PendingUpload => "PENDING_UPLOAD",
            SyncStatus::PendingDownload => "PENDING_DOWNLOAD",
            SyncStatus::FailedUpload => "FAILED_UPLOAD",
            SyncStatus::FailedDownload => "FAILED_DOWNLOAD",
            SyncStatus::PendingDelete => "PENDING_DELETE",
            SyncStatus::LocalOnly => "LOCAL_ONLY",
            SyncStatus::QuotaExceeded => "QUOTA_EXCEEDED",
        }
    }

    /// Parses a name in any case, with `-` or `_`.
    pub fn parse(text: &str) -> Option<Self> {
        let norm = text.trim().to_ascii_uppercase().replace('-', "_");
        Self::ALL.into_iter().find(|s| s.name() == norm)
    }
}

impl std::fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Transfer priority. Higher runs first; waiting raises a transfer's priority over time
/// (see [`crate::scheduler`]), so low priority work is never starved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low = 1,
    #[default]
    Medium = 2,
    High = 3,
    /// On-demand work the application is waiting for (key material, message headers).
    Urgent = 4,
}

impl Priority {
    pub fn from_code(code: i64) -> Option<Self> {
        [Priority::Low, Priority::Medium, Priority::High, Priority::Urgent]
            .into_iter()
            .find(|p| *p as i64 == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    /// `low`, `medium`, `high`, `urgent` (any case) or `1`..`4`, as Soledad accepted.
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim().to_ascii_lowercase();
        [Priority::Low, Priority::Medium, Priority::High, Priority::Urgent]
            .into_iter()
            .find(|p| p.name() == t || (*p as i64).to_string() == t)
    }
}

/// Why a blob is in a failed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// Connection errors, timeouts, 5xx: the attempt limit was reached.
    Transport,
    /// The downloaded blob did not verify (bad tag, wrong id or scheme).
    Verification,
    /// The server holds a different blob under this id, or a draft changed there.
    Conflict,
    /// The server refused the request (4xx other than the handled ones).
    Refused,
}

impl FailureKind {
    const ALL: [FailureKind; 4] = [
        FailureKind::Transport,
        FailureKind::Verification,
        FailureKind::Conflict,
        FailureKind::Refused,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Transport => "transport",
            FailureKind::Verification => "verification",
            FailureKind::Conflict => "conflict",
            FailureKind::Refused => "refused",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == text)
    }
}

/// The sync state of one blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobState {
    pub namespace: String,
    pub id: String,
    pub status: SyncStatus,
    pub priority: Priority,
    /// Failed attempts of the current transfer; reset when it succeeds or the content
    /// changes.
    pub attempts: u32,
    /// Downloads that failed verification since the server's copy last changed.
    pub verify_failures: u32,
    pub failure: Option<FailureKind>,
    /// The last error, for people.
    pub last_error: Option<String>,
    /// When the blob started waiting for its transfer (milliseconds since the epoch): the
    /// base of priority aging.
    pub queued_at_ms: u64,
    /// The server's version (ETag) this state refers to: the copy downloaded or found to
    /// fail verification.
    pub remote_etag: Option<String>,
    /// Uploads replace the server's copy (drafts) instead of creating it.
    pub replace: bool,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl BlobState {
    pub fn new(namespace: &str, id: &str, status: SyncStatus, priority: Priority) -> Self {
        Self {
            namespace: namespace.to_owned(),
            id: id.to_owned(),
            status,
            priority,
            attempts: 0,
            verify_failures: 0,
            failure: None,
            last_error: None,
            queued_at_ms: now_ms(),
            remote_etag: None,
            replace: false,
        }
    }

    /// The same blob in another status, with a clean slate of attempts.
    pub fn requeued(&self, status: SyncStatus) -> Self {
        Self {
            status,
            attempts: 0,
            failure: None,
            last_error: None,
            queued_at_ms: now_ms(),
            ..self.clone()
        }
    }
}

/// What a store knows about a blob's committed content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentInfo {
    pub size: u64,
    /// SHA-256 of the plaintext, when it was computed while writing (a download resumed
    /// after a restart does not know it; [`crate::manager`] computes it when needed).
    pub sha256: Option<[u8; 32]>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open local store {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("blob {namespace}/{id} already exists in the local store")]
    Exists { namespace: String, id: String },
    #[error("blob {namespace}/{id} is not in the local store")]
    Missing { namespace: String, id: String },
    #[error("local store failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("local store file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("local store file {path} is damaged or was encrypted with another key: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("local store holds an unknown {what} {value}")]
    BadValue { what: &'static str, value: String },
    #[error("blob {namespace}/{id} changed while it was being read")]
    Changed { namespace: String, id: String },
}

impl StoreError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Streams a stage in; see the module documentation.
pub trait ContentWriter: Send {
    /// Appends plaintext (or, for a download stage, whatever the downloader keeps).
    fn write(&mut self, data: &[u8]) -> Result<(), StoreError>;
    /// Bytes written so far.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Makes everything written so far durable together with `meta`. A download stage
    /// resumed later holds exactly the bytes of its last checkpoint and returns its meta.
    fn checkpoint(&mut self, meta: &[u8]) -> Result<(), StoreError>;
    /// Makes the written bytes the blob's content and `state` its state, in one atomic
    /// step; any download in progress for the blob is dropped with it.
    fn commit(self: Box<Self>, state: &BlobState) -> Result<ContentInfo, StoreError>;
    /// Throws the stage away.
    fn discard(self: Box<Self>) -> Result<(), StoreError>;
}

/// Streams content out in the pieces it was stored in.
pub trait ContentReader: Send {
    /// The next piece, or `None` at the end.
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Total bytes.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A download that can resume: its stage (holding the bytes of its last checkpoint) and the
/// meta saved with that checkpoint.
pub struct ResumedDownload {
    pub writer: Box<dyn ContentWriter>,
    pub meta: Vec<u8>,
}

/// A local store of blobs and their sync state.
pub trait LocalStore: Send + Sync + 'static {
    /// The state of one blob.
    fn state(&self, namespace: &str, id: &str) -> Result<Option<BlobState>, StoreError>;
    /// Inserts or replaces a blob's state (its content is unchanged).
    fn put_state(&self, state: &BlobState) -> Result<(), StoreError>;
    /// Sets the state only if the blob has none yet; returns whether it did.
    fn insert_state(&self, state: &BlobState) -> Result<bool, StoreError>;
    /// States in `namespace` (all namespaces if `None`), optionally of one status, highest
    /// priority first, then longest waiting.
    fn states(&self, namespace: Option<&str>, status: Option<SyncStatus>) -> Result<Vec<BlobState>, StoreError>;
    /// Namespaces that have any blob.
    fn namespaces(&self) -> Result<Vec<String>, StoreError>;

    /// The blob's committed content, if any.
    fn content(&self, namespace: &str, id: &str) -> Result<Option<ContentInfo>, StoreError>;
    fn open_content(&self, namespace: &str, id: &str) -> Result<Option<Box<dyn ContentReader>>, StoreError>;
    /// A stage for new content of the blob. Nothing is visible until it is committed.
    fn new_content(&self, namespace: &str, id: &str) -> Result<Box<dyn ContentWriter>, StoreError>;
    /// Removes the blob's content and sets `state` (or removes the state too, if `None`),
    /// in one atomic step. Any download in progress is dropped.
    fn remove_content(&self, namespace: &str, id: &str, state: Option<&BlobState>) -> Result<(), StoreError>;

    /// The download in progress for the blob, truncated to its last checkpoint.
    fn resume_download(&self, namespace: &str, id: &str) -> Result<Option<ResumedDownload>, StoreError>;
    /// Starts a download stage, dropping any earlier one.
    fn new_download(&self, namespace: &str, id: &str) -> Result<Box<dyn ContentWriter>, StoreError>;
    /// Reads the checkpointed bytes of the download in progress.
    fn open_download(&self, namespace: &str, id: &str) -> Result<Option<Box<dyn ContentReader>>, StoreError>;
    fn drop_download(&self, namespace: &str, id: &str) -> Result<(), StoreError>;
}

/// Reads a whole blob's content into memory.
pub fn read_all(store: &dyn LocalStore, namespace: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(mut reader) = store.open_content(namespace, id)? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(reader.len() as usize);
    while let Some(chunk) = reader.next_chunk()? {
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

/// Adapts a [`ContentReader`] to [`std::io::Read`].
pub struct ReadAdapter {
    reader: Box<dyn ContentReader>,
    chunk: Vec<u8>,
    pos: usize,
}

impl ReadAdapter {
    pub fn new(reader: Box<dyn ContentReader>) -> Self {
        Self {
            reader,
            chunk: Vec::new(),
            pos: 0,
        }
    }
}

impl std::io::Read for ReadAdapter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.reader.next_chunk().map_err(std::io::Error::other)? {
                Some(c) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Incremental SHA-256 of what a writer receives.
pub(crate) struct Hasher(Option<aws_lc_rs::digest::Context>);

impl Hasher {
    pub fn new() -> Self {
        Self(Some(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256)))
    }

    /// For a stage resumed after a restart: the bytes before are not seen again.
    pub fn unknown() -> Self {
        Self(None)
    }

    pub fn update(&mut self, data: &[u8]) {
        if let Some(c) = &mut self.0 {
            c.update(data);
        }
    }

    pub fn finish(self) -> Option<[u8; 32]> {
        self.0
            .map(|c| c.finish().as_ref().try_into().expect("SHA-256 is 32 bytes"))
    }
}

/// SHA-256 of a blob's local content, read through.
pub fn content_sha256(store: &dyn LocalStore, namespace: &str, id: &str) -> Result<Option<[u8; 32]>, StoreError> {
    let Some(mut reader) = store.open_content(namespace, id)? else {
        return Ok(None);
    };
    let mut h = Hasher::new();
    while let Some(chunk) = reader.next_chunk()? {
        h.update(&chunk);
    }
    Ok(h.finish())
}
