//! Operating the binary: configuration sources and their errors, TLS, signals, logs.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// Sends a signal through the shell's builtin `kill`, which every system has.
fn signal(pid: u32, sig: &str) {
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("kill {sig} {pid}"))
        .status()
        .unwrap();
    assert!(st.success());
}

/// Starts `cmd` and returns it with the public address from its first line.
fn spawn(mut cmd: Command) -> (std::process::Child, String) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn file_env_and_flags_combine_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), TOKENS).unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        "# relative paths are relative to this file\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\
         tokens = \"tokens\"\nquota = 10\n",
    )
    .unwrap();
    for (env, flag, fits) in [
        (None, None, false),
        (Some("20"), None, true),
        (Some("20"), Some("5"), false),
    ] {
        let mut cmd = server_command();
        cmd.arg("--config").arg(&config);
        if let Some(e) = env {
            cmd.env("BLOBS_SERVER_QUOTA", e);
        }
        if let Some(f) = flag {
            cmd.args(["--quota", f]);
        }
        let (child, line) = spawn(cmd);
        let _k = Kill(child);
        let addr = blobs_server::parse_listening_line(&line).unwrap();
        assert!(addr.ip().is_loopback());
        let r = client()
            .put(format!("http://{addr}/blobs/alice/q"))
            .header("Authorization", alice())
            .body(vec![0u8; 15])
            .send()
            .await
            .unwrap();
        let want = if fits {
            StatusCode::OK
        } else {
            StatusCode::INSUFFICIENT_STORAGE
        };
        assert_eq!(r.status(), want, "env {env:?} flag {flag:?}");
        if fits {
            assert!(dir.path().join("data/alice/default/q/q/q/q").exists());
            std::fs::remove_dir_all(dir.path().join("data/alice")).unwrap();
        }
    }
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), TOKENS).unwrap();
    let config = dir.path().join("server.toml");
    let run = |text: &str, env: &[(&str, &str)]| {
        std::fs::write(&config, text).unwrap();
        let out = server_command()
            .arg("--config")
            .arg(&config)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text}");
        assert!(out.stdout.is_empty());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let base = "data_dir = \"data\"\ntokens = \"tokens\"\n";
    let err = run(&format!("{base}max_concurrent_writes = \"fifty\"\n"), &[]);
    assert!(err.contains(&config.display().to_string()), "{err}");
    assert!(err.contains("line 3") && err.contains("max_concurrent_writes"), "{err}");
    let err = run(&format!("{base}\n\nidle_timeout = \"forever\"\n"), &[]);
    assert!(err.contains("line 5") && err.contains("idle_timeout"), "{err}");
    let err = run(&format!("{base}qouta = 5\n"), &[]);
    assert!(err.contains("line 3") && err.contains("qouta"), "{err}");
    let err = run("tokens = \"tokens\"\n", &[]);
    assert!(err.contains("data_dir is not set"), "{err}");
    let err = run(base, &[("BLOBS_SERVER_MAX_CONNECTIONS", "many")]);
    assert!(err.contains("many") && err.contains("max-connections"), "{err}");
    let err = run(&format!("{base}tls_cert = \"nope.pem\"\ntls_key = \"nope.key\"\n"), &[]);
    assert!(err.contains("nope.pem"), "{err}");
    let err = run(&format!("{base}max_blob_size = 0\n"), &[]);
    assert!(err.contains("max_blob_size: must be greater than zero"), "{err}");
    // A config file that is fine resolves and prints.
    std::fs::write(&config, format!("{base}quota = \"2 MiB\"\n")).unwrap();
    let out = server_command()
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("2097152"));
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = refused(dir.path(), &["--listen", &addr.to_string()]);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(err.to_lowercase().contains("in use"), "{err}");
}

#[test]
fn a_bad_token_file_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "alice:ok\nthis line has no colon\n").unwrap();
    let out = server_command()
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tokens")
        .arg(&tokens)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:2: expected `user:token`", tokens.display())),
        "{err}"
    );
}

async fn tls_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(fixtures.join("ca.pem")).unwrap();
    let ca = rustls_pki_types::pem::PemObject::from_pem_slice(&ca).unwrap();
    roots.add(ca).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    assert!(addr.ip().is_loopback());
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn tls_serves_the_api_and_refuses_plain_http() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), TOKENS).unwrap();
    let mut cmd = server_command();
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tokens")
        .arg(dir.path().join("tokens"))
        .arg("--tls-cert")
        .arg(fixtures.join("server.pem"))
        .arg("--tls-key")
        .arg(fixtures.join("server.key"));
    let (child, line) = spawn(cmd);
    let _k = Kill(child);
    assert!(line.starts_with("listening on https://"), "{line}");
    let addr = blobs_server::parse_listening_line(&line).unwrap();
    let out = tls_get(addr, "/").await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"blobs\":true"), "{out}");
    let out = tls_get(addr, "/blobs/alice/").await.unwrap();
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = raw(addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(!plain.contains("200 OK"), "{plain}");
    // A key that does not match the certificate is refused at start.
    let mut cmd = server_command();
    let other_key = dir.path().join("other.key");
    let st = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&other_key)
        .stderr(Stdio::null())
        .status();
    if st.is_ok_and(|s| s.success()) {
        cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data2"))
            .arg("--tokens")
            .arg(dir.path().join("tokens"))
            .arg("--tls-cert")
            .arg(fixtures.join("server.pem"))
            .arg("--tls-key")
            .arg(&other_key);
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("do not work together"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_requests_in_flight_finish() {
    let s = start();
    let pid = s.child.id();
    // An upload that takes about a second to send.
    let upload = {
        let url = s.url("/blobs/alice/slow");
        tokio::spawn(async move {
            let stream = futures::stream::unfold(0, |i| async move {
                if i == 10 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((Ok::<_, std::io::Error>(vec![i as u8; 1000]), i + 1))
            });
            client()
                .put(url)
                .header("Authorization", alice())
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(pid, "-TERM");
    assert_eq!(upload.await.unwrap(), StatusCode::OK);
    let mut s = s;
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(std::net::TcpStream::connect(s.addr).is_err(), "still accepting");
    let keep = s._tmp_keep();
    let dir = s.dir.clone();
    drop(s);
    let r = start_in(&dir, &[]);
    let body = get(&r, "/blobs/alice/slow").await.bytes().await.unwrap();
    assert_eq!(body.len(), 10_000);
    drop(r);
    drop(keep);
}

#[tokio::test]
async fn sighup_reloads_the_token_files() {
    let s = start();
    let carol = header_value("carol", "carol-token");
    let list = || {
        client()
            .get(s.url("/blobs/carol/"))
            .header("Authorization", carol.clone())
            .send()
    };
    assert_eq!(list().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    std::fs::write(s.dir.join("tokens"), format!("{TOKENS}carol:carol-token\n")).unwrap();
    signal(s.child.id(), "-HUP");
    let t0 = std::time::Instant::now();
    while list().await.unwrap().status() != StatusCode::OK {
        assert!(t0.elapsed() < Duration::from_secs(5), "tokens not reloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A broken file keeps the old tokens in force.
    std::fs::write(s.dir.join("tokens"), "broken line\n").unwrap();
    signal(s.child.id(), "-HUP");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(list().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), TOKENS).unwrap();
    let mut cmd = server_command();
    cmd.args(["--listen", "127.0.0.1:0", "--log-format", "json", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tokens")
        .arg(dir.path().join("tokens"));
    let (child, _line) = spawn(cmd);
    signal(child.id(), "-TERM");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "serving blobs" && l["level"] == "INFO"),
        "{err}"
    );
    assert!(lines.iter().any(|l| l["message"] == "stopped"), "{err}");
}

/// Logs redirected to a file (as a service manager or `> server.log` does) are plain text:
/// no colour escape codes, which only a terminal renders.
#[test]
fn logs_written_to_a_file_have_no_escape_codes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), TOKENS).unwrap();
    let log = dir.path().join("server.log");
    let mut child = server_command()
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tokens")
        .arg(dir.path().join("tokens"))
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "blobs_server=debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on"), "{line:?}");
    signal(child.id(), "-TERM");
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("serving blobs") && text.contains("stopped"), "{text}");
    assert!(!text.contains('\x1b'), "escape codes in {text:?}");
}

/// Eight uploads at once, each of 100 kB: work for the blocking pool.
async fn upload_eight(s: &Running) -> Vec<StatusCode> {
    let puts = (0..8u8).map(|i| async move { put(s, &format!("/blobs/alice/b{i}"), &[i; 100_000]).await });
    futures::future::join_all(puts).await
}

/// Idle threads of the blocking pool (file IO) leave after `blocking_keep_alive`; the
/// benchmark's count round sets a day, so that no thread's exit falls inside what it counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_blocking_threads_leave_after_their_keep_alive() {
    let threads = |s: &Running| {
        std::fs::read_dir(format!("/proc/{}/task", s.child.id()))
            .unwrap()
            .count()
    };
    // Two seconds: some thread is still there when the uploads have returned, however
    // late this test reads the count, and leaves long before tokio's default of 10 s would
    // let it (a server that ignored the setting fails here).
    let s = start_with(&["--blocking-keep-alive", "2"]);
    for status in upload_eight(&s).await {
        assert_eq!(status, StatusCode::OK);
    }
    let busy = threads(&s);
    let deadline = std::time::Instant::now() + Duration::from_secs(7);
    while threads(&s) >= busy {
        assert!(
            std::time::Instant::now() < deadline,
            "keep-alive 2 s: {busy} threads, none gone after 7 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A day: the threads the uploads started are all still there well after that.
    let s = start_with(&["--blocking-keep-alive", "1d"]);
    let before = threads(&s);
    for status in upload_eight(&s).await {
        assert_eq!(status, StatusCode::OK);
    }
    let busy = threads(&s);
    assert!(
        busy > before,
        "the uploads started no blocking thread: {before} then {busy}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(threads(&s), busy, "keep-alive 1 day");
}
