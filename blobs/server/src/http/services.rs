//! The services listener: the incoming box for trusted delivery agents (the MX), backups,
//! and the operator's health and metrics endpoints. It is meant for 127.0.0.1 or a private
//! interface, and every route but `/`, `/health` and `/metrics` needs a service token.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};

use crate::http::api::{AppState, blob_ref, health, info, metrics, no_route};
use crate::http::auth::BACKUP_SERVICE;
use crate::http::error::ApiError;
use crate::http::metrics::Tracked;
use crate::storage::{StorageBackend as _, WriteMode};

/// Incoming deliveries land in this namespace, as upstream.
pub const INCOMING_NAMESPACE: &str = "MX";

pub fn router(state: AppState) -> Router {
    let tracked = Tracked {
        metrics: state.metrics.clone(),
        listener: "services",
    };
    Router::new()
        .route("/", get(info))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/incoming/{user}/{blob_id}", put(deliver))
        .route("/backup", get(backup_all))
        .route("/backup/{user}", get(backup_user))
        .route_layer(crate::http::metrics::TrackLayer(tracked))
        .fallback(no_route)
        .with_state(state)
}

/// Stores a message for a user, flagged PENDING in the same durable step (spec bug 11).
async fn deliver(
    State(state): State<AppState>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let service = state.auth.authorize_service(&headers)?;
    // Only users of this server have a box (upstream wrote into any path, spec bug 3).
    if !state.auth.users().contains(&user) {
        return Err(ApiError::NotFound(format!("no such user: {user:?}")));
    }
    let blob = blob_ref(&user, INCOMING_NAMESPACE, &id)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let stored = crate::http::api::write_to_the_end(&state, blob, body, WriteMode::Incoming, declared).await?;
    state.metrics.bytes_received.inc_by(stored);
    tracing::info!(service, user, id, bytes = stored, "incoming delivery");
    Ok(StatusCode::OK)
}

fn check_backup_service(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.auth.authorize_service(headers)? != BACKUP_SERVICE {
        return Err(ApiError::Forbidden);
    }
    Ok(())
}

async fn backup_all(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    check_backup_service(&state, &headers)?;
    let users = state.storage.users().await?;
    backup_response(state, users).await
}

async fn backup_user(
    State(state): State<AppState>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_backup_service(&state, &headers)?;
    if !crate::ids::is_valid_name(&user) {
        return Err(ApiError::InvalidName {
            what: "user",
            value: user,
        });
    }
    if !state.storage.users().await?.contains(&user) {
        return Err(ApiError::NotFound(format!("no blobs stored for {user:?}")));
    }
    backup_response(state, vec![user]).await
}

async fn backup_response(state: AppState, users: Vec<String>) -> Result<Response, ApiError> {
    let body = crate::fs::backup::stream(state, users).await?;
    let mut r = Body::from_stream(body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    Ok(r)
}
