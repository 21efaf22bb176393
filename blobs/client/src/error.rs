use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid {what} {value:?}: expected 1-200 characters of [A-Za-z0-9_-]")]
    InvalidName { what: &'static str, value: String },
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("request to {url} failed: {reason}")]
    Http { url: String, reason: String, timeout: bool },
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        body: String,
        /// `Retry-After` of a 503, in seconds.
        retry_after: Option<u64>,
    },
    #[error("blob {0} does not exist on the server")]
    NotFound(String),
    #[error("blob {0} already exists on the server")]
    Exists(String),
    #[error("the server's quota for this user is exhausted (uploading {0})")]
    QuotaExceeded(String),
    #[error("blob {0} changed on the server since this device last saw it")]
    PreconditionFailed(String),
    #[error("the flags of {id} are not {expected:?} (someone else changed them)")]
    FlagsConflict { id: String, expected: Vec<String> },
    #[error("blob {id} is invalid: {source}")]
    InvalidBlob {
        id: String,
        #[source]
        source: blobs_crypto::FormatError,
    },
    #[error(
        "blob {0} is unusable: its server copy failed verification too often (it is retried when that copy changes)"
    )]
    Unusable(String),
    #[error("the server holds a different blob under the id {0}")]
    Conflict(String),
    #[error("server response for {url} is not what was expected: {reason}")]
    Protocol { url: String, reason: String },
    #[error("blob {0} is not in the local store")]
    NotLocal(String),
    #[error("cannot read {path}: {source}")]
    Input {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Connection errors, timeouts, 5xx, a response cut short: try again after a pause.
    Retry,
    /// The blob did not verify: counted separately, see the manager's verification policy.
    Verification,
    /// Trying again would give the same answer.
    Permanent,
}

impl ClientError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ClientError::Http { .. } | ClientError::Protocol { .. } => ErrorClass::Retry,
            ClientError::Status { status, .. } if *status >= 500 && *status != 501 && *status != 507 => {
                ErrorClass::Retry
            }
            // Too many requests, a request timeout on the server's side.
            ClientError::Status { status: 408 | 429, .. } => ErrorClass::Retry,
            ClientError::InvalidBlob { source, .. } => match source {
                // A body that ends early is the connection's fault, not the blob's.
                blobs_crypto::FormatError::Truncated => ErrorClass::Retry,
                _ => ErrorClass::Verification,
            },
            // A store that changed under a reader: the next attempt reads the new content.
            ClientError::Store(StoreError::Changed { .. }) => ErrorClass::Retry,
            _ => ErrorClass::Permanent,
        }
    }

    /// The wait the server asked for, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            ClientError::Status {
                retry_after: Some(s), ..
            } => Some(std::time::Duration::from_secs(*s)),
            _ => None,
        }
    }
}
