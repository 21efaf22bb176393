//! A workload's contract with the harness, declared once in the workload's own file: its
//! name and version, what it needs, which scenario keys it takes, which metrics it reports
//! beyond the common ones, how it reads to a visitor of the site, and how it is prepared.
//! `lib.rs` registers every workload with one line; nothing else names a workload.

use futures::future::LocalBoxFuture;

use crate::{Context, NamedSize, Op, Params, Prepared, Size, WorkloadError};

/// Whether a workload takes a scenario key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Required,
    /// Taken, with a default when absent.
    Optional,
    /// Not taken: naming it in a scenario file is an error.
    No,
}

/// The scenario keys a workload takes. `payloads` (`COUNTxSIZE`) is taken unless `sizes` is.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// `sizes` instead of `payloads`: the workload runs for a duration, not over N blobs, and
    /// its scenario id names only the size.
    pub sizes: Key,
    /// Also whether the scenario id names the concurrency (`c10`).
    pub concurrency: Key,
    pub formats: Key,
    pub stores: Key,
    pub backends: Key,
    pub directions: Key,
    pub ops: Key,
    pub duration_s: Key,
    pub allowed_ops: &'static [Op],
    /// The fs backend is left out of the scenario id: the workload ran on fs only before it
    /// took a backend, and its series keep their ids.
    pub implicit_fs_backend: bool,
}

impl Shape {
    /// Blobs over `payloads`, `concurrency` at a time, and no other key.
    pub const BASE: Shape = Shape {
        sizes: Key::No,
        concurrency: Key::Required,
        formats: Key::No,
        stores: Key::No,
        backends: Key::No,
        directions: Key::No,
        ops: Key::No,
        duration_s: Key::No,
        allowed_ops: &[],
        implicit_fs_backend: false,
    };
}

/// A metric a workload reports beyond the common ones (wall time, operations per second,
/// latency percentiles when it has latencies, the driver's loop lag and busy time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    /// `throughput_mib_s`: plaintext MiB moved per second.
    Throughput,
    /// `sync_s`: the wall time under the name the sync series had in Soledad.
    SyncTime,
    /// `error_count`: failed operations (load keeps going when one fails).
    Errors,
}

impl Extra {
    /// The metric's name in the catalogue.
    pub fn metric(self) -> &'static str {
        match self {
            Extra::Throughput => "throughput_mib_s",
            Extra::SyncTime => "sync_s",
            Extra::Errors => "error_count",
        }
    }
}

/// Prepares a workload's measured part; nothing here is measured. Not `Send`: the driver
/// prepares on its own thread, and some preparations borrow across their awaits in ways the
/// compiler cannot prove `Send` for.
pub type Prepare = for<'a> fn(&'a Params, &'a Context) -> LocalBoxFuture<'a, Result<Prepared, WorkloadError>>;

/// Everything the harness and the site learn of one workload.
pub struct Spec {
    /// Such as `blobs.upload`: the first part of its scenario ids.
    pub name: &'static str,
    /// Bumped whenever what the workload does changes, so old and new numbers never share a
    /// series.
    pub version: u32,
    /// Whether the harness must start a `blobs-server` for it. The others run entirely in the
    /// client driver (crypto, local stores, the server's storage backend driven directly).
    pub needs_server: bool,
    /// Whether it needs the server's services listener (where the MX delivers), which only a
    /// server the harness starts offers.
    pub needs_services: bool,
    /// The metric that decides when a scenario has been measured precisely enough.
    pub headline_metric: &'static str,
    pub shape: Shape,
    pub extras: &'static [Extra],
    /// One sentence for readers of the site: what is measured.
    pub describe: fn(&Params, &Words) -> String,
    pub prepare: Prepare,
}

impl Spec {
    /// Whether a round does the same work however long it takes: a workload that runs for a
    /// duration (`server.load`) does more work on a faster machine, so counting its
    /// instructions says nothing about the code.
    pub fn fixed_work(&self) -> bool {
        self.shape.duration_s == Key::No
    }
}

/// The phrases descriptions share, built from a scenario's parameters.
pub struct Words {
    /// `1 blob`, `10 blobs`.
    pub blobs: String,
    /// `100,000 bytes` or `mail-like sizes`.
    pub each: String,
    /// `10 blobs of 100,000 bytes`.
    pub of: String,
    /// `one at a time`, `4 at a time`.
    pub at_once: String,
    pub format: String,
    pub store: String,
    pub backend: String,
    pub duration_s: u32,
}

impl Words {
    pub(crate) fn of(params: &Params) -> Self {
        let blobs = if params.count == 1 {
            "1 blob".to_owned()
        } else {
            format!("{} blobs", params.count)
        };
        let each = match params.size {
            Size::Fixed(bytes) => format!("{} bytes", group_thousands(bytes)),
            Size::Named(NamedSize::Mail) => "mail-like sizes".to_owned(),
        };
        Self {
            of: format!("{blobs} of {each}"),
            blobs,
            each,
            at_once: if params.concurrency == 1 {
                "one at a time".to_owned()
            } else {
                format!("{} at a time", params.concurrency)
            },
            format: params.format.map(|f| f.name()).unwrap_or_default(),
            store: params.store.map(|s| s.name()).unwrap_or_default(),
            backend: params.backend.map(|b| b.name()).unwrap_or_default(),
            duration_s: params.duration_s.unwrap_or(0),
        }
    }
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
