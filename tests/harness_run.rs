//! The harness through the real `soledad-bench run`: every workload family, a server started
//! elsewhere (`--target`), and Ctrl-C.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Repo, processes_mentioning, stderr};

const EVERY_WORKLOAD: &str = r#"
warmup_rounds = 0
rounds = 5
[[scenario]]
workload = "crypto.encrypt"
payloads = ["2x10k"]
[[scenario]]
workload = "crypto.decrypt"
payloads = ["2x10k"]
[[scenario]]
workload = "blobs.upload"
payloads = ["3x10k"]
concurrency = [2]
[[scenario]]
workload = "blobs.download"
payloads = ["3x10k"]
concurrency = [2]
[[scenario]]
workload = "blobs.sync"
directions = ["up", "down", "none"]
payloads = ["3xmail"]
concurrency = [2]
[[scenario]]
workload = "blobs.list"
payloads = ["10x1k"]
concurrency = [2]
[[scenario]]
workload = "store.put"
payloads = ["5x10k"]
[[scenario]]
workload = "store.get"
payloads = ["5x10k"]
[[scenario]]
workload = "server.backend"
ops = ["write", "read"]
payloads = ["5x10k"]
concurrency = [2]
[[scenario]]
workload = "server.load"
ops = ["upload", "download"]
sizes = ["1k"]
concurrency = [2]
duration_s = 1
[[scenario]]
workload = "incoming.deliver"
payloads = ["4xmail"]
concurrency = [2]
[[scenario]]
workload = "incoming.process"
payloads = ["4x10k"]
"#;

fn load_results(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `soledad-bench run` of a scenario file in the repository, into a database under out/.
fn run_cmd(repo: &Repo, scenarios: &str, db: &str) -> Command {
    let mut cmd = Command::new(common::bench_exe());
    cmd.current_dir(repo.path())
        .args(["run", "--scenarios", scenarios, "--db", db, "--site", "out/site"])
        .env(common::NO_COUNT_ROUND.0, common::NO_COUNT_ROUND.1);
    cmd
}

/// A scenario that runs for a while: server load, 5 rounds of 5 s.
const SLOW: &str = "rounds = 5\n[[scenario]]\nworkload = \"server.load\"\nops = [\"upload\"]\nsizes = [\"1k\"]\nconcurrency = [2]\nduration_s = 5\n";

/// `run_cmd` into out/c.sqlite with this workspace's server and the given work directory.
fn run_in(repo: &Repo, scenarios: &str, work: &std::path::Path) -> Command {
    let mut cmd = run_cmd(repo, scenarios, "out/c.sqlite");
    cmd.arg("--server-bin")
        .arg(common::server_exe())
        .arg("--work-dir")
        .arg(work);
    cmd
}

/// A blobs-server started outside the harness, with user `someone` (token `s3cret`) and,
/// with `services`, a services listener where `mx` has the token `svc-s3cret`.
struct TargetServer {
    child: std::process::Child,
    url: String,
    services_url: Option<String>,
}

impl TargetServer {
    fn start(repo: &Repo, services: bool) -> Self {
        let data = repo.out().join("target-server");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("tokens"), "someone:s3cret\n").unwrap();
        std::fs::write(data.join("services"), "mx:svc-s3cret\n").unwrap();
        let mut cmd = Command::new(common::server_exe());
        cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.join("blobs"))
            .arg("--tokens")
            .arg(data.join("tokens"));
        if services {
            cmd.args(["--services-listen", "127.0.0.1:0", "--services-tokens"])
                .arg(data.join("services"));
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = blobs_server::parse_listening_line(&line).unwrap();
        assert!(addr.ip().is_loopback());
        let services_url = services.then(|| {
            line.clear();
            out.read_line(&mut line).unwrap();
            format!("http://{}", blobs_server::parse_services_line(&line).unwrap())
        });
        Self {
            child,
            url: format!("http://{addr}"),
            services_url,
        }
    }

    /// `run` against this server.
    fn run_cmd(&self, repo: &Repo, scenarios: &str, db: &str) -> Command {
        let mut cmd = run_cmd(repo, scenarios, db);
        cmd.args(["--target", &self.url, "--target-user", "someone"])
            .env("SOLEDAD_BENCH_TARGET_TOKEN", "s3cret");
        if let Some(services) = &self.services_url {
            cmd.args(["--target-services", services])
                .env("SOLEDAD_BENCH_TARGET_SERVICE_TOKEN", "svc-s3cret");
        }
        cmd
    }
}

impl Drop for TargetServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metric_names(scenario: &serde_json::Value) -> Vec<String> {
    scenario["metrics"].as_object().unwrap().keys().cloned().collect()
}

#[test]
fn every_workload_reports_every_metric_family_for_both_processes() {
    let repo = Repo::new();
    std::fs::write(repo.path().join("every.toml"), EVERY_WORKLOAD).unwrap();
    repo.commit("c");
    let results = repo.out().join("every.json");
    let work = repo.out().join("work");
    let out = repo.bench_run(&[
        ("--scenarios", repo.path().join("every.toml").to_str().unwrap()),
        ("--results", results.to_str().unwrap()),
        ("--work-dir", work.to_str().unwrap()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Finished scenarios' files, held back until the run ended, are gone with it.
    let leftovers: Vec<_> = std::fs::read_dir(work.join("soledad-bench")).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let r = load_results(&results);
    let scenarios = r["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 16);
    let by_id: BTreeMap<&str, &serde_json::Value> = scenarios.iter().map(|s| (s["id"].as_str().unwrap(), s)).collect();

    let client_families = [
        "client_cpu_user_s",
        "client_cpu_sys_s",
        "client_cpu_pct",
        "client_anon_peak_mib",
        "client_anon_mean_mib",
        "client_io_read_mib",
        "client_io_write_mib",
        "client_io_read_total_mib",
        "client_io_write_total_mib",
        "client_read_calls",
        "client_write_calls",
        "client_minor_faults",
        "client_major_faults",
        "client_voluntary_switches",
        "client_involuntary_switches",
        "client_loop_lag_p50_ms",
        "client_loop_lag_p99_ms",
        "client_loop_lag_max_ms",
        "client_runtime_busy_pct",
        "wall_s",
        "ops_s",
    ];
    let server_families = [
        "server_cpu_user_s",
        "server_cpu_sys_s",
        "server_cpu_pct",
        "server_anon_peak_mib",
        "server_anon_mean_mib",
        "server_io_read_mib",
        "server_io_write_mib",
        "server_io_read_total_mib",
        "server_io_write_total_mib",
        "server_read_calls",
        "server_write_calls",
        "server_minor_faults",
        "server_major_faults",
        "server_voluntary_switches",
        "server_involuntary_switches",
        "server_ping_p50_ms",
        "server_ping_p99_ms",
        "server_ping_max_ms",
    ];
    for (id, s) in &by_id {
        let names = metric_names(s);
        for m in client_families {
            assert!(names.iter().any(|n| n == m), "{id} lacks {m}");
        }
        let has_server = !(id.starts_with("crypto.") || id.starts_with("store.") || id.starts_with("server.backend"));
        for m in server_families {
            assert_eq!(names.iter().any(|n| n == m), has_server, "{id} and {m}");
        }
        assert_eq!(s["rounds"], 5);
        assert!(s["budget"]["stop_reason"].is_string());
        // Only the load runs for a fixed duration rather than a fixed amount of work.
        assert_eq!(
            s["fixed_duration"].as_bool().unwrap_or(false),
            id.starts_with("server.load"),
            "{id}"
        );
        for (name, m) in s["metrics"].as_object().unwrap() {
            assert_eq!(m["samples"].as_array().unwrap().len(), 5, "{id} {name}");
        }
    }
    let names = metric_names(by_id["blobs.upload/3x10k/c2"]);
    for m in [
        "throughput_mib_s",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "latency_max_ms",
    ] {
        assert!(names.iter().any(|n| n == m), "upload lacks {m}");
    }
    assert!(metric_names(by_id["blobs.sync/down/3xmail/c2"]).contains(&"sync_s".to_owned()));
    assert!(metric_names(by_id["server.load/upload/1k/c2"]).contains(&"error_count".to_owned()));
    assert!(by_id["server.load/download/1k/c2"]["latency_histogram"].is_string());
    // The server really did the uploads: it wrote at least the payloads to storage.
    let upload = &by_id["blobs.upload/3x10k/c2"]["metrics"]["server_io_write_mib"]["samples"];
    assert!(
        upload.as_array().unwrap().iter().all(|v| v.as_f64().unwrap() >= 0.028),
        "{upload}"
    );
    // The mail pipeline: both halves report throughput and per-mail latencies, and the
    // client that processed the mails wrote them into its local store.
    for id in ["incoming.deliver/4xmail/c2", "incoming.process/4x10k"] {
        let names = metric_names(by_id[id]);
        for m in ["throughput_mib_s", "latency_p50_ms", "latency_max_ms"] {
            assert!(names.iter().any(|n| n == m), "{id} lacks {m}");
        }
        assert!(by_id[id]["latency_histogram"].is_string(), "{id}");
    }
    let ops = &by_id["incoming.process/4x10k"]["metrics"]["ops_s"]["samples"];
    assert!(
        ops.as_array().unwrap().iter().all(|v| v.as_f64().unwrap() > 0.0),
        "{ops}"
    );
    let saved = &by_id["incoming.process/4x10k"]["metrics"]["client_io_write_total_mib"]["samples"];
    assert!(
        saved.as_array().unwrap().iter().all(|v| v.as_f64().unwrap() >= 0.038),
        "{saved}"
    );
    let delivered = &by_id["incoming.deliver/4xmail/c2"]["metrics"]["server_io_write_total_mib"]["samples"];
    assert!(
        delivered.as_array().unwrap().iter().all(|v| v.as_f64().unwrap() > 0.0),
        "{delivered}"
    );
    assert!(r["run"]["sampler_cpu_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_server_started_elsewhere_is_measured_from_outside_only() {
    let repo = Repo::new();
    repo.commit("c");
    let server = TargetServer::start(&repo, false);
    let results = repo.out().join("target.json");
    let out = server
        .run_cmd(&repo, "scenarios.toml", "out/t.sqlite")
        .arg("--results")
        .arg(&results)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = load_results(&results);
    assert_eq!(r["run"]["target"], server.url);
    for s in r["scenarios"].as_array().unwrap() {
        let names = metric_names(s);
        assert!(names.iter().any(|n| n == "server_ping_p99_ms"));
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("server_") && !n.starts_with("server_ping")),
            "{names:?}"
        );
        assert!(names.iter().any(|n| n == "client_cpu_user_s"));
    }

    // The incoming workloads need the services listener: refused before anything runs.
    std::fs::write(
        repo.path().join("mail.toml"),
        "[[scenario]]\nworkload = \"incoming.deliver\"\npayloads = [\"2x1k\"]\nconcurrency = [1]\n",
    )
    .unwrap();
    let refused = server.run_cmd(&repo, "mail.toml", "out/m.sqlite").output().unwrap();
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--target-services"), "{}", stderr(&refused));

    // Only loopback targets, and only with a token.
    let refused = run_cmd(&repo, "scenarios.toml", "out/r.sqlite")
        .args(["--target", "http://10.1.2.3:2424", "--target-user", "x"])
        .env("SOLEDAD_BENCH_TARGET_TOKEN", "t")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("only http://127.0.0.1"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn the_mail_pipeline_runs_against_a_server_started_elsewhere() {
    let repo = Repo::new();
    repo.commit("c");
    let server = TargetServer::start(&repo, true);
    // The deliveries stay in the same box as the next scenario's: unlike a server the
    // harness starts, nothing is fresh between scenarios here.
    std::fs::write(
        repo.path().join("mail.toml"),
        "rounds = 5\nwarmup_rounds = 0\n\
         [[scenario]]\nworkload = \"incoming.deliver\"\npayloads = [\"3x1k\"]\nconcurrency = [1]\n\
         [[scenario]]\nworkload = \"incoming.process\"\npayloads = [\"2x1k\"]\n",
    )
    .unwrap();
    let results = repo.out().join("mail.json");
    let run = server
        .run_cmd(&repo, "mail.toml", "out/m.sqlite")
        .arg("--results")
        .arg(&results)
        .output()
        .unwrap();
    drop(server);
    assert!(run.status.success(), "{}", stderr(&run));
    let r = load_results(&results);
    let process = r["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "incoming.process/2x1k")
        .unwrap();
    // Every round processed exactly its own two mails (a round fails otherwise), not the
    // fifteen deliveries the box held before it.
    let wall = &process["metrics"]["wall_s"]["samples"];
    assert_eq!(wall.as_array().unwrap().len(), 5, "{wall}");
}

#[test]
fn ctrl_c_stops_cleanly_and_writes_nothing() {
    let repo = Repo::new();
    std::fs::write(repo.path().join("slow.toml"), SLOW).unwrap();
    repo.commit("c");
    let work = repo.out().join("work");
    let mut run = run_in(&repo, "slow.toml", &work)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    // What a terminal's Ctrl-C sends.
    assert_eq!(unsafe { libc::kill(run.id() as i32, libc::SIGINT) }, 0);
    let status = run.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut run.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted: nothing was written"), "{err}");
    assert!(!repo.out().join("results").exists());
    let conn = rusqlite::Connection::open(repo.out().join("c.sqlite")).unwrap();
    let runs: i64 = conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0)).unwrap();
    assert_eq!(runs, 0);
    // The server and the drivers are gone, and so is their data.
    let leftovers: Vec<_> = std::fs::read_dir(work.join("soledad-bench")).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_killed_run_leaves_no_process_and_the_next_run_deletes_its_data() {
    let repo = Repo::new();
    let quick = "warmup_rounds = 0\nrounds = 5\n[[scenario]]\nworkload = \"crypto.encrypt\"\npayloads = [\"2x10k\"]\n";
    std::fs::write(repo.path().join("slow.toml"), SLOW).unwrap();
    std::fs::write(repo.path().join("quick.toml"), quick).unwrap();
    repo.commit("c");
    let work = repo.out().join("work");
    let mut run = run_in(&repo, "slow.toml", &work)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let needle = work.to_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !processes_mentioning(&needle).iter().any(|&p| p != run.id()) {
        assert!(std::time::Instant::now() < deadline, "no server started");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    run.kill().unwrap();
    run.wait().unwrap();
    // The server and the driver go with it.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = processes_mentioning(&needle);
        if left.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still running: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let root = work.join("soledad-bench");
    let left: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        std::fs::read_dir(left[0].join("live")).unwrap().next().is_some(),
        "the killed run's scenario is in its trash directory"
    );

    let out = run_in(&repo, "quick.toml", &work).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("left by ended runs"), "{}", stderr(&out));
    let left: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
