//! A workload's parameters, the scenario id they produce and the definition hash that breaks
//! a series when they change.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::REGISTRY;
use crate::payload::MAIL;
use crate::spec::{Key, Spec, Words};

/// One of the registered workloads ([`crate::REGISTRY`]), written by its name.
#[derive(Clone, Copy)]
pub struct WorkloadKind(&'static Spec);

/// A workload name that no registered workload has.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("unknown workload `{name}`, expected one of {}", names())]
pub struct UnknownWorkload {
    pub name: String,
}

fn names() -> String {
    let names: Vec<String> = REGISTRY.iter().map(|s| format!("`{}`", s.name)).collect();
    names.join(", ")
}

impl WorkloadKind {
    /// The registered workload called `name`.
    pub fn named(name: &str) -> Result<Self, UnknownWorkload> {
        REGISTRY
            .iter()
            .find(|s| s.name == name)
            .map(|s| Self(s))
            .ok_or_else(|| UnknownWorkload { name: name.to_owned() })
    }

    /// Every registered workload.
    pub fn all() -> impl Iterator<Item = Self> {
        REGISTRY.iter().map(|s| Self(s))
    }

    /// Everything the harness and the site learn of it.
    pub fn spec(self) -> &'static Spec {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// See [`Spec::version`].
    pub fn version(self) -> u32 {
        self.0.version
    }

    /// See [`Spec::needs_server`].
    pub fn needs_server(self) -> bool {
        self.0.needs_server
    }

    /// See [`Spec::needs_services`].
    pub fn needs_services(self) -> bool {
        self.0.needs_services
    }

    /// See [`Spec::headline_metric`].
    pub fn headline_metric(self) -> &'static str {
        self.0.headline_metric
    }

    /// See [`Spec::fixed_work`].
    pub fn fixed_work(self) -> bool {
        self.0.fixed_work()
    }
}

// Equality, hashing and the serialized form go by name: a workload is its name.
impl PartialEq for WorkloadKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for WorkloadKind {}

impl std::hash::Hash for WorkloadKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state)
    }
}

impl std::fmt::Debug for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkloadKind({})", self.name())
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for WorkloadKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for WorkloadKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        WorkloadKind::named(&name).map_err(serde::de::Error::custom)
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
        let shape = self.workload.spec().shape;
        if shape.sizes != Key::No {
            parts.push(self.size.label());
        } else {
            parts.push(format!("{}x{}", self.count, self.size.label()));
        }
        if shape.concurrency != Key::No {
            parts.push(format!("c{}", self.concurrency));
        }
        parts.join("/")
    }

    /// Hash of everything that defines what is measured, including the workload's version.
    pub fn definition_hash(&self) -> String {
        self.definition_hash_at(self.workload.version())
    }

    /// The hash these parameters had at `version` of their workload: what a results file
    /// written before a version change recorded.
    pub fn definition_hash_at(&self, version: u32) -> String {
        let mut canonical = serde_json::to_value(self).expect("params serialize");
        canonical["version"] = version.into();
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
        (self.workload.spec().describe)(self, &Words::of(self))
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
    match t.parse::<bytesize::ByteSize>() {
        // bytesize saturates instead of failing on overflow; no payload is 2^64 - 1 bytes.
        Ok(b) if b.as_u64() < u64::MAX => Ok(Size::Fixed(b.as_u64())),
        _ => Err(ParseSizeError(text.to_owned())),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(name: &str) -> WorkloadKind {
        WorkloadKind::named(name).unwrap()
    }

    #[test]
    fn workloads_are_found_by_name_and_serialize_as_it() {
        let names: Vec<&str> = WorkloadKind::all().map(WorkloadKind::name).collect();
        assert_eq!(names.len(), 12);
        for name in &names {
            assert_eq!(
                names.iter().filter(|n| *n == name).count(),
                1,
                "{name} registered twice"
            );
            let json = serde_json::to_string(&kind(name)).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<WorkloadKind>(&json).unwrap(), kind(name));
        }
        let err = WorkloadKind::named("blobs.uplaod").unwrap_err().to_string();
        assert!(
            err.starts_with("unknown workload `blobs.uplaod`, expected one of `crypto.encrypt`, "),
            "{err}"
        );
    }

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
        let p = Params::new(kind("blobs.upload"), 10, Size::Fixed(100_000), 1);
        assert_eq!(p.scenario_id(), "blobs.upload/10x100k/c1");
        // The walking skeleton's hash of this scenario (version 1 of `blobs.upload`), and
        // today's: existing series must not break but by a version change.
        assert_eq!(p.definition_hash_at(1), "0a239c4659efbfde");
        assert_eq!(p.definition_hash(), "ccf96de8e947e5c7");
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
            ..Params::new(kind("server.load"), 0, Size::Fixed(10_000), 25)
        };
        assert_eq!(load.scenario_id(), "server.load/upload/10k/c25");
        let crypto = Params {
            format: Some(BlobFormat::V1),
            ..Params::new(kind("crypto.encrypt"), 1, Size::Fixed(10_000_000), 1)
        };
        assert_eq!(crypto.scenario_id(), "crypto.encrypt/v1/1x10M");
        let sync = Params {
            direction: Some(SyncDirection::None),
            ..Params::new(kind("blobs.sync"), 100, Size::Named(NamedSize::Mail), 3)
        };
        assert_eq!(sync.scenario_id(), "blobs.sync/none/100xmail/c3");
        let backend = Params {
            op: Some(Op::Write),
            backend: Some(ServerBackendKind::Fs),
            ..Params::new(kind("server.backend"), 1000, Size::Fixed(10_000), 10)
        };
        assert_eq!(backend.scenario_id(), "server.backend/write/fs/1000x10k/c10");
        let deliver = Params::new(kind("incoming.deliver"), 100, Size::Named(NamedSize::Mail), 4);
        assert_eq!(deliver.scenario_id(), "incoming.deliver/100xmail/c4");
        // The incoming box takes one item at a time: no concurrency in its id.
        let process = Params::new(kind("incoming.process"), 100, Size::Fixed(100_000), 1);
        assert_eq!(process.scenario_id(), "incoming.process/100x100k");
    }
}
