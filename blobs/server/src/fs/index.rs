//! The in-memory index of one user's blobs: what listings, counts, flags and usage read.
//!
//! It is loaded from disk the first time a user is touched (see `disk::scan_user`) and then
//! kept in step with every change, under the same per-blob lock as the change on disk. This
//! is what makes listing a thousand blobs a memory walk instead of thousands of `readdir`
//! and `stat` calls, and what keeps usage exact without `du` (spec bug 10).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use crate::flags::{Flag, FlagSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobMeta {
    pub size: u64,
    pub mtime: SystemTime,
    pub flags: FlagSet,
    /// When the flags were last written (their file's mtime).
    pub flags_time: SystemTime,
}

impl BlobMeta {
    /// The flags as clients see them: a PROCESSING flag older than `timeout` reads as
    /// PENDING, so that an item reserved by a consumer that died is offered again.
    pub fn effective_flags(&self, now: SystemTime, timeout: Duration) -> FlagSet {
        let expired = now.duration_since(self.flags_time).is_ok_and(|age| age >= timeout);
        if self.flags.contains(Flag::Processing) && expired {
            self.flags.without(Flag::Processing).with(Flag::Pending)
        } else {
            self.flags
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Namespace {
    pub blobs: BTreeMap<String, BlobMeta>,
    /// Deleted ids and when they were deleted.
    pub tombstones: BTreeMap<String, SystemTime>,
    pub bytes: u64,
}

#[derive(Debug, Default, Clone)]
pub struct UserIndex {
    pub namespaces: HashMap<String, Namespace>,
    /// Bytes of stored blobs.
    pub used: u64,
    /// Bytes promised to uploads in flight, so that concurrent uploads cannot together
    /// overrun the quota.
    pub reserved: u64,
}

impl UserIndex {
    pub fn get(&self, ns: &str, id: &str) -> Option<&BlobMeta> {
        self.namespaces.get(ns)?.blobs.get(id)
    }

    pub fn has_tombstone(&self, ns: &str, id: &str) -> bool {
        self.namespaces.get(ns).is_some_and(|n| n.tombstones.contains_key(id))
    }

    pub fn blob_count(&self) -> u64 {
        self.namespaces.values().map(|n| n.blobs.len() as u64).sum()
    }

    /// Records a stored blob (new or replacing one) and returns the size it replaced.
    pub fn put(&mut self, ns: &str, id: &str, meta: BlobMeta) -> Option<u64> {
        let n = self.namespaces.entry(ns.to_owned()).or_default();
        n.tombstones.remove(id);
        let old = n.blobs.insert(id.to_owned(), meta).map(|m| m.size);
        n.bytes = n.bytes + meta.size - old.unwrap_or(0);
        self.used = self.used + meta.size - old.unwrap_or(0);
        old
    }

    /// Records a deletion and returns the deleted blob.
    pub fn delete(&mut self, ns: &str, id: &str, at: SystemTime) -> Option<BlobMeta> {
        let n = self.namespaces.get_mut(ns)?;
        let meta = n.blobs.remove(id)?;
        n.tombstones.insert(id.to_owned(), at);
        n.bytes -= meta.size;
        self.used -= meta.size;
        Some(meta)
    }

    pub fn set_flags(&mut self, ns: &str, id: &str, flags: FlagSet, at: SystemTime) {
        if let Some(m) = self.namespaces.get_mut(ns).and_then(|n| n.blobs.get_mut(id)) {
            m.flags = flags;
            m.flags_time = at;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_follows_puts_replaces_and_deletes() {
        let t = SystemTime::UNIX_EPOCH;
        let meta = |size| BlobMeta {
            size,
            mtime: t,
            flags: FlagSet::EMPTY,
            flags_time: t,
        };
        let mut u = UserIndex::default();
        assert_eq!(u.put("default", "a", meta(10)), None);
        assert_eq!(u.put("MX", "a", meta(5)), None);
        assert_eq!(u.put("default", "a", meta(3)), Some(10));
        assert_eq!((u.used, u.namespaces["default"].bytes), (8, 3));
        assert_eq!(u.delete("default", "a", t).map(|m| m.size), Some(3));
        assert!(u.has_tombstone("default", "a"));
        assert_eq!((u.used, u.blob_count()), (5, 1));
        u.put("default", "a", meta(1));
        assert!(!u.has_tombstone("default", "a"));
    }

    #[test]
    fn processing_expires_into_pending() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let m = BlobMeta {
            size: 1,
            mtime: t0,
            flags: FlagSet::of(&[Flag::Processing]),
            flags_time: t0,
        };
        let timeout = Duration::from_secs(60);
        assert_eq!(m.effective_flags(t0 + Duration::from_secs(59), timeout), m.flags);
        assert_eq!(
            m.effective_flags(t0 + Duration::from_secs(60), timeout),
            FlagSet::of(&[Flag::Pending])
        );
        // A clock that went backwards does not expire anything.
        assert_eq!(m.effective_flags(t0 - Duration::from_secs(5), timeout), m.flags);
    }
}
