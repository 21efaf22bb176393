//! The metric catalogue: every metric the harness records, with its unit and direction.

use serde::{Deserialize, Serialize};

/// Whether smaller or larger values are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Lower,
    Higher,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Lower => "lower",
            Direction::Higher => "higher",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub unit: &'static str,
    pub direction: Direction,
    pub description: &'static str,
}

const fn lower(name: &'static str, unit: &'static str, description: &'static str) -> MetricDef {
    MetricDef {
        name,
        unit,
        direction: Direction::Lower,
        description,
    }
}

const fn higher(name: &'static str, unit: &'static str, description: &'static str) -> MetricDef {
    MetricDef {
        name,
        unit,
        direction: Direction::Higher,
        description,
    }
}

/// Every metric, in display order.
pub const CATALOGUE: &[MetricDef] = &[
    lower(
        "wall_s",
        "s",
        "wall-clock time of the measured part, timed by the driver",
    ),
    higher(
        "throughput_mib_s",
        "MiB/s",
        "plaintext MiB moved per second of wall time",
    ),
    higher(
        "ops_s",
        "ops/s",
        "blobs transferred per second of wall time",
    ),
    lower(
        "latency_p50_ms",
        "ms",
        "median latency of one blob operation within the round",
    ),
    lower(
        "latency_p99_ms",
        "ms",
        "99th-percentile latency of one blob operation within the round",
    ),
    lower(
        "client_cpu_user_s",
        "s",
        "user CPU time of the client driver (10 ms resolution)",
    ),
    lower(
        "client_cpu_sys_s",
        "s",
        "system CPU time of the client driver (10 ms resolution)",
    ),
    lower(
        "server_cpu_user_s",
        "s",
        "user CPU time of the server (10 ms resolution)",
    ),
    lower(
        "server_cpu_sys_s",
        "s",
        "system CPU time of the server (10 ms resolution)",
    ),
    lower(
        "client_rss_peak_mib",
        "MiB",
        "peak resident memory of the client driver during the round",
    ),
    lower(
        "server_rss_peak_mib",
        "MiB",
        "peak resident memory of the server during the round",
    ),
    lower(
        "client_rss_mean_mib",
        "MiB",
        "mean of the sampled resident memory of the client driver",
    ),
    lower(
        "server_rss_mean_mib",
        "MiB",
        "mean of the sampled resident memory of the server",
    ),
    lower(
        "client_io_read_mib",
        "MiB",
        "bytes the client driver read from storage",
    ),
    lower(
        "client_io_write_mib",
        "MiB",
        "bytes the client driver caused to be written to storage",
    ),
    lower(
        "server_io_read_mib",
        "MiB",
        "bytes the server read from storage",
    ),
    lower(
        "server_io_write_mib",
        "MiB",
        "bytes the server caused to be written to storage",
    ),
];

/// Looks a metric up by name.
pub fn lookup(name: &str) -> Option<&'static MetricDef> {
    CATALOGUE.iter().find(|m| m.name == name)
}
