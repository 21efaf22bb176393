//! Sealed files: how the encrypted-file store keeps content and its journal on disk.
//!
//! A file is a 24-byte header (`SBS1`, four reserved bytes, a random 16-byte salt) and a
//! sequence of records. Each record is a little-endian `u32` word (plaintext length, top bit
//! set on the final record) and that many bytes sealed with AES-256-GCM plus the 16-byte tag.
//! The file key and a 7-byte nonce prefix come from HKDF-SHA256 over the store key with the
//! salt, so every file has its own key; record `i`'s nonce is the prefix, `i` (u32 big-endian)
//! and the final flag, and its associated data is the header. Hence records cannot be
//! changed, reordered, moved to another file, or dropped from the end of a finished file
//! without detection. This is format v2's construction (`blobs/crypto/FORMAT.md`) without
//! the padding, which a local file does not need; it is written here rather than with a
//! crate because it must append to and truncate files that a crash interrupted.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf;

use crate::store::StoreError;

const MAGIC: &[u8; 4] = b"SBS1";
pub const HEADER_LEN: u64 = 24;
const TAG_LEN: usize = 16;
const FINAL_BIT: u32 = 1 << 31;
/// Plaintext per record of content files.
pub const RECORD_LEN: usize = 256 * 1024;
/// Largest record a reader accepts (a damaged length word must not make it allocate GBs).
const MAX_RECORD: u32 = 16 << 20;
const INFO: &[u8] = b"soledad-bench fs store file";

struct HkdfLen(usize);

impl hkdf::KeyType for HkdfLen {
    fn len(&self) -> usize {
        self.0
    }
}

struct FileKey {
    key: LessSafeKey,
    prefix: [u8; 7],
    header: [u8; HEADER_LEN as usize],
}

impl FileKey {
    fn new(store_key: &[u8; 32], header: [u8; HEADER_LEN as usize]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &header[8..]).extract(store_key);
        let mut okm = [0u8; 39];
        prk.expand(&[INFO], HkdfLen(okm.len()))
            .and_then(|o| o.fill(&mut okm))
            .expect("HKDF-SHA256 can produce 39 bytes");
        Self {
            key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &okm[..32]).expect("a 32-byte key")),
            prefix: okm[32..].try_into().expect("7 bytes"),
            header,
        }
    }

    fn nonce(&self, index: u32, last: bool) -> Nonce {
        let mut n = [0u8; 12];
        n[..7].copy_from_slice(&self.prefix);
        n[7..11].copy_from_slice(&index.to_be_bytes());
        n[11] = last as u8;
        Nonce::assume_unique_for_key(n)
    }
}

fn fresh_header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..4].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&rand::random::<[u8; 16]>());
    h
}

fn corrupt(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn read_header(file: &mut impl Read, path: &Path) -> Result<[u8; HEADER_LEN as usize], StoreError> {
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact(&mut header)
        .map_err(|_| corrupt(path, "shorter than its header"))?;
    if &header[..4] != MAGIC {
        return Err(corrupt(path, "not a sealed file"));
    }
    Ok(header)
}

/// Where a writer stands: enough to reopen the file for appending after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Bytes of the file that hold complete records.
    pub file_len: u64,
    pub records: u32,
}

/// Appends records to a sealed file.
pub struct SealedWriter {
    path: PathBuf,
    file: File,
    key: FileKey,
    pos: Position,
    buf: Vec<u8>,
    record_len: usize,
}

impl SealedWriter {
    /// Creates a new file (failing if it exists).
    pub fn create(path: &Path, store_key: &[u8; 32], record_len: usize) -> Result<Self, StoreError> {
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(StoreError::io(path))?;
        let header = fresh_header();
        file.write_all(&header).map_err(StoreError::io(path))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            key: FileKey::new(store_key, header),
            pos: Position {
                file_len: HEADER_LEN,
                records: 0,
            },
            buf: Vec::new(),
            record_len,
        })
    }

    /// Reopens a file to append after `pos`, cutting off anything written after it.
    pub fn append(path: &Path, store_key: &[u8; 32], pos: Position, record_len: usize) -> Result<Self, StoreError> {
        let mut file = File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(StoreError::io(path))?;
        let header = read_header(&mut file, path)?;
        file.set_len(pos.file_len).map_err(StoreError::io(path))?;
        file.seek(SeekFrom::Start(pos.file_len)).map_err(StoreError::io(path))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            key: FileKey::new(store_key, header),
            pos,
            buf: Vec::new(),
            record_len,
        })
    }

    /// Position after the records written so far (not counting the buffer).
    pub fn position(&self) -> Position {
        self.pos
    }

    fn seal(&mut self, last: bool) -> Result<(), StoreError> {
        let len = self.buf.len() as u32;
        let word = len | if last { FINAL_BIT } else { 0 };
        let tag = self
            .key
            .key
            .seal_in_place_separate_tag(
                self.key.nonce(self.pos.records, last),
                Aad::from(&self.key.header),
                &mut self.buf,
            )
            .map_err(|_| corrupt(&self.path, "cannot seal a record"))?;
        let io = StoreError::io(&self.path);
        (|| {
            self.file.write_all(&word.to_le_bytes())?;
            self.file.write_all(&self.buf)?;
            self.file.write_all(tag.as_ref())
        })()
        .map_err(io)?;
        self.pos.records += 1;
        self.pos.file_len += 4 + self.buf.len() as u64 + TAG_LEN as u64;
        self.buf.clear();
        Ok(())
    }

    /// Buffers plaintext, sealing a record whenever the buffer is full.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        while !data.is_empty() {
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(self.record_len + TAG_LEN);
            }
            let take = (self.record_len - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == self.record_len {
                self.seal(false)?;
            }
        }
        Ok(())
    }

    /// Seals the buffer as one record (if it holds anything) and makes the file durable.
    pub fn flush_durable(&mut self) -> Result<Position, StoreError> {
        if !self.buf.is_empty() {
            self.seal(false)?;
        }
        self.file.sync_data().map_err(StoreError::io(&self.path))?;
        Ok(self.pos)
    }

    /// Seals what is buffered as one record, without syncing (for journals).
    pub fn write_record(&mut self, record: &[u8]) -> Result<Position, StoreError> {
        debug_assert!(self.buf.is_empty());
        self.buf.extend_from_slice(record);
        self.seal(false)?;
        Ok(self.pos)
    }

    /// Seals the final record and makes the file durable.
    pub fn finish(mut self) -> Result<Position, StoreError> {
        self.seal(true)?;
        self.file.sync_data().map_err(StoreError::io(&self.path))?;
        Ok(self.pos)
    }

    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.file.sync_data().map_err(StoreError::io(&self.path))
    }
}

/// Reads the records of a sealed file in order, verifying each.
pub struct SealedReader {
    path: PathBuf,
    file: BufReader<File>,
    key: FileKey,
    pos: Position,
    finished: bool,
}

/// What the next record read gave.
pub enum Next {
    Record(Vec<u8>),
    /// The final record was read before (or the file has none and `finished` is not required).
    End,
}

impl SealedReader {
    pub fn open(path: &Path, store_key: &[u8; 32]) -> Result<Self, StoreError> {
        let file = File::open(path).map_err(StoreError::io(path))?;
        let mut file = BufReader::with_capacity(64 * 1024, file);
        let header = read_header(&mut file, path)?;
        Ok(Self {
            path: path.to_owned(),
            file,
            key: FileKey::new(store_key, header),
            pos: Position {
                file_len: HEADER_LEN,
                records: 0,
            },
            finished: false,
        })
    }

    /// Position after the last record read.
    pub fn position(&self) -> Position {
        self.pos
    }

    /// The next record. At the end of the file, `require_final` decides whether a missing
    /// final record is damage (content files) or normal (journals, download stages).
    pub fn next(&mut self, require_final: bool) -> Result<Next, StoreError> {
        if self.finished {
            return Ok(Next::End);
        }
        let mut word = [0u8; 4];
        match read_full(&mut self.file, &mut word).map_err(StoreError::io(&self.path))? {
            0 if !require_final => return Ok(Next::End),
            0 => return Err(corrupt(&self.path, "ends before its final record (truncated)")),
            4 => {}
            _ => return Err(corrupt(&self.path, "ends inside a record")),
        }
        let word = u32::from_le_bytes(word);
        let last = word & FINAL_BIT != 0;
        let len = word & !FINAL_BIT;
        if len > MAX_RECORD {
            return Err(corrupt(&self.path, format!("record of {len} bytes")));
        }
        let mut sealed = vec![0u8; len as usize + TAG_LEN];
        if read_full(&mut self.file, &mut sealed).map_err(StoreError::io(&self.path))? != sealed.len() {
            return Err(corrupt(&self.path, "ends inside a record"));
        }
        let plain_len = self
            .key
            .key
            .open_in_place(
                self.key.nonce(self.pos.records, last),
                Aad::from(&self.key.header),
                &mut sealed,
            )
            .map_err(|_| corrupt(&self.path, format!("record {} does not authenticate", self.pos.records)))?
            .len();
        sealed.truncate(plain_len);
        self.pos.records += 1;
        self.pos.file_len += 4 + len as u64 + TAG_LEN as u64;
        self.finished = last;
        Ok(Next::Record(sealed))
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let key = [9u8; 32];
        let mut w = SealedWriter::create(&path, &key, 1000).unwrap();
        let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        w.write(&data).unwrap();
        w.finish().unwrap();
        let read = |path: &Path, key: &[u8; 32]| -> Result<Vec<u8>, StoreError> {
            let mut r = SealedReader::open(path, key)?;
            let mut out = Vec::new();
            while let Next::Record(rec) = r.next(true)? {
                out.extend(rec);
            }
            Ok(out)
        };
        assert_eq!(read(&path, &key).unwrap(), data);
        assert!(read(&path, &[8u8; 32]).is_err(), "another key");

        let bytes = std::fs::read(&path).unwrap();
        let mut flipped = bytes.clone();
        flipped[100] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(read(&path, &key).is_err(), "a flipped bit");
        // Cut after the first record: the final record is missing.
        std::fs::write(&path, &bytes[..HEADER_LEN as usize + 4 + 1000 + 16]).unwrap();
        let err = read(&path, &key).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn appending_after_a_checkpoint_drops_what_followed_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let key = [1u8; 32];
        let mut w = SealedWriter::create(&path, &key, 10).unwrap();
        w.write(b"0123456789abc").unwrap();
        let pos = w.flush_durable().unwrap();
        w.write(b"lost lost lost").unwrap();
        drop(w);
        let mut w = SealedWriter::append(&path, &key, pos, 10).unwrap();
        w.write(b"-kept").unwrap();
        w.finish().unwrap();
        let mut r = SealedReader::open(&path, &key).unwrap();
        let mut out = Vec::new();
        while let Next::Record(rec) = r.next(true).unwrap() {
            out.extend(rec);
        }
        assert_eq!(out, b"0123456789abc-kept");
    }
}
