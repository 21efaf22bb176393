//! `soledad-bench drive` (hidden): the client-driver process the harness spawns for each
//! round. It prepares the workload, says `ready`, runs it when the harness says `go`, reports
//! `done` with the outcome, and exits when its stdin closes. See `workloads::protocol`.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use workloads::protocol::{DriverMessage, GO};
use workloads::{Context, Params, Target};

/// Run one round of a workload (used by the harness; not for people).
#[derive(clap::Args)]
pub struct DriveArgs {
    /// The server, such as http://127.0.0.1:2424.
    #[arg(long)]
    server: String,
    #[arg(long)]
    user: String,
    #[arg(long, env = harness::driver::TOKEN_ENV, hide_env_values = true)]
    token: String,
    /// The workload parameters as JSON.
    #[arg(long)]
    params: String,
    #[arg(long)]
    round: u32,
    #[arg(long)]
    seed: u64,
    #[arg(long)]
    work_dir: PathBuf,
}

/// Benchmark traffic stays on this machine: only loopback servers are driven.
fn check_loopback(server: &str) -> anyhow::Result<()> {
    let url = url_host(server).with_context(|| format!("invalid server URL {server:?}"))?;
    let ip: std::net::IpAddr = url
        .parse()
        .with_context(|| format!("server host {url:?} must be a literal loopback IP"))?;
    if !ip.is_loopback() {
        bail!("refusing to drive {server}: benchmarks only target loopback addresses");
    }
    Ok(())
}

/// The host part of `http://HOST:PORT/...`, brackets removed for IPv6.
fn url_host(server: &str) -> Option<String> {
    let rest = server
        .strip_prefix("http://")
        .or_else(|| server.strip_prefix("https://"))?;
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    Some(host.to_owned())
}

pub fn run(args: DriveArgs) -> anyhow::Result<()> {
    check_loopback(&args.server)?;
    let params: Params =
        serde_json::from_str(&args.params).context("--params is not a workload's parameters")?;
    let ctx = Context {
        target: Target {
            server: args.server,
            user: args.user,
            token: args.token,
        },
        work_dir: args.work_dir,
        round: args.round,
        seed: args.seed,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let prepared = runtime
        .block_on(workloads::prepare(&params, &ctx))
        .context("preparing the workload")?;
    say(&DriverMessage::Ready)?;

    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .context("reading the go signal")?;
    if line.trim() != GO {
        bail!("expected {GO:?} on stdin, got {line:?}");
    }
    let outcome = runtime
        .block_on(prepared.run())
        .context("running the workload")?;
    say(&DriverMessage::Done(outcome))?;

    // Stay alive until the harness has read our counters and closes stdin.
    while stdin.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {}
    Ok(())
}

fn say(message: &DriverMessage) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, message)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_servers_are_driven() {
        assert!(check_loopback("http://127.0.0.1:2424").is_ok());
        assert!(check_loopback("http://[::1]:80/").is_ok());
        assert!(check_loopback("http://10.0.0.1:2424").is_err());
        assert!(check_loopback("http://192.168.1.2").is_err());
        assert!(check_loopback("http://example.org:2424").is_err());
        assert!(check_loopback("ftp://127.0.0.1").is_err());
    }
}
