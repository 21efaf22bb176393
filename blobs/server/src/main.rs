use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use blobs_server::config::{LogFormat, Seconds, ServeArgs, StorageConfig};
use blobs_server::{Config, LISTENING_PREFIX, LISTENING_TLS_PREFIX, SERVICES_PREFIX, Server};
use clap::Parser as _;

// Every request allocates a few small buffers; mimalloc's thread-local free lists make that
// measurably cheaper than glibc's malloc under load (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Serves Soledad's end-to-end encrypted blobs over HTTP.
#[derive(Debug, clap::Parser)]
#[command(name = "blobs-server", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Restores a backup archive (from GET /backup on the services listener) into a data
    /// directory that no server is using.
    Restore {
        /// Data directory to restore into (created if missing).
        #[arg(long)]
        data_dir: PathBuf,
        /// The archive; `-` reads standard input.
        #[arg(long)]
        from: PathBuf,
        /// Restore only this user.
        #[arg(long)]
        user: Option<String>,
        /// Replace users that already have blobs in the data directory.
        #[arg(long)]
        replace: bool,
    },
    /// Checks the configuration and prints it resolved, without serving.
    CheckConfig(Box<ServeArgs>),
    /// Deletes bytes in the S3 bucket that no index entry points to: left by servers that
    /// died between an upload and its index entry, or before deleting replaced or deleted
    /// bytes. Takes the servers' configuration; safe while they run. Incomplete multipart
    /// uploads are not objects yet: a bucket lifecycle rule aborts those.
    SweepS3(Box<SweepArgs>),
}

#[derive(Debug, clap::Args)]
struct SweepArgs {
    /// Keep objects younger than this (an upload writes its object before its index entry).
    #[arg(long, default_value = "1h")]
    min_age: Seconds,
    /// Print what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    serve: ServeArgs,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Restore {
            data_dir,
            from,
            user,
            replace,
        }) => {
            init_logs(LogFormat::Text);
            restore(&data_dir, &from, user.as_deref(), replace)
        }
        Some(Command::SweepS3(args)) => {
            init_logs(LogFormat::Text);
            sweep_s3(*args)
        }
        Some(Command::CheckConfig(args)) => Config::load(*args).map(|c| println!("{c:#?}")).map_err(Into::into),
        None => match Config::load(cli.serve) {
            Ok(config) => {
                init_logs(config.log_format);
                run(config)
            }
            Err(e) => Err(e.into()),
        },
    };
    if let Err(err) = result {
        eprintln!("blobs-server: {err:#}");
        std::process::exit(1);
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "blobs_server=info".into());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only for a terminal that wants them: redirected to a file or a pipe (CI,
        // journald), logs stay plain text. with_ansi(true) would override NO_COLOR itself.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn restore(
    data_dir: &std::path::Path,
    from: &std::path::Path,
    user: Option<&str>,
    replace: bool,
) -> anyhow::Result<()> {
    let report = if from == std::path::Path::new("-") {
        blobs_server::fs::restore::restore(data_dir, std::io::stdin().lock(), user, replace)
    } else {
        let file = std::fs::File::open(from).with_context(|| format!("cannot open {}", from.display()))?;
        blobs_server::fs::restore::restore(data_dir, std::io::BufReader::new(file), user, replace)
    }
    .with_context(|| format!("restoring {} into {}", from.display(), data_dir.display()))?;
    println!(
        "restored {} user(s): {} blobs, {} flag files, {} tombstones",
        report.users.len(),
        report.blobs,
        report.flags,
        report.tombstones
    );
    Ok(())
}

fn sweep_s3(args: SweepArgs) -> anyhow::Result<()> {
    let config = Config::load(args.serve)?;
    let StorageConfig::S3(s3) = &config.storage else {
        anyhow::bail!(
            "sweep-s3 needs the S3 backend ([storage] backend = \"s3\", or --storage-backend s3); the filesystem backend has no bucket to sweep"
        );
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        let backend =
            blobs_server::s3::backend::S3Backend::open(s3, blobs_server::storage::StoreOptions::from_config(&config))
                .await?;
        backend.sweep(args.min_age.into(), args.dry_run).await
    })?;
    let verb = if args.dry_run { "would delete" } else { "deleted" };
    for key in &report.orphan_keys {
        if !report.failed.iter().any(|(k, _)| k == key) {
            println!("{verb} {key}");
        }
    }
    for (key, error) in &report.failed {
        eprintln!("blobs-server: cannot delete {key}: {error}");
    }
    println!(
        "sweep: {} objects, {} referenced, {} kept (of a live server, younger than {} or of a blob changed lately), {} orphans of {} bytes, {} deleted",
        report.objects,
        report.referenced,
        report.kept,
        humantime::format_duration(args.min_age.into()),
        report.orphans,
        report.orphan_bytes,
        report.deleted
    );
    if !report.failed.is_empty() {
        anyhow::bail!(
            "{} orphans could not be deleted; a later sweep tries them again",
            report.failed.len()
        );
    }
    Ok(())
}

fn run(config: Config) -> anyhow::Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.worker_threads {
        builder.worker_threads(n);
    }
    builder.thread_keep_alive(config.blocking_keep_alive);
    let runtime = builder.enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Installed before the address is printed: a SIGTERM sent as soon as the server
        // reports itself must shut it down gracefully, not kill it.
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot install the SIGTERM handler")?;
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot install the SIGHUP handler")?;
        let server = Server::bind(&config).await?;
        let mut stdout = std::io::stdout().lock();
        let prefix = if server.is_tls() {
            LISTENING_TLS_PREFIX
        } else {
            LISTENING_PREFIX
        };
        writeln!(stdout, "{prefix}{}", server.local_addr())?;
        if let Some(addr) = server.services_addr() {
            writeln!(stdout, "{SERVICES_PREFIX}{addr}")?;
        }
        stdout.flush()?;
        drop(stdout);
        tracing::info!(
            addr = %server.local_addr(),
            services = ?server.services_addr(),
            tls = server.is_tls(),
            data_dir = %config.data_dir.display(),
            "serving blobs"
        );
        let reload = server.reloader();
        tokio::spawn(async move {
            let mut hup = hup;
            while hup.recv().await.is_some() {
                match reload() {
                    Ok(()) => tracing::info!("token files reloaded"),
                    Err(e) => tracing::error!(error = %e, "token files not reloaded"),
                }
            }
        });
        server.serve(shutdown_signal(term)).await.context("server failed")?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Resolves on SIGTERM or Ctrl-C, so in-flight requests can finish before exit.
async fn shutdown_signal(mut term: tokio::signal::unix::Signal) {
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
