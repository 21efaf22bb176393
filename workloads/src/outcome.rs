use serde::{Deserialize, Serialize};

/// What a workload reports about its measured run. Resource usage is measured from outside
/// by the harness; these are the numbers only the workload itself can see.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// Wall-clock seconds of the measured part.
    pub wall_s: f64,
    /// Plaintext bytes moved.
    pub bytes: u64,
    /// Operations completed (blobs transferred).
    pub ops: u64,
    /// Latency of each operation, in milliseconds, in completion order.
    pub op_latencies_ms: Vec<f64>,
}
