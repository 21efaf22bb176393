//! A workload's parameters, the scenario id they produce and the definition hash that breaks
//! a series when they change.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The workloads this version can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    /// `put` of N blobs through the BlobManager: local store, encryption, upload.
    #[serde(rename = "blobs.upload")]
    BlobsUpload,
    /// `fetch_missing` of N blobs into an empty local store: list, download, verify, decrypt, store.
    #[serde(rename = "blobs.download")]
    BlobsDownload,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 2] = [WorkloadKind::BlobsUpload, WorkloadKind::BlobsDownload];

    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::BlobsUpload => "blobs.upload",
            WorkloadKind::BlobsDownload => "blobs.download",
        }
    }

    /// Bumped whenever what the workload does changes, so old and new numbers never share a
    /// series.
    pub fn version(self) -> u32 {
        match self {
            WorkloadKind::BlobsUpload => 1,
            WorkloadKind::BlobsDownload => 1,
        }
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One concrete scenario of a workload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Params {
    pub workload: WorkloadKind,
    /// Number of blobs.
    pub count: u32,
    /// Plaintext bytes per blob.
    pub size: u64,
    /// Transfers in flight at once.
    pub concurrency: u32,
}

impl Params {
    /// The stable scenario id, in Soledad's naming: `blobs.upload/10x100k/c1`.
    pub fn scenario_id(&self) -> String {
        format!(
            "{}/{}x{}/c{}",
            self.workload,
            self.count,
            format_size(self.size),
            self.concurrency
        )
    }

    /// Hash of everything that defines what is measured, including the workload's version.
    pub fn definition_hash(&self) -> String {
        let canonical = serde_json::json!({
            "workload": self.workload.name(),
            "version": self.workload.version(),
            "count": self.count,
            "size": self.size,
            "concurrency": self.concurrency,
        });
        hex::encode(&Sha256::digest(canonical.to_string().as_bytes())[..8])
    }

    /// One sentence for readers of the site: what is measured.
    pub fn describe(&self) -> String {
        let blobs = if self.count == 1 {
            "1 blob".to_owned()
        } else {
            format!("{} blobs", self.count)
        };
        let each = format!("{} bytes", group_thousands(self.size));
        let at_once = if self.concurrency == 1 {
            "one at a time".to_owned()
        } else {
            format!("{} at a time", self.concurrency)
        };
        match self.workload {
            WorkloadKind::BlobsUpload => format!(
                "A client stores, encrypts and uploads {blobs} of {each} through the BlobManager, {at_once}."
            ),
            WorkloadKind::BlobsDownload => format!(
                "A client with an empty local store lists, downloads, verifies, decrypts and stores {blobs} of {each}, {at_once}."
            ),
        }
    }

    /// Plaintext bytes the workload moves.
    pub fn total_bytes(&self) -> u64 {
        self.count as u64 * self.size
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid size {0:?}: expected a number of bytes with an optional unit (k, M, G = 1000^n; KiB, MiB, GiB = 1024^n)"
)]
pub struct ParseSizeError(pub String);

/// Parses `100k`, `1M`, `4KiB`, `512`. As in Soledad's scenario names, `k` is 1000 bytes.
pub fn parse_size(text: &str) -> Result<u64, ParseSizeError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| ParseSizeError(text.to_owned()))?;
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
        assert_eq!(parse_size("100k"), Ok(100_000));
        assert_eq!(parse_size("1M"), Ok(1_000_000));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("512"), Ok(512));
        assert!(parse_size("10x").is_err());
        assert!(parse_size("k").is_err());
        assert!(parse_size("99999999999999G").is_err());
        assert_eq!(format_size(100_000), "100k");
        assert_eq!(format_size(10_000_000), "10M");
        assert_eq!(format_size(4096), "4096");
    }

    #[test]
    fn ids_and_hashes_are_stable() {
        let p = Params {
            workload: WorkloadKind::BlobsUpload,
            count: 10,
            size: 100_000,
            concurrency: 1,
        };
        assert_eq!(p.scenario_id(), "blobs.upload/10x100k/c1");
        assert_eq!(p.definition_hash(), p.clone().definition_hash());
        let q = Params {
            concurrency: 10,
            ..p.clone()
        };
        assert_ne!(p.definition_hash(), q.definition_hash());
        assert_eq!(p.definition_hash().len(), 16);
        assert_eq!(
            p.describe(),
            "A client stores, encrypts and uploads 10 blobs of 100,000 bytes through the BlobManager, one at a time."
        );
    }
}
