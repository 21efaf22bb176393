//! A `blobs-server` child process with a fresh data directory.

use std::io::{BufRead, BufReader};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::HarnessError;
use crate::count::Counted;

const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Under Valgrind a server starts in about a second here; the margin is for loaded machines.
const COUNTED_START_TIMEOUT: Duration = Duration::from_secs(60);

/// The benchmark user the server knows.
pub const BENCH_USER: &str = "bench";

pub struct ServerProcess {
    child: Child,
    url: String,
    token: String,
    /// The services listener (incoming box) and the MX's token on it.
    services_url: String,
    service_token: String,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts a server on a free loopback port with its data under `dir`; under Callgrind
    /// with counting off when `count` is given (the count round).
    pub fn start(
        binary: &Path,
        dir: &Path,
        env: &[(String, String)],
        count: Option<&Counted>,
    ) -> Result<Self, HarnessError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let tokens = dir.join("tokens");
        std::fs::write(&tokens, format!("{BENCH_USER}:{token}\n"))
            .map_err(HarnessError::io(format!("cannot write {}", tokens.display())))?;
        let service_token = uuid::Uuid::new_v4().simple().to_string();
        let services_tokens = dir.join("services.tokens");
        std::fs::write(&services_tokens, format!("{}:{service_token}\n", workloads::MX_SERVICE))
            .map_err(HarnessError::io(format!("cannot write {}", services_tokens.display())))?;
        let log = dir.join("server.log");
        // Appended to: a server started again on the same data keeps its predecessor's log.
        let log_file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(HarnessError::io(format!("cannot create {}", log.display())))?;
        let mut cmd = match count {
            Some(count) => count.command(binary),
            None => Command::new(binary),
        };
        // The load's clients stand for as many users but share one account: they get the
        // whole write bound (the server's default of 50, or the one set for it), as that many
        // users would. Set in the environment, which a server from before the per-user bound
        // ignores (paired rounds run the previous commit's server).
        let bound = env
            .iter()
            .find(|(k, _)| k == "BLOBS_SERVER_MAX_CONCURRENT_WRITES")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var("BLOBS_SERVER_MAX_CONCURRENT_WRITES").ok())
            .unwrap_or_else(|| "50".into());
        cmd.env("BLOBS_SERVER_MAX_WRITES_PER_USER", bound);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--tokens")
            .arg(&tokens)
            .arg("--services-listen")
            .arg("127.0.0.1:0")
            .arg("--services-tokens")
            .arg(&services_tokens);
        // Its own process group: Ctrl-C reaches only the harness, which stops the server.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        workloads::child::stop_with_parent(&mut cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| HarnessError::ServerStart(format!("cannot run {}: {e}", binary.display())))?;

        // Read the two address lines (public API, then services) on a thread so a silent
        // server cannot hang the harness.
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut out = BufReader::new(stdout);
            for _ in 0..2 {
                let mut line = String::new();
                let _ = out.read_line(&mut line);
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let timeout = if count.is_some() {
            COUNTED_START_TIMEOUT
        } else {
            START_TIMEOUT
        };
        let deadline = std::time::Instant::now() + timeout;
        let next_line = || {
            rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
                .unwrap_or_default()
        };
        let line = next_line();
        let services_line = next_line();
        let addrs = blobs_server::parse_listening_line(&line).zip(blobs_server::parse_services_line(&services_line));
        let Some((addr, services)) = addrs else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HarnessError::ServerStart(format!(
                "{} did not report its two addresses within {}s (it said {line:?} and {services_line:?}); its log says: {}",
                binary.display(),
                timeout.as_secs(),
                tail(&log)
            )));
        };
        if let Some(outside) = [addr, services].into_iter().find(|a| !a.ip().is_loopback()) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HarnessError::ServerStart(format!(
                "server bound {outside}, which is not loopback"
            )));
        }
        Ok(Self {
            child,
            url: format!("http://{addr}"),
            token,
            services_url: format!("http://{services}"),
            service_token,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn services_url(&self) -> &str {
        &self.services_url
    }

    /// The token of [`workloads::MX_SERVICE`] on the services listener.
    pub fn service_token(&self) -> &str {
        &self.service_token
    }

    /// Stops the server as a service manager would (SIGTERM: it finishes the requests in
    /// flight), or kills it after 10 s.
    pub fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's pid; no memory involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Errors if the server has exited, with the end of its log.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "the server exited ({status}); its log says: {}",
                tail(&self.log)
            )),
            Err(e) => Err(format!("cannot check the server: {e}")),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of a log file, for error messages.
pub(crate) fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(5);
    let joined = lines[start..].join(" | ");
    if joined.is_empty() { "(nothing)".into() } else { joined }
}
