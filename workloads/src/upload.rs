//! `blobs.upload`: N `put`s through the BlobManager, `concurrency` at a time.

use std::time::Instant;

use blobs_client::BlobManager;
use futures::{StreamExt, TryStreamExt};

use crate::{Context, Outcome, Params, WorkloadError, manager, payload};

const NAMESPACE: &str = "default";

pub struct Upload {
    manager: BlobManager,
    blobs: Vec<(String, Vec<u8>)>,
    concurrency: usize,
}

impl Upload {
    pub async fn prepare(params: &Params, ctx: &Context) -> Result<Self, WorkloadError> {
        let nonce = payload::nonce();
        let blobs = (0..params.count as u64)
            .map(|i| {
                (
                    format!("{nonce}r{}i{i}", ctx.round),
                    payload::generate(ctx.seed, i, params.size),
                )
            })
            .collect();
        Ok(Self {
            manager: manager(ctx, "client.db", params.concurrency)?,
            blobs,
            concurrency: params.concurrency as usize,
        })
    }

    pub async fn run(self) -> Result<Outcome, WorkloadError> {
        let bytes: u64 = self.blobs.iter().map(|(_, b)| b.len() as u64).sum();
        let ops = self.blobs.len() as u64;
        let manager = &self.manager;
        let start = Instant::now();
        let op_latencies_ms: Vec<f64> = futures::stream::iter(self.blobs)
            .map(|(id, data)| async move {
                let t = Instant::now();
                manager.put(NAMESPACE, &id, data).await?;
                Ok::<_, WorkloadError>(t.elapsed().as_secs_f64() * 1e3)
            })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        Ok(Outcome {
            wall_s: start.elapsed().as_secs_f64(),
            bytes,
            ops,
            op_latencies_ms,
        })
    }
}
