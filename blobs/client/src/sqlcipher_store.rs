//! The default local store: one SQLCipher database file.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::{LocalStore, StoreError, SyncStatus};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blobs (
    namespace TEXT NOT NULL,
    blob_id   TEXT NOT NULL,
    payload   BLOB NOT NULL,
    PRIMARY KEY (namespace, blob_id)
);
CREATE TABLE IF NOT EXISTS sync_state (
    namespace   TEXT NOT NULL,
    blob_id     TEXT NOT NULL,
    sync_status INTEGER NOT NULL,
    priority    INTEGER NOT NULL DEFAULT 2,
    retries     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, blob_id)
);
CREATE INDEX IF NOT EXISTS sync_state_by_status ON sync_state (namespace, sync_status, priority);
";

/// Blobs and their sync state in a SQLCipher database keyed with a raw 256-bit key.
///
/// Upstream used SQLCipher 3 compatibility settings (CBC, 1024-byte pages); files here use
/// SQLCipher 4's defaults, since old local stores are not migrated.
pub struct SqlcipherStore {
    conn: Mutex<Connection>,
}

impl SqlcipherStore {
    /// Opens or creates the store at `path`. A wrong key is reported as such, not as a
    /// corrupt file.
    pub fn open(path: &Path, key: &[u8; 32]) -> Result<Self, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: path.display().to_string(),
            reason,
        };
        let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        // The key must be the first statement on a SQLCipher connection.
        conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(key)))
            .map_err(|e| open_err(e.to_string()))?;
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))
            .map_err(|_| open_err("wrong key, or not a SQLCipher database".into()))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied transaction behind
        // (SQLite rolls it back), so the connection is still usable.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn status_of(code: i64) -> Result<SyncStatus, StoreError> {
    SyncStatus::from_code(code).ok_or(StoreError::BadStatus(code))
}

impl LocalStore for SqlcipherStore {
    fn insert(&self, namespace: &str, id: &str, data: &[u8], status: SyncStatus) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO blobs (namespace, blob_id, payload) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            params![namespace, id, data],
        )?;
        if inserted == 0 {
            return Err(StoreError::Exists {
                namespace: namespace.into(),
                id: id.into(),
            });
        }
        tx.execute(
            "INSERT INTO sync_state (namespace, blob_id, sync_status) VALUES (?1, ?2, ?3)
             ON CONFLICT (namespace, blob_id) DO UPDATE SET sync_status = excluded.sync_status, retries = 0",
            params![namespace, id, status as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn get(&self, namespace: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT payload FROM blobs WHERE namespace = ?1 AND blob_id = ?2",
                params![namespace, id],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn status(&self, namespace: &str, id: &str) -> Result<Option<SyncStatus>, StoreError> {
        let code: Option<i64> = self
            .conn()
            .query_row(
                "SELECT sync_status FROM sync_state WHERE namespace = ?1 AND blob_id = ?2",
                params![namespace, id],
                |r| r.get(0),
            )
            .optional()?;
        code.map(status_of).transpose()
    }

    fn set_status(&self, namespace: &str, id: &str, status: SyncStatus) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO sync_state (namespace, blob_id, sync_status) VALUES (?1, ?2, ?3)
             ON CONFLICT (namespace, blob_id) DO UPDATE SET sync_status = excluded.sync_status",
            params![namespace, id, status as i64],
        )?;
        Ok(())
    }

    fn ids_with_status(&self, namespace: &str, status: SyncStatus) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT blob_id FROM sync_state WHERE namespace = ?1 AND sync_status = ?2 ORDER BY blob_id",
        )?;
        let ids = stmt
            .query_map(params![namespace, status as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    fn local_ids(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT blob_id FROM blobs WHERE namespace = ?1 ORDER BY blob_id")?;
        let ids = stmt
            .query_map(params![namespace], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }
}
