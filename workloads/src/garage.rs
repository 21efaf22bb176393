//! The S3 backend's test cluster (3 Garage nodes and etcd on 127.0.0.1) for workloads that
//! run on `backend = "s3"`: started by the script beside the server's tests, stopped on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::WorkloadError;

/// The cluster script, found beside this crate's sources (or named by
/// `SOLEDAD_BENCH_CLUSTER_SCRIPT`).
pub fn script() -> PathBuf {
    std::env::var_os("SOLEDAD_BENCH_CLUSTER_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../blobs/server/tests/garage/cluster"))
}

pub struct Garage {
    dir: PathBuf,
    /// The settings the script printed: endpoint, bucket, region, credentials, etcd.
    pub env: Vec<(String, String)>,
}

impl Garage {
    pub fn start(dir: &Path) -> Result<Self, WorkloadError> {
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir)
            .output()
            .map_err(|e| WorkloadError::Invalid(format!("cannot run {}: {e}", script().display())))?;
        if !out.status.success() {
            return Err(WorkloadError::Invalid(format!(
                "the S3 test cluster did not start: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let env: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        for (k, v) in &env {
            if (k.contains("ENDPOINT") || k.contains("ETCD"))
                && !v.split(',').all(|u| crate::loopback::check(u).is_ok())
            {
                return Err(WorkloadError::Invalid(format!("refusing a non-loopback {k}={v}")));
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            env,
        })
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
        let _ = Command::new("bash").arg(script()).arg("stop").arg(&self.dir).status();
    }
}
