//! The client side of Soledad's blobs: a [`BlobManager`] that keeps blobs in an encrypted
//! local store and syncs them, encrypted per blob, with a blobs server.

mod error;
mod manager;
mod remote;
mod sqlcipher_store;
mod store;

pub use error::ClientError;
pub use manager::{BlobManager, SyncReport};
pub use remote::{Credentials, Remote};
pub use sqlcipher_store::SqlcipherStore;
pub use store::{LocalStore, StoreError, SyncStatus};

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
