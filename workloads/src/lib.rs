//! Workloads: the operations the harness drives against the blobs stack, one per file.
//!
//! A workload runs inside the client-driver process (`soledad-bench drive`). It is prepared
//! first (fresh local store, payloads, server-side fixtures), untimed and unmeasured; then the
//! harness starts its measurements and the workload runs once. [`Prepared::run`] times it and
//! watches the driver's own runtime (loop lag, busy time) while it runs.
//!
//! Adding a workload: write its file with the workload and a `SPEC` (`spec.rs`: name, what
//! it needs, the scenario keys it takes, the metrics it adds, its description, how it is
//! prepared), and add its module to `workloads!` below. The harness, the scenario files and
//! the site learn everything from there. Then list it in a scenario file and record the new
//! ids with `SOLEDAD_BENCH_BLESS=1 cargo test -p harness --test scenario_ids`.

pub mod child;
pub mod garage;
mod lag;
mod latency;
pub mod loopback;
mod outcome;
mod params;
mod payload;
pub mod protocol;
pub mod spec;

/// Declares each workload's module and registers its [`spec::Spec`]: adding a workload is its
/// own file (with a `SPEC`) and one line here.
macro_rules! workloads {
    ($($module:ident,)*) => {
        $(mod $module;)*
        /// Every workload this version can run, in the order of `soledad-bench`'s listings.
        pub static REGISTRY: &[&spec::Spec] = &[$(&$module::SPEC,)*];
    };
}

workloads! {
    encrypt,
    decrypt,
    upload,
    download,
    sync,
    list,
    store_put,
    store_get,
    backend,
    load,
    incoming_deliver,
    incoming_process,
}

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

pub use lag::{LagProbe, LagSummary};
pub use latency::{HistogramError, Latencies};
pub use outcome::Outcome;
pub use params::{
    BlobFormat, LISTS_PER_ROUND, NamedSize, Op, Params, ParseSizeError, ServerBackendKind, Size, StoreBackend,
    SyncDirection, UnknownWorkload, WorkloadKind, format_size, parse_size,
};
pub use payload::MAIL;

/// Tick of the loop-lag probe.
pub const LAG_PROBE_INTERVAL: Duration = Duration::from_millis(10);

/// Set in a driver's environment for the harness's count round (under Valgrind): the
/// measured part then runs without the loop-lag probe, whose ticks follow wall time and would
/// be counted as the workload's instructions.
pub const COUNT_ROUND_ENV: &str = "SOLEDAD_BENCH_COUNT_ROUND";

/// How a round is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Timed, with the loop-lag probe running and the latencies reported.
    Timed,
    /// Counted under Valgrind: no loop-lag probe (its ticks follow wall time) and no latency
    /// histogram (its compression depends on the latencies); both read as empty.
    Counted,
}

/// The server a workload talks to and who it is there.
#[derive(Debug, Clone)]
pub struct Target {
    pub server: String,
    pub user: String,
    pub token: String,
    /// The server's services listener, where the MX delivers into the incoming box; `None`
    /// when it is not reachable (a server started elsewhere).
    pub services: Option<Services>,
}

/// A services listener and the token of the delivery service [`MX_SERVICE`] on it.
#[derive(Debug, Clone)]
pub struct Services {
    /// Such as `http://127.0.0.1:2525`.
    pub url: String,
    pub token: String,
}

/// The trusted service that delivers mail into incoming boxes (the MX).
pub const MX_SERVICE: &str = "mx";

/// Everything a workload needs besides its parameters.
#[derive(Debug, Clone)]
pub struct Context {
    /// `None` for workloads that need no server.
    pub target: Option<Target>,
    /// An empty directory the round owns (local stores, fixtures).
    pub work_dir: PathBuf,
    /// A directory shared by the rounds of one scenario, for fixtures that the first round
    /// creates and the next ones reuse.
    pub scenario_dir: PathBuf,
    /// Which round this is; ids include it so rounds never collide on the server.
    pub round: u32,
    /// Seeds payload generation, so every round of every run moves the same bytes.
    pub seed: u64,
    /// The client's bandwidth limit in bytes per second, applied by the transfer manager of
    /// every workload that drives one (`blobs.upload`, `blobs.download`, `blobs.sync`, and
    /// `incoming.process`, whose incoming box downloads through it) to uploads and to
    /// downloads alike; `None` is unlimited. The driver takes it from
    /// [`CLIENT_BANDWIDTH_ENV`], so a build's environment can give a branch comparison a
    /// known, real difference. Fixtures are set up without it.
    pub client_bandwidth: Option<u64>,
}

/// The variable the driver reads [`Context::client_bandwidth`] from.
pub const CLIENT_BANDWIDTH_ENV: &str = "SOLEDAD_BENCH_CLIENT_BANDWIDTH";

/// [`Context::client_bandwidth`] from [`CLIENT_BANDWIDTH_ENV`]: absent or empty is
/// unlimited, anything but a positive number of bytes per second is an error.
pub fn client_bandwidth_from_env() -> Result<Option<u64>, WorkloadError> {
    parse_client_bandwidth(std::env::var_os(CLIENT_BANDWIDTH_ENV).as_deref())
}

fn parse_client_bandwidth(value: Option<&std::ffi::OsStr>) -> Result<Option<u64>, WorkloadError> {
    let Some(value) = value else { return Ok(None) };
    let text = value.to_string_lossy();
    if text.trim().is_empty() {
        return Ok(None);
    }
    match text.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(WorkloadError::Invalid(format!(
            "{CLIENT_BANDWIDTH_ENV}={text:?}: expected a positive number of bytes per second, such as 2000000"
        ))),
    }
}

impl Context {
    fn target(&self) -> Result<&Target, WorkloadError> {
        self.target.as_ref().ok_or(WorkloadError::NoServer)
    }

    fn services(&self) -> Result<&Services, WorkloadError> {
        self.target()?.services.as_ref().ok_or(WorkloadError::NoServices)
    }

    /// Puts the client's bandwidth limit on a measured manager.
    fn limit(&self, manager: &blobs_client::BlobManager) {
        manager.set_limits(self.client_bandwidth, self.client_bandwidth);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error(transparent)]
    Client(#[from] blobs_client::ClientError),
    #[error(transparent)]
    Store(#[from] blobs_client::StoreError),
    #[error(transparent)]
    Format(#[from] blobs_crypto::FormatError),
    #[error(transparent)]
    Backend(#[from] blobs_server::fs::backend::StorageError),
    #[error("{failed} of {total} transfers failed; first: {first}")]
    Transfers { failed: usize, total: usize, first: String },
    #[error("this workload needs a server, and none was given")]
    NoServer,
    #[error("this workload delivers through the server's services listener, and none was given")]
    NoServices,
    #[error("delivering mail {id} to the incoming box: {problem}")]
    Delivery { id: String, problem: String },
    #[error("{0}")]
    Invalid(String),
}

/// What a workload's measured part did; [`Prepared::run`] adds the timing.
#[derive(Debug, Default)]
pub(crate) struct Work {
    pub bytes: u64,
    pub ops: u64,
    pub errors: u64,
    pub latencies: Option<Latencies>,
    /// What the workload still holds, dropped only after the clock stops.
    pub leftovers: Leftovers,
}

impl Work {
    /// Operations that all succeeded, moving `bytes` in all, each with its latency.
    fn timed(bytes: u64, times: Vec<Duration>) -> Self {
        let mut latencies = Latencies::new();
        times.iter().for_each(|t| latencies.record(*t));
        Self {
            bytes,
            ops: times.len() as u64,
            errors: 0,
            latencies: Some(latencies),
            leftovers: Leftovers::default(),
        }
    }
}

/// A workload ready to run: its measured part, not started (a future does nothing until it
/// is polled).
pub struct Prepared(BoxFuture<'static, Result<Work, WorkloadError>>);

impl Prepared {
    pub(crate) fn new(measured: impl Future<Output = Result<Work, WorkloadError>> + Send + 'static) -> Self {
        Self(Box::pin(measured))
    }
}

/// Sets up a workload; nothing here is measured.
pub async fn prepare(params: &Params, ctx: &Context) -> Result<Prepared, WorkloadError> {
    // A process's first cipher loads OpenSSL's default provider: 8.3 million instructions
    // under Valgrind, as many as encrypting 3 MB. A client pays it once in its life, so no
    // round should pay it in its measured part.
    blobs_crypto::v1::load_cipher();
    (params.workload.spec().prepare)(params, ctx).await
}

/// Total busy time of the current runtime's workers.
fn runtime_busy() -> (u32, Duration) {
    let m = tokio::runtime::Handle::current().metrics();
    let workers = m.num_workers();
    (
        workers as u32,
        (0..workers).map(|w| m.worker_total_busy_duration(w)).sum(),
    )
}

/// What a finished round still holds, dropped after the clock stops: the S3 scenarios'
/// storage client and Garage cluster (stopping a cluster takes seconds), and the client of
/// every workload that talks to the server, with its local store and its connections
/// (since their version 2: closing the store checkpoints its write-ahead log, which is not
/// what a user waits for, and the server's side of closing the connections is not the
/// round's work). The driver releases it only after the harness has read the round's
/// counters, and off the runtime's workers.
#[derive(Default)]
pub struct Leftovers(Option<Box<dyn Send>>);

impl std::fmt::Debug for Leftovers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Leftovers(..)"
        } else {
            "Leftovers(none)"
        })
    }
}

impl Leftovers {
    pub(crate) fn new(held: impl Send + 'static) -> Self {
        Self(Some(Box::new(held)))
    }

    pub async fn release(self) {
        if let Some(held) = self.0 {
            let _ = tokio::task::spawn_blocking(move || drop(held)).await;
        }
    }
}

impl Prepared {
    /// Runs the measured part, timing it and watching the runtime meanwhile.
    pub async fn run(self, measure: Measure) -> Result<(Outcome, Leftovers), WorkloadError> {
        let probe = (measure == Measure::Timed).then(|| LagProbe::start(LAG_PROBE_INTERVAL));
        let (workers, busy_before) = runtime_busy();
        let start = Instant::now();
        let work = self.0.await;
        let wall_s = start.elapsed().as_secs_f64();
        let (_, busy_after) = runtime_busy();
        let loop_lag = match probe {
            Some(probe) => probe.stop().await,
            None => LagSummary::default(),
        };
        let work = work?;
        let outcome = Outcome {
            wall_s,
            bytes: work.bytes,
            ops: work.ops,
            errors: work.errors,
            latency: work
                .latencies
                .filter(|l| !l.is_empty() && measure == Measure::Timed)
                .map(|l| l.encode()),
            loop_lag,
            runtime_workers: workers,
            // The probe itself keeps a worker busy for microseconds per tick: negligible.
            runtime_busy_s: busy_after.saturating_sub(busy_before).as_secs_f64(),
        };
        Ok((outcome, work.leftovers))
    }
}

/// The BlobManager every workload measures: a fresh SQLCipher store in the work directory,
/// limited to the client's bandwidth.
fn manager(ctx: &Context, store_file: &str, concurrency: u32) -> Result<blobs_client::BlobManager, WorkloadError> {
    manager_at(ctx, &ctx.work_dir.join(store_file), concurrency)
}

fn manager_at(
    ctx: &Context,
    store: &std::path::Path,
    concurrency: u32,
) -> Result<blobs_client::BlobManager, WorkloadError> {
    use std::sync::Arc;
    let store = Arc::new(blobs_client::SqlcipherStore::open(store, &payload::store_key())?);
    let manager = blobs_client::BlobManager::new(store, remote(ctx)?, payload::secret(), concurrency as usize);
    ctx.limit(&manager);
    Ok(manager)
}

fn remote(ctx: &Context) -> Result<blobs_client::Remote, WorkloadError> {
    let t = ctx.target()?;
    Ok(blobs_client::Remote::new(
        &t.server,
        &blobs_client::Credentials {
            user: t.user.clone(),
            token: t.token.clone(),
        },
    )?)
}

/// A namespace on the server holding the workload's blobs. The first round of a scenario
/// uploads them (unmeasured); the next rounds find the namespace in a marker file in the
/// scenario directory and reuse it, since the server keeps its data for the whole scenario.
async fn seeded_namespace(params: &Params, ctx: &Context, tag: &str) -> Result<String, WorkloadError> {
    let marker = ctx.scenario_dir.join(format!("seeded-{tag}"));
    if let Ok(namespace) = std::fs::read_to_string(&marker) {
        return Ok(namespace.trim().to_owned());
    }
    let namespace = format!("{tag}{}", payload::nonce());
    seed_server(params, ctx, &namespace, "b").await?;
    std::fs::write(&marker, &namespace)
        .map_err(|e| WorkloadError::Invalid(format!("cannot write {}: {e}", marker.display())))?;
    Ok(namespace)
}

/// Uploads the workload's blobs into `namespace` through a separate BlobManager (not
/// measured), so that a measured client finds them on the server.
async fn seed_server(params: &Params, ctx: &Context, namespace: &str, id_prefix: &str) -> Result<(), WorkloadError> {
    use futures::{StreamExt, TryStreamExt};
    const SEED_CONCURRENCY: usize = 8;
    let seeder = manager(ctx, "seed.db", SEED_CONCURRENCY as u32)?;
    // Fixtures are not measured: no limit.
    seeder.set_limits(None, None);
    futures::stream::iter(0..params.count as u64)
        .map(|i| {
            let seeder = &seeder;
            async move {
                let data = payload::generate(ctx.seed, i, params.blob_size(ctx.seed, i));
                seeder.put(namespace, &format!("{id_prefix}{i}"), data).await
            }
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    Ok(())
}

/// The blobs of a workload: `(id, plaintext)` in index order.
fn blobs(params: &Params, ctx: &Context, id_prefix: &str) -> Vec<(String, Vec<u8>)> {
    (0..params.count as u64)
        .map(|i| {
            (
                format!("{id_prefix}{i}"),
                payload::generate(ctx.seed, i, params.blob_size(ctx.seed, i)),
            )
        })
        .collect()
}

/// Turns a sync report with failures into an error: a benchmark of a partly failed sync
/// would time the wrong thing.
fn all_transferred(report: &blobs_client::SyncReport, expected: usize) -> Result<(), WorkloadError> {
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
            first: format!("{} blobs were transferred", report.transferred),
        });
    }
    Ok(())
}

/// Latencies of a sync pass's transfers.
fn transfer_latencies(report: &blobs_client::SyncReport) -> Latencies {
    let mut l = Latencies::new();
    for t in &report.transfer_times {
        l.record(*t);
    }
    l
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn client_bandwidth_is_a_positive_byte_rate_or_absent() {
        assert_eq!(parse_client_bandwidth(None).unwrap(), None);
        assert_eq!(parse_client_bandwidth(Some(OsStr::new(""))).unwrap(), None);
        assert_eq!(
            parse_client_bandwidth(Some(OsStr::new("2000000"))).unwrap(),
            Some(2_000_000)
        );
        for bad in ["0", "-5", "2M", "fast"] {
            let err = parse_client_bandwidth(Some(OsStr::new(bad))).unwrap_err().to_string();
            assert!(err.contains(CLIENT_BANDWIDTH_ENV) && err.contains(bad), "{err}");
        }
    }
}
