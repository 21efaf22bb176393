//! `blobs-server`: stores opaque, client-encrypted blobs per user.
//!
//! The binary is a thin wrapper over [`Server`]; tests and embedders can start one in-process
//! on real sockets. The public API is documented in `openapi.yaml` beside this crate.

pub mod admission;
pub mod config;
pub mod fairness;
pub mod flags;
pub mod fs;
pub mod http;
pub mod ids;
pub mod s3;
pub mod storage;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use config::Config;

/// What the server prints on stdout once it listens, followed by the public API's address.
/// This is always the first line.
pub const LISTENING_PREFIX: &str = "listening on http://";
/// The same, over TLS.
pub const LISTENING_TLS_PREFIX: &str = "listening on https://";
/// The line after it, when the services listener runs.
pub const SERVICES_PREFIX: &str = "services on http://";

/// Reads the address back from the line the server prints.
pub fn parse_listening_line(line: &str) -> Option<SocketAddr> {
    let line = line.trim();
    line.strip_prefix(LISTENING_PREFIX)
        .or_else(|| line.strip_prefix(LISTENING_TLS_PREFIX))?
        .parse()
        .ok()
}

/// Reads the services listener's address back from its line.
pub fn parse_services_line(line: &str) -> Option<SocketAddr> {
    line.trim().strip_prefix(SERVICES_PREFIX)?.parse().ok()
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tokens(#[from] http::tokens::TokenFileError),
    #[error("token file {0} names no user; nobody could use this server")]
    NoTokens(PathBuf),
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error(transparent)]
    Tls(#[from] http::tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A server bound to its sockets, not yet serving.
pub struct Server {
    public: tokio::net::TcpListener,
    services: Option<tokio::net::TcpListener>,
    state: http::api::AppState,
    conn: http::serve::ConnOptions,
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

impl Server {
    pub async fn bind(config: &Config) -> Result<Self, StartError> {
        let auth = http::auth::Auth::load(config.tokens.clone(), config.services_tokens.clone())?;
        if auth.users().is_empty() {
            return Err(StartError::NoTokens(config.tokens.clone()));
        }
        let tls = config.tls.as_ref().map(http::tls::acceptor).transpose()?;
        let opts = storage::StoreOptions::from_config(config);
        let storage = match &config.storage {
            config::StorageConfig::Fs => storage::Storage::Fs(fs::backend::FsBackend::open(&config.data_dir, opts)?),
            config::StorageConfig::S3(s3) => storage::Storage::S3(s3::backend::S3Backend::open(s3, opts).await?),
        };
        let public = bind(config.listen).await?;
        let services = match config.services_tokens {
            Some(_) => Some(bind(config.services_listen).await?),
            None => None,
        };
        let state = http::api::AppState(Arc::new(http::api::Inner {
            auth,
            storage,
            metrics: Arc::new(http::metrics::Metrics::default()),
            public_metrics: config.public_metrics,
            changes: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_writes.max(1))),
            upload_shares: fairness::Shares::new(config.max_writes_per_user, config.write_wait),
            change_shares: fairness::Shares::new(config.max_writes_per_user, config.write_wait),
            write_wait: config.write_wait,
        }));
        Ok(Self {
            public,
            services,
            state,
            conn: http::serve::ConnOptions {
                header_timeout: config.header_timeout,
                idle_timeout: config.idle_timeout,
                max_connections: config.max_connections,
                shutdown_timeout: config.shutdown_timeout,
                tls,
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.public.local_addr().expect("a bound listener has an address")
    }

    /// The services listener's address, when it runs.
    pub fn services_addr(&self) -> Option<SocketAddr> {
        self.services
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    pub fn is_tls(&self) -> bool {
        self.conn.tls.is_some()
    }

    /// A handle that re-reads the token files (what SIGHUP does).
    pub fn reloader(&self) -> impl Fn() -> Result<(), http::tokens::TokenFileError> + Send + 'static {
        let state = self.state.clone();
        move || state.auth.reload()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let stop = CancellationToken::new();
        let trigger = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            trigger.cancel();
        });
        // Loading every user's index up front makes the storage totals exact and spares the
        // first request of each user a directory walk; requests do not wait for it.
        use storage::StorageBackend as _;
        let preload = self.state.clone();
        tokio::spawn(async move {
            if let Err(e) = preload.storage.preload().await {
                tracing::error!(error = %e, "cannot load the blob index");
            }
        });
        let public = http::serve::run(
            self.public,
            http::api::router(self.state.clone()),
            self.conn.clone(),
            stop.clone(),
        );
        match self.services {
            Some(listener) => {
                let services = http::serve::run(
                    listener,
                    http::services::router(self.state.clone()),
                    http::serve::ConnOptions {
                        tls: None,
                        ..self.conn.clone()
                    },
                    stop,
                );
                tokio::join!(public, services);
            }
            None => public.await,
        }
        // Every request is done (or was cut off by the shutdown timeout).
        self.state.storage.shutdown().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Flag changes and deletions take one of `max_concurrent_writes` slots of their own before
    /// their task starts; with every slot taken (as by changes whose clients are gone), the
    /// next waits `write_wait` and gets 503, and nothing changes. The slots are taken here
    /// directly: no request can be made to hold one for long.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_past_their_bound_wait_then_get_503() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tokens"), "alice:alice-token\n").unwrap();
        let mut config = Config::new(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            dir.path().join("data"),
            dir.path().join("tokens"),
        );
        config.max_concurrent_writes = 2;
        config.write_wait = Duration::from_millis(500);
        let server = Server::bind(&config).await.unwrap();
        let addr = server.local_addr();
        assert!(addr.ip().is_loopback());
        let state = server.state.clone();
        tokio::spawn(server.serve(std::future::pending()));

        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let call = |method: reqwest::Method, path: &str, body: &'static str| {
            client
                .request(method, format!("http://{addr}{path}"))
                .header("Authorization", http::auth::header_value("alice", "alice-token"))
                .body(body)
                .send()
        };
        let put = call(reqwest::Method::PUT, "/blobs/alice/b1", "blob").await.unwrap();
        assert_eq!(put.status(), 200);

        let held = state.changes.clone().acquire_many_owned(2).await.unwrap();
        for (method, body) in [(reqwest::Method::POST, r#"["PENDING"]"#), (reqwest::Method::DELETE, "")] {
            let asked = Instant::now();
            let r = call(method.clone(), "/blobs/alice/b1", body).await.unwrap();
            assert_eq!(r.status(), 503, "{method}");
            assert_eq!(r.headers()["retry-after"], "1", "{method}");
            assert!(
                asked.elapsed() >= Duration::from_millis(450),
                "{method}: {:?}",
                asked.elapsed()
            );
        }
        // Uploads have their own slots.
        let other = call(reqwest::Method::PUT, "/blobs/alice/b2", "other").await.unwrap();
        assert_eq!(other.status(), 200);
        let flags = call(reqwest::Method::GET, "/blobs/alice/b1?only_flags=1", "")
            .await
            .unwrap();
        assert_eq!(
            flags.text().await.unwrap().trim(),
            "[]",
            "the refused flag change changed nothing"
        );

        drop(held);
        let r = call(reqwest::Method::POST, "/blobs/alice/b1", r#"["PENDING"]"#)
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = call(reqwest::Method::DELETE, "/blobs/alice/b1", "").await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(state.changes.available_permits(), 2, "every slot is given back");
    }
}
