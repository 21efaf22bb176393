use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid {what} {value:?}: expected 1-200 characters of [A-Za-z0-9_-]")]
    InvalidName { what: &'static str, value: String },
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        body: String,
    },
    #[error("blob {0} does not exist on the server")]
    NotFound(String),
    #[error("blob {0} already exists on the server")]
    Exists(String),
    #[error("blob {id} is invalid: {source}")]
    InvalidBlob {
        id: String,
        #[source]
        source: blobs_crypto::FormatError,
    },
    #[error("server response for {url} is not what was expected: {reason}")]
    Protocol { url: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}
