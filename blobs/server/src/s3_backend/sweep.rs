//! Deleting bytes that no index entry points to and that no server will delete any more.
//!
//! A server deletes the bytes a replacement or deletion unreferenced after [`GRACE`], from a
//! task of its own, and the bytes of an upload whose index transaction failed at once. A
//! server that dies in between leaves them in the bucket for good: after its upload but
//! before its transaction, or within the grace period. A sweep finds them by comparing the
//! bucket with the index, and keeps whatever may still be in use:
//! - objects younger than `min_age`: an upload in flight writes its object before its index
//!   transaction, so a young object may be about to be referenced;
//! - objects of a blob replaced or deleted within twice the grace period: a download that
//!   read the old index entry may still be reading them, and a live server deletes them
//!   itself.
//!
//! Object keys are never reused (each upload has a fresh version), so an object that is
//! unreferenced and old enough stays so.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use futures::{StreamExt as _, TryStreamExt as _};
use object_store::{ObjectStore as _, ObjectStoreExt as _};

use super::{GRACE, Record, S3Backend, Tombstone, decode, remote, time};
use crate::storage::StorageError;

/// Objects deleted at a time.
const DELETES_IN_FLIGHT: usize = 8;

/// What a sweep found, and what it deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Objects under the data prefix.
    pub objects: u64,
    /// Of those, pointed to by an index entry.
    pub referenced: u64,
    /// Unreferenced, but young or of a blob changed lately: kept.
    pub kept: u64,
    /// Unreferenced and old enough: deleted, or to delete with `dry_run`.
    pub orphans: u64,
    pub orphan_bytes: u64,
    pub deleted: u64,
    /// The orphans' keys (for the operator's log).
    pub orphan_keys: Vec<String>,
    /// Orphans whose deletion failed, and why (a later sweep tries them again).
    pub failed: Vec<(String, String)>,
}

impl S3Backend {
    /// Compares the bucket with the index and deletes (unless `dry_run`) the objects nothing
    /// points to that are older than `min_age` and not of a blob changed in the last two
    /// grace periods.
    pub async fn sweep(&self, min_age: Duration, dry_run: bool) -> Result<SweepReport, StorageError> {
        let mut report = SweepReport::default();
        // One user at a time, so that memory is bounded by the largest user's index, not
        // the whole bucket's. The users are those with bytes in the bucket, indexed or not.
        let users = self
            .store
            .list_with_delimiter(Some(&self.data_path_raw("")))
            .await
            .map_err(remote)?
            .common_prefixes;
        for user in users {
            let user = user.filename().unwrap_or_default().to_owned();
            self.sweep_user(&user, min_age, &mut report).await?;
        }
        if dry_run {
            return Ok(report);
        }
        let store = &self.store;
        let results: Vec<(String, Result<(), object_store::Error>)> = futures::stream::iter(&report.orphan_keys)
            .map(|key| async move {
                let deleted = match store.delete(&object_store::path::Path::from(key.as_str())).await {
                    Err(object_store::Error::NotFound { .. }) => Ok(()),
                    other => other,
                };
                (key.clone(), deleted)
            })
            .buffer_unordered(DELETES_IN_FLIGHT)
            .collect()
            .await;
        for (key, result) in results {
            match result {
                Ok(()) => report.deleted += 1,
                Err(e) => report.failed.push((key, e.to_string())),
            }
        }
        Ok(report)
    }

    async fn sweep_user(&self, user: &str, min_age: Duration, report: &mut SweepReport) -> Result<(), StorageError> {
        // The index is read before the bucket is listed: an object uploaded after this read
        // is younger than `min_age`, unless `min_age` is shorter than an upload's step from
        // its object to its transaction (seconds; the default is an hour).
        let (b, t) = (self.key("b", &format!("{user}/")), self.key("t", &format!("{user}/")));
        let (records, tombstones) =
            futures::try_join!(self.etcd.get_prefix(b.as_bytes()), self.etcd.get_prefix(t.as_bytes()))?;
        let now = SystemTime::now();
        let data = self.data_path_raw("").to_string();
        let mut referenced = HashSet::new();
        // When each blob (`user/namespace/id`) last lost bytes: replaced, or deleted.
        let mut changed: HashMap<String, SystemTime> = HashMap::new();
        let blob_of = |key: &[u8]| String::from_utf8_lossy(&key[self.prefix.len() + 2..]).into_owned();
        for kv in &records {
            let r: Record = decode(kv)?;
            let blob = blob_of(&kv.key);
            referenced.insert(format!("{data}/{blob}/{}", r.v));
            changed.insert(blob, time(r.mtime));
        }
        for kv in &tombstones {
            let t: Tombstone = decode(kv)?;
            let at = changed.entry(blob_of(&kv.key)).or_insert(time(t.at));
            *at = (*at).max(time(t.at));
        }

        let mut listing = self.store.list(Some(&self.data_path_raw(user)));
        while let Some(meta) = listing.try_next().await.map_err(remote)? {
            report.objects += 1;
            let key = meta.location.to_string();
            if referenced.contains(&key) {
                report.referenced += 1;
                continue;
            }
            let blob = key
                .strip_prefix(&data)
                .and_then(|k| k.strip_prefix('/'))
                .and_then(|k| k.rsplit_once('/'))
                .map_or("", |(blob, _version)| blob);
            let modified = SystemTime::from(meta.last_modified);
            // An object dated in the future (clocks apart) counts as young.
            let young = now.duration_since(modified).map_or(true, |age| age < min_age);
            let changed_lately = changed
                .get(blob)
                .is_some_and(|at| now.duration_since(*at).map_or(true, |d| d < 2 * GRACE));
            if young || changed_lately {
                report.kept += 1;
            } else {
                report.orphans += 1;
                report.orphan_bytes += meta.size;
                report.orphan_keys.push(key);
            }
        }
        Ok(())
    }
}
