//! `blobs.upload`: N `put`s through the BlobManager, `concurrency` at a time.

use std::time::Instant;

use blobs_client::BlobManager;
use futures::{StreamExt, TryStreamExt};

use crate::{Context, Params, Work, WorkloadError, blobs, manager, payload};

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
        Ok(Work::timed(bytes, times))
    }
}
