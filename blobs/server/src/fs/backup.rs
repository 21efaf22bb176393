//! Online backups: a consistent snapshot of one user or of all users, streamed as a tar
//! archive while the server keeps serving.
//!
//! Each user's files are hard-linked into a snapshot directory while that user's changes
//! wait (milliseconds for thousands of blobs); since the server never modifies a file in
//! place, the links hold exactly the state of that moment, and the archive is written from
//! them afterwards without blocking anyone. Modification times go into PAX records with
//! nanoseconds, so listings ordered by date come back in the same order after a restore.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;

use crate::http::api::AppState;
use crate::http::error::ApiError;

/// The archive's first entry, which says what it is.
pub const MANIFEST: &str = "blobs-backup.json";
pub const FORMAT: &str = "blobs-server-backup/v1";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: String,
    pub server_version: String,
    pub created_unix: u64,
    pub users: Vec<String>,
}

/// Snapshots `users` now and returns the archive as a stream of chunks.
pub async fn stream(state: AppState, users: Vec<String>) -> Result<impl Stream<Item = io::Result<Bytes>>, ApiError> {
    let dir = SnapshotDir(state.storage.new_snapshot_dir()?);
    let mut files = 0;
    for user in &users {
        files += state.storage.snapshot_user(user, &dir.0).await?;
    }
    tracing::info!(users = users.len(), files, "backup snapshot taken");
    let manifest = Manifest {
        format: FORMAT.into(),
        server_version: env!("CARGO_PKG_VERSION").into(),
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        users,
    };
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = write_archive(&mut out, &dir.0, &manifest).and_then(|()| out.flush());
        if let Err(e) = result {
            // The client sees a truncated archive and an error, never a short success.
            tracing::warn!(error = %e, "backup stream failed");
            let _ = tx.blocking_send(Err(e));
        }
        drop(dir);
    });
    Ok(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

const CHUNK: usize = 256 * 1024;

/// Removes the snapshot's links when the archive is written or abandoned.
struct SnapshotDir(PathBuf);

impl Drop for SnapshotDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

fn write_archive(out: &mut impl Write, dir: &Path, manifest: &Manifest) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    let json = serde_json::to_vec_pretty(manifest).expect("the manifest serializes");
    let mut header = tar::Header::new_gnu();
    header.set_size(json.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(manifest.created_unix);
    tar.append_data(&mut header, MANIFEST, json.as_slice())?;
    let mut stack = vec![dir.to_owned()];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    for path in files {
        let rel = path.strip_prefix(dir).expect("walked below dir");
        let file = std::fs::File::open(&path)?;
        let meta = file.metadata()?;
        let mtime = meta
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let exact = format!("{}.{:09}", mtime.as_secs(), mtime.subsec_nanos());
        tar.append_pax_extensions([("mtime", exact.as_bytes())])?;
        let mut header = tar::Header::new_gnu();
        header.set_size(meta.len());
        header.set_mode(0o600);
        header.set_mtime(mtime.as_secs());
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, rel, file)?;
    }
    tar.finish()
}
