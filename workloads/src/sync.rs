//! `blobs.sync`: a whole `sync()` of the BlobManager, in one of three situations: blobs
//! created locally to upload (`up`), a new device to fill (`down`), or two devices that
//! already agree (`none`, the cost of a sync that finds nothing to do).

use blobs_client::BlobManager;

use crate::{Context, Leftovers, Params, Prepared, SyncDirection, Work, WorkloadError, all_transferred, blobs, manager, manager_at, payload, seeded_namespace, transfer_latencies};
use crate::spec::{Extra, Key, Shape, Spec};

/// `blobs.sync`'s contract with the harness.
pub(crate) const SPEC: Spec = Spec {
    name: "blobs.sync",
    // 2: the manager (its SQLite store and connections) is dropped after the measured part,
    // as a client keeps it open across syncs; closing it checkpointed 0 or 580 pages of its
    // write-ahead log inside the round.
    version: 2,
    needs_server: true,
    needs_services: false,
    headline_metric: "sync_s",
    shape: Shape {
        directions: Key::Required,
        ..Shape::BASE
    },
    extras: &[Extra::Throughput, Extra::SyncTime],
    describe: |params, w| match params.direction {
        Some(SyncDirection::Up) => format!("A full sync that uploads {} created locally, {}.", w.of, w.at_once),
        Some(SyncDirection::Down) => format!("A full sync of a new device that downloads {}, {}.", w.of, w.at_once),
        _ => format!(
            "A full sync of two devices that already share {}: the cost of finding nothing to do.",
            w.of
        ),
    },
    prepare: |params, ctx| Box::pin(async move { Ok(Prepared::new(Sync::prepare(params, ctx).await?.run())) }),
};

pub struct Sync {
    manager: BlobManager,
    namespace: String,
    expected: usize,
}

impl Sync {
    pub(crate) async fn prepare(params: &Params, ctx: &Context) -> Result<Self, WorkloadError> {
        let count = params.count as usize;
        let (manager, namespace, expected) = match params.direction {
            Some(SyncDirection::Up) => {
                let namespace = format!("up{}r{}", payload::nonce(), ctx.round);
                let manager = manager(ctx, "client.db", params.concurrency)?;
                for (id, data) in blobs(params, ctx, "b") {
                    manager.stage(&namespace, &id, data).await?;
                }
                (manager, namespace, count)
            }
            Some(SyncDirection::Down) => {
                let namespace = seeded_namespace(params, ctx, "down").await?;
                (manager(ctx, "client.db", params.concurrency)?, namespace, count)
            }
            Some(SyncDirection::None) => {
                // A device that stays in sync across rounds: the first round fills it.
                let namespace = seeded_namespace(params, ctx, "none").await?;
                let manager = manager_at(ctx, &ctx.scenario_dir.join("in-sync.db"), params.concurrency)?;
                manager.set_limits(None, None);
                manager.sync(&namespace).await?;
                ctx.limit(&manager);
                (manager, namespace, 0)
            }
            None => {
                return Err(WorkloadError::Invalid(
                    "blobs.sync needs a direction: up, down or none".into(),
                ));
            }
        };
        Ok(Self {
            manager,
            namespace,
            expected,
        })
    }

    pub(crate) async fn run(self) -> Result<Work, WorkloadError> {
        let report = self.manager.sync(&self.namespace).await?;
        all_transferred(&report, self.expected)?;
        Ok(Work {
            bytes: report.bytes,
            ops: report.transferred as u64,
            errors: 0,
            latencies: Some(transfer_latencies(&report)).filter(|l| !l.is_empty()),
            leftovers: Leftovers::new(self.manager),
        })
    }
}
