//! Blobs in an S3 bucket, index in etcd (in progress).

use bytes::Bytes;
use futures::Stream;

use crate::config::S3Config;
use crate::flags::FlagSet;
use crate::storage::{
    BlobRef, ListQuery, Listing, StorageBackend, StorageError, StoreOptions, StoredBlob, Totals, Usage, WriteMode,
};

pub struct S3Backend {
    opts: StoreOptions,
    totals: Totals,
}

pub struct RemoteBlob;

impl RemoteBlob {
    pub async fn bytes(self) -> Result<Bytes, StorageError> {
        Err(StorageError::Unsupported("s3"))
    }
    pub async fn body(self, _start: u64, _len: u64) -> Result<axum::body::Body, StorageError> {
        Err(StorageError::Unsupported("s3"))
    }
}

impl S3Backend {
    pub async fn open(_c: &S3Config, opts: StoreOptions) -> Result<Self, StorageError> {
        let _ = Self {
            opts,
            totals: Totals::default(),
        };
        Err(StorageError::Unsupported("the S3 backend"))
    }
}

impl StorageBackend for S3Backend {
    fn max_blob_size(&self) -> u64 {
        self.opts.max_blob_size
    }
    fn totals(&self) -> &Totals {
        &self.totals
    }
    async fn preload(&self) -> Result<(), StorageError> {
        Ok(())
    }
    async fn healthy(&self) -> bool {
        false
    }
    async fn users(&self) -> Result<Vec<String>, StorageError> {
        Err(StorageError::Unsupported("s3"))
    }
    async fn write<S, E>(&self, _: &BlobRef, _: S, _: WriteMode, _: Option<u64>) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display + Send,
    {
        Err(StorageError::Unsupported("s3"))
    }
    async fn open_blob(&self, _: &BlobRef) -> Result<StoredBlob, StorageError> {
        Err(StorageError::Unsupported("s3"))
    }
    async fn flags(&self, _: &BlobRef) -> Result<FlagSet, StorageError> {
        Err(StorageError::Unsupported("s3"))
    }
    async fn set_flags(&self, _: &BlobRef, _: FlagSet, _: Option<FlagSet>) -> Result<(), StorageError> {
        Err(StorageError::Unsupported("s3"))
    }
    async fn delete(&self, _: &BlobRef) -> Result<(), StorageError> {
        Err(StorageError::Unsupported("s3"))
    }
    async fn list(&self, _: &str, _: &str, _: &ListQuery) -> Result<Listing, StorageError> {
        Err(StorageError::Unsupported("s3"))
    }
    async fn usage(&self, _: &str) -> Result<Usage, StorageError> {
        Err(StorageError::Unsupported("s3"))
    }
}
