//! The encrypted-file store: each blob's content in its own sealed file, and the sync states
//! in a sealed append-only journal (the alternative backend of seed 3.2, to compare with
//! SQLCipher).
//!
//! ```text
//! DIR/FORMAT        "soledad-bench encrypted file store 1"
//! DIR/check         a sealed known text: a wrong key is reported as such
//! DIR/journal       sealed records, one per change: (namespace, blob id, record or removal)
//! DIR/data/RANDOM   sealed content files and download stages
//! ```
//!
//! File names are random, so the directory reveals neither ids nor namespaces; sizes are
//! visible (as they are in a SQLCipher file's growth). The journal is replayed into memory
//! when the store opens and rewritten compactly when it has grown to several times the live
//! records.
//!
//! Atomicity: a commit writes the content file, syncs it, then appends one journal record
//! pointing the blob at it. A crash before that record leaves an unreferenced file, deleted
//! at the next open; a torn last journal record fails authentication and is cut off. Files a
//! change makes obsolete are deleted only after the journal is synced, so a power loss can
//! lose the latest changes but never leave a record pointing at a missing file.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use aws_lc_rs::hkdf;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::sealed::{Next, Position, RECORD_LEN, SealedReader, SealedWriter};
use crate::store::{
    BlobState, ContentInfo, ContentReader, ContentWriter, Hasher, LocalStore, ResumedDownload, StoreError, SyncStatus,
};

const FORMAT: &str = "soledad-bench encrypted file store 1\n";
const CHECK_TEXT: &[u8] = b"soledad-bench encrypted file store key check";
/// The journal is compacted at open when it holds more than this many entries per live
/// record (plus a constant, so small stores are left alone).
const COMPACT_FACTOR: u64 = 4;
const COMPACT_MIN: u64 = 1000;

type Key = (String, String);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<BlobState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content: Option<FileRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    download: Option<DownloadRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileRef {
    file: String,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DownloadRef {
    file: String,
    pos: Position,
    bytes: u64,
    /// base64 of the downloader's meta.
    meta: String,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    ns: String,
    id: String,
    record: Option<Record>,
}

/// Blobs and their sync state as sealed files in a directory.
pub struct FsStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    data_key: [u8; 32],
    state: Mutex<Journaled>,
}

struct Journaled {
    records: HashMap<Key, Record>,
    journal: SealedWriter,
}

struct HkdfLen(usize);

impl hkdf::KeyType for HkdfLen {
    fn len(&self) -> usize {
        self.0
    }
}

fn subkey(key: &[u8; 32], info: &[u8]) -> [u8; 32] {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"soledad-bench fs store").extract(key);
    let mut out = [0u8; 32];
    prk.expand(&[info], HkdfLen(32))
        .and_then(|o| o.fill(&mut out))
        .expect("HKDF-SHA256 can produce 32 bytes");
    out
}

fn random_name() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io(dir))
}

impl FsStore {
    /// Opens or creates the store in directory `dir`, replays its journal and removes what
    /// interrupted writes left.
    pub fn open(dir: &Path, key: &[u8; 32]) -> Result<Self, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: dir.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(dir.join("data")).map_err(|e| open_err(e.to_string()))?;
        let format_file = dir.join("FORMAT");
        match std::fs::read_to_string(&format_file) {
            Ok(f) if f == FORMAT => {}
            Ok(f) => {
                return Err(open_err(format!(
                    "{} says {:?}; expected {:?}",
                    format_file.display(),
                    f.trim(),
                    FORMAT.trim()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if std::fs::read_dir(dir).map_err(|e| open_err(e.to_string()))?.count() > 1 {
                    return Err(open_err("not an encrypted file store (no FORMAT file)".into()));
                }
                std::fs::write(&format_file, FORMAT).map_err(|e| open_err(e.to_string()))?;
            }
            Err(e) => return Err(open_err(e.to_string())),
        }
        let data_key = subkey(key, b"content");
        let journal_key = subkey(key, b"journal");
        check_key(dir, &subkey(key, b"check")).map_err(|e| match e {
            StoreError::Corrupt { .. } => open_err("wrong key, or a damaged key check file".into()),
            other => other,
        })?;
        let (records, journal) = replay(dir, &journal_key)?;
        let store = Self {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                data_key,
                state: Mutex::new(Journaled { records, journal }),
            }),
        };
        store.collect_garbage()?;
        Ok(store)
    }

    /// Deletes data files no record refers to: stages of interrupted writes.
    fn collect_garbage(&self) -> Result<(), StoreError> {
        let st = self.inner.lock();
        let live: HashSet<&str> = st
            .records
            .values()
            .flat_map(|r| {
                r.content
                    .as_ref()
                    .map(|c| c.file.as_str())
                    .into_iter()
                    .chain(r.download.as_ref().map(|d| d.file.as_str()))
            })
            .collect();
        let data = self.inner.dir.join("data");
        for entry in std::fs::read_dir(&data).map_err(StoreError::io(&data))? {
            let entry = entry.map_err(StoreError::io(&data))?;
            let name = entry.file_name();
            if !live.contains(name.to_string_lossy().as_ref()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

/// Verifies the key against the check file, creating it on first use.
fn check_key(dir: &Path, key: &[u8; 32]) -> Result<(), StoreError> {
    let path = dir.join("check");
    if !path.exists() {
        let tmp = dir.join("check.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut w = SealedWriter::create(&tmp, key, CHECK_TEXT.len())?;
        w.write(CHECK_TEXT)?;
        w.finish()?;
        std::fs::rename(&tmp, &path).map_err(StoreError::io(&path))?;
        return sync_dir(dir);
    }
    let mut r = SealedReader::open(&path, key)?;
    match r.next(true)? {
        Next::Record(text) if text == CHECK_TEXT => Ok(()),
        _ => Err(StoreError::Corrupt {
            path: path.display().to_string(),
            reason: "unexpected contents".into(),
        }),
    }
}

/// Reads the journal into memory, cutting off a torn last record, compacting it if it grew
/// large; returns the records and the journal opened for appending.
fn replay(dir: &Path, key: &[u8; 32]) -> Result<(HashMap<Key, Record>, SealedWriter), StoreError> {
    let path = dir.join("journal");
    let mut records: HashMap<Key, Record> = HashMap::new();
    if !path.exists() {
        let tmp = dir.join("journal.new");
        let _ = std::fs::remove_file(&tmp);
        let mut w = SealedWriter::create(&tmp, key, RECORD_LEN)?;
        w.sync()?;
        std::fs::rename(&tmp, &path).map_err(StoreError::io(&path))?;
        sync_dir(dir)?;
        let pos = w.position();
        drop(w);
        return Ok((records, SealedWriter::append(&path, key, pos, RECORD_LEN)?));
    }
    let mut reader = SealedReader::open(&path, key).map_err(|e| StoreError::Open {
        path: dir.display().to_string(),
        reason: format!("wrong key, or a damaged journal: {e}"),
    })?;
    let mut entries = 0u64;
    loop {
        let good = reader.position();
        let rec = match reader.next(false) {
            Ok(Next::Record(rec)) => rec,
            Ok(Next::End) => break,
            // A record torn by a crash: what follows the last good one is cut off below.
            Err(StoreError::Corrupt { .. }) => {
                tracing::warn!(journal = %path.display(), records = good.records, "journal ends in a torn record; cutting it off");
                break;
            }
            Err(e) => return Err(e),
        };
        let entry: Entry = serde_json::from_slice(&rec).map_err(|e| StoreError::Corrupt {
            path: path.display().to_string(),
            reason: format!("record {}: {e}", good.records),
        })?;
        entries += 1;
        match entry.record {
            Some(r) => records.insert((entry.ns, entry.id), r),
            None => records.remove(&(entry.ns, entry.id)),
        };
    }
    let end = reader.position();
    drop(reader);
    if entries > COMPACT_FACTOR * records.len() as u64 + COMPACT_MIN {
        let tmp = dir.join("journal.new");
        let _ = std::fs::remove_file(&tmp);
        let mut w = SealedWriter::create(&tmp, key, RECORD_LEN)?;
        for ((ns, id), r) in &records {
            w.write_record(&encode_entry(ns, id, Some(r)))?;
        }
        w.sync()?;
        let pos = w.position();
        drop(w);
        std::fs::rename(&tmp, &path).map_err(StoreError::io(&path))?;
        sync_dir(dir)?;
        return Ok((records, SealedWriter::append(&path, key, pos, RECORD_LEN)?));
    }
    Ok((records, SealedWriter::append(&path, key, end, RECORD_LEN)?))
}

fn encode_entry(ns: &str, id: &str, record: Option<&Record>) -> Vec<u8> {
    #[derive(Serialize)]
    struct EntryRef<'a> {
        ns: &'a str,
        id: &'a str,
        record: Option<&'a Record>,
    }
    serde_json::to_vec(&EntryRef { ns, id, record }).expect("records serialize")
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Journaled> {
        // Records are replaced whole after the journal write succeeded, so a panic cannot
        // leave one half-updated.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn data_path(&self, file: &str) -> PathBuf {
        self.dir.join("data").join(file)
    }

    /// Deletes files after the journal no longer refers to them durably.
    fn delete_files(&self, st: &mut Journaled, files: Vec<String>) -> Result<(), StoreError> {
        if files.is_empty() {
            return Ok(());
        }
        st.journal.sync()?;
        for f in files {
            let _ = std::fs::remove_file(self.data_path(&f));
        }
        Ok(())
    }
}

impl Journaled {
    /// Logs and applies a change to one blob.
    fn set(&mut self, key: Key, record: Option<Record>) -> Result<(), StoreError> {
        let record = record.filter(|r| r.state.is_some() || r.content.is_some() || r.download.is_some());
        self.journal
            .write_record(&encode_entry(&key.0, &key.1, record.as_ref()))?;
        match record {
            Some(r) => self.records.insert(key, r),
            None => self.records.remove(&key),
        };
        Ok(())
    }

    fn get(&self, ns: &str, id: &str) -> Option<&Record> {
        self.records.get(&(ns.to_owned(), id.to_owned()))
    }
}

fn key(ns: &str, id: &str) -> Key {
    (ns.to_owned(), id.to_owned())
}

impl LocalStore for FsStore {
    fn state(&self, namespace: &str, id: &str) -> Result<Option<BlobState>, StoreError> {
        Ok(self.inner.lock().get(namespace, id).and_then(|r| r.state.clone()))
    }

    fn put_state(&self, state: &BlobState) -> Result<(), StoreError> {
        let mut st = self.inner.lock();
        let k = key(&state.namespace, &state.id);
        let mut r = st.records.get(&k).cloned().unwrap_or_default();
        r.state = Some(state.clone());
        st.set(k, Some(r))
    }

    fn insert_state(&self, state: &BlobState) -> Result<bool, StoreError> {
        let mut st = self.inner.lock();
        let k = key(&state.namespace, &state.id);
        let mut r = st.records.get(&k).cloned().unwrap_or_default();
        if r.state.is_some() {
            return Ok(false);
        }
        r.state = Some(state.clone());
        st.set(k, Some(r))?;
        Ok(true)
    }

    fn states(&self, namespace: Option<&str>, status: Option<SyncStatus>) -> Result<Vec<BlobState>, StoreError> {
        let st = self.inner.lock();
        let mut out: Vec<BlobState> = st
            .records
            .values()
            .filter_map(|r| r.state.as_ref())
            .filter(|s| namespace.is_none_or(|ns| s.namespace == ns) && status.is_none_or(|st| s.status == st))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.queued_at_ms.cmp(&b.queued_at_ms))
                .then_with(|| a.namespace.cmp(&b.namespace))
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }

    fn namespaces(&self) -> Result<Vec<String>, StoreError> {
        let st = self.inner.lock();
        let mut ns: Vec<String> = st
            .records
            .iter()
            .filter(|(_, r)| r.state.is_some())
            .map(|(k, _)| k.0.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        ns.sort();
        Ok(ns)
    }

    fn content(&self, namespace: &str, id: &str) -> Result<Option<ContentInfo>, StoreError> {
        Ok(self
            .inner
            .lock()
            .get(namespace, id)
            .and_then(|r| r.content.as_ref())
            .map(|c| ContentInfo {
                size: c.size,
                sha256: c
                    .sha256
                    .as_deref()
                    .and_then(|h| hex::decode(h).ok())
                    .and_then(|h| h.try_into().ok()),
            }))
    }

    fn open_content(&self, namespace: &str, id: &str) -> Result<Option<Box<dyn ContentReader>>, StoreError> {
        let Some(c) = self.inner.lock().get(namespace, id).and_then(|r| r.content.clone()) else {
            return Ok(None);
        };
        // Once open, the file stays readable even if a commit replaces it meanwhile.
        let reader = SealedReader::open(&self.inner.data_path(&c.file), &self.inner.data_key)?;
        Ok(Some(Box::new(Reader {
            reader,
            size: c.size,
            records: None,
            require_final: true,
        })))
    }

    fn new_content(&self, namespace: &str, id: &str) -> Result<Box<dyn ContentWriter>, StoreError> {
        Ok(Box::new(Writer::create(&self.inner, namespace, id, false)?))
    }

    fn remove_content(&self, namespace: &str, id: &str, state: Option<&BlobState>) -> Result<(), StoreError> {
        let mut st = self.inner.lock();
        let k = key(namespace, id);
        let old = st.records.get(&k).cloned().unwrap_or_default();
        let record = state.map(|s| Record {
            state: Some(s.clone()),
            content: None,
            download: None,
        });
        st.set(k, record)?;
        let files = old
            .content
            .map(|c| c.file)
            .into_iter()
            .chain(old.download.map(|d| d.file))
            .collect();
        self.inner.delete_files(&mut st, files)
    }

    fn resume_download(&self, namespace: &str, id: &str) -> Result<Option<ResumedDownload>, StoreError> {
        let Some(d) = self.inner.lock().get(namespace, id).and_then(|r| r.download.clone()) else {
            return Ok(None);
        };
        let meta = base64::engine::general_purpose::STANDARD
            .decode(&d.meta)
            .map_err(|e| StoreError::Corrupt {
                path: self.inner.dir.join("journal").display().to_string(),
                reason: format!("download meta: {e}"),
            })?;
        let path = self.inner.data_path(&d.file);
        let sealed = SealedWriter::append(&path, &self.inner.data_key, d.pos, RECORD_LEN)?;
        Ok(Some(ResumedDownload {
            writer: Box::new(Writer {
                inner: self.inner.clone(),
                key: key(namespace, id),
                file: d.file,
                sealed: Some(sealed),
                bytes: d.bytes,
                hasher: if d.bytes == 0 { Hasher::new() } else { Hasher::unknown() },
                download: true,
                done: false,
            }),
            meta,
        }))
    }

    fn new_download(&self, namespace: &str, id: &str) -> Result<Box<dyn ContentWriter>, StoreError> {
        self.drop_download(namespace, id)?;
        Ok(Box::new(Writer::create(&self.inner, namespace, id, true)?))
    }

    fn open_download(&self, namespace: &str, id: &str) -> Result<Option<Box<dyn ContentReader>>, StoreError> {
        let Some(d) = self.inner.lock().get(namespace, id).and_then(|r| r.download.clone()) else {
            return Ok(None);
        };
        let reader = SealedReader::open(&self.inner.data_path(&d.file), &self.inner.data_key)?;
        Ok(Some(Box::new(Reader {
            reader,
            size: d.bytes,
            records: Some(d.pos.records),
            require_final: false,
        })))
    }

    fn drop_download(&self, namespace: &str, id: &str) -> Result<(), StoreError> {
        let mut st = self.inner.lock();
        let k = key(namespace, id);
        let Some(mut r) = st.records.get(&k).cloned() else {
            return Ok(());
        };
        let Some(d) = r.download.take() else {
            return Ok(());
        };
        st.set(k, Some(r))?;
        self.inner.delete_files(&mut st, vec![d.file])
    }
}

struct Writer {
    inner: Arc<Inner>,
    key: Key,
    file: String,
    /// `None` once finished.
    sealed: Option<SealedWriter>,
    bytes: u64,
    hasher: Hasher,
    download: bool,
    done: bool,
}

impl Writer {
    fn create(inner: &Arc<Inner>, ns: &str, id: &str, download: bool) -> Result<Self, StoreError> {
        let file = random_name();
        let sealed = SealedWriter::create(&inner.data_path(&file), &inner.data_key, RECORD_LEN)?;
        Ok(Self {
            inner: inner.clone(),
            key: key(ns, id),
            file,
            sealed: Some(sealed),
            bytes: 0,
            hasher: Hasher::new(),
            download,
            done: false,
        })
    }

    fn sealed(&mut self) -> &mut SealedWriter {
        self.sealed.as_mut().expect("a writer is used until it commits")
    }
}

impl ContentWriter for Writer {
    fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        self.sealed().write(data)
    }

    fn len(&self) -> u64 {
        self.bytes
    }

    fn checkpoint(&mut self, meta: &[u8]) -> Result<(), StoreError> {
        let pos = self.sealed().flush_durable()?;
        let mut st = self.inner.lock();
        let mut r = st.records.get(&self.key).cloned().unwrap_or_default();
        let replaced = r.download.take().filter(|d| d.file != self.file).map(|d| d.file);
        r.download = Some(DownloadRef {
            file: self.file.clone(),
            pos,
            bytes: self.bytes,
            meta: base64::engine::general_purpose::STANDARD.encode(meta),
        });
        st.set(self.key.clone(), Some(r))?;
        self.inner.delete_files(&mut st, replaced.into_iter().collect())
    }

    fn commit(mut self: Box<Self>, state: &BlobState) -> Result<ContentInfo, StoreError> {
        let sealed = self.sealed.take().expect("a writer commits once");
        sealed.finish()?;
        let hasher = std::mem::replace(&mut self.hasher, Hasher::unknown());
        let info = ContentInfo {
            size: self.bytes,
            sha256: hasher.finish(),
        };
        let mut st = self.inner.lock();
        let old = st.records.get(&self.key).cloned().unwrap_or_default();
        let record = Record {
            state: Some(state.clone()),
            content: Some(FileRef {
                file: self.file.clone(),
                size: info.size,
                sha256: info.sha256.map(hex::encode),
            }),
            download: None,
        };
        st.set(self.key.clone(), Some(record))?;
        self.done = true;
        let obsolete = old
            .content
            .map(|c| c.file)
            .into_iter()
            .chain(old.download.map(|d| d.file))
            .filter(|f| *f != self.file)
            .collect();
        self.inner.delete_files(&mut st, obsolete)?;
        Ok(info)
    }

    fn discard(mut self: Box<Self>) -> Result<(), StoreError> {
        self.done = true;
        self.sealed = None;
        let mut st = self.inner.lock();
        if let Some(mut r) = st.records.get(&self.key).cloned()
            && r.download.as_ref().is_some_and(|d| d.file == self.file)
        {
            r.download = None;
            st.set(self.key.clone(), Some(r))?;
            return self.inner.delete_files(&mut st, vec![self.file.clone()]);
        }
        let _ = std::fs::remove_file(self.inner.data_path(&self.file));
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // An abandoned content stage goes now; a download stage stays for the next attempt
        // (anything after its last checkpoint is cut off when it resumes).
        if !self.done && !self.download {
            self.sealed = None;
            let _ = std::fs::remove_file(self.inner.data_path(&self.file));
        }
    }
}

struct Reader {
    reader: SealedReader,
    size: u64,
    /// For download stages: only the checkpointed records count.
    records: Option<u32>,
    require_final: bool,
}

impl ContentReader for Reader {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        if self.records.is_some_and(|n| self.reader.position().records >= n) {
            return Ok(None);
        }
        match self.reader.next(self.require_final)? {
            Next::Record(r) => Ok(Some(r)),
            Next::End => Ok(None),
        }
    }

    fn len(&self) -> u64 {
        self.size
    }
}
