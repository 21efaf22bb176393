//! `blobs.list`: listing a namespace of N blobs, [`LISTS_PER_ROUND`] times.

use std::time::Instant;

use blobs_client::Remote;
use futures::{StreamExt, TryStreamExt};

use crate::{Context, LISTS_PER_ROUND, Latencies, Leftovers, Params, Prepared, Work, WorkloadError, remote, seeded_namespace};
use crate::spec::{Shape, Spec};

/// `blobs.list`'s contract with the harness.
pub(crate) const SPEC: Spec = Spec {
    name: "blobs.list",
    // 2: the client and its connections are dropped after the measured part, so that the
    // server's side of closing them is not counted in the round.
    version: 2,
    needs_server: true,
    needs_services: false,
    headline_metric: "wall_s",
    shape: Shape::BASE,
    extras: &[],
    describe: |_, w| format!("Listing a namespace of {}, {LISTS_PER_ROUND} times, {}.", w.blobs, w.at_once),
    prepare: |params, ctx| Box::pin(async move { Ok(Prepared::new(List::prepare(params, ctx).await?.run())) }),
};

pub struct List {
    remote: Remote,
    namespace: String,
    count: usize,
    concurrency: usize,
}

impl List {
    pub(crate) async fn prepare(params: &Params, ctx: &Context) -> Result<Self, WorkloadError> {
        let namespace = seeded_namespace(params, ctx, "ls").await?;
        Ok(Self {
            remote: remote(ctx)?,
            namespace,
            count: params.count as usize,
            concurrency: params.concurrency as usize,
        })
    }

    pub(crate) async fn run(self) -> Result<Work, WorkloadError> {
        let (remote, namespace, count) = (&self.remote, self.namespace.as_str(), self.count);
        let times: Vec<_> = futures::stream::iter(0..LISTS_PER_ROUND)
            .map(|_| async move {
                let t = Instant::now();
                let ids = remote.list(namespace).await?;
                if ids.len() != count {
                    return Err(WorkloadError::Invalid(format!(
                        "listed {} blobs, expected {count}",
                        ids.len()
                    )));
                }
                Ok(t.elapsed())
            })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        let mut latencies = Latencies::new();
        times.into_iter().for_each(|t| latencies.record(t));
        Ok(Work {
            bytes: 0,
            ops: LISTS_PER_ROUND as u64,
            errors: 0,
            latencies: Some(latencies),
            leftovers: Leftovers::new(self.remote),
        })
    }
}
