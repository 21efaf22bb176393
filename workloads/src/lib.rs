//! Workloads: the operations the harness drives against the blobs stack.
//!
//! A workload runs inside the client-driver process (`soledad-bench drive`). It is prepared
//! first (fresh local store, payloads, server-side fixtures), untimed and unmeasured; then the
//! harness starts its measurements and the workload runs once, reporting its own wall time
//! and per-operation latencies as an [`Outcome`].

mod download;
mod outcome;
mod params;
mod payload;
pub mod protocol;
mod upload;

use std::path::PathBuf;

pub use outcome::Outcome;
pub use params::{Params, ParseSizeError, WorkloadKind, format_size, parse_size};

/// The server a workload talks to and who it is there.
#[derive(Debug, Clone)]
pub struct Target {
    pub server: String,
    pub user: String,
    pub token: String,
}

/// Everything a workload needs besides its parameters.
#[derive(Debug, Clone)]
pub struct Context {
    pub target: Target,
    /// An empty directory the workload owns (local stores, fixtures).
    pub work_dir: PathBuf,
    /// Which round this is; ids include it so rounds never collide on the server.
    pub round: u32,
    /// Seeds payload generation, so every round of every run moves the same bytes.
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error(transparent)]
    Client(#[from] blobs_client::ClientError),
    #[error(transparent)]
    Store(#[from] blobs_client::StoreError),
    #[error("{failed} of {total} transfers failed; first: {first}")]
    Transfers {
        failed: usize,
        total: usize,
        first: String,
    },
}

/// A workload ready to run.
pub enum Prepared {
    Upload(upload::Upload),
    Download(download::Download),
}

/// Sets up a workload; nothing here is measured.
pub async fn prepare(params: &Params, ctx: &Context) -> Result<Prepared, WorkloadError> {
    Ok(match params.workload {
        WorkloadKind::BlobsUpload => Prepared::Upload(upload::Upload::prepare(params, ctx).await?),
        WorkloadKind::BlobsDownload => {
            Prepared::Download(download::Download::prepare(params, ctx).await?)
        }
    })
}

impl Prepared {
    /// Runs the measured part.
    pub async fn run(self) -> Result<Outcome, WorkloadError> {
        match self {
            Prepared::Upload(w) => w.run().await,
            Prepared::Download(w) => w.run().await,
        }
    }
}

/// The BlobManager every workload uses: a fresh SQLCipher store in `dir`.
fn manager(
    ctx: &Context,
    store_file: &str,
    concurrency: u32,
) -> Result<blobs_client::BlobManager, WorkloadError> {
    use std::sync::Arc;
    let store = Arc::new(blobs_client::SqlcipherStore::open(
        &ctx.work_dir.join(store_file),
        &payload::store_key(),
    )?);
    let remote = blobs_client::Remote::new(
        &ctx.target.server,
        &blobs_client::Credentials {
            user: ctx.target.user.clone(),
            token: ctx.target.token.clone(),
        },
    )?;
    Ok(blobs_client::BlobManager::new(
        store,
        remote,
        payload::secret(),
        concurrency as usize,
    ))
}

/// Turns a sync report with failures into an error: a benchmark of a partly failed sync
/// would time the wrong thing.
fn all_transferred(
    report: &blobs_client::SyncReport,
    expected: usize,
) -> Result<(), WorkloadError> {
    if let Some((id, err)) = report.failed.first() {
        return Err(WorkloadError::Transfers {
            failed: report.failed.len(),
            total: expected,
            first: format!("{id}: {err}"),
        });
    }
    if report.transferred != expected {
        return Err(WorkloadError::Transfers {
            failed: expected.saturating_sub(report.transferred),
            total: expected,
            first: format!("only {} blobs were transferred", report.transferred),
        });
    }
    Ok(())
}
