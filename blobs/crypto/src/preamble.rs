//! The 552-byte binary preamble of Soledad's blob format.
//!
//! Upstream packs it with Python's native-mode `struct` format `2sbbQ16s255p255pQ`, which on
//! x86-64 means little-endian integers and C alignment padding. The layout is written out
//! here byte by byte so that it is the same on every platform.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;

use crate::FormatError;

/// Length of the binary preamble.
pub const PREAMBLE_LEN: usize = 552;
/// Length of the pre-0.10 preamble, which lacks the content size. Still decoded.
pub const LEGACY_PREAMBLE_LEN: usize = 542;
/// Length of the base64url preamble as it appears at the start of a stored blob.
pub const PREAMBLE_B64_LEN: usize = 736;
/// The only revision blobs carry.
pub const IMMUTABLE_REVISION: &str = "ImmutableRevision";

const MAGIC: [u8; 2] = [0x13, 0x37];
const PASCAL_FIELD_LEN: usize = 255;
const PASCAL_MAX: usize = PASCAL_FIELD_LEN - 1;
const OFF_SCHEME: usize = 2;
const OFF_METHOD: usize = 3;
const OFF_TIMESTAMP: usize = 8;
const OFF_IV: usize = 16;
const OFF_DOC_ID: usize = 32;
const OFF_REV: usize = OFF_DOC_ID + PASCAL_FIELD_LEN;
const OFF_SIZE: usize = 544;

/// Who encrypted the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Encrypted by the user's own client with the symmetric per-blob key.
    Symkey = 1,
    /// Encrypted by a third party (the MX delivering mail with OpenPGP).
    External = 2,
}

/// The cipher of the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Aes256Ctr = 1,
    /// Format v1: one AES-256-GCM message.
    Aes256Gcm = 2,
    Pgp = 3,
    /// Format v2 (this project's): AES-256-GCM in authenticated 64 KiB chunks, padded. See
    /// `FORMAT.md`.
    Aes256GcmChunked = 4,
}

impl TryFrom<i8> for Scheme {
    type Error = FormatError;
    fn try_from(v: i8) -> Result<Self, FormatError> {
        match v {
            1 => Ok(Self::Symkey),
            2 => Ok(Self::External),
            other => Err(FormatError::UnknownScheme(other)),
        }
    }
}

impl TryFrom<i8> for Method {
    type Error = FormatError;
    fn try_from(v: i8) -> Result<Self, FormatError> {
        match v {
            1 => Ok(Self::Aes256Ctr),
            2 => Ok(Self::Aes256Gcm),
            3 => Ok(Self::Pgp),
            4 => Ok(Self::Aes256GcmChunked),
            other => Err(FormatError::UnknownMethod(other)),
        }
    }
}

/// A decoded preamble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preamble {
    pub scheme: Scheme,
    pub method: Method,
    /// Seconds since the epoch at encryption time.
    pub timestamp: u64,
    pub iv: [u8; 16],
    pub doc_id: String,
    pub rev: String,
    /// The plaintext size rounded up by [`content_size_ceiling`]; `None` in legacy preambles.
    pub content_size: Option<u64>,
}

/// Upstream's size rounding: the smallest power of two, at least 4096, strictly greater than
/// `len`. Upstream stops at 2^30 and crashes above; this continues to 2^63.
pub fn content_size_ceiling(len: u64) -> Option<u64> {
    (12..64).map(|i| 1u64 << i).find(|&c| c > len)
}

impl Preamble {
    /// Whether this preamble is what a blob of `blob_id` in a format of `method` must carry:
    /// a symmetric-key blob, of that method, of the immutable revision, naming that blob.
    pub(crate) fn check(&self, blob_id: &str, method: Method) -> Result<(), FormatError> {
        if self.scheme != Scheme::Symkey {
            return Err(FormatError::SchemeNotAllowed {
                found: self.scheme,
                expected: Scheme::Symkey,
            });
        }
        if self.method != method {
            return Err(FormatError::UnsupportedMethod(self.method));
        }
        if self.rev != IMMUTABLE_REVISION {
            return Err(FormatError::BadRevision(self.rev.clone()));
        }
        if self.doc_id != blob_id {
            return Err(FormatError::IdMismatch {
                expected: blob_id.to_owned(),
                found: self.doc_id.clone(),
            });
        }
        Ok(())
    }

    /// The binary form. Fails if an id or revision does not fit its 254-byte field: upstream
    /// truncated them silently, which made the blob undecryptable under its own id.
    pub fn to_bytes(&self) -> Result<[u8; PREAMBLE_LEN], FormatError> {
        let mut out = [0u8; PREAMBLE_LEN];
        out[..2].copy_from_slice(&MAGIC);
        out[OFF_SCHEME] = self.scheme as u8;
        out[OFF_METHOD] = self.method as u8;
        out[OFF_TIMESTAMP..OFF_TIMESTAMP + 8].copy_from_slice(&self.timestamp.to_le_bytes());
        out[OFF_IV..OFF_IV + 16].copy_from_slice(&self.iv);
        write_pascal(&mut out[OFF_DOC_ID..OFF_REV], "blob id", &self.doc_id)?;
        write_pascal(&mut out[OFF_REV..OFF_REV + PASCAL_FIELD_LEN], "revision", &self.rev)?;
        let size = self.content_size.unwrap_or(0);
        out[OFF_SIZE..].copy_from_slice(&size.to_le_bytes());
        Ok(out)
    }

    /// The base64url form that starts a stored blob (736 characters).
    pub fn to_base64(&self) -> Result<String, FormatError> {
        Ok(URL_SAFE.encode(self.to_bytes()?))
    }

    /// Decodes the binary preamble (552 bytes, or 542 for the legacy layout).
    pub fn from_bytes(raw: &[u8]) -> Result<Self, FormatError> {
        if raw.len() != PREAMBLE_LEN && raw.len() != LEGACY_PREAMBLE_LEN {
            return Err(FormatError::BadPreambleLength(raw.len()));
        }
        if raw[..2] != MAGIC {
            return Err(FormatError::BadMagic([raw[0], raw[1]]));
        }
        let scheme = Scheme::try_from(raw[OFF_SCHEME] as i8)?;
        let method = Method::try_from(raw[OFF_METHOD] as i8)?;
        let timestamp = u64::from_le_bytes(raw[OFF_TIMESTAMP..OFF_TIMESTAMP + 8].try_into().unwrap());
        let iv: [u8; 16] = raw[OFF_IV..OFF_IV + 16].try_into().unwrap();
        let doc_id = read_pascal(&raw[OFF_DOC_ID..OFF_REV]);
        let rev = read_pascal(&raw[OFF_REV..OFF_REV + PASCAL_FIELD_LEN]);
        let content_size = (raw.len() == PREAMBLE_LEN).then(|| u64::from_le_bytes(raw[OFF_SIZE..].try_into().unwrap()));
        Ok(Self {
            scheme,
            method,
            timestamp,
            iv,
            doc_id,
            rev,
            content_size,
        })
    }

    /// Decodes the base64url text before the first space of a stored blob.
    pub fn from_base64(text: &[u8]) -> Result<(Self, Vec<u8>), FormatError> {
        let raw = URL_SAFE.decode(text).map_err(|_| FormatError::BadBase64)?;
        Ok((Self::from_bytes(&raw)?, raw))
    }
}

fn write_pascal(field: &mut [u8], name: &'static str, value: &str) -> Result<(), FormatError> {
    let bytes = value.as_bytes();
    if bytes.len() > PASCAL_MAX {
        return Err(FormatError::FieldTooLong {
            field: name,
            len: bytes.len(),
        });
    }
    field[0] = bytes.len() as u8;
    field[1..1 + bytes.len()].copy_from_slice(bytes);
    Ok(())
}

/// Python's `p` format: a length byte, clamped to the field, then the data. Invalid UTF-8 is
/// replaced rather than rejected; the caller compares the result with the expected id anyway.
fn read_pascal(field: &[u8]) -> String {
    let len = (field[0] as usize).min(PASCAL_MAX);
    String::from_utf8_lossy(&field[1..1 + len]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Preamble {
        Preamble {
            scheme: Scheme::Symkey,
            method: Method::Aes256Gcm,
            timestamp: 1_500_000_000,
            iv: [7; 16],
            doc_id: "blob_id".into(),
            rev: IMMUTABLE_REVISION.into(),
            content_size: Some(4096),
        }
    }

    #[test]
    fn round_trips_through_bytes_and_base64() {
        let p = sample();
        let b64 = p.to_base64().unwrap();
        assert_eq!(b64.len(), PREAMBLE_B64_LEN);
        let (back, raw) = Preamble::from_base64(b64.as_bytes()).unwrap();
        assert_eq!(back, p);
        assert_eq!(raw.len(), PREAMBLE_LEN);
    }

    #[test]
    fn legacy_layout_decodes_without_size() {
        let raw = sample().to_bytes().unwrap();
        let legacy = Preamble::from_bytes(&raw[..LEGACY_PREAMBLE_LEN]).unwrap();
        assert_eq!(legacy.content_size, None);
        assert_eq!(legacy.doc_id, "blob_id");
    }

    #[test]
    fn rejects_wrong_length_magic_and_enums() {
        let raw = sample().to_bytes().unwrap();
        assert_eq!(
            Preamble::from_bytes(&raw[..100]),
            Err(FormatError::BadPreambleLength(100))
        );
        let mut bad = raw;
        bad[0] = 0;
        assert!(matches!(Preamble::from_bytes(&bad), Err(FormatError::BadMagic(_))));
        let mut bad = raw;
        bad[OFF_SCHEME] = 9;
        assert_eq!(Preamble::from_bytes(&bad), Err(FormatError::UnknownScheme(9)));
        let mut bad = raw;
        bad[OFF_METHOD] = 0;
        assert_eq!(Preamble::from_bytes(&bad), Err(FormatError::UnknownMethod(0)));
    }

    #[test]
    fn refuses_ids_that_do_not_fit() {
        let mut p = sample();
        p.doc_id = "x".repeat(255);
        assert_eq!(
            p.to_bytes(),
            Err(FormatError::FieldTooLong {
                field: "blob id",
                len: 255
            })
        );
        p.doc_id = "x".repeat(254);
        assert!(p.to_bytes().is_ok());
    }

    #[test]
    fn ceiling_matches_upstream_and_extends_past_one_gib() {
        assert_eq!(content_size_ceiling(0), Some(4096));
        assert_eq!(content_size_ceiling(4095), Some(4096));
        assert_eq!(content_size_ceiling(4096), Some(8192));
        assert_eq!(content_size_ceiling((1 << 30) - 1), Some(1 << 30));
        assert_eq!(content_size_ceiling(1 << 30), Some(1 << 31));
        assert_eq!(content_size_ceiling(u64::MAX), None);
    }
}
