//! A sync pass: compare with the server, then move what differs.
//!
//! The server's listing (and its tombstones) is compared with the local states first:
//! - on the server but unknown here: PENDING_DOWNLOAD;
//! - SYNCED here but gone from the server: deleted there (a tombstone) so removed here, or
//!   lost there, so uploaded again;
//! - PENDING_DOWNLOAD but gone from the server: dropped (nothing to fetch);
//! - FAILED_UPLOAD and transport-failed FAILED_DOWNLOAD: tried again; QUOTA_EXCEEDED only if
//!   the quota has room now; an unusable blob (failed verification) only if the server's
//!   copy changed (its ETag), never silently;
//! - LOCAL_ONLY: never uploaded.
//!
//! Then deletions, downloads and uploads all run together under the scheduler, so priorities
//! decide the order and one failing blob never stops the others. A blob PENDING_UPLOAD that
//! the server already has (a crash came between the upload and its record) is verified
//! against the server's copy instead of being sent again.

use std::collections::HashSet;
use std::time::Instant;

use tokio::task::JoinSet;

use crate::events::Event;
use crate::manager::{BlobManager, SyncReport};
use crate::remote::ListOptions;
use crate::store::{BlobState, SyncStatus};
use crate::{ClientError, ErrorClass, FailureKind, check_name};

/// What a pass moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scope {
    up: bool,
    down: bool,
    deletes: bool,
}

enum Job {
    Upload { on_server: bool },
    Download,
    Delete,
}

impl BlobManager {
    /// A full sync of one namespace: deletions, downloads and uploads.
    pub async fn sync(&self, namespace: &str) -> Result<SyncReport, ClientError> {
        self.pass(
            namespace,
            Scope {
                up: true,
                down: true,
                deletes: true,
            },
        )
        .await
    }

    /// Uploads every blob waiting for upload in `namespace`.
    pub async fn send_missing(&self, namespace: &str) -> Result<SyncReport, ClientError> {
        self.pass(
            namespace,
            Scope {
                up: true,
                down: false,
                deletes: false,
            },
        )
        .await
    }

    /// Downloads every blob the server has in `namespace` and this device lacks.
    pub async fn fetch_missing(&self, namespace: &str) -> Result<SyncReport, ClientError> {
        self.pass(
            namespace,
            Scope {
                up: false,
                down: true,
                deletes: false,
            },
        )
        .await
    }

    async fn pass(&self, namespace: &str, scope: Scope) -> Result<SyncReport, ClientError> {
        check_name("namespace", namespace)?;
        let remote = &self.inner.remote;
        let on_server: HashSet<String> = remote.list(namespace).await?.into_iter().collect();
        let tombstones: HashSet<String> = if scope.down || scope.deletes {
            remote
                .list_with(
                    namespace,
                    &ListOptions {
                        deleted: true,
                        ..ListOptions::default()
                    },
                )
                .await?
                .into_iter()
                .collect()
        } else {
            HashSet::new()
        };
        let mut report = self.reconcile(namespace, &on_server, &tombstones, scope).await?;

        let ns = namespace.to_owned();
        let states = self.blocking(move |store| store.states(Some(&ns), None)).await?;
        let jobs: Vec<(BlobState, Job)> = states
            .into_iter()
            .filter_map(|s| {
                let job = match s.status {
                    SyncStatus::PendingUpload if scope.up => Job::Upload {
                        on_server: on_server.contains(&s.id),
                    },
                    SyncStatus::PendingDownload if scope.down => Job::Download,
                    SyncStatus::PendingDelete if scope.deletes => Job::Delete,
                    _ => return None,
                };
                Some((s, job))
            })
            .collect();
        let blobs_total = jobs.len();
        let mut set = JoinSet::new();
        for (state, job) in jobs {
            let (m, ns, id) = (self.clone(), namespace.to_owned(), state.id.clone());
            // Queued here, in priority order, before any transfer starts.
            let ticket = match job {
                Job::Delete => None,
                _ => Some(
                    self.inner
                        .scheduler
                        .enqueue(state.priority, Self::since(state.queued_at_ms)),
                ),
            };
            set.spawn(async move {
                let started = Instant::now();
                let result = match job {
                    Job::Upload { on_server } => m.upload_listed(&ns, &id, on_server, ticket).await.map(Some),
                    Job::Download => m.download_with(&ns, &id, ticket).await.map(Some),
                    Job::Delete => m.delete_with_retries(&ns, &id).await.map(|_| None),
                };
                (id, result, started.elapsed())
            });
        }
        let (mut blobs_done, mut bytes_done) = (0, 0);
        while let Some(joined) = set.join_next().await {
            let (id, result, took) = joined.expect("transfers do not panic");
            match result {
                Ok(Some(bytes)) => {
                    report.transferred += 1;
                    report.bytes += bytes;
                    report.transfer_times.push(took);
                    bytes_done += bytes;
                }
                Ok(None) => report.deleted += 1,
                Err(e) => report.failed.push((id, e)),
            }
            blobs_done += 1;
            self.emit(Event::SyncProgress {
                namespace: namespace.to_owned(),
                blobs_done,
                blobs_total,
                bytes_done,
            });
        }
        Ok(report)
    }

    /// Applies the server's listing to the local states (see the module documentation).
    async fn reconcile(
        &self,
        namespace: &str,
        on_server: &HashSet<String>,
        tombstones: &HashSet<String>,
        scope: Scope,
    ) -> Result<SyncReport, ClientError> {
        let (ns, remote, dead) = (namespace.to_owned(), on_server.clone(), tombstones.clone());
        let (removed, unusable, over_quota) = self
            .blocking(move |store| {
                let states = store.states(Some(&ns), None)?;
                let known: HashSet<&str> = states.iter().map(|s| s.id.as_str()).collect();
                if scope.down {
                    let mut new: Vec<&String> = remote.iter().filter(|id| !known.contains(id.as_str())).collect();
                    new.sort();
                    for id in new {
                        store.insert_state(&BlobState::new(
                            &ns,
                            id,
                            SyncStatus::PendingDownload,
                            Default::default(),
                        ))?;
                    }
                }
                let mut removed = Vec::new();
                let mut unusable = Vec::new();
                let mut over_quota = Vec::new();
                for s in &states {
                    let here = remote.contains(&s.id);
                    match s.status {
                        SyncStatus::Synced if !here && scope.down => {
                            if dead.contains(&s.id) || store.content(&ns, &s.id)?.is_none() {
                                store.remove_content(&ns, &s.id, None)?;
                                removed.push(s.id.clone());
                            } else if scope.up {
                                // The server lost it: send it again.
                                store.put_state(&s.requeued(SyncStatus::PendingUpload))?;
                            }
                        }
                        SyncStatus::PendingDownload if !here && scope.down => {
                            store.remove_content(&ns, &s.id, None)?;
                            removed.push(s.id.clone());
                        }
                        // A conflict stands while the server keeps its blob.
                        SyncStatus::FailedUpload if scope.up && !(s.failure == Some(FailureKind::Conflict) && here) => {
                            store.put_state(&s.requeued(SyncStatus::PendingUpload))?;
                        }
                        SyncStatus::FailedDownload if scope.down => {
                            if !here {
                                store.remove_content(&ns, &s.id, None)?;
                                removed.push(s.id.clone());
                            } else if s.failure == Some(FailureKind::Verification) {
                                unusable.push(s.clone());
                            } else {
                                store.put_state(&s.requeued(SyncStatus::PendingDownload))?;
                            }
                        }
                        SyncStatus::QuotaExceeded if scope.up => {
                            let size = store.content(&ns, &s.id)?.map_or(0, |c| c.size);
                            over_quota.push((s.clone(), size));
                        }
                        _ => {}
                    }
                }
                Ok((removed, unusable, over_quota))
            })
            .await?;
        let mut report = SyncReport {
            removed: removed.len(),
            ..SyncReport::default()
        };
        for id in removed {
            if tombstones.contains(&id) || !on_server.contains(&id) {
                self.emit(Event::RemovedRemotely {
                    namespace: namespace.to_owned(),
                    id,
                });
            }
        }
        // An unusable blob is tried again only once the server holds another version.
        for s in unusable {
            match self.inner.remote.head(namespace, &s.id).await {
                Ok(Some(meta)) if meta.etag.is_some() && meta.etag != s.remote_etag => {
                    let fresh = BlobState {
                        verify_failures: 0,
                        ..s.requeued(SyncStatus::PendingDownload)
                    };
                    self.blocking(move |store| store.put_state(&fresh)).await?;
                }
                Ok(_) => {}
                Err(e) => report.failed.push((s.id.clone(), e)),
            }
        }
        // Over-quota uploads go again if the server has room for them now.
        if !over_quota.is_empty() {
            let usage = self.inner.remote.usage().await?;
            let mut room = usage.quota_bytes.map(|q| q.saturating_sub(usage.used_bytes));
            for (s, size) in over_quota {
                let need = crate::upload::blob_len(self.inner.config.format, size);
                if room.is_none_or(|r| r >= need) {
                    room = room.map(|r| r - need);
                    self.blocking(move |store| store.put_state(&s.requeued(SyncStatus::PendingUpload)))
                        .await?;
                }
            }
        }
        Ok(report)
    }

    /// Deletes a PENDING_DELETE blob on the server, retrying transient failures.
    async fn delete_with_retries(&self, namespace: &str, id: &str) -> Result<(), ClientError> {
        let retry = self.inner.config.retry;
        let mut attempt = 0;
        loop {
            let _guard = self.lock_blob(namespace, id).await;
            attempt += 1;
            match self.delete_remote(namespace, id).await {
                Ok(()) => return Ok(()),
                Err(e) if e.class() == ErrorClass::Retry && retry.should_retry(attempt) => {
                    drop(_guard);
                    tokio::time::sleep(retry.delay(attempt, e.retry_after())).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
