//! A real blobs server on loopback (in process), managers on real stores, and helpers.
#![allow(dead_code)]

pub mod proxy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use blobs_client::{
    BlobManager, Config, Credentials, Event, FsStore, LocalStore, Remote, RemoteOptions, RetryPolicy, SqlcipherStore,
};
use blobs_crypto::BlobSecret;

pub const USER: &str = "alice";
pub const TOKEN: &str = "alice-token";
pub const SERVICE: &str = "mx";
pub const SERVICE_TOKEN: &str = "mx-token";

pub struct Server {
    pub dir: PathBuf,
    pub addr: SocketAddr,
    pub services: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Stops serving (in-flight requests finish).
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Delivers a message to the user's incoming box, as the MX does.
    pub async fn deliver(&self, id: &str, body: &[u8]) -> reqwest::StatusCode {
        let url = format!("http://{}/incoming/{USER}/{id}", self.services);
        assert!(url.starts_with("http://127.0.0.1:"));
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .put(url)
            .header(
                "Authorization",
                blobs_server::http::auth::header_value(SERVICE, SERVICE_TOKEN),
            )
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Path of a stored blob on the server's disk.
    pub fn blob_path(&self, namespace: &str, id: &str) -> PathBuf {
        walk(&self.data())
            .into_iter()
            .find(|p| p.file_name().is_some_and(|n| n == id) && p.components().any(|c| c.as_os_str() == namespace))
            .unwrap_or_else(|| panic!("no stored blob {namespace}/{id}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A server in `dir` (fresh, or holding an earlier server's data), configured by `tweak`.
pub async fn server_in(dir: &Path, tweak: impl FnOnce(&mut blobs_server::Config)) -> Server {
    std::fs::write(dir.join("tokens"), format!("{USER}:{TOKEN}\nbob:bob-token\n")).unwrap();
    std::fs::write(dir.join("services.tokens"), format!("{SERVICE}:{SERVICE_TOKEN}\n")).unwrap();
    let mut config = blobs_server::Config::new("127.0.0.1:0".parse().unwrap(), dir.join("data"), dir.join("tokens"));
    config.services_tokens = Some(dir.join("services.tokens"));
    config.services_listen = "127.0.0.1:0".parse().unwrap();
    tweak(&mut config);
    assert!(config.listen.ip().is_loopback() && config.services_listen.ip().is_loopback());
    let server = blobs_server::Server::bind(&config).await.unwrap();
    let addr = server.local_addr();
    let services = server.services_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = server
            .serve(async move {
                let _ = rx.await;
            })
            .await;
    });
    Server {
        dir: dir.to_owned(),
        addr,
        services,
        stop: Some(tx),
        task: Some(task),
    }
}

pub fn secret() -> BlobSecret {
    BlobSecret::new(vec![7u8; 512]).unwrap()
}

pub const STORE_KEY: [u8; 32] = [42; 32];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlcipher,
    Fs,
}

pub fn open_store(kind: StoreKind, path: &Path) -> Arc<dyn LocalStore> {
    match kind {
        StoreKind::Sqlcipher => Arc::new(SqlcipherStore::open(path, &STORE_KEY).unwrap()),
        StoreKind::Fs => Arc::new(FsStore::open(path, &STORE_KEY).unwrap()),
    }
}

/// A config that gives up fast: tests must not wait for long backoffs.
pub fn fast_config() -> Config {
    Config {
        concurrency: 4,
        retry: RetryPolicy {
            max_attempts: 4,
            base: Duration::from_millis(20),
            cap: Duration::from_millis(200),
        },
        checkpoint_every: 64 * 1024,
        progress_every: 16 * 1024,
        ..Config::default()
    }
}

pub fn remote_to(url: &str) -> Remote {
    Remote::with_options(
        url,
        &Credentials {
            user: USER.into(),
            token: TOKEN.into(),
        },
        &RemoteOptions {
            read_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            ..RemoteOptions::default()
        },
    )
    .unwrap()
}

pub fn manager_with(url: &str, store: Arc<dyn LocalStore>, config: Config) -> BlobManager {
    BlobManager::with_config(store, remote_to(url), secret(), config)
}

/// A manager on a fresh SQLCipher store named `name` in `dir`.
pub fn manager(server: &Server, name: &str) -> BlobManager {
    let store = open_store(StoreKind::Sqlcipher, &server.dir.join(name));
    manager_with(&server.url(), store, fast_config())
}

pub fn payload(i: usize, len: usize) -> Vec<u8> {
    let marker = format!("PLAINTEXT-MARKER-{i:04}-");
    marker.bytes().cycle().take(len).collect()
}

/// Random-looking bytes (no layer can compress them).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Collects events until the returned handle is asked for them.
pub struct Events {
    rx: tokio::sync::broadcast::Receiver<Event>,
    seen: Vec<Event>,
}

impl Events {
    pub fn of(m: &BlobManager) -> Self {
        Self {
            rx: m.subscribe(),
            seen: Vec::new(),
        }
    }

    /// Everything received so far.
    pub fn drain(&mut self) -> &[Event] {
        while let Ok(e) = self.rx.try_recv() {
            self.seen.push(e);
        }
        &self.seen
    }
}
