//! `store.get`: reading N blobs back from a local store opened afresh (its own caches cold,
//! the operating system's page cache warm, as for an application that restarted).

use std::sync::Arc;
use std::time::Instant;

use blobs_client::{LocalStore, SyncStatus};

use crate::store_put::{insert, open_store};

use crate::{Context, Latencies, Params, Prepared, Work, WorkloadError, blobs};
use crate::spec::{Extra, Key, Shape, Spec};

/// `store.get`'s contract with the harness.
pub(crate) const SPEC: Spec = Spec {
    name: "store.get",
    version: 1,
    needs_server: false,
    needs_services: false,
    headline_metric: "wall_s",
    shape: Shape {
        concurrency: Key::No,
        stores: Key::Optional,
        ..Shape::BASE
    },
    extras: &[Extra::Throughput],
    describe: |_, w| format!("Reading {} back from the {} local store.", w.of, w.store),
    prepare: |params, ctx| Box::pin(async move { Ok(Prepared::new(StoreGet::prepare(params, ctx)?.run())) }),
};

const NAMESPACE: &str = "default";

pub struct StoreGet {
    store: Arc<dyn LocalStore>,
    ids: Vec<String>,
}

impl StoreGet {
    pub(crate) fn prepare(params: &Params, ctx: &Context) -> Result<Self, WorkloadError> {
        let ids = {
            let store = open_store(params, ctx)?;
            blobs(params, ctx, "b")
                .into_iter()
                .map(|(id, data)| insert(store.as_ref(), NAMESPACE, &id, &data, SyncStatus::Synced).map(|_| id))
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(Self {
            store: open_store(params, ctx)?,
            ids,
        })
    }

    pub(crate) async fn run(self) -> Result<Work, WorkloadError> {
        tokio::task::spawn_blocking(move || {
            let mut latencies = Latencies::new();
            let mut bytes = 0;
            for id in &self.ids {
                let t = Instant::now();
                let data = blobs_client::read_all(self.store.as_ref(), NAMESPACE, id)?
                    .ok_or_else(|| WorkloadError::Invalid(format!("blob {id} vanished")))?;
                latencies.record(t.elapsed());
                bytes += data.len() as u64;
            }
            Ok(Work {
                bytes,
                ops: self.ids.len() as u64,
                errors: 0,
                latencies: Some(latencies),
                ..Work::default()
            })
        })
        .await
        .expect("the store does not panic")
    }
}
