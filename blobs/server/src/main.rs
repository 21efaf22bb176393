use std::io::Write as _;

use anyhow::Context as _;
use blobs_server::{Config, LISTENING_PREFIX, Server};
use clap::Parser as _;

fn main() {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "blobs_server=info".into()),
        )
        .init();
    if let Err(err) = run(config) {
        eprintln!("blobs-server: {err:#}");
        std::process::exit(1);
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.worker_threads {
        builder.worker_threads(n);
    }
    let runtime = builder.enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(&config).await?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{LISTENING_PREFIX}{}", server.local_addr())?;
        stdout.flush()?;
        drop(stdout);
        tracing::info!(addr = %server.local_addr(), data_dir = %config.data_dir.display(), "serving blobs");
        server.serve(shutdown_signal()).await.context("server failed")?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Resolves on SIGTERM or Ctrl-C, so in-flight requests can finish before exit.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail on Unix");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
