//! What the BlobManager needs from a local store. Calls block; the manager runs them on
//! tokio's blocking pool so that the event loop stays responsive.

/// Where a blob stands with respect to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncStatus {
    Synced = 1,
    PendingUpload = 2,
    PendingDownload = 3,
    FailedUpload = 4,
    /// Downloaded but failed verification too often: unusable until the server copy changes.
    FailedDownload = 5,
    PendingDelete = 6,
    /// Never uploaded.
    LocalOnly = 7,
    /// The server refused the upload for lack of quota.
    QuotaExceeded = 8,
}

impl SyncStatus {
    pub fn from_code(code: i64) -> Option<Self> {
        use SyncStatus::*;
        [
            Synced,
            PendingUpload,
            PendingDownload,
            FailedUpload,
            FailedDownload,
            PendingDelete,
            LocalOnly,
            QuotaExceeded,
        ]
        .into_iter()
        .find(|s| *s as i64 == code)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open local store {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("blob {namespace}/{id} already exists in the local store")]
    Exists { namespace: String, id: String },
    #[error("local store failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("local store holds an unknown sync status {0}")]
    BadStatus(i64),
}

/// A local store of plaintext blobs, keyed by (namespace, blob id), with their sync status.
pub trait LocalStore: Send + Sync + 'static {
    /// Stores a new blob and its status in one transaction.
    fn insert(&self, namespace: &str, id: &str, data: &[u8], status: SyncStatus) -> Result<(), StoreError>;
    fn get(&self, namespace: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn status(&self, namespace: &str, id: &str) -> Result<Option<SyncStatus>, StoreError>;
    fn set_status(&self, namespace: &str, id: &str, status: SyncStatus) -> Result<(), StoreError>;
    /// Ids in `namespace` with `status`, in id order.
    fn ids_with_status(&self, namespace: &str, status: SyncStatus) -> Result<Vec<String>, StoreError>;
    /// Ids in `namespace` that have content locally, in id order.
    fn local_ids(&self, namespace: &str) -> Result<Vec<String>, StoreError>;
}
