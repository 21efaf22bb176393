use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::fs_backend::StorageError;

/// Every way a request can fail, with the status HTTP gives it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("these credentials do not give access to this user's blobs")]
    Forbidden,
    #[error("invalid {what}: {value:?} (expected 1-200 characters of [A-Za-z0-9_-])")]
    InvalidName { what: &'static str, value: String },
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::InvalidName { .. } | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Storage(e) => match e {
                StorageError::NotFound(_) => StatusCode::NOT_FOUND,
                StorageError::Exists(_) => StatusCode::CONFLICT,
                StorageError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                StorageError::Body(_) => StatusCode::BAD_REQUEST,
                StorageError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (status, format!("{self}\n")).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
        }
        response
    }
}
