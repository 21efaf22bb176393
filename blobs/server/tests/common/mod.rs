//! Starting the real `blobs-server` binary on loopback, and small request helpers.
#![allow(dead_code)]

pub mod cluster;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub use blobs_server::http::auth::header_value;
pub use reqwest::StatusCode;

pub const TOKENS: &str = "# test users\nalice:alice-token\nbob:bob-token\n";
pub const SERVICE_TOKENS: &str = "mx:mx-token\nbackup:backup-token\n";

pub struct Running {
    pub child: Child,
    pub addr: SocketAddr,
    pub services: Option<SocketAddr>,
    /// Holds `tokens`, `services.tokens` and `data/`.
    pub dir: PathBuf,
    /// On the filesystem backend (`data/` holds the blobs), not on S3.
    pub fs: bool,
    _tmp: Option<tempfile::TempDir>,
}

/// The storage a test's server runs on.
#[derive(Clone)]
pub enum Backend {
    Fs,
    /// The shared test cluster, under this key prefix.
    S3 {
        cluster: &'static cluster::Cluster,
        prefix: String,
    },
}

impl Backend {
    /// The S3 backend on the shared cluster with a fresh prefix; `None` (after a loud
    /// message) when Garage or etcd is not installed and not required.
    pub fn s3() -> Option<Backend> {
        cluster::available().then(|| Backend::S3 {
            cluster: cluster::Cluster::shared(),
            prefix: format!("t{}", uuid_like()),
        })
    }

    pub fn args(&self) -> (Vec<String>, Vec<(String, String)>) {
        match self {
            Backend::Fs => (Vec::new(), Vec::new()),
            Backend::S3 { cluster, prefix } => cluster.server_args(prefix),
        }
    }

    pub fn start(&self) -> Running {
        self.start_with(&[])
    }

    pub fn start_with(&self, extra: &[&str]) -> Running {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = self.start_in(tmp.path(), extra);
        r._tmp = Some(tmp);
        r
    }

    pub fn start_in(&self, dir: &Path, extra: &[&str]) -> Running {
        let (args, env) = self.args();
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        let mut r = start_in_env(dir, &all, &env);
        r.fs = matches!(self, Backend::Fs);
        r
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{t:x}{}{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Runs a test body on the filesystem backend, or on S3 when the cluster can run.
#[macro_export]
macro_rules! on_both_backends {
    ($fs:ident, $s3:ident, $case:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $fs() {
            $case(common::Backend::Fs).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $s3() {
            if let Some(b) = common::Backend::s3() {
                $case(b).await
            }
        }
    };
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary, without any `BLOBS_SERVER_*` setting of the environment the tests run in.
pub fn server_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_blobs-server"));
    for (k, _) in std::env::vars() {
        if k.starts_with("BLOBS_SERVER_") {
            c.env_remove(k);
        }
    }
    c
}

/// Runs the binary with `args`, then `--data-dir DIR/data --tokens DIR/tokens` (writing
/// the tokens file if there is none), which must fail; returns what it said on stderr.
pub fn refused(dir: &Path, args: &[&str]) -> String {
    let tokens = dir.join("tokens");
    if !tokens.exists() {
        std::fs::write(&tokens, TOKENS).unwrap();
    }
    let out = server_command()
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--tokens")
        .arg(&tokens)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A server with services enabled, in a fresh directory.
pub fn start() -> Running {
    start_with(&[])
}

pub fn start_with(extra: &[&str]) -> Running {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = start_in(tmp.path(), extra);
    r._tmp = Some(tmp);
    r
}

/// A server on `dir` (which may hold data of an earlier server).
pub fn start_in(dir: &Path, extra: &[&str]) -> Running {
    start_in_env(dir, extra, &[])
}

pub fn start_in_env(dir: &Path, extra: &[&str], env: &[(String, String)]) -> Running {
    let mut server = Command::new(env!("CARGO_BIN_EXE_blobs-server"));
    server.envs(env.iter().map(|(k, v)| (k, v)));
    start_command(server, dir, extra)
}

/// Starts `command`, which runs the server itself or runs it under a wrapper such as
/// strace, with the usual arguments added after its own.
pub fn start_command(command: Command, dir: &Path, extra: &[&str]) -> Running {
    start_command_with_tokens(command, dir, extra, TOKENS)
}

/// `start_command` with these users (`user:token` lines) instead of alice and bob.
pub fn start_command_with_tokens(mut command: Command, dir: &Path, extra: &[&str], tokens: &str) -> Running {
    std::fs::write(dir.join("tokens"), tokens).unwrap();
    std::fs::write(dir.join("services.tokens"), SERVICE_TOKENS).unwrap();
    let mut child = command
        .args(["--listen", "127.0.0.1:0", "--services-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--tokens")
        .arg(dir.join("tokens"))
        .arg("--services-tokens")
        .arg(dir.join("services.tokens"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = blobs_server::parse_listening_line(&line).unwrap_or_else(|| panic!("bad first line {line:?}"));
    assert!(addr.ip().is_loopback());
    line.clear();
    out.read_line(&mut line).unwrap();
    let services = blobs_server::parse_services_line(&line);
    assert!(services.is_some_and(|s| s.ip().is_loopback()), "{line:?}");
    Running {
        child,
        addr,
        services,
        dir: dir.to_owned(),
        fs: true,
        _tmp: None,
    }
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        assert!(path.starts_with('/'));
        format!("http://{}{}", self.addr, path)
    }

    pub fn services_url(&self, path: &str) -> String {
        assert!(path.starts_with('/'));
        format!("http://{}{}", self.services.unwrap(), path)
    }

    /// Takes the temporary directory out, so it outlives this server (for a restart).
    pub fn _tmp_keep(&mut self) -> Option<tempfile::TempDir> {
        self._tmp.take()
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub fn alice() -> String {
    header_value("alice", "alice-token")
}

pub fn mx() -> String {
    header_value("mx", "mx-token")
}

pub async fn send(s: &Running, method: reqwest::Method, path: &str, body: Option<Vec<u8>>) -> reqwest::Response {
    let mut req = client().request(method, s.url(path)).header("Authorization", alice());
    if let Some(b) = body {
        req = req.body(b);
    }
    req.send().await.unwrap()
}

pub async fn put(s: &Running, path: &str, body: &[u8]) -> StatusCode {
    send(s, reqwest::Method::PUT, path, Some(body.to_vec())).await.status()
}

pub async fn get(s: &Running, path: &str) -> reqwest::Response {
    send(s, reqwest::Method::GET, path, None).await
}

pub async fn get_json(s: &Running, path: &str) -> serde_json::Value {
    let r = get(s, path).await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

pub async fn post_flags(s: &Running, path: &str, body: &str) -> StatusCode {
    send(s, reqwest::Method::POST, path, Some(body.as_bytes().to_vec()))
        .await
        .status()
}

/// Sends raw bytes on a fresh connection and returns what came back before the server
/// closed it (or the read timed out). A `Host: a` header gets `Connection: close` added, so
/// that complete requests do not wait for the keep-alive to end.
pub fn raw(addr: SocketAddr, request: &[u8]) -> String {
    use std::io::{Read, Write};
    assert!(addr.ip().is_loopback());
    let marker = b"\r\nHost: a\r\n";
    let request = match request.windows(marker.len()).position(|w| w == marker) {
        Some(at) => [
            &request[..at + marker.len()],
            b"Connection: close\r\n",
            &request[at + marker.len()..],
        ]
        .concat(),
        None => request.to_vec(),
    };
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    s.write_all(&request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
