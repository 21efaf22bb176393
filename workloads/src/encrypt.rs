//! `crypto.encrypt`: encrypting N blobs, one after another on one blocking thread.

use std::time::Instant;

use crate::{BlobFormat, Context, Latencies, Params, Prepared, Work, WorkloadError, blobs, payload};
use crate::spec::{Extra, Key, Shape, Spec};

/// `crypto.encrypt`'s contract with the harness.
pub(crate) const SPEC: Spec = Spec {
    name: "crypto.encrypt",
    // 2: OpenSSL's provider is loaded while preparing, no longer in the first v1 blob's
    // measured part (8.3 million instructions, as many as encrypting 3 MB).
    version: 2,
    needs_server: false,
    needs_services: false,
    headline_metric: "wall_s",
    shape: Shape {
        concurrency: Key::No,
        formats: Key::Optional,
        ..Shape::BASE
    },
    extras: &[Extra::Throughput],
    describe: |_, w| format!("Encryption of {} in blob format {}, on one core.", w.of, w.format),
    prepare: |params, ctx| Box::pin(async move { Ok(Prepared::new(Encrypt::prepare(params, ctx)?.run())) }),
};

pub struct Encrypt {
    blobs: Vec<(String, Vec<u8>)>,
    format: BlobFormat,
}

impl Encrypt {
    pub(crate) fn prepare(params: &Params, ctx: &Context) -> Result<Self, WorkloadError> {
        Ok(Self {
            blobs: blobs(params, ctx, "b"),
            format: params.format.unwrap_or(BlobFormat::V1),
        })
    }

    pub(crate) async fn run(self) -> Result<Work, WorkloadError> {
        tokio::task::spawn_blocking(move || {
            let secret = payload::secret();
            let mut work = Work {
                latencies: Some(Latencies::new()),
                ..Work::default()
            };
            for (id, data) in &self.blobs {
                let t = Instant::now();
                let blob = match self.format {
                    BlobFormat::V1 => blobs_crypto::v1::encrypt(&secret, id, data)?,
                    BlobFormat::V2 => blobs_crypto::v2::encrypt(&secret, id, data)?,
                };
                work.latencies.as_mut().expect("set above").record(t.elapsed());
                work.bytes += data.len() as u64;
                work.ops += 1;
                std::hint::black_box(blob);
            }
            Ok(work)
        })
        .await
        .expect("encryption does not panic")
    }
}
