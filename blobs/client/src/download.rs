//! Downloads: resumable, verified, streamed into the local store in bounded memory.
//!
//! The network side (this task) reads the response, paces it by the download limit and
//! hands the bytes to a worker on the blocking pool, which verifies, decrypts and writes
//! them. What the worker keeps depends on the blob's format:
//!
//! - v2: each chunk is verified on its own, so the stage holds verified plaintext, and the
//!   download resumes at the first unverified chunk (after a dropped connection, a
//!   restart, or a chunk damaged in transit);
//! - v1: one tag covers the whole blob, so the stage holds the ciphertext as received; once
//!   complete it is decrypted into the content in a second pass and kept only if the tag
//!   verifies;
//! - external (incoming box, `MX`): the payload is kept as delivered.
//!
//! Progress is checkpointed every `checkpoint_every` bytes (where the stage first reaches
//! each, however the network split the body: see `Worker::body`) and when the connection drops,
//! with the server's ETag, so that a resumed request (`Range` + `If-Range`) continues the
//! same version or starts over if the blob changed.

use base64::Engine as _;
use blobs_crypto::open::SchemePolicy;
use blobs_crypto::{FormatError, Method, Preamble, Scheme, v1, v2};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::events::{Direction, Event};
use crate::manager::BlobManager;
use crate::store::{BlobState, ContentWriter, Hasher, LocalStore, StoreError, SyncStatus};
use crate::{ClientError, ErrorClass, FailureKind};

/// Raw chunks queued between the network and the worker.
const QUEUE: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    V1,
    V2,
    External,
}

/// What a download stage's checkpoint records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    etag: String,
    /// The preamble as it came (base64url text).
    preamble: String,
    /// The Tag header, base64url (v1 checks it against the blob's own tag).
    tag: Option<String>,
    kind: Kind,
    /// v2 progress.
    next_chunk: u64,
    plaintext_len: Option<u64>,
    plaintext_done: u64,
    /// Body bytes (after the preamble and separator) the stage accounts for.
    body_done: u64,
}

impl Meta {
    /// Where in the blob the next byte to fetch is.
    fn offset(&self) -> u64 {
        self.preamble.len() as u64 + 1 + self.body_done
    }
}

enum Msg {
    Data(Bytes),
    /// The body is complete.
    End,
}

/// How a worker ended.
enum Outcome {
    /// Stored and committed: plaintext bytes.
    Committed(u64),
    /// Verified only (no store): SHA-256 of the plaintext.
    Verified([u8; 32]),
    /// The input stopped early; progress was checkpointed where possible.
    Interrupted,
}

/// The body decoder of one blob.
enum Decoder {
    /// Ciphertext is kept as is (stored mode) or decrypted on the fly (verify mode).
    V1(Option<v1::Decryptor>),
    V2(v2::Decryptor),
    External,
}

struct Header {
    preamble: Preamble,
    raw: Vec<u8>,
    text: String,
}

fn tag_text(tag: Option<[u8; 16]>) -> Option<String> {
    tag.map(|t| base64::engine::general_purpose::URL_SAFE.encode(t))
}

fn tag_bytes(text: &Option<String>) -> Option<[u8; 16]> {
    text.as_ref()
        .and_then(|t| base64::engine::general_purpose::URL_SAFE.decode(t).ok())
        .and_then(|t| t.try_into().ok())
}

fn invalid(id: &str, source: FormatError) -> ClientError {
    ClientError::InvalidBlob {
        id: id.to_owned(),
        source,
    }
}

/// Checks a preamble against the request and the namespace's policy; returns the kind.
fn kind_of(
    secret: &blobs_crypto::BlobSecret,
    id: &str,
    h: &Header,
    policy: SchemePolicy,
    tag: Option<[u8; 16]>,
) -> Result<Kind, FormatError> {
    match (h.preamble.scheme, h.preamble.method) {
        (Scheme::External, _) => {
            // Delegates the policy and id checks to the crypto crate's dispatcher.
            blobs_crypto::open::BodyDecryptor::new(secret, id, &h.preamble, &h.raw, tag, policy)?;
            Ok(Kind::External)
        }
        (Scheme::Symkey, Method::Aes256GcmChunked) => Ok(Kind::V2),
        (Scheme::Symkey, Method::Aes256Gcm) => {
            v1::Decryptor::new(secret, id, &h.preamble, &h.raw, tag)?;
            Ok(Kind::V1)
        }
        (Scheme::Symkey, other) => Err(FormatError::UnsupportedMethod(other)),
    }
}

/// Where the worker's output goes.
enum Sink {
    Store {
        writer: Option<Box<dyn ContentWriter>>,
        /// Stage bytes at the last checkpoint.
        checkpointed: u64,
    },
    Verify(Hasher),
}

struct Worker {
    store: std::sync::Arc<dyn LocalStore>,
    secret: blobs_crypto::BlobSecret,
    namespace: String,
    id: String,
    policy: SchemePolicy,
    etag: Option<String>,
    tag: Option<[u8; 16]>,
    checkpoint_every: u64,
    sink: Sink,
    /// Set once the preamble is known.
    state: Option<(Header, Decoder, Meta)>,
}

impl Worker {
    fn run(mut self, mut rx: mpsc::Receiver<Msg>) -> Result<Outcome, ClientError> {
        let mut head = Vec::new();
        loop {
            let Some(msg) = rx.blocking_recv() else {
                self.checkpoint()?;
                return Ok(Outcome::Interrupted);
            };
            let data = match msg {
                Msg::Data(d) => d,
                Msg::End => return self.finish(head),
            };
            if self.state.is_some() {
                self.body(&data)?;
                continue;
            }
            head.extend_from_slice(&data);
            match v1::separator_offset(&head) {
                Some(sep) => {
                    let rest = head.split_off(sep + 1);
                    head.truncate(sep);
                    self.start(&head)?;
                    head.clear();
                    self.body(&rest)?;
                }
                None if head.len() > blobs_crypto::PREAMBLE_B64_LEN => {
                    return Err(invalid(
                        &self.id,
                        FormatError::MissingSeparator {
                            max: blobs_crypto::PREAMBLE_B64_LEN + 1,
                        },
                    ));
                }
                None => {}
            }
        }
    }

    /// The preamble arrived: check it and set up decoding.
    fn start(&mut self, text: &[u8]) -> Result<(), ClientError> {
        let (preamble, raw) = Preamble::from_base64(text).map_err(|e| invalid(&self.id, e))?;
        let header = Header {
            preamble,
            raw,
            text: String::from_utf8_lossy(text).into_owned(),
        };
        let kind = kind_of(&self.secret, &self.id, &header, self.policy, self.tag).map_err(|e| invalid(&self.id, e))?;
        let decoder = match kind {
            Kind::V2 => self.v2_decoder(
                &header,
                v2::Progress {
                    next_chunk: 0,
                    plaintext_len: None,
                    plaintext_done: 0,
                },
            )?,
            Kind::V1 => Decoder::V1(match self.sink {
                Sink::Verify(_) => Some(
                    v1::Decryptor::new(&self.secret, &self.id, &header.preamble, &header.raw, self.tag)
                        .map_err(|e| invalid(&self.id, e))?,
                ),
                Sink::Store { .. } => None,
            }),
            Kind::External => Decoder::External,
        };
        let meta = Meta {
            etag: self.etag.clone().unwrap_or_default(),
            preamble: header.text.clone(),
            tag: tag_text(self.tag),
            kind,
            next_chunk: 0,
            plaintext_len: None,
            plaintext_done: 0,
            body_done: 0,
        };
        if let Sink::Store { writer, .. } = &mut self.sink {
            *writer = Some(self.store.new_download(&self.namespace, &self.id)?);
        }
        self.state = Some((header, decoder, meta));
        Ok(())
    }

    fn v2_decoder(&self, header: &Header, progress: v2::Progress) -> Result<Decoder, ClientError> {
        let dec = v2::Decryptor::resume(&self.secret, &self.id, &header.preamble, &header.raw, progress)
            .map_err(|e| invalid(&self.id, e))?;
        Ok(Decoder::V2(dec))
    }

    /// Resumes from a checkpoint.
    fn resume(&mut self, writer: Box<dyn ContentWriter>, meta: Meta) -> Result<(), ClientError> {
        let (preamble, raw) = Preamble::from_base64(meta.preamble.as_bytes()).map_err(|e| invalid(&self.id, e))?;
        let header = Header {
            preamble,
            raw,
            text: meta.preamble.clone(),
        };
        let decoder = match meta.kind {
            Kind::V2 => self.v2_decoder(
                &header,
                v2::Progress {
                    next_chunk: meta.next_chunk,
                    plaintext_len: meta.plaintext_len,
                    plaintext_done: meta.plaintext_done,
                },
            )?,
            Kind::V1 => Decoder::V1(None),
            Kind::External => Decoder::External,
        };
        self.tag = tag_bytes(&meta.tag);
        self.sink = Sink::Store {
            checkpointed: writer.len(),
            writer: Some(writer),
        };
        self.state = Some((header, decoder, meta));
        Ok(())
    }

    fn emit_out(sink: &mut Sink, out: &[u8]) -> Result<(), ClientError> {
        match sink {
            Sink::Store { writer, .. } => writer.as_mut().expect("a store sink has a writer").write(out)?,
            Sink::Verify(h) => h.update(out),
        }
        Ok(())
    }

    /// Hands `data` on in pieces cut so that each checkpoint falls where the stage first
    /// reaches the next `checkpoint_every` bytes, wherever the network split the body. A
    /// checkpoint writes the store's partial row, so the rows a blob is stored in, and the
    /// work of storing them, then no longer follow the splits (the count round's client counts
    /// did). A v2 piece ends no later than the chunk being received, so that at most one chunk
    /// comes out of it, at its end (the last chunk may be short); v1 (stored) and external
    /// bodies come out as they go in, cut at the checkpoint itself.
    fn body(&mut self, mut data: &[u8]) -> Result<(), ClientError> {
        while !data.is_empty() {
            let (piece, rest) = data.split_at(self.piece_len(data.len()));
            self.body_piece(piece)?;
            data = rest;
        }
        Ok(())
    }

    /// How much of the `available` bytes [`Self::body`] hands on next.
    fn piece_len(&self, available: usize) -> usize {
        let (
            Some((_, decoder, meta)),
            Sink::Store {
                writer: Some(w),
                checkpointed,
            },
        ) = (&self.state, &self.sink)
        else {
            return available;
        };
        // Without an ETag there are no checkpoints to place.
        if meta.etag.is_empty() {
            return available;
        }
        match decoder {
            Decoder::V2(dec) => match dec.to_chunk_end() {
                0 => available,
                to_chunk_end => available.min(to_chunk_end),
            },
            Decoder::V1(None) | Decoder::External => {
                match usize::try_from((checkpointed + self.checkpoint_every).saturating_sub(w.len())) {
                    Ok(0) | Err(_) => available,
                    Ok(to_checkpoint) => available.min(to_checkpoint),
                }
            }
            Decoder::V1(Some(_)) => available,
        }
    }

    fn body_piece(&mut self, data: &[u8]) -> Result<(), ClientError> {
        if data.is_empty() {
            return Ok(());
        }
        let (_, decoder, meta) = self.state.as_mut().expect("the preamble came first");
        match decoder {
            Decoder::V2(dec) => {
                let mut out = Vec::with_capacity(data.len());
                let result = dec.update(data, &mut out);
                let p = dec.progress();
                meta.next_chunk = p.next_chunk;
                meta.plaintext_len = p.plaintext_len;
                meta.plaintext_done = p.plaintext_done;
                meta.body_done = p.body_offset();
                // Whatever came out verified, even if a later chunk did not.
                Self::emit_out(&mut self.sink, &out)?;
                if let Err(e) = result {
                    self.checkpoint()?;
                    return Err(invalid(&self.id, e));
                }
            }
            Decoder::V1(dec) => {
                if let Some(dec) = dec {
                    let mut out = Vec::with_capacity(data.len());
                    dec.update(data, &mut out).map_err(|e| invalid(&self.id, e))?;
                    Self::emit_out(&mut self.sink, &out)?;
                } else {
                    Self::emit_out(&mut self.sink, data)?;
                }
                meta.body_done += data.len() as u64;
            }
            Decoder::External => {
                Self::emit_out(&mut self.sink, data)?;
                meta.body_done += data.len() as u64;
            }
        }
        if let Sink::Store { writer, checkpointed } = &self.sink
            && writer
                .as_ref()
                .is_some_and(|w| w.len() >= checkpointed + self.checkpoint_every)
        {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Persists the stage and its meta (only with an ETag: without one a resumed request
    /// could not tell whether the blob changed).
    fn checkpoint(&mut self) -> Result<(), ClientError> {
        let Some((_, _, meta)) = &self.state else {
            return Ok(());
        };
        let Sink::Store { writer, checkpointed } = &mut self.sink else {
            return Ok(());
        };
        let Some(w) = writer.as_mut() else {
            return Ok(());
        };
        if meta.etag.is_empty() {
            return Ok(());
        }
        w.checkpoint(&serde_json::to_vec(meta).expect("meta serializes"))?;
        *checkpointed = w.len();
        Ok(())
    }

    fn synced_state(&self) -> Result<BlobState, StoreError> {
        let mut s = self
            .store
            .state(&self.namespace, &self.id)?
            .unwrap_or_else(|| BlobState::new(&self.namespace, &self.id, SyncStatus::Synced, Default::default()));
        s.status = SyncStatus::Synced;
        s.attempts = 0;
        s.verify_failures = 0;
        s.failure = None;
        s.last_error = None;
        s.remote_etag = self.etag.clone();
        s.replace = false;
        Ok(s)
    }

    fn finish(mut self, head: Vec<u8>) -> Result<Outcome, ClientError> {
        if self.state.is_none() {
            // The whole blob had no separator.
            return Err(invalid(
                &self.id,
                if head.is_empty() {
                    FormatError::Truncated
                } else {
                    FormatError::MissingSeparator {
                        max: blobs_crypto::PREAMBLE_B64_LEN + 1,
                    }
                },
            ));
        }
        let (header, decoder, _) = self.state.take().expect("checked above");
        match decoder {
            Decoder::V2(dec) => {
                if let Err(e) = dec.finish() {
                    self.drop_stage()?;
                    return Err(invalid(&self.id, e));
                }
            }
            Decoder::V1(Some(dec)) => {
                dec.finish().map_err(|e| invalid(&self.id, e))?;
            }
            Decoder::V1(None) => return self.finish_v1(header),
            Decoder::External => {}
        }
        match self.sink {
            Sink::Verify(h) => Ok(Outcome::Verified(h.finish().expect("a fresh hasher"))),
            Sink::Store { ref mut writer, .. } => {
                let w = writer.take().expect("a store sink has a writer");
                let state = self.synced_state()?;
                let info = w.commit(&state)?;
                Ok(Outcome::Committed(info.size))
            }
        }
    }

    /// v1, stored: the ciphertext is complete in the stage; decrypt it into the content.
    fn finish_v1(mut self, header: Header) -> Result<Outcome, ClientError> {
        let Sink::Store { writer, .. } = &mut self.sink else {
            unreachable!("v1 is decoded on the fly when verifying");
        };
        let mut w = writer.take().expect("a store sink has a writer");
        let meta = Meta {
            etag: self.etag.clone().unwrap_or_default(),
            preamble: header.text.clone(),
            tag: tag_text(self.tag),
            kind: Kind::V1,
            next_chunk: 0,
            plaintext_len: None,
            plaintext_done: 0,
            body_done: w.len(),
        };
        // The whole ciphertext is in the stage; a checkpoint (even without an ETag) makes it
        // readable, and keeps it should the process die during the second pass.
        w.checkpoint(&serde_json::to_vec(&meta).expect("meta serializes"))?;
        drop(w);
        let mut dec = v1::Decryptor::new(&self.secret, &self.id, &header.preamble, &header.raw, self.tag)
            .map_err(|e| invalid(&self.id, e))?;
        let mut reader = self
            .store
            .open_download(&self.namespace, &self.id)?
            .ok_or_else(|| ClientError::NotLocal(self.id.clone()))?;
        let mut content = self.store.new_content(&self.namespace, &self.id)?;
        let mut out = Vec::new();
        let result = (|| -> Result<(), ClientError> {
            while let Some(chunk) = reader.next_chunk()? {
                out.clear();
                dec.update(&chunk, &mut out).map_err(|e| invalid(&self.id, e))?;
                content.write(&out)?;
            }
            dec.finish().map_err(|e| invalid(&self.id, e))?;
            Ok(())
        })();
        if let Err(e) = result {
            content.discard()?;
            self.store.drop_download(&self.namespace, &self.id)?;
            return Err(e);
        }
        let state = self.synced_state()?;
        let info = content.commit(&state)?;
        Ok(Outcome::Committed(info.size))
    }

    fn drop_stage(&mut self) -> Result<(), ClientError> {
        if let Sink::Store { writer, .. } = &mut self.sink
            && let Some(w) = writer.take()
        {
            w.discard()?;
        }
        Ok(())
    }
}

/// Results of one attempt the retry loop needs beyond success or failure.
#[derive(Default)]
struct AttemptInfo {
    etag: Option<String>,
}

impl BlobManager {
    /// Downloads a blob that is PENDING_DOWNLOAD (or failed for a transient reason),
    /// retrying as the policy says. Returns the plaintext bytes stored.
    pub(crate) async fn download(&self, namespace: &str, id: &str) -> Result<u64, ClientError> {
        self.download_with(namespace, id, None).await
    }

    /// As [`BlobManager::download`], the first attempt waiting on `ticket`.
    pub(crate) async fn download_with(
        &self,
        namespace: &str,
        id: &str,
        mut ticket: Option<crate::scheduler::Ticket>,
    ) -> Result<u64, ClientError> {
        loop {
            let (permit, _guard, state, content) = self.slot_then_blob(namespace, id, ticket.take()).await?;
            let Some(state) = state else {
                return Err(ClientError::NotFound(id.to_owned()));
            };
            if let Some(c) = content {
                // Someone else brought it meanwhile.
                return Ok(c.size);
            }
            if state.status != SyncStatus::PendingDownload {
                return Err(ClientError::NotLocal(id.to_owned()));
            }
            let attempt = state.attempts + 1;
            self.emit(Event::TransferStarted {
                namespace: namespace.to_owned(),
                id: id.to_owned(),
                direction: Direction::Download,
                total: None,
                attempt,
            });
            let mut info = AttemptInfo::default();
            let result = self.download_attempt(namespace, id, &mut info).await;
            drop(permit);
            let err = match result {
                Ok(bytes) => {
                    self.emit(Event::TransferDone {
                        namespace: namespace.to_owned(),
                        id: id.to_owned(),
                        direction: Direction::Download,
                        bytes,
                    });
                    return Ok(bytes);
                }
                Err(e) => e,
            };
            match (&err, err.class()) {
                (ClientError::NotFound(_), _) => {
                    // Deleted on the server: nothing to fetch; forget it here too.
                    let (ns, owned) = (namespace.to_owned(), id.to_owned());
                    self.blocking(move |store| store.remove_content(&ns, &owned, None))
                        .await?;
                    self.emit(Event::RemovedRemotely {
                        namespace: namespace.to_owned(),
                        id: id.to_owned(),
                    });
                    return Err(err);
                }
                (_, ErrorClass::Verification) => {
                    let failures = state.verify_failures + 1;
                    self.emit(Event::VerificationFailed {
                        namespace: namespace.to_owned(),
                        id: id.to_owned(),
                        failures,
                        error: err.to_string(),
                    });
                    let unusable = failures >= self.inner.config.max_verify_failures;
                    let (ns, owned, msg, etag) = (namespace.to_owned(), id.to_owned(), err.to_string(), info.etag);
                    self.blocking(move |store| {
                        let mut s = store.state(&ns, &owned)?.unwrap_or(state);
                        s.verify_failures = failures;
                        s.last_error = Some(msg);
                        s.remote_etag = etag;
                        if unusable {
                            s.status = SyncStatus::FailedDownload;
                            s.failure = Some(FailureKind::Verification);
                            store.remove_content(&ns, &owned, Some(&s))
                        } else {
                            store.put_state(&s)
                        }
                    })
                    .await?;
                    if unusable {
                        self.emit(Event::TransferFailed {
                            namespace: namespace.to_owned(),
                            id: id.to_owned(),
                            direction: Direction::Download,
                            attempt,
                            error: err.to_string(),
                            retry_in: None,
                        });
                        self.emit(Event::Unusable {
                            namespace: namespace.to_owned(),
                            id: id.to_owned(),
                        });
                        return Err(err);
                    }
                }
                _ => {
                    let blob = (namespace, id);
                    let direction = (Direction::Download, SyncStatus::FailedDownload);
                    if !self.retry_or_give_up(blob, direction, attempt, &err, _guard).await? {
                        return Err(err);
                    }
                }
            }
        }
    }

    /// One request: resumes the checkpointed stage if the server still has that version.
    async fn download_attempt(&self, namespace: &str, id: &str, info: &mut AttemptInfo) -> Result<u64, ClientError> {
        let (ns, owned) = (namespace.to_owned(), id.to_owned());
        let resumed = self
            .blocking(move |store| store.resume_download(&ns, &owned))
            .await?
            .and_then(|r| serde_json::from_slice::<Meta>(&r.meta).ok().map(|m| (r.writer, m)))
            .filter(|(_, m)| !m.etag.is_empty());
        let remote = &self.inner.remote;
        let (resp, resumed) = match resumed {
            Some((writer, meta)) => {
                let offset = meta.offset();
                let discard = |w: Box<dyn ContentWriter>| async move {
                    tokio::task::spawn_blocking(move || w.discard())
                        .await
                        .expect("discarding does not panic")
                };
                match remote.open(namespace, id, Some((offset, &meta.etag))).await {
                    Ok(resp) if resp.start == offset => (resp, Some((writer, meta))),
                    Ok(resp) => {
                        // The blob changed: the server sent all of the new version.
                        discard(writer).await?;
                        (resp, None)
                    }
                    Err(ClientError::Status { status: 416, .. }) => {
                        // The stage already held everything (a crash before the commit).
                        discard(writer).await?;
                        (remote.open(namespace, id, None).await?, None)
                    }
                    Err(e) => return Err(e),
                }
            }
            None => (remote.open(namespace, id, None).await?, None),
        };
        info.etag = resp.etag.clone();
        let sink = Sink::Store {
            writer: None,
            checkpointed: 0,
        };
        self.pump(namespace, id, resp, sink, resumed).await.map(|o| match o {
            Outcome::Committed(n) => n,
            _ => 0,
        })
    }

    /// Streams a response through a worker, pacing it and reporting progress.
    async fn pump(
        &self,
        namespace: &str,
        id: &str,
        mut resp: crate::remote::BlobResponse,
        sink: Sink,
        resumed: Option<(Box<dyn ContentWriter>, Meta)>,
    ) -> Result<Outcome, ClientError> {
        let mut worker = Worker {
            store: self.inner.store.clone(),
            secret: self.inner.secret.clone(),
            namespace: namespace.to_owned(),
            id: id.to_owned(),
            policy: self.policy(namespace),
            etag: resp.etag.clone(),
            tag: resp.tag,
            checkpoint_every: self.inner.config.checkpoint_every,
            sink,
            state: None,
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = tokio::task::spawn_blocking(move || {
            if let Some((writer, meta)) = resumed {
                worker.resume(writer, meta)?;
            }
            worker.run(rx)
        });
        let total = resp.total;
        let mut done = resp.start;
        let mut reported = done;
        let every = self.inner.config.progress_every.max(1);
        let mut net_err = None;
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    self.inner.down.take(c.len()).await;
                    done += c.len() as u64;
                    if done - reported >= every || done == total {
                        reported = done;
                        self.emit(Event::Progress {
                            namespace: namespace.to_owned(),
                            id: id.to_owned(),
                            direction: Direction::Download,
                            done,
                            total,
                        });
                    }
                    if tx.send(Msg::Data(c)).await.is_err() {
                        break;
                    }
                }
                Ok(None) => {
                    let _ = tx.send(Msg::End).await;
                    break;
                }
                Err(e) => {
                    net_err = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        drop(resp);
        let outcome = handle.await.expect("the download worker does not panic");
        match (outcome, net_err) {
            (Err(e), _) => Err(e),
            (Ok(Outcome::Interrupted), Some(e)) => Err(e),
            (Ok(Outcome::Interrupted), None) => Err(ClientError::Protocol {
                url: format!("{}/{}", namespace, id),
                reason: "the download stopped before its end".into(),
            }),
            (Ok(o), _) => Ok(o),
        }
    }

    /// Whether the server's copy of a blob holds exactly this device's content: downloads
    /// and decrypts it (without storing it) and compares digests. Returns the server copy's
    /// ETag if it matches, `None` if the server holds something else.
    pub(crate) async fn verify_remote(&self, namespace: &str, id: &str) -> Result<Option<String>, ClientError> {
        let (ns, owned) = (namespace.to_owned(), id.to_owned());
        let local = self
            .blocking(move |store| {
                let Some(info) = store.content(&ns, &owned)? else {
                    return Ok(None);
                };
                let sha = match info.sha256 {
                    Some(s) => Some(s),
                    None => crate::store::content_sha256(store, &ns, &owned)?,
                };
                Ok(sha.map(|s| (info.size, s)))
            })
            .await?;
        let Some((size, sha)) = local else {
            return Ok(None);
        };
        let resp = self.inner.remote.open(namespace, id, None).await?;
        let plausible = [v1::OVERHEAD as u64 + size, v2::blob_len(size)];
        if !plausible.contains(&resp.total) && self.policy(namespace) == SchemePolicy::SymkeyOnly {
            return Ok(None);
        }
        let etag = resp.etag.clone();
        match self.pump(namespace, id, resp, Sink::Verify(Hasher::new()), None).await {
            Ok(Outcome::Verified(remote)) if remote == sha => Ok(etag),
            Ok(_) => Ok(None),
            Err(e) if e.class() == ErrorClass::Verification => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sqlcipher_store::{ROW_LEN, SqlcipherStore};

    /// Stores `blob` (id `b`) through a worker, the body handed over in pieces of the sizes in
    /// `splits`, in turn; returns the stored plaintext's rows.
    fn stored_rows(secret: &blobs_crypto::BlobSecret, blob: &[u8], splits: &[usize]) -> Vec<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn LocalStore> = Arc::new(SqlcipherStore::open(&dir.path().join("s.db"), &[9; 32]).unwrap());
        let worker = Worker {
            store: store.clone(),
            secret: secret.clone(),
            namespace: "default".into(),
            id: "b".into(),
            policy: SchemePolicy::SymkeyOnly,
            etag: Some("\"e1\"".into()),
            tag: None,
            checkpoint_every: 1 << 20,
            sink: Sink::Store {
                writer: None,
                checkpointed: 0,
            },
            state: None,
        };
        let (tx, rx) = mpsc::channel(4);
        let feeder = {
            let blob = blob.to_vec();
            let splits = splits.to_vec();
            std::thread::spawn(move || {
                let mut rest = &blob[..];
                for &n in splits.iter().cycle() {
                    if rest.is_empty() {
                        break;
                    }
                    let (piece, after) = rest.split_at(n.min(rest.len()));
                    tx.blocking_send(Msg::Data(Bytes::copy_from_slice(piece))).unwrap();
                    rest = after;
                }
                tx.blocking_send(Msg::End).unwrap();
            })
        };
        let outcome = worker.run(rx).unwrap();
        feeder.join().unwrap();
        assert!(matches!(outcome, Outcome::Committed(_)));
        let mut reader = store.open_content("default", "b").unwrap().unwrap();
        std::iter::from_fn(|| reader.next_chunk().unwrap()).collect()
    }

    #[test]
    fn a_stored_blob_takes_the_same_rows_however_the_network_split_it() {
        let secret = blobs_crypto::BlobSecret::new(vec![7u8; 512]).unwrap();
        let noise = |n: usize| -> Vec<u8> { (0..n).map(|i| (i * 31 % 251) as u8).collect() };
        // Handed over whole, in odd small pieces, in pieces larger than a sealed chunk, and
        // so that the first MiB ends inside a piece: the same rows every time.
        let splits: [&[usize]; 4] = [
            &[1000, 70_001, 4096],
            &[333_333],
            &[v2::SEALED_CHUNK_LEN * 3 + 7],
            &[100_000],
        ];

        // 3 MiB and a bit: the first checkpoint cuts a row short where the first chunk past
        // a MiB ends (65,528 bytes into the row: the first chunk holds 8 bytes less); the
        // later ones follow a MiB apart, on rows' ends; the last row holds the rest.
        let plain = noise(3 * (1 << 20) + 5000);
        let blob = v2::encrypt(&secret, "b", &plain).unwrap();
        let whole = stored_rows(&secret, &blob, &[usize::MAX]);
        let lens: Vec<usize> = whole.iter().map(Vec::len).collect();
        let short: Vec<usize> = lens.iter().copied().filter(|&l| l != ROW_LEN).collect();
        assert_eq!(short, [65_528, plain.len() - 65_528 - 11 * ROW_LEN], "{lens:?}");
        assert_eq!(whole.concat(), plain);
        for splits in splits {
            let rows = stored_rows(&secret, &blob, splits);
            assert_eq!(rows.iter().map(Vec::len).collect::<Vec<_>>(), lens, "{splits:?}");
            assert_eq!(rows.concat(), plain, "{splits:?}");
        }

        // 1,120,000 bytes, padded to 17.5 chunks: the MiB is passed at the end of chunk 16,
        // and the short last chunk follows it. Pieces of 100,000 bytes hold over half of
        // chunk 16 in one and the rest of it with all of chunk 17 in the next: the
        // checkpoint still falls between them.
        let plain = noise(1_120_000);
        let blob = v2::encrypt(&secret, "b", &plain).unwrap();
        let lens: Vec<usize> = stored_rows(&secret, &blob, &[usize::MAX])
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(
            lens,
            [
                ROW_LEN,
                ROW_LEN,
                ROW_LEN,
                ROW_LEN,
                65_528,
                plain.len() - 65_528 - 4 * ROW_LEN
            ]
        );
        for splits in splits {
            let rows = stored_rows(&secret, &blob, splits);
            assert_eq!(rows.iter().map(Vec::len).collect::<Vec<_>>(), lens, "{splits:?}");
            assert_eq!(rows.concat(), plain, "{splits:?}");
        }
    }
}
