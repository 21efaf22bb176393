//! Deleting bytes that no index entry points to and that no server will delete any more.
//!
//! A server deletes the bytes a replacement or deletion unreferenced after [`GRACE`], from a
//! task of its own, and the bytes of an upload that failed at once. A server that dies in
//! between leaves them in the bucket for good: after its upload but before its index entry,
//! or within the grace period. A sweep finds them by comparing the bucket with the index,
//! and keeps whatever may still be in use:
//! - the bytes of servers that live, for as long as an upload may take (`UPLOAD_MAX`): each
//!   object's version names the registration of the server that wrote it
//!   (`registration.rs`), and while that lives the object may be an upload in flight; once
//!   it has ended, or the upload would be too old, the upload can no longer be recorded;
//! - objects younger than `min_age`: objects written before registrations existed have no
//!   registration to check, and the age guards them;
//! - objects of a blob replaced or deleted within twice the grace period: a download that
//!   read the old index entry may still be reading them, and a live server deletes them
//!   itself.
//!
//! Object keys are never reused (each upload has a fresh version), and an upload whose
//! registration has ended can no longer be recorded, so what a sweep judges an orphan
//! stays one.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use futures::{StreamExt as _, TryStreamExt as _};
use object_store::{ObjectStore as _, ObjectStoreExt as _};

use super::registration::lease_of;
use super::{GRACE, Record, S3Backend, Tombstone, UPLOAD_MAX, decode, remote, time};
use crate::storage::StorageError;

/// Beyond `UPLOAD_MAX`, for the clocks of the object store and of the sweep to differ.
const IN_FLIGHT_MARGIN: Duration = Duration::from_secs(3600);

/// Objects deleted at a time.
const DELETES_IN_FLIGHT: usize = 8;

/// What a sweep found, and what it deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Objects under the data prefix.
    pub objects: u64,
    /// Of those, pointed to by an index entry.
    pub referenced: u64,
    /// Unreferenced, but of a live server, young, or of a blob changed lately: kept.
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

/// Whether an unreferenced object is kept. `age` is counted from the start of the sweep
/// (`None`: dated after it); `live_server`, whether the server named in its version is
/// registered; `changed_lately`, whether its blob was replaced or deleted lately.
fn kept(age: Option<Duration>, live_server: bool, changed_lately: bool, min_age: Duration) -> bool {
    let young = age.is_none_or(|age| age < min_age);
    let in_flight = live_server && age.is_none_or(|age| age < UPLOAD_MAX + IN_FLIGHT_MARGIN);
    young || in_flight || changed_lately
}

impl S3Backend {
    /// Compares the bucket with the index and deletes (unless `dry_run`) the objects nothing
    /// points to, one user at a time.
    pub async fn sweep(&self, min_age: Duration, dry_run: bool) -> Result<SweepReport, StorageError> {
        let mut report = SweepReport::default();
        // Ages are measured from before the registrations are read: a server registered
        // after that read writes objects dated after this time, which count as young.
        let start = SystemTime::now();
        // Read before any index: a server whose registration has ended by now cannot
        // record an upload after it.
        let live: HashSet<String> = self
            .etcd
            .get_prefix(self.key("s", "").as_bytes())
            .await?
            .iter()
            .map(|kv| self.key_rest(&kv.key))
            .collect();
        // The users are those with bytes in the bucket, indexed or not.
        let users = self
            .store
            .list_with_delimiter(Some(&self.data_path_raw("")))
            .await
            .map_err(remote)?
            .common_prefixes;
        for user in users {
            let user = user.filename().unwrap_or_default().to_owned();
            let orphans = self.orphans_of(&user, &live, start, min_age, &mut report).await?;
            if !dry_run {
                self.delete_orphans(orphans, &mut report).await;
            }
        }
        Ok(report)
    }

    /// The orphans of one user. A sweep holds one user's index at a time, besides the keys
    /// of the orphans it found (which the report lists).
    async fn orphans_of(
        &self,
        user: &str,
        live: &HashSet<String>,
        start: SystemTime,
        min_age: Duration,
        report: &mut SweepReport,
    ) -> Result<Vec<String>, StorageError> {
        let user_key = |kind| self.key(kind, &format!("{user}/"));
        let (b, t) = (user_key("b"), user_key("t"));
        let (records, tombstones) =
            futures::try_join!(self.etcd.get_prefix(b.as_bytes()), self.etcd.get_prefix(t.as_bytes()))?;
        let now = SystemTime::now();
        // `user/namespace/id/version` of the bytes each entry points to.
        let mut referenced = HashSet::new();
        // When each blob (`user/namespace/id`) last lost bytes: replaced, or deleted.
        let mut changed: HashMap<String, SystemTime> = HashMap::new();
        for kv in &records {
            let r: Record = decode(kv)?;
            let blob = self.key_rest(&kv.key);
            referenced.insert(format!("{blob}/{}", r.v));
            changed.insert(blob, time(r.mtime));
        }
        for kv in &tombstones {
            let t: Tombstone = decode(kv)?;
            let at = changed.entry(self.key_rest(&kv.key)).or_insert(time(t.at));
            *at = (*at).max(time(t.at));
        }

        let data = self.data_path_raw("").to_string();
        let mut orphans = Vec::new();
        let mut listing = self.store.list(Some(&self.data_path_raw(user)));
        while let Some(meta) = listing.try_next().await.map_err(remote)? {
            report.objects += 1;
            let key = meta.location.to_string();
            // `user/namespace/id/version`
            let object = key
                .strip_prefix(&data)
                .and_then(|k| k.strip_prefix('/'))
                .unwrap_or_default();
            if referenced.contains(object) {
                report.referenced += 1;
                continue;
            }
            let (blob, version) = object.rsplit_once('/').unwrap_or(("", ""));
            // An object dated after the start (clocks apart, or a server registered since)
            // counts as young. A store may date a multipart upload's object from its start:
            // a live server's upload is covered for as long as the server may take.
            let age = start.duration_since(SystemTime::from(meta.last_modified)).ok();
            let live_server = lease_of(version).is_some_and(|lease| live.contains(lease));
            let changed_lately = changed
                .get(blob)
                .is_some_and(|at| now.duration_since(*at).map_or(true, |d| d < 2 * GRACE));
            if kept(age, live_server, changed_lately, min_age) {
                report.kept += 1;
            } else {
                report.orphans += 1;
                report.orphan_bytes += meta.size;
                report.orphan_keys.push(key.clone());
                orphans.push(key);
            }
        }
        Ok(orphans)
    }

    /// An etcd key without its prefix and kind (`<prefix><kind>/`, a one-letter kind).
    fn key_rest(&self, key: &[u8]) -> String {
        String::from_utf8_lossy(&key[self.prefix.len() + 2..]).into_owned()
    }

    async fn delete_orphans(&self, orphans: Vec<String>, report: &mut SweepReport) {
        let store = &self.store;
        let results: Vec<(String, Result<(), object_store::Error>)> = futures::stream::iter(orphans)
            .map(|key| async move {
                let deleted = match store.delete(&object_store::path::Path::from(key.as_str())).await {
                    Err(object_store::Error::NotFound { .. }) => Ok(()),
                    other => other,
                };
                (key, deleted)
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_server_protects_its_bytes_for_as_long_as_an_upload_may_take() {
        let hour = Duration::from_secs(3600);
        let min_age = hour;
        // Old bytes nothing protects, of a dead server or written before registrations.
        assert!(!kept(Some(2 * hour), false, false, min_age));
        // Young bytes, or bytes dated after the start of the sweep.
        assert!(kept(Some(hour / 2), false, false, min_age));
        assert!(kept(None, false, false, min_age));
        // A live server's bytes: an upload in flight, however old they look, up to the
        // longest an upload may take and a margin for the clocks.
        assert!(kept(Some(UPLOAD_MAX), true, false, Duration::ZERO));
        assert!(kept(
            Some(UPLOAD_MAX + IN_FLIGHT_MARGIN / 2),
            true,
            false,
            Duration::ZERO
        ));
        assert!(!kept(Some(UPLOAD_MAX + IN_FLIGHT_MARGIN), true, false, Duration::ZERO));
        // A blob changed lately: a download may still read its old bytes.
        assert!(kept(Some(100 * hour), false, true, Duration::ZERO));
    }
}
