//! Restoring a backup archive into a data directory that no server is using.
//!
//! Every entry is checked against the layout before anything is written (an archive is
//! input like any other: no `..`, no absolute paths, no links, no files the server would not
//! make). Users are extracted into a staging directory and then moved into place one rename
//! each, so a failed restore leaves the data directory as it was.

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::flags::FlagSet;
use crate::fs::backend::{FsBackend, StorageError};
use crate::fs::backup::{FORMAT, MANIFEST, Manifest};
use crate::fs::disk::{self, DiskError};
use crate::fs::layout::{self, Entry, TMP_DIR};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("cannot read the archive: {0}")]
    Read(io::Error),
    #[error("the archive is not a blobs-server backup: {0}")]
    NotABackup(String),
    #[error("archive entry {entry:?}: {problem}")]
    BadEntry { entry: String, problem: String },
    #[error("user {0} is not in this backup")]
    NoSuchUser(String),
    #[error("user {0} already has blobs here; pass --replace to overwrite them")]
    UserExists(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Disk(#[from] DiskError),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    pub users: Vec<String>,
    pub blobs: u64,
    pub flags: u64,
    pub tombstones: u64,
}

pub fn restore(
    data_dir: &Path,
    archive: impl Read,
    only_user: Option<&str>,
    replace: bool,
) -> Result<RestoreReport, RestoreError> {
    std::fs::create_dir_all(data_dir).map_err(disk::err(data_dir))?;
    let _lock = FsBackend::lock(data_dir)?;
    let tmp = data_dir.join(TMP_DIR);
    std::fs::create_dir_all(&tmp).map_err(disk::err(&tmp))?;
    let staging = Staging(tmp.join(format!("restore-{}", uuid::Uuid::new_v4().simple())));
    std::fs::create_dir_all(&staging.0).map_err(disk::err(&staging.0))?;

    let mut tar = tar::Archive::new(archive);
    let mut manifest: Option<Manifest> = None;
    let mut report = RestoreReport::default();
    let mut users = BTreeSet::new();
    for entry in tar.entries().map_err(RestoreError::Read)? {
        let mut entry = entry.map_err(RestoreError::Read)?;
        let path = entry.path().map_err(RestoreError::Read)?.into_owned();
        let shown = path.display().to_string();
        let bad = |problem: &str| RestoreError::BadEntry {
            entry: shown.clone(),
            problem: problem.to_owned(),
        };
        if path == Path::new(MANIFEST) {
            let mut raw = Vec::new();
            entry
                .by_ref()
                .take(1 << 20)
                .read_to_end(&mut raw)
                .map_err(RestoreError::Read)?;
            let m: Manifest =
                serde_json::from_slice(&raw).map_err(|e| RestoreError::NotABackup(format!("bad manifest: {e}")))?;
            if m.format != FORMAT {
                return Err(RestoreError::NotABackup(format!(
                    "format {:?}, expected {FORMAT:?}",
                    m.format
                )));
            }
            check_targets(data_dir, &m, only_user, replace)?;
            manifest = Some(m);
            continue;
        }
        if manifest.is_none() {
            return Err(RestoreError::NotABackup(format!(
                "{MANIFEST} must come first, found {shown:?}"
            )));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(bad("only regular files belong in a backup"));
        }
        let Some((user, _ns, kind)) = layout::check_relative(&path) else {
            return Err(bad("not a path of the blobs layout"));
        };
        if only_user.is_some_and(|u| u != user) {
            continue;
        }
        let mtime = exact_mtime(&mut entry).map_err(RestoreError::Read)?;
        let mut data = Vec::new();
        let target = staging.0.join(&path);
        match kind {
            Entry::Flags(_) => {
                entry
                    .by_ref()
                    .take(4097)
                    .read_to_end(&mut data)
                    .map_err(RestoreError::Read)?;
                FlagSet::from_json(&data).map_err(|e| bad(&e.to_string()))?;
                report.flags += 1;
                write_file(&target, &mut data.as_slice(), mtime)?;
            }
            Entry::Tombstone(_) => {
                report.tombstones += 1;
                write_file(&target, &mut io::empty(), mtime)?;
            }
            Entry::Blob(_) => {
                report.blobs += 1;
                write_file(&target, &mut entry, mtime)?;
            }
        }
        users.insert(user);
    }
    let manifest = manifest.ok_or_else(|| RestoreError::NotABackup(format!("no {MANIFEST} entry")))?;
    if let Some(u) = only_user {
        if !manifest.users.iter().any(|m| m == u) {
            return Err(RestoreError::NoSuchUser(u.to_owned()));
        }
        users.insert(u.to_owned());
    } else {
        users.extend(manifest.users.iter().cloned());
    }
    for user in &users {
        let staged = staging.0.join(user);
        std::fs::create_dir_all(&staged).map_err(disk::err(&staged))?;
        sync_dirs(&staged)?;
        let target = data_dir.join(user);
        if target.exists() {
            // Checked above; here only with --replace.
            let old = tmp.join(format!("old-{}", uuid::Uuid::new_v4().simple()));
            std::fs::rename(&target, &old).map_err(disk::err(&target))?;
            std::fs::rename(&staged, &target).map_err(disk::err(&staged))?;
            std::fs::remove_dir_all(&old).map_err(disk::err(&old))?;
        } else {
            std::fs::rename(&staged, &target).map_err(disk::err(&staged))?;
        }
    }
    disk::sync_dir(data_dir)?;
    report.users = users.into_iter().collect();
    Ok(report)
}

fn check_targets(data_dir: &Path, m: &Manifest, only_user: Option<&str>, replace: bool) -> Result<(), RestoreError> {
    for user in &m.users {
        if !crate::ids::is_valid_name(user) {
            return Err(RestoreError::NotABackup(format!("bad user name {user:?}")));
        }
        if only_user.is_some_and(|u| u != user) {
            continue;
        }
        if !replace && data_dir.join(user).exists() {
            return Err(RestoreError::UserExists(user.clone()));
        }
    }
    if let Some(u) = only_user
        && !m.users.iter().any(|m| m == u)
    {
        return Err(RestoreError::NoSuchUser(u.to_owned()));
    }
    Ok(())
}

/// The entry's modification time, with nanoseconds from its PAX record when there is one.
fn exact_mtime<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<std::time::SystemTime> {
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            if ext.key() == Ok("mtime")
                && let Ok(v) = ext.value()
                && let Some(t) = parse_pax_time(v)
            {
                return Ok(t);
            }
        }
    }
    Ok(UNIX_EPOCH + Duration::from_secs(entry.header().mtime()?))
}

fn parse_pax_time(v: &str) -> Option<std::time::SystemTime> {
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: u64 = secs.parse().ok()?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = format!("{frac:0<9}").parse().ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

fn write_file(target: &Path, data: &mut impl Read, mtime: std::time::SystemTime) -> Result<(), RestoreError> {
    let parent = target.parent().expect("entries have parents");
    std::fs::create_dir_all(parent).map_err(disk::err(parent))?;
    let mut f = std::fs::File::create_new(target).map_err(disk::err(target))?;
    io::copy(data, &mut f).map_err(disk::err(target))?;
    f.set_modified(mtime).map_err(disk::err(target))?;
    f.sync_all().map_err(disk::err(target))?;
    Ok(())
}

/// Fsyncs every directory of a tree, so the entries made by extraction are durable.
fn sync_dirs(dir: &Path) -> Result<(), DiskError> {
    for entry in std::fs::read_dir(dir).map_err(disk::err(dir))? {
        let entry = entry.map_err(disk::err(dir))?;
        if entry.file_type().map_err(disk::err(dir))?.is_dir() {
            sync_dirs(&entry.path())?;
        }
    }
    disk::sync_dir(dir)
}

/// The staging directory, removed whatever happens.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_keep_nanoseconds() {
        assert_eq!(
            parse_pax_time("12.5"),
            Some(UNIX_EPOCH + Duration::new(12, 500_000_000))
        );
        assert_eq!(
            parse_pax_time("1700000000.000000001"),
            Some(UNIX_EPOCH + Duration::new(1_700_000_000, 1))
        );
        assert_eq!(parse_pax_time("7"), Some(UNIX_EPOCH + Duration::from_secs(7)));
        assert_eq!(parse_pax_time("1.x"), None);
        assert_eq!(parse_pax_time("-1"), None);
    }
}
