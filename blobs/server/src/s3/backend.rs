//! Blobs in an S3 bucket, their index in etcd: any number of stateless servers share both.
//!
//! The object store holds bytes only, each upload under a fresh key
//! (`data/<user>/<namespace>/<id>/<version>`) that is never overwritten. Everything that
//! must be decided once for all servers lives in etcd, one key per blob
//! (`b/<user>/<namespace>/<id>`: version, size, date, flags, tag) and per tombstone
//! (`t/...`), changed only by transactions that compare the key's revision: a blob is
//! created only if its key is absent, flags and replacements apply only to the revision
//! that was checked, and deletion swaps the blob key for its tombstone in one step. Each
//! server registers itself (`s/<lease>`, see `registration.rs`) and names that lease in the
//! versions it writes, so that `sweep-s3` can tell an upload in flight from an orphan.
//!
//! S3 conditional writes (`If-None-Match`/`If-Match` on PUT) would do for creation and
//! flags, but Garage 2.5 ignores them (a test checks this, see `docs/scaling.md`), so the
//! compare-and-set is etcd's. Listings, counts and usage read a user's keys from etcd at
//! one revision, which is exact across servers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt as _, PutPayload, RetryConfig, WriteMultipart,
};
use tokio::sync::Semaphore;

mod registration;
mod sweep;
pub use sweep::SweepReport;

use registration::Registration;

use crate::admission::{self, Admitted};
use crate::config::S3Config;
use crate::flags::{Flag, FlagSet};
use crate::fs::index::{BlobMeta, Namespace, UserIndex};
use crate::s3::etcd::{Compare, Etcd, EtcdError, Kv, Op};
use crate::storage::{
    self, BlobData, BlobRef, ListQuery, Listing, StorageBackend, StorageError, StoreOptions, StoredBlob, Totals, Usage,
    WriteMode, etag, incoming_preamble,
};

/// Uploads up to this size are one PUT; larger ones are multipart uploads of parts this big,
/// so that no upload is held in memory whole.
const PART: usize = 8 << 20;
/// Parts of one upload in flight at a time.
const PARTS_IN_FLIGHT: usize = 2;
/// Replaced and deleted bytes stay this long, so that a download that read the old index
/// entry still finds them.
const GRACE: Duration = Duration::from_secs(30);
/// The longest an upload may take from its first byte to its index entry: a sweep keeps the
/// bytes of a live server this long (and a margin), so a longer upload is refused.
const UPLOAD_MAX: Duration = Duration::from_secs(24 * 3600);
/// A quota reservation of a server that died is released after this long; a live server
/// renews it for as long as the upload lasts.
const RESERVATION_TTL: u64 = 600;

impl From<EtcdError> for StorageError {
    fn from(e: EtcdError) -> Self {
        StorageError::Remote(e.to_string())
    }
}

fn remote(e: object_store::Error) -> StorageError {
    StorageError::Remote(e.to_string())
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// The index entry of a blob, as stored in etcd.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Record {
    /// Key suffix of the bytes in the bucket.
    v: String,
    size: u64,
    mtime: u64,
    flags: Vec<String>,
    flags_time: u64,
    tag: Option<String>,
}

impl Record {
    fn flagset(&self) -> FlagSet {
        FlagSet::from_names(self.flags.iter().map(String::as_str)).unwrap_or_default()
    }

    fn meta(&self) -> BlobMeta {
        BlobMeta {
            size: self.size,
            mtime: time(self.mtime),
            flags: self.flagset(),
            flags_time: time(self.flags_time),
        }
    }

    fn etag(&self) -> String {
        etag(time(self.mtime), self.size)
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record serializes")
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Tombstone {
    at: u64,
}

fn decode<T: serde::de::DeserializeOwned>(kv: &Kv) -> Result<T, StorageError> {
    serde_json::from_slice(&kv.value).map_err(|e| {
        StorageError::Remote(format!(
            "index entry {} is not valid: {e}",
            String::from_utf8_lossy(&kv.key)
        ))
    })
}

pub struct S3Backend {
    store: Arc<AmazonS3>,
    etcd: Etcd,
    prefix: String,
    opts: StoreOptions,
    writes: Semaphore,
    totals: Totals,
    registration: Registration,
}

/// A blob in the bucket, fetched when the response is sent.
pub struct RemoteBlob {
    store: Arc<AmazonS3>,
    path: Path,
}

impl RemoteBlob {
    pub async fn body(self, start: u64, len: u64) -> Result<axum::body::Body, StorageError> {
        if len == 0 {
            return Ok(axum::body::Body::empty());
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(start..start + len)),
            ..Default::default()
        };
        let got = self.store.get_opts(&self.path, opts).await.map_err(remote)?;
        Ok(axum::body::Body::from_stream(got.into_stream()))
    }

    pub async fn bytes(self) -> Result<Bytes, StorageError> {
        self.store
            .get(&self.path)
            .await
            .map_err(remote)?
            .bytes()
            .await
            .map_err(remote)
    }
}

/// The last 16 bytes seen, for the `Tag` header.
#[derive(Default)]
struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, b: &[u8]) {
        let tag = blobs_crypto::v1::TAG_LEN;
        if b.len() >= tag {
            self.0.clear();
            self.0.extend_from_slice(&b[b.len() - tag..]);
        } else {
            self.0.extend_from_slice(b);
            let extra = self.0.len().saturating_sub(tag);
            self.0.drain(..extra);
        }
    }
}

/// Streams an upload into the bucket: one PUT when it is small, parts otherwise.
struct Upload {
    store: Arc<AmazonS3>,
    path: Path,
    buf: Vec<u8>,
    multipart: Option<WriteMultipart>,
    tail: Tail,
    size: u64,
}

impl Upload {
    async fn push(&mut self, b: &[u8]) -> Result<(), StorageError> {
        self.tail.push(b);
        self.size += b.len() as u64;
        match &mut self.multipart {
            Some(m) => {
                m.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(remote)?;
                m.write(b);
            }
            None => {
                self.buf.extend_from_slice(b);
                if self.buf.len() >= PART {
                    let upload = self.store.put_multipart(&self.path).await.map_err(remote)?;
                    let mut m = WriteMultipart::new_with_chunk_size(upload, PART);
                    m.write(&std::mem::take(&mut self.buf));
                    self.multipart = Some(m);
                }
            }
        }
        Ok(())
    }

    /// Makes the bytes durable in the store (the store acknowledges a write once a quorum
    /// of its nodes has it).
    async fn finish(self) -> Result<(u64, Option<String>), StorageError> {
        match self.multipart {
            Some(m) => {
                m.finish().await.map_err(remote)?;
            }
            None => {
                self.store
                    .put(&self.path, PutPayload::from(self.buf))
                    .await
                    .map_err(remote)?;
            }
        }
        Ok((self.size, blobs_crypto::tag_header(&self.tail.0)))
    }

    async fn abort(self) {
        if let Some(m) = self.multipart {
            let _ = m.abort().await;
        }
    }
}

/// Bytes promised to one upload under a quota, held by an etcd lease that is renewed until
/// the upload ends (an upload over a slow link may outlast any fixed time to live).
struct Reservation {
    etcd: Etcd,
    lease: Option<i64>,
    renewal: Option<tokio::task::AbortHandle>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        if let Some(lease) = self.lease.take() {
            let etcd = self.etcd.clone();
            tokio::spawn(async move {
                if let Err(e) = etcd.revoke(lease).await {
                    tracing::warn!(error = %e, "quota reservation not released; it expires by itself");
                }
            });
        }
    }
}

impl S3Backend {
    /// Ends this server's registration (see `Registration::revoke`).
    pub async fn shutdown(&self) {
        self.registration.revoke().await;
    }

    pub async fn open(c: &S3Config, opts: StoreOptions) -> Result<Self, StorageError> {
        // Client options first: they carry `allow_http`, which `with_allow_http` then sets.
        let store = AmazonS3Builder::new()
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(2))
                    .with_timeout(Duration::from_secs(60))
                    // Measured: on a kept-alive connection, Garage's answers to small GETs
                    // stalled 40 ms (its response is two writes, the second waits for a
                    // delayed ACK); a fresh loopback connection per request does not, and
                    // costs well under a millisecond.
                    .with_pool_max_idle_per_host(0),
            )
            .with_endpoint(&c.endpoint)
            .with_bucket_name(&c.bucket)
            .with_region(&c.region)
            .with_access_key_id(&c.access_key_id)
            .with_secret_access_key(&c.secret_access_key)
            .with_allow_http(c.endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .with_retry(RetryConfig {
                max_retries: 4,
                retry_timeout: Duration::from_secs(20),
                ..Default::default()
            })
            .build()
            .map_err(remote)?;
        let prefix = if c.prefix.is_empty() || c.prefix.ends_with('/') {
            c.prefix.clone()
        } else {
            format!("{}/", c.prefix)
        };
        let etcd = Etcd::new(c.etcd.clone());
        let backend = Self {
            store: Arc::new(store),
            registration: Registration::new(etcd.clone(), format!("{prefix}s/")),
            etcd,
            prefix,
            writes: Semaphore::new(opts.max_concurrent_writes.max(1)),
            opts,
            totals: Totals::default(),
        };
        // Fail at start, with the reason, rather than on the first request.
        backend.etcd.get(backend.key("probe", "").as_bytes()).await?;
        match backend.store.head(&backend.data_path_raw("probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(remote(e)),
        }
        Ok(backend)
    }

    fn key(&self, kind: &str, rest: &str) -> String {
        format!("{}{kind}/{rest}", self.prefix)
    }

    fn blob_key(&self, kind: &str, b: &BlobRef) -> Vec<u8> {
        self.key(kind, &format!("{}/{}/{}", b.user(), b.namespace(), b.id()))
            .into_bytes()
    }

    fn data_path_raw(&self, rest: &str) -> Path {
        Path::from(format!("{}data/{rest}", self.prefix))
    }

    fn data_path(&self, b: &BlobRef, version: &str) -> Path {
        self.data_path_raw(&format!("{}/{}/{}/{version}", b.user(), b.namespace(), b.id()))
    }

    /// The blob's index entry and its revision.
    async fn current(&self, b: &BlobRef) -> Result<Option<(Record, i64)>, StorageError> {
        match self.etcd.get(&self.blob_key("b", b)).await? {
            Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    /// Deletes bytes no index entry points to any more, after the grace period.
    fn delete_later(&self, path: Path) {
        let store = self.store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(GRACE).await;
            if let Err(e) = store.delete(&path).await {
                tracing::warn!(error = %e, %path, "unreferenced bytes not deleted");
            }
        });
    }

    /// Reserves `n` more bytes of `user`'s quota: every reservation and every stored blob
    /// bumps the user's generation key, so two servers cannot both take the last bytes.
    async fn reserve(
        &self,
        r: &mut Reservation,
        user: &str,
        quota: u64,
        credit: u64,
        n: u64,
    ) -> Result<(), StorageError> {
        let gen_key = self.key("gen", user).into_bytes();
        loop {
            let generation = self.etcd.get(&gen_key).await?;
            let used: u64 = self
                .etcd
                .get_prefix(self.key("b", &format!("{user}/")).as_bytes())
                .await?
                .iter()
                .map(|kv| decode::<Record>(kv).map(|r| r.size))
                .sum::<Result<u64, _>>()?;
            let reserved: u64 = self
                .etcd
                .get_prefix(self.key("r", &format!("{user}/")).as_bytes())
                .await?
                .iter()
                .map(|kv| {
                    std::str::from_utf8(&kv.value)
                        .ok()
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                })
                .sum();
            // This upload's own earlier reservation is in `reserved` already.
            if used + reserved + n > quota.saturating_add(credit) {
                return Err(StorageError::QuotaExceeded { quota, used });
            }
            let lease = match r.lease {
                Some(l) => l,
                None => {
                    let l = self.etcd.grant(RESERVATION_TTL).await?;
                    r.lease = Some(l);
                    r.renewal = Some(self.etcd.spawn_keep_alive(l, RESERVATION_TTL));
                    l
                }
            };
            let rkey = self.key("r", &format!("{user}/{lease:x}")).into_bytes();
            let amount = (r.bytes + n).to_string();
            let cmp = match &generation {
                Some(g) => Compare::ModRevision(&gen_key, g.mod_revision),
                None => Compare::Absent(&gen_key),
            };
            let ops = [
                Op::Put {
                    key: &rkey,
                    value: amount.as_bytes(),
                    lease: Some(lease),
                },
                Op::Put {
                    key: &gen_key,
                    value: b"",
                    lease: None,
                },
            ];
            if self.etcd.txn(&[cmp], &ops).await? {
                r.bytes += n;
                return Ok(());
            }
        }
    }

    async fn read_body<S, E>(
        &self,
        upload: &mut Upload,
        body: &mut S,
        reservation: &mut Reservation,
        user: &str,
        credit: u64,
        declared: Option<u64>,
    ) -> Result<(), StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display + Send,
    {
        let max = self.opts.max_blob_size;
        let quota = self.opts.quota_of(user);
        // A delivery's preamble is already in the upload; the cap is on the body alone.
        let start = upload.size;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| StorageError::Body(e.to_string()))?;
            admission::received(upload.size - start + chunk.len() as u64, max)?;
            if let Some(quota) = quota
                && upload.size + chunk.len() as u64 > reservation.bytes
            {
                // Reserved in steps, not per chunk: each step is an etcd transaction.
                let step = (chunk.len() as u64).max(PART as u64);
                let step = if declared.is_some() { chunk.len() as u64 } else { step };
                self.reserve(reservation, user, quota, credit, step).await?;
            }
            upload.push(&chunk).await?;
        }
        Ok(())
    }

    fn namespace_of(&self, kvs: &[Kv], tombstones: &[Kv]) -> Result<Namespace, StorageError> {
        let mut ns = Namespace::default();
        let id_of =
            |kv: &Kv| String::from_utf8_lossy(kv.key.rsplit(|b| *b == b'/').next().unwrap_or_default()).into_owned();
        for kv in kvs {
            let r: Record = decode(kv)?;
            ns.bytes += r.size;
            ns.blobs.insert(id_of(kv), r.meta());
        }
        for kv in tombstones {
            let t: Tombstone = decode(kv)?;
            ns.tombstones.insert(id_of(kv), time(t.at));
        }
        Ok(ns)
    }
}

impl StorageBackend for S3Backend {
    fn max_blob_size(&self) -> u64 {
        self.opts.max_blob_size
    }

    fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Totals at start; afterwards this server adds its own changes only, so with several
    /// servers each one's totals drift until its next start (usage per user is exact).
    async fn preload(&self) -> Result<(), StorageError> {
        let all = self.etcd.get_prefix(self.key("b", "").as_bytes()).await?;
        let mut users = std::collections::BTreeSet::new();
        let mut bytes = 0;
        for kv in &all {
            bytes += decode::<Record>(kv)?.size;
            if let Some(u) = kv.key[self.prefix.len() + 2..].split(|b| *b == b'/').next() {
                users.insert(u.to_vec());
            }
        }
        self.totals.used_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.totals.blobs.fetch_add(all.len() as u64, Ordering::Relaxed);
        self.totals.users.fetch_add(users.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn healthy(&self) -> bool {
        let etcd = self.etcd.get(self.key("probe", "").as_bytes()).await.is_ok();
        let store = matches!(
            self.store.head(&self.data_path_raw("probe")).await,
            Ok(_) | Err(object_store::Error::NotFound { .. })
        );
        etcd && store
    }

    async fn users(&self) -> Result<Vec<String>, StorageError> {
        let all = self.etcd.get_prefix(self.key("b", "").as_bytes()).await?;
        let mut users: Vec<String> = all
            .iter()
            .filter_map(|kv| kv.key[self.prefix.len() + 2..].split(|b| *b == b'/').next())
            .map(|u| String::from_utf8_lossy(u).into_owned())
            .collect();
        users.dedup();
        Ok(users)
    }

    async fn write<S, E>(
        &self,
        blob: &BlobRef,
        mut body: S,
        mode: WriteMode,
        declared: Option<u64>,
    ) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display + Send,
    {
        let max = self.opts.max_blob_size;
        admission::declared(declared, max)?;
        let incoming = mode == WriteMode::Incoming;
        let existing = self.current(blob).await?;
        let Admitted { credit, overhead } = admission::start(blob.id(), &mode, existing.as_ref().map(|(r, _)| r.size))?;
        let mut reservation = Reservation {
            etcd: self.etcd.clone(),
            lease: None,
            renewal: None,
            bytes: 0,
        };
        if let Some(quota) = self.opts.quota_of(blob.user()) {
            let first = declared.unwrap_or(0) + overhead;
            self.reserve(&mut reservation, blob.user(), quota, credit, first)
                .await?;
        }
        let _slot = storage::slot(self.opts.write_wait, self.writes.acquire()).await?;

        // The version names this server's registration: a sweep keeps the bytes for as long
        // as it lives, and the index transaction below holds only while it does.
        let lease = self.registration.lease().await?;
        let registered = self.registration.key(lease);
        let started = std::time::Instant::now();
        let version = format!("{lease:x}-{}", uuid::Uuid::new_v4().simple());
        let path = self.data_path(blob, &version);
        let mut upload = Upload {
            store: self.store.clone(),
            path: path.clone(),
            buf: Vec::new(),
            multipart: None,
            tail: Tail::default(),
            size: 0,
        };
        let read = if incoming {
            // The preamble holds the message's size, so it is written first when the size
            // is declared; otherwise the message is gathered (deliveries are mail-sized).
            match declared {
                Some(n) => {
                    upload.push(&incoming_preamble(blob.id(), n)?).await?;
                    let before = upload.size;
                    let r = self
                        .read_body(&mut upload, &mut body, &mut reservation, blob.user(), credit, declared)
                        .await;
                    match r {
                        Ok(()) if upload.size - before != n => Err(StorageError::Body(format!(
                            "{} bytes sent, {n} declared",
                            upload.size - before
                        ))),
                        other => other,
                    }
                }
                None => {
                    let mut whole = Vec::new();
                    let mut r = Ok(());
                    while let Some(chunk) = body.next().await {
                        match chunk {
                            Ok(c) => {
                                if let Err(e) = admission::received((whole.len() + c.len()) as u64, max) {
                                    r = Err(e);
                                    break;
                                }
                                whole.extend_from_slice(&c);
                            }
                            Err(e) => {
                                r = Err(StorageError::Body(e.to_string()));
                                break;
                            }
                        }
                    }
                    if r.is_ok() {
                        upload.push(&incoming_preamble(blob.id(), whole.len() as u64)?).await?;
                        let mut one = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(whole))]);
                        r = self
                            .read_body(&mut upload, &mut one, &mut reservation, blob.user(), credit, None)
                            .await;
                    }
                    r
                }
            }
        } else {
            self.read_body(&mut upload, &mut body, &mut reservation, blob.user(), credit, declared)
                .await
        };
        if let Err(e) = read {
            upload.abort().await;
            return Err(e);
        }
        let (size, tag) = upload.finish().await?;

        let bkey = self.blob_key("b", blob);
        let tkey = self.blob_key("t", blob);
        let gen_key = self.key("gen", blob.user()).into_bytes();
        let rkey = reservation
            .lease
            .map(|l| self.key("r", &format!("{}/{l:x}", blob.user())).into_bytes());
        loop {
            let current = self.current(blob).await?;
            if started.elapsed() > UPLOAD_MAX {
                // A sweep keeps a live server's bytes only this long (see `sweep.rs`).
                let _ = self.store.delete(&path).await;
                return Err(StorageError::Body(format!(
                    "the upload took longer than {}",
                    humantime::format_duration(UPLOAD_MAX)
                )));
            }
            let etag = current.as_ref().map(|(r, _)| r.etag());
            if let Err(e) = admission::publish(blob.id(), &mode, etag.as_deref()) {
                let _ = self.store.delete(&path).await;
                return Err(e);
            }
            let now = nanos(SystemTime::now());
            let (flags, flags_time) = match (&current, incoming) {
                (_, true) => (FlagSet::of(&[Flag::Pending]), now),
                (Some((r, _)), false) => (r.flagset(), r.flags_time),
                (None, false) => (FlagSet::EMPTY, now),
            };
            let record = Record {
                v: version.clone(),
                size,
                mtime: now,
                flags: flags.names().into_iter().map(String::from).collect(),
                flags_time,
                tag: tag.clone(),
            }
            .encode();
            let cmp = match &current {
                Some((_, rev)) => Compare::ModRevision(&bkey, *rev),
                None => Compare::Absent(&bkey),
            };
            let mut ops = vec![
                Op::Put {
                    key: &bkey,
                    value: &record,
                    lease: None,
                },
                Op::Delete(&tkey),
            ];
            if let Some(rkey) = &rkey {
                // The blob now counts in usage; its reservation ends in the same step.
                ops.push(Op::Delete(rkey));
                ops.push(Op::Put {
                    key: &gen_key,
                    value: b"",
                    lease: None,
                });
            }
            if self.etcd.txn(&[cmp, Compare::Present(&registered)], &ops).await? {
                match current {
                    Some((old, _)) => {
                        self.totals.used_bytes.fetch_add(size, Ordering::Relaxed);
                        self.totals.used_bytes.fetch_sub(
                            old.size.min(self.totals.used_bytes.load(Ordering::Relaxed)),
                            Ordering::Relaxed,
                        );
                        self.delete_later(self.data_path(blob, &old.v));
                    }
                    None => {
                        self.totals.used_bytes.fetch_add(size, Ordering::Relaxed);
                        self.totals.blobs.fetch_add(1, Ordering::Relaxed);
                    }
                }
                return Ok(size);
            }
            if self.etcd.get(&registered).await?.is_none() {
                // The registration ended with its lease: a sweep may have taken the bytes.
                self.registration.ended(lease).await;
                let _ = self.store.delete(&path).await;
                return Err(StorageError::Remote(
                    "this server's registration in etcd ended before the upload was recorded (etcd out of reach for longer than its lease)".into(),
                ));
            }
            // Another server changed the blob between our read and our write: decide again.
        }
    }

    async fn open_blob(&self, blob: &BlobRef) -> Result<StoredBlob, StorageError> {
        let (r, _) = self
            .current(blob)
            .await?
            .ok_or_else(|| StorageError::NotFound(blob.id().to_owned()))?;
        Ok(StoredBlob {
            size: r.size,
            tag: r.tag.clone(),
            etag: r.etag(),
            data: BlobData::Remote(RemoteBlob {
                store: self.store.clone(),
                path: self.data_path(blob, &r.v),
            }),
        })
    }

    async fn flags(&self, blob: &BlobRef) -> Result<FlagSet, StorageError> {
        let (r, _) = self
            .current(blob)
            .await?
            .ok_or_else(|| StorageError::NotFound(blob.id().to_owned()))?;
        Ok(r.meta()
            .effective_flags(SystemTime::now(), self.opts.processing_timeout))
    }

    async fn set_flags(&self, blob: &BlobRef, flags: FlagSet, expect: Option<FlagSet>) -> Result<(), StorageError> {
        let bkey = self.blob_key("b", blob);
        loop {
            let (mut r, rev) = self
                .current(blob)
                .await?
                .ok_or_else(|| StorageError::NotFound(blob.id().to_owned()))?;
            let current = r
                .meta()
                .effective_flags(SystemTime::now(), self.opts.processing_timeout);
            if let Some(expected) = expect
                && current != expected
            {
                return Err(StorageError::FlagsMismatch {
                    current: current.names(),
                    expected: expected.names(),
                });
            }
            r.flags = flags.names().into_iter().map(String::from).collect();
            r.flags_time = nanos(SystemTime::now());
            let value = r.encode();
            let put = Op::Put {
                key: &bkey,
                value: &value,
                lease: None,
            };
            if self.etcd.txn(&[Compare::ModRevision(&bkey, rev)], &[put]).await? {
                return Ok(());
            }
        }
    }

    async fn delete(&self, blob: &BlobRef) -> Result<(), StorageError> {
        let bkey = self.blob_key("b", blob);
        let tkey = self.blob_key("t", blob);
        loop {
            let (r, rev) = self
                .current(blob)
                .await?
                .ok_or_else(|| StorageError::NotFound(blob.id().to_owned()))?;
            let tomb = serde_json::to_vec(&Tombstone {
                at: nanos(SystemTime::now()),
            })
            .expect("a tombstone serializes");
            let ops = [
                Op::Delete(&bkey),
                Op::Put {
                    key: &tkey,
                    value: &tomb,
                    lease: None,
                },
            ];
            if self.etcd.txn(&[Compare::ModRevision(&bkey, rev)], &ops).await? {
                self.delete_later(self.data_path(blob, &r.v));
                let used = self.totals.used_bytes.load(Ordering::Relaxed);
                self.totals.used_bytes.fetch_sub(r.size.min(used), Ordering::Relaxed);
                let blobs = self.totals.blobs.load(Ordering::Relaxed);
                self.totals.blobs.fetch_sub(1.min(blobs), Ordering::Relaxed);
                return Ok(());
            }
        }
    }

    async fn list(&self, user: &str, namespace: &str, q: &ListQuery) -> Result<Listing, StorageError> {
        let prefix = |kind| self.key(kind, &format!("{user}/{namespace}/"));
        let ns = if q.deleted {
            let t = self.etcd.get_prefix(prefix("t").as_bytes()).await?;
            self.namespace_of(&[], &t)?
        } else {
            let b = self.etcd.get_prefix(prefix("b").as_bytes()).await?;
            self.namespace_of(&b, &[])?
        };
        Ok(storage::list_namespace(
            Some(&ns),
            q,
            SystemTime::now(),
            self.opts.processing_timeout,
        ))
    }

    async fn usage(&self, user: &str) -> Result<Usage, StorageError> {
        let (bp, tp) = (self.key("b", &format!("{user}/")), self.key("t", &format!("{user}/")));
        let (b, t) = futures::try_join!(self.etcd.get_prefix(bp.as_bytes()), self.etcd.get_prefix(tp.as_bytes()))?;
        let ns_of = |kv: &Kv| {
            let rest = &kv.key[self.prefix.len() + 2 + user.len() + 1..];
            String::from_utf8_lossy(rest.split(|b| *b == b'/').next().unwrap_or_default()).into_owned()
        };
        let mut idx = UserIndex::default();
        let mut groups: std::collections::HashMap<String, (Vec<Kv>, Vec<Kv>)> = Default::default();
        for kv in b {
            groups.entry(ns_of(&kv)).or_default().0.push(kv);
        }
        for kv in t {
            groups.entry(ns_of(&kv)).or_default().1.push(kv);
        }
        for (name, (b, t)) in groups {
            let ns = self.namespace_of(&b, &t)?;
            idx.used += ns.bytes;
            idx.namespaces.insert(name, ns);
        }
        Ok(storage::usage_of(user, &idx, self.opts.quota_of(user)))
    }
}

/// Reads every object under `prefix` (for tests and tools that check what the bucket holds).
pub async fn list_objects(store: &dyn ObjectStore, prefix: &str) -> Result<Vec<String>, StorageError> {
    store
        .list(Some(&Path::from(prefix)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .map_err(remote)
}
