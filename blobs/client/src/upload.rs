//! Uploads: the local content is read, encrypted and sent as one streamed request body, in
//! bounded memory (a few chunks in flight), paced by the upload limit.
//!
//! What the server says decides what happens next: 409 means it already has a blob under
//! this id (typically ours, stored before a crash let us record it), so its copy is
//! verified and the blob marked SYNCED without sending it again; 507 means no quota; 412 a
//! draft that changed on the server; connection errors, timeouts and 5xx are retried.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::events::{Direction, Event};
use crate::manager::{BlobFormat, BlobManager};
use crate::remote::UploadMode;
use crate::scheduler::Ticket;
use crate::store::{BlobState, SyncStatus};
use crate::{ClientError, ErrorClass, FailureKind};

/// Encrypted bytes per body chunk handed to the HTTP client.
const SEND_CHUNK: usize = 64 * 1024;
/// Chunks queued between the encrypting thread and the request.
const QUEUE: usize = 8;

enum Encryptor {
    V1(blobs_crypto::v1::Encryptor),
    V2(blobs_crypto::v2::Encryptor),
}

impl Encryptor {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), blobs_crypto::FormatError> {
        match self {
            Encryptor::V1(e) => e.update(input, out),
            Encryptor::V2(e) => e.update(input, out),
        }
    }

    fn finish(self, out: &mut Vec<u8>) -> Result<(), blobs_crypto::FormatError> {
        match self {
            Encryptor::V1(e) => e.finish(out),
            Encryptor::V2(e) => e.finish(out),
        }
    }
}

/// Length of the stored blob for a plaintext of `len` bytes.
pub fn blob_len(format: BlobFormat, len: u64) -> u64 {
    match format {
        BlobFormat::V1 => len + blobs_crypto::v1::OVERHEAD as u64,
        BlobFormat::V2 => blobs_crypto::v2::blob_len(len),
    }
}

impl BlobManager {
    /// Uploads a blob that waits for it, retrying as the policy says; returns the plaintext
    /// bytes (0 if there was nothing to upload).
    pub(crate) async fn upload(&self, namespace: &str, id: &str) -> Result<u64, ClientError> {
        self.upload_inner(namespace, id, false, None).await
    }

    /// As [`BlobManager::upload`] for a blob the server's listing already shows (a crash came
    /// between its upload and its record): the server's copy is verified instead of sending
    /// the blob again; if it holds other content, that is a conflict.
    pub(crate) async fn upload_listed(
        &self,
        namespace: &str,
        id: &str,
        on_server: bool,
        ticket: Option<Ticket>,
    ) -> Result<u64, ClientError> {
        self.upload_inner(namespace, id, on_server, ticket).await
    }

    async fn upload_inner(
        &self,
        namespace: &str,
        id: &str,
        on_server: bool,
        mut ticket: Option<Ticket>,
    ) -> Result<u64, ClientError> {
        // Whether the server may hold the blob: it is listed, or an attempt failed in a way
        // that leaves open whether the server stored it (a lost response).
        let mut maybe_stored = on_server;
        let mut listed = on_server;
        loop {
            let (permit, _guard, state, content) = self.slot_then_blob(namespace, id, ticket.take()).await?;
            let (Some(state), Some(content)) = (state, content) else {
                return Err(ClientError::NotLocal(id.to_owned()));
            };
            if !matches!(
                state.status,
                SyncStatus::PendingUpload | SyncStatus::FailedUpload | SyncStatus::QuotaExceeded
            ) {
                return Ok(0);
            }
            let attempt = state.attempts + 1;
            let format = self.inner.config.format;
            self.emit(Event::TransferStarted {
                namespace: namespace.to_owned(),
                id: id.to_owned(),
                direction: Direction::Upload,
                total: Some(blob_len(format, content.size)),
                attempt,
            });
            let mode = if state.replace {
                UploadMode::Replace {
                    if_match: state.remote_etag.clone(),
                }
            } else {
                UploadMode::Create
            };
            let result = self
                .upload_or_verify(namespace, id, content.size, &mode, maybe_stored, listed)
                .await;
            listed = false;
            drop(permit);
            let err = match result {
                Ok(()) => {
                    self.uploaded(namespace, id, &state, content.size).await?;
                    return Ok(content.size);
                }
                Err(e) => e,
            };
            // The server's answers that settle the blob's state for now.
            let settled = match &err {
                ClientError::QuotaExceeded(_) => Some((
                    (SyncStatus::QuotaExceeded, FailureKind::Refused),
                    Event::QuotaExceeded {
                        namespace: namespace.to_owned(),
                        id: id.to_owned(),
                    },
                )),
                ClientError::Conflict(_) | ClientError::PreconditionFailed(_) => Some((
                    (SyncStatus::FailedUpload, FailureKind::Conflict),
                    Event::Conflict {
                        namespace: namespace.to_owned(),
                        id: id.to_owned(),
                    },
                )),
                _ => None,
            };
            if let Some((outcome, event)) = settled {
                self.fail(namespace, id, Direction::Upload, outcome, &err, attempt)
                    .await?;
                self.emit(event);
                return Err(err);
            }
            // A lost response leaves open whether the server stored the blob.
            maybe_stored |= err.class() == ErrorClass::Retry;
            let direction = (Direction::Upload, SyncStatus::FailedUpload);
            if !self
                .retry_or_give_up((namespace, id), direction, attempt, &err, _guard)
                .await?
            {
                return Err(err);
            }
        }
    }

    /// One attempt: sends the blob unless the server may already hold it, in which case its
    /// copy is checked first (ours from before a crash or a lost response, or another
    /// device's copy of the same content?) and only a draft is then sent over it.
    async fn upload_or_verify(
        &self,
        namespace: &str,
        id: &str,
        size: u64,
        mode: &UploadMode,
        maybe_stored: bool,
        listed: bool,
    ) -> Result<(), ClientError> {
        let stored = if listed {
            true
        } else if maybe_stored {
            self.inner.remote.head(namespace, id).await?.is_some()
        } else {
            false
        };
        if !stored {
            match self.upload_attempt(namespace, id, size, mode).await {
                Err(ClientError::Exists(_)) => {}
                other => return other,
            }
        }
        match self.verify_remote(namespace, id).await? {
            Some(_) => Ok(()),
            None if matches!(mode, UploadMode::Replace { .. }) => self.upload_attempt(namespace, id, size, mode).await,
            None => Err(ClientError::Conflict(id.to_owned())),
        }
    }

    /// Records a finished upload, unless the content changed meanwhile.
    async fn uploaded(&self, namespace: &str, id: &str, before: &BlobState, size: u64) -> Result<(), ClientError> {
        // A draft needs the server's new version for its next If-Match.
        let etag = if before.replace {
            self.inner
                .remote
                .head(namespace, id)
                .await
                .ok()
                .flatten()
                .and_then(|m| m.etag)
        } else {
            None
        };
        let (ns, owned, before) = (namespace.to_owned(), id.to_owned(), before.clone());
        self.blocking(move |store| {
            if let Some(mut s) = store.state(&ns, &owned)?
                && s.queued_at_ms == before.queued_at_ms
            {
                s.status = SyncStatus::Synced;
                s.attempts = 0;
                s.failure = None;
                s.last_error = None;
                s.remote_etag = etag.or(s.remote_etag);
                store.put_state(&s)?;
            }
            Ok(())
        })
        .await?;
        self.emit(Event::TransferDone {
            namespace: namespace.to_owned(),
            id: id.to_owned(),
            direction: Direction::Upload,
            bytes: size,
        });
        Ok(())
    }

    /// One request: encrypts the local content on a blocking thread while it streams out.
    async fn upload_attempt(&self, namespace: &str, id: &str, size: u64, mode: &UploadMode) -> Result<(), ClientError> {
        let format = self.inner.config.format;
        let total = blob_len(format, size);
        let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
        let failure: Arc<Mutex<Option<ClientError>>> = Arc::default();
        let producer = {
            let (store, secret) = (self.inner.store.clone(), self.inner.secret.clone());
            let (ns, owned, failure) = (namespace.to_owned(), id.to_owned(), failure.clone());
            tokio::task::spawn_blocking(move || {
                let run = || -> Result<(), ClientError> {
                    let invalid = |source| ClientError::InvalidBlob {
                        id: owned.clone(),
                        source,
                    };
                    let mut reader = store
                        .open_content(&ns, &owned)?
                        .ok_or_else(|| ClientError::NotLocal(owned.clone()))?;
                    if reader.len() != size {
                        return Err(crate::StoreError::Changed {
                            namespace: ns.clone(),
                            id: owned.clone(),
                        }
                        .into());
                    }
                    let (mut enc, head) = match format {
                        BlobFormat::V1 => {
                            let (e, h) = blobs_crypto::v1::Encryptor::new(&secret, &owned, size).map_err(invalid)?;
                            (Encryptor::V1(e), h)
                        }
                        BlobFormat::V2 => {
                            let (e, h) = blobs_crypto::v2::Encryptor::new(&secret, &owned, size).map_err(invalid)?;
                            (Encryptor::V2(e), h)
                        }
                    };
                    let mut out = head;
                    while let Some(chunk) = reader.next_chunk()? {
                        enc.update(&chunk, &mut out).map_err(invalid)?;
                        if out.len() >= SEND_CHUNK {
                            let full = std::mem::replace(&mut out, Vec::with_capacity(chunk.len() + SEND_CHUNK));
                            if tx.blocking_send(Bytes::from(full)).is_err() {
                                return Ok(()); // The request ended; its error says why.
                            }
                        }
                    }
                    enc.finish(&mut out).map_err(invalid)?;
                    let _ = tx.blocking_send(Bytes::from(out));
                    Ok(())
                };
                if let Err(e) = run() {
                    *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                }
            })
        };
        // The body: encrypted chunks cut to SEND_CHUNK, each waiting for the upload limit.
        let body = futures::stream::unfold(
            Body {
                rx,
                chunk: Bytes::new(),
                done: 0,
                reported: 0,
                total,
                every: self.inner.config.progress_every.max(1),
                manager: self.clone(),
                namespace: namespace.to_owned(),
                id: id.to_owned(),
                ended: false,
            },
            Body::next,
        );
        let result = self.inner.remote.put_stream(namespace, id, total, body, mode).await;
        producer.await.expect("the encrypting thread does not panic");
        if let Some(e) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        result
    }
}

/// The state of an upload's body stream.
struct Body {
    rx: mpsc::Receiver<Bytes>,
    chunk: Bytes,
    done: u64,
    reported: u64,
    total: u64,
    every: u64,
    manager: BlobManager,
    namespace: String,
    id: String,
    ended: bool,
}

impl Body {
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        if self.ended {
            return None;
        }
        while self.chunk.is_empty() {
            match self.rx.recv().await {
                Some(c) => self.chunk = c,
                None => {
                    self.ended = true;
                    if self.done != self.total {
                        // The producer stopped early: fail the request rather than send a
                        // short body.
                        let e = std::io::Error::other("the blob could not be read to its end");
                        return Some((Err(e), self));
                    }
                    return None;
                }
            }
        }
        let piece = self.chunk.split_to(self.chunk.len().min(SEND_CHUNK));
        self.manager.inner.up.take(piece.len()).await;
        self.done += piece.len() as u64;
        if self.done - self.reported >= self.every || self.done == self.total {
            self.reported = self.done;
            self.manager.emit(Event::Progress {
                namespace: self.namespace.clone(),
                id: self.id.clone(),
                direction: Direction::Upload,
                done: self.done,
                total: self.total,
            });
        }
        Some((Ok(piece), self))
    }
}
