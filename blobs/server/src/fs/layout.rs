//! Where things live in the data directory.
//!
//! As upstream: `<root>/<user>/<namespace>/<id[0]>/<id[0..3]>/<id[0..6]>/<id>`, with side files
//! `<id>.flags` (JSON list) and `<id>.deleted` (empty tombstone) beside the blob. Names of the
//! server's own directories start with a dot, which no valid user name can.

use std::path::{Path, PathBuf};

use crate::ids::is_valid_name;

pub const TMP_DIR: &str = ".tmp";
pub const SNAPSHOT_DIR: &str = ".snapshots";
pub const LOCK_FILE: &str = ".lock";
pub const FLAGS_SUFFIX: &str = ".flags";
pub const TOMBSTONE_SUFFIX: &str = ".deleted";

/// A blob's address. Constructed only from validated names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The shard directory of `id` below a namespace directory, relative.
pub fn shard_dir(id: &str) -> PathBuf {
    let prefix = |n: usize| &id[..n.min(id.len())];
    [prefix(1), prefix(3), prefix(6)].iter().collect()
}

/// Path of a blob relative to the data root.
pub fn relative_blob_path(user: &str, namespace: &str, id: &str) -> PathBuf {
    Path::new(user).join(namespace).join(shard_dir(id)).join(id)
}

pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// What a file name in a shard directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    Blob(&'a str),
    Flags(&'a str),
    Tombstone(&'a str),
}

pub fn classify(name: &str) -> Option<Entry<'_>> {
    if is_valid_name(name) {
        return Some(Entry::Blob(name));
    }
    if let Some(id) = name.strip_suffix(FLAGS_SUFFIX) {
        return is_valid_name(id).then_some(Entry::Flags(id));
    }
    if let Some(id) = name.strip_suffix(TOMBSTONE_SUFFIX) {
        return is_valid_name(id).then_some(Entry::Tombstone(id));
    }
    None
}

/// Checks that a relative path inside a backup is one the layout can hold: valid user and
/// namespace, shard directories that match the id, and a known kind of file.
pub fn check_relative(path: &Path) -> Option<(String, String, Entry<'_>)> {
    let parts: Vec<&str> = path
        .components()
        .map(|c| match c {
            std::path::Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let [user, ns, s1, s3, s6, name] = parts.as_slice() else {
        return None;
    };
    if !is_valid_name(user) || !is_valid_name(ns) {
        return None;
    }
    let entry = classify(name)?;
    let id = match entry {
        Entry::Blob(id) | Entry::Flags(id) | Entry::Tombstone(id) => id,
    };
    (shard_dir(id) == Path::new(s1).join(s3).join(s6)).then(|| ((*user).to_owned(), (*ns).to_owned(), entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_builder_agrees_with_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::Config::new("127.0.0.1:0".parse().unwrap(), dir.path().into(), "t".into());
        let store =
            crate::fs::backend::FsBackend::open(dir.path(), crate::fs::backend::StoreOptions::from_config(&config))
                .unwrap();
        for (u, n, i) in [("user", "default", "blob_id"), ("u", "MX", "1"), ("a", "b", "abcdefgh")] {
            let b = BlobRef::new(u, n, i).unwrap();
            assert_eq!(
                store.blob_path_for_test(&b),
                store.root().join(relative_blob_path(u, n, i))
            );
        }
    }

    #[test]
    fn layout_matches_upstream() {
        assert_eq!(
            relative_blob_path("user", "default", "blob_id"),
            Path::new("user/default/b/blo/blob_i/blob_id")
        );
        assert_eq!(relative_blob_path("u", "MX", "1"), Path::new("u/MX/1/1/1/1"));
    }

    #[test]
    fn backup_paths_are_checked_component_by_component() {
        assert!(check_relative(Path::new("u/default/b/blo/blob_i/blob_id")).is_some());
        assert!(check_relative(Path::new("u/default/b/blo/blob_i/blob_id.flags")).is_some());
        assert!(check_relative(Path::new("u/default/b/blo/blob_i/blob_id.deleted")).is_some());
        for bad in [
            "u/default/b/blo/blob_i/other",
            "../default/b/blo/blob_i/blob_id",
            "u/../b/blo/blob_i/blob_id",
            "/u/default/b/blo/blob_i/blob_id",
            "u/default/b/blo/blob_id",
            "u/default/b/blo/blob_i/blob_id.lock",
            ".tmp/default/b/blo/blob_i/blob_id",
        ] {
            assert!(check_relative(Path::new(bad)).is_none(), "{bad}");
        }
    }
}
