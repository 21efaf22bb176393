//! A client-driver child process: `soledad-bench drive`, running one round of a workload.
//! The protocol is in `workloads::protocol`: the driver reports `ready`, waits for `go`,
//! reports `done` and then waits for its stdin to close before exiting.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use workloads::protocol::{DriverMessage, GO};
use workloads::{Outcome, Params};

use crate::count::Counted;
use crate::server::tail;

/// What a wait returns when the run was interrupted.
pub const INTERRUPTED: &str = "interrupted";

/// Environment variable that carries the token to the driver (not its command line, which
/// other users of the machine can read).
pub const TOKEN_ENV: &str = "SOLEDAD_BENCH_TOKEN";

/// Environment variable that carries the MX's service token to the driver.
pub const SERVICE_TOKEN_ENV: &str = "SOLEDAD_BENCH_SERVICE_TOKEN";

/// The server a driver talks to.
pub struct ServerAccess<'a> {
    pub url: &'a str,
    pub user: &'a str,
    pub token: &'a str,
    /// The services listener's URL and the MX's token there; `None` for a server started
    /// elsewhere.
    pub services: Option<(&'a str, &'a str)>,
}

/// How to start a driver for one round.
pub struct DriverSpec<'a> {
    pub exe: &'a Path,
    /// `None` for workloads that need no server.
    pub server: Option<ServerAccess<'a>>,
    pub params: &'a Params,
    pub round: u32,
    pub seed: u64,
    pub work_dir: &'a Path,
    /// Shared by the rounds of one scenario.
    pub scenario_dir: &'a Path,
    pub env: &'a [(String, String)],
    /// Run under Callgrind with counting off (the count round).
    pub count: Option<&'a Counted>,
}

pub struct DriverProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
}

impl DriverProcess {
    pub fn spawn(spec: &DriverSpec) -> Result<Self, String> {
        std::fs::create_dir_all(spec.work_dir)
            .map_err(|e| format!("cannot create {}: {e}", spec.work_dir.display()))?;
        let log = spec.work_dir.join("driver.log");
        let log_file = std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let params = serde_json::to_string(spec.params).expect("params serialize");
        let mut cmd = match spec.count {
            Some(count) => {
                let mut cmd = count.command(spec.exe);
                cmd.env(crate::count::COUNT_ROUND_ENV, "1");
                cmd
            }
            None => {
                let mut cmd = Command::new(spec.exe);
                // A timed round is never run as a count round, whatever the caller's
                // environment says.
                cmd.env_remove(crate::count::COUNT_ROUND_ENV);
                cmd
            }
        };
        cmd.arg("drive")
            .args([
                "--params",
                &params,
                "--round",
                &spec.round.to_string(),
                "--seed",
                &spec.seed.to_string(),
            ])
            .arg("--work-dir")
            .arg(spec.work_dir)
            .arg("--scenario-dir")
            .arg(spec.scenario_dir);
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
        if let Some(s) = &spec.server {
            cmd.args(["--server", s.url, "--user", s.user]).env(TOKEN_ENV, s.token);
            // Only the workloads that use it get the services listener: drivers built before
            // it existed (old revisions in `compare` and `backfill`) reject the argument.
            if let Some((url, token)) = s.services.filter(|_| spec.params.workload.needs_services()) {
                cmd.args(["--services", url]).env(SERVICE_TOKEN_ENV, token);
            }
        }
        // Its own process group: Ctrl-C reaches only the harness, which stops the driver.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        workloads::child::stop_with_parent(&mut cmd);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot run {} drive: {e}", spec.exe.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            lines,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the next message, checking `stop` every 100 ms.
    fn next_message(
        &mut self,
        timeout: Duration,
        waiting_for: &str,
        stop: &AtomicBool,
    ) -> Result<DriverMessage, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(INTERRUPTED.into());
            }
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            match self.lines.recv_timeout(wait) {
                Ok(line) => return serde_json::from_str(&line).map_err(|e| format!("driver said {line:?} ({e})")),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!("driver not {waiting_for} after {}s", timeout.as_secs()));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self
                        .child
                        .wait()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|e| e.to_string());
                    return Err(format!(
                        "driver exited ({status}) before it was {waiting_for}: {}",
                        tail(&self.log)
                    ));
                }
            }
        }
    }

    pub fn wait_ready(&mut self, timeout: Duration, stop: &AtomicBool) -> Result<(), String> {
        match self.next_message(timeout, "ready", stop)? {
            DriverMessage::Ready => Ok(()),
            other => Err(format!("driver sent {other:?} instead of ready")),
        }
    }

    /// Starts the measured part.
    pub fn go(&mut self) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("driver was already started")?;
        writeln!(stdin, "{GO}")
            .and_then(|_| stdin.flush())
            .map_err(|e| format!("cannot start the driver: {e}"))
    }

    pub fn wait_done(&mut self, timeout: Duration, stop: &AtomicBool) -> Result<Outcome, String> {
        match self.next_message(timeout, "done", stop)? {
            DriverMessage::Done(outcome) => Ok(outcome),
            other => Err(format!("driver sent {other:?} instead of its outcome")),
        }
    }

    /// Lets the driver exit. It stays alive after reporting so that its counters can be read
    /// from /proc; a process that has exited has no memory counters left.
    pub fn finish(mut self) -> Result<(), String> {
        self.stdin = None;
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("driver exited with {status}: {}", tail(&self.log)));
        }
        Ok(())
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        // The whole process group, not just the driver: what the driver started (the S3
        // scenarios' Garage nodes and etcd) would otherwise outlive a driver that was
        // stopped or crashed, holding ports over a deleted work dir. The group outlives its
        // leader while any member runs, so this is safe after the driver exited as well.
        let group = -(self.child.id() as i32);
        // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}
