//! `store.put`: storing N blobs in a fresh local store, each committed atomically.

use std::sync::Arc;
use std::time::Instant;

use blobs_client::{BlobState, LocalStore, Priority, SyncStatus};

use crate::{Context, Latencies, Params, Prepared, StoreBackend, Work, WorkloadError, blobs, payload};
use crate::spec::{Extra, Key, Shape, Spec};

/// `store.put`'s contract with the harness.
pub(crate) const SPEC: Spec = Spec {
    name: "store.put",
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
    describe: |_, w| format!("Storing {} in the {} local store.", w.of, w.store),
    prepare: |params, ctx| Box::pin(async move { Ok(Prepared::new(StorePut::prepare(params, ctx)?.run())) }),
};

const NAMESPACE: &str = "default";

pub struct StorePut {
    store: Arc<dyn LocalStore>,
    blobs: Vec<(String, Vec<u8>)>,
}

/// Opens the scenario's local store in the work directory.
pub(crate) fn open_store(params: &Params, ctx: &Context) -> Result<Arc<dyn LocalStore>, WorkloadError> {
    Ok(match params.store.unwrap_or(StoreBackend::Sqlcipher) {
        StoreBackend::Sqlcipher => Arc::new(blobs_client::SqlcipherStore::open(
            &ctx.work_dir.join("store.db"),
            &payload::store_key(),
        )?),
        StoreBackend::Fs => Arc::new(blobs_client::FsStore::open(
            &ctx.work_dir.join("store"),
            &payload::store_key(),
        )?),
    })
}

/// Stores one blob the way the BlobManager does: streamed into a stage, then committed
/// with its state.
pub(crate) fn insert(
    store: &dyn LocalStore,
    namespace: &str,
    id: &str,
    data: &[u8],
    status: SyncStatus,
) -> Result<(), blobs_client::StoreError> {
    let mut w = store.new_content(namespace, id)?;
    w.write(data)?;
    w.commit(&BlobState::new(namespace, id, status, Priority::Medium))?;
    Ok(())
}

impl StorePut {
    pub(crate) fn prepare(params: &Params, ctx: &Context) -> Result<Self, WorkloadError> {
        Ok(Self {
            store: open_store(params, ctx)?,
            blobs: blobs(params, ctx, "b"),
        })
    }

    pub(crate) async fn run(self) -> Result<Work, WorkloadError> {
        tokio::task::spawn_blocking(move || {
            let mut latencies = Latencies::new();
            let mut bytes = 0;
            for (id, data) in &self.blobs {
                let t = Instant::now();
                insert(self.store.as_ref(), NAMESPACE, id, data, SyncStatus::PendingUpload)?;
                latencies.record(t.elapsed());
                bytes += data.len() as u64;
            }
            Ok(Work {
                bytes,
                ops: self.blobs.len() as u64,
                errors: 0,
                latencies: Some(latencies),
                ..Work::default()
            })
        })
        .await
        .expect("the store does not panic")
    }
}
