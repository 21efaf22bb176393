//! The line protocol between the harness and a client driver.
//!
//! The driver prints one JSON message per line on stdout; the harness writes `go` on the
//! driver's stdin once its measurements have started. Logs go to stderr, never stdout.

use serde::{Deserialize, Serialize};

use crate::Outcome;

/// The word the harness sends to start the measured part.
pub const GO: &str = "go";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverMessage {
    /// Preparation is done; waiting for `go`.
    Ready,
    /// The measured part finished.
    Done(Outcome),
}
