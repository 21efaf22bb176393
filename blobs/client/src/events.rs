//! What the BlobManager tells the application while it works: progress of each transfer and
//! of a sync, and what needs attention (a blob that failed verification, a full quota).
//! Subscribe with [`crate::BlobManager::subscribe`]; a subscriber that falls behind loses the
//! oldest events (and is told how many), never blocks a transfer.

/// Which way bytes move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Upload,
    Download,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A transfer began an attempt. `total` is the bytes to move, when known.
    TransferStarted {
        namespace: String,
        id: String,
        direction: Direction,
        total: Option<u64>,
        attempt: u32,
    },
    /// Bytes moved so far in this transfer (of the encrypted blob; a resumed download
    /// counts what it had before).
    Progress {
        namespace: String,
        id: String,
        direction: Direction,
        done: u64,
        total: u64,
    },
    TransferDone {
        namespace: String,
        id: String,
        direction: Direction,
        /// Plaintext bytes.
        bytes: u64,
    },
    /// An attempt failed. `retry_in` is the pause before the next attempt, `None` if the blob
    /// went to a failed state.
    TransferFailed {
        namespace: String,
        id: String,
        direction: Direction,
        attempt: u32,
        error: String,
        retry_in: Option<std::time::Duration>,
    },
    /// A download did not verify (bad tag, wrong id or scheme, damaged chunk).
    VerificationFailed {
        namespace: String,
        id: String,
        failures: u32,
        error: String,
    },
    /// The blob failed verification too often: it is unusable until its server copy
    /// changes.
    Unusable { namespace: String, id: String },
    /// The server has no room for this upload.
    QuotaExceeded { namespace: String, id: String },
    /// The server holds another version of a blob this device wanted to upload.
    Conflict { namespace: String, id: String },
    /// The blob was deleted on the server, so it was removed here (or its download dropped).
    RemovedRemotely { namespace: String, id: String },
    /// A sync's overall progress, after each blob it finished (successfully or not); the
    /// bytes of each transfer in flight are in its `Progress` events.
    SyncProgress {
        namespace: String,
        blobs_done: usize,
        blobs_total: usize,
        /// Plaintext bytes of the blobs transferred so far.
        bytes_done: u64,
    },
}
