//! `soledad-bench drive` (hidden): the client-driver process the harness spawns for each
//! round. It prepares the workload, says `ready`, runs it when the harness says `go`, reports
//! `done` with the outcome, and exits when its stdin closes. See `workloads::protocol`.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use workloads::protocol::{DriverMessage, GO};
use workloads::{Context, Params, Services, Target};

/// Run one round of a workload (used by the harness; not for people).
#[derive(clap::Args)]
pub struct DriveArgs {
    /// The server, such as http://127.0.0.1:2424; only loopback addresses are accepted.
    #[arg(long, requires = "user")]
    server: Option<String>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long, env = harness::driver::TOKEN_ENV, hide_env_values = true)]
    token: Option<String>,
    /// The server's services listener (incoming box), such as http://127.0.0.1:2525; only
    /// loopback addresses are accepted.
    #[arg(long, requires = "server")]
    services: Option<String>,
    #[arg(long, env = harness::driver::SERVICE_TOKEN_ENV, hide_env_values = true)]
    service_token: Option<String>,
    /// The workload parameters as JSON.
    #[arg(long)]
    params: String,
    #[arg(long)]
    round: u32,
    #[arg(long)]
    seed: u64,
    #[arg(long)]
    work_dir: PathBuf,
    #[arg(long)]
    scenario_dir: PathBuf,
}

pub fn run(args: DriveArgs) -> anyhow::Result<()> {
    let params: Params = serde_json::from_str(&args.params).context("--params is not a workload's parameters")?;
    let target = match (args.server, args.user) {
        (Some(server), Some(user)) => {
            crate::run::check_loopback(&server)?;
            let token = args
                .token
                .with_context(|| format!("no token: set {}", harness::driver::TOKEN_ENV))?;
            let services = match args.services {
                Some(url) => {
                    crate::run::check_loopback(&url)?;
                    let token = args
                        .service_token
                        .with_context(|| format!("no service token: set {}", harness::driver::SERVICE_TOKEN_ENV))?;
                    Some(Services { url, token })
                }
                None => None,
            };
            Some(Target {
                server,
                user,
                token,
                services,
            })
        }
        _ => None,
    };
    let ctx = Context {
        target,
        work_dir: args.work_dir,
        scenario_dir: args.scenario_dir,
        round: args.round,
        seed: args.seed,
        // Set through a build's environment (`bench.env`), not by the harness.
        client_bandwidth: workloads::client_bandwidth_from_env()?,
    };
    let counted = std::env::var_os(workloads::COUNT_ROUND_ENV).is_some();
    let runtime = if counted {
        // Counted: idle blocking threads are kept (tokio lets one go after 10 s, which under
        // Valgrind can fall inside the measured part) and started before it (below), and no
        // more are started. With real-time turns (`harness::count::Turns`) a thread woken for
        // a task runs only once the one handing out tasks waits, so a burst of them (the
        // preparation of `server.backend`'s 1,000 blobs) found no idle thread and started
        // one each: past 500, Valgrind's limit, the driver died.
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_keep_alive(std::time::Duration::from_secs(24 * 3600))
            .max_blocking_threads(COUNTED_BLOCKING_THREADS)
            .build()
    } else {
        tokio::runtime::Runtime::new()
    }
    .context("cannot start the async runtime")?;
    let prepared = runtime
        .block_on(workloads::prepare(&params, &ctx))
        .context("preparing the workload")?;
    if counted {
        runtime.block_on(prestart_blocking_threads(COUNTED_BLOCKING_THREADS));
    }
    say(&DriverMessage::Ready)?;

    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    stdin.read_line(&mut line).context("reading the go signal")?;
    if line.trim() != GO {
        bail!("expected {GO:?} on stdin, got {line:?}");
    }
    let measure = match counted {
        true => workloads::Measure::Counted,
        false => workloads::Measure::Timed,
    };
    let (outcome, leftovers) = runtime
        .block_on(prepared.run(measure))
        .context("running the workload")?;
    say(&DriverMessage::Done(outcome))?;

    // Stay alive until the harness has read our counters and closes stdin; only then stop
    // what the round still holds, so that its cost stays out of the round's counters.
    while stdin.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {}
    runtime.block_on(leftovers.release());
    Ok(())
}

/// Blocking threads started before a counted round, more than its blocking work uses at once:
/// `server.backend` at 10 at a time started 5 to 21 inside its measured part, as many as
/// earlier blocking tasks happened to have left busy.
const COUNTED_BLOCKING_THREADS: usize = 64;

/// Starts `n` blocking threads and leaves them idle in the pool: each task waits until all
/// have started, so that none runs on another's thread.
async fn prestart_blocking_threads(n: usize) {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let barrier = barrier.clone();
            tokio::task::spawn_blocking(move || {
                barrier.wait();
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

fn say(message: &DriverMessage) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, message)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}
