//! The metric catalogue: every metric the harness records, with its unit, its direction and
//! what it measures, in display order (headline numbers first). The collector stores each
//! metric's description and rank with the metric, so the site reads them from the store.

use serde::{Deserialize, Serialize};

use crate::verdict::Verdict;

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

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "lower" => Some(Self::Lower),
            "higher" => Some(Self::Higher),
            _ => None,
        }
    }

    /// The verdict for a significant change with this sign.
    pub fn judge(self, positive_shift: bool) -> Verdict {
        match (self, positive_shift) {
            (Self::Lower, true) | (Self::Higher, false) => Verdict::Regression,
            _ => Verdict::Improvement,
        }
    }

    /// Whether a ratio new / old above 1 is worse.
    pub fn worse_when_larger(self) -> bool {
        self == Self::Lower
    }
}

#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub unit: &'static str,
    pub direction: Direction,
    pub description: &'static str,
    /// Measured once per scenario, in the count round under Valgrind, instead of in every
    /// round: one sample, the same for every run of the same code (see `counts`).
    pub counted: bool,
    /// Shown with the others but never given a verdict, and why ([`not_judged`]).
    pub context: Option<&'static str>,
}

impl MetricDef {
    /// Grows with the work a round does: a total (CPU seconds, IO, calls, faults, switches,
    /// errors, memory that holds what the round handled), not a rate, latency, share or the
    /// round's duration. In a fixed-duration scenario (`server.load`) the work is whatever the
    /// round's throughput allowed, so such a metric follows the throughput, not the cost of
    /// the code: a paired ratio of it judges throughput twice and over-tightly.
    pub fn accumulates(&self) -> bool {
        matches!(self.unit, "calls" | "faults" | "switches" | "errors" | "MiB")
            || (self.unit == "s" && self.name.contains("_cpu_"))
    }
}

const fn lower(name: &'static str, unit: &'static str, description: &'static str) -> MetricDef {
    MetricDef {
        name,
        unit,
        direction: Direction::Lower,
        description,
        counted: false,
        context: None,
    }
}

const fn higher(name: &'static str, unit: &'static str, description: &'static str) -> MetricDef {
    MetricDef {
        name,
        unit,
        direction: Direction::Higher,
        description,
        counted: false,
        context: None,
    }
}

const fn counted(name: &'static str, description: &'static str) -> MetricDef {
    MetricDef {
        name,
        unit: "instructions",
        direction: Direction::Lower,
        description,
        counted: true,
        context: None,
    }
}

/// Preemptions: the scheduler's answer to the machine's other load more than to the code,
/// whose own share shows in its CPU seconds. At the small counts of short rounds, 12 of
/// the 13 changes three paired A/A runs of `ci.toml` called were of these (4 against 1
/// preemptions, 5 against 13; `docs/statistics.md`).
const fn preemptions(name: &'static str, description: &'static str) -> MetricDef {
    MetricDef {
        name,
        unit: "switches",
        direction: Direction::Lower,
        description,
        counted: false,
        context: Some(PREEMPTIONS),
    }
}

/// A share of one core: context for the CPU seconds beside it, with no better direction. It
/// rises when the code waits less and falls when the machine is busier, so judging it called
/// a quieter machine a regression (7 crypto scenarios of one `ci.toml` run, issue 19).
const fn share_of_core(name: &'static str, description: &'static str) -> MetricDef {
    MetricDef {
        name,
        unit: "%",
        direction: Direction::Lower,
        description,
        counted: false,
        context: Some(SHARE_OF_A_CORE),
    }
}

/// Every metric, in display order. Client and server metrics come from `/proc`, measured
/// from outside, or from Valgrind in the count round; the workload metrics from what the
/// client driver reports.
pub const CATALOGUE: &[MetricDef] = &[
    lower(
        "wall_s",
        "s",
        "wall-clock time of the measured part, timed by the driver",
    ),
    counted(
        "client_instructions",
        "instructions the client driver executed in the measured part, counted once under Valgrind (Callgrind) with one runtime thread",
    ),
    counted(
        "server_instructions",
        "instructions the server executed while the client's measured part ran, counted once under Valgrind (Callgrind) with one runtime thread",
    ),
    lower("sync_s", "s", "time of the whole sync (blobs.sync)"),
    higher(
        "throughput_mib_s",
        "MiB/s",
        "plaintext MiB moved per second of wall time",
    ),
    higher("ops_s", "ops/s", "operations completed per second of wall time"),
    lower("error_count", "errors", "operations that failed (server.load)"),
    lower(
        "latency_p50_ms",
        "ms",
        "median latency of one operation within the round",
    ),
    lower(
        "latency_p95_ms",
        "ms",
        "95th-percentile latency of one operation within the round",
    ),
    lower(
        "latency_p99_ms",
        "ms",
        "99th-percentile latency of one operation within the round",
    ),
    lower("latency_max_ms", "ms", "slowest operation of the round"),
    lower(
        "client_loop_lag_p50_ms",
        "ms",
        "median lateness of a 10 ms timer on the client's async runtime",
    ),
    lower(
        "client_loop_lag_p99_ms",
        "ms",
        "99th-percentile lateness of a 10 ms timer on the client's async runtime",
    ),
    lower(
        "client_loop_lag_max_ms",
        "ms",
        "worst lateness of a 10 ms timer on the client's async runtime",
    ),
    lower(
        "client_runtime_busy_pct",
        "%",
        "share of the client runtime's worker time spent running tasks",
    ),
    lower(
        "server_ping_p50_ms",
        "ms",
        "median latency of a trivial request (GET /) sent at a fixed rate during the round",
    ),
    lower(
        "server_ping_p99_ms",
        "ms",
        "99th-percentile latency of a trivial request sent at a fixed rate during the round",
    ),
    lower(
        "server_ping_max_ms",
        "ms",
        "worst latency of a trivial request sent at a fixed rate during the round",
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
    share_of_core(
        "client_cpu_pct",
        "CPU time of the client driver per wall time, in % of one core",
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
    share_of_core(
        "server_cpu_pct",
        "CPU time of the server per wall time, in % of one core",
    ),
    lower(
        "client_anon_peak_mib",
        "MiB",
        "peak anonymous resident memory (heap, stacks) of the client driver during the round, sampled every 10 ms",
    ),
    lower(
        "server_anon_peak_mib",
        "MiB",
        "peak anonymous resident memory (heap, stacks) of the server during the round, sampled every 10 ms",
    ),
    lower(
        "client_anon_mean_mib",
        "MiB",
        "mean of the sampled anonymous resident memory of the client driver",
    ),
    lower(
        "server_anon_mean_mib",
        "MiB",
        "mean of the sampled anonymous resident memory of the server",
    ),
    lower(
        "client_io_read_mib",
        "MiB",
        "bytes the client driver read from storage (page-cache hits excluded)",
    ),
    lower(
        "client_io_write_mib",
        "MiB",
        "bytes the client driver caused to be written to storage",
    ),
    lower(
        "client_io_read_total_mib",
        "MiB",
        "bytes the client driver read through read-like calls, cache or not",
    ),
    lower(
        "client_io_write_total_mib",
        "MiB",
        "bytes the client driver wrote through write-like calls",
    ),
    lower(
        "server_io_read_mib",
        "MiB",
        "bytes the server read from storage (page-cache hits excluded)",
    ),
    lower(
        "server_io_write_mib",
        "MiB",
        "bytes the server caused to be written to storage",
    ),
    lower(
        "server_io_read_total_mib",
        "MiB",
        "bytes the server read through read-like calls, cache or not",
    ),
    lower(
        "server_io_write_total_mib",
        "MiB",
        "bytes the server wrote through write-like calls",
    ),
    lower(
        "client_read_calls",
        "calls",
        "read-like system calls the client driver made (read, pread, readv; not socket recv)",
    ),
    lower(
        "client_write_calls",
        "calls",
        "write-like system calls the client driver made (write, pwrite, writev; not socket send)",
    ),
    lower(
        "client_minor_faults",
        "faults",
        "page faults of the client driver served without storage (new or cached pages)",
    ),
    lower(
        "client_major_faults",
        "faults",
        "page faults of the client driver that waited for storage",
    ),
    lower(
        "client_voluntary_switches",
        "switches",
        "times a thread of the client driver gave up the CPU to wait (IO, locks, sleeping)",
    ),
    preemptions(
        "client_involuntary_switches",
        "times a thread of the client driver was preempted while it could still run",
    ),
    lower(
        "server_read_calls",
        "calls",
        "read-like system calls the server made (read, pread, readv; not socket recv)",
    ),
    lower(
        "server_write_calls",
        "calls",
        "write-like system calls the server made (write, pwrite, writev; not socket send)",
    ),
    lower(
        "server_minor_faults",
        "faults",
        "page faults of the server served without storage (new or cached pages)",
    ),
    lower(
        "server_major_faults",
        "faults",
        "page faults of the server that waited for storage",
    ),
    lower(
        "server_voluntary_switches",
        "switches",
        "times a thread of the server gave up the CPU to wait (IO, locks, sleeping)",
    ),
    preemptions(
        "server_involuntary_switches",
        "times a thread of the server was preempted while it could still run",
    ),
];

/// Whether `name` is a count-round metric: one deterministic sample per scenario.
pub fn is_counted(name: &str) -> bool {
    lookup(name).is_some_and(|m| m.counted)
}

/// Whether `name` grows with the work a round does ([`MetricDef::accumulates`]).
pub fn accumulates(name: &str) -> bool {
    lookup(name).is_some_and(MetricDef::accumulates)
}

/// Why a total of a fixed-duration round has no verdict.
pub const FOLLOWS_THROUGHPUT: &str =
    "accumulated over a fixed-duration round, so it follows the round's throughput: shown, not judged";

/// Why preemptions have no verdict.
pub const PREEMPTIONS: &str =
    "preemptions, which follow how many other tasks wanted the CPU more than the code: shown, not judged";

/// Every reason [`not_judged`] gives.
pub const NOT_JUDGED: [&str; 3] = [FOLLOWS_THROUGHPUT, SHARE_OF_A_CORE, PREEMPTIONS];

/// Why a share of a core has no verdict.
pub const SHARE_OF_A_CORE: &str =
    "a share of a core, which rises when the code waits less and falls when the machine is busier: shown, not judged";

/// Why series `name` of a scenario is shown but given no verdict by any rule, or `None` when it
/// is judged. `fixed_duration`: the scenario's rounds run for a fixed time
/// ([`MetricDef::accumulates`]). Metrics outside the catalogue (imports) are judged.
pub fn not_judged(name: &str, fixed_duration: bool) -> Option<&'static str> {
    let m = lookup(name)?;
    if m.context.is_some() {
        m.context
    } else if fixed_duration && m.accumulates() {
        Some(FOLLOWS_THROUGHPUT)
    } else {
        None
    }
}

/// Looks a metric up by name.
pub fn lookup(name: &str) -> Option<&'static MetricDef> {
    CATALOGUE.iter().find(|m| m.name == name)
}

/// A metric's position in display order: its place in the catalogue; metrics from elsewhere
/// (imports) come after them.
pub fn rank(name: &str) -> usize {
    CATALOGUE.iter().position(|m| m.name == name).unwrap_or(CATALOGUE.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_carry_their_unit() {
        for (i, m) in CATALOGUE.iter().enumerate() {
            assert!(CATALOGUE[..i].iter().all(|o| o.name != m.name), "{} twice", m.name);
            let suffix = match m.unit {
                "s" => "_s",
                "ms" => "_ms",
                "MiB" => "_mib",
                "MiB/s" => "_mib_s",
                "ops/s" => "_s",
                "%" => "_pct",
                "errors" => "_count",
                "calls" => "_calls",
                "faults" => "_faults",
                "switches" => "_switches",
                "instructions" => "_instructions",
                other => panic!("unit {other} has no naming rule"),
            };
            assert!(m.name.ends_with(suffix), "{} should end in {suffix}", m.name);
        }
    }

    /// What a round accumulates is its totals; rates, latencies, shares and the round's own
    /// duration are not, and neither are the counts (their rounds do fixed work).
    #[test]
    fn totals_accumulate_and_rates_do_not() {
        for name in [
            "server_anon_peak_mib",
            "client_anon_mean_mib",
            "server_io_write_total_mib",
            "client_cpu_user_s",
            "server_cpu_sys_s",
            "server_read_calls",
            "client_minor_faults",
            "server_involuntary_switches",
            "error_count",
        ] {
            assert!(accumulates(name), "{name}");
        }
        for name in [
            "wall_s",
            "sync_s",
            "ops_s",
            "throughput_mib_s",
            "latency_p99_ms",
            "client_cpu_pct",
            "client_runtime_busy_pct",
            "client_instructions",
            "unknown",
        ] {
            assert!(!accumulates(name), "{name}");
        }
        assert_eq!(CATALOGUE.iter().filter(|m| m.accumulates()).count(), 29);
    }

    #[test]
    fn shares_of_a_core_and_totals_of_fixed_duration_rounds_are_not_judged() {
        for fixed_duration in [false, true] {
            assert_eq!(not_judged("client_cpu_pct", fixed_duration), Some(SHARE_OF_A_CORE));
            assert_eq!(not_judged("server_cpu_pct", fixed_duration), Some(SHARE_OF_A_CORE));
            assert_eq!(not_judged("ops_s", fixed_duration), None);
            assert_eq!(not_judged("latency_p99_ms", fixed_duration), None);
            assert_eq!(not_judged("imported_metric", fixed_duration), None);
        }
        assert_eq!(not_judged("server_cpu_user_s", true), Some(FOLLOWS_THROUGHPUT));
        assert_eq!(not_judged("server_cpu_user_s", false), None);
        assert_eq!(not_judged("client_minor_faults", true), Some(FOLLOWS_THROUGHPUT));
        assert_eq!(not_judged("client_minor_faults", false), None);
        // Counts do fixed work by definition; a fixed-duration scenario has no count round.
        assert_eq!(not_judged("client_instructions", false), None);
        for fixed_duration in [false, true] {
            assert_eq!(
                not_judged("client_involuntary_switches", fixed_duration),
                Some(PREEMPTIONS)
            );
            assert_eq!(
                not_judged("server_involuntary_switches", fixed_duration),
                Some(PREEMPTIONS)
            );
        }
        assert_eq!(not_judged("client_voluntary_switches", false), None);
        assert_eq!(CATALOGUE.iter().filter(|m| m.context.is_some()).count(), 4);
    }
}
