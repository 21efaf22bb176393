//! The S3 backend's test cluster (3 Garage nodes and etcd on 127.0.0.1) for workloads that
//! run on `backend = "s3"`: run by the script beside the server's tests, stopped on drop, and
//! also when this process dies, however it dies.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::WorkloadError;

/// The cluster script, found beside this crate's sources (or named by
/// `SOLEDAD_BENCH_CLUSTER_SCRIPT`).
pub fn script() -> PathBuf {
    std::env::var_os("SOLEDAD_BENCH_CLUSTER_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../blobs/server/tests/garage/cluster"))
}

pub struct Garage {
    /// The settings the script printed: endpoint, bucket, region, credentials, etcd.
    pub env: Vec<(String, String)>,
    /// Dropping the sender ends the holder thread, which stops the script and waits for it.
    stop: Option<mpsc::Sender<()>>,
    holder: Option<JoinHandle<()>>,
}

impl Garage {
    /// Starts a cluster in `dir` with `cluster run`, which stays in the foreground until
    /// SIGTERM and then stops its nodes. The script is spawned by a thread of its own that
    /// lives as long as this `Garage`, with a parent-death signal: it gets SIGTERM when that
    /// thread ends, so also when this process is killed (daemonized nodes, as `cluster start`
    /// leaves them, would outlive a killed benchmark run for good).
    pub fn start(dir: &Path) -> Result<Self, WorkloadError> {
        let script = script();
        // The script's messages, read back if the start fails (a pipe nobody reads could fill).
        let errors = dir.with_extension("script-errors");
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| WorkloadError::Invalid(format!("cannot create {}: {e}", parent.display())))?;
        }
        let errors_file = std::fs::File::create(&errors)
            .map_err(|e| WorkloadError::Invalid(format!("cannot create {}: {e}", errors.display())))?;
        let mut cmd = Command::new("bash");
        // A process group of its own, as the server has: Ctrl-C reaches the harness, which
        // stops the cluster after the round, not the nodes in the middle of it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.arg(&script)
            .arg("run")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(errors_file);
        crate::child::stop_with_parent(&mut cmd);
        let (started_tx, started) = mpsc::channel::<Result<Vec<(String, String)>, String>>();
        let (stop, stopped) = mpsc::channel::<()>();
        let holder = std::thread::Builder::new()
            .name("garage-cluster".into())
            .spawn(move || {
                let mut child = match cmd.spawn() {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = started_tx.send(Err(format!("cannot run {}: {e}", script.display())));
                        return;
                    }
                };
                let mut env = Vec::new();
                let mut ready = false;
                for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
                    let Ok(line) = line else { break };
                    if line == "READY" {
                        ready = true;
                        break;
                    }
                    if let Some((k, v)) = line.split_once('=') {
                        env.push((k.to_owned(), v.to_owned()));
                    }
                }
                if !ready {
                    let _ = child.wait();
                    let said = std::fs::read_to_string(&errors).unwrap_or_default();
                    let _ = started_tx.send(Err(format!("the S3 test cluster did not start: {}", said.trim())));
                    return;
                }
                let _ = started_tx.send(Ok(env));
                // Until the Garage is dropped (or this process dies, and the kernel sends the
                // SIGTERM instead).
                let _ = stopped.recv();
                // SAFETY: a plain kill(2) of our own child, which has not been reaped.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                let _ = child.wait();
            })
            .map_err(|e| WorkloadError::Invalid(format!("cannot start a thread: {e}")))?;
        let env = match started.recv() {
            Ok(Ok(env)) => env,
            Ok(Err(message)) => {
                let _ = holder.join();
                return Err(WorkloadError::Invalid(message));
            }
            Err(_) => {
                let _ = holder.join();
                return Err(WorkloadError::Invalid("the cluster's thread ended".into()));
            }
        };
        let garage = Self {
            env,
            stop: Some(stop),
            holder: Some(holder),
        };
        for (k, v) in &garage.env {
            if (k.contains("ENDPOINT") || k.contains("ETCD"))
                && !v.split(',').all(|u| crate::loopback::check(u).is_ok())
            {
                return Err(WorkloadError::Invalid(format!("refusing a non-loopback {k}={v}")));
            }
        }
        Ok(garage)
    }

    pub fn get(&self, key: &str) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// What a `blobs-server` process needs in its environment to run on this cluster.
    pub fn server_env(&self, prefix: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("BLOBS_SERVER_STORAGE_BACKEND".to_owned(), "s3".to_owned()),
            ("BLOBS_SERVER_S3_ENDPOINT".to_owned(), self.get("SOLEDAD_S3_ENDPOINT")),
            ("BLOBS_SERVER_S3_BUCKET".to_owned(), self.get("SOLEDAD_S3_BUCKET")),
            ("BLOBS_SERVER_S3_REGION".to_owned(), self.get("SOLEDAD_S3_REGION")),
            ("BLOBS_SERVER_ETCD".to_owned(), self.get("SOLEDAD_ETCD")),
            ("BLOBS_SERVER_S3_PREFIX".to_owned(), prefix.to_owned()),
        ];
        for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            env.push((k.to_owned(), self.get(k)));
        }
        env
    }

    /// The server's S3 settings, for the backend driven in-process.
    pub fn s3_config(&self, prefix: &str) -> blobs_server::config::S3Config {
        blobs_server::config::S3Config {
            endpoint: self.get("SOLEDAD_S3_ENDPOINT"),
            bucket: self.get("SOLEDAD_S3_BUCKET"),
            region: self.get("SOLEDAD_S3_REGION"),
            access_key_id: self.get("AWS_ACCESS_KEY_ID"),
            secret_access_key: self.get("AWS_SECRET_ACCESS_KEY"),
            etcd: vec![self.get("SOLEDAD_ETCD")],
            prefix: prefix.to_owned(),
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        // Ends the holder thread's wait: it stops the script, which stops the nodes.
        drop(self.stop.take());
        if let Some(holder) = self.holder.take() {
            let _ = holder.join();
        }
    }
}
