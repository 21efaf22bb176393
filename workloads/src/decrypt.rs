//! `crypto.decrypt`: verifying and decrypting N blobs, one after another on one blocking
//! thread.

use std::time::Instant;

use crate::{BlobFormat, Context, Latencies, Params, Prepared, Work, WorkloadError, blobs, payload};
use crate::spec::{Extra, Key, Shape, Spec};

/// `crypto.decrypt`'s contract with the harness.
pub(crate) const SPEC: Spec = Spec {
    name: "crypto.decrypt",
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
    describe: |_, w| {
        format!(
            "Verification and decryption of {} in blob format {}, on one core.",
            w.of, w.format
        )
    },
    prepare: |params, ctx| Box::pin(async move { Ok(Prepared::new(Decrypt::prepare(params, ctx)?.run())) }),
};

pub struct Decrypt {
    /// `(id, encrypted blob, plaintext length)`
    blobs: Vec<(String, Vec<u8>, u64)>,
    format: BlobFormat,
}

impl Decrypt {
    pub(crate) fn prepare(params: &Params, ctx: &Context) -> Result<Self, WorkloadError> {
        let secret = payload::secret();
        let format = params.format.unwrap_or(BlobFormat::V1);
        let blobs = blobs(params, ctx, "b")
            .into_iter()
            .map(|(id, data)| {
                let blob = match format {
                    BlobFormat::V1 => blobs_crypto::v1::encrypt(&secret, &id, &data)?,
                    BlobFormat::V2 => blobs_crypto::v2::encrypt(&secret, &id, &data)?,
                };
                Ok((id, blob, data.len() as u64))
            })
            .collect::<Result<_, WorkloadError>>()?;
        Ok(Self { blobs, format })
    }

    pub(crate) async fn run(self) -> Result<Work, WorkloadError> {
        tokio::task::spawn_blocking(move || {
            let secret = payload::secret();
            let mut work = Work {
                latencies: Some(Latencies::new()),
                ..Work::default()
            };
            for (id, blob, len) in &self.blobs {
                let t = Instant::now();
                let plain = match self.format {
                    BlobFormat::V1 => blobs_crypto::v1::decrypt(&secret, id, blob, None)?,
                    BlobFormat::V2 => blobs_crypto::v2::decrypt(&secret, id, blob)?,
                };
                work.latencies.as_mut().expect("set above").record(t.elapsed());
                if plain.len() as u64 != *len {
                    return Err(WorkloadError::Invalid(format!(
                        "blob {id} decrypted to the wrong length"
                    )));
                }
                work.bytes += len;
                work.ops += 1;
            }
            Ok(work)
        })
        .await
        .expect("decryption does not panic")
    }
}
