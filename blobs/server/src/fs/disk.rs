//! Durable filesystem steps. Everything here blocks; callers run it on the blocking pool.
//!
//! The rules that make a 200 mean "on disk" and keep every reader consistent:
//! - a file is written under `.tmp` (unnamed where the filesystem allows), fsynced, then
//!   linked or renamed into place, and the directory is fsynced (or, for uploads with
//!   `durability = "group"`, and with `auto` while syncs are quick, the filesystem is synced
//!   in their place, see `group_sync`); no
//!   file is ever modified in place after that, so a hard link (backups) always sees one
//!   consistent version;
//! - a blob and its tombstone never both exist once a change is finished; deletion renames
//!   the blob onto its tombstone name, which hides it and records the deletion in one step;
//! - flags of an incoming item are in place before its blob appears.
//!
//! A crash can leave only leftovers that [`scan_user`] repairs: a tombstone that still holds
//! the blob's bytes, a tombstone beside a re-uploaded blob, flags without a blob, temp files.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::flags::FlagSet;
use crate::fs::index::{BlobMeta, Namespace, UserIndex};
use crate::fs::layout::{self, Entry, FLAGS_SUFFIX, TOMBSTONE_SUFFIX};

/// An I/O failure and the path it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct DiskError {
    pub path: PathBuf,
    pub source: io::Error,
}

pub fn err(path: &Path) -> impl FnOnce(io::Error) -> DiskError + '_ {
    move |source| DiskError {
        path: path.to_owned(),
        source,
    }
}

/// Removes its file when dropped unless disarmed: a failed upload leaves nothing behind.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(tmp_dir: &Path) -> Self {
        Self(tmp_dir.join(uuid::Uuid::new_v4().simple().to_string()))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

pub fn sync_dir(dir: &Path) -> Result<(), DiskError> {
    #[cfg(test)]
    tests::SYNCED_DIRS.with(|synced| synced.borrow_mut().push(dir.to_owned()));
    File::open(dir).and_then(|d| d.sync_all()).map_err(err(dir))
}

/// Whether a step fsyncs the directories it changes, or leaves that to a filesystem sync the
/// caller runs next (`group_sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirSync {
    Now,
    Caller,
}

/// Directories made for an upload that leaves the syncing to a filesystem sync
/// (`DirSync::Caller`) that has not finished: their entries may not be durable yet. An upload
/// that fsyncs its own files into a directory that is already there syncs these ancestors of
/// it too (`sync_unsynced_ancestors`): otherwise it could be acknowledged while its
/// directory's own entry could still vanish in a crash, for as long as a sync of the group
/// takes (`durability = "auto"` mixes both kinds of upload). A directory a step fsyncs itself
/// is not listed: between its making and its fsync lie microseconds, where listing every one
/// added about a third to the instructions of 1,000 backend writes at 10 at a time (27 to
/// 36-38 million).
mod unsynced {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    struct Dirs {
        /// Counts the filesystem syncs that started.
        generation: u64,
        /// Each directory, and the generation in which it was made (`None` while it is
        /// being made): a sync that started in a later generation covers it.
        dirs: Vec<(PathBuf, Option<u64>)>,
    }

    static DIRS: Mutex<Dirs> = Mutex::new(Dirs {
        generation: 0,
        dirs: Vec::new(),
    });

    fn dirs() -> std::sync::MutexGuard<'static, Dirs> {
        DIRS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Before `dirs` are made.
    pub fn making(dirs: &[PathBuf]) {
        let mut d = self::dirs();
        d.dirs.extend(dirs.iter().map(|p| (p.clone(), None)));
    }

    /// Once `dirs` are made: the next sync to start covers them.
    pub fn made(dirs: &[PathBuf]) {
        let mut d = self::dirs();
        let generation = d.generation;
        for (p, g) in &mut d.dirs {
            if g.is_none() && dirs.contains(p) {
                *g = Some(generation);
            }
        }
    }

    /// Once `dirs` and their entries are fsynced.
    pub fn synced(dirs: &[PathBuf]) {
        self::dirs().dirs.retain(|(p, _)| !dirs.contains(p));
    }

    /// A filesystem sync starts; returns its generation, for [`filesystem_synced`].
    pub fn sync_starting() -> u64 {
        let mut d = dirs();
        d.generation += 1;
        d.generation
    }

    /// The sync of generation `generation`, of the filesystem holding `root`, succeeded:
    /// every directory under `root` made before it started is durable.
    pub fn filesystem_synced(root: &Path, generation: u64) {
        dirs()
            .dirs
            .retain(|(p, g)| !(p.starts_with(root) && g.is_some_and(|g| g < generation)));
    }

    /// The unsynced directories that are `dir` or its ancestors.
    pub fn on_path(dir: &Path) -> Vec<PathBuf> {
        use std::os::unix::ffi::OsStrExt as _;
        let d = dirs();
        if d.dirs.is_empty() {
            return Vec::new();
        }
        // By bytes: `Path::starts_with` parses both paths into components on every call.
        let dir = dir.as_os_str().as_bytes();
        let mut out: Vec<PathBuf> = d
            .dirs
            .iter()
            .filter(|(p, _)| {
                let p = p.as_os_str().as_bytes();
                dir.starts_with(p) && (dir.len() == p.len() || dir[p.len()] == b'/')
            })
            .map(|(p, _)| p.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

pub use unsynced::{filesystem_synced, sync_starting};

/// Fsyncs every directory on the way to `dir` whose entry may not be durable yet
/// ([`unsynced`]): its parent, and itself if it holds the next one.
fn sync_unsynced_ancestors(dir: &Path) -> Result<(), DiskError> {
    let found = unsynced::on_path(dir);
    if found.is_empty() {
        return Ok(());
    }
    let mut to_sync: Vec<&Path> = Vec::new();
    for d in &found {
        to_sync.push(d.parent().expect("a made directory has a parent"));
        if d.as_path() != dir {
            to_sync.push(d);
        }
    }
    to_sync.sort();
    to_sync.dedup();
    for d in to_sync {
        sync_dir(d)?;
    }
    unsynced::synced(&found);
    Ok(())
}

/// Creates `dir` and its missing parents, and makes the new entries durable (`DirSync::Now`).
pub fn make_dirs(dir: &Path, sync: DirSync) -> Result<(), DiskError> {
    let new: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|a| !a.exists())
        .map(Path::to_path_buf)
        .collect();
    if sync == DirSync::Caller {
        unsynced::making(&new);
    }
    // On failure the new entries stay listed: some may have been made, and an upload that
    // finds them is to sync them.
    fs::create_dir_all(dir).map_err(err(dir))?;
    if sync == DirSync::Caller {
        unsynced::made(&new);
    }
    if let Some(first_new) = new.last().filter(|_| sync == DirSync::Now) {
        let mut d = dir;
        while d != first_new {
            d = d.parent().expect("first_new is an ancestor");
            sync_dir(d)?;
        }
        sync_dir(first_new.parent().expect("a new directory has a parent"))?;
    }
    Ok(())
}

/// Runs `op` on `path`, creating the parent directories once if they are missing.
fn with_parent<T>(path: &Path, sync: DirSync, mut op: impl FnMut() -> io::Result<T>) -> Result<T, DiskError> {
    match op() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            make_dirs(path.parent().expect("blob paths have parents"), sync)?;
            op().map_err(err(path))
        }
        r => r.map_err(err(path)),
    }
}

/// How a complete temp file becomes the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// Link; fails with `AlreadyExists` if the blob exists (of two writers one wins).
    New,
    /// Rename over the blob: readers see the old or the new version, never a mix.
    Replace,
}

/// A blob being written under `.tmp`, before it is published.
///
/// New blobs are unnamed files (`O_TMPFILE`) where the filesystem supports them: a crash
/// leaves nothing to clean up, and publishing is a single link, where a named temp file
/// costs a create and an unlink in `.tmp` as well (two more directory updates in every
/// journal commit). Replacements need a name to rename over the blob, so they get one.
pub struct TempFile {
    file: File,
    /// `None` for an unnamed file.
    name: Option<TempPath>,
    /// The temp directory, named in errors about an unnamed file.
    dir: PathBuf,
}

impl TempFile {
    /// Creates the file; `unnamed` asks for `O_TMPFILE`, falling back to a named file
    /// where the filesystem (or /proc, needed to link it) does not allow it.
    pub fn create(tmp_dir: &Path, unnamed: bool) -> Result<Self, DiskError> {
        if unnamed && Path::new("/proc/self/fd").is_dir() {
            use std::os::unix::fs::OpenOptionsExt as _;
            match fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_TMPFILE)
                .mode(0o600)
                .open(tmp_dir)
            {
                Ok(file) => {
                    return Ok(Self {
                        file,
                        name: None,
                        dir: tmp_dir.to_owned(),
                    });
                }
                // EOPNOTSUPP (filesystem) or EISDIR/EINVAL (kernel without O_TMPFILE).
                Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)) => {}
                Err(e) => return Err(err(tmp_dir)(e)),
            }
        }
        let name = TempPath::new(tmp_dir);
        let file = File::create(&name.0).map_err(err(&name.0))?;
        Ok(Self {
            file,
            name: Some(name),
            dir: tmp_dir.to_owned(),
        })
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// The path to name in errors.
    pub fn display_path(&self) -> &Path {
        self.name.as_ref().map_or(&self.dir, |n| &n.0)
    }

    /// Gives an unnamed file the name `path` (`AlreadyExists` if it is taken).
    fn link_unnamed(&self, path: &Path) -> io::Result<()> {
        use std::os::fd::AsRawFd as _;
        use std::os::unix::ffi::OsStrExt as _;
        // std has no linkat with AT_SYMLINK_FOLLOW, which linking an open unnamed file
        // through /proc needs (AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
        let source =
            std::ffi::CString::new(format!("/proc/self/fd/{}", self.file.as_raw_fd())).expect("no NUL in a number");
        let target = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a blob path"))?;
        // SAFETY: both arguments are valid NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                source.as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// A change that readers can see (a name placed, renamed or removed), and any failure of
/// the steps after it, such as the directory sync. Such a failure means the change may not
/// survive a crash and must not be acknowledged; but the caller's index records the change
/// all the same, because it mirrors the names on disk: an index that missed it would answer
/// 404 for a blob that is there, or list one that is gone, until a restart.
#[must_use]
#[derive(Debug)]
pub struct Visible<T> {
    pub value: T,
    pub failed_after: Option<DiskError>,
}

impl<T> Visible<T> {
    fn new(value: T) -> Self {
        Self {
            value,
            failed_after: None,
        }
    }

    /// Runs the next step unless one before it failed.
    pub fn then(mut self, step: impl FnOnce() -> Result<(), DiskError>) -> Self {
        if self.failed_after.is_none() {
            self.failed_after = step().err();
        }
        self
    }

    /// The value, or the failure that keeps the change from being acknowledged.
    pub fn into_result(self) -> Result<T, DiskError> {
        match self.failed_after {
            None => Ok(self.value),
            Some(e) => Err(e),
        }
    }
}

/// Moves a complete, durable temp file to `path`. An error means nothing changed; a value
/// of `false` that `Publish::New` found the blob already there (nothing changed either).
/// With `DirSync::Now` the directory is fsynced before the blob counts as published; with
/// `DirSync::Caller` the caller must sync the filesystem before it acknowledges anything.
pub fn publish(
    tmp: TempFile,
    path: &Path,
    how: Publish,
    remove_tombstone: bool,
    sync: DirSync,
) -> Result<Visible<bool>, DiskError> {
    let placed = match (&tmp.name, how) {
        (None, Publish::New) => with_parent(path, sync, || tmp.link_unnamed(path)),
        (Some(name), Publish::New) => with_parent(path, sync, || fs::hard_link(&name.0, path)),
        (Some(name), Publish::Replace) => with_parent(path, sync, || fs::rename(&name.0, path)),
        (None, Publish::Replace) => {
            return Err(err(path)(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a replacement must be written to a named temp file",
            )));
        }
    };
    match placed {
        Ok(()) => {}
        Err(e) if e.source.kind() == io::ErrorKind::AlreadyExists => return Ok(Visible::new(false)),
        Err(e) => return Err(e),
    }
    drop(tmp);
    Ok(Visible::new(true)
        .then(|| match remove_tombstone {
            true => remove_if_exists(&layout::with_suffix(path, TOMBSTONE_SUFFIX)),
            false => Ok(()),
        })
        .then(|| match sync {
            DirSync::Now => {
                let dir = path.parent().expect("blob paths have parents");
                sync_dir(dir)?;
                sync_unsynced_ancestors(dir)
            }
            DirSync::Caller => Ok(()),
        }))
}

/// Removes `path` if it exists, and then fsyncs its directory, so that nothing linked next
/// can outlive the removal in a crash.
pub fn remove_durably(path: &Path) -> Result<(), DiskError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().expect("blob paths have parents")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err(path)(e)),
    }
}

pub fn remove_if_exists(path: &Path) -> Result<(), DiskError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err(path)(e)),
    }
}

/// Reads exactly `len` bytes from the start of `file` into a new buffer without zeroing it
/// first (a memset of the whole buffer that the read then overwrites, on every small GET).
/// Hand-written because std's way to read into uninitialised memory (`read_buf`) is not
/// stable. Fails with `UnexpectedEof` if the file is shorter.
pub fn read_exact_uninit(file: &File, len: usize) -> io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd as _;
    let mut buf = Vec::<u8>::with_capacity(len);
    while buf.len() < len {
        let filled = buf.len();
        // SAFETY: the kernel writes at most `len - filled` bytes into the spare capacity
        // after `filled`, which `with_capacity(len)` allocated; `set_len` below exposes only
        // the bytes it reports written.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                buf.as_mut_ptr().add(filled).cast(),
                len - filled,
                filled as libc::off_t,
            )
        };
        match n {
            0 => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            // SAFETY: the kernel initialised those `n` bytes (see above).
            n if n > 0 => unsafe { buf.set_len(filled + n as usize) },
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(buf)
}

/// Writes a small file durably under `.tmp` and returns it, ready to be renamed.
fn durable_temp(tmp_dir: &Path, contents: &[u8]) -> Result<TempPath, DiskError> {
    let tmp = TempPath::new(tmp_dir);
    let mut f = File::create(&tmp.0).map_err(err(&tmp.0))?;
    f.write_all(contents).map_err(err(&tmp.0))?;
    f.sync_all().map_err(err(&tmp.0))?;
    Ok(tmp)
}

/// Replaces the flags of the blob at `blob_path` (removing the file for no flags) and
/// fsyncs the directory. Returns the time recorded for the change.
pub fn write_flags(tmp_dir: &Path, blob_path: &Path, flags: FlagSet) -> Result<Visible<SystemTime>, DiskError> {
    let path = layout::with_suffix(blob_path, FLAGS_SUFFIX);
    let at = if flags.is_empty() {
        remove_if_exists(&path)?;
        SystemTime::now()
    } else {
        let tmp = durable_temp(tmp_dir, flags.to_json().as_bytes())?;
        let at = fs::metadata(&tmp.0).and_then(|m| m.modified()).map_err(err(&tmp.0))?;
        with_parent(&path, DirSync::Now, || fs::rename(&tmp.0, &path))?;
        at
    };
    Ok(Visible::new(at).then(|| sync_dir(path.parent().expect("blob paths have parents"))))
}

/// Deletes a blob, leaving an empty tombstone, in a way no crash can half-do: the blob is
/// renamed onto the tombstone name (one atomic step), then that name is pointed at a fresh
/// empty file. The blob's inode is never truncated, so a backup holding a link keeps it.
pub fn delete(tmp_dir: &Path, blob_path: &Path, has_flags: bool) -> Result<Visible<SystemTime>, DiskError> {
    let tombstone = layout::with_suffix(blob_path, TOMBSTONE_SUFFIX);
    fs::rename(blob_path, &tombstone).map_err(err(blob_path))?;
    // The deletion is visible from here on. Should a step below fail, the tombstone may still
    // hold the blob's bytes, which `scan_user` empties at the next start.
    let mut at = SystemTime::now();
    let done = Visible::new(())
        .then(|| {
            let empty = durable_temp(tmp_dir, b"")?;
            at = fs::metadata(&empty.0)
                .and_then(|m| m.modified())
                .map_err(err(&empty.0))?;
            fs::rename(&empty.0, &tombstone).map_err(err(&tombstone))
        })
        .then(|| match has_flags {
            true => remove_if_exists(&layout::with_suffix(blob_path, FLAGS_SUFFIX)),
            false => Ok(()),
        })
        .then(|| sync_dir(blob_path.parent().expect("blob paths have parents")));
    Ok(Visible {
        value: at,
        failed_after: done.failed_after,
    })
}

/// Loads one user's index from disk and repairs what a crash may have left.
pub fn scan_user(root: &Path, user: &str, tmp_dir: &Path) -> Result<UserIndex, DiskError> {
    let mut index = UserIndex::default();
    let user_dir = root.join(user);
    for ns_entry in read_dir_or_empty(&user_dir)? {
        let Some(ns) = ns_entry.to_str().filter(|n| crate::ids::is_valid_name(n)) else {
            continue;
        };
        let mut namespace = Namespace::default();
        let ns_dir = user_dir.join(ns);
        for a in read_dir_or_empty(&ns_dir)? {
            for b in read_dir_or_empty(&ns_dir.join(&a))? {
                for c in read_dir_or_empty(&ns_dir.join(&a).join(&b))? {
                    let shard = ns_dir.join(&a).join(&b).join(&c);
                    if shard.is_dir() {
                        scan_shard(&shard, tmp_dir, &mut namespace)?;
                    }
                }
            }
        }
        index.used += namespace.bytes;
        if !namespace.blobs.is_empty() || !namespace.tombstones.is_empty() {
            index.namespaces.insert(ns.to_owned(), namespace);
        }
    }
    Ok(index)
}

fn read_dir_or_empty(dir: &Path) -> Result<Vec<std::ffi::OsString>, DiskError> {
    match fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.map(|e| e.file_name()).map_err(err(dir))).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory => Ok(Vec::new()),
        Err(e) => Err(err(dir)(e)),
    }
}

fn scan_shard(shard: &Path, tmp_dir: &Path, ns: &mut Namespace) -> Result<(), DiskError> {
    let mut blobs: HashMap<String, fs::Metadata> = HashMap::new();
    let mut flags: HashMap<String, PathBuf> = HashMap::new();
    let mut tombstones: HashMap<String, fs::Metadata> = HashMap::new();
    for name in read_dir_or_empty(shard)? {
        let Some(name) = name.to_str() else { continue };
        let Some(entry) = layout::classify(name) else {
            continue;
        };
        let id = match entry {
            Entry::Blob(id) | Entry::Flags(id) | Entry::Tombstone(id) => id,
        };
        // A file in a shard its id does not belong to was not put there by this server.
        if shard.ends_with(layout::shard_dir(id)) {
            let path = shard.join(name);
            let meta = || fs::symlink_metadata(&path).map_err(err(&path));
            match entry {
                Entry::Blob(_) => {
                    let m = meta()?;
                    if m.is_file() {
                        blobs.insert(id.to_owned(), m);
                    }
                }
                Entry::Flags(_) => {
                    flags.insert(id.to_owned(), path);
                }
                Entry::Tombstone(_) => {
                    let m = meta()?;
                    if m.is_file() {
                        tombstones.insert(id.to_owned(), m);
                    }
                }
            }
        }
    }
    let mut repaired = false;
    for (id, m) in &tombstones {
        let path = shard.join(format!("{id}{TOMBSTONE_SUFFIX}"));
        if blobs.contains_key(id) {
            // Re-uploaded after a deletion; the crash came before the tombstone was removed.
            remove_if_exists(&path)?;
            repaired = true;
            continue;
        }
        let at = m.modified().map_err(err(&path))?;
        if m.len() > 0 {
            // Deleted, but the crash came before the tombstone was emptied.
            let empty = durable_temp(tmp_dir, b"")?;
            File::options()
                .write(true)
                .open(&empty.0)
                .and_then(|f| f.set_modified(at))
                .map_err(err(&empty.0))?;
            fs::rename(&empty.0, &path).map_err(err(&path))?;
            repaired = true;
        }
        ns.tombstones.insert(id.clone(), at);
    }
    for (id, path) in &flags {
        if !blobs.contains_key(id) {
            // Flags written for an incoming item whose blob never appeared.
            remove_if_exists(path)?;
            repaired = true;
        }
    }
    for (id, m) in blobs {
        let path = shard.join(&id);
        let mtime = m.modified().map_err(err(&path))?;
        let (flag_set, flags_time) = match flags.get(&id) {
            Some(fpath) => read_flags(fpath)?.unwrap_or((FlagSet::EMPTY, mtime)),
            None => (FlagSet::EMPTY, mtime),
        };
        ns.bytes += m.len();
        ns.blobs.insert(
            id,
            BlobMeta {
                size: m.len(),
                mtime,
                flags: flag_set,
                flags_time,
            },
        );
    }
    if repaired {
        sync_dir(shard)?;
    }
    Ok(())
}

/// Reads a flags file; a damaged one is reported and read as no flags.
fn read_flags(path: &Path) -> Result<Option<(FlagSet, SystemTime)>, DiskError> {
    let mut raw = Vec::new();
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(path)(e)),
    };
    let at = f.metadata().and_then(|m| m.modified()).map_err(err(path))?;
    Read::by_ref(&mut f)
        .take(4096)
        .read_to_end(&mut raw)
        .map_err(err(path))?;
    match FlagSet::from_json(&raw) {
        Ok(set) => Ok(Some((set, at))),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring a damaged flags file");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt as _;

    use super::*;

    thread_local! {
        /// The directories [`sync_dir`] fsynced on this test's thread, in order.
        pub static SYNCED_DIRS: std::cell::RefCell<Vec<PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let tmp = root.path().join(".tmp");
        fs::create_dir(&tmp).unwrap();
        let blob = root.path().join("u/default/a/abc/abcdef/abcdef-1");
        (root, tmp, blob)
    }

    #[test]
    fn reads_exactly_the_asked_bytes_or_reports_a_short_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let contents: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(&path, &contents).unwrap();
        let f = File::open(&path).unwrap();
        assert_eq!(read_exact_uninit(&f, contents.len()).unwrap(), contents);
        assert_eq!(read_exact_uninit(&f, 10).unwrap(), contents[..10]);
        assert!(read_exact_uninit(&f, 0).unwrap().is_empty());
        let short = read_exact_uninit(&f, contents.len() + 1).unwrap_err();
        assert_eq!(short.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn an_unnamed_temp_file_leaves_no_name_and_is_published_by_one_link() {
        let (_root, tmp, blob) = dirs();
        let t = TempFile::create(&tmp, true).unwrap();
        t.file().write_all_at(b"sealed bytes", 0).unwrap();
        t.file().sync_all().unwrap();
        // This filesystem (ext4, tmpfs, xfs, btrfs) supports O_TMPFILE: nothing is named.
        assert!(t.name.is_none(), "expected an O_TMPFILE file");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
        assert!(
            publish(t, &blob, Publish::New, false, DirSync::Now)
                .unwrap()
                .into_result()
                .unwrap()
        );
        assert_eq!(fs::read(&blob).unwrap(), b"sealed bytes");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    }

    /// A blob whose shard directories are new: the entry of each new directory in its
    /// parent is fsynced before the link, and the blob's own directory after it. (Deferring
    /// the first to after the link, to share one journal commit, measured no faster at 50
    /// concurrent uploads: `BENCHMARKS.md`.)
    #[test]
    /// Group upload A makes a new shard's directories and leaves them to its filesystem sync;
    /// upload B, which fsyncs its own files, links into the same shard before that sync: B
    /// syncs the directories A made too, so its 200 does not rest on A's sync. After a sync
    /// that started once they were made, nobody has to.
    fn directories_another_upload_made_are_synced_before_an_fsynced_upload_is_done() {
        let (root, tmp, blob) = dirs();
        fs::create_dir_all(root.path().join("u/default")).unwrap();
        let shard = blob.parent().unwrap();
        make_dirs(shard, DirSync::Caller).unwrap();
        let generation = sync_starting();
        // Made after that sync started: not covered by it.
        let later = root.path().join("u/default/b/bcd/bcdefa");
        make_dirs(&later, DirSync::Caller).unwrap();

        SYNCED_DIRS.with(|s| s.borrow_mut().clear());
        let t = TempFile::create(&tmp, true).unwrap();
        assert!(
            publish(t, &blob, Publish::New, false, DirSync::Now)
                .unwrap()
                .into_result()
                .unwrap()
        );
        let at = |p: &str| root.path().join(p);
        let mut synced = SYNCED_DIRS.with(|s| s.take());
        synced.sort();
        assert_eq!(
            synced,
            [
                at("u/default"),
                at("u/default/a"),
                at("u/default/a/abc"),
                at("u/default/a/abc/abcdef")
            ],
            "its own directory, then the parents of the three the other upload made"
        );
        // Synced now: the next upload into the shard fsyncs its own directory only.
        let t = TempFile::create(&tmp, true).unwrap();
        assert!(
            publish(t, &blob.with_file_name("abcdef-2"), Publish::New, false, DirSync::Now)
                .unwrap()
                .value
        );
        assert_eq!(SYNCED_DIRS.with(|s| s.take()), [at("u/default/a/abc/abcdef")]);

        // The sync that started before `later` was made does not cover it; a later one does.
        filesystem_synced(root.path(), generation);
        assert_eq!(unsynced::on_path(&later).len(), 3);
        filesystem_synced(root.path(), sync_starting());
        assert!(unsynced::on_path(&later).is_empty());
    }

    #[test]
    fn directories_made_for_a_blob_are_fsynced_with_it() {
        let (root, tmp, blob) = dirs();
        fs::create_dir_all(root.path().join("u/default")).unwrap();
        let t = TempFile::create(&tmp, true).unwrap();
        t.file().write_all_at(b"sealed", 0).unwrap();
        SYNCED_DIRS.with(|s| s.borrow_mut().clear());
        assert!(
            publish(t, &blob, Publish::New, false, DirSync::Now)
                .unwrap()
                .into_result()
                .unwrap()
        );
        let at = |p: &str| root.path().join(p);
        assert_eq!(
            SYNCED_DIRS.with(|s| s.take()),
            [
                at("u/default/a/abc"),
                at("u/default/a"),
                at("u/default"),
                at("u/default/a/abc/abcdef")
            ],
            "the parents of the three directories made, then the blob's own"
        );

        // Into a directory that exists: its own fsync only.
        let t = TempFile::create(&tmp, true).unwrap();
        assert!(
            publish(t, &blob.with_file_name("abcdef-2"), Publish::New, false, DirSync::Now)
                .unwrap()
                .value
        );
        assert_eq!(SYNCED_DIRS.with(|s| s.take()), [at("u/default/a/abc/abcdef")]);

        // For group commit, none: the caller syncs the filesystem.
        let t = TempFile::create(&tmp, true).unwrap();
        let other = root.path().join("u/default/b/bcd/bcdefa/bcdefa-1");
        assert!(publish(t, &other, Publish::New, false, DirSync::Caller).unwrap().value);
        assert!(SYNCED_DIRS.with(|s| s.take()).is_empty());

        // Flags made in a new directory are synced the same way.
        let flagged = root.path().join("u/default/c/cde/cdefab/cdefab-1");
        write_flags(&tmp, &flagged, FlagSet::of(&[crate::flags::Flag::Pending]))
            .unwrap()
            .into_result()
            .unwrap();
        assert_eq!(
            SYNCED_DIRS.with(|s| s.take()),
            [
                at("u/default/c/cde"),
                at("u/default/c"),
                at("u/default"),
                at("u/default/c/cde/cdefab")
            ]
        );
    }

    #[test]
    fn of_two_unnamed_files_published_under_one_name_the_second_loses() {
        let (_root, tmp, blob) = dirs();
        let first = TempFile::create(&tmp, true).unwrap();
        first.file().write_all_at(b"first", 0).unwrap();
        let second = TempFile::create(&tmp, true).unwrap();
        second.file().write_all_at(b"second", 0).unwrap();
        assert!(
            publish(first, &blob, Publish::New, false, DirSync::Now)
                .unwrap()
                .into_result()
                .unwrap()
        );
        assert!(
            !publish(second, &blob, Publish::New, false, DirSync::Now)
                .unwrap()
                .into_result()
                .unwrap()
        );
        assert_eq!(fs::read(&blob).unwrap(), b"first");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    }

    #[test]
    fn a_replacement_is_named_and_renamed_over_the_blob() {
        let (_root, tmp, blob) = dirs();
        let old = TempFile::create(&tmp, true).unwrap();
        old.file().write_all_at(b"old", 0).unwrap();
        assert!(
            publish(old, &blob, Publish::New, false, DirSync::Now)
                .unwrap()
                .into_result()
                .unwrap()
        );
        let new = TempFile::create(&tmp, false).unwrap();
        assert!(new.name.is_some());
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 1);
        new.file().write_all_at(b"new", 0).unwrap();
        assert!(
            publish(new, &blob, Publish::Replace, false, DirSync::Now)
                .unwrap()
                .into_result()
                .unwrap()
        );
        assert_eq!(fs::read(&blob).unwrap(), b"new");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
        // An unnamed file cannot be renamed over anything: refused, not silently dropped.
        let unnamed = TempFile::create(&tmp, true).unwrap();
        let e = publish(unnamed, &blob, Publish::Replace, false, DirSync::Now).unwrap_err();
        assert_eq!(e.source.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(fs::read(&blob).unwrap(), b"new");
    }

    #[test]
    fn a_dropped_temp_file_leaves_nothing() {
        let (_root, tmp, _blob) = dirs();
        drop(TempFile::create(&tmp, true).unwrap());
        drop(TempFile::create(&tmp, false).unwrap());
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    }
}
