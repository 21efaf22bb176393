//! The S3 test cluster that benchmark runs start must not outlive them: stopped when dropped,
//! and stopped when the process that started it is killed with SIGKILL.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::processes_mentioning;
use workloads::garage::Garage;

const OWNER: &str = "GARAGE_TEST_OWNER_DIR";

/// Starts a cluster, or says why the test cannot run: Garage and etcd are installed by
/// `blobs/server/tests/garage/cluster install` (`.ci/run` does, and requires them).
fn start(dir: &std::path::Path) -> Option<Garage> {
    match Garage::start(dir) {
        Ok(g) => Some(g),
        Err(e) if e.to_string().contains("binary at") && std::env::var_os("SOLEDAD_BENCH_REQUIRE_GARAGE").is_none() => {
            eprintln!("SKIPPING: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn wait_until_none_mention(needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = processes_mentioning(needle);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "still running: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_dropped_cluster_leaves_no_process() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("garage");
    let Some(garage) = start(&dir) else { return };
    let needle = dir.to_str().unwrap();
    assert!(
        processes_mentioning(needle).len() >= 4,
        "three nodes and etcd: {:?}",
        processes_mentioning(needle)
    );
    assert!(garage.get("SOLEDAD_S3_ENDPOINT").starts_with("http://127.0.0.1:"));
    drop(garage);
    wait_until_none_mention(needle);
}

#[test]
fn a_killed_owner_leaves_no_process() {
    if let Some(dir) = std::env::var_os(OWNER) {
        // The owner: starts a cluster, says so, and waits to be killed.
        let garage = Garage::start(std::path::Path::new(&dir)).unwrap();
        println!("STARTED");
        std::thread::sleep(Duration::from_secs(600));
        drop(garage);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("garage");
    // Whether the cluster can run here at all.
    let Some(probe) = start(&tmp.path().join("probe")) else {
        return;
    };
    drop(probe);
    let mut owner = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_killed_owner_leaves_no_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(OWNER, &dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let started = BufReader::new(owner.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("STARTED"));
    assert!(started, "the owner did not start its cluster");
    let needle = dir.to_str().unwrap();
    assert!(!processes_mentioning(needle).is_empty());
    owner.kill().unwrap();
    owner.wait().unwrap();
    wait_until_none_mention(needle);
}
