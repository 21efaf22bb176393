//! The Garage + etcd cluster of `tests/garage/cluster`, started by the tests themselves.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/garage/cluster")
}

fn garage_binary() -> PathBuf {
    if let Ok(p) = std::env::var("SOLEDAD_BENCH_GARAGE") {
        return p.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
    cache.join("soledad-bench/garage-2.5.0/bin/garage")
}

fn etcd_present() -> bool {
    std::env::var_os("SOLEDAD_BENCH_ETCD").is_some()
        || std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("etcd").is_file()))
}

/// Whether the S3 tests can run; if not, says so loudly, or fails when they are required.
pub fn available() -> bool {
    let ok = garage_binary().is_file() && etcd_present();
    if !ok {
        let msg = format!(
            "garage ({}) or etcd missing: install them with `{} install`",
            garage_binary().display(),
            script().display()
        );
        if std::env::var_os("SOLEDAD_BENCH_REQUIRE_GARAGE").is_some() {
            panic!("SOLEDAD_BENCH_REQUIRE_GARAGE is set but {msg}");
        }
        // Written to the real stderr, once: `eprintln!` is captured for passing tests.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n!!!!!!!! SKIPPING the S3 backend tests: {msg} !!!!!!!!\n"
            );
        });
    }
    ok
}

/// A running cluster; stopped when dropped, or when the test process ends.
pub struct Cluster {
    child: Child,
    pub dir: PathBuf,
    pub env: HashMap<String, String>,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// Starts a fresh cluster in a temp dir. `cluster run` stays in the foreground and is
    /// started from a thread that never ends, with a parent-death signal: whatever way the
    /// test process ends, the script is told to stop its nodes.
    pub fn start() -> Cluster {
        Self::start_with_etcd_members(1)
    }

    /// A fresh cluster whose etcd has `members` members (1 or 3).
    pub fn start_with_etcd_members(members: u32) -> Cluster {
        // A port picked as free can be taken by another process before a node binds it;
        // a fresh range is tried then.
        for _ in 0..2 {
            if let Some(c) = Self::try_start(members) {
                return c;
            }
            eprintln!("the test cluster did not start; trying again on other ports");
        }
        Self::try_start(members).expect("the test cluster did not start (see the script's messages above)")
    }

    fn try_start(members: u32) -> Option<Cluster> {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cluster");
        let (tx, rx) = std::sync::mpsc::channel();
        let d = dir.clone();
        std::thread::spawn(move || {
            use std::os::unix::process::CommandExt as _;
            let mut cmd = Command::new("bash");
            // The script deletes the temp dir itself when it stops: the shared cluster lives
            // in a static, which is never dropped.
            let root = d.parent().expect("the cluster dir is inside the temp dir").to_owned();
            cmd.arg(script())
                .arg("run")
                .arg(&d)
                .arg(root)
                .env("SOLEDAD_BENCH_ETCD_MEMBERS", members.to_string())
                .stdout(Stdio::piped());
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
            tx.send(cmd.spawn()).unwrap();
            loop {
                std::thread::park();
            }
        });
        let mut child = rx.recv().unwrap().expect("cannot run the cluster script");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut env = HashMap::new();
        let mut line = String::new();
        loop {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                for log in ["node1/log", "node2/log", "node3/log", "etcd/log"] {
                    if let Ok(text) = std::fs::read_to_string(dir.join(log)) {
                        let tail: Vec<&str> = text.lines().rev().take(5).collect();
                        eprintln!("{log}: {}", tail.join("\n"));
                    }
                }
                let _ = child.wait();
                return None;
            }
            let l = line.trim();
            if l == "READY" {
                break;
            }
            if let Some((k, v)) = l.split_once('=') {
                env.insert(k.to_owned(), v.to_owned());
            }
        }
        for (k, v) in &env {
            if k.contains("ENDPOINT") || k.contains("ETCD") {
                for url in v.split(',') {
                    assert!(url.starts_with("http://127.0.0.1:"), "{k}={v}");
                }
            }
        }
        Some(Cluster {
            child,
            dir,
            env,
            _tmp: tmp,
        })
    }

    /// One cluster for every test of this process (each server gets its own key prefix).
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(Cluster::start)
    }

    /// Kills Garage node `n` (1-3) as a crash would.
    pub fn stop_node(&self, n: u32) {
        self.kill(&n.to_string());
    }

    /// Kills a node (`1`-`3` for Garage's, `etcd`, `etcd2`, `etcd3` for etcd's) with SIGKILL.
    pub fn kill(&self, node: &str) {
        self.script(&["stop-node", self.dir.to_str().unwrap(), node]);
    }

    /// Starts a node killed before, on its data.
    pub fn restart(&self, node: &str) {
        self.script(&["start-node", self.dir.to_str().unwrap(), node]);
    }

    fn script(&self, args: &[&str]) {
        let st = Command::new("bash").arg(script()).args(args).status().unwrap();
        assert!(st.success(), "cluster {args:?} failed");
    }

    /// Flags and environment that point a server at this cluster under `prefix`.
    pub fn server_args(&self, prefix: &str) -> (Vec<String>, Vec<(String, String)>) {
        let args = vec![
            "--storage-backend".into(),
            "s3".into(),
            "--s3-endpoint".into(),
            self.env["SOLEDAD_S3_ENDPOINT"].clone(),
            "--s3-bucket".into(),
            self.env["SOLEDAD_S3_BUCKET"].clone(),
            "--s3-region".into(),
            self.env["SOLEDAD_S3_REGION"].clone(),
            "--etcd".into(),
            self.env["SOLEDAD_ETCD"].clone(),
            "--s3-prefix".into(),
            prefix.into(),
        ];
        let env = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
            .iter()
            .map(|k| (k.to_string(), self.env[*k].clone()))
            .collect();
        (args, env)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGTERM: the script's trap stops every node.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}
