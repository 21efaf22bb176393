//! Format v1: Soledad's blob format, byte for byte.
//!
//! `base64url(preamble) || ' ' || AES-256-GCM(ciphertext) || tag`, with a 16-byte random IV
//! (not the usual 12, so the GCM counter block is derived through GHASH) and the raw
//! preamble as associated data. Beyond upstream, decryption here also refuses a content size
//! that does not match the plaintext, an id that does not match the request, and any scheme
//! but `Symkey` (scheme downgrade, spec bug 1): external blobs are opened with [`split`] by
//! callers that allow them.
//!
//! OpenSSL does the AES-GCM: it is the fastest implementation here that takes a 16-byte IV,
//! and it streams, so neither side holds a whole blob (`benches/formats.rs` compares it with
//! RustCrypto's). One GCM tag covers the whole blob, so streamed plaintext is unverified
//! until [`Decryptor::finish`] says otherwise.

use openssl::symm::{Cipher, Crypter, Mode};

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
/// OpenSSL may write up to one block beyond its input.
const BLOCK: usize = 16;

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

/// Loads what OpenSSL loads on a process's first cipher (its default provider and the
/// algorithm tables), so that the first blob does not pay for it. Harmless to repeat.
pub fn load_cipher() {
    let _ = Crypter::new(Cipher::aes_256_gcm(), Mode::Encrypt, &[0; 32], Some(&[0; IV_LEN]));
}

fn crypter(mode: Mode, secret: &BlobSecret, blob_id: &str, iv: &[u8; IV_LEN], aad: &[u8]) -> Crypter {
    let key = secret.blob_key(blob_id);
    let mut c = Crypter::new(Cipher::aes_256_gcm(), mode, &key.0, Some(iv)).expect("AES-256-GCM with a 16-byte IV");
    c.pad(false);
    c.aad_update(aad).expect("GCM takes associated data before the text");
    c
}

/// Appends `input` run through `c` to `out`.
fn run(c: &mut Crypter, input: &[u8], out: &mut Vec<u8>) {
    crate::injected_cost::crypto(input.len());
    let base = out.len();
    out.resize(base + input.len() + BLOCK, 0);
    let n = c.update(input, &mut out[base..]).expect("GCM update cannot fail");
    out.truncate(base + n);
}

/// Streams a plaintext of known length into a v1 blob.
pub struct Encryptor {
    crypter: Crypter,
    remaining: u64,
}

impl Encryptor {
    /// Starts a blob; returns the encryptor and the blob's first bytes (preamble and
    /// separator).
    pub fn new(secret: &BlobSecret, blob_id: &str, plaintext_len: u64) -> Result<(Self, Vec<u8>), FormatError> {
        Self::with_nonces(secret, blob_id, plaintext_len, Nonces::fresh())
    }

    /// As [`Encryptor::new`] with a given IV and timestamp. Reusing an IV under one blob id
    /// breaks GCM, so outside tests use `new`.
    pub fn with_nonces(
        secret: &BlobSecret,
        blob_id: &str,
        plaintext_len: u64,
        nonces: Nonces,
    ) -> Result<(Self, Vec<u8>), FormatError> {
        let preamble = Preamble {
            scheme: Scheme::Symkey,
            method: Method::Aes256Gcm,
            timestamp: nonces.timestamp,
            iv: nonces.iv,
            doc_id: blob_id.to_owned(),
            rev: IMMUTABLE_REVISION.to_owned(),
            content_size: Some(content_size_ceiling(plaintext_len).ok_or(FormatError::TooLarge(plaintext_len))?),
        };
        let raw = preamble.to_bytes()?;
        let mut head = preamble.to_base64()?.into_bytes();
        head.push(b' ');
        let crypter = crypter(Mode::Encrypt, secret, blob_id, &nonces.iv, &raw);
        Ok((
            Self {
                crypter,
                remaining: plaintext_len,
            },
            head,
        ))
    }

    /// Encrypts more plaintext, appending the ciphertext to `out`.
    pub fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
        self.remaining = self
            .remaining
            .checked_sub(input.len() as u64)
            .ok_or(FormatError::SizeMismatch {
                claimed: self.remaining,
                actual: input.len() as u64,
            })?;
        run(&mut self.crypter, input, out);
        Ok(())
    }

    /// Appends the tag; fails if less plaintext came than announced.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), FormatError> {
        if self.remaining != 0 {
            return Err(FormatError::SizeMismatch {
                claimed: self.remaining,
                actual: 0,
            });
        }
        let mut rest = [0u8; BLOCK];
        self.crypter
            .finalize(&mut rest)
            .expect("GCM finalize cannot fail when encrypting");
        let mut tag = [0u8; TAG_LEN];
        self.crypter.get_tag(&mut tag).expect("GCM produces a 16-byte tag");
        out.extend_from_slice(&tag);
        Ok(())
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
    let (mut enc, mut out) = Encryptor::with_nonces(secret, blob_id, plaintext.len() as u64, nonces)?;
    out.reserve_exact(plaintext.len() + TAG_LEN + BLOCK);
    enc.update(plaintext, &mut out)?;
    enc.finish(&mut out)?;
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

/// Where the preamble of a stored blob ends: the offset of the separator, if it is among the
/// first bytes.
pub fn separator_offset(head: &[u8]) -> Option<usize> {
    head[..head.len().min(MAX_PREAMBLE_TEXT + 1)]
        .iter()
        .position(|&b| b == b' ')
}

/// Parses the preamble of any blob, whatever its scheme.
pub fn split(blob: &[u8]) -> Result<Parts<'_>, FormatError> {
    let sep = separator_offset(blob).ok_or(FormatError::MissingSeparator {
        max: MAX_PREAMBLE_TEXT + 1,
    })?;
    let (preamble, raw_preamble) = Preamble::from_base64(&blob[..sep])?;
    Ok(Parts {
        preamble,
        raw_preamble,
        body: &blob[sep + 1..],
    })
}

/// Streams the body of a v1 blob back to plaintext. The last 16 bytes are the tag, so they
/// are held back until [`Decryptor::finish`], which is the only proof that what was emitted
/// is authentic: callers must not trust (store as valid, show) any of it before that.
pub struct Decryptor {
    crypter: Crypter,
    tail: Vec<u8>,
    claimed: Option<u64>,
    produced: u64,
    tag_header: Option<[u8; TAG_LEN]>,
}

impl Decryptor {
    /// Starts decrypting a blob whose preamble was parsed with [`split`] (or from a stream).
    /// `tag_header`, when the server sent one, must match the blob's own tag.
    pub fn new(
        secret: &BlobSecret,
        blob_id: &str,
        preamble: &Preamble,
        raw_preamble: &[u8],
        tag_header: Option<[u8; TAG_LEN]>,
    ) -> Result<Self, FormatError> {
        preamble.check(blob_id, Method::Aes256Gcm)?;
        Ok(Self {
            crypter: crypter(Mode::Decrypt, secret, blob_id, &preamble.iv, raw_preamble),
            tail: Vec::with_capacity(TAG_LEN * 2),
            claimed: preamble.content_size,
            produced: 0,
            tag_header,
        })
    }

    /// Takes more body bytes, appending unverified plaintext to `out`.
    pub fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
        // Everything but the last TAG_LEN bytes seen so far is ciphertext.
        let total = self.tail.len() + input.len();
        if total <= TAG_LEN {
            self.tail.extend_from_slice(input);
            return Ok(());
        }
        let release = total - TAG_LEN;
        let from_tail = release.min(self.tail.len());
        if from_tail > 0 {
            let held: Vec<u8> = self.tail.drain(..from_tail).collect();
            run(&mut self.crypter, &held, out);
        }
        let from_input = release - from_tail;
        run(&mut self.crypter, &input[..from_input], out);
        self.tail.extend_from_slice(&input[from_input..]);
        self.produced += release as u64;
        Ok(())
    }

    /// Verifies the tag (and the size the preamble claims).
    pub fn finish(mut self) -> Result<u64, FormatError> {
        let tag: [u8; TAG_LEN] = self.tail.as_slice().try_into().map_err(|_| FormatError::Truncated)?;
        if let Some(header) = self.tag_header
            && header != tag
        {
            return Err(FormatError::TagHeaderMismatch);
        }
        self.crypter.set_tag(&tag).expect("a 16-byte tag is accepted");
        let mut rest = [0u8; BLOCK];
        self.crypter
            .finalize(&mut rest)
            .map_err(|_| FormatError::Authentication)?;
        if let Some(claimed) = self.claimed
            && content_size_ceiling(self.produced) != Some(claimed)
        {
            return Err(FormatError::SizeMismatch {
                claimed,
                actual: self.produced,
            });
        }
        Ok(self.produced)
    }
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
    if parts.body.len() < TAG_LEN {
        parts.preamble.check(blob_id, Method::Aes256Gcm)?;
        return Err(FormatError::Truncated);
    }
    let mut dec = Decryptor::new(
        secret,
        blob_id,
        &parts.preamble,
        &parts.raw_preamble,
        tag_header.copied(),
    )?;
    let mut plaintext = Vec::with_capacity(parts.body.len());
    dec.update(parts.body, &mut plaintext)?;
    dec.finish()?;
    Ok(plaintext)
}
