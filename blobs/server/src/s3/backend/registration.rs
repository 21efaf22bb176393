//! This server's registration in etcd: `s/<lease>` on a lease it renews while it lives.
//!
//! Every object an upload writes has a version that starts with the lease of the server
//! writing it (`<lease>-<uuid>`), and the upload's index transaction holds only if that
//! registration still exists. So a sweep can tell bytes that may still be recorded (their
//! server's lease is alive: an upload in flight) from bytes that never will be (their
//! lease ended: the server died, or was cut off from etcd for longer than the lease, and
//! its uploads in flight then fail instead of being recorded). It costs an upload nothing:
//! the registration is made once per lease.

use tokio::sync::Mutex;

use crate::s3::etcd::{Etcd, Op};
use crate::storage::StorageError;

/// Seconds a registration outlives its server's last renewal.
const TTL: u64 = 60;

pub(super) struct Registration {
    etcd: Etcd,
    /// `<prefix>s/`.
    key_prefix: String,
    current: Mutex<Option<(i64, tokio::task::AbortHandle)>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some((_, renewal)) = self.current.get_mut().take() {
            renewal.abort();
        }
    }
}

/// The lease in an object's version, if it has one (versions written before registrations
/// existed are plain uuids).
pub(super) fn lease_of(version: &str) -> Option<&str> {
    version
        .split_once('-')
        .map(|(lease, _)| lease)
        .filter(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Registration {
    pub(super) fn new(etcd: Etcd, key_prefix: String) -> Self {
        Self {
            etcd,
            key_prefix,
            current: Mutex::new(None),
        }
    }

    pub(super) fn key(&self, lease: i64) -> Vec<u8> {
        format!("{}{lease:x}", self.key_prefix).into_bytes()
    }

    /// The lease of the registration, made now if there is none.
    pub(super) async fn lease(&self) -> Result<i64, StorageError> {
        let mut current = self.current.lock().await;
        match &*current {
            // The renewal task ends only when the lease has ended.
            Some((lease, renewal)) if !renewal.is_finished() => return Ok(*lease),
            Some((lease, _)) => tracing::warn!(
                lease = format!("{lease:x}"),
                "the registration in etcd ended; registering again"
            ),
            None => {}
        }
        let lease = self.etcd.grant(TTL).await?;
        let key = self.key(lease);
        let put = Op::Put {
            key: &key,
            value: b"",
            lease: Some(lease),
        };
        self.etcd.txn(&[], &[put]).await?;
        *current = Some((lease, self.etcd.spawn_keep_alive(lease, TTL)));
        tracing::info!(lease = format!("{lease:x}"), "registered in etcd");
        Ok(lease)
    }

    /// Ends the registration now, as a server that stops cleanly does once its requests are
    /// done: a sweep may then take the bytes of uploads it did not finish at once, instead of
    /// waiting up to `TTL` for the lease to expire. An upload still in flight can no longer be
    /// recorded (its index transaction needs the registration) and fails.
    pub(super) async fn revoke(&self) {
        let Some((lease, renewal)) = self.current.lock().await.take() else {
            return;
        };
        renewal.abort();
        match self.etcd.revoke(lease).await {
            Ok(()) => tracing::info!(lease = format!("{lease:x}"), "registration in etcd revoked"),
            Err(e) => tracing::warn!(
                lease = format!("{lease:x}"),
                error = %e,
                "registration in etcd not revoked; it ends by itself within {TTL} s"
            ),
        }
    }

    /// The registration under `lease` is gone: the next upload makes a new one.
    pub(super) async fn ended(&self, lease: i64) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|(l, _)| *l == lease)
            && let Some((_, renewal)) = current.take()
        {
            renewal.abort();
            tracing::warn!(
                lease = format!("{lease:x}"),
                "the registration in etcd ended; registering again"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lease_of;

    #[test]
    fn versions_name_their_lease_when_they_have_one() {
        assert_eq!(
            lease_of("694d9a1b2c3e4f50-0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
            Some("694d9a1b2c3e4f50")
        );
        assert_eq!(lease_of("0f1e2d3c4b5a69788796a5b4c3d2e1f0"), None);
        assert_eq!(lease_of("-abc"), None);
        assert_eq!(lease_of("xyz-abc"), None);
    }
}
