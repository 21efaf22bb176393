//! The client side of Soledad's blobs: a [`BlobManager`] that keeps blobs in an encrypted
//! local store ([`SqlcipherStore`] by default, or [`FsStore`]) and syncs them, encrypted per
//! blob, with a blobs server: transfers scheduled by priority with aging, retried with
//! backoff, resumable, throttled, and reported as [`Event`]s. [`IncomingBox`] processes what
//! a mail service delivered. The `blobs` command is a thin layer over this library.

mod download;
mod error;
mod events;
mod fs_store;
mod incoming;
pub mod keys;
mod manager;
mod remote;
mod retry;
pub mod scheduler;
mod sealed;
mod sqlcipher_store;
mod store;
mod sync;
mod throttle;
mod upload;

pub use error::{ClientError, ErrorClass};
pub use events::{Direction, Event};
pub use fs_store::FsStore;
pub use incoming::{Consumer, IncomingBox, IncomingConfig, IncomingReport};
pub use manager::{BlobFormat, BlobManager, Config, PutOptions, SyncReport};
pub use remote::{
    BlobResponse, Credentials, Flag, ListOptions, Order, Remote, RemoteMeta, RemoteOptions, UploadMode, Usage,
};
pub use retry::RetryPolicy;
pub use sqlcipher_store::SqlcipherStore;
pub use store::{
    BlobState, ContentInfo, ContentReader, ContentWriter, FailureKind, LocalStore, Priority, ReadAdapter,
    ResumedDownload, StoreError, SyncStatus, read_all,
};
pub use throttle::Throttle;
pub use upload::blob_len;

/// True if `s` is a valid blob id or namespace for the server: 1-200 of `[A-Za-z0-9_-]`.
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 200 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Refuses names the server would refuse, before any request is made.
pub(crate) fn check_name(what: &'static str, value: &str) -> Result<(), ClientError> {
    if is_valid_name(value) {
        Ok(())
    } else {
        Err(ClientError::InvalidName {
            what,
            value: value.to_owned(),
        })
    }
}
