//! Durable blob storage on a local filesystem.
//!
//! Layout, as upstream: `<root>/<user>/<namespace>/<id[0]>/<id[0..3]>/<id[0..6]>/<id>`, with
//! `<id>.deleted` tombstones beside the blobs. Unlike upstream, a write never touches the final
//! path until the blob is complete and on disk: it is streamed into `<root>/.tmp`, fsynced,
//! hard-linked into place (which fails if the id exists, so of two concurrent uploads exactly
//! one wins) and the directory is fsynced. A 200 therefore means the blob survives a crash,
//! and no reader ever sees half a blob. `.tmp` is not a valid user name, so it never collides.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use crate::ids::is_valid_name;

const TMP_DIR: &str = ".tmp";
const TOMBSTONE_SUFFIX: &str = ".deleted";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("blob {0} does not exist")]
    NotFound(String),
    #[error("blob {0} already exists")]
    Exists(String),
    #[error("blob is larger than the maximum of {max} bytes")]
    TooLarge { max: u64 },
    #[error("request body was interrupted: {0}")]
    Body(String),
    #[error("storage error at {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A blob's address. Constructed only from validated names.
#[derive(Debug, Clone)]
pub struct BlobRef {
    user: String,
    namespace: String,
    id: String,
}

impl BlobRef {
    /// `None` if any part is not a valid name (see [`crate::ids`]).
    pub fn new(user: &str, namespace: &str, id: &str) -> Option<Self> {
        [user, namespace, id].iter().all(|s| is_valid_name(s)).then(|| Self {
            user: user.to_owned(),
            namespace: namespace.to_owned(),
            id: id.to_owned(),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Options of a listing.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListOptions {
    /// List tombstones of deleted blobs instead of blobs.
    pub deleted: bool,
    pub order: Option<Order>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    OldestFirst,
    NewestFirst,
}

/// An open blob, ready to stream.
pub struct StoredBlob {
    pub file: tokio::fs::File,
    pub size: u64,
    /// base64url of the last 16 bytes (the GCM tag of client-encrypted blobs); `None` when
    /// the blob is shorter than that.
    pub tag: Option<String>,
}

pub struct FsBackend {
    root: PathBuf,
    tmp: PathBuf,
    writes: Semaphore,
    max_blob_size: u64,
}

impl FsBackend {
    /// Opens (creating if needed) the storage root and clears leftovers of interrupted writes.
    pub fn open(root: &Path, max_concurrent_writes: usize, max_blob_size: u64) -> Result<Self, StorageError> {
        std::fs::create_dir_all(root).map_err(io_err(root))?;
        let root = root.canonicalize().map_err(io_err(root))?;
        let tmp = root.join(TMP_DIR);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        Ok(Self {
            root,
            tmp,
            writes: Semaphore::new(max_concurrent_writes.max(1)),
            max_blob_size,
        })
    }

    pub fn max_blob_size(&self) -> u64 {
        self.max_blob_size
    }

    fn namespace_dir(&self, user: &str, namespace: &str) -> PathBuf {
        self.root.join(user).join(namespace)
    }

    fn blob_path(&self, blob: &BlobRef) -> PathBuf {
        let id = &blob.id;
        let prefix = |n: usize| &id[..n.min(id.len())];
        self.namespace_dir(&blob.user, &blob.namespace)
            .join(prefix(1))
            .join(prefix(3))
            .join(prefix(6))
            .join(id)
    }

    /// Stores a new blob from a stream of chunks; fails with `Exists` if the id is taken.
    pub async fn write<S, E>(&self, blob: &BlobRef, mut body: S) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let _permit = self.writes.acquire().await.expect("semaphore is never closed");
        let path = self.blob_path(blob);
        if tokio::fs::try_exists(&path).await.map_err(io_err(&path))? {
            return Err(StorageError::Exists(blob.id.clone()));
        }
        let tmp = TempFile(self.tmp.join(uuid::Uuid::new_v4().simple().to_string()));
        let mut file = tokio::fs::File::create(&tmp.0).await.map_err(io_err(&tmp.0))?;
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| StorageError::Body(e.to_string()))?;
            size += chunk.len() as u64;
            if size > self.max_blob_size {
                return Err(StorageError::TooLarge {
                    max: self.max_blob_size,
                });
            }
            file.write_all(&chunk).await.map_err(io_err(&tmp.0))?;
        }
        file.sync_all().await.map_err(io_err(&tmp.0))?;
        drop(file);
        let id = blob.id.clone();
        tokio::task::spawn_blocking(move || publish(tmp, &path, &id))
            .await
            .expect("publish does not panic")?;
        Ok(size)
    }

    /// Opens a blob for reading.
    pub async fn open_blob(&self, blob: &BlobRef) -> Result<StoredBlob, StorageError> {
        let path = self.blob_path(blob);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound(blob.id.clone()));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let size = file.metadata().await.map_err(io_err(&path))?.len();
        let tag = if size >= 16 {
            let mut tail = [0u8; 16];
            file.seek(io::SeekFrom::End(-16)).await.map_err(io_err(&path))?;
            file.read_exact(&mut tail).await.map_err(io_err(&path))?;
            file.seek(io::SeekFrom::Start(0)).await.map_err(io_err(&path))?;
            blobs_crypto::tag_header(&tail)
        } else {
            None
        };
        Ok(StoredBlob { file, size, tag })
    }

    /// Deletes a blob and leaves a tombstone so that other devices learn of the deletion.
    pub async fn delete(&self, blob: &BlobRef) -> Result<(), StorageError> {
        let path = self.blob_path(blob);
        let id = blob.id.clone();
        tokio::task::spawn_blocking(move || {
            if !path.try_exists().map_err(io_err(&path))? {
                return Err(StorageError::NotFound(id));
            }
            // Tombstone first: a crash between the two steps must not lose the deletion.
            let tombstone = with_suffix(&path, TOMBSTONE_SUFFIX);
            std::fs::File::create(&tombstone).map_err(io_err(&tombstone))?;
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(StorageError::NotFound(id));
                }
                Err(e) => return Err(io_err(&path)(e)),
            }
            sync_dir(path.parent().expect("blob paths have parents"))
        })
        .await
        .expect("delete does not panic")
    }

    /// Ids in a namespace (or, with `deleted`, ids of tombstones).
    pub async fn list(&self, user: &str, namespace: &str, opts: ListOptions) -> Result<Vec<String>, StorageError> {
        let dir = self.namespace_dir(user, namespace);
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            collect(&dir, 0, opts.deleted, &mut found)?;
            match opts.order {
                Some(Order::OldestFirst) => found.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0))),
                Some(Order::NewestFirst) => found.sort_by(|a, b| (b.1, &b.0).cmp(&(a.1, &a.0))),
                None => found.sort_by(|a, b| a.0.cmp(&b.0)),
            }
            Ok(found.into_iter().map(|(id, _)| id).collect())
        })
        .await
        .expect("list does not panic")
    }
}

/// Removes its file when dropped: a failed or cancelled upload leaves nothing behind.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Moves a complete temp file to its final path without ever replacing an existing blob.
fn publish(tmp: TempFile, path: &Path, id: &str) -> Result<(), StorageError> {
    let dir = path.parent().expect("blob paths have parents");
    // Directories created here must reach the disk too, so remember the first new one.
    let mut first_new = None;
    for ancestor in dir.ancestors() {
        if ancestor.exists() {
            break;
        }
        first_new = Some(ancestor.to_owned());
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    match std::fs::hard_link(&tmp.0, path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(StorageError::Exists(id.to_owned()));
        }
        Err(e) => return Err(io_err(path)(e)),
    }
    drop(tmp);
    // A re-uploaded id is no longer deleted (upstream kept the stale tombstone, spec bug 9).
    let tombstone = with_suffix(path, TOMBSTONE_SUFFIX);
    match std::fs::remove_file(&tombstone) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&tombstone)(e)),
    }
    sync_dir(dir)?;
    if let Some(first_new) = first_new {
        let mut d = dir;
        while d != first_new {
            d = d.parent().expect("first_new is an ancestor");
            sync_dir(d)?;
        }
        sync_dir(first_new.parent().expect("the namespace has a parent"))?;
    }
    Ok(())
}

/// Walks the three shard levels below a namespace directory.
fn collect(dir: &Path, depth: usize, deleted: bool, out: &mut Vec<(String, SystemTime)>) -> Result<(), StorageError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let file_type = entry.file_type().map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if depth < 3 {
            if file_type.is_dir() {
                collect(&entry.path(), depth + 1, deleted, out)?;
            }
            continue;
        }
        if !file_type.is_file() {
            continue;
        }
        let id = if deleted {
            match name.strip_suffix(TOMBSTONE_SUFFIX) {
                Some(stem) if is_valid_name(stem) => stem,
                _ => continue,
            }
        } else if is_valid_name(name) {
            name
        } else {
            continue;
        };
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .map_err(io_err(&entry.path()))?;
        out.push((id.to_owned(), modified));
    }
    Ok(())
}
