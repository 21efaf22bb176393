//! Format v1: Soledad's blob format, byte for byte.
//!
//! `base64url(preamble) || ' ' || AES-256-GCM(ciphertext) || tag`, with a 16-byte random IV
//! (not the usual 12, so the GCM counter block is derived through GHASH) and the raw
//! preamble as associated data. Beyond upstream, decryption here also refuses a content size
//! that does not match the plaintext, an id that does not match the request, and any scheme
//! but `Symkey` (scheme downgrade, spec bug 1): external blobs are opened with
//! [`split`] by callers that allow them.

use aes_gcm::aead::consts::U16;
use aes_gcm::aes::Aes256;
use aes_gcm::{AeadInOut, AesGcm, KeyInit};

use crate::preamble::{IMMUTABLE_REVISION, PREAMBLE_B64_LEN, content_size_ceiling};
use crate::{BlobSecret, FormatError, Method, Preamble, Scheme};

/// Length of the GCM tag at the end of a blob.
pub const TAG_LEN: usize = 16;
/// Length of the IV.
pub const IV_LEN: usize = 16;
/// Bytes a v1 blob adds to its plaintext: preamble, separator and tag (753).
pub const OVERHEAD: usize = PREAMBLE_B64_LEN + 1 + TAG_LEN;
/// Upstream's legacy preamble is 724 base64 characters; nothing valid is longer than this.
const MAX_PREAMBLE_TEXT: usize = PREAMBLE_B64_LEN;

type Aes256Gcm16 = AesGcm<Aes256, U16>;

/// The parts of a blob that are random or time-dependent; fixed only by tests.
#[derive(Debug, Clone, Copy)]
pub struct Nonces {
    pub iv: [u8; IV_LEN],
    pub timestamp: u64,
}

impl Nonces {
    /// A fresh random IV and the current time.
    pub fn fresh() -> Self {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self {
            iv: rand::random(),
            timestamp,
        }
    }
}

/// Encrypts `plaintext` as blob `blob_id` with a fresh IV.
pub fn encrypt(secret: &BlobSecret, blob_id: &str, plaintext: &[u8]) -> Result<Vec<u8>, FormatError> {
    encrypt_with(secret, blob_id, plaintext, Nonces::fresh())
}

/// Encrypts with the given IV and timestamp. Reusing an IV under one blob id breaks GCM, so
/// outside tests use [`encrypt`].
pub fn encrypt_with(
    secret: &BlobSecret,
    blob_id: &str,
    plaintext: &[u8],
    nonces: Nonces,
) -> Result<Vec<u8>, FormatError> {
    let len = plaintext.len() as u64;
    let preamble = Preamble {
        scheme: Scheme::Symkey,
        method: Method::Aes256Gcm,
        timestamp: nonces.timestamp,
        iv: nonces.iv,
        doc_id: blob_id.to_owned(),
        rev: IMMUTABLE_REVISION.to_owned(),
        content_size: Some(content_size_ceiling(len).ok_or(FormatError::TooLarge(len))?),
    };
    let raw = preamble.to_bytes()?;
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(preamble.to_base64()?.as_bytes());
    out.push(b' ');
    let body_start = out.len();
    out.extend_from_slice(plaintext);
    let cipher = Aes256Gcm16::new(&secret.blob_key(blob_id).0.into());
    let tag = cipher
        .encrypt_inout_detached(&nonces.iv.into(), &raw, (&mut out[body_start..]).into())
        .map_err(|_| FormatError::TooLarge(len))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// A blob cut into its parts, not yet authenticated.
#[derive(Debug)]
pub struct Parts<'a> {
    pub preamble: Preamble,
    /// The binary preamble exactly as decoded: the associated data.
    pub raw_preamble: Vec<u8>,
    /// Everything after the separator: ciphertext and tag for symmetric blobs, the payload
    /// as delivered for external ones.
    pub body: &'a [u8],
}

/// Parses the preamble of any blob, whatever its scheme.
pub fn split(blob: &[u8]) -> Result<Parts<'_>, FormatError> {
    let window = &blob[..blob.len().min(MAX_PREAMBLE_TEXT + 1)];
    let sep = window
        .iter()
        .position(|&b| b == b' ')
        .ok_or(FormatError::MissingSeparator {
            max: MAX_PREAMBLE_TEXT + 1,
        })?;
    let (preamble, raw_preamble) = Preamble::from_base64(&blob[..sep])?;
    Ok(Parts {
        preamble,
        raw_preamble,
        body: &blob[sep + 1..],
    })
}

/// Verifies and decrypts a symmetrically encrypted blob that was requested as `blob_id`.
/// `tag_header`, when the server sent one, must match the blob's own tag.
pub fn decrypt(
    secret: &BlobSecret,
    blob_id: &str,
    blob: &[u8],
    tag_header: Option<&[u8; TAG_LEN]>,
) -> Result<Vec<u8>, FormatError> {
    let parts = split(blob)?;
    let p = &parts.preamble;
    if p.scheme != Scheme::Symkey {
        return Err(FormatError::SchemeNotAllowed {
            found: p.scheme,
            expected: Scheme::Symkey,
        });
    }
    if p.method != Method::Aes256Gcm {
        return Err(FormatError::UnsupportedMethod(p.method));
    }
    if p.rev != IMMUTABLE_REVISION {
        return Err(FormatError::BadRevision(p.rev.clone()));
    }
    if p.doc_id != blob_id {
        return Err(FormatError::IdMismatch {
            expected: blob_id.to_owned(),
            found: p.doc_id.clone(),
        });
    }
    let ct_len = parts.body.len().checked_sub(TAG_LEN).ok_or(FormatError::Truncated)?;
    let (ciphertext, tag) = parts.body.split_at(ct_len);
    if let Some(header) = tag_header
        && header.as_slice() != tag
    {
        return Err(FormatError::TagHeaderMismatch);
    }
    let mut plaintext = ciphertext.to_vec();
    let cipher = Aes256Gcm16::new(&secret.blob_key(blob_id).0.into());
    let tag: [u8; TAG_LEN] = tag.try_into().expect("split at TAG_LEN");
    cipher
        .decrypt_inout_detached(
            &p.iv.into(),
            &parts.raw_preamble,
            plaintext.as_mut_slice().into(),
            &tag.into(),
        )
        .map_err(|_| FormatError::Authentication)?;
    if let Some(claimed) = p.content_size {
        let actual = plaintext.len() as u64;
        if content_size_ceiling(actual) != Some(claimed) {
            return Err(FormatError::SizeMismatch { claimed, actual });
        }
    }
    Ok(plaintext)
}
