//! Durable blob storage on a local filesystem: the operations the API offers, with quota,
//! flags, tombstones and the in-memory index kept in step with the disk.
//!
//! Concurrency: every change to one blob holds that blob's lock (striped) from its last
//! check to its index update, so "exists" answers, compare-and-set on flags and usage are
//! exact. Every change also holds its user's gate for reading; a backup takes the gate for
//! writing while it links the user's files, which gives it one consistent point in time.
//! Downloads take no lock: files are never modified in place (see [`crate::fs::disk`]).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::os::unix::fs::FileExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::{OnceCell, RwLock, Semaphore};

use crate::admission::{self, Admitted};
use crate::config::Durability;
use crate::flags::{Flag, FlagSet};
use crate::fs::disk::{self, DirSync, Publish, TempFile};
use crate::fs::group_sync::{Adapt, GroupSync};
use crate::fs::index::{BlobMeta, UserIndex};
use crate::fs::layout::{self, LOCK_FILE, SNAPSHOT_DIR, TMP_DIR};
use crate::storage::{self, incoming_preamble};

pub use crate::storage::{
    BlobData, BlobRef, Cursor, ListQuery, Listing, NamespaceUsage, Order, StorageBackend, StorageError, StoreOptions,
    StoredBlob, Totals, Usage, WriteMode, etag,
};

/// Blobs up to this size are read whole in one step; larger ones are streamed.
const INLINE_READ_MAX: u64 = 256 * 1024;
/// Upload bytes are gathered up to this much before each write to the temp file.
const WRITE_BUFFER: usize = 256 * 1024;
/// Striped per-blob locks: enough that unrelated blobs rarely share one.
const ID_LOCKS: usize = 4096;

struct UserState {
    gate: RwLock<()>,
    index: OnceCell<Mutex<UserIndex>>,
}

pub struct FsBackend {
    root: PathBuf,
    /// The root, held open: blobs are read with `openat` relative to it, which spares the
    /// kernel a walk through the root's own path on every GET (`BENCHMARKS.md`). Moving or
    /// replacing the data directory under a running server is not supported: reads would
    /// go on in the old directory while writes follow the path.
    root_dir: std::fs::File,
    tmp: PathBuf,
    snapshots: PathBuf,
    _lock: std::fs::File,
    writes: Semaphore,
    opts: StoreOptions,
    users: Mutex<HashMap<String, Arc<UserState>>>,
    id_locks: Box<[tokio::sync::Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
    totals: Totals,
    /// The group commit of `durability = "group"` and `"auto"`; `None` for fsync per upload.
    group: Option<GroupSync>,
}

fn lock_poisoned<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding an index lock cannot leave it half-updated (updates are plain
    // field writes after the disk step), so the data is still good.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FsBackend {
    /// Opens (creating if needed) the storage root, takes its lock, and clears leftovers of
    /// interrupted writes and backups.
    pub fn open(root: &Path, opts: StoreOptions) -> Result<Self, StorageError> {
        // Durably, as the blobs' own directories are: a data directory made here and lost in
        // a crash would take every blob acknowledged in it along.
        // (Absolute first: the walk up a relative path would end at "", not at a directory.)
        disk::make_dirs(&std::path::absolute(root).map_err(disk::err(root))?, DirSync::Now)?;
        let root = root.canonicalize().map_err(disk::err(root))?;
        let lock = Self::lock(&root)?;
        let root_dir = std::fs::File::open(&root).map_err(disk::err(&root))?;
        let tmp = root.join(TMP_DIR);
        let snapshots = root.join(SNAPSHOT_DIR);
        for dir in [&tmp, &snapshots] {
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(disk::err(dir))?;
            }
            std::fs::create_dir_all(dir).map_err(disk::err(dir))?;
        }
        let group = match opts.durability {
            Durability::Fsync => None,
            Durability::Group => Some(GroupSync::start(&root, None)?),
            Durability::Auto => match GroupSync::start(&root, Some(Adapt::default())) {
                Ok(group) => Some(group),
                Err(e) => {
                    tracing::info!(error = %e, "durability auto: no group commit here, every upload fsyncs its own files");
                    None
                }
            },
        };
        Ok(Self {
            group,
            root,
            root_dir,
            tmp,
            snapshots,
            _lock: lock,
            writes: Semaphore::new(opts.max_concurrent_writes.max(1)),
            opts,
            users: Mutex::new(HashMap::new()),
            id_locks: (0..ID_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect(),
            hasher: Default::default(),
            totals: Totals::default(),
        })
    }

    /// Takes the data directory's exclusive lock: two servers on one directory would each
    /// trust an index the other invalidates.
    pub fn lock(root: &Path) -> Result<std::fs::File, StorageError> {
        let path = root.join(LOCK_FILE);
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(disk::err(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::InUse(root.to_owned())),
            Err(std::fs::TryLockError::Error(e)) => Err(disk::err(&path)(e).into()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn max_blob_size(&self) -> u64 {
        self.opts.max_blob_size
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    pub fn quota_of(&self, user: &str) -> Option<u64> {
        self.opts.user_quotas.get(user).copied().or(self.opts.quota)
    }

    /// Users with a directory in the data root.
    pub fn users_on_disk(&self) -> Result<Vec<String>, StorageError> {
        let mut users: Vec<String> = std::fs::read_dir(&self.root)
            .map_err(disk::err(&self.root))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| crate::ids::is_valid_name(n))
            .collect();
        users.sort();
        Ok(users)
    }

    /// Loads every user's index, so that totals and first requests need no disk walk.
    pub async fn preload(&self) -> Result<(), StorageError> {
        for user in self.users_on_disk()? {
            self.user(&user).await?;
        }
        Ok(())
    }

    fn blob_path(&self, blob: &BlobRef) -> PathBuf {
        // Built in one buffer: this runs on every write, and `Path::join` per level would
        // allocate six times. Same result as `root.join(layout::relative_blob_path(..))`.
        let parts = blob_parts(blob);
        let mut path = std::ffi::OsString::with_capacity(
            self.root.as_os_str().len() + parts.iter().map(|p| p.len() + 1).sum::<usize>(),
        );
        path.push(self.root.as_os_str());
        for p in parts {
            path.push("/");
            path.push(p);
        }
        PathBuf::from(path)
    }

    /// Opens a blob's file for reading, relative to the held root.
    fn open_blob_file(&self, blob: &BlobRef) -> std::io::Result<std::fs::File> {
        use std::os::fd::{AsRawFd as _, FromRawFd as _};
        let rel = std::ffi::CString::new(blob_parts(blob).join("/")).expect("ids and names are [A-Za-z0-9_-]: no NUL");
        // Hand-written because std opens only by path (from the process's root or working
        // directory), not relative to a directory's descriptor.
        // SAFETY: `openat` gets a descriptor that `root_dir` keeps open and a NUL-terminated
        // path; a non-negative result is a new descriptor that nothing else owns.
        loop {
            let fd = unsafe {
                libc::openat(
                    self.root_dir.as_raw_fd(),
                    rel.as_ptr(),
                    libc::O_RDONLY | libc::O_CLOEXEC,
                )
            };
            if fd >= 0 {
                // SAFETY: see above; the descriptor is ours alone to close.
                return Ok(unsafe { std::fs::File::from_raw_fd(fd) });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn blob_path_for_test(&self, blob: &BlobRef) -> PathBuf {
        self.blob_path(blob)
    }

    fn id_lock(&self, blob: &BlobRef) -> &tokio::sync::Mutex<()> {
        &self.id_locks[self.hasher.hash_one(blob) as usize % ID_LOCKS]
    }

    /// The user's state, with the index loaded.
    async fn user(&self, user: &str) -> Result<Arc<UserState>, StorageError> {
        let state = lock_poisoned(&self.users)
            .entry(user.to_owned())
            .or_insert_with(|| {
                Arc::new(UserState {
                    gate: RwLock::new(()),
                    index: OnceCell::new(),
                })
            })
            .clone();
        state
            .index
            .get_or_try_init(|| async {
                let (root, tmp, name) = (self.root.clone(), self.tmp.clone(), user.to_owned());
                let index = tokio::task::spawn_blocking(move || disk::scan_user(&root, &name, &tmp))
                    .await
                    .expect("scanning does not panic")?;
                self.totals.used_bytes.fetch_add(index.used, Ordering::Relaxed);
                self.totals.blobs.fetch_add(index.blob_count(), Ordering::Relaxed);
                self.totals.users.fetch_add(1, Ordering::Relaxed);
                Ok::<_, StorageError>(Mutex::new(index))
            })
            .await?;
        Ok(state)
    }

    fn index(state: &UserState) -> std::sync::MutexGuard<'_, UserIndex> {
        lock_poisoned(state.index.get().expect("user() loads the index"))
    }

    /// Stores an upload. Returns the stored size.
    pub async fn write<S, E>(
        &self,
        blob: &BlobRef,
        mut body: S,
        mode: WriteMode,
        declared: Option<u64>,
    ) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let max = self.opts.max_blob_size;
        admission::declared(declared, max)?;
        let state = self.user(blob.user()).await?;
        let existing = Self::index(&state).get(blob.namespace(), blob.id()).map(|m| m.size);
        let Admitted { credit, overhead } = admission::start(blob.id(), &mode, existing)?;
        let incoming = mode == WriteMode::Incoming;
        let mut reservation = Reservation {
            state: &state,
            quota: self.quota_of(blob.user()),
            credit,
            bytes: 0,
        };
        // Without a declared length the bytes are reserved as they arrive; the preamble of a
        // delivery is known now either way.
        reservation.grow(declared.unwrap_or(0) + overhead)?;
        let _slot = storage::slot(self.opts.write_wait, self.writes.acquire()).await?;

        let unnamed = !matches!(mode, WriteMode::Replace { .. });
        let mut file: Option<TempFile> = None;
        let cap = declared.map_or(64 * 1024, |n| (n + overhead).min(WRITE_BUFFER as u64) as usize);
        let mut buf: Vec<u8> = Vec::with_capacity(cap);
        if incoming {
            // A placeholder of the preamble's exact length; the real one needs the size.
            buf.resize(overhead as usize, b' ');
        }
        let mut size = 0u64;
        // Bytes already in the temp file, before `buf`.
        let mut flushed = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| StorageError::Body(e.to_string()))?;
            size += chunk.len() as u64;
            admission::received(size, max)?;
            if declared.is_none_or(|n| size > n) {
                reservation.grow(chunk.len() as u64)?;
            }
            buf.extend_from_slice(&chunk);
            if buf.len() >= WRITE_BUFFER {
                flushed += buf.len() as u64;
                let tmp_dir = self.tmp.clone();
                let data = std::mem::replace(&mut buf, Vec::with_capacity(WRITE_BUFFER));
                file = Some(
                    tokio::task::spawn_blocking(move || {
                        use std::io::Write as _;
                        let f = match file {
                            Some(f) => f,
                            None => TempFile::create(&tmp_dir, unnamed)?,
                        };
                        f.file().write_all(&data).map_err(disk::err(f.display_path()))?;
                        Ok::<_, disk::DiskError>(f)
                    })
                    .await
                    .expect("writing does not panic")?,
                );
            }
        }
        let preamble = if incoming {
            Some(incoming_preamble(blob.id(), size)?)
        } else {
            None
        };

        let _gate = state.gate.read().await;
        let _blob_lock = self.id_lock(blob).lock().await;
        let (existing, has_tombstone) = {
            let idx = Self::index(&state);
            (
                idx.get(blob.namespace(), blob.id()).copied(),
                idx.has_tombstone(blob.namespace(), blob.id()),
            )
        };
        let current = existing.map(|m| etag(m.mtime, m.size));
        admission::publish(blob.id(), &mode, current.as_deref())?;
        let how = match mode {
            WriteMode::Replace { .. } => Publish::Replace,
            _ => Publish::New,
        };
        let path = self.blob_path(blob);
        let tmp_dir = self.tmp.clone();
        // The file is durable before it is linked into place, and the link before the 200:
        // by fsyncs of its own, or by filesystem syncs shared with other uploads (`group`, and
        // `auto` while the syncs are quick). Decided once, for the whole upload.
        let group = self.group.as_ref().filter(|g| g.shared());
        let dir_sync = if group.is_some() { DirSync::Caller } else { DirSync::Now };
        // Only a delivery needs its id in the blocking step (no allocation on other uploads).
        let delivery_id = incoming.then(|| blob.id().to_owned());
        // A deletion whose removal of the flags failed leaves them beside the tombstone; a new
        // blob of the id must not pick them up (a delivery writes its own over them).
        let stale_flags = (has_tombstone && !incoming && existing.is_none())
            .then(|| layout::with_suffix(&path, layout::FLAGS_SUFFIX));
        let write = move || {
            if let Some(flags) = &stale_flags {
                // Durably before the link (rare: only after a failed deletion).
                disk::remove_durably(flags)?;
            }
            if let Some(id) = delivery_id {
                // A delivery writes its flags before its link, and they would replace those of
                // a blob already at this name that the index does not know (the server records
                // every name it makes, so only something outside it could leave one). Look
                // first (nothing else places this id while its lock is held), and refuse if
                // the answer is unclear.
                match std::fs::symlink_metadata(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Ok(_) => return Err(StorageError::Exists(id)),
                    Err(e) => return Err(disk::err(&path)(e).into()),
                }
            }
            let tmp = match file {
                Some(f) => f,
                None => TempFile::create(&tmp_dir, unnamed)?,
            };
            let (f, at) = (tmp.file(), tmp.display_path());
            f.write_all_at(&buf, flushed).map_err(disk::err(at))?;
            if let Some(p) = &preamble {
                f.write_all_at(p, 0).map_err(disk::err(at))?;
            }
            if dir_sync == DirSync::Now {
                f.sync_all().map_err(disk::err(at))?;
            }
            let meta = f.metadata().map_err(disk::err(at))?;
            let mtime = meta.modified().map_err(disk::err(at))?;
            // The flags are written (and fsynced) before the blob appears, in both modes.
            let flags_time = if preamble.is_some() {
                let written = disk::write_flags(&tmp_dir, &path, FlagSet::of(&[Flag::Pending]))?;
                if written.failed_after.is_some() {
                    // Flags without a blob: not to be picked up by a later blob of this id.
                    drop_delivery_flags(&path);
                }
                written.into_result()?
            } else {
                mtime
            };
            Ok::<_, StorageError>((tmp, path, mtime, flags_time, meta.len()))
        };
        let publish = move |(tmp, path, mtime, flags_time, stored): (TempFile, PathBuf, _, _, u64)| {
            let published = disk::publish(tmp, &path, how, has_tombstone, dir_sync);
            if incoming && !matches!(&published, Ok(p) if p.value) {
                // This delivery's own flags (it made sure no blob had this id): the blob
                // they were for is not there.
                drop_delivery_flags(&path);
            }
            Ok::<_, StorageError>((published?, mtime, flags_time, stored))
        };
        let (published, mtime, flags_time, stored) = match group {
            None => tokio::task::spawn_blocking(move || publish(write()?))
                .await
                .expect("publishing does not panic")?,
            Some(group) => {
                let written = tokio::task::spawn_blocking(write)
                    .await
                    .expect("writing does not panic")?;
                if how == Publish::Replace {
                    // A rename over a blob frees the old one's blocks, which can take long for
                    // a big blob: not on the sync thread, where every upload would wait for it.
                    group.sync().await?;
                    let (published, mtime, flags_time, stored) = tokio::task::spawn_blocking(move || publish(written))
                        .await
                        .expect("publishing does not panic")?;
                    let synced = group.sync().await;
                    (published.then(|| synced), mtime, flags_time, stored)
                } else {
                    // A new blob's link is quick. Only a blob that was placed needs the second
                    // sync before its answer. (An id found taken at the link, possible only for
                    // a blob on disk but not in the index, frees its temp file on the sync
                    // thread.)
                    let delivery_path = incoming.then(|| written.1.clone());
                    let linked = group.sync_link_sync(move || {
                        let published = publish(written);
                        let placed = matches!(&published, Ok((p, ..)) if p.value);
                        (published, placed)
                    });
                    let linked = match linked.await {
                        Ok(linked) => linked,
                        Err(e) => {
                            // Not linked (the sync before it failed): a delivery's flags go.
                            if let Some(path) = delivery_path {
                                let _ = tokio::task::spawn_blocking(move || drop_delivery_flags(&path)).await;
                            }
                            return Err(e.into());
                        }
                    };
                    let (published, mtime, flags_time, stored) = linked.value?;
                    let synced = linked.failed_after.map_or(Ok(()), Err);
                    (published.then(|| synced), mtime, flags_time, stored)
                }
            }
        };
        if !published.value {
            return Err(StorageError::Exists(blob.id().to_owned()));
        }
        let flags = match (incoming, existing) {
            (true, _) => FlagSet::of(&[Flag::Pending]),
            (false, Some(m)) => m.flags,
            (false, None) => FlagSet::EMPTY,
        };
        let flags_time = existing.filter(|_| !incoming).map_or(flags_time, |m| m.flags_time);
        let meta = BlobMeta {
            size: stored,
            mtime,
            flags,
            flags_time,
        };
        let mut idx = Self::index(&state);
        let old = idx.put(blob.namespace(), blob.id(), meta);
        idx.reserved -= reservation.bytes;
        reservation.bytes = 0;
        drop(idx);
        self.totals.used_bytes.fetch_add(stored, Ordering::Relaxed);
        match old {
            Some(old) => {
                self.totals.used_bytes.fetch_sub(old, Ordering::Relaxed);
            }
            None => {
                self.totals.blobs.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Recorded, since readers see it; not acknowledged if a step after the link failed.
        published.into_result()?;
        Ok(stored)
    }

    /// Opens a blob for reading.
    ///
    /// This runs on the calling task, not the blocking pool: it is an open, an fstat and
    /// either one read of at most [`INLINE_READ_MAX`] bytes or an mmap, which take
    /// microseconds for cached files, where a hop to the blocking pool would cost more than
    /// the work. (nginx makes the same trade: a disk that stalls stalls the event loop.)
    pub async fn open_blob(&self, blob: &BlobRef) -> Result<StoredBlob, StorageError> {
        read_blob(self.open_blob_file(blob), &|| self.blob_path(blob), blob.id())
    }

    /// The blob's flags as clients see them.
    pub async fn flags(&self, blob: &BlobRef) -> Result<FlagSet, StorageError> {
        let state = self.user(blob.user()).await?;
        let idx = Self::index(&state);
        let meta = idx
            .get(blob.namespace(), blob.id())
            .ok_or_else(|| StorageError::NotFound(blob.id().to_owned()))?;
        Ok(meta.effective_flags(SystemTime::now(), self.opts.processing_timeout))
    }

    /// Replaces a blob's flags; with `expect`, only if its current flags are exactly those
    /// (compare-and-set: of two consumers reserving one item, one wins).
    pub async fn set_flags(&self, blob: &BlobRef, flags: FlagSet, expect: Option<FlagSet>) -> Result<(), StorageError> {
        let state = self.user(blob.user()).await?;
        let _gate = state.gate.read().await;
        let _blob_lock = self.id_lock(blob).lock().await;
        {
            let idx = Self::index(&state);
            let meta = idx
                .get(blob.namespace(), blob.id())
                .ok_or_else(|| StorageError::NotFound(blob.id().to_owned()))?;
            let current = meta.effective_flags(SystemTime::now(), self.opts.processing_timeout);
            if let Some(expected) = expect
                && current != expected
            {
                return Err(StorageError::FlagsMismatch {
                    current: current.names(),
                    expected: expected.names(),
                });
            }
        }
        let (tmp, path) = (self.tmp.clone(), self.blob_path(blob));
        let written = tokio::task::spawn_blocking(move || disk::write_flags(&tmp, &path, flags))
            .await
            .expect("writing flags does not panic")?;
        Self::index(&state).set_flags(blob.namespace(), blob.id(), flags, written.value);
        written.into_result()?;
        Ok(())
    }

    /// Deletes a blob and leaves a tombstone so that other devices learn of the deletion.
    pub async fn delete(&self, blob: &BlobRef) -> Result<(), StorageError> {
        let state = self.user(blob.user()).await?;
        let _gate = state.gate.read().await;
        let _blob_lock = self.id_lock(blob).lock().await;
        let has_flags = {
            let idx = Self::index(&state);
            let meta = idx
                .get(blob.namespace(), blob.id())
                .ok_or_else(|| StorageError::NotFound(blob.id().to_owned()))?;
            !meta.flags.is_empty()
        };
        let (tmp, path) = (self.tmp.clone(), self.blob_path(blob));
        let deleted = tokio::task::spawn_blocking(move || disk::delete(&tmp, &path, has_flags))
            .await
            .expect("deleting does not panic")?;
        if let Some(meta) = Self::index(&state).delete(blob.namespace(), blob.id(), deleted.value) {
            self.totals.used_bytes.fetch_sub(meta.size, Ordering::Relaxed);
            self.totals.blobs.fetch_sub(1, Ordering::Relaxed);
        }
        deleted.into_result()?;
        Ok(())
    }

    /// Ids in a namespace (or, with `deleted`, ids of tombstones).
    pub async fn list(&self, user: &str, namespace: &str, q: &ListQuery) -> Result<Listing, StorageError> {
        let state = self.user(user).await?;
        let idx = Self::index(&state);
        Ok(storage::list_namespace(
            idx.namespaces.get(namespace),
            q,
            SystemTime::now(),
            self.opts.processing_timeout,
        ))
    }

    /// Exact usage of one user.
    pub async fn usage(&self, user: &str) -> Result<Usage, StorageError> {
        let state = self.user(user).await?;
        let idx = Self::index(&state);
        Ok(storage::usage_of(user, &idx, self.quota_of(user)))
    }

    /// A fresh, empty directory for a snapshot, removed at the next start if left behind.
    pub fn new_snapshot_dir(&self) -> Result<PathBuf, StorageError> {
        let dir = self.snapshots.join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&dir).map_err(disk::err(&dir))?;
        Ok(dir)
    }

    /// Hard-links every file of `user` into `dest/<user>/...` at one point in time: changes
    /// wait while the links are made. Returns the number of files linked.
    pub async fn snapshot_user(&self, user: &str, dest: &Path) -> Result<u64, StorageError> {
        let state = self.user(user).await?;
        let _gate = state.gate.write().await;
        let mut files: Vec<PathBuf> = Vec::new();
        {
            let idx = Self::index(&state);
            for (ns_name, ns) in &idx.namespaces {
                for (id, meta) in &ns.blobs {
                    let rel = layout::relative_blob_path(user, ns_name, id);
                    if !meta.flags.is_empty() {
                        files.push(layout::with_suffix(&rel, layout::FLAGS_SUFFIX));
                    }
                    files.push(rel);
                }
                for id in ns.tombstones.keys() {
                    let rel = layout::relative_blob_path(user, ns_name, id);
                    files.push(layout::with_suffix(&rel, layout::TOMBSTONE_SUFFIX));
                }
            }
        }
        let (root, dest) = (self.root.clone(), dest.to_owned());
        tokio::task::spawn_blocking(move || {
            for rel in &files {
                let target = dest.join(rel);
                let parent = target.parent().expect("relative paths have parents");
                std::fs::create_dir_all(parent).map_err(disk::err(parent))?;
                let source = root.join(rel);
                std::fs::hard_link(&source, &target).map_err(disk::err(&source))?;
            }
            Ok(files.len() as u64)
        })
        .await
        .expect("linking does not panic")
    }
}

impl StorageBackend for FsBackend {
    fn max_blob_size(&self) -> u64 {
        self.opts.max_blob_size
    }
    fn totals(&self) -> &Totals {
        &self.totals
    }
    async fn preload(&self) -> Result<(), StorageError> {
        FsBackend::preload(self).await
    }
    async fn healthy(&self) -> bool {
        let tmp = self.tmp.clone();
        tokio::task::spawn_blocking(move || std::fs::metadata(tmp).is_ok_and(|m| m.is_dir()))
            .await
            .unwrap_or(false)
    }
    async fn users(&self) -> Result<Vec<String>, StorageError> {
        self.users_on_disk()
    }
    async fn write<S, E>(
        &self,
        blob: &BlobRef,
        body: S,
        mode: WriteMode,
        declared: Option<u64>,
    ) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display + Send,
    {
        FsBackend::write(self, blob, body, mode, declared).await
    }
    async fn open_blob(&self, blob: &BlobRef) -> Result<StoredBlob, StorageError> {
        FsBackend::open_blob(self, blob).await
    }
    async fn flags(&self, blob: &BlobRef) -> Result<FlagSet, StorageError> {
        FsBackend::flags(self, blob).await
    }
    async fn set_flags(&self, blob: &BlobRef, flags: FlagSet, expect: Option<FlagSet>) -> Result<(), StorageError> {
        FsBackend::set_flags(self, blob, flags, expect).await
    }
    async fn delete(&self, blob: &BlobRef) -> Result<(), StorageError> {
        FsBackend::delete(self, blob).await
    }
    async fn list(&self, user: &str, namespace: &str, q: &ListQuery) -> Result<Listing, StorageError> {
        FsBackend::list(self, user, namespace, q).await
    }
    async fn usage(&self, user: &str) -> Result<Usage, StorageError> {
        FsBackend::usage(self, user).await
    }
}

/// Bytes promised to one upload; released when dropped unless taken over by the index.
struct Reservation<'a> {
    state: &'a UserState,
    quota: Option<u64>,
    /// Bytes of the blob a replacement frees.
    credit: u64,
    bytes: u64,
}

impl Reservation<'_> {
    fn grow(&mut self, n: u64) -> Result<(), StorageError> {
        let mut idx = FsBackend::index(self.state);
        if let Some(quota) = self.quota {
            let after = idx.used + idx.reserved + n;
            if after > quota.saturating_add(self.credit) {
                return Err(StorageError::QuotaExceeded { quota, used: idx.used });
            }
        }
        idx.reserved += n;
        self.bytes += n;
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            FsBackend::index(self.state).reserved -= self.bytes;
        }
    }
}

/// Removes the PENDING flags a delivery wrote for the blob at `blob_path`, which was not
/// linked; best effort, since a start removes flags without a blob anyway.
fn drop_delivery_flags(blob_path: &Path) {
    let _ = disk::remove_if_exists(&layout::with_suffix(blob_path, layout::FLAGS_SUFFIX));
}

/// The path components of a blob below the root: user, namespace, three shard levels, id.
fn blob_parts(blob: &BlobRef) -> [&str; 6] {
    let id = blob.id();
    let prefix = |n: usize| &id[..n.min(id.len())];
    [blob.user(), blob.namespace(), prefix(1), prefix(3), prefix(6), id]
}

/// Reads an opened blob file; `path` names it in errors (built only then).
fn read_blob(
    opened: std::io::Result<std::fs::File>,
    path: &dyn Fn() -> PathBuf,
    id: &str,
) -> Result<StoredBlob, StorageError> {
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StorageError::NotFound(id.to_owned()));
        }
        Err(e) => return Err(disk::err(&path())(e).into()),
    };
    let meta = file.metadata().map_err(|e| disk::err(&path())(e))?;
    if !meta.is_file() {
        return Err(StorageError::NotFound(id.to_owned()));
    }
    let size = meta.len();
    let mtime = UNIX_EPOCH
        + Duration::new(
            meta.mtime().max(0) as u64,
            meta.mtime_nsec().clamp(0, 999_999_999) as u32,
        );
    let etag = etag(mtime, size);
    if size <= INLINE_READ_MAX {
        // One `pread` of the known size: `read_to_end` would split it (its first read is
        // capped at 8 KiB), a second system call on every small GET.
        let data = disk::read_exact_uninit(&file, size as usize).map_err(|e| {
            // Blob files never change once published (see `disk`); a short read is damage.
            disk::err(&path())(match e.kind() {
                std::io::ErrorKind::UnexpectedEof => std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("blob file is shorter than the {size} bytes it had when opened"),
                ),
                _ => e,
            })
        })?;
        let data = Bytes::from(data);
        return Ok(StoredBlob {
            size: data.len() as u64,
            tag: blobs_crypto::tag_header(&data),
            etag,
            data: BlobData::Bytes(data),
        });
    }
    // SAFETY: a mapping is undefined behaviour only if the file changes under it. This
    // server never modifies a blob file after publishing it: replacement renames a new
    // file over the name and deletion renames the name away, so the mapped inode keeps
    // its bytes for as long as the mapping lives (see `disk`). Only another process
    // writing into the data directory could break this, and nothing else may.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| disk::err(&path())(e))?;
    let _ = map.advise(memmap2::Advice::Sequential);
    let data = Bytes::from_owner(map);
    Ok(StoredBlob {
        size: data.len() as u64,
        tag: blobs_crypto::tag_header(&data),
        etag,
        data: BlobData::Bytes(data),
    })
}
