//! `blobs`: the BlobManager from the command line, for people and for black-box tests.

mod progress;
mod setup;

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use blobs_client::{BlobManager, Flag, ListOptions, Priority, PutOptions, SyncStatus};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "blobs",
    version,
    about = "Encrypted blobs: a local encrypted store synced with a blobs server",
    long_about = "Encrypted blobs: a local encrypted store synced with a blobs server.\n\n\
        Keys come from a passphrase in an environment variable (BLOBS_PASSPHRASE unless \
        --passphrase-env names another) and the user name: use the same passphrase on every \
        device of a user, and each can read what the others uploaded. The server only ever \
        sees encrypted blobs."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: setup::Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Store files as blobs and upload them; prints each blob id (and, for several files,
    /// its file).
    Put {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Blob id (default: a random one); only with one file.
        #[arg(long)]
        id: Option<String>,
        /// low, medium, high or urgent.
        #[arg(long, default_value = "medium", value_parser = parse_priority)]
        priority: Priority,
        /// Keep it on this device only.
        #[arg(long)]
        local_only: bool,
        /// Replace an existing blob (a draft), atomically on the server.
        #[arg(long)]
        replace: bool,
        /// Store it now and leave the upload to the next sync.
        #[arg(long)]
        no_upload: bool,
    },
    /// Write a blob's contents to a file or standard output, downloading it if needed.
    Get {
        id: String,
        /// Output file (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(long, default_value = "high", value_parser = parse_priority)]
        priority: Priority,
    },
    /// Delete a blob here and on the server.
    Delete { id: String },
    /// List blobs: this device's with their state, or the server's.
    List {
        /// The server's ids instead.
        #[arg(long)]
        remote: bool,
        /// With --remote: ids of deleted blobs.
        #[arg(long, requires = "remote")]
        deleted: bool,
        /// With --remote: only blobs with this flag.
        #[arg(long, requires = "remote", value_parser = parse_flag)]
        flag: Option<Flag>,
        /// Only blobs in this sync state (SYNCED, PENDING_UPLOAD, ...).
        #[arg(long, conflicts_with = "remote", value_parser = parse_status)]
        status: Option<SyncStatus>,
    },
    /// Show or set a blob's flags on the server.
    Flags {
        id: String,
        /// New flags, comma-separated (PENDING, PROCESSING, PROCESSED, FAILED); empty clears.
        #[arg(long, value_parser = parse_flags)]
        set: Option<FlagList>,
        /// Only if the flags are exactly these now (compare-and-set).
        #[arg(long, requires = "set", value_parser = parse_flags)]
        expect: Option<FlagList>,
    },
    /// Sync the namespace with the server: deletions, downloads, uploads.
    Sync,
    /// Sync states: counts per state, or one blob's state.
    Status { id: Option<String> },
}

#[derive(Debug, Clone)]
pub struct FlagList(Vec<Flag>);

fn parse_priority(s: &str) -> Result<Priority, String> {
    Priority::parse(s).ok_or_else(|| format!("{s:?}: expected low, medium, high or urgent"))
}

fn parse_status(s: &str) -> Result<SyncStatus, String> {
    SyncStatus::parse(s).ok_or_else(|| {
        let names: Vec<&str> = SyncStatus::ALL.iter().map(|s| s.name()).collect();
        format!("{s:?}: expected one of {}", names.join(", "))
    })
}

fn parse_flag(s: &str) -> Result<Flag, String> {
    Flag::parse(s).ok_or_else(|| format!("{s:?}: expected PENDING, PROCESSING, PROCESSED or FAILED"))
}

fn parse_flags(s: &str) -> Result<FlagList, String> {
    s.split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(parse_flag)
        .collect::<Result<_, _>>()
        .map(FlagList)
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only for a terminal that wants them: redirected to a file or a pipe (CI,
        // journald), logs stay plain text. with_ansi(true) would override NO_COLOR itself.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BLOBS_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("blobs: cannot start: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("blobs: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let ns = cli.global.namespace.clone();
    let manager = setup::manager(&cli.global).await?;
    let bars = progress::Progress::start(&manager, cli.global.show_progress());
    let result = command(&manager, &ns, cli.command, cli.global.quiet).await;
    bars.finish().await;
    result
}

async fn command(m: &BlobManager, ns: &str, command: Command, quiet: bool) -> anyhow::Result<()> {
    match command {
        Command::Put {
            files,
            id,
            priority,
            local_only,
            replace,
            no_upload,
        } => {
            if id.is_some() && files.len() > 1 {
                bail!("--id names one blob, but {} files were given", files.len());
            }
            let opts = PutOptions {
                priority,
                local_only,
                replace,
                upload: !no_upload,
            };
            let several = files.len() > 1;
            for file in files {
                let id = id.clone().unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>()));
                m.put_file(ns, &id, &file, opts)
                    .await
                    .with_context(|| format!("cannot put {} as {ns}/{id}", file.display()))?;
                if several {
                    println!("{id}\t{}", file.display());
                } else {
                    println!("{id}");
                }
            }
        }
        Command::Get { id, output, priority } => match output {
            Some(path) => {
                let tmp = path.with_extension(format!("blobs-{}.tmp", std::process::id()));
                let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
                let result = m.get_to(ns, &id, std::io::BufWriter::new(file), priority).await;
                match result {
                    Ok(_) => {
                        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e).with_context(|| format!("cannot get {ns}/{id}"));
                    }
                }
            }
            None => {
                m.get_to(ns, &id, std::io::stdout(), priority)
                    .await
                    .with_context(|| format!("cannot get {ns}/{id}"))?;
            }
        },
        Command::Delete { id } => m
            .delete(ns, &id)
            .await
            .with_context(|| format!("cannot delete {ns}/{id} (the next sync retries)"))?,
        Command::List {
            remote,
            deleted,
            flag,
            status,
        } => {
            let mut out = std::io::stdout().lock();
            if remote {
                let opts = ListOptions {
                    deleted,
                    filter_flag: flag,
                    page: Some(10_000),
                    ..ListOptions::default()
                };
                for id in m.remote().list_with(ns, &opts).await? {
                    writeln!(out, "{id}")?;
                }
            } else {
                for s in m.states(Some(ns), status).await? {
                    let size = match m.store().content(ns, &s.id)? {
                        Some(c) => c.size.to_string(),
                        None => "-".into(),
                    };
                    writeln!(out, "{}\t{}\t{}", s.id, s.status, size)?;
                }
            }
        }
        Command::Flags { id, set, expect } => match set {
            Some(FlagList(flags)) => m
                .set_flags(ns, &id, &flags, expect.as_ref().map(|e| e.0.as_slice()))
                .await
                .with_context(|| format!("cannot set the flags of {ns}/{id}"))?,
            None => {
                let flags = m.flags(ns, &id).await?;
                let names: Vec<&str> = flags.iter().map(|f| f.name()).collect();
                println!("{}", names.join(","));
            }
        },
        Command::Sync => {
            let report = m.sync(ns).await?;
            if !quiet {
                eprintln!(
                    "synced {ns}: {} transferred ({} bytes), {} deleted on the server, {} removed here, {} failed",
                    report.transferred,
                    report.bytes,
                    report.deleted,
                    report.removed,
                    report.failed.len()
                );
            }
            if !report.failed.is_empty() {
                for (id, e) in &report.failed {
                    eprintln!("  {id}: {e}");
                }
                bail!(
                    "{} blobs could not be synced; the next sync tries them again",
                    report.failed.len()
                );
            }
        }
        Command::Status { id: Some(id) } => match m.state(ns, &id).await? {
            None => bail!("{ns}/{id} is not known on this device"),
            Some(s) => {
                let content = m.store().content(ns, &id)?;
                println!("id\t{}", s.id);
                println!("status\t{}", s.status);
                println!("priority\t{}", s.priority.name());
                println!("size\t{}", content.map_or("-".into(), |c| c.size.to_string()));
                println!("attempts\t{}", s.attempts);
                if let Some(f) = s.failure {
                    println!("failure\t{}", f.name());
                }
                if let Some(e) = &s.last_error {
                    println!("last_error\t{e}");
                }
            }
        },
        Command::Status { id: None } => {
            let mut counts = std::collections::BTreeMap::new();
            for s in m.states(Some(ns), None).await? {
                *counts.entry(s.status.name()).or_insert(0u64) += 1;
            }
            for status in SyncStatus::ALL {
                println!("{}\t{}", status.name(), counts.get(status.name()).unwrap_or(&0));
            }
        }
    }
    Ok(())
}
