//! `soledad-bench`: continuous benchmarking of the Soledad blobs stack. One file per
//! subcommand.

mod backfill;
mod calibrate;
mod check;
mod compare;
mod drive;
mod export;
mod find;
mod history;
mod import;
mod ingest;
mod kept_build;
mod merge;
mod noise;
mod revisions;
mod run;
mod site;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "soledad-bench",
    version,
    about = "Benchmarks the Soledad blobs stack, keeps the history, publishes the site"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(run::RunArgs),
    Check(check::CheckArgs),
    Calibrate(calibrate::CalibrateArgs),
    Compare(compare::CompareArgs),
    Backfill(backfill::BackfillArgs),
    Find(find::FindArgs),
    Ingest(ingest::IngestArgs),
    Import(import::ImportArgs),
    Export(export::ExportArgs),
    Merge(merge::MergeArgs),
    Site(site::SiteArgs),
    History(history::HistoryArgs),
    Noise(noise::NoiseArgs),
    #[command(hide = true)]
    Drive(drive::DriveArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only for a terminal that wants them: redirected to a file or a pipe (CI,
        // journald), logs stay plain text. with_ansi(true) would override NO_COLOR itself.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    let result = match cli.command {
        Command::Run(args) => done(run::run(args)),
        Command::Check(args) => check::run(args),
        Command::Calibrate(args) => done(calibrate::run(args)),
        Command::Compare(args) => return compare::main(args),
        Command::Backfill(args) => done(backfill::run(args)),
        Command::Find(args) => done(find::run(args)),
        Command::Ingest(args) => done(ingest::run(args)),
        Command::Import(args) => done(import::run(args)),
        Command::Export(args) => done(export::run(args)),
        Command::Merge(args) => done(merge::run(args)),
        Command::Site(args) => done(site::run(args)),
        Command::History(args) => done(history::run(args)),
        Command::Noise(args) => done(noise::run(args)),
        Command::Drive(args) => done(drive::run(args)),
    };
    match result {
        Ok(code) => code,
        Err(err) if matches!(err.downcast_ref(), Some(harness::HarnessError::Interrupted)) => {
            eprintln!("interrupted: nothing was written");
            ExitCode::from(130)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
