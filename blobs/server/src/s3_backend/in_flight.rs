//! Uploads in flight, registered in etcd so that a sweep never takes their bytes for orphans.
//!
//! An upload puts `u/<user>/<namespace>/<id>/<version>` before it writes its object, and
//! its index transaction deletes that key in the same step as it writes the entry, on the
//! condition that the key still exists. The keys hang on one lease per server, renewed while
//! the server lives: a server that dies leaves no key behind once its lease ends, and an
//! upload whose key has gone (its server cut off from etcd for longer than the lease) fails
//! instead of being recorded, since a sweep may have deleted its bytes meanwhile.

use tokio::sync::Mutex;

use crate::etcd::{Etcd, Op};
use crate::storage::StorageError;

/// Seconds the lease outlives its server's last renewal.
const TTL: u64 = 60;

/// This server's lease for the keys of its uploads, granted on first use and granted anew if
/// it ended.
pub(super) struct InFlightLease {
    etcd: Etcd,
    current: Mutex<Option<(i64, tokio::task::AbortHandle)>>,
}

impl Drop for InFlightLease {
    fn drop(&mut self) {
        if let Some((_, renewal)) = self.current.get_mut().take() {
            renewal.abort();
        }
    }
}

impl InFlightLease {
    pub(super) fn new(etcd: Etcd) -> Self {
        Self {
            etcd,
            current: Mutex::new(None),
        }
    }

    /// Puts `key` under the lease; the returned guard deletes it unless the upload's index
    /// transaction did ([`InFlight::recorded`]).
    pub(super) async fn register(&self, key: Vec<u8>) -> Result<InFlight, StorageError> {
        for attempt in 0..2 {
            let lease = {
                let mut current = self.current.lock().await;
                match &*current {
                    Some((lease, _)) => *lease,
                    None => {
                        let lease = self.etcd.grant(TTL).await?;
                        *current = Some((lease, self.etcd.spawn_keep_alive(lease, TTL)));
                        lease
                    }
                }
            };
            let put = Op::Put {
                key: &key,
                value: b"",
                lease: Some(lease),
            };
            match self.etcd.txn(&[], &[put]).await {
                Ok(_) => {
                    return Ok(InFlight {
                        etcd: self.etcd.clone(),
                        key: Some(key),
                    });
                }
                // The lease ended (etcd was out of reach for longer than its time to live):
                // a new one, once.
                Err(e) if attempt == 0 && e.to_string().contains("lease not found") => {
                    let mut current = self.current.lock().await;
                    if current.as_ref().is_some_and(|(l, _)| *l == lease)
                        && let Some((_, renewal)) = current.take()
                    {
                        renewal.abort();
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the second attempt returns")
    }
}

/// An upload's key in etcd; deleted when dropped unless the upload was recorded.
pub(super) struct InFlight {
    etcd: Etcd,
    key: Option<Vec<u8>>,
}

impl InFlight {
    pub(super) fn key(&self) -> &[u8] {
        self.key.as_deref().expect("only taken by `recorded` or drop")
    }

    /// The index transaction deleted the key along with writing the entry.
    pub(super) fn recorded(mut self) {
        self.key = None;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let etcd = self.etcd.clone();
            tokio::spawn(async move {
                if let Err(e) = etcd.txn(&[], &[Op::Delete(&key)]).await {
                    tracing::warn!(error = %e, "an upload's key not deleted; it ends with the server's lease");
                }
            });
        }
    }
}
