//! The BlobManager: local store first, server second.

use std::sync::Arc;

use blobs_crypto::{BlobSecret, v1};
use bytes::Bytes;
use futures::StreamExt;

use crate::remote::Remote;
use crate::store::{LocalStore, SyncStatus};
use crate::{ClientError, check_name};

/// What a sync pass did. A failing blob does not stop the others; it is listed here.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub transferred: usize,
    /// Plaintext bytes moved.
    pub bytes: u64,
    /// How long each successful transfer took, in completion order.
    pub transfer_times: Vec<std::time::Duration>,
    pub failed: Vec<(String, ClientError)>,
}

/// Encrypts, stores and syncs one user's blobs.
#[derive(Clone)]
pub struct BlobManager {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn LocalStore>,
    remote: Remote,
    secret: BlobSecret,
    concurrency: usize,
}

/// Runs blocking store or crypto work off the event loop.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task panicked")
}

impl BlobManager {
    /// `concurrency` bounds the transfers a sync pass runs at once.
    pub fn new(store: Arc<dyn LocalStore>, remote: Remote, secret: BlobSecret, concurrency: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                remote,
                secret,
                concurrency: concurrency.max(1),
            }),
        }
    }

    /// Stores a blob locally as pending upload, without contacting the server.
    pub async fn stage(&self, namespace: &str, id: &str, data: Vec<u8>) -> Result<(), ClientError> {
        self.stage_bytes(namespace, id, data.into()).await
    }

    async fn stage_bytes(&self, namespace: &str, id: &str, data: Bytes) -> Result<(), ClientError> {
        check_name("namespace", namespace)?;
        check_name("blob id", id)?;
        let store = self.inner.store.clone();
        let (ns, id) = (namespace.to_owned(), id.to_owned());
        blocking(move || store.insert(&ns, &id, &data, SyncStatus::PendingUpload)).await?;
        Ok(())
    }

    /// Stores a blob locally and uploads it.
    pub async fn put(&self, namespace: &str, id: &str, data: Vec<u8>) -> Result<(), ClientError> {
        let data = Bytes::from(data);
        self.stage_bytes(namespace, id, data.clone()).await?;
        let secret = self.inner.secret.clone();
        let owned_id = id.to_owned();
        let encrypted = blocking(move || {
            v1::encrypt(&secret, &owned_id, &data).map_err(|source| ClientError::InvalidBlob { id: owned_id, source })
        })
        .await?;
        self.upload_encrypted(namespace, id, encrypted.into()).await
    }

    async fn upload_encrypted(&self, namespace: &str, id: &str, blob: Bytes) -> Result<(), ClientError> {
        self.inner.remote.put(namespace, id, blob).await?;
        self.set_status(namespace, id, SyncStatus::Synced).await
    }

    async fn set_status(&self, namespace: &str, id: &str, status: SyncStatus) -> Result<(), ClientError> {
        let store = self.inner.store.clone();
        let (ns, id) = (namespace.to_owned(), id.to_owned());
        blocking(move || store.set_status(&ns, &id, status)).await?;
        Ok(())
    }

    /// Returns a blob's plaintext, from the local store or else from the server.
    pub async fn get(&self, namespace: &str, id: &str) -> Result<Vec<u8>, ClientError> {
        check_name("namespace", namespace)?;
        check_name("blob id", id)?;
        let store = self.inner.store.clone();
        let (ns, owned_id) = (namespace.to_owned(), id.to_owned());
        if let Some(local) = blocking(move || store.get(&ns, &owned_id)).await? {
            return Ok(local);
        }
        self.download(namespace, id).await
    }

    /// Downloads, verifies, decrypts and stores one blob.
    async fn download(&self, namespace: &str, id: &str) -> Result<Vec<u8>, ClientError> {
        let (blob, tag) = self.inner.remote.get(namespace, id).await?;
        let secret = self.inner.secret.clone();
        let owned_id = id.to_owned();
        let plaintext = blocking(move || {
            v1::decrypt(&secret, &owned_id, &blob, tag.as_ref())
                .map_err(|source| ClientError::InvalidBlob { id: owned_id, source })
        })
        .await?;
        let store = self.inner.store.clone();
        let (ns, owned_id, data) = (namespace.to_owned(), id.to_owned(), plaintext.clone());
        blocking(move || store.insert(&ns, &owned_id, &data, SyncStatus::Synced)).await?;
        Ok(plaintext)
    }

    /// Ids on the server in `namespace`.
    pub async fn remote_list(&self, namespace: &str) -> Result<Vec<String>, ClientError> {
        self.inner.remote.list(namespace).await
    }

    /// Uploads every blob pending upload in `namespace`, `concurrency` at a time.
    pub async fn send_missing(&self, namespace: &str) -> Result<SyncReport, ClientError> {
        check_name("namespace", namespace)?;
        let store = self.inner.store.clone();
        let ns = namespace.to_owned();
        let pending = blocking(move || store.ids_with_status(&ns, SyncStatus::PendingUpload)).await?;
        let results = futures::stream::iter(pending)
            .map(|id| async move {
                let started = std::time::Instant::now();
                let result = self
                    .send_one(namespace, &id)
                    .await
                    .map(|bytes| (bytes, started.elapsed()));
                (id, result)
            })
            .buffer_unordered(self.inner.concurrency)
            .collect::<Vec<_>>()
            .await;
        Ok(report(results))
    }

    async fn send_one(&self, namespace: &str, id: &str) -> Result<u64, ClientError> {
        let store = self.inner.store.clone();
        let secret = self.inner.secret.clone();
        let (ns, owned_id) = (namespace.to_owned(), id.to_owned());
        let (size, blob) = blocking(move || -> Result<_, ClientError> {
            let data = store
                .get(&ns, &owned_id)?
                .ok_or_else(|| ClientError::NotFound(owned_id.clone()))?;
            let blob = v1::encrypt(&secret, &owned_id, &data)
                .map_err(|source| ClientError::InvalidBlob { id: owned_id, source })?;
            Ok((data.len() as u64, blob))
        })
        .await?;
        self.upload_encrypted(namespace, id, blob.into()).await?;
        Ok(size)
    }

    /// A full sync of one namespace: first the blobs the server has and this device lacks,
    /// then the blobs waiting for upload. One failing blob never stops the others; failures
    /// are listed in the report.
    pub async fn sync(&self, namespace: &str) -> Result<SyncReport, ClientError> {
        let mut report = self.fetch_missing(namespace).await?;
        let up = self.send_missing(namespace).await?;
        report.transferred += up.transferred;
        report.bytes += up.bytes;
        report.transfer_times.extend(up.transfer_times);
        report.failed.extend(up.failed);
        Ok(report)
    }

    /// Downloads every blob the server has in `namespace` and the local store lacks.
    pub async fn fetch_missing(&self, namespace: &str) -> Result<SyncReport, ClientError> {
        check_name("namespace", namespace)?;
        let remote = self.inner.remote.list(namespace).await?;
        let store = self.inner.store.clone();
        let ns = namespace.to_owned();
        let local: std::collections::HashSet<String> =
            blocking(move || store.local_ids(&ns)).await?.into_iter().collect();
        let missing: Vec<String> = remote.into_iter().filter(|id| !local.contains(id)).collect();
        let results = futures::stream::iter(missing)
            .map(|id| async move {
                let started = std::time::Instant::now();
                let result = self
                    .download(namespace, &id)
                    .await
                    .map(|p| (p.len() as u64, started.elapsed()));
                (id, result)
            })
            .buffer_unordered(self.inner.concurrency)
            .collect::<Vec<_>>()
            .await;
        Ok(report(results))
    }
}

/// One transfer's result: bytes moved and time taken, or why it failed.
type TransferResult = (String, Result<(u64, std::time::Duration), ClientError>);

fn report(results: Vec<TransferResult>) -> SyncReport {
    let mut r = SyncReport::default();
    for (id, result) in results {
        match result {
            Ok((bytes, took)) => {
                r.transferred += 1;
                r.bytes += bytes;
                r.transfer_times.push(took);
            }
            Err(e) => r.failed.push((id, e)),
        }
    }
    r
}
