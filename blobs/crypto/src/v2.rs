//! Format v2: chunked, padded AES-256-GCM, streamed in bounded memory. `FORMAT.md` beside
//! this crate is the specification; this is its implementation.
//!
//! In short: the preamble of v1 (method 4, content size = padded size, IV field = a random
//! 16-byte salt) is followed by the sealed chunks of `u64 length || plaintext || zeros` padded
//! to a size bucket. Each 64 KiB chunk is sealed on its own with a key and nonce prefix
//! derived from the blob key and the salt, its index and a last-chunk flag in the nonce, and
//! the preamble's SHA-256 as associated data. So every chunk can be verified as soon as it
//! arrives (a resumed download keeps what it verified), and truncation, reordering, or a
//! changed preamble are always detected.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use sha2::{Digest, Sha256};

use crate::padding::bucket;
use crate::preamble::{IMMUTABLE_REVISION, PREAMBLE_B64_LEN};
use crate::v1::{Nonces, Parts};
use crate::{BlobSecret, FormatError, Method, Preamble, Scheme};

/// Plaintext bytes per chunk.
pub const CHUNK_LEN: usize = 64 * 1024;
/// GCM tag per chunk.
pub const TAG_LEN: usize = 16;
/// A sealed full chunk.
pub const SEALED_CHUNK_LEN: usize = CHUNK_LEN + TAG_LEN;
/// The encrypted length prefix at the start of the padded stream.
const LEN_PREFIX: usize = 8;
const NONCE_PREFIX_LEN: usize = 7;
const HKDF_INFO: &[u8] = b"soledad-bench blob format v2";

/// Size of the padded stream (length prefix, plaintext, zeros) for a plaintext.
pub fn padded_len(plaintext_len: u64) -> u64 {
    bucket(plaintext_len + LEN_PREFIX as u64)
}

/// Number of chunks of a padded stream.
fn chunk_count(padded: u64) -> u64 {
    padded.div_ceil(CHUNK_LEN as u64)
}

/// Length of the body (sealed chunks) of a blob whose padded stream is `padded` bytes.
pub fn body_len(padded: u64) -> u64 {
    padded + TAG_LEN as u64 * chunk_count(padded)
}

/// Length of a whole stored blob for a plaintext of `plaintext_len` bytes.
pub fn blob_len(plaintext_len: u64) -> u64 {
    (PREAMBLE_B64_LEN + 1) as u64 + body_len(padded_len(plaintext_len))
}

struct HkdfLen(usize);

impl hkdf::KeyType for HkdfLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// The per-blob sealing key and nonce prefix, derived from the blob key and the salt.
struct ChunkKeys {
    key: LessSafeKey,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    /// SHA-256 of the binary preamble: every chunk's associated data.
    aad: [u8; 32],
}

impl ChunkKeys {
    fn derive(secret: &BlobSecret, blob_id: &str, salt: &[u8; 16], raw_preamble: &[u8]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&secret.blob_key(blob_id).0);
        let mut okm = [0u8; 32 + NONCE_PREFIX_LEN];
        prk.expand(&[HKDF_INFO], HkdfLen(okm.len()))
            .and_then(|o| o.fill(&mut okm))
            .expect("HKDF-SHA256 can produce 39 bytes");
        let key = UnboundKey::new(&AES_256_GCM, &okm[..32]).expect("32 bytes is an AES-256 key");
        Self {
            key: LessSafeKey::new(key),
            nonce_prefix: okm[32..].try_into().expect("7 bytes"),
            aad: Sha256::digest(raw_preamble).into(),
        }
    }

    fn nonce(&self, index: u64, last: bool) -> Result<Nonce, FormatError> {
        let index: u32 = index
            .try_into()
            .map_err(|_| FormatError::TooLarge(index * CHUNK_LEN as u64))?;
        let mut n = [0u8; 12];
        n[..NONCE_PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        n[NONCE_PREFIX_LEN..11].copy_from_slice(&index.to_be_bytes());
        n[11] = last as u8;
        Ok(Nonce::assume_unique_for_key(n))
    }

    fn seal(&self, index: u64, last: bool, chunk: &mut [u8]) -> Result<[u8; TAG_LEN], FormatError> {
        crate::injected_cost::crypto(chunk.len());
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(index, last)?, Aad::from(self.aad), chunk)
            .map_err(|_| FormatError::TooLarge(chunk.len() as u64))?;
        Ok(tag.as_ref().try_into().expect("GCM tags are 16 bytes"))
    }

    /// Seals the chunk `head || plain`: `head` in place, `plain` into `out` (its ciphertext,
    /// then the tag) without copying it first.
    fn seal_into(
        &self,
        index: u64,
        last: bool,
        head: &mut [u8],
        plain: &[u8],
        out: &mut [u8],
    ) -> Result<(), FormatError> {
        crate::injected_cost::crypto(head.len() + plain.len());
        self.key
            .seal_in_place_scatter(self.nonce(index, last)?, Aad::from(self.aad), head, plain, out)
            .map_err(|_| FormatError::TooLarge((head.len() + plain.len()) as u64))
    }

    /// Opens `sealed` (ciphertext, then the tag) into `out`, without copying it first.
    fn open_into(&self, index: u64, last: bool, sealed: &[u8], out: &mut [u8]) -> Result<(), FormatError> {
        let (ciphertext, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        crate::injected_cost::crypto(ciphertext.len());
        self.key
            .open_separate_gather(self.nonce(index, last)?, Aad::from(self.aad), ciphertext, tag, out)
            .map_err(|_| FormatError::Authentication)
    }
}

/// Streams a plaintext of known length into a v2 blob.
pub struct Encryptor {
    keys: ChunkKeys,
    plaintext_len: u64,
    padded: u64,
    chunks: u64,
    /// Padded-stream bytes emitted so far (length prefix, plaintext, padding).
    produced: u64,
    index: u64,
    /// The chunk being filled.
    chunk: Vec<u8>,
}

impl Encryptor {
    /// Starts a blob; returns the encryptor and the blob's first bytes (preamble and
    /// separator).
    pub fn new(secret: &BlobSecret, blob_id: &str, plaintext_len: u64) -> Result<(Self, Vec<u8>), FormatError> {
        Self::with_nonces(secret, blob_id, plaintext_len, Nonces::fresh())
    }

    /// As [`Encryptor::new`] with a given salt and timestamp; a repeated salt under one id
    /// repeats nonces, so outside tests use `new`.
    pub fn with_nonces(
        secret: &BlobSecret,
        blob_id: &str,
        plaintext_len: u64,
        nonces: Nonces,
    ) -> Result<(Self, Vec<u8>), FormatError> {
        let padded = padded_len(plaintext_len);
        let preamble = Preamble {
            scheme: Scheme::Symkey,
            method: Method::Aes256GcmChunked,
            timestamp: nonces.timestamp,
            iv: nonces.iv,
            doc_id: blob_id.to_owned(),
            rev: IMMUTABLE_REVISION.to_owned(),
            content_size: Some(padded),
        };
        let raw = preamble.to_bytes()?;
        let mut head = preamble.to_base64()?.into_bytes();
        head.push(b' ');
        let keys = ChunkKeys::derive(secret, blob_id, &nonces.iv, &raw);
        let mut chunk = Vec::with_capacity(SEALED_CHUNK_LEN);
        chunk.extend_from_slice(&plaintext_len.to_le_bytes());
        let enc = Self {
            keys,
            plaintext_len,
            padded,
            chunks: chunk_count(padded),
            produced: LEN_PREFIX as u64,
            index: 0,
            chunk,
        };
        Ok((enc, head))
    }

    /// Plaintext bytes still expected.
    fn remaining_plaintext(&self) -> u64 {
        self.plaintext_len + LEN_PREFIX as u64 - self.produced.min(self.plaintext_len + LEN_PREFIX as u64)
    }

    fn seal_chunk(&mut self, out: &mut Vec<u8>) -> Result<(), FormatError> {
        let last = self.index + 1 == self.chunks;
        let tag = self.keys.seal(self.index, last, &mut self.chunk)?;
        out.extend_from_slice(&self.chunk);
        out.extend_from_slice(&tag);
        self.chunk.clear();
        self.index += 1;
        Ok(())
    }

    /// Encrypts more plaintext, appending every chunk it completes to `out`.
    pub fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
        if input.len() as u64 > self.remaining_plaintext() {
            return Err(FormatError::SizeMismatch {
                claimed: self.plaintext_len,
                actual: self.produced + input.len() as u64,
            });
        }
        while !input.is_empty() {
            if self.chunk.len() + input.len() >= CHUNK_LEN && self.index + 1 < self.chunks {
                // A middle chunk completes: what was held back goes to `out` and is sealed
                // there, the input's part is sealed straight into `out`. Pieces rarely align
                // with chunks (the first holds the length), so this is the usual path.
                let held = self.chunk.len();
                let take = CHUNK_LEN - held;
                let base = out.len();
                out.extend_from_slice(&self.chunk);
                out.resize(base + SEALED_CHUNK_LEN, 0);
                let (head, rest) = out[base..].split_at_mut(held);
                self.keys.seal_into(self.index, false, head, &input[..take], rest)?;
                self.chunk.clear();
                self.index += 1;
                self.produced += take as u64;
                input = &input[take..];
                continue;
            }
            // Part of a chunk, or the last chunk (sealed by `finish`, after its padding).
            let take = (CHUNK_LEN - self.chunk.len()).min(input.len());
            self.chunk.extend_from_slice(&input[..take]);
            self.produced += take as u64;
            input = &input[take..];
        }
        Ok(())
    }

    /// Pads, seals the last chunks and appends them to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), FormatError> {
        if self.remaining_plaintext() != 0 {
            return Err(FormatError::SizeMismatch {
                claimed: self.plaintext_len,
                actual: self.produced - LEN_PREFIX as u64,
            });
        }
        while self.index < self.chunks {
            let left_in_stream = self.padded - self.produced;
            let room = (CHUNK_LEN - self.chunk.len()) as u64;
            let zeros = left_in_stream.min(room) as usize;
            self.chunk.resize(self.chunk.len() + zeros, 0);
            self.produced += zeros as u64;
            self.seal_chunk(out)?;
        }
        Ok(())
    }
}

/// Encrypts a whole plaintext in memory.
pub fn encrypt(secret: &BlobSecret, blob_id: &str, plaintext: &[u8]) -> Result<Vec<u8>, FormatError> {
    encrypt_with(secret, blob_id, plaintext, Nonces::fresh())
}

/// As [`encrypt`] with a given salt and timestamp (tests only).
pub fn encrypt_with(
    secret: &BlobSecret,
    blob_id: &str,
    plaintext: &[u8],
    nonces: Nonces,
) -> Result<Vec<u8>, FormatError> {
    let (mut enc, mut out) = Encryptor::with_nonces(secret, blob_id, plaintext.len() as u64, nonces)?;
    out.reserve_exact(blob_len(plaintext.len() as u64) as usize - out.len());
    enc.update(plaintext, &mut out)?;
    enc.finish(&mut out)?;
    Ok(out)
}

/// Where a decryption stands: enough to resume it after a restart or a dropped connection,
/// keeping every chunk already verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Chunks verified so far: the body can be fetched again from
    /// `next_chunk * SEALED_CHUNK_LEN`.
    pub next_chunk: u64,
    /// The plaintext length, known once the first chunk is verified.
    pub plaintext_len: Option<u64>,
    /// Plaintext bytes emitted so far.
    pub plaintext_done: u64,
}

impl Progress {
    /// Offset in the body (after the preamble and separator) where the next chunk starts.
    pub fn body_offset(&self) -> u64 {
        self.next_chunk * SEALED_CHUNK_LEN as u64
    }
}

/// Streams the body of a v2 blob back to plaintext, verifying each chunk before emitting it.
pub struct Decryptor {
    keys: ChunkKeys,
    padded: u64,
    chunks: u64,
    progress: Progress,
    /// Body bytes of the chunk being received.
    pending: Vec<u8>,
}

impl Decryptor {
    /// Starts decrypting a blob whose preamble was parsed (see [`crate::v1::split`]) and
    /// checked to be a v2 blob of `blob_id`.
    pub fn new(secret: &BlobSecret, blob_id: &str, parts: &Parts<'_>) -> Result<Self, FormatError> {
        Self::resume(
            secret,
            blob_id,
            &parts.preamble,
            &parts.raw_preamble,
            Progress {
                next_chunk: 0,
                plaintext_len: None,
                plaintext_done: 0,
            },
        )
    }

    /// Continues a decryption from `progress`; the next body bytes given must start at
    /// `progress.body_offset()`.
    pub fn resume(
        secret: &BlobSecret,
        blob_id: &str,
        preamble: &Preamble,
        raw_preamble: &[u8],
        progress: Progress,
    ) -> Result<Self, FormatError> {
        preamble.check(blob_id, Method::Aes256GcmChunked)?;
        let padded = preamble
            .content_size
            .ok_or(FormatError::BadPreambleLength(raw_preamble.len()))?;
        if padded < LEN_PREFIX as u64 || bucket(padded) != padded {
            return Err(FormatError::SizeMismatch {
                claimed: padded,
                actual: bucket(padded),
            });
        }
        if progress.next_chunk > 0 && progress.plaintext_len.is_none() {
            return Err(FormatError::Truncated);
        }
        Ok(Self {
            keys: ChunkKeys::derive(secret, blob_id, &preamble.iv, raw_preamble),
            padded,
            chunks: chunk_count(padded),
            progress,
            pending: Vec::with_capacity(SEALED_CHUNK_LEN),
        })
    }

    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// Body length this blob must have.
    pub fn body_len(&self) -> u64 {
        body_len(self.padded)
    }

    /// Body bytes that would complete the chunk being received: none once every chunk came.
    /// A caller that hands over no more than this at a time gets at most one chunk out of
    /// each call, at the end of its input.
    pub fn to_chunk_end(&self) -> usize {
        if self.progress.next_chunk >= self.chunks {
            return 0;
        }
        self.sealed_len(self.progress.next_chunk) - self.pending.len()
    }

    /// Sealed length of chunk `index`.
    fn sealed_len(&self, index: u64) -> usize {
        let start = index * CHUNK_LEN as u64;
        (self.padded - start).min(CHUNK_LEN as u64) as usize + TAG_LEN
    }

    /// Verifies and decrypts a sealed chunk, appending its plaintext to `out` (decrypted
    /// straight into it, not copied there first).
    fn open_into(&mut self, sealed: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
        let index = self.progress.next_chunk;
        let last = index + 1 == self.chunks;
        let base = out.len();
        out.resize(base + sealed.len() - TAG_LEN, 0);
        if self.keys.open_into(index, last, sealed, &mut out[base..]).is_err() {
            out.truncate(base);
            return Err(FormatError::Authentication);
        }
        let mut pos = index * CHUNK_LEN as u64;
        if index == 0 {
            let len = u64::from_le_bytes(out[base..base + LEN_PREFIX].try_into().expect("8 bytes"));
            if padded_len(len) != self.padded {
                out.truncate(base);
                return Err(FormatError::SizeMismatch {
                    claimed: self.padded,
                    actual: len,
                });
            }
            self.progress.plaintext_len = Some(len);
            out.drain(base..base + LEN_PREFIX);
            pos += LEN_PREFIX as u64;
        }
        let plaintext_end = self.progress.plaintext_len.expect("known from chunk 0") + LEN_PREFIX as u64;
        let keep = plaintext_end.saturating_sub(pos).min((out.len() - base) as u64) as usize;
        if out[base + keep..].iter().any(|&b| b != 0) {
            out.truncate(base);
            return Err(FormatError::Authentication);
        }
        out.truncate(base + keep);
        self.progress.plaintext_done += keep as u64;
        self.progress.next_chunk += 1;
        Ok(())
    }

    /// Takes more body bytes; appends the plaintext of every chunk they complete to `out`.
    /// Everything appended is verified.
    pub fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
        while !input.is_empty() {
            if self.progress.next_chunk >= self.chunks {
                let extra = input.len() as u64;
                return Err(FormatError::SizeMismatch {
                    claimed: self.body_len(),
                    actual: self.body_len() + extra,
                });
            }
            let need = self.sealed_len(self.progress.next_chunk);
            if self.pending.is_empty() && input.len() >= need {
                self.open_into(&input[..need], out)?;
                input = &input[need..];
                continue;
            }
            let take = (need - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() == need {
                let chunk = std::mem::take(&mut self.pending);
                let result = self.open_into(&chunk, out);
                self.pending = chunk;
                self.pending.clear();
                result?;
            }
        }
        Ok(())
    }

    /// Checks that the whole blob arrived.
    pub fn finish(self) -> Result<Progress, FormatError> {
        if self.progress.next_chunk != self.chunks || !self.pending.is_empty() {
            return Err(FormatError::Truncated);
        }
        Ok(self.progress)
    }
}

/// Verifies and decrypts a whole v2 blob in memory.
pub fn decrypt(secret: &BlobSecret, blob_id: &str, blob: &[u8]) -> Result<Vec<u8>, FormatError> {
    let parts = crate::v1::split(blob)?;
    let mut dec = Decryptor::new(secret, blob_id, &parts)?;
    let mut out = Vec::with_capacity(parts.body.len());
    dec.update(parts.body, &mut out)?;
    dec.finish()?;
    Ok(out)
}
