use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::FormatError;

/// Soledad's `remote_secret`: the per-blob keys are HMAC-SHA256 of the blob id keyed with
/// everything after its first 64 bytes (the first 64 are used for other purposes upstream).
#[derive(Clone)]
pub struct BlobSecret(Vec<u8>);

const RESERVED_PREFIX: usize = 64;

impl BlobSecret {
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, FormatError> {
        let secret = secret.into();
        if secret.len() <= RESERVED_PREFIX {
            return Err(FormatError::SecretTooShort(secret.len()));
        }
        Ok(Self(secret))
    }

    /// The AES-256 key of one blob.
    pub fn blob_key(&self, blob_id: &str) -> BlobKey {
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.0[RESERVED_PREFIX..])
            .expect("HMAC accepts keys of any length");
        mac.update(blob_id.as_bytes());
        BlobKey(mac.finalize().into_bytes().into())
    }
}

impl std::fmt::Debug for BlobSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobSecret({} bytes)", self.0.len())
    }
}

/// A 256-bit per-blob key.
#[derive(Clone, PartialEq, Eq)]
pub struct BlobKey(pub [u8; 32]);

impl std::fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobKey(..)")
    }
}
