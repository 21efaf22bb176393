//! What a reader of the front page asks of each workload family, and how its answers read in
//! words: the headline metrics per family (time and throughput by payload size, sync time,
//! requests per second and tail latency under load, peak memory, loop lag), a scenario's
//! parameters as a phrase, and a verdict as a sentence.

use collector::query::StoredVerdict;
use collector::statistics::verdict::Verdict;

use crate::format::{percent, share};

/// A workload family on the front page.
pub struct Family {
    pub workload: &'static str,
    pub title: &'static str,
    /// One sentence: what the family measures.
    pub about: &'static str,
    /// The metrics shown for each scenario, the first of them plotted.
    pub metrics: &'static [&'static str],
}

/// The families in the order a reader meets the stack: the client's work, the local store,
/// the mail pipeline, then the server.
pub const FAMILIES: &[Family] = &[
    Family {
        workload: "blobs.upload",
        title: "Upload",
        about: "A client encrypts blobs, keeps them in its local store and uploads them through the BlobManager.",
        metrics: &[
            "wall_s",
            "throughput_mib_s",
            "client_anon_peak_mib",
            "server_anon_peak_mib",
        ],
    },
    Family {
        workload: "blobs.download",
        title: "Download",
        about: "A client with an empty local store lists, downloads, verifies, decrypts and stores blobs.",
        metrics: &[
            "wall_s",
            "throughput_mib_s",
            "client_anon_peak_mib",
            "server_anon_peak_mib",
        ],
    },
    Family {
        workload: "blobs.sync",
        title: "Sync",
        about: "A full sync of mail-sized blobs between a client and the server; loop lag says how long the client's event loop was kept from other work.",
        metrics: &["sync_s", "client_loop_lag_p99_ms", "client_anon_peak_mib"],
    },
    Family {
        workload: "blobs.list",
        title: "Listing",
        about: "Listing a namespace of blobs, one request at a time.",
        metrics: &["wall_s", "latency_p99_ms"],
    },
    Family {
        workload: "incoming.deliver",
        title: "Mail delivery",
        about: "The MX delivers messages into users' incoming boxes.",
        metrics: &["wall_s", "throughput_mib_s", "server_anon_peak_mib"],
    },
    Family {
        workload: "incoming.process",
        title: "Mail processing",
        about: "The client's side of the mail pipeline: list pending mail, download, decrypt, store, delete from the incoming box.",
        metrics: &["wall_s", "throughput_mib_s", "client_anon_peak_mib"],
    },
    Family {
        workload: "crypto.encrypt",
        title: "Encryption",
        about: "Encrypting blobs in memory on one core, in each blob format.",
        metrics: &["throughput_mib_s", "client_anon_peak_mib"],
    },
    Family {
        workload: "crypto.decrypt",
        title: "Decryption",
        about: "Verifying and decrypting blobs in memory on one core, in each blob format.",
        metrics: &["throughput_mib_s", "client_anon_peak_mib"],
    },
    Family {
        workload: "store.put",
        title: "Local store: writing",
        about: "Storing blobs in the client's encrypted local store.",
        metrics: &["throughput_mib_s", "client_anon_peak_mib"],
    },
    Family {
        workload: "store.get",
        title: "Local store: reading",
        about: "Reading blobs back from the client's encrypted local store.",
        metrics: &["throughput_mib_s", "client_anon_peak_mib"],
    },
    Family {
        workload: "server.backend",
        title: "Server storage",
        about: "The server's storage backend alone, without HTTP in front of it.",
        metrics: &["throughput_mib_s", "server_anon_peak_mib"],
    },
    Family {
        workload: "server.load",
        title: "Server under load",
        about: "Many clients upload or download small blobs back to back for a fixed time; latencies are corrected for coordinated omission.",
        metrics: &["ops_s", "latency_p99_ms", "server_anon_peak_mib", "server_ping_p99_ms"],
    },
];

/// The family of a workload.
pub fn family(workload: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.workload == workload)
}

/// A metric as a reader names it.
pub fn metric_words(metric: &str) -> &str {
    match metric {
        "wall_s" => "time",
        "sync_s" => "sync time",
        "throughput_mib_s" => "throughput",
        "ops_s" => "requests per second",
        "latency_p99_ms" => "latency p99",
        "latency_p50_ms" => "latency p50",
        "client_anon_peak_mib" => "client memory (peak)",
        "server_anon_peak_mib" => "server memory (peak)",
        "client_loop_lag_p99_ms" => "client loop lag p99",
        "server_ping_p99_ms" => "server responsiveness p99",
        other => other,
    }
}

/// A scenario's id without its workload, as a phrase: `blobs.upload/10x1M/c4` reads
/// `10 × 1M, 4 at a time`.
pub fn scenario_words(scenario_id: &str) -> String {
    let mut parts = scenario_id.split('/');
    parts.next();
    let words: Vec<String> = parts
        .map(|part| {
            if let Some(c) = part.strip_prefix('c').filter(|c| c.parse::<u32>().is_ok()) {
                if c == "1" {
                    "one at a time".into()
                } else {
                    format!("{c} at a time")
                }
            } else if let Some((count, size)) = part.split_once('x').filter(|(n, _)| n.parse::<u64>().is_ok()) {
                format!("{count} × {size}")
            } else {
                part.to_owned()
            }
        })
        .collect();
    if words.is_empty() {
        scenario_id.to_owned()
    } else {
        words.join(", ")
    }
}

/// A key that orders scenario ids as a reader counts: the numbers in them by value, so that
/// `1x10M` comes before `10x1M` and `1000x10k`, and `c4` before `c25`.
pub fn natural_key(id: &str) -> Vec<(String, u64)> {
    let mut key = Vec::new();
    let mut text = String::new();
    let mut chars = id.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(d) = c.to_digit(10) {
            let mut n = u64::from(d);
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = n.saturating_mul(10).saturating_add(u64::from(d));
                chars.next();
            }
            key.push((std::mem::take(&mut text), n));
        } else {
            text.push(c);
        }
    }
    key.push((text, 0));
    key
}

/// A verdict in a few words: how much better or worse, for the reader. `mde` is the smallest
/// change the latest point's noise lets the test find; the front page explains "no clear
/// change" once, and each number says only its MDE.
pub fn verdict_words(verdict: Option<&StoredVerdict>, mde: Option<f64>) -> String {
    let Some(v) = verdict else {
        return "first result".into();
    };
    let size = v
        .relative_change
        .map(|c| format!("{} ", percent(c).trim_start_matches(['+', '−', '±'])))
        .unwrap_or_default();
    match v.verdict {
        Verdict::Regression => format!("{size}worse"),
        Verdict::Improvement => format!("{size}better"),
        Verdict::Unchanged => "unchanged".into(),
        Verdict::Noisy => match mde {
            Some(m) if m.is_finite() => format!("no clear change (MDE {})", share(m)),
            _ => "no clear change".into(),
        },
        Verdict::New => "first result".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_ids_read_as_phrases() {
        assert_eq!(scenario_words("blobs.upload/10x1M/c4"), "10 × 1M, 4 at a time");
        assert_eq!(
            scenario_words("blobs.sync/up/100xmail/c3"),
            "up, 100 × mail, 3 at a time"
        );
        assert_eq!(
            scenario_words("server.load/upload/10k/c25"),
            "upload, 10k, 25 at a time"
        );
        assert_eq!(scenario_words("crypto.encrypt/v1/1x10M"), "v1, 1 × 10M");
        assert_eq!(scenario_words("incoming.process/100x100k"), "100 × 100k");
        assert_eq!(scenario_words("bare"), "bare");
        // A part that only looks like a concurrency or a payload stays as it is.
        assert_eq!(scenario_words("w/cx/axb"), "cx, axb");
    }

    #[test]
    fn payloads_and_concurrency_sort_by_their_numbers() {
        let mut ids = vec![
            "blobs.upload/1000x10k/c1",
            "blobs.upload/100x100k/c4",
            "blobs.upload/1x10M/c1",
            "blobs.upload/100x100k/c1",
            "blobs.upload/10x1M/c1",
            "server.load/upload/10k/c100",
            "server.load/upload/10k/c25",
        ];
        ids.sort_by_key(|id| natural_key(id));
        assert_eq!(
            ids,
            [
                "blobs.upload/1x10M/c1",
                "blobs.upload/10x1M/c1",
                "blobs.upload/100x100k/c1",
                "blobs.upload/100x100k/c4",
                "blobs.upload/1000x10k/c1",
                "server.load/upload/10k/c25",
                "server.load/upload/10k/c100",
            ]
        );
    }

    #[test]
    fn every_family_names_catalogue_metrics() {
        for f in FAMILIES {
            for m in f.metrics {
                assert!(contract::metrics::lookup(m).is_some(), "{}: {m}", f.workload);
            }
        }
    }
}
