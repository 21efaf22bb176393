use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::schema::MIGRATIONS;

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("cannot open database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error(
        "database {path} has schema version {found}, newer than this soledad-bench knows ({known}); upgrade soledad-bench"
    )]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("results conflict with the database: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// The benchmark history: one SQLite file (no SQLCipher key: the history is public).
pub struct Database {
    pub(crate) conn: Connection,
    path: PathBuf,
}

impl Database {
    /// Opens or creates the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, CollectorError> {
        let open_err = |message: String| CollectorError::Open {
            path: path.to_owned(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(open_err(format!("directory {} does not exist", dir.display())));
        }
        let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
            .map_err(|e| open_err(e.to_string()))?;
        // A file that is not SQLite fails here, on its first read.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_err(format!("{e} (is it a soledad-bench database?)")))?;
        let mut db = Self {
            conn,
            path: path.to_owned(),
        };
        db.migrate()?;
        Ok(db)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&mut self) -> Result<(), CollectorError> {
        let known = MIGRATIONS.len() as i64;
        let version: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > known {
            return Err(CollectorError::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Schema version in use.
    pub fn schema_version(&self) -> Result<i64, CollectorError> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
}
