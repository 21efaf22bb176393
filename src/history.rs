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
    /// history the site does not have (404 or 410) starts a new one, with a warning. An
    /// unreachable site, any other answer and a damaged download are errors, so that an
    /// outage never leads to a one-run history replacing the published one.
    Fetch {
        url: String,
        #[arg(long, default_value = "bench.sqlite")]
        db: PathBuf,
        /// Replace an existing database file.
        #[arg(long)]
        force: bool,
        /// Start a new history also when the site cannot be reached or answers with an error
        /// (for a first pipeline before the site exists).
        #[arg(long)]
        new_if_unavailable: bool,
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
        HistoryCommand::Fetch {
            url,
            db,
            force,
            new_if_unavailable,
        } => fetch(&url, &db, force, new_if_unavailable),
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

fn fetch(url: &str, db: &std::path::Path, force: bool, new_if_unavailable: bool) -> anyhow::Result<()> {
    if db.exists() && !force {
        bail!(
            "{} exists; pass --force to replace it with the published history",
            db.display()
        );
    }
    // With --force, the old database goes only once it is certain what replaces it: an
    // outage or a damaged download leaves it as it was.
    let remove_old = || {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
    };
    let new = |why: String| {
        remove_old();
        eprintln!("warning: no history at {url} ({why}); starting a new one");
        Ok(())
    };
    let unavailable = |why: String| {
        if new_if_unavailable {
            return new(why);
        }
        bail!(
            "cannot fetch the history from {url} ({why}); a new one would replace the published \
             history at the next publish, so none is started (pass --new-if-unavailable to start \
             one anyway)"
        )
    };
    let response = match client()?.get(url).send() {
        Ok(r) => r,
        Err(e) => return unavailable(format!("unreachable: {e}")),
    };
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
        return new(format!("the server answered {status}"));
    }
    if !status.is_success() {
        return unavailable(format!("the server answered {status}"));
    }
    let bytes = response
        .bytes()
        .with_context(|| format!("the download of {url} broke off"))?;
    let dir = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    // Imported beside the database and moved into place once whole.
    let staging = tempfile::TempDir::new_in(dir)?;
    let gz = staging.path().join("bench.sqlite.gz");
    std::fs::write(&gz, &bytes)?;
    let imported = staging.path().join("bench.sqlite");
    let runs = Database::import_compressed(&gz, &imported)
        .and_then(|history| history.runs())
        .with_context(|| format!("refusing the history downloaded from {url}"))?
        .len();
    remove_old();
    std::fs::rename(&imported, db).with_context(|| format!("cannot move the history to {}", db.display()))?;
    println!("history: {runs} runs from {url} in {}", db.display());
    Ok(())
}
