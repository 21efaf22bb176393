//! Finding the programs a run measures.
//!
//! `cargo run -- run` builds only the `soledad-bench` package, so the server binary may be
//! missing or stale. When this executable was built from a workspace that is still on disk,
//! the harness asks cargo to build `blobs-server` with the same profile (a no-op when it is up
//! to date) and uses what cargo reports; otherwise it uses the `blobs-server` next to this
//! executable.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::HarnessError;

/// `release` or `debug`: the profile this executable, and so the measured binaries, use.
pub fn profile() -> &'static str {
    if cfg!(debug_assertions) { "debug" } else { "release" }
}

/// The workspace this crate was compiled from, if it is still there.
fn source_workspace() -> Option<PathBuf> {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.to_owned();
    ws.join("blobs/server/Cargo.toml").is_file().then_some(ws)
}

/// Path of the `blobs-server` to measure: `explicit` if given, else a fresh cargo build of
/// the source workspace, else the binary beside the current executable.
pub fn server_binary(explicit: Option<&Path>) -> Result<PathBuf, HarnessError> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_owned())
        } else {
            Err(HarnessError::ServerBinary(format!("{} is not a file", path.display())))
        };
    }
    if let Some(ws) = source_workspace() {
        return cargo_build_server(&ws);
    }
    let exe = std::env::current_exe().map_err(|e| HarnessError::ServerBinary(e.to_string()))?;
    let sibling = exe.with_file_name("blobs-server");
    if sibling.is_file() {
        Ok(sibling)
    } else {
        Err(HarnessError::ServerBinary(format!(
            "no {} and no source workspace to build it from; pass --server-bin PATH",
            sibling.display()
        )))
    }
}

fn cargo_build_server(workspace: &Path) -> Result<PathBuf, HarnessError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--quiet",
            "-p",
            "blobs-server",
            "--bin",
            "blobs-server",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if profile() == "release" {
        cmd.arg("--release");
    }
    let out = cmd
        .output()
        .map_err(|e| HarnessError::ServerBinary(format!("cannot run cargo to build blobs-server: {e}")))?;
    if !out.status.success() {
        return Err(HarnessError::ServerBinary(format!(
            "cargo build -p blobs-server failed ({})",
            out.status
        )));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "blobs-server")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| HarnessError::ServerBinary("cargo built blobs-server but did not say where".into()))
}
