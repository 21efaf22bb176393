//! `blobs-server`: stores opaque, client-encrypted blobs per user.
//!
//! The binary is a thin wrapper over [`Server`]; tests and embedders can start one in-process
//! on a real socket.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod fs_backend;
pub mod ids;
pub mod tokens;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use config::Config;

/// What the server prints on stdout once it listens, followed by the address.
pub const LISTENING_PREFIX: &str = "listening on http://";

/// Reads the address back from the line the server prints.
pub fn parse_listening_line(line: &str) -> Option<SocketAddr> {
    line.trim().strip_prefix(LISTENING_PREFIX)?.parse().ok()
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tokens(#[from] tokens::TokenFileError),
    #[error("token file {0} names no user; nobody could use this server")]
    NoTokens(PathBuf),
    #[error(transparent)]
    Storage(#[from] fs_backend::StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A server bound to its socket, not yet serving.
pub struct Server {
    listener: tokio::net::TcpListener,
    app: axum::Router,
}

impl Server {
    pub async fn bind(config: &Config) -> Result<Self, StartError> {
        let tokens = tokens::Tokens::load(&config.tokens)?;
        if tokens.is_empty() {
            return Err(StartError::NoTokens(config.tokens.clone()));
        }
        let storage =
            fs_backend::FsBackend::open(&config.data_dir, config.max_concurrent_writes, config.max_blob_size)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?;
        let app = api::router(api::AppState::new(tokens, storage));
        Ok(Self { listener, app })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        use axum::serve::ListenerExt as _;
        let listener = self.listener.tap_io(|tcp| {
            // Small responses must not wait for Nagle's algorithm.
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, self.app).with_graceful_shutdown(shutdown).await
    }
}
