use std::net::SocketAddr;
use std::path::PathBuf;

/// Command line and environment of `blobs-server`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "blobs-server",
    version,
    about = "Serves Soledad's end-to-end encrypted blobs over HTTP"
)]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port; the bound address is printed on stdout
    /// as `listening on http://ADDR`.
    #[arg(long, env = "BLOBS_SERVER_LISTEN", default_value = "127.0.0.1:2424")]
    pub listen: SocketAddr,

    /// Directory that holds the blobs (created if missing).
    #[arg(long, env = "BLOBS_SERVER_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Token file: one `user:token` per line, `#` starts a comment.
    #[arg(long, env = "BLOBS_SERVER_TOKENS")]
    pub tokens: PathBuf,

    /// Uploads written to disk at the same time; more wait their turn.
    #[arg(long, env = "BLOBS_SERVER_MAX_CONCURRENT_WRITES", default_value_t = 50)]
    pub max_concurrent_writes: usize,

    /// Largest accepted blob, in bytes.
    #[arg(long, env = "BLOBS_SERVER_MAX_BLOB_SIZE", default_value_t = 4 << 30)]
    pub max_blob_size: u64,

    /// Threads of the async runtime (default: one per core).
    #[arg(long, env = "BLOBS_SERVER_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
}
