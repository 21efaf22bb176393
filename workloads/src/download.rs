//! `blobs.download`: `fetch_missing` of N blobs into an empty local store.

use blobs_client::BlobManager;

use crate::{Context, Params, Work, WorkloadError, all_transferred, manager, seeded_namespace, transfer_latencies};

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
        })
    }
}
