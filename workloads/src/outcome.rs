use serde::{Deserialize, Serialize};

use crate::lag::LagSummary;

/// What a workload reports about its measured part. Resource usage is measured from outside
/// by the harness; these are the numbers only the client driver itself can see.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// Wall-clock seconds of the measured part.
    pub wall_s: f64,
    /// Plaintext bytes moved.
    pub bytes: u64,
    /// Operations completed (blobs or requests).
    pub ops: u64,
    /// Operations that failed (only load workloads tolerate failures).
    pub errors: u64,
    /// Per-operation latencies (see `Latencies::encode`); absent for workloads of one
    /// operation.
    pub latency: Option<String>,
    /// Lateness of a 10 ms timer on the driver's runtime during the measured part.
    pub loop_lag: LagSummary,
    /// Worker threads of the driver's runtime and their total busy time.
    pub runtime_workers: u32,
    pub runtime_busy_s: f64,
}
