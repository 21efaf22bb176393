//! The public blobs API: routes, query parsing and responses. `openapi.yaml` beside the
//! crate documents every route here, and a test holds the two together.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::flags::{Flag, FlagSet};
use crate::http::auth::Auth;
use crate::http::error::ApiError;
use crate::http::metrics::{Metrics, Tracked};
use crate::http::range::{RangeAnswer, parse_range};
use crate::ids::{DEFAULT_NAMESPACE, is_valid_name};
use crate::storage::{BlobRef, Cursor, ListQuery, Order, Storage, StorageBackend as _, StoredBlob, WriteMode};

/// Largest flags body (a JSON list of at most four names).
const MAX_FLAGS_BODY: usize = 4096;
/// Largest page of a listing.
pub const MAX_PAGE: usize = 100_000;

/// What the handlers of both listeners share.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

pub struct Inner {
    pub auth: Auth,
    pub storage: Storage,
    pub metrics: Arc<Metrics>,
    pub public_metrics: bool,
    /// The bound on flag changes and deletions in progress (`max_concurrent_writes` of them,
    /// apart from the uploads' own), and how long one waits for a slot before 503.
    pub changes: Arc<tokio::sync::Semaphore>,
    /// Each user's share of the uploads' slots and of the changes' (`max_writes_per_user`),
    /// taken before a slot of the global bound.
    pub upload_shares: Arc<crate::fairness::Shares>,
    pub change_shares: Arc<crate::fairness::Shares>,
    pub write_wait: std::time::Duration,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The public router.
pub fn router(state: AppState) -> Router {
    let tracked = Tracked {
        metrics: state.metrics.clone(),
        listener: "public",
    };
    let mut r = Router::new()
        .route("/", get(info))
        .route("/robots.txt", get(robots))
        .route("/health", get(health))
        .route("/blobs/{user}/", get(list))
        .route(
            "/blobs/{user}/{blob_id}",
            get(download).put(upload).post(set_flags).delete(delete),
        )
        .route("/usage/{user}", get(usage));
    if state.public_metrics {
        r = r.route("/metrics", get(metrics));
    }
    r.route_layer(crate::http::metrics::TrackLayer(tracked))
        .fallback(no_route)
        .with_state(state)
}

pub async fn no_route() -> ApiError {
    ApiError::NotFound("no such route\n".trim_end().into())
}

pub async fn info() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "blobs": true,
        "version": env!("CARGO_PKG_VERSION"),
        "capabilities": [
            "flags", "flags-compare-and-set", "processing-expiry", "replace", "if-match",
            "range", "etag", "list-pagination", "usage", "quota", "incoming", "tombstones"
        ],
    }))
}

async fn robots() -> &'static str {
    "User-agent: *\nDisallow: /\n"
}

pub async fn health(State(s): State<AppState>) -> Response {
    if s.storage.healthy().await {
        Json(serde_json::json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "storage unavailable"})),
        )
            .into_response()
    }
}

pub async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(s.storage.totals()),
    )
        .into_response()
}

pub fn namespace_of(raw: Option<&str>) -> Result<&str, ApiError> {
    match raw {
        None => Ok(DEFAULT_NAMESPACE),
        Some(ns) if is_valid_name(ns) => Ok(ns),
        Some(ns) => Err(ApiError::InvalidName {
            what: "namespace",
            value: ns.to_owned(),
        }),
    }
}

pub fn blob_ref(user: &str, ns: &str, id: &str) -> Result<BlobRef, ApiError> {
    BlobRef::new(user, ns, id).ok_or_else(|| ApiError::InvalidName {
        what: "blob id",
        value: id.to_owned(),
    })
}

/// Authorizes the request and resolves the blob it names. Credentials come first: nothing
/// about a path is answered to someone who may not see it.
fn resolve(state: &AppState, headers: &HeaderMap, user: &str, id: &str, ns: Option<&str>) -> Result<BlobRef, ApiError> {
    state.auth.authorize_user(headers, user)?;
    blob_ref(user, namespace_of(ns)?, id)
}

/// Upstream treated any non-empty value as true (so `only_count=False` counted); here the
/// usual spellings mean what they say and anything else is an error.
pub fn truthy(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("") | Some("0") | Some("false") | Some("False") | Some("no") => Ok(false),
        Some("1") | Some("true") | Some("True") | Some("yes") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "{name}={other:?}: expected true or false"
        ))),
    }
}

fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    headers
        .get(header::CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| ApiError::BadRequest("Content-Length is not a number".into()))
        })
        .transpose()
}

#[derive(Debug, Deserialize)]
struct UploadQuery {
    namespace: Option<String>,
    overwrite: Option<String>,
}

async fn upload(
    State(state): State<AppState>,
    Path((user, id)): Path<(String, String)>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let blob = resolve(&state, &headers, &user, &id, q.namespace.as_deref())?;
    let mode = if truthy("overwrite", q.overwrite.as_deref())? {
        let if_match = match headers.get(header::IF_MATCH) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| ApiError::BadRequest("If-Match is not ASCII".into()))?
                    .trim()
                    .to_owned(),
            ),
        };
        WriteMode::Replace { if_match }
    } else {
        WriteMode::Create
    };
    let declared = declared_length(&headers)?;
    let stored = write_to_the_end(&state, blob, body, mode, declared).await?;
    state.metrics.bytes_received.inc_by(stored);
    Ok(StatusCode::OK)
}

/// Runs a change of storage on a task of its own. hyper drops a handler whose client hangs
/// up; were the change dropped with it between its step on disk (or in etcd) and its record
/// in the index, the index would contradict the disk until a restart: a blob on disk but
/// missing from listings, or a deleted one still listed. On its own task a change completes
/// or fails whole (a client gone mid-body fails an upload).
async fn to_the_end<T: Send + 'static>(change: impl std::future::Future<Output = T> + Send + 'static) -> T {
    match tokio::spawn(change).await {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// A slot for a flag change or a deletion, taken before its task starts and released when the
/// task ends. A change runs to its end even if its client hangs up (see [`to_the_end`]), so
/// without this bound clients that send changes and hang up at once could leave any number of
/// them running; taken before the task, a wait that its client gives up costs nothing. Apart
/// from the uploads' slots, so that slow uploads cannot hold up flag changes (the incoming
/// box's reservations) or deletions.
///
/// The user's share is taken first, so a user who fills it holds no global slot while waiting.
async fn change_slot(
    state: &AppState,
    user: &str,
) -> Result<(crate::fairness::Share, tokio::sync::OwnedSemaphorePermit), crate::storage::StorageError> {
    let share = state.change_shares.take(user).await?;
    let slot = crate::storage::slot(state.write_wait, state.changes.clone().acquire_owned()).await?;
    Ok((share, slot))
}

/// Stores an upload on a task of its own (see [`to_the_end`]).
pub async fn write_to_the_end(
    state: &AppState,
    blob: BlobRef,
    body: Body,
    mode: WriteMode,
    declared: Option<u64>,
) -> Result<u64, crate::storage::StorageError> {
    // The user's share first (the backend takes a global slot): a user who fills their share
    // waits without holding one of everyone's slots.
    let share = state.upload_shares.take(blob.user()).await?;
    let state = state.clone();
    to_the_end(async move {
        let _share = share;
        state
            .storage
            .write(&blob, body.into_data_stream(), mode, declared)
            .await
    })
    .await
}

#[derive(Debug, Deserialize)]
struct DownloadQuery {
    namespace: Option<String>,
    only_flags: Option<String>,
}

async fn download(
    State(state): State<AppState>,
    Path((user, id)): Path<(String, String)>,
    Query(q): Query<DownloadQuery>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    // The request's own headers, not axum's `HeaderMap` extractor, which clones them all.
    let (parts, _) = request.into_parts();
    let headers = &parts.headers;
    let blob = resolve(&state, headers, &user, &id, q.namespace.as_deref())?;
    if truthy("only_flags", q.only_flags.as_deref())? {
        let flags = state.storage.flags(&blob).await?;
        return Ok(Json(flags.names()).into_response());
    }
    let stored = state.storage.open_blob(&blob).await?;
    let range = headers
        .get(header::RANGE)
        .filter(|_| if_range_holds(headers, &stored.etag))
        .map(|v| match v.to_str() {
            Ok(s) => parse_range(s, stored.size),
            Err(_) => RangeAnswer::Unsatisfiable,
        })
        .unwrap_or(RangeAnswer::Full);
    let response = blob_response(&state, stored, range).await?;
    Ok(response)
}

/// `If-Range`: a range applies only to the version the client already has part of.
fn if_range_holds(headers: &HeaderMap, etag: &str) -> bool {
    match headers.get(header::IF_RANGE) {
        None => true,
        Some(v) => v.to_str().is_ok_and(|v| v.trim() == etag),
    }
}

async fn blob_response(state: &AppState, stored: StoredBlob, range: RangeAnswer) -> Result<Response, ApiError> {
    let size = stored.size;
    let (status, start, len) = match range {
        RangeAnswer::Full => (StatusCode::OK, 0, size),
        RangeAnswer::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        RangeAnswer::Unsatisfiable => {
            let mut r = (
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("range not satisfiable for a blob of {size} bytes\n"),
            )
                .into_response();
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).expect("ASCII"),
            );
            return Ok(r);
        }
    };
    let etag = stored.etag.clone();
    let tag = stored.tag.clone();
    let body = stored.body(start, len).await?;
    state.metrics.bytes_sent.inc_by(len);
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, HeaderValue::from_str(&etag).expect("an ETag is ASCII"));
    if let Some(tag) = tag {
        h.insert(
            "Tag",
            HeaderValue::from_str(&tag).expect("base64 is a valid header value"),
        );
    }
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1)).expect("ASCII"),
        );
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct FlagsQuery {
    namespace: Option<String>,
    expect: Option<String>,
}

async fn set_flags(
    State(state): State<AppState>,
    Path((user, id)): Path<(String, String)>,
    Query(q): Query<FlagsQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let blob = resolve(&state, &headers, &user, &id, q.namespace.as_deref())?;
    let expect = q
        .expect
        .as_deref()
        .map(|e| FlagSet::from_names(e.split(',').map(str::trim).filter(|s| !s.is_empty())))
        .transpose()?;
    let raw = axum::body::to_bytes(body, MAX_FLAGS_BODY)
        .await
        .map_err(|_| ApiError::BodyTooLarge(MAX_FLAGS_BODY))?;
    let flags = FlagSet::from_json(&raw)?;
    let slot = change_slot(&state, blob.user()).await?;
    to_the_end(async move {
        let _slot = slot;
        state.storage.set_flags(&blob, flags, expect).await
    })
    .await?;
    Ok(StatusCode::OK)
}

async fn delete(
    State(state): State<AppState>,
    Path((user, id)): Path<(String, String)>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let blob = resolve(&state, &headers, &user, &id, q.namespace.as_deref())?;
    let slot = change_slot(&state, blob.user()).await?;
    to_the_end(async move {
        let _slot = slot;
        state.storage.delete(&blob).await
    })
    .await?;
    Ok(StatusCode::OK)
}

#[derive(Debug, Deserialize)]
struct ListParams {
    namespace: Option<String>,
    order_by: Option<String>,
    deleted: Option<String>,
    only_count: Option<String>,
    filter_flag: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn parse_cursor(raw: &str, order: Order) -> Result<Cursor, ApiError> {
    let bad = || ApiError::BadRequest(format!("cursor {raw:?} is not one this listing made"));
    let cursor = if let Some(id) = raw.strip_prefix("i.") {
        Cursor {
            time: None,
            id: id.to_owned(),
        }
    } else {
        let rest = raw.strip_prefix('t').ok_or_else(bad)?;
        let (secs, rest) = rest.split_once('.').ok_or_else(bad)?;
        let (nanos, id) = rest.split_once('.').ok_or_else(bad)?;
        let secs: u64 = secs.parse().map_err(|_| bad())?;
        let nanos: u32 = nanos.parse().ok().filter(|n| *n < 1_000_000_000).ok_or_else(bad)?;
        Cursor {
            time: Some(UNIX_EPOCH + Duration::new(secs, nanos)),
            id: id.to_owned(),
        }
    };
    if !is_valid_name(&cursor.id) || cursor.time.is_some() != (order != Order::Id) {
        return Err(bad());
    }
    Ok(cursor)
}

fn format_cursor(c: &Cursor) -> String {
    match c.time {
        None => format!("i.{}", c.id),
        Some(t) => {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            format!("t{}.{}.{}", d.as_secs(), d.subsec_nanos(), c.id)
        }
    }
}

async fn list(
    State(state): State<AppState>,
    Path(user): Path<String>,
    Query(p): Query<ListParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.auth.authorize_user(&headers, &user)?;
    let ns = namespace_of(p.namespace.as_deref())?;
    let order = match p.order_by.as_deref() {
        None | Some("") => Order::Id,
        Some("date") | Some("+date") => Order::OldestFirst,
        Some("-date") => Order::NewestFirst,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "order_by={other:?}: expected date, +date or -date (a raw + must be sent as %2B)"
            )));
        }
    };
    let filter = match p.filter_flag.as_deref() {
        None | Some("") => None,
        Some(f) => Some(Flag::parse(f).ok_or_else(|| crate::flags::FlagsError::Unknown(f.into()))?),
    };
    let limit = match p.limit.as_deref() {
        None | Some("") => None,
        Some(l) => Some(
            l.parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| ApiError::BadRequest(format!("limit={l:?}: expected 1 to {MAX_PAGE}")))?,
        ),
    };
    let after = p
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| parse_cursor(c, order))
        .transpose()?;
    let deleted = truthy("deleted", p.deleted.as_deref())?;
    if deleted && filter.is_some() {
        return Err(ApiError::BadRequest("deleted blobs have no flags to filter on".into()));
    }
    let only_count = truthy("only_count", p.only_count.as_deref())?;
    let query = ListQuery {
        deleted,
        order,
        filter,
        after,
        limit,
        count_only: only_count,
    };
    let listing = state.storage.list(&user, ns, &query).await?;
    if only_count {
        return Ok(Json(serde_json::json!({ "count": listing.total })).into_response());
    }
    let mut response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        listing.json,
    )
        .into_response();
    if let Some(next) = listing.next {
        let mut url = format!("/blobs/{user}/?namespace={ns}");
        if let Some(o) = p.order_by.as_deref().filter(|o| !o.is_empty()) {
            url.push_str(&format!("&order_by={}", o.replace('+', "%2B")));
        }
        if let Some(f) = filter {
            url.push_str(&format!("&filter_flag={f}"));
        }
        if deleted {
            url.push_str("&deleted=true");
        }
        if let Some(l) = limit {
            url.push_str(&format!("&limit={l}"));
        }
        url.push_str(&format!("&cursor={}", format_cursor(&next)));
        response.headers_mut().insert(
            header::LINK,
            HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")).expect("names are ASCII"),
        );
    }
    Ok(response)
}

async fn usage(
    State(state): State<AppState>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.auth.authorize_user(&headers, &user)?;
    Ok(Json(state.storage.usage(&user).await?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // The namespace parameter: absent means `default`; present, it is taken exactly when
        // it is a valid name, and then unchanged.
        #[test]
        fn namespaces_are_taken_only_when_valid(s in "\\PC{0,12}|[A-Za-z0-9_.\\-/]{0,12}") {
            match namespace_of(Some(&s)) {
                Ok(ns) => {
                    prop_assert!(is_valid_name(&s));
                    prop_assert_eq!(ns, s.as_str());
                }
                Err(ApiError::InvalidName { what, .. }) => {
                    prop_assert!(!is_valid_name(&s));
                    prop_assert_eq!(what, "namespace");
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        // Cursors: anything a client sends is parsed or refused, never trusted blindly; what
        // the server writes reads back the same.
        #[test]
        fn cursors_round_trip_and_garbage_is_refused(
            garbage in "\\PC{0,30}",
            id in "[A-Za-z0-9_-]{1,40}",
            secs in 0u64..4_000_000_000,
            nanos in 0u32..1_000_000_000,
        ) {
            for order in [Order::Id, Order::OldestFirst, Order::NewestFirst] {
                if let Ok(c) = parse_cursor(&garbage, order) {
                    prop_assert!(is_valid_name(&c.id));
                    prop_assert_eq!(c.time.is_some(), order != Order::Id);
                }
            }
            let by_id = Cursor { time: None, id: id.clone() };
            prop_assert_eq!(parse_cursor(&format_cursor(&by_id), Order::Id).unwrap(), by_id);
            let by_date = Cursor { time: Some(UNIX_EPOCH + Duration::new(secs, nanos)), id };
            prop_assert_eq!(
                parse_cursor(&format_cursor(&by_date), Order::NewestFirst).unwrap(),
                by_date
            );
        }
    }

    #[test]
    fn absent_namespace_is_the_default() {
        assert_eq!(namespace_of(None).unwrap(), DEFAULT_NAMESPACE);
        assert!(namespace_of(Some("")).is_err());
    }
}
