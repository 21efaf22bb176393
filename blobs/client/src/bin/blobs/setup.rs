//! Options every command shares, and turning them into a BlobManager: the local store
//! directory, keys from the passphrase, the server.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use blobs_client::keys::UserKeys;
use blobs_client::{
    BlobFormat, BlobManager, Config, Credentials, FsStore, LocalStore, Remote, RemoteOptions, SqlcipherStore,
};
use serde::{Deserialize, Serialize};

#[derive(clap::Args, Debug)]
pub struct Global {
    /// The blobs server, e.g. https://blobs.example.org:2424.
    #[arg(long, env = "BLOBS_SERVER", global = true)]
    pub server: Option<String>,
    /// Your user name on the server.
    #[arg(long, env = "BLOBS_USER", global = true)]
    pub user: Option<String>,
    /// Your token on the server.
    #[arg(long, env = "BLOBS_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Directory of the local store (created on first use).
    #[arg(long, env = "BLOBS_STORE", global = true)]
    pub store: Option<PathBuf>,
    /// Kind of a new local store: sqlcipher (one database file) or fs (encrypted files).
    #[arg(long, global = true, value_parser = ["sqlcipher", "fs"])]
    pub backend: Option<String>,
    /// Environment variable holding the passphrase.
    #[arg(long, default_value = "BLOBS_PASSPHRASE", global = true)]
    pub passphrase_env: String,
    #[arg(long, short = 'n', default_value = "default", global = true)]
    pub namespace: String,
    /// Upload limit for all transfers together, bytes per second (500k, 2M, 1MiB; 0 for none).
    #[arg(long, global = true, value_parser = parse_rate)]
    pub limit_up: Option<u64>,
    /// Download limit for all transfers together, bytes per second.
    #[arg(long, global = true, value_parser = parse_rate)]
    pub limit_down: Option<u64>,
    /// Transfers at once.
    #[arg(long, default_value_t = 3, global = true)]
    pub concurrency: usize,
    /// Format of uploaded blobs: v2 (chunked, padded, resumable) or v1 (Soledad's).
    #[arg(long, default_value = "v2", global = true, value_parser = ["v1", "v2"])]
    pub format: String,
    /// A CA certificate (PEM) to trust, for servers with a private CA.
    #[arg(long, global = true)]
    pub cacert: Option<PathBuf>,
    /// Seconds without a byte before a transfer is given up and retried.
    #[arg(long, default_value_t = 60, global = true)]
    pub timeout: u64,
    /// Attempts per transfer before its blob goes to a failed state.
    #[arg(long, default_value_t = 6, global = true)]
    pub attempts: u32,
    /// No progress bars.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
}

impl Global {
    pub fn show_progress(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }
}

/// `500k`, `2M`, `1MiB`, `1000`; `0` or `off` for no limit.
fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_end_matches("/s");
    if t == "off" || t == "none" {
        return Ok(0);
    }
    match t.parse::<bytesize::ByteSize>() {
        // bytesize saturates instead of failing on overflow.
        Ok(b) if b.as_u64() < u64::MAX => Ok(b.as_u64()),
        Ok(_) => Err(format!("{s:?} is too large")),
        Err(e) => Err(format!(
            "{s:?}: expected bytes per second such as 500k, 2M or 1MiB ({e})"
        )),
    }
}

/// `store.json`: what a store directory holds and for whom.
#[derive(Serialize, Deserialize)]
struct StoreFile {
    backend: String,
    user: String,
    /// Hex of the random salt of this store's key.
    salt: String,
}

const STORE_FILE: &str = "store.json";

fn default_store(user: &str) -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .context("no --store given, and neither XDG_DATA_HOME nor HOME is set")?;
    Ok(base.join("soledad-blobs").join(user))
}

/// Opens (or creates) the store directory.
fn open_store(dir: &Path, user: &str, backend: Option<&str>, keys: &UserKeys) -> anyhow::Result<Arc<dyn LocalStore>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the store directory {}", dir.display()))?;
    let file = dir.join(STORE_FILE);
    let meta: StoreFile = match std::fs::read(&file) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).with_context(|| format!("{} is not a store description", file.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let meta = StoreFile {
                backend: backend.unwrap_or("sqlcipher").to_owned(),
                user: user.to_owned(),
                salt: hex::encode(rand::random::<[u8; 16]>()),
            };
            let tmp = dir.join(format!("{STORE_FILE}.tmp"));
            std::fs::write(&tmp, serde_json::to_vec_pretty(&meta)?)
                .and_then(|_| std::fs::rename(&tmp, &file))
                .with_context(|| format!("cannot write {}", file.display()))?;
            meta
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    if meta.user != user {
        bail!(
            "the store {} belongs to user {:?}, not {user:?}; give another --store",
            dir.display(),
            meta.user
        );
    }
    if let Some(b) = backend
        && b != meta.backend
    {
        bail!(
            "the store {} is a {} store; --backend {b} only applies to new stores",
            dir.display(),
            meta.backend
        );
    }
    let salt: [u8; 16] = hex::decode(&meta.salt)
        .ok()
        .and_then(|s| s.try_into().ok())
        .with_context(|| format!("{}: salt is not 16 bytes of hex", file.display()))?;
    let key = keys.store_key(&salt);
    let wrong = || format!("cannot open the store {} (is the passphrase right?)", dir.display());
    Ok(match meta.backend.as_str() {
        "sqlcipher" => Arc::new(SqlcipherStore::open(&dir.join("blobs.db"), &key).with_context(wrong)?),
        "fs" => Arc::new(FsStore::open(&dir.join("files"), &key).with_context(wrong)?),
        other => bail!("{}: unknown backend {other:?}", file.display()),
    })
}

pub async fn manager(g: &Global) -> anyhow::Result<BlobManager> {
    let missing = |what: &str, flag: &str, env: &str| anyhow::anyhow!("no {what}: give {flag} or set {env}");
    let server = g
        .server
        .as_deref()
        .ok_or_else(|| missing("server", "--server", "BLOBS_SERVER"))?;
    let user = g
        .user
        .as_deref()
        .ok_or_else(|| missing("user", "--user", "BLOBS_USER"))?;
    let token = g
        .token
        .as_deref()
        .ok_or_else(|| missing("token", "--token", "BLOBS_TOKEN"))?;
    if !blobs_client::is_valid_name(user) {
        bail!("user {user:?} is not a valid name: 1-200 characters of [A-Za-z0-9_-]");
    }
    if !blobs_client::is_valid_name(&g.namespace) {
        bail!(
            "namespace {:?} is not a valid name: 1-200 characters of [A-Za-z0-9_-]",
            g.namespace
        );
    }
    let passphrase = std::env::var_os(&g.passphrase_env)
        .filter(|p| !p.is_empty())
        .with_context(|| {
            format!(
                "no passphrase: set the environment variable {} (the keys are derived from it)",
                g.passphrase_env
            )
        })?;
    let passphrase = passphrase.into_encoded_bytes();
    let store_dir = match &g.store {
        Some(s) => s.clone(),
        None => default_store(user)?,
    };
    let (user_owned, backend, dir) = (user.to_owned(), g.backend.clone(), store_dir.clone());
    // scrypt and opening the store block: keep them off the event loop.
    let (keys, store) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let keys = UserKeys::from_passphrase(&passphrase, &user_owned);
        let store = open_store(&dir, &user_owned, backend.as_deref(), &keys)?;
        Ok((keys, store))
    })
    .await??;
    let mut opts = RemoteOptions {
        read_timeout: std::time::Duration::from_secs(g.timeout.max(1)),
        ..RemoteOptions::default()
    };
    if let Some(ca) = &g.cacert {
        opts.root_certificates
            .push(std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?);
    }
    let remote = Remote::with_options(
        server,
        &Credentials {
            user: user.to_owned(),
            token: token.to_owned(),
        },
        &opts,
    )?;
    let config = Config {
        concurrency: g.concurrency.max(1),
        format: if g.format == "v1" {
            BlobFormat::V1
        } else {
            BlobFormat::V2
        },
        limit_up: g.limit_up.filter(|&r| r > 0),
        limit_down: g.limit_down.filter(|&r| r > 0),
        retry: blobs_client::RetryPolicy {
            max_attempts: g.attempts.max(1),
            ..Default::default()
        },
        ..Config::default()
    };
    Ok(BlobManager::with_config(store, remote, keys.remote_secret(), config))
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates_parse_with_decimal_and_binary_units() {
        assert_eq!(parse_rate("500k"), Ok(500_000));
        assert_eq!(parse_rate("2M/s"), Ok(2_000_000));
        assert_eq!(parse_rate("1MiB"), Ok(1 << 20));
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert_eq!(parse_rate("off"), Ok(0));
        assert!(parse_rate("10x").unwrap_err().contains("\"10x\""));
        assert!(parse_rate("99999999999999G").unwrap_err().contains("too large"));
    }
}
