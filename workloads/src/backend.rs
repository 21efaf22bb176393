//! `server.backend`: the server's storage backend alone, driven in-process without HTTP:
//! durable writes of N blobs, or reads of N stored blobs, `concurrency` at a time. Here the
//! client driver hosts the backend, so the client metrics are the backend's.

use std::time::Instant;

use blobs_server::fs::backend::FsBackend;
use blobs_server::s3::backend::S3Backend;
use blobs_server::storage::{BlobRef, Storage, StorageBackend as _, StoreOptions, WriteMode};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::garage::Garage;

use crate::{Leftovers, Context, Latencies, Op, Params, Prepared, ServerBackendKind, Work, WorkloadError, blobs};
use crate::spec::{Extra, Key, Shape, Spec};

/// `server.backend`'s contract with the harness.
pub(crate) const SPEC: Spec = Spec {
    name: "server.backend",
    version: 1,
    needs_server: false,
    needs_services: false,
    headline_metric: "wall_s",
    shape: Shape {
        backends: Key::Optional,
        ops: Key::Required,
        allowed_ops: &[Op::Write, Op::Read],
        ..Shape::BASE
    },
    extras: &[Extra::Throughput],
    describe: |params, w| match params.op {
        Some(Op::Read) => format!(
            "The server's {} storage backend alone reads {}, {}.",
            w.backend, w.of, w.at_once
        ),
        _ => format!(
            "The server's {} storage backend alone durably writes {}, {}.",
            w.backend, w.of, w.at_once
        ),
    },
    prepare: |params, ctx| Box::pin(async move { Ok(Prepared::new(Backend::prepare(params, ctx).await?.run())) }),
};

const USER: &str = "bench";
const NAMESPACE: &str = "default";
const MAX_CONCURRENT_WRITES: usize = 50;

pub struct Backend {
    backend: Storage,
    /// The cluster of the S3 backend, stopped after the backend is dropped.
    // Boxed, so that the prepared workloads stay of similar sizes (`Prepared` is an enum).
    _garage: Option<Box<Garage>>,
    op: Op,
    /// For writes the blobs to write; for reads the ids with empty contents.
    blobs: Vec<(String, Bytes)>,
    concurrency: usize,
}

fn blob_ref(id: &str) -> BlobRef {
    BlobRef::new(USER, NAMESPACE, id).expect("generated ids are valid names")
}

impl Backend {
    pub(crate) async fn prepare(params: &Params, ctx: &Context) -> Result<Self, WorkloadError> {
        let opts = StoreOptions {
            max_concurrent_writes: MAX_CONCURRENT_WRITES,
            // The server's default, except in the count round: `auto` chooses each upload's
            // path by how long the last filesystem sync took, so counted, every upload fsyncs
            // its own files (as every upload did before `auto`).
            durability: if std::env::var_os(crate::COUNT_ROUND_ENV).is_some() {
                blobs_server::config::Durability::Fsync
            } else {
                Default::default()
            },
            write_wait: std::time::Duration::from_secs(600),
            max_blob_size: u64::MAX,
            quota: None,
            user_quotas: Default::default(),
            processing_timeout: std::time::Duration::from_secs(600),
        };
        let (backend, garage) = match params.backend {
            Some(ServerBackendKind::S3) => {
                let garage = Garage::start(&ctx.work_dir.join("garage"))?;
                let s3 = S3Backend::open(&garage.s3_config("bench"), opts).await?;
                (Storage::S3(s3), Some(Box::new(garage)))
            }
            _ => (Storage::Fs(FsBackend::open(&ctx.work_dir.join("backend"), opts)?), None),
        };
        let op = params.op.unwrap_or(Op::Write);
        let mut blobs: Vec<(String, Bytes)> = blobs(params, ctx, "b")
            .into_iter()
            .map(|(id, data)| (id, Bytes::from(data)))
            .collect();
        if op == Op::Read {
            let backend = &backend;
            futures::stream::iter(blobs.iter_mut())
                .map(|(id, data)| async move {
                    let data = std::mem::take(data);
                    let len = data.len() as u64;
                    let chunk: Result<Bytes, std::io::Error> = Ok(data);
                    backend
                        .write(
                            &blob_ref(id),
                            futures::stream::iter([chunk]),
                            WriteMode::Create,
                            Some(len),
                        )
                        .await
                })
                .buffer_unordered(MAX_CONCURRENT_WRITES)
                .try_collect::<Vec<_>>()
                .await?;
        } else if op != Op::Write {
            return Err(WorkloadError::Invalid(
                "server.backend runs the write or read op".into(),
            ));
        }
        Ok(Self {
            backend,
            _garage: garage,
            op,
            blobs,
            concurrency: params.concurrency as usize,
        })
    }

    /// Runs the workload and hands back the backend and its cluster, so that they are
    /// dropped after the clock stops: stopping a Garage cluster takes seconds.
    pub(crate) async fn run(self) -> Result<Work, WorkloadError> {
        let Self {
            backend,
            _garage,
            op,
            blobs,
            concurrency,
        } = self;
        let work = Self::measured(&backend, op, blobs, concurrency).await;
        let leftovers = Leftovers::new((backend, _garage));
        match work {
            Ok(work) => Ok(Work { leftovers, ..work }),
            Err(e) => {
                leftovers.release().await;
                Err(e)
            }
        }
    }

    async fn measured(
        backend: &Storage,
        op: Op,
        blobs: Vec<(String, Bytes)>,
        concurrency: usize,
    ) -> Result<Work, WorkloadError> {
        let results: Vec<(u64, std::time::Duration)> = futures::stream::iter(blobs)
            .map(|(id, data)| async move {
                let t = Instant::now();
                let bytes = if op == Op::Write {
                    let len = data.len() as u64;
                    let chunk: Result<Bytes, std::io::Error> = Ok(data);
                    backend
                        .write(
                            &blob_ref(&id),
                            futures::stream::iter([chunk]),
                            WriteMode::Create,
                            Some(len),
                        )
                        .await?
                } else {
                    // Small blobs are read into memory, large ones mapped: touch every page so
                    // that the read really happens.
                    let data = backend.open_blob(&blob_ref(&id)).await?.bytes().await?;
                    let sum = data.iter().step_by(4096).fold(0u8, |a, b| a.wrapping_add(*b));
                    std::hint::black_box(sum);
                    data.len() as u64
                };
                Ok::<_, WorkloadError>((bytes, t.elapsed()))
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        let mut latencies = Latencies::new();
        let mut bytes = 0;
        for (b, t) in &results {
            bytes += b;
            latencies.record(*t);
        }
        Ok(Work {
            bytes,
            ops: results.len() as u64,
            errors: 0,
            latencies: Some(latencies),
            leftovers: Leftovers::default(),
        })
    }
}
