//! `server.load`: N clients hammer the server for a fixed duration, each sending its next
//! request as soon as the previous one is answered (FunkLoad's closed loop, as in Soledad's
//! scalability study), uploading or downloading blobs of one size. The blobs are encrypted
//! once, as Soledad's load tests did, so the client's own crypto does not cap the load.
//!
//! A closed loop hides stalls: a client waiting on one slow response sends nothing else, so
//! only one slow sample is recorded. Latencies are therefore corrected for coordinated
//! omission: each is recorded with the requests its client would have sent meanwhile at its
//! usual pace (the median latency of the round).

use std::sync::Arc;
use std::time::{Duration, Instant};

use blobs_client::Remote;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::{Context, Latencies, Op, Params, Prepared, ServerBackendKind, Size, Work, WorkloadError, payload, remote};
use crate::spec::{Extra, Key, Shape, Spec};

/// `server.load`'s contract with the harness.
pub(crate) const SPEC: Spec = Spec {
    name: "server.load",
    version: 1,
    needs_server: true,
    needs_services: false,
    headline_metric: "ops_s",
    shape: Shape {
        backends: Key::Optional,
        sizes: Key::Required,
        ops: Key::Required,
        duration_s: Key::Optional,
        allowed_ops: &[Op::Upload, Op::Download],
        implicit_fs_backend: true,
        ..Shape::BASE
    },
    extras: &[Extra::Throughput, Extra::Errors],
    describe: |params, w| {
        let op = if params.op == Some(Op::Download) {
            "download"
        } else {
            "upload"
        };
        let on = if params.backend == Some(ServerBackendKind::S3) {
            " to a server on the S3 backend (3 Garage nodes and etcd on the same machine)"
        } else {
            ""
        };
        format!(
            "{} clients each {op} blobs of {}{on} back to back for {} s; latencies are corrected for coordinated omission.",
            params.concurrency, w.each, w.duration_s
        )
    },
    prepare: |params, ctx| Box::pin(async move { Ok(Prepared::new(Load::prepare(params, ctx).await?.run())) }),
};

/// Download targets: enough distinct blobs that the server does not serve one hot file.
const DOWNLOAD_POOL: usize = 64;

pub struct Load {
    remote: Remote,
    op: Op,
    namespace: String,
    prefix: String,
    clients: usize,
    duration: Duration,
    size: u64,
    blob: Bytes,
    pool: Arc<Vec<String>>,
}

struct ClientResult {
    latencies: Vec<Duration>,
    errors: u64,
}

impl Load {
    pub(crate) async fn prepare(params: &Params, ctx: &Context) -> Result<Self, WorkloadError> {
        let Size::Fixed(size) = params.size else {
            return Err(WorkloadError::Invalid("server.load needs a fixed blob size".into()));
        };
        let op = params.op.unwrap_or(Op::Upload);
        if !matches!(op, Op::Upload | Op::Download) {
            return Err(WorkloadError::Invalid(
                "server.load runs the upload or download op".into(),
            ));
        }
        let duration = Duration::from_secs(params.duration_s.unwrap_or(10).into());
        let nonce = payload::nonce();
        let namespace = format!("ld{nonce}r{}", ctx.round);
        let blob: Bytes =
            blobs_crypto::v1::encrypt(&payload::secret(), "load", &payload::generate(ctx.seed, 0, size))?.into();
        let remote = remote(ctx)?;
        let mut pool = Vec::new();
        if op == Op::Download {
            pool = (0..DOWNLOAD_POOL).map(|i| format!("p{i}")).collect();
            futures::stream::iter(&pool)
                .map(|id| remote.put(&namespace, id, blob.clone()))
                .buffer_unordered(8)
                .try_collect::<()>()
                .await?;
        }
        Ok(Self {
            remote,
            op,
            namespace,
            prefix: nonce,
            clients: params.concurrency as usize,
            duration,
            size,
            blob,
            pool: Arc::new(pool),
        })
    }

    pub(crate) async fn run(self) -> Result<Work, WorkloadError> {
        let deadline = Instant::now() + self.duration;
        let tasks: Vec<_> = (0..self.clients)
            .map(|client| {
                let (remote, namespace, blob, pool) = (
                    self.remote.clone(),
                    self.namespace.clone(),
                    self.blob.clone(),
                    self.pool.clone(),
                );
                let (op, prefix) = (self.op, self.prefix.clone());
                tokio::spawn(async move {
                    let mut result = ClientResult {
                        latencies: Vec::new(),
                        errors: 0,
                    };
                    let mut seq = 0usize;
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let outcome = if op == Op::Upload {
                            remote
                                .put(&namespace, &format!("{prefix}c{client}n{seq}"), blob.clone())
                                .await
                        } else {
                            remote
                                .get(&namespace, &pool[(client + seq) % pool.len()])
                                .await
                                .map(|_| ())
                        };
                        match outcome {
                            Ok(()) => result.latencies.push(t.elapsed()),
                            Err(_) => result.errors += 1,
                        }
                        seq += 1;
                    }
                    result
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let r = task
                .await
                .map_err(|e| WorkloadError::Invalid(format!("load client failed: {e}")))?;
            all.extend(r.latencies);
            errors += r.errors;
        }
        let mut sorted = all.clone();
        sorted.sort();
        let pace = sorted
            .get(sorted.len() / 2)
            .copied()
            .unwrap_or(Duration::from_millis(1));
        let mut latencies = Latencies::new();
        for l in &all {
            latencies.record_corrected(*l, pace);
        }
        let ops = all.len() as u64;
        Ok(Work {
            bytes: ops * self.size,
            ops,
            errors,
            latencies: Some(latencies),
            ..Work::default()
        })
    }
}
