//! The accept loop: connection limits, timeouts, optional TLS and graceful shutdown.
//!
//! Written on hyper directly (instead of `axum::serve`) because the limits an exposed server
//! needs are per connection: the time to send headers, an idle timeout, a cap on open
//! connections that idle ones cannot exhaust (`reclaim.rs`), and a TLS handshake that cannot
//! stall the loop.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http::idle::IdleTimeout;
use crate::http::reclaim::{Close, Connections, CountBusy};

/// Largest request head (request line and headers) accepted; hyper answers 431 past it.
const MAX_HEAD_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct ConnOptions {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
    pub tls: Option<TlsAcceptor>,
}

/// A connection that moved no byte for this long may be closed when every connection slot
/// is taken (it closes at once between requests, after its answer in one).
const RECLAIM_IDLE: Duration = Duration::from_secs(1);
/// Connections asked to close at a time, so that a burst of new clients does not close every
/// idle connection at once.
const RECLAIM_BATCH: usize = 64;

/// Serves `app` on `listener` until `stop` is cancelled, then lets open requests finish
/// (for at most the shutdown timeout).
pub async fn run(listener: TcpListener, app: axum::Router, opts: ConnOptions, stop: CancellationToken) {
    let tasks = TaskTracker::new();
    let connections = Connections::new();
    let slots = Arc::new(Semaphore::new(opts.max_connections));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .keep_alive(true)
        .max_header_size(MAX_HEAD_BYTES);
    loop {
        let Some(permit) = slot(&slots, &connections, &stop).await else {
            break;
        };
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Typically out of file descriptors: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        // Small responses must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let registered = connections.register();
        let io = IdleTimeout::new(tcp, opts.idle_timeout, registered.activity.clone());
        let service = TowerToHyperService::new(CountBusy::new(app.clone(), registered.busy.clone()));
        let http = http.clone();
        let tls = opts.tls.clone();
        let handshake_timeout = opts.header_timeout;
        let stop = stop.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let close = registered.close.clone();
            let result = match tls {
                None => until_closed(http.serve_connection(TokioIo::new(io), service), &stop, &close).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(io));
                    let stream = tokio::select! {
                        r = handshake => match r {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        },
                        // A handshake that stalls while the slots run out.
                        () = close.now.cancelled() => return,
                    };
                    until_closed(http.serve_connection(TokioIo::new(stream), service), &stop, &close).await
                }
            };
            drop(registered);
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tasks.close();
    tokio::select! {
        () = tasks.wait() => {}
        () = tokio::time::sleep(opts.shutdown_timeout) => {
            tracing::warn!("requests still running after the shutdown timeout; stopping anyway");
        }
    }
}

/// A connection slot; with every slot taken, asks idle connections to close (again every
/// `RECLAIM_IDLE` while none is free), so that one client's idle or slow connections cannot
/// keep the others out. `None` once the server stops.
async fn slot(
    slots: &Arc<Semaphore>,
    connections: &Connections,
    stop: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = slots.clone().try_acquire_owned() {
        return Some(permit);
    }
    loop {
        let asked = connections.reclaim(RECLAIM_IDLE, RECLAIM_BATCH);
        if asked > 0 {
            tracing::info!(
                asked,
                open = connections.len(),
                "every connection slot taken: closing idle connections"
            );
        }
        tokio::select! {
            p = slots.clone().acquire_owned() => return Some(p.expect("the semaphore is never closed")),
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(RECLAIM_IDLE / 2) => {}
        }
    }
}

/// Drives a connection until it ends; once the server stops or the connection is asked to
/// close after its answer, shuts it down gracefully (closed at once between requests, after
/// the answer in one); asked to close now, drops it.
async fn until_closed<C: GracefulConnection>(conn: C, stop: &CancellationToken, close: &Close) -> Result<(), C::Error> {
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => return r,
        () = stop.cancelled() => {}
        () = close.after.cancelled() => {}
        () = close.now.cancelled() => return Ok(()),
    }
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        r = conn.as_mut() => r,
        () = close.now.cancelled() => Ok(()),
    }
}
