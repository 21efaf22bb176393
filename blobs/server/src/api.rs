//! The HTTP blobs API: routes, query parsing and responses.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio_util::io::ReaderStream;

use crate::auth::authorize;
use crate::error::ApiError;
use crate::fs_backend::{BlobRef, FsBackend, ListOptions, Order};
use crate::ids::{DEFAULT_NAMESPACE, is_valid_name};
use crate::tokens::Tokens;

/// Chunk size of download streams, as upstream.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    tokens: Tokens,
    storage: FsBackend,
}

impl AppState {
    pub fn new(tokens: Tokens, storage: FsBackend) -> Self {
        Self(Arc::new(Inner { tokens, storage }))
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(info))
        .route("/blobs/{user}/", get(list))
        .route("/blobs/{user}/{blob_id}", get(download).put(upload).delete(delete))
        .with_state(state)
}

async fn info() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "blobs": true, "version": env!("CARGO_PKG_VERSION") }))
}

#[derive(Debug, Deserialize)]
struct BlobQuery {
    namespace: Option<String>,
}

fn namespace_of(raw: Option<&str>) -> Result<&str, ApiError> {
    match raw {
        None | Some("") => Ok(DEFAULT_NAMESPACE),
        Some(ns) if is_valid_name(ns) => Ok(ns),
        Some(ns) => Err(ApiError::InvalidName {
            what: "namespace",
            value: ns.to_owned(),
        }),
    }
}

fn check_user(user: &str) -> Result<(), ApiError> {
    if is_valid_name(user) {
        Ok(())
    } else {
        Err(ApiError::InvalidName {
            what: "user",
            value: user.to_owned(),
        })
    }
}

/// Authorizes the request and resolves the blob it names.
fn resolve(state: &AppState, headers: &HeaderMap, user: &str, id: &str, ns: Option<&str>) -> Result<BlobRef, ApiError> {
    check_user(user)?;
    authorize(&state.0.tokens, headers, user)?;
    let ns = namespace_of(ns)?;
    BlobRef::new(user, ns, id).ok_or_else(|| ApiError::InvalidName {
        what: "blob id",
        value: id.to_owned(),
    })
}

async fn upload(
    State(state): State<AppState>,
    Path((user, id)): Path<(String, String)>,
    Query(q): Query<BlobQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let blob = resolve(&state, &headers, &user, &id, q.namespace.as_deref())?;
    let max = state.0.storage.max_blob_size();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(crate::fs_backend::StorageError::TooLarge { max }.into());
    }
    state.0.storage.write(&blob, body.into_data_stream()).await?;
    Ok(StatusCode::OK)
}

async fn download(
    State(state): State<AppState>,
    Path((user, id)): Path<(String, String)>,
    Query(q): Query<BlobQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let blob = resolve(&state, &headers, &user, &id, q.namespace.as_deref())?;
    let stored = state.0.storage.open_blob(&blob).await?;
    let mut response = Body::from_stream(ReaderStream::with_capacity(stored.file, READ_CHUNK)).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(stored.size));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(tag) = stored.tag {
        h.insert(
            "Tag",
            HeaderValue::from_str(&tag).expect("base64 is a valid header value"),
        );
    }
    Ok(response)
}

async fn delete(
    State(state): State<AppState>,
    Path((user, id)): Path<(String, String)>,
    Query(q): Query<BlobQuery>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let blob = resolve(&state, &headers, &user, &id, q.namespace.as_deref())?;
    state.0.storage.delete(&blob).await?;
    Ok(StatusCode::OK)
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    namespace: Option<String>,
    order_by: Option<String>,
    deleted: Option<String>,
    only_count: Option<String>,
    filter_flag: Option<String>,
}

/// Upstream treated any non-empty value as true (so `only_count=False` counted); here the
/// usual spellings mean what they say and anything else is an error.
fn flag(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("") | Some("0") | Some("false") | Some("False") | Some("no") => Ok(false),
        Some("1") | Some("true") | Some("True") | Some("yes") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "{name}={other:?}: expected true or false"
        ))),
    }
}

async fn list(
    State(state): State<AppState>,
    Path(user): Path<String>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_user(&user)?;
    authorize(&state.0.tokens, &headers, &user)?;
    let ns = namespace_of(q.namespace.as_deref())?;
    if q.filter_flag.is_some() {
        return Err(ApiError::BadRequest(
            "filter_flag is not supported by this server yet".into(),
        ));
    }
    let order = match q.order_by.as_deref() {
        None | Some("") => None,
        Some("date") | Some("+date") => Some(Order::OldestFirst),
        Some("-date") => Some(Order::NewestFirst),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "order_by={other:?}: expected date, +date or -date"
            )));
        }
    };
    let opts = ListOptions {
        deleted: flag("deleted", q.deleted.as_deref())?,
        order,
    };
    let ids = state.0.storage.list(&user, ns, opts).await?;
    if flag("only_count", q.only_count.as_deref())? {
        return Ok(Json(serde_json::json!({ "count": ids.len() })).into_response());
    }
    Ok(Json(ids).into_response())
}
