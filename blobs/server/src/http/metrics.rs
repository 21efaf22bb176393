//! Prometheus metrics: requests, bytes, latencies, in-flight requests, storage usage.
//!
//! Labels are the route template (never a user or blob id, so the series stay few and say
//! nothing about who stores what), the method and the status.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::storage::Totals;

/// A route template as a label. It shares the router's own copy of the template (a
/// reference count, not a new string per request).
#[derive(Clone, Debug)]
pub struct Route(Option<MatchedPath>);

impl Route {
    fn as_str(&self) -> &str {
        self.0.as_ref().map_or("unmatched", MatchedPath::as_str)
    }
}

impl std::hash::Hash for Route {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub listener: &'static str,
    pub route: Route,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub listener: &'static str,
    pub route: Route,
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

/// Counts a request in `in_flight` until it ends, answered or dropped.
struct InFlight(Arc<Metrics>);

impl InFlight {
    fn enter(metrics: &Arc<Metrics>) -> Self {
        metrics.in_flight.inc();
        Self(metrics.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.dec();
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

/// Middleware: counts and times every routed request. A tower layer rather than
/// `axum::middleware::from_fn`, which boxes two futures and clones the inner service on
/// every request: on a 10 KiB GET that showed in the profile (`BENCHMARKS.md`).
#[derive(Clone)]
pub struct TrackLayer(pub Tracked);

impl<S> tower_layer::Layer<S> for TrackLayer {
    type Service = Track<S>;
    fn layer(&self, inner: S) -> Track<S> {
        Track {
            inner,
            tracked: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Track<S> {
    inner: S,
    tracked: Tracked,
}

impl<S> tower_service::Service<Request> for Track<S>
where
    S: tower_service::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Tracking<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        blobs_crypto::injected_cost::request();
        let route = Route(req.extensions().get::<MatchedPath>().cloned());
        let method = method_label(req.method());
        // Counted in before the inner call, so that even a panic there counts it out.
        let in_flight = InFlight::enter(&self.tracked.metrics);
        Tracking {
            inner: self.inner.call(req),
            in_flight,
            listener: self.tracked.listener,
            route,
            method,
            start: Instant::now(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request being answered; records its metrics when the response is ready.
    pub struct Tracking<F> {
        #[pin]
        inner: F,
        in_flight: InFlight,
        listener: &'static str,
        route: Route,
        method: &'static str,
        start: Instant,
    }
}

impl<F, E> Future for Tracking<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let elapsed = this.start.elapsed();
        let status = response.status().as_u16();
        let metrics = &this.in_flight.0;
        tracing::debug!(
            route = this.route.as_str(),
            method = *this.method,
            status,
            ms = elapsed.as_secs_f64() * 1e3,
            "request"
        );
        metrics
            .latency
            .get_or_create(&RouteLabels {
                listener: this.listener,
                route: this.route.clone(),
                method: this.method,
            })
            .observe(elapsed.as_secs_f64());
        metrics
            .requests
            .get_or_create(&RequestLabels {
                listener: this.listener,
                route: this.route.clone(),
                method: this.method,
                status,
            })
            .inc();
        Poll::Ready(Ok(response))
    }
}
