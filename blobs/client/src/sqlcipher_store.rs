//! The default local store: one SQLCipher database file.
//!
//! Content lives in `chunks` rows of at most [`ROW_LEN`] bytes, grouped by a version
//! number: a blob's committed content is the version its `content` row names. A writer
//! fills a fresh version (registered in `stages`), each row in its own short transaction so
//! that other blobs are not held up; `commit` then, in one transaction, points the blob at
//! the new version, deletes the old one and writes the sync state. Versions of stages that
//! were never committed are deleted when the store is opened. SQLite caps a single value at
//! 1 GB, which is another reason not to store a blob as one value.
//!
//! All SQL is parameterised. Upstream used SQLCipher 3 compatibility settings (CBC,
//! 1024-byte pages); files here use SQLCipher 4's defaults (the key is a raw 256-bit key,
//! derived by [`crate::keys`]), since upstream stores are not migrated.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::store::{
    BlobState, ContentInfo, ContentReader, ContentWriter, FailureKind, Hasher, LocalStore, Priority, ResumedDownload,
    StoreError, SyncStatus,
};

/// Content is stored in rows of this size.
pub const ROW_LEN: usize = 256 * 1024;
/// SQLCipher's page size. The file header is encrypted, so every connection must say it.
const PAGE_SIZE: u32 = 4096;
/// Schema version in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sync_state (
    namespace       TEXT NOT NULL,
    blob_id         TEXT NOT NULL,
    sync_status     INTEGER NOT NULL,
    priority        INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    verify_failures INTEGER NOT NULL DEFAULT 0,
    failure         TEXT,
    last_error      TEXT,
    queued_at       INTEGER NOT NULL,
    remote_etag     TEXT,
    replace         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, blob_id)
);
CREATE INDEX IF NOT EXISTS sync_state_by_status
    ON sync_state (namespace, sync_status, priority DESC, queued_at);
CREATE TABLE IF NOT EXISTS content (
    namespace TEXT NOT NULL,
    blob_id   TEXT NOT NULL,
    version   INTEGER NOT NULL,
    size      INTEGER NOT NULL,
    rows      INTEGER NOT NULL,
    sha256    BLOB,
    PRIMARY KEY (namespace, blob_id)
);
CREATE TABLE IF NOT EXISTS stages (
    version   INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    blob_id   TEXT NOT NULL,
    download  INTEGER NOT NULL,
    rows      INTEGER NOT NULL DEFAULT 0,
    bytes     INTEGER NOT NULL DEFAULT 0,
    meta      BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS one_download_per_blob ON stages (namespace, blob_id) WHERE download = 1;
CREATE TABLE IF NOT EXISTS chunks (
    version INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (version, seq)
);
";

/// Blobs and their sync state in a SQLCipher database keyed with a raw 256-bit key.
pub struct SqlcipherStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
}

impl Inner {
    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied transaction behind
        // (SQLite rolls it back), so the connection is still usable.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Held while a store is opened and keyed. SQLCipher sets itself up when a process first
/// opens and keys a database, and that setup races: with sixteen threads opening their first
/// stores at once, 9 processes in 1000 failed with "An error occurred with PRAGMA key or
/// rekey" (`tests/sqlcipher_first_open.rs`), also with only the keying under the lock. With
/// a raw key there is no key derivation, so the section is short and one lock for the whole
/// process costs little.
static KEYING: Mutex<()> = Mutex::new(());

impl SqlcipherStore {
    /// Opens or creates the store at `path`, and removes what interrupted writes left. A
    /// wrong key is reported as such, not as a corrupt file.
    pub fn open(path: &Path, key: &[u8; 32]) -> Result<Self, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: path.display().to_string(),
            reason,
        };
        let conn = {
            let _alone = KEYING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
            // SQLCipher would log a wrong key to stderr itself; it is reported as an error here.
            conn.execute_batch("PRAGMA cipher_log_level = NONE;")
                .map_err(|e| open_err(e.to_string()))?;
            // The key must be the first statement that touches the database. It is hex of a
            // fixed-size key, not user input, so formatting it into the pragma is safe.
            conn.execute_batch(&format!(
                "PRAGMA key = \"x'{}'\"; PRAGMA cipher_page_size = {PAGE_SIZE};",
                hex::encode(key)
            ))
            .map_err(|e| open_err(e.to_string()))?;
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))
                .map_err(|_| open_err("wrong key, or not a SQLCipher database".into()))?;
            conn
        };
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;")?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| {
            r.get(0)
        })?;
        if tables > 0 && version != SCHEMA_VERSION {
            return Err(open_err(format!(
                "schema version {version}; this program reads version {SCHEMA_VERSION}"
            )));
        }
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        // Stages that were never committed: what a crash left of interrupted writes.
        conn.execute_batch(
            "BEGIN;
             DELETE FROM chunks WHERE version IN (SELECT version FROM stages WHERE download = 0);
             DELETE FROM stages WHERE download = 0;
             COMMIT;",
        )?;
        Ok(Self {
            inner: Arc::new(Inner { conn: Mutex::new(conn) }),
        })
    }
}

fn bad(what: &'static str, value: impl ToString) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(StoreError::BadValue {
        what,
        value: value.to_string(),
    }))
}

/// The columns [`state_from_row`] reads, in its order. Read by position: a lookup by name
/// compares the name with every column's, and took a third of the client's instructions in a
/// sync that finds nothing to do (13,200 lookups for 1,200 states).
macro_rules! state_columns {
    () => {
        "namespace, blob_id, sync_status, priority, attempts, verify_failures, failure, last_error, queued_at, \
         remote_etag, replace"
    };
}

fn state_from_row(r: &Row<'_>) -> rusqlite::Result<BlobState> {
    let status: i64 = r.get(2)?;
    let priority: i64 = r.get(3)?;
    let failure: Option<String> = r.get(6)?;
    Ok(BlobState {
        namespace: r.get(0)?,
        id: r.get(1)?,
        status: SyncStatus::from_code(status).ok_or_else(|| bad("sync status", status))?,
        priority: Priority::from_code(priority).ok_or_else(|| bad("priority", priority))?,
        attempts: r.get(4)?,
        verify_failures: r.get(5)?,
        failure: failure
            .map(|f| FailureKind::parse(&f).ok_or_else(|| bad("failure kind", f)))
            .transpose()?,
        last_error: r.get(7)?,
        queued_at_ms: r.get::<_, i64>(8)? as u64,
        remote_etag: r.get(9)?,
        replace: r.get(10)?,
    })
}

const UPSERT_STATE: &str = "
INSERT INTO sync_state (namespace, blob_id, sync_status, priority, attempts, verify_failures, failure,
                        last_error, queued_at, remote_etag, replace)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
ON CONFLICT (namespace, blob_id) DO UPDATE SET
    sync_status = excluded.sync_status, priority = excluded.priority, attempts = excluded.attempts,
    verify_failures = excluded.verify_failures, failure = excluded.failure, last_error = excluded.last_error,
    queued_at = excluded.queued_at, remote_etag = excluded.remote_etag, replace = excluded.replace";

fn write_state(conn: &Connection, s: &BlobState) -> rusqlite::Result<()> {
    conn.prepare_cached(UPSERT_STATE)?.execute(params![
        s.namespace,
        s.id,
        s.status as i64,
        s.priority as i64,
        s.attempts,
        s.verify_failures,
        s.failure.map(FailureKind::name),
        s.last_error,
        s.queued_at_ms as i64,
        s.remote_etag,
        s.replace,
    ])?;
    Ok(())
}

/// Deletes a version's rows.
fn drop_version(conn: &Connection, version: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM chunks WHERE version = ?1")?
        .execute(params![version])?;
    Ok(())
}

/// Drops the blob's download stage, if any.
fn drop_download_stage(conn: &Connection, namespace: &str, id: &str) -> rusqlite::Result<()> {
    let version: Option<i64> = conn
        .prepare_cached("SELECT version FROM stages WHERE namespace = ?1 AND blob_id = ?2 AND download = 1")?
        .query_row(params![namespace, id], |r| r.get(0))
        .optional()?;
    if let Some(v) = version {
        drop_version(conn, v)?;
        conn.prepare_cached("DELETE FROM stages WHERE version = ?1")?
            .execute(params![v])?;
    }
    Ok(())
}

fn new_stage(inner: &Arc<Inner>, namespace: &str, id: &str, download: bool) -> Result<Writer, StoreError> {
    let mut conn = inner.conn();
    let tx = conn.transaction()?;
    if download {
        drop_download_stage(&tx, namespace, id)?;
    }
    tx.execute(
        "INSERT INTO stages (namespace, blob_id, download) VALUES (?1, ?2, ?3)",
        params![namespace, id, download],
    )?;
    let version = tx.last_insert_rowid();
    tx.commit()?;
    Ok(Writer {
        inner: inner.clone(),
        namespace: namespace.to_owned(),
        id: id.to_owned(),
        version,
        rows: 0,
        bytes: 0,
        buf: Vec::new(),
        hasher: Hasher::new(),
        done: false,
    })
}

impl SqlcipherStore {
    fn reader(&self, namespace: &str, id: &str, version: i64, rows: i64, size: i64) -> Box<dyn ContentReader> {
        Box::new(Reader {
            inner: self.inner.clone(),
            namespace: namespace.to_owned(),
            id: id.to_owned(),
            version,
            rows,
            next: 0,
            size: size as u64,
        })
    }
}

impl LocalStore for SqlcipherStore {
    fn state(&self, namespace: &str, id: &str) -> Result<Option<BlobState>, StoreError> {
        Ok(self
            .inner
            .conn()
            .prepare_cached(concat!(
                "SELECT ",
                state_columns!(),
                " FROM sync_state WHERE namespace = ?1 AND blob_id = ?2"
            ))?
            .query_row(params![namespace, id], state_from_row)
            .optional()?)
    }

    fn put_state(&self, state: &BlobState) -> Result<(), StoreError> {
        write_state(&self.inner.conn(), state)?;
        Ok(())
    }

    fn insert_state(&self, state: &BlobState) -> Result<bool, StoreError> {
        let mut conn = self.inner.conn();
        let tx = conn.transaction()?;
        let exists: bool = tx
            .prepare_cached("SELECT 1 FROM sync_state WHERE namespace = ?1 AND blob_id = ?2")?
            .exists(params![state.namespace, state.id])?;
        if !exists {
            write_state(&tx, state)?;
        }
        tx.commit()?;
        Ok(!exists)
    }

    fn states(&self, namespace: Option<&str>, status: Option<SyncStatus>) -> Result<Vec<BlobState>, StoreError> {
        let conn = self.inner.conn();
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT ",
            state_columns!(),
            " FROM sync_state
             WHERE (?1 IS NULL OR namespace = ?1) AND (?2 IS NULL OR sync_status = ?2)
             ORDER BY priority DESC, queued_at, namespace, blob_id"
        ))?;
        let rows = stmt
            .query_map(params![namespace, status.map(|s| s as i64)], state_from_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn namespaces(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.inner.conn();
        let mut stmt = conn.prepare_cached("SELECT DISTINCT namespace FROM sync_state ORDER BY namespace")?;
        let rows = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn content(&self, namespace: &str, id: &str) -> Result<Option<ContentInfo>, StoreError> {
        Ok(self
            .inner
            .conn()
            .prepare_cached("SELECT size, sha256 FROM content WHERE namespace = ?1 AND blob_id = ?2")?
            .query_row(params![namespace, id], |r| {
                let sha: Option<Vec<u8>> = r.get(1)?;
                Ok(ContentInfo {
                    size: r.get::<_, i64>(0)? as u64,
                    sha256: sha.and_then(|s| s.try_into().ok()),
                })
            })
            .optional()?)
    }

    fn open_content(&self, namespace: &str, id: &str) -> Result<Option<Box<dyn ContentReader>>, StoreError> {
        let found: Option<(i64, i64, i64)> = self
            .inner
            .conn()
            .prepare_cached("SELECT version, rows, size FROM content WHERE namespace = ?1 AND blob_id = ?2")?
            .query_row(params![namespace, id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        Ok(found.map(|(version, rows, size)| self.reader(namespace, id, version, rows, size)))
    }

    fn new_content(&self, namespace: &str, id: &str) -> Result<Box<dyn ContentWriter>, StoreError> {
        Ok(Box::new(new_stage(&self.inner, namespace, id, false)?))
    }

    fn remove_content(&self, namespace: &str, id: &str, state: Option<&BlobState>) -> Result<(), StoreError> {
        let mut conn = self.inner.conn();
        let tx = conn.transaction()?;
        let version: Option<i64> = tx
            .prepare_cached("SELECT version FROM content WHERE namespace = ?1 AND blob_id = ?2")?
            .query_row(params![namespace, id], |r| r.get(0))
            .optional()?;
        if let Some(v) = version {
            drop_version(&tx, v)?;
            tx.execute(
                "DELETE FROM content WHERE namespace = ?1 AND blob_id = ?2",
                params![namespace, id],
            )?;
        }
        drop_download_stage(&tx, namespace, id)?;
        match state {
            Some(s) => write_state(&tx, s)?,
            None => {
                tx.execute(
                    "DELETE FROM sync_state WHERE namespace = ?1 AND blob_id = ?2",
                    params![namespace, id],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn resume_download(&self, namespace: &str, id: &str) -> Result<Option<ResumedDownload>, StoreError> {
        let mut conn = self.inner.conn();
        let tx = conn.transaction()?;
        let found: Option<(i64, i64, i64, Option<Vec<u8>>)> = tx
            .prepare_cached(
                "SELECT version, rows, bytes, meta FROM stages WHERE namespace = ?1 AND blob_id = ?2 AND download = 1",
            )?
            .query_row(params![namespace, id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        let Some((version, rows, bytes, meta)) = found else {
            return Ok(None);
        };
        let Some(meta) = meta else {
            // Never checkpointed: nothing to resume from.
            drop_download_stage(&tx, namespace, id)?;
            tx.commit()?;
            return Ok(None);
        };
        // Rows written after the last checkpoint are not part of it.
        tx.execute(
            "DELETE FROM chunks WHERE version = ?1 AND seq >= ?2",
            params![version, rows],
        )?;
        tx.commit()?;
        Ok(Some(ResumedDownload {
            writer: Box::new(Writer {
                inner: self.inner.clone(),
                namespace: namespace.to_owned(),
                id: id.to_owned(),
                version,
                rows,
                bytes: bytes as u64,
                buf: Vec::new(),
                hasher: if bytes == 0 { Hasher::new() } else { Hasher::unknown() },
                done: false,
            }),
            meta,
        }))
    }

    fn new_download(&self, namespace: &str, id: &str) -> Result<Box<dyn ContentWriter>, StoreError> {
        Ok(Box::new(new_stage(&self.inner, namespace, id, true)?))
    }

    fn open_download(&self, namespace: &str, id: &str) -> Result<Option<Box<dyn ContentReader>>, StoreError> {
        let found: Option<(i64, i64, i64)> = self
            .inner
            .conn()
            .prepare_cached(
                "SELECT version, rows, bytes FROM stages
                 WHERE namespace = ?1 AND blob_id = ?2 AND download = 1 AND meta IS NOT NULL",
            )?
            .query_row(params![namespace, id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        Ok(found.map(|(version, rows, size)| self.reader(namespace, id, version, rows, size)))
    }

    fn drop_download(&self, namespace: &str, id: &str) -> Result<(), StoreError> {
        let mut conn = self.inner.conn();
        let tx = conn.transaction()?;
        drop_download_stage(&tx, namespace, id)?;
        tx.commit()?;
        Ok(())
    }
}

struct Writer {
    inner: Arc<Inner>,
    namespace: String,
    id: String,
    version: i64,
    /// Rows written.
    rows: i64,
    /// Bytes written, including the buffer.
    bytes: u64,
    buf: Vec<u8>,
    hasher: Hasher,
    /// Committed or discarded: nothing to clean up on drop.
    done: bool,
}

impl Writer {
    fn flush_row(&mut self, conn: &Connection) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        conn.prepare_cached("INSERT INTO chunks (version, seq, data) VALUES (?1, ?2, ?3)")?
            .execute(params![self.version, self.rows, self.buf])?;
        self.rows += 1;
        self.buf.clear();
        Ok(())
    }
}

impl ContentWriter for Writer {
    fn write(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        while !data.is_empty() {
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(ROW_LEN);
            }
            let take = (ROW_LEN - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == ROW_LEN {
                let inner = self.inner.clone();
                self.flush_row(&inner.conn())?;
            }
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.bytes
    }

    fn checkpoint(&mut self, meta: &[u8]) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        let mut conn = inner.conn();
        let tx = conn.transaction()?;
        self.flush_row(&tx)?;
        tx.prepare_cached("UPDATE stages SET rows = ?2, bytes = ?3, meta = ?4 WHERE version = ?1")?
            .execute(params![self.version, self.rows, self.bytes as i64, meta])?;
        tx.commit()?;
        Ok(())
    }

    fn commit(mut self: Box<Self>, state: &BlobState) -> Result<ContentInfo, StoreError> {
        let inner = self.inner.clone();
        let mut conn = inner.conn();
        let tx = conn.transaction()?;
        self.flush_row(&tx)?;
        let old: Option<i64> = tx
            .prepare_cached("SELECT version FROM content WHERE namespace = ?1 AND blob_id = ?2")?
            .query_row(params![self.namespace, self.id], |r| r.get(0))
            .optional()?;
        if let Some(old) = old {
            drop_version(&tx, old)?;
        }
        // Any download in progress for this blob is superseded (unless it is this stage).
        let other_download: Option<i64> = tx
            .prepare_cached(
                "SELECT version FROM stages WHERE namespace = ?1 AND blob_id = ?2 AND download = 1 AND version != ?3",
            )?
            .query_row(params![self.namespace, self.id, self.version], |r| r.get(0))
            .optional()?;
        if let Some(v) = other_download {
            drop_version(&tx, v)?;
            tx.execute("DELETE FROM stages WHERE version = ?1", params![v])?;
        }
        let hasher = std::mem::replace(&mut self.hasher, Hasher::unknown());
        let info = ContentInfo {
            size: self.bytes,
            sha256: hasher.finish(),
        };
        tx.prepare_cached(
            "INSERT INTO content (namespace, blob_id, version, size, rows, sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (namespace, blob_id) DO UPDATE SET version = excluded.version, size = excluded.size,
                 rows = excluded.rows, sha256 = excluded.sha256",
        )?
        .execute(params![
            self.namespace,
            self.id,
            self.version,
            self.bytes as i64,
            self.rows,
            info.sha256.map(|h| h.to_vec())
        ])?;
        tx.execute("DELETE FROM stages WHERE version = ?1", params![self.version])?;
        write_state(&tx, state)?;
        tx.commit()?;
        self.done = true;
        Ok(info)
    }

    fn discard(mut self: Box<Self>) -> Result<(), StoreError> {
        self.done = true;
        let inner = self.inner.clone();
        let mut conn = inner.conn();
        let tx = conn.transaction()?;
        drop_version(&tx, self.version)?;
        tx.execute("DELETE FROM stages WHERE version = ?1", params![self.version])?;
        tx.commit()?;
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // An abandoned write stage is deleted now rather than at the next open; a download
        // stage is kept up to its last checkpoint, for the next attempt to resume.
        let conn = self.inner.conn();
        let download: bool = conn
            .query_row(
                "SELECT download FROM stages WHERE version = ?1",
                params![self.version],
                |r| r.get(0),
            )
            .unwrap_or(true);
        if !download {
            let _ = drop_version(&conn, self.version);
            let _ = conn.execute("DELETE FROM stages WHERE version = ?1", params![self.version]);
        }
    }
}

struct Reader {
    inner: Arc<Inner>,
    namespace: String,
    id: String,
    version: i64,
    rows: i64,
    next: i64,
    size: u64,
}

impl ContentReader for Reader {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        if self.next >= self.rows {
            return Ok(None);
        }
        let data: Option<Vec<u8>> = self
            .inner
            .conn()
            .prepare_cached("SELECT data FROM chunks WHERE version = ?1 AND seq = ?2")?
            .query_row(params![self.version, self.next], |r| r.get(0))
            .optional()?;
        let Some(data) = data else {
            return Err(StoreError::Changed {
                namespace: self.namespace.clone(),
                id: self.id.clone(),
            });
        };
        self.next += 1;
        Ok(Some(data))
    }

    fn len(&self) -> u64 {
        self.size
    }
}
