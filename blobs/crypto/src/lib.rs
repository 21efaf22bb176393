//! The Soledad blob format.
//!
//! A stored blob is `base64url(preamble) || b' ' || ciphertext || tag`. The preamble carries
//! the blob id, a timestamp, the IV and a rounded content size; it is the AES-GCM associated
//! data, so every field in it is authenticated. See `soledad-blobs-spec.md` section 3 in the
//! design notes for the original, and [`v1`] for what this crate checks beyond it.

mod error;
pub mod injected_cost;
mod key;
pub mod open;
mod padding;
mod preamble;
pub mod v1;
pub mod v2;

pub use error::FormatError;
pub use key::{BlobKey, BlobSecret};
pub use padding::{MIN_BUCKET, bucket};
pub use preamble::{
    IMMUTABLE_REVISION, LEGACY_PREAMBLE_LEN, Method, PREAMBLE_B64_LEN, PREAMBLE_LEN, Preamble, Scheme,
    content_size_ceiling,
};

/// The value of the `Tag` response header for a stored blob: base64url of its last 16 bytes
/// (the GCM tag for symmetrically encrypted blobs). `None` for blobs shorter than a tag.
pub fn tag_header(blob_tail: &[u8]) -> Option<String> {
    use base64::Engine as _;
    let start = blob_tail.len().checked_sub(v1::TAG_LEN)?;
    Some(base64::engine::general_purpose::URL_SAFE.encode(&blob_tail[start..]))
}
