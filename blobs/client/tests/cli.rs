//! The `blobs` command as a black box, against the real server on loopback: byte-exact
//! round trips, every subcommand, clear errors, and SIGKILL in the middle of a sync or a
//! download followed by a run that finishes without sending again what the server has.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::proxy::{Fault, Proxy};
use common::{noise, server_in};

const PASSPHRASE: &str = "correct horse battery staple";

struct Device {
    server: String,
    store: PathBuf,
    extra_env: Vec<(&'static str, String)>,
}

impl Device {
    fn new(server: &str, store: PathBuf) -> Self {
        assert!(server.starts_with("http://127.0.0.1:"));
        Self {
            server: server.to_owned(),
            store,
            extra_env: vec![("BLOBS_PASSPHRASE", PASSPHRASE.to_owned())],
        }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_blobs"));
        c.args(args)
            .env_clear()
            .env("BLOBS_SERVER", &self.server)
            .env("BLOBS_USER", common::USER)
            .env("BLOBS_TOKEN", common::TOKEN)
            .env("BLOBS_STORE", &self.store)
            .env("BLOBS_LOG", "error")
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().await.unwrap()
    }

    /// Runs and expects success; returns stdout.
    async fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "blobs {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Runs and expects failure; returns stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(!out.status.success(), "blobs {args:?} succeeded");
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap()
}

fn file(dir: &Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn files_round_trip_byte_exactly_and_every_subcommand_works() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), |_| {}).await;
    let laptop = Device::new(&server.url(), dir.path().join("laptop"));
    let data = noise(1, 2_500_001);
    let input = file(dir.path(), "photo.jpg", &data);
    let id = text(laptop.ok(&["put", &input, "--id", "photo"]).await);
    assert_eq!(id.trim(), "photo");
    let small = file(dir.path(), "note.txt", b"a note\n");
    laptop.ok(&["put", &small, "--id", "note", "--no-upload"]).await;
    let status = text(laptop.ok(&["status"]).await);
    assert!(
        status.contains("SYNCED\t1") && status.contains("PENDING_UPLOAD\t1"),
        "{status}"
    );
    laptop.ok(&["sync"]).await;

    // Another device, with an encrypted-file store, gets both back byte for byte.
    let phone = Device::new(&server.url(), dir.path().join("phone"));
    let out = dir.path().join("back.jpg");
    phone
        .ok(&["--backend", "fs", "get", "photo", "-o", out.to_str().unwrap()])
        .await;
    assert!(std::fs::read(&out).unwrap() == data);
    assert_eq!(phone.ok(&["get", "note"]).await, b"a note\n");
    assert!(dir.path().join("phone/files/journal").exists());
    let remote = text(phone.ok(&["list", "--remote"]).await);
    assert_eq!(remote.lines().collect::<Vec<_>>(), ["note", "photo"]);
    let local = text(phone.ok(&["list"]).await);
    assert!(local.contains("photo\tSYNCED\t2500001"), "{local}");
    let one = text(phone.ok(&["status", "photo"]).await);
    assert!(one.contains("status\tSYNCED"), "{one}");

    // Flags, with compare-and-set.
    phone.ok(&["flags", "note", "--set", "PENDING"]).await;
    assert_eq!(text(phone.ok(&["flags", "note"]).await).trim(), "PENDING");
    let err = phone
        .fails(&["flags", "note", "--set", "PROCESSED", "--expect", "PROCESSING"])
        .await;
    assert!(err.contains("someone else"), "{err}");
    phone
        .ok(&["flags", "note", "--set", "PROCESSING", "--expect", "PENDING"])
        .await;

    // Deleting on one device removes it on the other at its next sync.
    phone.ok(&["delete", "note"]).await;
    assert_eq!(text(laptop.ok(&["list", "--remote", "--deleted"]).await).trim(), "note");
    laptop.ok(&["sync"]).await;
    assert!(!text(laptop.ok(&["list"]).await).contains("note"));

    // Several files at once.
    let a = file(dir.path(), "a", b"A");
    let b = file(dir.path(), "b", b"B");
    let listing = text(laptop.ok(&["put", &a, &b]).await);
    assert_eq!(listing.lines().count(), 2);
    assert!(listing.lines().all(|l| l.split('\t').count() == 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), |_| {}).await;
    let device = Device::new(&server.url(), dir.path().join("store"));
    device.ok(&["status"]).await;

    let mut nopass = Device::new(&server.url(), dir.path().join("store"));
    nopass.extra_env.clear();
    assert!(nopass.fails(&["status"]).await.contains("BLOBS_PASSPHRASE"));

    let mut wrong = Device::new(&server.url(), dir.path().join("store"));
    wrong.extra_env = vec![("BLOBS_PASSPHRASE", "not it".into())];
    let err = wrong.fails(&["status"]).await;
    assert!(err.contains("passphrase"), "{err}");

    let err = device.fails(&["get", "nothing"]).await;
    assert!(err.contains("does not exist"), "{err}");
    let err = device.fails(&["put", "/nonexistent/file"]).await;
    assert!(err.contains("/nonexistent/file"), "{err}");
    let err = device.fails(&["put", "--id", "../etc", "/dev/null"]).await;
    assert!(err.contains("invalid blob id"), "{err}");

    let bad_url = Device::new("http://127.0.0.1:1", dir.path().join("store"));
    let err = bad_url.fails(&["sync"]).await;
    assert!(err.contains("127.0.0.1:1"), "{err}");
    let mut not_url = Device::new("http://127.0.0.1:2", dir.path().join("store"));
    not_url.server = "ftp://example".into();
    let err = not_url.fails(&["sync"]).await;
    assert!(err.contains("invalid server URL"), "{err}");
    let out = device.run(&["--limit-up", "fast", "sync"]).await;
    assert_eq!(out.status.code(), Some(2), "usage errors are clap's");
    assert!(String::from_utf8_lossy(&out.stderr).contains("bytes per second"));
}

/// Polls until `cond` holds, for at most `secs`.
async fn wait_for(secs: u64, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn id_of(path: &str) -> String {
    path.split('?').next().unwrap().rsplit('/').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_killed_midway_finishes_without_sending_again_what_the_server_has() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), |_| {}).await;
    let proxy = Proxy::start(server.addr).await;
    let device = Device::new(&proxy.url(), dir.path().join("store"));
    let inputs: Vec<String> = (0..24)
        .map(|i| file(dir.path(), &format!("f{i:02}"), &noise(i, 60_000)))
        .collect();
    let mut args = vec!["put", "--no-upload"];
    args.extend(inputs.iter().map(String::as_str));
    device.ok(&args).await;

    let mut child = device
        .command(&["--limit-up", "300k", "--concurrency", "2", "sync"])
        .spawn()
        .unwrap();
    let check = common::remote_to(&server.url());
    wait_for(30, async || check.count("default").await.unwrap() >= 6).await;
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );

    let before: Vec<String> = check.list("default").await.unwrap();
    assert!(before.len() >= 6 && before.len() < 24, "{}", before.len());
    let mark = proxy.log().len();
    device.ok(&["sync"]).await;
    let resent: Vec<String> = proxy.log()[mark..]
        .iter()
        .filter(|l| l.method == "PUT")
        .map(|l| id_of(&l.path))
        .filter(|id| before.contains(id))
        .collect();
    assert!(resent.is_empty(), "sent again: {resent:?}");
    assert_eq!(check.count("default").await.unwrap(), 24);
    let status = text(device.ok(&["status"]).await);
    assert!(status.contains("SYNCED\t24"), "{status}");
    // And the content is right.
    let other = Device::new(&server.url(), dir.path().join("other"));
    let listing = text(other.ok(&["sync"]).await);
    assert!(listing.is_empty());
    let mut got: Vec<Vec<u8>> = Vec::new();
    for id in check.list("default").await.unwrap() {
        got.push(other.ok(&["get", &id]).await);
    }
    let mut want: Vec<Vec<u8>> = (0..24).map(|i| noise(i, 60_000)).collect();
    got.sort();
    want.sort();
    assert!(got == want, "every blob arrived intact");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_killed_midway_resumes_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), |_| {}).await;
    let proxy = Proxy::start(server.addr).await;
    let data = noise(42, 4_000_000);
    let seeder = Device::new(&server.url(), dir.path().join("seeder"));
    let input = file(dir.path(), "big", &data);
    seeder.ok(&["put", &input, "--id", "big"]).await;

    let device = Device::new(&proxy.url(), dir.path().join("store"));
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();
    proxy.add("GET", "/big?", Fault::Slow { rate: 1_500_000 }, 1);
    let mut child = device.command(&["get", "big", "-o", out_s]).spawn().unwrap();
    wait_for(30, async || {
        proxy
            .requests("GET", "/big?")
            .first()
            .is_some_and(|r| r.response_bytes >= 2_600_000)
    })
    .await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    assert!(!out.exists(), "no partial output file");

    device.ok(&["get", "big", "-o", out_s]).await;
    assert!(std::fs::read(&out).unwrap() == data);
    let gets = proxy.requests("GET", "/big?");
    assert_eq!(gets.len(), 2);
    let start: u64 = gets[1]
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse().ok())
        .expect("the second run asked for a range");
    assert!(start >= 2 << 20, "resumed at {start}");
    assert!(gets[1].response_bytes < 2_000_000);
}
