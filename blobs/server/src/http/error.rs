use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::flags::FlagsError;
use crate::storage::StorageError;

/// Every way a request can fail, with the status HTTP gives it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("these credentials do not give access to this resource")]
    Forbidden,
    #[error("invalid {what}: {value:?} (expected 1-200 characters of [A-Za-z0-9_-])")]
    InvalidName { what: &'static str, value: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Flags(#[from] FlagsError),
    #[error("request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::InvalidName { .. } | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Flags(FlagsError::Json(_)) => StatusCode::BAD_REQUEST,
            // Upstream's answer to an unknown flag, which clients know.
            Self::Flags(FlagsError::Unknown(_)) => StatusCode::NOT_ACCEPTABLE,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Storage(e) => match e {
                StorageError::NotFound(_) => StatusCode::NOT_FOUND,
                StorageError::Exists(_) | StorageError::FlagsMismatch { .. } => StatusCode::CONFLICT,
                StorageError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                StorageError::QuotaExceeded { .. } => StatusCode::INSUFFICIENT_STORAGE,
                StorageError::Busy => StatusCode::SERVICE_UNAVAILABLE,
                StorageError::Body(_) => StatusCode::BAD_REQUEST,
                StorageError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
                StorageError::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
                // The object store or etcd did not answer: the client may retry.
                StorageError::Remote(_) => StatusCode::SERVICE_UNAVAILABLE,
                StorageError::InUse(_) | StorageError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (status, format!("{self}\n")).into_response();
        let h = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
