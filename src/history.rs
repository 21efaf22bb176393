//! `soledad-bench history`: moves the benchmark history between CI jobs through the
//! published site. `fetch` downloads `bench.sqlite.gz` from the site's URL; `publish` writes
//! it. There is no database server: the site is where the history lives.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use collector::Database;

/// Fetch or publish the benchmark history.
#[derive(clap::Args)]
pub struct HistoryArgs {
    #[command(subcommand)]
    command: HistoryCommand,
}

#[derive(clap::Subcommand)]
enum HistoryCommand {
    /// Download the history published at URL (a `bench.sqlite.gz`) into the database. A
    /// missing or unreachable history starts a new one, with a warning; a damaged download is
    /// refused with an error, so that it never replaces the published history.
    Fetch {
        url: String,
        #[arg(long, default_value = "bench.sqlite")]
        db: PathBuf,
        /// Replace an existing database file.
        #[arg(long)]
        force: bool,
    },
    /// Write the database as a gzipped snapshot.
    Publish {
        #[arg(long, default_value = "bench.sqlite")]
        db: PathBuf,
        /// The snapshot to write.
        #[arg(long, default_value = "public/bench.sqlite.gz")]
        out: PathBuf,
    },
}

pub fn run(args: HistoryArgs) -> anyhow::Result<()> {
    match args.command {
        HistoryCommand::Fetch { url, db, force } => fetch(&url, &db, force),
        HistoryCommand::Publish { db, out } => {
            if !db.is_file() {
                bail!("database {} does not exist", db.display());
            }
            Database::open(&db)?.export_compressed(&out)?;
            println!("history: {}", out.display());
            Ok(())
        }
    }
}

/// HTTPS (rustls) with the operating system's trusted certificates.
fn client() -> anyhow::Result<reqwest::blocking::Client> {
    Ok(reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(600))
        .build()?)
}

fn fetch(url: &str, db: &std::path::Path, force: bool) -> anyhow::Result<()> {
    if db.exists() {
        if !force {
            bail!(
                "{} exists; pass --force to replace it with the published history",
                db.display()
            );
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
    }
    let new = |why: String| {
        eprintln!("warning: no history at {url} ({why}); starting a new one");
        Ok(())
    };
    let response = match client()?.get(url).send() {
        Ok(r) => r,
        Err(e) => return new(format!("unreachable: {e}")),
    };
    if !response.status().is_success() {
        return new(format!("the server answered {}", response.status()));
    }
    let bytes = response
        .bytes()
        .with_context(|| format!("the download of {url} broke off"))?;
    let dir = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let gz = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(gz.path(), &bytes)?;
    let history = Database::import_compressed(gz.path(), db)
        .with_context(|| format!("refusing the history downloaded from {url}"))?;
    println!("history: {} runs from {url} in {}", history.runs()?.len(), db.display());
    Ok(())
}
