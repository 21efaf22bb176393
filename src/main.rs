//! `soledad-bench`: continuous benchmarking of the Soledad blobs stack. One file per
//! subcommand.

mod drive;
mod ingest;
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
    Ingest(ingest::IngestArgs),
    Site(site::SiteArgs),
    #[command(hide = true)]
    Drive(drive::DriveArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Ingest(args) => ingest::run(args),
        Command::Site(args) => site::run(args),
        Command::Drive(args) => drive::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
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
