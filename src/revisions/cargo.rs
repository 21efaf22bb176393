//! The default build of a revision: cargo builds the two binaries a run needs, with progress
//! on the terminal and the whole output in a log.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The binaries every build must provide: the client driver (the CLI itself) and the server.
pub const BINARIES: [&str; 2] = ["soledad-bench", "blobs-server"];

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `cargo metadata` of the workspace at `dir` (its own packages only), or why it failed.
pub fn metadata(dir: &Path) -> anyhow::Result<Result<serde_json::Value, String>> {
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        return Ok(Err(format!(
            "cargo metadata failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(Ok(
        serde_json::from_slice(&out.stdout).context("cargo metadata printed no JSON")?
    ))
}

/// The packages that build each of [`BINARIES`], or what is missing.
pub fn plan(meta: &serde_json::Value) -> Result<Vec<(String, &'static str)>, String> {
    let mut bins = BTreeMap::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        for target in package["targets"].as_array().into_iter().flatten() {
            let is_bin = target["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin"));
            if let (true, Some(name), Some(pkg)) = (is_bin, target["name"].as_str(), package["name"].as_str()) {
                bins.insert(name.to_owned(), pkg.to_owned());
            }
        }
    }
    let missing: Vec<&str> = BINARIES.into_iter().filter(|b| !bins.contains_key(*b)).collect();
    if !missing.is_empty() {
        let have: Vec<&str> = bins.keys().map(String::as_str).collect();
        return Err(format!(
            "it has no {} binary (its workspace builds: {}); a run needs `soledad-bench` and `blobs-server`",
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(" or "),
            if have.is_empty() {
                "no binaries".to_owned()
            } else {
                have.join(", ")
            }
        ));
    }
    Ok(BINARIES.into_iter().map(|b| (bins[b].clone(), b)).collect())
}

/// Where cargo keeps a workspace's intermediate artifacts (its `build_directory`, normally
/// `target/`).
pub fn build_directory(meta: &serde_json::Value) -> Option<PathBuf> {
    meta["build_directory"]
        .as_str()
        .or_else(|| meta["target_directory"].as_str())
        .map(PathBuf::from)
}

/// How one cargo build runs.
pub struct CargoBuild<'a> {
    pub dir: &'a Path,
    /// Environment set for cargo (target and build directories).
    pub env: Vec<(&'static str, PathBuf)>,
    pub locked: bool,
    pub log: &'a Path,
    /// What is being built, for the progress line.
    pub label: &'a str,
}

impl CargoBuild<'_> {
    /// The command as a reader would type it, for reports (one per binary, `-p PACKAGE
    /// --bin BINARY` each).
    pub fn describe(&self) -> String {
        format!("cargo build --release{}", if self.locked { " --locked" } else { "" })
    }

    /// Builds each binary of `plan` with its own cargo invocation, as `cargo run --release`
    /// and the harness's server build do: building both packages in one invocation would
    /// unify their dependencies' features differently and compile the dependencies again
    /// instead of reusing the working tree's. Returns the executables by name, or why the
    /// build failed (the log's excerpt comes from the caller).
    pub fn run(&self, plan: &[(String, &'static str)]) -> anyhow::Result<Result<BTreeMap<String, PathBuf>, String>> {
        let mut log =
            std::fs::File::create(self.log).with_context(|| format!("cannot create {}", self.log.display()))?;
        let progress = Progress::start(self.label, self.log);
        let mut built = BTreeMap::new();
        for (package, bin) in plan {
            let mut cmd = cargo();
            cmd.args([
                "build",
                "--release",
                "-p",
                package,
                "--bin",
                bin,
                "--message-format=json-render-diagnostics",
            ])
            .current_dir(self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Progress comes from the "Compiling" lines; cargo's own bar is for terminals.
            .env("CARGO_TERM_PROGRESS_WHEN", "never")
            .env("CARGO_TERM_COLOR", "never");
            if self.locked {
                cmd.arg("--locked");
            }
            for (key, value) in &self.env {
                cmd.env(key, value);
            }
            let mut child = cmd.spawn().context("cannot run cargo")?;
            let stderr = child.stderr.take().expect("piped");
            let stdout = child.stdout.take().expect("piped");
            let artifacts = std::thread::spawn(move || executables(stdout));
            let copied = copy_lines(stderr, &mut log, |line| progress.line(line));
            if copied.is_err() {
                // Do not leave cargo running with nobody reading its output.
                let _ = child.kill();
            }
            let status = child.wait().context("cannot wait for cargo")?;
            copied.with_context(|| format!("cannot write {}", self.log.display()))?;
            let executables = artifacts.join().expect("the reader does not panic");
            if !status.success() {
                progress.finish(false);
                return Ok(Err(format!("cargo build -p {package} --bin {bin}: {status}")));
            }
            match executables.get(*bin) {
                Some(path) => built.insert((*bin).to_owned(), path.clone()),
                None => {
                    progress.finish(false);
                    return Ok(Err(format!("cargo built no executable `{bin}`")));
                }
            };
        }
        progress.finish(true);
        Ok(Ok(built))
    }
}

/// Copies cargo's human output (bytes, whatever their encoding) into the log, line by line,
/// handing each line to `each`.
fn copy_lines(from: impl std::io::Read, log: &mut std::fs::File, mut each: impl FnMut(&str)) -> std::io::Result<()> {
    let mut reader = BufReader::new(from);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        log.write_all(&line)?;
        each(String::from_utf8_lossy(&line).trim_end());
    }
}

/// The executables cargo's JSON messages report, by target name.
fn executables(stdout: impl std::io::Read) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact"
            && let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str())
        {
            out.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    out
}

/// What a build shows while it runs: a spinner with the elapsed time and the crate cargo is
/// compiling on a terminal; elsewhere (CI logs) a line every [`PLAIN_EVERY`].
struct Progress {
    bar: ProgressBar,
    started: Instant,
    label: String,
    last_plain: std::cell::Cell<Instant>,
}

const PLAIN_EVERY: Duration = Duration::from_secs(30);

impl Progress {
    fn start(label: &str, log: &Path) -> Self {
        // Before the bar draws its first line.
        eprintln!("building {label} (log: {})", log.display());
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} building {prefix} [{elapsed}] {wide_msg}").expect("valid template"),
        );
        bar.set_prefix(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        Self {
            bar,
            started: Instant::now(),
            label: label.to_owned(),
            last_plain: std::cell::Cell::new(Instant::now()),
        }
    }

    fn line(&self, line: &str) {
        let line = line.trim();
        if !(line.starts_with("Compiling") || line.starts_with("Finished") || line.starts_with("Downloaded")) {
            return;
        }
        self.bar.set_message(line.to_owned());
        if self.bar.is_hidden() && self.last_plain.get().elapsed() >= PLAIN_EVERY {
            self.last_plain.set(Instant::now());
            eprintln!("  {} {}: {line}", self.label, elapsed(self.started.elapsed()));
        }
    }

    fn finish(&self, ok: bool) {
        self.bar.finish_and_clear();
        eprintln!(
            "{} {} in {}",
            if ok { "built" } else { "failed to build" },
            self.label,
            elapsed(self.started.elapsed())
        );
    }
}

fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
