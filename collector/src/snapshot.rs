//! The history as a single compressed file: what the site publishes and the next CI job
//! fetches. A snapshot is taken with `VACUUM INTO` (consistent while others write, compact,
//! no write-ahead log beside it) and gzipped.

use std::io::{Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::{CollectorError, Database};

const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CollectorError + '_ {
    move |e| CollectorError::Input {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

impl Database {
    /// Writes a gzipped snapshot of the database to `out` (atomically: a reader never sees
    /// half of it).
    pub fn export_compressed(&self, out: &Path) -> Result<(), CollectorError> {
        let dir = out
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let raw = tempfile::Builder::new()
            .suffix(".sqlite")
            .tempfile_in(dir)
            .map_err(io(dir))?;
        // VACUUM INTO wants a file that does not exist yet.
        let raw_path = raw.path().to_owned();
        drop(raw);
        let result = (|| -> Result<(), CollectorError> {
            // Inside the cleanup's reach: a VACUUM that fails half-way (a full disk) must
            // not leave a partial database in the published directory.
            self.conn.execute("VACUUM INTO ?1", [raw_path.to_string_lossy()])?;
            let mut input = std::fs::File::open(&raw_path).map_err(io(&raw_path))?;
            let gz = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
            let mut enc = GzEncoder::new(gz, Compression::fast());
            std::io::copy(&mut input, &mut enc).map_err(io(out))?;
            let gz = enc.finish().map_err(io(out))?;
            // Published for anyone to read (a temporary file is private to its owner).
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                gz.as_file()
                    .set_permissions(std::fs::Permissions::from_mode(0o644))
                    .map_err(io(out))?;
            }
            gz.as_file().sync_all().map_err(io(out))?;
            gz.persist(out).map_err(|e| io(out)(e.error))?;
            Ok(())
        })();
        let _ = std::fs::remove_file(&raw_path);
        result
    }

    /// Unpacks a gzipped snapshot into `db` (which must not exist) and opens it, refusing
    /// anything that is not an intact soledad-bench database: a truncated or corrupt
    /// download must never replace a history.
    pub fn import_compressed(gz: &Path, db: &Path) -> Result<Database, CollectorError> {
        let refuse = |message: String| CollectorError::Input {
            path: gz.to_owned(),
            message,
        };
        let mut raw = Vec::new();
        GzDecoder::new(std::fs::File::open(gz).map_err(io(gz))?)
            .read_to_end(&mut raw)
            .map_err(|e| refuse(format!("not a complete gzip file: {e}")))?;
        if !raw.starts_with(SQLITE_MAGIC) {
            return Err(refuse("does not hold an SQLite database".into()));
        }
        let dir = db
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .suffix(".sqlite")
            .tempfile_in(dir)
            .map_err(io(dir))?;
        tmp.write_all(&raw).map_err(io(dir))?;
        tmp.as_file().sync_all().map_err(io(dir))?;
        {
            let check = Database::open(tmp.path()).map_err(|e| refuse(format!("not a soledad-bench database: {e}")))?;
            let verdict: String = check
                .conn
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .map_err(|e| refuse(format!("damaged: {e}")))?;
            if verdict != "ok" {
                return Err(refuse(format!("damaged: {verdict}")));
            }
        }
        tmp.persist_noclobber(db).map_err(|e| io(db)(e.error))?;
        Database::open(db)
    }
}
