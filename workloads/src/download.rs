//! `blobs.download`: `fetch_missing` of N blobs into an empty local store.

use blobs_client::BlobManager;

use crate::{Context, Leftovers, Params, Prepared, Work, WorkloadError, all_transferred, manager, seeded_namespace, transfer_latencies};
use crate::spec::{Extra, Shape, Spec};

/// `blobs.download`'s contract with the harness.
pub(crate) const SPEC: Spec = Spec {
    name: "blobs.download",
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
            "A client with an empty local store lists, downloads, verifies, decrypts and stores {}, {}.",
            w.of, w.at_once
        )
    },
    prepare: |params, ctx| Box::pin(async move { Ok(Prepared::new(Download::prepare(params, ctx).await?.run())) }),
};

pub struct Download {
    manager: BlobManager,
    namespace: String,
    count: usize,
}

impl Download {
    pub(crate) async fn prepare(params: &Params, ctx: &Context) -> Result<Self, WorkloadError> {
        let namespace = seeded_namespace(params, ctx, "dl").await?;
        Ok(Self {
            manager: manager(ctx, "client.db", params.concurrency)?,
            namespace,
            count: params.count as usize,
        })
    }

    pub(crate) async fn run(self) -> Result<Work, WorkloadError> {
        let report = self.manager.fetch_missing(&self.namespace).await?;
        all_transferred(&report, self.count)?;
        Ok(Work {
            bytes: report.bytes,
            ops: report.transferred as u64,
            errors: 0,
            latencies: Some(transfer_latencies(&report)),
            leftovers: Leftovers::new(self.manager),
        })
    }
}
