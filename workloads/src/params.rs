//! A workload's parameters, the scenario id they produce and the definition hash that breaks
//! a series when they change.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::payload::MAIL;

/// The workloads this version can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    #[serde(rename = "crypto.encrypt")]
    CryptoEncrypt,
    #[serde(rename = "crypto.decrypt")]
    CryptoDecrypt,
    #[serde(rename = "blobs.upload")]
    BlobsUpload,
    #[serde(rename = "blobs.download")]
    BlobsDownload,
    #[serde(rename = "blobs.sync")]
    BlobsSync,
    #[serde(rename = "blobs.list")]
    BlobsList,
    #[serde(rename = "store.put")]
    StorePut,
    #[serde(rename = "store.get")]
    StoreGet,
    #[serde(rename = "server.backend")]
    ServerBackend,
    #[serde(rename = "server.load")]
    ServerLoad,
    #[serde(rename = "incoming.deliver")]
    IncomingDeliver,
    #[serde(rename = "incoming.process")]
    IncomingProcess,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 12] = [
        WorkloadKind::CryptoEncrypt,
        WorkloadKind::CryptoDecrypt,
        WorkloadKind::BlobsUpload,
        WorkloadKind::BlobsDownload,
        WorkloadKind::BlobsSync,
        WorkloadKind::BlobsList,
        WorkloadKind::StorePut,
        WorkloadKind::StoreGet,
        WorkloadKind::ServerBackend,
        WorkloadKind::ServerLoad,
        WorkloadKind::IncomingDeliver,
        WorkloadKind::IncomingProcess,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::CryptoEncrypt => "crypto.encrypt",
            WorkloadKind::CryptoDecrypt => "crypto.decrypt",
            WorkloadKind::BlobsUpload => "blobs.upload",
            WorkloadKind::BlobsDownload => "blobs.download",
            WorkloadKind::BlobsSync => "blobs.sync",
            WorkloadKind::BlobsList => "blobs.list",
            WorkloadKind::StorePut => "store.put",
            WorkloadKind::StoreGet => "store.get",
            WorkloadKind::ServerBackend => "server.backend",
            WorkloadKind::ServerLoad => "server.load",
            WorkloadKind::IncomingDeliver => "incoming.deliver",
            WorkloadKind::IncomingProcess => "incoming.process",
        }
    }

    /// Bumped whenever what the workload does changes, so old and new numbers never share a
    /// series.
    pub fn version(self) -> u32 {
        1
    }

    /// Whether the harness must start a `blobs-server` for it. The others run entirely in the
    /// client driver (crypto, local stores, and the server's storage backend driven directly).
    pub fn needs_server(self) -> bool {
        !matches!(
            self,
            WorkloadKind::CryptoEncrypt
                | WorkloadKind::CryptoDecrypt
                | WorkloadKind::StorePut
                | WorkloadKind::StoreGet
                | WorkloadKind::ServerBackend
        )
    }

    /// Whether it needs the server's services listener (where the MX delivers), which only
    /// a server the harness starts offers.
    pub fn needs_services(self) -> bool {
        matches!(self, WorkloadKind::IncomingDeliver | WorkloadKind::IncomingProcess)
    }

    /// The metric that decides when a scenario has been measured precisely enough.
    pub fn headline_metric(self) -> &'static str {
        match self {
            WorkloadKind::ServerLoad => "ops_s",
            WorkloadKind::BlobsSync => "sync_s",
            _ => "wall_s",
        }
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Bytes per blob: a fixed size, or the mail-size distribution (see `payload.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Fixed(u64),
    Named(NamedSize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamedSize {
    /// Sizes drawn from a log-normal fit of a week of a provider's mail.
    Mail,
}

impl Size {
    pub fn label(self) -> String {
        match self {
            Size::Fixed(bytes) => format_size(bytes),
            Size::Named(NamedSize::Mail) => "mail".into(),
        }
    }
}

/// Blob format of crypto workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobFormat {
    /// Soledad's format: one AES-256-GCM message with a 16-byte IV.
    V1,
    /// Chunked, padded, resumable AES-256-GCM (`blobs/crypto/FORMAT.md`); what the client
    /// writes by default.
    V2,
}

/// Local store of store workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// One SQLCipher database (the client's default).
    Sqlcipher,
    /// Sealed files and a journal in a directory.
    Fs,
}

/// Server storage backend of `server.backend` and `server.load`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerBackendKind {
    Fs,
    /// A 3-node Garage cluster and etcd on loopback (see `docs/scaling.md`).
    S3,
}

/// What a `blobs.sync` moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncDirection {
    /// Blobs created locally go to the server.
    Up,
    /// Blobs on the server come to an empty device.
    Down,
    /// Both sides already agree: the cost of a sync that finds nothing to do.
    None,
}

/// Operation of `server.backend` and `server.load`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Write,
    Read,
    Upload,
    Download,
}

macro_rules! lowercase_name {
    ($($t:ty),*) => {$(
        impl $t {
            pub fn name(self) -> String {
                serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
            }
        }
    )*};
}
lowercase_name!(BlobFormat, StoreBackend, ServerBackendKind, SyncDirection, Op);

/// One concrete scenario of a workload. Options that a workload does not use are `None` and
/// are left out of the serialized form, so adding an option never changes existing hashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Params {
    pub workload: WorkloadKind,
    /// Number of blobs (0 for `server.load`, which runs for a duration instead).
    pub count: u32,
    /// Plaintext bytes per blob.
    pub size: Size,
    /// Transfers in flight at once; concurrent clients for `server.load`.
    pub concurrency: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<BlobFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreBackend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<ServerBackendKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<SyncDirection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<Op>,
    /// Seconds each round of `server.load` lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<u32>,
}

impl Params {
    /// Parameters with no options set.
    pub fn new(workload: WorkloadKind, count: u32, size: Size, concurrency: u32) -> Self {
        Self {
            workload,
            count,
            size,
            concurrency,
            format: None,
            store: None,
            backend: None,
            direction: None,
            op: None,
            duration_s: None,
        }
    }

    /// The stable scenario id, in Soledad's naming: the workload, its options, `COUNTxSIZE`
    /// and `cCONCURRENCY`, such as `blobs.upload/10x100k/c1` or `server.load/upload/10k/c25`.
    pub fn scenario_id(&self) -> String {
        let mut parts = vec![self.workload.name().to_owned()];
        let options = [
            self.op.map(Op::name),
            self.direction.map(SyncDirection::name),
            self.format.map(BlobFormat::name),
            self.store.map(StoreBackend::name),
            self.backend.map(ServerBackendKind::name),
        ];
        parts.extend(options.into_iter().flatten());
        if self.workload == WorkloadKind::ServerLoad {
            parts.push(self.size.label());
        } else {
            parts.push(format!("{}x{}", self.count, self.size.label()));
        }
        if !matches!(
            self.workload,
            WorkloadKind::CryptoEncrypt
                | WorkloadKind::CryptoDecrypt
                | WorkloadKind::StorePut
                | WorkloadKind::StoreGet
                | WorkloadKind::IncomingProcess
        ) {
            parts.push(format!("c{}", self.concurrency));
        }
        parts.join("/")
    }

    /// Hash of everything that defines what is measured, including the workload's version.
    pub fn definition_hash(&self) -> String {
        let mut canonical = serde_json::to_value(self).expect("params serialize");
        canonical["version"] = self.workload.version().into();
        // serde_json's map is sorted, so the text is canonical.
        hex::encode(&Sha256::digest(canonical.to_string().as_bytes())[..8])
    }

    /// Size of blob `index`.
    pub fn blob_size(&self, seed: u64, index: u64) -> u64 {
        match self.size {
            Size::Fixed(bytes) => bytes,
            Size::Named(NamedSize::Mail) => MAIL.size(seed, index),
        }
    }

    /// Plaintext bytes the workload's blobs hold.
    pub fn total_bytes(&self, seed: u64) -> u64 {
        (0..self.count as u64).map(|i| self.blob_size(seed, i)).sum()
    }

    /// One sentence for readers of the site: what is measured.
    pub fn describe(&self) -> String {
        let blobs = if self.count == 1 {
            "1 blob".to_owned()
        } else {
            format!("{} blobs", self.count)
        };
        let each = match self.size {
            Size::Fixed(bytes) => format!("{} bytes", group_thousands(bytes)),
            Size::Named(NamedSize::Mail) => "mail-like sizes".to_owned(),
        };
        let of = format!("{blobs} of {each}");
        let at_once = if self.concurrency == 1 {
            "one at a time".to_owned()
        } else {
            format!("{} at a time", self.concurrency)
        };
        let format = self.format.map(|f| f.name()).unwrap_or_default();
        let store = self.store.map(|s| s.name()).unwrap_or_default();
        let backend = self.backend.map(|b| b.name()).unwrap_or_default();
        let duration = self.duration_s.unwrap_or(0);
        match self.workload {
            WorkloadKind::CryptoEncrypt => format!("Encryption of {of} in blob format {format}, on one core."),
            WorkloadKind::CryptoDecrypt => {
                format!("Verification and decryption of {of} in blob format {format}, on one core.")
            }
            WorkloadKind::BlobsUpload => {
                format!("A client stores, encrypts and uploads {of} through the BlobManager, {at_once}.")
            }
            WorkloadKind::BlobsDownload => format!(
                "A client with an empty local store lists, downloads, verifies, decrypts and stores {of}, {at_once}."
            ),
            WorkloadKind::BlobsSync => match self.direction {
                Some(SyncDirection::Up) => format!("A full sync that uploads {of} created locally, {at_once}."),
                Some(SyncDirection::Down) => format!("A full sync of a new device that downloads {of}, {at_once}."),
                _ => format!("A full sync of two devices that already share {of}: the cost of finding nothing to do."),
            },
            WorkloadKind::BlobsList => format!("Listing a namespace of {blobs}, {LISTS_PER_ROUND} times, {at_once}."),
            WorkloadKind::StorePut => format!("Storing {of} in the {store} local store."),
            WorkloadKind::StoreGet => format!("Reading {of} back from the {store} local store."),
            WorkloadKind::ServerBackend => match self.op {
                Some(Op::Read) => format!("The server's {backend} storage backend alone reads {of}, {at_once}."),
                _ => format!("The server's {backend} storage backend alone durably writes {of}, {at_once}."),
            },
            WorkloadKind::IncomingDeliver => format!(
                "The MX delivers {of} into a user's incoming box through the server's services listener, {at_once}."
            ),
            WorkloadKind::IncomingProcess => format!(
                "A client's incoming box processes {n} delivered mails of {each}, one after another: reserve, download, save into the local store, mark processed, delete.",
                n = self.count
            ),
            WorkloadKind::ServerLoad => {
                let op = if self.op == Some(Op::Download) {
                    "download"
                } else {
                    "upload"
                };
                let on = if self.backend == Some(ServerBackendKind::S3) {
                    " to a server on the S3 backend (3 Garage nodes and etcd on the same machine)"
                } else {
                    ""
                };
                format!(
                    "{} clients each {op} blobs of {each}{on} back to back for {duration} s; latencies are corrected for coordinated omission.",
                    self.concurrency
                )
            }
        }
    }
}

/// `blobs.list` lists its namespace this many times per round.
pub const LISTS_PER_ROUND: u32 = 100;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid size {0:?}: expected a number of bytes with an optional unit (k, M, G = 1000^n; KiB, MiB, GiB = 1024^n), or \"mail\""
)]
pub struct ParseSizeError(pub String);

/// Parses `100k`, `1M`, `4KiB`, `512` or `mail`. As in Soledad's scenario names, `k` is 1000
/// bytes.
pub fn parse_size(text: &str) -> Result<Size, ParseSizeError> {
    let t = text.trim();
    if t == "mail" {
        return Ok(Size::Named(NamedSize::Mail));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| ParseSizeError(text.to_owned()))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "k" | "K" | "kB" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(ParseSizeError(text.to_owned())),
    };
    n.checked_mul(mult)
        .map(Size::Fixed)
        .ok_or_else(|| ParseSizeError(text.to_owned()))
}

/// The short label used in scenario ids: `10k`, `1M`, `1536`.
pub fn format_size(bytes: u64) -> String {
    match bytes {
        0 => "0".into(),
        b if b.is_multiple_of(1_000_000_000) => format!("{}G", b / 1_000_000_000),
        b if b.is_multiple_of(1_000_000) => format!("{}M", b / 1_000_000),
        b if b.is_multiple_of(1_000) => format!("{}k", b / 1_000),
        b => b.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_format() {
        assert_eq!(parse_size("100k"), Ok(Size::Fixed(100_000)));
        assert_eq!(parse_size("1M"), Ok(Size::Fixed(1_000_000)));
        assert_eq!(parse_size("4KiB"), Ok(Size::Fixed(4096)));
        assert_eq!(parse_size("512"), Ok(Size::Fixed(512)));
        assert_eq!(parse_size("mail"), Ok(Size::Named(NamedSize::Mail)));
        assert!(parse_size("10x").is_err());
        assert!(parse_size("k").is_err());
        assert!(parse_size("99999999999999G").is_err());
        assert_eq!(format_size(100_000), "100k");
        assert_eq!(format_size(10_000_000), "10M");
        assert_eq!(format_size(4096), "4096");
    }

    #[test]
    fn ids_and_hashes_are_stable() {
        let p = Params::new(WorkloadKind::BlobsUpload, 10, Size::Fixed(100_000), 1);
        assert_eq!(p.scenario_id(), "blobs.upload/10x100k/c1");
        // The walking skeleton's hash of this scenario: existing series must not break.
        assert_eq!(p.definition_hash(), "0a239c4659efbfde");
        let q = Params {
            concurrency: 10,
            ..p.clone()
        };
        assert_ne!(p.definition_hash(), q.definition_hash());
        assert_eq!(
            p.describe(),
            "A client stores, encrypts and uploads 10 blobs of 100,000 bytes through the BlobManager, one at a time."
        );
        let load = Params {
            op: Some(Op::Upload),
            duration_s: Some(10),
            ..Params::new(WorkloadKind::ServerLoad, 0, Size::Fixed(10_000), 25)
        };
        assert_eq!(load.scenario_id(), "server.load/upload/10k/c25");
        let crypto = Params {
            format: Some(BlobFormat::V1),
            ..Params::new(WorkloadKind::CryptoEncrypt, 1, Size::Fixed(10_000_000), 1)
        };
        assert_eq!(crypto.scenario_id(), "crypto.encrypt/v1/1x10M");
        let sync = Params {
            direction: Some(SyncDirection::None),
            ..Params::new(WorkloadKind::BlobsSync, 100, Size::Named(NamedSize::Mail), 3)
        };
        assert_eq!(sync.scenario_id(), "blobs.sync/none/100xmail/c3");
        let backend = Params {
            op: Some(Op::Write),
            backend: Some(ServerBackendKind::Fs),
            ..Params::new(WorkloadKind::ServerBackend, 1000, Size::Fixed(10_000), 10)
        };
        assert_eq!(backend.scenario_id(), "server.backend/write/fs/1000x10k/c10");
        let deliver = Params::new(WorkloadKind::IncomingDeliver, 100, Size::Named(NamedSize::Mail), 4);
        assert_eq!(deliver.scenario_id(), "incoming.deliver/100xmail/c4");
        // The incoming box takes one item at a time: no concurrency in its id.
        let process = Params::new(WorkloadKind::IncomingProcess, 100, Size::Fixed(100_000), 1);
        assert_eq!(process.scenario_id(), "incoming.process/100x100k");
    }
}
