//! Prometheus metrics: requests, bytes, latencies, in-flight requests, storage usage.
//!
//! Labels are the route template (never a user or blob id, so the series stay few and say
//! nothing about who stores what), the method and the status.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::storage::Totals;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub listener: &'static str,
    pub route: String,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub listener: &'static str,
    pub route: String,
    pub method: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub in_flight: Gauge,
    pub bytes_received: Counter,
    pub bytes_sent: Counter,
    used_bytes: Gauge,
    blobs: Gauge,
    users: Gauge,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 52 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 21))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("blobs");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let in_flight = Gauge::default();
        let bytes_received = Counter::default();
        let bytes_sent = Counter::default();
        let used_bytes = Gauge::default();
        let blobs = Gauge::default();
        let users = Gauge::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response headers",
            latency.clone(),
        );
        registry.register("http_requests_in_flight", "Requests being handled", in_flight.clone());
        registry.register(
            "blob_bytes_received",
            "Bytes of blobs stored by uploads and deliveries",
            bytes_received.clone(),
        );
        registry.register("blob_bytes_sent", "Bytes of blob downloads started", bytes_sent.clone());
        registry.register(
            "storage_used_bytes",
            "Bytes of stored blobs of the users loaded so far",
            used_bytes.clone(),
        );
        registry.register("storage_blobs", "Stored blobs", blobs.clone());
        registry.register("storage_users", "Users whose index is loaded", users.clone());
        Self {
            registry,
            requests,
            latency,
            in_flight,
            bytes_received,
            bytes_sent,
            used_bytes,
            blobs,
            users,
        }
    }
}

impl Metrics {
    /// The text exposition format, with storage gauges read now.
    pub fn render(&self, totals: &Totals) -> String {
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as i64;
        self.used_bytes.set(get(&totals.used_bytes));
        self.blobs.set(get(&totals.blobs));
        self.users.set(get(&totals.users));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Which listener a router serves, for the `listener` label.
#[derive(Clone)]
pub struct Tracked {
    pub metrics: Arc<Metrics>,
    pub listener: &'static str,
}

struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The method as a label without allocating; methods no route has are lumped together.
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Middleware: counts and times every routed request.
pub async fn track(State(t): State<Tracked>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = method_label(req.method());
    t.metrics.in_flight.inc();
    let _guard = InFlight(&t.metrics.in_flight);
    let start = Instant::now();
    let response = next.run(req).await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    tracing::debug!(route, method, status, ms = elapsed.as_secs_f64() * 1e3, "request");
    t.metrics
        .latency
        .get_or_create(&RouteLabels {
            listener: t.listener,
            route: route.clone(),
            method,
        })
        .observe(elapsed.as_secs_f64());
    t.metrics
        .requests
        .get_or_create(&RequestLabels {
            listener: t.listener,
            route,
            method,
            status,
        })
        .inc();
    response
}
