//! The accept loop: connection limits, timeouts, optional TLS and graceful shutdown.
//!
//! Written on hyper directly (instead of `axum::serve`) because the limits an exposed server
//! needs are per connection: the time to send headers, an idle timeout, a cap on open
//! connections, and a TLS handshake that cannot stall the loop.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::http::idle::IdleTimeout;

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

/// Serves `app` on `listener` until `stop` is cancelled, then lets open requests finish
/// (for at most the shutdown timeout).
pub async fn run(listener: TcpListener, app: axum::Router, opts: ConnOptions, stop: CancellationToken) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(opts.max_connections));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .keep_alive(true)
        .max_header_size(MAX_HEAD_BYTES);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = stop.cancelled() => break,
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
        let io = IdleTimeout::new(tcp, opts.idle_timeout);
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        let http = http.clone();
        let tls = opts.tls.clone();
        let handshake_timeout = opts.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let result = match tls {
                None => watcher.watch(http.serve_connection(TokioIo::new(io), service)).await,
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(io)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    watcher
                        .watch(http.serve_connection(TokioIo::new(stream), service))
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(opts.shutdown_timeout) => {
            tracing::warn!("requests still running after the shutdown timeout; stopping anyway");
        }
    }
}
