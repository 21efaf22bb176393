//! `blobs.upload`: N `put`s through the BlobManager, `concurrency` at a time.

use std::time::Instant;

use blobs_client::BlobManager;
use futures::{StreamExt, TryStreamExt};

use crate::{Context, Leftovers, Params, Prepared, Work, WorkloadError, blobs, manager, payload};
use crate::spec::{Extra, Shape, Spec};

/// `blobs.upload`'s contract with the harness.
pub(crate) const SPEC: Spec = Spec {
    name: "blobs.upload",
    // 2: the manager (its SQLite store and connections) is dropped after the measured part,
    // as a client keeps it open; closing it checkpoints its write-ahead log (0 or 580 pages
    // in `blobs.sync`), which varied inside the round.
    version: 2,
    needs_server: true,
    needs_services: false,
    headline_metric: "wall_s",
    shape: Shape::BASE,
    extras: &[Extra::Throughput],
    describe: |_, w| {
        format!(
            "A client stores, encrypts and uploads {} through the BlobManager, {}.",
            w.of, w.at_once
        )
    },
    prepare: |params, ctx| Box::pin(async move { Ok(Prepared::new(Upload::prepare(params, ctx).await?.run())) }),
};

const NAMESPACE: &str = "default";

pub struct Upload {
    manager: BlobManager,
    blobs: Vec<(String, Vec<u8>)>,
    concurrency: usize,
}

impl Upload {
    pub(crate) async fn prepare(params: &Params, ctx: &Context) -> Result<Self, WorkloadError> {
        let prefix = format!("{}r{}i", payload::nonce(), ctx.round);
        Ok(Self {
            manager: manager(ctx, "client.db", params.concurrency)?,
            blobs: blobs(params, ctx, &prefix),
            concurrency: params.concurrency as usize,
        })
    }

    pub(crate) async fn run(self) -> Result<Work, WorkloadError> {
        let bytes: u64 = self.blobs.iter().map(|(_, b)| b.len() as u64).sum();
        let manager = &self.manager;
        let times: Vec<_> = futures::stream::iter(self.blobs)
            .map(|(id, data)| async move {
                let t = Instant::now();
                manager.put(NAMESPACE, &id, data).await?;
                Ok::<_, WorkloadError>(t.elapsed())
            })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        Ok(Work {
            leftovers: Leftovers::new(self.manager),
            ..Work::timed(bytes, times)
        })
    }
}
