//! Configuration: a TOML file, environment variables and flags, in rising precedence.
//!
//! [`Config`] is the resolved result that the library uses; [`ServeArgs`] is what the binary
//! parses (flags and `BLOBS_SERVER_*` variables); [`FileConfig`] is the file. Every key of
//! the file has a flag of the same name with dashes, and a variable in capitals.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ids::is_valid_name;

/// The resolved configuration of one server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address of the public blobs API.
    pub listen: SocketAddr,
    /// Directory that holds the blobs (created if missing).
    pub data_dir: PathBuf,
    /// Users' token file: `user:token` lines.
    pub tokens: PathBuf,
    /// Services' token file (`service:token` lines); the services listener (incoming box,
    /// backups, metrics) runs only when this is set.
    pub services_tokens: Option<PathBuf>,
    /// Address of the services listener.
    pub services_listen: SocketAddr,
    /// Serve the public API over TLS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
    /// Uploads and deliveries written at the same time, and apart from them as many flag
    /// changes and deletions; more wait their turn.
    pub max_concurrent_writes: usize,
    /// Of those, the uploads (and deliveries to) one user may have in flight, and as many of
    /// the flag changes and deletions: one user cannot hold everyone's slots.
    pub max_writes_per_user: usize,
    /// How uploads to the filesystem backend are made durable before their 200.
    pub durability: Durability,
    /// How long a write waits for a write slot before it gets 503.
    pub write_wait: Duration,
    /// Largest accepted blob, in bytes.
    pub max_blob_size: u64,
    /// Bytes each user may store (`None`: unlimited), unless `user_quotas` says otherwise.
    pub quota: Option<u64>,
    /// Per-user quotas, overriding `quota`.
    pub user_quotas: HashMap<String, u64>,
    /// A PROCESSING flag older than this counts as PENDING again, so that items reserved by
    /// a consumer that crashed are processed by another.
    pub processing_timeout: Duration,
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// A connection that moves no byte in either direction for this long is closed.
    pub idle_timeout: Duration,
    /// On SIGTERM, how long in-flight requests may take to finish.
    pub shutdown_timeout: Duration,
    /// Open connections per listener; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// Threads of the async runtime (default: one per core).
    pub worker_threads: Option<usize>,
    /// How long a thread of the runtime's blocking pool (file IO) stays idle before it exits.
    pub blocking_keep_alive: Duration,
    /// Serve `/metrics` on the public listener too (it is always on the services listener).
    pub public_metrics: bool,
    pub log_format: LogFormat,
    /// Where blobs are kept: `data_dir` (the default) or an S3 bucket.
    pub storage: StorageConfig,
}

/// Which storage backend serves, and how to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StorageConfig {
    /// Files under `data_dir`, one server per directory.
    #[default]
    Fs,
    /// An S3 bucket (bytes) and an etcd cluster (index and compare-and-set), shared by any
    /// number of servers.
    S3(S3Config),
}

#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `http(s)://host:port` of the S3 API.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// etcd client URLs (`http://host:port`), tried in turn.
    pub etcd: Vec<String>,
    /// Prefix of every key this server writes in the bucket and in etcd, so that several
    /// deployments can share one bucket and one etcd.
    pub prefix: String,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<hidden>")
            .field("etcd", &self.etcd)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// `[storage]` of the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStorage {
    backend: Option<BackendKind>,
    endpoint: Option<String>,
    bucket: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    etcd: Option<Vec<String>>,
    prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Fs,
    S3,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How an upload is made durable before its 200; either way its bytes are durable before its
/// name is, and a crash never shows a partial blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `group` while the filesystem's syncs are quick, `fsync` while another writer makes
    /// them slow and after a sync failed (`fs::group_sync::Adapt`); `fsync` alone before
    /// Linux 5.8.
    #[default]
    Auto,
    /// fsync the file, link it, fsync its directory: each upload on its own.
    Fsync,
    /// One `syncfs` for all uploads in flight (group commit). Cheaper under concurrent
    /// uploads (BENCHMARKS.md), but it flushes the whole filesystem, however much another
    /// program has written to it: for a data directory on a filesystem of its own.
    Group,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Config {
    /// A configuration with every optional setting at its default.
    pub fn new(listen: SocketAddr, data_dir: PathBuf, tokens: PathBuf) -> Self {
        Self {
            listen,
            data_dir,
            tokens,
            services_tokens: None,
            services_listen: SocketAddr::from(([127, 0, 0, 1], 2525)),
            tls: None,
            max_concurrent_writes: 50,
            max_writes_per_user: 25,
            durability: Durability::Auto,
            write_wait: Duration::from_secs(30),
            max_blob_size: 4 << 30,
            quota: None,
            user_quotas: HashMap::new(),
            processing_timeout: Duration::from_secs(600),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            worker_threads: None,
            // Tokio's own default.
            blocking_keep_alive: Duration::from_secs(10),
            public_metrics: true,
            log_format: LogFormat::Text,
            storage: StorageConfig::Fs,
        }
    }

    /// The quota of one user.
    pub fn quota_of(&self, user: &str) -> Option<u64> {
        self.user_quotas.get(user).copied().or(self.quota)
    }

    /// Resolves flags and environment over the file named by `--config`, over the defaults.
    pub fn load(args: ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        Self::resolve(args, file)
    }

    fn resolve(a: ServeArgs, f: FileConfig) -> Result<Self, ConfigError> {
        let missing = |key: &'static str| ConfigError::Missing { key };
        let fs_storage = f.storage.unwrap_or_default();
        let backend = a.storage_backend.or(fs_storage.backend).unwrap_or_default();
        let data_dir = match (a.data_dir.or(f.data_dir), backend) {
            (Some(d), _) => d,
            (None, BackendKind::Fs) => return Err(missing("data_dir")),
            // Unused by the S3 backend.
            (None, BackendKind::S3) => PathBuf::new(),
        };
        let tokens = a.tokens.or(f.tokens).ok_or(missing("tokens"))?;
        let listen = a
            .listen
            .or(f.listen)
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 2424)));
        let mut c = Config::new(listen, data_dir, tokens);
        c.services_tokens = a.services_tokens.or(f.services_tokens);
        if let Some(v) = a.services_listen.or(f.services_listen) {
            c.services_listen = v;
        }
        c.tls = match (a.tls_cert.or(f.tls_cert), a.tls_key.or(f.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    key: "tls_cert",
                    problem: "tls_cert and tls_key must be given together".into(),
                });
            }
        };
        macro_rules! take {
            ($field:ident) => {
                if let Some(v) = a.$field.or(f.$field) {
                    c.$field = v.into();
                }
            };
        }
        take!(max_concurrent_writes);
        // Half of the global bound unless set: with every slot it may take held, one user
        // still leaves the other half to everyone else.
        c.max_writes_per_user = a
            .max_writes_per_user
            .or(f.max_writes_per_user)
            .unwrap_or(c.max_concurrent_writes.div_ceil(2));
        take!(durability);
        take!(write_wait);
        take!(max_blob_size);
        take!(processing_timeout);
        take!(header_timeout);
        take!(idle_timeout);
        take!(shutdown_timeout);
        take!(max_connections);
        take!(blocking_keep_alive);
        take!(public_metrics);
        take!(log_format);
        c.worker_threads = a.worker_threads.or(f.worker_threads);
        c.quota = a.quota.or(f.quota).map(u64::from).filter(|&q| q > 0);
        if backend == BackendKind::S3 {
            let s = fs_storage;
            let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            let need = |v: Option<String>, key: &'static str, how: &str| {
                v.ok_or_else(|| ConfigError::Invalid {
                    key,
                    problem: format!("the S3 backend needs it: {how}"),
                })
            };
            c.storage = StorageConfig::S3(S3Config {
                endpoint: need(
                    a.s3_endpoint.or(s.endpoint),
                    "storage.endpoint",
                    "--s3-endpoint, BLOBS_SERVER_S3_ENDPOINT or endpoint in [storage]",
                )?,
                bucket: need(
                    a.s3_bucket.or(s.bucket),
                    "storage.bucket",
                    "--s3-bucket, BLOBS_SERVER_S3_BUCKET or bucket in [storage]",
                )?,
                region: a.s3_region.or(s.region).unwrap_or_else(|| "garage".into()),
                access_key_id: need(
                    env("AWS_ACCESS_KEY_ID").or(s.access_key_id),
                    "storage.access_key_id",
                    "AWS_ACCESS_KEY_ID or access_key_id in [storage]",
                )?,
                secret_access_key: need(
                    env("AWS_SECRET_ACCESS_KEY").or(s.secret_access_key),
                    "storage.secret_access_key",
                    "AWS_SECRET_ACCESS_KEY or secret_access_key in [storage]",
                )?,
                etcd: a
                    .etcd
                    .map(|e| {
                        e.split(',')
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .or(s.etcd)
                    .filter(|e: &Vec<String>| !e.is_empty())
                    .ok_or_else(|| ConfigError::Invalid {
                        key: "storage.etcd",
                        problem:
                            "the S3 backend needs etcd for its index: --etcd, BLOBS_SERVER_ETCD or etcd in [storage]"
                                .into(),
                    })?,
                prefix: a.s3_prefix.or(s.prefix).unwrap_or_default(),
            });
            if let StorageConfig::S3(s3) = &c.storage {
                for url in std::iter::once(&s3.endpoint).chain(&s3.etcd) {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(ConfigError::Invalid {
                            key: "storage",
                            problem: format!("{url:?} is not an http:// or https:// URL"),
                        });
                    }
                }
            }
        }
        for (user, q) in f.user_quotas.unwrap_or_default() {
            if !is_valid_name(&user) {
                return Err(ConfigError::Invalid {
                    key: "user_quotas",
                    problem: format!("{user:?} is not a valid user name"),
                });
            }
            c.user_quotas.insert(user, q.0);
        }
        for (key, zero) in [
            ("max_concurrent_writes", c.max_concurrent_writes == 0),
            ("max_writes_per_user", c.max_writes_per_user == 0),
            ("max_connections", c.max_connections == 0),
            ("max_blob_size", c.max_blob_size == 0),
            ("worker_threads", c.worker_threads == Some(0)),
            ("header_timeout", c.header_timeout.is_zero()),
            ("idle_timeout", c.idle_timeout.is_zero()),
            ("blocking_keep_alive", c.blocking_keep_alive.is_zero()),
        ] {
            if zero {
                return Err(ConfigError::Invalid {
                    key,
                    problem: "must be greater than zero".into(),
                });
            }
        }
        if c.max_writes_per_user > c.max_concurrent_writes {
            return Err(ConfigError::Invalid {
                key: "max_writes_per_user",
                problem: format!(
                    "{} is more than max_concurrent_writes ({}), the bound it is a share of",
                    c.max_writes_per_user, c.max_concurrent_writes
                ),
            });
        }
        if c.services_tokens.is_some() && c.services_listen == c.listen && c.listen.port() != 0 {
            return Err(ConfigError::Invalid {
                key: "services_listen",
                problem: format!("the services listener cannot share {}", c.listen),
            });
        }
        Ok(c)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key} is not set: pass --{flag}, set BLOBS_SERVER_{env} or put {key} in the config file", flag = key.replace('_', "-"), env = key.to_uppercase())]
    Missing { key: &'static str },
    #[error("{key}: {problem}")]
    Invalid { key: &'static str, problem: String },
}

/// Flags and environment of `blobs-server` when it serves.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file; flags and environment variables override its keys.
    #[arg(long, env = "BLOBS_SERVER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of the public API [default: 127.0.0.1:2424]. Port 0 picks a free port; the
    /// bound address is printed on stdout as `listening on http://ADDR`.
    #[arg(long, env = "BLOBS_SERVER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory that holds the blobs (created if missing).
    #[arg(long, env = "BLOBS_SERVER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Users' token file: one `user:token` per line, `#` starts a comment.
    #[arg(long, env = "BLOBS_SERVER_TOKENS")]
    pub tokens: Option<PathBuf>,
    /// Services' token file (`service:token` lines). Enables the services listener: incoming
    /// box, backups, metrics. Its address is printed as `services on http://ADDR`.
    #[arg(long, env = "BLOBS_SERVER_SERVICES_TOKENS")]
    pub services_tokens: Option<PathBuf>,
    /// Address of the services listener [default: 127.0.0.1:2525].
    #[arg(long, env = "BLOBS_SERVER_SERVICES_LISTEN")]
    pub services_listen: Option<SocketAddr>,
    /// PEM certificate chain: serve the public API over TLS (with --tls-key).
    #[arg(long, env = "BLOBS_SERVER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "BLOBS_SERVER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Uploads written at the same time, and apart from them as many flag changes and
    /// deletions [default: 50].
    #[arg(long, env = "BLOBS_SERVER_MAX_CONCURRENT_WRITES")]
    pub max_concurrent_writes: Option<usize>,
    /// Of those, the uploads one user may have in flight, and as many flag changes and
    /// deletions; more of theirs wait, while other users go on [default: half of
    /// --max-concurrent-writes].
    #[arg(long, env = "BLOBS_SERVER_MAX_WRITES_PER_USER")]
    pub max_writes_per_user: Option<usize>,
    /// How uploads to the filesystem backend become durable before their 200: fsync (each
    /// file and directory), group (syncfs calls shared by the uploads in flight; for a data
    /// directory on a filesystem of its own, as each flushes the whole filesystem; Linux 5.8
    /// or later), or auto (group until the syncs' moving mean exceeds 25 ms, as another
    /// writer on the filesystem makes it; then fsync, probing once a second, until the mean is
    /// under 10 ms) [default: auto].
    #[arg(long, env = "BLOBS_SERVER_DURABILITY", value_enum)]
    pub durability: Option<Durability>,
    /// How long a write waits for a write slot before 503, e.g. `30s` [default: 30s].
    #[arg(long, env = "BLOBS_SERVER_WRITE_WAIT")]
    pub write_wait: Option<Seconds>,
    /// Largest accepted blob: bytes, or a size such as `4 GiB` [default: 4 GiB].
    #[arg(long, env = "BLOBS_SERVER_MAX_BLOB_SIZE")]
    pub max_blob_size: Option<Size>,
    /// Bytes each user may store, e.g. `200 MiB`; 0 means unlimited [default: unlimited].
    #[arg(long, env = "BLOBS_SERVER_QUOTA")]
    pub quota: Option<Size>,
    /// Age at which a PROCESSING flag counts as PENDING again [default: 10m].
    #[arg(long, env = "BLOBS_SERVER_PROCESSING_TIMEOUT")]
    pub processing_timeout: Option<Seconds>,
    /// Time a client has to send a request's headers [default: 10s].
    #[arg(long, env = "BLOBS_SERVER_HEADER_TIMEOUT")]
    pub header_timeout: Option<Seconds>,
    /// Close connections that move no byte for this long [default: 60s].
    #[arg(long, env = "BLOBS_SERVER_IDLE_TIMEOUT")]
    pub idle_timeout: Option<Seconds>,
    /// On SIGTERM, how long in-flight requests may take [default: 30s].
    #[arg(long, env = "BLOBS_SERVER_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<Seconds>,
    /// Open connections per listener [default: 10000].
    #[arg(long, env = "BLOBS_SERVER_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Threads of the async runtime [default: one per core].
    #[arg(long, env = "BLOBS_SERVER_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// How long an idle thread of the blocking pool (file IO) waits for work before it
    /// exits [default: 10s]. The benchmark's count round sets a day, so that no thread
    /// exit falls inside what it counts.
    #[arg(long, env = "BLOBS_SERVER_BLOCKING_KEEP_ALIVE")]
    pub blocking_keep_alive: Option<Seconds>,
    /// Serve /metrics on the public listener too [default: true].
    #[arg(long, env = "BLOBS_SERVER_PUBLIC_METRICS")]
    pub public_metrics: Option<bool>,
    /// Log format on stderr [default: text].
    #[arg(long, env = "BLOBS_SERVER_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Storage backend: fs (files under --data-dir) or s3 (a bucket plus etcd, shared by
    /// several servers) [default: fs]. S3 credentials come from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY or the [storage] table of the file.
    #[arg(long, env = "BLOBS_SERVER_STORAGE_BACKEND", value_enum)]
    pub storage_backend: Option<BackendKind>,
    /// S3 API endpoint, e.g. http://127.0.0.1:3900.
    #[arg(long, env = "BLOBS_SERVER_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 bucket.
    #[arg(long, env = "BLOBS_SERVER_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// S3 region [default: garage].
    #[arg(long, env = "BLOBS_SERVER_S3_REGION")]
    pub s3_region: Option<String>,
    /// Key prefix in the bucket and in etcd [default: none].
    #[arg(long, env = "BLOBS_SERVER_S3_PREFIX")]
    pub s3_prefix: Option<String>,
    /// etcd client URLs, comma-separated, e.g. http://127.0.0.1:2379.
    #[arg(long, env = "BLOBS_SERVER_ETCD")]
    pub etcd: Option<String>,
}

/// The configuration file. Unknown keys are errors, so that a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    tokens: Option<PathBuf>,
    services_tokens: Option<PathBuf>,
    services_listen: Option<SocketAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_concurrent_writes: Option<usize>,
    max_writes_per_user: Option<usize>,
    durability: Option<Durability>,
    write_wait: Option<Seconds>,
    max_blob_size: Option<Size>,
    quota: Option<Size>,
    user_quotas: Option<HashMap<String, Size>>,
    processing_timeout: Option<Seconds>,
    header_timeout: Option<Seconds>,
    idle_timeout: Option<Seconds>,
    shutdown_timeout: Option<Seconds>,
    max_connections: Option<usize>,
    worker_threads: Option<usize>,
    blocking_keep_alive: Option<Seconds>,
    public_metrics: Option<bool>,
    log_format: Option<LogFormat>,
    storage: Option<FileStorage>,
}

impl FileConfig {
    /// Reads a file; relative paths in it are relative to the file's directory.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut f: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut f.data_dir,
            &mut f.tokens,
            &mut f.services_tokens,
            &mut f.tls_cert,
            &mut f.tls_key,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(f)
    }
}

/// A byte count: an integer, or a string such as `200 MiB` or `1.5 GB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl From<Size> for u64 {
    fn from(s: Size) -> u64 {
        s.0
    }
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u64>() {
            return Ok(Size(n));
        }
        s.parse::<bytesize::ByteSize>()
            .map(|b| Size(b.as_u64()))
            .map_err(|_| format!("{s:?} is not a size (expected bytes or e.g. \"200 MiB\")"))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        int_or_text(d, Size, "expected a size: bytes, or a string such as \"200 MiB\"")
    }
}

/// Reads a value written as an integer or as a string that `T` parses; `expected` is the
/// message for anything else (serde adds the line and the key).
fn int_or_text<'de, D, T>(d: D, from_int: fn(u64) -> T, expected: &'static str) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }
    match Raw::deserialize(d).map_err(|_| serde::de::Error::custom(expected))? {
        Raw::Int(n) => Ok(from_int(n)),
        Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
    }
}

/// A duration: whole seconds, or a string such as `90s`, `10m` or `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl From<Seconds> for Duration {
    fn from(s: Seconds) -> Duration {
        s.0
    }
}

impl std::str::FromStr for Seconds {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u64>() {
            return Ok(Seconds(Duration::from_secs(n)));
        }
        humantime::parse_duration(s)
            .map(Seconds)
            .map_err(|e| format!("{s:?} is not a duration ({e}); expected e.g. \"30s\" or \"10m\""))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        int_or_text(
            d,
            |n| Seconds(Duration::from_secs(n)),
            "expected a duration: seconds, or a string such as \"30s\"",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<FileConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, text).unwrap();
        FileConfig::read(&path).map_err(|e| e.to_string())
    }

    #[test]
    fn a_wrong_type_names_the_key_and_line() {
        let err = file("data_dir = \"d\"\ntokens = \"t\"\nmax_concurrent_writes = \"fifty\"\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("max_concurrent_writes"), "{err}");
        let err = file("quota = \"lots\"\n").unwrap_err();
        assert!(err.contains("line 1") && err.contains("quota"), "{err}");
        let err = file("\n\nidle_timeout = \"soon\"\n").unwrap_err();
        assert!(err.contains("line 3") && err.contains("idle_timeout"), "{err}");
        let err = file("listen = \"127.0.0.1\"\n").unwrap_err();
        assert!(err.contains("line 1") && err.contains("listen"), "{err}");
        let err = file("# ok\nmax_conections = 5\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("max_conections"), "{err}");
        let err = file("durability = \"fast\"\n").unwrap_err();
        assert!(
            err.contains("line 1") && err.contains("fsync") && err.contains("group"),
            "{err}"
        );
    }

    #[test]
    fn the_packaged_config_is_valid_and_a_user_share_defaults_to_half_the_bound() {
        let packaged = FileConfig::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/config.toml")).unwrap();
        let c = Config::resolve(ServeArgs::default(), packaged).unwrap();
        assert_eq!((c.max_concurrent_writes, c.max_writes_per_user), (50, 25));
        let f = file("data_dir = \"d\"\ntokens = \"t\"\nmax_concurrent_writes = 7\n").unwrap();
        assert_eq!(Config::resolve(ServeArgs::default(), f).unwrap().max_writes_per_user, 4);
        let f = file("data_dir = \"d\"\ntokens = \"t\"\nmax_writes_per_user = 0\n").unwrap();
        let err = Config::resolve(ServeArgs::default(), f).unwrap_err().to_string();
        assert!(err.contains("max_writes_per_user"), "{err}");
    }

    #[test]
    fn durability_defaults_to_auto_and_the_others_are_read_from_the_file() {
        let read = |text: &str| {
            let f = file(&format!("data_dir = \"d\"\ntokens = \"t\"\n{text}")).unwrap();
            Config::resolve(ServeArgs::default(), f).unwrap().durability
        };
        assert_eq!(read(""), Durability::Auto);
        assert_eq!(read("durability = \"group\"\n"), Durability::Group);
        assert_eq!(read("durability = \"fsync\"\n"), Durability::Fsync);
    }

    #[test]
    fn flags_override_the_file_and_sizes_read_like_people_write_them() {
        let f = file(
            "data_dir = \"data\"\ntokens = \"/etc/t\"\nquota = \"200 MiB\"\nidle_timeout = \"2m\"\n\
             max_blob_size = 1000\nblocking_keep_alive = \"1d\"\n[user_quotas]\nalice = \"1 GiB\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            max_blob_size: Some(Size(5)),
            ..Default::default()
        };
        let c = Config::resolve(args, f).unwrap();
        assert!(c.data_dir.ends_with("data") && c.data_dir.is_absolute());
        assert_eq!(c.tokens, PathBuf::from("/etc/t"));
        assert_eq!(c.quota, Some(200 << 20));
        assert_eq!(c.quota_of("alice"), Some(1 << 30));
        assert_eq!(c.quota_of("bob"), Some(200 << 20));
        assert_eq!(c.idle_timeout, Duration::from_secs(120));
        assert_eq!(c.blocking_keep_alive, Duration::from_secs(86_400));
        assert_eq!(c.max_blob_size, 5);
        let c = Config::resolve(
            ServeArgs::default(),
            file("data_dir = \"d\"\ntokens = \"t\"\n").unwrap(),
        )
        .unwrap();
        assert_eq!(c.blocking_keep_alive, Duration::from_secs(10), "tokio's default");
    }

    #[test]
    fn missing_and_inconsistent_settings_are_named() {
        let err = Config::resolve(ServeArgs::default(), FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("--data-dir"), "{err}");
        let args = ServeArgs {
            data_dir: Some("d".into()),
            tokens: Some("t".into()),
            tls_cert: Some("c".into()),
            ..Default::default()
        };
        let err = Config::resolve(args, FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("tls_key"), "{err}");
        let args = ServeArgs {
            data_dir: Some("d".into()),
            tokens: Some("t".into()),
            max_concurrent_writes: Some(0),
            ..Default::default()
        };
        let err = Config::resolve(args, FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("max_concurrent_writes"), "{err}");
        let err = Config::resolve(
            ServeArgs::default(),
            file("data_dir = \"d\"\ntokens = \"t\"\nblocking_keep_alive = \"0s\"\n").unwrap(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("blocking_keep_alive: must be greater than zero"),
            "{err}"
        );
    }

    #[test]
    fn the_s3_backend_needs_its_settings_and_hides_its_secret() {
        let f = file(
            "tokens = \"t\"\n[storage]\nbackend = \"s3\"\nendpoint = \"http://127.0.0.1:3900\"\n\
             bucket = \"b\"\netcd = [\"http://127.0.0.1:2379\"]\naccess_key_id = \"GK1\"\n\
             secret_access_key = \"s3cret\"\n",
        )
        .unwrap();
        let c = Config::resolve(ServeArgs::default(), f).unwrap();
        let StorageConfig::S3(s3) = &c.storage else {
            panic!("not s3: {:?}", c.storage)
        };
        assert_eq!((s3.bucket.as_str(), s3.region.as_str()), ("b", "garage"));
        assert!(!format!("{c:?}").contains("s3cret"));
        let err = Config::resolve(
            ServeArgs::default(),
            file("tokens = \"t\"\n[storage]\nbackend = \"s3\"\nendpoint = \"http://e\"\n").unwrap(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("storage.bucket"), "{err}");
        let err = file("[storage]\nbackend = \"nfs\"\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("backend"), "{err}");
    }
}
