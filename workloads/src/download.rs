//! `blobs.download`: `fetch_missing` of N blobs into an empty local store.
//!
//! Preparation uploads the blobs through a separate BlobManager into a namespace of this
//! round's own, so the measured sync finds exactly N blobs missing.

use std::time::Instant;

use blobs_client::BlobManager;
use futures::{StreamExt, TryStreamExt};

use crate::{Context, Outcome, Params, WorkloadError, all_transferred, manager, payload};

/// Seeding is not measured; a fixed fan-out keeps it quick without overloading the server.
const SEED_CONCURRENCY: usize = 8;

pub struct Download {
    manager: BlobManager,
    namespace: String,
    count: usize,
}

impl Download {
    pub async fn prepare(params: &Params, ctx: &Context) -> Result<Self, WorkloadError> {
        let namespace = format!("dl{}r{}", payload::nonce(), ctx.round);
        let seeder = manager(ctx, "seed.db", SEED_CONCURRENCY as u32)?;
        futures::stream::iter(0..params.count as u64)
            .map(|i| {
                let (seeder, namespace) = (&seeder, &namespace);
                async move {
                    seeder
                        .put(
                            namespace,
                            &format!("b{i}"),
                            payload::generate(ctx.seed, i, params.size),
                        )
                        .await
                }
            })
            .buffer_unordered(SEED_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        Ok(Self {
            manager: manager(ctx, "client.db", params.concurrency)?,
            namespace,
            count: params.count as usize,
        })
    }

    pub async fn run(self) -> Result<Outcome, WorkloadError> {
        let start = Instant::now();
        let report = self.manager.fetch_missing(&self.namespace).await?;
        let wall_s = start.elapsed().as_secs_f64();
        all_transferred(&report, self.count)?;
        let op_latencies_ms = report
            .transfer_times
            .iter()
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        Ok(Outcome {
            wall_s,
            bytes: report.bytes,
            ops: report.transferred as u64,
            op_latencies_ms,
        })
    }
}
