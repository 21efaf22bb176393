//! `soledad-bench history`: moves the benchmark history between CI jobs through the
//! published site. `fetch` downloads `bench.sqlite.gz` from the site's URL; `gather` adds, just
//! before a publish, every run the site must keep and every run other jobs finished meanwhile;
//! `publish` writes it. There is no database server: the site is where the history lives.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
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
    /// Just before a publish: add to the database the history the site serves now (URL) and
    /// every run other jobs gathered into the spool that the site may not serve yet, then
    /// spool the database for the jobs after this one. Two jobs whose runs overlap thus
    /// publish each other's runs whatever order they finish in; a run the site served once
    /// is in every later publish. Jobs gather one at a time (a lock in the spool); the spool
    /// keeps one snapshot, of everything gathered so far.
    Gather {
        url: String,
        /// A directory that outlives the jobs and that only the jobs that publish can write
        /// (on the benchmark machine, outside any build directory).
        #[arg(long)]
        spool: PathBuf,
        #[arg(long, default_value = "bench.sqlite")]
        db: PathBuf,
        /// Go on without the site's history when it cannot be reached (for a first pipeline
        /// before the site exists); otherwise that is an error.
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
        HistoryCommand::Gather {
            url,
            spool,
            db,
            new_if_unavailable,
        } => gather(&url, &spool, &db, new_if_unavailable),
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

fn fetch(url: &str, db: &Path, force: bool, new_if_unavailable: bool) -> anyhow::Result<()> {
    if db.exists() && !force {
        bail!(
            "{} exists; pass --force to replace it with the published history",
            db.display()
        );
    }
    let dir = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // Imported beside the database and moved into place once whole: with --force, the old
    // database goes only once it is certain what replaces it, so an outage or a damaged
    // download leaves it as it was.
    let staging = tempfile::TempDir::new_in(dir)?;
    let downloaded = download(url, new_if_unavailable, staging.path(), "starting a new one")?;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    if let Some((imported, runs)) = downloaded {
        std::fs::rename(&imported, db).with_context(|| format!("cannot move the history to {}", db.display()))?;
        println!("history: {runs} runs from {url} in {}", db.display());
    }
    Ok(())
}

/// Downloads the history published at `url` and imports it into `staging`: its path and how
/// many history runs it holds, or `None` when the site has none (404 or 410, with a warning
/// that goes on `without` it; also an unreachable site or an error answer with
/// `new_if_unavailable`).
fn download(
    url: &str,
    new_if_unavailable: bool,
    staging: &Path,
    without: &str,
) -> anyhow::Result<Option<(PathBuf, usize)>> {
    let none = |why: String| {
        eprintln!("warning: no history at {url} ({why}); {without}");
        Ok(None)
    };
    let unavailable = |why: String| {
        if new_if_unavailable {
            return none(why);
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
        return none(format!("the server answered {status}"));
    }
    if !status.is_success() {
        return unavailable(format!("the server answered {status}"));
    }
    let bytes = response
        .bytes()
        .with_context(|| format!("the download of {url} broke off"))?;
    let gz = staging.join("published.sqlite.gz");
    std::fs::write(&gz, &bytes)?;
    let imported = staging.join("published.sqlite");
    let runs = Database::import_compressed(&gz, &imported)
        .and_then(|history| history.runs())
        .with_context(|| format!("refusing the history downloaded from {url}"))?
        .len();
    Ok(Some((imported, runs)))
}

/// The spool's snapshots, oldest first (their names start with the time they were written).
fn spooled(spool: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(spool).with_context(|| format!("cannot read the spool {}", spool.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.starts_with('.') && name.ends_with(".sqlite.gz") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Writes a snapshot of `database` into the spool, named by the time, so that the spool
/// lists oldest first.
fn spool_snapshot(database: &Database, spool: &Path) -> anyhow::Result<PathBuf> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let path = spool.join(format!(
        "{:020}-{:09}-{}.sqlite.gz",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id()
    ));
    database
        .export_compressed(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn gather(url: &str, spool: &Path, db: &Path, new_if_unavailable: bool) -> anyhow::Result<()> {
    if !db.is_file() {
        bail!("database {} does not exist", db.display());
    }
    std::fs::create_dir_all(spool).with_context(|| format!("cannot create the spool {}", spool.display()))?;
    let lock_path = spool.join(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        eprintln!("waiting for another job's gather to finish ({})", lock_path.display());
        lock.lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    }
    // Dropped (and its files removed) before the lock is released.
    let staging = tempfile::Builder::new().prefix(".gather").tempdir_in(spool)?;
    // This job's runs reach the spool before anything can fail (the site out of reach, a
    // damaged download): a later gather then has them even if this job never publishes.
    let arrived = spool_snapshot(&Database::open(db)?, spool)?;
    let published = download(url, new_if_unavailable, staging.path(), "gathering without it")?;
    // Where each source comes from, and its database: the site's history first, then the
    // spool's snapshots (this job's own among them).
    let mut sources: Vec<(String, PathBuf)> = Vec::new();
    if let Some((path, _)) = &published {
        sources.push((url.to_owned(), path.clone()));
    }
    let snapshots = spooled(spool)?;
    for (i, snapshot) in snapshots.iter().enumerate() {
        let unpacked = staging.path().join(format!("spooled-{i}.sqlite"));
        Database::import_compressed(snapshot, &unpacked)
            .with_context(|| format!("cannot read the spooled history {}", snapshot.display()))?;
        sources.push((snapshot.display().to_string(), unpacked));
    }
    let mut database = Database::open(db)?;
    let mut added = Vec::new();
    let mut runs_of = Vec::with_capacity(sources.len());
    for (origin, path) in &sources {
        let report = database
            .merge_from(path)
            .with_context(|| format!("cannot merge {origin}"))?;
        added.extend(report.history_runs_added);
        runs_of.push(Database::open(path)?.run_uuids()?);
    }
    crate::ingest::analyze(&mut database, &added)?;
    let served = if published.is_some() {
        runs_of[0].clone()
    } else {
        BTreeSet::new()
    };
    let unserved: BTreeSet<&String> = snapshots
        .iter()
        .zip(&runs_of[usize::from(published.is_some())..])
        .filter(|(snapshot, _)| **snapshot != arrived)
        .flat_map(|(_, runs)| runs.difference(&served))
        .collect();
    // What a publish of this database may never lose: checked, not assumed.
    let have = database.run_uuids()?;
    for ((origin, _), runs) in sources.iter().zip(&runs_of) {
        let missing = runs.difference(&have).count();
        if missing > 0 {
            bail!("{missing} runs of {origin} did not reach {}", db.display());
        }
    }
    // The spool keeps one snapshot: everything gathered so far, written before the ones it
    // holds are removed. Kept even when the site serves all of it, so that a site that lost
    // its history or went back to an older deployment gets every run again at the next
    // publish.
    let union = spool_snapshot(&database, spool)?;
    for snapshot in &snapshots {
        std::fs::remove_file(snapshot).with_context(|| format!("cannot remove {}", snapshot.display()))?;
    }
    println!(
        "gathered: {} runs served by {url}; {} runs from the spool that it does not serve yet; {} runs in {}, \
         spooled as {}",
        served.len(),
        unserved.len(),
        have.len(),
        db.display(),
        union.display()
    );
    drop(staging);
    drop(lock);
    Ok(())
}
