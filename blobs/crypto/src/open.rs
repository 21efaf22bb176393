//! Opening a blob of any format: the preamble says which, the namespace says what is
//! allowed. A blob that claims a scheme its namespace does not accept is refused, so a
//! server cannot swap an encrypted attachment for a plaintext one (upstream's scheme
//! downgrade, spec bug 1).

use crate::v1::TAG_LEN;
use crate::{BlobSecret, FormatError, Method, Preamble, Scheme, v1, v2};

/// What a namespace accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemePolicy {
    /// Only blobs this user's clients encrypted (every namespace but the incoming box).
    SymkeyOnly,
    /// Also blobs encrypted by a third party, such as mail delivered to the `MX` namespace;
    /// their payload is returned as delivered, for the application to decrypt.
    AllowExternal,
}

/// A body decryptor for whichever format the preamble names.
pub enum BodyDecryptor {
    V1(v1::Decryptor),
    V2(v2::Decryptor),
    /// An external-scheme payload, passed through unchanged.
    External,
}

impl BodyDecryptor {
    pub fn new(
        secret: &BlobSecret,
        blob_id: &str,
        preamble: &Preamble,
        raw_preamble: &[u8],
        tag_header: Option<[u8; TAG_LEN]>,
        policy: SchemePolicy,
    ) -> Result<Self, FormatError> {
        match (preamble.scheme, preamble.method) {
            (Scheme::External, _) if policy == SchemePolicy::AllowExternal => {
                if preamble.doc_id != blob_id {
                    return Err(FormatError::IdMismatch {
                        expected: blob_id.to_owned(),
                        found: preamble.doc_id.clone(),
                    });
                }
                Ok(Self::External)
            }
            (Scheme::External, _) => Err(FormatError::SchemeNotAllowed {
                found: Scheme::External,
                expected: Scheme::Symkey,
            }),
            (Scheme::Symkey, Method::Aes256Gcm) => Ok(Self::V1(v1::Decryptor::new(
                secret,
                blob_id,
                preamble,
                raw_preamble,
                tag_header,
            )?)),
            (Scheme::Symkey, Method::Aes256GcmChunked) => Ok(Self::V2(v2::Decryptor::resume(
                secret,
                blob_id,
                preamble,
                raw_preamble,
                v2::Progress {
                    next_chunk: 0,
                    plaintext_len: None,
                    plaintext_done: 0,
                },
            )?)),
            (Scheme::Symkey, other) => Err(FormatError::UnsupportedMethod(other)),
        }
    }

    /// Whatever `update` appends is already authentic (v2 verifies chunk by chunk); for v1
    /// nothing is until `finish` succeeds.
    pub fn verifies_as_it_goes(&self) -> bool {
        !matches!(self, Self::V1(_))
    }

    pub fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
        match self {
            Self::V1(d) => d.update(input, out),
            Self::V2(d) => d.update(input, out),
            Self::External => {
                out.extend_from_slice(input);
                Ok(())
            }
        }
    }

    pub fn finish(self) -> Result<(), FormatError> {
        match self {
            Self::V1(d) => d.finish().map(|_| ()),
            Self::V2(d) => d.finish().map(|_| ()),
            Self::External => Ok(()),
        }
    }
}

/// Verifies and decrypts a whole blob of any format in memory.
pub fn decrypt(
    secret: &BlobSecret,
    blob_id: &str,
    blob: &[u8],
    tag_header: Option<[u8; TAG_LEN]>,
    policy: SchemePolicy,
) -> Result<Vec<u8>, FormatError> {
    let parts = v1::split(blob)?;
    let mut dec = BodyDecryptor::new(
        secret,
        blob_id,
        &parts.preamble,
        &parts.raw_preamble,
        tag_header,
        policy,
    )?;
    let mut out = Vec::with_capacity(parts.body.len());
    dec.update(parts.body, &mut out)?;
    dec.finish()?;
    Ok(out)
}
