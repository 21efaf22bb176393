//! What every storage backend offers the API, and the types they share.
//!
//! [`StorageBackend`] is the contract; [`Storage`] is the backend a server was configured
//! with (`[storage] backend = "fs" | "s3"`). The filesystem backend ([`crate::fs::backend`])
//! is the default and needs nothing else; the S3 backend ([`crate::s3::backend`]) lets several
//! stateless servers share one object store.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::Stream;

use crate::flags::{Flag, FlagSet};
use crate::fs::backend::FsBackend;
use crate::fs::disk::DiskError;
use crate::fs::index::{Namespace, UserIndex};
use crate::s3::backend::S3Backend;

pub use crate::fs::layout::BlobRef;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("blob {0} does not exist")]
    NotFound(String),
    #[error("blob {0} already exists")]
    Exists(String),
    #[error("blob is larger than the maximum of {max} bytes")]
    TooLarge { max: u64 },
    #[error("quota exceeded: {used} of {quota} bytes in use")]
    QuotaExceeded { quota: u64, used: u64 },
    #[error("too many writes in progress; retry later")]
    Busy,
    #[error("request body was interrupted: {0}")]
    Body(String),
    #[error("the blob's flags are {current:?}, not the expected {expected:?}")]
    FlagsMismatch {
        current: Vec<&'static str>,
        expected: Vec<&'static str>,
    },
    #[error("the blob changed: its ETag is no longer {0}")]
    PreconditionFailed(String),
    #[error("{0} is not available on this storage backend")]
    Unsupported(&'static str),
    #[error("object store: {0}")]
    Remote(String),
    #[error("data directory {0} is in use by another blobs-server")]
    InUse(PathBuf),
    #[error("storage error at {}: {}", .0.path.display(), .0.source)]
    Io(#[from] DiskError),
}

/// A slot of a bound: waits up to `wait` for `acquire` (a semaphore's), then `Busy` (503).
/// Uploads and deliveries have `max_concurrent_writes` slots in their backend; flag changes
/// and deletions as many of their own (`api::change_slot`).
pub async fn slot<P>(
    wait: Duration,
    acquire: impl std::future::Future<Output = Result<P, tokio::sync::AcquireError>>,
) -> Result<P, StorageError> {
    Ok(tokio::time::timeout(wait, acquire)
        .await
        .map_err(|_| StorageError::Busy)?
        .expect("the semaphore is never closed"))
}

/// How an upload becomes a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteMode {
    /// A new blob; 409 if the id exists.
    Create,
    /// Create or atomically replace (drafts); with `if_match`, only if the current blob has
    /// that ETag.
    Replace { if_match: Option<String> },
    /// An incoming-box delivery: external-scheme preamble, PENDING, namespace MX.
    Incoming,
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_concurrent_writes: usize,
    pub durability: crate::config::Durability,
    pub write_wait: Duration,
    pub max_blob_size: u64,
    pub quota: Option<u64>,
    pub user_quotas: HashMap<String, u64>,
    pub processing_timeout: Duration,
}

impl StoreOptions {
    pub fn quota_of(&self, user: &str) -> Option<u64> {
        self.user_quotas.get(user).copied().or(self.quota)
    }

    pub fn from_config(c: &crate::Config) -> Self {
        Self {
            max_concurrent_writes: c.max_concurrent_writes,
            durability: c.durability,
            write_wait: c.write_wait,
            max_blob_size: c.max_blob_size,
            quota: c.quota,
            user_quotas: c.user_quotas.clone(),
            processing_timeout: c.processing_timeout,
        }
    }
}

/// An opened blob.
pub struct StoredBlob {
    pub size: u64,
    /// base64url of the last 16 bytes (the GCM tag of client-encrypted blobs); `None` when
    /// the blob is shorter than that.
    pub tag: Option<String>,
    pub etag: String,
    pub data: BlobData,
}

/// Listing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Id,
    OldestFirst,
    NewestFirst,
}

/// Where a page of a listing starts: after this entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub time: Option<SystemTime>,
    pub id: String,
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub deleted: bool,
    pub order: Order,
    pub filter: Option<Flag>,
    pub after: Option<Cursor>,
    pub limit: Option<usize>,
    /// Only `total` is wanted.
    pub count_only: bool,
}

pub struct Listing {
    /// The page's ids as a JSON array.
    pub json: String,
    /// All matching entries, regardless of pages.
    pub total: usize,
    /// Cursor of the next page, if there is one.
    pub next: Option<Cursor>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Usage {
    pub user: String,
    pub used_bytes: u64,
    pub quota_bytes: Option<u64>,
    pub blobs: u64,
    pub namespaces: std::collections::BTreeMap<String, NamespaceUsage>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct NamespaceUsage {
    pub blobs: u64,
    pub bytes: u64,
    pub tombstones: u64,
}

/// Storage totals over the users loaded so far (all users, once preloading is done).
#[derive(Debug, Default)]
pub struct Totals {
    pub used_bytes: AtomicU64,
    pub blobs: AtomicU64,
    pub users: AtomicU64,
}

/// A blob's contents, as the backend holds them.
pub enum BlobData {
    /// Read into memory when small, memory-mapped when larger.
    Bytes(Bytes),
    /// In the object store: fetched (ranged) when the response is sent.
    Remote(crate::s3::backend::RemoteBlob),
}

impl StoredBlob {
    /// All of the contents in memory (mapped, for large local blobs).
    pub async fn bytes(self) -> Result<Bytes, StorageError> {
        match self.data {
            BlobData::Bytes(b) => Ok(b),
            BlobData::Remote(r) => r.bytes().await,
        }
    }

    /// The bytes `start..start + len` as a response body.
    pub async fn body(self, start: u64, len: u64) -> Result<axum::body::Body, StorageError> {
        match self.data {
            BlobData::Bytes(b) => Ok(axum::body::Body::from(b.slice(start as usize..(start + len) as usize))),
            BlobData::Remote(r) => r.body(start, len).await,
        }
    }
}

/// The listing of one namespace of an index: filter, order, page.
pub fn list_namespace(ns: Option<&Namespace>, q: &ListQuery, now: SystemTime, timeout: Duration) -> Listing {
    let Some(ns) = ns else {
        return Listing {
            json: "[]".into(),
            total: 0,
            next: None,
        };
    };
    let mut entries: Vec<(SystemTime, &str)> = if q.deleted {
        ns.tombstones.iter().map(|(id, t)| (*t, id.as_str())).collect()
    } else {
        ns.blobs
            .iter()
            .filter(|(_, m)| q.filter.is_none_or(|f| m.effective_flags(now, timeout).contains(f)))
            .map(|(id, m)| (m.mtime, id.as_str()))
            .collect()
    };
    // BTreeMap iteration is already in id order.
    match q.order {
        Order::Id => {}
        Order::OldestFirst => entries.sort_unstable(),
        Order::NewestFirst => entries.sort_unstable_by(|a, b| b.cmp(a)),
    }
    let total = entries.len();
    if q.count_only {
        return Listing {
            json: String::new(),
            total,
            next: None,
        };
    }
    let start = match &q.after {
        None => 0,
        Some(c) => {
            let key = (c.time.unwrap_or(UNIX_EPOCH), c.id.as_str());
            entries.partition_point(|e| match q.order {
                Order::Id => e.1 <= key.1,
                Order::OldestFirst => *e <= key,
                Order::NewestFirst => *e >= key,
            })
        }
    };
    let end = q.limit.map_or(total, |l| start.saturating_add(l).min(total));
    let page = &entries[start.min(end)..end];
    let next = (end < total && !page.is_empty()).then(|| {
        let (t, id) = page[page.len() - 1];
        Cursor {
            time: (q.order != Order::Id).then_some(t),
            id: id.to_owned(),
        }
    });
    // Written straight from the index: valid ids need no JSON escaping, and this spares
    // an allocation per id.
    let mut json = String::with_capacity(2 + page.iter().map(|(_, id)| id.len() + 3).sum::<usize>());
    json.push('[');
    for (i, (_, id)) in page.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push('"');
        json.push_str(id);
        json.push('"');
    }
    json.push(']');
    Listing { json, total, next }
}

/// Exact usage of one user from the user's index.
pub fn usage_of(user: &str, idx: &UserIndex, quota: Option<u64>) -> Usage {
    Usage {
        user: user.to_owned(),
        used_bytes: idx.used,
        quota_bytes: quota,
        blobs: idx.blob_count(),
        namespaces: idx
            .namespaces
            .iter()
            .map(|(name, ns)| {
                (
                    name.clone(),
                    NamespaceUsage {
                        blobs: ns.blobs.len() as u64,
                        bytes: ns.bytes,
                        tombstones: ns.tombstones.len() as u64,
                    },
                )
            })
            .collect(),
    }
}

/// The `ETag` of a blob version: its modification time and size.
pub fn etag(mtime: SystemTime, size: u64) -> String {
    // Nanoseconds fit in a u64 until 2554; formatting a u128 costs noticeably more.
    let ns = mtime.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    // Built by hand: `format!` and its formatting machinery showed in the profile of a
    // small GET (`BENCHMARKS.md`), where this runs on every request.
    let mut tag = String::with_capacity(2 * 16 + 3);
    tag.push('"');
    push_hex(&mut tag, ns);
    tag.push('-');
    push_hex(&mut tag, size);
    tag.push('"');
    tag
}

/// Appends `v` in lower-case hex without leading zeros, as `{:x}` writes it.
fn push_hex(out: &mut String, v: u64) {
    let digits = (64 - v.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(char::from(b"0123456789abcdef"[(v >> (4 * i)) as usize & 0xf]));
    }
}

/// The stored form's preamble of an incoming delivery: external scheme, PGP, exact size.
pub fn incoming_preamble(id: &str, size: u64) -> Result<Vec<u8>, StorageError> {
    let preamble = blobs_crypto::Preamble {
        scheme: blobs_crypto::Scheme::External,
        method: blobs_crypto::Method::Pgp,
        timestamp: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        iv: [0; 16],
        doc_id: id.to_owned(),
        rev: "0".into(),
        content_size: Some(size),
    };
    let mut out = preamble.to_base64().expect("valid ids fit the preamble").into_bytes();
    out.push(b' ');
    Ok(out)
}

/// The operations the API needs from storage. Every backend gives the same answers to the
/// same requests; `docs/scaling.md` says what each guarantee rests on.
pub trait StorageBackend: Send + Sync {
    fn max_blob_size(&self) -> u64;
    /// Storage totals for the metrics.
    fn totals(&self) -> &Totals;
    /// Loads whatever makes first requests and totals cheap; requests do not wait for it.
    fn preload(&self) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Whether the storage answers.
    fn healthy(&self) -> impl Future<Output = bool> + Send;
    /// Users that have stored anything, sorted.
    fn users(&self) -> impl Future<Output = Result<Vec<String>, StorageError>> + Send;
    /// Stores an upload, streamed; returns the stored size. Nothing is acknowledged before
    /// it is durable.
    fn write<S, E>(
        &self,
        blob: &BlobRef,
        body: S,
        mode: WriteMode,
        declared: Option<u64>,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display + Send;
    fn open_blob(&self, blob: &BlobRef) -> impl Future<Output = Result<StoredBlob, StorageError>> + Send;
    /// The blob's flags as clients see them.
    fn flags(&self, blob: &BlobRef) -> impl Future<Output = Result<FlagSet, StorageError>> + Send;
    /// Replaces a blob's flags; with `expect`, only if its current flags are exactly those
    /// (compare-and-set: of two consumers reserving one item, one wins).
    fn set_flags(
        &self,
        blob: &BlobRef,
        flags: FlagSet,
        expect: Option<FlagSet>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Deletes a blob and leaves a tombstone so that other devices learn of the deletion.
    fn delete(&self, blob: &BlobRef) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Ids in a namespace (or, with `deleted`, ids of tombstones).
    fn list(
        &self,
        user: &str,
        namespace: &str,
        q: &ListQuery,
    ) -> impl Future<Output = Result<Listing, StorageError>> + Send;
    /// Exact usage of one user.
    fn usage(&self, user: &str) -> impl Future<Output = Result<Usage, StorageError>> + Send;
}

/// The backend a server runs on.
pub enum Storage {
    Fs(FsBackend),
    S3(S3Backend),
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            Storage::Fs($b) => $e,
            Storage::S3($b) => $e,
        }
    };
}

impl Storage {
    /// The filesystem backend, for what only it can do (hard-link snapshots for backups).
    pub fn fs(&self) -> Result<&FsBackend, StorageError> {
        match self {
            Storage::Fs(b) => Ok(b),
            Storage::S3(_) => Err(StorageError::Unsupported("online backup (back up the bucket instead)")),
        }
    }

    pub fn new_snapshot_dir(&self) -> Result<PathBuf, StorageError> {
        self.fs()?.new_snapshot_dir()
    }

    pub async fn snapshot_user(&self, user: &str, dest: &std::path::Path) -> Result<u64, StorageError> {
        self.fs()?.snapshot_user(user, dest).await
    }

    /// What a server that stops cleanly does once its requests are done: on S3, end its
    /// registration in etcd at once rather than when its lease runs out.
    pub async fn shutdown(&self) {
        if let Storage::S3(b) = self {
            b.shutdown().await;
        }
    }
}

impl StorageBackend for Storage {
    fn max_blob_size(&self) -> u64 {
        dispatch!(self, b => b.max_blob_size())
    }
    fn totals(&self) -> &Totals {
        dispatch!(self, b => b.totals())
    }
    async fn preload(&self) -> Result<(), StorageError> {
        dispatch!(self, b => b.preload().await)
    }
    async fn healthy(&self) -> bool {
        dispatch!(self, b => b.healthy().await)
    }
    async fn users(&self) -> Result<Vec<String>, StorageError> {
        dispatch!(self, b => b.users().await)
    }
    async fn write<S, E>(
        &self,
        blob: &BlobRef,
        body: S,
        mode: WriteMode,
        declared: Option<u64>,
    ) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display + Send,
    {
        dispatch!(self, b => b.write(blob, body, mode, declared).await)
    }
    async fn open_blob(&self, blob: &BlobRef) -> Result<StoredBlob, StorageError> {
        dispatch!(self, b => b.open_blob(blob).await)
    }
    async fn flags(&self, blob: &BlobRef) -> Result<FlagSet, StorageError> {
        dispatch!(self, b => b.flags(blob).await)
    }
    async fn set_flags(&self, blob: &BlobRef, flags: FlagSet, expect: Option<FlagSet>) -> Result<(), StorageError> {
        dispatch!(self, b => b.set_flags(blob, flags, expect).await)
    }
    async fn delete(&self, blob: &BlobRef) -> Result<(), StorageError> {
        dispatch!(self, b => b.delete(blob).await)
    }
    async fn list(&self, user: &str, namespace: &str, q: &ListQuery) -> Result<Listing, StorageError> {
        dispatch!(self, b => b.list(user, namespace, q).await)
    }
    async fn usage(&self, user: &str) -> Result<Usage, StorageError> {
        dispatch!(self, b => b.usage(user).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_the_hex_of_nanoseconds_and_size() {
        for (ns, size) in [
            (0u64, 0u64),
            (1, 15),
            (16, 255),
            (1_764_000_000_123_456_789, 10_240),
            (u64::MAX, u64::MAX),
        ] {
            let mtime = UNIX_EPOCH + Duration::from_nanos(ns);
            assert_eq!(etag(mtime, size), format!("\"{ns:x}-{size:x}\""));
        }
    }
}
