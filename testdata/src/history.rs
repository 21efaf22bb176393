//! A realistic synthetic history, for the site's benchmark and its browser test: the
//! scenario grid of the CI and nightly sets (crypto, uploads and downloads over Soledad's
//! 10 MB grid at two concurrencies, sync, list, local store, storage backend, and server load
//! from 25 to 200 clients), their metrics at plausible levels and noise, over a linear master
//! history with merges and unbenchmarked gaps, with regressions and improvements at known
//! commits, a one-off outlier, noisy points, an A/A calibration and a branch comparison. It
//! goes through the collector's real ingest and analysis, so verdicts and change points are
//! what the statistics make of it.

use std::time::Instant;

use collector::record::{CommitInfo, Machine, MetricRecord, Purpose, RunRecord, ScenarioRecord, Source};
use collector::statistics::paired::PairedOptions;
use collector::statistics::verdict::{Direction, Policy};
use collector::{AnalysisOptions, CalibrationRuns, CollectorError, Database};
use contract::results::{Covariates, MachineInfo, MetricSamples, RunInfo, ScenarioResult};
use contract::{Results, SCHEMA};

use crate::noise::NoiseModel;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct SyntheticOptions {
    /// Benchmarked commits on the branch.
    pub commits: usize,
    /// Series (metrics of scenarios) in all.
    pub series: usize,
    /// Samples per data point.
    pub rounds: usize,
    pub seed: u64,
    pub branch: String,
    /// Text that must be escaped: a commit subject `<script>alert(1)</script>`, an author
    /// and a scenario with markup in their names.
    pub hostile: bool,
    /// The nightly set's whole server-load grid (8 client counts, 4 sizes) instead of the CI
    /// set's four client counts at 10 kB: thousands of series more, for the all-series page.
    pub nightly: bool,
    /// Three A/A runs of the last commit, recorded as a calibration.
    pub calibration: bool,
    /// An interleaved branch comparison against the last commit.
    pub comparison: bool,
    /// These commits, oldest first, instead of a generated history (such as commits of a
    /// real repository); `commits` is then ignored.
    pub history: Option<Vec<CommitInfo>>,
}

impl Default for SyntheticOptions {
    fn default() -> Self {
        Self {
            commits: 100,
            series: 200,
            rounds: 10,
            seed: 1,
            branch: "master".into(),
            hostile: false,
            nightly: false,
            calibration: true,
            comparison: true,
            history: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticReport {
    pub runs: usize,
    pub series: usize,
    pub seconds: f64,
}

/// The commit subject the escaping tests look for.
pub const HOSTILE_SUBJECT: &str = "<script>alert(1)</script>";

/// One metric of a synthetic scenario.
#[derive(Debug, Clone)]
struct Metric {
    name: &'static str,
    unit: &'static str,
    direction: Direction,
    level: f64,
    cv: f64,
}

#[derive(Debug, Clone)]
struct Scenario {
    id: String,
    workload: &'static str,
    description: String,
    params: serde_json::Value,
    /// Headline first.
    metrics: Vec<Metric>,
}

const MIB: f64 = 1024.0 * 1024.0;
/// The mail mix's mean blob size (see `scenarios/README.md`).
const MAIL_MEAN: f64 = 159_000.0;

fn m(name: &'static str, unit: &'static str, higher: bool, level: f64, cv: f64) -> Metric {
    Metric {
        name,
        unit,
        direction: if higher { Direction::Higher } else { Direction::Lower },
        level,
        cv,
    }
}

fn size_label(bytes: u64) -> String {
    match bytes {
        b if b % 1_000_000 == 0 => format!("{}M", b / 1_000_000),
        b if b % 1000 == 0 => format!("{}k", b / 1000),
        b => b.to_string(),
    }
}

/// Metrics of a client workload that moves `bytes` in `count` operations at concurrency `c`,
/// at `mib_s` plus `per_op_s` per operation.
fn client_metrics(count: u64, bytes: f64, c: u64, mib_s: f64, per_op_s: f64, server: bool) -> Vec<Metric> {
    let wall = bytes / MIB / mib_s + count as f64 * per_op_s;
    let mut out = vec![
        m("wall_s", "s", false, wall, 0.02),
        m("throughput_mib_s", "MiB/s", true, bytes / MIB / wall, 0.02),
        m(
            "client_anon_peak_mib",
            "MiB",
            false,
            24.0 + (bytes / count as f64 / MIB).min(10.0) * 2.2,
            0.004,
        ),
        m("client_cpu_user_s", "s", false, wall * 0.7, 0.04),
        m("ops_s", "ops/s", true, count as f64 / wall, 0.02),
    ];
    if server {
        let per_op = wall / count as f64 * c as f64 * 1000.0;
        out.extend([
            m("latency_p99_ms", "ms", false, per_op * 2.4, 0.06),
            m("server_anon_peak_mib", "MiB", false, 18.0 + c as f64 * 0.6, 0.005),
            m("server_cpu_user_s", "s", false, wall * 0.45, 0.04),
            m("latency_p50_ms", "ms", false, per_op * 0.9, 0.03),
            m("server_ping_p99_ms", "ms", false, 1.1 + c as f64 * 0.12, 0.08),
            m("client_loop_lag_p99_ms", "ms", false, 0.35 + c as f64 * 0.05, 0.1),
            m("server_io_write_mib", "MiB", false, bytes / MIB * 1.02, 0.002),
        ]);
    }
    out.push(m("client_cpu_sys_s", "s", false, wall * 0.18, 0.05));
    out
}

/// The scenario grid, in the order series are taken from it.
fn scenarios(hostile: bool, nightly: bool) -> Vec<Scenario> {
    let mut out = Vec::new();
    let grid: [(u64, u64); 4] = [(1, 10_000_000), (10, 1_000_000), (100, 100_000), (1000, 10_000)];
    for (workload, verb, mib_s) in [
        ("crypto.encrypt", "Encryption", 950.0),
        ("crypto.decrypt", "Verification and decryption", 1100.0),
    ] {
        for (count, size) in [grid[0], grid[3]] {
            out.push(Scenario {
                id: format!("{workload}/v1/{count}x{}", size_label(size)),
                workload,
                description: format!("{verb} of {count} blobs of {size} bytes in blob format v1, on one core."),
                params: json!({"workload": workload, "count": count, "size": size, "concurrency": 1, "format": "v1"}),
                metrics: client_metrics(count, (count * size) as f64, 1, mib_s, 0.000_02, false),
            });
        }
    }
    for (workload, what, mib_s, per_op) in [
        ("blobs.upload", "A client stores, encrypts and uploads", 105.0, 0.0011),
        (
            "blobs.download",
            "A client with an empty local store lists, downloads, verifies, decrypts and stores",
            135.0,
            0.0009,
        ),
    ] {
        for c in [1u64, 4] {
            for (count, size) in grid {
                let speedup = (c as f64).powf(0.55);
                out.push(Scenario {
                    id: format!("{workload}/{count}x{}/c{c}", size_label(size)),
                    workload,
                    description: format!(
                        "{what} {count} blobs of {size} bytes through the BlobManager, {c} at a time."
                    ),
                    params: json!({"workload": workload, "count": count, "size": size, "concurrency": c}),
                    metrics: client_metrics(count, (count * size) as f64, c, mib_s * speedup, per_op / speedup, true),
                });
            }
        }
    }
    for direction in ["up", "down", "none"] {
        let (mib_s, per_op) = if direction == "none" {
            (4000.0, 0.000_05)
        } else {
            (90.0, 0.0012)
        };
        let mut metrics = client_metrics(100, 100.0 * MAIL_MEAN, 3, mib_s, per_op, true);
        metrics[0] = m("sync_s", "s", false, metrics[0].level, 0.025);
        out.push(Scenario {
            id: format!("blobs.sync/{direction}/100xmail/c3"),
            workload: "blobs.sync",
            description: format!("A full sync ({direction}) of 100 blobs of mail-like sizes, 3 at a time."),
            params: json!({"workload": "blobs.sync", "count": 100, "size": "mail", "concurrency": 3, "direction": direction}),
            metrics,
        });
    }
    out.push(Scenario {
        id: "blobs.list/1000x1k/c1".into(),
        workload: "blobs.list",
        description: "Listing a namespace of 1000 blobs, 100 times, one at a time.".into(),
        params: json!({"workload": "blobs.list", "count": 1000, "size": 1000, "concurrency": 1}),
        metrics: vec![
            m("wall_s", "s", false, 0.42, 0.02),
            m("ops_s", "ops/s", true, 238.0, 0.02),
            m("server_cpu_user_s", "s", false, 0.21, 0.04),
            m("latency_p99_ms", "ms", false, 7.9, 0.06),
            m("server_anon_peak_mib", "MiB", false, 21.0, 0.005),
        ],
    });
    // The mail pipeline of Soledad's legacy-vs-blobs test: the MX delivers, a client processes.
    for (count, size, mib_s, per_op) in [(1000u64, 10_000u64, 30.0, 0.004), (100, 100_000, 45.0, 0.006)] {
        out.push(Scenario {
            id: format!("incoming.deliver/{count}x{}/c4", size_label(size)),
            workload: "incoming.deliver",
            description: format!("The MX delivers {count} messages of {size} bytes to the incoming box, 4 at a time."),
            params: json!({"workload": "incoming.deliver", "count": count, "size": size, "concurrency": 4}),
            metrics: client_metrics(count, (count * size) as f64, 4, mib_s * 2.0, per_op / 3.0, true),
        });
        out.push(Scenario {
            id: format!("incoming.process/{count}x{}", size_label(size)),
            workload: "incoming.process",
            description: format!(
                "A client lists its pending mail, downloads, decrypts and stores {count} messages of {size} bytes and deletes them from the incoming box."
            ),
            params: json!({"workload": "incoming.process", "count": count, "size": size, "concurrency": 1}),
            metrics: client_metrics(count, (count * size) as f64, 1, mib_s, per_op, true),
        });
    }
    for (workload, what, mib_s) in [("store.put", "Storing", 55.0), ("store.get", "Reading back", 210.0)] {
        for (count, size) in [grid[0], grid[3]] {
            out.push(Scenario {
                id: format!("{workload}/sqlcipher/{count}x{}", size_label(size)),
                workload,
                description: format!("{what} {count} blobs of {size} bytes in the sqlcipher local store."),
                params: json!({"workload": workload, "count": count, "size": size, "concurrency": 1, "store": "sqlcipher"}),
                metrics: client_metrics(count, (count * size) as f64, 1, mib_s, 0.0004, false),
            });
        }
    }
    for (op, mib_s) in [("write", 85.0), ("read", 420.0)] {
        for (count, size) in [grid[1], grid[3]] {
            out.push(Scenario {
                id: format!("server.backend/{op}/fs/{count}x{}/c10", size_label(size)),
                workload: "server.backend",
                description: format!("The server's fs storage backend alone handles a {op} of {count} blobs of {size} bytes, 10 at a time."),
                params: json!({"workload": "server.backend", "count": count, "size": size, "concurrency": 10, "op": op, "backend": "fs"}),
                metrics: client_metrics(count, (count * size) as f64, 10, mib_s, 0.0003, false),
            });
        }
    }
    // The nightly set's whole load grid, or the CI set's slice of it.
    let (sizes, clients): (&[u64], &[u64]) = if nightly {
        (
            &[1_000, 10_000, 100_000, 1_000_000],
            &[25, 50, 75, 100, 125, 150, 175, 200],
        )
    } else {
        (&[10_000], &[25, 50, 100, 200])
    };
    for op in ["upload", "download"] {
        for (&size, &c) in sizes.iter().flat_map(|s| clients.iter().map(move |c| (s, c))) {
            let base = if op == "upload" { 420.0 } else { 560.0 };
            let ops = (c as f64 * base).min(if op == "upload" { 9_500.0 } else { 14_000.0 })
                * (1.0 - c as f64 / 2000.0)
                / (size as f64 / 10_000.0).sqrt();
            let p50 = c as f64 / ops * 1000.0;
            out.push(Scenario {
                id: format!("server.load/{op}/{}/c{c}", size_label(size)),
                workload: "server.load",
                description: format!("{c} clients each {op} blobs of {size} bytes back to back for 3 s; latencies are corrected for coordinated omission."),
                params: json!({"workload": "server.load", "count": 0, "size": size, "concurrency": c, "op": op, "duration_s": 3}),
                metrics: vec![
                    m("ops_s", "ops/s", true, ops, 0.015),
                    m("latency_p99_ms", "ms", false, p50 * (2.5 + c as f64 / 60.0), 0.05),
                    m("latency_p50_ms", "ms", false, p50, 0.02),
                    m("throughput_mib_s", "MiB/s", true, ops * size as f64 / MIB, 0.015),
                    m("server_cpu_user_s", "s", false, 2.1, 0.03),
                    m("server_anon_peak_mib", "MiB", false, 22.0 + c as f64 * 0.35, 0.006),
                    m("server_ping_p99_ms", "ms", false, 2.0 + c as f64 * 0.2, 0.08),
                ],
            });
        }
    }
    // Every other metric of the catalogue after these, as a real run has them (the series
    // are taken from the grid by rank, so only a site of more than these asks for them).
    for s in &mut out {
        let server = s.metrics.iter().any(|m| m.name.starts_with("server_"));
        let wall = s.metrics[0].level;
        for def in contract::metrics::CATALOGUE {
            let wanted = !def.counted && (server || !def.name.starts_with("server_"));
            if wanted && !s.metrics.iter().any(|m| m.name == def.name) {
                let level = match def.unit {
                    "s" => wall * 0.2,
                    "MiB" => 12.0,
                    "%" => 35.0,
                    "ms" => 1.5,
                    _ => 2_000.0,
                };
                let higher = def.direction == contract::metrics::Direction::Higher;
                s.metrics.push(m(def.name, def.unit, higher, level, 0.03));
            }
        }
    }
    if hostile {
        out.push(Scenario {
            id: "bench/<img src=x onerror=alert(4)>".into(),
            workload: "bmf",
            description: "Imported from \"elsewhere\" & <b>not</b> trusted: <script>alert(3)</script>".into(),
            params: json!({"note": "<script>alert(5)</script>"}),
            metrics: vec![m("wall_s", "s", false, 0.1, 0.02)],
        });
    }
    out
}

/// A level shift from a commit on: `factor` multiplies the cost (time, memory, latency) of
/// the series it hits, and divides their rates.
struct Event {
    commit: usize,
    factor: f64,
    hits: fn(&str, &str) -> bool,
    subject: &'static str,
}

fn events(commits: usize) -> Vec<Event> {
    let at = |fraction: f64| ((commits as f64 * fraction) as usize).min(commits.saturating_sub(1));
    vec![
        Event {
            commit: at(0.18),
            factor: 0.85,
            hits: |w, m| {
                w.starts_with("crypto") && matches!(m, "wall_s" | "throughput_mib_s" | "ops_s" | "client_cpu_user_s")
            },
            subject: "crypto: AES-GCM through OpenSSL's EVP interface",
        },
        Event {
            commit: at(0.37),
            factor: 1.12,
            hits: |_, m| m == "client_anon_peak_mib",
            subject: "client: keep a 2 MiB read buffer per transfer",
        },
        Event {
            commit: at(0.55),
            factor: 0.9,
            hits: |w, m| w == "server.load" && m.starts_with("latency"),
            subject: "server: accept connections on a dedicated task",
        },
        Event {
            commit: at(0.72),
            factor: 1.07,
            hits: |w, m| w == "blobs.upload" && matches!(m, "wall_s" | "throughput_mib_s" | "ops_s"),
            subject: "client: fsync the local store after every blob",
        },
        Event {
            commit: commits.saturating_sub(1),
            factor: 1.09,
            hits: |w, m| {
                (w == "blobs.download" || w == "blobs.sync")
                    && matches!(m, "wall_s" | "sync_s" | "throughput_mib_s" | "ops_s" | "latency_p99_ms")
            },
            subject: "client: verify each downloaded blob twice",
        },
    ]
}

const SUBJECTS: [&str; 24] = [
    "server: stream uploads to disk instead of buffering them",
    "client: retry 503 responses with jittered backoff",
    "docs: describe the incoming box",
    "crypto: check the preamble before allocating",
    "client: prioritise uploads of small blobs",
    "server: answer HEAD for blobs",
    "tests: a fault-injecting proxy for sync",
    "client: resume interrupted downloads",
    "server: quota check without listing the namespace",
    "deps: update tokio and hyper",
    "client: one SQLCipher connection per thread",
    "harness: sample memory every 10 ms",
    "server: move token checks before body reads",
    "client: batch local store writes",
    "ci: cache the cargo registry",
    "server: directory sharding for large namespaces",
    "client: throttle transfers to a configured rate",
    "workloads: the mail-size mix for sync",
    "server: limit concurrent writes per user",
    "client: sync lists only what changed",
    "refactor: one error type for the transfer layer",
    "server: reuse buffers across requests",
    "collector: keep raw samples",
    "client: verify blob ids before storing",
];

fn sha_of(seed: u64, n: u64) -> String {
    hex::encode(&Sha256::digest(format!("synthetic commit {seed} {n}").as_bytes())[..20])
}

/// Seconds since the epoch as RFC 3339 UTC.
fn rfc3339(epoch_seconds: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch_seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn machine() -> Machine {
    Machine {
        cpu_model: "Synthetic 4-core CPU @ 3.0GHz".into(),
        logical_cores: 4,
        physical_cores: Some(4),
        memory_bytes: 16 << 30,
        kernel: "6.0.0-synthetic".into(),
        os: "Linux (synthetic)".into(),
        arch: "x86_64".into(),
        rustc: "rustc 1.95.0".into(),
        profile: "release".into(),
    }
}

fn budget(headline: &str, achieved: f64) -> serde_json::Value {
    let noisy = achieved > 0.02;
    json!({
        "min_rounds": 5, "max_rounds": 20, "max_time_s": 20.0, "target_ci": 0.02,
        "headline_metric": headline, "achieved_ci": achieved,
        "stop_reason": if noisy { "max_rounds" } else { "converged" },
        "noisy": noisy
    })
}

/// The commits of the history, oldest first.
struct Commit {
    record: CommitInfo,
}

fn history(options: &SyntheticOptions) -> Vec<Commit> {
    let events = events(options.commits);
    let mut out: Vec<Commit> = Vec::with_capacity(options.commits);
    let mut depth = 0u64;
    let mut previous: Option<String> = None;
    let start = 1_767_225_600i64; // 2026-01-01
    for i in 0..options.commits {
        let sha = sha_of(options.seed, i as u64);
        let mut parents = Vec::new();
        if let Some(p) = &previous {
            if i % 17 == 8 {
                // A commit CI skipped: its parent is not benchmarked.
                parents.push(sha_of(options.seed, 1_000_000 + i as u64));
                depth += 1;
            } else {
                parents.push(p.clone());
            }
        }
        if i % 10 == 9 {
            // A merge: the feature branch's commits are not on the first-parent chain.
            parents.push(sha_of(options.seed, 2_000_000 + i as u64));
        }
        let subject = if options.hostile && i == 2 {
            HOSTILE_SUBJECT.to_owned()
        } else if let Some(e) = events.iter().find(|e| e.commit == i) {
            e.subject.to_owned()
        } else if i % 10 == 9 {
            format!("Merge branch 'feature-{i}' into {}", options.branch)
        } else {
            SUBJECTS[(i * 7 + options.seed as usize) % SUBJECTS.len()].to_owned()
        };
        let author = if options.hostile && i == 2 {
            "Mallory <img src=x onerror=alert(2)>".to_owned()
        } else {
            ["A. Developer", "B. Maintainer", "C. Contributor"][i % 3].to_owned()
        };
        let time = start + i as i64 * 21_600 + (i as i64 * 7919 % 5000);
        out.push(Commit {
            record: CommitInfo {
                sha: sha.clone(),
                parents,
                subject,
                author_name: author,
                author_time: time,
                commit_time: time + 60,
                branch: Some(options.branch.clone()),
                dirty: false,
                depth,
            },
        });
        previous = Some(sha);
        depth += 1;
    }
    out
}

/// Which metrics of which scenarios make up `count` series: the headline metric of every
/// scenario first, then their second metrics, and so on.
fn selection(scenarios: &[Scenario], count: usize) -> Vec<Vec<usize>> {
    let mut chosen = vec![Vec::new(); scenarios.len()];
    let mut total = 0;
    let deepest = scenarios.iter().map(|s| s.metrics.len()).max().unwrap_or(0);
    'outer: for k in 0..deepest {
        for (i, s) in scenarios.iter().enumerate() {
            if total == count {
                break 'outer;
            }
            if k < s.metrics.len() {
                chosen[i].push(k);
                total += 1;
            }
        }
    }
    chosen
}

fn record_for(
    uuid: String,
    purpose: Purpose,
    commit: &CommitInfo,
    scenarios: &[ScenarioRecord],
    started_at: String,
    rng: &mut StdRng,
) -> RunRecord {
    RunRecord {
        uuid,
        source: Source::Harness,
        purpose,
        finished_at: started_at.clone(),
        started_at,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        scenario_file: "scenarios/ci.toml".into(),
        sample_interval_ms: 10,
        seed: 1337,
        pairing: None,
        commit: commit.clone(),
        machine: machine(),
        covariates: vec![
            (
                "load_avg_1m".into(),
                json!((rng.random_range(0.05..0.6f64) * 100.0).round() / 100.0),
            ),
            ("cpu_mhz".into(), json!(2800 + rng.random_range(0..400))),
        ],
        scenarios: scenarios.to_vec(),
    }
}

/// Fills `db` with the synthetic history, analysed as CI would have.
pub fn populate(db: &mut Database, options: &SyntheticOptions) -> Result<SyntheticReport, CollectorError> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(options.seed);
    let catalogue = scenarios(options.hostile, options.nightly);
    let chosen = selection(&catalogue, options.series);
    let commits = match &options.history {
        Some(list) => list.iter().map(|record| Commit { record: record.clone() }).collect(),
        None => history(options),
    };
    let events = events(commits.len());
    let series: usize = chosen.iter().map(Vec::len).sum();
    let noise_of = |metric: &Metric| NoiseModel {
        run_cv: metric.cv * 0.15,
        ..NoiseModel::normal(metric.cv)
    };
    // The level of a metric at a commit: its base with every event so far.
    let level = |s: &Scenario, metric: &Metric, commit: usize| {
        let mut factor = 1.0;
        for e in events
            .iter()
            .filter(|e| e.commit <= commit && (e.hits)(s.workload, metric.name))
        {
            factor *= e.factor;
        }
        match metric.direction {
            Direction::Lower => metric.level * factor,
            Direction::Higher => metric.level / factor,
        }
    };
    let outlier_commit = commits.len() * 2 / 5 + 1;
    let scenario_records =
        |commit: usize, rng: &mut StdRng, rounds: usize, with_level: &dyn Fn(&Scenario, &Metric) -> f64| {
            catalogue
                .iter()
                .zip(&chosen)
                .filter(|(_, picked)| !picked.is_empty())
                .map(|(s, picked)| {
                    let headline = s.metrics[0].name;
                    let mut metrics = Vec::new();
                    for &k in picked {
                        let metric = &s.metrics[k];
                        let samples = noise_of(metric).run(rng, with_level(s, metric), rounds);
                        metrics.push(MetricRecord {
                            name: metric.name.into(),
                            unit: metric.unit.into(),
                            direction: metric.direction,
                            samples,
                            reported: None,
                        });
                    }
                    let achieved = if commit % 23 == 11 {
                        0.031
                    } else {
                        0.006 + rng.random_range(0.0..0.01)
                    };
                    ScenarioRecord {
                        id: s.id.clone(),
                        workload: s.workload.into(),
                        workload_version: 1,
                        definition_hash: collector::record::definition_hash_of(&[&s.id, "synthetic"]),
                        description: s.description.clone(),
                        params: s.params.clone(),
                        fixed_duration: s.workload == "server.load",
                        warmup_rounds: 1,
                        rounds: rounds as u32,
                        budget: Some(budget(headline, achieved)),
                        latency_histogram: None,
                        metrics,
                    }
                })
                .collect::<Vec<_>>()
        };

    let mut run_ids = Vec::with_capacity(commits.len());
    for (i, c) in commits.iter().enumerate() {
        let rounds = if i % 23 == 11 {
            options.rounds * 2
        } else {
            options.rounds
        };
        let scenarios = scenario_records(i, &mut rng, rounds, &|s, metric| {
            let l = level(s, metric, i);
            // One commit where a single series was off by 10%, once.
            if i == outlier_commit && s.workload == "blobs.upload" && metric.name == "wall_s" {
                l * 1.1
            } else {
                l
            }
        });
        let started_at = rfc3339(c.record.commit_time + 600);
        let record = record_for(
            format!("synthetic-{}-{i}", options.seed),
            Purpose::History,
            &c.record,
            &scenarios,
            started_at,
            &mut rng,
        );
        run_ids.push(db.ingest_record(&record)?.run_id());
    }
    db.analyze_runs(&run_ids, &AnalysisOptions::default())?;
    let mut runs = run_ids.len();

    let last = commits.len().saturating_sub(1);
    if options.calibration && !commits.is_empty() {
        let mut ids = Vec::new();
        for k in 0..3 {
            let scenarios = scenario_records(last, &mut rng, options.rounds, &|s, metric| level(s, metric, last));
            let started_at = rfc3339(commits[last].record.commit_time + 3600 + k * 600);
            let record = record_for(
                format!("synthetic-{}-aa-{k}", options.seed),
                Purpose::Calibration,
                &commits[last].record,
                &scenarios,
                started_at,
                &mut rng,
            );
            ids.push(db.ingest_record(&record)?.run_id());
        }
        runs += ids.len();
        db.record_calibration(
            &CalibrationRuns {
                uuid: format!("synthetic-{}-calibration", options.seed),
                run_ids: ids,
                scenario_file: "scenarios/ci.toml".into(),
                started_at: rfc3339(commits[last].record.commit_time + 3600),
                finished_at: rfc3339(commits[last].record.commit_time + 5400),
            },
            &Policy::default(),
        )?;
    }
    if options.comparison && !commits.is_empty() {
        let base = &commits[last].record;
        let mut feature = base.clone();
        feature.sha = sha_of(options.seed, 3_000_000);
        feature.parents = vec![base.sha.clone()];
        feature.subject = "client: pipeline uploads over one connection".into();
        feature.branch = Some("feature/pipelined-uploads".into());
        feature.depth += 1;
        let rounds = 12;
        let a = scenario_records(last, &mut rng, rounds, &|s, metric| level(s, metric, last));
        let b = scenario_records(last, &mut rng, rounds, &|s, metric| {
            let l = level(s, metric, last);
            let faster = s.workload == "blobs.upload" && matches!(metric.name, "wall_s" | "throughput_mib_s" | "ops_s");
            let heavier = metric.name == "client_anon_peak_mib";
            let f = if faster {
                0.92
            } else if heavier {
                1.05
            } else {
                1.0
            };
            match metric.direction {
                Direction::Lower => l * f,
                Direction::Higher => l / f,
            }
        });
        // Results as the harness writes them, built from the contract's types.
        let results = |uuid: &str, commit: &CommitInfo, scenarios: &[ScenarioRecord]| -> Results {
            Results {
                schema: SCHEMA.into(),
                run: RunInfo {
                    id: uuid.into(),
                    started_at: rfc3339(commit.commit_time + 7200),
                    finished_at: rfc3339(commit.commit_time + 7800),
                    tool_version: env!("CARGO_PKG_VERSION").into(),
                    scenario_file: "scenarios/ci.toml".into(),
                    sample_interval_ms: 10,
                    seed: 1337,
                    shuffle_seed: None,
                    target: None,
                    sampler_cpu_s: 0.0,
                    measured_s: 0.0,
                    pairing: None,
                },
                commit: commit.clone(),
                machine: MachineInfo {
                    machine: machine(),
                    covariates: Covariates {
                        load_avg_1m: 0.2,
                        cpu_mhz: 2900,
                    },
                },
                scenarios: scenarios
                    .iter()
                    .filter(|s| s.workload != "bmf")
                    .map(|s| ScenarioResult {
                        id: s.id.clone(),
                        workload: s.workload.clone(),
                        workload_version: s.workload_version,
                        definition_hash: s.definition_hash.clone(),
                        description: s.description.clone(),
                        params: s.params.clone(),
                        fixed_duration: s.workload == "server.load",
                        warmup_rounds: s.warmup_rounds,
                        rounds: s.rounds,
                        budget: None,
                        metrics: s
                            .metrics
                            .iter()
                            .map(|m| {
                                let samples = MetricSamples {
                                    unit: m.unit.clone(),
                                    direction: m.direction,
                                    samples: m.samples.clone(),
                                };
                                (m.name.clone(), samples)
                            })
                            .collect(),
                        latency_histogram: None,
                    })
                    .collect(),
            }
        };
        let ra = results(&format!("synthetic-{}-cmp-a", options.seed), base, &a);
        let rb = results(&format!("synthetic-{}-cmp-b", options.seed), &feature, &b);
        db.record_comparison(
            &ra,
            &rb,
            [
                &format!("{} ({})", options.branch, &base.sha[..8]),
                &format!("feature/pipelined-uploads ({})", &feature.sha[..8]),
            ],
            &PairedOptions::default(),
        )?;
        runs += 2;
    }
    Ok(SyntheticReport {
        runs,
        series,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_has_enough_series_and_takes_headlines_first() {
        let all = scenarios(false, false);
        let total: usize = all.iter().map(|s| s.metrics.len()).sum();
        // As many as a ci.toml run has (1106), and thousands with the nightly grid.
        assert!(total >= 1106, "{total} series available");
        let nightly: usize = scenarios(false, true).iter().map(|s| s.metrics.len()).sum();
        assert!(nightly >= 4000, "{nightly} series available with the nightly grid");
        let picked = selection(&all, 60);
        assert_eq!(picked.iter().map(Vec::len).sum::<usize>(), 60);
        assert!(
            picked.iter().all(|p| p.first() == Some(&0)),
            "every scenario gets its headline first"
        );
        let ids: std::collections::HashSet<&str> = all.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids.len(), all.len(), "ids are unique");
        assert!(ids.contains("server.load/upload/10k/c25") && ids.contains("blobs.upload/100x100k/c1"));
    }
}
